"""Known-harmless messages of the libraries underneath, handled instead of printed (issue 20).

Each entry says why it is harmless here; anything else still reaches the console. Installed by
``train.fit`` and the evaluator before their Trainer is built (idempotent).

- Lightning's ``Trainer.fit stopped: max_epochs=1 reached``: the suite's stream is one epoch by
  construction; ``fit`` prints the real reason (iterations, CPU budget, signal) itself.
- Lightning's litlogger advertisement (a tip, not a message about the run).
- Lightning's ``isinstance(treespec, LeafSpec) is deprecated``: raised inside Lightning's own
  ``_pytree`` under torch >= 2.10; nothing the suite calls.
- ``The dataloader ... does not have many workers`` / ``... is not resumable``: the suite's
  stream resumes itself (``train_data.TrainStream`` + ``data.sampler.ResumableSampler``) and
  SynthFaces at 64 px is read from a memory map, where workers do not pay.
"""
from __future__ import annotations

import logging
import re
import warnings

DROPPED_LOG_LINES = (
    re.compile(r"^`Trainer\.fit` stopped: `max_epochs=1` reached\.$"),
    re.compile(r"litlogger"),
)
IGNORED_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*does not have many workers.*",
    r".*is not resumable.*",
)
LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                     "lightning.pytorch.loops.fit_loop")


class _DropKnownLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(p.search(msg) for p in DROPPED_LOG_LINES)


_FILTER = _DropKnownLines()


def install() -> None:
    """Add the log filter to Lightning's loggers and the warning filters (once)."""
    for name in LIGHTNING_LOGGERS:
        log = logging.getLogger(name)
        if _FILTER not in log.filters:
            log.addFilter(_FILTER)
    for pattern in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
