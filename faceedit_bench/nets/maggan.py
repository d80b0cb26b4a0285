"""MagGAN generator and (multi-level PatchGAN) discriminator (Wei et al., ACCV 2020, appendix A).

No public code exists; this is the reference implementation. Paper facts cite Tables 5/6, eqs.
12/14 and §3.3/§3.4 of ``shared/papers/maggan.txt``; everything marked *unstated* is our choice.

Generator (Table 5; built on STGAN, implementations.md §5): ``n_layers`` = 6 encoder layers
Conv 4x4 s2 - BN - LReLU, channels 64,128,256,512,1024,1024 = ``dim`` x (1,2,4,8,16,16) (the
shared AttGAN/STGAN trunk :func:`.blocks.conv_trunk`, capped at ``16*dim``; state-dict keys
``enc_layers.*`` as STGAN's); 5 STUs on the skips (:class:`.stu.STUStack`, fed the vector
``att_diff`` as in STGAN, attributes injected into every STU state; STU widths = the encoder's,
STGAN's rule with ``stu_dim = dim``); decoder DeConv 4x4 s2 - SPADE - ReLU with channels
1024,1024,512,256,128 = ``dim`` x (16,16,8,4,2), then DeConv 4x4 s2 -> 3, tanh. Each DeConv input
is concat(decoder feature, STU feature) (Table 5 caption); the first DeConv gets the deepest
encoder feature alone (there is no 6th STU, and Table 5 lists no attribute input: the attributes
enter through the STUs and the SPADE blocks). Each SPADE is conditioned on the spatial attribute
tensor ``attr_map`` (eq. 12, B x A x H x W, computed by the method from the masks), resized to the
DeConv output (:mod:`.spade`).

``use_spade=False`` is the ablation "MagGAN w/o SP" (Table 3 (v)): DeConv - BN - ReLU as STGAN,
with ``attr_map`` resized and concatenated to every DeConv input in place of STGAN's tiled vector
(§3.3: "generally applicable to generators without SPADE"). Conditioning off (STGAN's uniform
tiling, what Table 3 compares as (i)/(iii) vs (iv)/(vi)) is ``attr_map = uniform_attr_map(...)``.

Unstated constants, taken from STGAN (the base): LReLU slope 0.2; BN eps 1e-3 / momentum 0.001
(TF ``slim.batch_norm``); IN (affine) eps 1e-6; DeConvs before a SPADE keep their bias (the LN
over C,H,W does not cancel a per-channel bias), convs before BN/IN have none.

Discriminator (Table 6, §3.4, eq. 14): trunk 6 x Conv 4x4 s2 - IN - LReLU with channels
64,128,256,1024,1024,1024 = ``dim`` x ``channel_mults`` (1,2,4,16,16,16); AdaptiveAvgPool to
``2**level``; two heads Conv 1x1 (``head_dim`` = 1024 = 16*dim) - LReLU - Conv 1x1 -> 1
(adversarial map) / -> ``n_attrs`` (attribute map). The 1x1 convs have bias. The paper gives
the classifier C2 of finer levels "the average pooled feature"; it does not say how its
2^i x 2^i output becomes one prediction: we average the attribute logits over space.
Level i sees the image at ``base_res * 2**i`` (paper: base 256, levels 256/512/1024, each
adversarial entry covering a 256^2 patch). :class:`MultiLevelDiscriminator` holds one D per
level, *not* sharing weights as §3.4 states ("exactly the same without sharing weights";
``share_weights=True`` selects one D for all levels) and downsamples the full-resolution image for
the coarser levels with a box filter (average pooling; *unstated*; ``downsample='bilinear'`` is
antialiased bilinear). Outputs are ordered coarsest (level 0) first; eq. 14 averages the levels'
losses (the method's job). The trunk's last IN needs an output of 2 x 2 or more, so ``base_res``
must be at least ``2 * 2**n_layers`` (paper: 256 / 64 = 4 x 4); a 64-px config keeps the paper's
4 x 4 with a 4-layer trunk, e.g. ``channel_mults=(1, 2, 4, 16)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import Conv2dBlock, ConvTranspose2dBlock, conv_trunk, tile_like
from .spade import SPADE, check_resize_mode, resize_attr_map
from .stu import STUStack


def uniform_attr_map(att_diff: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Conditioning off: ``att_diff`` B x A tiled to B x A x h x w (STGAN's Att_diff, §3.3)."""
    return tile_like(att_diff, h, w)


class SpadeUpBlock(nn.Module):
    """DeConv(d, 4, 2) - SPADE - ReLU (Table 5 decoder layers 2..6); ``forward(x, attr_map)``."""

    def __init__(self, n_in: int, n_out: int, n_attrs: int, **spade_kw) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(n_in, n_out, 4, stride=2, padding=1)
        self.spade = SPADE(n_out, n_attrs, **spade_kw)

    def forward(self, x: torch.Tensor, attr_map: torch.Tensor) -> torch.Tensor:
        return F.relu(self.spade(self.deconv(x), attr_map))


class MagGANGenerator(nn.Module):
    """``forward(x, att_diff, attr_map, mode='enc-dec'|'enc'|'dec')`` (Table 5).

    x: B x 3 x H x W (H, W divisible by ``2**n_layers``); att_diff: B x n_attrs; attr_map:
    B x n_attrs x h x w (eq. 12, any size; resized per decoder layer). 'enc' returns the encoder
    features (shallowest first); 'dec' takes them as ``x``, so one encoding serves the edit and the
    reconstruction.
    """

    def __init__(self, n_attrs: int = 13, dim: int = 64, n_layers: int = 6, use_spade: bool = True,
                 spade_hidden_acti: str = "none", spade_gamma_offset: bool = False,
                 resize_mode: str = "nearest", stu_kernel_size: int = 3, stu_norm: str = "none",
                 stu_state: str = "stu", lrelu_slope: float = 0.2, bn_eps: float = 1e-3,
                 bn_momentum: float = 0.001) -> None:
        super().__init__()
        if n_attrs < 1:
            raise ValueError(f"n_attrs must be >= 1, got {n_attrs}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if n_layers < 2:
            raise ValueError(f"n_layers must be >= 2 (one STU at least), got {n_layers}")
        self.n_attrs = n_attrs
        self.n_layers = n_layers
        self.use_spade = use_spade
        self.resize_mode = check_resize_mode(resize_mode)
        max_dim = 16 * dim  # 1024 at paper width
        bn = dict(norm_eps=bn_eps, norm_momentum=bn_momentum)

        enc, enc_ch = conv_trunk(dim, n_layers, "batchnorm", "lrelu", max_dim,
                                 lrelu_slope=lrelu_slope, **bn)
        self.enc_layers = nn.ModuleList(enc)
        self.enc_channels = enc_ch
        self.stu = STUStack(enc_ch, n_attrs, dim, n_layers - 1, n_layers - 1, stu_kernel_size,
                            stu_norm, stu_state, bn_eps=bn_eps, bn_momentum=bn_momentum)
        skip_ch = self.stu.out_channels  # shallowest first; [-1]: the deepest encoder feature

        spade_kw = dict(hidden_acti=spade_hidden_acti, gamma_offset=spade_gamma_offset,
                        resize_mode=resize_mode)
        extra = 0 if use_spade else n_attrs
        layers: list[nn.Module] = []
        n_in = skip_ch[-1] + extra
        for i in range(n_layers):
            if i < n_layers - 1:
                n_out = min(dim * 2**(n_layers - 1 - i), max_dim)
                layers.append(SpadeUpBlock(n_in, n_out, n_attrs, **spade_kw) if use_spade else
                              ConvTranspose2dBlock(n_in, n_out, 4, stride=2, padding=1,
                                                   norm_fn="batchnorm", acti_fn="relu", **bn))
                n_in = n_out + skip_ch[n_layers - 2 - i] + extra
            else:
                layers.append(ConvTranspose2dBlock(n_in, 3, 4, stride=2, padding=1,
                                                   norm_fn="none", acti_fn="tanh"))
        self.dec_layers = nn.ModuleList(layers)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features, shallowest first (Table 5 G_enc^1..6)."""
        if x.dim() != 4 or x.size(2) % 2**self.n_layers or x.size(3) % 2**self.n_layers:
            raise ValueError(f"x must be B x 3 x H x W with H, W divisible by "
                             f"2**n_layers={2**self.n_layers}, got {tuple(x.shape)}")
        zs, z = [], x
        for layer in self.enc_layers:
            z = layer(z)
            zs.append(z)
        return zs

    def decode(self, zs: list[torch.Tensor], att_diff: torch.Tensor,
               attr_map: torch.Tensor) -> torch.Tensor:
        """STUs (on ``att_diff``) then the decoder (on ``attr_map``): the image in [-1, 1]."""
        b = zs[-1].size(0)
        if att_diff.numel() != b * self.n_attrs:
            raise ValueError(f"att_diff must be B x {self.n_attrs}, got {tuple(att_diff.shape)}")
        if attr_map.dim() != 4 or attr_map.shape[:2] != (b, self.n_attrs):
            raise ValueError(f"attr_map must be B x {self.n_attrs} x H x W with B={b}, "
                             f"got {tuple(attr_map.shape)}")
        skips = self.stu(zs, att_diff.reshape(b, self.n_attrs))
        z = skips[-1]
        n = self.n_layers
        for i, layer in enumerate(self.dec_layers):
            if i > 0:
                z = torch.cat([z, skips[n - 1 - i]], dim=1)
            if not self.use_spade:
                attr = resize_attr_map(attr_map, z.shape[2:], self.resize_mode)
                z = torch.cat([z, attr.to(z.dtype)], dim=1)
            z = layer(z, attr_map) if isinstance(layer, SpadeUpBlock) else layer(z)
        return z

    def forward(self, x, att_diff: torch.Tensor | None = None,
                attr_map: torch.Tensor | None = None, mode: str = "enc-dec"):
        if mode == "enc":
            return self.encode(x)
        if mode not in ("enc-dec", "dec"):
            raise ValueError(f"unrecognized mode {mode!r}; expected 'enc-dec', 'enc' or 'dec'")
        if att_diff is None or attr_map is None:
            raise ValueError(f"mode {mode!r} needs att_diff and attr_map")
        zs = self.encode(x) if mode == "enc-dec" else x
        return self.decode(zs, att_diff, attr_map)


def _head(n_in: int, head_dim: int, n_out: int, lrelu_slope: float) -> nn.Sequential:
    """Conv(head_dim, 1, 1) - LReLU - Conv(n_out, 1, 1), with biases (Table 6 rows 8-9)."""
    return nn.Sequential(nn.Conv2d(n_in, head_dim, 1), nn.LeakyReLU(lrelu_slope),
                         nn.Conv2d(head_dim, n_out, 1))


class MagGANDiscriminator(nn.Module):
    """Table 6, one level: ``forward(x) -> (adv B x 1 x s x s, cls B x n_attrs)``, s = 2**level.

    ``forward(x, out_size)`` overrides s (used when one D serves all levels). ``norm_fn``:
    Table 6's InstanceNorm by default; ``layernorm`` is STGAN's quick-recipe critic (an IN critic
    cannot see period-2 stripes or a colour cast: configs/method/stgan.yaml).
    """

    def __init__(self, n_attrs: int = 13, dim: int = 64,
                 channel_mults: tuple[int, ...] = (1, 2, 4, 16, 16, 16),
                 head_dim: int | None = None,
                 level: int = 0, lrelu_slope: float = 0.2, in_eps: float = 1e-6,
                 norm_fn: str = "instancenorm") -> None:
        super().__init__()
        if n_attrs < 1:
            raise ValueError(f"n_attrs must be >= 1, got {n_attrs}")
        if dim < 1 or not channel_mults or min(channel_mults) < 1:
            raise ValueError(f"dim ({dim}) and channel_mults ({channel_mults}) must be positive")
        if level < 0:
            raise ValueError(f"level must be >= 0, got {level}")
        self.n_layers = len(channel_mults)
        self.out_size = 2**level
        head_dim = 16 * dim if head_dim is None else head_dim
        blocks, n_in = [], 3
        for m in channel_mults:
            blocks.append(Conv2dBlock(n_in, dim * m, 4, stride=2, padding=1, norm_fn=norm_fn, acti_fn="lrelu",
                                      lrelu_slope=lrelu_slope,
                                      norm_eps=in_eps if norm_fn == "instancenorm" else None))
            n_in = dim * m
        self.conv = nn.Sequential(*blocks)
        self.adv_head = _head(n_in, head_dim, 1, lrelu_slope)
        self.cls_head = _head(n_in, head_dim, n_attrs, lrelu_slope)

    def features(self, x: torch.Tensor, out_size: int | None = None) -> torch.Tensor:
        """Trunk then Avgpool(out_size) (Table 6 rows 1-7)."""
        s = self.out_size if out_size is None else out_size
        f = 2**self.n_layers
        if x.dim() != 4 or any(n % f or n // f < 2 or (n // f) % s for n in x.shape[2:]):
            raise ValueError(f"x must be B x 3 x H x W whose trunk output (H/{f}, W/{f}) is >= 2 "
                             f"(IN needs more than one element) and divisible by out_size={s}; "
                             f"got {tuple(x.shape)}")
        return F.adaptive_avg_pool2d(self.conv(x), s)

    def forward(self, x: torch.Tensor,
                out_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x, out_size)
        return self.adv_head(h), self.cls_head(h).mean(dim=(2, 3))

    def forward_adv(self, x: torch.Tensor, out_size: int | None = None) -> torch.Tensor:
        """Adversarial map only (what the gradient penalty differentiates; skips ``cls_head``)."""
        return self.adv_head(self.features(x, out_size))


class MultiLevelDiscriminator(nn.Module):
    """§3.4 multi-level PatchGAN: level i (coarsest 0) judges the image at ``base_res * 2**i``.

    ``forward(x_full) -> [(adv B x 1 x 2^i x 2^i, cls B x n_attrs) for i in levels]``;
    ``forward_adv(x_full) -> [adv maps]``. ``x_full`` is ``base_res * 2**(n_levels-1)`` square.
    """

    def __init__(self, n_levels: int = 1, base_res: int = 256, share_weights: bool = False,
                 downsample: str = "area", **disc_kw) -> None:
        super().__init__()
        if n_levels < 1:
            raise ValueError(f"n_levels must be >= 1, got {n_levels}")
        if downsample not in ("area", "bilinear"):
            raise ValueError(f"downsample {downsample!r}; expected 'area' or 'bilinear'")
        if "level" in disc_kw:
            raise ValueError("level is set per level by MultiLevelDiscriminator; do not pass it")
        self.n_levels = n_levels
        self.base_res = base_res
        self.full_res = base_res * 2**(n_levels - 1)
        self.share_weights = share_weights
        self.downsample = downsample
        n_discs = 1 if share_weights else n_levels
        self.discs = nn.ModuleList(MagGANDiscriminator(level=i, **disc_kw) for i in range(n_discs))
        f = 2**self.discs[0].n_layers
        if base_res < 2 * f or base_res % f:
            raise ValueError(f"base_res {base_res} must be a multiple of 2**n_layers = {f} and at "
                             f"least {2 * f} (the last IN needs a trunk output of 2 x 2 or more)")

    def level_inputs(self, x_full: torch.Tensor) -> list[torch.Tensor]:
        """The image each level sees, coarsest first (box-filter / antialiased downsampling)."""
        if x_full.dim() != 4 or tuple(x_full.shape[2:]) != (self.full_res, self.full_res):
            raise ValueError(f"x_full must be B x C x {self.full_res} x {self.full_res} "
                             f"(base_res * 2**(n_levels-1)), got {tuple(x_full.shape)}")
        inputs = []
        for i in range(self.n_levels):
            k = 2**(self.n_levels - 1 - i)
            if k == 1:
                inputs.append(x_full)
            elif self.downsample == "area":
                inputs.append(F.avg_pool2d(x_full, k))
            else:
                r = self.full_res // k
                inputs.append(F.interpolate(x_full, size=(r, r), mode="bilinear",
                                            align_corners=False, antialias=True))
        return inputs

    def _levels(self, x_full: torch.Tensor):
        for i, xi in enumerate(self.level_inputs(x_full)):
            yield self.discs[0 if self.share_weights else i], xi, 2**i

    def forward(self, x_full: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [d(xi, s) for d, xi, s in self._levels(x_full)]

    def forward_adv(self, x_full: torch.Tensor) -> list[torch.Tensor]:
        return [d.forward_adv(xi, s) for d, xi, s in self._levels(x_full)]
