"""On-disk cache of real-image feature moments (Σx, Σxxᵀ, n), keyed by content.

As NVlabs edm / stylegan2-ada's metric cache (reference/suites.md §B1): the file name is a hash
of everything that changes the statistics — data hash, split, resolution, number of images,
extractor name and weights hash, preprocessing — never a bare dataset name (StudioGAN's
pitfall). Written atomically (temp file + os.replace) by global rank 0 only; read by every rank.
Files load with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..protocol import stable_hash
from ..io_utils import atomic_torch_save, load_tensor_file


def _rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", 0))


def cache_key(**fields: Any) -> str:
    """Hash of every field that affects the statistics (sorted-key JSON md5)."""
    return stable_hash(fields, n=24)


def cache_path(cache_dir, key: str) -> Path:
    return Path(cache_dir) / f"real-moments-{key}.pt"


def load_moments(cache_dir, key: str):
    """(Σx, Σxxᵀ, n) from the cache, or None if absent (or unreadable: recomputed)."""
    path = cache_path(cache_dir, key)
    if not path.is_file():
        return None
    try:
        blob = load_tensor_file(path)
        return blob["sum"], blob["outer"], int(blob["n"])
    except Exception:  # a foreign or damaged file: ignore it and recompute
        return None


def save_moments(cache_dir, key: str, s: torch.Tensor, ss: torch.Tensor, n: int,
                 meta: dict | None = None) -> Path | None:
    """Write the moments on global rank 0 (other ranks return None); atomic."""
    if _rank() != 0:
        return None
    path = cache_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"sum": s.detach().double().cpu(), "outer": ss.detach().double().cpu(), "n": int(n),
            "meta": {k: str(v) for k, v in (meta or {}).items()}}
    atomic_torch_save(blob, path)
    return path
