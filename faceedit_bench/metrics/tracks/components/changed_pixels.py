"""Counterfactual error on the pixels the true edit changes (SynthFaces; a diagnostic beside
``cf_l1_in``).

``cf_l1_in`` averages over the attribute's AR region (parts.AR_TABLE). For a thin addition the
region is much larger than the change: adding Eyeglasses is judged over the source's skin, eyes,
brows and nose, of which the frames are ~1 px lines (~12 % of the region at 64 px). Doing
nothing then errs only on the frames, while any re-synthesis of the face errs everywhere, so
``cf_l1_in`` below identity needs a near-lossless face *and* the frames. This metric separates
the two questions:

- ``cf_l1_changed``: L1 (mean over pixels and channels, [0, 1]) between the edit and the truth
  on the true changed pixels R = ``changed_pixels(cf_image, x)`` (> 16 uint8 levels, the
  localisation metrics' definition): did the edit move the changed pixels toward the truth?
  Identity scores the magnitude of the true change; the truth scores 0.
- ``cf_l1_unchanged``: the same L1 on the other pixels: what the edit damaged.

Pixel-weighted sums per attribute (exact under DDP); the overall value is the mean over
attributes. Images whose flip changes no pixel count only in ``cf_l1_unchanged``.
"""
from __future__ import annotations

import torch

from ...registry import MetricSpec, register_component, register_metric
from ..context import Component
from ...sums import PerAttributeSums, mean_over_attributes, ratio
from .localisation import CHANGE_LEVELS, changed_pixels

AF = ("attribute_flip",)
register_metric(MetricSpec("cf_l1_changed", False, "L1 [0,1]", AF, "counterfactual L1 on the pixels the "
                           "true flip changes (> 16 uint8 levels; SynthFaces)"))
register_metric(MetricSpec("cf_l1_unchanged", False, "L1 [0,1]", AF, "counterfactual L1 on the pixels the "
                           "true flip leaves (SynthFaces)"))

class ChangedPixelError(PerAttributeSums):
    """``update(edited, source, cf_image, k)``; images B x 3 x H x W in [-1, 1]."""

    higher_is_better = False
    STATES = ("ch_sum", "ch_n", "un_sum", "un_n")

    def update(self, edited, source, cf_image, k: int) -> None:
        truth = changed_pixels(cf_image, source).unsqueeze(1).expand(-1, 3, -1, -1)
        d = (edited.detach().double() - cf_image.detach().double()).abs() / 2
        self.ch_sum[k] += d[truth].sum()
        self.ch_n[k] += truth.sum()
        self.un_sum[k] += d[~truth].sum()
        self.un_n[k] += (~truth).sum()

    def compute(self) -> dict[str, torch.Tensor]:
        return {"cf_l1_changed": ratio(self.ch_sum, self.ch_n), "cf_l1_unchanged": ratio(self.un_sum, self.un_n)}


@register_component
class ChangedPixels(Component):
    name = "changed_pixels"
    kinds = ("flip",)
    needs = ("counterfactuals",)
    produces = ("cf_l1_changed", "cf_l1_unchanged")

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.err = ChangedPixelError(setup.attrs)

    def update(self, ctx) -> None:
        self.err.update(ctx.images, ctx.x, ctx.batch["cf_image"][:, ctx.k], ctx.k)

    def compute(self):
        per = {key: v.reshape(-1) for key, v in self.err.compute().items()}
        metrics = {key: mean_over_attributes(v) for key, v in per.items()}
        return metrics, {key: self.per_attr(v.tolist()) for key, v in per.items()}

    def protocol(self) -> dict:
        return {"changed_pixels": f"true changed pixels: max_c |uint8(cf) - uint8(x)| > {CHANGE_LEVELS}; "
                                  "L1 of (y, cf) on [0,1] over them and over the rest, pixel-weighted per attribute"}
