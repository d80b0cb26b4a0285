"""Inception Score over the pool of all flips (torch-fidelity protocol; metrics/inception_score.py):
sample ``pos * A + k`` is test image ``pos`` flipped on attribute ``k``."""
from __future__ import annotations


from ...inception_score import InceptionScore
from ...registry import MetricSpec, register_component, register_metric
from ..context import Component

AF = ("attribute_flip",)
register_metric(MetricSpec("is", True, "score", AF, "Inception Score of all single-flip edits "
                           "(torch-fidelity: logits_unbiased, 10 splits)", order=4))
register_metric(MetricSpec("is_std", None, "score", AF, "standard deviation of the IS over its 10 splits"))


@register_component
class InceptionScoreOfFlips(Component):
    name = "inception_score"
    kinds = ("flip",)
    needs = ("inception",)
    produces = ("is", "is_std")
    null_when_unavailable = ("is",)

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.A = len(setup.attrs)
        self.isc = InceptionScore(n_total=setup.n_images * self.A)

    def update(self, ctx) -> None:
        logits = ctx.features("inception")["logits_unbiased"]
        self.isc.update(logits, ctx.pos * self.A + ctx.k)

    def compute(self):
        s = self.isc.compute()
        return {"is": s["mean"], "is_std": s["std"]}, {}
