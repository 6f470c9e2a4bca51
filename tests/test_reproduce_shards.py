"""A grid spread over slices gives the tables of the serial grid: `memloc-reproduce --shard i/n` by hand (the last
slice aggregates) and `--submit n` through submitit's local executor, against one serial `memloc-reproduce`."""
import pandas as pd
import pytest
from memloc.chapters.reproduce import reproduce, reproduce_main, submit

GRID = dict(preset='smoke', datasets=None, seeds=[0, 1], chapters=['09_layermem'])

@pytest.fixture(scope='module')
def serial(tmp_path_factory):
    "The serial smoke grid (09_layermem, 2 seeds): its figures root. Pairs go to a run cache the sharded runs share."
    tmp = tmp_path_factory.mktemp('grid')
    mp = pytest.MonkeyPatch(); mp.setenv('MEMLOC_RUNS', str(tmp/'runs'))
    reproduce(**GRID, root=tmp/'serial')
    yield tmp
    mp.undo()

def _same_tables(a, b):
    "Every CSV under root `a` (aggregated and per seed) exists under `b` with equal contents, and no other."
    ca = sorted(p.relative_to(a) for p in a.rglob('*.csv')); cb = sorted(p.relative_to(b) for p in b.rglob('*.csv'))
    assert ca == cb and len(ca) > 5, (ca, cb)
    for p in ca: pd.testing.assert_frame_equal(pd.read_csv(a/p), pd.read_csv(b/p), check_exact=True, obj=str(p))

def _cli(root, *extra): reproduce_main(['--preset', 'smoke', '--seeds', '0', '1', '--chapters', '09_layermem', '--root', str(root), *extra])

def test_shards_by_hand_then_the_last_aggregates(serial, monkeypatch, capsys):
    monkeypatch.setenv('MEMLOC_RUNS', str(serial/'runs'))
    root = serial/'shards'
    _cli(root, '--shard', '1/2')                                  # seed 1 only; seed 0 missing: no tables yet
    out = capsys.readouterr().out
    assert '09_layermem synthetic seed 1: ran' in out and 'still missing (09_layermem synthetic seed 0)' in out, out
    assert not (root/'smoke'/'synthetic'/'layermem.csv').exists()
    with pytest.raises(SystemExit, match='1 run\\(s\\) of the grid have not finished: 09_layermem synthetic seed 0'):
        _cli(root, '--aggregate-only')
    _cli(root, '--shard', '0/2')                                  # the last slice: aggregates
    assert (root/'smoke'/'synthetic'/'layermem.csv').exists()
    _same_tables(serial/'serial', root)

def test_submitit_local_executor(serial, monkeypatch):
    import submitit  # noqa: F401 -- .ci/setup installs memloc[cluster]: missing, this test must fail, not skip
    monkeypatch.setenv('MEMLOC_RUNS', str(serial/'runs'))
    logs = []
    tables = submit(2, **GRID, root=serial/'submitit', folder=serial/'jobs', cluster='local', log=logs.append, timeout_min=20)
    assert 'submitted 2 slice(s) to local' in logs[0], logs
    assert tables['synthetic']['layermem'].n_seeds.tolist() == [2] * 8
    _same_tables(serial/'serial', serial/'submitit')
