"""``faceedit-bench bench``: data -> classifier -> train/resume -> evaluate -> record -> leaderboards.

Reuses what exists (SynthFaces export, store, classifier, the run's checkpoint). Multi-GPU and
multi-node through the Lightning Trainer: ``--devices N --nodes M`` (DDP); under torchrun or SLURM
run the same command in every process (run ``--prepare-only`` once first on a single process).
"""
from __future__ import annotations

from ._common import add_run_arguments

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench bench                                   # the Quickstart: STGAN, SynthFaces 64 px',
    'faceedit-bench bench --method attgan --res 128 --profile quick',
    'faceedit-bench bench --method stgan --res 256 --data /data/celeba --profile paper --devices 4',
    'faceedit-bench bench --ckpt zoo:stgan_synth_64 profile.eval_batch_size=64',
)


def add_bench_arguments(p, default_method: str) -> None:
    add_run_arguments(p, default_method=default_method)
    p.add_argument("--ckpt", default=None, help="evaluate this checkpoint instead of training")
    p.add_argument("--n", type=int, default=None, help="SynthFaces images to generate (default: data.synth_n, 5000)")
    p.add_argument("--data-dir", default="data", help="exports, stores, classifiers, stats caches")
    p.add_argument("--results", default="outputs/results",
                   help="folder of this checkout's own result files (results.jsonl); the committed results/ "
                        "change only through `make leaderboard` / a publish")
    p.add_argument("--out", default="outputs/leaderboards", help="leaderboards folder to re-render (not the committed one)")
    p.add_argument("--classifier", default=None, help="attribute classifier file (default: data/classifiers/<data_hash>_<res>.pt)")
    p.add_argument("--train-classifier", action="store_true", help="train the classifier when missing (automatic on SynthFaces)")
    p.add_argument("--classifier-epochs", type=int, default=None,
                   help="classifier epochs (default: 2 quickstart, 4 quick, 25 paper)")
    p.add_argument("--inception-weights", default=None, help="torch-fidelity Inception weights for FID/IS ($FACEEDIT_INCEPTION_WEIGHTS)")
    p.add_argument("--swav-weights", default=None, help="SwAV ResNet-50 weights for ssFID ($FACEEDIT_SWAV_WEIGHTS)")
    p.add_argument("--wandb-mode", choices=("online", "offline", "disabled"), default=None,
                   help="default: $WANDB_MODE, else online with $WANDB_API_KEY, else offline")
    p.add_argument("--wandb-project", default=None, help="W&B project (default: $WANDB_PROJECT or faceedit-bench)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--force", action="store_true",
                   help="re-evaluate even if this checkpoint was evaluated under this protocol (replaces its record)")


def run(args) -> int:
    from ..bench import compose_for_cli, main

    cfg, opts = compose_for_cli(args)
    return 2 if cfg is None else main(cfg, opts)


def register(subparsers) -> None:
    from ..bench import QUICKSTART_METHOD, QUICKSTART_PROFILE
    from ..methods import declared_names

    p = subparsers.add_parser("bench", help="train + evaluate a method and update the leaderboards",
                              description=__doc__)
    default = QUICKSTART_METHOD if QUICKSTART_METHOD in declared_names() else "identity"
    add_bench_arguments(p, default)
    p.add_argument("--prepare-only", action="store_true", help="only build the data store and the classifier")
    p.add_argument("--no-compare", action="store_true",
                   help="on SynthFaces, skip evaluating the identity baseline and the method's zoo model "
                        "beside the run (the verdict table: does it edit toward the true counterfactual?)")
    p.set_defaults(func=run, profile=QUICKSTART_PROFILE)
