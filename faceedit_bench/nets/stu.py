"""Selective Transfer Units (STGAN, Liu et al., CVPR 2019), exactly csmliu/STGAN ``models.py``.

``STU`` is the official ``ConvGRUCell`` (implementations.md §2.1)::

    s_hat = dconv4x4s2(state)                       # bias, no activation: upsample to out ch
    r     = sigmoid(conv_k([f_enc, s_hat]))          # reset gate (bias)
    z     = sigmoid(conv_k([f_enc, s_hat]))          # update gate (bias)
    s_new = r * s_hat
    f_hat = tanh(conv_k([f_enc, s_new]))
    out   = (1 - z) * s_hat + z * f_hat
    next state: s_new ('stu', default), out ('gru'), s_hat ('direct')

``norm`` 'bn'/'in' (off by default) inserts a norm before each gate's activation and, as in
``slim.conv2d`` with a normalizer, drops the gate conv's bias. ``STUStack`` is ``Gstu``: the
state starts as [f_enc^deepest, att]; STU i runs on encoder feature ``zs[n_layers-1-i]`` with
``min(dim*2**(n_layers-1-i), 1024)`` channels; the attribute vector is concatenated to the
state passed on after the first ``inject_layers`` units.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import tile_like

MAX_DIM = 64 * 16


def _gate(n_in: int, n_out: int, k: int, norm: str, bn_eps: float, bn_momentum: float,
          in_eps: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(n_in, n_out, k, padding=k // 2, bias=(norm == "none"))]
    if norm == "bn":
        layers.append(nn.BatchNorm2d(n_out, eps=bn_eps, momentum=bn_momentum))
    elif norm == "in":
        layers.append(nn.InstanceNorm2d(n_out, affine=True, eps=in_eps))
    return nn.Sequential(*layers)


class STU(nn.Module):
    """One Selective Transfer Unit; ``forward(f_enc, state) -> (output, next_state)``."""

    def __init__(self, in_channels: int, state_channels: int, out_channels: int,
                 kernel_size: int = 3, norm: str = "none", pass_state: str = "stu",
                 bn_eps: float = 1e-3, bn_momentum: float = 0.001, in_eps: float = 1e-6) -> None:
        super().__init__()
        if norm not in ("none", "bn", "in"):
            raise ValueError(f"stu_norm {norm!r}; expected 'none', 'bn' or 'in'")
        if pass_state not in ("stu", "gru", "direct"):
            raise ValueError(f"stu_state {pass_state!r}; expected 'stu', 'gru' or 'direct'")
        if kernel_size % 2 == 0:
            raise ValueError(f"stu_kernel_size must be odd for 'SAME' padding, got {kernel_size}")
        self.pass_state = pass_state
        self.dconv = nn.ConvTranspose2d(state_channels, out_channels, 4, stride=2, padding=1)
        g = (in_channels + out_channels, out_channels, kernel_size, norm, bn_eps, bn_momentum, in_eps)
        self.reset_gate = _gate(*g)
        self.update_gate = _gate(*g)
        self.info = _gate(*g)

    def forward(self, f_enc: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state_ = self.dconv(state)
        x = torch.cat([f_enc, state_], dim=1)
        reset = torch.sigmoid(self.reset_gate(x))
        update = torch.sigmoid(self.update_gate(x))
        new_state = reset * state_
        new_info = torch.tanh(self.info(torch.cat([f_enc, new_state], dim=1)))
        output = (1 - update) * state_ + update * new_info
        if self.pass_state == "gru":
            return output, output
        if self.pass_state == "direct":
            return output, state_
        return output, new_state


class STUStack(nn.Module):
    """Official ``Gstu``: ``forward(zs, a) -> zs_`` (STU outputs shallowest first, then ``zs[-1]``)."""

    def __init__(self, enc_channels: list[int], n_attrs: int, dim: int = 64, n_layers: int = 4,
                 inject_layers: int = 4, kernel_size: int = 3, norm: str = "none",
                 pass_state: str = "stu", **norm_kw) -> None:
        super().__init__()
        if n_layers != len(enc_channels) - 1:
            # The official Gstu indexes zs[n_layers-1-i] and starts from zs[-1]: any other depth
            # gives mismatched feature sizes.
            raise ValueError(f"stu_layers ({n_layers}) must be enc_layers - 1 "
                             f"({len(enc_channels) - 1}), as the official Gstu requires")
        self.n_layers = n_layers
        self.inject_layers = inject_layers
        units = []
        state_ch = enc_channels[-1] + n_attrs
        for i in range(n_layers):
            d = min(dim * 2**(n_layers - 1 - i), MAX_DIM)
            units.append(STU(enc_channels[n_layers - 1 - i], state_ch, d, kernel_size, norm,
                             pass_state, **norm_kw))
            state_ch = d + (n_attrs if inject_layers > i else 0)
        self.units = nn.ModuleList(units)
        self.out_channels = [u.info[0].out_channels for u in units][::-1] + [enc_channels[-1]]

    def forward(self, zs: list[torch.Tensor], a: torch.Tensor) -> list[torch.Tensor]:
        zs_ = [zs[-1]]
        state = torch.cat([zs[-1], tile_like(a, zs[-1].size(2), zs[-1].size(3))], dim=1)
        for i, unit in enumerate(self.units):
            out, state = unit(zs[self.n_layers - 1 - i], state)
            zs_.insert(0, out)
            if self.inject_layers > i:
                state = torch.cat([state, tile_like(a, state.size(2), state.size(3))], dim=1)
        return zs_
