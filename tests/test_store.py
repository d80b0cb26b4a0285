"""The decoded store: contents, manifest/hash, reuse, atomic writes, --skip-bad, mask sources."""
import os
import json

import numpy as np
import pytest
from PIL import Image

from _celeba_fixtures import attrs_for, colour, expected_mask, write_celeba, write_celebahq
from faceedit_bench.data.celeba import DataFormatError, crop_resize
from faceedit_bench.data.store import Store, build_store


def _leftovers(parent):
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_celeba_store_contents_and_manifest(tmp_path):
    root = write_celeba(tmp_path / "src", n=6)              # 218x178, masks of the same size
    out = build_store(root, tmp_path / "stores" / "s", "celeba", res=16, workers=1)
    st = Store(out)
    assert st.images.shape == (6, 16, 16, 3) and st.labels.shape == (6, 16, 16)
    assert isinstance(st.images, np.memmap)
    for i in range(6):
        assert np.abs(st.images[i].reshape(-1, 3).mean(0) - colour(i)).max() < 3
        want = crop_resize(expected_mask((218, 178), i), (26, 3, 170, 170), 16, 0)
        np.testing.assert_array_equal(st.labels[i], want)
        np.testing.assert_array_equal(st.attrs[i], attrs_for(i))
    m = st.manifest
    assert m["crop"]["name"] == "attgan170" and m["crop"]["box_top_left_h_w"] == [26, 3, 170, 170]
    assert m["split"]["rule"] == "attgan" and m["split"]["counts"]["train"] == 6
    assert set(m["sources"]["files"]) == {"list_attr_celeba.txt"} and m["skipped"] == []
    assert st.filenames[0] == "000001.jpg" and st.split_indices("train").tolist() == list(range(6))
    assert st.counterfactuals("Bald") is None
    assert _leftovers(tmp_path / "stores") == []
    # same data elsewhere -> same hash; another resolution -> another hash
    again = Store(build_store(root, tmp_path / "other", "celeba", res=16, workers=1))
    assert again.hash == st.hash
    assert Store(build_store(root, tmp_path / "r8", "celeba", res=8, workers=1)).hash != st.hash


def test_store_reused_and_settings_checked(tmp_path):
    root = write_celeba(tmp_path / "src", n=4, hw=(24, 24))
    out = build_store(root, tmp_path / "s", "synth", res=8, workers=1)
    stamp = (out / "images.npy").stat().st_mtime_ns
    assert build_store(root, out, "synth", res=8, workers=1) == out
    assert (out / "images.npy").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="res"):
        build_store(root, out, "synth", res=16, workers=1)
    other = write_celeba(tmp_path / "src2", n=5, hw=(24, 24))
    with pytest.raises(FileExistsError, match="source_root"):      # another source, same folder
        build_store(other, out, "synth", res=8, workers=1)
    build_store(root, out, "synth", res=16, workers=1, overwrite=True)
    assert Store(out).images.shape[1] == 16 and _leftovers(tmp_path) == []


def test_corrupt_jpeg_stops_cleanly_or_is_skipped(tmp_path):
    root = write_celeba(tmp_path / "src", n=6, hw=(24, 24))
    bad = root / "img_align_celeba" / "000004.jpg"
    bad.write_bytes(bad.read_bytes()[:30])
    with pytest.raises(DataFormatError, match=r"000004.jpg: cannot decode image \(listed at .*list_attr_celeba.txt:6\)"):
        build_store(root, tmp_path / "st" / "s", "synth", res=8, workers=2)
    assert not (tmp_path / "st" / "s").exists() and _leftovers(tmp_path / "st") == []
    st = Store(build_store(root, tmp_path / "st" / "s", "synth", res=8, workers=2, skip_bad=True))
    assert len(st) == 5 and "000004.jpg" not in st.filenames
    assert st.manifest["skipped_files"] == ["img_align_celeba/000004.jpg"]
    assert "cannot decode" in st.manifest["skipped"][0]["reason"]
    for row, name in enumerate(st.filenames):                   # rows compacted correctly
        i = int(name[:6]) - 1
        assert np.abs(st.images[row].reshape(-1, 3).mean(0) - colour(i)).max() < 3
        np.testing.assert_array_equal(st.attrs[row], attrs_for(i))
    assert st.split.tolist() == [0, 0, 1, 2, 2]          # 000004 (val) dropped


def test_mask_of_wrong_size_named(tmp_path):
    root = write_celeba(tmp_path / "src", n=4, hw=(24, 24))
    png = root / "CelebAMask-HQ-mask-anno" / "0" / "00002_hair.png"
    Image.new("L", (20, 24)).save(png)
    with pytest.raises(DataFormatError, match=r"00002_hair.png: mask is 20x24 \(WxH\); expected 24x24"):
        build_store(root, tmp_path / "s", "synth", res=8, workers=1)
    st = Store(build_store(root, tmp_path / "s", "synth", res=8, workers=1, skip_bad=True))
    assert st.filenames == ["000001.jpg", "000002.jpg", "000004.jpg"]


def test_mask_sources_none_and_parser(tmp_path):
    root = write_celeba(tmp_path / "src", n=3, hw=(24, 24), masks=False)
    with pytest.raises(FileNotFoundError, match="CelebAMask-HQ-mask-anno"):
        build_store(root, tmp_path / "g", "synth", res=8, workers=1, masks="gt")
    st = Store(build_store(root, tmp_path / "n", "synth", res=8, workers=1, masks="none"))
    assert st.manifest["masks"] == "none" and not st.labels.any()
    with pytest.raises(FileNotFoundError, match="79999_iter.pth"):
        build_store(root, tmp_path / "p", "synth", res=8, masks="parser", parser_weights=None)


def test_celebahq_store_masks_scaled(tmp_path):
    root = write_celebahq(tmp_path / "hq", n=3, img=64, mask=32)
    from faceedit_bench.data import sources

    sources.HQ_MASK_SIZE = (32, 32)          # fixture masks are 32 px instead of 512
    try:
        st = Store(build_store(root, tmp_path / "s", "celebahq", res=16, workers=1))
    finally:
        sources.HQ_MASK_SIZE = (512, 512)
    for k in range(3):
        np.testing.assert_array_equal(st.labels[k], crop_resize(expected_mask((32, 32), k), None, 16, 0))
    assert set(st.manifest["sources"]["files"]) == {"CelebAMask-HQ-attribute-anno.txt",
                                                   "CelebA-HQ-to-CelebA-mapping.txt"}
    assert any("header" in n for n in st.manifest["notes"])
    json.dumps(st.manifest)


def test_cli_store(tmp_path, capsys):
    from faceedit_bench.cli import main

    root = write_celeba(tmp_path / "src", n=5, hw=(24, 24))
    bad = root / "img_align_celeba" / "000002.jpg"
    bad.write_bytes(b"not a jpeg")
    args = ["store", "--data", str(root), "--dataset", "synth", "--res", "8",
            "--out", str(tmp_path / "s"), "--workers", "1"]
    assert main(args) == 2
    assert "000002.jpg: cannot decode image" in capsys.readouterr().err
    assert main(args + ["--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "4 images 8px" in out and "skipped 1" in out and "000002.jpg" in out
    assert Store(tmp_path / "s").manifest["config"]["skip_bad"] is True


def test_store_of_synthfaces_export(tmp_path):
    """The exporter's CelebA-layout folder: right images, labels, attributes, split, counterfactuals."""
    import faceedit_bench.data.synth_export as export
    from faceedit_bench.data.counterfactuals import read_counterfactual_sources, read_counterfactuals
    from faceedit_bench.data.synthfaces import sample_attrs

    root = export.export_synthfaces(tmp_path / "sf", n=40, res=32, progress=False, workers=1)
    st = Store(build_store(root, tmp_path / "s", "synth", res=32, workers=1))
    assert st.manifest["split"]["counts"] == dict(zip(("train", "val", "test"), export.split_sizes(40)))
    np.testing.assert_array_equal(st.attrs, sample_attrs(0, np.arange(40)).astype(np.uint8))
    test = st.split_indices("test")
    assert [st.filenames[r] for r in test] == (root / "counterfactuals" / "index.txt").read_text().split()
    src_img, src_lab = read_counterfactual_sources(root)          # lossless renders of the test rows
    np.testing.assert_array_equal(st.labels[test], src_lab)       # PNG part masks merged by name
    assert np.abs(st.images[test].astype(int) - src_img).mean() < 4   # JPEG q95
    cfs = read_counterfactuals(root)
    assert st.counterfactual_attrs == sorted(cfs)
    for attr in ("Bald", "Smiling"):
        img, lab, att = st.counterfactuals(attr)
        np.testing.assert_array_equal(img, cfs[attr].images)
        np.testing.assert_array_equal(lab, cfs[attr].labels)
        np.testing.assert_array_equal(att, cfs[attr].attrs)


def test_synthfaces_store_hash_ignores_encoded_sizes(tmp_path):
    """A SynthFaces store is identified by the export's recipe, not its JPEG sizes: torch's float
    rounding differs by CPU kernel (AVX2 / AVX-512 / default), moving a few grey levels in ~1 %
    of the images and so the encoded sizes. Re-encoding one image keeps the hash (the listing,
    kept for information, changes); a different recipe changes it."""
    import faceedit_bench.data.synth_export as export

    root = export.export_synthfaces(tmp_path / "sf", n=20, res=32, progress=False, workers=1)
    a = Store(build_store(root, tmp_path / "a", "synth", res=32, workers=1)).manifest
    jpg = sorted((root / "img_align_celeba").glob("*.jpg"))[3]
    im = np.asarray(Image.open(jpg)).copy()
    im[0, 0] ^= 7                                   # a CPU-rounding-sized change of one image
    Image.fromarray(im).save(jpg, quality=80)
    b = Store(build_store(root, tmp_path / "b", "synth", res=32, workers=1)).manifest
    assert b["hash"] == a["hash"] and b["listing"] != a["listing"]
    recipe = json.loads((root / "synthfaces.json").read_text())
    (root / "synthfaces.json").write_text(json.dumps({**recipe, "seed": 1}))
    c = Store(build_store(root, tmp_path / "c", "synth", res=32, workers=1)).manifest
    assert c["hash"] != a["hash"]


def test_cli_store_infers_dataset(tmp_path, capsys):
    from faceedit_bench.cli import main
    from faceedit_bench.cli.store import infer_dataset

    hq = write_celebahq(tmp_path / "hq", n=2)
    assert infer_dataset(hq) == "celebahq" and infer_dataset(tmp_path) is None
    root = write_celeba(tmp_path / "c", n=3, hw=(218, 178), masks=False)
    assert main(["store", "--data", str(root), "--res", "8", "--out", str(tmp_path / "s")]) == 2
    assert "--masks parser" in capsys.readouterr().err
    assert main(["store", "--data", str(root), "--res", "8", "--masks", "none",
                 "--out", str(tmp_path / "s"), "--workers", "1"]) == 0
    assert "crop attgan170, masks none, split attgan" in capsys.readouterr().out


def test_killed_build_leaves_no_store_and_rerun_cleans_up(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    root = write_celeba(tmp_path / "src", n=120, hw=(218, 178), masks=False)
    out = tmp_path / "st" / "s"
    code = ("import time, faceedit_bench.data.store as s\n"
            "orig = s._process_chunk\n"
            "def slow(job):\n    time.sleep(0.2)\n    return orig(job)\n"
            "s._process_chunk = slow\n"
            f"s.build_store({str(root)!r}, {str(out)!r}, 'celeba', 16, masks='none', workers=1, chunk=8)\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while time.time() < deadline and not list((tmp_path / "st").glob(".s.tmp-*/images.npy")):
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and len(_leftovers(tmp_path / "st")) == 1   # only the dead temp
    st = Store(build_store(root, out, "celeba", 16, masks="none", workers=1))
    assert len(st) == 120 and _leftovers(tmp_path / "st") == []


def test_parser_masks_store(tmp_path):
    """masks='parser': labels from faceedit_bench.parsing.precompute, weights hash recorded."""
    import faceedit_bench.parsing.bisenet as bisenet
    from faceedit_bench.parsing.precompute import precompute_masks
    from faceedit_bench.parsing.weights import save_bisenet

    import torch
    torch.manual_seed(0)
    weights = save_bisenet(bisenet.BiSeNet(base=8, input_size=None), tmp_path / "tiny.pth")
    root = write_celeba(tmp_path / "src", n=3, hw=(24, 24), masks=False)
    st = Store(build_store(root, tmp_path / "s", "synth", res=16, workers=1, masks="parser",
                           parser_weights=weights))
    assert st.manifest["masks"] == "parser" and len(st.manifest["parser_weights_hash"]) == 16
    ref = np.load(precompute_masks(np.asarray(st.images), str(weights), tmp_path / "ref.npy",
                                   progress=False, device="cpu"))
    np.testing.assert_array_equal(st.labels, ref)
    assert _leftovers(tmp_path) == []


def test_concurrent_builders_build_one_store(tmp_path):
    """Two `store` commands on one fresh folder at once: SynthFaces rendered once, the store built
    once (the other reuses it), both report the same hash, and no temporary folder is left."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "faceedit_bench.cli", "store", "--data", "synth", "--res", "32",
           "--synth-n", "24", "--workers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    hashes = {line.rsplit("hash ", 1)[1] for o, _ in outs for line in o.splitlines()
              if line.startswith("store ")}
    assert len(hashes) == 1
    stores = tmp_path / "data" / "stores"
    assert [p.name for p in stores.iterdir() if p.is_dir()] == ["synth_n24_r32_none_gt"]
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers
