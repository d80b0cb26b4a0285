"""Result records: schema, concurrent appends, malformed lines reported with file and line."""
import json
import multiprocessing as mp
from pathlib import Path

import pytest

from faceedit_bench.results import (
    SCHEMA_VERSION, RecordError, ResultsFileError, append_record, make_record, read_records, upgrade_file,
    upgrade_record, validate_record,
)

PROTOCOL = {"attrs": ["Bald"], "crop": "none", "resize_filter": "bicubic", "test_intensity": 1.0,
            "seed": 0, "commit": "abc", "precision": "32-true", "devices": 1, "data_hash": "d"}


def _record(i: int = 0) -> dict:
    return make_record("identity", 64, "synth", "test", 10 + i, {"psnr": 30.0 + i, "fid": None},
                       PROTOCOL, per_attribute={"tarr": {"Bald": 0.5}}, track="attribute_flip")


def _append_many(path: str, worker: int, n: int) -> None:
    for i in range(n):
        append_record(path, _record(worker * 10_000 + i))


def test_four_processes_append_concurrently(tmp_path):
    """4 x 50 concurrent appends -> 200 valid records, none lost, none interleaved."""
    path = str(tmp_path / "results.jsonl")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(path, w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    records = read_records(path)
    assert len(records) == 200
    assert sorted(r["n_images"] for r in records) == sorted(
        10 + w * 10_000 + i for w in range(4) for i in range(50))


def test_truncated_last_line_names_file_and_line(tmp_path):
    path = tmp_path / "results.jsonl"
    append_record(path, _record(0))
    append_record(path, _record(1))
    data = path.read_bytes()
    path.write_bytes(data[:-20])  # cut the second record mid-way
    with pytest.raises(ResultsFileError, match=rf"{path}:2: truncated"):
        read_records(path)


def test_invalid_json_and_schema_errors_name_line(tmp_path):
    path = tmp_path / "r.jsonl"
    append_record(path, _record(0))
    with open(path, "a") as f:
        f.write('{"method": "x"}\n')
    with pytest.raises(ResultsFileError, match=r"r.jsonl:2: missing key"):
        read_records(path)
    path.write_text("not json\n")
    with pytest.raises(ResultsFileError, match=r"r.jsonl:1: not valid JSON"):
        read_records(path)


def test_schema_rejects_bad_values():
    rec = _record()
    rec["metrics"]["psnr"] = "high"
    with pytest.raises(RecordError, match=r"metrics\['psnr'\]"):
        validate_record(rec)
    rec = _record()
    del rec["protocol"]["commit"]
    with pytest.raises(RecordError, match="protocol: missing key 'commit'"):
        validate_record(rec)
    rec = _record()
    rec["surprise"] = 1
    with pytest.raises(RecordError, match="unknown key 'surprise'"):
        validate_record(rec)


def test_nan_metric_becomes_null():
    rec = make_record("identity", 64, "synth", "test", 1, {"fid": float("nan")}, PROTOCOL, track="attribute_flip")
    assert rec["metrics"]["fid"] is None


def test_metric_names_are_checked_against_the_registry():
    rec = _record()
    rec["metrics"]["psnr_typo"] = 1.0
    with pytest.raises(RecordError, match=r"metrics\['psnr_typo'\]: unknown metric"):
        validate_record(rec)
    rec = _record()
    rec["per_attribute"]["tar"] = {"Bald": 0.5}
    with pytest.raises(RecordError, match=r"per_attribute\['tar'\]: unknown metric"):
        validate_record(rec)
    # per-track applicability: TARR is not a mask_to_face metric, parsing accuracy is
    with pytest.raises(RecordError, match=r"metrics\['tarr'\]: not a metric of track 'mask_to_face'"):
        make_record("x", 64, "synth", "test", 1, {"tarr": 0.5}, PROTOCOL, track="mask_to_face")
    ok = make_record("x", 64, "synth", "test", 1, {"psnr": 20.0, "parsing_pixel_acc": 0.9}, PROTOCOL,
                     track="mask_to_face")
    assert ok["track"] == "mask_to_face"
    with pytest.raises(RecordError, match=r"key 'track': expected one of"):
        make_record("x", 64, "synth", "test", 1, {}, PROTOCOL, track="flipping")


def test_track_is_required_and_schema_1_records_upgrade(tmp_path):
    rec = _record()
    del rec["track"]
    with pytest.raises(RecordError, match="missing key 'track'"):
        validate_record(rec)
    old = {**rec, "schema_version": 1}
    with pytest.raises(RecordError, match="expected 2, got 1 .*upgrade_file"):
        validate_record(old)
    assert upgrade_record(old)["track"] == "attribute_flip"
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(old) + "\n" + json.dumps(old) + "\n")
    assert upgrade_file(path) == 2
    assert [r["track"] for r in read_records(path)] == ["attribute_flip"] * 2


def test_committed_results_follow_the_schema():
    records = read_records(Path(__file__).resolve().parents[1] / "results" / "results.jsonl")
    assert records and all(r["schema_version"] == SCHEMA_VERSION and r["track"] for r in records)
