"""MagGAN's claim on SynthFaces (Tables 1/3, Fig. 2): MagGAN preserves what an edit should not
touch better than the 6-layer STGAN at comparable editing success.

    .venv/bin/python benchmarks/claim_maggan.py [--res 64] [--profile quick] [--cpu-minutes 15]
        [--max-iters N] [--out runs/claim_maggan] [--data-dir data] [--tag T] [key=value ...]

Trains ``maggan`` (Table 5 G with eq. 12 conditioning, λ3 = 200) under a CPU-time budget
(``profile.max_cpu_minutes``), then ``maggan --variant stgan`` (Table 3 (i): the STGAN generator at
6 layers, same D, no L_mre) for exactly the iterations MagGAN reached, both through the bench
path (store, classifier, ``obtain_method``, ``evaluate_method``), and checks:

- ``mre_lower``: MagGAN's MRE (eq. 2) is lower than STGAN's,
- ``tarr_within_5``: MagGAN's mean TARR is at most 5 points below STGAN's (the paper: 90.0 vs
  90.4 %), so the MRE gain is not bought by not editing,
- ``hat_lower``: MagGAN's hat damage (mean change inside the hat for Bald / Bangs / hair-colour
  flips, ``metrics/tracks/components/hat_damage.py``) is lower than STGAN's.

The claim holds when all three do. Writes one JSON line per arm to
``benchmarks/claim_maggan.jsonl`` and a markdown table to ``benchmarks/claim_maggan.md``, and prints
which way the claim fell. ``--profile smoke`` only proves the script runs (numbers mean nothing).
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

METRICS = ("mre", "tarr", "hat_damage", "psnr", "cf_l1")


def run_arm(args, variant: str | None, overrides: list[str], opts) -> dict:
    """Train (or resume) one arm and evaluate it on the test split."""
    from faceedit_bench.bench import (ensure_classifier, ensure_data, evaluate_method,
                                      make_datamodule, obtain_method)
    from faceedit_bench.build import train_settings
    from faceedit_bench.config import compose_config

    cfg = compose_config("maggan", args.res, data="synth", profile=args.profile, variant=variant,
                         overrides=overrides)
    dm = make_datamodule(cfg, opts, batch_size=int(train_settings(cfg)["batch_size"]))
    ensure_data(dm)
    clf = ensure_classifier(dm, cfg, opts)
    c0 = time.process_time()
    method, ckpt = obtain_method(cfg, dm, opts, logger=None)
    cpu = time.process_time() - c0
    rec = evaluate_method(method, dm, clf, cfg, opts)
    out = {"arm": variant or "maggan", "label": str(cfg.method.label),
           "iterations": int(method.iteration),
           "train_cpu_s_this_call": round(cpu, 1), "checkpoint": str(ckpt), "n_test": rec["n_images"],
           "res": args.res, "profile": args.profile, "seed": int(cfg.get("seed", 0))}
    out.update({m: rec["metrics"].get(m) for m in METRICS})
    return out


def verdict(mg: dict, st: dict) -> dict:
    known = lambda *keys: all(mg.get(k) is not None and st.get(k) is not None for k in keys)  # noqa: E731
    v = {"mre_lower": mg["mre"] < st["mre"] if known("mre") else None,
         "tarr_within_5": mg["tarr"] >= st["tarr"] - 0.05 if known("tarr") else None,
         "hat_lower": mg["hat_damage"] < st["hat_damage"] if known("hat_damage") else None}
    v["claim_held"] = None if None in v.values() else all(v.values())
    return v


def outcome(v: dict) -> str:
    return "HELD" if v["claim_held"] else "NOT held" if v["claim_held"] is False else "undecided"


def markdown(rows: list[dict], v: dict) -> str:
    def f(x, pct=False):
        return "—" if x is None else (f"{100 * x:.1f}" if pct else f"{x:.4f}")

    lines = ["| arm | iterations | MRE | TARR (%) | hat damage | PSNR (dB) | cf_l1 |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        psnr = "—" if r["psnr"] is None else f"{r['psnr']:.2f}"
        lines.append(f"| {r['label']} | {r['iterations']} | {f(r['mre'])} | {f(r['tarr'], True)} | "
                     f"{f(r['hat_damage'])} | {psnr} | {f(r['cf_l1'])} |")
    lines += ["", f"- MagGAN MRE < STGAN: **{v['mre_lower']}**; TARR within 5 points: "
                  f"**{v['tarr_within_5']}**; hat damage lower: **{v['hat_lower']}** -> claim "
                  f"**{outcome(v)}**"]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--profile", default="quick")
    p.add_argument("--cpu-minutes", type=float, default=15.0, help="MagGAN arm's training CPU budget")
    p.add_argument("--max-iters", type=int, default=None, help="cap on MagGAN's iterations (default: the profile's)")
    p.add_argument("--out", default="runs/claim_maggan")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="")
    p.add_argument("--jsonl", default=str(ROOT / "benchmarks" / "claim_maggan.jsonl"))
    p.add_argument("--md", default=str(ROOT / "benchmarks" / "claim_maggan.md"))
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    from faceedit_bench.bench import BenchOptions

    opts = BenchOptions(data_dir=Path(args.data_dir), results_dir=Path(args.out) / "results",
                        leaderboards_dir=Path(args.out) / "leaderboards", progress=False, render=False)
    common = ["data.num_workers=0", "profile.progress_bar=false", f"out_dir={args.out}",
              f"data_dir={args.data_dir}", *args.overrides]
    tag = f"{args.res}_{args.profile}{('_' + args.tag) if args.tag else ''}"
    mg_ov = [*common, f"profile.max_cpu_minutes={args.cpu_minutes}", f"++run_name=claim_maggan_{tag}"]
    if args.max_iters:
        mg_ov.append(f"profile.max_iters={args.max_iters}")
    mg = run_arm(args, None, mg_ov, opts)
    st_ov = [*common, f"profile.max_iters={mg['iterations']}", "profile.max_cpu_minutes=null",
             f"++run_name=claim_stgan6_{tag}_it{mg['iterations']}"]
    st = run_arm(args, "stgan", st_ov, opts)
    v = verdict(mg, st)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows = [mg, st]
    for r in rows:
        r.update({"tag": args.tag, "cpu_minutes": args.cpu_minutes, "when": when, "verdict": v,
                  "command": " ".join(["benchmarks/claim_maggan.py", *sys.argv[1:]])})
        with open(args.jsonl, "a") as f:
            f.write(json.dumps(r) + "\n")
    md = (f"# MagGAN vs 6-layer STGAN at equal iterations ({args.profile}, {args.res} px, tag "
          f"{args.tag or '-'})\n\n" + markdown(rows, v))
    Path(args.md).write_text(md)
    print(md)
    print(f"[claim] MagGAN MRE {mg['mre']} vs STGAN {st['mre']}, TARR {mg['tarr']} vs {st['tarr']}, "
          f"hat damage {mg['hat_damage']} vs {st['hat_damage']} at {mg['iterations']} iterations -> "
          f"claim {outcome(v)}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
