"The notebook test runner must really execute cells (a newer execnb silently runs none)."
import os, subprocess
from conftest import ROOT

def test_must_fail_notebook_fails(tmp_path):
    marker = tmp_path/'marker'
    r = subprocess.run(['nbdev_test', '--path', str(ROOT/'tests/fixtures/must_fail.ipynb')], cwd=ROOT/'nbs',
                       env={**os.environ, 'MEMLOC_MUST_FAIL_MARKER': str(marker)}, capture_output=True, text=True)
    assert r.returncode != 0, r.stdout + r.stderr
    assert marker.read_text() == 'ran'
    assert '3' in r.stdout + r.stderr
