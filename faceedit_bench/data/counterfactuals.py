"""Reader (and the shared file format) of SynthFaces counterfactual ground truth (docs/synthfaces.md).

``<export>/counterfactuals/`` holds, for the test split only:

- ``index.txt``: the test image file names, one per line (row order of every array below);
- ``attrs.txt``: the flipped attributes, one per line (RENDERED_ATTRS order);
- ``source.npz``: ``images`` uint8 (N,H,W,3) and ``labels`` uint8 (N,H,W), the lossless renders
  of the test images (the JPEGs in img_align_celeba/ are these, JPEG-compressed);
- ``<attr>.npz`` per flipped attribute: ``images_xor`` uint8 (N,H,W,3) and ``labels_xor`` uint8
  (N,H,W), the counterfactual XOR the source (mostly zeros, so deflate shrinks them ~10x), and
  ``attrs`` int8 (N,40) {0,1}, the target attributes (conflict rules of protocol applied, the 27
  non-rendered columns re-filled by the documented rule).
"""
from __future__ import annotations

import dataclasses
import io
import os
import zipfile
from pathlib import Path

import numpy as np

CF_DIR = "counterfactuals"


@dataclasses.dataclass
class Counterfactual:
    """Ground truth of one single-attribute flip over the test split."""

    images: np.ndarray   # uint8 (N_test, H, W, 3)
    labels: np.ndarray   # uint8 (N_test, H, W)
    attrs: np.ndarray    # int8 (N_test, 40) {0,1}


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Deflated .npz with fixed zip timestamps (byte-identical reruns), written atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())
    os.replace(tmp, path)


def _load(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing counterfactual file (re-run `faceedit-bench synth`)")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in keys if k not in z.files]
        if missing:
            raise ValueError(f"{path}: expected arrays {list(keys)}, missing {missing}")
        return {k: z[k] for k in keys}


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (is this a complete SynthFaces export?)")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def read_counterfactual_index(root: str | os.PathLike) -> list[str]:
    """Test file names in the row order of the counterfactual arrays."""
    return _lines(Path(root) / CF_DIR / "index.txt")


def read_counterfactual_sources(root: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The lossless test-split renders: (images uint8 (N,H,W,3), labels uint8 (N,H,W))."""
    d = _load(Path(root) / CF_DIR / "source.npz", ("images", "labels"))
    return d["images"], d["labels"]


def read_counterfactuals(root: str | os.PathLike, attrs=None) -> dict[str, Counterfactual]:
    """attr -> :class:`Counterfactual`, rows in the order of ``counterfactuals/index.txt``.

    ``attrs``: optional subset of the flipped attributes to load (default: all listed in
    ``counterfactuals/attrs.txt``).
    """
    cf = Path(root) / CF_DIR
    names = _lines(cf / "attrs.txt")
    if attrs is not None:
        unknown = [a for a in attrs if a not in names]
        if unknown:
            raise KeyError(f"{cf / 'attrs.txt'}: no counterfactuals for {unknown}; available: {names}")
        names = list(attrs)
    n = len(read_counterfactual_index(root))
    src_img, src_lab = read_counterfactual_sources(root)
    if src_img.shape[0] != n:
        raise ValueError(f"{cf / 'source.npz'}: {src_img.shape[0]} rows, index.txt lists {n}")
    out = {}
    for name in names:
        d = _load(cf / f"{name}.npz", ("images_xor", "labels_xor", "attrs"))
        if d["images_xor"].shape != src_img.shape or d["labels_xor"].shape != src_lab.shape:
            raise ValueError(f"{cf / (name + '.npz')}: shapes {d['images_xor'].shape}/"
                             f"{d['labels_xor'].shape} do not match source {src_img.shape}/{src_lab.shape}")
        out[name] = Counterfactual(src_img ^ d["images_xor"], src_lab ^ d["labels_xor"],
                                   d["attrs"].astype(np.int8))
    return out
