"""SynthFaces: the built-in procedural face dataset with ground-truth counterfactuals (DESIGN §6).

``render_batch(seed, indices, res)`` renders faces deterministically from (seed, index): identity
factors and attributes come from separate counter-based random streams (synth_factors), the
pixels from signed distance functions (synth_render). Passing ``attrs`` re-renders the same
identities with another attribute vector — the counterfactual of an edit.

Determinism: the same call gives identical bytes. A sample's pixels do not depend on its batch
neighbours up to float rounding (vectorised vs scalar tails of elementwise kernels may differ in
the last ulp), so counterfactuals are rendered with the same batch layout as their sources.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..protocol import CELEBA_ATTRS, single_flip_targets
from .synth_factors import (
    RENDERED_ATTRS, fill_celeba_columns, identity_uniforms, rendered_from_celeba,
    sample_rendered_attrs,
)
from .synth_render import render_tensors

__all__ = ["RENDERED_ATTRS", "render_batch", "flip_targets", "to_uint8", "sample_attrs"]

_COMPILED: dict = {}


def _renderer(compile: bool):
    if not compile:
        return render_tensors
    if "fn" not in _COMPILED:
        _COMPILED["fn"] = torch.compile(render_tensors, dynamic=False)
    return _COMPILED["fn"]


def sub_batch(res: int) -> int:
    """Samples per renderer call: ~2^19 pixels (32 at 128 px). Windows are unions over the
    call's samples, so larger calls compute more empty pixels; smaller ones pay more per-op
    overhead (measured at 128 px: 32 per call ~10% faster per image than 16 or 64)."""
    return max(1, (1 << 19) // (res * res))


def _as_rendered(attrs, b: int) -> np.ndarray:
    arr = attrs.detach().cpu().numpy() if isinstance(attrs, torch.Tensor) else np.asarray(attrs)
    if arr.ndim != 2 or arr.shape[0] != b:
        raise ValueError(f"attrs must have one row per index ({b}), got shape {arr.shape}")
    if arr.shape[1] == len(CELEBA_ATTRS):
        arr = rendered_from_celeba(arr)
    elif arr.shape[1] != len(RENDERED_ATTRS):
        raise ValueError(f"attrs must have 40 (CELEBA_ATTRS) or {len(RENDERED_ATTRS)} "
                         f"(RENDERED_ATTRS) columns, got {arr.shape[1]}")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError("attrs must be in {0,1}")
    return arr.astype(np.uint8)


def sample_attrs(seed: int, indices: Sequence[int]) -> np.ndarray:
    """(B, 40) uint8 {0,1}: the sampled attributes with the fill rule, without rendering."""
    return fill_celeba_columns(sample_rendered_attrs(seed, indices), identity_uniforms(seed, indices))


@torch.no_grad()
def render_batch(seed: int, indices: Sequence[int], res: int, attrs=None, *, soft: bool = True,
                 compile: bool = False, device: str | torch.device = "cpu") -> dict:
    """Render the faces ``indices`` of dataset ``seed`` at ``res`` x ``res``.

    ``attrs``: optional (B, 40) or (B, 14) {0,1} override of the sampled attributes (only the
    rendered columns of RENDERED_ATTRS are read; the other columns are re-filled by rule).
    Returns ``image`` float32 (B,3,H,W) in [0,1], ``labels`` uint8 (B,H,W) (argmax of the soft
    masks, DESIGN §4 class order), ``soft`` float32 (B,19,H,W) (if ``soft``), ``attrs`` uint8
    (B,40) {0,1}.
    """
    if int(res) < 16:
        raise ValueError(f"res must be >= 16, got {res}")
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) == 0:
        raise ValueError("render_batch: indices is empty; expected at least one sample index")
    ident = identity_uniforms(seed, idx)
    rendered = sample_rendered_attrs(seed, idx) if attrs is None else _as_rendered(attrs, len(idx))
    u = torch.from_numpy(ident.astype(np.float32)).to(device)
    a = torch.from_numpy(rendered.astype(np.float32)).to(device)
    fn = _renderer(compile)
    step = sub_batch(int(res))
    parts = [fn(u[i:i + step], a[i:i + step], int(res), soft) for i in range(0, len(idx), step)]

    def cat(k):
        return torch.cat([p[k] for p in parts]) if len(parts) > 1 else parts[0][k]

    out = {"image": cat(0), "labels": cat(1), "attrs": torch.from_numpy(fill_celeba_columns(rendered, ident))}
    if soft:
        out["soft"] = cat(2)
    return out


def flip_targets(attrs40: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """For each rendered attribute, the (B, 14) target with it inverted, conflict rules applied.

    Uses ``protocol.single_flip_targets`` over RENDERED_ATTRS (hair colours exclusive,
    Bald <-> Bangs), so targets are what the evaluator feeds the methods.
    """
    arr = attrs40.numpy() if isinstance(attrs40, torch.Tensor) else np.asarray(attrs40)
    r = torch.from_numpy(rendered_from_celeba(arr).astype(np.float32))
    tg = single_flip_targets(r, RENDERED_ATTRS)
    return {name: t.numpy().astype(np.uint8) for name, t in zip(RENDERED_ATTRS, tg)}


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) float [0,1] -> (B,H,W,3) uint8 (round half to even of x*255)."""
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
