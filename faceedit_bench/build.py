"""One path from a composed config to the run's objects (DESIGN §10): the datamodule, the
method, the evaluator's settings and the logger. ``fit``, ``eval``, ``bench`` and ``edit`` all
call these, so they agree on store roots, constructor arguments and requirements.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .protocol import DEFAULT_ATTRS, DEFAULT_SYNTH_N

#: profile keys that override ``cfg.method.train`` when not null
TRAIN_KEYS = ("max_iters", "batch_size", "n_critic", "lr", "lr_d", "betas", "schedule",
              "decay_start", "final_lr_factor", "ema_decay", "channels_last", "compile")
#: training keys that are constructor arguments of the method
CTOR_KEYS = ("max_iters", "n_critic", "lr", "lr_d", "betas", "schedule", "decay_start",
             "final_lr_factor", "ema_decay", "channels_last", "compile")


def plain(node: Any) -> Any:
    """An OmegaConf node as plain Python containers (resolved); other values unchanged."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) or OmegaConf.is_list(node) else node


def train_settings(cfg: DictConfig) -> dict[str, Any]:
    """``cfg.method.train`` with the profile's non-null training keys on top."""
    out = dict(plain(cfg.method.get("train", {})) or {})
    for key in TRAIN_KEYS:
        value = cfg.profile.get(key)
        if value is not None:
            out[key] = plain(value)
    return out


def require_train_settings(cfg: DictConfig) -> dict[str, Any]:
    out = train_settings(cfg)
    for key in ("max_iters", "batch_size"):
        if out.get(key) is None:
            raise KeyError(f"training setting {key!r} is set neither in configs/method/"
                           f"{cfg.method.name}.yaml (train.{key}) nor in the profile")
    return out


def attrs_of(cfg: DictConfig) -> list[str]:
    """The run's attributes: ``cfg.attrs``, else what the method's config asks for (a method's
    ``run_attrs(model)`` hook, e.g. SaGAN's one attribute), else the default 13."""
    given = plain(cfg.get("attrs"))
    if given:
        return list(given)
    from .methods import get_method_class

    hook = getattr(get_method_class(cfg.method.name), "run_attrs", None)
    wanted = hook(dict(plain(cfg.method.get("model", {})) or {})) if hook is not None else None
    return list(wanted or DEFAULT_ATTRS)


def method_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """Constructor arguments: ``cfg.method.model`` + training settings + seed, keeping only what the constructor takes (the parameter-free identity takes attrs and res)."""
    from .methods import get_method_class

    kwargs = dict(plain(cfg.method.get("model", {})) or {})
    kwargs.setdefault("attrs", attrs_of(cfg))
    kwargs["res"] = int(cfg.res)
    train = train_settings(cfg)
    kwargs.update({k: train[k] for k in CTOR_KEYS if k in train})
    kwargs["seed"] = int(cfg.get("seed", 0))
    params = inspect.signature(get_method_class(cfg.method.name).__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return kwargs


def build_method(cfg: DictConfig):
    """The (untrained) method of ``cfg``."""
    from .methods import build_method as _build

    method = _build(cfg.method.name, **method_kwargs(cfg))
    method.variant = cfg.method.get("variant") or None
    return method


def data_dir(cfg: DictConfig) -> Path:
    return Path(str(cfg.get("data_dir") or "data"))


def synth_n(cfg: DictConfig) -> int:
    return int(cfg.profile.get("synth_n") or cfg.data.get("synth_n") or DEFAULT_SYNTH_N)


def build_datamodule(cfg: DictConfig, batch_size: int | None = None):
    """The project's ``FaceEditDataModule`` for ``cfg.data`` at ``cfg.res`` under ``data_dir``:
    SynthFaces exported to ``<data_dir>/synthfaces/n<N>_r<res>`` on first use, stores in
    ``<data_dir>/stores``; real data from ``data.root`` (checked, with the layout on error)."""
    from .data.datamodule import FaceEditDataModule

    d, res, root_dir = cfg.data, int(cfg.res), data_dir(cfg)
    if d.name == "synth":
        root = root_dir / "synthfaces" / f"n{synth_n(cfg)}_r{res}"
    else:
        from .bench import check_real_data

        root = Path(str(d.get("root") or root_dir / d.name))
        check_real_data(d.name, root)
    eval_bs = cfg.profile.get("eval_batch_size")
    return FaceEditDataModule(
        data=d.name, root=str(root), res=res, attrs=attrs_of(cfg),
        batch_size=int(batch_size or d.get("batch_size", 32)),
        num_workers=int(d.get("num_workers", 0)), seed=int(cfg.get("seed", 0)),
        store_root=str(root_dir / "stores"), synth_n=synth_n(cfg), masks=str(d.get("masks", "gt")),
        parser_weights=d.get("parser_weights"), crop=d.get("crop"), split=d.get("split"),
        eval_batch_size=int(eval_bs) if eval_bs else None)


def data_provides(dm) -> dict[str, bool]:
    """What an opened store holds, for :func:`.methods.contract.check_needs`."""
    manifest = dm.store.manifest if dm.store is not None else {}
    return {"parts": manifest.get("masks", "none") != "none", "counterfactuals": dm.data == "synth"}


def check_requirements(method, dm) -> None:
    """One-line ``ValueError`` naming the fix when the data lacks what the method needs."""
    from .methods.contract import check_needs

    if dm.store is None:
        dm.prepare_data()
        dm.setup("fit")
    check_needs(method.method_name, set(method.needs), data_provides(dm))


def wandb_mode(wb: Any) -> str:
    """``cfg.wandb``'s mode: ``wandb.mode``, else ``$WANDB_MODE``, else offline (``wandb.offline: false``: online)."""
    import os

    return str(wb.get("mode") or os.environ.get("WANDB_MODE")
               or ("offline" if wb.get("offline", True) else "online"))


def build_logger(cfg: DictConfig, out: Path, resume: bool | None = None):
    """WandbLogger when ``cfg.wandb.enabled`` (offline by default), else a CSVLogger.

    The W&B run id is kept in ``<out>/wandb_run_id``: a resumed training (``resume``, default:
    ``<out>/checkpoints/last.ckpt`` exists) continues the same W&B run and step axis.
    """
    wb = cfg.get("wandb") or {}
    if wb.get("enabled", False):
        from . import wandb_logging as wl

        logger = wl.make_logger(str(cfg.method.name), int(cfg.res), str(cfg.data.name),
                                str(cfg.profile.name), out, project=wb.get("project"),
                                mode=wandb_mode(wb), name=out.name, resume=resume)
        if logger is not None:
            return logger
    from .csv_logging import ResumableCSVLogger

    return ResumableCSVLogger(save_dir=str(out), name="logs", version="")


def eval_intensity(cfg: DictConfig) -> float | None:
    """``eval.test_intensity`` (None: the method's own test intensity)."""
    value = (cfg.get("eval") or {}).get("test_intensity")
    return None if value is None else float(value)
