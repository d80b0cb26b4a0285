"""Checkpoint retention: ``last.ckpt`` plus the ``profile.keep_ckpts`` newest ``iter_*.ckpt``.

Only files named ``iter_<digits>.ckpt`` are ever deleted (benchmarks/time_to_quality.py keeps
its ``cpu_*.ckpt`` in the same folder), never ``last.ckpt`` nor the checkpoint a run resumed
from; fit's last line gives the run folder's size.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from faceedit_bench.callbacks import keep_count, periodic_checkpoints, prune_checkpoints


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).write_bytes(b"x")
        os.utime(folder / name, ns=(10**18 + i * 10**9,) * 2)  # written in the order given


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_prune_keeps_the_newest_periodic_and_never_other_files(tmp_path):
    others = ["last.ckpt", "cpu_00120s_it000110.ckpt", ".iter_0000006.ckpt.tmp", "iter_7.ckpt.bak",
              "iter_best.ckpt"]
    _touch(tmp_path, *others, *(f"iter_{i:07d}.ckpt" for i in range(1, 6)))
    gone = prune_checkpoints(tmp_path, 2, protect=[tmp_path / "iter_0000001.ckpt"])
    assert sorted(p.name for p in gone) == ["iter_0000002.ckpt", "iter_0000003.ckpt"]
    assert _names(tmp_path) == {*others, "iter_0000001.ckpt", "iter_0000004.ckpt", "iter_0000005.ckpt"}
    assert prune_checkpoints(tmp_path, None) == []  # keep all
    prune_checkpoints(tmp_path, 0)
    assert _names(tmp_path) == set(others)


def test_prune_ranks_by_write_order_not_iteration(tmp_path):
    """A run resumed from an earlier checkpoint: the files of the abandoned, later branch go first."""
    _touch(tmp_path, "iter_0000010.ckpt", "iter_0000020.ckpt", "iter_0000006.ckpt", "iter_0000007.ckpt")
    prune_checkpoints(tmp_path, 2)
    assert [p.name for p in periodic_checkpoints(tmp_path)] == ["iter_0000006.ckpt", "iter_0000007.ckpt"]


def test_keep_count():
    assert keep_count(None) is None and keep_count(-1) is None
    assert keep_count(0) == 0 and keep_count("3") == 3
    with pytest.raises(ValueError, match="keep_ckpts"):
        keep_count(-2)


def test_every_profile_sets_keep_ckpts():
    from faceedit_bench.config import compose_config

    for profile in ("smoke", "quick", "quickstart", "paper"):
        assert compose_config("attgan", 32, profile=profile).profile.keep_ckpts == 2, profile


def _fit(out: Path, max_iters: int, *extra: str) -> Path:
    from _train_worker import ToyFaces

    from faceedit_bench.config import compose_config
    from faceedit_bench.train import fit

    cfg = compose_config("attgan", 32, profile="smoke", overrides=[
        f"profile.max_iters={max_iters}", "profile.ckpt_every=1", f"out_dir={out}", "+run_name=run",
        "data.num_workers=0", *extra])
    return fit(cfg, datamodule=ToyFaces(n=16, res=32), logger=False)


def test_fit_keeps_last_plus_two_and_reports_the_folder_size(tmp_path, capsys):
    ckdir = tmp_path / "run" / "checkpoints"
    _touch(ckdir, "cpu_00001s_it000001.ckpt")  # a benchmark's own file in the same folder
    last = _fit(tmp_path, 4)
    assert _names(ckdir) == {"last.ckpt", "iter_0000003.ckpt", "iter_0000004.ckpt", "cpu_00001s_it000001.ckpt"}
    assert torch.load(last, weights_only=True)["faceedit_iteration"] == 4
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[fit]")][-1]
    assert f"run folder {tmp_path / 'run'}: " in line and " MB (last.ckpt + 2 periodic)" in line, line
    # resume from an explicit periodic checkpoint: that file is kept while later ones rotate
    _fit(tmp_path, 6, f"profile.resume={ckdir / 'iter_0000003.ckpt'}")
    assert _names(ckdir) == {"last.ckpt", "iter_0000003.ckpt", "iter_0000005.ckpt", "iter_0000006.ckpt",
                             "cpu_00001s_it000001.ckpt"}
    assert torch.load(ckdir / "last.ckpt", weights_only=True)["faceedit_iteration"] == 6


def test_keep_ckpts_null_keeps_every_periodic_checkpoint(tmp_path, capsys):
    _fit(tmp_path, 4, "profile.keep_ckpts=null")
    assert len(periodic_checkpoints(tmp_path / "run" / "checkpoints")) == 4
    assert "(last.ckpt + 4 periodic)" in capsys.readouterr().out
