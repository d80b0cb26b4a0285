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
import sys

from _claims import (add_equal_iteration_arguments, add_report_arguments, add_run_arguments,
                     append_jsonl, bench_options, budget, cell, common_overrides, provenance,
                     run_arm, run_tag, start, write_report)

METRICS = ("mre", "tarr", "hat_damage", "psnr", "cf_l1")


def run_maggan(args, variant: str | None, overrides: list[str], opts) -> dict:
    """Train (or resume) one arm (``maggan`` or a variant) and evaluate it on the test split."""
    row, cfg = run_arm("maggan", args, variant, overrides, opts, METRICS)
    return {"arm": variant or "maggan", "label": str(cfg.method.label), **row}


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
    lines = ["| arm | iterations | MRE | TARR (%) | hat damage | PSNR (dB) | cf_l1 |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['iterations']} | {cell(r['mre'])} | "
                     f"{cell(r['tarr'], '.1f', 100)} | {cell(r['hat_damage'])} | {cell(r['psnr'], '.2f')} | "
                     f"{cell(r['cf_l1'])} |")
    lines += ["", f"- MagGAN MRE < STGAN: **{v['mre_lower']}**; TARR within 5 points: "
                  f"**{v['tarr_within_5']}**; hat damage lower: **{v['hat_lower']}** -> claim "
                  f"**{outcome(v)}**"]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_arguments(p, "claim_maggan", "MagGAN arm's training CPU budget")
    add_equal_iteration_arguments(p, "MagGAN")
    add_report_arguments(p, "claim_maggan")
    args = p.parse_args()
    start(args)

    opts, common, tag = bench_options(args), common_overrides(args), run_tag(args)
    mg = run_maggan(args, None, [*common, *budget(args), f"++run_name=claim_maggan_{tag}"], opts)
    st = run_maggan(args, "stgan", [*common, *budget(args, mg["iterations"]),
                                    f"++run_name=claim_stgan6_{tag}_it{mg['iterations']}"], opts)
    v = verdict(mg, st)
    stamp = provenance(args, "claim_maggan", v)
    rows = [{**r, **stamp} for r in (mg, st)]
    append_jsonl(args.jsonl, rows)
    write_report(args.md, f"# MagGAN vs 6-layer STGAN at equal iterations ({args.profile}, "
                          f"{args.res} px, tag {args.tag or '-'})\n\n" + markdown(rows, v))
    print(f"[claim] MagGAN MRE {mg['mre']} vs STGAN {st['mre']}, TARR {mg['tarr']} vs {st['tarr']}, "
          f"hat damage {mg['hat_damage']} vs {st['hat_damage']} at {mg['iterations']} iterations -> "
          f"claim {outcome(v)}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
