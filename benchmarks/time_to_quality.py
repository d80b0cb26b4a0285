"""Time to quality: train a method on SynthFaces 64 px under a CPU-time budget and evaluate its
checkpoints along the way (metrics vs training CPU-minutes).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/time_to_quality.py --method stgan --tag base \\
        [--cpu-minutes 60] [--eval-every 5] [--profile quick] [--variant V] [--out /work/runs_ttq/ttq]
        [key=value ...]
    .venv/bin/python benchmarks/time_to_quality.py --method identity     # the identity baseline
    .venv/bin/python benchmarks/time_to_quality.py --method stgan --plot  # plot + targets only
    .venv/bin/python benchmarks/time_to_quality.py --table [METHOD/TAG ...]  # last points, markdown

Training: one ``fit`` of the suite with ``profile.max_cpu_minutes=--cpu-minutes`` (CPU time of
the training process; run it with 1 thread and ``data.num_workers=0``), run folder
``<out>/<method>_<tag>``. Every ``--eval-every`` training CPU-minutes a callback saves
``checkpoints/cpu_<s>s_it<it>.ckpt`` (mid-epoch, so it resumes), evaluates it with the suite's
one-pass evaluator (``metrics.evaluator.evaluate``) on the SynthFaces test split with the
SynthFaces attribute classifier (trained once, 4 epochs, as benchmarks/train_quality.py) and
writes its edit grid next to it (``.png``: per test image a row of input, reconstruction, 13
flips, then a row of the true counterfactuals); the evaluation's CPU time is not charged to the
budget. Added to the evaluator's record: the reconstruction L1 (mean |x - G(x, a->a)| on [0, 1],
the counterfactual L1's units), which the evaluator does not report. One JSON line per point goes
to ``benchmarks/time_to_quality.jsonl``, the plot to ``leaderboards/plots/time_to_quality_<m>.png``.
Resume: give the same command again (a raised ``--cpu-minutes`` continues a finished run from its
last ``cpu_*.ckpt``: the suite's own ``last.ckpt`` of a finished run does not resume, see
``train.fit``'s ``max_epochs=1``).

Targets (64 px, within 60 CPU-minutes): reconstruction PSNR >= 28 dB; TARR >= 0.70;
``cf_l1_in`` (counterfactual L1 inside the attribute's region) below the identity baseline's for
>= 10 of 13 attributes; ``cf_l1_out`` <= 1.5 x the reconstruction L1. Diagnostics with
``--eval-ckpt PATH`` (one checkpoint, one row): ``--recal-bn N`` re-estimates G's BatchNorm
running statistics from N training batches (cumulative average) first; ``--intensity`` sets the
test intensity (default the method's paper value); ``--grid PNG`` also saves its edit grid.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
JSONL = ROOT / "benchmarks" / "time_to_quality.jsonl"
PLOTS = ROOT / "leaderboards" / "plots"
try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover
    pl = None
TARGETS = {"psnr": 28.0, "tarr": 0.70, "cf_in_attrs": 10, "cf_out_ratio": 1.5}


def read_rows() -> list[dict]:
    if not JSONL.is_file():
        return []
    return [json.loads(line) for line in JSONL.read_text().splitlines() if line.strip()]


def append_row(row: dict) -> None:
    JSONL.parent.mkdir(parents=True, exist_ok=True)
    with open(JSONL, "a") as f:
        f.write(json.dumps(row) + "\n")


def targets(row: dict, ident: dict | None) -> dict:
    """Which of the four targets a point meets (``cf_in`` needs the identity row)."""
    out = {"psnr>=28": row.get("psnr") is not None and row["psnr"] >= TARGETS["psnr"],
           "tarr>=0.70": row.get("tarr") is not None and row["tarr"] >= TARGETS["tarr"]}
    if ident is not None and row.get("cf_l1_in_attr"):
        base = ident["cf_l1_in_attr"]
        shared = [a for a in row["cf_l1_in_attr"] if a in base]  # a run on other attrs: its own
        n = sum(1 for a in shared if row["cf_l1_in_attr"][a] < base[a])
        out["cf_in_below_identity"] = f"{n}/{len(shared)}"
        out["cf_in>=10/13"] = n >= TARGETS["cf_in_attrs"] if len(shared) == len(base) else None
    if row.get("cf_l1_out") is not None and row.get("rec_l1"):
        out["cf_out/rec_l1"] = round(row["cf_l1_out"] / row["rec_l1"], 3)
        out["cf_out<=1.5rec"] = out["cf_out/rec_l1"] <= TARGETS["cf_out_ratio"]
    return out


def cpu_used(ckpt: dict) -> float | None:
    return next((v["used"] for k, v in ckpt.get("callbacks", {}).items() if "CPUBudget" in k), None)


def recalibrate_bn(method, dm, n_batches: int) -> None:
    """Reset G's BatchNorm running stats and re-estimate them (cumulative mean) on training data."""
    import torch
    from faceedit_bench.methods.targets import shuffled_targets

    net = method.inference_net
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    loader = dm.train_dataloader()
    rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if i >= n_batches:
                break
            a = batch["attrs"].float()
            code_b, code_a = method.train_codes(a, shuffled_targets(a, rng))
            method.generate(batch["image"], code_b, net)
            method.generate(batch["image"], code_a, net)
    net.eval()


def save_grid(method, dm, path: Path, recal: int = 0) -> None:
    """Edit grid of 4 test images (``method.sample_grid``), each followed by a row of the true
    counterfactual renders (input in the first two columns)."""
    import torch
    from torchvision.utils import make_grid, save_image

    if recal:
        recalibrate_bn(method, dm, recal)
    b = next(iter(dm.test_dataloader()))
    x, a = b["image"][:4], b["attrs"][:4].float()
    grid = method.sample_grid(x, a, b["parts"][:4])  # label maps: MagGAN's conditioning needs them
    grid = grid.view(4, grid.size(0) // 4, *x.shape[1:])
    cf = b["cf_image"][:4]
    if grid.size(1) == 2 + 2 * method.n_attrs:  # a flip and its attention mask per attribute (SaGAN)
        cf = torch.stack([cf, torch.zeros_like(cf)], 2).flatten(1, 2)
    truth = torch.cat([x[:, None], x[:, None], cf], 1)
    rows = torch.stack([grid, truth], 1).flatten(0, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid((rows + 1) / 2, nrow=grid.size(1), padding=1).clamp(0, 1), path)


class CPUMarks(pl.Callback if pl else object):
    """Every ``every_s`` training CPU-seconds: save a (resumable, mid-epoch) checkpoint
    ``cpu_<s>s_it<it>.ckpt`` and call ``on_mark(path)``; the CPU time of ``on_mark`` is not charged
    to the run's budget (``StopAtCPUBudget``)."""

    def __init__(self, every_s: float, dirpath: Path, on_mark) -> None:
        self.every, self.dirpath, self.on_mark = float(every_s), Path(dirpath), on_mark
        self.next = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        from faceedit_bench.callbacks import StopAtCPUBudget

        budget = next(cb for cb in trainer.callbacks if isinstance(cb, StopAtCPUBudget))
        used = budget._now()
        if self.next is None:
            self.next = (math.floor(used / self.every + 1e-9) + 1) * self.every
        if used + 1e-6 < min(self.next, budget.budget):
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"cpu_{int(round(used)):05d}s_it{int(pl_module.iteration):06d}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)
        c0 = time.process_time()
        self.on_mark(path)
        budget._t0 += time.process_time() - c0
        self.next = (math.floor(used / self.every + 1e-9) + 1) * self.every


def evaluate_point(method, dm, clf, meta: dict, intensity: float | None = None) -> dict:
    from faceedit_bench.metrics.evaluator import evaluate

    t0 = time.time()
    rec = evaluate(method, dm, str(clf), cache_dir="data/stats_cache", dataset="synth",
                   intensity=intensity,
                   trainer_kwargs={"accelerator": "cpu", "devices": 1}, resolution=64,
                   progress=False)
    m, per = rec["metrics"], rec["per_attribute"]
    row = {**meta, "n_test": rec["n_images"],
           **{k: m.get(k) for k in ("tarr", "psnr", "ssim", "cf_l1", "cf_l1_in", "cf_l1_out",
                                    "cf_psnr", "fid_clf", "fid_clf_attr_mean", "mre",
                                    "preservation_error", "clf_acc_test", "mask_edit_cf_l1",
                                    "mask_edit_cf_l1_in", "mask_edit_cf_l1_out", "mask_edit_tarr",
                                    "loc_energy_diff", "loc_iou_diff")},
           "rec_l1": m.get("rec_l1"),  # the record's reconstruction L1 (cf_l1's units)
           **{f"{k}_attr": per.get(k) for k in ("tarr", "cf_l1_in", "cf_l1_out", "cf_l1")},
           "eval_wall_s": round(time.time() - t0, 1),
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return row


def identity_row(rows: list[dict]) -> dict | None:
    return next((r for r in reversed(rows) if r["method"] == "identity"), None)


def summary(row: dict, ident: dict | None) -> str:
    t = targets(row, ident)
    f = lambda v, p=3: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
    return (f"{row['method']}/{row.get('tag')} it={row.get('iteration')} cpu_min="
            f"{f((row.get('train_cpu_s') or 0) / 60, 1)} TARR={f(row.get('tarr'))} "
            f"PSNR={f(row.get('psnr'), 2)} rec_l1={f(row.get('rec_l1'), 4)} "
            f"cf_in={f(row.get('cf_l1_in'), 4)} cf_out={f(row.get('cf_l1_out'), 4)} "
            f"fid_clf={f(row.get('fid_clf'), 1)} targets={t}")


def plot(method: str, rows: list[dict]) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r["method"] == method and r.get("train_cpu_s") is not None
           and not r.get("recal_bn") and r.get("intensity") is None]
    if not pts:
        return None
    ident = identity_row(rows)
    panels = [("tarr", "TARR", TARGETS["tarr"]), ("psnr", "rec. PSNR (dB)", TARGETS["psnr"]),
              ("cf_l1_in", "cf L1 inside region", ident and ident.get("cf_l1_in")),
              ("cf_out_ratio", "cf L1 outside / rec L1", TARGETS["cf_out_ratio"]),
              ("cf_in_below", "attrs with cf_l1_in < identity", TARGETS["cf_in_attrs"]),
              ("fid_clf", "FID (classifier features)", ident and ident.get("fid_clf"))]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    tags = list(dict.fromkeys(r.get("tag") for r in pts))
    for ax, (key, title, ref) in zip(axes.flat, panels):
        for tag in tags:
            rs = sorted((r for r in pts if r.get("tag") == tag), key=lambda r: r["train_cpu_s"])
            xs, ys = [], []
            for r in rs:
                if key == "cf_out_ratio":
                    v = r["cf_l1_out"] / r["rec_l1"] if r.get("cf_l1_out") and r.get("rec_l1") else None
                elif key == "cf_in_below":
                    t = targets(r, ident).get("cf_in_below_identity")
                    v = int(t.split("/")[0]) if t else None
                else:  # a mask_to_face method (Gu et al.) has the mask-edit counterparts
                    v = r.get(key) if r.get(key) is not None else r.get(f"mask_edit_{key}")
                if v is not None and math.isfinite(v):
                    xs.append(r["train_cpu_s"] / 60)
                    ys.append(v)
            ax.plot(xs, ys, marker="o", ms=3, label=tag)
        if ref is not None:
            ax.axhline(ref, color="k", ls="--", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("training CPU-minutes (1 thread)")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    mask = any(r.get("tarr") is None and r.get("mask_edit_tarr") is not None for r in pts)
    fig.suptitle(f"{method}, SynthFaces 64 px: time to quality (dashed: target / identity)"
                 + ("; TARR and cf L1 of the mask edits" if mask else ""))
    fig.tight_layout()
    PLOTS.mkdir(parents=True, exist_ok=True)
    path = PLOTS / f"time_to_quality_{method}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def table(rows: list[dict], runs: list[str] | None = None) -> str:
    """Markdown: the last point of each ``method/tag`` run (or of ``runs``), with its targets."""
    ident = identity_row(rows)
    last: dict[str, dict] = {}
    for r in rows:
        if r["method"] != "identity" and r.get("train_cpu_s") is not None and not r.get("recal_bn") \
                and r.get("intensity") is None:
            last[f"{r['method']}/{r.get('tag')}"] = r
    f = lambda v, p=3: "—" if v is None else f"{v:.{p}f}"  # noqa: E731
    mark = lambda ok: "met" if ok else "not met"  # noqa: E731
    lines = ["| run | CPU-min | it | TARR (≥ 0.70) | rec. PSNR dB (≥ 28) | attrs with cf_l1_in < identity "
             "(≥ 10/13) | cf_l1_out / rec L1 (≤ 1.5) |", "|---|---|---|---|---|---|---|"]
    for key, r in last.items():
        if runs and key not in runs:
            continue
        t = targets(r, ident)
        below = t.get("cf_in_below_identity", "—")
        lines.append(f"| {key} | {r['train_cpu_s'] / 60:.0f} | {r['iteration']} | {f(r.get('tarr'))} "
                     f"({mark(t['tarr>=0.70'])}) | {f(r.get('psnr'), 2)} ({mark(t['psnr>=28'])}) | "
                     f"{below} | {t.get('cf_out/rec_l1', '—')} ({mark(t.get('cf_out<=1.5rec'))}) |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", help="the method to train (all but --table)")
    p.add_argument("--tag", default="default", help="run name suffix: <out>/<method>_<tag>")
    p.add_argument("--profile", default="quick")
    p.add_argument("--variant", default=None, help="a variant of the method's config (e.g. sagan multi)")
    p.add_argument("--cpu-minutes", type=float, default=60.0)
    p.add_argument("--eval-every", type=float, default=5.0, help="CPU-minutes between evaluations")
    p.add_argument("--out", default="/work/runs_ttq/ttq")
    p.add_argument("--plot", action="store_true", help="only plot and print targets")
    p.add_argument("--table", nargs="*", default=None, metavar="METHOD/TAG",
                   help="only print the markdown table of each run's last point (or of these runs)")
    p.add_argument("--eval-ckpt", default=None, help="evaluate this checkpoint only")
    p.add_argument("--recal-bn", type=int, default=0, help="with --eval-ckpt: re-estimate BN stats")
    p.add_argument("--intensity", type=float, default=None, help="with --eval-ckpt: test intensity "
                   "(diagnostic; default the method's paper value)")
    p.add_argument("--grid", default=None, help="with --eval-ckpt: also save its edit grid (4 test "
                   "images: input, reconstruction, 13 flips, true counterfactuals below) to this PNG")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    import torch

    torch.set_num_threads(1)
    rows = read_rows()
    if args.table is not None:
        print(table(rows, args.table))
        return 0
    if not args.method:
        p.error("--method is required (except with --table)")
    if args.plot:
        ident = identity_row(rows)
        for r in rows:
            if r["method"] == args.method:
                print(summary(r, ident))
        print(plot(args.method, rows))
        return 0

    from faceedit_bench.config import compose_config
    from faceedit_bench.methods import build_method
    from faceedit_bench.bench import BenchOptions, ensure_classifier
    from faceedit_bench.build import data_dir
    from faceedit_bench.train import build_datamodule, fit, load_method, run_dir, train_settings

    base = ["data.num_workers=0", "profile.progress_bar=false", f"out_dir={args.out}",
            f"+run_name={args.method}_{args.tag}", "profile.sample_every=0", *args.overrides]
    cfg = compose_config(args.method, 64, profile=args.profile, variant=args.variant, overrides=base)
    batch = int(train_settings(cfg)["batch_size"]) if args.method != "identity" else 32
    dm = build_datamodule(cfg, batch)
    dm.prepare_data()
    dm.setup("fit")
    clf = ensure_classifier(dm, cfg, BenchOptions(data_dir=data_dir(cfg), classifier_epochs=4,
                                                  progress=False))
    meta = {"method": args.method, "tag": args.tag, "profile": args.profile, "variant": args.variant,
            "overrides": args.overrides, "threads": torch.get_num_threads(),
            "command": " ".join(["benchmarks/time_to_quality.py", *sys.argv[1:]])}

    def run_point(ckpt_path: Path, extra: dict | None = None) -> dict:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        method = load_method(ckpt_path)
        if args.recal_bn:
            recalibrate_bn(method, dm, args.recal_bn)
        row = evaluate_point(method, dm, clf, {
            **meta, "checkpoint": str(ckpt_path), "iteration": int(ckpt["faceedit_iteration"]),
            "train_cpu_s": cpu_used(ckpt), "recal_bn": args.recal_bn or None,
            "intensity": args.intensity, **(extra or {})}, args.intensity)
        append_row(row)
        print(summary(row, identity_row(read_rows())), flush=True)
        if not args.eval_ckpt:  # an edit grid per point, next to the checkpoint
            save_grid(method, dm, ckpt_path.with_suffix(".png"))
        return row

    if args.method == "identity":
        method = build_method("identity", res=64).eval()
        row = evaluate_point(method, dm, clf, {**meta, "iteration": 0, "train_cpu_s": None})
        append_row(row)
        print(summary(row, row))
        return 0
    if args.eval_ckpt:
        run_point(Path(args.eval_ckpt))
        if args.grid:
            save_grid(load_method(args.eval_ckpt), dm, Path(args.grid), args.recal_bn)
        return 0

    if identity_row(rows) is None:
        print("note: no identity row yet; run --method identity for the cf_l1_in target")
    ckdir = run_dir(cfg) / "checkpoints"
    done = {r["checkpoint"] for r in rows if r.get("checkpoint") and not r.get("recal_bn")}
    marks = sorted(ckdir.glob("cpu_*.ckpt"))
    for path in marks:  # a mark saved but not evaluated (run killed during an evaluation)
        if str(path) not in done:
            run_point(path)
    resume = []
    last = ckdir / "last.ckpt"
    if last.is_file() and marks and torch.load(last, map_location="cpu", weights_only=True)["epoch"] >= 1:
        # last.ckpt of a finished run has epoch 1 and resumes into "max_epochs=1 reached";
        # the mark checkpoints are saved mid-epoch and resume (see the report / train.py bug)
        resume = [f"profile.resume={marks[-1]}"]
    cfg = compose_config(args.method, 64, profile=args.profile, variant=args.variant, overrides=[
        *base, f"profile.max_cpu_minutes={args.cpu_minutes}", *resume])
    fit(cfg, datamodule=dm, callbacks=[CPUMarks(args.eval_every * 60, ckdir, run_point)])
    print(plot(args.method, read_rows()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
