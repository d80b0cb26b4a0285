"""Training entry points: ``fit(cfg) -> last checkpoint`` and ``load_method(ckpt) -> EditMethod``.

A run is a composed config (``faceedit_bench.config.compose_config``): ``cfg.method.model`` gives
the networks, ``cfg.method.train`` the paper's training settings and ``cfg.profile`` overrides
them (``null`` keeps the method's value): ``max_iters`` (generator iterations), ``batch_size``
(per D/G step and rank), ``n_critic``, ``lr``, ``ema_decay``, ``channels_last``, ``compile``,
``ckpt_every``, ``keep_ckpts`` (periodic checkpoints kept besides ``last.ckpt``, default 2;
``null``/-1: all), ``sample_every``, ``n_samples``, ``max_cpu_minutes`` (stop early once the
training process has used that much CPU time), ``resume`` (``auto``: continue from
``<run_dir>/checkpoints/last.ckpt`` when it exists; a path; or ``null``), ``deterministic``,
``progress_bar``. The trainer preset gives accelerator, devices, nodes, strategy, precision.

Outputs under ``<out_dir>/<run_name>`` (default ``<method>_<res>_<data>_<profile>``):
``config.yaml``, ``checkpoints/{iter_*,last}.ckpt``, ``samples/iter_*.png``, ``logs/``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from .build import build_datamodule, build_logger, require_train_settings
from .build import method_kwargs, plain as _plain, train_settings  # noqa: F401  (re-exported)
from .io_utils import CheckpointError, load_tensor_file


def run_dir(cfg: DictConfig) -> Path:
    method = cfg.method.name + (f"-{cfg.method.variant}" if cfg.method.get("variant") else "")
    name = cfg.get("run_name") or f"{method}_{cfg.res}_{cfg.data.name}_{cfg.profile.name}"
    return Path(cfg.get("out_dir", "runs")) / str(name)


def _write_config(cfg: DictConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    os.replace(tmp, path)


def resume_path(cfg: DictConfig, out: Path) -> Path | None:
    value = cfg.profile.get("resume", "auto")
    if value in (None, False, "none", "null"):
        return None
    if value == "auto":
        last = out / "checkpoints" / "last.ckpt"
        hpc = sorted(out.glob("hpc_ckpt_*.ckpt"))  # Lightning's SLURM auto-requeue saves (SIGUSR1)
        if not hpc:
            return last if last.is_file() else None
        return max([last] * last.is_file() + hpc, key=_saved_iteration)
    path = Path(str(value))
    if not path.is_file():
        raise FileNotFoundError(f"profile.resume={value!r}: no checkpoint file there")
    return path


def _saved_iteration(path: Path) -> int:
    """The generator iteration a checkpoint was saved at (-1 when it has none)."""
    blob = load_tensor_file(path)
    return int(blob.get("faceedit_iteration", -1)) if isinstance(blob, dict) else -1


def finished(cfg: DictConfig, ckpt: Path) -> str | None:
    """Why the run of ``ckpt`` needs no more training (``max_iters`` reached, or the CPU budget
    spent), else None: a rerun of a finished run returns its checkpoint unchanged."""
    import torch

    blob = load_tensor_file(ckpt)
    if not isinstance(blob, dict) or "faceedit_method" not in blob:
        raise CheckpointError(f"{ckpt} is not a faceedit-bench training checkpoint "
                              "(key faceedit_method missing); fit resumes only from its own checkpoints")
    if blob["faceedit_method"] != cfg.method.name:
        raise CheckpointError(f"{ckpt}: a checkpoint of method {blob['faceedit_method']!r}, not "
                              f"{cfg.method.name!r}; resume it with --method {blob['faceedit_method']}")
    it, max_iters = int(blob.get("faceedit_iteration", 0)), int(require_train_settings(cfg)["max_iters"])
    if it >= max_iters:
        return f"already complete: iteration {it} of max_iters={max_iters} ({ckpt})"
    budget = cfg.profile.get("max_cpu_minutes")
    used = next((v.get("used") for k, v in blob.get("callbacks", {}).items() if "CPUBudget" in k), None)
    if budget and used is not None and used >= float(budget) * 60:
        return (f"already complete: the {float(budget):g} CPU-minute budget was spent at iteration "
                f"{it} of {max_iters} ({ckpt})")
    return None


def folder_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def folder_summary(out: Path) -> str:
    """``run folder <out>: 12.3 MB (last.ckpt + 2 periodic)`` for fit's last line."""
    from .callbacks import periodic_checkpoints

    ckdir = out / "checkpoints"
    last = "last.ckpt + " if (ckdir / "last.ckpt").is_file() else ""
    return (f"run folder {out}: {folder_bytes(out) / 1e6:.1f} MB "
            f"({last}{len(periodic_checkpoints(ckdir))} periodic)")


def fit(cfg: DictConfig, datamodule: Any = None, logger: Any = None,
        callbacks: Sequence[Any] = ()) -> Path:
    """Train ``cfg.method`` and return the path of the last checkpoint.

    ``datamodule``: a LightningDataModule exposing its training set (``train_dataset``) or a
    ``Dataset`` of batch dicts; default the project's data module for ``cfg.data``. ``logger``:
    any Lightning logger (default :func:`default_logger`; ``False`` for none).
    """
    import lightning.pytorch as pl

    from .build import build_method, check_requirements
    from .callbacks import (IterationCheckpoint, SampleGrid, SaveOnSignal, StopAtCPUBudget,
                            StopAtIteration, TrainingInterrupted, keep_count)
    from .train_data import TrainStream

    out = run_dir(cfg)
    ckpt = resume_path(cfg, out)
    done = finished(cfg, ckpt) if ckpt is not None else None
    if done:
        print(f"[fit] {cfg.method.name}: {done}", flush=True)
        return ckpt
    seed = int(cfg.get("seed", 0))
    pl.seed_everything(seed, workers=True, verbose=False)
    train = require_train_settings(cfg)
    method = build_method(cfg)
    chunks = getattr(method, "chunks_per_iter", 1)
    batch = int(train["batch_size"])
    inner = datamodule if datamodule is not None else build_datamodule(cfg, batch)
    if hasattr(inner, "store_path"):  # the project's datamodule: needs checked before training
        check_requirements(method, inner)
    stream = TrainStream(inner, batch, chunks, int(train["max_iters"]), seed,
                         num_workers=int(cfg.data.get("num_workers", 0)))
    prof = cfg.profile
    saver = IterationCheckpoint(out / "checkpoints", int(prof.get("ckpt_every", 1000)),
                                keep=keep_count(prof.get("keep_ckpts", 2)), protect=[ckpt] if ckpt else ())
    on_signal = SaveOnSignal(saver)
    cbs = [StopAtIteration(int(train["max_iters"])), saver, *callbacks]
    if prof.get("max_cpu_minutes"):
        cbs.insert(1, StopAtCPUBudget(float(prof.max_cpu_minutes)))
    if int(prof.get("sample_every", 0) or 0) > 0:
        cbs.append(SampleGrid(out / "samples", int(prof.sample_every), int(prof.get("n_samples", 8))))
    cbs.append(on_signal)  # last: a signal raised during this iteration's callbacks saves at it
    if logger is None:
        logger = build_logger(cfg, out, resume=ckpt is not None)
    t = cfg.trainer
    from .quiet import install as _quiet_libraries

    _quiet_libraries()
    trainer = pl.Trainer(
        accelerator=t.get("accelerator", "cpu"), devices=t.get("devices", 1),
        num_nodes=t.get("num_nodes", 1), strategy=t.get("strategy", "auto"),
        precision=t.get("precision", "32-true"), max_epochs=1, logger=logger, callbacks=cbs,
        enable_checkpointing=False, use_distributed_sampler=False, num_sanity_val_steps=0,
        limit_val_batches=0, log_every_n_steps=int(prof.get("log_every", 10)),
        deterministic=bool(prof.get("deterministic", False)),
        enable_progress_bar=bool(prof.get("progress_bar", True)), enable_model_summary=False,
        default_root_dir=str(out))
    if trainer.is_global_zero:
        _write_config(cfg, out / "config.yaml")
    trainer.fit(method, datamodule=stream, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
    reason = getattr(trainer, "faceedit_stop_reason", None) or (
        f"the data stream ended at iteration {method.iteration}" if hasattr(method, "iteration") else "done")
    if trainer.is_global_zero:
        print(f"[fit] {cfg.method.name}: {reason}; {folder_summary(out)}", flush=True)
    if on_signal.saved is not None:
        raise on_signal.saved
    return out / "checkpoints" / "last.ckpt"


def load_method(ckpt_path: str | os.PathLike, map_location: str = "cpu"):
    """Rebuild a trained method from its checkpoint (``torch.load(weights_only=True)``), in eval
    mode. ``zoo:<name>`` and exported zoo files are accepted too (sha256-checked for names)."""
    import torch

    from . import zoo
    from .methods import get_method_class

    if zoo.is_zoo_ref(ckpt_path):
        return zoo.load_inference(zoo.resolve(str(ckpt_path)))
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} not found; train one with `faceedit-bench fit --method M --res R` "
            "(written to <out_dir>/<run>/checkpoints/last.ckpt)")
    ckpt = load_tensor_file(path, map_location)
    if isinstance(ckpt, dict) and ckpt.get("format") == zoo.FORMAT:
        return zoo.load_inference(path)
    if "faceedit_method" not in ckpt or "hyper_parameters" not in ckpt:
        raise CheckpointError(f"{path} is not a faceedit-bench training checkpoint "
                         "(keys faceedit_method / hyper_parameters missing)")
    cls = get_method_class(ckpt["faceedit_method"])
    hp = dict(ckpt["hyper_parameters"])
    hp["compile"] = False
    method = cls(**hp)
    method.load_state_dict(ckpt["state_dict"])
    method.on_load_checkpoint(ckpt)
    method.variant = ckpt.get("faceedit_variant")
    return method.eval()
