"""PNG charts: per-attribute TARR bars of a record, and edit grids (matplotlib Agg).

Deterministic bytes: fixed figure size and dpi, ``metadata={'Software': None}`` (Agg's PNG writer
then stores no software tag and never a date), rendered to memory and written atomically.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from .io import write_bytes_atomic
from .load import protocol_id

PNG_METADATA = {"Software": None}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata=PNG_METADATA)
    plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def chart_name(rec: dict) -> str:
    prof = rec.get("profile", "") or "na"
    return f"tarr_{rec['method']}_{rec['dataset']}_{rec['resolution']}_{prof}_{protocol_id(rec)}.png"


def tarr_bar_chart(rec: dict, out_dir: str | Path) -> Path | None:
    """Bars of ``per_attribute['tarr']`` (in %) of one record; None when the record has none."""
    table = rec["per_attribute"].get("tarr")
    if not table:
        return None
    order = [a for a in rec["protocol"].get("attrs", []) if a in table]
    attrs = order + sorted(a for a in table if a not in order)
    vals = [np.nan if table[a] is None else 100.0 * table[a] for a in attrs]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar(range(len(attrs)), vals, color="#4c72b0")
    ax.set_xticks(range(len(attrs)), attrs, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("TARR (%)")
    mean = rec["metrics"].get("tarr", rec["metrics"].get("tarr_mean"))
    title = (f"{rec['method']} · {rec['dataset']} {rec['resolution']}px · "
             f"{rec.get('profile', '')} · protocol {protocol_id(rec)}")
    if mean is not None:
        ax.axhline(100.0 * mean, color="#c44e52", lw=1, ls="--")
        title += f" · mean {100.0 * mean:.1f}%"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(out_dir) / chart_name(rec))


def edit_grid(images: np.ndarray, path: str | Path, row_labels: Sequence[str] = (),
              col_labels: Sequence[str] = (), title: str = "") -> Path:
    """Save an R x C grid of uint8 images (R, C, H, W, 3) with labels as a PNG."""
    images = np.asarray(images)
    if images.ndim != 5 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"edit_grid: expected uint8 images of shape (R, C, H, W, 3), got "
                         f"{images.dtype} {images.shape}")
    r, c = images.shape[:2]
    plt = _plt()
    fig, axes = plt.subplots(r, c, figsize=(1.1 * c + 0.8, 1.1 * r + 0.5), squeeze=False)
    for i in range(r):
        for j in range(c):
            ax = axes[i][j]
            ax.imshow(images[i, j], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0 and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=6, rotation=30)
            if j == 0 and i < len(row_labels):
                ax.set_ylabel(row_labels[i], fontsize=6)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(path))
