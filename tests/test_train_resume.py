"Kill a real training process mid-run, start it again, and get the weights of an uninterrupted run."
import sys, time, signal, subprocess
import torch
from conftest import ROOT

SCRIPT = r'''
import sys, torch
from memloc.core import set_seed
from memloc.data import synthetic
from memloc.ssl import SimCLR
from memloc.train import train
from memloc.testing import tiny_encoder
torch.set_num_threads(1)
ckpt, epochs = sys.argv[1], int(sys.argv[2])
set_seed(0)
data = synthetic(n=64, n_outliers=2, seed=0)
rec = train(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32), data, epochs=epochs, batch_size=16, seed=1,
            ckpt=ckpt, device='cpu', progress=False)
torch.save(rec.encoder.state_dict(), ckpt + '.final')
'''

def _run(args, **kw): return subprocess.Popen([sys.executable, '-c', SCRIPT, *args], cwd=ROOT, **kw)

def test_kill_and_resume(tmp_path):
    epochs = 30
    full = tmp_path/'full.pt'; assert _run([str(full), str(epochs)]).wait() == 0
    cut = tmp_path/'cut.pt'; p = _run([str(cut), str(epochs)])
    t0 = time.time()
    while not (cut.exists() and torch.load(cut, weights_only=True)['epoch'] >= 2):   # at least 2 epochs written
        assert p.poll() is None and time.time() - t0 < 120, 'training ended before it could be killed'
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    done = torch.load(cut, weights_only=True)['epoch']
    assert 2 <= done < epochs, done                              # really interrupted mid-way
    assert not (tmp_path/'cut.pt.final').exists()
    assert _run([str(cut), str(epochs)]).wait() == 0             # the same command again resumes
    a, b = torch.load(str(full) + '.final'), torch.load(str(cut) + '.final')
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k
    assert torch.load(cut, weights_only=True)['epoch'] == epochs
