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
import os
import sys
from pathlib import Path

from _claims import (add_equal_iteration_arguments, add_report_arguments, add_run_arguments,
                     append_jsonl, bench_options, budget, cell, common_overrides, provenance,
                     run_arm, run_tag, start, write_report)

METRICS = ("tarr", "cf_l1", "psnr")


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


def run_secgan(args, variant: str, overrides: list[str], opts) -> dict:
    """Train (or resume) one ``secgan`` variant and evaluate it on the test split."""
    row, _ = run_arm("secgan", args, variant, overrides, opts, METRICS)
    return {"variant": variant, **row}


def verdict(sec: dict, base: dict) -> dict:
    def better(a, b, higher):
        if a is None or b is None:
            return None
        return a > b if higher else a < b

    return {"tarr_higher": better(sec["tarr"], base["tarr"], True),
            "cf_l1_lower": better(sec["cf_l1"], base["cf_l1"], False)}


def markdown(rows: list[dict], verdicts: dict[str, dict]) -> str:
    lines = ["| backbone | arm | iterations | TARR (%) | cf_l1 | PSNR (dB) |", "|---|---|---|---|---|---|"]
    for r in rows:
        b, arm = r["variant"].split("_")
        lines.append(f"| {b} | {arm} | {r['iterations']} | {cell(r['tarr'], '.1f', 100)} | "
                     f"{cell(r['cf_l1'])} | {cell(r['psnr'], '.2f')} |")
    lines.append("")
    for b, v in verdicts.items():
        lines.append(f"- {b}: SeCGAN TARR > Baseline: **{v['tarr_higher']}**; "
                     f"SeCGAN cf_l1 < Baseline: **{v['cf_l1_lower']}**")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbones", default="stargan,attgan")
    add_run_arguments(p, "claim_secgan", "SeCGAN arm's training CPU budget")
    add_equal_iteration_arguments(p, "SeCGAN")
    p.add_argument("--lambda-sc", type=float, default=0.01)
    p.add_argument("--parser", default=None)
    add_report_arguments(p, "claim_secgan")
    args = p.parse_args()
    start(args)

    opts, tag = bench_options(args), run_tag(args)
    common = common_overrides(args, f"method.model.helpers.parser={parser_path(args)}")
    rows, verdicts = [], {}
    for b in [s.strip() for s in args.backbones.split(",") if s.strip()]:
        sec_ov = [*common, "method.model.seg_input=parser", f"method.model.lambda_sc={args.lambda_sc}",
                  *budget(args), f"++run_name=claim_{b}_secgan_{tag}"]
        sec = run_secgan(args, f"{b}_secgan", sec_ov, opts)
        base_ov = [*common, *budget(args, sec["iterations"]),
                   f"++run_name=claim_{b}_baseline_{tag}_it{sec['iterations']}"]
        base = run_secgan(args, f"{b}_baseline", base_ov, opts)
        v = verdicts[b] = verdict(sec, base)
        stamp = {"backbone": b, "lambda_sc": args.lambda_sc, **provenance(args, "claim_secgan", v)}
        rows += [{**r, **stamp} for r in (sec, base)]
        append_jsonl(args.jsonl, rows[-2:])
        print(f"[claim] {b}: SeCGAN TARR {sec['tarr']} vs Baseline {base['tarr']} at "
              f"{sec['iterations']} iterations -> claim {'HELD' if v['tarr_higher'] else 'NOT held'}; "
              f"cf_l1 {sec['cf_l1']} vs {base['cf_l1']} -> SeCGAN "
              f"{'lower' if v['cf_l1_lower'] else 'not lower'}", flush=True)
    write_report(args.md, f"# SeCGAN vs Baseline at equal iterations ({args.profile}, {args.res} px, "
                          f"tag {args.tag or '-'})\n\n" + markdown(rows, verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
