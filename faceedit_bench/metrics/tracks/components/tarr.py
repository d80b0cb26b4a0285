"""TARR, preservation error and the hat / no-hat split (metrics/tarr.py; STGAN/AttGAN protocol,
MagGAN Fig. 7) from the classifier's predictions on each flip."""
from __future__ import annotations

from ...registry import MetricSpec, register_component, register_metric
from ...tarr import TARR
from ..context import Component

AF = ("attribute_flip",)
register_metric(MetricSpec("tarr", True, "fraction", AF, "target attribute recognition rate: flips the "
                           "classifier reads as the target value, mean over attributes", order=0))
register_metric(MetricSpec("preservation_error", False, "fraction", AF, "fraction of the other attributes "
                           "whose prediction differs from the target vector, mean over flips", order=7))
register_metric(MetricSpec("tarr_hat", True, "fraction", AF, "TARR on images whose hat class covers > 10 % "
                           "of the parser map (MagGAN Fig. 7)", order=8))
register_metric(MetricSpec("tarr_nohat", True, "fraction", AF, "TARR on the images without a hat", order=9))
register_metric(MetricSpec("n_hat", None, "count", AF, "number of test images with a hat (hat split)"))


@register_component
class TargetAttributeRecognition(Component):
    name = "tarr"
    kinds = ("flip",)
    needs = ("classifier",)
    produces = ("tarr", "preservation_error", "tarr_hat", "tarr_nohat", "n_hat")
    null_when_unavailable = ("tarr",)

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.tarr = TARR(len(setup.attrs))

    def update(self, ctx) -> None:
        self.tarr.update(ctx.features("predict"), ctx.src, ctx.tgt, ctx.k, ctx.parts)

    def compute(self):
        t = self.tarr.compute()
        m = {"tarr": float(t["tarr_mean"]), "preservation_error": float(t["preservation_error_mean"]),
             "tarr_hat": float(t["tarr_hat_mean"]), "tarr_nohat": float(t["tarr_nohat_mean"]),
             "n_hat": float(t["n_hat"])}
        per = {key: self.per_attr(t[key].tolist()) for key in ("tarr", "preservation_error", "tarr_hat", "tarr_nohat")}
        return m, per
