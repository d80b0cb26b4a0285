"""The one LightningDataModule every method trains and is evaluated through (DESIGN §3, §5).

Batches (dicts): ``image`` float B x 3 x H x W in [-1, 1]; ``attrs`` float B x A in {0,1} (the
configured attributes, any of the 40 by name); ``parts`` uint8 B x H x W (19 classes of
``parts.PARTS``; make soft masks on the device with ``parts.one_hot_parts``); ``index`` long
(row in the store). Test batches of SynthFaces also carry ``cf_image`` float B x A x 3 x H x W
and ``cf_parts`` uint8 B x A x H x W: the ground-truth single flip of each configured attribute.
Whole batches are read from the memory-mapped store in the workers (``__getitems__``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..parts import NUM_PARTS
from ..protocol import DEFAULT_ATTRS, DEFAULT_SYNTH_N, validate_attrs
from .sampler import ResumableSampler
from .sources import DEFAULT_SPLIT
from .store import DEFAULT_CROP, Store, build_store, store_name

DEFAULT_ROOTS = {"celeba": "data/celeba", "celebahq": "data/CelebAMask-HQ"}


def _empty(shape, dtype) -> torch.Tensor:
    """Output buffer; in a loader worker it is allocated in shared memory (no copy when sent)."""
    t = torch.empty(shape, dtype=dtype)
    return t.share_memory_() if torch.utils.data.get_worker_info() is not None else t


def _to_float(img: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1] (one strided copy + 2 passes)."""
    u = torch.from_numpy(np.ascontiguousarray(img)).movedim(-1, -3)
    out = _empty(u.shape, torch.float32)
    out.copy_(u)
    return out.mul_(1 / 127.5).sub_(1.0)


def _gather(arr: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """Rows of a (memmapped) uint8 array straight into a (shared) tensor."""
    out = _empty((len(rows),) + arr.shape[1:], torch.uint8)
    np.take(arr, rows, axis=0, out=out.numpy())
    return out


def _checked_labels(parts: torch.Tensor, store: Store) -> torch.Tensor:
    """A batch's label maps, refused with the file named when a class is outside 0..18 (a max over
    the batch: the check costs nothing beside the gather)."""
    if parts.numel() and int(parts.max()) >= NUM_PARTS:
        raise ValueError(f"{store.path / 'labels.npy'}: label {int(parts.max())} outside the "
                         f"{NUM_PARTS} face-parser classes 0..{NUM_PARTS - 1}; rebuild it with `faceedit-bench masks`")
    return parts


class StoreDataset(Dataset):
    """Rows ``rows`` of a store; batched reads through ``__getitems__`` (one memmap gather)."""

    def __init__(self, store: Store, rows: np.ndarray, attr_cols: Sequence[int],
                 cf_attrs: Sequence[str] = ()):
        self.store, self.rows = store, np.asarray(rows, np.int64)
        self.attr_cols = list(attr_cols)
        self.cf_attrs = list(cf_attrs)
        if self.cf_attrs:
            cf_pos = np.full(len(store), -1, np.int64)
            test = store.split_indices("test")
            cf_pos[test] = np.arange(len(test))
            self.cf_pos = cf_pos

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, idx) -> dict:
        r = self.rows[np.asarray(idx, np.int64)]
        s = self.store
        batch = {
            "image": _to_float(s.images[r]),
            "attrs": torch.from_numpy(s.attrs[r][:, self.attr_cols].astype(np.float32)),
            "parts": _checked_labels(_gather(s.labels, r), s),
            "index": torch.from_numpy(r),
        }
        if self.cf_attrs:
            p = self.cf_pos[r]
            cfs = [s.counterfactuals(a) for a in self.cf_attrs]
            batch["cf_image"] = _to_float(np.stack([c[0][p] for c in cfs], 1))
            batch["cf_parts"] = torch.from_numpy(np.stack([c[1][p] for c in cfs], 1))
        return batch

    def __getitem__(self, i: int) -> dict:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


def collate(batch):
    """``__getitems__`` already returns a batched dict; fall back to default_collate otherwise."""
    if isinstance(batch, dict):
        return batch
    return torch.utils.data.default_collate(batch)


class ResumableLoader(DataLoader):
    """Train DataLoader that Lightning treats as resumable (``state_dict``/``load_state_dict``).

    Its state is the DataModule's (consumed position of the train order); Lightning stores it
    with the fit loop and restores it after building the loader, in addition to the
    DataModule's own checkpoint entry (both carry the same position).
    """

    def state_dict(self) -> dict:
        fn = getattr(self, "_state_fn", None)
        return fn() if fn is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if state and isinstance(self.sampler, ResumableSampler):
            self.sampler.load_state_dict(state)


class FaceEditDataModule(L.LightningDataModule):
    """CelebA / CelebA-HQ / SynthFaces through one decoded store (see docs/data.md)."""

    def __init__(self, data: str = "synth", root: str | None = None, res: int = 64,
                 attrs: Sequence[str] = DEFAULT_ATTRS, batch_size: int = 32,
                 num_workers: int = 2, seed: int = 0, store_root: str = "data/stores",
                 synth_n: int = DEFAULT_SYNTH_N, masks: str = "gt", parser_weights: str | None = None,
                 crop: str | None = None, split: str | None = None, skip_bad: bool = False,
                 resize_filter: str = "bicubic", eval_batch_size: int | None = None,
                 drop_last: bool = True, name: str | None = None):
        super().__init__()
        if name is not None:                 # configs/data/*.yaml call the dataset `name`
            if data != "synth" and data != name:
                raise ValueError(f"data={data!r} and name={name!r} disagree")
            data = name
        if data not in DEFAULT_SPLIT:
            raise ValueError(f"unknown data {data!r}; expected one of {list(DEFAULT_SPLIT)}")
        self.data, self.res = data, int(res)
        self.attrs = validate_attrs(list(attrs))
        self.batch_size, self.num_workers, self.seed = int(batch_size), int(num_workers), int(seed)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.synth_n, self.masks, self.parser_weights = int(synth_n), masks, parser_weights
        self.crop = crop or DEFAULT_CROP[data]
        self.split, self.skip_bad, self.resize_filter = split, skip_bad, resize_filter
        self.drop_last = drop_last
        if root is None:
            root = (f"data/synthfaces/n{self.synth_n}_r{self.res}" if data == "synth"
                    else DEFAULT_ROOTS[data])
        self.root = Path(root)
        self.store_path = Path(store_root) / store_name(
            data, self.res, self.crop, masks, split if split and split != DEFAULT_SPLIT[data] else None,
            tag=f"n{self.synth_n}" if data == "synth" else None)
        self.store: Store | None = None
        self._train_sampler: ResumableSampler | None = None
        self._resume_state: dict | None = None
        self.save_hyperparameters()

    # ------------------------------------------------------------------ building / opening
    def prepare_data(self) -> None:
        """Export SynthFaces if missing, then build the store (Lightning: once per node)."""
        from filelock import FileLock

        self.store_path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.store_path) + ".lock"):
            if self.data == "synth":
                from .synth_export import MANIFEST, export_synthfaces

                missing = not (self.root / "list_attr_celeba.txt").is_file()
                interrupted = (self.root / ".progress").is_dir() and not (self.root / MANIFEST).is_file()
                if missing or interrupted:
                    export_synthfaces(self.root, n=self.synth_n, res=self.res, seed=0)
            build_store(self.root, self.store_path, self.data, self.res, crop=self.crop,
                        masks=self.masks, parser_weights=self.parser_weights,
                        skip_bad=self.skip_bad, split=self.split,
                        resize_filter=self.resize_filter)

    def setup(self, stage: str | None = None) -> None:
        if self.store is None:
            if not (self.store_path / "manifest.json").is_file():
                raise FileNotFoundError(f"{self.store_path}: store not built; call prepare_data() "
                                        "or run `faceedit-bench store`")
            self.store = Store(self.store_path)
            if self.store.images.shape[1] != self.res:
                raise ValueError(f"{self.store_path}: images are {self.store.images.shape[1]} px; "
                                 f"expected {self.res}")

    @property
    def data_hash(self) -> str:
        if self.store is None:
            raise RuntimeError("data_hash is known after setup()")
        return self.store.hash

    @property
    def has_counterfactuals(self) -> bool:
        return self.store is not None and set(self.attrs) <= set(self.store.counterfactual_attrs)

    def dataset(self, split: str) -> StoreDataset:
        self.setup()
        cf = self.attrs if (split == "test" and self.has_counterfactuals) else ()
        return StoreDataset(self.store, self.store.split_indices(split),
                            self.store.attr_columns(self.attrs), cf)

    # ------------------------------------------------------------------ loaders
    def _rank_world(self) -> tuple[int, int]:
        t = getattr(self, "trainer", None)
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def _loader(self, ds: Dataset, sampler, batch_size: int, drop_last: bool,
                persistent: bool, cls=DataLoader) -> DataLoader:
        w = self.num_workers
        return cls(ds, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                          num_workers=w, collate_fn=collate, pin_memory=torch.cuda.is_available(),
                          persistent_workers=persistent and w > 0,
                          prefetch_factor=4 if w > 0 else None)

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train")
        rank, world = self._rank_world()
        self._train_sampler = ResumableSampler(len(ds), self.seed, True, rank, world,
                                               drop_last=self.drop_last)
        if self._resume_state is not None:
            self._train_sampler.load_state_dict(self._resume_state)
            self._resume_state = None
        loader = self._loader(ds, self._train_sampler, self.batch_size, self.drop_last, True,
                              ResumableLoader)
        loader._state_fn = self.state_dict
        return loader

    def _eval_loader(self, split: str) -> DataLoader:
        ds = self.dataset(split)
        rank, world = self._rank_world()
        sampler = ResumableSampler(len(ds), self.seed, False, rank, world, pad=False)
        return self._loader(ds, sampler, self.eval_batch_size, False, False)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    # ------------------------------------------------------------------ resumable order
    def state_dict(self) -> dict:
        """Position of the train order: samples of this rank consumed in the current epoch."""
        s = self._train_sampler
        if s is None:
            return dict(self._resume_state or {})
        state = s.state_dict()
        t = getattr(self, "trainer", None)
        if t is not None and getattr(t, "fit_loop", None) is not None:
            # the loader runs ahead of training (worker prefetch); count what training consumed.
            state["epoch"] = int(t.current_epoch)
            ready = t.fit_loop.epoch_loop.batch_progress.current.ready
            state["position"] = int(ready) * self.batch_size
        return state

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        if self._train_sampler is not None:
            self._train_sampler.load_state_dict(state)
        else:
            self._resume_state = dict(state)
