"""A seeded, rank-sharded sampler whose position can be saved and restored (suites.md §C6).

Order of epoch ``e``: ``torch.randperm(n)`` from a generator seeded with ``seed`` and ``e`` (or
``0..n-1`` without shuffling), padded by wrapping to a multiple of the world size (or cut, with
``drop_last``), and rank ``r`` takes every ``world_size``-th item from ``r`` (the
``DistributedSampler`` convention, so ranks hold disjoint shards). It subclasses
``DistributedSampler`` only so that Lightning does not wrap it in another distributed sampler.
``load_state_dict({"epoch", "position"})`` makes the next iteration of that epoch start at
``position`` (samples of this rank's shard already consumed), so a resumed run continues the
same order.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DistributedSampler


class ResumableSampler(DistributedSampler):
    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False, pad: bool = True):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        # DistributedSampler.__init__ needs a dataset and an initialised process group: skip it.
        self.n, self.seed, self.shuffle = int(n), int(seed), bool(shuffle)
        self.rank, self.num_replicas = int(rank), int(world_size)
        self.drop_last, self.pad = bool(drop_last), bool(pad)
        self.epoch = 0
        self.position = 0                 # samples of the current epoch handed out by __iter__
        self._resume: tuple[int, int] | None = None

    def order(self, epoch: int) -> np.ndarray:
        """The global order of ``epoch`` (all ranks), before sharding."""
        if not self.shuffle:
            return np.arange(self.n)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(epoch))
        return torch.randperm(self.n, generator=g).numpy()

    def shard(self, epoch: int) -> np.ndarray:
        """This rank's indices for ``epoch``."""
        idx, w = self.order(epoch), self.num_replicas
        if w > 1 and self.n % w:
            if self.drop_last:
                idx = idx[: self.n - self.n % w]
            elif self.pad:
                idx = np.concatenate([idx, np.resize(idx, w - self.n % w)])
        return idx[self.rank::w]

    def __len__(self) -> int:
        w = self.num_replicas
        if w == 1 or self.n % w == 0:
            return self.n // w
        if self.drop_last:
            return self.n // w
        return -(-self.n // w) if self.pad else len(range(self.rank, self.n, w))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        idx = self.shard(self.epoch)
        start = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            start = min(self._resume[1], len(idx))
        self._resume = None
        self.position = start
        return self._gen(idx[start:].tolist())

    def _gen(self, items):
        for i in items:
            self.position += 1
            yield i

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "world_size": self.num_replicas}

    def load_state_dict(self, state: dict) -> None:
        if int(state.get("world_size", self.num_replicas)) != self.num_replicas:
            raise ValueError(f"sampler state is for world size {state['world_size']}; this run has "
                             f"{self.num_replicas}: resume with the same number of devices")
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(f"sampler state has seed {state['seed']}; this run uses {self.seed}")
        self.epoch = int(state["epoch"])
        self._resume = (self.epoch, int(state["position"]))
