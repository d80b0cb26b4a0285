"""Target Attribute Recognition Rate (TARR) with preservation error and the hat / no-hat split.

STGAN/AttGAN protocol (reference/implementations.md §2.4, §10; SeCGAN §4): each test image is
edited once per attribute k (attribute k inverted, conflict rules applied); the edit is a
**hit** when the classifier's prediction for k equals the target value ``tgt_k = 1 − src_k``.
Ground truth is the dataset label (as STGAN; SynthFaces labels are exact). The **preservation
error** of edit k is the fraction of the other attributes j ≠ k whose prediction differs from the
target vector (the source labels, or the conflict-adjusted value). The **hat split** is MagGAN
Fig. 7: an image "has a hat" when the hat class covers more than 10 % of its parser mask.
States are per-attribute sums, so the metric is exact under DDP.
"""
from __future__ import annotations

import torch
from torchmetrics import Metric

from ..parts import PART_INDEX
from .sums import ratio

HAT_THRESHOLD = 0.1


def hat_ratio(parts: torch.Tensor) -> torch.Tensor:
    """Fraction of each B×H×W label map that is class ``hat``."""
    return (parts == PART_INDEX["hat"]).flatten(1).float().mean(1)


class TARR(Metric):
    """``update(pred, src, tgt, k, parts=None)``: ``pred`` B×A {0,1} classifier predictions on the
    edit of attribute ``k`` (index into the A attributes), ``src``/``tgt`` B×A labels."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, n_attrs: int, **kwargs) -> None:
        super().__init__(**kwargs)
        a = int(n_attrs)
        self.n_attrs = a
        for name in ("hits", "count", "pres_err", "pres_count", "hat_hits", "hat_count",
                     "nohat_hits", "nohat_count"):
            self.add_state(name, torch.zeros(a, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, src: torch.Tensor, tgt: torch.Tensor, k: int,
               parts: torch.Tensor | None = None) -> None:
        if pred.shape != tgt.shape or pred.ndim != 2 or pred.shape[1] != self.n_attrs:
            raise ValueError(f"TARR.update: expected pred and tgt of shape B x {self.n_attrs}, "
                             f"got {tuple(pred.shape)} and {tuple(tgt.shape)}")
        pred, tgt = pred.round().long(), tgt.round().long()
        hit = (pred[:, k] == tgt[:, k]).double()
        self.hits[k] += hit.sum()
        self.count[k] += hit.numel()
        others = torch.ones(self.n_attrs, dtype=torch.bool, device=pred.device)
        others[k] = False
        wrong = (pred[:, others] != tgt[:, others]).double()
        self.pres_err[k] += wrong.sum()
        self.pres_count[k] += wrong.numel()
        if parts is not None:
            has_hat = hat_ratio(parts) > HAT_THRESHOLD
            self.hat_hits[k] += hit[has_hat].sum()
            self.hat_count[k] += has_hat.sum()
            self.nohat_hits[k] += hit[~has_hat].sum()
            self.nohat_count[k] += (~has_hat).sum()

    def compute(self) -> dict:
        """Per-attribute tensors (NaN where no sample) and their means over attributes."""
        out = {"tarr": ratio(self.hits, self.count), "preservation_error": ratio(self.pres_err, self.pres_count),
               "tarr_hat": ratio(self.hat_hits, self.hat_count),
               "tarr_nohat": ratio(self.nohat_hits, self.nohat_count)}
        means = {f"{k}_mean": v.nanmean() for k, v in out.items()}
        out.update(means)
        out["n_hat"] = self.hat_count.max()
        out["n_nohat"] = self.nohat_count.max()
        return out


class AttributeAccuracy(Metric):
    """Classifier accuracy on real images against the labels, per attribute (sum states)."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, n_attrs: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", torch.zeros(n_attrs, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, labels: torch.Tensor) -> None:
        self.correct += (pred.round() == labels.round()).double().sum(0)
        self.count += pred.shape[0]

    def compute(self) -> torch.Tensor:
        return self.correct / self.count
