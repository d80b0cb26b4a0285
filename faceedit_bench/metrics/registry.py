"""Metric and evaluator-component registry (DESIGN §10; stylegan2-ada's ``metric_main``
``_metric_dict`` + ``@register_metric``, reference/suites.md §B1.3).

Every key a record may carry in ``metrics`` / ``per_attribute`` is a :class:`MetricSpec`: name,
direction, unit, the tracks it applies to and one line of description. Specs are registered next
to the code that computes them: the evaluator components of
``faceedit_bench/metrics/tracks/components/*.py`` (one file per component, discovered on first
lookup like ``faceedit_bench.methods``). Adding a metric = one new file there that calls
:func:`register_metric` and decorates its component with :func:`register_component`; evaluator,
record schema, W&B keys and leaderboards read it from here.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TypeVar

#: the tracks a method may declare (methods/contract.py ``TRACKS``; repeated here so the registry
#: imports nothing heavy); ``tests/test_metric_registry.py`` checks they agree
TRACKS = ("attribute_flip", "mask_to_face")

_SPECS: dict[str, "MetricSpec"] = {}
_COMPONENTS: dict[str, type] = {}
_STATE = {"discovered": False, "discovering": False}

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class MetricSpec:
    """One record metric. ``higher_is_better``: True / False / None (not ranked, e.g. a count).
    ``unit``: what the stored value is in ("fraction" = a rate in [0, 1], "dB", "L1 [0,1]",
    "FID", "score", "count"). ``order``: column rank in tables (lower first; ties by name)."""

    name: str
    higher_is_better: bool | None
    unit: str
    tracks: tuple[str, ...]
    description: str
    order: int = 100

    def __post_init__(self) -> None:
        object.__setattr__(self, "tracks", tuple(self.tracks))
        bad = [t for t in self.tracks if t not in TRACKS]
        if not self.tracks or bad:
            raise ValueError(f"metric {self.name!r}: tracks {list(self.tracks)}; expected a non-empty "
                             f"subset of {list(TRACKS)}")
        if self.higher_is_better not in (True, False, None):
            raise ValueError(f"metric {self.name!r}: higher_is_better must be True, False or None")


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Register ``spec``; registering an equal spec again (a module re-import) is a no-op."""
    old = _SPECS.get(spec.name)
    if old is not None and old != spec:
        raise ValueError(f"metric {spec.name!r} is registered twice with different specs: {old} and {spec}")
    _SPECS[spec.name] = spec
    return spec


def register_component(cls: T) -> T:
    """Class decorator for an evaluator component (``tracks/context.py`` :class:`Component`):
    every key it ``produces`` must be a registered metric of each of its tracks."""
    name = getattr(cls, "name", None)
    if not name:
        raise ValueError(f"component {cls.__qualname__}: set a class attribute `name`")
    if name in _COMPONENTS and _COMPONENTS[name].__qualname__ != cls.__qualname__:
        raise ValueError(f"component name {name!r} is registered twice ({_COMPONENTS[name]} and {cls})")
    for key in cls.produces:
        spec = _SPECS.get(key)
        if spec is None:
            raise KeyError(f"component {name!r} produces metric {key!r}, which is not registered; "
                           "call register_metric(MetricSpec(...)) before the class")
        missing = [t for t in cls.tracks if t not in spec.tracks]
        if missing:
            raise ValueError(f"component {name!r}: metric {key!r} is registered for tracks "
                             f"{list(spec.tracks)}, not {missing}")
    _COMPONENTS[name] = cls
    return cls


def _discover() -> None:
    if _STATE["discovered"] or _STATE["discovering"]:
        return
    _STATE["discovering"] = True
    try:
        from .tracks import components as pkg

        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{pkg.__name__}.{info.name}")
        _STATE["discovered"] = True
    finally:
        _STATE["discovering"] = False


def metric_spec(name: str) -> MetricSpec:
    """The spec of metric ``name``; unknown names raise ``KeyError`` listing the known ones."""
    _discover()
    if name not in _SPECS:
        raise KeyError(f"unknown metric {name!r}; registered metrics: {', '.join(sorted(_SPECS))}")
    return _SPECS[name]


def metric_specs(track: str | None = None) -> list[MetricSpec]:
    """Every registered spec (of ``track`` when given), in table order (``order``, then name)."""
    _discover()
    if track is not None and track not in TRACKS:
        raise ValueError(f"unknown track {track!r}; expected one of {list(TRACKS)}")
    specs = [s for s in _SPECS.values() if track is None or track in s.tracks]
    return sorted(specs, key=lambda s: (s.order, s.name))


def is_metric(name: str) -> bool:
    _discover()
    return name in _SPECS


def direction(name: str) -> bool | None:
    """True: higher is better; False: lower is better; None: not ranked."""
    return metric_spec(name).higher_is_better


def unit(name: str) -> str:
    return metric_spec(name).unit


def component_classes(track: str | None = None) -> list[type]:
    """Registered component classes (of ``track`` when given), sorted by name."""
    _discover()
    return [_COMPONENTS[n] for n in sorted(_COMPONENTS) if track is None or track in _COMPONENTS[n].tracks]
