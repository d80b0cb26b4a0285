"""Compose a run's configuration from the small YAML files in ``configs/`` (Hydra compose API).

Root ``configs/bench.yaml`` lists the groups ``data/<name>``, ``trainer/<name>`` and
``profile/<name>``; the method comes from ONE file per method, ``method/<name>.yaml``, holding
the paper's settings (``model``, ``train``), the resolutions it supports (``resolutions``) and
overrides merged on top in this order: ``at_res[<res>]`` (per-resolution widths), then
``variants[<name>]`` when a variant is chosen (a paper's ablation row, e.g. MagGAN w/o SPADE),
then ``for_profile[<profile>]`` (e.g. the smoke profile's tiny widths). Method configs are looked up
in ``configs/method/`` and in every folder added by :func:`add_config_dir` or listed in
``$FACEEDIT_CONFIG_PATH`` (``:``-separated; each holding ``method/<name>.yaml``), so a method
outside this repository is one module plus one config. The resolution comes from ``--res`` or,
when absent, from the profile. Extra ``key=value`` overrides use Hydra's grammar and apply last.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

_EXTRA_DIRS: list[Path] = []


def config_dir() -> Path:
    """``$FACEEDIT_CONFIGS`` or the repository's ``configs/`` folder."""
    env = os.environ.get("FACEEDIT_CONFIGS")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "configs"
    if not (path / "bench.yaml").is_file():
        raise FileNotFoundError(
            f"config folder {path} has no bench.yaml; set FACEEDIT_CONFIGS to the repo's configs/"
        )
    return path


def add_config_dir(path: str | os.PathLike) -> None:
    """Also look for ``method/<name>.yaml`` in ``path`` (a plugin's configs)."""
    p = Path(path)
    if p not in _EXTRA_DIRS:
        _EXTRA_DIRS.append(p)


def config_dirs() -> list[Path]:
    env = [Path(p) for p in os.environ.get("FACEEDIT_CONFIG_PATH", "").split(":") if p]
    return [config_dir(), *_EXTRA_DIRS, *env]


def method_config_path(method: str) -> Path:
    """The one config file of ``method``; a one-line error naming where it was looked for."""
    tried = [d / "method" / f"{method}.yaml" for d in config_dirs()]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(f"no config for method {method!r}: none of {', '.join(map(str, tried))} exists")


def load_method_config(method: str) -> DictConfig:
    """``method/<name>.yaml`` as written (before resolution/profile overrides)."""
    path = method_config_path(method)
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig) or cfg.get("name") != method:
        raise ValueError(f"{path}: expected a mapping with name: {method}")
    if not cfg.get("resolutions"):
        raise ValueError(f"{path}: key 'resolutions' (the supported resolutions) is missing or empty")
    return cfg


def method_resolutions(method: str) -> list[int]:
    """Resolutions ``method/<name>.yaml`` declares (``resolutions:``)."""
    return sorted(int(r) for r in load_method_config(method).resolutions)


def _override(section: DictConfig | None, key) -> DictConfig | None:
    if section is None:
        return None
    for k in (key, str(key)):
        if k in section:
            return section[k]
    return None


def method_variants(method: str) -> list[str]:
    """Names of the variants ``method/<name>.yaml`` declares (``variants:``)."""
    return sorted((load_method_config(method).get("variants") or {}).keys())


def resolve_method_config(method: str, res: int, profile: str, variant: str | None = None) -> DictConfig:
    """The method's config at ``res`` under ``profile``: base, then ``at_res[res]``, then
    ``variants[variant]`` (a paper's ablation row: its ``label`` and overrides), then
    ``for_profile[profile]``. ``cfg.variant`` / ``cfg.label`` name the row."""
    raw = load_method_config(method)
    if res not in method_resolutions(method):
        raise FileNotFoundError(
            f"{method_config_path(method)}: method {method!r} does not support {res} px; "
            f"resolutions: {method_resolutions(method)}")
    var = None
    if variant:
        var = _override(raw.get("variants"), variant)
        if var is None:
            raise KeyError(f"{method_config_path(method)}: no variant {variant!r}; variants: "
                           f"{method_variants(method) or 'none'}")
    layers = (_override(raw.get("at_res"), res), var, _override(raw.get("for_profile"), profile))
    base = {k: v for k, v in raw.items() if k not in ("at_res", "for_profile", "variants")}
    cfg = OmegaConf.merge(base, *(o for o in layers if o is not None))
    cfg.variant = variant or None
    cfg.label = str(cfg.get("label") or (f"{method}/{variant}" if variant else method))
    return cfg


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="bench", overrides=overrides)


class ConfigError(ValueError):
    """A config choice or value the configs do not allow (one line naming the key or file)."""


def check_group_choices(choices: dict[str, str]) -> None:
    """``--data / --trainer / --profile`` name files under configs/<group>/; say which exist."""
    for group, name in choices.items():
        if not (config_dir() / group / f"{name}.yaml").is_file():
            known = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
            raise ConfigError(f"{config_dir() / group / (str(name) + '.yaml')}: no {group} {name!r}; "
                              f"{group} choices: {', '.join(known)}")


def _check_type(key: str, old: Any, new: Any, line: str) -> None:
    """A ``profile.*`` / ``method.*`` override keeps a number a number (``profile.max_iters=abc``
    is refused here, not as a traceback where it is first used); flags may take a mode name
    (``profile.compile=eager``) and trainer keys pass through as Lightning takes them."""
    if not key.startswith(("profile.", "method.")) or not isinstance(new, str) or old is None:
        return
    if isinstance(old, (int, float)) and not isinstance(old, bool):  # a flag may take a mode name
        kind = "an integer" if isinstance(old, int) else "a number"
        raise ConfigError(f"override {line!r}: {key} expects {kind}, got {new!r}")


def compose_config(
    method: str = "identity",
    res: int | None = None,
    data: str = "synth",
    profile: str = "quick",
    trainer: str = "cpu",
    overrides: Sequence[str] = (),
    variant: str | None = None,
) -> DictConfig:
    """The full config for one run; raises naming the missing file for unknown choices."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from .methods import get_method_class

    get_method_class(method)  # unknown name -> error listing registered methods
    check_group_choices({"data": data, "trainer": trainer, "profile": profile})
    groups = [f"data={data}", f"trainer={trainer}", f"profile={profile}"]
    cfg = _compose(groups)
    if res is None:
        res = int(cfg.profile.res)
    OmegaConf.set_struct(cfg, False)
    cfg.method = resolve_method_config(method, int(res), profile, variant)
    cfg.res = int(res)
    # key=value overrides last (Hydra grammar), so method.* keys reach the merged method config
    absent = object()
    for ov in OverridesParser.create().parse_overrides(list(overrides)):
        key = ov.key_or_group
        if OmegaConf.select(cfg, key, default=absent) is absent and not (ov.is_add() or ov.is_force_add()):
            raise KeyError(f"override {ov.input_line!r}: no config key {key!r} (prefix it with + to add one)")
        value = None if ov.is_delete() else ov.value()
        old = OmegaConf.select(cfg, key, default=None)
        if not OmegaConf.is_config(old):
            _check_type(key, old, value, ov.input_line)
        OmegaConf.update(cfg, key, value, merge=True, force_add=True)
    return cfg
