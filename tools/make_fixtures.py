#!/usr/bin/env python3
"""Builds the parity fixtures: small random-weight checkpoints in the exact layouts the HRM
authors publish, and PyTorch's AU probabilities for them on the shared photographs.

Run by hand (not in CI), from the repository root, in a venv with torch, torchvision, timm, pillow:

    python3 tools/make_fixtures.py            # writes tests/fixtures/ (and runs make_atypicality_fixture.py)

The models are the real classes (timm's VisionTransformer, torchvision's ResNet and Bottleneck),
made small so the committed files stay around 4 MB; the pre-processing is HRM's
(`Predict/HRM_test_batch.py`): PIL RGB, Resize((224, 224)), ToTensor, Normalize(HRM mean/std).
"""

import argparse
import hashlib
import json
import pathlib
from functools import partial

import numpy as np
import timm
import torch
import torch.nn as nn
import torchvision
from PIL import Image
from torchvision import transforms
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
OUT = ROOT / "tests" / "fixtures"

HRM_MEAN = (0.4434122, 0.36354306, 0.35404983)
HRM_STD = (0.19467306, 0.19811313, 0.1991408)
HRM_TRANSFORM = transforms.Compose([
    transforms.Resize((224, 224)),
    transforms.ToTensor(),
    transforms.Normalize(HRM_MEAN, HRM_STD),
])


def randomise(model, seed):
    """Replaces every parameter and buffer with random values of a sensible scale, so that the
    parity test exercises every weight (timm and torchvision initialise LayerNorm and biases to
    constants, which would hide a mix-up)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if not p.dtype.is_floating_point:
                continue
            r = torch.randn(p.shape, generator=g)
            if name.endswith("running_var"):
                p.copy_(0.5 + r.abs())
            elif p.dim() == 1 and ("norm" in name or "bn" in name or "downsample.1" in name) and name.endswith("weight"):
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


def images():
    return sorted((SHARED / "images").glob("*.jpg"))


def au_probabilities(model, path):
    x = HRM_TRANSFORM(Image.open(path).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        out = model(x)
        if isinstance(out, tuple):  # FMAE-IAT: AU logits are element 0
            out = out[0]
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
    expected = {"torch": torch.__version__, "timm": timm.__version__, "torchvision": torchvision.__version__,
                "pillow": Image.__version__, "fixtures": {}, "pixels": pil_pixels()}
    for name, model, checkpoint, convert_args in fixtures():
        torch.save(checkpoint, OUT / f"{name}.pth")
        expected["fixtures"][name] = {
            "convert_args": convert_args,
            "probabilities": {p.name: au_probabilities(model, p) for p in images()},
        }
        print(f"{name}: {(OUT / f'{name}.pth').stat().st_size / 1e6:.2f} MB")
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    # The atypicality regressor's fixture needs torch alone, so it is a script of its own too.
    import make_atypicality_fixture
    make_atypicality_fixture.main()


if __name__ == "__main__":
    main()
