"""Arguments shared by the subcommands that run a method."""
from __future__ import annotations

import argparse
from pathlib import Path


def method_name(value: str) -> str:
    """argparse type: a registered method name, else an error listing the registered ones."""
    from ..methods import declared_names

    names = declared_names()
    if value not in names:
        raise argparse.ArgumentTypeError(
            f"unknown method {value!r}; registered methods: {', '.join(names)}"
        )
    return value


def add_run_arguments(p: argparse.ArgumentParser, default_method: str = "identity") -> None:
    """--method/--res/--data/--profile/--trainer/--devices/--nodes/--precision + overrides."""
    p.add_argument("--method", type=method_name, default=default_method,
                   help="registered method name (see `faceedit-bench methods`)")
    p.add_argument("--res", type=int, default=None, help="resolution; default: the profile's")
    p.add_argument("--variant", default=None,
                   help="a variant of the method's config (variants: in configs/method/<m>.yaml)")
    p.add_argument("--data", default="synth",
                   help="configs/data/<name>.yaml (synth, celeba, celebahq) or a folder in the CelebA / CelebA-HQ layout")
    p.add_argument("--profile", default="quick", help="configs/profile/<name>.yaml: quick, paper")
    p.add_argument("--trainer", default=None, help="configs/trainer/<name>.yaml (default: cpu, or gpu when present)")
    p.add_argument("--devices", type=int, default=None, help="devices per node")
    p.add_argument("--nodes", type=int, default=None, help="number of nodes")
    p.add_argument("--precision", default=None, help="Lightning precision, e.g. 32-true, bf16-mixed")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides in Hydra syntax, e.g. data.batch_size=16")


def compose_from_args(args: argparse.Namespace):
    """The composed config for a run, with the CLI's flags applied on top."""
    from ..config import check_group_choices, compose_config

    named = {"profile": args.profile, **({"trainer": args.trainer} if args.trainer else {}),
             **({"data": args.data} if args.data in ("synth", "celeba", "celebahq") or not Path(args.data).is_dir() else {})}
    check_group_choices(named)  # before torch is imported: a typo costs no import time
    trainer = args.trainer
    if trainer is None:
        import torch

        trainer = "gpu" if torch.cuda.is_available() else "cpu"
    overrides = list(args.overrides)
    data = args.data
    if data not in ("synth", "celeba", "celebahq") and Path(data).is_dir():  # DATA=/path/to/celeba
        from ..parsing.train import guess_dataset

        data, root = guess_dataset(data), str(Path(data).resolve())
        overrides.insert(0, f"data.root={root}")
    if args.devices is not None:
        overrides.append(f"trainer.devices={args.devices}")
    if args.nodes is not None:
        overrides.append(f"trainer.num_nodes={args.nodes}")
    if args.precision is not None:
        overrides.append(f"trainer.precision={args.precision}")
    return compose_config(args.method, args.res, data, args.profile, trainer, overrides,
                          variant=getattr(args, "variant", None))
