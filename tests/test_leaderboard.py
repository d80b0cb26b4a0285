"""Leaderboard rendering: committed files re-render identically; sorting, labels, determinism."""
from __future__ import annotations

import hashlib
import multiprocessing as mp
from pathlib import Path

import pytest

from faceedit_bench.leaderboard import render_all
from faceedit_bench.leaderboard.load import PaperTableError, load_paper_tables, protocol_id
from faceedit_bench.methods import available
from faceedit_bench.protocol import DEFAULT_ATTRS
from faceedit_bench.results import append_record, make_record

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT / "leaderboards" / "papers"


def test_committed_leaderboards_rerender_identically(tmp_path):
    """Re-render from the committed results/ and compare byte by byte with leaderboards/."""
    written = render_all(ROOT / "results", tmp_path, PAPERS, curves=ROOT / "benchmarks" / "time_to_quality.jsonl")
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
                      profile="quick", track="attribute_flip")
    append_record(results / "r.jsonl", rec)
    return rec


def _rows(md: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")[1:-1]] for line in md.splitlines()
            if line.startswith("| ") and " test " in line]


def test_unified_sorted_by_direction_and_labelled(tmp_path):
    table1 = next(t for t in load_paper_tables(PAPERS) if t.name == "maggan_table1")
    in_table = [m for m in available() if m in table1.methods]
    a, b, c = in_table[0], *[m for m in available() if m != in_table[0]][:2]
    results = tmp_path / "results"
    _write(results, a, 0.5, 0.2)
    _write(results, b, 0.9, 0.4)
    _write(results, c, 0.1, 0.0)
    last = _write(results, a, 0.7, 0.1)  # supersedes the first row of `a` (same protocol)
    out = tmp_path / "lb"
    render_all(results, out, PAPERS)
    md = (out / "unified_synth_32.md").read_text()
    rows = _rows(md)
    assert [r[0] for r in rows] == [b, a, c]  # tarr, higher first
    assert rows[0][5] == "**90**"
    assert rows[2][6] == "**0.0000**"  # lowest mre is the best mre
    assert rows[1][5] == "70"  # the superseded record of `a` is not shown
    # measured rows beside the paper's: labelled with dataset, resolution, protocol
    t1 = (out / "maggan_table1.md").read_text()
    assert f"{a} (ours) · synth 32px · quick · protocol {protocol_id(last)}" in t1
    assert "| paper | STGAN(256) |" in t1
    assert (out / "plots").is_dir() and len(list((out / "plots").glob("tarr_*.png"))) == 3
    # a chart whose record is gone (e.g. an old protocol) goes with it; other files stay
    (out / "plots" / "tarr_gone_synth_32_quick_0000.png").write_bytes(b"x")
    (out / "plots" / "time_to_quality_x.png").write_bytes(b"x")
    render_all(results, out, PAPERS)
    assert len(list((out / "plots").glob("tarr_*.png"))) == 3 and (out / "plots" / "time_to_quality_x.png").is_file()


def test_header_units_come_from_the_registry(tmp_path):
    results = tmp_path / "results"
    _write(results, available()[0], 0.25, 0.125)
    render_all(results, tmp_path / "lb", PAPERS, charts=False)
    md = (tmp_path / "lb" / "unified_synth_32.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    assert "tarr (%) ↑" in header and "mre (L1 [0,1]) ↓" in header and "fid (FID) ↓" in header
    assert _rows(md)[0][5:7] == ["**25**", "**0.1250**"]  # the markdown states % and converts
    csv_lines = (tmp_path / "lb" / "unified_synth_32.csv").read_text().splitlines()
    assert "tarr (fraction) ↑" in csv_lines[0] and "(%)" not in csv_lines[0]
    assert csv_lines[1].split(",")[5:7] == ["0.25", "0.125"]  # the CSV keeps the stored fractions


def test_records_at_two_test_intensities_both_show(tmp_path):
    results = tmp_path / "results"
    method = available()[0]
    one = _write(results, method, 0.4, 0.1, test_intensity=1.0)
    two = _write(results, method, 0.6, 0.2, test_intensity=2.0)
    assert protocol_id(one) != protocol_id(two)
    render_all(results, tmp_path / "lb", PAPERS, charts=False)
    rows = _rows((tmp_path / "lb" / "unified_synth_32.md").read_text())
    assert sorted((r[0], r[4]) for r in rows) == sorted([(method, protocol_id(one)), (method, protocol_id(two))])
    legend = (tmp_path / "lb" / "README.md").read_text()
    assert f"| {protocol_id(one)} | none | bicubic | 1.0 |" in legend
    assert f"| {protocol_id(two)} | none | bicubic | 2.0 |" in legend


def test_tracks_get_their_own_unified_tables(tmp_path):
    results = tmp_path / "results"
    method = available()[0]
    flip = _write(results, method, 0.4, 0.1)
    m2f = make_record(method, 32, "synth", "test", 8, {"psnr": 20.0, "parsing_pixel_acc": 0.5, "fid": None},
                      _protocol(test_intensity=None), profile="quick", track="mask_to_face")
    append_record(results / "r.jsonl", m2f)
    assert protocol_id(m2f) != protocol_id(flip)  # the track is part of the id
    render_all(results, tmp_path / "lb", PAPERS, charts=False)
    flip_md = (tmp_path / "lb" / "unified_synth_32.md").read_text()
    m2f_md = (tmp_path / "lb" / "unified_mask_to_face_synth_32.md").read_text()
    assert "parsing_pixel_acc" not in flip_md and "tarr" not in m2f_md
    assert "mask_to_face, synth, 32 px" in m2f_md and "parsing_pixel_acc (%) ↑" in m2f_md
    assert _rows(m2f_md)[0][0] == method
    assert "unified_mask_to_face_synth_32.md" in (tmp_path / "lb" / "README.md").read_text()


def test_other_attribute_sets_get_their_own_table_and_sagan_its_section(tmp_path):
    """A record scored on 4 attributes never shares a unified table (best values, means) with the
    13-attribute ones; SaGAN's config asks for a section on its paper's four attributes, which
    lists every method's records for those attributes (a dash where a record lacks one)."""
    results = tmp_path / "results"
    method = available()[0]
    _write(results, method, 0.4, 0.1)
    four = ["Eyeglasses", "Mouth_Slightly_Open", "No_Beard", "Smiling"]
    rec = make_record("sagan", 32, "synth", "test", 8, {"tarr": 0.9, "mre": 0.01, "fid": None},
                      _protocol(attrs=four), per_attribute={"tarr": {a: 0.9 for a in four}},
                      profile="quick", track="attribute_flip")
    append_record(results / "r.jsonl", rec)
    render_all(results, tmp_path / "lb", PAPERS, charts=False)
    default_md = (tmp_path / "lb" / "unified_synth_32.md").read_text()
    (other,) = (tmp_path / "lb").glob("unified_synth_32_4attrs_*.md")
    assert [r[0] for r in _rows(default_md)] == [method]
    assert [r[0] for r in _rows(other.read_text())] == ["sagan"] and "4 attributes (Eyeglasses" in other.read_text()
    section = (tmp_path / "lb" / "sagan_synth_32.md").read_text()
    assert "reports no numbers" in section and "| Eyeglasses | Mouth_Slightly_Open | No_Beard | Smiling |" in section
    rows = {r[0]: r[3:] for r in (line.split(" | ") for line in section.splitlines()) if len(r) > 3}
    assert rows["| sagan"] == ["90", "90", "90", "90 |"] and rows[f"| {method}"][-1] == "— |"
    assert "sagan_synth_32" in (tmp_path / "lb" / "README.md").read_text()


def test_render_is_deterministic(tmp_path):
    results = tmp_path / "results"
    _write(results, available()[0], 0.6, 0.3)
    _write(results, available()[0], 0.6, 0.3, res=64, test_intensity=0.5)

    def digest(out):
        files = render_all(results, out, PAPERS)
        return {p.relative_to(out).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in files}

    a, b = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert a == b and "unified_synth_64.md" in a and "unified_synth_32.md" in a


def _render_repeatedly(results: str, out: str, times: int) -> None:
    for _ in range(times):
        render_all(Path(results), Path(out), PAPERS)


def test_concurrent_renders_never_expose_a_partial_file(tmp_path):
    """Two processes re-render the same folder while this one reads it: every file read is
    complete (equal to a render done alone), and no temporary file is left."""
    results = tmp_path / "results"
    _write(results, available()[0], 0.6, 0.3)
    reference = {p.name: p.read_bytes() for p in render_all(results, tmp_path / "ref", PAPERS)
                 if p.suffix == ".md"}
    shared = tmp_path / "shared"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_render_repeatedly, args=(str(results), str(shared), 4)) for _ in range(2)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs):
        for name, want in reference.items():
            try:
                got = (shared / name).read_bytes()
            except FileNotFoundError:  # not rendered yet
                continue
            reads += 1
            assert got == want, f"{name}: partial or different content seen by a reader"
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert reads > 0
    assert not [p for p in shared.rglob("*") if p.name.endswith(".tmp")]
    assert {n: (shared / n).read_bytes() for n in reference} == reference


def test_bad_papers_csv_names_file_and_line(tmp_path):
    (tmp_path / "x.csv").write_text((PAPERS / "maggan_table8.csv").read_text().replace("0.0015", "n/a"))
    with pytest.raises(PaperTableError, match=r"x\.csv:\d+: value 'n/a'"):
        load_paper_tables(tmp_path)


def test_rows_of_another_dataset_never_sit_in_a_paper_block(tmp_path):
    """MagGAN Table 1 is CelebA: a SynthFaces row goes into the "this suite" block below it, a
    CelebA 128 px STGAN row (the paper has STGAN(128) on CelebA) stays beside the paper's rows;
    a "—" cell of a measured row carries the evaluator's reason as a footnote."""
    import json

    results = tmp_path / "results"
    synth = _write(results, "stgan", 0.5, 0.2, res=64, fid_status="no weights file given (put it at X)")
    celeba = json.loads(json.dumps(synth))
    celeba.update(dataset="celeba", resolution=128)
    append_record(results / "r.jsonl", celeba)
    out = tmp_path / "lb"
    render_all(results, out, PAPERS, charts=False)
    t1 = (out / "maggan_table1.md").read_text()
    paper_block, _, suite_block = t1.partition("## This suite (synth 64 px)")
    assert suite_block, t1
    assert "synth" not in "".join(l for l in paper_block.splitlines() if l.startswith("| measured"))
    assert "| measured | stgan (ours) · celeba 128px" in paper_block
    assert "| measured | stgan (ours) · synth 64px" in suite_block
    assert "— [1]" in suite_block and "- [1] fid: no weights file given (put it at X)" in suite_block
    assert "our mre: MagGAN eq. 2 as the mean |G(x, flip) - x| over H x W x 3" in t1  # normalisation stated
    csv = (out / "maggan_table1.csv").read_text()
    assert "measured (this suite),stgan (ours),stgan,synth,64" in csv


def test_ambiguous_paper_rows_are_marked_in_the_cell(tmp_path):
    """SeCGAN's 256 pairs (dataset not recoverable from the paper text) say so in the row itself."""
    render_all(tmp_path / "no_results", tmp_path / "lb", PAPERS, charts=False)
    rows = [l for l in (tmp_path / "lb" / "secgan_table1.md").read_text().splitlines() if l.startswith("| paper |")]
    marked = [l for l in rows if "(ambiguous: see notes)" in l]
    assert len(marked) == 4 and all("256 block" in l for l in marked)
    assert not any("ambiguous" in l for l in rows if "128" in l.split("|")[4])


def test_a_leaderboard_section_missing_a_key_names_the_config(monkeypatch):
    from omegaconf import OmegaConf

    import faceedit_bench.config as config
    from faceedit_bench.leaderboard.focus import sections

    real = config.load_method_config
    monkeypatch.setattr(config, "load_method_config", lambda name: OmegaConf.create(
        {"name": name, "leaderboard": {"title": "t"}}) if name == "sagan" else real(name))
    with pytest.raises(ValueError, match=r"sagan\.yaml: leaderboard: needs keys \['note', 'attributes', 'metrics'\]"):
        sections()
