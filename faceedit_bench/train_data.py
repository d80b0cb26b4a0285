"""Resumable training stream: super-batches for n_critic training, exact position in checkpoints.

One training iteration consumes ``chunks_per_iter`` batches (``n_critic`` D batches + 1 G batch,
see ``methods/base.py``); the loader yields them as one super-batch of ``chunks * B`` rows per
rank. The global sample stream is the concatenation of seeded permutations of the training set
(``perm(seed, epoch)``); global step ``t`` covers stream positions ``[t*G, (t+1)*G)`` with
``G = chunks * B * world_size``, rank ``r`` taking its contiguous slice. The position saved in
checkpoints is computed from the method's generator-iteration counter (not from what the
sampler has yielded, which prefetching makes larger), so a resumed run — on the same or another
number of ranks with the same ``G`` — reads exactly the samples the uninterrupted run reads.
"""
from __future__ import annotations

from typing import Any, Iterator

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def collate(batch: Any) -> Any:
    """Datasets with a batched ``__getitems__`` already return a dict; else default collation."""
    if isinstance(batch, dict):
        return batch
    return torch.utils.data.default_collate(batch)


class StreamSampler(Sampler[int]):
    """Indices of rank ``rank`` from global stream position ``start`` to the end of training."""

    def __init__(self, n: int, per_rank: int, total_steps: int, seed: int = 0, rank: int = 0,
                 world: int = 1, start: int = 0) -> None:
        if n <= 0:
            raise ValueError("the training set is empty")
        self.n, self.per_rank, self.total_steps = int(n), int(per_rank), int(total_steps)
        self.seed, self.rank, self.world, self.start = int(seed), int(rank), int(world), int(start)
        self._perm_cache: dict[int, torch.Tensor] = {}

    @property
    def global_batch(self) -> int:
        return self.per_rank * self.world

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perm_cache:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._perm_cache = {epoch: torch.randperm(self.n, generator=g)}
        return self._perm_cache[epoch]

    def index_at(self, pos: int) -> int:
        return int(self._perm(pos // self.n)[pos % self.n])

    def __len__(self) -> int:
        # the whole run (constant across resumes): Lightning counts restored batches against it
        return self.total_steps * self.per_rank

    def __iter__(self) -> Iterator[int]:
        G = self.global_batch
        done = self.start // G
        for t in range(done, self.total_steps):
            base = self.start + (t - done) * G + self.rank * self.per_rank
            for pos in range(base, base + self.per_rank):
                yield self.index_at(pos)


class TrainStream(pl.LightningDataModule):
    """Wraps a data module (or a dataset): its training set, served as a resumable stream.

    ``chunks`` batches of ``batch_size`` rows per iteration, ``max_iters`` iterations. The inner
    module's ``prepare_data``/``setup`` run as usual; its training dataset is
    ``inner.dataset("train")`` (FaceEditDataModule), else ``train_dataset`` / ``train_set`` /
    ``dataset_train``; ``inner`` may also be the Dataset itself.
    """

    def __init__(self, inner: Any, batch_size: int, chunks: int, max_iters: int, seed: int = 0,
                 num_workers: int = 0) -> None:
        super().__init__()
        self.inner, self.batch_size, self.chunks = inner, int(batch_size), int(chunks)
        self.max_iters, self.seed, self.num_workers = int(max_iters), int(seed), int(num_workers)
        self.start = 0  # global stream position to resume from

    def prepare_data(self) -> None:
        if isinstance(self.inner, pl.LightningDataModule):
            self.inner.prepare_data()

    def setup(self, stage: str) -> None:
        if isinstance(self.inner, pl.LightningDataModule):
            self.inner.setup("fit")

    def train_dataset(self) -> Dataset:
        if isinstance(self.inner, Dataset):
            return self.inner
        if callable(getattr(self.inner, "dataset", None)):  # FaceEditDataModule.dataset(split)
            return self.inner.dataset("train")
        for name in ("train_dataset", "train_set", "dataset_train"):
            ds = getattr(self.inner, name, None)
            ds = ds() if callable(ds) and not isinstance(ds, Dataset) else ds
            if ds is not None:
                return ds
        raise AttributeError(
            f"{type(self.inner).__name__} exposes no training dataset (expected an attribute "
            "train_dataset, train_set or dataset_train after setup('fit'))")

    def train_dataloader(self) -> DataLoader:
        ds = self.train_dataset()
        per_rank = self.batch_size * self.chunks
        rank = self.trainer.global_rank if self.trainer is not None else 0
        world = self.trainer.world_size if self.trainer is not None else 1
        sampler = StreamSampler(len(ds), per_rank, self.max_iters, self.seed, rank, world, self.start)
        return DataLoader(ds, batch_size=per_rank, sampler=sampler, drop_last=True,
                          num_workers=self.num_workers, collate_fn=collate,
                          persistent_workers=False)

    def state_dict(self) -> dict[str, Any]:
        it = 0
        if self.trainer is not None:
            it = int(getattr(self.trainer.lightning_module, "iteration", 0))
        world = self.trainer.world_size if self.trainer is not None else 1
        return {"position": it * self.batch_size * self.chunks * world, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(f"checkpoint data stream seed {state['seed']} != configured seed {self.seed}")
        self.start = int(state["position"])
