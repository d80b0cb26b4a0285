"""``faceedit-bench parser train|eval``: train / fine-tune / score the BiSeNet face parser.

Data: ``--data synth`` renders SynthFaces with their ground-truth label maps; ``--data DIR``
reads a folder in the CelebA / CelebA-HQ layout with CelebAMask-HQ-style part masks (through
the data store, ground-truth masks). Labels are in the face-parsing.PyTorch class order.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench parser train --base 16 --out data/weights/parser_synth.pt',
    'faceedit-bench parser eval --parser-weights data/weights/parser_synth.pt',
)


def _arrays(args, split: str):
    """(images, labels, indices) for ``split`` from ``--data``."""
    if args.data == "synth":
        from ..parsing.train import synth_arrays

        n = args.n if split == "train" else args.n_eval
        start = 0 if split == "train" else args.n  # held-out: indices after the training ones
        images, labels = synth_arrays(n=n, res=args.res, seed=args.seed, start=start)
        return images, labels, None
    from ..parsing.train import store_arrays

    return store_arrays(args.data, res=args.res, dataset=args.dataset, split=split,
                        store_root=args.store_root)


def _report(metrics: dict) -> str:
    """JSON line of :func:`evaluate_parser`'s result with IoUs keyed by part name."""
    from ..parts import PARTS

    return json.dumps({**metrics, "iou": {PARTS[c]: v for c, v in metrics["iou"].items()}})


def _threads(args) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def run_train(args) -> int:
    from ..parsing.train import evaluate_parser, train_parser

    _threads(args)
    images, labels, idx = _arrays(args, "train")
    out = train_parser(
        images, labels, args.out, base=args.base, input_size=args.input_size or args.res,
        steps=args.steps, batch_size=args.batch_size, loss=args.loss, optimizer=args.optimizer,
        lr=args.lr, jitter=args.jitter, crop=args.crop, init_weights=args.init_weights,
        warmup_steps=args.warmup_steps, schedule=args.schedule, crop_mode=args.crop_mode,
        aux_weight=args.aux_weight, aux_lowres=args.aux_lowres, dice_weight=args.dice_weight,
        repeat_thresh=args.repeat_thresh,
        seed=args.seed, num_workers=args.num_workers, max_time=args.max_time, indices=idx,
        extra={"data": str(args.data), "res": args.res},
    )
    print(f"parser weights -> {out}")
    if args.eval:
        from ..parsing.weights import load_bisenet

        vi, vl, vidx = _arrays(args, "test")
        if vidx is not None:
            vi, vl = vi[vidx], vl[vidx]
        print(_report(evaluate_parser(load_bisenet(out), vi, vl)))
    return 0


def run_eval(args) -> int:
    from ..parsing.train import evaluate_parser
    from ..parsing.weights import load_bisenet

    _threads(args)
    model = load_bisenet(args.parser_weights)
    images, labels, idx = _arrays(args, args.split)
    if idx is not None:
        images, labels = images[idx], labels[idx]
    print(_report(evaluate_parser(model, images, labels, batch_size=args.batch_size)))
    return 0


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="synth",
                   help="'synth' (rendered SynthFaces) or a folder in CelebA/CelebA-HQ layout "
                        "with CelebAMask-HQ-mask-anno/")
    p.add_argument("--dataset", default=None, choices=["celeba", "celebahq", "synth"],
                   help="layout of --data DIR (default: guessed from its contents)")
    p.add_argument("--res", type=int, default=128, help="image side the parser sees")
    p.add_argument("--n", type=int, default=2000, help="SynthFaces: training images")
    p.add_argument("--n-eval", type=int, default=200, help="SynthFaces: held-out images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store-root", default="data/stores", help="where data stores are built")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def register(subparsers) -> None:
    p = subparsers.add_parser("parser", help="train / evaluate the BiSeNet face parser",
                              description=__doc__)
    sub = p.add_subparsers(dest="parser_command", metavar="<train|eval>", required=True)

    t = sub.add_parser("train", help="train or fine-tune BiSeNet on ground-truth label maps")
    _data_args(t)
    t.add_argument("--out", default="data/weights/parser_synth.pt", help="output weights file")
    t.add_argument("--base", type=int, default=64,
                   help="width (64 = official BiSeNet; smaller for CPU runs)")
    t.add_argument("--input-size", type=int, default=None,
                   help="side images are resized to for parsing (default --res; official 512)")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--loss", default="ohem", choices=["ohem", "ce"],
                   help="official OHEM cross-entropy (default) or plain cross-entropy")
    t.add_argument("--optimizer", default="adam", choices=["adam", "sgd"],
                   help="adam (fast, default) or the official SGD + warm-up + poly schedule")
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--jitter", type=float, default=0.5, help="colour-jitter strength (official 0.5)")
    t.add_argument("--crop", type=int, default=None,
                   help="train on random crops of this side of the images resized to --input-size")
    t.add_argument("--warmup-steps", type=int, default=100, help="linear (adam) lr warm-up steps")
    t.add_argument("--schedule", default="constant", choices=["constant", "cosine"],
                   help="adam lr after the warm-up: constant (default) or cosine decay to 0")
    t.add_argument("--crop-mode", default="uniform", choices=["uniform", "class", "mixed"],
                   help="uniform random crops (official), crops centred on a random class "
                        "present (thin, rare parts seen more often), or each at random (mixed)")
    t.add_argument("--aux-weight", type=float, default=1.0,
                   help="weight of the two auxiliary heads' losses (official 1)")
    t.add_argument("--aux-lowres", action="store_true",
                   help="auxiliary losses at the heads' own 1/8, 1/16 resolution (cheaper)")
    t.add_argument("--dice-weight", type=float, default=0.0,
                   help="add this x soft-Dice loss on the main head (0 = off)")
    t.add_argument("--repeat-thresh", type=float, default=None,
                   help="repeat-factor sampling threshold t (LVIS; e.g. 0.3; default off)")
    t.add_argument("--init-weights", default=None,
                   help="fine-tune from this checkpoint (e.g. 79999_iter.pth)")
    t.add_argument("--num-workers", type=int, default=0)
    t.add_argument("--max-time", default=None, help="stop after DD:HH:MM:SS")
    t.add_argument("--no-eval", dest="eval", action="store_false",
                   help="skip the held-out evaluation after training")
    t.set_defaults(func=run_train)

    e = sub.add_parser("eval", help="pixel accuracy and mean IoU on held-out label maps")
    _data_args(e)
    e.add_argument("--parser-weights", default=None,
                   help="weights file (default $FACEEDIT_PARSER_WEIGHTS)")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--batch-size", type=int, default=32)
    e.set_defaults(func=run_eval)
