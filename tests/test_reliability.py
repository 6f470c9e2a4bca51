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
    from memloc.chapters.verdicts import CONFIRMATION_SEEDS
    s0, s1 = CONFIRMATION_SEEDS[:2]                                   # two seeds of the committed grid
    for s in (s0, s1): shutil.copytree(ROOT/'figures'/'quick'/'fashion_mnist'/f'seed{s}', base/f'seed{s}')
    tables = aggregate('quick', 'fashion_mnist', [s0, s1], root=tmp_path)
    assert len(tables['sslmem_by_set']) == 8 and 'candidates_minus_independent_ci_low' in tables['sslmem_by_set']
    p = base/f'seed{s1}'/'layermem.csv'
    lines = p.read_text().splitlines()
    p.write_text('\n'.join(lines[:5]) + '\n' + lines[5][:20])
    with pytest.raises(ValueError, match="'layermem' does not hold the same rows in every seed"):
        aggregate('quick', 'fashion_mnist', [s0, s1], root=tmp_path)
    f, g, x = tiny_pair()
    with pytest.raises(TypeError, match='seed must be an int'): unitmem(f, x, n_aug=2, seed=None)

def test_out_dir_that_is_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path/'afile').write_text('x')
    with pytest.raises(ValueError, match='is a file, not a folder'): resolve_config(dict(preset='smoke', out_dir=str(tmp_path/'afile')))

# --- fourth round (issue 18): the cases still open, each a clear error before any work or a correct result ---------

def test_a_module_called_twice_in_one_forward_is_refused():
    "A25: a shared block runs twice per forward; UnitMem / SSLMem of its last call only would be silently wrong."
    from torch import nn
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.h = nn.Conv2d(3, 3, 3, padding=1), nn.Linear(3, 4)
        def forward(self, x): return self.h(self.c(self.c(x).relu()).relu().mean((2, 3)))
    x = tiny_pair()[2]
    with pytest.raises(ValueError, match=r"Layers \['c'\] ran \[2\] times in one forward pass of Shared"):
        unitmem(Shared(), x, layers=['c'], n_aug=0)
    with pytest.raises(ValueError, match='ran'): alignment([Shared(), Shared()], x, ['c'], n_aug=1, batch_size=4)
    assert unitmem(Shared(), x, layers=['h'], n_aug=0, negative='abs')['h'].shape == (4,)    # a layer run once is fine
    f = tiny_pair()[0]
    assert all((v == 0).all() for v in sslmem(f, f, x, n_aug=2).values())        # f is g: one module, two captures

def test_images_and_encoders_a_pass_cannot_use():
    "A06, A17: images the encoder cannot take; A38, A39: encoders on the meta device; A85: a device that is not there."
    f, g, x = tiny_pair()
    with pytest.raises(ValueError, match=r'ResNet9 cannot take images of shape \(2, 32, 32\).*channels'):
        unitmem(f, x[:, :2], n_aug=0)
    with pytest.raises(ValueError, match=r'ResNet9 cannot take images of shape \(3, 8, 8\).*Output size is too small'):
        sslmem(f, g, torch.rand(4, 3, 8, 8), n_aug=2)
    with pytest.raises(ValueError, match='cannot take images'):
        sslmem(f, g, torch.rand(4, 3, 8, 8), n_aug=2, batch_size=2)
    fm, gm = copy.deepcopy(f).to('meta'), copy.deepcopy(g).to('meta')
    with pytest.raises(ValueError, match="Encoder 0 \\(ResNet9\\) is on the 'meta' device"): sslmem(fm, gm, x, n_aug=2)
    with pytest.raises(ValueError, match="on the 'meta' device"): unitmem(fm, x, n_aug=2)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="Device 'cuda' is not available: this machine has cpu"):
            sslmem(f, g, x, n_aug=2, device='cuda')

def test_views_bigger_than_memory_are_refused_before_the_pass(monkeypatch):
    "A29: n_aug=3,000,000 under a 6 GB limit used to fail inside the allocator with 36 GB asked for."
    import memloc.passes as ps
    f, g, x = tiny_pair()
    monkeypatch.setattr(ps, '_free_bytes', lambda dev: 6 * 2**30)
    with pytest.raises(ValueError, match=r"One point's 3000000 views take 103\.0 GiB, more than the 6\.0 GiB free"):
        unitmem(f, x[:2], n_aug=3_000_000)
    assert all(v.isfinite().all() for v in unitmem(f, x[:2], n_aug=2).values())

def test_string_labels_and_a_fractional_top():
    "A63: labels as strings; A68: per_class=0; A73: top=2.5 (a TypeError from slicing before)."
    f, g, x = tiny_pair()
    with pytest.raises(TypeError, match='labels must be integer class labels, not list of str.*names.index'):
        classmem(f, x, ['a', 'b'] * 8)
    with pytest.raises(ValueError, match='per_class must be a positive int'):
        classmem(f, x, torch.arange(16) % 2, per_class=0)
    with pytest.raises(TypeError, match=r'top is the number of points .* must be an int, not 2\.5'):
        layermem(f, g, x, top=2.5, n_aug=2)
    with pytest.raises(ValueError, match=r'top=20 needs 1\.\.16 points'): layermem(f, g, x, top=20, n_aug=2)

def test_bad_split_files_and_image_caches(tmp_path):
    "D29: a split file whose indices are a string; D31: an image cache holding other keys; D33: imagenet(n=0)."
    from PIL import Image
    from memloc.data import imagenet
    from memloc.core import CorruptedFileError
    memorization_split(100, n_candidates=10, n_independent=10).save(tmp_path/'s.json')
    d = dict(json.loads((tmp_path/'s.json').read_text()), shared='abc')
    (tmp_path/'s.json').write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"s\.json does not hold a valid split: Split\.shared must hold integer"):
        Split.load(tmp_path/'s.json')
    for c in ('a', 'b'):
        (tmp_path/'imagenet'/'train'/c).mkdir(parents=True)
        for i in range(2): Image.new('RGB', (40, 40), (i * 50, 0, 0)).save(tmp_path/'imagenet'/'train'/c/f'{i}.png')
    with pytest.raises(ValueError, match='n is the number of images drawn and must be an int >= 1'):
        imagenet(tmp_path, n=0, size=16)
    assert len(imagenet(tmp_path, size=16)) == 4
    cache = next((tmp_path/'imagenet'/'memloc_cache').glob('*.pt'))
    c = safe_load(cache)
    c['labels'] = c.pop('y')
    atomic_save(c, cache)
    with pytest.raises(CorruptedFileError, match="does not hold memloc's cached images.*Delete it and run again"):
        imagenet(tmp_path, size=16)

def test_folders_that_cannot_be_written(tmp_path, monkeypatch):
    "C22, D35: $MEMLOC_RUNS / $MEMLOC_DATA cannot be created; C40: a figures root that cannot be written, refused."
    from memloc.core import data_dir
    from memloc.chapters.reproduce import reproduce_main
    real_mkdir = Path.mkdir
    def immutable(self, *a, **k):
        if 'ro' in self.parts: raise PermissionError(1, 'Operation not permitted', str(self))
        return real_mkdir(self, *a, **k)
    monkeypatch.setattr(Path, 'mkdir', immutable)
    for var, fn in (('MEMLOC_RUNS', runs_dir), ('MEMLOC_DATA', data_dir)):
        monkeypatch.setenv(var, str(tmp_path/'ro'/'sub'))
        with pytest.raises(PermissionError, match=rf'cannot create the folder .*ro/sub \(\${var}.*not permitted'):
            fn()
    monkeypatch.setenv('MEMLOC_RUNS', str(tmp_path/'runs'))
    with pytest.raises(SystemExit, match=r'memloc-reproduce: memloc cannot write into the figures root \(--root\)'):
        reproduce_main(['--preset', 'smoke', '--seeds', '0', '--chapters', '09_layermem', '--root', str(tmp_path/'ro')])
    assert not (tmp_path/'runs'/'pairs').exists()

def test_a_full_disk_names_the_checkpoint_and_the_run_resumes(tmp_path, monkeypatch):
    "C23, T17: the run cache fills up mid-training; the error says so, and the same call resumes to the same weights."
    import shutil as sh
    import memloc.core as core
    from memloc.core import DiskFullError
    data = synthetic(n=48, n_outliers=2, seed=0)
    def run(ckpt):
        set_seed(0)
        return train(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32), data, epochs=3, batch_size=16, ckpt=ckpt,
                     device='cpu', progress=False)
    full = run(tmp_path/'full.pt')
    real, calls = torch.save, []
    def filling(obj, f):
        calls.append(f)
        if len(calls) < 2: return real(obj, f)
        Path(f).write_bytes(b'half')
        raise RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 886272 vs 886164')
    monkeypatch.setattr(core.torch, 'save', filling)
    monkeypatch.setattr(core.shutil, 'disk_usage', lambda p: sh._ntuple_diskusage(2**20, 2**20, 0))
    with pytest.raises(DiskFullError, match=r"No space left in .* to write cut\.pt .*its last good version is still"):
        run(tmp_path/'cut.pt')
    monkeypatch.setattr(core.torch, 'save', real)
    assert not [p for p in tmp_path.iterdir() if p.suffix == '.tmp']                        # no half-written leftovers
    rec = run(tmp_path/'cut.pt')
    assert rec.start == 1
    assert all(torch.equal(v, full.encoder.state_dict()[k]) for k, v in rec.encoder.state_dict().items())

def test_command_lines_refuse_bad_arguments_without_a_traceback(tmp_path, monkeypatch):
    "C12, C13, C19: memloc-train's device and seed; C28, C32: memloc-reproduce's --shard -1/2 and --submit 0."
    from memloc.chapters.train_cli import train_main
    from memloc.chapters.reproduce import reproduce_main
    monkeypatch.setenv('MEMLOC_RUNS', str(tmp_path/'runs'))
    with pytest.raises(SystemExit, match="memloc-train: Unknown device 'tpu': this machine has cpu"):
        train_main(['--preset', 'smoke', '--device', 'tpu'])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="Device 'cuda' is not available"):
            train_main(['--preset', 'smoke', '--device', 'cuda'])
    with pytest.raises(SystemExit, match=r'seed must be below 2\*\*40'):
        train_main(['--preset', 'smoke', '--seed', str(10**15)])
    with pytest.raises(SystemExit, match=r'shard must be \(i, n\) with 0 <= i < n, not \(-1, 2\)'):
        reproduce_main(['--preset', 'smoke', '--shard', '-1/2'])
    with pytest.raises(SystemExit, match='exclude each other'):
        reproduce_main(['--preset', 'smoke', '--submit', '0', '--aggregate-only'])
    with pytest.raises(SystemExit, match='--submit N runs the grid as N >= 1 jobs, not 0'):
        reproduce_main(['--preset', 'smoke', '--submit', '0'])
    assert not (tmp_path/'runs'/'pairs').exists()

def test_a_moved_run_cache_still_counts_as_finished(tmp_path):
    "C43: run records name their absolute out_dir; a copy of the whole cache elsewhere must not count as unfinished."
    from memloc.chapters.reproduce import finished_run, run_dir, missing_runs
    from memloc.chapters.config import save_run_record
    old, new = tmp_path/'scratch'/'figures', tmp_path/'home'/'figures'
    out = run_dir('smoke', 'synthetic', 0, old, chapter='09_layermem')
    cfg = resolve_config(dict(preset='smoke', dataset='synthetic', seed=0, out_dir=str(out)), '09_layermem')
    save_run_record(cfg, '09_layermem', time.time())
    import shutil; shutil.copytree(old, new)
    assert finished_run('09_layermem', 'smoke', 'synthetic', 0, new) is not None
    assert missing_runs('smoke', ['synthetic'], [0], ['09_layermem'], new) == []

def test_privacy_budgets_and_sizes_that_cannot_run_are_refused_first():
    "DP10: max_grad_norm=inf; DP13: an epsilon no noise reaches; -p top 1000 and -p max_grad_norm 0 before any work."
    import math
    from memloc.dp import dp_engine, dp_compatible
    with pytest.raises(ValueError, match='must be a finite number > 0.*not inf'):
        dp_engine(8.0, 'simclr', max_grad_norm=math.inf)
    enc, m = dp_compatible(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32))
    with pytest.raises(ValueError, match=r'epsilon = 1e-06 at delta = 0\.001 cannot be reached in 2 DP-SGD steps'):
        train(enc, m, synthetic(n=32, seed=0), epochs=1, batch_size=16, engine=dp_engine(1e-6, 'simclr', delta=1e-3),
              progress=False)
    with pytest.raises(ValueError, match=r'top=1000 asks for more points than are ranked.*-p top 60'):
        resolve_config(dict(preset='smoke', top=1000), '09_layermem')
    for bad in (0, math.inf):
        with pytest.raises(ValueError, match='max_grad_norm is the per-sample clipping norm'):
            resolve_config(dict(preset='smoke', max_grad_norm=bad), '16_privacy')
    with pytest.raises(ValueError, match=r'epsilons holds \[-1\.0\]'):
        resolve_config(dict(preset='smoke', epsilons=[None, -1.0]), '16_privacy')

def test_a_chapter_refuses_top_before_training(runs):
    "The early parameter check in a real papermill run: -p top 1000 stops at the parameters cell, no pair is trained."
    cmd = [sys.executable, '-m', 'papermill', '-k', 'python3', str(ROOT/'nbs'/'09_layermem.ipynb'), str(runs/'o.ipynb'),
           '-p', 'preset', 'smoke', '-p', 'top', '1000']
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode != 0 and 'top=1000 asks for more points than are ranked' in r.stdout + r.stderr
    assert not (runs/'runs'/'pairs').exists()

def test_aggregation_names_text_columns():
    "M06: a value column of text used to fail in pandas' float cast."
    import pandas as pd
    from memloc.chapters.reproduce import aggregate_table
    df = pd.DataFrame(dict(layer=['a', 'a'], v=[1., 2.], note=['x', 'y'], seed=[0, 1]))
    with pytest.raises(ValueError, match=r"Columns \['note'\] of the stacked table hold text \(e\.g\. 'x'\)"):
        aggregate_table(df, ['layer'])
    assert aggregate_table(df.drop(columns='note'), ['layer'])[0]['v'].item() == 1.5

def test_own_cases_devices_of_train_and_meta_images():
    "New cases: train(device='tpu' / 'cuda' without CUDA) gave torch's raw errors; images on the meta device a .item() error."
    data = synthetic(16, n_outliers=0)
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        train(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32), data, epochs=1, device='tpu', progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="Device 'cuda' is not available"):
            train(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32), data, epochs=1, device='cuda', progress=False)
    f, g, x = tiny_pair()
    with pytest.raises(ValueError, match="images are on the 'meta' device"):
        sslmem(f, g, x.to('meta'), n_aug=1)
