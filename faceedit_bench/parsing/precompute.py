"""Batched, resumable parser-mask precompute into a ``.npy`` uint8 label array (N, res, res).

Crash safety and resume: the array is preallocated as ``<out>.partial`` (a ``.npy`` memmap) and
a small ``<out>.progress`` JSON file holds the number of rows done plus a fingerprint of
everything that determines the bytes (input shape, resolution, batch size, parser weights,
device type). After each flushed batch the counter is rewritten atomically (temp file +
``os.replace``). A rerun after a kill continues at the counter; rows past it may hold garbage
from the killed batch and are recomputed. Batches always start at multiples of ``batch_size``
and inference is deterministic (eval mode, cuDNN deterministic, no benchmark), so a resumed run
ends byte-identical to an uninterrupted one on the same device and thread count. Only the
finished array is moved to ``out`` (``os.replace``); nothing half-written carries the final name.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .preprocess import parse_labels


def _state_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _write_json_atomic(path: Path, obj: dict) -> None:
    from ..io_utils import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(obj).encode())


def _read_progress(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _deterministic():
    old = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


class _PathImages:
    """Lazy (N, res, res, 3) uint8 view of image files (PIL RGB, bilinear resize to res)."""

    def __init__(self, paths: Sequence, res: int | None):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("precompute_masks: empty list of image paths")
        if res is None:
            from PIL import Image

            with Image.open(self.paths[0]) as im:
                res = im.size[0]
                if im.size[0] != im.size[1]:
                    raise ValueError(f"{self.paths[0]}: image is {im.size[0]}x{im.size[1]}; "
                                     f"pass res to resize non-square images")
        self.res = int(res)
        self.shape = (len(self.paths), self.res, self.res, 3)
        self._pool = ThreadPoolExecutor(max_workers=2)

    def _load(self, p: Path) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if im.size != (self.res, self.res):
                    im = im.resize((self.res, self.res), Image.BILINEAR)
                return np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError) as e:
            raise ValueError(f"{p}: cannot decode image ({e}); expected a readable RGB image") from e

    def __getitem__(self, sl: slice) -> np.ndarray:
        return np.stack(list(self._pool.map(self._load, self.paths[sl])))


def precompute_masks(images, parser, out_path, res: int | None = None, batch_size: int = 32,
                     device=None, progress: bool = True, overwrite: bool = False) -> Path:
    """Parse every image into hard label maps written to ``out_path`` (``.npy``, uint8 N x res x res).

    images: uint8 array (N, H, W, 3) (a memmap is fine) or a sequence of image file paths.
    parser: a :class:`~faceedit_bench.parsing.bisenet.BiSeNet` or a weights path for
    :func:`~faceedit_bench.parsing.weights.load_bisenet`. res: output side (default: the images').
    device: default CUDA when available. Returns ``out_path``; an existing complete file is kept
    unless ``overwrite``.
    """
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        return out_path
    if isinstance(parser, (str, os.PathLike)):
        from .weights import load_bisenet

        parser = load_bisenet(parser)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"precompute_masks: images must be uint8 (N, H, W, 3), got "
                             f"{images.dtype} {images.shape}")
        n, h, w = images.shape[:3]
    else:
        images = _PathImages(images, res)
        n, h, w = images.shape[:3]
    if res is None:
        if h != w:
            raise ValueError(f"precompute_masks: images are {h}x{w}; pass res for a square output")
        res = h
    res, batch_size = int(res), int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    parser = parser.to(device).eval()
    fingerprint = hashlib.sha256(json.dumps({
        "n": n, "h": h, "w": w, "res": res, "batch_size": batch_size, "device": device.type,
        "parser": _state_hash(parser), "input_size": getattr(parser, "input_size", None),
    }, sort_keys=True).encode()).hexdigest()

    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    prog_path = out_path.with_name(out_path.name + ".progress")
    prog = _read_progress(prog_path)
    done = 0
    if (prog and prog.get("fingerprint") == fingerprint and partial.exists()
            and 0 <= int(prog.get("done", -1)) <= n):
        done = int(prog["done"])
        mm = np.lib.format.open_memmap(partial, mode="r+")
        if mm.shape != (n, res, res) or mm.dtype != np.uint8:
            del mm
            done = 0
    if done == 0:
        if partial.exists():
            partial.unlink()
        mm = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(n, res, res))
        _write_json_atomic(prog_path, {"done": 0, "fingerprint": fingerprint})

    from tqdm.auto import tqdm

    bar = tqdm(total=n, initial=done, desc=f"masks -> {out_path.name}", unit="img",
               disable=not progress, dynamic_ncols=True)
    with _deterministic():
        for start in range(done, n, batch_size):
            end = min(start + batch_size, n)
            labels = parse_labels(parser, np.asarray(images[start:end]), out_size=(res, res),
                                  device=device)
            mm[start:end] = labels.cpu().numpy()
            mm.flush()
            _write_json_atomic(prog_path, {"done": end, "fingerprint": fingerprint})
            bar.update(end - start)
    bar.close()
    mm.flush()
    del mm
    os.replace(partial, out_path)
    prog_path.unlink(missing_ok=True)
    return out_path
