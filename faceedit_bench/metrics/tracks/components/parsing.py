"""Parsing accuracy of mask_to_face reconstructions (Gu et al. CVPR 2019, Table 2: "average
per-pixel accuracy of a face parser on generated faces, target mask as ground truth").

Definition: ``pred = argmax_c parser(reconstruction)`` (logits B x 19 x H x W, bilinearly resized
to the mask's size if they differ); per image the fraction of pixels with ``pred == target``;
``parsing_pixel_acc`` is the mean over images (= the pooled fraction: all images have H x W).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from ...registry import MetricSpec, register_component, register_metric
from ..context import Component

register_metric(MetricSpec("parsing_pixel_acc", True, "fraction", ("mask_to_face",),
                           "pixel accuracy of a face parser on the reconstructions against the target "
                           "label map, mean over images (Gu et al. Table 2)", order=20))


class PixelAccuracy(Metric):
    """``update(logits, target)``: logits B x C x h x w, target B x H x W class ids."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        if logits.ndim != 4 or logits.shape[0] != target.shape[0]:
            raise ValueError(f"PixelAccuracy.update: expected logits B x C x H x W for {target.shape[0]} "
                             f"images, got {tuple(logits.shape)}")
        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
        hit = (logits.argmax(1) == target.long()).flatten(1).double().mean(1)
        self.total += hit.sum()
        self.count += hit.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count


@register_component
class ParsingAccuracy(Component):
    name = "parsing_accuracy"
    tracks = ("mask_to_face",)
    kinds = ("reconstruction",)
    needs = ("parser",)
    produces = ("parsing_pixel_acc",)

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.acc = PixelAccuracy()

    def update(self, ctx) -> None:
        self.acc.update(ctx.features("parser"), ctx.target_parts)

    def compute(self):
        return {"parsing_pixel_acc": float(self.acc.compute())}, {}

    def protocol(self) -> dict:
        return {"parser_hash": getattr(self.setup.parser, "weights_hash", None)}
