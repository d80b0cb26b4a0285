"""Markdown + CSV leaderboards from result records and the papers' numbers (deterministic).

- ``<paper>_<table>.md/.csv``: the paper's rows as published, then our measured rows of the
  methods that table contains, each labelled with dataset, resolution, profile and protocol id.
- ``unified_<dataset>_<res>.md/.csv`` (attribute_flip) and ``unified_<track>_<dataset>_<res>``
  (other tracks): every method x every metric measured on that track, data and resolution,
  sorted by the primary metric in its direction (``metrics.registry``); the best value of each
  column is bold; per-attribute TARR follows. Headers show the registry's unit; the markdown
  prints fractions in % (and says so), the CSV keeps the stored values in the stored units.
- ``README.md``: the index and the protocol legend.
No timestamps, stable sorts: the same records give byte-identical files.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

from . import plots
from .directions import direction, is_fraction, order_metrics, to_unit, unit
from .io import write_text_atomic
from .load import PaperTable, latest_records, load_paper_tables, load_records, method_label, protocol_id

DASH = "—"
#: how the suite computes a metric where the papers leave the normalisation open (shown under
#: every paper table that has measured rows of it)
METRIC_NOTES = {
    "mre": ("our mre: MagGAN eq. 2 as the mean |G(x, flip) - x| over H x W x 3 on [0, 1] images, "
            "outside the parts the flip may change (AR+ / AR- on the source's label map), averaged "
            "over images per attribute, then over attributes (faceedit_bench/metrics/mre.py; "
            "hand-computed example in tests/test_metrics_basic.py)"),
}
LEGEND_KEYS = ("crop", "resize_filter", "test_intensity", "split", "precision", "devices",
               "data_hash", "commit")


def fmt(v: float | None) -> str:
    if v is None:
        return DASH
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.4g}" if abs(v) >= 1 else f"{v:.4f}"


def row_name(rec: dict) -> str:
    """A unified-table row: ``method[/variant]``, marked ``(zoo:<name>)`` for zoo entries; the
    profile column says ``quickstart`` for the Quickstart's barely trained models."""
    zoo = (rec.get("run") or {}).get("zoo")
    return method_label(rec) + (f" (zoo:{zoo})" if zoo else "")


def measured_label(rec: dict) -> str:
    """``stgan (ours) · synth 64px · quick · protocol ab12cd34``."""
    prof = rec.get("profile", "")
    return (f"{method_label(rec)} (ours) · {rec['dataset']} {rec['resolution']}px"
            + (f" · {prof}" if prof else "") + f" · protocol {protocol_id(rec)}")


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _metric_value(rec: dict, metric: str) -> float | None:
    m = rec["metrics"]
    if metric in m:
        return m[metric]
    return m.get(f"{metric}_mean")


def comparable(rec: dict, same: set[tuple[str, str, str]]) -> bool:
    """A measured record sits among a paper's rows only when that table has a row of its method on
    the same dataset and resolution (the protocol cannot be matched further: the paper's is
    described in its notes and the suite's in the legend)."""
    return (method_label(rec), rec["dataset"], str(rec["resolution"])) in same


class Footnotes:
    """``—`` cells of measured rows with the evaluator's reason (``protocol['<metric>_status']``,
    e.g. no Inception weights: where to put them), numbered once per distinct reason."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def cell(self, rec: dict, metric: str, text: str) -> str:
        reason = (rec.get("protocol") or {}).get(f"{metric}_status")
        if text != DASH or not reason:
            return text
        line = f"{metric}: {reason}"
        if line not in self.reasons:
            self.reasons.append(line)
        return f"{DASH} [{self.reasons.index(line) + 1}]"

    def markdown(self) -> str:
        if not self.reasons:
            return ""
        return "\nWhy a measured cell shows —:\n\n" + "".join(
            f"- [{i}] {r}\n" for i, r in enumerate(self.reasons, 1))


# ---------------------------------------------------------------- paper tables
def render_paper_table(table: PaperTable, records: list[dict]) -> tuple[str, str]:
    """(markdown, csv) of one paper table with our measured rows of the same methods."""
    metrics = table.metrics
    units = {r["metric"]: r["unit"] for r in table.rows}
    head_m = [f"{m} ({units[m]})" if units[m] else m for m in metrics]
    header = ["source", "row", "dataset", "res", *head_m]
    by_row: dict[str, dict] = {}
    for r in table.rows:
        by_row.setdefault(r["row"], {"row": r, "values": {}})["values"][r["metric"]] = r["value"]
    md_rows, csv_rows = [], []
    ambiguous = {r["row"] for r in table.rows if r["note"].startswith("AMBIGUOUS")}
    for label, entry in by_row.items():  # the paper's order
        r = entry["row"]
        vals = [entry["values"].get(m, DASH) for m in metrics]
        shown = f"{label} (ambiguous: see notes)" if label in ambiguous else label
        md_rows.append(["paper", shown, r["dataset"], r["resolution"] or DASH, *vals])
        csv_rows.append(["paper", label, r["method"], r["dataset"], r["resolution"], "", "", *vals])
    measured = [rec for rec in records if method_label(rec) in table.methods]
    same = {(r["method"], r["dataset"], str(r["resolution"])) for r in table.rows}
    beside = [rec for rec in measured if comparable(rec, same)]
    apart = [rec for rec in measured if not comparable(rec, same)]
    dashes = Footnotes()
    suite_rows = []
    for rec in measured:
        vals = [fmt(to_unit(m, _metric_value(rec, m), units[m])) for m in metrics]
        (md_rows if rec in beside else suite_rows).append(
            ["measured", measured_label(rec), rec["dataset"], str(rec["resolution"]),
             *[dashes.cell(rec, m, v) for m, v in zip(metrics, vals)]])
        csv_rows.append(["measured" if rec in beside else "measured (this suite)", f"{method_label(rec)} (ours)",
                         method_label(rec), rec["dataset"], rec["resolution"], rec.get("profile", ""),
                         protocol_id(rec), *vals])
    notes = []
    for r in table.rows:
        if r["note"] and r["note"] not in notes:
            notes.append(r["note"])
    notes += [METRIC_NOTES[m] for m in metrics if m in METRIC_NOTES and measured]
    src = table.rows[0]["source"]
    md = [f"# {table.paper} — {table.table}\n",
          f"Published numbers transcribed from `{src}` (`leaderboards/papers/{table.name}.csv`); "
          "measured rows come from `results/*.jsonl` and are labelled with dataset, resolution, "
          "profile and protocol id (legend in `README.md`). Measured numbers on other data or "
          "protocols are shown for orientation, not as a reproduction.\n",
          _md_table(header, md_rows)]
    if apart:
        kinds = ", ".join(sorted({f"{r['dataset']} {r['resolution']} px" for r in apart}))
        md.append(f"\n## This suite ({kinds}): not comparable with the rows above\n\n"
                  "Measured by this suite on data or at a resolution the paper's rows above do not "
                  "use, so they are kept out of the paper's block: read them against each other and "
                  "against the unified tables, not against the published numbers.\n\n"
                  + _md_table(header, suite_rows))
    md.append(dashes.markdown())
    if not measured:
        methods = ", ".join(sorted(table.methods)) or "none"
        md.append(f"\nNo measured rows yet for the methods of this table ({methods}).\n")
    if notes:
        md.append("\nNotes:\n\n" + "".join(f"- {n}\n" for n in notes))
    csv_header = ["source", "row", "method", "dataset", "resolution", "profile", "protocol", *metrics]
    return "\n".join(md), _csv_text(csv_header, csv_rows)


# ---------------------------------------------------------------- unified tables
def _sort_rows(recs: list[dict], metrics: list[str]) -> tuple[list[dict], str | None]:
    primary = next((m for m in metrics if direction(m) is not None
                    and any(_metric_value(r, m) is not None for r in recs)), None)
    if primary is None:
        return sorted(recs, key=method_label), None
    hib = direction(primary)

    def key(r):
        v = _metric_value(r, primary)
        return (v is None, -v if (v is not None and hib) else (v or 0.0), method_label(r), protocol_id(r))

    return sorted(recs, key=key), primary


def _best(recs: list[dict], metric: str) -> float | None:
    d = direction(metric)
    vals = [v for r in recs if (v := _metric_value(r, metric)) is not None]
    if d is None or not vals:
        return None
    return max(vals) if d else min(vals)


def attrs_tag(attrs) -> str:
    """``""`` for the default 13 attributes, else ``_<n>attrs_<hash>`` (the classifier file's hash):
    records scored on other attributes never share a table, a best value or a mean with them."""
    from ..protocol import DEFAULT_ATTRS, stable_hash

    if not attrs or tuple(attrs) == tuple(DEFAULT_ATTRS):
        return ""
    return f"_{len(attrs)}attrs_{stable_hash(list(attrs), n=8)}"


def unified_name(track: str, dataset: str, res: int, attrs=None) -> str:
    """File stem of a unified table (attribute_flip keeps the name it had before tracks)."""
    stem = f"unified_{dataset}_{res}" if track == "attribute_flip" else f"unified_{track}_{dataset}_{res}"
    return stem + attrs_tag(attrs)


def _header_unit(metric: str, percent: bool) -> str:
    if percent and is_fraction(metric):
        return " (%)"
    u = unit(metric)
    return f" ({u})" if u else ""


def render_unified(dataset: str, res: int, recs: list[dict], track: str = "attribute_flip",
                   attrs: tuple = ()) -> tuple[str, str]:
    metrics = order_metrics({m for r in recs for m in r["metrics"]})
    recs, primary = _sort_rows(recs, metrics)
    arrows = {True: " ↑", False: " ↓", None: ""}
    units = {m: "%" if is_fraction(m) else "" for m in metrics}
    header = ["method", "profile", "split", "n", "protocol",
              *[m + _header_unit(m, True) + arrows[direction(m)] for m in metrics]]
    csv_header = header[:5] + [m + _header_unit(m, False) + arrows[direction(m)] for m in metrics]
    md_rows, csv_rows = [], []
    best = {m: _best(recs, m) for m in metrics}
    dashes = Footnotes()
    for r in recs:
        cells = []
        for m in metrics:
            v = _metric_value(r, m)
            s = fmt(to_unit(m, v, units[m]))
            hit = v is not None and best[m] is not None and fmt(to_unit(m, best[m], units[m])) == s
            cells.append(f"**{s}**" if hit else dashes.cell(r, m, s))
        base = [row_name(r), r.get("profile", ""), r["split"], str(r["n_images"]), protocol_id(r)]
        md_rows.append(base + cells)
        csv_rows.append(base + ["" if _metric_value(r, m) is None else repr(_metric_value(r, m)) for m in metrics])
    order = (f"Sorted by `{primary}` ({'higher' if direction(primary) else 'lower'} is better). "
             if primary else "")
    title = "" if track == "attribute_flip" else f"{track}, "
    title += f"{len(attrs)} attributes ({', '.join(attrs)}), " if attrs else ""
    md = [f"# Unified leaderboard — {title}{dataset}, {res} px\n",
          "Every method x every metric from `results/*.jsonl` (the latest record per method, "
          f"profile and protocol). {order}↑/↓ mark each metric's direction, the best value of each "
          "column is bold; rates (fractions in the records) are in %. Protocol ids are explained "
          "in `README.md`.\n",
          _md_table(header, md_rows), dashes.markdown()]
    attrs = sorted({a for r in recs for a in r["per_attribute"].get("tarr", {})})
    if attrs:
        order = list(recs[0]["protocol"].get("attrs", [])) if recs else []
        attrs = [a for a in order if a in attrs] + [a for a in attrs if a not in order]
        rows = [[method_label(r), protocol_id(r),
                 *[fmt(to_unit("tarr", r["per_attribute"].get("tarr", {}).get(a), "%")) for a in attrs]]
                for r in recs]
        md.append("\n## TARR per attribute (%)\n\n" + _md_table(["method", "protocol", *attrs], rows))
    return "\n".join(md), _csv_text(csv_header, csv_rows)


# ---------------------------------------------------------------- index
def render_index(records: list[dict], tables: list[PaperTable], unified: list[str], charts: list[str]) -> str:
    lines = ["# Leaderboards\n",
             "Generated by `faceedit-bench leaderboard` (`make leaderboard`) from `results/*.jsonl` and "
             "`leaderboards/papers/*.csv`; do not edit by hand.\n", "## Unified tables\n"]
    lines += [f"- [{u}]({u}.md)" for u in unified] or ["- (no result records yet)"]
    lines += ["", "## How far the proxy metrics agree with the truth\n",
              "- [metric_validity](metric_validity.md): Spearman ρ of each proxy against the true "
              "counterfactual error over the SynthFaces checkpoints"]
    lines += ["", "## The papers' tables with our measured rows\n"]
    lines += [f"- [{t.paper} — {t.table}]({t.name}.md)" for t in tables]
    if charts:
        lines += ["", "## Per-attribute TARR charts\n"] + [f"- [{c}](plots/{c})" for c in charts]
    legend = {}
    for r in records:
        legend.setdefault(protocol_id(r), r["protocol"])
    if legend:
        header = ["protocol", *LEGEND_KEYS]
        rows = [[pid, *[str(p.get(k, DASH)) for k in LEGEND_KEYS]] for pid, p in sorted(legend.items())]
        lines += ["", "## Protocol legend\n", "The id is a hash of the record's whole `protocol` object; "
                  "the main fields:\n", _md_table(header, rows)]
    return "\n".join(lines) + "\n"


def render_all(results_dir: str | Path | list = "results", out_dir: str | Path = "leaderboards",
               papers_dir: str | Path | None = None, charts: bool = True,
               curves: str | Path | None = None) -> list[Path]:
    """Render every leaderboard file into ``out_dir``; returns the written paths (sorted).
    ``curves``: the time-to-quality rows (``benchmarks/time_to_quality.jsonl``) that the metric
    validity report also counts as checkpoints."""
    out_dir = Path(out_dir)
    papers_dir = Path(papers_dir) if papers_dir else out_dir / "papers"
    records = latest_records(load_records(results_dir))
    tables = load_paper_tables(papers_dir)
    written: list[Path] = []
    for t in tables:
        md, cs = render_paper_table(t, records)
        written += [write_text_atomic(out_dir / f"{t.name}.md", md),
                    write_text_atomic(out_dir / f"{t.name}.csv", cs)]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        attrs = tuple(r["protocol"].get("attrs") or ())
        groups[(r["track"], r["dataset"], r["resolution"], attrs)].append(r)
    unified = []
    for (track, ds, res, attrs) in sorted(groups):
        name = unified_name(track, ds, res, attrs)
        md, cs = render_unified(ds, res, groups[(track, ds, res, attrs)], track, attrs if attrs_tag(attrs) else ())
        written += [write_text_atomic(out_dir / f"{name}.md", md), write_text_atomic(out_dir / f"{name}.csv", cs)]
        unified.append(name)
    from .focus import render_sections

    focus = render_sections(records, out_dir, write_text_atomic)
    written += focus
    chart_names = []
    if charts:
        for r in records:
            path = plots.tarr_bar_chart(r, out_dir / "plots")
            if path is not None:
                written.append(path)
                chart_names.append(path.name)
        for stale in (out_dir / "plots").glob("tarr_*.png"):  # charts of records no longer rendered
            if stale.name not in chart_names:
                stale.unlink()
    from .metric_validity import render as render_validity

    written.append(write_text_atomic(out_dir / "metric_validity.md", render_validity(results_dir, curves)))
    written.append(write_text_atomic(out_dir / "README.md", render_index(records, tables, unified + [
        p.stem for p in focus], chart_names)))
    return sorted(written)
