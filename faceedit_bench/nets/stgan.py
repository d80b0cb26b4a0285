"""STGAN generator and discriminator (Liu et al., CVPR 2019), ported from csmliu/STGAN ``models.py``.

Generator (implementations.md §2.1): ``Genc`` (AttGAN encoder, conv 4x4 s2 -> BN -> LReLU 0.2),
``Gstu`` (STUs on the skip connections, :mod:`.stu`), ``Gdec`` (AttGAN decoder with
``shortcut_layers``/``inject_layers``, default 4/4: every upsampling layer gets the STU output and
the tiled attribute vector). The attribute input is the *difference* vector ``b' - a'``
(``--label diff``; reconstruction with zeros); with ``label='target'`` the caller passes the target
code instead, the network is the same. ``use_stu=False`` feeds the encoder features directly
(with shortcut 1 / inject 1 this is AttGAN v1).

Constants follow the TF code: LeakyReLU 0.2, ``slim.batch_norm`` eps 1e-3 / decay 0.999
(momentum 0.001), ``slim.instance_norm`` eps 1e-6; convs followed by a norm have no bias; the
'SAME' 4x4 s2 (de)convs are padding 1 here. Options: ``n_layers`` sets the depth at once
(``n_layers=6`` is MagGAN's 6-layer encoder/decoder with 5 STUs, Table 5); ``multi_inputs``
(bicubic copies of the image before encoder layers 1..k-1; torch bicubic, which differs slightly
from TF1 ``resize_bicubic``); ``one_more_conv`` in {0, 1, 3}.

Discriminator: as STGAN ``models.D`` (conv trunk with IN + LReLU 0.2, FC ``fc_dim`` + LReLU heads
for the adversarial and attribute outputs, no norm in the FCs). ``norm_fn='layernorm'`` gives the
AttGAN paper's LN variant. TF flattens NHWC, we flatten NCHW (matters only for porting TF weights).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attgan import AttGANDiscriminator
from .blocks import Conv2dBlock, ConvTranspose2dBlock, tile_like
from .stu import STUStack

MAX_DIM = 64 * 16



class STGANGenerator(nn.Module):
    """``forward(x, a, mode='enc-dec'|'enc'|'dec')``; ``a``: B x n_attrs attribute difference code."""

    def __init__(self, enc_dim: int = 64, enc_layers: int = 5, dec_dim: int = 64,
                 dec_layers: int = 5, n_attrs: int = 13, shortcut_layers: int = 4,
                 inject_layers: int = 4, img_size: int = 128, use_stu: bool = True,
                 stu_dim: int = 64, stu_layers: int = 4, stu_inject_layers: int = 4,
                 stu_kernel_size: int = 3, stu_norm: str = "none", stu_state: str = "stu",
                 multi_inputs: int = 1, one_more_conv: int = 0, n_layers: int | None = None,
                 lrelu_slope: float = 0.2, bn_eps: float = 1e-3, bn_momentum: float = 0.001,
                 in_eps: float = 1e-6) -> None:
        super().__init__()
        if n_layers is not None:  # one knob for the depth (MagGAN: n_layers=6, 5 STUs)
            enc_layers = dec_layers = n_layers
            stu_layers = shortcut_layers = inject_layers = stu_inject_layers = n_layers - 1
        if img_size % 2**enc_layers:
            raise ValueError(f"img_size {img_size} is not divisible by 2**enc_layers={2**enc_layers}")
        if dec_layers != enc_layers:
            raise ValueError(f"dec_layers ({dec_layers}) must equal enc_layers ({enc_layers})")
        if one_more_conv not in (0, 1, 3):
            raise ValueError(f"one_more_conv must be 0, 1 or 3, got {one_more_conv}")
        self.n_attrs = n_attrs
        self.img_size = img_size
        self.multi_inputs = multi_inputs
        self.shortcut_layers = min(shortcut_layers, dec_layers - 1)
        self.inject_layers = min(inject_layers, dec_layers - 1)
        bn = dict(norm_eps=bn_eps, norm_momentum=bn_momentum)

        enc, enc_ch, n_in = [], [], 3
        for i in range(enc_layers):
            d = min(enc_dim * 2**i, MAX_DIM)
            extra = 3 if (multi_inputs > i and i > 0) else 0
            enc.append(Conv2dBlock(n_in + extra, d, 4, stride=2, padding=1, norm_fn="batchnorm",
                                   acti_fn="lrelu", lrelu_slope=lrelu_slope, **bn))
            enc_ch.append(d)
            n_in = d
        self.enc_layers = nn.ModuleList(enc)
        self.enc_channels = enc_ch

        if use_stu:
            self.stu = STUStack(enc_ch, n_attrs, stu_dim, stu_layers, stu_inject_layers,
                                stu_kernel_size, stu_norm, stu_state, bn_eps=bn_eps,
                                bn_momentum=bn_momentum, in_eps=in_eps)
            skip_ch = self.stu.out_channels
        else:
            self.stu = None
            skip_ch = enc_ch

        layers = []
        n_in = skip_ch[-1] + n_attrs
        for i in range(dec_layers):
            if i < dec_layers - 1:
                d = min(dec_dim * 2**(dec_layers - 1 - i), MAX_DIM)
                layers.append(ConvTranspose2dBlock(n_in, d, 4, stride=2, padding=1,
                                                   norm_fn="batchnorm", acti_fn="relu", **bn))
                n_in = d
                if self.shortcut_layers > i:
                    n_in += skip_ch[dec_layers - 2 - i]
                if self.inject_layers > i:
                    n_in += n_attrs
            elif one_more_conv:
                layers.append(ConvTranspose2dBlock(n_in, dec_dim // 4, 4, stride=2, padding=1,
                                                   norm_fn="batchnorm", acti_fn="relu", **bn))
                layers.append(ConvTranspose2dBlock(dec_dim // 4, 3, one_more_conv, stride=1,
                                                   padding=one_more_conv // 2, norm_fn="none",
                                                   acti_fn="tanh"))
            else:
                layers.append(ConvTranspose2dBlock(n_in, 3, 4, stride=2, padding=1,
                                                   norm_fn="none", acti_fn="tanh"))
        self.dec_layers = nn.ModuleList(layers)
        self.n_dec = dec_layers

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``Genc``: encoder features, shallowest first."""
        zs, z = [], x
        h, w = x.shape[2:]
        for i, layer in enumerate(self.enc_layers):
            if self.multi_inputs > i and i > 0:
                xi = F.interpolate(x, size=(h // 2**i, w // 2**i), mode="bicubic",
                                   align_corners=False)
                z = torch.cat([z, xi], dim=1)
            z = layer(z)
            zs.append(z)
        return zs

    def decode(self, zs: list[torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        """``Gstu`` then ``Gdec`` on encoder features ``zs`` with attribute code ``a``."""
        a = a.reshape(a.size(0), -1)
        if a.size(1) != self.n_attrs:
            raise ValueError(f"attribute code must be B x {self.n_attrs}, got {tuple(a.shape)}")
        if self.stu is not None:
            zs = self.stu(zs, a)
        z = torch.cat([zs[-1], tile_like(a, zs[-1].size(2), zs[-1].size(3))], dim=1)
        n = self.n_dec
        for i, layer in enumerate(self.dec_layers):
            z = layer(z)
            if i < n - 1:
                if self.shortcut_layers > i:
                    z = torch.cat([z, zs[n - 2 - i]], dim=1)
                if self.inject_layers > i:
                    z = torch.cat([z, tile_like(a, z.size(2), z.size(3))], dim=1)
        return z

    def forward(self, x, a: torch.Tensor | None = None, mode: str = "enc-dec"):
        if mode == "enc":
            return self.encode(x)
        if a is None:
            raise ValueError(f"mode {mode!r} needs the attribute code a")
        if mode == "enc-dec":
            return self.decode(self.encode(x), a)
        if mode == "dec":
            return self.decode(x, a)
        raise ValueError(f"unrecognized mode {mode!r}; expected 'enc-dec', 'enc' or 'dec'")


class STGANDiscriminator(AttGANDiscriminator):
    """STGAN ``models.D``: ``forward(x) -> (adv B x 1, attribute logits B x n_attrs)``."""

    def __init__(self, dim: int = 64, fc_dim: int = 1024, n_layers: int = 5, img_size: int = 128,
                 n_attrs: int = 13, norm_fn: str = "instancenorm", acti_fn: str = "lrelu",
                 fc_norm_fn: str = "none", fc_acti_fn: str = "lrelu", lrelu_slope: float = 0.2,
                 norm_eps: float = 1e-6) -> None:
        super().__init__(dim=dim, norm_fn=norm_fn, acti_fn=acti_fn, fc_dim=fc_dim,
                         fc_norm_fn=fc_norm_fn, fc_acti_fn=fc_acti_fn, n_layers=n_layers,
                         img_size=img_size, n_attrs=n_attrs, lrelu_slope=lrelu_slope,
                         norm_eps=norm_eps)


#: Constructor arguments per resolution (implementations.md §2.1: 384 uses dims 48, fc 512).
RESOLUTION_CONFIGS = {
    128: dict(g=dict(enc_dim=64, dec_dim=64), d=dict(dim=64, fc_dim=1024)),
    256: dict(g=dict(enc_dim=64, dec_dim=64), d=dict(dim=64, fc_dim=1024)),
    384: dict(g=dict(enc_dim=48, dec_dim=48), d=dict(dim=48, fc_dim=512)),
}
