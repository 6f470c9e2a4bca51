"The GPU check script runs end to end at tiny sizes on the CPU and writes its table, so it is known to work before a GPU is."
import json, subprocess, sys
from conftest import ROOT

def test_device_script_quick_on_cpu(tmp_path, runs):
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'device.py'), '--device', 'cpu', '--quick', '--out', str(tmp_path/'rep')],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((tmp_path/'rep'/'device.json').read_text())
    parts = [row['part'] for row in rep['rows']]
    assert parts[0].startswith('training') and any(p.startswith('alignment') for p in parts) and any(p.startswith('unitmem') for p in parts)
    assert all(row['memloc_s'] > 0 and row['bare_s'] > 0 and row['peak_mib'] > 0 for row in rep['rows'])
    assert rep['paper_pair_hours'] > 0 and '54,000,000 images' in rep['paper_pair_basis'] and rep['quick']
    md = (tmp_path/'rep'/'device.md').read_text()
    assert md.startswith('# memloc on ') and '| memloc / bare |' in md and 'not a measurement' in md
