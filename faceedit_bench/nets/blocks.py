"""Shared network blocks (conv/deconv/linear blocks, residual block, PatchGAN trunk, FC heads).

The block layout (a ``layers`` ``nn.Sequential`` of ``[conv, norm, activation]``) follows
elvisyjlin/AttGAN-PyTorch ``nn.py`` so that the official state-dict keys
(``enc_layers.0.layers.0.weight``, ``fc_adv.0.layers.0.weight`` ...) are ours too. As there, a
conv/linear layer carries a bias only when no normalisation follows it (``norm_fn == 'none'``).
The residual block and the PatchGAN trunk follow yunjey/stargan ``model.py``.

Norm choices: ``'batchnorm'``, ``'instancenorm'`` (affine, no running stats, as the official
``nn.InstanceNorm2d(n, affine=True)``), ``'layernorm'`` (TF ``slim.layer_norm`` semantics: per
sample over C x H x W, per-channel scale and shift; i.e. ``GroupNorm(1, C)``), ``'none'``.
Activation choices: ``'relu'``, ``'lrelu'`` (slope ``lrelu_slope``; AttGAN-PyTorch uses torch's
default 0.01, the TF codes 0.2), ``'sigmoid'``, ``'tanh'``, ``'none'``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

NORMS = ("none", "batchnorm", "instancenorm", "layernorm")
ACTIVATIONS = ("none", "relu", "lrelu", "sigmoid", "tanh")


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unsupported {what} {value!r}; expected one of {allowed}")
    return value


def norm_2d(fn: str, n: int, eps: float | None = None, momentum: float | None = None) -> list[nn.Module]:
    """The normalisation layer(s) for a conv output of ``n`` channels (empty list for 'none').

    ``eps``/``momentum`` default to torch's (BN 1e-5/0.1, IN 1e-5, LN 1e-5); the TF codes use
    BN eps 1e-3 / decay 0.999 (momentum 0.001) and IN eps 1e-6 (implementations.md §1.1).
    """
    _check(fn, NORMS, "normalization")
    if fn == "none":
        return []
    if fn == "batchnorm":
        kw = {}
        if eps is not None:
            kw["eps"] = eps
        if momentum is not None:
            kw["momentum"] = momentum
        return [nn.BatchNorm2d(n, **kw)]
    if fn == "instancenorm":
        return [nn.InstanceNorm2d(n, affine=True, eps=1e-5 if eps is None else eps)]
    return [nn.GroupNorm(1, n, eps=1e-5 if eps is None else eps)]


class Squeeze(nn.Module):
    """``x.squeeze(dim)`` as a module (AttGAN-PyTorch 1-D instance norm wrapper)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.squeeze(self.dim)


class Unsqueeze(Squeeze):
    """``x.unsqueeze(dim)`` as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(self.dim)


def norm_1d(fn: str, n: int, eps: float | None = None, momentum: float | None = None) -> list[nn.Module]:
    """Normalisation for a linear output; 'instancenorm' as AttGAN-PyTorch (unsqueeze, IN1d, squeeze)."""
    _check(fn, NORMS, "normalization")
    if fn == "none":
        return []
    e = 1e-5 if eps is None else eps
    if fn == "batchnorm":
        return [nn.BatchNorm1d(n, eps=e, momentum=0.1 if momentum is None else momentum)]
    if fn == "instancenorm":
        return [Unsqueeze(-1), nn.InstanceNorm1d(n, affine=True, eps=e), Squeeze(-1)]
    return [nn.LayerNorm(n, eps=e)]


def activation(fn: str, lrelu_slope: float = 0.01, inplace: bool = False) -> list[nn.Module]:
    """The activation layer for ``fn`` (empty list for 'none')."""
    _check(fn, ACTIVATIONS, "activation")
    if fn == "none":
        return []
    if fn == "relu":
        return [nn.ReLU(inplace=inplace)]
    if fn == "lrelu":
        return [nn.LeakyReLU(lrelu_slope, inplace=inplace)]
    return [nn.Sigmoid() if fn == "sigmoid" else nn.Tanh()]


class _Block(nn.Module):
    """``layers``: [core, norm..., activation...] (AttGAN-PyTorch layout and key names)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LinearBlock(_Block):
    """Linear -> norm -> activation; bias only without norm (AttGAN-PyTorch ``nn.LinearBlock``)."""

    def __init__(self, n_in: int, n_out: int, norm_fn: str = "none", acti_fn: str = "none",
                 lrelu_slope: float = 0.01, norm_eps: float | None = None) -> None:
        super().__init__()
        layers = [nn.Linear(n_in, n_out, bias=(norm_fn == "none"))]
        layers += norm_1d(norm_fn, n_out, eps=norm_eps)
        layers += activation(acti_fn, lrelu_slope)
        self.layers = nn.Sequential(*layers)


class Conv2dBlock(_Block):
    """Conv2d -> norm -> activation; bias only without norm (AttGAN-PyTorch ``nn.Conv2dBlock``)."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int = 0, norm_fn: str = "none", acti_fn: str = "none",
                 lrelu_slope: float = 0.01, norm_eps: float | None = None,
                 norm_momentum: float | None = None) -> None:
        super().__init__()
        layers = [nn.Conv2d(n_in, n_out, kernel_size, stride=stride, padding=padding,
                            bias=(norm_fn == "none"))]
        layers += norm_2d(norm_fn, n_out, eps=norm_eps, momentum=norm_momentum)
        layers += activation(acti_fn, lrelu_slope)
        self.layers = nn.Sequential(*layers)


class ConvTranspose2dBlock(_Block):
    """ConvTranspose2d -> norm -> activation (AttGAN-PyTorch ``nn.ConvTranspose2dBlock``).

    ``kernel 4, stride 2, padding 1`` doubles the size, as TF ``conv2d_transpose`` 'SAME' does.
    """

    def __init__(self, n_in: int, n_out: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int = 0, norm_fn: str = "none", acti_fn: str = "none",
                 lrelu_slope: float = 0.01, norm_eps: float | None = None,
                 norm_momentum: float | None = None) -> None:
        super().__init__()
        layers = [nn.ConvTranspose2d(n_in, n_out, kernel_size, stride=stride, padding=padding,
                                     bias=(norm_fn == "none"))]
        layers += norm_2d(norm_fn, n_out, eps=norm_eps, momentum=norm_momentum)
        layers += activation(acti_fn, lrelu_slope)
        self.layers = nn.Sequential(*layers)


def conv_trunk(dim: int, n_layers: int, norm_fn: str, acti_fn: str, max_dim: int = 1024,
               n_in: int = 3, **kw) -> tuple[list[Conv2dBlock], list[int]]:
    """``n_layers`` x [conv 4x4 s2 p1 -> norm -> act], channels ``min(dim*2**i, max_dim)``.

    The AttGAN/STGAN encoder and discriminator trunk (AttGAN-PyTorch ``attgan.py``; STGAN
    ``models.Genc``/``models.D``). Returns the blocks and their output channels.
    """
    blocks, chans = [], []
    for i in range(n_layers):
        n_out = min(dim * 2**i, max_dim)
        blocks.append(Conv2dBlock(n_in, n_out, 4, stride=2, padding=1, norm_fn=norm_fn,
                                  acti_fn=acti_fn, **kw))
        chans.append(n_out)
        n_in = n_out
    return blocks, chans


def fc_head(n_in: int, fc_dim: int, n_out: int, norm_fn: str = "none", acti_fn: str = "lrelu",
            lrelu_slope: float = 0.01) -> nn.Sequential:
    """AttGAN discriminator head: LinearBlock(n_in, fc_dim, norm, act) -> LinearBlock(fc_dim, n_out)."""
    return nn.Sequential(
        LinearBlock(n_in, fc_dim, norm_fn, acti_fn, lrelu_slope=lrelu_slope),
        LinearBlock(fc_dim, n_out, "none", "none"),
    )


def tile_like(a: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Attribute vector B x A tiled to B x A x h x w (a broadcast view; ``cat`` copies it)."""
    return a.reshape(a.size(0), -1, 1, 1).expand(-1, -1, h, w)


class InstanceNorm2dTracked(nn.InstanceNorm2d):
    """StarGAN's ``InstanceNorm2d(affine=True, track_running_stats=True)`` with a choice at eval.

    The official test loop never calls ``.eval()``, so released outputs use per-instance
    statistics (implementations.md §3.1 pitfall). With ``eval_running_stats=False`` (default)
    eval mode also normalises with the instance's own statistics, reproducing the official
    outputs; the running buffers are still updated in training so ``*-G.ckpt`` keys match.
    """

    def __init__(self, num_features: int, eval_running_stats: bool = False) -> None:
        super().__init__(num_features, affine=True, track_running_stats=True)
        self.eval_running_stats = eval_running_stats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.eval_running_stats:  # exactly nn.InstanceNorm2d
            return super().forward(x)
        # eval, official behaviour: instance statistics, buffers untouched
        return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class ResidualBlock(nn.Module):
    """conv3x3-IN-ReLU-conv3x3-IN plus identity, no bias, no ReLU after the add (StarGAN ``model.py``)."""

    def __init__(self, dim_in: int, dim_out: int, eval_running_stats: bool = False) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim_in, dim_out, kernel_size=3, stride=1, padding=1, bias=False),
            InstanceNorm2dTracked(dim_out, eval_running_stats),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim_out, dim_out, kernel_size=3, stride=1, padding=1, bias=False),
            InstanceNorm2dTracked(dim_out, eval_running_stats),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


def patchgan_trunk(conv_dim: int = 64, repeat_num: int = 6, lrelu_slope: float = 0.01,
                   n_in: int = 3) -> tuple[nn.Sequential, int]:
    """StarGAN PatchGAN trunk: ``repeat_num`` x [conv 4x4 s2 p1 (bias) -> LeakyReLU(0.01)], no norm.

    Channels double from ``conv_dim``; returns the Sequential and its output channels.
    """
    layers: list[nn.Module] = []
    curr = conv_dim
    layers += [nn.Conv2d(n_in, conv_dim, 4, 2, 1), nn.LeakyReLU(lrelu_slope)]
    for _ in range(1, repeat_num):
        layers += [nn.Conv2d(curr, curr * 2, 4, 2, 1), nn.LeakyReLU(lrelu_slope)]
        curr *= 2
    return nn.Sequential(*layers), curr


def n_params(module: nn.Module) -> int:
    """Number of trainable parameters (what the papers and the reference count)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
