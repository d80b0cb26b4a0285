"""``faceedit-bench zoo``: list the model zoo, or add a trained run to it.

``faceedit-bench zoo`` prints one line per entry (name, method, resolution, headline metrics).
``faceedit-bench zoo add --ckpt RUN/checkpoints/last.ckpt --name stgan_synth_64`` exports the
inference weights (fp16) to ``zoo/<name>.pt``, evaluates that file with the run's own config
(``RUN/config.yaml``) through ``eval`` and writes the manifest entry with the record.
``faceedit-bench zoo rescore [NAME ...]`` re-evaluates entries under today's protocol.
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
    'faceedit-bench zoo rescore stgan_synth_64',
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
    if getattr(args, "markdown", False):
        print(markdown_table(entries))
        return 0
    for name, e in entries.items():
        h = " ".join(f"{k} {v:.4g}" for k, v in headline(e).items() if v is not None)
        print(f"{name:24s} {e['method'] + ('/' + e['variant'] if e.get('variant') else ''):16s} "
              f"{e['resolution']:>4d}px {e.get('dataset', ''):6s} it {e.get('iterations', '?'):>6} "
              f"cpu-h {e.get('cpu_hours') or 0:.2f}  {h}")
    return 0


def markdown_table(entries: dict) -> str:
    """The README's zoo table, from the manifest's records (a dash: the track has no such metric)."""
    from ..zoo import headline, zoo_dir

    f = lambda v, spec: "—" if v is None else format(v, spec)  # noqa: E731
    lines = ["| name | method | track | trained | TARR | PSNR dB | cf_l1_in | cf_l1_out | MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, e in entries.items():
        h, rec = headline(e), e.get("record") or {}
        label = (e.get("config") or {}).get("method", {}).get("label") or e["method"]
        cpu = f"{(e.get('cpu_hours') or 0) * 60:.0f} CPU-min"
        path = zoo_dir() / e["file"]
        size = path.stat().st_size if path.is_file() else None
        lines.append(f"| `{name}` | {label} | {rec.get('track', '—')} | {e.get('iterations', 0):,} it, {cpu} | "
                     f"{f(h['tarr'], '.3f')} | {f(h['psnr'], '.2f')} | {f(h['cf_l1_in'], '.4f')} | "
                     f"{f(h['cf_l1_out'], '.4f')} | {f(size and size / 1e6, '.1f')} |")
    return "\n".join(lines)


def _score(cfg, weights: Path, args):
    """Evaluate ``weights`` with run config ``cfg`` through the bench path (no training, no
    rendering; the record is returned, not written to a results folder)."""
    from ..bench import BenchOptions, run_bench

    with tempfile.TemporaryDirectory() as scratch:
        opts = BenchOptions(data_dir=Path(args.data_dir), results_dir=Path(scratch),
                            leaderboards_dir=Path(args.out), ckpt=weights, train=False,
                            progress=False, render=False, wandb_mode="disabled")
        return run_bench(cfg, opts)


def _drop_records(results: str, name: str) -> int:
    """Remove entry ``name``'s records from ``<results>/zoo.jsonl``; returns how many."""
    from ..results import remove_records

    return remove_records(Path(results) / "zoo.jsonl", lambda r: (r.get("run") or {}).get("zoo") == name)


def _cpu_hours(ckpt: dict) -> float | None:
    used = next((v.get("used") for k, v in ckpt.get("callbacks", {}).items() if "CPUBudget" in k), None)
    return None if used is None else float(used) / 3600.0


def run_add(args) -> int:
    import torch
    from omegaconf import OmegaConf

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
    trained_on = _store_hash(cfg, args)
    _todays_data(cfg)  # scored on the data a fresh `eval --ckpt zoo:NAME` opens
    outcome = _score(cfg, out, args)  # the record goes to zoo.jsonl only
    rec = outcome.record
    cpu_hours = _cpu_hours(blob)
    if cpu_hours is None and args.cpu_hours is not None:  # a run without a CPU budget (none recorded)
        cpu_hours = float(args.cpu_hours)
    rec["run"] = {"zoo": name, "iterations": int(blob.get("faceedit_iteration", 0)),
                  "cpu_hours": cpu_hours}
    from ..parsing.weights import file_sha256

    entry = {
        "file": out.name, "sha256": file_sha256(out), "method": rec["method"],
        "variant": rec.get("variant"), "resolution": rec["resolution"], "dataset": rec["dataset"],
        "profile": rec.get("profile"), "iterations": rec["run"]["iterations"],
        "cpu_hours": rec["run"]["cpu_hours"], "command": args.command,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "renderer": RENDERER if rec["dataset"] == "synth" else None,
        "data_hash": rec["protocol"]["data_hash"], "train_data_hash": trained_on,
        "classifier": add_classifier(Path(outcome.files["classifier"]), root),
        "record": rec}
    try:
        update_manifest(name, entry, root, force=args.force)
    except ZooError as e:  # another writer added the name meanwhile
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.force:  # the replaced entry's record goes too
        _drop_records(args.results, name)
    append_record(Path(args.results) / "zoo.jsonl", rec)
    print(f"zoo entry {name!r}: {out} ({out.stat().st_size / 1e6:.1f} MB), record in "
          f"{Path(args.results) / 'zoo.jsonl'}")
    return 0


def _store_hash(cfg, args) -> str:
    """The store identity of ``cfg``'s data (the training run's; built when missing)."""
    from ..bench import BenchOptions, ensure_data, make_datamodule

    return ensure_data(make_datamodule(cfg.copy(), BenchOptions(data_dir=Path(args.data_dir))))


def _todays_data(cfg) -> None:
    """A SynthFaces entry on the default export is scored on today's default size
    (``configs/data/synth.yaml`` ``synth_n``): the data a fresh ``eval --ckpt zoo:NAME`` opens.
    Any other data config (a real or custom folder) is the entry's own and is kept."""
    from ..config import compose_config

    if cfg.data.name != "synth" or cfg.data.get("root"):
        return
    cfg.data.synth_n = compose_config(method=str(cfg.method.name), res=int(cfg.res), data="synth").data.synth_n


def run_rescore(args) -> int:
    """Re-evaluate entries' files with their recorded configs on today's data and protocol (e.g.
    after a change of the data hash's definition or of the default SynthFaces size) and replace
    their records in the manifest and in ``<results>/zoo.jsonl``; training facts (command,
    iterations, CPU-hours, ``train_data_hash``: the store it was trained on) are kept."""
    from omegaconf import OmegaConf

    from ..results import append_record
    from ..zoo import ZooError, add_classifier, read_manifest, resolve, update_manifest, zoo_dir

    root = zoo_dir()
    try:
        entries = read_manifest(root)
        names = args.names or list(entries)
        unknown = [n for n in names if n not in entries]
        if unknown:
            raise ZooError(f"{root / 'manifest.json'}: no entries {unknown}; entries: {list(entries)}")
        for name in names:
            e = entries[name]
            cfg = OmegaConf.create(e["config"])
            OmegaConf.set_struct(cfg, False)
            _todays_data(cfg)
            outcome = _score(cfg, resolve(f"zoo:{name}", root), args)
            rec = {**outcome.record, "run": e["record"].get("run")}
            old = e["record"]["protocol"].get("data_hash")
            update_manifest(name, {**e, "data_hash": rec["protocol"]["data_hash"], "record": rec,
                                   "train_data_hash": e.get("train_data_hash") or e["data_hash"],
                                   "classifier": add_classifier(Path(outcome.files["classifier"]), root)},
                            root, force=True)
            jsonl = Path(args.results) / "zoo.jsonl"
            _drop_records(args.results, name)
            append_record(jsonl, rec)
            print(f"zoo entry {name!r} rescored: data hash {old} -> {rec['protocol']['data_hash']}, "
                  f"record replaced in {jsonl}", flush=True)
    except ZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def run_remove(args) -> int:
    """Drop an entry: its manifest entry, its weights file and its records in ``zoo.jsonl`` (a
    classifier file goes when no entry uses it any more)."""
    from ..zoo import ZooError, manifest_lock, read_manifest, write_manifest, zoo_dir

    root = zoo_dir()
    try:
        with manifest_lock(root):
            entries = read_manifest(root)
            if args.name not in entries:
                raise ZooError(f"{root / 'manifest.json'}: no entry {args.name!r}; entries: {list(entries)}")
            e = entries.pop(args.name)
            write_manifest(entries, root)
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    (root / e["file"]).unlink(missing_ok=True)
    used = {(x.get("classifier") or {}).get("file") for x in entries.values()}
    if (e.get("classifier") or {}).get("file") not in used:
        (root / e["classifier"]["file"]).unlink(missing_ok=True)
    n = _drop_records(args.results, args.name)
    print(f"zoo entry {args.name!r} removed ({e['file']}, {n} record(s) from {Path(args.results) / 'zoo.jsonl'})")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("zoo", help="list the model zoo / add a trained run to it",
                              description=__doc__)
    p.add_argument("--markdown", action="store_true", help="print the zoo as a markdown table (README)")
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
    a.add_argument("--cpu-hours", type=float, default=None,
                   help="training CPU-hours, for a checkpoint trained without a CPU budget (which records them)")
    a.set_defaults(func=run_add)
    r = sub.add_parser("rescore", help="re-evaluate entries under today's protocol, replacing their records")
    r.add_argument("names", nargs="*", help="entry names (default: all)")
    r.add_argument("--data-dir", default="data")
    r.add_argument("--results", default="results", help="records are replaced in <results>/zoo.jsonl")
    r.add_argument("--out", default="leaderboards")
    r.set_defaults(func=run_rescore)
    d = sub.add_parser("remove", help="drop an entry (weights, manifest entry, records)")
    d.add_argument("name")
    d.add_argument("--results", default="results", help="its records are dropped from <results>/zoo.jsonl")
    d.set_defaults(func=run_remove)
