"""Result records: schema, concurrent appends, malformed lines reported with file and line."""
import multiprocessing as mp

import pytest

from faceedit_bench.results import (
    RecordError, ResultsFileError, append_record, make_record, read_records, validate_record,
)

PROTOCOL = {"attrs": ["Bald"], "crop": "none", "resize_filter": "bicubic", "test_intensity": 1.0,
            "seed": 0, "commit": "abc", "precision": "32-true", "devices": 1, "data_hash": "d"}


def _record(i: int = 0) -> dict:
    return make_record("identity", 64, "synth", "test", 10 + i, {"psnr": 30.0 + i, "fid": None},
                       PROTOCOL, per_attribute={"tarr": {"Bald": 0.5}})


def _append_many(path: str, worker: int, n: int) -> None:
    for i in range(n):
        append_record(path, _record(worker * 10_000 + i))


def test_two_processes_append_concurrently(tmp_path):
    path = str(tmp_path / "results.jsonl")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(path, w, 1000)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    records = read_records(path)
    assert len(records) == 2000
    assert sorted(r["n_images"] for r in records) == sorted(
        10 + w * 10_000 + i for w in range(2) for i in range(1000))


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
    rec = make_record("identity", 64, "synth", "test", 1, {"fid": float("nan")}, PROTOCOL)
    assert rec["metrics"]["fid"] is None
