"""Scores of the mask_to_face track's counterfactual mask edits (``tracks/mask_edits.py``): the
face synthesised from the true edited label map of flip ``k`` against the true counterfactual
``cf_image[:, k]``, with the attribute_flip track's definitions so the numbers sit beside an
attribute editor's flip of the same attribute:

- ``mask_edit_cf_*``: :class:`~faceedit_bench.metrics.counterfactual.CounterfactualError` (L1,
  PSNR, L1 inside / outside the attribute's region with the run's AR table), per attribute, mean
  over the mask-expressible attributes;
- ``mask_edit_tarr``: :class:`~faceedit_bench.metrics.tarr.TARR` of the edits (classifier);
- ``mask_edit_parsing_acc``: parser pixel accuracy of the edits against their edited target map.

Attributes without a mask edit are absent from ``per_attribute`` ("—"); the protocol says why
(``mask_edit_status``). A run without mask edits (no counterfactuals) reports none of these.
"""
from __future__ import annotations

import torch

from ....parts import AR_TABLE
from ....protocol import single_flip_targets
from ...counterfactual import CounterfactualError
from ...registry import MetricSpec, register_component, register_metric
from ...tarr import TARR
from ..context import Component
from ..mask_edits import counterfactual_edit_index, inexpressible_status
from .parsing import PixelAccuracy

M2F = ("mask_to_face",)
register_metric(MetricSpec("mask_edit_cf_l1", False, "L1 [0,1]", M2F, "L1 of each counterfactual mask "
                           "edit (synthesis from the true edited label map) vs the true counterfactual, "
                           "mean over the mask-expressible attributes", order=30))
register_metric(MetricSpec("mask_edit_cf_psnr", True, "dB", M2F, "PSNR of each counterfactual mask edit vs "
                           "the true counterfactual", order=31))
register_metric(MetricSpec("mask_edit_cf_l1_in", False, "L1 [0,1]", M2F, "mask-edit counterfactual L1 inside "
                           "the flipped attribute's region (pixel-weighted)", order=32))
register_metric(MetricSpec("mask_edit_cf_l1_out", False, "L1 [0,1]", M2F, "mask-edit counterfactual L1 "
                           "outside the flipped attribute's region (pixel-weighted)", order=33))
register_metric(MetricSpec("mask_edit_tarr", True, "fraction", M2F, "TARR of the counterfactual mask edits: "
                           "edits the classifier reads as the flip's target value, mean over the "
                           "mask-expressible attributes", order=34))
register_metric(MetricSpec("mask_edit_parsing_acc", True, "fraction", M2F, "parser pixel accuracy of the "
                           "counterfactual mask edits against their edited target map", order=35))


class _MaskEdit(Component):
    tracks = M2F
    kinds = ("mask_edit",)

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.index = counterfactual_edit_index(setup.attrs)

    def flip(self, ctx) -> tuple[int, torch.Tensor, torch.Tensor] | None:
        """(k, src, tgt) of a counterfactual mask edit context, None for any other mask edit."""
        k = self.index.get(ctx.name)
        if k is None:
            return None
        src = ctx.batch["attrs"].float()
        tgt = single_flip_targets(src, self.setup.attrs, self.setup.mustache_beard)[k]
        return k, src, tgt

    def protocol(self) -> dict:
        if not self.index:
            return {}
        return {"mask_edit_attrs": [self.setup.attrs[k] for k in sorted(self.index.values())],
                "mask_edit_status": inexpressible_status(self.setup.attrs)}


def _none_fed(values: torch.Tensor) -> bool:
    """True when every entry is NaN (no context reached the metric on any rank: compute syncs)."""
    return bool(torch.isnan(values).all())


@register_component
class MaskEditCounterfactual(_MaskEdit):
    name = "mask_edit_counterfactual"
    needs = ("counterfactuals",)
    produces = ("mask_edit_cf_l1", "mask_edit_cf_psnr", "mask_edit_cf_l1_in", "mask_edit_cf_l1_out")

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.cf = CounterfactualError(setup.attrs, setup.ar_table if setup.ar_table is not None else AR_TABLE)

    def update(self, ctx) -> None:
        f = self.flip(ctx)
        if f is not None:
            k, src, tgt = f
            b = ctx.batch
            self.cf.update(ctx.images, b["cf_image"][:, k], ctx.parts, b["cf_parts"][:, k], src, tgt, k)

    def compute(self):
        c = self.cf.compute()
        if _none_fed(c["per_attribute"]["cf_l1"]):
            return {}, {}
        m = {f"mask_edit_{key}": float(c[key]) for key in c["per_attribute"]}
        per = {f"mask_edit_{key}": self.per_attr(v.tolist()) for key, v in c["per_attribute"].items()}
        return m, per


@register_component
class MaskEditTARR(_MaskEdit):
    name = "mask_edit_tarr"
    needs = ("classifier", "counterfactuals")
    produces = ("mask_edit_tarr",)

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.tarr = TARR(len(setup.attrs))

    def update(self, ctx) -> None:
        f = self.flip(ctx)
        if f is not None:
            k, src, tgt = f
            self.tarr.update(ctx.features("predict"), src, tgt, k, ctx.parts)

    def compute(self):
        t = self.tarr.compute()
        if _none_fed(t["tarr"]):
            return {}, {}
        return {"mask_edit_tarr": float(t["tarr_mean"])}, {"mask_edit_tarr": self.per_attr(t["tarr"].tolist())}


@register_component
class MaskEditParsing(_MaskEdit):
    name = "mask_edit_parsing"
    needs = ("parser", "counterfactuals")
    produces = ("mask_edit_parsing_acc",)

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.acc = PixelAccuracy()

    def update(self, ctx) -> None:
        if self.flip(ctx) is not None:
            self.acc.update(ctx.features("parser"), ctx.target_parts)

    def compute(self):
        acc = self.acc.compute()
        return ({}, {}) if _none_fed(acc.reshape(1)) else ({"mask_edit_parsing_acc": float(acc)}, {})
