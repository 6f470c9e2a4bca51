"The privacy chapter runs end to end through papermill (smoke preset), writes tables whose values agree with each other, reuses its cached DP pairs, and refuses budgets without the non-DP baseline."
import json, math, os, subprocess, sys
import numpy as np, pandas as pd
from conftest import ROOT
from test_chapters import papermill, _error, _tables

TABLES = ['privacy_budget', 'privacy_unitmem_layers', 'privacy_unitmem_units', 'privacy_sslmem_by_set', 'privacy_layermem',
          'privacy_downstream', 'privacy_comparisons', 'privacy_tradeoff', 'privacy_tradeoff_corr']
EPS = [math.inf, 8., 4., 1.]

def _check_budget(out):
    b = pd.read_csv(out/'privacy_budget.csv')
    assert b.epsilon.tolist() == [e for e in EPS for _ in 'fg'] and b.encoder.tolist() == ['f', 'g'] * 4
    dp, plain = b[np.isfinite(b.epsilon)], b[np.isinf(b.epsilon)]
    assert (dp.guarantee == 'heuristic').all() and dp.guarantee_reason.str.contains('Kong et al.').all()   # SimCLR's loss couples the batch
    assert (plain.guarantee == 'none').all() and np.isinf(plain.epsilon_prv).all() and (plain.noise_multiplier == 0).all()
    assert (dp.epsilon_prv <= dp.epsilon).all() and (dp.epsilon_prv > 0.9 * dp.epsilon).all()          # spent: just below the target
    assert (dp.epsilon_rdp >= dp.epsilon_prv - 0.02).all()                                              # RDP: the looser bound
    sig = dp.groupby('epsilon', sort=False).noise_multiplier.first()
    assert (np.diff(sig.values) > 0).all(), sig                                                         # less budget, more noise
    assert (dp.steps == 2).all() and (dp.sample_rate == 1).all()                                        # 60 images, batch 64, 2 epochs

def _check_unitmem(out):
    t, u = pd.read_csv(out/'privacy_unitmem_layers.csv'), pd.read_csv(out/'privacy_unitmem_units.csv')
    assert t.epsilon.unique().tolist() == EPS and len(t) == 4 * 8 and set(u.epsilon) == set(EPS)
    for col in ('f', 'g', 'init', 'f_extra', 'g_extra'):
        means = u.groupby(['epsilon', 'layer'], sort=False)[f'unitmem_{col}'].mean()
        np.testing.assert_allclose(t[f'mean_{col}'], means.loc[list(zip(t.epsilon, t.layer))].values, rtol=1e-5)
    d = (u.unitmem_f - u.unitmem_g).groupby([u.epsilon, u.layer], sort=False).mean()
    np.testing.assert_allclose(t.fg_diff, d.loc[list(zip(t.epsilon, t.layer))].values, atol=1e-6)
    np.testing.assert_allclose(t.did_diff, t.fg_diff - t.extra_fg_diff, atol=1e-6)
    assert (t.groupby('layer').mean_init.nunique() == 1).all()                   # one untrained encoder for every budget
    assert u.filter(like='unitmem_').stack().between(0, 1).all()
    for c in ('p_fg_paired', 'p_did_paired', 'p_f_init_paired'): assert (t[f'{c}_holm'] >= t[c] - 1e-12).all()
    c = pd.read_csv(out/'privacy_comparisons.csv')
    assert c.comparison.unique().tolist() == ['no DP > 8', 'no DP > 4', 'no DP > 1', '8 > 4', '4 > 1']
    assert set(c.measure) == {'unitmem_f', 'unitmem_f_minus_g', 'sslmem_did'} and c[['p', 'p_holm']].stack().between(0, 1).all()
    um = c[(c.measure == 'unitmem_f') & (c.comparison == '8 > 4')].set_index('layer')['diff']
    ref = u[u.epsilon == 8.].set_index(['layer', 'unit']).unitmem_f - u[u.epsilon == 4.].set_index(['layer', 'unit']).unitmem_f
    np.testing.assert_allclose(um.values, ref.groupby(level='layer', sort=False).mean().loc[um.index].values, atol=1e-6)

def _check_sslmem(out):
    s = pd.read_csv(out/'privacy_sslmem_by_set.csv')
    np.testing.assert_allclose(s.candidates_minus_extra, s.mean_candidates - s.mean_extra, atol=1e-6)
    assert {'raw_candidates_minus_extra', 'raw_candidates_minus_independent'} <= set(s.columns) and len(s) == 4 * 8
    assert (np.sign(s.raw_candidates_minus_extra) == np.sign(s.candidates_minus_extra)).all()   # normalising divides by a positive range
    lm = pd.read_csv(out/'privacy_layermem.csv')
    assert {'layermem', 'layermem_top', 'layermem_extra', 'layermem_least_extra'} <= set(lm.columns) and len(lm) == 4 * 8
    assert lm.filter(like='layermem').abs().max().max() <= 1

def _check_tradeoff(out):
    d, t = pd.read_csv(out/'privacy_downstream.csv'), pd.read_csv(out/'privacy_tradeoff.csv')
    assert d[['linear', 'knn', 'linear_init']].stack().between(0, 1).all() and d.linear_init.nunique() == 1
    np.testing.assert_allclose(t.linear, d[d.encoder == 'f'].linear.values)
    u = pd.read_csv(out/'privacy_unitmem_layers.csv')
    np.testing.assert_allclose(t.unitmem_f, u[u.layer == u.layer.iloc[-1]].mean_f.values, rtol=1e-6)
    c = pd.read_csv(out/'privacy_tradeoff_corr.csv')
    assert (c.n == 4).all() and c.rho.dropna().between(-1, 1).all() and (c.p.dropna() >= 1 / 24 - 1e-12).all()

def test_privacy_chapter_smoke(runs):
    out = runs/'out'
    r = papermill('16_privacy.ipynb', runs/'p.ipynb', 'preset', 'smoke', 'seed', 1, 'out_dir', out)
    assert r.returncode == 0, _error(r)[-3000:]
    _tables(out, TABLES)
    for t in TABLES: assert 'guarantee' in pd.read_csv(out/f'{t}.csv').columns, t        # every table says what epsilon means
    _check_budget(out); _check_unitmem(out); _check_sslmem(out); _check_tradeoff(out)
    rec = json.loads((out/'16_privacy.run.json').read_text())['config']
    assert rec['chapter'] == '16_privacy' and rec['parameters']['epsilons'] == [None, 8.0, 4.0, 1.0]
    pairs = sorted((runs/'runs'/'pairs').glob('*/f.pt')); stamp = [p.stat().st_mtime_ns for p in pairs]
    assert len(pairs) == 4, pairs                                                         # one pair per budget
    r = papermill('16_privacy.ipynb', runs/'again.ipynb', 'preset', 'smoke', 'seed', 1, 'out_dir', out)
    assert r.returncode == 0, _error(r)[-3000:]
    assert [p.stat().st_mtime_ns for p in pairs] == stamp and len(list((runs/'runs'/'pairs').glob('*/f.pt'))) == 4

def test_privacy_budgets_need_the_baseline(runs):
    cmd = [sys.executable, '-m', 'papermill', '-k', 'python3', str(ROOT/'nbs'/'16_privacy.ipynb'), str(runs/'bad.ipynb'),
           '-p', 'preset', 'smoke', '-y', 'epsilons: [8.0, 1.0]']
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode != 0 and 'epsilons must include None (no DP)' in _error(r), _error(r)[-3000:]
