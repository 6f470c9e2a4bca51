"""SimCLR training throughput: memloc's `train` against the fastest bare hand-written loop (memloc / bare, side by side).

    python bench/train.py [--n 2560] [--batch-size 256] [--epochs 2] [--width 1.0] [--threads 2] [--repeats 2] [--device cpu]
    python bench/train.py --quick                   # smoke run at tiny sizes (seconds)

The same model, data, augmentation, batches and optimiser in every loop. The bare loop is what a researcher writes by
hand (no checkpoints, no progress bar, no abstraction), timed in both memory layouts (contiguous and channels_last:
encoder weights converted, as `torch.channels_last` is meant to be used) and, once, for information, in bfloat16
autocast; the fastest float32 bare loop is the reference. memloc's `train` is timed as the chapters call it (the plain
engine, which trains convolutions in channels_last; checkpoint every epoch included) and, for comparison, in the
default layout (`memloc.distributed.DDPEngine(channels_last=False)`, one process without a process group).
Target: memloc / bare <= 1.1. Rounds are interleaved after a warm-up; the best round of each is kept. Not collected
by pytest.
"""
import argparse, os, time, tempfile
from pathlib import Path
import torch
os.environ.setdefault('MEMLOC_PROGRESS', 'none')
from memloc.core import set_seed
from memloc.data import load_dataset, synthetic
from memloc.encoders import create_encoder
from memloc.augment import simclr_aug
from memloc.ssl import SimCLR, nt_xent
from memloc.train import train, epoch_generator, batches
from memloc.distributed import DDPEngine
from bench_common import hardware, sync

def bare_loop(x, epochs, batch_size, width, device, layout=torch.contiguous_format, autocast=False, seed=0, compile_=False):
    "The loop a researcher would write by hand: no checkpoints, no progress bar, no abstraction (`compile_`: torch.compile)."
    set_seed(seed); enc = create_encoder('resnet9', width=width).to(device, memory_format=layout)
    head = SimCLR().setup(enc).head.to(device)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=1e-3, weight_decay=1e-6)
    aug = simclr_aug(32); enc.train(); head.train(); x = x.to(device)
    fwd = torch.compile(enc) if compile_ else enc
    for epoch in range(epochs):
        g = epoch_generator(seed, epoch)
        for idx in batches(len(x), batch_size, g):
            xb = x[idx.to(device)].float() / 255
            with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=autocast):
                loss = nt_xent(head(fwd(aug(xb, g))), head(fwd(aug(xb, g))), 0.5)
            opt.zero_grad(); loss.backward(); opt.step()
    sync(device)

def memloc_loop(data, epochs, batch_size, width, device, ckpt, engine=None, seed=0):
    set_seed(seed)
    train(create_encoder('resnet9', width=width), SimCLR(), data, epochs=epochs, batch_size=batch_size,
          seed=seed, ckpt=ckpt, device=device, progress=False, engine=engine)
    sync(device)

def timed(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=2560); ap.add_argument('--batch-size', type=int, default=256)
    ap.add_argument('--epochs', type=int, default=2); ap.add_argument('--width', type=float, default=1.0)
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--quick', action='store_true', help='tiny sizes for a smoke run')
    a = ap.parse_args()
    if a.quick: a.n, a.batch_size, a.epochs, a.width, a.repeats, a.threads = 128, 64, 1, 0.25, 1, 1
    torch.set_num_threads(a.threads)
    try: data = load_dataset('fashion_mnist')[torch.arange(a.n)]
    except FileNotFoundError: data = synthetic(n=a.n)
    imgs = a.epochs * a.n                                                     # every point once per epoch
    print(f"{hardware(a.device)}\nResNet9 width {a.width}, SimCLR, batch {a.batch_size}, {a.n} {data.name} images x "
          f"{a.epochs} epochs, device {a.device}; best of {a.repeats} interleaved round(s)\n")
    cl = torch.channels_last
    loops = {
        'bare, contiguous':            lambda d, r: bare_loop(data.x, a.epochs, a.batch_size, a.width, a.device),
        'bare, channels_last':         lambda d, r: bare_loop(data.x, a.epochs, a.batch_size, a.width, a.device, cl),
        'memloc train (plain engine)': lambda d, r: memloc_loop(data, a.epochs, a.batch_size, a.width, a.device, Path(d)/f'p{r}.pt'),
        'memloc train, contiguous':    lambda d, r: memloc_loop(data, a.epochs, a.batch_size, a.width, a.device, Path(d)/f'c{r}.pt',
                                                                DDPEngine(channels_last=False)),
    }
    bare_loop(data.x[:a.batch_size], 1, a.batch_size, a.width, a.device)   # warm-up (allocator, kernels)
    bare_loop(data.x[:a.batch_size], 1, a.batch_size, a.width, a.device, cl)
    ts = {k: [] for k in loops}
    with tempfile.TemporaryDirectory() as d:
        for r in range(a.repeats):
            for k, fn in loops.items(): ts[k].append(timed(lambda: fn(d, r)))
    ts['bare, channels_last, bf16 (once)'] = [timed(lambda: bare_loop(data.x, a.epochs, a.batch_size, a.width, a.device, cl, True))]
    ref = min(min(ts['bare, contiguous']), min(ts['bare, channels_last']))
    for k, t in ts.items():
        print(f"{k:34} {imgs / min(t):8.1f} images/s   time / fastest float32 bare: {min(t) / ref:6.3f}"
              f"   (runs: {', '.join(f'{v:.1f}s' for v in t)})")
    print()
    for k, t in ts.items():
        if k.startswith('memloc'):
            print(f"target memloc train / fastest float32 bare <= 1.1 (checkpoint every epoch included): {k}: "
                  f"{min(t) / ref:.2f}, {'met' if min(t) / ref <= 1.1 else 'NOT met'}")
