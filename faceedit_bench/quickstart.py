"""The Quickstart's verdict (issue 14): a run beside the identity baseline and its method's zoo
model, judged by the true counterfactual.

On SynthFaces every test edit has a ground truth, so "does it edit?" has a measured answer:
``cf_l1_in`` (L1 to the true counterfactual inside the flipped attribute's region) below the
identity baseline's means the edit moved the region toward the truth; doing nothing scores the
baseline exactly. A CPU run of a few minutes rarely gets there, so ``bench`` also evaluates the
zoo model of the same method and resolution (trained by the suite's own command for CPU-hours,
``zoo/manifest.json``), and the zoo models the profile names in ``compare_zoo``, on the same
data, classifier and protocol, and says which model the verdict and the grid come from, how
long each was trained, and which models edit each focus attribute toward the truth.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

#: the attributes the Quickstart's verdict names (issue 14's acceptance list)
FOCUS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Pale_Skin", "Eyeglasses")


def zoo_name(method: str, dataset: str, res: int) -> str:
    """The zoo entry a run is compared with: ``<method>_<dataset>_<res>``."""
    return f"{method}_{dataset}_{res}"


def training_line(ckpt: Path | None) -> str | None:
    """``trained 512 iterations, 6.0 CPU-minutes`` from a training checkpoint or zoo file."""
    if ckpt is None:
        return None
    from . import zoo
    from .io_utils import load_tensor_file

    if zoo.is_zoo_ref(ckpt):
        e = zoo.entry(str(ckpt)[len(zoo.PREFIX):])
        return (f"trained {e.get('iterations', '?')} iterations, "
                f"{60 * float(e.get('cpu_hours') or 0):.0f} CPU-minutes by `{e.get('command') or '?'}`")
    blob = load_tensor_file(ckpt)
    it = int(blob.get("faceedit_iteration", 0))
    used = next((v.get("used") for k, v in blob.get("callbacks", {}).items() if "CPUBudget" in k), None)
    return f"trained {it} iterations" + (f", {float(used) / 60:.1f} CPU-minutes" if used is not None else "")


def _with_method(cfg: DictConfig, method_cfg, profile_cfg=None) -> DictConfig:
    out = copy.deepcopy(cfg)
    OmegaConf.set_struct(out, False)
    out.method = method_cfg
    if profile_cfg is not None:
        out.profile = profile_cfg
    return out


def zoo_references(cfg: DictConfig, manifest: dict) -> list[str]:
    """The zoo entries the verdict compares with: the method's own (``<method>_<data>_<res>``),
    then the profile's ``compare_zoo`` names (e.g. a local-edit method beside a whole-face one).
    Only entries of the run's data, resolution and attributes are kept (another attribute list
    is another protocol); a name the zoo lacks is skipped."""
    from .build import attrs_of

    names = [zoo_name(str(cfg.method.name), str(cfg.data.name), int(cfg.res))]
    names += [str(n) for n in (cfg.profile.get("compare_zoo") or []) if str(n) not in names]
    attrs = list(attrs_of(cfg))
    keep = []
    for name in names:
        e = manifest.get(name)
        if e is None or int(e["resolution"]) != int(cfg.res) or e.get("dataset") != str(cfg.data.name):
            continue
        if attrs_of(OmegaConf.create(e["config"])) == attrs:
            keep.append(name)
    return keep


def reference_records(cfg: DictConfig, opts) -> list[tuple[str, dict, Path | None]]:
    """``[(label, record, grid)]`` for the identity baseline and the zoo models of
    :func:`zoo_references` — each evaluated (or found already recorded) by
    :func:`.bench.run_bench` under the same data, classifier and protocol."""
    from .bench import run_bench
    from .config import resolve_method_config
    from .zoo import ZooError, read_manifest

    sub = replace(opts, ckpt=None, compare=False, force=False, wandb_mode="disabled")
    refs = []
    if cfg.method.name != "identity":
        base = _with_method(cfg, resolve_method_config("identity", int(cfg.res), str(cfg.profile.name)))
        out = run_bench(base, sub)
        refs.append(("identity (no edit)", out.record, out.files.get("edit grid")))
    try:
        manifest = read_manifest()
    except ZooError:
        manifest = {}
    for name in zoo_references(cfg, manifest):
        if str(opts.ckpt or "").endswith(name):
            continue  # this run is that zoo model
        trained = OmegaConf.create(manifest[name]["config"])
        zcfg = _with_method(cfg, trained.method, trained.profile)
        out = run_bench(zcfg, replace(sub, ckpt=Path(f"zoo:{name}"), train=False))
        refs.append((f"zoo:{name}", out.record, out.files.get("edit grid")))
    return refs


def cf_in(rec: dict) -> dict[str, float]:
    """Per-attribute ``cf_l1_in`` of a record; empty for a track that has none (e.g. mask_edit)."""
    return (rec.get("per_attribute") or {}).get("cf_l1_in") or {}


def edits_better(rec: dict, baseline: dict, attrs=None) -> tuple[list[str], list[str]]:
    """(attributes whose ``cf_l1_in`` is below the baseline's, all attributes compared)."""
    mine, base = cf_in(rec), cf_in(baseline)
    names = [a for a in (attrs or mine) if a in mine and a in base]
    return [a for a in names if mine[a] < base[a]], names


def print_verdict(rows: list[tuple[str, dict, Path | None, str | None]]) -> None:
    """Per-attribute ``cf_l1_in`` of each model beside the identity baseline, then one line
    per model: on how many attributes it beats doing nothing, and how long it was trained."""
    from rich.console import Console
    from rich.table import Table

    base = next((r for label, r, _, _ in rows if r["method"] == "identity"), None)
    if base is None or not cf_in(base) or not any(cf_in(r) for _, r, _, _ in rows if r is not base):
        return  # no attribute-edit track on both sides: nothing to compare
    attrs = list(cf_in(base))
    t = Table(title="does it edit? L1 to the true counterfactual inside the attribute's region "
                    "(lower is better; * = below doing nothing)")
    t.add_column("attribute")
    for label, *_ in rows:
        t.add_column(label, justify="right")
    for a in attrs:
        cells = []
        for _, r, _, _ in rows:
            v = cf_in(r).get(a)
            star = "*" if r is not base and v is not None and v < cf_in(base)[a] else ""
            cells.append("—" if v is None else f"{v:.4f}{star}")
        t.add_row(a + (" (focus)" if a in FOCUS else ""), *cells)
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: room for every column, no wrapped labels
        console = Console(width=max(80, 24 + 18 * len(rows)))
    console.print(t)
    for label, r, grid, trained in rows:
        if r is base:
            continue
        wins, names = edits_better(r, base)
        focus, fn = edits_better(r, base, FOCUS)
        console.print(f"{label}: edits toward the truth on {len(wins)}/{len(names)} attributes, "
                      f"{len(focus)}/{len(fn)} of {', '.join(FOCUS)}"
                      + (f"; {trained}" if trained else "") + (f"; grid {grid}" if grid else ""), soft_wrap=True)
    for a in (a for a in FOCUS if a in attrs):
        who = [label for label, r, _, _ in rows if r is not base and a in edits_better(r, base, (a,))[0]]
        console.print(f"{a}: edited toward the truth by {', '.join(who) if who else 'no model here'}",
                      soft_wrap=True)
