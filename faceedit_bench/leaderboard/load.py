"""Read result records (results/*.jsonl) and the papers' numbers (leaderboards/papers/*.csv)."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..protocol import stable_hash
from ..results import iter_records

PAPER_COLUMNS = ("paper", "source", "table", "row", "method", "dataset", "resolution", "metric",
                 "value", "unit", "higher_is_better", "note")


class PaperTableError(ValueError):
    """A malformed papers CSV; the message names file and line."""


def load_records(results_dir: str | Path | list) -> list[dict]:
    """Every record of ``results_dir/*.jsonl`` (or of each folder of a list, in order), files
    by name, lines in file order."""
    if isinstance(results_dir, (list, tuple)):
        return [r for d in results_dir for r in load_records(d)]
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        return []
    out: list[dict] = []
    for path in sorted(results_dir.glob("*.jsonl")):
        out.extend(iter_records(path))
    return out


#: protocol fields left out of the id: the code version and the method's own settings (which
#: differ between methods by design); they stay in the record and in the legend
NOT_IN_PROTOCOL_ID = ("commit", "method_protocol")
#: the track whose ids hash the protocol alone (every record before tracks existed was one, so
#: their ids, chart names and table labels stay as committed)
BASE_TRACK = "attribute_flip"


def protocol_id(rec: dict) -> str:
    """Short hash of a record's evaluation protocol and track: rows with equal ids were measured
    the same way (same track, data hash, attributes, crop, test intensity, classifier/extractor
    weights, ...). Only ``commit`` and ``method_protocol`` are left out."""
    proto = {k: v for k, v in rec["protocol"].items() if k not in NOT_IN_PROTOCOL_ID}
    if rec["track"] != BASE_TRACK:
        proto = {**proto, "track": rec["track"]}
    return stable_hash(proto, n=8)


def method_label(rec: dict) -> str:
    """``method`` or ``method/variant`` (a config variant, e.g. ``maggan/wo_spade``): the row
    name of a record and what the papers' CSVs name in their ``method`` column."""
    return f"{rec['method']}/{rec['variant']}" if rec.get("variant") else rec["method"]


def run_key(rec: dict) -> tuple:
    """Rows that supersede each other: same method, track, data, resolution, split, profile and
    protocol (so records at another test intensity never replace each other)."""
    return (method_label(rec), (rec.get("run") or {}).get("zoo"), rec["track"], rec["dataset"], rec["resolution"], rec["split"],
            rec.get("profile", ""), protocol_id(rec))


def latest_records(records: list[dict]) -> list[dict]:
    """The last record of each :func:`run_key` (file order), sorted by that key."""
    last: dict[tuple, dict] = {}
    for rec in records:
        last[run_key(rec)] = rec
    return [last[k] for k in sorted(last, key=lambda k: tuple(str(x) for x in k))]


@dataclass(frozen=True)
class PaperTable:
    name: str          # file stem, e.g. maggan_table1
    paper: str
    table: str
    rows: tuple[dict, ...]

    @property
    def methods(self) -> set[str]:
        return {r["method"] for r in self.rows if r["method"]}

    @property
    def metrics(self) -> list[str]:
        seen: list[str] = []
        for r in self.rows:
            if r["metric"] not in seen:
                seen.append(r["metric"])
        return seen


def load_paper_tables(papers_dir: str | Path) -> list[PaperTable]:
    """One :class:`PaperTable` per ``papers_dir/*.csv`` (sorted by file name)."""
    tables = []
    for path in sorted(Path(papers_dir).glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != PAPER_COLUMNS:
                raise PaperTableError(f"{path}:1: expected columns {','.join(PAPER_COLUMNS)}, "
                                      f"got {','.join(reader.fieldnames or [])}")
            rows = []
            for lineno, row in enumerate(reader, start=2):
                try:
                    float(row["value"])
                except ValueError:
                    raise PaperTableError(f"{path}:{lineno}: value {row['value']!r} is not a number") from None
                rows.append(row)
        if not rows:
            raise PaperTableError(f"{path}: no rows")
        tables.append(PaperTable(path.stem, rows[0]["paper"], rows[0]["table"], tuple(rows)))
    return tables
