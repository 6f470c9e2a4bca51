"""SimCLR training throughput: memloc's `train` against a bare hand-written loop (same model, data, augmentation).

    python bench/train.py [--n 2560] [--batch-size 256] [--epochs 2] [--width 1.0] [--threads 2]

Prints images/s for both and their ratio; memloc's loop (checkpoint every epoch included) should stay within 10 %.
Not collected by pytest (a benchmark prints numbers; it does not assert timings)."""
import argparse, time, tempfile
from pathlib import Path
import torch
from memloc.core import set_seed
from memloc.data import load_dataset, synthetic
from memloc.encoders import create_encoder
from memloc.augment import simclr_aug
from memloc.ssl import SimCLR, nt_xent
from memloc.train import train, epoch_generator, batches

def bare_loop(x, epochs, batch_size, width, seed=0):
    "The loop a researcher would write by hand: no checkpoints, no progress bar, no abstraction."
    set_seed(seed); enc = create_encoder('resnet9', width=width)
    head = SimCLR().setup(enc).head
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=1e-3, weight_decay=1e-6)
    aug = simclr_aug(32); enc.train(); head.train()
    for epoch in range(epochs):
        g = epoch_generator(seed, epoch)
        for idx in batches(len(x), batch_size, g):
            xb = x[idx].float() / 255
            loss = nt_xent(head(enc(aug(xb, g))), head(enc(aug(xb, g))), 0.5)
            opt.zero_grad(); loss.backward(); opt.step()

def memloc_loop(data, epochs, batch_size, width, ckpt, seed=0):
    set_seed(seed)
    train(create_encoder('resnet9', width=width), SimCLR(), data, epochs=epochs, batch_size=batch_size,
          seed=seed, ckpt=ckpt, device='cpu', progress=False)

def timed(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=2560); ap.add_argument('--batch-size', type=int, default=256)
    ap.add_argument('--epochs', type=int, default=2); ap.add_argument('--width', type=float, default=1.0)
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--repeats', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    try: data = load_dataset('fashion_mnist')[torch.arange(a.n)]
    except FileNotFoundError: data = synthetic(n=a.n)
    imgs = a.epochs * (a.n // a.batch_size) * a.batch_size
    print(f"ResNet9 width {a.width}, SimCLR, batch {a.batch_size}, {a.n} {data.name} images x {a.epochs} epochs, "
          f"{a.threads} threads, torch {torch.__version__}")
    bare_loop(data.x[:a.batch_size], 1, a.batch_size, a.width)              # warm-up (allocator, kernels)
    tb, tm = [], []
    with tempfile.TemporaryDirectory() as d:
        for r in range(a.repeats):                                          # interleaved, best of `repeats`
            tb.append(timed(lambda: bare_loop(data.x, a.epochs, a.batch_size, a.width)))
            tm.append(timed(lambda: memloc_loop(data, a.epochs, a.batch_size, a.width, Path(d)/f'ck{r}.pt')))
    b, m = imgs / min(tb), imgs / min(tm)
    print(f"bare loop   : {b:8.1f} images/s  (runs: {', '.join(f'{t:.1f}s' for t in tb)})")
    print(f"memloc train: {m:8.1f} images/s  (runs: {', '.join(f'{t:.1f}s' for t in tm)}; checkpoint every epoch)")
    print(f"memloc / bare throughput: {m/b:.3f}  (target >= 0.90)")
