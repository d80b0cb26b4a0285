"""SIGKILL after a checkpoint, resume, and end with the uninterrupted run's exact state (CPU).

A subprocess trains AttGAN (tiny, 32 px) for 6 iterations with a checkpoint every 2 and kills
itself with SIGKILL at iteration 3 (one iteration past ``last.ckpt``); rerunning the same
command resumes from ``last.ckpt`` (iteration 2). Its final parameters, buffers, iteration
counter and learning rate (the step decay starts at iteration 3, after the kill) must equal
those of an uninterrupted run: data position, optimiser and scheduler states and per-step
randomness all come back.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("_train_worker.py")


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(WORKER), "attgan", "32", str(out), "6", "--ckpt-every", "2", *extra]


def _same_final_state(a_dir: Path, b_dir: Path, resumed_from: int) -> None:
    a = torch.load(a_dir / "attgan" / "params_rank0.pt", weights_only=True)
    b = torch.load(b_dir / "attgan" / "params_rank0.pt", weights_only=True)
    assert a["start_iteration"] == 0 and b["start_iteration"] == resumed_from  # b really resumed
    assert a["iteration"] == b["iteration"] == 6
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k]), f"{k} differs after resume"


def test_sigterm_saves_the_current_iteration_and_resumes_exactly(tmp_path):
    full = subprocess.Popen(_cmd(tmp_path / "full"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    termed = subprocess.run(_cmd(tmp_path / "term", "--term-at", "3"), capture_output=True, text=True,
                            timeout=600)
    assert termed.returncode == 143, termed.stdout[-2000:] + termed.stderr[-3000:]
    line = [ln for ln in termed.stdout.splitlines() if "stopped by SIGTERM" in ln]
    assert len(line) == 1 and "at iteration 3" in line[0] and "last.ckpt" in line[0]
    ckdir = tmp_path / "term" / "attgan" / "run" / "checkpoints"
    assert torch.load(ckdir / "last.ckpt", weights_only=True)["faceedit_iteration"] == 3  # not 2
    assert not list(ckdir.glob(".*.tmp"))
    resumed = subprocess.run(_cmd(tmp_path / "term"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    out, _ = full.communicate(timeout=600)
    assert full.returncode == 0, out[-3000:]
    _same_final_state(tmp_path / "full", tmp_path / "term", resumed_from=3)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    full = subprocess.Popen(_cmd(tmp_path / "full"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    killed = subprocess.run(_cmd(tmp_path / "kill", "--kill-at", "3"), capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    ckdir = tmp_path / "kill" / "attgan" / "run" / "checkpoints"
    assert torch.load(ckdir / "last.ckpt", weights_only=True)["faceedit_iteration"] == 2
    assert not (tmp_path / "kill" / "attgan" / "params_rank0.pt").exists()

    resumed = subprocess.run(_cmd(tmp_path / "kill"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    out, _ = full.communicate(timeout=600)
    assert full.returncode == 0, out[-3000:]

    a = torch.load(tmp_path / "full" / "attgan" / "params_rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "kill" / "attgan" / "params_rank0.pt", weights_only=True)
    assert a["start_iteration"] == 0 and b["start_iteration"] == 2  # b really resumed
    assert a["iteration"] == b["iteration"] == 6
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k]), f"{k} differs after resume"
    ca = torch.load(tmp_path / "full" / "attgan" / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    cb = torch.load(ckdir / "last.ckpt", weights_only=True)
    for sa, sb in zip(ca["optimizer_states"], cb["optimizer_states"]):
        assert sa["param_groups"][0]["lr"] == sb["param_groups"][0]["lr"]
        for (ka, va), (kb, vb) in zip(sa["state"].items(), sb["state"].items()):
            assert all(torch.equal(va[n], vb[n]) for n in va), "optimizer state differs"


def test_resumed_run_keeps_its_csv_log(tmp_path):
    """Lightning's CSVLogger deletes metrics.csv when its folder is not empty; the suite's
    logger appends, so a run stopped at iteration 2 and resumed to 4 logs all four."""
    import csv

    from faceedit_bench.callbacks import StopAtIteration
    from faceedit_bench.config import compose_config
    from faceedit_bench.train import fit

    cfg = compose_config("stargan", 32, profile="smoke", overrides=[
        f"out_dir={tmp_path / 'runs'}", f"data_dir={tmp_path / 'data'}", "data.num_workers=0",
        "profile.log_every=1", "profile.max_iters=4", "profile.ckpt_every=1"])
    fit(cfg, callbacks=[StopAtIteration(2)])
    log = tmp_path / "runs" / "stargan_32_synth_smoke" / "logs" / "metrics.csv"
    before = log.read_text()
    fit(cfg)
    rows = list(csv.DictReader(log.open()))
    its = sorted({int(float(r["iteration"])) for r in rows if r.get("iteration")})
    assert its == [1, 2, 3, 4] and log.read_text().startswith(before.splitlines()[0])
