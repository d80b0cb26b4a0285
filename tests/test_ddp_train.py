"""Each adversarial method trains a few iterations under 2-process CPU DDP (gloo).

Strategy ``ddp_find_unused_parameters_true`` (configs/trainer/ddp_cpu2.yaml, suites.md §C3).
The ranks read different shards of the data, so equal parameters afterwards show the gradients
were all-reduced. (Normalisation running statistics are per-rank buffers, as in any DDP run;
checkpoints hold rank 0's.)
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("_train_worker.py")
METHODS = ("attgan", "stgan", "stargan")


def test_ddp_two_processes_keep_parameters_identical(tmp_path):
    # one DDP launch trains every method in turn (the process group is started once)
    proc = subprocess.run([sys.executable, str(WORKER), ",".join(METHODS), "32", str(tmp_path), "2",
                           "--trainer", "ddp_cpu2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for m in METHODS:
        r0 = torch.load(tmp_path / m / "params_rank0.pt", weights_only=True)
        r1 = torch.load(tmp_path / m / "params_rank1.pt", weights_only=True)
        assert r0["iteration"] == r1["iteration"] == 2, m
        assert r0["params"].keys() == r1["params"].keys()
        for k in r0["params"]:
            assert torch.equal(r0["params"][k], r1["params"][k]), f"{m}: {k} differs between ranks"
        ckpt = tmp_path / m / "run" / "checkpoints" / "last.ckpt"
        assert torch.load(ckpt, weights_only=True)["faceedit_iteration"] == 2
