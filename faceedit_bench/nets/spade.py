"""SPADE block as MagGAN defines it (Wei et al., ACCV 2020, appendix Table 4; Park et al. 2019).

Table 4::

    beta  = Concat(F_dec, Downsample(F_attr)) - Conv(d,3,1) - Conv(d,3,1)
    gamma = Concat(F_dec, Downsample(F_attr)) - Conv(d,3,1) - Conv(d,3,1)
    out   = LN wo/ affine (F_dec) - Conv(d,3,1) * gamma + beta

Choices (the paper states no more than the table):

* LN without affine over (C, H, W) of each sample (``F.group_norm(x, 1)``): Table 4 names layer
  normalisation, whose standard form (Ba et al.; TF ``slim.layer_norm``, which the STGAN code base
  uses) normalises each sample over all its non-batch dimensions. eps 1e-5 (unstated; torch's).
* ``out = conv(LN(F_dec)) * gamma + beta``, plain ``gamma`` as Table 4 writes it; Park et al.'s
  ``(1 + gamma)`` is ``gamma_offset=True``.
* beta and gamma branches: separate, hidden width ``d`` (= the feature's channels, as the table's
  ``Conv(d,3,1) - Conv(d,3,1)``), **no activation** between the two convs because the table lists
  none (``hidden_acti='relu'`` gives Park et al.'s ReLU, 'lrelu' a LeakyReLU 0.2). Park et al.
  share one hidden conv of width 128 between the branches; the table does not, nor do we.
* every conv: 3x3, stride 1, padding 1, with bias (no norm follows any of them; unstated).
* Downsample: nearest neighbour, as Table 4's "Downsample" entry; ``resize_mode`` 'bilinear' or
  'area' selects another (for soft masks 'area' averages instead of sampling).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import activation

RESIZE_MODES = ("nearest", "bilinear", "area")


def check_resize_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`RESIZE_MODES`, else a ValueError naming ``resize_mode``."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode {mode!r}; expected one of {RESIZE_MODES}")
    return mode


def resize_attr_map(attr_map: torch.Tensor, size: tuple[int, int],
                     mode: str = "nearest") -> torch.Tensor:
    """Spatial attribute tensor B x A x H x W resized to ``size`` (Table 4 "Downsample")."""
    if tuple(attr_map.shape[2:]) == tuple(size):
        return attr_map
    if mode == "bilinear":
        return F.interpolate(attr_map, size=size, mode="bilinear", align_corners=False)
    return F.interpolate(attr_map, size=size, mode=mode)


def _branch(n_in: int, d: int, hidden_acti: str) -> nn.Sequential:
    """Conv(d,3,1) - activation - Conv(d,3,1) (Table 4's beta/gamma branch).

    'none' is an Identity, so the state-dict keys (``0.*``, ``2.*``) do not depend on the option.
    """
    acti = activation(hidden_acti, lrelu_slope=0.2) or [nn.Identity()]
    return nn.Sequential(nn.Conv2d(n_in, d, 3, padding=1), *acti, nn.Conv2d(d, d, 3, padding=1))


class SPADE(nn.Module):
    """``forward(f_dec B x d x h x w, attr_map B x A x H x W) -> B x d x h x w`` (Table 4)."""

    def __init__(self, channels: int, attr_channels: int, hidden_acti: str = "none",
                 gamma_offset: bool = False, resize_mode: str = "nearest",
                 eps: float = 1e-5) -> None:
        super().__init__()
        if channels < 1 or attr_channels < 1:
            raise ValueError(f"channels ({channels}) and attr_channels ({attr_channels}) "
                             "must be >= 1")
        if hidden_acti not in ("none", "relu", "lrelu"):
            raise ValueError(f"hidden_acti {hidden_acti!r}; expected 'none', 'relu' or 'lrelu'")
        self.attr_channels = attr_channels
        self.gamma_offset = gamma_offset
        self.resize_mode = check_resize_mode(resize_mode)
        self.eps = eps
        self.norm_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.beta = _branch(channels + attr_channels, channels, hidden_acti)
        self.gamma = _branch(channels + attr_channels, channels, hidden_acti)

    def forward(self, f_dec: torch.Tensor, attr_map: torch.Tensor) -> torch.Tensor:
        if attr_map.dim() != 4 or attr_map.size(1) != self.attr_channels:
            raise ValueError(f"attr_map must be B x {self.attr_channels} x H x W, "
                             f"got {tuple(attr_map.shape)}")
        attr = resize_attr_map(attr_map, f_dec.shape[2:], self.resize_mode).to(f_dec.dtype)
        cond = torch.cat([f_dec, attr], dim=1)
        beta, gamma = self.beta(cond), self.gamma(cond)
        normed = self.norm_conv(F.group_norm(f_dec, 1, eps=self.eps))  # LN over C, H, W
        return normed * (1 + gamma if self.gamma_offset else gamma) + beta
