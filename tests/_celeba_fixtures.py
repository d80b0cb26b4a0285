"""Tiny CelebA-layout / CelebAMask-HQ-layout folders for the data tests (hand-made, deterministic).

Image ``i`` is a flat colour ``colour(i)``; its masks are two rectangles: ``skin`` over the
centre and ``hair`` over the top band overlapping it (hair is painted after skin, so the overlap
is hair), plus ``l_eye`` for even ``i``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from faceedit_bench.protocol import CELEBA_ATTRS


def colour(i: int) -> tuple[int, int, int]:
    return (20 + 37 * i % 200, 200 - 23 * i % 180, 60 + 11 * i % 150)


def attrs_for(i: int) -> np.ndarray:
    """Deterministic 40 labels in {0,1} for image i."""
    return np.array([(i * 7 + j * 3) % 5 < 2 for j in range(len(CELEBA_ATTRS))], np.uint8)


def attr_text(names: list[str], rows: np.ndarray, sep: str = " ", eol: str = "\n",
              count: int | None = None, header=None) -> str:
    header = list(CELEBA_ATTRS) if header is None else header
    lines = [str(len(names) if count is None else count), sep.join(header)]
    for n, r in zip(names, rows):
        lines.append(n + sep + sep.join("1" if v else "-1" for v in r))
    return eol.join(lines) + eol


def expected_mask(hw: tuple[int, int], i: int) -> np.ndarray:
    """Label map (our PARTS ids) the mask PNGs of image i merge into."""
    h, w = hw
    lab = np.zeros(hw, np.uint8)
    lab[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1                   # skin
    if i % 2 == 0:
        lab[h // 3: h // 3 + max(h // 8, 1), w // 4: w // 2] = 4      # l_eye
    lab[: h // 3, :] = 17                                             # hair (painted last)
    return lab


def write_masks(mask_dir: Path, k: int, hw: tuple[int, int], i: int) -> None:
    h, w = hw
    d = mask_dir / str(k // 2000)
    d.mkdir(parents=True, exist_ok=True)
    skin = np.zeros(hw, np.uint8)
    skin[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
    hair = np.zeros(hw, np.uint8)
    hair[: h // 3, :] = 255
    Image.fromarray(skin).save(d / f"{k:05d}_skin.png")
    Image.fromarray(hair).save(d / f"{k:05d}_hair.png")
    if i % 2 == 0:
        eye = np.zeros(hw, np.uint8)
        eye[h // 3: h // 3 + max(h // 8, 1), w // 4: w // 2] = 255
        Image.fromarray(eye).save(d / f"{k:05d}_l_eye.png")


def write_celeba(root, n: int = 10, hw=(218, 178), masks: bool = True, eol: str = "\n",
                 sep: str = " ", partition=None) -> Path:
    """A CelebA-layout folder (as the SynthFaces exporter writes): images, list files, masks."""
    root = Path(root)
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        Image.new("RGB", (hw[1], hw[0]), colour(i)).save(root / "img_align_celeba" / name,
                                                         quality=95)
        if masks:
            write_masks(root / "CelebAMask-HQ-mask-anno", i, hw, i)
    rows = np.stack([attrs_for(i) for i in range(n)])
    (root / "list_attr_celeba.txt").write_bytes(attr_text(names, rows, sep, eol).encode())
    part = partition if partition is not None else [0] * (n - 4) + [1, 1, 2, 2]
    (root / "list_eval_partition.txt").write_bytes(
        eol.join(f"{nm} {p}" for nm, p in zip(names, part)).encode() + eol.encode())
    return root


def write_celebahq(root, n: int = 6, img: int = 64, mask: int = 32, header: bool = True) -> Path:
    """A CelebAMask-HQ-layout folder: CelebA-HQ-img/k.jpg, attribute file, mapping, masks."""
    root = Path(root)
    (root / "CelebA-HQ-img").mkdir(parents=True, exist_ok=True)
    names = [f"{k}.jpg" for k in range(n)]
    for k, name in enumerate(names):
        Image.new("RGB", (img, img), colour(k)).save(root / "CelebA-HQ-img" / name, quality=95)
        write_masks(root / "CelebAMask-HQ-mask-anno", k, (mask, mask), k)
    rows = np.stack([attrs_for(k) for k in range(n)])
    (root / "CelebAMask-HQ-attribute-anno.txt").write_text(attr_text(names, rows))
    lines = (["idx         orig_idx        orig_file"] if header else []) + [
        f"{k}\t{1000 * k + 5}\t{1000 * k + 6:06d}.jpg" for k in range(n)]
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(lines) + "\n")
    return root
