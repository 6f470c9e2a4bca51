"The notebook test runner must really execute cells (a newer execnb silently runs none)."
import os, subprocess
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
