"The result chapters run end to end through papermill, as a user runs them, write consistent tables, and reject bad parameters clearly."
import json, os, subprocess, sys
import numpy as np, pandas as pd
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

def _tables(out, names):
    "Every table must exist with its Markdown, LaTeX and provenance sidecar (smoke preset, seed 1)."
    for t in names:
        df = pd.read_csv(out/f'{t}.csv'); assert len(df), t
        for ext in ('.md', '.tex', '.json'): assert (out/f'{t}{ext}').exists(), t + ext
        side = json.loads((out/f'{t}.json').read_text())
        assert side['config']['preset'] == 'smoke' and side['config']['seed'] == 1, t
    assert list(out.glob('*.png')) and list(out.glob('*.pdf'))

def _check_layermem(out):
    "Values a correct run must satisfy; each can fail."
    lm = pd.read_csv(out/'layermem.csv')
    assert list(lm.columns)[:6] == ['layer', 'layermem', 'delta_layermem', 'layermem_top', 'delta_layermem_top', 'layermem_least']
    for sfx in ('same_views', 'extra', 'extra_same_views'):                # the null and the paper's procedure beside it
        assert {f'layermem_{sfx}', f'layermem_top_{sfx}', f'layermem_least_{sfx}'} <= set(lm.columns), sfx
    assert (lm.layermem_same_views == lm.layermem).all()                    # the random subset does not depend on the ranking
    assert lm.layer.tolist()[0] == 'prep' and lm.layer.tolist()[-1] == 'layer3_residual2' and len(lm) == 8
    # ΔLayerMem is taken against the layer that feeds each block: the previous row, except for block 5 (layer2), which
    # receives the residual sum res1 (not a row of this table) rather than block 4's output
    prev = lm.layer != 'layer2'
    for col in ('layermem', 'layermem_top'):
        np.testing.assert_allclose(lm[f'delta_{col}'][prev], np.diff(lm[col], prepend=0.)[prev], atol=1e-12)
        assert abs(lm[f'delta_{col}'][~prev].item() - np.diff(lm[col])[3]) > 1e-9, col    # not block 4's output
    assert lm.drop(columns='layer').abs().max().max() <= 1.           # 'range' normalisation: every score in [-1, 1]
    bs = pd.read_csv(out/'sslmem_by_set.csv')
    np.testing.assert_allclose(bs.candidates_minus_extra, bs.mean_candidates - bs.mean_extra, atol=1e-6)
    np.testing.assert_allclose(bs.extra_minus_independent, bs.mean_extra - bs.mean_independent, atol=1e-6)
    assert bs.filter(like='p_').stack().between(0, 1).all() and bs.layer.tolist() == lm.layer.tolist()
    assert (bs.p_candidates_gt_extra_holm >= bs.p_candidates_gt_extra - 1e-12).all()
    assert len(pd.read_csv(out/'layermem_residual.csv')) == 8 + 2 + 4  # blocks, two residual sums, four pre-pool ReLUs
    ag = pd.read_csv(out/'layer_agreement.csv')
    assert len(ag) == 2 * (8 * 7 // 2 + 8 * 9 // 2)                       # 2 sets x (same views: pairs; independent: pairs + self)
    assert ag.overlap.between(0, 100).all() and ag.tau.between(-1, 1).all() and (ag.chance == 50.).all()   # k = 30 of 60 points
    assert (ag[ag.views == 'same'].distance > 0).all() and (ag[ag.views == 'independent'].distance == 0).sum() == 2 * 8
    by = pd.read_csv(out/'layer_agreement_by_distance.csv')
    np.testing.assert_allclose(by.overlap, ag.groupby(['set', 'views', 'distance'], sort=False).overlap.mean().values)

def _check_unitmem(out):
    layers = pd.read_csv(out/'unitmem_layers.csv'); units = pd.read_csv(out/'unitmem_units.csv')
    means = units.groupby('layer', sort=False)[['unitmem_f', 'unitmem_g', 'unitmem_init']].mean()
    np.testing.assert_allclose(layers.mean_f, means.loc[layers.layer, 'unitmem_f'], rtol=1e-5)   # the summary is of these units
    np.testing.assert_allclose(layers.mean_init, means.loc[layers.layer, 'unitmem_init'], rtol=1e-5)
    assert (layers.units.values == units.groupby('layer', sort=False).size().loc[layers.layer].values).all()
    assert units[['unitmem_f', 'unitmem_g', 'unitmem_init', 'unitmem_f_extra', 'unitmem_g_extra']].stack().between(0, 1).all()
    np.testing.assert_allclose(layers.fg_diff, (units.unitmem_f - units.unitmem_g).groupby(units.layer, sort=False).mean().loc[layers.layer], atol=1e-5)
    assert (layers.fg_ci_low <= layers.fg_diff + 1e-9).all() and (layers.fg_diff <= layers.fg_ci_high + 1e-9).all()
    np.testing.assert_allclose(layers.mean_f_extra, units.groupby('layer', sort=False).unitmem_f_extra.mean().loc[layers.layer], rtol=1e-5)
    pts = pd.read_csv(out/'sslmem_vs_unitmem_points.csv')
    assert pts.n_units.sum() == layers.units.iloc[-1]                # every last-layer unit has one maximising point
    assert sorted(pts.sslmem_rank) == list(range(1, len(pts) + 1))
    ep = pd.read_csv(out/'unitmem_epochs.csv')
    e0, eN = ep[ep.epoch == 0].set_index('layer').unitmem, ep[ep.epoch == ep.epoch.max()].set_index('layer').unitmem
    np.testing.assert_allclose(e0.loc[layers.layer], layers.mean_init, rtol=1e-5)               # epoch 0 is the (recalibrated) initialisation
    np.testing.assert_allclose(eN.loc[layers.layer], layers.mean_f, rtol=1e-5)                  # the last epoch is f
    probe = pd.read_csv(out/'downstream.csv')
    assert set(probe.encoder) == {'ssl', 'supervised', 'init'} and probe[['linear', 'knn']].stack().between(0, 1).all()
    cu = pd.read_csv(out/'classmem_units.csv')
    assert set(cu.encoder) == {'ssl', 'sl', 'init'} and cu[['unitmem', 'classmem', 'classmem_null']].stack().between(0, 1).all()
    sv = pd.read_csv(out/'ssl_vs_supervised.csv')
    np.testing.assert_allclose(sv.class_excess, sv.classmem - sv.classmem_null, atol=1e-6)
    np.testing.assert_allclose(sv.unitmem, cu.groupby(['encoder', 'layer'], sort=False).unitmem.mean().values, rtol=1e-5)

@pytest.mark.parametrize('nb, tables, check', [
    ('09_layermem.ipynb', ['sslmem_by_set', 'layermem', 'layermem_residual', 'layer_agreement',
                           'layer_agreement_by_distance', 'layermem_sample_size'], _check_layermem),
    ('10_unitmem.ipynb', ['unitmem_layers', 'unitmem_units', 'sslmem_vs_unitmem_points', 'sslmem_vs_unitmem_corr',
                          'unitmem_top_vs_least', 'unitmem_epochs', 'ssl_vs_supervised', 'classmem_units', 'classmem_shift',
                          'downstream'], _check_unitmem),
])
def test_chapter_smoke(runs, nb, tables, check):
    out = runs/'out'
    r = papermill(nb, runs/nb, 'preset', 'smoke', 'seed', 1, 'out_dir', out)
    assert r.returncode == 0, _error(r)[-3000:]
    _tables(out, tables); check(out)
    rec = json.loads((out/f'{nb[:-6]}.run.json').read_text())['config']
    assert rec['chapter'] == nb[:-6] and rec['parameters']['seed'] == 1 and rec['parameters']['out_dir'] == str(out)
    # a second run reuses the cached pair instead of retraining it
    pairs = sorted((runs/'runs'/'pairs').glob('*/f.pt')); stamp = [p.stat().st_mtime_ns for p in pairs]
    assert len(pairs) == 1, pairs
    r = papermill(nb, runs/('again-' + nb), 'preset', 'smoke', 'seed', 1, 'out_dir', out)
    assert r.returncode == 0, _error(r)[-3000:]
    assert [p.stat().st_mtime_ns for p in pairs] == stamp and len(list((runs/'runs'/'pairs').glob('*/f.pt'))) == 1

@pytest.mark.parametrize('nb', ['09_layermem.ipynb', '10_unitmem.ipynb'])
def test_missing_dataset_says_how_to_get_it(runs, nb):
    r = papermill(nb, runs/nb, 'dataset', 'cifar10', env={'MEMLOC_DATA': str(runs/'no-data')})
    assert r.returncode != 0
    err = _error(r)
    assert 'FileNotFoundError' in err and 'cifar10' in err.lower() and 'download=True' in err, err[-3000:]

def test_bad_parameters_are_errors(runs):
    r = papermill('10_unitmem.ipynb', runs/'a.ipynb', 'preset', 'smoke', 'epochz', 3)
    assert r.returncode != 0 and 'Unknown parameter(s) epochz' in _error(r)
    assert 'Valid: dataset, arch, method, preset, seed, train_seed, protocol, n_total' in _error(r)      # each name once
    r = papermill('09_layermem.ipynb', runs/'b.ipynb', 'preset', 'fast')
    assert r.returncode != 0 and "Unknown preset 'fast'" in _error(r) and 'smoke, quick, paper' in _error(r)
