"""Alignment to the CelebA template and the training crop.

CelebA's aligned images are 178 x 218. The template is the mean of CelebA's
``list_landmarks_align_celeba.txt`` in that frame: left eye (69, 111), right eye (108, 111),
nose (88, 134) (mouth corners (72, 152), (105, 152) are not used: dlib's 5-point model has
none). A similarity transform (skimage ``SimilarityTransform``, least squares) maps the two eye
centres and the nose of the detection onto the template; dlib's nose point is the bottom of
the nose, CelebA's the tip, a residual of a few pixels that least squares spreads over the
three points. The crop is then the one the training data used (``protocol.CROPS``, from the
data config ``crop:``): ``attgan170`` = 170 x 170 at top 26, left 3 (LynnHo AttGAN/STGAN
``offset_h = 26, offset_w = 3, crop_size = 170``), ``center178`` = 178 x 178 at top 20
(StarGAN/SeCGAN), resized to the method's resolution with PIL bicubic (the store's default).
"""
from __future__ import annotations

import numpy as np

#: CelebA aligned frame (width, height) and the template points used: left eye, right eye, nose
FRAME = (178, 218)
TEMPLATE = np.array([(69.0, 111.0), (108.0, 111.0), (88.0, 134.0)])
PHOTO_CROPS = ("attgan170", "center178")


def face_points(face) -> np.ndarray:
    """3 x 2: the detection's eye centres (image-left first) and nose, matching :data:`TEMPLATE`."""
    return np.vstack([face.eye_centres(), face.nose()[None]])


def frame_to_photo(points: np.ndarray):
    """The similarity transform from CelebA-frame coordinates to photo coordinates."""
    from skimage.transform import SimilarityTransform

    src, dst = TEMPLATE, np.asarray(points, float)
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        tf = SimilarityTransform.from_estimate(src, dst)
        ok = bool(tf)
    else:
        tf = SimilarityTransform()
        ok = tf.estimate(src, dst)
    if not ok:
        raise ValueError("degenerate landmarks: cannot estimate the alignment")
    return tf


def crop_to_photo(frame_tf, crop: str, size: int):
    """The transform from pixel (x, y) of a ``size`` x ``size`` crop to photo coordinates
    (pixel centres at integers: crop pixel u sits at frame x = left + (u + 0.5) w / size - 0.5)."""
    from skimage.transform import SimilarityTransform

    from ..protocol import CROPS

    if crop not in PHOTO_CROPS:
        raise ValueError(f"crop {crop!r} is not a square crop of the CelebA frame; one of {PHOTO_CROPS}")
    top, left, h, w = CROPS[crop]
    k = w / size
    crop_tf = SimilarityTransform(scale=k, translation=(left + 0.5 * k - 0.5, top + 0.5 * k - 0.5))
    return SimilarityTransform(frame_tf.params @ crop_tf.params)


def aligned_crop(photo: np.ndarray, tf, res: int) -> np.ndarray:
    """The res x res x 3 uint8 crop whose pixels ``tf`` (:func:`crop_to_photo` at ``res``) maps
    into the photo: warped at a size where one crop pixel covers at most one photo pixel, then
    resized to ``res`` with PIL bicubic (so a large photo is filtered, not aliased)."""
    from PIL import Image
    from skimage.transform import SimilarityTransform, warp

    f = int(min(8, max(1, np.ceil(tf.scale))))
    hi = SimilarityTransform(tf.params @ SimilarityTransform(
        scale=1 / f, translation=(0.5 / f - 0.5, 0.5 / f - 0.5)).params)
    big = warp(photo, hi, output_shape=(res * f, res * f), order=1, mode="edge", preserve_range=True)
    big = np.clip(np.rint(big), 0, 255).astype(np.uint8)
    if f == 1:
        return big
    return np.asarray(Image.fromarray(big).resize((res, res), Image.BICUBIC))
