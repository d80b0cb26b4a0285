"""Inception Score as a streaming, sum-reduced torchmetrics Metric, equal to torch-fidelity.

Protocol (reference/metrics.md §1.2, §6): logits_unbiased (pool3 · fcᵀ, 1008 classes), samples
permuted with ``np.random.RandomState(2020)``, ``splits`` contiguous chunks
``[i·N//splits, (i+1)·N//splits)``, per chunk ``exp(mean KL(p ‖ mean p))`` in float64, mean and
std (ddof 0). torch-fidelity keeps all N logits; here every sample's chunk is known from its
global index once the total N is known, and per chunk ``Σ_x Σ_y p log p``, ``Σ_x p`` and the
count suffice, since mean KL = (Σ p log p)/n − Σ_y q log q with q = (Σ p)/n. So the states are
sums (DDP all-reduce), memory is O(splits × classes), and the result does not depend on the
order or sharding of the samples.
"""
from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric


class InceptionScore(Metric):
    """``update(logits, index)``: logits B×K, ``index`` B long global sample ids in [0, n_total)."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, n_total: int, num_classes: int = 1008, splits: int = 10,
                 shuffle: bool = True, rng_seed: int = 2020, **kwargs) -> None:
        super().__init__(**kwargs)
        if n_total < splits:
            raise ValueError(f"InceptionScore: n_total={n_total} is smaller than splits={splits}")
        self.n_total, self.splits, self.num_classes = int(n_total), int(splits), int(num_classes)
        order = np.random.RandomState(rng_seed).permutation(n_total) if shuffle else np.arange(n_total)
        pos = np.empty(n_total, dtype=np.int64)
        pos[order] = np.arange(n_total)           # row g sits at position pos[g] after permuting
        bounds = np.array([i * n_total // splits for i in range(splits + 1)])
        chunk = np.searchsorted(bounds, pos, side="right") - 1
        self._chunk_of = torch.from_numpy(chunk)
        f64 = torch.float64
        self.add_state("sum_p", torch.zeros(splits, num_classes, dtype=f64), dist_reduce_fx="sum")
        self.add_state("sum_plogp", torch.zeros(splits, dtype=f64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(splits, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, index: torch.Tensor) -> None:
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"InceptionScore.update: expected logits B x {self.num_classes}, got {tuple(logits.shape)}")
        index = index.long().cpu()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.n_total):
            raise ValueError(f"InceptionScore.update: index outside [0, {self.n_total})")
        x = logits.detach().double()
        p, logp = x.softmax(1), x.log_softmax(1)
        chunk = self._chunk_of[index].to(x.device)
        self.sum_p.index_add_(0, chunk, p)
        self.sum_plogp.index_add_(0, chunk, (p * logp).sum(1))
        self.count += torch.bincount(chunk, minlength=self.splits)

    def compute(self) -> dict:
        n = int(self.count.sum())
        if n != self.n_total:
            raise RuntimeError(f"InceptionScore: saw {n} samples, expected n_total={self.n_total} "
                               "(each global index exactly once)")
        scores = []
        for i in range(self.splits):
            c = self.count[i].double()
            q = self.sum_p[i] / c
            kl = self.sum_plogp[i] / c - torch.special.xlogy(q, q).sum()
            scores.append(float(kl.exp()))
        return {"mean": float(np.mean(scores)), "std": float(np.std(scores))}
