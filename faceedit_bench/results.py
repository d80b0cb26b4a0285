"""Result records: one JSON object per evaluation, in append-only JSON-lines files (DESIGN §3).

A record carries the method, data, its evaluation track, every metric (overall and per
attribute) and the protocol that produced them; a number never travels without its protocol.
Metric names must be registered (``metrics.registry``) for the record's track. Appends are safe
across processes: a file lock around one ``os.write`` of the whole line. Schema 2 added
``track``; :func:`upgrade_record` / :func:`upgrade_file` migrate schema-1 records.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock

from .resource_errors import naming

SCHEMA_VERSION = 2
#: the track of every schema-1 record (there was no other)
V1_TRACK = "attribute_flip"

#: top-level key -> accepted Python types
REQUIRED: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "method": (str,),
    "track": (str,),
    "resolution": (int,),
    "dataset": (str,),
    "split": (str,),
    "n_images": (int,),
    "metrics": (dict,),
    "per_attribute": (dict,),
    "protocol": (dict,),
    "created": (str,),
}
OPTIONAL: dict[str, tuple[type, ...]] = {"run": (dict,), "profile": (str,), "notes": (str,), "variant": (str,)}
#: protocol keys every record must carry
PROTOCOL_REQUIRED = ("attrs", "crop", "resize_filter", "test_intensity", "seed", "commit",
                     "precision", "devices", "data_hash")


class RecordError(ValueError):
    """A record that does not follow the schema; the message names the key."""


class ResultsFileError(ValueError):
    """A malformed line in a results file; the message starts with ``path:line:``."""


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def validate_record(rec: Any) -> dict:
    """Return ``rec`` if it follows the schema, else raise :class:`RecordError` naming the key."""
    if not isinstance(rec, dict):
        raise RecordError(f"record must be a JSON object, got {type(rec).__name__}")
    if "schema_version" in rec and rec["schema_version"] != SCHEMA_VERSION:
        hint = " (migrate with faceedit_bench.results.upgrade_file)" if rec["schema_version"] == 1 else ""
        raise RecordError(f"key 'schema_version': expected {SCHEMA_VERSION}, got {rec['schema_version']!r}{hint}")
    for key, types in REQUIRED.items():
        if key not in rec:
            raise RecordError(f"missing key {key!r}")
        if not isinstance(rec[key], types) or isinstance(rec[key], bool):
            raise RecordError(f"key {key!r}: expected {types[0].__name__}, got {type(rec[key]).__name__}")
    for key in rec:
        if key not in REQUIRED and key not in OPTIONAL:
            raise RecordError(f"unknown key {key!r}; allowed: {sorted(REQUIRED) + sorted(OPTIONAL)}")
        if key in OPTIONAL and not isinstance(rec[key], OPTIONAL[key]):
            raise RecordError(f"key {key!r}: expected {OPTIONAL[key][0].__name__}")
    from .metrics.registry import TRACKS

    if rec["track"] not in TRACKS:
        raise RecordError(f"key 'track': expected one of {list(TRACKS)}, got {rec['track']!r}")
    for name, value in rec["metrics"].items():
        _check_metric_name("metrics", name, rec["track"])
        if not _is_number(value):
            raise RecordError(f"metrics[{name!r}]: expected a number or null, got {value!r}")
    for name, table in rec["per_attribute"].items():
        _check_metric_name("per_attribute", name, rec["track"])
        if not isinstance(table, dict):
            raise RecordError(f"per_attribute[{name!r}]: expected an object attribute -> number")
        for attr, value in table.items():
            if not _is_number(value):
                raise RecordError(f"per_attribute[{name!r}][{attr!r}]: expected a number, got {value!r}")
    for key in PROTOCOL_REQUIRED:
        if key not in rec["protocol"]:
            raise RecordError(f"protocol: missing key {key!r}")
    return rec


def _check_metric_name(where: str, name: str, track: str) -> None:
    """A registered metric of ``track``, else :class:`RecordError` naming it."""
    from .metrics.registry import is_metric, metric_spec

    if not is_metric(name):
        raise RecordError(f"{where}[{name!r}]: unknown metric (not in faceedit_bench.metrics.registry)")
    tracks = metric_spec(name).tracks
    if track not in tracks:
        raise RecordError(f"{where}[{name!r}]: not a metric of track {track!r} (its tracks: {list(tracks)})")


def make_record(
    method: str,
    resolution: int,
    dataset: str,
    split: str,
    n_images: int,
    metrics: dict[str, float | None],
    protocol: dict[str, Any],
    per_attribute: dict[str, dict[str, float]] | None = None,
    *,
    track: str,
    **optional: Any,
) -> dict:
    """Build and validate a record of evaluation ``track``; NaN/inf metric values become null."""

    def clean(v):
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v

    rec = {
        "schema_version": SCHEMA_VERSION,
        "method": method,
        "track": track,
        "resolution": int(resolution),
        "dataset": dataset,
        "split": split,
        "n_images": int(n_images),
        "metrics": {k: clean(float(v) if v is not None else None) for k, v in metrics.items()},
        "per_attribute": {
            m: {a: clean(float(v)) for a, v in t.items()} for m, t in (per_attribute or {}).items()
        },
        "protocol": dict(protocol),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **optional,
    }
    return validate_record(rec)


def append_record(path: str | os.PathLike, rec: dict) -> None:
    """Append one validated record as one line; safe when several processes append at once."""
    validate_record(rec)
    line = (json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n").encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise naming(e, path) from None
        try:
            start = os.fstat(fd).st_size
            rest = memoryview(line)
            while rest:  # a short write (size limit reached) is followed by the one that fails
                rest = rest[os.write(fd, rest):]
            os.fsync(fd)
        except OSError as e:  # never leave a partial line: roll it back
            os.ftruncate(fd, start)
            raise naming(e, path) from None
        finally:
            os.close(fd)


def remove_records(path: str | os.PathLike, drop) -> int:
    """Rewrite ``path`` without the records for which ``drop(record)`` is true (under the
    appenders' lock, temporary file then rename); returns how many were removed."""
    path = Path(path)
    if not path.is_file():
        return 0
    with FileLock(str(path) + ".lock"):
        raws = [raw for raw in path.read_bytes().splitlines(keepends=True) if raw.strip()]
        keep = [raw for raw in raws if not drop(json.loads(raw))]
        if len(keep) != len(raws):
            from .io_utils import atomic_write_bytes  # torch is imported only on this path

            atomic_write_bytes(path, b"".join(keep))
    return len(raws) - len(keep)


def iter_records(path: str | os.PathLike) -> Iterator[dict]:
    """Yield every record of a results file; a malformed line raises naming ``path:line``."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            if not raw.endswith(b"\n"):
                raise ResultsFileError(f"{path}:{lineno}: truncated record (no end of line); "
                                       "the writer was interrupted — remove or repair this line")
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ResultsFileError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            try:
                yield validate_record(rec)
            except RecordError as e:
                raise ResultsFileError(f"{path}:{lineno}: {e}") from None


def read_records(path: str | os.PathLike) -> list[dict]:
    return list(iter_records(path))


def upgrade_record(rec: dict) -> dict:
    """A schema-1 record as schema 2 (``track``: attribute_flip, the only track it could have had);
    a current record is returned unchanged. The result is validated."""
    if rec.get("schema_version") == 1:
        rec = {**rec, "schema_version": SCHEMA_VERSION, "track": rec.get("track", V1_TRACK)}
    return validate_record(rec)


def upgrade_file(path: str | os.PathLike) -> int:
    """Rewrite a results file with every record upgraded (same line order, same JSON layout as
    :func:`append_record`), atomically and under the appenders' lock; returns the number of
    records."""
    from .io_utils import atomic_write_bytes  # torch is imported only on this path

    path = Path(path)
    with FileLock(str(path) + ".lock"):  # no append may land between the read and the rename
        lines = []
        for lineno, raw in enumerate(path.read_bytes().splitlines(), start=1):
            if raw.strip():
                try:
                    rec = upgrade_record(json.loads(raw))
                except (json.JSONDecodeError, RecordError) as e:
                    raise ResultsFileError(f"{path}:{lineno}: {e}") from None
                lines.append(json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n")
        atomic_write_bytes(path, "".join(lines).encode("utf-8"))
    return len(lines)
