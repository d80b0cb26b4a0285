"""Training callbacks keyed on generator iterations (``pl_module.iteration``), not global_step.

Lightning's ``global_step`` counts every optimizer step in manual mode (n_critic + 1 per
iteration, suites.md §C2), so checkpoints, sample grids and the stop condition use the method's
own counter.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import lightning.pytorch as pl
import torch


def _atomic_save_checkpoint(trainer: pl.Trainer, path: Path) -> None:
    """The trainer's full checkpoint dict (what ``trainer.save_checkpoint`` writes; every rank
    builds it) saved by rank 0 with :func:`~faceedit_bench.io_utils.atomic_torch_save`.

    Not ``trainer.save_checkpoint``: through fsspec it stages the bytes in a ``mkstemp`` file of
    the system temp dir, which a kill leaves behind; ours stages beside the target and the next
    save removes a dead writer's temporary file."""
    from .io_utils import atomic_torch_save

    checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
    if trainer.is_global_zero:
        atomic_torch_save(checkpoint, path)
    trainer.strategy.barrier("faceedit_ckpt")


#: the periodic checkpoints :class:`IterationCheckpoint` writes (and the only files it deletes)
PERIODIC = re.compile(r"iter_(\d+)\.ckpt")


def periodic_checkpoints(dirpath: str | os.PathLike) -> list[Path]:
    """``iter_<it>.ckpt`` files of ``dirpath``, oldest write first (other files are never listed)."""
    files = [p for p in Path(dirpath).glob("iter_*.ckpt") if PERIODIC.fullmatch(p.name)]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, int(PERIODIC.fullmatch(p.name)[1])))


def prune_checkpoints(dirpath: str | os.PathLike, keep: int | None,
                      protect: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Delete all but the ``keep`` most recently written ``iter_*.ckpt`` (None: keep all), never
    one in ``protect``; returns what was deleted."""
    if keep is None:
        return []
    kept = {Path(p).resolve() for p in protect}
    files = [p for p in periodic_checkpoints(dirpath) if p.resolve() not in kept]
    gone = files[:max(len(files) - keep, 0)]
    for path in gone:
        path.unlink(missing_ok=True)
    return gone


def keep_count(value: Any) -> int | None:
    """Profile ``keep_ckpts``: None or -1 keep every periodic checkpoint, else a count >= 0."""
    if value is None or int(value) == -1:
        return None
    if int(value) < 0:
        raise ValueError(f"profile.keep_ckpts={value!r}: expected a count >= 0, or -1/null for all")
    return int(value)


class IterationCheckpoint(pl.Callback):
    """Save ``iter_<it>.ckpt`` every ``every`` iterations and keep ``last.ckpt`` current.

    ``last.ckpt`` is also written when training ends. Every file is complete or absent (written
    to a temporary name first), so a run killed at any moment resumes from the latest one.
    ``keep``: how many periodic files to keep (the most recently written; None: all; 0: none);
    after each save rank 0 deletes older ``iter_*.ckpt`` only, never ``last.ckpt`` nor a file in
    ``protect`` (the checkpoint this run resumed from).
    """

    def __init__(self, dirpath: str | os.PathLike, every: int, keep: int | None = None,
                 protect: Sequence[str | os.PathLike] = ()) -> None:
        if every < 1:
            raise ValueError(f"checkpoint interval must be >= 1 iteration, got {every}")
        self.dirpath, self.every, self.keep = Path(dirpath), int(every), keep
        self.protect = tuple(protect)
        self.last_saved = -1

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def _save(self, trainer: pl.Trainer, it: int) -> None:
        if it == self.last_saved:
            return
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
        trainer.strategy.barrier("faceedit_ckpt_dir")
        if self.keep != 0:
            _atomic_save_checkpoint(trainer, self.dirpath / f"iter_{it:07d}.ckpt")
        _atomic_save_checkpoint(trainer, self.last_path)
        if trainer.is_global_zero:  # after the barrier of the save: every rank is done writing
            prune_checkpoints(self.dirpath, self.keep, self.protect)
        self.last_saved = it

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = int(pl_module.iteration)
        if it % self.every == 0:
            self._save(trainer, it)

    def on_train_end(self, trainer, pl_module) -> None:
        self._save(trainer, int(pl_module.iteration))


class StopAtIteration(pl.Callback):
    """Stop when ``pl_module.iteration`` reaches ``max_iters`` (also after a resume)."""

    def __init__(self, max_iters: int) -> None:
        self.max_iters = int(max_iters)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.iteration >= self.max_iters:
            trainer.should_stop = True
            set_stop_reason(trainer, f"reached max_iters={self.max_iters} at iteration {pl_module.iteration}")


def set_stop_reason(trainer, reason: str) -> None:
    """Keep the first reason training stopped (read by ``train.fit`` for its last line)."""
    if not getattr(trainer, "faceedit_stop_reason", None):
        trainer.faceedit_stop_reason = reason


class SampleGrid(pl.Callback):
    """Every ``every`` iterations, edit fixed inputs and save/log a grid.

    Inputs: the first ``n`` rows of the training set (fixed across runs and resumes). Columns:
    input, reconstruction, one single-attribute flip per attribute (``sample_grid`` of the
    method). Written to ``dirpath/iter_<it>.png`` on rank 0 and sent to the logger when it has
    ``log_image`` (WandbLogger).
    """

    def __init__(self, dirpath: str | os.PathLike, every: int, n: int = 8) -> None:
        self.dirpath, self.every, self.n = Path(dirpath), int(every), int(n)
        self._inputs: tuple[torch.Tensor, torch.Tensor] | None = None

    def _fixed_inputs(self, trainer, pl_module):
        if self._inputs is None:
            ds = trainer.train_dataloader.dataset
            rows = [ds[i] for i in range(min(self.n, len(ds)))]
            images = torch.stack([torch.as_tensor(r["image"]) for r in rows])
            attrs = torch.stack([torch.as_tensor(r["attrs"]) for r in rows]).float()
            parts = (torch.stack([torch.as_tensor(r["parts"]) for r in rows])
                     if all("parts" in r for r in rows) else None)
            self._inputs = (images, attrs, parts)
        images, attrs, parts = self._inputs
        dev = pl_module.device
        return images.to(dev), attrs.to(dev), None if parts is None else parts.to(dev)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = int(pl_module.iteration)
        if self.every < 1 or it % self.every or not trainer.is_global_zero:
            return
        from torchvision.utils import make_grid, save_image

        images, attrs, parts = self._fixed_inputs(trainer, pl_module)
        grid = pl_module.sample_grid(images, attrs, parts).float().cpu()
        grid = make_grid((grid + 1) / 2, nrow=2 + pl_module.n_attrs, padding=1).clamp(0, 1)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"iter_{it:07d}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        save_image(grid, tmp)
        os.replace(tmp, path)
        logger = trainer.logger
        if logger is not None and hasattr(logger, "log_image"):
            logger.log_image("samples", [grid], step=it,
                             caption=["input | reconstruction | " + " | ".join(pl_module.attrs)])


class StopAtCPUBudget(pl.Callback):
    """Stop once this process has used ``minutes`` of CPU time in training (summed over resumes).

    CPU time (``time.process_time``: all threads of this process, not data-loader workers) is
    what a shared machine can measure fairly; the budget is checked after every iteration.
    """

    def __init__(self, minutes: float) -> None:
        self.budget = float(minutes) * 60.0
        self.used = 0.0
        self._t0: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        import time

        self._t0 = time.process_time()

    def _now(self) -> float:
        import time

        return self.used + (time.process_time() - self._t0 if self._t0 is not None else 0.0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        used = self._now()
        pl_module.log("cpu_seconds", used, on_step=True)
        if used >= self.budget:
            trainer.should_stop = True
            of = getattr(pl_module, "max_iters", None)
            set_stop_reason(trainer, f"stopped by the {self.budget / 60:g} CPU-minute budget at iteration "
                                     f"{pl_module.iteration}" + (f" of {of}" if of else "")
                                     + f" ({used:.0f} CPU-s)")

    def state_dict(self) -> dict:
        return {"used": self._now()}

    def load_state_dict(self, state: dict) -> None:
        self.used = float(state.get("used", 0.0))


class TrainingInterrupted(Exception):
    """Training stopped by a signal after saving a checkpoint; ``code`` is the exit code."""

    def __init__(self, signum: int, iteration: int, path: Path) -> None:
        import signal as _signal

        self.signum, self.iteration, self.path = signum, iteration, path
        self.code = 128 + signum
        name = _signal.Signals(signum).name
        super().__init__(f"stopped by {name} at iteration {iteration}: saved {path}; "
                         "run the same command again to resume from it")


class SaveOnSignal(pl.Callback):
    """SIGTERM, SIGINT and SIGUSR1 (SLURM's preemption warning) during ``fit``: finish the current
    iteration, save ``last.ckpt`` at it through :class:`IterationCheckpoint` (atomic, every rank
    taking part: the flag is max-reduced across ranks each iteration) and stop; ``train.fit``
    then raises :class:`TrainingInterrupted` (exit code 128 + signal: 143 for SIGTERM, 130 for
    SIGINT). A second SIGINT during the save exits at once (130); the previous ``last.ckpt``
    stays intact because saves go through a temporary file. Under SLURM, Lightning's own
    SLURMEnvironment handles SIGUSR1 (auto-requeue) and this callback leaves that signal alone.
    """

    SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")

    def __init__(self, checkpoint: IterationCheckpoint) -> None:
        self.checkpoint = checkpoint
        self.received: int | None = None
        self.saved: TrainingInterrupted | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        import signal as _signal

        if self.received is not None and signum == _signal.SIGINT:
            os._exit(130)  # second Ctrl-C: leave now; the last complete checkpoint is untouched
        self.received = signum

    def on_train_start(self, trainer, pl_module) -> None:
        import signal as _signal
        import threading

        from lightning.fabric.plugins.environments import SLURMEnvironment

        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.SIGNALS:
            if name == "SIGUSR1" and SLURMEnvironment.detect():
                continue
            signum = getattr(_signal, name)
            self._previous[signum] = _signal.signal(signum, self._handler)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        flag = torch.tensor(float(self.received or 0))
        if trainer.world_size > 1:
            flag = trainer.strategy.reduce(flag.to(pl_module.device), reduce_op="max").cpu()
        if flag.item() == 0:
            return
        signum = int(flag.item())
        self.checkpoint.last_saved = -1  # save even if this iteration was just saved
        self.checkpoint._save(trainer, int(pl_module.iteration))
        self.saved = TrainingInterrupted(signum, int(pl_module.iteration), self.checkpoint.last_path)
        trainer.should_stop = True
        set_stop_reason(trainer, str(self.saved))

    def on_train_end(self, trainer, pl_module) -> None:
        import signal as _signal

        for signum, handler in self._previous.items():
            _signal.signal(signum, handler)
        self._previous.clear()
