"""Per-attribute sum states: what the counterfactual, localisation and TARR metrics share.

Every state is a float64 vector with one entry per attribute, reduced by summation, so a metric
built on them is exact under DDP (DESIGN §7); a ratio of two such sums is NaN where the
denominator counted nothing.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torchmetrics import Metric


def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` per attribute; NaN where ``den`` is 0."""
    return torch.where(den > 0, num / den.clamp_min(1), torch.full_like(num, float("nan")))


def mean_over_attributes(per_attribute: torch.Tensor) -> float | None:
    """The overall value of a per-attribute metric: the mean of its finite entries (None if none)."""
    finite = per_attribute[torch.isfinite(per_attribute)]
    return float(finite.mean()) if finite.numel() else None


class PerAttributeSums(Metric):
    """A Metric whose states (``STATES``) are per-attribute float64 sums over ``attrs``."""

    full_state_update = False
    is_differentiable = False
    STATES: tuple[str, ...] = ()

    def __init__(self, attrs: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.attrs = tuple(attrs)
        for name in self.STATES:
            self.add_state(name, torch.zeros(len(self.attrs), dtype=torch.float64), dist_reduce_fx="sum")
