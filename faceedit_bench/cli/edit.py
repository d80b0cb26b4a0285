"""``faceedit-bench edit PHOTO...``: edit the faces of your own photos with a trained method.

Each face is found by dlib (frontal detector + 5 landmarks), aligned to the CelebA template,
cropped as the training data (``--crop``, default AttGAN/STGAN's 170 x 170), edited from its
source attributes (``--src``, else the attribute classifier's prediction, else 0 with a warning)
to the targets (``--set``, conflict rules applied), and the change is pasted back into the
full-resolution photo under a feathered mask. Writes ``<out>/<stem>_edited.png``.
"""
from __future__ import annotations

import sys
from pathlib import Path

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench edit me.jpg --ckpt zoo:attgan_synth_64 --set Blond_Hair=1 --set Eyeglasses=0',
    'faceedit-bench edit group.jpg --ckpt last.ckpt --face all --set Smiling=1 --out edits/',
    'faceedit-bench edit me.jpg --method identity --set Blond_Hair=1',
)


class EditError(Exception):
    """A one-line reason the command (or one photo) cannot be edited."""


def assignment(value: str) -> tuple[str, float]:
    """argparse type: ``NAME=0`` or ``NAME=1``."""
    import argparse

    name, sep, v = value.partition("=")
    if not sep or v.strip() not in ("0", "1"):
        raise argparse.ArgumentTypeError(f"expected NAME=0 or NAME=1, got {value!r}")
    return name.strip(), float(v)


def face_choice(value: str):
    """argparse type: ``largest`` / ``all`` / a 0-based index by area."""
    import argparse

    if value in ("largest", "all"):
        return value
    if value.isdigit():
        return int(value)
    raise argparse.ArgumentTypeError(f"expected largest, all or a face number (0 = largest), got {value!r}")


def load_editor(args):
    """The method: from ``--ckpt`` (file or zoo:NAME, as ``eval``), or identity without one."""
    from ..methods import UnknownMethodError

    if not args.ckpt:
        if args.method not in (None, "identity"):
            raise EditError(f"--method {args.method} needs --ckpt FILE|zoo:NAME (only identity runs without one)")
        from ..methods.identity import IdentityMethod

        return IdentityMethod()
    from ..train import load_method

    try:
        method = load_method(args.ckpt)
    except (FileNotFoundError, ValueError, UnknownMethodError) as e:
        raise EditError(str(e)) from None
    if args.method and args.method != method.method_name:
        raise EditError(f"--method {args.method}, but {args.ckpt} holds a {method.method_name} model")
    if "parts" in method.needs or not method.label_conditioned:
        raise EditError(f"method {method.method_name} edits from face parsing maps; `edit` supports "
                        "label-conditioned methods only")
    return method


def check_names(assignments, attrs, flag: str) -> None:
    for name, _ in assignments:
        if name not in attrs:
            raise EditError(f"unknown attribute {name!r} in {flag}; valid: {', '.join(attrs)}")


def load_attribute_classifier(args, method):
    """``--classifier``, else (zoo models) the default file of the entry's data, else None."""
    from ..metrics.classifier import default_classifier_path, load_classifier
    from .. import zoo

    path = Path(args.classifier) if args.classifier else None
    if path is None and zoo.is_zoo_ref(args.ckpt):
        e = zoo.entry(str(args.ckpt)[len(zoo.PREFIX):])
        guess = default_classifier_path(e.get("data_hash", ""), method.res,
                                        root=Path(args.data_dir) / "classifiers", attrs=method.attrs)
        path = guess if guess.is_file() else None
    if path is None:
        return None
    try:
        return load_classifier(path)
    except (FileNotFoundError, ValueError) as e:
        raise EditError(str(e)) from None


def source_attrs(crops, method, clf, src, warned: list):
    """B x A source labels: ``--src``, else the classifier's, else 0 (warned once)."""
    import torch

    out = torch.zeros(crops.shape[0], method.n_attrs)
    known = set()
    if clf is not None:
        pred = clf.predict(crops.to(next(clf.parameters()).device)).cpu()
        for j, a in enumerate(clf.attrs):
            if a in method.attrs:
                out[:, method.attrs.index(a)] = pred[:, j]
                known.add(a)
    for name, v in src:
        out[:, method.attrs.index(name)] = v
        known.add(name)
    missing = [a for a in method.attrs if a not in known]
    if missing and not warned:
        warned.append(True)
        print(f"warning: no attribute classifier (--classifier PATH) or --src for {', '.join(missing)}: "
              "taking them as 0 (absent)", file=sys.stderr)
    return out


def target_attrs(src, method, sets):
    """The source with each ``--set`` applied in order, conflict rules after each ``=1``."""
    from ..protocol import check_attribute_conflict

    tgt = src.clone()
    for name, v in sets:
        tgt[:, method.attrs.index(name)] = v
        if v:
            tgt = check_attribute_conflict(tgt, name, method.attrs)
    return tgt


def read_photo(path: Path):
    """H x W x 3 uint8, EXIF orientation applied."""
    import numpy as np
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (OSError, ValueError) as e:
        raise EditError(f"{path}: cannot read the image ({e})") from None


def pick_faces(faces, choice, path):
    if not faces:
        raise EditError(f"{path}: no face found")
    if choice == "all":
        return faces
    k = 0 if choice == "largest" else choice
    if k >= len(faces):
        raise EditError(f"{path}: --face {k}, but only {len(faces)} face(s) found (0 = largest)")
    return [faces[k]]


def edit_photo(path: Path, method, clf, args, device, warned: list) -> Path:
    """Edit the chosen faces of one photo; the written file."""
    import numpy as np
    import torch

    from ..photo.align import aligned_crop, crop_to_photo, face_points, frame_to_photo
    from ..photo.landmarks import detect_faces
    from ..photo.paste import paste_deltas

    photo = read_photo(path)
    found = detect_faces(photo)
    faces = pick_faces(found, args.face, path)
    tfs = [crop_to_photo(frame_to_photo(face_points(f)), args.crop, method.res) for f in faces]
    crops = np.stack([aligned_crop(photo, tf, method.res) for tf in tfs])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
    src = source_attrs(x, method, clf, args.src, warned)
    tgt = target_attrs(src, method, args.set)
    k = method.attrs.index(args.set[0][0]) if len(args.set) == 1 else None
    edited = method.edit(x.to(device), src.to(device), tgt.to(device), attr_index=k).images.float().cpu()
    deltas = ((edited.clamp(-1, 1) - x) * 127.5).permute(0, 2, 3, 1).numpy()
    out = write_png(paste_deltas(photo, zip(deltas, tfs)), Path(args.out) / f"{path.stem}_edited.png")
    boxes = " ".join("({},{},{},{})".format(*f.box) for f in faces)
    print(f"{out}: {len(faces)} of {len(found)} face(s) edited, box {boxes}", flush=True)
    return out


def write_png(rgb, path: Path) -> Path:
    """Write atomically (``io_utils.atomic_write``: temp file beside it, then rename)."""
    from PIL import Image

    from ..io_utils import atomic_write

    return atomic_write(path, lambda f: Image.fromarray(rgb).save(f, format="PNG"))


def run(args) -> int:
    from ..photo.landmarks import LandmarkModelMissing, load_models

    try:
        if not args.set:
            raise EditError("nothing to edit: pass --set ATTR=0|1 (repeatable)")
        load_models()
        method = load_editor(args)
        check_names(args.set, method.attrs, "--set")
        check_names(args.src, method.attrs, "--src")
        clf = load_attribute_classifier(args, method)
    except (EditError, LandmarkModelMissing, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import torch

    device = "cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    method.to(device)
    if clf is not None:
        clf.to(device)
    failed, warned = 0, []
    for photo in args.photos:
        try:
            edit_photo(Path(photo), method, clf, args, device, warned)
        except EditError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def register(subparsers) -> None:
    from ..photo.align import PHOTO_CROPS
    from ._common import method_name

    p = subparsers.add_parser("edit", help="edit the faces of your own photos", description=__doc__)
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="image files (jpg, png, ...)")
    p.add_argument("--ckpt", default=None, help="checkpoint file or zoo:NAME (as `eval --ckpt`)")
    p.add_argument("--method", type=method_name, default=None,
                   help="identity (no checkpoint); with --ckpt, a check of the file's method")
    p.add_argument("--set", type=assignment, action="append", default=[], metavar="ATTR=0|1",
                   help="target attribute, repeatable, e.g. --set Blond_Hair=1")
    p.add_argument("--src", type=assignment, action="append", default=[], metavar="ATTR=0|1",
                   help="source attribute of the face, repeatable (default: the classifier's prediction)")
    p.add_argument("--classifier", default=None,
                   help="attribute classifier file predicting the source attributes (default for "
                        "zoo models: <data-dir>/classifiers/<data_hash>_<res>.pt when present)")
    p.add_argument("--data-dir", default="data", help="where the suite's classifiers live")
    p.add_argument("--face", type=face_choice, default="largest",
                   help="largest (default), all, or N: the N-th detection by area (0 = largest)")
    p.add_argument("--crop", choices=PHOTO_CROPS, default="attgan170",
                   help="crop of the CelebA-aligned frame the model was trained on (data config crop:)")
    p.add_argument("--out", default="outputs/edits", help="output folder (default: outputs/edits)")
    p.add_argument("--device", choices=("auto", "cpu"), default="auto", help="cpu, or auto (GPU when present)")
    p.set_defaults(func=run)
