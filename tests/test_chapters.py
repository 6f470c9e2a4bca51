"The result chapters run end to end through papermill, as a user runs them, and reject bad parameters clearly."
import json, os, subprocess, sys
import pandas as pd
import pytest
from conftest import ROOT

def papermill(nb, out, *params, env=None, timeout=600):
    "Run chapter `nb` with papermill (`params`: name, value pairs); return the CompletedProcess."
    cmd = [sys.executable, '-m', 'papermill', '-k', 'python3', str(ROOT/'nbs'/nb), str(out)]
    for k, v in zip(params[::2], params[1::2]): cmd += ['-p', k, str(v)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})})

def _error(r):
    "The text of the error a failed papermill run recorded."
    return r.stdout + r.stderr

@pytest.mark.parametrize('nb, tables', [
    ('09_layermem.ipynb', ['candidates_vs_independent', 'layermem', 'layermem_residual', 'layer_agreement',
                           'layer_agreement_by_distance', 'layermem_sample_size']),
    ('10_unitmem.ipynb', ['unitmem_layers', 'unitmem_units', 'sslmem_vs_unitmem_points', 'sslmem_vs_unitmem_corr',
                          'unitmem_top_vs_least', 'unitmem_epochs', 'ssl_vs_supervised', 'downstream']),
])
def test_chapter_smoke(runs, nb, tables):
    out = runs/'out'
    r = papermill(nb, runs/nb, 'preset', 'smoke', 'seed', 1, 'out_dir', out)
    assert r.returncode == 0, _error(r)[-3000:]
    for t in tables:
        df = pd.read_csv(out/f'{t}.csv'); assert len(df), t
        for ext in ('.md', '.tex', '.json'): assert (out/f'{t}{ext}').exists(), t + ext
        side = json.loads((out/f'{t}.json').read_text())
        assert side['config']['preset'] == 'smoke' and side['config']['seed'] == 1
    assert list(out.glob('*.png')) and list(out.glob('*.pdf'))
    if nb.startswith('09'):
        lm = pd.read_csv(out/'layermem.csv')
        assert list(lm.columns) == ['layer', 'layermem', 'delta_layermem', 'layermem_top', 'delta_layermem_top', 'layermem_least']
        assert lm.layer.tolist()[0] == 'prep' and lm.layer.tolist()[-1] == 'layer3_residual2'
        assert (lm.layermem_top >= lm.layermem_least).iloc[-1]        # ranked by the final layer
    # a second run reuses the cached pair instead of retraining it
    pairs = sorted((runs/'runs'/'pairs').glob('*/f.pt')); stamp = [p.stat().st_mtime for p in pairs]
    r = papermill(nb, runs/('again-' + nb), 'preset', 'smoke', 'seed', 1, 'out_dir', out)
    assert r.returncode == 0, _error(r)[-3000:]
    assert [p.stat().st_mtime for p in pairs] == stamp

@pytest.mark.parametrize('nb', ['09_layermem.ipynb', '10_unitmem.ipynb'])
def test_missing_dataset_says_how_to_get_it(runs, nb):
    r = papermill(nb, runs/nb, 'dataset', 'cifar10', env={'MEMLOC_DATA': str(runs/'no-data')})
    assert r.returncode != 0
    err = _error(r)
    assert 'FileNotFoundError' in err and 'cifar10' in err.lower() and 'download=True' in err, err[-3000:]

def test_bad_parameters_are_errors(runs):
    r = papermill('10_unitmem.ipynb', runs/'a.ipynb', 'preset', 'smoke', 'epochz', 3)
    assert r.returncode != 0 and 'Unknown parameter(s) epochz' in _error(r)
    r = papermill('09_layermem.ipynb', runs/'b.ipynb', 'preset', 'fast')
    assert r.returncode != 0 and "Unknown preset 'fast'" in _error(r) and 'smoke, quick, paper' in _error(r)
