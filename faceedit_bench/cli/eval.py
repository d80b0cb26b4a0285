"""``faceedit-bench eval``: evaluate a checkpoint (``--ckpt``, or the run's last.ckpt) only.

Same data, classifier, evaluator, record and leaderboards as ``bench``, without training.
"""
from __future__ import annotations

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench eval --ckpt outputs/runs/stgan_64_synth_quick/checkpoints/last.ckpt',
    'faceedit-bench eval --ckpt zoo:attgan_synth_64 --force',
)


def run(args) -> int:
    from ..bench import compose_for_cli, main

    cfg, opts = compose_for_cli(args)
    if cfg is None:
        return 2
    opts.train = False
    return main(cfg, opts)


def register(subparsers) -> None:
    from ..bench import QUICKSTART_METHOD, QUICKSTART_PROFILE
    from ..methods import declared_names
    from .bench import add_bench_arguments

    p = subparsers.add_parser("eval", help="evaluate a checkpoint and update the leaderboards",
                              description=__doc__)
    add_bench_arguments(p, QUICKSTART_METHOD if QUICKSTART_METHOD in declared_names() else "identity")
    p.set_defaults(func=run, profile=QUICKSTART_PROFILE)
