"""``faceedit-bench config``: print the composed configuration of a run (YAML) and exit."""
from __future__ import annotations

from ._common import add_run_arguments, compose_from_args

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench config --method maggan --res 256 --profile paper',
    'faceedit-bench config --method stgan --variant nosuch     # lists the variants',
)


def run(args) -> int:
    from omegaconf import OmegaConf

    print(OmegaConf.to_yaml(compose_from_args(args)), end="")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("config", help="print the composed config of a run",
                              description=__doc__)
    add_run_arguments(p)
    p.set_defaults(func=run)
