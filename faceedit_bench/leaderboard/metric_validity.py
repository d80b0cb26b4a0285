"""How far each proxy metric agrees with the true counterfactual error (SynthFaces only).

Over every evaluated checkpoint on SynthFaces (records in ``results/*.jsonl`` and
``results/validity/*.jsonl``: zoo entries, time-to-quality curves, quickstarts), the Spearman
rank correlation between each proxy metric of the attribute-flip track (TARR, MRE, FID on the
suite classifier's features, ssFID, PSNR / SSIM of the reconstruction, preservation error, ...)
and the true counterfactual error ``cf_l1`` (L1 of each edit against the rendered truth). Each
proxy is oriented by its registered direction and the error negated, so ρ = +1 means "ranks the
checkpoints exactly as the truth does", 0 "unrelated", −1 "exactly backwards". Overall and per
attribute (the proxy's and the truth's per-attribute values). Deterministic from the records.
"""
from __future__ import annotations

from pathlib import Path

from .load import load_records, method_label

TRUTH = "cf_l1"
#: record metrics that are not proxies of editing quality (truths, counts, spreads, sanity checks)
NOT_PROXIES = ("cf_", "n_hat", "is_std", "clf_acc_test")
MIN_CHECKPOINTS = 3


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's ρ with average ranks for ties (None when either side is constant)."""
    import pandas as pd

    if len(xs) < MIN_CHECKPOINTS:
        return None
    rx, ry = pd.Series(xs).rank(), pd.Series(ys).rank()
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(rx.corr(ry))


#: the time-to-quality row fields that are record metrics, and per-attribute ones (``<m>_attr``)
CURVE_METRICS = ("tarr", "psnr", "ssim", "mre", "preservation_error", "fid_clf", "fid_clf_attr_mean",
                 "clf_acc_test", "cf_l1", "cf_l1_in", "cf_l1_out", "cf_psnr")
CURVE_PER_ATTRIBUTE = ("tarr", "cf_l1", "cf_l1_in", "cf_l1_out")


def curve_records(path: str | Path | None) -> list[dict]:
    """Each training checkpoint of ``benchmarks/time_to_quality.jsonl`` (one row each, the suite's
    evaluator on the SynthFaces 64 px test split) in the record shape this report reads; the
    identity baseline and diagnostic re-evaluations (BN recalibration, another intensity) are
    not checkpoints of a training curve and are left out."""
    import json

    if path is None or not Path(path).is_file():
        return []
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not a JSON line ({e.msg})") from None
        if row.get("train_cpu_s") is None or row.get("recal_bn") or row.get("intensity") is not None:
            continue
        out.append({
            "method": row["method"], "variant": None, "dataset": "synth", "resolution": 64,
            "track": "attribute_flip", "profile": row.get("profile", ""), "created": row.get("when", ""),
            "protocol": {"test_intensity": None, "n_test": row.get("n_test")},
            "run": {"checkpoint": row.get("checkpoint"), "source": f"{Path(path).name}:{n}"},
            "metrics": {k: row.get(k) for k in CURVE_METRICS},
            "per_attribute": {k: row[f"{k}_attr"] for k in CURVE_PER_ATTRIBUTE if row.get(f"{k}_attr")},
        })
    return out


def checkpoints(results_dir: str | Path | list, curves: str | Path | None = None) -> list[dict]:
    """One record per evaluated checkpoint on SynthFaces with the truth measured: the result
    records and, with ``curves``, the time-to-quality checkpoints."""
    dirs = [Path(d) for d in (results_dir if isinstance(results_dir, (list, tuple)) else [results_dir])]
    recs = load_records([p for d in dirs for p in (d, d / "validity")]) + curve_records(curves)
    seen: dict[tuple, dict] = {}
    for r in recs:
        if r["dataset"] != "synth" or r["track"] != "attribute_flip" or r["metrics"].get(TRUTH) is None:
            continue
        run = r.get("run") or {}
        key = (method_label(r), r["resolution"], run.get("zoo") or run.get("checkpoint") or r["created"],
               r["protocol"].get("test_intensity"))
        seen[key] = r
    return [seen[k] for k in sorted(seen, key=lambda k: tuple(map(str, k)))]


def per_method(recs: list[dict]) -> str:
    """``attgan 12, stgan 30``: how many checkpoints of each method the correlations rest on."""
    from collections import Counter

    return ", ".join(f"{m} {k}" for m, k in sorted(Counter(method_label(r) for r in recs).items()))


def proxies(records: list[dict]) -> list[str]:
    from ..metrics.registry import direction, is_metric

    names = {m for r in records for m, v in r["metrics"].items() if v is not None}
    return sorted(m for m in names if is_metric(m) and direction(m) is not None
                  and not m.startswith(NOT_PROXIES) and m not in NOT_PROXIES)


def correlations(records: list[dict], proxy: str) -> dict:
    """``{"n", "rho", "per_attribute": {attr: rho}}`` of ``proxy`` against the truth."""
    from ..metrics.registry import direction

    sign = 1.0 if direction(proxy) else -1.0
    pairs = [(sign * r["metrics"][proxy], -r["metrics"][TRUTH]) for r in records
             if r["metrics"].get(proxy) is not None]
    per = {}
    attrs = sorted({a for r in records for a in r["per_attribute"].get(proxy, {})})
    for a in attrs:
        pa = [(sign * r["per_attribute"][proxy][a], -r["per_attribute"][TRUTH][a]) for r in records
              if a in r["per_attribute"].get(proxy, {}) and a in r["per_attribute"].get(TRUTH, {})]
        per[a] = (len(pa), spearman([p for p, _ in pa], [t for _, t in pa]))
    return {"n": len(pairs), "rho": spearman([p for p, _ in pairs], [t for _, t in pairs]),
            "per_attribute": per}


def render(results_dir: str | Path | list, curves: str | Path | None = None) -> str:
    from .render_tables import _md_table, fmt

    recs = checkpoints(results_dir, curves)
    n_curve = sum(1 for r in recs if (r.get("run") or {}).get("source"))
    lines = ["# Metric validity: proxies against the true counterfactual error\n",
             "Generated by `faceedit-bench leaderboard` from the SynthFaces records "
             "(`results/*.jsonl`, `results/validity/*.jsonl`) and the checkpoints of the "
             f"time-to-quality curves (`benchmarks/time_to_quality.jsonl`: {n_curve} of them, each "
             "evaluated on the SynthFaces 64 px test split with the suite's classifier); do not edit by hand. "
             f"ρ is Spearman's rank correlation over checkpoints between each proxy (oriented by "
             f"its direction) and minus the true error `{TRUTH}` (each edit against the rendered "
             "counterfactual): +1 ranks checkpoints as the truth does, −1 exactly backwards. "
             f"Needs at least {MIN_CHECKPOINTS} checkpoints per cell (— otherwise).\n",
             f"Checkpoints: **{len(recs)}** ({per_method(recs) or 'none'}).\n"]
    if not recs:
        lines.append("No SynthFaces record with the counterfactual error yet.\n")
        return "\n".join(lines)
    rows, attrs = [], sorted({a for r in recs for a in r["per_attribute"].get(TRUTH, {})})
    order = list(recs[0]["protocol"].get("attrs", []))
    attrs = [a for a in order if a in attrs] + [a for a in attrs if a not in order]
    per_rows = []
    for p in proxies(recs):
        c = correlations(recs, p)
        per_vals = [v for n, v in c["per_attribute"].values() if v is not None]
        rows.append([p, str(c["n"]), fmt(c["rho"]),
                     fmt(sorted(per_vals)[len(per_vals) // 2]) if per_vals else "—",
                     fmt(min(per_vals)) if per_vals else "—"])
        if c["per_attribute"]:
            per_rows.append([p, *[fmt(c["per_attribute"].get(a, (0, None))[1]) for a in attrs]])
    lines.append(_md_table(["proxy", "checkpoints", "ρ overall", "median ρ per attribute",
                            "worst ρ per attribute"], rows))
    if per_rows:
        lines.append("\n## ρ per attribute\n\n" + _md_table(["proxy", *attrs], per_rows))
    return "\n".join(lines)
