"""``faceedit-bench sweep``: fit + evaluate a method once per value of one config key.

    faceedit-bench sweep --method secgan [--variant V] --key method.model.lambda_sc \\
        --values 0.001,0.01,0.1,1 [--res R --data D --profile P ...] [key=value ...]

Each value is one run of the bench path (``faceedit_bench.bench``: data store, classifier,
``obtain_method`` = train or resume, ``evaluate_method``) in its own run folder
(``<out_dir>/<method>[-<variant>]_<key>_<data>_<res>_<profile>_<value>``, so a rerun resumes or
reuses each), and writes one record per value, tagged ``run.sweep = {key, value}`` and
``notes``, to ``<results>/sweeps/<name>.jsonl`` (a sub-folder: the leaderboards read only
``<results>/*.jsonl``, so sweep points do not supersede the method's main row). The plot of
``--metric`` (default ``tarr``) against the value goes to ``<out>/plots/sweep_<name>.png``
(log x axis when every value is positive), e.g. SeCGAN's Fig. 3 (TARR by λ_sc).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench sweep --method secgan --variant stargan_secgan --key method.model.lambda_sc --values 0.001 0.01 0.1 1',
)


def parse_values(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError("--values needs at least one comma-separated value")
    return values


def sweep_name(args, key: str) -> str:
    method = args.method + (f"-{args.variant}" if getattr(args, "variant", None) else "")
    res = "" if args.res is None else f"_{args.res}"
    return f"{method}_{key.split('.')[-1]}_{args.data}{res}_{args.profile}"


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def plot_sweep(rows: list[tuple[str, float | None]], key: str, metric: str, title: str,
               path: Path) -> Path:
    """``metric`` against the swept value (one point per value, in the given order)."""
    from ..leaderboard.directions import direction
    from ..leaderboard.plots import _plt, _save

    xs = [_number(v) for v, _ in rows]
    numeric = all(x is not None for x in xs)
    pos = list(range(len(rows))) if not numeric else xs
    ys = [math.nan if y is None else y for _, y in rows]
    scale = 100.0 if metric == "tarr" else 1.0
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(pos, [y * scale for y in ys], marker="o", color="#4c72b0")
    if numeric and all(x > 0 for x in xs):
        ax.set_xscale("log")
    ax.set_xticks(pos, [v for v, _ in rows])
    ax.set_xlabel(key)
    better = direction(metric)
    ax.set_ylabel(f"{metric}{' (%)' if metric == 'tarr' else ''}"
                  + ("" if better is None else f" ({'higher' if better else 'lower'} is better)"))
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def run(args) -> int:
    from hydra.errors import HydraException

    from ..bench import (BenchError, ensure_classifier, ensure_data, evaluate_method,
                         make_datamodule, obtain_method, options_from_args)
    from ..build import train_settings
    from ..data.celeba import DataFormatError
    from ..methods.contract import RequirementError
    from ..results import append_record, validate_record
    from ._common import compose_from_args

    key, values = args.key, args.values
    if args.ckpt:
        print("error: sweep trains one run per value; --ckpt (one checkpoint) does not apply",
              file=sys.stderr)
        return 2
    name = sweep_name(args, key)
    base_overrides = list(args.overrides)
    opts = options_from_args(args)
    out_file = opts.results_dir / "sweeps" / f"{name}.jsonl"
    rows: list[tuple[str, float | None]] = []
    for value in values:
        run_name = f"{name}_{value}".replace("/", "-")
        args.overrides = [*base_overrides, f"{key}={value}", f"++run_name={run_name}"]
        try:
            cfg = compose_from_args(args)
            dm = make_datamodule(cfg, opts, batch_size=int(train_settings(cfg).get("batch_size") or 32))
            ensure_data(dm)
            clf = ensure_classifier(dm, cfg, opts)
            method, _ = obtain_method(cfg, dm, opts, logger=None)
            rec = evaluate_method(method, dm, clf, cfg, opts)
        except (BenchError, FileNotFoundError, KeyError, HydraException, DataFormatError,
                RequirementError) as e:
            print(f"error: {key}={value}: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
            return 2
        rec["run"] = {**rec.get("run", {}), "sweep": {"key": key, "value": value}, "name": run_name}
        rec["notes"] = f"sweep {key}={value}"
        append_record(out_file, validate_record(rec))
        score = rec["metrics"].get(args.metric)
        rows.append((value, score))
        print(f"[sweep] {key}={value}: {args.metric}={score}", flush=True)
    title = f"{name}\n{args.metric} by {key}"
    plot = plot_sweep(rows, key, args.metric, title, opts.leaderboards_dir / "plots" / f"sweep_{name}.png")
    print(f"records: {out_file}\nplot: {plot}")
    return 0


def register(subparsers) -> None:
    from .bench import add_bench_arguments

    p = subparsers.add_parser("sweep", help="fit + evaluate once per value of one config key, "
                                            "records and a plot", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_arguments(p, "identity")
    p.add_argument("--key", required=True, help="config key to sweep, e.g. method.model.lambda_sc")
    p.add_argument("--values", required=True, type=parse_values,
                   help="comma-separated values, e.g. 0.001,0.01,0.1,1 (SeCGAN Fig. 3)")
    p.add_argument("--metric", default="tarr", help="metric plotted against the value (default tarr)")
    p.set_defaults(func=run)
