"""StarGAN generator and PatchGAN discriminator (Choi et al., CVPR 2018; yunjey/stargan ``model.py``).

Module names equal the official ones (``main.0.weight``, ``main.1.running_mean``, ``conv1``,
``conv2``), so a released ``*-G.ckpt`` / ``*-D.ckpt`` loads with no key map
(implementations.md §3.1).

Generator: image concatenated with tiled labels (3 + c_dim) -> conv 7x7 -> IN -> ReLU; 2 x down
(conv 4x4 s2, IN, ReLU); ``repeat_num`` residual blocks; 2 x up (deconv 4x4 s2, IN, ReLU);
conv 7x7 -> 3, tanh. All convs without bias, zero padding (the official comment: label
conditioning fails with reflection padding + IN). IN keeps running statistics as the official
code, but the official test never calls ``.eval()``: with ``eval_running_stats=False`` (default)
our eval mode also uses per-instance statistics, so ``edit()`` reproduces the official outputs.

Discriminator: ``repeat_num`` x [conv 4x4 s2 (bias) -> LeakyReLU(0.01)], no norm; ``conv1``:
3x3 -> 1 channel patch map; ``conv2``: kernel image_size/2**repeat_num -> c_dim logits; both
without bias.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import InstanceNorm2dTracked, ResidualBlock, patchgan_trunk, tile_like


class StarGANGenerator(nn.Module):
    """``forward(x, c)``: x B x 3 x H x W in [-1, 1], c B x c_dim target labels in {0, 1}."""

    def __init__(self, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6,
                 eval_running_stats: bool = False) -> None:
        super().__init__()
        self.c_dim = c_dim
        ers = eval_running_stats
        layers: list[nn.Module] = [
            nn.Conv2d(3 + c_dim, conv_dim, kernel_size=7, stride=1, padding=3, bias=False),
            InstanceNorm2dTracked(conv_dim, ers), nn.ReLU(inplace=True)]
        curr = conv_dim
        for _ in range(2):
            layers += [nn.Conv2d(curr, curr * 2, kernel_size=4, stride=2, padding=1, bias=False),
                       InstanceNorm2dTracked(curr * 2, ers), nn.ReLU(inplace=True)]
            curr *= 2
        layers += [ResidualBlock(curr, curr, ers) for _ in range(repeat_num)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(curr, curr // 2, kernel_size=4, stride=2, padding=1,
                                          bias=False),
                       InstanceNorm2dTracked(curr // 2, ers), nn.ReLU(inplace=True)]
            curr //= 2
        layers += [nn.Conv2d(curr, 3, kernel_size=7, stride=1, padding=3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        c = c.reshape(c.size(0), -1)
        if c.size(1) != self.c_dim:
            raise ValueError(f"label vector must be B x {self.c_dim}, got {tuple(c.shape)}")
        return self.main(torch.cat([x, tile_like(c.to(x.dtype), x.size(2), x.size(3))], dim=1))


class StarGANDiscriminator(nn.Module):
    """``forward(x) -> (out_src B x 1 x h x w patch map, out_cls B x c_dim logits)``."""

    def __init__(self, image_size: int = 128, conv_dim: int = 64, c_dim: int = 5,
                 repeat_num: int = 6) -> None:
        super().__init__()
        if image_size % 2**repeat_num:
            raise ValueError(f"image_size {image_size} is not divisible by 2**repeat_num="
                             f"{2**repeat_num}")
        self.main, curr = patchgan_trunk(conv_dim, repeat_num, 0.01)
        kernel_size = image_size // 2**repeat_num
        self.conv1 = nn.Conv2d(curr, 1, kernel_size=3, stride=1, padding=1, bias=False)
        self.conv2 = nn.Conv2d(curr, c_dim, kernel_size=kernel_size, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        out_cls = self.conv2(h)
        return self.conv1(h), out_cls.view(out_cls.size(0), out_cls.size(1))

    def forward_adv(self, x: torch.Tensor) -> torch.Tensor:
        """Patch map only (what the gradient penalty differentiates; skips ``conv2``)."""
        return self.conv1(self.main(x))
