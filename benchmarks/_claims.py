"""What the paper-claim scripts (``benchmarks/claim_<name>.py``) share: their common options, the
bench-path plumbing that trains and evaluates one arm, and writing the JSON lines and the markdown
report. Each claim's arms, metrics, verdict rules and table stay in its own script.

Importing this module puts the repository root on ``sys.path`` so ``faceedit_bench`` imports.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def add_run_arguments(p, name: str, cpu_help: str, profile: bool = True) -> None:
    """--res, --profile (unless the claim picks its own), --cpu-minutes, --out (``runs/<name>``),
    --data-dir, --threads."""
    p.add_argument("--res", type=int, default=64)
    if profile:
        p.add_argument("--profile", default="quick")
    p.add_argument("--cpu-minutes", type=float, default=15.0, help=cpu_help)
    p.add_argument("--out", default=f"runs/{name}")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--threads", type=int, default=1)


def add_report_arguments(p, name: str) -> None:
    """--jsonl and --md (``benchmarks/<name>.jsonl`` / ``.md``), then the ``key=value`` overrides."""
    p.add_argument("--jsonl", default=str(ROOT / "benchmarks" / f"{name}.jsonl"))
    p.add_argument("--md", default=str(ROOT / "benchmarks" / f"{name}.md"))
    p.add_argument("overrides", nargs="*", help="key=value for every arm")


def add_equal_iteration_arguments(p, arm: str) -> None:
    """--max-iters (the cap on the budgeted ``arm``) and --tag, for claims compared at equal
    iterations."""
    p.add_argument("--max-iters", type=int, default=None,
                   help=f"cap on {arm}'s iterations (default: the profile's)")
    p.add_argument("--tag", default="")


def start(args) -> None:
    """Torch on ``--threads`` threads; W&B off unless the environment says otherwise."""
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")


def bench_options(args, **changes):
    """The bench path's options: data in ``--data-dir``, results and leaderboards under ``--out``,
    no progress bars, no rendering; ``changes`` replace any of them."""
    from faceedit_bench.bench import BenchOptions

    return BenchOptions(**{"data_dir": Path(args.data_dir), "results_dir": Path(args.out) / "results",
                           "leaderboards_dir": Path(args.out) / "leaderboards", "progress": False,
                           "render": False, **changes})


def common_overrides(args, *extra: str) -> list[str]:
    """Overrides for every arm: no loader workers or progress bar, ``--out`` and ``--data-dir``,
    then ``extra``, then the user's ``key=value`` (which win)."""
    return ["data.num_workers=0", "profile.progress_bar=false", f"out_dir={args.out}",
            f"data_dir={args.data_dir}", *extra, *args.overrides]


def run_tag(args) -> str:
    """``<res>_<profile>[_<tag>]``: the part of the run names a setting shares."""
    return f"{args.res}_{args.profile}{('_' + args.tag) if args.tag else ''}"


def budget(args, iterations: int | None = None) -> list[str]:
    """The training budget: ``--cpu-minutes`` of CPU (capped at ``--max-iters``) for the first arm,
    or exactly ``iterations`` (no CPU limit) for an arm compared with it at equal iterations."""
    if iterations is not None:
        return [f"profile.max_iters={iterations}", "profile.max_cpu_minutes=null"]
    return [f"profile.max_cpu_minutes={args.cpu_minutes}",
            *([f"profile.max_iters={args.max_iters}"] if args.max_iters else [])]


def run_arm(method: str, args, variant: str | None, overrides: list[str], opts,
            metrics: tuple[str, ...]):
    """Train (or resume) one arm on SynthFaces through the bench path (store, classifier,
    ``obtain_method``, ``evaluate_method``) and evaluate it on the test split. Returns its row
    (iterations, this call's training CPU seconds, checkpoint, test size, res, profile, seed, then
    ``metrics``) and its composed config."""
    from faceedit_bench.bench import (ensure_classifier, ensure_data, evaluate_method,
                                      make_datamodule, obtain_method)
    from faceedit_bench.build import train_settings
    from faceedit_bench.config import compose_config

    cfg = compose_config(method, args.res, data="synth", profile=args.profile, variant=variant,
                         overrides=overrides)
    dm = make_datamodule(cfg, opts, batch_size=int(train_settings(cfg)["batch_size"]))
    ensure_data(dm)
    clf = ensure_classifier(dm, cfg, opts)
    c0 = time.process_time()
    trained, ckpt = obtain_method(cfg, dm, opts, logger=None)
    cpu = time.process_time() - c0
    rec = evaluate_method(trained, dm, clf, cfg, opts)
    row = {"iterations": int(trained.iteration), "train_cpu_s_this_call": round(cpu, 1),
           "checkpoint": str(ckpt), "n_test": rec["n_images"], "res": args.res,
           "profile": args.profile, "seed": int(cfg.get("seed", 0))}
    return {**row, **{m: rec["metrics"].get(m) for m in metrics}}, cfg


def now() -> str:
    """The UTC time, as the ``when`` of a row."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def provenance(args, script: str, verdict: dict) -> dict:
    """Fields every row of a comparison carries: ``--tag``, ``--cpu-minutes``, when, the
    comparison's ``verdict`` and the command."""
    return {"tag": args.tag, "cpu_minutes": args.cpu_minutes, "when": now(), "verdict": verdict,
            "command": " ".join([f"benchmarks/{script}.py", *sys.argv[1:]])}


def append_jsonl(path, rows) -> None:
    """Append ``rows`` to ``path`` as JSON lines."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def write_report(path, text: str) -> None:
    """Write the markdown report to ``path`` and print it."""
    Path(path).write_text(text)
    print(text, end="", flush=True)


def cell(x, spec: str = ".4f", scale: float = 1.0) -> str:
    """A table cell: ``x`` (times ``scale``) in ``spec``, or a dash when unknown."""
    return "—" if x is None else format(scale * x, spec)
