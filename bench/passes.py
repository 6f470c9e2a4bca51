"""Every metric pass against the fastest bare forward loop over the same images (memloc / bare, side by side).

    python bench/passes.py                                  # ResNet9 width 1, 512 points, 2 threads, CPU (minutes)
    python bench/passes.py [--n 512] [--width 1.0] [--threads 2] [--repeats 3] [--device cpu|cuda] [--arch resnet9]
    python bench/passes.py --quick                          # smoke run at tiny sizes (seconds)

For each pass memloc runs, with memloc's defaults (automatic batch size, its memory layout, float32):

    alignment   `alignment([f, g], x, n_aug=5)`: f and g over the 'pair' views (2 x 5 per point) — SSLMem, LayerMem
    unitmem     `unitmem(f, x, n_aug=10)` (rest='mean', streamed)
    median      `unitmem(f, x, n_aug=10, rest='median')` (the official protocol's (N, U) store)
    activations `unit_activations(f, x, n_aug=10)`
    classmem    `classmem(f, x, y)` (clean images, one per point)

the bare loop is eval + no_grad + no hooks over exactly the images memloc feeds (views pre-drawn with memloc's own
`draw_views`, not timed: memloc's time includes drawing them), timed at every batch size in IMAGES and in both memory
layouts (contiguous, channels_last); the fastest is the reference. Also printed: the bare loop's throughput for each
(layout, batch size), and in bfloat16 autocast at the fastest of them — the measurements behind memloc's layout,
batch size and precision.
Timings are interleaved over `--repeats` rounds after a warm-up and the best round is kept. Not collected by pytest.
"""
import argparse, os, time
import torch
os.environ.setdefault('MEMLOC_PROGRESS', 'none')
from bench_common import hardware, sync

IMAGES = (16, 32, 64, 128, 256, 512, 1024)        # bare forward batch sizes searched (images per forward)
# memloc's `auto_batch_size` is computed with the same thread count the benchmark runs at (`--threads`).
LAYOUTS = (torch.contiguous_format, torch.channels_last)
TARGET = 1.2                                       # memloc / fastest bare forward loop, per pass

def timed(fn, device):
    sync(device); t = time.perf_counter(); fn(); sync(device); return time.perf_counter() - t

def bare(encoders, views, bs, layout, device, autocast=False):
    "Every encoder over `views` (N, C, H, W) in batches of `bs` images, eval, no_grad, no hooks."
    with torch.no_grad(), torch.autocast(torch.device(device).type, torch.bfloat16, enabled=autocast):
        for i in range(0, len(views), bs):
            v = views[i:i+bs].to(device, memory_format=layout)
            for e in encoders: e(v)

def images_of(name, x, n_aug):
    "The images memloc feeds for pass `name`, drawn as memloc draws them (per point, seeded by the point's index)."
    from memloc.passes import draw_views
    from memloc.augment import simclr_aug
    aug = simclr_aug(x.shape[-1])
    if name == 'classmem': return x.float() / 255
    views = 'pair' if name == 'alignment' else 'aug'
    return torch.cat([draw_views(x[i:i+64].float() / 255, n_aug, aug, 0, i, views) for i in range(0, len(x), 64)])

def main(a):
    from memloc.core import set_seed
    from memloc.data import load_dataset, synthetic
    from memloc.encoders import create_encoder
    from memloc.sslmem import alignment
    from memloc.unitmem import unitmem, unit_activations, classmem
    from memloc.passes import auto_batch_size
    torch.set_num_threads(a.threads)
    try: data = load_dataset('fashion_mnist')[torch.arange(a.n)]
    except FileNotFoundError: data = synthetic(n=a.n)
    x, y, dev = data.x, data.y, a.device
    kw = dict(width=a.width) if a.arch == 'resnet9' else {}
    set_seed(0); f = create_encoder(a.arch, **kw).to(dev).eval()
    set_seed(1); g = create_encoder(a.arch, **kw).to(dev).eval()
    passes = {   # name: (memloc call, encoders the bare loop runs, K)
        'alignment':   (lambda: alignment([f, g], x, n_aug=5), [f, g], 5),
        'unitmem':     (lambda: unitmem(f, x, n_aug=10), [f], 10),
        'median':      (lambda: unitmem(f, x, n_aug=10, rest='median'), [f], 10),
        'activations': (lambda: unit_activations(f, x, n_aug=10), [f], 10),
        'classmem':    (lambda: classmem(f, x, y), [f], 0),
    }
    print(f"{hardware(dev)}\n{a.arch} (width {a.width}), {a.n} {data.name} images {tuple(x.shape[1:])}, device {dev}; "
          f"best of {a.repeats} interleaved round(s)\n")
    rows, curve = [], {}
    for name, (call, encs, k) in passes.items():
        views = images_of(name, x, k)
        t_views = min(timed(lambda: images_of(name, x, k), dev) for _ in range(a.repeats))   # drawing them, on its own
        sizes = [b for b in IMAGES if b <= len(views)] or [len(views)]
        call(); bare(encs, views[:sizes[0]], sizes[0], LAYOUTS[0], dev)              # warm-up
        tm, tb = [], {}
        for _ in range(a.repeats):
            tm.append(timed(call, dev))
            for lay in LAYOUTS:
                for b in sizes: tb.setdefault((lay, b), []).append(timed(lambda: bare(encs, views, b, lay, dev), dev))
        best = {key: min(v) for key, v in tb.items()}
        (lay, b), t_bare = min(best.items(), key=lambda kv: kv[1])
        per_point = 2 * k if name == 'alignment' else max(k, 1)
        from memloc.encoders import default_layers
        from memloc.features import resolve_layers
        auto = auto_batch_size(f, x, resolve_layers(f, None), per_point)
        rows.append((name, len(views) * len(encs), min(tm), t_bare, str(lay).split('.')[-1], b, auto * per_point, t_views))
        curve[name] = best
    w = 12
    print(f"{'pass':{w}} {'images':>8} {'memloc':>9} {'bare':>9} {'ratio':>7} {'views':>8} {'ratio w/o views':>16}  "
          f"fastest bare (layout, images/forward)  memloc's images/forward")
    for name, n, tm, tb, lay, b, mb, tv in rows:
        print(f"{name:{w}} {n:8d} {tm:8.3f}s {tb:8.3f}s {tm/tb:7.3f} {tv:7.3f}s {(tm - tv)/tb:16.3f}  {lay:>14}, {b:<5}"
              f"                 {mb}")
    print("(views: drawing the views alone, which memloc's time includes and the bare loop's does not)")
    for name, n, tm, tb, lay, b, mb, tv in rows:
        verdict = 'met' if tm / tb <= TARGET else ('NOT met; without drawing the views it would be '
                  + ('met' if (tm - tv) / tb <= TARGET else 'not met either') + f' ({(tm - tv) / tb:.2f})')
        print(f"target memloc / fastest bare <= {TARGET}: {name}: {tm / tb:.2f}, {verdict}")
    print("\nbare throughput (images/s) of the unitmem views by layout and images per forward:")
    views = images_of('unitmem', x, 10); n_img = len(views)
    print(f"{'':22}" + ''.join(f"{b:>8}" for b in IMAGES if b <= n_img))
    for lay in LAYOUTS:
        print(f"{str(lay).split('.')[-1]:22}" + ''.join(f"{n_img / curve['unitmem'][(lay, b)]:8.0f}" for b in IMAGES if b <= n_img))
    (lay, b), t32 = min(curve['unitmem'].items(), key=lambda kv: kv[1])                 # precision: bfloat16 autocast,
    t16 = timed(lambda: bare([f], views, b, lay, dev, autocast=True), dev)               # at the fastest float32 setting
    print(f"\nbfloat16 autocast at the fastest float32 setting ({str(lay).split('.')[-1]}, {b} images/forward): "
          f"{n_img / t16:.0f} images/s against {n_img / t32:.0f} in float32 ({t16 / t32:.2f}x the time)")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=512, help='points')
    ap.add_argument('--width', type=float, default=1.0, help='ResNet9 width')
    ap.add_argument('--arch', default='resnet9')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--quick', action='store_true', help='tiny sizes for a smoke run')
    a = ap.parse_args()
    if a.quick: a.n, a.width, a.repeats, a.threads = 32, 0.25, 1, 1
    main(a)
