"""Keep freed memory in the process heap (glibc ``mallopt``), for allocation-heavy CPU work.

PyTorch CPU ops allocate a fresh output per call. glibc serves blocks above its mmap threshold
(128 KiB, raised dynamically) with ``mmap`` and gives freed heap tops back to the OS, so every
full-image temporary of the SynthFaces renderer is page-faulted in again: measured at 128 px,
~280 minor faults and ~0.7 ms of system time per image. Raising the mmap threshold (1 GiB, or
glibc's 32 MiB maximum where it refuses more) and the trim threshold to 1 GiB keeps those blocks in the heap for reuse (the
process keeps its peak heap). The same holds for a CPU training step, whose activation buffers
were ~25% of an AttGAN iteration's CPU time in page faults. Process-wide; called by the
SynthFaces exporter workers, by CPU training (``AdversarialEditor.on_fit_start``) and the
benchmarks, never on import. A no-op where glibc is not the C library or with
``FACEEDIT_MALLOC_TUNE=0``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_DONE: list[bool] = []


def keep_freed_memory() -> bool:
    """Tune glibc malloc once per process; True if it applied (False with FACEEDIT_MALLOC_TUNE=0)."""
    if os.environ.get("FACEEDIT_MALLOC_TUNE", "1") == "0":
        return False
    if _DONE:
        return _DONE[0]
    ok = False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (macOS, musl without mallopt, Windows)
        mallopt = None
    if mallopt is not None:
        ok = bool((mallopt(_M_MMAP_THRESHOLD, 1 << 30) or mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and mallopt(_M_TRIM_THRESHOLD, 1 << 30)
                  and mallopt(_M_TOP_PAD, 64 << 20))
    _DONE.append(ok)
    return ok
