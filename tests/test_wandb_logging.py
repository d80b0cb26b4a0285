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
