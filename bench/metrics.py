"""Metric speed and memory: memloc's `unitmem` / `layermem` against bare forward passes and the released scripts' loop.

    python bench/metrics.py                       # ResNet9 parts 1-3: N=1000, 2 threads, median of 3 (minutes)
    python bench/metrics.py [--n 1000] [--threads 2] [--repeats 3] [--batch-size 64] [--released-points 10] [--released-aug]
    python bench/metrics.py --vit                 # part 4 only: ViT-Base memory, 5000 points, 1 view (long)
    python bench/metrics.py --vit [--vit-points 5000] [--vit-aug 1] [--threads 2] [--batch-size 64]
    python bench/metrics.py --quick               # smoke run of parts 1-3 at tiny sizes
    python bench/metrics.py --quick --vit         # smoke run of part 4 at a tiny size
    python bench/metrics.py --n 20 --repeats 1 --released-points 2 --threads 1     # smoke
    python bench/metrics.py --vit --vit-points 8 --threads 1                       # smoke

The paper's ResNet9 at full width (`create_encoder('resnet9')`, random init), Fashion-MNIST images (the first N of
the training set as floats in [0, 1]; random images if the files are missing), CPU:

1. `unitmem(enc, x, n_aug=10, batch_size=B)` (all 8 default layers, augmentation included) against bare batched
   forward passes (eval, no_grad, no hooks) of the same B*10 augmented images per forward; views pre-drawn with
   `draw_views(..., 'aug')`, not timed. Target: memloc / bare <= 1.3.
2. The released scripts' approach: one layer per run, one forward of one image per point and view, a hook on that
   layer, then the per-unit mean (and UnitMem). Timed on `--released-points` points over the same pre-drawn views
   (augmentation not timed, which favours it; `--released-aug` draws each view in the loop, one image at a time,
   and times it) and extrapolated linearly to N. Target: speedup of 1. over it >= 30.
3. `layermem(f, g, x, n_aug=5, top=50, batch_size=B)` for two ResNet9 (init seeds 0 and 1) over the 8 layers against
   bare forward passes of f and g over the same 'pair' views (2*5 per point). Target: memloc / bare <= 1.3.
4. (`--vit`) peak RSS of a fresh subprocess running `unitmem(vit_base, x, rest='median', negative='abs',
   n_aug=K)` on the 12 MLP hidden-activation layers, against the model's size and the float16 store
   (N x units x 2 bytes), and the same with rest='mean' (streamed, no store).

Timings of 1-3 are interleaved over `--repeats` rounds after a warm-up; the median is reported with every run.
Not collected by pytest (a benchmark prints numbers; it does not assert timings)."""
import argparse, json, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import torch

QUICK = dict(n=32, repeats=1, released_points=2, vit_points=16)
FULL = dict(n=1000, repeats=3, released_points=10, vit_points=5000)
UNIT_AUG, LAYER_AUG, TOP = 10, 5, 50
MB = 2**20

def timed(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t

def load_images(n:int):
    "The first `n` Fashion-MNIST training images as uint8 (N,3,32,32), or random ones if the files are missing."
    from memloc.data import load_dataset
    try: d = load_dataset('fashion_mnist'); return d.x[:n].clone(), d.name
    except FileNotFoundError:
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), 'random (Fashion-MNIST missing)'

def pre_draw(x, n_aug, aug, batch_size, views):
    "The views memloc draws, batch by batch (same seeds and starts as `unitmem` / `layermem`)."
    from memloc.passes import draw_views
    return [draw_views(x[i:i+batch_size], n_aug, aug, 0, i, views) for i in range(0, len(x), batch_size)]

def bare_forward(encoders, view_batches):
    "The loop a researcher would write to just run the encoders over the views: eval, no_grad, no hooks."
    for e in encoders: e.eval()
    with torch.no_grad():
        for v in view_batches:
            for e in encoders: e(v)

def released_unitmem(enc, views, n_points, n_aug, layers, aug=None, clean=None):
    "The released scripts: for each layer, for each point and view, one single-image forward with a hook on it."
    from memloc.core import make_generator
    from memloc.passes import point_seed
    from memloc.features import unit_reduce
    from memloc.unitmem import unitmem_from_acts
    mods, out = dict(enc.named_modules()), {}
    enc.eval()
    with torch.no_grad():
        for l in layers:
            got = {}
            h = mods[l].register_forward_hook(lambda m, i, o: got.__setitem__('a', o))
            try:
                mu = []
                for p in range(n_points):
                    s, gen = 0., make_generator(point_seed(0, p))
                    for k in range(n_aug):                          # view drawn here, one image at a time, if `aug`
                        enc(aug(clean[p][None], generator=gen) if aug is not None else views[p*n_aug + k][None])
                        s = s + unit_reduce(got['a'])[0]
                    mu.append(s / n_aug)
            finally: h.remove()
            mu = torch.stack(mu)
            out[l] = unitmem_from_acts(mu) if n_points >= 2 else mu
    return out

def fmt_runs(ts): return ', '.join(f'{t:.2f}s' for t in ts)

def resnet_parts(a):
    from memloc.core import set_seed
    from memloc.encoders import create_encoder, default_layers
    from memloc.augment import simclr_aug
    from memloc.unitmem import unitmem
    from memloc.layermem import layermem
    xu8, name = load_images(a.n)
    x, bs, aug = xu8.float() / 255, a.batch_size, simclr_aug(32)
    set_seed(0); f = create_encoder('resnet9')
    set_seed(1); g = create_encoder('resnet9')
    layers = default_layers(f)
    top = min(TOP, a.n)
    print(f"ResNet9 width 1.0 ({sum(p.numel() for p in f.parameters())/1e6:.2f} M params), {a.n} {name} images "
          f"3x32x32 in [0, 1], {len(layers)} layers, batch {bs} points, {a.threads} threads, torch {torch.__version__}")

    # 1. unitmem vs bare forwards over the same augmented views
    uv = pre_draw(x, UNIT_AUG, aug, bs, 'aug')                              # not timed
    n_img = sum(len(v) for v in uv)
    run_unit = lambda: unitmem(f, x, n_aug=UNIT_AUG, aug=aug, batch_size=bs)
    unitmem(f, x[:bs], n_aug=UNIT_AUG, aug=aug, batch_size=bs); bare_forward([f], uv[:1])   # warm-up
    tb, tm = [], []
    for r in range(a.repeats):
        tb.append(timed(lambda: bare_forward([f], uv))); tm.append(timed(run_unit))

    # 2. the released scripts' loop on a subsample, extrapolated to N
    p = min(a.released_points, a.n)
    sub = torch.cat(uv)[:p * UNIT_AUG]                                       # the views of the first p points
    released_unitmem(f, sub[:1], 1, 1, layers[:1])                           # warm-up (single-image kernels)
    raug = dict(aug=aug, clean=x[:p]) if a.released_aug else {}
    tr = [timed(lambda: released_unitmem(f, sub, p, UNIT_AUG, layers, **raug)) for _ in range(a.repeats)]
    rnote = ('each view drawn in the loop, timed' if a.released_aug else
             'views pre-drawn, not timed: favours it; --released-aug times them')
    del uv, sub

    # 3. layermem vs bare forwards of f and g over the same pair views
    lv = pre_draw(x, LAYER_AUG, aug, bs, 'pair')
    n_pair = sum(len(v) for v in lv)
    run_layer = lambda: layermem(f, g, x, n_aug=LAYER_AUG, top=top, aug=aug, batch_size=bs)
    layermem(f, g, x[:bs], n_aug=LAYER_AUG, top=min(top, len(x[:bs])), aug=aug, batch_size=bs)
    bare_forward([f, g], lv[:1])                                             # warm-up
    lb, lm = [], []
    for r in range(a.repeats):
        lb.append(timed(lambda: bare_forward([f, g], lv))); lm.append(timed(run_layer))
    del lv

    med = statistics.median
    ub, um, rel, lbm, lmm = med(tb), med(tm), med(tr), med(lb), med(lm)
    rel_n = rel * a.n / p
    w = 62
    print(f"\nmedian of {a.repeats} run(s); every run in brackets\n")
    print(f"{'':{w}} {'time':>10} {'ratio':>8}  target  [runs]   (ratio = memloc / bare)")
    print(f"1. UnitMem, {a.n} points x {UNIT_AUG} views = {n_img} images, {len(layers)} layers")
    print(f"{'   bare forwards (views pre-drawn, not timed)':{w}} {ub:9.2f}s {'':>8}  [{fmt_runs(tb)}]")
    print(f"{'   memloc unitmem (augmentation included)':{w}} {um:9.2f}s {um/ub:8.3f}  <= 1.3  [{fmt_runs(tm)}]")
    print(f"2. released scripts' loop: 1 layer/run, batch 1, {len(layers)} runs x {p} points x {UNIT_AUG} views")
    print(f"   ({rnote})")
    print(f"{f'   measured on {p} points':{w}} {rel:9.2f}s {'':>8}  [{fmt_runs(tr)}]")
    print(f"{f'   extrapolated linearly to {a.n} points (x {a.n/p:g})':{w}} {rel_n:9.2f}s {'':>8}")
    print(f"{'   speedup of memloc unitmem (released / memloc)':{w}} {'':>10} {rel_n/um:7.1f}x  >= 30x")
    print(f"3. LayerMem, {a.n} points x 2x{LAYER_AUG} views = {n_pair} images per encoder, f and g, {len(layers)} layers, top {top}")
    print(f"{'   bare forwards of f and g (views pre-drawn, not timed)':{w}} {lbm:9.2f}s {'':>8}  [{fmt_runs(lb)}]")
    print(f"{'   memloc layermem (augmentation included)':{w}} {lmm:9.2f}s {lmm/lbm:8.3f}  <= 1.3  [{fmt_runs(lm)}]")
    print(f"\nthroughput: bare {n_img/ub:.0f} img/s, unitmem {n_img/um:.0f} img/s, released {p*UNIT_AUG*len(layers)/rel:.0f} "
          f"single-image forwards/s, layermem {2*n_pair/lmm:.0f} img/s (f+g)")

def maxrss_mb()->float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: KiB

def vit_child(a):
    "Run in a fresh process: one `unitmem` on ViT-Base; print a JSON line of its peak RSS figures."
    torch.set_num_threads(a.threads)
    from memloc.core import set_seed
    from memloc.encoders import create_encoder
    from memloc.unitmem import unitmem
    r_import = maxrss_mb()
    set_seed(0); vit = create_encoder('vit_base')
    model = sum(t.numel() * t.element_size() for t in [*vit.parameters(), *vit.buffers()])
    r_model = maxrss_mb()
    xu8 = torch.load(a._images); x = xu8.float() / 255; del xu8
    r_before = maxrss_mb()
    t = time.perf_counter()
    res = unitmem(vit, x, rest=a._vit_child, negative='abs', n_aug=a.vit_aug, batch_size=a.batch_size)
    t = time.perf_counter() - t
    r_after = maxrss_mb()
    units = sum(v.numel() for v in res.values())
    print(json.dumps(dict(rest=a._vit_child, import_mb=r_import, model_rss_mb=r_model, before_mb=r_before,
                          after_mb=r_after, seconds=t, units=units, layers=len(res), n=len(x),
                          model_mb=model / MB, images_mb=x.numel() * x.element_size() / MB)))

def vit_part(a):
    xu8, name = load_images(a.vit_points)
    print(f"ViT-Base (timm vit_base_patch16_224 at 32x32, patch 4), unitmem on the 12 MLP hidden-activation layers, "
          f"negative='abs', {len(xu8)} {name} images, n_aug={a.vit_aug}, batch {a.batch_size} points, "
          f"{a.threads} threads; each run in a fresh subprocess, peak RSS = getrusage(RUSAGE_SELF).ru_maxrss")
    res = {}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d)/'images.pt'; torch.save(xu8, path); del xu8
        for rest in ('median', 'mean'):
            cmd = [sys.executable, __file__, '--_vit-child', rest, '--_images', str(path), '--vit-aug', str(a.vit_aug),
                   '--threads', str(a.threads), '--batch-size', str(a.batch_size)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0: sys.exit(f"child for rest={rest!r} failed:\n{p.stdout}\n{p.stderr}")
            res[rest] = json.loads(p.stdout.strip().splitlines()[-1])
    m = res['median']
    store = m['n'] * m['units'] * 2 / MB
    print(f"\n{m['n']} points x {m['units']} units ({m['layers']} layers); model {m['model_mb']:.1f} MiB "
          f"(parameters + buffers); images {m['images_mb']:.1f} MiB float32")
    print(f"theoretical float16 store of rest='median': {m['n']} x {m['units']} x 2 B = {store:.1f} MiB\n")
    w = 30
    print(f"{'peak RSS (MiB) after:':{w}} {'imports':>9} {'model':>9} {'images':>9} {'unitmem':>9} "
          f"{'unitmem adds':>13} {'unitmem time':>13}")
    for rest, r in res.items():
        label = f"rest={rest!r}" + (" (float16 store)" if rest == 'median' else " (streamed)")
        print(f"{label:{w}} {r['import_mb']:9.1f} {r['model_rss_mb']:9.1f} {r['before_mb']:9.1f} {r['after_mb']:9.1f} "
              f"{r['after_mb'] - r['before_mb']:13.1f} {r['seconds']:12.1f}s")
    print(f"\nmedian - mean peak: {m['after_mb'] - res['mean']['after_mb']:.1f} MiB (store {store:.1f} MiB); "
          f"the rest of 'unitmem adds' is the forward pass and the captured activations of one batch.")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, help='points for parts 1-3 (1000)')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--repeats', type=int, help='timed rounds, median reported (3)')
    ap.add_argument('--batch-size', type=int, default=64, help='points per forward pass (x n_aug images)')
    ap.add_argument('--released-points', type=int, help="points the released scripts' loop is timed on (10)")
    ap.add_argument('--released-aug', action='store_true',
                    help="draw the released loop's views inside it, one image at a time, and time them")
    ap.add_argument('--vit', action='store_true', help='run only part 4: ViT-Base peak memory')
    ap.add_argument('--vit-points', type=int, help='points for --vit (5000)')
    ap.add_argument('--vit-aug', type=int, default=1, help='augmentations per point for --vit')
    ap.add_argument('--quick', action='store_true', help='tiny sizes for a smoke run')
    ap.add_argument('--_vit-child', help=argparse.SUPPRESS)
    ap.add_argument('--_images', help=argparse.SUPPRESS)
    a = ap.parse_args()
    for k, v in (QUICK if a.quick else FULL).items():
        if getattr(a, k) is None: setattr(a, k, v)
    if a._vit_child: vit_child(a); sys.exit()
    torch.set_num_threads(a.threads)
    vit_part(a) if a.vit else resnet_parts(a)
