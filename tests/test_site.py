"""The rendered site in a real headless browser: a small site (the overview, one library notebook executed, one chapter
from a run cache) loads in Chromium with every image drawn, links that resolve, and pages that read like a report."""
import os, re, shutil, subprocess, time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse, unquote
import pytest
from conftest import ROOT

CHROMIUM = next((shutil.which(b) for b in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: these tests load the rendered "
                                "pages in a headless browser (.ci/setup installs it: apt-get install chromium).")

# marks every image with its natural width once the page has loaded; --dump-dom then shows the marks
PROBE = """<script>window.addEventListener('load', () => {
  for (const img of document.images) img.setAttribute('data-natural-width', img.naturalWidth);
  document.body.setAttribute('data-probed', 'yes');
});</script>"""

class _Tags(HTMLParser):
    "The attributes of every <img> and <a> of a page, and its text."
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.text, self.body = [], [], [], {}
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'img': self.imgs.append(a)
        elif tag == 'a' and a.get('href'): self.links.append(a['href'])
        elif tag == 'body': self.body = a
    def handle_data(self, data): self.text.append(data)

def parse(html:str)->_Tags:
    "The page's images, links, text and body attributes."
    p = _Tags()
    p.feed(html)
    return p

def browser_dom(page:Path, profile:Path)->str:
    "The DOM of `page` as Chromium has it after loading, with every image's natural width marked."
    probe = page.with_name(page.stem + '.probe.html')
    probe.write_text(page.read_text().replace('</body>', PROBE + '</body>', 1))
    try:
        r = subprocess.run([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', f'--user-data-dir={profile}',
                            '--virtual-time-budget=10000', '--dump-dom', probe.as_uri()],
                           capture_output=True, text=True, timeout=120)
    finally: probe.unlink()
    assert r.returncode == 0 and '<body' in r.stdout, f"Chromium could not load {page}: {r.stderr[-2000:]}"
    return r.stdout

def image_widths(page:Path, profile:Path)->list[tuple[str, int]]:
    "(source, shortened; natural width) of every image of `page` as Chromium drew it: width 0 is a broken image."
    dom = parse(browser_dom(page, profile))
    assert dom.body.get('data-probed') == 'yes', f"{page} never finished loading in Chromium"
    return [(i.get('src', '')[:80], int(i.get('data-natural-width') or 0)) for i in dom.imgs]

def local_links(page:Path)->list[str]:
    "The links of `page` to files of the site (no web addresses, anchors or data)."
    links = [urlparse(h) for h in parse(page.read_text()).links]
    return [unquote(u.path) for u in links if not u.scheme and not u.netloc and u.path]

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "A small site: the overview and lib/00_core executed, 09_layermem from a run cache holding an executed copy."
    from memloc.chapters.site import build_site
    tmp = tmp_path_factory.mktemp('site')
    run = tmp/'runs'/'notebooks'/'quick'/'fashion_mnist'/'seed10'/'09_layermem.ipynb'
    run.parent.mkdir(parents=True)
    shutil.copy(ROOT/'tests'/'fixtures'/'executed_chapter.ipynb', run)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('MEMLOC_RUNS', str(tmp/'runs'))
        mp.setenv('MEMLOC_FIGURES', str(tmp/'figures'))
        t0 = time.time()
        records = build_site(tmp/'out', only=['lib/00_core', '09_layermem'], nbs=ROOT/'nbs', runs=tmp/'runs', log=print)
        print(f'site built in {time.time() - t0:.0f} s')
    return tmp/'out', {r['name']: r for r in records}

def test_the_site_has_a_page_per_notebook_and_an_index_linking_them(site):
    out, records = site
    kinds = {n: r['kind'] for n, r in records.items()}
    assert kinds == {'index': 'built', 'lib/00_core': 'built', '09_layermem': 'run'}
    assert not [r['error'] for r in records.values() if r['error']]
    assert {'index.html', 'lib/00_core.html', '09_layermem.html'} <= set(local_links(out/'index.html'))

def test_every_page_loads_in_chromium_with_every_image_drawn(site, tmp_path):
    out, _ = site
    pages = sorted(out.rglob('*.html'))
    assert len(pages) == 3
    widths = {p.name: image_widths(p, tmp_path/'profile') for p in pages}
    assert not {p: [s for s, w in ws if w == 0] for p, ws in widths.items() if any(w == 0 for _, w in ws)}
    assert len(widths['index.html']) >= 2 and len(widths['09_layermem.html']) >= 1, widths   # overview figures, a plot

def test_no_page_has_a_broken_local_link(site):
    out, _ = site
    broken = {str(p.relative_to(out)): [l for l in local_links(p) if not (p.parent/l).exists()]
              for p in out.rglob('*.html')}
    assert not {p: ls for p, ls in broken.items() if ls}, broken
    assert 'lib/00_core.html' in local_links(out/'09_layermem.html')   # a link to a notebook became a link to its page

def test_a_chapter_page_reads_like_a_report(site):
    out, _ = site
    text = ''.join(parse((out/'09_layermem.html').read_text()).text)
    assert 'Outputs of a run by' in text and 'seed 10' in text                    # the banner says where it comes from
    assert 'HIDDEN-MARKER' not in text and 'fastcore' not in text and '#|' not in text
    assert 'WARNING-MARKER kept' in text and not re.search(r'\d+%\||it/s\]', text)
    assert 'were cut' in text                          # the run's pandas cut a wide table: the banner says so

def test_the_checker_finds_a_broken_image_and_a_broken_link(site, tmp_path):
    "Negative control: a page with an image that cannot be drawn and a link to nothing fails both checks."
    out, _ = site
    bad = out/'broken-on-purpose.html'
    html = (out/'index.html').read_text()
    bad.write_text(html.replace('</body>', '<img src="figures/missing.png"><a href="nowhere.html">x</a></body>', 1))
    try:
        assert [s for s, w in image_widths(bad, tmp_path/'profile') if w == 0] == ['figures/missing.png']
        assert [l for l in local_links(bad) if not (bad.parent/l).exists()] == ['nowhere.html']
    finally: bad.unlink()
