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


def _temp_prefix(path: Path) -> str:
    """``<name>.<host>.`` : the start of this host's temporary names for ``path``."""
    import socket

    return f"{path.name}.{socket.gethostname().replace('.', '-')}."


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary files of ``path`` that a killed writer of this host left behind
    (``<name>.<host>.<pid>.<random>.tmp`` whose process no longer runs)."""
    import glob

    prefix = _temp_prefix(path)
    for tmp in path.parent.glob(glob.escape(prefix) + "*.tmp"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except OSError:          # alive (another user's), or cannot tell: leave it
            pass


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` so that a kill never leaves a half-written file there.

    The temporary file (``<name>.<host>.<pid>.<random>.tmp`` beside the target) of a writer
    killed before its ``os.replace`` is removed by the next save of the same target. The bytes
    depend only on ``obj``: torch.save writes to the open file, so the zip's inner folder is
    always ``archive`` (given a path, torch names it after the random temporary name, and two
    saves of the same tensors would differ)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
