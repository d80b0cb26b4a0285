"""Mask-aware Reconstruction Error (MagGAN, Wei et al. 2020, eq. 2).

``MRE = 1/(HWC) Σ_i ‖(1 − M_i^{sgn(attdiff_i)}) ⊙ (G(x, attdiff_i e_i) − x)‖₁`` with
``attdiff = 1 − 2·att_src``: one attribute flipped at a time, the L1 change outside the parts the
flip may touch. M⁺ / M⁻ are the AR⁺ / AR⁻ parts of ``parts.AR_TABLE`` (DESIGN §4; its hash goes
into the record) on the source image's parser map. Conventions (the paper leaves them open):
images in [0, 1]; the norm is averaged over the 3 colour channels as well as H×W (C in eq. 2
is the attribute count); per attribute, the mean over images; the total is the mean over the
attributes. When the conflict rules also change attribute j (e.g. hair colours), j's region
(with its own sign) is added to the allowed region.

The preserve mask (eqs. 4-5) and the masked L1 are ONE implementation shared with MagGAN's
training loss L_mre (eq. 3, ``methods/maggan.py``): :func:`preserve_mask` on soft or hard part
masks, :func:`masked_l1` per image. With hard masks (``parts.part_masks(labels)``) and the
difference ``round(tgt) - round(src)``, the preserve mask is exactly the complement of
:func:`edit_region` (what the metric used before; its numbers are unchanged).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torchmetrics import Metric

from ..parts import AR_TABLE, ar_matrices, attribute_region, part_masks


def _check_table(names: Sequence[str], used: torch.Tensor, table: Mapping) -> dict:
    """``table`` restricted to ``names``; an attribute without an entry is an error only when
    some row changes it (``used``: A bool), as :func:`edit_region` has always done."""
    for name, u in zip(names, used.tolist()):
        if u and name not in table:
            raise KeyError(f"attribute {name!r} has no entry in the AR table (parts.AR_TABLE); "
                           "add one or pass your own table")
    return {n: table.get(n, ((), ())) for n in names}


def influenced_parts(att_diff: torch.Tensor, names: Sequence[str], table: Mapping = AR_TABLE) -> torch.Tensor:
    """MagGAN eq. 4: ``AR* = min(1, (att_diff > 0)^T AR+ + (att_diff < 0)^T AR-)``, B x 19 in {0, 1}."""
    sub = _check_table(names, (att_diff != 0).any(0), table)
    plus, minus = ar_matrices(list(names), sub, att_diff.device, att_diff.dtype)
    pos, neg = (att_diff > 0).to(att_diff.dtype), (att_diff < 0).to(att_diff.dtype)
    return (pos @ plus + neg @ minus).clamp_max(1)


def preserve_mask(masks: torch.Tensor, att_diff: torch.Tensor, names: Sequence[str],
                  table: Mapping = AR_TABLE) -> torch.Tensor:
    """MagGAN eq. 5: ``M_hw = 1 - Σ_p M_p,hw AR*_p`` (B x H x W in [0, 1]): the pixels an edit by
    ``att_diff`` (B x A, only its sign matters) must preserve. ``masks``: B x 19 x H x W part
    masks (soft parser probabilities or :func:`parts.part_masks`), summing to 1 per pixel."""
    star = influenced_parts(att_diff.to(masks.dtype), names, table)
    return (1 - torch.einsum("bp,bphw->bhw", star, masks)).clamp(0, 1)


def masked_l1(edited: torch.Tensor, source: torch.Tensor, keep: torch.Tensor,
              scale: float = 1.0) -> torch.Tensor:
    """Per-image ``mean_{c,h,w} keep_hw |scale (edited - source)|`` (B): eq. 2's / eq. 3's L1
    (``scale=0.5`` puts [-1, 1] images on the [0, 1] scale of the metric)."""
    diff = ((edited - source) * scale).abs()
    return (keep.unsqueeze(1).to(diff.dtype) * diff).flatten(1).mean(1)


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
        att_diff = tgt.round().double() - src.round().double()  # only the sign matters (eq. 4)
        keep = preserve_mask(part_masks(parts, torch.float64), att_diff, self.attrs, self.table)
        per_image = masked_l1(edited.detach().double(), source.detach().double(), keep, 0.5)  # [0,1] scale
        self.total[k] += per_image.sum()
        self.count[k] += per_image.numel()

    def compute(self) -> dict:
        per = torch.where(self.count > 0, self.total / self.count.clamp_min(1),
                          torch.full_like(self.total, float("nan")))
        return {"per_attribute": per, "total": per.nanmean()}
