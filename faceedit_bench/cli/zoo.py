"""``faceedit-bench zoo``: list the model zoo, or add a trained run to it.

``faceedit-bench zoo`` prints one line per entry (name, method, resolution, headline metrics).
``faceedit-bench zoo add --ckpt RUN/checkpoints/last.ckpt --name stgan_synth_64`` exports the
inference weights (fp16) to ``zoo/<name>.pt``, evaluates that file with the run's own config
(``RUN/config.yaml``) through ``eval`` and writes the manifest entry with the record.
Use an entry anywhere a checkpoint goes: ``faceedit-bench eval --ckpt zoo:stgan_synth_64``.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench zoo',
    'faceedit-bench zoo add --ckpt outputs/runs/stgan_64_synth_quick/checkpoints/last.ckpt --name stgan_synth_64 --command "..."',
)


def run_list(args) -> int:
    from ..zoo import ZooError, headline, read_manifest

    try:
        entries = read_manifest()
    except ZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not entries:
        print("the zoo is empty (add a run with `faceedit-bench zoo add --ckpt ... --name ...`)")
    for name, e in entries.items():
        h = " ".join(f"{k} {v:.4g}" for k, v in headline(e).items() if v is not None)
        print(f"{name:24s} {e['method'] + ('/' + e['variant'] if e.get('variant') else ''):16s} "
              f"{e['resolution']:>4d}px {e.get('dataset', ''):6s} it {e.get('iterations', '?'):>6} "
              f"cpu-h {e.get('cpu_hours') or 0:.2f}  {h}")
    return 0


def _cpu_hours(ckpt: dict) -> float | None:
    used = next((v.get("used") for k, v in ckpt.get("callbacks", {}).items() if "CPUBudget" in k), None)
    return None if used is None else float(used) / 3600.0


def run_add(args) -> int:
    import torch
    from omegaconf import OmegaConf

    from ..bench import BenchOptions, run_bench
    from ..io_utils import load_tensor_file
    from ..data.synth_export import RENDERER
    from ..results import append_record
    from ..train import load_method
    from ..zoo import ZooError, add_classifier, export_inference, read_manifest, update_manifest, zoo_dir

    ckpt_path = Path(args.ckpt)
    run_cfg = ckpt_path.parent.parent / "config.yaml"
    if not ckpt_path.is_file() or not run_cfg.is_file():
        print(f"error: {ckpt_path} (and its run's config.yaml at {run_cfg}) must exist", file=sys.stderr)
        return 2
    name = args.name
    root = zoo_dir()
    try:
        entries = read_manifest(root)
    except ZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if name in entries and not args.force:
        print(f"error: zoo entry {name!r} exists; pass --force to replace it", file=sys.stderr)
        return 2
    blob = load_tensor_file(ckpt_path)
    method = load_method(ckpt_path)
    out = export_inference(method, root / f"{name}.pt")
    cfg = OmegaConf.load(run_cfg)
    OmegaConf.set_struct(cfg, False)
    with tempfile.TemporaryDirectory() as scratch:  # the record goes to zoo.jsonl only
        opts = BenchOptions(data_dir=Path(args.data_dir), results_dir=Path(scratch),
                            leaderboards_dir=Path(args.out), ckpt=out, train=False,
                            progress=False, render=False)
        outcome = run_bench(cfg, opts)
        rec = outcome.record
    rec["run"] = {"zoo": name, "iterations": int(blob.get("faceedit_iteration", 0)),
                  "cpu_hours": _cpu_hours(blob)}
    from ..parsing.weights import file_sha256

    entry = {
        "file": out.name, "sha256": file_sha256(out), "method": rec["method"],
        "variant": rec.get("variant"), "resolution": rec["resolution"], "dataset": rec["dataset"],
        "profile": rec.get("profile"), "iterations": rec["run"]["iterations"],
        "cpu_hours": rec["run"]["cpu_hours"], "command": args.command,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "renderer": RENDERER if rec["dataset"] == "synth" else None,
        "data_hash": rec["protocol"]["data_hash"],
        "classifier": add_classifier(Path(outcome.files["classifier"]), root),
        "record": rec}
    try:
        update_manifest(name, entry, root, force=args.force)
    except ZooError as e:  # another writer added the name meanwhile
        print(f"error: {e}", file=sys.stderr)
        return 2
    append_record(Path(args.results) / "zoo.jsonl", rec)
    print(f"zoo entry {name!r}: {out} ({out.stat().st_size / 1e6:.1f} MB), record in "
          f"{Path(args.results) / 'zoo.jsonl'}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("zoo", help="list the model zoo / add a trained run to it",
                              description=__doc__)
    p.set_defaults(func=run_list)
    sub = p.add_subparsers(dest="zoo_command", metavar="<zoo command>")
    a = sub.add_parser("add", help="export a run's inference weights, evaluate them, add the entry")
    a.add_argument("--ckpt", required=True, help="a training checkpoint (RUN/checkpoints/last.ckpt)")
    a.add_argument("--name", required=True, help="entry name, e.g. stgan_synth_64")
    a.add_argument("--command", default="", help="the training command, recorded in the manifest")
    a.add_argument("--data-dir", default="data")
    a.add_argument("--results", default="results", help="the record also goes to <results>/zoo.jsonl")
    a.add_argument("--out", default="leaderboards")
    a.add_argument("--force", action="store_true", help="replace an existing entry")
    a.set_defaults(func=run_add)
