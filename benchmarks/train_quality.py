"""Quality after a CPU-time budget: train a method on SynthFaces 64 px (quick profile), evaluate.

    .venv/bin/python benchmarks/train_quality.py --method attgan [--cpu-minutes 15] [--threads 1]
        [key=value ...]

Trains with ``profile.max_cpu_minutes`` (CPU time of the training process, data loading in the
process: ``data.num_workers=0``), resuming the run folder if present, then evaluates the last
checkpoint with the one-pass evaluator and the SynthFaces attribute classifier (trained once,
4 epochs, when missing; not counted in the budget). Prints and appends one JSON line to
``benchmarks/train_quality.jsonl``: iterations reached, CPU seconds, mean TARR, PSNR, SSIM.
Acceptance target (issue 6): TARR >= 70 % and reconstruction PSNR >= 25 dB within 15 CPU min.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", required=True)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--cpu-minutes", type=float, default=15.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/train_quality")
    p.add_argument("--eval-only", action="store_true", help="evaluate the run's last.ckpt only")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    from faceedit_bench.config import compose_config
    from faceedit_bench.metrics.classifier import default_classifier_path, train_classifier
    from faceedit_bench.metrics.evaluator import evaluate
    from faceedit_bench.train import build_datamodule, fit, load_method, run_dir, train_settings

    cfg = compose_config(args.method, args.res, profile="quick", overrides=[
        f"profile.max_cpu_minutes={args.cpu_minutes}", "data.num_workers=0",
        "profile.progress_bar=false", f"out_dir={args.out}", *args.overrides])
    dm = build_datamodule(cfg, int(train_settings(cfg)["batch_size"]))
    t0, c0 = time.time(), time.process_time()
    last = run_dir(cfg) / "checkpoints" / "last.ckpt"
    if not args.eval_only:
        last = fit(cfg, datamodule=dm)
    train_wall = time.time() - t0
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    cpu_used = next((v["used"] for k, v in ckpt.get("callbacks", {}).items() if "CPUBudget" in k), None)

    dm.prepare_data()
    dm.setup("fit")
    clf = default_classifier_path(dm.data_hash, dm.res, root="data/classifiers")
    if not clf.is_file():
        clf.parent.mkdir(parents=True, exist_ok=True)
        train_classifier(dm, clf, epochs=4, progress=False,
                         trainer_kwargs={"accelerator": "cpu", "devices": 1})
    method = load_method(last)
    rec = evaluate(method, dm, str(clf), cache_dir="data/stats_cache",
                   trainer_kwargs={"accelerator": "cpu", "devices": 1}, dataset="synth",
                   resolution=args.res, progress=False)
    m = rec["metrics"]
    row = {"method": args.method, "res": args.res, "iterations": int(ckpt["faceedit_iteration"]),
           "train_cpu_s": cpu_used, "train_wall_s": round(train_wall, 1), "threads": args.threads,
           "tarr": m.get("tarr"), "psnr": m.get("psnr"), "ssim": m.get("ssim"),
           "overrides": args.overrides, "n_test": rec.get("n_images"),
           "command": " ".join(["benchmarks/train_quality.py", *sys.argv[1:]]),
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(json.dumps(row))
    with open(ROOT / "benchmarks" / "train_quality.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
