"""Atomic writes for rendered files (temp file in the same folder + os.replace)."""
from __future__ import annotations

from pathlib import Path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """``data`` to ``path`` through :func:`faceedit_bench.io_utils.atomic_write_bytes`."""
    from ..io_utils import atomic_write_bytes

    return atomic_write_bytes(path, data)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))
