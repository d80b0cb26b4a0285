"""Mask precompute: batched, correct, and resumable after SIGKILL (byte-identical result)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from faceedit_bench.parsing import BiSeNet, save_bisenet
from faceedit_bench.parsing.precompute import precompute_masks
from faceedit_bench.parsing.preprocess import parse_labels

N, SIZE, BATCH = 22, 32, 4


@pytest.fixture()
def setup(tmp_path):
    torch.manual_seed(0)
    model = BiSeNet(19, base=8, input_size=None).eval()
    weights = save_bisenet(model, tmp_path / "parser.pt")
    images = np.random.default_rng(1).integers(0, 256, (N, SIZE, SIZE, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    return tmp_path, model, weights, images


def test_precompute_matches_direct_parse(setup):
    tmp, model, weights, images = setup
    out = precompute_masks(images, model, tmp / "labels.npy", batch_size=BATCH, progress=False)
    got = np.load(out)
    assert got.shape == (N, SIZE, SIZE) and got.dtype == np.uint8
    want = parse_labels(model, images[:BATCH]).numpy()
    np.testing.assert_array_equal(got[:BATCH], want)
    assert not (tmp / "labels.npy.partial").exists() and not (tmp / "labels.npy.progress").exists()
    # lower output resolution, from a weights path, memmap input
    mm = np.load(tmp / "images.npy", mmap_mode="r")
    out16 = precompute_masks(mm, str(weights), tmp / "labels16.npy", res=16, batch_size=8,
                             progress=False)
    assert np.load(out16).shape == (N, 16, 16)


def test_precompute_from_image_files(setup):
    tmp, model, _, images = setup
    paths = []
    for i in range(5):
        p = tmp / f"{i:06d}.png"
        Image.fromarray(images[i]).save(p)
        paths.append(p)
    a = np.load(precompute_masks(paths, model, tmp / "a.npy", batch_size=2, progress=False))
    b = np.load(precompute_masks(images[:5], model, tmp / "b.npy", batch_size=2, progress=False))
    np.testing.assert_array_equal(a, b)
    (tmp / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        precompute_masks(paths + [tmp / "bad.png"], model, tmp / "c.npy", progress=False)
    assert not (tmp / "c.npy").exists()


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from faceedit_bench.parsing import load_bisenet
    from faceedit_bench.parsing.precompute import precompute_masks
    tmp = sys.argv[1]
    model = load_bisenet(os.path.join(tmp, "parser.pt"))
    calls = {"n": 0}
    forward = model.forward
    def killing_forward(x):
        calls["n"] += 1
        if calls["n"] == 4:  # in the middle of the 4th batch, after 3 were flushed
            os.kill(os.getpid(), signal.SIGKILL)
        return forward(x)
    model.forward = killing_forward
    images = np.load(os.path.join(tmp, "images.npy"), mmap_mode="r")
    precompute_masks(images, model, os.path.join(tmp, "killed.npy"), batch_size=%d,
                     device="cpu", progress=False)
""" % BATCH)


def test_killed_precompute_resumes_byte_identical(setup):
    tmp, model, weights, images = setup
    ref = precompute_masks(images, model, tmp / "ref.npy", batch_size=BATCH, device="cpu",
                           progress=False)
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    killed = tmp / "killed.npy"
    assert not killed.exists()  # nothing half-written under the final name
    progress = json.loads((tmp / "killed.npy.progress").read_text())
    assert progress["done"] == 3 * BATCH
    from faceedit_bench.parsing import load_bisenet

    precompute_masks(np.load(tmp / "images.npy", mmap_mode="r"), load_bisenet(weights), killed,
                     batch_size=BATCH, device="cpu", progress=False)
    assert killed.read_bytes() == ref.read_bytes()
    assert not (tmp / "killed.npy.progress").exists()


def test_changed_settings_restart_instead_of_resuming(setup):
    tmp, model, _, images = setup
    out = tmp / "x.npy"
    # a stale partial run with other settings (batch size) must not be resumed
    precompute_masks(images[:8], model, tmp / "tmp.npy", batch_size=BATCH, progress=False)
    stale = np.full((N, SIZE, SIZE), 255, np.uint8)
    np.save(tmp / "x.npy.partial", stale)
    (tmp / "x.npy.progress").write_text(json.dumps({"done": 8, "fingerprint": "other"}))
    precompute_masks(images, model, out, batch_size=BATCH, progress=False)
    got = np.load(out)
    assert got.max() < 19
    np.testing.assert_array_equal(got[:8], np.load(tmp / "tmp.npy"))


def test_masks_cli_images_only_and_missing_weights(setup, monkeypatch, capsys):
    from faceedit_bench.cli import main

    tmp, model, weights, images = setup
    folder = tmp / "ds" / "img_align_celeba"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(images[i]).save(folder / f"{i + 1:06d}.png")
    out = tmp / "labels.npy"
    assert main(["masks", "--data", str(tmp / "ds"), "--parser-weights", str(weights),
                 "--res", "16", "--out", str(out), "--images-only", "--batch-size", "2"]) == 0
    got = np.load(out)
    assert got.shape == (3, 16, 16)
    small = np.stack([np.asarray(Image.fromarray(im).resize((16, 16), Image.BILINEAR))
                      for im in images[:3]])  # files are resized to --res first (PIL bilinear)
    want = np.load(precompute_masks(small, model, tmp / "want.npy", progress=False))
    np.testing.assert_array_equal(got, want)
    assert (tmp / "labels.npy.files.txt").read_text().split() == ["000001.png", "000002.png",
                                                                  "000003.png"]
    monkeypatch.delenv("FACEEDIT_PARSER_WEIGHTS", raising=False)
    with pytest.raises(SystemExit) as e:
        main(["masks", "--data", str(tmp / "ds"), "--parser-weights", str(tmp / "79999_iter.pth"),
              "--res", "16"])
    assert "79999_iter.pth" in str(e.value) and "face-parsing.PyTorch" in str(e.value)
