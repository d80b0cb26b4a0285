"""Resource faults (disk full, file-size limit, read-only or unwritable folder) as one line.

Writers re-raise such an ``OSError`` with the file they were writing (:func:`naming`), after
leaving the previous file intact (temp file + rename, or a rolled-back append); the CLI prints
:func:`one_line` and exits 1. No torch import: the CLI's error path uses it.
"""
from __future__ import annotations

import errno
import os

#: errnos only a write meets: full disk, quota, file-size limit, read-only file system
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
#: those plus a place this user may not write (or read)
RESOURCE_ERRNOS = WRITE_ERRNOS | {errno.EACCES, errno.EPERM}


def is_resource_error(e: BaseException, write_only: bool = False) -> bool:
    return isinstance(e, OSError) and e.errno in (WRITE_ERRNOS if write_only else RESOURCE_ERRNOS)


def naming(e: OSError, path: str | os.PathLike) -> OSError:
    """``e`` with ``path`` as its file (a write error of an open descriptor names none)."""
    return OSError(e.errno, e.strerror or os.strerror(e.errno or 0), str(path))


def one_line(e: OSError) -> str:
    """``cannot write <file>: <reason>; ...`` for the console."""
    where = e.filename if e.filename is not None else "a file"
    if e.errno not in WRITE_ERRNOS:  # permission: a read or a write
        return f"{where}: {e.strerror} — check the permissions of the file and its folder"
    hint = {errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some quota",
            errno.EFBIG: "raise the file-size limit (ulimit -f) or free space",
            errno.EROFS: "choose a writable output folder"}.get(e.errno, "check the folder's permissions")
    return (f"cannot write {where}: {e.strerror}; nothing was half-written (the previous file, if any, "
            f"is intact) — {hint} and rerun")
