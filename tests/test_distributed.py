"""`memloc-train` under `torchrun` on the CPU (gloo), as a user runs it: a data-parallel pair lands where a chapter
looks for it, every process ends with the same weights, and a killed run resumes to the weights of one never killed."""
import os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from conftest import ROOT

EPOCHS = 12                     # smoke sizes; enough epochs to kill the run mid-way

def _bin(tmp: Path) -> Path:
    "A folder with `memloc-train` on it: the installed console script, or the same entry point if not installed."
    d = tmp/'bin'; d.mkdir(exist_ok=True)
    if not shutil.which('memloc-train'):
        (d/'memloc-train').write_text(f"#!{sys.executable}\nimport sys\nfrom memloc.chapters.train_cli import train_main as main\n"
                                      "if __name__ == '__main__': sys.exit(main())\n")
        (d/'memloc-train').chmod(0o755)
    return d

def _cmd(*args):
    # --standalone: a free rendezvous port per run, so a rerun never meets the port of a run just killed
    return ['torchrun', '--standalone', '--nproc_per_node', '2', '--no-python', 'memloc-train', '--preset', 'smoke',
            '--epochs', str(EPOCHS), '--no-progress', *args]

def _env(tmp: Path, runs: Path) -> dict:
    return {**os.environ, 'MEMLOC_RUNS': str(runs), 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT),
            'PATH': f"{_bin(tmp)}{os.pathsep}{os.environ['PATH']}"}

def _state(path): return torch.load(path, weights_only=True)

def _tree(pid: int) -> list[int]:
    "`pid` and every process below it (torchrun starts its workers in sessions of their own)."
    kids = {}
    for st in Path('/proc').glob('[0-9]*/stat'):
        try: f = st.read_text().rsplit(')', 1)[1].split(); kids.setdefault(int(f[1]), []).append(int(st.parent.name))
        except (OSError, IndexError, ValueError): pass
    out, todo = [], [pid]
    while todo: p = todo.pop(); out.append(p); todo += kids.get(p, [])
    return out

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "One uninterrupted data-parallel run of the smoke pair: (its run cache, its output)."
    tmp = tmp_path_factory.mktemp('ddp'); runs = tmp/'runs'
    r = subprocess.run(_cmd(), cwd=ROOT, env=_env(tmp, runs), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return runs, r.stdout

def _smoke(runs, monkeypatch):
    monkeypatch.setenv('MEMLOC_RUNS', str(runs))
    from memloc.chapters.config import resolve_config, experiment_data, experiment_split
    cfg = resolve_config(dict(preset='smoke', epochs=EPOCHS))
    data, _ = experiment_data(cfg)
    return cfg, data, experiment_split(cfg, data)

def test_ddp_pair_is_identical_on_both_processes(trained):
    runs, out = trained
    assert '2 process(es) on cpu' in out, out
    for name in 'fg':                                             # checked by every process against rank 0's weights
        assert f'{name}: {EPOCHS} epochs' in out and 'identical on 2 process(es)' in out, out
    (d,) = (runs/'pairs').iterdir()
    meta = __import__('json').loads((d/'f.json').read_text())
    assert meta['world_size'] == 2 and meta['backend'] == 'gloo' and meta['sync_bn'] is False

def test_a_chapter_reuses_the_ddp_pair(trained, monkeypatch):
    runs, _ = trained
    from memloc.chapters.config import experiment_pair
    cfg, data, split = _smoke(runs, monkeypatch)
    (d,) = (runs/'pairs').iterdir()
    mtimes = {n: (d/f'{n}.pt').stat().st_mtime_ns for n in 'fg'}
    pair = experiment_pair(cfg, data, split, progress=False)     # what the chapters call
    assert pair.dir == d                                          # the same run-cache folder
    assert {n: (d/f'{n}.pt').stat().st_mtime_ns for n in 'fg'} == mtimes   # loaded, not retrained
    assert sorted(pair.records['f'].snapshots) == list(range(1, EPOCHS + 1))   # the chapter's snapshots are there
    ck = _state(d/'f.pt')['encoder']
    for k, v in pair.f.state_dict().items(): assert torch.equal(v, ck[k]), k

def test_kill_and_rerun_resumes_to_the_same_weights(trained, tmp_path):
    runs_ref, _ = trained
    runs = tmp_path/'runs'; env = _env(tmp_path, runs)
    p = subprocess.Popen(_cmd(), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not (list(runs.glob('pairs/*/f.pt')) and _state(next(runs.glob('pairs/*/f.pt')))['epoch'] >= 3):
        assert p.poll() is None and time.time() - t0 < 300, 'training ended before it could be killed'
        time.sleep(0.05)
    for pid in _tree(p.pid):                                      # torchrun and both workers, as a job scheduler kills a job
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    p.wait(); time.sleep(0.5)
    (d,) = (runs/'pairs').iterdir()
    done = _state(d/'f.pt')['epoch']
    assert 3 <= done < EPOCHS and not (d/'g.pt').exists(), done  # really interrupted in f
    r = subprocess.run(_cmd(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    ranks = '\n'.join(l for l in r.stderr.splitlines() if l.startswith('[rank'))     # every worker's own traceback
    assert r.returncode == 0, r.stdout[-3000:] + ranks[-6000:] + r.stderr[-2000:]
    assert f'resumed after epoch {done} of {EPOCHS}' in r.stdout, r.stdout
    (ref,) = (runs_ref/'pairs').iterdir()
    assert ref.name == d.name                                     # the same configuration, the same folder name
    for n in 'fg':
        a, b = _state(ref/f'{n}.pt'), _state(d/f'{n}.pt')
        assert a['epoch'] == b['epoch'] == EPOCHS and a['history'] == b['history'], n
        for k in a['encoder']: assert torch.equal(a['encoder'][k], b['encoder'][k]), (n, k)
