"""SaGAN's claim on SynthFaces: spatial attention keeps the edit inside the attribute's region,
so the share of the change energy inside the true changed region (``loc_energy_diff``,
metrics/tracks/components/localisation.py) is higher for SaGAN than for AttGAN / STGAN on the
same attributes.

    .venv/bin/python benchmarks/claim_sagan.py [--res 64] [--profile quick] [--cpu-minutes 15]
        [--attrs Eyeglasses,Mouth_Slightly_Open,No_Beard,Smiling] [--compare attgan,stgan]

Arms, each trained through the library's ``fit`` under a CPU-time budget (``profile.
max_cpu_minutes``, data loading in the process) and resumed if its run folder exists:

- SaGAN: one model per attribute (the paper), each on data labelled with that attribute only
  (``+attrs=[A]``, ``model.attribute=A``), ``--cpu-minutes / len(attrs)`` each by default (the
  same total CPU time as one comparator; ``--member-minutes`` overrides), evaluated as the set
  (``sagan_set``: each flip by the member trained for it).
- each ``--compare`` method: one model on all ``--attrs``, ``--cpu-minutes``.

Every arm is evaluated by the one-pass evaluator on the same test split with labels ``--attrs``
(no attribute classifier: TARR is not needed here). Writes one JSON line per arm and attribute
to ``--jsonl``, a markdown table to ``--md``, and prints which way the claim fell (per attribute
and on the mean over attributes). At smoke size the numbers mean nothing; it shows the path runs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _claims import (add_report_arguments, add_run_arguments, append_jsonl, cell, common_overrides,
                     now, start, write_report)

PAPER_ATTRS = "Eyeglasses,Mouth_Slightly_Open,No_Beard,Smiling"
KEYS = ("loc_energy_diff", "loc_iou_diff", "loc_energy_attn", "loc_iou_attn", "cf_l1", "mre")


def _cfg(method: str, args, attrs: list[str], minutes: float, run: str, extra=()):
    from faceedit_bench.config import compose_config

    return compose_config(method, args.res, profile=args.profile, overrides=[
        f"+attrs=[{','.join(attrs)}]", f"profile.max_cpu_minutes={minutes}",
        *common_overrides(args, f"+run_name={run}", *extra)])


def _train(cfg) -> Path:
    from faceedit_bench.train import build_datamodule, fit, train_settings

    return fit(cfg, datamodule=build_datamodule(cfg, int(train_settings(cfg)["batch_size"])))


def _evaluate(method, args, attrs: list[str]) -> dict:
    from faceedit_bench.metrics.evaluator import evaluate
    from faceedit_bench.train import build_datamodule

    cfg = _cfg("identity", args, attrs, 0, "claim_eval")
    return evaluate(method, build_datamodule(cfg, 32), None, cache_dir=None, progress=False,
                    trainer_kwargs={"accelerator": "cpu", "devices": 1}, dataset="synth",
                    resolution=args.res)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_arguments(p, "claim_sagan", "per comparator")
    p.add_argument("--attrs", default=PAPER_ATTRS)
    p.add_argument("--compare", default="attgan,stgan")
    p.add_argument("--member-minutes", type=float, default=None,
                   help="per SaGAN model (default: --cpu-minutes / number of attributes)")
    add_report_arguments(p, "claim_sagan")
    args = p.parse_args()
    start(args)

    from faceedit_bench.methods.sagan import SaGANSet
    from faceedit_bench.train import load_method

    attrs = [a.strip() for a in args.attrs.split(",") if a.strip()]
    compare = [m.strip() for m in args.compare.split(",") if m.strip()]
    member_min = args.member_minutes or args.cpu_minutes / len(attrs)
    tag = f"{args.res}_synth_{args.profile}"
    t0 = time.time()

    members = {}
    for a in attrs:
        cfg = _cfg("sagan", args, [a], member_min, f"claim_sagan-{a}_{tag}", [f"method.model.attribute={a}"])
        members[a] = str(_train(cfg))
    arms = {"sagan": SaGANSet(attrs=attrs, res=args.res, members=members)}
    for m in compare:
        arms[m] = load_method(_train(_cfg(m, args, attrs, args.cpu_minutes, f"claim_{m}_{tag}")))

    rows, when = [], now()
    for arm, method in arms.items():
        rec = _evaluate(method, args, attrs)
        per = rec["per_attribute"]
        for a in attrs:
            rows.append({"arm": arm, "attribute": a, "res": args.res, "profile": args.profile,
                         **{k: per.get(k, {}).get(a) for k in KEYS},
                         "cpu_minutes": member_min if arm == "sagan" else args.cpu_minutes,
                         "overrides": args.overrides, "when": when})
    append_jsonl(args.jsonl, rows)

    def val(arm, a, key="loc_energy_diff"):
        return next((r[key] for r in rows if r["arm"] == arm and r["attribute"] == a), None)

    def mean(arm):
        v = [val(arm, a) for a in attrs if val(arm, a) is not None]
        return sum(v) / len(v) if v else None

    def fmt(v):
        return cell(v, ".3f")

    names = list(arms)
    lines = [f"# SaGAN claim: energy share inside the true changed region ({args.res} px, "
             f"{args.profile}, SaGAN {member_min:g} CPU-min per attribute model, others "
             f"{args.cpu_minutes:g})", "",
             "| attribute | " + " | ".join(names) + " | SaGAN attention (energy / IoU) | SaGAN highest |",
             "|---|" + "---|" * (len(names) + 2)]
    wins = 0
    for a in attrs:
        s, others = val("sagan", a), [val(m, a) for m in compare]
        win = s is not None and all(o is None or s > o for o in others)
        wins += int(win)
        lines.append(f"| {a} | " + " | ".join(fmt(val(m, a)) for m in names)
                     + f" | {fmt(val('sagan', a, 'loc_energy_attn'))} / {fmt(val('sagan', a, 'loc_iou_attn'))}"
                     + f" | {'yes' if win else 'no'} |")
    means = {m: mean(m) for m in names}
    lines.append("| mean | " + " | ".join(fmt(means[m]) for m in names) + " | | |")
    held = means["sagan"] is not None and all(means[m] is None or means["sagan"] > means[m] for m in compare)
    verdict = (f"claim {'HOLDS' if held else 'DOES NOT HOLD'} on the mean (SaGAN {fmt(means['sagan'])} vs "
               + ", ".join(f"{m} {fmt(means[m])}" for m in compare)
               + f"); SaGAN highest on {wins} of {len(attrs)} attributes")
    lines += ["", verdict, "", f"wall {time.time() - t0:.0f} s; rows appended to {args.jsonl}"]
    write_report(args.md, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
