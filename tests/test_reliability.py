"""Bad input and faults: every case of the base issue's audit gets a clear error, a correct result, or loses nothing.

Grouped as in the audit: security, runs that overwrite each other, silent wrong results, raw crashes, data loss."""
import copy, json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from conftest import ROOT
from memloc.core import safe_load, UnsafeFileError, runs_dir, config_hash, atomic_save, set_seed
from memloc.data import synthetic, memorization_split, Split, TensorData
from memloc.encoders import create_encoder
from memloc.ssl import SimCLR
from memloc.train import train, train_pair, pair_dir
from memloc.sslmem import alignment, sslmem
from memloc.layermem import layermem
from memloc.unitmem import unitmem, classmem
from memloc.chapters.config import resolve_config, default_out_dir
from memloc.testing import tiny_pair, tiny_encoder

TINY = dict(epochs=1, batch_size=16, encoder_kw=dict(width=0.125), method_kw=dict(proj_dim=16, hidden_dim=32),
            device='cpu', progress=False)

def _tiny_pair_setup():
    data = synthetic(n=60, n_outliers=2, seed=0)
    return data, memorization_split(data, n_candidates=10, n_independent=10, seed=0)

# --- security ---------------------------------------------------------------------------------------------------

class _Evil:
    "A pickle whose `__reduce__` creates a file when unpickled."
    def __init__(self, target): self.target = target
    def __reduce__(self): return (Path.touch, (Path(self.target),))

def test_crafted_checkpoint_in_run_cache_is_refused(runs):
    data, split = _tiny_pair_setup()
    pair = train_pair(data, split, **TINY)
    target = runs/'pwned'
    torch.save({'encoder': _Evil(target), 'epoch': 1}, pair.dir/'f.pt')          # planted in the run cache
    with pytest.raises(UnsafeFileError, match='Refused to load .*f.pt.*could run arbitrary code'):
        train_pair(data, split, **TINY)                                          # a chapter resuming the pair
    assert not target.exists()

def test_no_unsafe_loads_in_the_package():
    hits = [f'{p.name}:{i}' for p in (ROOT/'memloc').glob('*.py') for i, l in enumerate(p.read_text().splitlines(), 1)
            if 'weights_only=False' in l]
    assert hits == []

# --- runs that overwrite each other ------------------------------------------------------------------------------

def test_every_result_changing_setting_changes_the_output_folder():
    base = default_out_dir(resolve_config(dict(preset='quick')))
    others = [default_out_dir(resolve_config(dict(preset='quick', **kw))) for kw in
              (dict(protocol='official'), dict(arch='resnet18'), dict(method='simsiam'), dict(width=0.25),
               dict(epochs=100), dict(n_aug_sslmem=5), dict(top=20), dict(n_candidates=100))]
    assert len({base, *others}) == 1 + len(others), others

def test_aggregate_refuses_runs_of_different_settings(tmp_path):
    from memloc.chapters.reproduce import check_runs
    dirs = {}
    for s, proto in ((0, 'paper'), (1, 'official')):                             # seed 1 was run with another protocol
        d = tmp_path/f'seed{s}'; d.mkdir(); dirs[s] = d
        (d/'09_layermem.run.json').write_text(json.dumps({'config': dict(chapter='09_layermem', wall_s=1.,
            parameters=dict(seed=s, out_dir=str(d), protocol=proto, preset='quick'))}))
    with pytest.raises(ValueError, match=r"differ in \['protocol'\], not only in the seed"): check_runs(dirs)

# --- silent wrong results ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('dtype, eps', [(torch.float16, 0.01), (torch.bfloat16, 0.05)])
def test_half_precision_encoders_give_float32_numbers(dtype, eps):
    f, g, x = tiny_pair()
    s32 = sslmem(f, g, x, n_aug=2, norm='none'); s16 = sslmem(copy.deepcopy(f).to(dtype), copy.deepcopy(g).to(dtype), x, n_aug=2, norm='none')
    u32, u16 = unitmem(f, x, n_aug=2), unitmem(copy.deepcopy(f).to(dtype), x, n_aug=2)
    for l in s32:
        assert torch.isfinite(s16[l]).all() and (s16[l] - s32[l]).abs().max() < eps, l
        assert torch.isfinite(u16[l]).all() and (u16[l] - u32[l]).abs().max() < eps, l

@pytest.mark.parametrize('call', [
    lambda f, g, x: alignment(f, x, batch_size=-1), lambda f, g, x: sslmem(f, g, x, batch_size=0),
    lambda f, g, x: unitmem(f, x, batch_size=-3), lambda f, g, x: classmem(f, x, torch.arange(16) % 2, batch_size=-1)])
def test_bad_batch_size(call):
    f, g, x = tiny_pair()
    with pytest.raises(ValueError, match='batch_size .* must be a positive int or None'): call(f, g, x)

@pytest.mark.parametrize('call', [lambda f, g, x: sslmem(f, g, x, n_aug=0), lambda f, g, x: layermem(f, g, x, top=2, n_aug=0),
                                  lambda f, g, x: alignment(f, x, n_aug=-1), lambda f, g, x: unitmem(f, x, n_aug=-1)])
def test_bad_n_aug(call):
    f, g, x = tiny_pair()
    with pytest.raises(ValueError, match='n_aug .* must be an int >='): call(f, g, x)

def test_one_image_cannot_be_normalised():
    f, g, x = tiny_pair()
    with pytest.raises(ValueError, match='at least 2 images'): sslmem(f, g, x[:1])
    with pytest.raises(ValueError, match='at least 2 images'): layermem(f, g, x[:1], top=1)
    assert sslmem(f, g, x[:1], n_aug=1, norm='none')['prep'].shape == (1,)          # the raw score of one point is fine

@pytest.mark.parametrize('width', [0, -1, 'x'])
def test_bad_width(width):
    with pytest.raises(ValueError, match='must be a number > 0'): create_encoder('resnet9', width=width)

@pytest.mark.parametrize('epochs', [0, -2, 1.5])
def test_bad_epochs(epochs):
    with pytest.raises(ValueError, match='epochs must be a positive int'):
        train(tiny_encoder(), SimCLR(), synthetic(16, n_outliers=0), epochs=epochs, progress=False)

def test_bad_labels():
    x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(TypeError, match='integer class labels'): TensorData(x, torch.tensor([0., 1., 0., 1.]))
    with pytest.raises(ValueError, match=r'outside \[0, 2\)'): TensorData(x, torch.tensor([0, 1, 7, 1], dtype=torch.uint8), classes=['a', 'b'])
    f, g, xs = tiny_pair()
    with pytest.raises(TypeError, match='integer class labels'): classmem(f, xs, (torch.arange(16) % 2).float())

def test_bad_split_indices_and_a_split_of_other_data():
    with pytest.raises(TypeError, match='integer indices'): Split(torch.tensor([0., 1.]), [2], [3])
    data, split = _tiny_pair_setup()
    with pytest.raises(ValueError, match='made for other data'): train_pair(synthetic(n=60, n_outliers=2, seed=9), split, **TINY)
    with pytest.raises(ValueError, match='training set of 60 points'): train_pair(synthetic(n=80, n_outliers=2), split, **TINY)

# --- raw crashes -------------------------------------------------------------------------------------------------

def test_parameter_of_the_wrong_type_in_a_chapter(runs):
    cmd = [sys.executable, '-m', 'papermill', '-k', 'python3', str(ROOT/'nbs'/'09_layermem.ipynb'), str(runs/'o.ipynb'),
           '-p', 'preset', 'smoke', '-p', 'seed', 'abc']
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode != 0 and "Parameter seed must be an int >= 0, not 'abc' (str): pass e.g. -p seed 1" in r.stdout + r.stderr
    with pytest.raises(TypeError, match=r'Parameter epochs must be an int >= 1, not 2.5 \(float\)'): resolve_config(dict(epochs=2.5))

def test_classmem_without_labels():
    f, g, x = tiny_pair()
    with pytest.raises(ValueError, match='ClassMem needs class labels: pass labels='): classmem(f, x)

def test_layer_that_never_runs_with_an_explicit_batch_size():
    class Skips(torch.nn.Module):
        def __init__(self): super().__init__(); self.used, self.unused = torch.nn.Conv2d(3, 2, 1), torch.nn.Conv2d(3, 2, 1)
        def forward(self, x): return self.used(x).relu()
    x = torch.rand(4, 3, 8, 8)
    for call in (lambda: unitmem(Skips(), x, layers=['used', 'unused'], n_aug=1, batch_size=2),
                 lambda: alignment(Skips(), x, layers=['unused'], n_aug=1, batch_size=2)):
        with pytest.raises(ValueError, match=r"Layers \['unused'\] did not run in the forward pass of Skips"): call()

def test_corrupt_run_record_names_the_file(tmp_path):
    from memloc.chapters.reproduce import read_run_record
    p = tmp_path/'10_unitmem.run.json'; p.write_text('{"config": ')
    with pytest.raises(ValueError, match=f'{p} cannot be read.*Delete it'): read_run_record(p)

def test_reproduce_outside_the_repository(tmp_path, monkeypatch):
    from memloc.chapters import reproduce
    r = subprocess.run([sys.executable, '-c', 'from memloc.chapters.reproduce import chapters_dir; print(chapters_dir())'],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == str(ROOT/'nbs'), r.stderr      # found from the installed package
    monkeypatch.setattr(reproduce, 'repo_root', lambda: None)                          # a copy without the notebooks
    with pytest.raises(FileNotFoundError, match='runs the chapter notebooks in nbs/ of the memloc repository'):
        reproduce.chapters_dir()

def test_runs_dir_that_is_a_file(tmp_path, monkeypatch):
    (tmp_path/'f').write_text('x'); monkeypatch.setenv('MEMLOC_RUNS', str(tmp_path/'f'))
    with pytest.raises(NotADirectoryError, match=r'is a file, but memloc needs a folder there \(\$MEMLOC_RUNS'): runs_dir()

# --- data loss on kill, leftovers, cache keys --------------------------------------------------------------------

def test_a_kill_between_snapshot_and_checkpoint_loses_nothing(tmp_path, monkeypatch):
    "The process dies right after the first file of epoch 2 is written: a rerun must still end with every snapshot."
    import memloc.train as tr
    data = synthetic(n=48, n_outliers=2, seed=0)
    def run(ckpt):
        set_seed(0)                                                   # the heads initialise from the global RNG
        return train(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32), data, epochs=3, batch_size=16,
                     ckpt=ckpt, snapshot_epochs=(1, 2, 3), device='cpu', progress=False)
    full = run(tmp_path/'full.pt')
    real, calls = tr.atomic_save, []
    def dying(obj, path):
        real(obj, path); calls.append(Path(path).name)
        if len(calls) == 3: raise KeyboardInterrupt('killed')   # epoch 1: two files; epoch 2: killed after its first
    monkeypatch.setattr(tr, 'atomic_save', dying)
    with pytest.raises(KeyboardInterrupt): run(tmp_path/'cut.pt')
    monkeypatch.setattr(tr, 'atomic_save', real)
    rec = run(tmp_path/'cut.pt')                                  # the same call again resumes
    assert sorted(rec.snapshots) == [1, 2, 3]
    for e in (1, 2, 3):
        for k, v in safe_load(full.snapshots[e]).items(): assert torch.equal(v, safe_load(rec.snapshots[e])[k]), (e, k)

def test_leftover_temporary_files_are_removed(runs):
    data, split = _tiny_pair_setup()
    pair = train_pair(data, split, **TINY)
    dead = subprocess.Popen(['true']); dead.wait()
    import socket
    stale = pair.dir/f'.f.pt.memloc-{dead.pid}@{socket.gethostname()}.k1ll3d.tmp'; stale.write_bytes(b'half a checkpoint')
    train_pair(data, split, **TINY)
    assert not stale.exists()

def test_leftover_temporary_files_in_a_figures_folder_are_removed(tmp_path):
    "A table write killed mid-way leaves a hidden *.tmp beside the tables; the next write into that folder removes it."
    import socket, pandas as pd
    from memloc.report import save_table
    dead = subprocess.Popen(['true']); dead.wait()
    out = tmp_path/'figures'/'quick'/'seed0'; out.mkdir(parents=True)
    stale = out/f'.layermem.csv.memloc-{dead.pid}@{socket.gethostname()}.k1ll3d.tmp'; stale.write_text('half a table')
    save_table(pd.DataFrame(dict(layer=['a'], layermem=[0.1])), 'layermem', out_dir=out)
    assert not stale.exists() and (out/'layermem.csv').exists()

def test_augmentation_in_the_cache_key_is_stable_across_processes():
    code = ('from memloc.core import config_hash; from memloc.augment import simclr_aug, grayscale; '
            'print(config_hash({"aug": simclr_aug(32), "fn": grayscale}))')
    outs = {subprocess.run([sys.executable, '-c', code], capture_output=True, text=True).stdout for _ in range(2)}
    assert len(outs) == 1 and len(outs.pop().strip()) == 16
    with pytest.raises(ValueError, match='changes from one process to the next'): config_hash({'aug': lambda x: x})

def test_weights_of_an_older_training_loop_are_not_reused(runs, monkeypatch):
    "A change to the loop that alters the weights bumps LOOP_VERSION, which is part of every cache key."
    import memloc.train as tr
    data, split = _tiny_pair_setup()
    first = train_pair(data, split, **TINY).dir
    monkeypatch.setattr(tr, 'LOOP_VERSION', tr.LOOP_VERSION + 1)
    assert train_pair(data, split, **TINY).dir != first

# --- second round: silent wrong results, unsafe writes and crashes found by a careless user (issue 18) ---------

def test_table_names_stay_in_their_folder(tmp_path):
    import pandas as pd
    from memloc.report import save_table
    for bad in ('../../escape', 'sub/t', '..', ''):
        with pytest.raises(ValueError, match='plain file name'): save_table(pd.DataFrame(dict(a=[1])), bad, out_dir=tmp_path/'figs')
    assert not (tmp_path/'escape.csv').exists()

def test_unit_metrics_refuse_integer_dtypes_and_bad_per_class():
    from memloc.unitmem import unit_activations
    f, g, x = tiny_pair()
    with pytest.raises(ValueError, match='floating dtype'): unit_activations(f, x, n_aug=0, dtype=torch.int64)
    with pytest.raises(ValueError, match='floating dtype'): unitmem(f, x, n_aug=0, rest='median', store_dtype=torch.uint8)
    y = torch.arange(16) % 4
    for bad in (-1, 0, 2.5):
        with pytest.raises(ValueError, match='per_class must be a positive int'): classmem(f, x, y, per_class=bad)

def test_probes_refuse_unlabelled_points_k0_and_unscaled_images():
    from memloc.probe import knn_accuracy, linear_probe
    f, _, x = tiny_pair(); y = torch.arange(16) % 2
    with pytest.raises(ValueError, match='k must be a positive int'): knn_accuracy(f, x, y, x, y, k=0)
    with pytest.raises(ValueError, match='unlabelled'): linear_probe(f, x, y, x, torch.full((16,), -1), epochs=1)
    with pytest.raises(ValueError, match='unlabelled'): linear_probe(f, x, torch.full((16,), -1), x, y, epochs=1)
    with pytest.raises(ValueError, match='unnormalised'): linear_probe(f, x * 255, y, x * 255, y, epochs=1)

def test_calibrate_bn_keeps_statistics_without_images():
    from memloc.train import calibrate_bn
    f = tiny_encoder(); before = copy.deepcopy(f.state_dict())
    with pytest.raises(ValueError, match='empty'): calibrate_bn(f, torch.zeros(0, 3, 32, 32))
    assert all(torch.equal(v, f.state_dict()[k]) for k, v in before.items())

def test_prune_refuses_scores_of_the_wrong_length():
    from memloc.interventions import prune
    f = tiny_encoder()
    with pytest.raises(ValueError, match='values for its 16 units'): prune(f, {'layer2': torch.rand(8)}, 0.5)

def test_train_refuses_late_snapshots_and_bare_tensors(tmp_path):
    data = synthetic(n=32, seed=0)
    with pytest.raises(ValueError, match=r'outside 0\.\.2'):
        train(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32), data, epochs=2, ckpt=tmp_path/'c.pt', snapshot_epochs=(5,), progress=False)
    with pytest.raises(TypeError, match='TensorData'):
        train(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32), torch.rand(10, 3, 32, 32), epochs=1, progress=False)

def test_split_sizes_must_be_ints():
    with pytest.raises(TypeError, match='n_total is a number of points'): memorization_split(100.7, n_candidates=10, n_independent=10)
    with pytest.raises(TypeError, match='n_candidates'): memorization_split(100, n_candidates=10.5, n_independent=10)

def test_empty_layer_list_and_n_total_zero():
    f, g, x = tiny_pair()
    with pytest.raises(ValueError, match='layers is empty'): sslmem(f, g, x, layers=[], n_aug=2)
    with pytest.raises(TypeError, match='n_total must be an int >= 1'): resolve_config(dict(preset='smoke', n_total=0))

def test_crashes_become_clear_errors():
    import pandas as pd
    from torch import nn
    from memloc.unitmem import unitmem_top_vs_least
    from memloc.dp import privacy_spent
    f, g, x = tiny_pair()
    with pytest.raises(ValueError, match='indices reach 99 but there are 16 images'):
        unitmem_top_vs_least(f, g, x, torch.tensor([0, 99]), torch.tensor([1, 2]), n_aug=2)
    al = alignment([f, g], x, ['prep', 'res2'], n_aug=2)
    with pytest.raises(ValueError, match="not the ranking layer 'res2'"):
        layermem(f, g, x, layers=['prep'], alignments=al, rank_alignments=({'prep': al[0]['prep']}, {'prep': al[1]['prep']}), top=4)
    with pytest.raises(ValueError, match=r'delta must lie in \(0, 1\)'): privacy_spent([(1.0, 0.1, 100)], delta=0)
    class _Dict(nn.Module):
        def __init__(self): super().__init__(); self.body = _Inner()
        def forward(self, x): return self.body(x)['feat']
    class _Inner(nn.Module):
        def __init__(self): super().__init__(); self.conv = nn.Conv2d(3, 4, 3)
        def forward(self, x): return {'feat': self.conv(x).mean((2, 3))}
    with pytest.raises(ValueError, match='not a tensor'): alignment([_Dict(), _Dict()], x, ['body'], n_aug=2)
    data = synthetic(n=8, n_outliers=0, seed=0)
    with pytest.raises(ValueError, match='lr must be a number >= 0'): train(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32), data, epochs=1, lr=-1e-3, progress=False)
    with pytest.raises(ValueError, match='at least 2 images per batch'): train(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32), data[:1], epochs=1, progress=False)
    with pytest.raises(ValueError, match='at least 2 images per batch'): train(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32), data, epochs=1, batch_size=1, progress=False)
    with pytest.raises(ValueError, match=r'seed must be an int in \[0, 2\*\*40\)'): train(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32), data, epochs=1, seed=10**15, progress=False)
    with pytest.raises(ValueError, match='below 2\\*\\*40'): resolve_config(dict(preset='quick', seed=10**20))

def test_aggregation_refuses_a_cut_table_and_views_need_an_int_seed(tmp_path):
    import shutil
    from memloc.chapters.reproduce import aggregate
    base = tmp_path/'quick'/'fashion_mnist'
    for s in (10, 11): shutil.copytree(ROOT/'figures'/'quick'/'fashion_mnist'/f'seed{s}', base/f'seed{s}')
    tables = aggregate('quick', 'fashion_mnist', [10, 11], root=tmp_path)
    assert len(tables['sslmem_by_set']) == 8 and 'candidates_minus_independent_ci_low' in tables['sslmem_by_set']
    p = base/'seed11'/'layermem.csv'; lines = p.read_text().splitlines(); p.write_text('\n'.join(lines[:5]) + '\n' + lines[5][:20])
    with pytest.raises(ValueError, match="'layermem' does not hold the same rows in every seed"):
        aggregate('quick', 'fashion_mnist', [10, 11], root=tmp_path)
    f, g, x = tiny_pair()
    with pytest.raises(TypeError, match='seed must be an int'): unitmem(f, x, n_aug=2, seed=None)

def test_out_dir_that_is_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path/'afile').write_text('x')
    with pytest.raises(ValueError, match='is a file, not a folder'): resolve_config(dict(preset='smoke', out_dir=str(tmp_path/'afile')))
