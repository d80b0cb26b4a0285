"""``faceedit-bench eval``: evaluate a checkpoint (``--ckpt``, or the run's last.ckpt) only.

Same data, classifier, evaluator, record and leaderboards as ``bench``, without training.
"""
from __future__ import annotations

from ._common import compose_from_args


def run(args) -> int:
    from ..bench import main, options_from_args

    if args.ckpt:
        import torch

        from pathlib import Path

        path = Path(args.ckpt)
        if not path.is_file():
            print(f"error: checkpoint {path} not found")
            return 2
        blob = torch.load(path, map_location="cpu", weights_only=True)
        hp = blob.get("hyper_parameters", {})
        args.method = blob.get("faceedit_method", args.method)
        if args.res is None and "res" in hp:
            args.res = int(hp["res"])
    from hydra.errors import HydraException

    try:
        cfg = compose_from_args(args)
    except (FileNotFoundError, HydraException) as e:
        print(f"error: {e}")
        return 2
    opts = options_from_args(args)
    opts.train = False
    return main(cfg, opts)


def register(subparsers) -> None:
    from ..bench import QUICKSTART_METHOD, QUICKSTART_PROFILE
    from ..methods import available
    from .bench import add_bench_arguments

    p = subparsers.add_parser("eval", help="evaluate a checkpoint and update the leaderboards",
                              description=__doc__)
    add_bench_arguments(p, QUICKSTART_METHOD if QUICKSTART_METHOD in available() else "identity")
    p.set_defaults(func=run, profile=QUICKSTART_PROFILE)
