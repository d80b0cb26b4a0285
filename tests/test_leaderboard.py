"""Leaderboard rendering: committed files re-render identically; sorting, labels, determinism."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from faceedit_bench.leaderboard import render_all
from faceedit_bench.leaderboard.load import PaperTableError, load_paper_tables, protocol_id
from faceedit_bench.protocol import DEFAULT_ATTRS
from faceedit_bench.results import append_record, make_record

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT / "leaderboards" / "papers"


def test_committed_leaderboards_rerender_identically(tmp_path):
    """Re-render from the committed results/ and compare byte by byte with leaderboards/."""
    written = render_all(ROOT / "results", tmp_path, PAPERS)
    assert written
    for path in written:
        rel = path.relative_to(tmp_path)
        committed = ROOT / "leaderboards" / rel
        assert committed.is_file(), f"leaderboards/{rel} is not committed; run `make leaderboard`"
        assert committed.read_bytes() == path.read_bytes(), f"leaderboards/{rel} is stale; run `make leaderboard`"


def _protocol(**kw):
    p = {"attrs": list(DEFAULT_ATTRS), "crop": "none", "resize_filter": "bicubic", "test_intensity": 1.0,
         "seed": 0, "commit": "test", "precision": "32-true", "devices": 1, "data_hash": "d0"}
    p.update(kw)
    return p


def _write(results, method, tarr, mre, res=32, **proto):
    rec = make_record(method, res, "synth", "test", 8, {"tarr": tarr, "mre": mre, "fid": None},
                      _protocol(**proto), per_attribute={"tarr": {a: tarr for a in DEFAULT_ATTRS}},
                      profile="quick")
    append_record(results / "r.jsonl", rec)
    return rec


def test_unified_sorted_by_direction_and_labelled(tmp_path):
    results = tmp_path / "results"
    _write(results, "attgan", 0.5, 0.2)
    _write(results, "stgan", 0.9, 0.4)
    _write(results, "identity", 0.1, 0.0)
    last = _write(results, "attgan", 0.7, 0.1)  # supersedes the first attgan row (same protocol)
    out = tmp_path / "lb"
    render_all(results, out, PAPERS)
    md = (out / "unified_synth_32.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and " test " in line]
    assert [r.split("|")[1].strip() for r in rows] == ["stgan", "attgan", "identity"]  # tarr, higher first
    assert "| **90.00** |" in rows[0] or "**90**" in rows[0]
    assert "**0.0000**" in rows[2]  # lowest mre is the best mre
    assert "50" not in rows[1].split("|")[6]  # superseded attgan record is not shown
    # measured rows beside the paper's: labelled with dataset, resolution, protocol
    t1 = (out / "maggan_table1.md").read_text()
    assert f"stgan (ours) · synth 32px · quick · protocol {protocol_id(last)}" in t1
    assert "| paper | STGAN(256) |" in t1
    assert (out / "plots").is_dir() and len(list((out / "plots").glob("tarr_*.png"))) == 3


def test_render_is_deterministic(tmp_path):
    results = tmp_path / "results"
    _write(results, "stgan", 0.6, 0.3)
    _write(results, "stgan", 0.6, 0.3, res=64, test_intensity=0.5)

    def digest(out):
        files = render_all(results, out, PAPERS)
        return {p.relative_to(out).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in files}

    a, b = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert a == b and "unified_synth_64.md" in a and "unified_synth_32.md" in a


def test_bad_papers_csv_names_file_and_line(tmp_path):
    (tmp_path / "x.csv").write_text((PAPERS / "maggan_table8.csv").read_text().replace("0.0015", "n/a"))
    with pytest.raises(PaperTableError, match=r"x\.csv:\d+: value 'n/a'"):
        load_paper_tables(tmp_path)
