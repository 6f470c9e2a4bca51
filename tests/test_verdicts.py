"The README's verdicts are what the committed seed-level grid gives: regenerated from the per-seed tables, compared."
import json
import pandas as pd
import pytest
from conftest import ROOT
from memloc.chapters.verdicts import (grid_runs, retrain_runs, training_noise, seed_effects, verdicts, verdict_markdown,
                                      readme_verdicts, read_table, CONFIRMATION_SEEDS, CHOICE_SEEDS, HYPOTHESES, RETRAIN_SEEDS)

FIG = ROOT/'figures'

@pytest.fixture(scope='module')
def grid():
    runs = grid_runs('quick', root=FIG)
    v = verdicts(seed_effects(runs)); v.attrs['seeds'] = sorted(runs)
    retrains = retrain_runs('quick', root=FIG)
    assert sorted(retrains) == list(RETRAIN_SEEDS), 'the retrainings of the first confirmation seed are committed'
    v.attrs['noise'] = training_noise(runs, retrains)
    return runs, v

def test_grid_is_the_confirmation_seeds(grid):
    runs, _ = grid
    assert sorted(runs) == list(CONFIRMATION_SEEDS) and len(runs) >= 10
    assert not set(CHOICE_SEEDS) & set(runs)                     # no seed that chose the preset tests it
    for s, d in runs.items():                                     # every run is the default quick configuration
        for ch in ('09_layermem', '10_unitmem'):
            p = json.loads((d/f'{ch}.run.json').read_text())['config']['parameters']
            assert p['seed'] == s and p['preset'] == 'quick' and p['train_seed'] is None, (ch, s)

def test_readme_table_is_generated(grid):
    _, v = grid
    assert readme_verdicts((ROOT/'README.md').read_text()) == verdict_markdown(v).strip('\n')

def test_committed_verdicts_match(grid):
    runs, v = grid
    old = pd.read_csv(FIG/'quick'/'fashion_mnist'/'verdicts.csv')
    assert old.key.tolist() == [h.key for h in HYPOTHESES] and old.verdict.tolist() == v.verdict.tolist()
    pd.testing.assert_series_equal(old.effect, v.effect, check_exact=False, atol=1e-12)

def test_canary_control_gates_the_verdicts(grid):
    runs, v = grid
    c = v.attrs['control']
    assert c['n'] == len(runs) and c['ok'] == (c['p'] < 0.05)
    assert (set(v.verdict) == {'underpowered'}) == (not c['ok'])       # no verdict without the positive control
    detected = sum(bool(read_table(d, 'canaries').detected.iloc[-1]) for d in runs.values())
    assert c['detected_seeds'] == detected

def test_held_out_points_come_from_the_training_split(grid):
    runs, _ = grid
    for s, d in runs.items():       # only the seed-level design measures test-split points *beside* S_E from the training pool
        rec = json.loads((d/'09_layermem.run.json').read_text())['config']['parameters']
        assert rec['n_canaries'] > 0 and rec['n_extra'] > 0
        shift = read_table(d, 'distribution_shift')
        assert {'mean_extra', 'mean_test', 'test_minus_extra'} <= set(shift.columns)
