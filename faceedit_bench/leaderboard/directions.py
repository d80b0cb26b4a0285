"""Metric directions and display units for the leaderboards: a thin view over
``faceedit_bench.metrics.registry`` (each metric's ``higher_is_better``, ``unit`` and table
``order``). A name the registry does not know (e.g. a paper-only column) is shown but neither
ranked nor marked best; ``x_mean`` reads as ``x``.
"""
from __future__ import annotations

from ..metrics import registry

#: the registry unit of rates in [0, 1]; tables that say so print them in percent
FRACTION = "fraction"


def _base(metric: str) -> str | None:
    if registry.is_metric(metric):
        return metric
    base = metric[:-5] if metric.endswith("_mean") else metric
    return base if registry.is_metric(base) else None


def direction(metric: str) -> bool | None:
    """True: higher is better; False: lower is better; None: not ranked or unknown."""
    base = _base(metric)
    return None if base is None else registry.direction(base)


def unit(metric: str) -> str:
    """The registry's unit of ``metric`` ("" when unknown)."""
    base = _base(metric)
    return "" if base is None else registry.unit(base)


def is_fraction(metric: str) -> bool:
    return unit(metric) == FRACTION


def to_unit(metric: str, value: float | None, unit_: str) -> float | None:
    """A record's value in the unit a table prints: ``%`` converts fractions, else unchanged."""
    if value is None:
        return None
    if unit_ == "%" and is_fraction(metric):
        return 100.0 * value
    return value


def order_metrics(names) -> list[str]:
    """Registered metrics in the registry's table order, then unknown names sorted."""
    names = set(names)
    order = {s.name: (s.order, s.name) for s in registry.metric_specs()}
    known = sorted((n for n in names if n in order), key=order.__getitem__)
    return known + sorted(names - set(known))
