"""SynthFaces export: CelebA layout, +-1 attribute file, masks, counterfactuals, kill + rerun."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceedit_bench.data import synth_export as se
from faceedit_bench.data.counterfactuals import read_counterfactual_index, read_counterfactuals
from faceedit_bench.data.synthfaces import render_batch, to_uint8
from faceedit_bench.parts import CELEBAMASK_HQ_FILE_PARTS, PART_INDEX
from faceedit_bench.protocol import CELEBA_ATTRS


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".progress" not in p.parts}


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "sf"
    se.export_synthfaces(out, 30, 32, seed=0, progress=False, workers=1)
    return out


def test_layout_and_attribute_file(small_export):
    out = small_export
    imgs = sorted((out / "img_align_celeba").glob("*.jpg"))
    assert [p.name for p in imgs] == [f"{k:06d}.jpg" for k in range(1, 31)]
    assert Image.open(imgs[0]).size == (32, 32)
    lines = (out / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == "30"
    assert lines[1].split() == list(CELEBA_ATTRS)
    rows = [ln.split() for ln in lines[2:]]
    assert len(rows) == 30 and all(len(r) == 41 for r in rows)
    vals = np.array([[int(v) for v in r[1:]] for r in rows])
    assert set(np.unique(vals)) <= {-1, 1}
    expect = render_batch(0, np.arange(30), 32, soft=False)["attrs"].numpy()
    assert np.array_equal((vals > 0).astype(np.uint8), expect)
    part = [ln.split() for ln in (out / "list_eval_partition.txt").read_text().splitlines()]
    counts = np.bincount([int(p[1]) for p in part], minlength=3)
    assert tuple(counts) == se.split_sizes(30) == (25, 2, 3)
    assert [p[0] for p in part] == [p.name for p in imgs]


def test_masks_match_labels_and_only_present_parts(small_export):
    labels = render_batch(0, [4], 32, soft=False)["labels"][0].numpy()
    mdir = small_export / "CelebAMask-HQ-mask-anno" / "0"
    for fname, part in CELEBAMASK_HQ_FILE_PARTS.items():
        p = mdir / f"00004_{fname}.png"
        present = (labels == PART_INDEX[part]).any()
        assert p.is_file() == bool(present), fname
        if present:
            m = np.asarray(Image.open(p))
            assert m.shape == (32, 32) and set(np.unique(m)) <= {0, 255}
            assert np.array_equal(m > 0, labels == PART_INDEX[part])


def test_counterfactuals_cover_test_split_and_match_renders(small_export):
    idx = read_counterfactual_index(small_export)
    assert idx == ["000028.jpg", "000029.jpg", "000030.jpg"]
    cf = read_counterfactuals(small_export)
    assert len(cf) == 14
    src = render_batch(0, np.arange(27, 30), 32, soft=False)
    for name in ("Eyeglasses", "Male"):
        c = cf[name]
        assert c.images.shape == (3, 32, 32, 3) and c.labels.shape == (3, 32, 32) and c.attrs.shape == (3, 40)
        j = CELEBA_ATTRS.index(name)
        assert np.array_equal(c.attrs[:, j], 1 - src["attrs"].numpy()[:, j])
        ref = render_batch(0, np.arange(27, 30), 32, attrs=c.attrs, soft=False)
        assert np.abs(to_uint8(ref["image"]).astype(int) - c.images).max() <= 1


def test_rerun_is_noop_and_other_params_refused(small_export):
    before = _files(small_export)
    se.export_synthfaces(small_export, 30, 32, seed=0, progress=False, workers=1)
    assert _files(small_export) == before
    with pytest.raises(FileExistsError, match="synthfaces.json"):
        se.export_synthfaces(small_export, 31, 32, seed=0, progress=False, workers=1)


_KILLABLE = """
import sys, time
import faceedit_bench.data.synth_export as se
se.CHUNK = 16
real = se._chunk_job
def slow(args):
    n = real(args)
    time.sleep(30)   # the test kills us here, after the first chunk's marker
    return n
se._chunk_job = slow
se.export_synthfaces(sys.argv[1], 48, 32, seed=2, progress=False, workers=1)
"""


def test_killed_export_rerun_finishes_identically(tmp_path, monkeypatch):
    monkeypatch.setattr(se, "CHUNK", 16)
    ref = tmp_path / "ref"
    se.export_synthfaces(ref, 48, 32, seed=2, progress=False, workers=1)
    part = tmp_path / "part"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(part)], env=env)
    marker = part / ".progress" / "chunk_00000.done"
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert marker.exists(), "the export subprocess never finished its first chunk"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (part / "synthfaces.json").exists()
    (part / "img_align_celeba" / "000040.jpg.tmp999").write_bytes(b"half")   # as a kill mid-write leaves
    se.export_synthfaces(part, 48, 32, seed=2, progress=False, workers=1)
    a, b = _files(ref), _files(part)
    assert "img_align_celeba/000040.jpg.tmp999" not in b   # stale temp files are removed
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)


def test_contact_sheet_via_cli(tmp_path):
    from faceedit_bench.cli import main

    out = tmp_path / "sheet.png"
    assert main(["synth", "--contact-sheet", str(out), "--res", "32"]) == 0
    sheet = np.asarray(Image.open(out))
    # 30 faces in 2 rows of (face + label map), then 5 identities x (source + 14 flips)
    assert sheet.shape[1] >= 15 * 32 and sheet.shape[0] >= 2 * 2 * 32 + 5 * 32
    assert sheet.std() > 10


def test_cli_export_refuses_other_params(small_export, capsys):
    from faceedit_bench.cli import main

    rc = main(["synth", "--n", "31", "--res", "32", "--out", str(small_export), "--no-progress"])
    assert rc == 2 and "synthfaces.json" in capsys.readouterr().err
