"""Mask-aware Reconstruction Error (MagGAN, Wei et al. 2020, eq. 2).

``MRE = 1/(HWC) Σ_i ‖(1 − M_i^{sgn(attdiff_i)}) ⊙ (G(x, attdiff_i e_i) − x)‖₁`` with
``attdiff = 1 − 2·att_src``: one attribute flipped at a time, the L1 change outside the parts the
flip may touch. M⁺ / M⁻ are the AR⁺ / AR⁻ parts of ``parts.AR_TABLE`` (DESIGN §4; its hash goes
into the record) on the source image's parser map. Conventions (the paper leaves them open):
images in [0, 1]; the norm is averaged over the 3 colour channels as well as H×W (C in eq. 2
is the attribute count); per attribute, the mean over images; the total is the mean over the
attributes. When the conflict rules also change attribute j (e.g. hair colours), j's region
(with its own sign) is added to the allowed region.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torchmetrics import Metric

from ..parts import AR_TABLE, attribute_region


def edit_region(src_parts: torch.Tensor, tgt_parts: torch.Tensor | None, src: torch.Tensor,
                tgt: torch.Tensor, names: Sequence[str], table: Mapping = AR_TABLE) -> torch.Tensor:
    """B×H×W bool: union of the AR regions of every attribute that differs between src and tgt."""
    region = torch.zeros(src_parts.shape, dtype=torch.bool, device=src_parts.device)
    changed = (src.round() != tgt.round())
    for j, name in enumerate(names):
        rows = changed[:, j]
        if not bool(rows.any()):
            continue
        if name not in table:
            raise KeyError(f"attribute {name!r} has no entry in the AR table (parts.AR_TABLE); "
                           "add one or pass your own table")
        r = attribute_region(src_parts, tgt_parts, name, tgt[:, j] > 0.5, table)
        region |= r & rows.view(-1, 1, 1)
    return region


class MRE(Metric):
    """``update(edited, source, parts, src, tgt, k)``: images B×3×H×W in [-1, 1]; ``k`` the edit."""

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, attrs: Sequence[str], table: Mapping = AR_TABLE, **kwargs) -> None:
        super().__init__(**kwargs)
        self.attrs, self.table = tuple(attrs), table
        n = len(self.attrs)
        self.add_state("total", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, edited, source, parts, src, tgt, k: int) -> None:
        region = edit_region(parts, None, src, tgt, self.attrs, self.table)
        keep = (~region).unsqueeze(1).double()
        diff = ((edited.detach().double() - source.detach().double()) / 2).abs()  # [0,1] scale
        per_image = (keep * diff).flatten(1).mean(1)
        self.total[k] += per_image.sum()
        self.count[k] += per_image.numel()

    def compute(self) -> dict:
        per = torch.where(self.count > 0, self.total / self.count.clamp_min(1),
                          torch.full_like(self.total, float("nan")))
        return {"per_attribute": per, "total": per.nanmean()}
