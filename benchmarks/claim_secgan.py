"""SeCGAN's claim on SynthFaces: SeCGAN beats its Baseline in TARR (Table 1), both backbones.

    .venv/bin/python benchmarks/claim_secgan.py [--backbones stargan,attgan] [--res 64]
        [--profile quick] [--cpu-minutes 15] [--parser PATH] [--out runs/claim_secgan]
        [--data-dir data] [key=value ...]

Per backbone: trains ``secgan --variant <b>_secgan`` (λ_sc 0.01, s_in from the frozen parser)
with the quick profile under a CPU-time budget (``profile.max_cpu_minutes``, the training
process's CPU time), then ``<b>_baseline`` for exactly the iterations SeCGAN reached (equal
iterations, the paper's comparison), each through the bench path (``faceedit_bench.bench``:
store, classifier, ``obtain_method``, ``evaluate_method``), and compares mean TARR (higher is
better) and the counterfactual error ``cf_l1`` (L1 of each flip against the rendered true
counterfactual, lower is better). Writes one JSON line per arm to
``benchmarks/claim_secgan.jsonl`` and a markdown table to ``benchmarks/claim_secgan.md``
(``--tag`` names the lines), and prints which way the claim fell for each backbone.

The parser: ``--parser`` or $FACEEDIT_PARSER_WEIGHTS (the SynthFaces recipe: ``faceedit-bench
parser train --base 16 --out data/weights/parser_synth.pt``). With ``--profile smoke`` and no
parser an untrained tiny BiSeNet is written to ``<out>/tiny_parser.pt``: that proves the script
runs; its numbers mean nothing.
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


def parser_path(args) -> str:
    path = args.parser or os.environ.get("FACEEDIT_PARSER_WEIGHTS")
    if path:
        return path
    if args.profile != "smoke":
        from faceedit_bench.methods.helpers import PARSER_RECIPE

        sys.exit(f"claim_secgan: SeCGAN needs a face parser: pass --parser PATH or set "
                 f"$FACEEDIT_PARSER_WEIGHTS; {PARSER_RECIPE}")
    import torch

    from faceedit_bench.parsing import BiSeNet, save_bisenet

    torch.manual_seed(0)
    out = Path(args.out) / "tiny_parser.pt"
    print(f"[claim] smoke: untrained tiny parser -> {out} (numbers mean nothing)", flush=True)
    return str(save_bisenet(BiSeNet(19, base=8, input_size=None), out))


def train_and_evaluate(args, variant: str, overrides: list[str], opts) -> dict:
    from faceedit_bench.bench import (ensure_classifier, ensure_data, evaluate_method,
                                      make_datamodule, obtain_method)
    from faceedit_bench.build import train_settings
    from faceedit_bench.config import compose_config

    cfg = compose_config("secgan", args.res, data="synth", profile=args.profile,
                         variant=variant, overrides=overrides)
    dm = make_datamodule(cfg, opts, batch_size=int(train_settings(cfg)["batch_size"]))
    ensure_data(dm)
    clf = ensure_classifier(dm, cfg, opts)
    c0 = time.process_time()
    method, ckpt = obtain_method(cfg, dm, opts, logger=None)
    train_cpu = time.process_time() - c0
    rec = evaluate_method(method, dm, clf, cfg, opts)
    m = rec["metrics"]
    return {"variant": variant, "iterations": int(method.iteration), "tarr": m.get("tarr"),
            "cf_l1": m.get("cf_l1"), "psnr": m.get("psnr"), "train_cpu_s_this_call": round(train_cpu, 1),
            "checkpoint": str(ckpt), "n_test": rec["n_images"], "res": args.res,
            "profile": args.profile, "seed": int(cfg.get("seed", 0))}


def verdict(sec: dict, base: dict) -> dict:
    def better(a, b, higher):
        if a is None or b is None:
            return None
        return a > b if higher else a < b

    return {"tarr_higher": better(sec["tarr"], base["tarr"], True),
            "cf_l1_lower": better(sec["cf_l1"], base["cf_l1"], False)}


def markdown(rows: list[dict], verdicts: dict[str, dict]) -> str:
    def f(v, pct=False):
        return "—" if v is None else (f"{100 * v:.1f}" if pct else f"{v:.4f}")

    lines = ["| backbone | arm | iterations | TARR (%) | cf_l1 | PSNR (dB) |", "|---|---|---|---|---|---|"]
    for r in rows:
        b, arm = r["variant"].split("_")
        psnr = "—" if r["psnr"] is None else f"{r['psnr']:.2f}"
        lines.append(f"| {b} | {arm} | {r['iterations']} | {f(r['tarr'], True)} | {f(r['cf_l1'])} | "
                     f"{psnr} |")
    lines.append("")
    for b, v in verdicts.items():
        lines.append(f"- {b}: SeCGAN TARR > Baseline: **{v['tarr_higher']}**; "
                     f"SeCGAN cf_l1 < Baseline: **{v['cf_l1_lower']}**")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbones", default="stargan,attgan")
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--profile", default="quick")
    p.add_argument("--cpu-minutes", type=float, default=15.0, help="SeCGAN arm's training CPU budget")
    p.add_argument("--max-iters", type=int, default=None,
                   help="cap on SeCGAN's iterations (default: the profile's)")
    p.add_argument("--lambda-sc", type=float, default=0.01)
    p.add_argument("--parser", default=None)
    p.add_argument("--out", default="runs/claim_secgan")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="")
    p.add_argument("--jsonl", default=str(ROOT / "benchmarks" / "claim_secgan.jsonl"))
    p.add_argument("--md", default=str(ROOT / "benchmarks" / "claim_secgan.md"))
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    from faceedit_bench.bench import BenchOptions

    opts = BenchOptions(data_dir=Path(args.data_dir), results_dir=Path(args.out) / "results",
                        leaderboards_dir=Path(args.out) / "leaderboards", progress=False, render=False)
    parser = parser_path(args)
    common = ["data.num_workers=0", "profile.progress_bar=false", f"out_dir={args.out}",
              f"data_dir={args.data_dir}", f"method.model.helpers.parser={parser}", *args.overrides]
    rows, verdicts = [], {}
    for b in [s.strip() for s in args.backbones.split(",") if s.strip()]:
        tag = f"{args.res}_{args.profile}{('_' + args.tag) if args.tag else ''}"
        sec_ov = [*common, "method.model.seg_input=parser", f"method.model.lambda_sc={args.lambda_sc}",
                  f"profile.max_cpu_minutes={args.cpu_minutes}", f"++run_name=claim_{b}_secgan_{tag}"]
        if args.max_iters:
            sec_ov.append(f"profile.max_iters={args.max_iters}")
        sec = train_and_evaluate(args, f"{b}_secgan", sec_ov, opts)
        base_ov = [*common, f"profile.max_iters={sec['iterations']}", "profile.max_cpu_minutes=null",
                   f"++run_name=claim_{b}_baseline_{tag}_it{sec['iterations']}"]
        base = train_and_evaluate(args, f"{b}_baseline", base_ov, opts)
        verdicts[b] = verdict(sec, base)
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for r in (sec, base):
            r.update({"backbone": b, "tag": args.tag, "lambda_sc": args.lambda_sc,
                      "cpu_minutes": args.cpu_minutes, "when": when, "verdict": verdicts[b],
                      "command": " ".join(["benchmarks/claim_secgan.py", *sys.argv[1:]])})
            rows.append(r)
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(r) + "\n")
        v = verdicts[b]
        print(f"[claim] {b}: SeCGAN TARR {sec['tarr']} vs Baseline {base['tarr']} at "
              f"{sec['iterations']} iterations -> claim {'HELD' if v['tarr_higher'] else 'NOT held'}; "
              f"cf_l1 {sec['cf_l1']} vs {base['cf_l1']} -> SeCGAN "
              f"{'lower' if v['cf_l1_lower'] else 'not lower'}", flush=True)
    Path(args.md).write_text(f"# SeCGAN vs Baseline at equal iterations ({args.profile}, {args.res} px, "
                             f"tag {args.tag or '-'})\n\n" + markdown(rows, verdicts))
    print(markdown(rows, verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
