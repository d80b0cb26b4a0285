"""Every make target passes only flags its subcommand accepts (``make leaderboard METHOD=x``)."""
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from faceedit_bench.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["bench", "train", "classifier", "eval", "masks", "leaderboard", "store", "synth"]
ALL_VARS = ["METHOD=stgan", "VARIANT=v", "RES=64", "DATA=synth", "PROFILE=quick", "DEVICES=1", "NODES=1",
            "PRECISION=32-true", "CKPT=runs/x.ckpt", "OUT=/tmp/out", "N=10"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("target", TARGETS)
def test_target_command_parses(target):
    out = subprocess.run(["make", "-n", "-s", target, "STAMP=/dev/null", *ALL_VARS], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    argv = shlex.split(out[-1])
    assert argv[0].endswith("faceedit-bench"), out
    args = build_parser().parse_args(argv[1:])  # exits 2 on any flag the subcommand lacks
    assert args.command == {"train": "fit"}.get(target, target)
    if target in ("bench", "train", "eval"):
        assert args.method == "stgan" and args.res == 64
