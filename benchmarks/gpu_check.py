"""GPU check, prepared for a session that is lent a GPU (issue 19): one run, < 8 minutes.

    python benchmarks/gpu_check.py [--dry] [--res 128 256] [--methods a,b] [--out DIR]

For every trainable registered method at each resolution: training iterations/s under the
Lightning Trainer in fp32, bf16-mixed, and bf16-mixed + channels_last + torch.compile; the
one-pass evaluator's images/s; peak GPU memory of each. Writes ``gpu_check.json`` and
``gpu_check.md`` (a table in benchmarks/RESULTS.md form) into ``--out``. ``--dry`` runs the
same code path on the CPU at 32 px with the smoke widths (compile with the ``eager`` backend),
in well under a minute: the test suite runs it, so the script is known to work before a GPU is
lent. Training data are random tensors (speed does not depend on content); the evaluator runs on
a small SynthFaces store.
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
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402


class RandomFaces(Dataset):
    """Random batch dicts (image in [-1, 1], attrs, parts) of DESIGN §3."""

    def __init__(self, n: int, res: int, n_attrs: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, res, res, generator=g) * 2 - 1
        self.attrs = (torch.rand(n, n_attrs, generator=g) > 0.5).float()
        self.parts = torch.randint(0, 19, (n, res, res), generator=g, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "attrs": self.attrs[i], "parts": self.parts[i], "index": i}


def _peak() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def time_training(method_name: str, res: int, setting: str, dry: bool, iters: int, warmup: int) -> dict:
    """Iterations/s of ``Trainer.fit`` after ``warmup`` iterations, and peak memory."""
    import lightning.pytorch as pl

    from faceedit_bench.build import build_method, require_train_settings
    from faceedit_bench.callbacks import StopAtIteration
    from faceedit_bench.config import compose_config
    from faceedit_bench.train_data import TrainStream

    overrides = [f"profile.max_iters={warmup + iters}", "profile.progress_bar=false"]
    if setting == "bf16+cl+compile":
        overrides += ["profile.channels_last=true", f"profile.compile={'eager' if dry else 'true'}"]
    cfg = compose_config(method_name, res, profile="smoke" if dry else "quick", overrides=overrides)
    method = build_method(cfg)
    batch = int(require_train_settings(cfg)["batch_size"])
    stream = TrainStream(RandomFaces(64, res, method.n_attrs), batch, method.chunks_per_iter, warmup + iters)

    class Clock(pl.Callback):
        t0 = None

        def on_train_batch_end(self, trainer, pl_module, *a) -> None:
            if pl_module.iteration == warmup:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.t0 = time.perf_counter()

    clock = Clock()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = pl.Trainer(accelerator="gpu" if torch.cuda.is_available() and not dry else "cpu", devices=1,
                         precision="32-true" if setting == "fp32" else "bf16-mixed", max_epochs=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, use_distributed_sampler=False,
                         callbacks=[StopAtIteration(warmup + iters), clock])
    trainer.fit(method, datamodule=stream)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - clock.t0
    return {"it_per_s": iters / seconds, "batch": batch, "peak_mib": _peak()}


def time_evaluator(method_name: str, res: int, dry: bool, data_dir: Path) -> dict:
    """Images/s of the one-pass evaluator (untrained method, SynthFaces test split)."""
    from faceedit_bench.bench import BenchOptions, ensure_classifier, make_datamodule
    from faceedit_bench.build import build_method
    from faceedit_bench.config import compose_config
    from faceedit_bench.metrics.evaluator import evaluate

    cfg = compose_config(method_name, res, profile="smoke", overrides=["data.num_workers=0"])
    opts = BenchOptions(data_dir=data_dir, progress=False)
    dm = make_datamodule(cfg, opts)
    dm.prepare_data()
    dm.setup("fit")
    clf = ensure_classifier(dm, cfg, opts)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    rec = evaluate(build_method(cfg), dm, str(clf), cache_dir=None, progress=False,
                   trainer_kwargs={"accelerator": "gpu" if torch.cuda.is_available() and not dry else "cpu"})
    return {"images_per_s": rec["n_images"] / (time.perf_counter() - t0), "n": rec["n_images"],
            "peak_mib": _peak()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry", action="store_true", help="CPU, 32 px, smoke widths: the path only")
    p.add_argument("--res", type=int, nargs="+", default=None)
    p.add_argument("--methods", default=None, help="comma-separated; default every trainable method")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("outputs/gpu_check"))
    args = p.parse_args()

    from faceedit_bench.config import method_resolutions
    from faceedit_bench.methods import available, get_method_class
    from faceedit_bench.methods.adversarial import AdversarialEditor

    res_list = args.res or ([32] if args.dry else [128, 256])
    iters, warmup = (args.iters or (1 if args.dry else 10)), (1 if args.dry else 3)
    names = args.methods.split(",") if args.methods else [
        m for m in available() if issubclass(get_method_class(m), AdversarialEditor)]
    settings = ("fp32", "bf16-mixed", "bf16+cl+compile")
    rows, t_start = [], time.time()
    for name in names:
        for res in res_list:
            if res not in method_resolutions(name):
                continue
            row = {"method": name, "res": res}
            for s in settings:
                try:
                    row[s] = time_training(name, res, s, args.dry, iters, warmup)
                except Exception as e:  # noqa: BLE001 - one failed setting is a finding, not a crash
                    row[s] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            if name == names[0] or not args.dry:
                row["evaluator"] = time_evaluator("identity" if args.dry else name, res, args.dry,
                                                  args.out / "data")
            rows.append(row)
            print(json.dumps(row), flush=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.dry else "cpu (dry)"
    report = {"device": device, "torch": torch.__version__, "dry": args.dry, "rows": rows,
              "seconds": time.time() - t_start}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    lines = [f"GPU check on {device} (torch {torch.__version__}); `benchmarks/gpu_check.py"
             f"{' --dry' if args.dry else ''}`; {report['seconds']:.0f} s\n",
             "| method | res | " + " | ".join(f"{s} it/s (MiB)" for s in settings) + " | eval img/s |",
             "|---|---|" + "---|" * (len(settings) + 1)]
    for r in rows:
        cells = []
        for s in settings:
            v = r.get(s, {})
            cells.append(v.get("error", "—")[:40] if "it_per_s" not in v else
                         f"{v['it_per_s']:.2f}" + (f" ({v['peak_mib']:.0f})" if v.get("peak_mib") else ""))
        ev = r.get("evaluator", {}).get("images_per_s")
        lines.append(f"| {r['method']} | {r['res']} | " + " | ".join(cells) + f" | {ev:.1f} |" if ev
                     else f"| {r['method']} | {r['res']} | " + " | ".join(cells) + " | — |")
    (args.out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
