"""An encoder really trained with lightly, saved as lightly users save it, loaded with `load_encoder` and measured by
memloc: `layermem`, `unitmem` and `measure` (the tables of `memloc-measure`)."""
import pytest
import torch
from torch import nn

lightly = pytest.importorskip('lightly', reason="lightly is not installed: pip install -e '.[dev]' (or "
                              "'memloc[lightly]') in the same pip command as the torch pins, as .ci/setup does.")
import torchvision
from torchvision.transforms.functional import to_pil_image
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from lightly.transforms import SimCLRTransform
from memloc.encoders import load_encoder, with_normalization
from memloc.layermem import layermem
from memloc.unitmem import unitmem
from memloc.measure import measure

STAGES = ['1.4', '1.5', '1.6', '1.7']   # ResNet18's four stages, behind the normalisation

def resnet18_backbone()->nn.Sequential:
    "lightly's backbone: a torchvision ResNet18 without its classifier."
    return nn.Sequential(*list(torchvision.models.resnet18().children())[:-1])

def train_with_lightly(images, steps:int=3, seed:int=0)->nn.Module:
    "The backbone of a SimCLR model trained by lightly (its transform, head and loss) for `steps` optimizer steps."
    torch.manual_seed(seed)
    backbone, head, criterion = resnet18_backbone(), SimCLRProjectionHead(512, 512, 128), NTXentLoss()
    tf = SimCLRTransform(input_size=32, gaussian_blur=0.0)
    views = [tf(to_pil_image(x)) for x in images]
    opt = torch.optim.SGD([*backbone.parameters(), *head.parameters()], lr=0.06)
    for step in range(steps):
        batch = views[(step * 16) % len(views):][:16]
        z0, z1 = (head(backbone(torch.stack([v[i] for v in batch])).flatten(1)) for i in (0, 1))
        loss = criterion(z0, z1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return backbone

def test_an_encoder_trained_with_lightly_is_loaded_and_measured(tmp_path):
    torch.set_num_threads(1)
    x = torch.rand(48, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cand, indep = torch.arange(16, 32), torch.arange(32, 48)
    trained = {'f': train_with_lightly(x[:32]), 'g': train_with_lightly(torch.cat([x[:16], x[32:]]))}
    for name, backbone in trained.items(): torch.save(backbone.state_dict(), tmp_path/f'{name}.pth')
    torch.manual_seed(0)
    untrained = resnet18_backbone()
    f, g = (with_normalization(load_encoder(resnet18_backbone(), tmp_path/f'{n}.pth')) for n in ('f', 'g'))
    assert all(torch.equal(v, f[1].state_dict()[k]) for k, v in trained['f'].state_dict().items())
    assert not torch.equal(untrained[0].weight, f[1][0].weight)           # lightly's steps changed the weights
    lm = layermem(f, g, x[cand], layers=STAGES, top=4, n_aug=2).to_frame()
    assert list(lm.layer) == STAGES and lm.layermem.notna().all()
    units = unitmem(f, x[cand], layers=STAGES, n_aug=2)
    assert [len(units[s]) for s in STAGES] == [64, 128, 256, 512]
    assert all(((u >= 0) & (u <= 1)).all() for u in units.values())
    tables = measure(f, g, x, cand, indep, layers=STAGES, n_aug=2, top=4, out_dir=tmp_path/'tables')
    assert set(tables) == {'sslmem_by_set', 'layermem', 'unitmem_layers'}
    assert (tmp_path/'tables'/'unitmem_layers.csv').exists()
