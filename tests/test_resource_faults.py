"""Resource faults: a full disk, simulated by a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored so
the write fails with EFBIG as a full disk fails with ENOSPC), during a checkpoint save, a store
build and a record write -> exit 1 with one line naming the file, the previous good file intact,
no temporary file left. A read-only folder the same way (skipped as root: root writes anyway).
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "faceedit_bench.cli"]


def _run(argv, cwd, limit: int | None = None):
    def cap():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, env=env,
                          preexec_fn=cap if limit is not None else None)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_naming(proc, path: Path) -> None:
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"cannot write {path}" in lines[0] and "File too large" in lines[0], lines[0]


def _no_temps(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if ".tmp" in p.name], "temporary file left"


def test_full_disk_during_a_checkpoint_save_keeps_the_last_checkpoint(tmp_path):
    fit = [*CLI, "fit", "--method", "stargan", "--res", "32", "--profile", "smoke",
           f"out_dir={tmp_path / 'runs'}", f"data_dir={tmp_path / 'data'}", "data.num_workers=0",
           "profile.progress_bar=false"]
    first = _run([*fit, "profile.max_iters=2"], ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    last = tmp_path / "runs" / "stargan_32_synth_smoke" / "checkpoints" / "last.ckpt"
    before = _digest(last)
    proc = _run([*fit, "profile.max_iters=4", "profile.ckpt_every=1"], ROOT, limit=last.stat().st_size // 2)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "cannot write" in proc.stderr and "File too large" in proc.stderr, proc.stderr[-3000:]
    assert _digest(last) == before
    _no_temps(last.parent)
    import torch

    assert torch.load(last, weights_only=True)["faceedit_iteration"] == 2


def test_full_disk_during_a_store_build_keeps_the_previous_store(tmp_path):
    store = [*CLI, "store", "--data", "synth", "--res", "32", "--synth-n", "24", "--workers", "1"]
    assert _run(store, tmp_path).returncode == 0
    out = tmp_path / "data" / "stores" / "synth_n24_r32_none_gt"
    files = lambda: {p.relative_to(out).as_posix(): _digest(p) for p in out.rglob("*") if p.is_file()}  # noqa: E731
    before = files()
    proc = _run([*store, "--overwrite"], tmp_path, limit=20_000)  # images.npy is 73,856 bytes
    _one_line_naming(proc, Path("data/stores/synth_n24_r32_none_gt"))
    assert files() == before and "images.npy" in before
    _no_temps(tmp_path / "data" / "stores")


def test_full_disk_during_a_record_write_rolls_the_line_back(tmp_path):
    from faceedit_bench.results import append_record, make_record, read_records

    protocol = {"attrs": ["Bald"], "crop": "none", "resize_filter": "bicubic", "test_intensity": 1.0,
                "seed": 0, "commit": "abc", "precision": "32-true", "devices": 1, "data_hash": "d"}
    rec = make_record("identity", 64, "synth", "test", 10, {"psnr": 30.0}, protocol, track="attribute_flip")
    results = tmp_path / "results.jsonl"
    append_record(results, rec)
    before = results.read_bytes()
    code = ("import json, sys\n"
            "from faceedit_bench.cli import run_command\n"
            "from faceedit_bench.results import append_record\n"
            "sys.exit(run_command(lambda a: append_record(a[0], json.loads(a[1])), sys.argv[1:]))\n")
    proc = _run([sys.executable, "-c", code, str(results), json.dumps(rec)], ROOT, limit=len(before) + 100)
    _one_line_naming(proc, results)
    assert results.read_bytes() == before  # the partial line was truncated away
    assert len(read_records(results)) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_one_line(tmp_path):
    out = tmp_path / "lb"
    out.mkdir()
    out.chmod(0o555)
    try:
        proc = _run([*CLI, "leaderboard", "--out", str(out)], ROOT)
        assert proc.returncode == 1 and "Permission denied" in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr and not list(out.iterdir())
    finally:
        out.chmod(0o755)
