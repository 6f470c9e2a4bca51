"memloc-measure end to end: two checkpoints and a folder or tensor file of images give the tables; every mismatch is a clear error."
import json, subprocess, sys
import pandas as pd, torch
from PIL import Image
from memloc.testing import tiny_encoder, tiny_data

def _cli(*args, env=None):
    return subprocess.run([sys.executable, '-c', 'from memloc.measure import measure_main; measure_main()', *map(str, args)],
                          capture_output=True, text=True, timeout=600)

def _setup(d):
    f, g = tiny_encoder(0), tiny_encoder(1)
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in f.state_dict().items()}}, d/'f.ckpt')   # solo-learn style
    torch.save(g.state_dict(), d/'g.pt')                                                                # a plain state dict
    torch.save((tiny_data(24) * 255).round().to(torch.uint8), d/'x.pt')
    for k, idx in dict(c=range(8), i=range(8, 16), e=range(16, 24), bad=range(20, 30), over=range(4, 12)).items():
        (d/f'{k}.json').write_text(json.dumps(list(idx)))

def test_measure_checkpoints_on_a_tensor_file(tmp_path, runs):
    _setup(tmp_path)
    r = _cli('--f', tmp_path/'f.ckpt', '--g', tmp_path/'g.pt', '--arch', 'resnet9', '--arch-kw', 'width=0.125', '--images', tmp_path/'x.pt',
             '--candidates', tmp_path/'c.json', '--independent', tmp_path/'i.json', '--extra', tmp_path/'e.json',
             '--n-aug', 2, '--top', 3, '--out', tmp_path/'out')
    assert r.returncode == 0, r.stderr[-3000:]
    bs = pd.read_csv(tmp_path/'out'/'sslmem_by_set.csv')
    assert {'candidates_minus_independent', 'candidates_minus_extra', 'extra_minus_independent'} <= set(bs.columns) and len(bs) == 8
    assert len(pd.read_csv(tmp_path/'out'/'layermem.csv')) == 8 and 'fg_diff' in pd.read_csv(tmp_path/'out'/'unitmem_layers.csv')
    assert 'tables in' in r.stdout

def test_measure_an_image_folder(tmp_path, runs):
    _setup(tmp_path)
    for c in range(2):
        (tmp_path/'imgs'/f'c{c}').mkdir(parents=True)
        for i in range(12): Image.new('RGB', (40, 36), (20 * i, 100 * c, 50)).save(tmp_path/'imgs'/f'c{c}'/f'{i}.png')
    r = _cli('--f', tmp_path/'f.ckpt', '--g', tmp_path/'g.pt', '--arch', 'resnet9', '--arch-kw', 'width=0.125', '--images', tmp_path/'imgs',
             '--candidates', tmp_path/'c.json', '--independent', tmp_path/'i.json', '--n-aug', 2, '--top', 3, '--out', tmp_path/'out')
    assert r.returncode == 0, r.stderr[-3000:]

def test_measure_mismatches_are_clear_errors(tmp_path, runs):
    _setup(tmp_path)
    base = ['--f', tmp_path/'f.ckpt', '--g', tmp_path/'g.pt', '--arch', 'resnet9', '--arch-kw', 'width=0.125', '--images', tmp_path/'x.pt',
            '--n-aug', 2, '--out', tmp_path/'out']
    cases = {
        'indices outside [0, 24)': [*base, '--candidates', tmp_path/'bad.json', '--independent', tmp_path/'i.json'],
        'share 4 points': [*base, '--candidates', tmp_path/'c.json', '--independent', tmp_path/'over.json'],
        'Shapes differ': ['--f', tmp_path/'f.ckpt', '--g', tmp_path/'g.pt', '--arch', 'resnet9', '--images', tmp_path/'x.pt',
                                        '--candidates', tmp_path/'c.json', '--independent', tmp_path/'i.json'],   # width 1: shapes differ
        'Unknown architecture': [*base[:5], 'resnet7', *base[6:], '--candidates', tmp_path/'c.json', '--independent', tmp_path/'i.json'],
        'No images at': [*base[:9], tmp_path/'nope', *base[10:], '--candidates', tmp_path/'c.json', '--independent', tmp_path/'i.json'],
    }
    for msg, args in cases.items():
        r = _cli(*args)
        assert r.returncode != 0 and msg in r.stderr and 'Traceback' not in r.stderr, (msg, r.stderr[-1500:])
