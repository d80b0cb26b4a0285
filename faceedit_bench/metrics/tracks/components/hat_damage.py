"""Hat damage (MagGAN Fig. 2 / §4 "coloring the hat to golden"): how much a hair edit changes the
hat. For each flip of Bald, Bangs or a hair colour, the mean absolute change ``|edit - x| / 2``
(the [0, 1] scale, averaged over the colour channels) over the source label map's ``hat``
pixels, pixel-weighted per attribute; the record's value is the mean over those attributes that
saw a hat pixel. Meant for SynthFaces, whose renderer paints hats and whose hair edits leave the
true hat unchanged; any store with label maps (CelebAMask-HQ) gives it too. Sum-reduced states
(exact under DDP)."""
from __future__ import annotations

import torch
from torchmetrics import Metric

from ....parts import PART_INDEX
from ...registry import MetricSpec, register_component, register_metric
from ..context import Component

#: the attributes whose edits should leave a hat alone (hair region only, MagGAN's AR table)
HAIR_ATTRS = ("Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair")

register_metric(MetricSpec("hat_damage", False, "L1 [0,1]", ("attribute_flip",),
                           "mean |edit - source| inside the hat region for flips of Bald, Bangs and "
                           "the hair colours (pixel-weighted per attribute, mean over them)", order=20))


class _Sums(Metric):
    """Per-attribute sums of hat-pixel change and hat-pixel counts (sum-reduced)."""

    full_state_update = False

    def __init__(self, n: int) -> None:
        super().__init__()
        self.add_state("total", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, k: int, total: torch.Tensor, count: torch.Tensor) -> None:
        self.total[k] += total.to(self.total)
        self.count[k] += count.to(self.count)

    def compute(self) -> torch.Tensor:
        return torch.where(self.count > 0, self.total / self.count.clamp_min(1),
                           torch.full_like(self.total, float("nan")))


@register_component
class HatDamage(Component):
    name = "hat_damage"
    kinds = ("flip",)
    produces = ("hat_damage",)

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.rows = [k for k, a in enumerate(setup.attrs) if a in HAIR_ATTRS]
        self.sums = _Sums(len(setup.attrs))

    def update(self, ctx) -> None:
        if ctx.k not in self.rows or ctx.parts is None:
            return
        hat = (ctx.parts.to(ctx.images.device) == PART_INDEX["hat"]).double()
        change = ((ctx.images.double() - ctx.x.double()) / 2).abs().mean(1)  # B x H x W
        self.sums.update(ctx.k, (hat * change).sum(), hat.sum())

    def compute(self):
        per = self.sums.compute()
        vals = per[self.rows] if self.rows else per.new_full((1,), float("nan"))
        mean = float(vals.nanmean()) if bool(torch.isfinite(vals).any()) else float("nan")
        return ({"hat_damage": mean},
                {"hat_damage": {self.setup.attrs[k]: float(per[k]) for k in self.rows}})
