"""The house rules of the two floors, checked on the source: the library never imports a chapter, no notebook imports a
later one, a public name has one home, and every module docstring is a whole sentence."""
import ast, json, re
from collections import defaultdict
from conftest import ROOT

LIB, CHAPTERS = ROOT/'memloc', ROOT/'memloc'/'chapters'

def _modules():
    "{dotted module name: path} of every exported module."
    return {('memloc.' + '.'.join(p.relative_to(LIB).with_suffix('').parts)): p for p in LIB.rglob('*.py')
            if p.name not in ('__init__.py', '_modidx.py')}

def _imported(tree, here:str)->set:
    "The memloc modules a module imports (relative imports resolved against `here`)."
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            if n.level:
                base = here.split('.')[:-n.level]
                out.add('.'.join(base + ([n.module] if n.module else [])))
            elif n.module and n.module.startswith('memloc'): out.add(n.module)
        elif isinstance(n, ast.Import): out |= {a.name for a in n.names if a.name.startswith('memloc')}
    return out

def test_the_library_never_imports_a_chapter():
    up = {m: sorted(i for i in _imported(ast.parse(p.read_text()), m) if i.startswith('memloc.chapters'))
          for m, p in _modules().items() if not m.startswith('memloc.chapters')}
    assert not {m: i for m, i in up.items() if i}, up

def _notebooks():
    "Notebooks in reading order: the library's (nbs/lib/), then the chapters' (nbs/), each by its number."
    return sorted((ROOT/'nbs'/'lib').glob('[0-9]*.ipynb')) + sorted((ROOT/'nbs').glob('[0-9]*.ipynb'))

def _exports(nb:dict)->str|None:
    for c in nb['cells']:
        m = re.match(r'#\|\s*default_exp\s+(\S+)', ''.join(c['source']))
        if c['cell_type'] == 'code' and m: return 'memloc.' + m.group(1)
    return None

def test_no_notebook_imports_a_later_one():
    order = _notebooks()
    nbs = {p: json.loads(p.read_text()) for p in order}
    home = {_exports(nb): i for i, (p, nb) in enumerate(nbs.items()) if _exports(nb)}
    later = []
    for i, (p, nb) in enumerate(nbs.items()):
        code = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code')
        mods = set(re.findall(r'^\s*(?:from|import)\s+(memloc(?:\.\w+)+)', code, re.M))
        for names in re.findall(r'^\s*from\s+memloc\s+import\s+([\w, ]+)', code, re.M):
            mods |= {f'memloc.{n.strip()}' for n in names.split(',')}
        for m in mods:
            while m not in home and '.' in m: m = m.rsplit('.', 1)[0]
            if home.get(m, -1) > i: later.append((p.name, m))
    assert not later, later

def test_every_public_name_has_one_home():
    homes = defaultdict(list)
    for m, p in _modules().items():
        found = re.search(r'__all__ = \[(.*?)\]', p.read_text(), re.S)
        for name in (ast.literal_eval('[' + found.group(1) + ']') if found else []): homes[name].append(m)
    assert not {n: ms for n, ms in homes.items() if len(ms) > 1}

def test_module_docstrings_are_whole_sentences():
    cut = {m: doc for m, p in _modules().items() if not (doc := ast.get_docstring(ast.parse(p.read_text())) or '')
           or not doc.rstrip().endswith(('.', '?', ')'))}
    assert not cut, cut
