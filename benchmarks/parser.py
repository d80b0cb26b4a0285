"""Benchmark: BiSeNet parser trained on SynthFaces on CPU; accuracy on held-out SynthFaces.

Renders ``--n-train`` SynthFaces (indices 0..n-1, seed 0) and ``--n-eval`` held-out ones
(indices n.., never trained on) at ``--res``, trains a (reduced-width) BiSeNet with
``parsing.train.train_parser`` for ``--steps`` or ``--max-minutes``, then reports pixel
accuracy and mean IoU over the classes present in the held-out label maps, and the precompute
throughput (images/s) of the trained parser. Rendered arrays are cached under ``data/cache``.

    .venv/bin/python benchmarks/parser.py --base 16 --steps 600 --threads 1
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def cached_synth(n: int, res: int, start: int, seed: int = 0):
    from faceedit_bench.parsing.train import synth_arrays

    from faceedit_bench.data.synth_export import RENDERER  # renders of another renderer differ

    path = Path("data/cache") / f"synth_parser_{RENDERER}_s{seed}_i{start}_n{n}_r{res}.npz"
    if path.is_file():
        z = np.load(path)
        return z["images"], z["labels"]
    images, labels = synth_arrays(n, res, seed=seed, start=start)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, images=images, labels=labels)
    tmp.replace(path)
    return images, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=1500)
    ap.add_argument("--n-eval", type=int, default=200)
    ap.add_argument("--base", type=int, default=16, help="BiSeNet width (64 = official)")
    ap.add_argument("--input-size", type=int, default=None, help="parsing side (default --res)")
    ap.add_argument("--crop", type=int, default=None, help="random training crop of the resized images")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--loss", default="ohem", choices=["ohem", "ce"])
    ap.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--jitter", type=float, default=0.2)
    ap.add_argument("--warmup-steps", type=int, default=100)
    ap.add_argument("--schedule", default="constant", choices=["constant", "cosine"])
    ap.add_argument("--crop-mode", default="uniform", choices=["uniform", "class", "mixed"])
    ap.add_argument("--aux-weight", type=float, default=1.0)
    ap.add_argument("--aux-lowres", action="store_true")
    ap.add_argument("--dice-weight", type=float, default=0.0)
    ap.add_argument("--repeat-thresh", type=float, default=None)
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--init-weights", default=None, help="continue from this parser checkpoint")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="data/weights/parser_synth_bench.pt")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from faceedit_bench.parsing.precompute import precompute_masks
    from faceedit_bench.parsing.train import evaluate_parser, train_parser
    from faceedit_bench.parsing.weights import load_bisenet
    from faceedit_bench.parts import PARTS

    t0 = time.time()
    tr_i, tr_l = cached_synth(args.n_train, args.res, start=0)
    ev_i, ev_l = cached_synth(args.n_eval, args.res, start=args.n_train)
    t_data = time.time() - t0

    max_time = None
    if args.max_minutes:
        s = int(args.max_minutes * 60)
        max_time = f"00:{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    t0, c0 = time.time(), time.process_time()
    out = train_parser(tr_i, tr_l, args.out, base=args.base,
                       input_size=args.input_size or args.res, steps=args.steps,
                       batch_size=args.batch_size, loss=args.loss, optimizer=args.optimizer,
                       lr=args.lr, jitter=args.jitter, crop=args.crop, max_time=max_time,
                       warmup_steps=args.warmup_steps, schedule=args.schedule,
                       crop_mode=args.crop_mode, aux_weight=args.aux_weight,
                       aux_lowres=args.aux_lowres, dice_weight=args.dice_weight,
                       repeat_thresh=args.repeat_thresh,
                       init_weights=args.init_weights, progress=False,
                       extra={"data": "synth", "res": args.res, "n_train": args.n_train})
    t_train, c_train = time.time() - t0, time.process_time() - c0
    model = load_bisenet(out)
    steps = int(torch.load(out, weights_only=True)["extra"]["steps"])
    t0 = time.time()
    metrics = evaluate_parser(model, ev_i, ev_l)
    t_eval = time.time() - t0
    t0 = time.time()
    precompute_masks(ev_i, model, Path("data/cache/bench_parser_masks.npy"), batch_size=32,
                     progress=False, overwrite=True)
    t_pre = time.time() - t0
    result = {
        "res": args.res, "base": args.base, "input_size": args.input_size or args.res,
        "n_train": args.n_train, "n_eval": args.n_eval, "steps": steps,
        "crop": args.crop, "batch_size": args.batch_size, "loss": args.loss, "optimizer": args.optimizer,
        "lr": args.lr, "warmup_steps": args.warmup_steps, "schedule": args.schedule,
        "crop_mode": args.crop_mode, "aux_weight": args.aux_weight, "aux_lowres": args.aux_lowres,
        "dice_weight": args.dice_weight, "repeat_thresh": args.repeat_thresh, "jitter": args.jitter,
        "threads": args.threads, "render_s": round(t_data, 1), "train_s": round(t_train, 1),
        "train_cpu_s": round(c_train, 1), "init_weights": args.init_weights,
        "pixel_acc": round(metrics["pixel_acc"], 4),
        "miou_present": round(metrics["miou_present"], 4),
        "iou": {PARTS[c]: round(v, 3) for c, v in metrics["iou"].items()},
        "eval_s": round(t_eval, 1), "precompute_img_per_s": round(args.n_eval / t_pre, 1),
        "weights": str(out),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
