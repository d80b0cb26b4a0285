"""Atomic file writes: write to a temporary file beside the target, then ``os.replace``."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

import torch


class UnsafeFileError(ValueError):
    """A weights file that is not a plain tensor file (its pickle would build other objects)."""


class CorruptFileError(ValueError):
    """A file ``torch.load`` cannot read at all (empty, truncated, not a torch file)."""


class CheckpointError(ValueError):
    """A readable tensor file that is not the checkpoint asked for (a bare state_dict, another
    method's checkpoint)."""


def load_tensor_file(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """The package's one ``torch.load``: ``weights_only=True`` (tensors, containers, numbers,
    strings only). A file whose pickle asks for anything else — e.g. a ``__reduce__`` that runs
    code — is refused before anything in it runs, with one line naming the file; so is an
    empty, truncated or non-torch file (:class:`CorruptFileError`, instead of torch's bare
    ``EOFError`` / ``KeyError`` / miniz ``RuntimeError`` that name nothing)."""
    import pickle

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported operand" in str(e):     # not a pickle at all (text, an LFS pointer, ...)
            raise _corrupt(path) from None
        raise UnsafeFileError(
            f"{path}: not a plain tensor file (its pickle asks for objects or code beyond tensors "
            "and containers); refused without running it") from None
    except (EOFError, KeyError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and not any(m in str(e) for m in ("zip archive", "magic number")):
            raise                                    # e.g. a device problem of a readable file
        raise _corrupt(path) from None


def _corrupt(path: str | os.PathLike) -> CorruptFileError:
    size = os.path.getsize(path) if os.path.isfile(path) else 0
    what = "empty" if size == 0 else f"{size} bytes, truncated or not a torch file"
    return CorruptFileError(f"{path}: cannot be read by torch.load ({what}); expected a complete "
                            "file written by torch.save — re-create or re-download it")


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


def _new_file_mode() -> int:
    """0666 minus the process umask: the mode ``open(path, "w")`` gives a new file."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


class _RecordingWriter:
    """A binary file that remembers the ``OSError`` of a failed write (torch's C++ zip writer
    swallows it and reports only a position mismatch); everything else is the file's."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name: str):
        return getattr(self._f, name)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync, then ``os.replace``: a kill
    never leaves a half-written ``path``. The temporary file (``<name>.<host>.<pid>.<random>.tmp``)
    of a writer killed before its rename is removed by the next write of the same target."""
    from .resource_errors import is_resource_error, naming

    path = Path(path)
    tmp = out = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp")
        os.fchmod(fd, _new_file_mode())  # mkstemp makes 0600; a plain open() would honour the umask
        with os.fdopen(fd, "wb") as f:
            out = _RecordingWriter(f)
            write(out)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # disk full, size limit, read-only: the target is untouched
        if is_resource_error(e):
            raise naming(e, path) from None
        raise
    except RuntimeError:  # torch.save's zip writer turns a failed write into "unexpected pos"
        if out is not None and out.error is not None and is_resource_error(out.error):
            raise naming(out.error, path) from None
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the file ``src`` to ``dst`` through :func:`atomic_write`."""
    import shutil

    with open(src, "rb") as f:
        return atomic_write(dst, lambda out: shutil.copyfileobj(f, out))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` through :func:`atomic_write`. The bytes depend only on
    ``obj``: torch.save writes to the open file, so the zip's inner folder is always ``archive``
    (given a path, torch names it after the random temporary name, and two saves of the same
    tensors would differ)."""
    return atomic_write(path, lambda f: torch.save(obj, f))
