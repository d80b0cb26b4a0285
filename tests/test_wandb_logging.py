"""W&B offline run: run files, the metric keys of every method and the protocol in the config."""
from __future__ import annotations

import time

import numpy as np
import pytest

from faceedit_bench.protocol import DEFAULT_ATTRS
from faceedit_bench.results import make_record
from faceedit_bench import wandb_logging as wl


def _record():
    proto = {"attrs": list(DEFAULT_ATTRS), "crop": "none", "resize_filter": "bicubic",
             "test_intensity": 1.0, "seed": 0, "commit": "abc", "precision": "32-true", "devices": 1,
             "data_hash": "feedbeef", "ar_table_hash": "0123"}
    metrics = {"tarr": 0.5, "mre": 0.01, "fid": None, "psnr": 30.0, "ssim": 0.9}
    per = {"tarr": {a: 0.5 for a in DEFAULT_ATTRS}, "mre": {a: 0.01 for a in DEFAULT_ATTRS}}
    return make_record("identity", 32, "synth", "test", 4, metrics, proto, per, profile="quick",
                       track="attribute_flip")


def test_mode_resolution(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wl.resolve_mode() == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wl.resolve_mode() == "online"
    assert wl.resolve_mode("offline") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wl.resolve_mode() == "disabled"
    assert wl.make_logger("identity", 32, "synth", "quick", "unused") is None
    with pytest.raises(ValueError, match="W&B mode 'sometimes'"):
        wl.resolve_mode("sometimes")


def test_metric_keys_are_the_same_for_every_method():
    keys = set(wl.metric_dict(_record()))
    for k in ("eval/tarr", "eval/mre", "eval/fid", "eval/ssfid", "eval/is", "eval/psnr", "eval/ssim",
              "eval/tarr/Bald", "eval/tarr/Young", "eval/mre/Eyeglasses"):
        assert k in keys
    assert np.isnan(wl.metric_dict(_record())["eval/ssfid"])  # not measured: NaN, key still there


def test_eval_keys_are_the_registry_metrics_of_the_track():
    """Every method logs the same eval/<name> keys: the registry's metrics of the record's track."""
    from faceedit_bench.methods import available
    from faceedit_bench.metrics.registry import metric_specs

    for track in ("attribute_flip", "mask_to_face"):
        names = {s.name for s in metric_specs(track)}
        seen = []
        for method in available():
            rec = make_record(method, 32, "synth", "test", 4, {"psnr": 30.0}, _record()["protocol"],
                              track=track)
            keys = set(wl.metric_dict(rec))
            assert keys == {f"eval/{n}" for n in names}, (track, method)
            seen.append(keys)
        assert all(k == seen[0] for k in seen)
    assert "eval/parsing_pixel_acc" not in wl.metric_dict(_record())


def test_offline_run_files_keys_and_protocol(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    rec = _record()
    logger = wl.make_logger("identity", 32, "synth", "quick", tmp_path, project="faceedit-test")
    assert logger is not None
    wl.log_record(logger, rec)
    img = np.zeros((32, 32, 3), np.uint8)
    lab = np.zeros((32, 32), np.uint8)
    lab[8:24, 8:24] = 1
    wl.log_edit_grid(logger, [img, img], [lab, lab], ["input", "Bald"])
    run_dir = wl.finish(logger)
    assert run_dir is not None and run_dir.is_dir() and run_dir.name.startswith("offline-run-")
    assert list(run_dir.glob("*.wandb")), "no .wandb file in the offline run"
    deadline = time.time() + 20
    while not (got := wl.read_offline_run(run_dir))["complete"] and time.time() < deadline:
        time.sleep(0.2)  # wandb-core may still be flushing the file
    assert got["group"] == "identity" and got["tags"] == ["res32", "synth", "quick"]
    for k in ("eval/tarr", "eval/mre", "eval/fid", "eval/ssfid", "eval/is", "eval/psnr", "eval/ssim",
              "eval/tarr/Bald", "eval/mre/Young", "eval/per_attribute/_type", "eval/result_row/_type"):
        assert k in got["keys"], k
    assert any(k.startswith("eval/edits/") and "mask" in k for k in got["keys"])  # parser overlays
    proto = got["config"]["protocol"]
    assert proto["data_hash"] == "feedbeef" and proto["attrs"] == list(DEFAULT_ATTRS)
    assert got["config"]["method"] == "identity"


def test_run_id_is_stored_once_and_reused_on_resume(tmp_path, monkeypatch):
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    assert wl.wandb_run_id(tmp_path) is None
    first = wl.run_id(tmp_path, resume=True)  # nothing stored yet: a new id, stored
    assert wl.wandb_run_id(tmp_path) == first and wl.run_id(tmp_path, resume=True) == first
    fresh = wl.run_id(tmp_path, resume=False)  # a fresh start in the same folder: a new W&B run
    assert fresh != first and wl.wandb_run_id(tmp_path) == fresh
    monkeypatch.setattr(rank_zero_only, "rank", 1, raising=False)
    wl.run_id(tmp_path, resume=False)  # other DDP ranks never write the file
    assert wl.wandb_run_id(tmp_path) == fresh
    assert not list(tmp_path.glob(".*tmp"))


# trains AttGAN (smoke widths, 32 px) with W&B offline; SIGKILLs itself at iteration KILL_AT
# (one past a checkpoint), a second after a flush of W&B's transaction log, as a long run would
_WORKER = """
import os, signal, sys, time
import lightning.pytorch as pl
from _train_worker import ToyFaces
from faceedit_bench.config import compose_config
from faceedit_bench.train import fit

class KillAt(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.iteration >= int(sys.argv[2]) > 0:
            time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGKILL)

cfg = compose_config("attgan", 32, profile="smoke", overrides=[
    "profile.max_iters=8", "profile.ckpt_every=2", "profile.log_every=1", f"out_dir={sys.argv[1]}",
    "+run_name=run", "data.num_workers=0", "+wandb.enabled=true"])
fit(cfg, datamodule=ToyFaces(n=16, res=32), callbacks=[KillAt()])
"""


def _steps(run_dir) -> list[int]:
    deadline = time.time() + 20
    while not (got := wl.read_offline_run(run_dir))["complete"] and time.time() < deadline:
        time.sleep(0.2)
    return [int(row["trainer/global_step"]) for row in got["history"] if "trainer/global_step" in row]


def test_killed_and_resumed_training_continues_one_wandb_run(tmp_path):
    """wandb writes one offline folder per process (``offline-run-<time>-<id>``): a resumed
    training's folder carries the same run id (``wandb sync`` uploads both, in order, into that
    one run) and its ``trainer/global_step`` axis continues where the checkpoint left off."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path),
           "WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL": "0.2", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent)])}
    for inherited in ("WANDB_API_KEY", "WANDB_SERVICE"):  # WANDB_SERVICE: an earlier test's wandb-core
        env.pop(inherited, None)  # (a killed run stays open there: "run ID ... is in use")
    cmd = [sys.executable, "-c", _WORKER, str(tmp_path)]
    killed = subprocess.run([*cmd, "5"], env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-3000:]
    run = tmp_path / "run"
    run_id = wl.wandb_run_id(run)
    assert run_id and len(list((run / "wandb").glob("offline-run-*"))) == 1
    resumed = subprocess.run([*cmd, "0"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert wl.wandb_run_id(run) == run_id
    folders = sorted((run / "wandb").glob("offline-run-*"))  # by start time
    assert len(folders) == 2 and {f.name.rsplit("-", 1)[1] for f in folders} == {run_id}
    assert wl.read_offline_run(folders[1])["id"] == run_id
    first, second = _steps(folders[0]), _steps(folders[1])
    assert first[0] == 0 and second[0] == 4 and second[-1] == 7  # resumed at iteration 5 (last.ckpt: 4)
    assert sorted(set(first) | set(second)) == list(range(8))  # one axis, no restart at 0
    assert "(last.ckpt + 2 periodic)" in resumed.stdout
