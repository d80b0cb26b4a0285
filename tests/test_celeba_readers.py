"""Readers of the CelebA / CelebA-HQ / CelebAMask-HQ files: formats, splits, masks, bad input."""
import numpy as np
import pytest
from PIL import Image

from _celeba_fixtures import attr_text, attrs_for, expected_mask, write_celeba, write_celebahq
from faceedit_bench.data.celeba import (DataFormatError, load_rgb, read_attr_file,
                                        read_hq_mapping, read_partition)
from faceedit_bench.data.celebamask import index_mask_dir, merge_part_masks
from faceedit_bench.data.sources import open_source, split_codes
from faceedit_bench.protocol import CELEBA_ATTRS


def _names(n):
    return [f"{i + 1:06d}.jpg" for i in range(n)]


def _rows(n):
    return np.stack([attrs_for(i) for i in range(n)])


@pytest.mark.parametrize("sep,eol", [(" ", "\n"), ("  ", "\r\n"), (" \t ", "\n"), ("   ", "\r\n")])
def test_attr_file_crlf_and_runs_of_spaces(tmp_path, sep, eol):
    p = tmp_path / "list_attr_celeba.txt"
    p.write_bytes(attr_text(_names(5), _rows(5), sep, eol).encode() + b"\r\n\r\n")
    t = read_attr_file(p)
    assert t.filenames == _names(5)
    np.testing.assert_array_equal(t.values, _rows(5))
    assert t.lines.tolist() == [3, 4, 5, 6, 7]


def test_attr_file_columns_mapped_by_name_and_subset(tmp_path):
    header = list(reversed(CELEBA_ATTRS))
    rows = _rows(4)
    p = tmp_path / "a.txt"
    p.write_text(attr_text(_names(4), rows[:, ::-1], header=header))
    t = read_attr_file(p)
    np.testing.assert_array_equal(t.values, rows)
    sub = t.select(["Smiling", "Bald"])
    np.testing.assert_array_equal(sub, rows[:, [CELEBA_ATTRS.index("Smiling"), 4]])
    with pytest.raises(ValueError, match="Smile"):
        t.select(["Smile"])


def test_attr_file_wrong_column_count_names_line(tmp_path):
    p = tmp_path / "list_attr_celeba.txt"
    text = attr_text(_names(4), _rows(4)).splitlines()
    text[4] = text[4].rsplit(" ", 2)[0]          # row of 000003.jpg loses two values
    p.write_text("\n".join(text) + "\n")
    with pytest.raises(DataFormatError, match=r"list_attr_celeba.txt:5: row has 39 fields.*41"):
        read_attr_file(p)
    t = read_attr_file(p, skip_bad=True)
    assert t.filenames == ["000001.jpg", "000002.jpg", "000004.jpg"]
    assert t.skipped[0]["line"] == 5 and t.ordinal.tolist() == [0, 1, 3]


def test_attr_file_unknown_attribute_name(tmp_path):
    header = list(CELEBA_ATTRS)
    header[7] = "Big_Nosee"
    p = tmp_path / "list_attr_celeba.txt"
    p.write_text(attr_text(_names(2), _rows(2), header=header))
    with pytest.raises(DataFormatError, match=r"list_attr_celeba.txt:2: unknown attribute name 'Big_Nosee'"):
        read_attr_file(p, skip_bad=True)       # a bad header cannot be skipped


def test_attr_file_bad_value_and_count(tmp_path):
    p = tmp_path / "a.txt"
    text = attr_text(_names(3), _rows(3)).splitlines()
    text[3] = text[3].replace(" -1", " 0", 1)
    p.write_text("\n".join(text))
    with pytest.raises(DataFormatError, match=r"a.txt:4: value '0' for 000002.jpg; expected -1 or 1"):
        read_attr_file(p)
    p.write_text(attr_text(_names(3), _rows(3), count=5))
    with pytest.raises(DataFormatError, match=r"a.txt:1: count line says 5 but the file has 3 rows"):
        read_attr_file(p)
    assert len(read_attr_file(p, skip_bad=True).filenames) == 3


def test_split_sizes_on_full_size_attribute_file(tmp_path):
    n = 202_599
    p = tmp_path / "list_attr_celeba.txt"
    plain = "  " + "  ".join(["-1"] * 40)
    smiling = "  " + "  ".join("1" if j == 31 else "-1" for j in range(40))
    p.write_text(f"{n}\r\n" + " ".join(CELEBA_ATTRS) + "\r\n" + "".join(
        f"{i + 1:06d}.jpg{smiling if i % 7 == 0 else plain}\r\n" for i in range(n)))
    t = read_attr_file(p)
    codes = split_codes("attgan", t, t.n_rows)
    assert [(codes == c).sum() for c in range(3)] == [182_000, 637, 19_962]
    assert t.filenames[np.flatnonzero(codes == 2)[0]] == "182638.jpg"
    assert t.values[:, 31].sum() == len(range(0, n, 7)) and t.values.sum() == len(range(0, n, 7))
    star = split_codes("stargan", t, t.n_rows)
    assert [(star == c).sum() for c in range(3)] == [200_600, 0, 1_999]


def test_partition_and_hq_mapping(tmp_path):
    p = tmp_path / "list_eval_partition.txt"
    p.write_bytes(b"000001.jpg 0\r\n000002.jpg   2\r\n")
    assert read_partition(p) == {"000001.jpg": (0, 1), "000002.jpg": (2, 2)}
    p.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(DataFormatError, match=r"list_eval_partition.txt:2"):
        read_partition(p)
    for header in (True, False):
        root = write_celebahq(tmp_path / f"hq{header}", n=3, header=header)
        m = read_hq_mapping(root / "CelebA-HQ-to-CelebA-mapping.txt")
        assert m.had_header == header and m.orig_idx.tolist() == [5, 1005, 2005]
    with pytest.raises(FileNotFoundError, match="CelebA-HQ-to-CelebA-mapping.txt"):
        read_hq_mapping(tmp_path / "CelebA-HQ-to-CelebA-mapping.txt")


def test_masks_merged_by_name_in_parts_order(tmp_path):
    root = write_celeba(tmp_path, n=3, hw=(40, 32))
    idx = index_mask_dir(root / "CelebAMask-HQ-mask-anno")
    assert sorted(idx) == [0, 1, 2] and set(idx[0]) == {"skin", "hair", "l_eye"}
    for k in range(3):
        np.testing.assert_array_equal(merge_part_masks(idx[k], (40, 32)), expected_mask((40, 32), k))
    with pytest.raises(DataFormatError, match=r"00001_skin.png: mask is 32x40.*expected 64x64"):
        merge_part_masks(idx[1], (64, 64))


def test_open_source_celeba_partition_and_bad_images(tmp_path):
    root = write_celeba(tmp_path / "c", n=8, hw=(40, 32), masks=False)
    src = open_source(root, "synth")
    assert src.split.tolist() == [0, 0, 0, 0, 1, 1, 2, 2] and src.mask_k.tolist() == list(range(8))
    (root / "img_align_celeba" / "000003.jpg").unlink()
    with pytest.raises(DataFormatError, match=r"000003.jpg \(listed at .*list_attr_celeba.txt:5\)"):
        open_source(root, "synth")
    src = open_source(root, "synth", skip_bad=True)
    assert "000003.jpg" not in src.filenames and src.skipped[0]["line"] == 5
    Image.new("RGB", (32, 40)).save(root / "img_align_celeba" / "000003.jpg")
    Image.new("RGB", (32, 40)).save(root / "img_align_celeba" / "000099.jpg")
    with pytest.raises(DataFormatError, match=r"8 rows do not match the 9 images.*000099.jpg"):
        open_source(root, "celeba")


def test_open_source_celebahq_requires_mapping(tmp_path):
    root = write_celebahq(tmp_path, n=4)
    src = open_source(root, "celebahq")
    assert src.mask_size == (512, 512) and src.split.tolist() == [0, 0, 0, 0]
    assert open_source(root, "celebahq", split="celebamask").split.tolist() == [0, 0, 0, 0]
    (root / "CelebA-HQ-to-CelebA-mapping.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"CelebA-HQ-to-CelebA-mapping.txt: CelebA-HQ mapping"):
        open_source(root, "celebahq")


def test_corrupt_and_missing_jpeg_named(tmp_path):
    p = tmp_path / "000001.jpg"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(p)
    assert load_rgb(p).shape == (16, 16, 3)
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(DataFormatError, match=r"000001.jpg: cannot decode image \(listed at x:3\)"):
        load_rgb(p, "x:3")
    with pytest.raises(DataFormatError, match=r"000002.jpg: image file missing"):
        load_rgb(tmp_path / "000002.jpg")


def test_original_celeba_folder_layout(tmp_path):
    """Google Drive layout: Anno/list_attr_celeba.txt, Eval/..., Img/img_align_celeba/."""
    flat = write_celeba(tmp_path / "flat", n=3, hw=(24, 24), masks=False)
    root = tmp_path / "gd"
    for sub, name in (("Anno", "list_attr_celeba.txt"), ("Eval", "list_eval_partition.txt")):
        (root / sub).mkdir(parents=True)
        (root / sub / name).write_bytes((flat / name).read_bytes())
    (root / "Img").mkdir()
    (flat / "img_align_celeba").rename(root / "Img" / "img_align_celeba")
    src = open_source(root, "celeba", split="partition")
    assert src.image_path(0) == root / "Img" / "img_align_celeba" / "000001.jpg"
    assert src.split.tolist() == [1, 1, 2]          # fixture partition of 3 rows
