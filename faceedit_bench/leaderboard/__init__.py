"""Leaderboards rendered from the committed result records and the papers' published numbers.

``load`` reads ``results/*.jsonl`` and ``leaderboards/papers/*.csv``; ``render_tables`` writes one
table per paper table (our measured rows beside the paper's) and one unified table per track,
dataset and resolution (directions and units from ``metrics.registry``); ``plots`` draws
per-attribute TARR bars and edit grids. Output is deterministic.
"""
from .render_tables import render_all

__all__ = ["render_all"]
