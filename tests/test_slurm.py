"""SLURM (issue 19): with SLURM's variables set, ``fit`` runs under Lightning's SLURMEnvironment
with auto-requeue (SIGUSR1 is Lightning's, not the suite's signal saver), and the rerun of a
requeued job resumes from Lightning's ``hpc_ckpt_*.ckpt`` when it is newer than ``last.ckpt``."""
from __future__ import annotations

import shutil
import signal

import lightning.pytorch as pl
from lightning.fabric.plugins.environments import SLURMEnvironment

from faceedit_bench.config import compose_config
from faceedit_bench.train import fit, resume_path, run_dir

SLURM_VARS = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "faceedit",
              "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
              "SLURM_NODELIST": "localhost", "SLURM_JOB_NUM_NODES": "1"}


class Requeue(pl.Callback):
    """At iteration ``at``, what SLURM's preemption warning does: Lightning's SIGUSR1 handler
    (saves ``hpc_ckpt_1.ckpt``; its ``scontrol requeue`` fails harmlessly off a cluster)."""

    def __init__(self, at: int) -> None:
        self.at, self.env, self.usr1 = at, None, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.env = trainer._accelerator_connector.cluster_environment
        self.usr1 = signal.getsignal(signal.SIGUSR1)
        if int(pl_module.iteration) == self.at:
            trainer._signal_connector._slurm_sigusr_handler_fn(signal.SIGUSR1, None)


def test_slurm_is_detected_and_a_requeued_run_resumes_from_lightnings_save(tmp_path, monkeypatch, capsys):
    for k, v in SLURM_VARS.items():
        monkeypatch.setenv(k, v)
    cfg = compose_config("stgan", 32, profile="smoke", overrides=[
        f"out_dir={tmp_path / 'runs'}", f"data_dir={tmp_path / 'data'}", "data.num_workers=0",
        "profile.max_iters=3", "profile.ckpt_every=2", "profile.keep_ckpts=-1"])
    probe = Requeue(at=3)
    fit(cfg, logger=False, callbacks=[probe])
    assert isinstance(probe.env, SLURMEnvironment) and probe.env.auto_requeue
    assert type(probe.usr1).__module__.startswith("lightning.")         # Lightning's requeue handler,
                                                                         # not the suite's signal saver

    out = run_dir(cfg)
    hpc = out / "hpc_ckpt_1.ckpt"
    assert hpc.is_file()
    # a preemption after Lightning's save and before the next periodic one: last.ckpt is older
    shutil.copy(out / "checkpoints" / "iter_0000002.ckpt", out / "checkpoints" / "last.ckpt")
    assert resume_path(cfg, out) == hpc
    capsys.readouterr()
    assert fit(cfg, logger=False) == hpc
    assert f"already complete: iteration 3 of max_iters=3 ({hpc})" in capsys.readouterr().out
