"""Subprocess worker for the DDP and resume tests: trains a registered method on a toy set.

``python tests/_train_worker.py METHOD[,METHOD...] RES OUT MAX_ITERS [--trainer cpu|ddp_cpu2]
[--kill-at N] [--devices D --num-nodes M] [--same-attrs] [--set key=value ...]`` trains each method in turn (one DDP launch serves them all) under
``OUT/<method>/`` and saves every rank's final state to ``OUT/<method>/params_rank<r>.pt``; with ``--kill-at`` the process
SIGKILLs itself when the iteration counter reaches N (after that iteration's checkpoint).
Launched by ``torchrun`` (one or several nodes), Lightning takes the ranks from its environment;
``--devices`` / ``--num-nodes`` must then describe that launch.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import torch
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("WANDB_MODE", "disabled")
torch.set_num_threads(1)

import lightning.pytorch as pl  # noqa: E402


class ToyFaces(Dataset):
    """Random images with a structured attribute signal (batch dict of DESIGN §3)."""

    def __init__(self, n: int = 48, res: int = 32, n_attrs: int = 13, seed: int = 0,
                 same_attrs: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.attrs = (torch.rand(n, n_attrs, generator=g) > 0.5).float()
        if same_attrs:  # every image carries row 0's labels: a batch shuffle of targets is a no-op
            self.attrs[:] = self.attrs[:1]
        img = torch.rand(n, 3, res, res, generator=g) * 0.5 - 0.25
        img[:, 0] += (self.attrs[:, :1, None] - 0.5)  # attribute 0 shifts the red channel
        self.images = img.clamp(-1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        res = self.images.shape[-1]
        return {"image": self.images[i], "attrs": self.attrs[i],
                "parts": torch.zeros(res, res, dtype=torch.uint8), "index": i}


class KillAt(pl.Callback):
    def __init__(self, it: int) -> None:
        self.it = it

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.iteration >= self.it:  # runs after the checkpoint callback of this iteration
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAt(pl.Callback):
    """Send this process ``signum`` when the iteration counter reaches ``it`` (as a scheduler would)."""

    def __init__(self, it: int, signum: int) -> None:
        self.it, self.signum, self.sent = it, signum, False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.iteration >= self.it and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


class SaveParams(pl.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out
        self.start = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = pl_module.iteration  # > 0 when the run resumed
        self.initial = {k: v.detach().cpu().clone() for k, v in pl_module.named_parameters()}

    def on_train_end(self, trainer, pl_module) -> None:
        state = {"params": {k: v.detach().cpu().clone() for k, v in pl_module.named_parameters()},
                 "state": {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()},
                 "iteration": pl_module.iteration, "start_iteration": self.start,
                 "initial": self.initial}
        torch.save(state, self.out / f"params_rank{trainer.global_rank}.pt")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("method")
    p.add_argument("res", type=int)
    p.add_argument("out")
    p.add_argument("max_iters", type=int)
    p.add_argument("--trainer", default="cpu")
    p.add_argument("--kill-at", type=int, default=None)
    p.add_argument("--term-at", type=int, default=None, help="send SIGTERM at this iteration")
    p.add_argument("--ckpt-every", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--devices", type=int, default=None, help="trainer.devices (per node)")
    p.add_argument("--num-nodes", type=int, default=None, help="trainer.num_nodes")
    p.add_argument("--same-attrs", action="store_true", help="every toy image has the same labels")
    p.add_argument("--set", action="append", default=[], help="extra config override key=value")
    args = p.parse_args()
    for method in args.method.split(","):
        run(method, args, Path(args.out) / method)


def run(method: str, args, out: Path) -> None:
    from faceedit_bench.config import compose_config
    from faceedit_bench.train import fit

    out.mkdir(parents=True, exist_ok=True)
    cfg = compose_config(method, args.res, trainer=args.trainer, overrides=[
        f"profile.max_iters={args.max_iters}", f"profile.batch_size={args.batch_size}",
        f"profile.ckpt_every={args.ckpt_every}", "profile.sample_every=0",
        "profile.progress_bar=false", "profile.deterministic=true", "profile.resume=auto",
        f"out_dir={out}", "+run_name=run", "data.num_workers=0", *args.set,
        *([f"trainer.devices={args.devices}"] if args.devices else []),
        *([f"trainer.num_nodes={args.num_nodes}"] if args.num_nodes else [])])
    cbs = [SaveParams(out)]
    # the kill callback goes after fit's own checkpoint callback (callbacks run in order)
    if args.kill_at is not None:
        cbs.append(KillAt(args.kill_at))
    if args.term_at is not None:
        cbs.append(SignalAt(args.term_at, signal.SIGTERM))
    from faceedit_bench.callbacks import TrainingInterrupted

    try:
        fit(cfg, datamodule=ToyFaces(res=args.res, same_attrs=args.same_attrs), logger=False, callbacks=cbs)
    except TrainingInterrupted as e:
        sys.exit(e.code)


if __name__ == "__main__":
    main()
