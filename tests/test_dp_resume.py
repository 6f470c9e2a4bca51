"Kill a real DP-SGD training process mid-run, start it again, and get the weights and the epsilon of an uninterrupted run."
import sys, json, time, signal, subprocess
import torch
from conftest import ROOT

SCRIPT = r'''
import sys, json, torch
from memloc.core import set_seed
from memloc.data import synthetic
from memloc.ssl import SimCLR
from memloc.train import train
from memloc.testing import tiny_encoder
from memloc.dp import dp_compatible, dp_engine
torch.set_num_threads(1)
ckpt, epochs = sys.argv[1], int(sys.argv[2])
set_seed(0)
data = synthetic(n=64, n_outliers=2, seed=0)
enc, method = dp_compatible(tiny_encoder(), SimCLR(proj_dim=16, hidden_dim=32))
rec = train(enc, method, data, epochs=epochs, batch_size=8, seed=1, ckpt=ckpt, device='cpu', progress=False,
            engine=dp_engine(2., method, accountant='rdp'))
torch.save(rec.encoder.state_dict(), ckpt + '.final')
open(ckpt + '.summary.json', 'w').write(json.dumps(rec.summary))
'''

def _run(args, **kw): return subprocess.Popen([sys.executable, '-c', SCRIPT, *args], cwd=ROOT, **kw)

def test_kill_and_resume_dp(tmp_path):
    epochs = 12                                                   # 8 Poisson batches per epoch (q = 1/8), 96 DP steps
    full = tmp_path/'full.pt'; assert _run([str(full), str(epochs)]).wait() == 0
    cut = tmp_path/'cut.pt'; p = _run([str(cut), str(epochs)])
    t0 = time.time()
    while not (cut.exists() and torch.load(cut, weights_only=True)['epoch'] >= 2):   # at least 2 epochs written
        assert p.poll() is None and time.time() - t0 < 300, 'training ended before it could be killed'
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    ck = torch.load(cut, weights_only=True)
    assert 2 <= ck['epoch'] < epochs, ck['epoch']                # really interrupted mid-way
    assert ck['engine']['history'][0][2] == 8 * ck['epoch']     # the accountant counted every step so far
    assert not (tmp_path/'cut.pt.final').exists()
    assert _run([str(cut), str(epochs)]).wait() == 0             # the same command again resumes
    a, b = torch.load(str(full) + '.final'), torch.load(str(cut) + '.final')
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k
    sa, sb = (json.loads((tmp_path/f'{n}.pt.summary.json').read_text()) for n in ('full', 'cut'))
    assert sa == sb and sa['steps'] == 8 * epochs, (sa, sb)      # the same epsilon, under both accountants
    assert 0 < sa['epsilon'] == sa['epsilon_rdp'] <= 2. and sa['epsilon_prv'] > 0, sa
    side = json.loads(cut.with_suffix('.json').read_text())      # the checkpoint's sidecar carries the privacy spent
    assert {k: side[k] for k in ('epsilon', 'epsilon_prv', 'epsilon_rdp', 'guarantee')} == \
           {k: sa[k] for k in ('epsilon', 'epsilon_prv', 'epsilon_rdp', 'guarantee')}
    assert torch.load(cut, weights_only=True)['epoch'] == epochs
