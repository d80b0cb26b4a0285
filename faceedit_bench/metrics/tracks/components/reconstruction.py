"""PSNR and SSIM of reconstructions (reference/metrics.md §5; metrics/psnr_ssim.py), both tracks:
attribute_flip's tgt = src edit and mask_to_face's synthesis from the own map and components."""
from __future__ import annotations

from torchmetrics import MetricCollection

from ...psnr_ssim import PSNR, SSIM, MeanL1
from ...registry import MetricSpec, register_component, register_metric
from ..context import Component

BOTH = ("attribute_flip", "mask_to_face")
register_metric(MetricSpec("psnr", True, "dB", BOTH, "reconstruction PSNR, mean of per-image values on "
                           "[0,1] uint8-rounded, capped at 100 dB (metrics.md §5)", order=5))
register_metric(MetricSpec("ssim", True, "score", BOTH, "reconstruction SSIM in [0,1], mean per image, "
                           "scikit-image settings by default (metrics.md §5)", order=6))
register_metric(MetricSpec("rec_l1", False, "L1 [0,1]", BOTH, "reconstruction L1 on [0,1], mean per image "
                           "(the counterfactual L1's units: issue 14's cf_l1_out <= 1.5 x rec_l1)", order=7))


@register_component
class Reconstruction(Component):
    name = "reconstruction"
    tracks = BOTH
    kinds = ("reconstruction",)
    produces = ("psnr", "ssim", "rec_l1")

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.metrics = MetricCollection({"psnr": PSNR(), "ssim": SSIM(mode=setup.ssim_mode), "rec_l1": MeanL1()},
                                        compute_groups=False)

    def update(self, ctx) -> None:
        self.metrics.update(ctx.images, ctx.x)

    def compute(self):
        r = self.metrics.compute()
        return {key: float(r[key]) for key in self.produces}, {}
