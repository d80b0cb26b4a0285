"""Counterfactual error on SynthFaces (metrics/counterfactual.py): each flip against the
ground-truth flipped rendering, with the evaluation's AR table."""
from __future__ import annotations

from ....parts import AR_TABLE
from ...counterfactual import CounterfactualError
from ...registry import MetricSpec, register_component, register_metric
from ..context import Component

AF = ("attribute_flip",)
register_metric(MetricSpec("cf_l1", False, "L1 [0,1]", AF, "L1 of each flip vs the true counterfactual "
                           "(SynthFaces), mean over attributes", order=10))
register_metric(MetricSpec("cf_psnr", True, "dB", AF, "PSNR of each flip vs the true counterfactual", order=11))
register_metric(MetricSpec("cf_l1_in", False, "L1 [0,1]", AF, "counterfactual L1 inside the flipped "
                           "attribute's region (pixel-weighted)"))
register_metric(MetricSpec("cf_l1_out", False, "L1 [0,1]", AF, "counterfactual L1 outside the flipped "
                           "attribute's region (pixel-weighted)"))


@register_component
class Counterfactual(Component):
    name = "counterfactual"
    kinds = ("flip",)
    needs = ("counterfactuals",)
    produces = ("cf_l1", "cf_psnr", "cf_l1_in", "cf_l1_out")

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.cf = CounterfactualError(setup.attrs, setup.ar_table if setup.ar_table is not None else AR_TABLE)

    def update(self, ctx) -> None:
        b, k = ctx.batch, ctx.k
        self.cf.update(ctx.images, b["cf_image"][:, k], ctx.parts, b["cf_parts"][:, k], ctx.src, ctx.tgt, k)

    def compute(self):
        c = self.cf.compute()
        m = {key: float(c[key]) for key in c["per_attribute"]}
        per = {key: self.per_attr(v.tolist()) for key, v in c["per_attribute"].items()}
        return m, per
