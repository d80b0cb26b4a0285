"""Counterfactual error on SynthFaces: each edit against the ground-truth flipped rendering.

SynthFaces renders the same identity with one attribute flipped (DESIGN §6), so an edit can be
compared with the truth. Per attribute: L1 (mean absolute difference in [0, 1], over pixels and
channels), PSNR (mean of per-image PSNR, data_range 1, capped at 100 dB) and the L1 inside /
outside the attribute's region (AR tables on the source and true-edit parser maps, union over
the attributes the conflict rules change; pixel-weighted sums). Sum states: exact under DDP.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..parts import AR_TABLE
from .mre import edit_region
from .psnr_ssim import psnr_per_image
from .sums import PerAttributeSums, ratio

class CounterfactualError(PerAttributeSums):
    """``update(edited, cf_image, src_parts, cf_parts, src, tgt, k)``; images in [-1, 1]."""

    higher_is_better = False
    STATES = ("l1_sum", "l1_n", "psnr_sum", "in_sum", "in_n", "out_sum", "out_n")

    def __init__(self, attrs: Sequence[str], table: Mapping = AR_TABLE, **kwargs) -> None:
        super().__init__(attrs, **kwargs)
        self.table = table

    def update(self, edited, cf_image, src_parts, cf_parts, src, tgt, k: int) -> None:
        a = (edited.detach().double() + 1) / 2
        b = (cf_image.detach().double() + 1) / 2
        d = (a - b).abs()
        self.l1_sum[k] += d.flatten(1).mean(1).sum()
        self.l1_n[k] += d.shape[0]
        self.psnr_sum[k] += psnr_per_image(a, b).sum()
        region = edit_region(src_parts, cf_parts, src, tgt, self.attrs, self.table).unsqueeze(1)
        inside = region.expand_as(d)
        self.in_sum[k] += d[inside].sum()
        self.in_n[k] += inside.sum()
        self.out_sum[k] += d[~inside].sum()
        self.out_n[k] += (~inside).sum()

    def compute(self) -> dict:
        per = {"cf_l1": ratio(self.l1_sum, self.l1_n), "cf_psnr": ratio(self.psnr_sum, self.l1_n),
               "cf_l1_in": ratio(self.in_sum, self.in_n), "cf_l1_out": ratio(self.out_sum, self.out_n)}
        return {"per_attribute": per, **{k: v.nanmean() for k, v in per.items()}}
