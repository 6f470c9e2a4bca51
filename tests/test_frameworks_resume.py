"Kill a real DINO or MAE training process mid-run, start it again, and get the weights (DINO: teacher and centre too) of an uninterrupted run."
import sys, time, signal, subprocess
import pytest, torch
from conftest import ROOT

# DINO on a tiny ResNet9 with AdamW, a cosine schedule after a warm-up, the cosine teacher momentum and a teacher
# temperature warm-up: every schedule depends on the step count, which the checkpoint must carry across the kill.
# MAE on a tiny ViT: its random masks come from the epoch's seeded generator, which resume must replay exactly.
SCRIPT = r'''
import sys, torch
from memloc.core import set_seed
from memloc.data import synthetic
from memloc.augment import MultiCropAug
from memloc.ssl import DINO, MAE
from memloc.train import train
from memloc.testing import tiny_encoder, tiny_vit
torch.set_num_threads(1)
ckpt, epochs, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
set_seed(0)
data = synthetic(n=64, n_outliers=2, seed=0)
if kind == 'dino':
    enc, method = tiny_encoder(), DINO(out_dim=64, hidden_dim=32, bottleneck_dim=16, teacher_temp=0.07, teacher_temp_warmup=0.3,
                                       aug=MultiCropAug(n_local=2))
else: enc, method = tiny_vit().train(), MAE(decoder_dim=16, decoder_depth=1, decoder_heads=2)
rec = train(enc, method, data, epochs=epochs, batch_size=16, seed=1, ckpt=ckpt, device='cpu', progress=False,
            optimizer='adamw', schedule='cosine', warmup_epochs=2, weight_decay=0.04)
torch.save(dict(encoder=rec.encoder.state_dict(), method=method.state_dict(), history=rec.history), ckpt + '.final')
'''

def _run(args, **kw): return subprocess.Popen([sys.executable, '-c', SCRIPT, *args], cwd=ROOT, **kw)

def _same(a:dict, b:dict):
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k

@pytest.mark.parametrize('kind', ['dino', 'mae'])
def test_kill_and_resume(tmp_path, kind):
    epochs = 16
    full = tmp_path/'full.pt'; assert _run([str(full), str(epochs), kind]).wait() == 0
    cut = tmp_path/'cut.pt'; p = _run([str(cut), str(epochs), kind])
    t0 = time.time()
    while not (cut.exists() and torch.load(cut, weights_only=True)['epoch'] >= 2):   # at least 2 epochs written
        assert p.poll() is None and time.time() - t0 < 180, 'training ended before it could be killed'
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    done = torch.load(cut, weights_only=True)['epoch']
    assert 2 <= done < epochs, done                              # really interrupted mid-way
    assert not (tmp_path/'cut.pt.final').exists()
    assert _run([str(cut), str(epochs), kind]).wait() == 0       # the same command again resumes
    a, b = torch.load(str(full) + '.final'), torch.load(str(cut) + '.final')
    _same(a['encoder'], b['encoder'])
    _same(a['method'], b['method'])                              # DINO: head, teacher (weights, BN statistics), centre; MAE: decoder
    if kind == 'dino': assert any(k.startswith('teacher.0.') for k in a['method']) and 'center' in a['method']
    else: assert any(k.startswith('decoder.') for k in a['method']), list(a['method'])[:5]
    assert a['history'] == b['history']
    assert torch.load(cut, weights_only=True)['epoch'] == epochs
