"""``faceedit-bench bench``: data -> classifier -> train (or resume, or a given checkpoint) ->
one-pass evaluation -> result record -> leaderboards -> W&B (DESIGN §2 data flow, §7-§9).

Every step reuses what exists: the SynthFaces export and the decoded store (``data_dir``), the
attribute classifier (``data_dir/classifiers/<data_hash>_<res>.pt``), the run's last checkpoint
(``outputs/runs/<method>_<res>_<data>_<profile>/checkpoints/last.ckpt``, resumed or found complete).
Multi-GPU / multi-node: the trainer preset (``--devices``, ``--nodes``) drives Lightning DDP;
under torchrun or SLURM every process runs this file, only rank 0 writes records and tables.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

#: the Quickstart method (``make bench``): see benchmarks/RESULTS.md for its wall time
QUICKSTART_METHOD = "stgan"
#: the profile of ``make bench`` with no arguments (configs/profile/quickstart.yaml)
QUICKSTART_PROFILE = "quickstart"
#: classifier training epochs by profile (the official recipe is 25, reference §2.4)
CLASSIFIER_EPOCHS = {"quickstart": 2, "quick": 4, "paper": 25}

REAL_DATA_LAYOUT = {
    "celeba": (
        "CelebA (aligned) as distributed, in {root}/:\n"
        "  {root}/img_align_celeba/000001.jpg ... 202599.jpg   (178x218 aligned JPEGs)\n"
        "  {root}/list_attr_celeba.txt                         (count line, 40 names, rows of +-1)\n"
        "  {root}/list_eval_partition.txt                      (optional for the default 'attgan' split)\n"
        "Download: https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped Images, Anno/, Eval/).\n"
        "Another place: pass data.root=/path/to/celeba."),
    "celebahq": (
        "CelebAMask-HQ as distributed, in {root}/:\n"
        "  {root}/CelebA-HQ-img/0.jpg ... 29999.jpg\n"
        "  {root}/CelebAMask-HQ-attribute-anno.txt\n"
        "  {root}/CelebA-HQ-to-CelebA-mapping.txt\n"
        "  {root}/CelebAMask-HQ-mask-anno/<k//2000>/<k:05d>_<part>.png\n"
        "Download: https://github.com/switchablenorms/CelebAMask-HQ .\n"
        "Another place: pass data.root=/path/to/CelebAMask-HQ."),
}
REAL_DATA_FILES = {
    "celeba": ("img_align_celeba", "list_attr_celeba.txt"),
    "celebahq": ("CelebA-HQ-img", "CelebAMask-HQ-attribute-anno.txt", "CelebA-HQ-to-CelebA-mapping.txt"),
}


class BenchError(RuntimeError):
    """A condition the user fixes (missing data, classifier, checkpoint); printed without a trace."""


@dataclass
class BenchOptions:
    """Where things go and how much to do; the CLI fills it from its flags."""

    data_dir: Path = Path("data")
    results_dir: Path = Path("results")
    leaderboards_dir: Path = Path("leaderboards")
    ckpt: Path | None = None
    train: bool = True
    train_classifier: bool | None = None    # None: automatically on SynthFaces only
    classifier_epochs: int | None = None
    classifier_path: Path | None = None
    synth_n: int | None = None
    wandb_mode: str | None = None
    wandb_project: str | None = None
    inception_weights: str | None = None
    swav_weights: str | None = None
    progress: bool = True
    render: bool = True
    prepare_only: bool = False
    force: bool = False                      # re-evaluate (and replace) an already recorded evaluation
    grid_rows: int = 4
    compare: bool = False                    # also evaluate identity + the zoo model (quickstart.py)


@dataclass
class BenchOutcome:
    record: dict | None = None
    reused: bool = False
    files: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: ``(label, record, grid, training)`` rows of the verdict (quickstart.py), this run first
    verdict: list = field(default_factory=list)


def is_rank_zero() -> bool:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


# ---------------------------------------------------------------- data
def check_real_data(dataset: str, root: str | Path) -> None:
    """Raise :class:`BenchError` saying where to put CelebA / CelebA-HQ and in what layout."""
    if dataset not in REAL_DATA_FILES:
        return
    root = Path(root)
    missing = [name for name in REAL_DATA_FILES[dataset] if not (root / name).exists()]
    if missing:
        raise BenchError(
            f"{dataset} data not found: {', '.join(str(root / m) for m in missing)} missing.\n"
            + REAL_DATA_LAYOUT[dataset].format(root=root)
            + "\nWithout real data, run the built-in SynthFaces: `make bench` (DATA=synth).")


def make_datamodule(cfg: DictConfig, opts: BenchOptions, batch_size: int | None = None):
    """The run's datamodule through the one config-to-objects path (:mod:`.build`), with the
    bench's ``--data-dir`` and ``--n`` applied to the config."""
    from omegaconf import OmegaConf

    from .build import build_datamodule

    OmegaConf.update(cfg, "data_dir", str(opts.data_dir), force_add=True)
    if opts.synth_n:
        OmegaConf.update(cfg, "profile.synth_n", int(opts.synth_n), force_add=True)
    return build_datamodule(cfg, batch_size)


def ensure_data(dm) -> str:
    """Export SynthFaces / build the store when missing (progress bars are the builders'); hash."""
    dm.prepare_data()
    dm.setup("fit")
    return dm.data_hash


# ---------------------------------------------------------------- classifier
def classifier_path(dm, opts: BenchOptions) -> Path:
    from .metrics.classifier import default_classifier_path

    if opts.classifier_path:
        return Path(opts.classifier_path)
    return default_classifier_path(dm.data_hash, dm.res, root=opts.data_dir / "classifiers",
                                   attrs=dm.attrs)


def _classifier_from_zoo(path: Path) -> bool:
    """Copy the zoo's classifier of this store (the one the zoo's records were evaluated with)
    to ``path``: every SynthFaces record, zoo or not, is then scored by the same classifier."""
    from . import zoo
    from .io_utils import atomic_copy

    src = zoo.classifier_for(path.name)
    if src is None:
        return False
    atomic_copy(src, path)
    print(f"[bench] attribute classifier from the zoo: {src} -> {path}", flush=True)
    return True


def ensure_classifier(dm, cfg: DictConfig, opts: BenchOptions) -> Path:
    """The attribute classifier of this data; trained when missing on SynthFaces (or on request)."""
    from filelock import FileLock

    from .metrics.classifier import train_classifier

    path = classifier_path(dm, opts)
    if path.is_file():
        return path
    auto = cfg.data.name == "synth"
    if auto and not opts.classifier_path and _classifier_from_zoo(path):
        return path
    if not (opts.train_classifier if opts.train_classifier is not None else auto):
        raise BenchError(
            f"no attribute classifier for this {cfg.data.name} store at {path}.\n"
            f"Either put a faceedit-bench classifier file there (saved by "
            f"faceedit_bench.metrics.classifier.save_classifier for data hash {dm.data_hash}, "
            f"{dm.res} px, predicting {', '.join(dm.attrs)}), or add --train-classifier to train it "
            f"on the store's train split (official recipe: 25 epochs; hours on one GPU for CelebA).")
    epochs = int(opts.classifier_epochs or cfg.profile.get("classifier_epochs")
                 or CLASSIFIER_EPOCHS.get(str(cfg.profile.name), 25))
    max_steps = int(cfg.profile.get("classifier_max_steps") or -1)
    width = int(cfg.profile.get("classifier_width") or 16)  # LynnHo's 16; narrower for small zoo files
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not path.is_file():
            print(f"[bench] training the attribute classifier ({epochs} epochs) -> {path}", flush=True)
            train_classifier(dm, path, epochs=epochs, max_steps=max_steps, width=width, progress=opts.progress,
                             trainer_kwargs={"accelerator": _accelerator(cfg), "devices": 1})
    return path


def ensure_parser(cfg: DictConfig, dm, opts: BenchOptions) -> Path | None:
    """A face parser for methods that declare the frozen ``parser`` helper (SeCGAN, Gu et al.).

    Configured (``method.model.helpers.parser``) or in ``$FACEEDIT_PARSER_WEIGHTS``: used as is.
    Else, on SynthFaces only, the suite's own recipe trains one (README: Face parser; reduced
    BiSeNet ``base=16``, ``profile.parser_steps`` steps, default 600) once per store into
    ``<data_dir>/weights/parser_synth_<data_hash>_r<res>_s<steps>.pt`` and the config is pointed
    at it; the console says so. On real data a missing parser stays the method's one-line error.
    """
    import os

    from omegaconf import OmegaConf

    from .build import build_method

    method = build_method(cfg)
    if "parser" not in method.frozen_helpers():
        return None
    spec = method.frozen_helpers()["parser"]
    given = (cfg.method.get("model") or {}).get("helpers", {}) or {}
    if given.get("parser") or os.environ.get(spec.env) or cfg.data.name != "synth":
        return None
    steps = int(cfg.profile.get("parser_steps") or 600)
    path = opts.data_dir / "weights" / f"parser_synth_{dm.data_hash}_r{dm.res}_s{steps}.pt"
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not path.is_file():
            from .parsing.train import synth_arrays, train_parser

            print(f"[bench] {cfg.method.name} needs a face parser and none is configured: training "
                  f"the suite's SynthFaces parser ({steps} steps, base 16) -> {path}", flush=True)
            images, labels = synth_arrays(n=min(2000, max(64, 8 * steps)), res=dm.res, seed=0)
            train_parser(images, labels, path, base=16, input_size=max(dm.res, 64), steps=steps,
                         batch_size=8, lr=3e-3, warmup_steps=min(100, steps), schedule="cosine",
                         crop_mode="uniform", aux_lowres=True, jitter=0.2, progress=opts.progress,
                         accelerator=_accelerator(cfg), devices=1,
                         extra={"data": "synth", "res": dm.res, "made_by": "bench"})
        else:
            print(f"[bench] parser: reused {path}", flush=True)
    OmegaConf.update(cfg, "method.model.helpers.parser", str(path), force_add=True)
    return path


def _accelerator(cfg: DictConfig) -> str:
    return str(cfg.trainer.get("accelerator", "cpu"))


# ---------------------------------------------------------------- method
def is_trainable(method) -> bool:
    return any(p.requires_grad for p in method.parameters())


def obtain_method(cfg: DictConfig, dm, opts: BenchOptions, logger) -> tuple[Any, Path | None]:
    """(method in eval mode, its checkpoint or None for parameter-free methods).

    ``opts.ckpt``: evaluate that checkpoint. Else train, or resume the run's ``last.ckpt``
    (``profile.resume: auto``); with ``opts.train`` False, the run's ``last.ckpt`` must exist.
    """
    from .build import build_method, check_requirements
    from .train import fit, load_method, run_dir

    if opts.ckpt is not None:
        return load_method(opts.ckpt), Path(opts.ckpt)
    method = build_method(cfg)
    check_requirements(method, dm)
    if not is_trainable(method):
        return method.eval(), None
    last = run_dir(cfg) / "checkpoints" / "last.ckpt"
    if not opts.train:
        if not last.is_file():
            raise BenchError(f"no checkpoint at {last}; train first (`make bench`) or pass --ckpt PATH")
        return load_method(last), last
    ckpt = fit(cfg, datamodule=dm, logger=logger if logger is not None else None)
    return load_method(ckpt), ckpt


# ---------------------------------------------------------------- evaluation
def evaluate_method(method, dm, clf_path: Path, cfg: DictConfig, opts: BenchOptions) -> dict:
    """One-pass evaluator on the test split; the record also names profile and run."""
    from .build import eval_intensity
    from .metrics.evaluator import evaluate
    from .results import validate_record

    t = cfg.trainer
    trainer_kwargs = {"accelerator": t.get("accelerator", "cpu"), "devices": t.get("devices", 1),
                      "num_nodes": t.get("num_nodes", 1), "precision": t.get("precision", "32-true")}
    if int(t.get("devices", 1)) * int(t.get("num_nodes", 1)) > 1:
        trainer_kwargs["strategy"] = "ddp"
    rec = evaluate(method, dm, str(clf_path), inception_weights=opts.inception_weights,
                   parser=evaluation_parser(cfg),
                   swav_weights=opts.swav_weights, cache_dir=opts.data_dir / "stats_cache",
                   trainer_kwargs=trainer_kwargs, dataset=str(cfg.data.name),
                   intensity=eval_intensity(cfg), batch_size=cfg.profile.get("eval_batch_size"),
                   track=(cfg.get("eval") or {}).get("track"),
                   resolution=int(cfg.res), seed=int(cfg.get("seed", 0)), progress=opts.progress)
    rec["profile"] = str(cfg.profile.name)
    if getattr(method, "variant", None):
        rec["variant"] = str(method.variant)
    return validate_record(rec)


def evaluation_parser(cfg: DictConfig):
    """``images -> 19-class log-probabilities`` of the configured parser (mask_to_face's parsing
    accuracy), or None when no parser file is configured."""
    import os

    from .parsing.weights import ENV_VAR

    path = ((cfg.method.get("model") or {}).get("helpers") or {}).get("parser") or os.environ.get(ENV_VAR)
    if not path or not Path(str(path)).is_file():
        return None
    import torch

    from .methods.helpers import _load_parser, parse_probs

    net = _load_parser(str(path))
    return lambda images: torch.log(parse_probs(net.to(images.device), images).clamp_min(1e-8))


def edit_grid_arrays(method, dm, n_rows: int = 4):
    """(R, C, H, W, 3) uint8 of the method's :meth:`grid_columns` for the first test rows, their
    label maps (R, H, W) and the column names. On SynthFaces each ``flip <attr>`` column is
    followed by ``true <attr>``, the rendered counterfactual (DESIGN §6)."""
    import numpy as np
    import torch

    ds = dm.dataset("test")
    n = min(n_rows, len(ds))
    batch = ds.__getitems__(list(range(n)))
    method = method.to("cpu").eval()
    with torch.no_grad():
        cols, names = method.grid_columns(batch)
    if "cf_image" in batch:
        order = list(dm.attrs)
        out_c, out_n = [], []
        for col, name in zip(cols, names):
            out_c.append(col)
            out_n.append(name)
            attr = name[5:] if name.startswith("flip ") else None
            if attr in order:
                out_c.append(batch["cf_image"][:, order.index(attr)])
                out_n.append(f"true {attr}")
        cols, names = out_c, out_n
    imgs = torch.stack(cols, 1).clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return imgs.permute(0, 1, 3, 4, 2).numpy(), batch["parts"].numpy().astype(np.uint8), names


def save_grid(method, dm, path: Path, title: str, n_rows: int = 4):
    from .leaderboard.plots import edit_grid

    imgs, labels, cols = edit_grid_arrays(method, dm, n_rows)
    edit_grid(imgs, path, row_labels=[f"test {i}" for i in range(imgs.shape[0])], col_labels=cols,
              title=title)
    return imgs, labels, cols


# ---------------------------------------------------------------- records and tables
def evaluation_key(cfg: DictConfig, dm, clf: Path, ckpt, opts: BenchOptions) -> str:
    """What makes two evaluations the same: the checkpoint's bytes (or the untrained method),
    the data, the classifier, the method's config and the evaluation settings."""
    from .build import plain
    from .parsing.weights import file_sha256
    from .protocol import stable_hash
    from .zoo import is_zoo_ref, resolve

    if ckpt is not None:
        path = resolve(str(ckpt)) if is_zoo_ref(ckpt) else Path(ckpt)
        weights = file_sha256(path)
    else:
        weights = stable_hash(plain(cfg.method))
    return stable_hash({"weights": weights, "data": dm.data_hash, "classifier": file_sha256(clf),
                        "eval": plain(cfg.get("eval")), "profile": str(cfg.profile.name),
                        "res": int(cfg.res), "trainer": plain(cfg.trainer),
                        "inception": opts.inception_weights, "swav": opts.swav_weights})


def find_evaluation(results: Path, key: str) -> tuple[int, dict] | None:
    """(line, record) of the record evaluated under ``key`` in ``results``, if any."""
    from .results import iter_records

    if not results.is_file():
        return None
    for line, rec in enumerate(iter_records(results), start=1):
        if (rec.get("run") or {}).get("eval_key") == key:
            return line, rec
    return None


def record_and_render(rec: dict, opts: BenchOptions) -> dict[str, Path]:
    from .results import append_record, remove_records

    results = opts.results_dir / "results.jsonl"
    key = (rec.get("run") or {}).get("eval_key")
    if opts.force and key:  # --force replaces, never duplicates
        remove_records(results, lambda r: (r.get("run") or {}).get("eval_key") == key)
    append_record(results, rec)
    return {"result record": results, **render_leaderboards(rec, opts)}


def render_leaderboards(rec: dict, opts: BenchOptions) -> dict[str, Path]:
    """Regenerate every leaderboard from ``results.jsonl`` (when ``opts.render``)."""
    if not opts.render:
        return {}
    from .leaderboard import render_all
    from .leaderboard.render_tables import unified_name

    papers = opts.leaderboards_dir / "papers"
    if not papers.is_dir():  # a fresh output folder: the papers' numbers of this checkout
        papers = Path(__file__).resolve().parents[1] / "leaderboards" / "papers"
    render_all(opts.results_dir, opts.leaderboards_dir, papers)
    name = unified_name(rec["track"], rec["dataset"], rec["resolution"], rec["protocol"].get("attrs"))
    return {"leaderboard": opts.leaderboards_dir / f"{name}.md",
            "leaderboard index": opts.leaderboards_dir / "README.md"}


def grid_path(rec: dict, opts: BenchOptions) -> Path:
    """``<leaderboards>/grids/<label>_<dataset>_<res>_<profile>.png`` of a record."""
    from .leaderboard.load import method_label

    label = method_label(rec)
    return opts.leaderboards_dir / "grids" / (
        f"{label.replace('/', '-')}_{rec['dataset']}_{rec['resolution']}_{rec.get('profile', '')}.png")


def write_edit_grid(method, dm, rec: dict, opts: BenchOptions):
    """The record's edit grid (``save_grid``); returns (path, images, row labels, columns)."""
    from .leaderboard.load import method_label

    grid = grid_path(rec, opts)
    imgs, labels, cols = save_grid(method, dm, grid, f"{method_label(rec)} · {rec['dataset']} "
                                   f"{rec['resolution']}px · {rec.get('profile', '')}", opts.grid_rows)
    return grid, imgs, labels, cols


def print_summary(rec: dict, files: dict[str, Path], seconds: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    from .leaderboard.directions import direction, order_metrics

    console = Console(stderr=False)
    t = Table(title=f"{rec['method']} · {rec['dataset']} {rec['resolution']}px · "
                    f"{rec.get('profile', '')} · n={rec['n_images']}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("better")
    reasons: list[str] = []  # each skipped metric's reason, numbered once (FID / IS / ssFID share one)
    for m in order_metrics(rec["metrics"]):
        v = rec["metrics"][m]
        d = direction(m)
        cell = "—" if v is None else f"{v:.4g}"
        why = (rec.get("protocol") or {}).get(f"{m}_status") if v is None else None
        if why:
            reasons += [why] if why not in reasons else []
            cell = f"— [{reasons.index(why) + 1}]"
        t.add_row(m, cell, "" if d is None else ("higher" if d else "lower"))
    console.print(t)
    for i, why in enumerate(reasons, 1):
        names = [m for m in rec["metrics"] if (rec.get("protocol") or {}).get(f"{m}_status") == why]
        console.print(f"[{i}] {', '.join(names)} not computed: {why}", markup=False, highlight=False)
    where = Table(title="files", show_header=False)
    for k, p in files.items():
        where.add_row(k, str(p))
    for k, s in seconds.items():
        where.add_row(f"time: {k}", f"{s:.1f} s")
    console.print(where)


# ---------------------------------------------------------------- the whole path
def run_bench(cfg: DictConfig, opts: BenchOptions) -> BenchOutcome:
    """Data, classifier, method, evaluation, record, leaderboards, W&B; returns what it made."""
    from . import wandb_logging as wl
    from .train import run_dir

    out = BenchOutcome()
    tick = time.perf_counter()

    def lap(name: str, what: str = "") -> None:
        nonlocal tick
        now = time.perf_counter()
        out.seconds[name] = now - tick
        tick = now
        if what and is_rank_zero():
            print(f"[bench] {name}: {what} ({out.seconds[name]:.1f} s)", flush=True)

    from .build import train_settings

    dm = make_datamodule(cfg, opts, batch_size=int(train_settings(cfg).get("batch_size") or 32))
    had_store = (Path(dm.store_path) / "manifest.json").is_file()
    ensure_data(dm)
    out.files["data store"] = Path(dm.store_path)
    lap("data", f"{'reused' if had_store else 'built'} {dm.store_path}")
    had_clf = classifier_path(dm, opts).is_file()
    clf = ensure_classifier(dm, cfg, opts)
    out.files["classifier"] = clf
    lap("classifier", f"{'reused' if had_clf else 'ready'} {clf}")  # trained or copied: said above
    parser = ensure_parser(cfg, dm, opts) if opts.train and opts.ckpt is None else None
    if parser is not None:
        out.files["face parser"] = parser
    if opts.prepare_only:
        return out
    rdir = run_dir(cfg)
    logger = wl.make_logger(cfg.method.name, int(cfg.res), str(cfg.data.name), str(cfg.profile.name),
                            rdir, project=opts.wandb_project, mode=opts.wandb_mode)
    method, ckpt = obtain_method(cfg, dm, opts, logger)
    if ckpt is not None:
        out.files["checkpoint"] = ckpt
    lap("train", f"checkpoint {ckpt}" if ckpt is not None else "nothing to train")
    key = evaluation_key(cfg, dm, clf, ckpt, opts)
    done = find_evaluation(opts.results_dir / "results.jsonl", key)
    if done is not None and not opts.force:
        if is_rank_zero():
            print(f"[bench] already evaluated: {opts.results_dir / 'results.jsonl'} line {done[0]} "
                  f"(same checkpoint, data, classifier and protocol); pass --force to re-evaluate",
                  flush=True)
        out.record, out.reused = done[1], True
        if is_rank_zero():  # a run killed after its record's append rendered nothing yet
            out.files.update(render_leaderboards(done[1], opts))
            grid = grid_path(done[1], opts)
            if not grid.is_file():
                write_edit_grid(method, dm, done[1], opts)
            out.files["edit grid"] = grid
        out.verdict = verdict_rows(cfg, opts, done[1], out.files.get("edit grid"), ckpt)
        return out
    rec = evaluate_method(method, dm, clf, cfg, opts)
    wandb_id = wl.wandb_run_id(rdir) if logger is not None else None
    rec["run"] = {**rec.get("run", {}), "eval_key": key,
                  **({"checkpoint": str(ckpt)} if ckpt is not None else {}), **zoo_fields(ckpt),
                  **({"wandb_id": wandb_id} if wandb_id else {})}
    if rec["run"].get("zoo_profile"):
        rec["profile"] = rec["run"].pop("zoo_profile")
    lap("evaluate", f"{rec['n_images']} test images")
    out.record = rec
    if is_rank_zero():
        out.files.update(record_and_render(rec, opts))
        grid, imgs, labels, cols = write_edit_grid(method, dm, rec, opts)
        out.files["edit grid"] = grid
        if logger is not None:
            wl.log_record(logger, rec)
            wl.log_edit_grid(logger, [im for row in imgs for im in row],
                             [lab for lab in labels for _ in cols],
                             [f"test {i} {c}" for i in range(len(imgs)) for c in cols])
            run_folder = wl.finish(logger)
            if run_folder is not None:
                out.files["W&B run"] = run_folder
        lap("record+tables")
        out.verdict = verdict_rows(cfg, opts, rec, grid, ckpt)
        if out.verdict:
            lap("references", f"{len(out.verdict) - 1} reference model(s) on the same protocol")
    return out


def verdict_rows(cfg: DictConfig, opts: BenchOptions, rec: dict, grid: Path | None, ckpt) -> list:
    """This run beside the identity baseline and its zoo model (``opts.compare``, SynthFaces,
    one process): the rows of :func:`.quickstart.print_verdict`."""
    if not (opts.compare and rec["dataset"] == "synth" and world_size(cfg) == 1 and is_rank_zero()):
        return []
    from .quickstart import cf_in, reference_records, training_line

    if not cf_in(rec):  # a track without attribute edits (e.g. mask_to_face): nothing to compare
        return []
    rows = [("this run", rec, grid, training_line(ckpt))]
    return rows + [(label, r, g, training_line(Path(label)) if label.startswith("zoo:") else None)
                   for label, r, g in reference_records(cfg, opts)]


def world_size(cfg: DictConfig) -> int:
    t = cfg.trainer
    return int(t.get("devices", 1)) * int(t.get("num_nodes", 1))


def zoo_fields(ckpt) -> dict:
    """``{"zoo": name, "zoo_profile": profile}`` when ``ckpt`` is ``zoo:<name>`` (the record's
    row is marked as the zoo's, under the profile it was trained with)."""
    from . import zoo

    if not zoo.is_zoo_ref(ckpt):
        return {}
    name = str(ckpt)[len(zoo.PREFIX):]
    return {"zoo": name, "zoo_profile": zoo.entry(name).get("profile")}


def main(cfg: DictConfig, opts: BenchOptions) -> int:
    """CLI body: run, print the table and the files; user-fixable errors exit 2 with the reason."""
    from .data.celeba import DataFormatError
    from .callbacks import TrainingInterrupted
    from .methods.contract import RequirementError
    from .io_utils import CheckpointError, CorruptFileError, UnsafeFileError
    from .zoo import ZooError

    try:
        outcome = run_bench(cfg, opts)
    except TrainingInterrupted as e:  # the checkpoint is saved and fit said so in one line
        return e.code
    except (BenchError, FileNotFoundError, DataFormatError, RequirementError, ZooError,
            CheckpointError, CorruptFileError, UnsafeFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if outcome.record is None:
        for k, p in outcome.files.items():
            print(f"{k}: {p}")
        return 0
    if is_rank_zero():
        print_summary(outcome.record, outcome.files, outcome.seconds)
        if outcome.verdict:
            from .quickstart import print_verdict

            print_verdict(outcome.verdict)
    return 0


def method_from_checkpoint(args) -> None:
    """With ``--ckpt``: take the method name (and, unless given, the resolution) from the file."""
    if not args.ckpt:
        return
    from . import zoo

    if zoo.is_zoo_ref(args.ckpt):
        e = zoo.entry(str(args.ckpt)[len(zoo.PREFIX):])
        args.method = e["method"]
        args.variant = getattr(args, "variant", None) or e.get("variant")
        args.res = args.res or int(e["resolution"])
        _evaluate_on_trained_attrs(args, (e.get("config") or {}).get("attrs"))
        return
    import torch

    path = Path(args.ckpt)
    if not path.is_file():
        raise BenchError(f"checkpoint {path} not found")
    from .io_utils import load_tensor_file

    blob = load_tensor_file(path)
    args.method = blob.get("faceedit_method", args.method)
    if getattr(args, "variant", None) is None and blob.get("faceedit_variant"):
        args.variant = blob["faceedit_variant"]
    hp = blob.get("hyper_parameters", {})
    if args.res is None and "res" in hp:
        args.res = int(hp["res"])
    _evaluate_on_trained_attrs(args, hp.get("attrs"))


def _evaluate_on_trained_attrs(args, attrs) -> None:
    """Evaluate a model on the attributes it was trained on (``+attrs=[...]`` unless given)."""
    from .protocol import DEFAULT_ATTRS

    attrs = list(attrs or [])
    if attrs and attrs != list(DEFAULT_ATTRS) and not any(o.lstrip("+").startswith("attrs=") for o in args.overrides):
        args.overrides.append("+attrs=[" + ",".join(attrs) + "]")


def compose_for_cli(args) -> tuple[DictConfig | None, BenchOptions | None]:
    """(config, options) of a ``bench``/``eval`` command line; (None, None) after printing why not."""
    from hydra.errors import HydraException

    from .cli._common import compose_from_args

    try:
        method_from_checkpoint(args)
        return compose_from_args(args), options_from_args(args)
    except (BenchError, FileNotFoundError, KeyError, ValueError, HydraException) as e:
        print(f"error: {e}", file=sys.stderr)
        return None, None


def options_from_args(args) -> BenchOptions:
    env = os.environ
    return BenchOptions(
        data_dir=Path(args.data_dir), results_dir=Path(args.results), leaderboards_dir=Path(args.out),
        ckpt=Path(args.ckpt) if args.ckpt else None, train=not getattr(args, "no_train", False),
        train_classifier=True if args.train_classifier else None,
        classifier_epochs=args.classifier_epochs,
        classifier_path=Path(args.classifier) if args.classifier else None, synth_n=args.n,
        wandb_mode=args.wandb_mode, wandb_project=args.wandb_project,
        inception_weights=args.inception_weights or env.get("FACEEDIT_INCEPTION_WEIGHTS"),
        swav_weights=args.swav_weights or env.get("FACEEDIT_SWAV_WEIGHTS"),
        progress=not args.no_progress, prepare_only=getattr(args, "prepare_only", False),
        force=bool(getattr(args, "force", False)), compare=not getattr(args, "no_compare", True))
