"The notebook test runner must really execute cells (a newer execnb silently runs none)."
import os, subprocess, sys
from conftest import ROOT

def test_must_fail_notebook_fails(tmp_path):
    marker = tmp_path/'marker'
    r = subprocess.run(['nbdev_test', '--path', str(ROOT/'tests/fixtures/must_fail.ipynb')], cwd=ROOT/'nbs',
                       env={**os.environ, 'MEMLOC_MUST_FAIL_MARKER': str(marker)}, capture_output=True, text=True)
    assert r.returncode != 0, r.stdout + r.stderr
    assert marker.read_text() == 'ran'                           # the first cell ran
    out = r.stdout + r.stderr
    assert 'AssertionError: ==:\n2\n3' in out, out[-2000:]          # the second cell ran and its assertion failed
    assert 'must_fail.ipynb' in out.split('Failed On The Following Notebooks')[-1]

def test_papermill_shows_progress_in_the_terminal(tmp_path):
    "A chapter run headless with papermill writes its progress bars to the terminal papermill was started from."
    env = {k: v for k, v in os.environ.items() if k not in ('MEMLOC_PROGRESS', 'PYTEST_CURRENT_TEST')}
    r = subprocess.run([sys.executable, '-m', 'papermill', '-k', 'python3', str(ROOT/'tests/fixtures/progress.ipynb'),
                        str(tmp_path/'out.ipynb')], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert 'memloc-progress-check' in r.stderr and '3/3' in r.stderr, r.stderr[-2000:]   # the bar, on papermill's terminal
    assert "mode log" in (tmp_path/'out.ipynb').read_text()
