"""The TARR classifier's accuracy on the real test images (its error rate bounds TARR)."""
from __future__ import annotations

from ...registry import MetricSpec, register_component, register_metric
from ...tarr import AttributeAccuracy
from ..context import Component

register_metric(MetricSpec("clf_acc_test", True, "fraction", ("attribute_flip",),
                           "attribute classifier accuracy on the real test images vs their labels"))


@register_component
class ClassifierAccuracy(Component):
    name = "classifier_accuracy"
    kinds = ("real",)
    needs = ("classifier",)
    produces = ("clf_acc_test",)

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.acc = AttributeAccuracy(len(setup.attrs))

    def update(self, ctx) -> None:
        self.acc.update(ctx.features("predict"), ctx.src)

    def compute(self):
        acc = self.acc.compute()
        return {"clf_acc_test": float(acc.mean())}, {"clf_acc_test": self.per_attr(acc.tolist())}
