"""``faceedit-bench fit``: train a method (``--method M --res R [--data D] [--profile P]``).

Checkpoints go to ``<out_dir>/<method>_<res>_<data>_<profile>/checkpoints/`` (``last.ckpt``
plus one per ``profile.ckpt_every`` iterations); a rerun of the same command resumes from
``last.ckpt`` (``profile.resume=auto``); ``--ckpt`` resumes from a given file. Iterations are
generator updates. Prints the last checkpoint's path.
"""
from __future__ import annotations

import sys

from ._common import add_run_arguments, compose_from_args

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench fit --method stgan --res 64 --profile quick',
    'faceedit-bench fit --method attgan --res 128 profile.max_iters=5000 profile.ckpt_every=500',
    'faceedit-bench fit --method stgan --ckpt outputs/runs/stgan_64_synth_quick/checkpoints/iter_0001000.ckpt',
)


def run(args) -> int:
    if args.ckpt is not None:
        args.overrides.append(f"profile.resume={args.ckpt}")
    if args.out is not None:
        args.overrides.append(f"out_dir={args.out}")
    try:
        cfg = compose_from_args(args)  # before torch is imported: a config typo exits at once
    except (FileNotFoundError, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    from ..callbacks import TrainingInterrupted
    from ..methods.contract import RequirementError
    from ..train import fit

    try:
        print(fit(cfg))
    except TrainingInterrupted as e:
        return e.code
    except (RequirementError, FileNotFoundError, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("fit", help="train a method; resumes from its last checkpoint",
                              description=__doc__)
    add_run_arguments(p, default_method="attgan")
    p.add_argument("--ckpt", default=None, help="resume from this checkpoint file")
    p.add_argument("--out", default=None, help="output root (config out_dir; default outputs/runs/)")
    p.set_defaults(func=run)
