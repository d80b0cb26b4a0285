"""BiSeNet face parser as in zllrunning/face-parsing.PyTorch (``model.py``, ``resnet.py``).

Reference: implementations.md §9. ResNet-18 context path (``cp``) with two attention refinement
modules, global-context branch and two heads; the spatial path is removed in the official code
(the ResNet ``layer2`` output ``feat8`` replaces it); a feature fusion module (``ffm``) and three
``BiSeNetOutput`` heads (``conv_out`` on the fused 1/8 feature, ``conv_out16`` on feat_cp8,
``conv_out32`` on feat_cp16), each upsampled bilinearly (``align_corners=True``) to the input size.

Module names and tensor shapes equal the released ``79999_iter.pth`` state dict (191 tensors,
13,300,416 parameters at ``base=64``), so it loads with ``strict=True``. Nothing is fetched at
construction: the official ``Resnet18.init_weight`` downloads torchvision's ImageNet weights,
ours keeps PyTorch's default init for the backbone (a loaded checkpoint overwrites it anyway).

``base`` scales every width (64 = official); a reduced width is only for CPU training on
SynthFaces and is recorded in our own checkpoints (see :mod:`.weights`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

OFFICIAL_BASE = 64
#: side the public checkpoint was trained and is run at (official test.py / evaluate.py).
OFFICIAL_INPUT_SIZE = 512


def _kaiming(module: nn.Module) -> None:
    """Official ``init_weight``: kaiming_normal_(a=1) on the direct Conv2d children."""
    for ly in module.children():
        if isinstance(ly, nn.Conv2d):
            nn.init.kaiming_normal_(ly.weight, a=1)
            if ly.bias is not None:
                nn.init.constant_(ly.bias, 0)


class ConvBNReLU(nn.Module):
    """conv (no bias) -> BN -> ReLU; keys ``conv.weight``, ``bn.*``."""

    def __init__(self, in_chan: int, out_chan: int, ks: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_chan, out_chan, kernel_size=ks, stride=stride, padding=padding,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_chan)
        _kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    """ResNet basic block of face-parsing ``resnet.py`` (downsample = 1x1 conv + BN)."""

    def __init__(self, in_chan: int, out_chan: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chan, out_chan, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chan)
        self.conv2 = nn.Conv2d(out_chan, out_chan, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chan)
        self.downsample = None
        if in_chan != out_chan or stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_chan, out_chan, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_chan),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = F.relu(self.bn1(self.conv1(x)))
        residual = self.bn2(self.conv2(residual))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _layer(in_chan: int, out_chan: int, bnum: int, stride: int) -> nn.Sequential:
    blocks = [BasicBlock(in_chan, out_chan, stride)]
    blocks += [BasicBlock(out_chan, out_chan, 1) for _ in range(bnum - 1)]
    return nn.Sequential(*blocks)


class Resnet18(nn.Module):
    """ResNet-18 trunk without the FC layer; returns (feat8, feat16, feat32)."""

    def __init__(self, base: int = OFFICIAL_BASE):
        super().__init__()
        b = base
        self.conv1 = nn.Conv2d(3, b, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(b)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _layer(b, b, 2, 1)
        self.layer2 = _layer(b, 2 * b, 2, 2)
        self.layer3 = _layer(2 * b, 4 * b, 2, 2)
        self.layer4 = _layer(4 * b, 8 * b, 2, 2)

    def forward(self, x: torch.Tensor):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        feat8 = self.layer2(x)
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32


class AttentionRefinementModule(nn.Module):
    """ARM: ConvBNReLU 3x3, then x * sigmoid(BN(conv1x1(GAP)))."""

    def __init__(self, in_chan: int, out_chan: int):
        super().__init__()
        self.conv = ConvBNReLU(in_chan, out_chan, ks=3, stride=1, padding=1)
        self.conv_atten = nn.Conv2d(out_chan, out_chan, kernel_size=1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_chan)
        _kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        atten = torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))
        return feat * atten


class ContextPath(nn.Module):
    """ResNet-18 + global context + ARM32/ARM16 with nearest upsampling; (feat8, cp8, cp16)."""

    def __init__(self, base: int = OFFICIAL_BASE):
        super().__init__()
        b = base
        self.resnet = Resnet18(b)
        self.arm16 = AttentionRefinementModule(4 * b, 2 * b)
        self.arm32 = AttentionRefinementModule(8 * b, 2 * b)
        self.conv_head32 = ConvBNReLU(2 * b, 2 * b, ks=3, stride=1, padding=1)
        self.conv_head16 = ConvBNReLU(2 * b, 2 * b, ks=3, stride=1, padding=1)
        self.conv_avg = ConvBNReLU(8 * b, 2 * b, ks=1, stride=1, padding=0)
        _kaiming(self)

    def forward(self, x: torch.Tensor):
        feat8, feat16, feat32 = self.resnet(x)
        avg = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))
        avg_up = F.interpolate(avg, feat32.shape[2:], mode="nearest")
        feat32_sum = self.arm32(feat32) + avg_up
        feat32_up = self.conv_head32(F.interpolate(feat32_sum, feat16.shape[2:], mode="nearest"))
        feat16_sum = self.arm16(feat16) + feat32_up
        feat16_up = self.conv_head16(F.interpolate(feat16_sum, feat8.shape[2:], mode="nearest"))
        return feat8, feat16_up, feat32_up  # 1/8, 1/8, 1/16


class FeatureFusionModule(nn.Module):
    """FFM: ConvBNReLU 1x1 on concat, channel attention (C -> C/4 -> C), out = f*a + f."""

    def __init__(self, in_chan: int, out_chan: int):
        super().__init__()
        self.convblk = ConvBNReLU(in_chan, out_chan, ks=1, stride=1, padding=0)
        self.conv1 = nn.Conv2d(out_chan, out_chan // 4, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(out_chan // 4, out_chan, kernel_size=1, bias=False)
        _kaiming(self)

    def forward(self, fsp: torch.Tensor, fcp: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([fsp, fcp], dim=1))
        atten = F.adaptive_avg_pool2d(feat, 1)
        atten = torch.sigmoid(self.conv2(F.relu(self.conv1(atten))))
        return feat * atten + feat


class BiSeNetOutput(nn.Module):
    """Head: ConvBNReLU 3x3 then conv 1x1 to the classes (no bias)."""

    def __init__(self, in_chan: int, mid_chan: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(in_chan, mid_chan, ks=3, stride=1, padding=1)
        self.conv_out = nn.Conv2d(mid_chan, n_classes, kernel_size=1, bias=False)
        _kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """face-parsing.PyTorch ``BiSeNet(n_classes)``; ``forward`` returns the three logits maps.

    ``forward(x)`` takes normalised images (see :func:`.preprocess.preprocess`) and returns
    ``(out, out16, out32)``, each B x n_classes x H x W; inference uses ``out``.
    ``input_size`` is the side images are resized to before parsing (512 for the public
    checkpoint; None = native size).
    """

    def __init__(self, n_classes: int = 19, base: int = OFFICIAL_BASE,
                 input_size: int | None = OFFICIAL_INPUT_SIZE):
        super().__init__()
        if base < 4 or base % 4:
            raise ValueError(f"BiSeNet base width must be a positive multiple of 4, got {base}")
        self.n_classes = int(n_classes)
        self.base = int(base)
        self.input_size = None if input_size is None else int(input_size)
        b = base
        self.cp = ContextPath(b)
        self.ffm = FeatureFusionModule(4 * b, 4 * b)
        self.conv_out = BiSeNetOutput(4 * b, 4 * b, n_classes)
        self.conv_out16 = BiSeNetOutput(2 * b, b, n_classes)
        self.conv_out32 = BiSeNetOutput(2 * b, b, n_classes)
        _kaiming(self)

    def config(self) -> dict:
        """Constructor arguments, stored in our checkpoints next to the state dict."""
        return {"n_classes": self.n_classes, "base": self.base,
                "input_size": -1 if self.input_size is None else self.input_size}

    def forward(self, x: torch.Tensor):
        size = x.shape[2:]
        feat_res8, feat_cp8, feat_cp16 = self.cp(x)
        feat_fuse = self.ffm(feat_res8, feat_cp8)
        outs = (self.conv_out(feat_fuse), self.conv_out16(feat_cp8), self.conv_out32(feat_cp16))
        return tuple(F.interpolate(o, size, mode="bilinear", align_corners=True) for o in outs)


def load_bisenet(path, device="cpu", **kwargs) -> BiSeNet:
    """See :func:`faceedit_bench.parsing.weights.load_bisenet` (re-exported, INTERFACES.md)."""
    from .weights import load_bisenet as _load

    return _load(path, device=device, **kwargs)


def parse(model: BiSeNet, images, **kwargs) -> torch.Tensor:
    """See :func:`faceedit_bench.parsing.preprocess.parse` (re-exported, INTERFACES.md)."""
    from .preprocess import parse as _parse

    return _parse(model, images, **kwargs)
