"""W&B through Lightning's ``WandbLogger``: offline by default, same keys for every method.

Mode (reference/suites.md §C8): ``--wandb-mode`` when given; else ``$WANDB_MODE`` (tests set
``disabled``: no logger at all); else ``online`` when ``$WANDB_API_KEY`` is set, otherwise
``offline`` (sync later with ``wandb sync <dir>``). Runs are grouped by method and tagged with
resolution, dataset and profile; the whole protocol goes into the run config. A result record is
logged as ``eval/<metric>`` for every registered metric of its track (``metrics.registry``; NaN
when not measured, so every method's runs have the same keys) and ``eval/<metric>/<attribute>``
(:func:`metric_dict`), as W&B
Tables (the result row, the per-attribute table) and with an edit grid whose parser label maps
are W&B mask overlays.
"""
from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any, Sequence

from .parts import PARTS

MODES = ("online", "offline", "disabled")


def track_metrics(track: str) -> list[str]:
    """The metric names logged for every record of ``track`` (the registry's, in table order)."""
    from .metrics.registry import metric_specs

    return [s.name for s in metric_specs(track)]


def resolve_mode(cli_mode: str | None = None) -> str:
    """``online`` / ``offline`` / ``disabled`` from the flag, ``$WANDB_MODE`` and ``$WANDB_API_KEY``."""
    mode = cli_mode or os.environ.get("WANDB_MODE") or (
        "online" if os.environ.get("WANDB_API_KEY") else "offline")
    mode = {"dryrun": "offline", "run": "online"}.get(mode, mode)
    if mode not in MODES:
        raise ValueError(f"W&B mode {mode!r}: expected one of {', '.join(MODES)} "
                         "(from --wandb-mode or $WANDB_MODE)")
    return mode


def run_tags(resolution: int, dataset: str, profile: str) -> list[str]:
    return [f"res{int(resolution)}", str(dataset), str(profile)]


#: the file of a run folder holding its W&B run id (a resumed training continues that W&B run)
RUN_ID_FILE = "wandb_run_id"


def wandb_run_id(run_dir: str | Path) -> str | None:
    """The W&B run id stored in ``run_dir`` (None when it has none), for the result record."""
    path = Path(run_dir) / RUN_ID_FILE
    value = path.read_text().strip() if path.is_file() else ""
    return value or None


def _is_rank_zero() -> bool:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def run_id(run_dir: str | Path, resume: bool) -> str:
    """The W&B run id of ``run_dir``: the stored one when ``resume``, else a new one, stored
    (atomically, rank 0 only) so the next resume of this run folder continues the same W&B run."""
    stored = wandb_run_id(run_dir) if resume else None
    if stored:
        return stored
    import secrets
    import string

    new = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    if _is_rank_zero():
        from .io_utils import atomic_write_bytes

        atomic_write_bytes(Path(run_dir) / RUN_ID_FILE, (new + "\n").encode())
    return new


def make_logger(method: str, resolution: int, dataset: str, profile: str, save_dir: str | Path,
                project: str | None = None, mode: str | None = None, name: str | None = None,
                config: dict | None = None, resume: bool | None = None):
    """A ``WandbLogger`` (group = method, tags = resolution/dataset/profile), or None when disabled.

    ``save_dir`` is the run folder: the W&B run id is kept there (:func:`run_id`); ``resume``
    (default: ``save_dir/checkpoints/last.ckpt`` exists) continues the stored W&B run.
    """
    mode = resolve_mode(mode)
    if mode == "disabled":
        return None
    from lightning.pytorch.loggers import WandbLogger

    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    if resume is None:
        resume = (save_dir / "checkpoints" / "last.ckpt").is_file()
    return WandbLogger(project=project or os.environ.get("WANDB_PROJECT", "faceedit-bench"),
                       name=name or f"{method}_{resolution}_{dataset}_{profile}",
                       save_dir=str(save_dir), offline=(mode == "offline"), group=method,
                       tags=run_tags(resolution, dataset, profile), config=config or {},
                       job_type="bench", log_model=False, id=run_id(save_dir, resume),
                       resume="allow")


def _num(v: Any) -> float:
    return float("nan") if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def metric_dict(record: dict) -> dict[str, float]:
    """``eval/<metric>`` for every registered metric of the record's track and ``eval/<metric>/<attr>``."""
    out = {f"eval/{k}": _num(record["metrics"].get(k)) for k in track_metrics(record["track"])}
    out.update({f"eval/{k}": _num(v) for k, v in record["metrics"].items()})
    for metric, table in sorted(record["per_attribute"].items()):
        for attr, v in table.items():
            out[f"eval/{metric}/{attr}"] = _num(v)
    return out


def record_config(record: dict) -> dict:
    """Run config: the whole protocol plus what identifies the result."""
    keys = ("method", "track", "resolution", "dataset", "split", "n_images", "profile")
    return {"protocol": record["protocol"], **{k: record[k] for k in keys if k in record},
            **({"run": record["run"]} if "run" in record else {})}


def log_record(logger, record: dict, step: int | None = None) -> None:
    """Metrics, the result row and per-attribute tables, and the protocol into the run config."""
    logger.experiment.config.update(record_config(record), allow_val_change=True)
    logger.log_metrics(metric_dict(record), step=step)
    names = sorted(record["metrics"])
    row = [record["method"], record["dataset"], record["resolution"], record.get("profile", ""),
           record["n_images"], *[_num(record["metrics"][k]) for k in names]]
    logger.log_table("eval/result_row", columns=["method", "dataset", "resolution", "profile",
                                                 "n_images", *names], data=[row])
    per = record["per_attribute"]
    if per:
        metrics = sorted(per)
        attrs = list(record["protocol"].get("attrs", []))
        attrs += sorted({a for t in per.values() for a in t} - set(attrs))
        data = [[a, *[_num(per[m].get(a)) for m in metrics]] for a in attrs]
        logger.log_table("eval/per_attribute", columns=["attribute", *metrics], data=data)


def log_edit_grid(logger, images: Sequence, labels: Sequence | None = None,
                  captions: Sequence[str] | None = None, key: str = "eval/edits") -> None:
    """Edited images (H x W x 3 uint8 each) with parser label maps (H x W) as mask overlays."""
    kwargs: dict[str, Any] = {}
    if captions is not None:
        kwargs["caption"] = list(captions)
    if labels is not None:
        class_labels = {i: name for i, name in enumerate(PARTS)}
        kwargs["masks"] = [{"parser": {"mask_data": lab, "class_labels": class_labels}} for lab in labels]
    logger.log_image(key=key, images=list(images), **kwargs)


def finish(logger) -> Path | None:
    """Close the run; returns its local folder (offline runs: sync it with ``wandb sync``)."""
    if logger is None:
        return None
    import wandb

    run = logger.experiment
    run_dir = Path(run.dir).parent if getattr(run, "dir", None) else None
    wandb.finish()
    return run_dir


def _log_records(data: bytes, block: int = 32768):
    """Records of a ``.wandb`` file: a 7-byte ``:W&B`` header, then LevelDB-log framing (32 KiB
    blocks, each record ``<crc u32><len u16><type u8>``; 1 full, 2 first, 3 middle, 4 last)."""
    if data[:4] != b":W&B":
        raise ValueError("not a .wandb file (missing the ':W&B' header)")
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:  # zero padding up to the block's end
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            yield buf + chunk
            buf = b""


def read_offline_run(run_dir: str | Path) -> dict:
    """What an offline run recorded, read from its ``run-*.wandb`` file (wandb >= 0.19 writes
    ``config.yaml``/``wandb-summary.json`` only when syncing): ``id`` (the W&B run id),
    ``group``, ``tags``, ``config`` (key -> value), ``keys`` (every history/summary key),
    ``history`` (one dict per logged row) and ``complete`` (the exit record is there; the writer
    may still be flushing right after ``wandb.finish``)."""
    from wandb.proto import wandb_internal_pb2 as pb

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no run-*.wandb file (is this an offline run folder?)")
    out: dict[str, Any] = {"id": None, "group": None, "tags": [], "config": {}, "keys": set(),
                           "history": [], "complete": False}
    for raw in _log_records(files[0].read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        out["complete"] |= kind == "exit"
        if kind == "run":
            out["id"], out["group"], out["tags"] = rec.run.run_id, rec.run.run_group, list(rec.run.tags)
            updates = rec.run.config.update
        elif kind == "config":
            updates = rec.config.update
        else:
            updates = ()
            items = rec.history.item if kind == "history" else rec.summary.update if kind == "summary" else ()
            out["keys"].update(i.key or "/".join(i.nested_key) for i in items)
            if kind == "history":
                out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                       for i in items})
        for item in updates:
            out["config"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out
