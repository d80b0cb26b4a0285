"""Known-harmless library messages are dropped (faceedit_bench/quiet.py); others still show."""
from __future__ import annotations

import logging
import warnings

from faceedit_bench import quiet


def test_known_lines_dropped_others_kept(caplog):
    quiet.install()
    quiet.install()  # idempotent: one filter per logger
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert log.filters.count(quiet._FILTER) == 1
    with caplog.at_level(logging.INFO):
        log.info("`Trainer.fit` stopped: `max_epochs=1` reached.")
        log.info("💡 Tip: For seamless cloud logging ... try installing [litlogger](https://pypi.org/project/litlogger/)")
        log.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("default")
        quiet.install()  # after simplefilter (it goes first); catch_warnings restores both on exit
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`")
        warnings.warn("something the user must see")
    assert [str(w.message) for w in got] == ["something the user must see"]
