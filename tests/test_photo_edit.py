"""Editing a user's own photo (issue 20): dlib detection on a SynthFaces face placed rotated and
scaled in a larger "photo", alignment to the CelebA template that undoes the rotation, a paste
that leaves every pixel the method did not change as it was, and the ``edit`` command end to
end (identity and a trained smoke model) with one-line errors for bad input."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from faceedit_bench.cli import main
from faceedit_bench.photo.align import aligned_crop, crop_to_photo, face_points, frame_to_photo
from faceedit_bench.photo.landmarks import detect_faces
from faceedit_bench.photo.paste import feather_mask, footprint, paste_deltas

ANGLE, SCALE, SHIFT = np.deg2rad(12.0), 1.3, (70.0, 40.0)
CANVAS = (420, 480)  # H, W


def _face(index: int = 0) -> np.ndarray:
    from faceedit_bench.data.synthfaces import render_batch

    img = render_batch(0, [index], 256, soft=False)["image"][0]
    return (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _placement():
    """Face pixel -> photo pixel: rotate by ANGLE, scale by SCALE, shift by SHIFT."""
    from skimage.transform import SimilarityTransform

    return SimilarityTransform(scale=SCALE, rotation=ANGLE, translation=SHIFT)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from skimage.transform import warp

    root = tmp_path_factory.mktemp("photos")
    face = _face()
    placed = warp(face, _placement().inverse, output_shape=CANVAS, order=1, mode="constant",
                  cval=0.6, preserve_range=True)
    photo = np.clip(np.rint(placed), 0, 255).astype(np.uint8)
    paths = {"face": root / "face.png", "photo": root / "photo.jpg", "blank": root / "blank.png",
             "text": root / "notes.jpg"}
    Image.fromarray(face).save(paths["face"])
    Image.fromarray(photo).save(paths["photo"], quality=95)
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(paths["blank"])
    paths["text"].write_text("not an image\n")
    return root, face, np.asarray(Image.open(paths["photo"]).convert("RGB")), paths


def test_alignment_undoes_the_rotation(photos):
    """Given the landmarks moved by the placement, the crop transform moves by the placement
    (a similarity fit is equivariant); with dlib's own landmarks on the placed photo (which
    jitter by up to ~10 px on SynthFaces' drawn eyes) the aligned crop still shows the same face:
    far closer to the upright face's crop than another SynthFaces face is."""
    _, face, photo, _ = photos
    (f0,), (f1,) = detect_faces(face), detect_faces(photo)
    tf0 = crop_to_photo(frame_to_photo(face_points(f0)), "attgan170", 64)
    moved = crop_to_photo(frame_to_photo(_placement()(face_points(f0))), "attgan170", 64)
    corners = np.array([(0, 0), (63, 0), (0, 63), (63, 63)], float)
    np.testing.assert_allclose(moved(corners), _placement()(tf0(corners)), atol=1e-6)
    tf1 = crop_to_photo(frame_to_photo(face_points(f1)), "attgan170", 64)
    c0, c1 = aligned_crop(face, tf0, 64).astype(float), aligned_crop(photo, tf1, 64).astype(float)
    other = aligned_crop(_face(1), tf0, 64).astype(float)
    assert np.abs(c0 - c1).mean() < 0.5 * np.abs(c0 - other).mean()


def test_paste_changes_only_the_footprint(photos):
    _, face, photo, _ = photos
    (f,) = detect_faces(photo)
    tf = crop_to_photo(frame_to_photo(face_points(f)), "attgan170", 64)
    assert np.array_equal(paste_deltas(photo, [(np.zeros((64, 64, 3)), tf)]), photo)
    out = paste_deltas(photo, [(np.full((64, 64, 3), 40.0), tf)])
    l, t, r, b = footprint(tf, 64, photo.shape)
    outside = np.ones(photo.shape[:2], bool)
    outside[t:b, l:r] = False
    assert np.array_equal(out[outside], photo[outside])
    cx, cy = np.rint(tf(np.array([(31.5, 31.5)]))[0]).astype(int)
    gained = out[cy, cx].astype(int) - photo[cy, cx].astype(int)
    assert np.all((gained == 40) | (photo[cy, cx] > 215)), gained   # clipped at 255 only
    m = feather_mask(64)
    assert m[0].max() < 0.05 and m[32, 32] == 1.0


def _edit(paths, out, *extra):
    return main(["edit", str(paths["photo"]), "--out", str(out), "--set", "Blond_Hair=1", *extra])


def test_edit_identity_returns_the_photo(photos, capsys):
    root, _, photo, paths = photos
    assert _edit(paths, root / "id") == 0
    written = np.asarray(Image.open(root / "id" / "photo_edited.png"))
    assert np.array_equal(written, photo)
    assert "1 of 1 face(s) edited" in capsys.readouterr().out


def test_edit_with_a_trained_model(photos, tmp_path, capsys):
    root, _, photo, paths = photos
    run = ["--method", "stgan", "--res", "32", "--profile", "smoke", f"out_dir={tmp_path / 'runs'}",
           f"data_dir={tmp_path / 'data'}", "data.num_workers=0"]
    assert main(["fit", *run]) == 0
    ckpt = tmp_path / "runs" / "stgan_32_synth_smoke" / "checkpoints" / "last.ckpt"
    assert _edit(paths, tmp_path / "e", "--ckpt", str(ckpt), "--src", "Blond_Hair=0") == 0
    written = np.asarray(Image.open(tmp_path / "e" / "photo_edited.png"))
    (f,) = detect_faces(photo)
    tf = crop_to_photo(frame_to_photo(face_points(f)), "attgan170", 32)
    l, t, r, b = footprint(tf, 32, photo.shape)
    changed = np.argwhere(np.any(written != photo, axis=2))
    assert len(changed) > 0                                    # an untrained-ish model still edits
    assert changed[:, 0].min() >= t and changed[:, 0].max() < b
    assert changed[:, 1].min() >= l and changed[:, 1].max() < r
    assert "warning: no attribute classifier" in capsys.readouterr().err


@pytest.mark.parametrize("case, argv, code, pattern", [
    ("no --set", ["edit", "{photo}"], 2, r"^error: nothing to edit: pass --set"),
    ("unknown attribute", ["edit", "{photo}", "--set", "Blue_Hair=1"], 2,
     r"^error: unknown attribute 'Blue_Hair' in --set; valid: "),
    ("method without checkpoint", ["edit", "{photo}", "--set", "Blond_Hair=1", "--method", "stgan"], 2,
     r"^error: --method stgan needs --ckpt"),
    ("missing checkpoint", ["edit", "{photo}", "--set", "Blond_Hair=1", "--ckpt", "{root}/nope.ckpt"], 2,
     r"^error: checkpoint .*nope.ckpt not found"),
    ("not an image", ["edit", "{text}", "--set", "Blond_Hair=1"], 1, r"^error: .*notes.jpg: cannot read the image"),
    ("no face", ["edit", "{blank}", "--set", "Blond_Hair=1"], 1, r"^error: .*blank.png: no face found"),
    ("face number too high", ["edit", "{photo}", "--set", "Blond_Hair=1", "--face", "3"], 1,
     r"^error: .*photo.jpg: --face 3, but only 1 face\(s\) found"),
])
def test_edit_refuses_bad_input_in_one_line(photos, capsys, case, argv, code, pattern):
    import re

    root, _, _, paths = photos
    names = {k: str(v) for k, v in paths.items()} | {"root": str(root)}
    argv = [a.format(**names) for a in argv] + ["--out", str(root / "bad")]
    assert main(argv) == code, case
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(pattern, err), err


def test_astronaut_eyes_align_to_the_celeba_template():
    """scikit-image's astronaut (a real photograph): the largest detection is her face, and its eye
    centres land within 3 px of the CelebA template's after alignment."""
    import skimage.data

    from faceedit_bench.photo.align import TEMPLATE

    faces = detect_faces(skimage.data.astronaut())
    l, t, r, b = faces[0].box
    assert 150 < (l + r) / 2 < 290 and 50 < (t + b) / 2 < 190, faces[0].box
    tf = frame_to_photo(face_points(faces[0]))
    err = np.linalg.norm(tf.inverse(faces[0].eye_centres()) - TEMPLATE[:2], axis=1)
    assert err.max() < 3.0, err


def test_astronaut_identity_edit_keeps_the_photo(tmp_path):
    import skimage.data

    photo = skimage.data.astronaut()
    src = tmp_path / "astronaut.png"
    Image.fromarray(photo).save(src)
    assert main(["edit", str(src), "--method", "identity", "--set", "Blond_Hair=1", "--out", str(tmp_path)]) == 0
    out = np.asarray(Image.open(tmp_path / "astronaut_edited.png"))
    assert out.shape == photo.shape and np.abs(out.astype(int) - photo).max() <= 2
