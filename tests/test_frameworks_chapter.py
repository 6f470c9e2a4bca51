"The frameworks chapter (14) runs end to end through papermill under the smoke preset for every (architecture, method) it covers, and its tables agree with each other."
import json, os, subprocess, sys
import numpy as np, pandas as pd
import pytest
from scipy import stats
from conftest import ROOT
from memloc.chapters.reproduce import aggregate_table

NB = '14_frameworks.ipynb'
TABLES = ['framework_recipes', 'framework_sslmem_by_set', 'framework_layermem', 'vit_sublayers', 'vit_unitmem',
          'vit_unitmem_kinds', 'framework_profiles', 'framework_overlap', 'framework_depth']
RUNS = [('resnet', 'resnet9', m) for m in ('simclr', 'simsiam', 'dino')] + [('vit', 'vit_tiny', m) for m in ('simclr', 'dino', 'mae')]

def papermill(out, *params, yaml=(), timeout=900):
    "Run the chapter with papermill (`params`: name, value pairs; `yaml`: -y strings); return the CompletedProcess."
    cmd = [sys.executable, '-m', 'papermill', '-k', 'python3', str(ROOT/'nbs'/NB), str(out)]
    for k, v in zip(params[::2], params[1::2]): cmd += ['-p', k, str(v)]
    for y in yaml: cmd += ['-y', y]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, 'OMP_NUM_THREADS': '1'})

def _error(r): return (r.stdout + r.stderr)[-3000:]

def _check_tables(out):
    for t in TABLES:
        df = pd.read_csv(out/f'{t}.csv'); assert len(df), t
        for ext in ('.md', '.tex', '.json'): assert (out/f'{t}{ext}').exists(), t + ext
        side = json.loads((out/f'{t}.json').read_text())
        assert side['config']['preset'] == 'smoke' and side['config']['seed'] == 1, t
        two = pd.concat([df.assign(seed=0), df.assign(seed=1)], ignore_index=True)   # memloc-reproduce can average it over seeds
        agg, _ = aggregate_table(two, side['keys'])
        assert len(agg) == len(df) and (agg.n_seeds == 2).all(), t
    assert (out/'framework_layermem.png').exists() and (out/'framework_layermem.pdf').exists()

def _check_recipes(out):
    rec = pd.read_csv(out/'framework_recipes.csv')
    assert list(zip(rec.family, rec.arch, rec.method)) == RUNS
    sim = rec[(rec.family == 'resnet') & (rec.method == 'simclr')].iloc[0]      # the LayerMem chapter's recipe
    assert (sim.optimizer, sim.schedule, sim.epochs, sim.batch_size, sim.lr) == ('adam', 'constant', 2, 64, 1e-3)
    assert (rec[rec.method.isin(['dino', 'mae'])].optimizer == 'adamw').all()
    assert rec[(rec.method == 'dino')].method_kw.str.contains('MultiCropAug').all()

def _check_layermem(out):
    lm = pd.read_csv(out/'framework_layermem.csv')
    for fam, arch, m in RUNS:
        d = lm[(lm.arch == arch) & (lm.method == m)]
        assert d.position.tolist() == list(range(1, len(d) + 1)), (arch, m)
        if fam == 'resnet': assert d.layer.tolist()[0] == 'prep' and d.layer.tolist()[-1] == 'layer3_residual2' and len(d) == 8
        else:
            assert d.label.tolist() == ['attn1', 'mlp1', 'attn2', 'mlp2'] and d.sublayer.tolist() == ['attn', 'mlp'] * 2
            assert d.block.tolist() == [1, 1, 2, 2]
            for sfx in ('', '_extra'):                                       # ViT: each sub-layer is fed by the previous row
                np.testing.assert_allclose(d[f'delta_layermem{sfx}'], np.diff(d[f'layermem{sfx}'], prepend=0.), atol=1e-12)
    vals = lm[[c for c in lm.columns if c.startswith(('layermem', 'delta_layermem'))]]
    assert vals.abs().max().max() <= 2. and np.isfinite(vals.values.astype(float)).all()   # range-normalised scores (Δ: a difference of two)
    assert (lm[[c for c in lm.columns if c.startswith('layermem')]].abs() <= 1.).all().all()
    bs = pd.read_csv(out/'framework_sslmem_by_set.csv')
    np.testing.assert_allclose(bs.candidates_minus_extra, bs.mean_candidates - bs.mean_extra, atol=1e-6)
    assert bs.filter(regex='^p_').stack().between(0, 1).all() and (bs.p_candidates_gt_extra_holm >= bs.p_candidates_gt_extra - 1e-12).all()
    for fam, arch, m in RUNS:
        d = bs[(bs.arch == arch) & (bs.method == m)]
        assert d.label.tolist()[-1] == 'output' and d.layer.tolist()[-1] == ('res2' if fam == 'resnet' else 'net')
        assert d.layer.tolist()[:-1] == lm[(lm.arch == arch) & (lm.method == m)].layer.tolist()

def _check_depth(out):
    dt, bs = pd.read_csv(out/'framework_depth.csv'), pd.read_csv(out/'framework_sslmem_by_set.csv')
    assert list(zip(dt.family, dt.arch, dt.method)) == RUNS and dt.layers.tolist() == [8] * 3 + [4] * 3
    for r in dt.itertuples():                                                # ρ of the per-layer gap of the by-set table with depth
        gap = bs[(bs.arch == r.arch) & (bs.method == r.method) & (bs.label != 'output')].candidates_minus_extra.values
        np.testing.assert_allclose(r.rho_gap, stats.spearmanr(np.arange(len(gap)), gap).statistic, atol=1e-9)
    np.testing.assert_allclose(dt.slope_diff, dt.slope_candidates - dt.slope_extra, atol=1e-9)
    assert dt.filter(regex='^p_').stack().between(0, 1).all()

def _check_vit(out):
    lm = pd.read_csv(out/'framework_layermem.csv')
    sub = pd.read_csv(out/'vit_sublayers.csv')
    assert sub.method.tolist() == ['simclr', 'dino', 'mae'] and (sub.blocks == 2).all()
    for r in sub.itertuples():
        d = lm[(lm.arch == 'vit_tiny') & (lm.method == r.method)]
        for sfx in ('', '_extra'):
            mlp, attn = (d[d.sublayer == s][f'delta_layermem{sfx}'].mean() for s in ('mlp', 'attn'))
            np.testing.assert_allclose([getattr(r, f'dlm_mlp{sfx}'), getattr(r, f'dlm_attn{sfx}')], [mlp, attn], atol=1e-9)
            np.testing.assert_allclose(getattr(r, f'mlp_minus_attn{sfx}'), mlp - attn, atol=1e-9)
    assert sub.filter(regex='^p_').stack().between(0, 1).all()
    um = pd.read_csv(out/'vit_unitmem.csv')
    assert len(um) == 3 * 2 * 2 and set(um.kind) == {'attn', 'mlp'}
    assert (um[um.kind == 'attn'].units == 32).all() and (um[um.kind == 'mlp'].units == 128).all()       # smoke ViT: width 32, MLP 4x
    assert um.layer[um.kind == 'attn'].str.endswith('.attn.proj').all() and um.layer[um.kind == 'mlp'].str.endswith('.mlp.act').all()
    assert um[['mean_f', 'mean_g', 'mean_f_extra', 'mean_g_extra']].stack().between(0, 1).all()         # positive part: in [0, 1]
    np.testing.assert_allclose(um.fg_diff, um.mean_f - um.mean_g, atol=1e-6)
    np.testing.assert_allclose(um.did_diff, (um.mean_f - um.mean_g) - (um.mean_f_extra - um.mean_g_extra), atol=1e-6)
    assert ((um.fg_ci_low <= um.fg_diff + 1e-9) & (um.fg_diff <= um.fg_ci_high + 1e-9)).all()
    kinds = pd.read_csv(out/'vit_unitmem_kinds.csv')
    for r in kinds.itertuples():
        for k in ('mlp', 'attn'):                                            # pooled over units = unit-weighted mean of the rows
            d = um[(um.method == r.method) & (um.kind == k)]
            np.testing.assert_allclose(getattr(r, f'did_{k}'), (d.did_diff * d.units).sum() / d.units.sum(), atol=1e-6)
            np.testing.assert_allclose(getattr(r, f'fg_diff_{k}'), (d.fg_diff * d.units).sum() / d.units.sum(), atol=1e-6)

def _check_consistency(out):
    lm = pd.read_csv(out/'framework_layermem.csv')
    pr = pd.read_csv(out/'framework_profiles.csv')
    assert set(pr.set) == {'candidates', 'extra', 'candidates_minus_extra'} and len(pr) == 2 * 3 * 5        # 2 families x 3 pairs x 5 profiles
    assert pr[['spearman', 'kendall']].stack().between(-1, 1).all() and pr.filter(regex='^p_').stack().between(0, 1).all()
    r = pr[(pr.arch == 'resnet9') & (pr.set == 'extra') & (pr.measure == 'layermem') & (pr.a == 'simclr') & (pr.b == 'dino')].iloc[0]
    x, y = (lm[(lm.arch == 'resnet9') & (lm.method == m)].layermem_extra.values for m in ('simclr', 'dino'))
    np.testing.assert_allclose([r.spearman, r.kendall], [stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic], atol=1e-9)
    ov = pd.read_csv(out/'framework_overlap.csv')
    assert len(ov) == 2 * 2 * 6 and (ov.k == 30).all() and (ov.chance == 50.).all()                      # k = 30 of 60 points
    assert ov.overlap.between(0, 100).all() and ov.tau.between(-1, 1).all() and ((ov.a == ov.b).sum() == 2 * 2 * 3)

def test_frameworks_chapter_smoke(runs):
    out = runs/'out'
    r = papermill(runs/NB, 'preset', 'smoke', 'seed', 1, 'out_dir', out)
    assert r.returncode == 0, _error(r)
    _check_tables(out); _check_recipes(out); _check_layermem(out); _check_vit(out); _check_consistency(out); _check_depth(out)
    rec = json.loads((out/'14_frameworks.run.json').read_text())['config']
    assert rec['chapter'] == '14_frameworks' and rec['parameters']['vit_methods'] == ['simclr', 'dino', 'mae']
    pairs = sorted((runs/'runs'/'pairs').glob('*/f.pt')); stamp = [p.stat().st_mtime_ns for p in pairs]
    assert len(pairs) == 6, pairs                                            # one per framework (the notebook's own test uses a temporary cache)
    r = papermill(runs/('again-' + NB), 'preset', 'smoke', 'seed', 1, 'out_dir', out, yaml=['vit_methods: [mae]', 'resnet_methods: [dino]'])
    assert r.returncode == 0, _error(r)                                      # a subset of frameworks: cached pairs, nothing retrained
    assert [p.stat().st_mtime_ns for p in pairs] == stamp and len(list((runs/'runs'/'pairs').glob('*/f.pt'))) == len(pairs)
    assert pd.read_csv(out/'framework_recipes.csv').method.tolist() == ['dino', 'mae']

@pytest.mark.parametrize('params, yaml, message', [
    (('arch', 'vit_tiny'), (), 'pass those instead of -p arch'),
    ((), ('resnet_methods: [mae]',), 'only a ViT has'),
    ((), ('vit_methods: mae',), 'Parameter vit_methods must be like'),
])
def test_bad_framework_parameters(runs, params, yaml, message):
    r = papermill(runs/'bad.ipynb', 'preset', 'smoke', *params, yaml=yaml)
    assert r.returncode != 0 and message in (r.stdout + r.stderr), _error(r)

def test_recipe_search_rejects_unknown_names(runs):
    "The recipe search (13_recipes) names the searches a preset has when asked for one it lacks."
    cmd = [sys.executable, '-m', 'papermill', '-k', 'python3', str(ROOT/'nbs'/'13_recipes.ipynb'), str(runs/'bad14a.ipynb'),
           '-p', 'preset', 'smoke', '-y', 'searches: [vit-dino]']
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode != 0 and "Unknown searches ['vit-dino']: choose from resnet-simclr, vit-simclr" in r.stdout + r.stderr, _error(r)
