"""Evaluation under 2-process CPU DDP (gloo) gives every metric of the one-process run (1e-5).

Runs the evaluator in subprocesses (Lightning's `ddp` launcher re-executes the script per rank),
on the toy world with an imperfect editor, the trained classifier and tiny stand-in
Inception/SwAV extractors (the state reduction is what is tested, not the networks), 101 test
images so the shards are uneven.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _metrics_toy import toy_classifier_path

SCRIPT = r'''
import json, sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from _metrics_toy import ToyDataModule, ToyEditor, TinyInception, TinySwAV
from faceedit_bench.metrics.evaluator import evaluate
devices, out = int(sys.argv[1]), sys.argv[2]
kw = dict(accelerator="cpu", devices=devices)
if devices > 1:
    kw["strategy"] = "ddp"
rec = evaluate(ToyEditor(), ToyDataModule(n_test=101), {clf!r}, inception=TinyInception(), swav=TinySwAV(),
               cache_dir=None, progress=False, trainer_kwargs=kw)
if int(__import__("os").environ.get("LOCAL_RANK", 0)) == 0:
    json.dump(rec, open(out, "w"))
'''


def _run(script, devices, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    p = subprocess.run([sys.executable, str(script), str(devices), str(out)], capture_output=True,
                       text=True, timeout=300, env=env, cwd=str(Path(__file__).parent.parent))
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(Path(out).read_text())


def _close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7)


def test_ddp_two_processes_equal_one(tmp_path_factory, tmp_path):
    clf = toy_classifier_path(tmp_path_factory)
    script = tmp_path / "eval_ddp.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), clf=str(clf)))
    from _metrics_toy import TinyInception, TinySwAV, ToyDataModule, ToyEditor
    from faceedit_bench.metrics.evaluator import evaluate

    one = evaluate(ToyEditor(), ToyDataModule(n_test=101), str(clf), inception=TinyInception(),
                   swav=TinySwAV(), cache_dir=None, progress=False,
                   trainer_kwargs={"accelerator": "cpu", "devices": 1})
    one = json.loads(json.dumps(one))
    two = _run(script, 2, tmp_path / "two.json")
    assert one["protocol"]["devices"] == 1 and two["protocol"]["devices"] == 2
    assert one["n_images"] == two["n_images"] == 101
    assert set(one["metrics"]) == set(two["metrics"])
    for key in ("tarr", "mre", "fid", "is", "ssfid", "fid_clf", "psnr", "ssim", "rec_l1", "cf_l1", "cf_l1_in",
                "cf_l1_changed"):
        assert one["metrics"][key] is not None, key
    bad = {k: (one["metrics"][k], two["metrics"][k]) for k in one["metrics"]
           if not _close(one["metrics"][k], two["metrics"][k])}
    assert not bad, bad
    for name, table in one["per_attribute"].items():
        for attr, v in table.items():
            assert _close(v, two["per_attribute"][name][attr]), (name, attr, v, two["per_attribute"][name][attr])
