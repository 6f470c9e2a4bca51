"""One call on a GPU machine: memloc's training and metric passes against bare loops, a paper-preset pair extrapolated
from a measured slice, and the peak memory of each part, written as one table (Markdown + JSON, device named).

    python bench/device.py --out device-report                    # on a GPU machine: about 5 minutes
    python bench/device.py --device cpu --quick --out /tmp/dev    # tiny sizes on the CPU (seconds; the test runs this)

Parts, each timed side by side in this process after a warm-up (best of `--repeats` interleaved rounds):

- training: SimCLR ResNet9 (width 1) at batch 1,024 with data and augmentation resident on the device — memloc's
  `train` (plain engine, channels_last, a checkpoint every epoch) against the bare loop a researcher writes by hand
  (channels_last); the bare loop in bfloat16 autocast for information, with how far the encoder's output moves from
  float32 against a stated tolerance (memloc's metrics are computed in float32);
- the metric passes `alignment` (f and g, 'pair' views, K = 5), `unitmem` (K = 10) and `classmem` against bare
  eval / no_grad forwards over exactly the images memloc feeds, at the fastest of several batch sizes and both layouts;
- a paper-preset pair (f and g, 45,000 training images each, 600 epochs) extrapolated from the measured training
  throughput: 2 × 600 × 45,000 images at that rate (data loading is on the device, so throughput does not depend on
  the dataset's size; Fashion-MNIST, padded to 3×32×32, stands in for CIFAR10).

Targets: training ≤ 1.1× and passes ≤ 1.2× of the bare loops; a paper-preset pair under one hour.
Not collected by pytest (tests/test_bench_device.py runs the --quick form).
"""
import argparse, json, os, platform, resource, sys, tempfile, time
from pathlib import Path
import torch
os.environ.setdefault('MEMLOC_PROGRESS', 'none')
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import hardware, sync
from train import bare_loop, memloc_loop
from passes import images_of as pass_images     # the images memloc feeds each pass, drawn as memloc draws them

TRAIN_TARGET, PASS_TARGET, PAIR_TARGET_H = 1.1, 1.2, 1.0
BF16_TOLERANCE = 1e-2                    # largest relative change of the encoder's output that bf16 may cause
PAPER_IMAGES = 2 * 600 * 45_000          # f and g, 600 epochs, S_S + S_C (or S_S + S_I) = 45,000 images each

def timed(fn, device):
    sync(device); t = time.perf_counter(); fn(); sync(device); return time.perf_counter() - t

def reset_peak(device):
    if torch.device(device).type == 'cuda': torch.cuda.reset_peak_memory_stats()

def peak_mib(device)->float:
    "Peak memory of the part just run: the GPU's allocator, else this process's peak resident set (CPU, cumulative)."
    if torch.device(device).type == 'cuda': return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def bare_train(x, epochs, batch_size, width, device, autocast=False, compile_=False):
    "The SimCLR loop a researcher writes by hand (bench/train.py's), channels_last, data already on `device`."
    return bare_loop(x, epochs, batch_size, width, device, torch.channels_last, autocast, compile_=compile_)

def memloc_train(data, epochs, batch_size, width, device, ckpt):
    "memloc's `train` as the chapters call it (bench/train.py's)."
    return memloc_loop(data, epochs, batch_size, width, device, ckpt)

def bare_forward(encoders, views, bs, layout, device):
    with torch.no_grad():
        for i in range(0, len(views), bs):
            v = views[i:i+bs].to(device, memory_format=layout)
            for e in encoders: e(v)

def bf16_change(x, width, device)->float:
    "Largest relative change of a trained-from-init encoder's output under bfloat16 autocast, over a batch."
    from memloc.core import set_seed
    from memloc.encoders import create_encoder
    set_seed(0); enc = create_encoder('resnet9', width=width).to(device).eval()
    xb = x[:256].float().to(device) / 255
    with torch.no_grad():
        a = enc(xb).float()
        with torch.autocast(torch.device(device).type, torch.bfloat16): b = enc(xb).float()
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))

def main(a):
    from memloc.data import load_dataset, synthetic, TensorData
    from memloc.encoders import create_encoder
    from memloc.sslmem import alignment
    from memloc.unitmem import unitmem, classmem
    from memloc.core import set_seed
    dev = a.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if torch.device(dev).type == 'cuda' and not torch.cuda.is_available(): raise SystemExit("bench/device.py: no CUDA device here; pass --device cpu.")
    if torch.device(dev).type == 'cpu': torch.set_num_threads(a.threads)
    try: data = load_dataset('fashion_mnist')
    except FileNotFoundError: data = synthetic(n=max(a.n_train, a.n_pass))
    train_data = data[torch.arange(min(a.n_train, len(data)))]
    train_data = TensorData(train_data.x.to(dev), train_data.y.to(dev), train_data.name)   # resident on the device
    x, y = data.x[:a.n_pass].to(dev), data.y[:a.n_pass].to(dev)
    rows, t0 = [], time.time()
    def row(part, memloc_s, bare_s, images, target, peak, note=''):
        rows.append(dict(part=part, memloc_s=round(memloc_s, 4), bare_s=round(bare_s, 4), ratio=round(memloc_s / bare_s, 3),
                         images_per_s=round(images / memloc_s, 1), target=target, met=memloc_s / bare_s <= target,
                         peak_mib=round(peak, 1), note=note))
    # training
    imgs = a.epochs * len(train_data)
    bare_train(train_data.x[:a.batch_size], 1, a.batch_size, a.width, dev)                  # warm-up
    tb, tm = [], []
    with tempfile.TemporaryDirectory() as d:
        for r in range(a.repeats):
            reset_peak(dev); tb.append(timed(lambda: bare_train(train_data.x, a.epochs, a.batch_size, a.width, dev), dev)); pb = peak_mib(dev)
            reset_peak(dev); tm.append(timed(lambda: memloc_train(train_data, a.epochs, a.batch_size, a.width, dev, Path(d)/f'r{r}.pt'), dev))
            pm = peak_mib(dev)
    row(f'training (SimCLR ResNet9 width {a.width}, batch {a.batch_size})', min(tm), min(tb), imgs, TRAIN_TARGET, pm,
        f'bare loop peak {pb:.0f} MiB')
    t16 = timed(lambda: bare_train(train_data.x, a.epochs, a.batch_size, a.width, dev, autocast=True), dev)
    change = bf16_change(train_data.x, a.width, dev)
    extra = dict(bf16_bare_images_per_s=round(imgs / t16, 1), bf16_vs_float32_time=round(t16 / min(tb), 3),
                 bf16_output_change=change, bf16_within_tolerance=change <= BF16_TOLERANCE)
    if a.compile:
        try: extra['compiled_bare_images_per_s'] = round(imgs / timed(lambda: bare_train(train_data.x, a.epochs, a.batch_size, a.width, dev, compile_=True), dev), 1)
        except Exception as e: extra['compiled_bare_error'] = f'{type(e).__name__}: {e}'[:200]
    # metric passes
    set_seed(0); f = create_encoder('resnet9', width=a.width).to(dev).eval()
    set_seed(1); g = create_encoder('resnet9', width=a.width).to(dev).eval()
    passes = {'alignment (f and g, K = 5)': (lambda: alignment([f, g], x, n_aug=5), [f, g], 'alignment', 5),
              'unitmem (K = 10)': (lambda: unitmem(f, x, n_aug=10), [f], 'unitmem', 10),
              'classmem (clean images)': (lambda: classmem(f, x, y, per_class=None), [f], 'classmem', 0)}
    for part, (call, encs, name, k) in passes.items():
        views = pass_images(name, x.cpu(), k).to(dev)
        sizes = [b for b in a.pass_batches if b <= len(views)] or [len(views)]
        call(); bare_forward(encs, views[:sizes[0]], sizes[0], torch.channels_last, dev)       # warm-up
        tm, tbest = [], {}
        for _ in range(a.repeats):
            reset_peak(dev); tm.append(timed(call, dev)); pm = peak_mib(dev)
            for lay in (torch.contiguous_format, torch.channels_last):
                for b in sizes: tbest.setdefault((str(lay).split('.')[-1], b), []).append(timed(lambda: bare_forward(encs, views, b, lay, dev), dev))
        (lay, b), t_bare = min(((key, min(v)) for key, v in tbest.items()), key=lambda kv: kv[1])
        row(part, min(tm), t_bare, len(views) * len(encs), PASS_TARGET, pm, f'fastest bare: {lay}, {b} images per forward')
    train_rate = rows[0]['images_per_s']
    pair_h = PAPER_IMAGES / train_rate / 3600
    report = dict(device=hardware(dev), torch=torch.__version__, python=platform.python_version(), quick=a.quick,
                  dataset=data.name, n_train=len(train_data), epochs=a.epochs, n_pass=len(x), wall_s=round(time.time() - t0, 1),
                  rows=rows, **extra, paper_pair_hours=round(pair_h, 3), paper_pair_met=pair_h <= PAIR_TARGET_H,
                  paper_pair_basis=(f"2 encoders x 600 epochs x 45,000 images = {PAPER_IMAGES:,} images at memloc's measured "
                                    f"training rate of {train_rate:,.0f} images/s ({len(train_data):,} images x {a.epochs} "
                                    "epoch(s) on the device, checkpoint every epoch)"))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    (out/'device.json').write_text(json.dumps(report, indent=1))
    md = [f"# memloc on {report['device']}", '', f"torch {report['torch']}, {report['dataset']}, wall {report['wall_s']} s"
          + (' (--quick: tiny sizes, not a measurement)' if a.quick else ''), '',
          '| part | memloc (s) | bare (s) | memloc / bare | target | met | images/s (memloc) | peak memory (MiB) | note |',
          '|---|---:|---:|---:|---:|---|---:|---:|---|']
    md += [f"| {r['part']} | {r['memloc_s']} | {r['bare_s']} | {r['ratio']} | {r['target']} | {'yes' if r['met'] else 'no'} | "
           f"{r['images_per_s']} | {r['peak_mib']} | {r['note']} |" for r in rows]
    md += ['', f"Paper-preset pair: {pair_h:.2f} h (target {PAIR_TARGET_H} h: {'met' if pair_h <= PAIR_TARGET_H else 'not met'}); "
           f"basis: {report['paper_pair_basis']}.",
           f"bfloat16 autocast (bare loop): {extra['bf16_bare_images_per_s']} images/s, {extra['bf16_vs_float32_time']}x the "
           f"float32 time; the encoder's output moves by {change:.2e} relative ({'within' if change <= BF16_TOLERANCE else 'beyond'} "
           f"the tolerance {BF16_TOLERANCE}); memloc's metrics are computed in float32."]
    (out/'device.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', required=True, help='folder for device.md and device.json')
    ap.add_argument('--device', default=None, help='cuda | cpu (default: CUDA if available)')
    ap.add_argument('--n-train', type=int, default=20_480, help='training images of the measured slice')
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--batch-size', type=int, default=1024)
    ap.add_argument('--n-pass', type=int, default=4096, help='points of the metric passes')
    ap.add_argument('--width', type=float, default=1.0)
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--threads', type=int, default=2, help='CPU threads (CPU runs only)')
    ap.add_argument('--compile', action='store_true', help='also time the bare loop under torch.compile')
    ap.add_argument('--quick', action='store_true', help='tiny sizes: a check that the script runs, not a measurement')
    a = ap.parse_args()
    a.pass_batches = (256, 512, 1024, 2048)
    if a.quick: a.n_train, a.epochs, a.batch_size, a.n_pass, a.width, a.repeats, a.threads, a.pass_batches = 128, 1, 64, 32, 0.25, 1, 1, (16, 32)
    main(a)
