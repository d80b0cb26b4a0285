"""Atomic file writes: write to a temporary file beside the target, then ``os.replace``."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class UnsafeFileError(ValueError):
    """A weights file that is not a plain tensor file (its pickle would build other objects)."""


def load_tensor_file(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """The package's one ``torch.load``: ``weights_only=True`` (tensors, containers, numbers,
    strings only). A file whose pickle asks for anything else — e.g. a ``__reduce__`` that runs
    code — is refused before anything in it runs, with one line naming the file."""
    import pickle

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise UnsafeFileError(
            f"{path}: not a plain tensor file (its pickle asks for objects or code beyond tensors "
            "and containers); refused without running it") from None


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` so that a kill never leaves a half-written file there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
