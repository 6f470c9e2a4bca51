"The interventions chapter runs end to end through papermill (smoke preset) and writes tables whose values agree with each other."
import json, math
import numpy as np, pandas as pd
import pytest
from test_chapters import papermill, _error, _tables

NB = '15_interventions.ipynb'
UNITS = [4, 8, 8, 8, 16, 32, 32, 32]       # the smoke ResNet9 (width 0.125): units per block
TABLES = ['ab_pair', 'layer_ranking', 'replacement_runs', 'layer_replacement', 'finetune_runs', 'targeted_finetuning',
          'pruning_runs', 'pruning', 'unit_check', 'unit_check_summary']

@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    "One smoke run of the chapter (seed 1) with a private run cache: (output folder, run cache, papermill result)."
    tmp = tmp_path_factory.mktemp('iv')
    mp = pytest.MonkeyPatch(); mp.setenv('MEMLOC_RUNS', str(tmp/'runs')); mp.setenv('MEMLOC_FIGURES', str(tmp/'figures'))
    r = papermill(NB, tmp/NB, 'preset', 'smoke', 'seed', 1, 'out_dir', tmp/'out')
    mp.undo()
    return tmp/'out', tmp/'runs', r

def _read(out, name): return pd.read_csv(out/f'{name}.csv')

def test_runs_and_writes_every_table(smoke):
    out, runs, r = smoke
    assert r.returncode == 0, _error(r)[-3000:]
    _tables(out, TABLES)
    rec = json.loads((out/'15_interventions.run.json').read_text())['config']
    assert rec['chapter'] == '15_interventions' and rec['parameters']['seed'] == 1 and rec['parameters']['n_random_draws'] is None
    assert len(list((runs/'pairs').glob('*/f.pt'))) == 1 and len(list((runs/'encoder_b').glob('*/encoder.pt'))) == 1

def test_pair_and_rankings(smoke):
    out = smoke[0]
    ab = _read(out, 'ab_pair')
    assert ab.encoder.tolist() == ['A', 'B', 'init'] and ab[['acc_a', 'acc_b']].stack().between(0, 1).all()
    lr = _read(out, 'layer_ranking')
    assert len(lr) == 8 and lr.layer.iloc[0] == 'prep' and lr.layer.iloc[-1] == 'layer3_residual2'
    np.testing.assert_allclose(lr.layermem_corrected, lr.layermem - lr.layermem_extra, atol=1e-12)
    assert lr.delta_layermem.iloc[0] == lr.layermem.iloc[0]                      # the first layer's input is the image
    assert lr.drop(columns='layer').abs().max().max() <= 2.

def _top(lr, col, k, highest=True):
    order = sorted(range(len(lr)), key=lambda i: ((-1 if highest else 1) * lr[col].iloc[i], i))[:k]
    return ' '.join(lr.layer.iloc[i] for i in sorted(order))

def test_layer_replacement(smoke):
    out = smoke[0]
    ab, lr, runs, t = _read(out, 'ab_pair').set_index('encoder'), _read(out, 'layer_ranking'), _read(out, 'replacement_runs'), _read(out, 'layer_replacement')
    np.testing.assert_allclose(runs.acc_a + runs.drop_a, ab.acc_a['A'], atol=1e-9)            # drops are against A itself
    np.testing.assert_allclose(runs.acc_b - runs.gain_b, ab.acc_b['A'], atol=1e-9)
    assert (runs.layers.str.split().str.len() == runs.n_layers).all()
    for k, d in runs.groupby('n_layers'):
        rows = d.set_index('choice')
        assert rows.layers['layermem'] == _top(lr, 'layermem', k) and rows.layers['least_layermem'] == _top(lr, 'layermem', k, False)
        assert rows.layers['delta_layermem'] == _top(lr, 'delta_layermem', k)
        assert rows.layers['layermem_corrected'] == _top(lr, 'layermem_corrected', k)
        rnd = d[d.choice == 'random']
        assert len(rnd) == min(3, math.comb(8, k)) and rnd.layers.is_unique                  # distinct random draws
    for _, d in runs.groupby('layers'): assert d.acc_a.nunique() == 1 and d.acc_b.nunique() == 1   # the same layers, the same encoder
    means = runs.groupby(['n_layers', 'choice'], sort=False)[['acc_a', 'acc_b', 'drop_a', 'gain_b']].mean().reset_index()
    np.testing.assert_allclose(t[['acc_a', 'acc_b', 'drop_a', 'gain_b']].values, means[['acc_a', 'acc_b', 'drop_a', 'gain_b']].values, atol=1e-9)
    rnd = t.choice == 'random'
    assert t.loc[rnd, 'p_drop_a_gt_random'].isna().all() and t.loc[~rnd].filter(regex='^p_').stack().between(0, 1).all()
    assert (t.loc[~rnd, 'p_drop_a_gt_random_holm'] >= t.loc[~rnd, 'p_drop_a_gt_random'] - 1e-12).all()
    np.testing.assert_allclose(t.loc[~rnd, 'p_gain_b_gt_random'] + t.loc[~rnd, 'p_gain_b_lt_random'], 1., atol=1e-9)

def test_targeted_finetuning(smoke):
    out = smoke[0]
    ab, lr, runs, t = _read(out, 'ab_pair').set_index('encoder'), _read(out, 'layer_ranking'), _read(out, 'finetune_runs'), _read(out, 'targeted_finetuning')
    for k, d in runs.groupby('n_layers'):
        assert d.set_index('choice').layers['last'] == ' '.join(lr.layer.iloc[-k:])
    assert set(t.choice) == {'layermem', 'delta_layermem', 'layermem_corrected', 'least_layermem', 'last', 'random'}
    np.testing.assert_allclose(t[t.choice == 'last'].acc_b_minus_last, 0., atol=1e-12)
    np.testing.assert_allclose(t.drop_a, ab.acc_a['A'] - t.acc_a, atol=1e-9); np.testing.assert_allclose(t.gain_b, t.acc_b - ab.acc_b['A'], atol=1e-9)
    assert runs[['acc_a', 'acc_b']].stack().between(0, 1).all() and np.isfinite(runs.loss).all()

def test_pruning(smoke):
    out = smoke[0]
    runs, t = _read(out, 'pruning_runs'), _read(out, 'pruning')
    for (scope, fr), d in runs.groupby(['scope', 'fraction']):
        want = math.floor(fr * sum(UNITS) + .5) if scope == 'global' else sum(math.floor(fr * u + .5) for u in UNITS)
        assert (d.n_pruned == want).all(), (scope, fr)                                        # every mode prunes as many units
        assert (d['mode'] == 'random').sum() == 3
    assert len(t) == 2 * 2 * 3 and t[t['mode'] == 'random'].n_draws.eq(3).all()
    np.testing.assert_allclose(t.drop_b, runs.groupby(['scope', 'fraction', 'mode'], sort=False).drop_b.mean().values, atol=1e-9)
    assert t.loc[t['mode'] != 'random'].filter(regex='^p_').stack().between(0, 1).all()

def test_single_unit_check(smoke):
    out = smoke[0]
    c, s = _read(out, 'unit_check'), _read(out, 'unit_check_summary')
    assert c.others_unchanged.all() and (c.others_max_abs_delta == 0).all()             # every other unit bit-identical
    np.testing.assert_allclose(c.delta, c.unitmem_after - c.unitmem_before, atol=1e-6)
    assert (c.hit == (c.argmax_after == c.point)).all() and (c.point != c.argmax_before).all()
    assert c.rank_before.between(1, c.n_points).all() and c.rank_after.between(1, c.n_points).all()
    assert ((c.rank_after == 1) | ~c.hit).all()                                          # a hit is the unit's top point
    assert set(c.which) == {'highest', 'lowest'} and len(c) == 2 * 2 * 2              # 2 layers x 2 ends x 2 points
    hi = c[c.which == 'highest'].groupby('layer').unitmem_before.first(); lo = c[c.which == 'lowest'].groupby('layer').unitmem_before.first()
    assert (hi >= lo).all()
    assert (s.n_checks == 2).all()
    np.testing.assert_allclose(s.frac_hit, c.groupby(['layer', 'which'], sort=False).hit.mean().values)
    np.testing.assert_allclose(s.chance_hit, 1 / c.n_points.iloc[0])

def test_bad_chapter_parameter(tmp_path, monkeypatch):
    monkeypatch.setenv('MEMLOC_RUNS', str(tmp_path/'runs'))
    r = papermill(NB, tmp_path/'bad.ipynb', 'preset', 'smoke', 'dataset_b', 'mnist')
    assert r.returncode != 0 and 'Unknown dataset_b' in _error(r)
