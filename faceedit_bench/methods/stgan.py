"""STGAN (Liu et al., CVPR 2019) as a LightningModule: AttGAN's losses with difference labels.

csmliu/STGAN ``train.py`` (implementations.md §2.2): identical training to AttGAN v1 (WGAN-GP
λ_gp 10, D attribute weight 1, G attribute weight 10, reconstruction weight 100; Adam 2e-4 β 0.5;
batch 32; 5 D steps per G step; 200 epochs, lr/10 after 100) but G is conditioned on the
difference ``att_diff = b' - a'`` (``--label diff``; b', a' = (2·label-1)·thres_int), and the
reconstruction uses ``att_diff = 0``. The STU generator (``nets.stgan``) takes every option of the
official code; ``nets.G.n_layers: 6`` selects MagGAN's 6-layer / 5-STU variant.

Training mechanics are AttGAN's (:mod:`.attgan`): the STGAN D normalises per sample (instance
norm by default, ``norm_fn='layernorm'`` = ``GroupNorm(1, C)``), so its batched real+fake forward
is exact; a batch-norm D falls back to two forwards.

Test intensity (``edit(intensity=None)``): 2, the value behind the paper's numbers — the
released ``test.py`` multiplies the edited target by ``test_int`` (no ``/thres_int``), so the
edited target is ±1 and the source ∓0.5: diff ±1.5 (:func:`.targets.stgan_test_diff`).
"""
from __future__ import annotations

import torch

from . import register
from .attgan import AttGAN
from .targets import stgan_test_diff, stgan_train_diff


@register("stgan")
class STGAN(AttGAN):
    """STGAN; networks ``G`` / ``D`` (``nets.G`` / ``nets.D``: kwargs of ``nets.stgan``, official names)."""

    encoding = "stgan"
    paper_test_intensity = 2.0

    def build_networks(self, nets):
        from ..nets.stgan import STGANDiscriminator, STGANGenerator

        return {"G": STGANGenerator(**{**nets.get("G", {}), "n_attrs": self.n_attrs, "img_size": self.res}),
                "D": STGANDiscriminator(**{**nets.get("D", {}), "n_attrs": self.n_attrs, "img_size": self.res})}

    def train_codes(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(difference code of the edit, zero difference for the reconstruction)."""
        return stgan_train_diff(a, b, self.thres_int), torch.zeros_like(a)

    def test_code(self, src, tgt, intensity):
        return stgan_test_diff(src, tgt, intensity, self.thres_int)

    def method_protocol(self):
        out = super().method_protocol()
        out["conditioning"] = "difference b'-a', edited target x test_int (released test.py)"
        return out
