"""CelebAMask-HQ per-part mask PNGs merged into one label map in the ``parts.PARTS`` order.

Layout: ``CelebAMask-HQ-mask-anno/<k//2000>/<k:05d>_<part>.png`` (k = 0-based image index),
512 x 512 binary PNGs, present only when the part exists (implementations.md §8). Each PNG is
read as grayscale and ``> 0`` is the part (face-parsing.PyTorch tests ``== 225`` after
``convert('P')``). Parts are painted in ``PARTS`` order (= face-parsing.PyTorch
``prepropess_data.py``: skin, brows, eyes, eye_g, ears, ear_r, nose, mouth, lips, neck, neck_l,
cloth, hair, hat), so later parts overwrite earlier ones: hair and hat are painted last.
Mapping is by part *name*, never by CelebAMask-HQ's own index.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..parts import CELEBAMASK_HQ_FILE_PARTS, PART_INDEX, PARTS
from .celeba import DataFormatError

MASK_DIR = "CelebAMask-HQ-mask-anno"
#: our class name -> CelebAMask-HQ file part name
_FILE_NAME = {ours: theirs for theirs, ours in CELEBAMASK_HQ_FILE_PARTS.items()}
#: painting order: PARTS without background (later overwrite earlier)
PAINT_ORDER: tuple[str, ...] = PARTS[1:]


def index_mask_dir(mask_dir) -> dict[int, dict[str, Path]]:
    """{image index k: {part class name: png path}} from one listing of each sub-folder."""
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise FileNotFoundError(f"{mask_dir}: mask folder not found; expected {MASK_DIR}/<k//2000>/"
                                "<k:05d>_<part>.png (CelebAMask-HQ or a SynthFaces export)")
    by_file = {theirs: ours for theirs, ours in CELEBAMASK_HQ_FILE_PARTS.items()}
    out: dict[int, dict[str, Path]] = {}
    for sub in sorted(os.listdir(mask_dir)):
        d = mask_dir / sub
        if not (d.is_dir() and sub.isdigit()):
            continue
        for name in os.listdir(d):
            stem, ext = os.path.splitext(name)
            if ext.lower() != ".png" or "_" not in stem:
                continue
            num, part = stem.split("_", 1)
            if not num.isdigit() or part not in by_file:
                continue
            out.setdefault(int(num), {})[by_file[part]] = d / name
    return out


def merge_part_masks(files: dict[str, Path], size_hw: tuple[int, int]) -> np.ndarray:
    """Paint the parts of one image into an H x W uint8 label map (background 0).

    ``files``: {class name: png}; each PNG must be ``size_hw`` (H, W), else an error naming it.
    """
    from PIL import Image

    labels = np.zeros(size_hw, np.uint8)
    for part in PAINT_ORDER:
        path = files.get(part)
        if path is None:
            continue
        try:
            with Image.open(path) as im:
                m = np.asarray(im.convert("L"))
        except Exception as e:
            raise DataFormatError(f"{path}: cannot decode mask PNG ({type(e).__name__}: {e}); "
                                  "expected a grayscale PNG") from None
        if m.shape != tuple(size_hw):
            raise DataFormatError(
                f"{path}: mask is {m.shape[1]}x{m.shape[0]} (WxH); expected "
                f"{size_hw[1]}x{size_hw[0]}")
        labels[m > 0] = PART_INDEX[part]
    return labels


def mask_file_name(k: int, part: str) -> str:
    """Relative path of part ``part`` (our class name) of image ``k``."""
    return f"{k // 2000}/{k:05d}_{_FILE_NAME[part]}.png"
