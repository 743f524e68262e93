#!/usr/bin/env python3
"""Builds the parity fixtures: small random-weight checkpoints in the exact layouts the HRM
authors publish, and PyTorch's AU probabilities for them on the shared photographs.

Run by hand (not in CI), from the repository root, in a venv with torch, torchvision, timm, pillow:

    python3 tools/make_fixtures.py            # writes tests/fixtures/ (and runs make_atypicality_fixture.py)
    python3 tools/make_fixtures.py emofan     # only the fixtures named, the others' entries kept

The models are the real classes (timm's VisionTransformer, torchvision's ResNet and Bottleneck;
ME-GraphAU and EmoFAN from tools/hrm_networks.py, which has no library to take them from),
made small so the committed files stay small; the pre-processing is HRM's
(`Predict/HRM_test_batch.py`): PIL RGB, Resize((224, 224)) (EmoFAN: 256), ToTensor,
Normalize(HRM mean/std).
"""

import argparse
import hashlib
import json
import pathlib
from functools import partial

import sys

import numpy as np
import timm
import torch
import torch.nn as nn
import torchvision
from PIL import Image
from torchvision import transforms
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

import hrm_networks

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
OUT = ROOT / "tests" / "fixtures"

HRM_MEAN = (0.4434122, 0.36354306, 0.35404983)
HRM_STD = (0.19467306, 0.19811313, 0.1991408)


def hrm_transform(side):
    return transforms.Compose([
        transforms.Resize((side, side)),
        transforms.ToTensor(),
        transforms.Normalize(HRM_MEAN, HRM_STD),
    ])


def randomise(model, seed):
    """Replaces every parameter and buffer with random values of a sensible scale, so that the
    parity test exercises every weight (timm and torchvision initialise LayerNorm and biases to
    constants, which would hide a mix-up)."""
    g = torch.Generator().manual_seed(seed)
    norm_types = (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d)
    norm_scales = {f"{m}.weight" for m, module in model.named_modules() if isinstance(module, norm_types)}
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if not p.dtype.is_floating_point or name.endswith("attn_mask"):  # Swin's masks are derived
                continue
            r = torch.randn(p.shape, generator=g)
            if name.endswith("running_var"):
                p.copy_(0.5 + r.abs())
            elif name in norm_scales:
                p.copy_(1.0 + 0.2 * r)
            elif p.dim() == 1:
                p.copy_(0.1 * r)
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 1
                p.copy_(r / fan_in ** 0.5)
    return model


def vit(width, depth, heads, pooling):
    return timm.models.vision_transformer.VisionTransformer(
        img_size=224, patch_size=16, embed_dim=width, depth=depth, num_heads=heads, mlp_ratio=4,
        qkv_bias=True, num_classes=22, global_pool=pooling, fc_norm=(pooling == "avg"),
        norm_layer=partial(nn.LayerNorm, eps=1e-6))


class FmaeIat(nn.Module):
    """FMAE-IAT: a ViT whose forward returns (AU logits, identity logits)."""

    def __init__(self, width, depth, heads, identities):
        super().__init__()
        self.vit = vit(width, depth, heads, "token")
        self.ID_head = nn.Linear(width, identities)

    def forward(self, x):
        features = self.vit.forward_head(self.vit.forward_features(x), pre_logits=True)
        return self.vit.head(features), self.ID_head(features)

    def hrm_state_dict(self):
        sd = {k: v for k, v in self.vit.state_dict().items()}
        sd.update({f"ID_head.{k}": v for k, v in self.ID_head.state_dict().items()})
        return sd


def small_resnet(block, layers, planes, stem):
    """torchvision's ResNet with its own `_make_layer` and blocks, at small widths."""
    model = ResNet(block, [1, 1, 1, 1], num_classes=22)
    model.inplanes = stem
    model.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(stem)
    model.layer1 = model._make_layer(block, planes[0], layers[0])
    model.layer2 = model._make_layer(block, planes[1], layers[1], stride=2)
    model.layer3 = model._make_layer(block, planes[2], layers[2], stride=2)
    model.layer4 = model._make_layer(block, planes[3], layers[3], stride=2)
    model.fc = nn.Linear(planes[3] * block.expansion, 22)
    return model


def fixtures():
    """(name, model, checkpoint object, extra `hrm convert` arguments)."""
    torch.manual_seed(0)
    gap = randomise(vit(128, 1, 2, "avg"), 1).eval()
    yield "mae_face_gap", gap, {"model": gap.state_dict(), "epoch": 8}, []

    cls = randomise(vit(64, 2, 1, "token"), 2).eval()
    yield "mae_face_cls", cls, {"model": cls.state_dict(), "epoch": 3}, []

    iat = randomise(FmaeIat(64, 2, 2, 98), 3).eval()
    optimizer = torch.optim.SGD(iat.parameters(), lr=1e-3, momentum=0.9)
    iat(torch.zeros(1, 3, 224, 224))[0].sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    randomise(iat, 3)  # the step moved the weights; keep the documented values
    args = argparse.Namespace(model="vit_large_patch16", batch_size=64, epochs=30, lr=None, blr=5e-4,
                              layer_decay=0.65, weight_decay=0.05, drop_path=0.1, nb_classes=22,
                              global_pool=False, output_dir="./output_dir", seed=0, dist_eval=True,
                              input_size=224, smoothing=0.1, finetune="FMAE_ViT_large.pth")
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 0}
    checkpoint = {"model": iat.hrm_state_dict(), "optimizer": optimizer.state_dict(), "epoch": 29,
                  "scaler": scaler, "args": args}
    yield "fmae_iat", iat, checkpoint, ["--heads", "2"]

    bottleneck = randomise(small_resnet(Bottleneck, [1, 2, 1, 1], [8, 16, 32, 64], 16), 4).eval()
    yield "resnet_bottleneck", bottleneck, bottleneck.state_dict(), []

    basic = randomise(small_resnet(BasicBlock, [2, 1, 1, 1], [8, 16, 32, 64], 8), 5).eval()
    yield "resnet_basic", basic, {"state_dict": {f"module.{k}": v for k, v in basic.state_dict().items()}}, []


def dataparallel(state_dict):
    """The keys as `nn.DataParallel` saves them."""
    return {f"module.{k}": v for k, v in state_dict.items()}


def graph_fixtures():
    """ME-GraphAU as `train_stage1.py` saves it: {'epoch', 'state_dict' (DataParallel), 'optimizer'}."""
    backbone = small_resnet(Bottleneck, [1, 1, 1, 1], [8, 16, 32, 64], 16)
    dots = randomise(hrm_networks.MEFARG(backbone, nodes=22, neighbors=4, metric="dots"), 6).eval()
    optimizer = torch.optim.AdamW(dots.parameters(), lr=1e-4)
    yield "megraphau_resnet", dots, {"epoch": 19, "state_dict": dataparallel(dots.state_dict()),
                                     "optimizer": optimizer.state_dict()}, []

    # A basic-block backbone, the cosine metric with K = 3 saved in the checkpoint's `args`, and
    # L1 with K = 5 given on the command line.
    backbone = small_resnet(BasicBlock, [1, 1, 1, 1], [8, 16, 32, 64], 8)
    cosine = randomise(hrm_networks.MEFARG(backbone, nodes=22, neighbors=3, metric="cosine"), 7).eval()
    args = argparse.Namespace(arc="resnet18", metric="cosine", neighbor_num=3, lr=1e-4, num_classes=22)
    yield "megraphau_cosine", cosine, {"epoch": 3, "state_dict": dataparallel(cosine.state_dict()),
                                       "args": args}, []
    # A Swin backbone (windows shifted in the first three stages, one window in the last).
    swin = hrm_networks.SwinTokens(dim=8, depths=(2, 2, 2, 2), heads=(1, 2, 2, 4), window=7)
    swin = randomise(hrm_networks.MEFARG(swin, nodes=22, neighbors=4, metric="dots"), 10).eval()
    yield "megraphau_swin", swin, {"epoch": 11, "state_dict": dataparallel(swin.state_dict())}, []

    # Ties: AUs 2, 4 and 6 share AU 1's class_linears, so their nodes are equal bit for bit and
    # every row of the graph holds exact ties; `topk` + `>=` keeps every node tied with the K-th.
    backbone = small_resnet(BasicBlock, [1, 1, 1, 1], [8, 16, 32, 64], 8)
    ties = randomise(hrm_networks.MEFARG(backbone, nodes=22, neighbors=4, metric="dots"), 11)
    with torch.no_grad():
        for twin in (1, 2, 3):
            for p, q in zip(ties.head.class_linears[twin].parameters(), ties.head.class_linears[0].parameters()):
                p.copy_(q)
            for p, q in zip(ties.head.class_linears[twin].buffers(), ties.head.class_linears[0].buffers()):
                p.copy_(q)
    yield "megraphau_ties", ties.eval(), {"epoch": 3, "state_dict": dataparallel(ties.state_dict())}, []

    backbone = small_resnet(BasicBlock, [1, 1, 1, 1], [8, 16, 32, 64], 8)
    l1 = randomise(hrm_networks.MEFARG(backbone, nodes=22, neighbors=5, metric="l1"), 8).eval()
    yield "megraphau_l1", l1, {"epoch": 3, "state_dict": dataparallel(l1.state_dict())}, \
        ["--metric", "l1", "--neighbors", "5"]


def emofan_fixture():
    """EmoFAN as a raw `EmoNet` state dict (`feature.fan.*`, `predictor.*`), 2 stacks of
    depth-4 hourglasses as HRM's, at small widths."""
    model = hrm_networks.EmoNet(outputs=22, stacks=2, depth=4, stem=16, mid=32, features=32, landmarks=68,
                                head_width=32, head_blocks=4, head_hidden=16)
    model = calibrate(randomise(model, 9), 256)
    yield "emofan", model, model.state_dict(), []


def calibrate(model, side):
    """Sets every BatchNorm's running statistics to those of the photographs (and their mirror
    images) through the random network, as training would: 40-odd random ConvBlocks in a row
    otherwise grow the activations a million-fold, and a sigmoid of such logits tests nothing."""
    x = torch.stack([hrm_transform(side)(Image.open(p).convert("RGB")) for p in images()])
    x = torch.cat([x, x.flip(3)])
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the one batch
    with torch.no_grad():
        model.train()(x)
    return model.eval()


def images():
    return sorted((SHARED / "images").glob("*.jpg"))


def au_probabilities(model, path):
    """HRM's demo: the model's scores through a sigmoid, except ME-GraphAU's, which are scores."""
    side = 256 if isinstance(model, hrm_networks.EmoNet) else 224
    x = hrm_transform(side)(Image.open(path).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        out = model(x)
        if isinstance(out, tuple):  # FMAE-IAT: AU logits are element 0
            out = out[0]
        if isinstance(model, hrm_networks.MEFARG):
            return out[0].tolist()
        return torch.sigmoid(out)[0].tolist()


def pil_pixels():
    """sha256 of PIL's decoded and resized RGB pixels: the Rust decoder and resampler must
    produce the same bytes."""
    result = {}
    for path in images():
        rgb = Image.open(path).convert("RGB")
        resized = rgb.resize((224, 224), Image.BILINEAR)
        result[path.name] = {
            "size": list(rgb.size),
            "decoded_sha256": hashlib.sha256(np.asarray(rgb).tobytes()).hexdigest(),
            "resized_sha256": hashlib.sha256(np.asarray(resized).tobytes()).hexdigest(),
        }
    return result


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    only = set(sys.argv[1:])
    expected = {"torch": torch.__version__, "timm": timm.__version__, "torchvision": torchvision.__version__,
                "pillow": Image.__version__, "fixtures": {}, "pixels": pil_pixels()}
    if only:
        expected["fixtures"] = json.loads((OUT / "expected.json").read_text())["fixtures"]
    for name, model, checkpoint, convert_args in (*fixtures(), *graph_fixtures(), *emofan_fixture()):
        if only and name not in only:
            continue
        torch.save(checkpoint, OUT / f"{name}.pth")
        expected["fixtures"][name] = {
            "convert_args": convert_args,
            "probabilities": {p.name: au_probabilities(model, p) for p in images()},
        }
        print(f"{name}: {(OUT / f'{name}.pth').stat().st_size / 1e6:.2f} MB")
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    if not only:
        # The atypicality regressor's fixture needs torch alone, so it is a script of its own too.
        import make_atypicality_fixture
        make_atypicality_fixture.main()


if __name__ == "__main__":
    main()
