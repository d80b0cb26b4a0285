"""Compose a run's configuration from the small YAML files in ``configs/`` (Hydra compose API).

Root ``configs/bench.yaml`` lists the groups: ``data/<name>``, ``trainer/<name>``,
``profile/<name>`` and ``method/<method>_<res>``. The resolution comes from ``--res`` or, when
absent, from the profile (``quick``: 64 px). Extra ``key=value`` overrides use Hydra's grammar.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf


def config_dir() -> Path:
    """``$FACEEDIT_CONFIGS`` or the repository's ``configs/`` folder."""
    env = os.environ.get("FACEEDIT_CONFIGS")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "configs"
    if not (path / "bench.yaml").is_file():
        raise FileNotFoundError(
            f"config folder {path} has no bench.yaml; set FACEEDIT_CONFIGS to the repo's configs/"
        )
    return path


def method_resolutions(method: str) -> list[int]:
    """Resolutions that have a config file ``configs/method/<method>_<res>.yaml``."""
    out = []
    for f in (config_dir() / "method").glob(f"{method}_*.yaml"):
        tail = f.stem[len(method) + 1:]
        if tail.isdigit():
            out.append(int(tail))
    return sorted(out)


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="bench", overrides=overrides)


def compose_config(
    method: str = "identity",
    res: int | None = None,
    data: str = "synth",
    profile: str = "quick",
    trainer: str = "cpu",
    overrides: Sequence[str] = (),
) -> DictConfig:
    """The full config for one run; raises naming the missing file for unknown choices."""
    from .methods import get_method_class

    get_method_class(method)  # unknown name -> error listing registered methods
    base = [f"data={data}", f"trainer={trainer}", f"profile={profile}", *overrides]
    if res is None:
        res = int(_compose(base).profile.res)
    available = method_resolutions(method)
    if res not in available:
        raise FileNotFoundError(
            f"no config configs/method/{method}_{res}.yaml; resolutions configured for "
            f"{method!r}: {available}"
        )
    cfg = _compose([f"method={method}_{res}", *base])
    OmegaConf.set_struct(cfg, False)
    cfg.res = res
    return cfg
