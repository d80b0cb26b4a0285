"""Metric directions and display units for the leaderboards.

Directions follow the torchmetrics classes' ``higher_is_better`` (faceedit_bench/metrics); a
metric absent here is shown but neither ranked nor marked best.
"""
from __future__ import annotations

HIGHER_IS_BETTER: dict[str, bool] = {
    "tarr": True, "tarr_hat": True, "tarr_nohat": True, "attr_acc": True, "classifier_acc": True,
    "psnr": True, "ssim": True, "is": True, "parsing_pixel_acc": True, "parsing_acc": True,
    "cf_psnr": True, "clf_acc_test": True,
    "mre": False, "fid": False, "ssfid": False, "kid": False, "preservation_error": False,
    "cf_l1": False, "cf_l1_in": False, "cf_l1_out": False, "lpips": False,
    "fid_attr_mean": False, "fid_clf": False, "fid_clf_attr_mean": False, "ssfid_pooled": False,
}

#: records keep rates as fractions in [0, 1]; the papers print these in percent
FRACTION_METRICS = frozenset({"tarr", "tarr_hat", "tarr_nohat", "attr_acc", "classifier_acc",
                              "preservation_error", "clf_acc_test"})

#: column order of the unified table: these first (when present), then the rest by name
PREFERRED_ORDER = ("tarr", "mre", "fid", "ssfid", "is", "psnr", "ssim", "preservation_error",
                   "tarr_hat", "tarr_nohat", "cf_l1", "cf_psnr")


def direction(metric: str) -> bool | None:
    """True: higher is better; False: lower is better; None: unknown. ``x_mean`` is ``x``."""
    if metric in HIGHER_IS_BETTER:
        return HIGHER_IS_BETTER[metric]
    base = metric[:-5] if metric.endswith("_mean") else metric
    return HIGHER_IS_BETTER.get(base)


def to_unit(metric: str, value: float | None, unit: str) -> float | None:
    """A record's value in the unit a paper prints (``%`` for rates)."""
    if value is None:
        return None
    base = metric[:-5] if metric.endswith("_mean") else metric
    if unit == "%" and base in FRACTION_METRICS:
        return 100.0 * value
    return value


def order_metrics(names) -> list[str]:
    names = set(names)
    first = [m for m in PREFERRED_ORDER if m in names]
    return first + sorted(names - set(first))
