"""Training entry points: ``fit(cfg) -> last checkpoint`` and ``load_method(ckpt) -> EditMethod``.

A run is a composed config (``faceedit_bench.config.compose_config``): ``cfg.method.model`` gives
the networks, ``cfg.method.train`` the paper's training settings and ``cfg.profile`` overrides
them (``null`` keeps the method's value): ``max_iters`` (generator iterations), ``batch_size``
(per D/G step and rank), ``n_critic``, ``lr``, ``ema_decay``, ``channels_last``, ``compile``,
``ckpt_every``, ``sample_every``, ``n_samples``, ``max_cpu_minutes`` (stop early once the
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

from .protocol import DEFAULT_ATTRS

#: profile keys that override ``cfg.method.train`` when not null
TRAIN_KEYS = ("max_iters", "batch_size", "n_critic", "lr", "lr_d", "betas", "schedule",
              "decay_start", "ema_decay", "channels_last", "compile")
#: training keys that are constructor arguments of the method
_CTOR_KEYS = ("max_iters", "n_critic", "lr", "lr_d", "betas", "schedule", "decay_start",
              "ema_decay", "channels_last", "compile")


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) or OmegaConf.is_list(node) else node


def train_settings(cfg: DictConfig) -> dict[str, Any]:
    """``cfg.method.train`` with the profile's non-null training keys on top."""
    out = dict(_plain(cfg.method.get("train", {})) or {})
    for key in TRAIN_KEYS:
        value = cfg.profile.get(key)
        if value is not None:
            out[key] = _plain(value)
    for key in ("max_iters", "batch_size"):
        if out.get(key) is None:
            raise KeyError(f"training setting {key!r} is set neither in configs/method/"
                           f"{cfg.method.name}_{cfg.res}.yaml (train.{key}) nor in the profile")
    return out


def method_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """Constructor arguments of the method: ``cfg.method.model`` + training settings + seed."""
    kwargs = dict(_plain(cfg.method.get("model", {})) or {})
    kwargs.setdefault("attrs", list(_plain(cfg.get("attrs")) or DEFAULT_ATTRS))
    kwargs["res"] = int(cfg.res)
    train = train_settings(cfg)
    kwargs.update({k: train[k] for k in _CTOR_KEYS if k in train})
    kwargs["seed"] = int(cfg.get("seed", 0))
    return kwargs


def run_dir(cfg: DictConfig) -> Path:
    name = cfg.get("run_name") or f"{cfg.method.name}_{cfg.res}_{cfg.data.name}_{cfg.profile.name}"
    return Path(cfg.get("out_dir", "runs")) / str(name)


def build_datamodule(cfg: DictConfig, batch_size: int):
    """The project's ``FaceEditDataModule`` for ``cfg.data`` at ``cfg.res`` (SynthFaces: its
    default export folder ``data/synthfaces/n<N>_r<res>``, generated on first use)."""
    from .data.datamodule import FaceEditDataModule

    d = cfg.data
    kwargs: dict[str, Any] = dict(
        data=d.name, res=int(cfg.res), attrs=list(_plain(cfg.get("attrs")) or DEFAULT_ATTRS),
        batch_size=batch_size, num_workers=int(d.get("num_workers", 0)),
        seed=int(cfg.get("seed", 0)), crop=d.get("crop"), masks=str(d.get("masks", "gt")),
        parser_weights=d.get("parser_weights"), split=d.get("split"))
    if d.name == "synth":
        kwargs["synth_n"] = int(d.get("synth_n") or 2000)
    else:
        kwargs["root"] = d.get("root")
    return FaceEditDataModule(**kwargs)


def default_logger(cfg: DictConfig, out: Path):
    """WandbLogger when ``cfg.wandb.enabled`` (offline unless configured), else a CSVLogger."""
    wb = cfg.get("wandb") or {}
    if wb.get("enabled", False):
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(project=wb.get("project", "faceedit-bench"), save_dir=str(out),
                           offline=bool(wb.get("offline", True)), group=str(cfg.method.name),
                           tags=[f"res{cfg.res}", str(cfg.data.name)], name=out.name)
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(save_dir=str(out), name="logs", version="")


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
        return last if last.is_file() else None
    path = Path(str(value))
    if not path.is_file():
        raise FileNotFoundError(f"profile.resume={value!r}: no checkpoint file there")
    return path


def fit(cfg: DictConfig, datamodule: Any = None, logger: Any = None,
        callbacks: Sequence[Any] = ()) -> Path:
    """Train ``cfg.method`` and return the path of the last checkpoint.

    ``datamodule``: a LightningDataModule exposing its training set (``train_dataset``) or a
    ``Dataset`` of batch dicts; default the project's data module for ``cfg.data``. ``logger``:
    any Lightning logger (default :func:`default_logger`; ``False`` for none).
    """
    import lightning.pytorch as pl

    from .callbacks import IterationCheckpoint, SampleGrid, StopAtCPUBudget, StopAtIteration
    from .methods import build_method
    from .train_data import TrainStream

    out = run_dir(cfg)
    seed = int(cfg.get("seed", 0))
    pl.seed_everything(seed, workers=True, verbose=False)
    train = train_settings(cfg)
    method = build_method(cfg.method.name, **method_kwargs(cfg))
    chunks = getattr(method, "chunks_per_iter", 1)
    batch = int(train["batch_size"])
    inner = datamodule if datamodule is not None else build_datamodule(cfg, batch)
    stream = TrainStream(inner, batch, chunks, int(train["max_iters"]), seed,
                         num_workers=int(cfg.data.get("num_workers", 0)))
    prof = cfg.profile
    cbs = [StopAtIteration(int(train["max_iters"])),
           IterationCheckpoint(out / "checkpoints", int(prof.get("ckpt_every", 1000))),
           *callbacks]
    if prof.get("max_cpu_minutes"):
        cbs.insert(1, StopAtCPUBudget(float(prof.max_cpu_minutes)))
    if int(prof.get("sample_every", 0) or 0) > 0:
        cbs.append(SampleGrid(out / "samples", int(prof.sample_every), int(prof.get("n_samples", 8))))
    if logger is None:
        logger = default_logger(cfg, out)
    t = cfg.trainer
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
    ckpt = resume_path(cfg, out)
    trainer.fit(method, datamodule=stream, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
    return out / "checkpoints" / "last.ckpt"


def load_method(ckpt_path: str | os.PathLike, map_location: str = "cpu"):
    """Rebuild a trained method from its checkpoint (``torch.load(weights_only=True)``), in eval mode."""
    import torch

    from .methods import get_method_class

    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} not found; train one with `faceedit-bench fit --method M --res R` "
            "(written to <out_dir>/<run>/checkpoints/last.ckpt)")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if "faceedit_method" not in ckpt or "hyper_parameters" not in ckpt:
        raise ValueError(f"{path} is not a faceedit-bench training checkpoint "
                         "(keys faceedit_method / hyper_parameters missing)")
    cls = get_method_class(ckpt["faceedit_method"])
    hp = dict(ckpt["hyper_parameters"])
    hp["compile"] = False
    method = cls(**hp)
    method.load_state_dict(ckpt["state_dict"])
    method.on_load_checkpoint(ckpt)
    return method.eval()
