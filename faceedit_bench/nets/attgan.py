"""AttGAN generator and discriminator (He et al., TIP 2019; layout of elvisyjlin/AttGAN-PyTorch).

Architecture (implementations.md §1.1): encoder ``enc_layers`` x [conv 4x4 s2 -> BN -> LReLU],
channels ``min(enc_dim*2**i, 1024)``; decoder: attributes tiled and concatenated to the deepest
feature, ``dec_layers-1`` x [deconv 4x4 s2 -> BN -> ReLU], U-Net shortcut to the encoder feature
after the first ``shortcut_layers`` decoder layers and the attributes re-injected after the first
``inject_layers``; final deconv -> 3, tanh. Discriminator: conv trunk with IN + LReLU, flatten,
two FC heads (adversarial 1, attributes ``n_attrs``), no norm in the FCs (as the released code).

State-dict keys equal AttGAN-PyTorch's (``enc_layers.*``, ``dec_layers.*``; ``conv.*``,
``fc_adv.*``, ``fc_cls.*``), so its ``weights.*.pth`` loads with no key map. Differences from the
port, each a bug fix that leaves the defaults identical: the discriminator's FC input is the real
trunk width (the port hard-codes ``1024*f*f``) and the attribute head has ``n_attrs`` outputs (the
port hard-codes 13); the decoder's shortcut width is the encoder feature's real width (the port
assumes half). LeakyReLU slope defaults to the port's 0.01 (TF uses 0.2; ``lrelu_slope``). The
discriminator's FC activation defaults to LeakyReLU, as TF AttGAN and the port's class default;
the port's ``train.py`` passes ``--dis_fc_acti relu`` (select with ``fc_acti_fn="relu"``).
Resolutions: 128 and 256 use dims 64 / fc 1024; 384 uses dims 48 / fc 512 (§1.1 table).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import ConvTranspose2dBlock, conv_trunk, fc_head, tile_like

MAX_DIM = 64 * 16  # 1024, as the official code


class AttGANGenerator(nn.Module):
    """AttGAN encoder-decoder; ``forward(x, a, mode='enc-dec'|'enc'|'dec')`` as AttGAN-PyTorch.

    ``a`` is the attribute code, B x n_attrs (the official training feeds ``(a*2-1)*thres_int``).
    """

    def __init__(self, enc_dim: int = 64, enc_layers: int = 5, enc_norm: str = "batchnorm",
                 enc_acti: str = "lrelu", dec_dim: int = 64, dec_layers: int = 5,
                 dec_norm: str = "batchnorm", dec_acti: str = "relu", n_attrs: int = 13,
                 shortcut_layers: int = 1, inject_layers: int = 1, img_size: int = 128,
                 lrelu_slope: float = 0.01, bn_eps: float | None = None,
                 bn_momentum: float | None = None) -> None:
        super().__init__()
        if img_size % 2**enc_layers:
            raise ValueError(f"img_size {img_size} is not divisible by 2**enc_layers={2**enc_layers}")
        if dec_layers != enc_layers:
            raise ValueError(f"dec_layers ({dec_layers}) must equal enc_layers ({enc_layers}) to "
                             "return to the input size")
        self.n_attrs = n_attrs
        self.img_size = img_size
        self.shortcut_layers = min(shortcut_layers, dec_layers - 1)
        self.inject_layers = min(inject_layers, dec_layers - 1)
        self.f_size = img_size // 2**enc_layers
        norm_kw = dict(lrelu_slope=lrelu_slope, norm_eps=bn_eps, norm_momentum=bn_momentum)

        enc, enc_ch = conv_trunk(enc_dim, enc_layers, enc_norm, enc_acti, MAX_DIM, **norm_kw)
        self.enc_layers = nn.ModuleList(enc)
        self.enc_channels = enc_ch

        layers = []
        n_in = enc_ch[-1] + n_attrs
        for i in range(dec_layers):
            if i < dec_layers - 1:
                n_out = min(dec_dim * 2**(dec_layers - i - 1), MAX_DIM)
                layers.append(ConvTranspose2dBlock(n_in, n_out, 4, stride=2, padding=1,
                                                   norm_fn=dec_norm, acti_fn=dec_acti, **norm_kw))
                n_in = n_out
                if self.shortcut_layers > i:
                    n_in += enc_ch[dec_layers - 2 - i]
                if self.inject_layers > i:
                    n_in += n_attrs
            else:
                layers.append(ConvTranspose2dBlock(n_in, 3, 4, stride=2, padding=1,
                                                   norm_fn="none", acti_fn="tanh"))
        self.dec_layers = nn.ModuleList(layers)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features, shallowest first."""
        zs = []
        z = x
        for layer in self.enc_layers:
            z = layer(z)
            zs.append(z)
        return zs

    def decode(self, zs: list[torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        """Image from encoder features ``zs`` and attribute code ``a``."""
        a = a.reshape(a.size(0), -1)  # the port also accepts B x A x 1 x 1
        if a.size(1) != self.n_attrs:
            raise ValueError(f"attribute code must be B x {self.n_attrs}, got {tuple(a.shape)}")
        z = zs[-1]
        z = torch.cat([z, tile_like(a, z.size(2), z.size(3))], dim=1)
        n = len(self.dec_layers)
        for i, layer in enumerate(self.dec_layers):
            z = layer(z)
            if self.shortcut_layers > i:
                z = torch.cat([z, zs[n - 2 - i]], dim=1)
            if self.inject_layers > i:
                z = torch.cat([z, tile_like(a, z.size(2), z.size(3))], dim=1)
        return z

    def forward(self, x, a: torch.Tensor | None = None, mode: str = "enc-dec"):
        if mode == "enc-dec":
            if a is None:
                raise ValueError("mode 'enc-dec' needs the attribute code a")
            return self.decode(self.encode(x), a)
        if mode == "enc":
            return self.encode(x)
        if mode == "dec":
            if a is None:
                raise ValueError("mode 'dec' needs the attribute code a")
            return self.decode(x, a)
        raise ValueError(f"unrecognized mode {mode!r}; expected 'enc-dec', 'enc' or 'dec'")


class AttGANDiscriminator(nn.Module):
    """AttGAN D (AttGAN-PyTorch ``Discriminators``): ``forward(x) -> (adv B x 1, cls logits B x n_attrs)``."""

    def __init__(self, dim: int = 64, norm_fn: str = "instancenorm", acti_fn: str = "lrelu",
                 fc_dim: int = 1024, fc_norm_fn: str = "none", fc_acti_fn: str = "lrelu",
                 n_layers: int = 5, img_size: int = 128, n_attrs: int = 13,
                 lrelu_slope: float = 0.01, norm_eps: float | None = None) -> None:
        super().__init__()
        if img_size % 2**n_layers:
            raise ValueError(f"img_size {img_size} is not divisible by 2**n_layers={2**n_layers}")
        self.f_size = img_size // 2**n_layers
        blocks, ch = conv_trunk(dim, n_layers, norm_fn, acti_fn, MAX_DIM, lrelu_slope=lrelu_slope,
                                norm_eps=norm_eps)
        self.conv = nn.Sequential(*blocks)
        n_flat = ch[-1] * self.f_size * self.f_size
        self.fc_adv = fc_head(n_flat, fc_dim, 1, fc_norm_fn, fc_acti_fn, lrelu_slope)
        self.fc_cls = fc_head(n_flat, fc_dim, n_attrs, fc_norm_fn, fc_acti_fn, lrelu_slope)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(x).flatten(1)
        return self.fc_adv(h), self.fc_cls(h)

    def forward_adv(self, x: torch.Tensor) -> torch.Tensor:
        """Adversarial output only (what the gradient penalty differentiates; skips ``fc_cls``)."""
        return self.fc_adv(self.conv(x).flatten(1))


#: Constructor arguments per resolution (implementations.md §1.1 "Resolutions").
RESOLUTION_CONFIGS = {
    128: dict(g=dict(enc_dim=64, dec_dim=64), d=dict(dim=64, fc_dim=1024)),
    256: dict(g=dict(enc_dim=64, dec_dim=64), d=dict(dim=64, fc_dim=1024)),
    384: dict(g=dict(enc_dim=48, dec_dim=48), d=dict(dim=48, fc_dim=512)),
}
