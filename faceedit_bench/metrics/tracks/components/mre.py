"""Mask-aware reconstruction error (MagGAN eq. 2; metrics/mre.py) of each flip, with the AR table
the evaluation was given (its hash goes into the protocol)."""
from __future__ import annotations

from ....parts import AR_TABLE
from ...mre import MRE
from ...registry import MetricSpec, register_component, register_metric
from ..context import Component

register_metric(MetricSpec("mre", False, "L1 [0,1]", ("attribute_flip",), "MagGAN eq. 2: L1 change of each "
                           "flip outside the flipped attribute's AR region, mean over attributes", order=1))


@register_component
class MaskAwareReconstructionError(Component):
    name = "mre"
    kinds = ("flip",)
    produces = ("mre",)

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.mre = MRE(setup.attrs, setup.ar_table if setup.ar_table is not None else AR_TABLE)

    def update(self, ctx) -> None:
        self.mre.update(ctx.images, ctx.x, ctx.parts, ctx.src, ctx.tgt, ctx.k)

    def compute(self):
        r = self.mre.compute()
        return {"mre": float(r["total"])}, {"mre": self.per_attr(r["per_attribute"].tolist())}
