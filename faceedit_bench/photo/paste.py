"""Paste an edit back into the full-resolution photo: the change the method made to the crop
(edited - input, in grey levels) is warped back with the inverse of the crop's transform under
a feathered box mask and added to the photo, so pixels the method did not change stay as they
were (outside the crop's footprint, exactly)."""
from __future__ import annotations

import numpy as np

#: width of the mask's ramp, as a fraction of the crop side
FEATHER = 0.125


def feather_mask(size: int, feather: float = FEATHER) -> np.ndarray:
    """size x size float mask: 1 inside, a smoothstep ramp of ``feather * size`` pixels to 0 at
    the crop's edge (a box mask blurred, reaching exactly 0 on the border)."""
    c = np.arange(size) + 0.5
    d = np.minimum(c, size - c)
    t = np.clip(d / max(feather * size, 1e-6), 0, 1)
    ramp = t * t * (3 - 2 * t)
    return np.minimum.outer(ramp, ramp)


def footprint(tf, size: int, shape) -> tuple[int, int, int, int]:
    """(left, top, right, bottom), clipped to the photo: the box around the crop's quadrilateral."""
    corners = tf(np.array([(-0.5, -0.5), (size - 0.5, -0.5), (-0.5, size - 0.5), (size - 0.5, size - 0.5)]))
    lo, hi = np.floor(corners.min(0)).astype(int), np.ceil(corners.max(0)).astype(int) + 1
    return (max(lo[0], 0), max(lo[1], 0), min(hi[0], shape[1]), min(hi[1], shape[0]))


def delta_in_photo(delta: np.ndarray, tf, shape) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``delta`` (size x size x C float) times the feather mask, warped into the photo's frame:
    (the window's values, the window (left, top, right, bottom))."""
    from skimage.transform import SimilarityTransform, warp

    size = delta.shape[0]
    box = footprint(tf, size, shape)
    l, t, r, b = box
    to_window = SimilarityTransform(translation=(-l, -t)).params @ tf.params
    masked = delta * feather_mask(size)[..., None]
    win = warp(masked, SimilarityTransform(to_window).inverse, output_shape=(b - t, r - l),
               order=1, mode="constant", cval=0.0, preserve_range=True)
    return win, box


def paste_deltas(photo: np.ndarray, deltas) -> np.ndarray:
    """The photo (H x W x 3 uint8) plus each (delta, tf) of ``deltas``; uint8."""
    out = photo.astype(np.float64)
    for delta, tf in deltas:
        win, (l, t, r, b) = delta_in_photo(delta, tf, photo.shape)
        out[t:b, l:r] += win
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
