"""SaGAN networks (Zhang et al., ECCV 2018): AMN, SAN (Table 1), discriminator (Table 2), eq. 7.

Generator (Table 1): two sub-networks with the same body, the attribute manipulation network
(AMN, eq. 5: image + tiled target label -> 3 ch, tanh) and the spatial attention network
(SAN, eq. 6: image -> 1 ch mask, sigmoid), composed by :func:`sagan_compose` (eq. 7). Body:
conv 7x7 s1 -> ``dim``, IN, ReLU; ``n_down`` x [conv 4x4 s2, IN, ReLU] doubling the width;
``n_res`` residual blocks; ``n_down`` x [deconv 4x4 s2, IN, ReLU] halving it; 7x7 -> output.

Choices where the paper is silent or differs from elvisyjlin/SpatialAttentionGAN (the port;
implementations.md §4; there is no official code):

- IN is ``nn.InstanceNorm2d`` with torch defaults (no affine, no running stats), as the port.
- Residual blocks (conv3x3-norm-ReLU-conv3x3-norm plus identity): the paper gives only
  "Residual Block(256, K3)"; ``res_norm='batchnorm'`` (default) is the port's,
  ``'instancenorm'`` uses the body's IN.
- Final layer: ``final_conv='conv'`` (default) is Table 1's Conv 7x7; ``'deconv'`` is the port's
  ConvTranspose 7x7 s1 p3 (same shapes and count; needed to load the port's weights).
- Every conv has a bias, also before a norm, as the port (this is how G reaches 12.22 M).
- Module names follow the port (``conv.*``, ``resblk.*.layers.*``, ``deconv.*``), so with
  ``final_conv='deconv'`` a port ``AMN``/``SAN`` state dict loads with no key map.

Discriminator (Table 2, "PatchGAN"): ``n_layers`` x [conv 4x4 s2 (bias) -> LeakyReLU(0.2)], no
norm, widths ``min(dim*2**i, max_dim)``; ``src``: conv 3x3 -> patch map (Table 2's "I2014" is
a typo for 1024); ``cls``: conv with kernel ``image_size / 2**n_layers`` (2 at 128 px) ->
``n_labels`` LOGITS. The paper and the port end ``cls`` with a sigmoid trained by BCELoss;
BCE-with-logits on these logits is numerically the same loss (and stable).

Initialisation N(0, 0.02), bias 0 ("Training Settings"; the port's ``init_weights``) is applied
by default (``normal_init=True``); see :func:`init_weights`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import conv_trunk, tile_like

RES_NORMS = ("batchnorm", "instancenorm")
FINAL_CONVS = ("conv", "deconv")


def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """N(0, ``std``) weights and zero biases for every Conv2d/ConvTranspose2d/Linear in ``module``.

    As the paper's "Training Settings" and the port's ``init_weights``; norms keep torch's init
    (BN weight 1, bias 0). Returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def sagan_compose(x: torch.Tensor, amn_out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 7: ``y = AMN(x, c) * m + x * (1 - m)``; ``mask`` B x 1 x H x W broadcasts over RGB."""
    return amn_out * mask + x * (1 - mask)


def _positive(**values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")


class SaganResidualBlock(nn.Module):
    """Table 1 L5-L8: conv3x3 (bias) -> norm -> ReLU -> conv3x3 (bias) -> norm, plus identity."""

    def __init__(self, dim: int, norm: str = "batchnorm") -> None:
        super().__init__()
        if norm not in RES_NORMS:
            raise ValueError(f"res_norm {norm!r}; expected one of {RES_NORMS}")
        make_norm = nn.BatchNorm2d if norm == "batchnorm" else nn.InstanceNorm2d
        self.layers = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1), make_norm(dim), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, 1, 1), make_norm(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class SaganBody(nn.Module):
    """The body shared by AMN and SAN (Table 1); ``forward(x) -> B x n_out x H x W``.

    ``out_act`` is 'tanh' (AMN) or 'sigmoid' (SAN). H and W must be divisible by ``2**n_down``.
    """

    def __init__(self, n_in: int, n_out: int, out_act: str, dim: int = 32, n_down: int = 3,
                 n_res: int = 4, res_norm: str = "batchnorm", final_conv: str = "conv",
                 normal_init: bool = True) -> None:
        super().__init__()
        _positive(dim=dim, n_down=n_down)
        if n_res < 0:
            raise ValueError(f"n_res must be >= 0, got {n_res}")
        if final_conv not in FINAL_CONVS:
            raise ValueError(f"final_conv {final_conv!r}; expected one of {FINAL_CONVS}")
        if out_act not in ("tanh", "sigmoid"):
            raise ValueError(f"out_act {out_act!r}; expected 'tanh' or 'sigmoid'")
        self.n_down = n_down

        def in_relu(n: int) -> list[nn.Module]:
            return [nn.InstanceNorm2d(n), nn.ReLU(inplace=True)]

        down: list[nn.Module] = [nn.Conv2d(n_in, dim, 7, 1, 3), *in_relu(dim)]
        for i in range(n_down):
            down += [nn.Conv2d(dim * 2**i, dim * 2**(i + 1), 4, 2, 1), *in_relu(dim * 2**(i + 1))]
        self.conv = nn.Sequential(*down)
        deep = dim * 2**n_down
        self.resblk = nn.Sequential(*[SaganResidualBlock(deep, res_norm) for _ in range(n_res)])
        up: list[nn.Module] = []
        for i in range(n_down, 0, -1):
            up += [nn.ConvTranspose2d(dim * 2**i, dim * 2**(i - 1), 4, 2, 1),
                   *in_relu(dim * 2**(i - 1))]
        final = nn.Conv2d if final_conv == "conv" else nn.ConvTranspose2d
        up += [final(dim, n_out, 7, 1, 3), nn.Tanh() if out_act == "tanh" else nn.Sigmoid()]
        self.deconv = nn.Sequential(*up)
        if normal_init:
            init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(2) % 2**self.n_down or x.size(3) % 2**self.n_down:
            raise ValueError(f"input size {tuple(x.shape[2:])} is not divisible by "
                             f"2**n_down={2**self.n_down}")
        return self.deconv(self.resblk(self.conv(x)))


class SaganAMN(SaganBody):
    """AMN (eq. 5, Table 1 left): ``forward(x, c)``, x B x 3 x H x W in [-1, 1], c B x n_labels
    target labels -> B x 3 x H x W in (-1, 1). ``n_labels=1`` is the paper's one-attribute model.
    """

    def __init__(self, n_labels: int = 1, dim: int = 32, n_down: int = 3, n_res: int = 4,
                 res_norm: str = "batchnorm", final_conv: str = "conv",
                 normal_init: bool = True) -> None:
        _positive(n_labels=n_labels)
        super().__init__(3 + n_labels, 3, "tanh", dim, n_down, n_res, res_norm, final_conv,
                         normal_init)
        self.n_labels = n_labels

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if c.dim() != 2 or c.shape != (x.size(0), self.n_labels):
            raise ValueError(f"label c must be B x n_labels = {(x.size(0), self.n_labels)}, "
                             f"got {tuple(c.shape)}")
        c_map = tile_like(c.to(x.dtype), x.size(2), x.size(3))
        return super().forward(torch.cat([x, c_map], dim=1))


class SaganSAN(SaganBody):
    """SAN (eq. 6, Table 1 right): ``forward(x)``: B x 3 x H x W -> mask B x 1 x H x W in (0, 1).

    ``n_change > 0`` (not in the paper; the multi-attribute variant's ``san_condition: change``):
    ``forward(x, d)`` also sees the requested change ``d = c_trg - c`` (B x n_change, tiled), so
    one shared SAN can put each attribute's attention where that attribute lives and close it
    when nothing is asked (d = 0)."""

    def __init__(self, dim: int = 32, n_down: int = 3, n_res: int = 4,
                 res_norm: str = "batchnorm", final_conv: str = "conv",
                 normal_init: bool = True, n_change: int = 0) -> None:
        super().__init__(3 + n_change, 1, "sigmoid", dim, n_down, n_res, res_norm, final_conv,
                         normal_init)
        self.n_change = int(n_change)

    def forward(self, x: torch.Tensor, d: torch.Tensor | None = None) -> torch.Tensor:
        if not self.n_change:
            return super().forward(x)
        if d is None or d.shape != (x.size(0), self.n_change):
            raise ValueError(f"SAN with n_change={self.n_change} needs the change d as B x "
                             f"{self.n_change}, got {None if d is None else tuple(d.shape)}")
        return super().forward(torch.cat([x, tile_like(d.to(x.dtype), x.size(2), x.size(3))], 1))


class SaganDiscriminator(nn.Module):
    """Table 2: ``forward(x) -> (src B x 1 x h x w patch map, cls B x n_labels logits)``.

    ``image_size`` must be divisible by ``2**n_layers``; the cls kernel is
    ``image_size // 2**n_layers``. ``forward_adv`` runs at any size divisible by ``2**n_layers``.
    """

    def __init__(self, n_labels: int = 1, image_size: int = 128, dim: int = 32,
                 n_layers: int = 6, max_dim: int = 1024, lrelu_slope: float = 0.2,
                 normal_init: bool = True) -> None:
        super().__init__()
        _positive(n_labels=n_labels, image_size=image_size, dim=dim, n_layers=n_layers,
                  max_dim=max_dim)
        if image_size % 2**n_layers:
            raise ValueError(f"image_size {image_size} is not divisible by 2**n_layers="
                             f"{2**n_layers}")
        blocks, chans = conv_trunk(dim, n_layers, "none", "lrelu", max_dim, n_in=3,
                                   lrelu_slope=lrelu_slope)
        self.conv = nn.Sequential(*blocks)
        self.src = nn.Conv2d(chans[-1], 1, 3, 1, 1)
        self.cls = nn.Conv2d(chans[-1], n_labels, image_size // 2**n_layers, 1, 0)
        self.n_labels = n_labels
        self.image_size = image_size
        if normal_init:
            init_weights(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tuple(x.shape[2:]) != (self.image_size, self.image_size):
            raise ValueError(f"input size {tuple(x.shape[2:])} is not the image_size "
                             f"{self.image_size} the cls head was built for")
        h = self.conv(x)
        return self.src(h), self.cls(h).reshape(x.size(0), self.n_labels)

    def forward_adv(self, x: torch.Tensor) -> torch.Tensor:
        """The src patch map only (eqs. 12-13, what the gradient penalty differentiates)."""
        return self.src(self.conv(x))
