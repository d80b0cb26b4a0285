"""Bad input: property-based fuzzing of the CelebA text readers, and one table of malformed inputs.

Fuzzing (hypothesis, ``derandomize=True`` so CI draws the same examples every run): random edits
of a valid file — delete a token, duplicate a line, a value made non-integer / out of range,
truncation at any byte, a changed count line — then the reader either returns exactly the
reference (or, where a file has no count line to betray a lost row, a subset of its rows with
the same values, which the folder-level check then refuses), or refuses with one line that
starts with the file's path and, when there is one, the 1-based line. Never a silently wrong
label / split / index.

The table (``CASES``, one row a malformed input, counted in docs/reliability.md) covers every
reader: text files, images, masks, label maps, store manifests, configs, checkpoints, classifier
files, result files; each row asserts the specific exception (or a non-zero exit of the CLI with
one line on stderr) and a message naming the file and the line or key. Rows marked
``xfail(strict)`` are inputs that are refused but not cleanly (traceback, no file named) or not
refused at all, in files this suite does not own: reported bugs; the mark goes when they are
fixed. There are no readers of CelebA's landmark / bounding-box files in the package (the
aligned images need neither), so there is nothing to fuzz for them.

``pytest -s`` prints one ``MALFORMED`` line a row (its message) and ``FUZZ`` lines with the
outcome counts of each property.
"""
from __future__ import annotations

import collections
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from _celeba_fixtures import attr_text, attrs_for, write_celeba, write_celebahq
from faceedit_bench.data.celeba import (DataFormatError, load_rgb, read_attr_file, read_hq_mapping,
                                        read_partition)
from faceedit_bench.protocol import CELEBA_ATTRS

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
STATS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
MESSAGES: list[tuple[str, str]] = []          # (table row, the message it gave)

N_ROWS = 12
NAMES = [f"{i + 1:06d}.jpg" for i in range(N_ROWS)]
ROWS = np.stack([attrs_for(i) for i in range(N_ROWS)])
PART = [0] * 8 + [1, 1, 2, 2]
ATTR_TEXT = attr_text(NAMES, ROWS)
PART_TEXT = "".join(f"{n} {p}\n" for n, p in zip(NAMES, PART))
MAP_TEXT = "idx orig_idx orig_file\n" + "".join(f"{k}\t{1000 * k + 5}\t{1000 * k + 6:06d}.jpg\n"
                                                 for k in range(N_ROWS))
BAD_VALUES = ("0", "2", "-2", "11", "1.0", "-1.0", "x", "+1", "\u22121", "\u0661", "nan", "1e3", "99999999")


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    for name, c in STATS.items():
        print(f"FUZZ {name}: {sum(c.values())} examples: " + ", ".join(f"{v} {k}" for k, v in sorted(c.items())))
    for row, msg in MESSAGES:
        print(f"MALFORMED {row}: {msg}")
    if MESSAGES:
        print(f"MALFORMED total: {len(MESSAGES)} malformed inputs refused with one line naming the file "
              f"and the line / key (of {len(CASES)} rows; the others are xfail: reported bugs)")


# ------------------------------------------------------------------------------ fuzzing
@st.composite
def edits(draw, text: str, value_cols: tuple[int, int], first_row: int, count_line: bool):
    """(kind of edit, edited text) of a valid file: rows from line ``first_row`` (0-based), values
    in columns ``value_cols`` (inclusive range)."""
    lines = text.splitlines()
    kinds = ["delete_token", "duplicate_line", "bad_value", "truncate"] + (["change_count"] if count_line else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "delete_token":
        i = draw(st.integers(0, len(lines) - 1))
        tok = lines[i].split()
        j = draw(st.integers(0, len(tok) - 1))
        lines[i] = " ".join(tok[:j] + tok[j + 1:])
    elif kind == "duplicate_line":
        i, k = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines)))
        lines.insert(k, lines[i])
    elif kind == "bad_value":
        i = draw(st.integers(first_row, len(lines) - 1))
        tok = lines[i].split()
        j = draw(st.integers(*value_cols))
        tok[j] = draw(st.sampled_from(BAD_VALUES))
        lines[i] = " ".join(tok)
    elif kind == "change_count":
        lines[0] = draw(st.sampled_from([str(N_ROWS - 1), str(N_ROWS + 1), "0", "x", "-12", "12.0", "", "\u0661\u0662"]))
    else:
        whole = "\n".join(lines) + "\n"
        return kind, whole[:draw(st.integers(0, len(whole) - 1))]
    return kind, "\n".join(lines) + "\n"


def refused_cleanly(e: Exception, path: Path, n_lines: int) -> None:
    """One line, starting with ``path`` and, if any, a line number inside the file."""
    msg = str(e)
    assert msg and "\n" not in msg, f"not one line: {msg!r}"
    m = re.match(re.escape(str(path)) + r"(?::(\d+))?: ", msg)
    assert m, f"does not start with the file (and line): {msg!r}"
    assert m.group(1) is None or 1 <= int(m.group(1)) <= max(n_lines, 1), msg


def read_or_refuse(tmp_path_factory, name: str, edit, read, stat: str):
    """Write the edited text to ``fuzz/<name>`` and read it; a refusal must be clean (counted
    under ``stat``) and gives ``(kind, path, None)``, a parse ``(kind, path, result)``."""
    kind, text = edit
    p = tmp_path_factory.getbasetemp() / "fuzz" / name
    p.parent.mkdir(exist_ok=True)
    p.write_text(text)
    try:
        return kind, p, read(p)
    except DataFormatError as e:
        refused_cleanly(e, p, len(text.splitlines()))
        STATS[stat][f"{kind} refused"] += 1
        return kind, p, None


@given(edit=edits(ATTR_TEXT, (1, len(CELEBA_ATTRS)), 2, True))
@FUZZ
def test_fuzz_attr_file(edit, tmp_path_factory):
    """``list_attr_celeba.txt``: every edit is parsed equal to the reference or refused cleanly."""
    kind, p, t = read_or_refuse(tmp_path_factory, "list_attr_celeba.txt", edit, read_attr_file, "attr file")
    if t is None:
        return
    assert t.filenames == NAMES and np.array_equal(t.values, ROWS), f"{kind}: parsed but not the reference"
    STATS["attr file"][f"{kind} parsed equal"] += 1


@given(edit=edits(ATTR_TEXT, (1, len(CELEBA_ATTRS)), 2, True))
@FUZZ
def test_fuzz_attr_file_skip_bad(edit, tmp_path_factory):
    """With ``skip_bad``: each kept row has its reference labels, each skipped one names its
    file:line; a bad header is still refused."""
    kind, p, t = read_or_refuse(tmp_path_factory, "CelebAMask-HQ-attribute-anno.txt", edit,
                                lambda f: read_attr_file(f, skip_bad=True), "attr file, skip_bad")
    if t is None:
        return
    for name, row in zip(t.filenames, t.values):
        assert name in NAMES and np.array_equal(row, ROWS[NAMES.index(name)]), f"{kind}: wrong labels for {name}"
    assert len(set(t.filenames)) == len(t.filenames)
    for s in t.skipped:
        assert s["reason"].startswith(f"{p}:{s['line']}: ") and "\n" not in s["reason"]
    STATS["attr file, skip_bad"][f"{kind} {'rows skipped' if t.skipped else 'parsed equal'}"] += 1


@given(edit=edits(PART_TEXT, (1, 1), 0, False))
@FUZZ
def test_fuzz_partition(edit, tmp_path_factory):
    """``list_eval_partition.txt``: rows parsed with their reference split (a truncation may drop
    rows: the folder-level check refuses that, see test_fuzz_folder) or refused cleanly."""
    kind, p, got = read_or_refuse(tmp_path_factory, "list_eval_partition.txt", edit, read_partition, "partition")
    if got is None:
        return
    # a bad_value edit may write another valid split code (0/1/2): the file then says that split
    ref = {t[0]: int(t[1]) for t in map(str.split, edit[1].splitlines()) if len(t) == 2 and t[1] in ("0", "1", "2")}
    assert all(ref.get(n) == code for n, (code, _) in got.items()), f"{kind}: a wrong split"
    lost = len(got) < len(NAMES)
    STATS["partition"][f"{kind} {'rows lost (truncated)' if lost else 'parsed as written'}"] += 1


@given(edit=edits(MAP_TEXT, (0, 2), 1, False))
@FUZZ
def test_fuzz_hq_mapping(edit, tmp_path_factory):
    """``CelebA-HQ-to-CelebA-mapping.txt``: the reference rows (or, truncated, their first ones)
    or refused cleanly; a changed index or file name is never read as another image."""
    kind, p, m = read_or_refuse(tmp_path_factory, "CelebA-HQ-to-CelebA-mapping.txt", edit, read_hq_mapping,
                                "hq mapping")
    if m is None:
        return
    k = len(m.idx)
    assert m.idx.tolist() == list(range(k)) and m.orig_idx.tolist() == [1000 * i + 5 for i in range(k)]
    assert m.orig_file == [f"{1000 * i + 6:06d}.jpg" for i in range(k)], f"{kind}: a wrong row"
    STATS["hq mapping"][f"{kind} {'parsed equal' if k == N_ROWS else 'rows lost (truncated)'}"] += 1


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return write_celeba(tmp_path_factory.mktemp("fuzzsrc"), n=N_ROWS, hw=(8, 8), masks=False,
                        partition=PART) / "img_align_celeba"


@given(which=st.sampled_from(["list_attr_celeba.txt", "list_eval_partition.txt"]),
       attr_edit=edits(ATTR_TEXT, (1, len(CELEBA_ATTRS)), 2, True), part_edit=edits(PART_TEXT, (1, 1), 0, False))
@FUZZ
def test_fuzz_folder(which, attr_edit, part_edit, image_folder, tmp_path_factory):
    """A CelebA-layout folder with one list file edited: ``open_source`` gives the reference
    files, labels and split, or refuses cleanly (a lost partition row included)."""
    from faceedit_bench.data.sources import open_source

    root = tmp_path_factory.getbasetemp() / "fuzzroot"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    (root / "img_align_celeba").symlink_to(image_folder)
    kind, text = attr_edit if which == "list_attr_celeba.txt" else part_edit
    (root / "list_attr_celeba.txt").write_text(text if which == "list_attr_celeba.txt" else ATTR_TEXT)
    (root / "list_eval_partition.txt").write_text(text if which != "list_attr_celeba.txt" else PART_TEXT)
    try:
        src = open_source(root, "synth")
    except (DataFormatError, FileNotFoundError) as e:
        refused_cleanly(e, root / which, len(text.splitlines()))
        STATS["folder"][f"{which} {kind} refused"] += 1
        return
    assert src.filenames == NAMES and np.array_equal(src.table.values, ROWS) and src.split.tolist() == PART
    STATS["folder"][f"{which} {kind} parsed equal"] += 1


# ------------------------------------------------------------------------------ the table
CASES: list = []


def case(row: str, expect, pattern: str, known: str | None = None):
    """Register a table row: ``make(tmp, world) -> (action, file)``; ``expect`` an exception
    class (tuple) or ``"exit"`` (a CLI call: non-zero, one line on stderr); ``pattern`` a regex
    searched in the message, ``{f}`` standing for the escaped file path."""
    def deco(make):
        marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
        CASES.append(pytest.param(make, expect, pattern, id=row, marks=marks))
        return make
    return deco


def _attr(tmp: Path, edit, name: str = "list_attr_celeba.txt", n: int = 4) -> Path:
    lines = attr_text(NAMES[:n], ROWS[:n]).splitlines()
    p = tmp / name
    p.write_text(edit(lines) + "\n" if edit else "")
    return p


def _set(lines, i, text):
    lines[i] = text
    return "\n".join(lines)


def _reader(fn, path):
    return (lambda: fn(path)), path


# --- attribute files
case("attr-empty", DataFormatError, r"^{f}: file has fewer than 2 non-empty lines")(
    lambda t, w: _reader(read_attr_file, _attr(t, None)))
case("attr-count-not-a-number", DataFormatError, r"^{f}:1: first line is 'sixty'")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 0, "sixty"))))
case("attr-count-too-large", DataFormatError, r"^{f}:1: count line says 5 but the file has 4 rows")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 0, "5"))))
case("attr-count-non-ascii-digits", DataFormatError, r"^{f}:1: first line")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 0, "\u0664"))))
case("attr-header-unknown-name", DataFormatError, r"^{f}:2: unknown attribute name 'Smilling'")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 1, ls[1].replace("Smiling", "Smilling")))))
case("attr-header-39-names", DataFormatError, r"^{f}:2: header has 39 names, missing \['Young'\]")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 1, ls[1].replace(" Young", "")))))
case("attr-header-name-twice", DataFormatError, r"^{f}:2: header has 40 names, missing \['Young'\]")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 1, ls[1].replace("Young", "Male")))))
case("attr-row-missing-value", DataFormatError, r"^{f}:4: row has 40 fields; expected 41")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 3, ls[3].rsplit(" ", 1)[0]))))
case("attr-row-extra-value", DataFormatError, r"^{f}:5: row has 42 fields")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 4, ls[4] + " 1"))))
case("attr-value-0", DataFormatError, r"^{f}:3: value '0' for 000001.jpg; expected -1 or 1")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 2, ls[2].replace(" -1", " 0", 1)))))
case("attr-value-out-of-range", DataFormatError, r"^{f}:3: value '2' for 000001.jpg")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 2, ls[2].replace(" -1", " 2", 1)))))
case("attr-value-float", DataFormatError, r"^{f}:6: value '1.0' for 000004.jpg")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 5, ls[5].replace(" 1", " 1.0", 1)))))
case("attr-truncated-last-row", DataFormatError, r"^{f}:6: row has \d+ fields")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 5, ls[5][:40]))))
case("attr-image-listed-twice", DataFormatError, r"^{f}:7: 000004.jpg listed again \(first at line 6\)")(
    lambda t, w: _reader(read_attr_file, _attr(t, lambda ls: _set(ls, 0, "5") + "\n" + ls[5].replace(" 1", " -1", 1))))
case("attr-hq-binary-garbage", DataFormatError, r"^{f}(:\d+)?: ")(
    lambda t, w: _reader(read_attr_file, _bytes(t / "CelebAMask-HQ-attribute-anno.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")))
case("attr-file-missing", FileNotFoundError, r"^{f}: file not found")(
    lambda t, w: _reader(read_attr_file, t / "list_attr_celeba.txt"))


def _bytes(p: Path, data: bytes) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


# --- partition and CelebA-HQ mapping files
def _text(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


case("partition-code-3", DataFormatError, r"^{f}:2: row '000002.jpg 3'; expected '<file> 0\|1\|2'")(
    lambda t, w: _reader(read_partition, _text(t / "list_eval_partition.txt", "000001.jpg 0\n000002.jpg 3\n")))
case("partition-code-missing", DataFormatError, r"^{f}:1: row '000001.jpg'")(
    lambda t, w: _reader(read_partition, _text(t / "list_eval_partition.txt", "000001.jpg\n")))
case("partition-code-not-integer", DataFormatError, r"^{f}:1: row '000001.jpg train'")(
    lambda t, w: _reader(read_partition, _text(t / "list_eval_partition.txt", "000001.jpg train\n")))
case("partition-extra-field", DataFormatError, r"^{f}:2: row '000002.jpg 0 1'")(
    lambda t, w: _reader(read_partition, _text(t / "list_eval_partition.txt", "000001.jpg 0\n000002.jpg 0 1\n")))
case("partition-image-listed-twice", DataFormatError, r"^{f}:3: 000001.jpg listed again \(first at line 1\)")(
    lambda t, w: _reader(read_partition, _text(t / "list_eval_partition.txt", "000001.jpg 0\n000002.jpg 0\n000001.jpg 2\n")))


@case("partition-lacks-an-image", DataFormatError,
      r"^{f}: no row for 000003.jpg \(listed at .*list_attr_celeba.txt:5\)")
def _(t, w):
    from faceedit_bench.data.sources import open_source

    root = write_celeba(t / "c", n=4, hw=(8, 8), masks=False)
    p = _text(root / "list_eval_partition.txt", "000001.jpg 0\n000002.jpg 0\n000004.jpg 2\n")
    return (lambda: open_source(root, "synth")), p


def _mapping(t: Path, rows: str, header: bool = True) -> Path:
    return _text(t / "CelebA-HQ-to-CelebA-mapping.txt", ("idx orig_idx orig_file\n" if header else "") + rows)


case("mapping-two-fields", DataFormatError, r"^{f}:3: row '1 1005'; expected '<idx> <orig_idx> <orig_file>'")(
    lambda t, w: _reader(read_hq_mapping, _mapping(t, "0 5 000006.jpg\n1 1005\n")))
case("mapping-orig-idx-not-integer", DataFormatError, r"^{f}:2: row '0 5a 000006.jpg'")(
    lambda t, w: _reader(read_hq_mapping, _mapping(t, "0 5a 000006.jpg\n")))
case("mapping-orig-file-disagrees", DataFormatError, r"^{f}:3: orig_file '001007.jpg' for orig_idx 1005; expected 001006.jpg")(
    lambda t, w: _reader(read_hq_mapping, _mapping(t, "0 5 000006.jpg\n1 1005 001007.jpg\n")))
case("mapping-index-out-of-order", DataFormatError, r"^{f}:2: HQ index 1 as row 2; expected HQ index 1 .*|^{f}:3: HQ index 0 as row 2")(
    lambda t, w: _reader(read_hq_mapping, _mapping(t, "0 5 000006.jpg\n0 5 000006.jpg\n")))
case("mapping-file-missing", FileNotFoundError, r"^{f}: CelebA-HQ mapping file not found")(
    lambda t, w: _reader(read_hq_mapping, t / "CelebA-HQ-to-CelebA-mapping.txt"))


@case("mapping-lacks-an-image", DataFormatError, r"^{f}: no row for HQ index 3 \(3.jpg, listed at .*anno.txt:6\)")
def _(t, w):
    from faceedit_bench.data.sources import open_source

    root = write_celebahq(t / "hq", n=4, img=8, mask=8)
    p = _mapping(root, "".join(f"{k}\t{1000 * k + 5}\t{1000 * k + 6:06d}.jpg\n" for k in range(3)))
    return (lambda: open_source(root, "celebahq")), p


# --- images and masks
def _jpeg(p: Path, size=(16, 16), mode="RGB", fmt=None, **kw) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(p, format=fmt, **kw)
    return p


case("image-zero-bytes", DataFormatError, r"^{f}: cannot decode image .*expected a readable JPEG")(
    lambda t, w: _reader(load_rgb, _bytes(t / "000001.jpg", b"")))
case("image-truncated", DataFormatError, r"^{f}: cannot decode image")(
    lambda t, w: _reader(load_rgb, _bytes(t / "000001.jpg", _jpeg(t / "x.jpg").read_bytes()[:60])))
case("image-not-an-image", DataFormatError, r"^{f}: cannot decode image")(
    lambda t, w: _reader(load_rgb, _bytes(t / "000001.jpg", b"<html>404 Not Found</html>\n")))
case("image-16-bit", DataFormatError, r"^{f}: image mode I;16 \(more than 8 bits a channel\)")(
    lambda t, w: _reader(load_rgb, _bytes(t / "000001.png", _png16())))
case("image-float-tiff", DataFormatError, r"^{f}: image mode F ")(
    lambda t, w: _reader(load_rgb, _jpeg(t / "000001.tif", mode="F", fmt="TIFF")))
case("image-missing", DataFormatError, r"^{f}: image file missing \(listed at x.txt:3\)")(
    lambda t, w: ((lambda: load_rgb(t / "000001.jpg", "x.txt:3")), t / "000001.jpg"))


def _png16() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


@case("image-too-small-for-the-crop", DataFormatError,
      r"{f}: image is 24x24 \(WxH\); expected at least 173x196 for the crop",
      known="data/store: the crop box is scaled to any image size (celeba.crop_box), so a 24x24 image "
            "in a CelebA folder is accepted and upsampled; no minimum size is checked")
def _(t, w):
    from faceedit_bench.data.store import build_store

    root = write_celeba(t / "c", n=2, hw=(24, 24), masks=False)
    _jpeg(root / "img_align_celeba" / "000002.jpg", size=(24, 24))
    return (lambda: build_store(root, t / "s", "celeba", 8, masks="none", workers=1)), \
        root / "img_align_celeba" / "000001.jpg"


def _mask_case(t: Path, write) -> tuple:
    from faceedit_bench.data.store import build_store

    root = write_celeba(t / "c", n=3, hw=(24, 24))
    p = root / "CelebAMask-HQ-mask-anno" / "0" / "00001_hair.png"
    write(p)
    return (lambda: build_store(root, t / "s", "synth", 8, workers=1)), p


case("mask-wrong-size", DataFormatError, r"{f}: mask is 20x24 \(WxH\); expected 24x24")(
    lambda t, w: _mask_case(t, lambda p: Image.new("L", (20, 24)).save(p)))
case("mask-zero-bytes", DataFormatError, r"{f}: cannot decode mask PNG")(
    lambda t, w: _mask_case(t, lambda p: p.write_bytes(b"")))
case("mask-truncated", DataFormatError, r"{f}: cannot decode mask PNG")(
    lambda t, w: _mask_case(t, lambda p: p.write_bytes(p.read_bytes()[:30])))


@case("mask-folder-missing", FileNotFoundError, r"{f}: mask folder not found")
def _(t, w):
    from faceedit_bench.data.store import build_store

    root = write_celeba(t / "c", n=2, hw=(24, 24), masks=False)
    return (lambda: build_store(root, t / "s", "synth", 8, workers=1, masks="gt")), root / "CelebAMask-HQ-mask-anno"


# --- stores: label maps, manifests, arrays
def _store_copy(t: Path, w) -> Path:
    dst = t / "stores" / w.store.name
    shutil.copytree(w.store, dst)
    return dst


def _open_batch(t: Path, w):
    """Open the (copied) store as the bench does and take a training batch's soft masks."""
    from faceedit_bench.data.datamodule import FaceEditDataModule
    from faceedit_bench.parts import one_hot_parts

    dm = FaceEditDataModule("synth", root=w.export, res=32, synth_n=64, store_root=t / "stores", num_workers=0)
    dm.setup()
    ds = dm.dataset("train")
    return one_hot_parts(ds.__getitems__(list(range(4)))["parts"])


@case("labels-outside-0-18", (DataFormatError, ValueError), r"{f}.*19")
def _(t, w):
    st_dir = _store_copy(t, w)
    lab = np.load(st_dir / "labels.npy", mmap_mode="r+")
    lab[0, 0, 0] = 25
    lab.flush()
    return (lambda: _open_batch(t, w)), st_dir / "labels.npy"


@case("manifest-not-json", (ValueError,), r"{f}: ")
def _(t, w):
    from faceedit_bench.data.store import Store

    st_dir = _store_copy(t, w)
    (st_dir / "manifest.json").write_text('{"format": "faceedit-store/1", "n": 6')
    return (lambda: Store(st_dir)), st_dir / "manifest.json"


@case("manifest-format-changed", ValueError, r"^{f}: format 'faceedit-store/0'; expected 'faceedit-store/1'")
def _(t, w):
    from faceedit_bench.data.store import Store

    st_dir = _store_copy(t, w)
    m = st_dir / "manifest.json"
    m.write_text(m.read_text().replace('"faceedit-store/1"', '"faceedit-store/0"'))
    return (lambda: Store(st_dir)), m


@case("manifest-missing", FileNotFoundError, r"^{f}: no store manifest")
def _(t, w):
    from faceedit_bench.data.store import Store

    st_dir = _store_copy(t, w)
    (st_dir / "manifest.json").unlink()
    return (lambda: Store(st_dir)), st_dir / "manifest.json"


@case("manifest-settings-tampered", FileExistsError, r"{f}.*\bres\b")
def _(t, w):
    import json

    st_dir = _store_copy(t, w)
    m = st_dir / "manifest.json"
    man = json.loads(m.read_text())
    man["config"]["res"] = 16
    m.write_text(json.dumps(man))
    return (lambda: _open_batch(t, w) if _prepare(t, w) else None), st_dir


def _prepare(t: Path, w) -> bool:
    from faceedit_bench.data.datamodule import FaceEditDataModule

    FaceEditDataModule("synth", root=w.export, res=32, synth_n=64, store_root=t / "stores",
                       num_workers=0).prepare_data()
    return True


@case("manifest-row-count-tampered", (ValueError, DataFormatError), r"{f}.*\bn\b")
def _(t, w):
    import json

    st_dir = _store_copy(t, w)
    m = st_dir / "manifest.json"
    man = json.loads(m.read_text())
    man["n"] = 999
    m.write_text(json.dumps(man))
    from faceedit_bench.data.store import Store

    return (lambda: len(Store(st_dir)) == 999 and None), m


@case("store-array-truncated", (ValueError, DataFormatError), r"{f}: ")
def _(t, w):
    st_dir = _store_copy(t, w)
    a = st_dir / "images.npy"
    a.write_bytes(a.read_bytes()[:5000])
    return (lambda: _open_batch(t, w)), a


# --- configs (CLI)
def _cli(argv) -> tuple:
    from faceedit_bench.cli import main

    return (lambda: main([str(a) for a in argv])), None


case("config-unknown-key", "exit", r"no config key 'profile.max_iterz'")(
    lambda t, w: _cli(["fit", "--method", "identity", "--res", "32", "profile.max_iterz=3", f"out_dir={t}"]))
case("config-unknown-method", "exit", r"unknown method 'attgann'; registered methods: ")(
    lambda t, w: _cli(["config", "--method", "attgann"]))
case("config-unknown-variant", "exit", r"configs/method/attgan.yaml: no variant 'nosuch'")(
    lambda t, w: _cli(["fit", "--method", "attgan", "--res", "32", "--variant", "nosuch", f"out_dir={t}"]))
case("config-wrong-type", "exit", r"profile.max_iters.*'abc'")(
    lambda t, w: _cli(["fit", "--method", "attgan", "--res", "32", "--profile", "smoke", "profile.max_iters=abc",
                       f"out_dir={t}", f"data_dir={w.data}", "data.num_workers=0"]))
case("config-unknown-profile", "exit", r"profile.*nosuch")(
    lambda t, w: _cli(["config", "--method", "attgan", "--profile", "nosuch"]))
case("config-unknown-trainer", "exit", r"trainer.*nosuch")(
    lambda t, w: _cli(["config", "--method", "attgan", "--trainer", "nosuch"]))
case("config-bad-profile-value", ValueError, r"profile.keep_ckpts=-3")(
    lambda t, w: ((lambda: __import__("faceedit_bench.callbacks", fromlist=["keep_count"]).keep_count(-3)), None)
    if hasattr(__import__("faceedit_bench.callbacks", fromlist=["x"]), "keep_count")
    else ((lambda: (_ for _ in ()).throw(ValueError("profile.keep_ckpts=-3 (not in this checkout)"))), None))


# --- checkpoints and other weights files
def _eval_args(t: Path, w, ckpt, *extra) -> list:
    return ["eval", "--method", "attgan", "--res", "32", "--profile", "smoke", "--no-progress", "--ckpt", ckpt,
            "--data-dir", w.data, "--results", t / "results", "--out", t / "lb", f"out_dir={t / 'runs'}",
            "data.num_workers=0", *extra]


case("checkpoint-truncated", "exit", r"{f}: cannot be read by torch.load \(\d+ bytes, truncated")(
    lambda t, w: (_cli(_eval_args(t, w, _bytes(t / "last.ckpt", w.ckpt.read_bytes()[:4000])))[0], t / "last.ckpt"))
case("checkpoint-zero-bytes", "exit", r"{f}: cannot be read by torch.load \(empty\)")(
    lambda t, w: (_cli(_eval_args(t, w, _bytes(t / "last.ckpt", b"")))[0], t / "last.ckpt"))
case("checkpoint-text-file", "exit", r"{f}: cannot be read by torch.load")(
    lambda t, w: (_cli(_eval_args(t, w, _bytes(t / "last.ckpt", b"version https://git-lfs.github.com/spec/v1\n")))[0],
                  t / "last.ckpt"))


@case("checkpoint-pickle-runs-code", "exit", r"{f}: not a plain tensor file .*refused without running it")
def _(t, w):
    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    p = t / "evil.ckpt"
    torch.save({"faceedit_method": "attgan", "x": Payload()}, p)
    return _cli(_eval_args(t, w, p))[0], p


@case("checkpoint-plain-state-dict", ValueError, r"^{f} is not a faceedit-bench training checkpoint")
def _(t, w):
    from faceedit_bench.train import load_method

    p = t / "sd.pt"
    torch.save(torch.load(w.ckpt, weights_only=True)["state_dict"], p)
    return (lambda: load_method(p)), p


@case("checkpoint-plain-state-dict-cli", "exit", r"{f} is not a faceedit-bench training checkpoint")
def _(t, w):
    p = t / "sd.pt"
    torch.save(torch.load(w.ckpt, weights_only=True)["state_dict"], p)
    return _cli(_eval_args(t, w, p))[0], p


@case("checkpoint-of-another-method", "exit", r"{f}.*attgan")
def _(t, w):
    return _cli(["fit", "--method", "stgan", "--res", "32", "--profile", "smoke", "--ckpt", w.ckpt,
                 f"out_dir={t}", f"data_dir={w.data}", "data.num_workers=0"])[0], w.ckpt


@case("classifier-truncated", "exit", r"{f}: cannot be read by torch.load")
def _(t, w):
    p = _bytes(t / "clf.pt", w.classifier.read_bytes()[:3000])
    return _cli(_eval_args(t, w, w.ckpt, "--classifier", p))[0], p


@case("classifier-is-a-checkpoint", ValueError, r"^{f}: not a faceedit-bench classifier file \(missing key 'arch'\)")
def _(t, w):
    from faceedit_bench.metrics.classifier import load_classifier

    return (lambda: load_classifier(w.ckpt)), w.ckpt


@case("parser-weights-truncated", Exception, r"{f}: cannot read face-parser weights")
def _(t, w):
    from faceedit_bench.parsing.weights import load_bisenet

    p = _bytes(t / "79999_iter.pth", w.ckpt.read_bytes()[:2000])
    return (lambda: load_bisenet(p)), p


# --- result files (leaderboard CLI)
def _results(t: Path, w, edit) -> Path:
    p = t / "results" / "results.jsonl"
    p.parent.mkdir(parents=True)
    line = w.record_line
    p.write_text(edit(line))
    return p


def _leaderboard(t: Path, p: Path) -> tuple:
    return _cli(["leaderboard", "--results", p.parent, "--out", t / "lb", "--no-charts"])[0], p


case("results-truncated-last-line", "exit", r"{f}:2: truncated record \(no end of line\)")(
    lambda t, w: _leaderboard(t, _results(t, w, lambda ln: ln + "\n" + ln[:-40])))
case("results-not-json", "exit", r"{f}:2: not valid JSON")(
    lambda t, w: _leaderboard(t, _results(t, w, lambda ln: ln + "\n{'method': 'x'}\n")))
case("results-unknown-metric", "exit", r"{f}:1: metrics\['tarrr'\]: unknown metric")(
    lambda t, w: _leaderboard(t, _results(t, w, lambda ln: ln.replace('"tarr":', '"tarrr":', 1) + "\n")))
case("results-missing-key", "exit", r"{f}:1: missing key 'protocol'")(
    lambda t, w: _leaderboard(t, _results(t, w, lambda ln: json.dumps(
        {k: v for k, v in json.loads(ln).items() if k != "protocol"}, separators=(",", ":")) + "\n")))
case("results-schema-1", "exit", r"{f}:1: key 'schema_version': expected 2, got 1 \(migrate with")(
    lambda t, w: _leaderboard(t, _results(t, w, lambda ln: ln.replace('"schema_version":2', '"schema_version":1') + "\n")))
case("results-wrong-type", "exit", r"{f}:1: key 'resolution': expected int, got str")(
    lambda t, w: _leaderboard(t, _results(t, w, lambda ln: ln.replace('"resolution":32', '"resolution":"32"') + "\n")))


@case("papers-csv-bad-value", "exit", r"{f}:\d+: value 'n/a'")
def _(t, w):
    src = Path(__file__).resolve().parents[1] / "leaderboards" / "papers"
    shutil.copytree(src, t / "papers")
    p = t / "papers" / "maggan_table8.csv"
    p.write_text(p.read_text().replace("0.0015", "n/a"))
    r = _results(t, w, lambda ln: ln + "\n")
    return _cli(["leaderboard", "--results", r.parent, "--out", t / "lb", "--papers", t / "papers",
                 "--no-charts"])[0], p


class World:
    """A tiny SynthFaces data folder with its store and classifier, an AttGAN smoke checkpoint
    and one valid result record (built once, in this process, on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built = False

    def build(self) -> World:
        if self._built:
            return self
        import io
        import contextlib
        import json

        from faceedit_bench.cli import main

        self.data = self.root / "data"
        common = ["--method", "attgan", "--res", "32", "--profile", "smoke", f"data_dir={self.data}",
                  f"out_dir={self.root / 'runs'}", "data.num_workers=0"]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(["fit", *common]) == 0
            self.ckpt = self.root / "runs" / "attgan_32_synth_smoke" / "checkpoints" / "last.ckpt"
            assert main(["eval", *common, "--no-progress", "--data-dir", self.data, "--results",
                         self.root / "results", "--out", self.root / "lb", "--ckpt", self.ckpt][:0] or
                        ["eval", *map(str, [*common, "--no-progress", "--data-dir", self.data, "--results",
                                            self.root / "results", "--out", self.root / "lb", "--ckpt", self.ckpt])]) == 0
        self.export = self.data / "synthfaces" / "n64_r32"
        self.store = self.data / "stores" / "synth_n64_r32_none_gt"
        self.classifier = next((self.data / "classifiers").glob("*.pt"))
        self.record_line = (self.root / "results" / "results.jsonl").read_text().splitlines()[0]
        json.loads(self.record_line)
        self._built = True
        return self


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(tmp_path_factory.mktemp("malformed"))


NEEDS_WORLD = ("labels-", "manifest-", "store-", "config-wrong", "checkpoint-", "classifier-", "parser-",
               "results-", "papers-")


@pytest.mark.parametrize("make,expect,pattern", CASES)
def test_malformed_input_refused_in_one_line(make, expect, pattern, tmp_path, world, capsys, request):
    """One malformed input: the specific exception (or the CLI's non-zero exit with one line on
    stderr) whose message names the file and the line / key."""
    row = request.node.callspec.id
    w = world.build() if row.startswith(NEEDS_WORLD) else world
    action, f = make(tmp_path, w)
    capsys.readouterr()
    if expect == "exit":
        try:
            rc = action()                 # any other exception escaping here would be a traceback
            said = None
        except SystemExit as e:           # argparse's one-line usage error, or SystemExit("message")
            rc, said = (e.code, None) if isinstance(e.code, int) or e.code is None else (1, str(e.code))
        msg = said or capsys.readouterr().err.strip()
        assert rc not in (0, None), f"exit code {rc}"
    else:
        with pytest.raises(expect) as e:
            action()
        msg = str(e.value)
    assert msg and "\n" not in msg, f"not one line: {msg!r}"
    regex = pattern.replace("{f}", re.escape(str(f)) if f is not None else "")
    assert re.search(regex, msg), f"{msg!r} !~ {regex!r}"
    MESSAGES.append((row, msg))


ACCEPTED = [("grayscale-jpeg", "L", "JPEG", 77, (77, 77, 77)), ("cmyk-jpeg", "CMYK", "JPEG", (0, 255, 0, 0), (255, 0, 255)),
            ("palette-png", "P", "PNG", 3, None), ("rgba-png", "RGBA", "PNG", (10, 20, 30, 0), (10, 20, 30)),
            ("1-bit-png", "1", "PNG", 1, (255, 255, 255))]


@pytest.mark.parametrize("row,mode,fmt,colour,want", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_other_8_bit_images_are_converted_exactly(tmp_path, row, mode, fmt, colour, want):
    """Not malformed: 8-bit modes other than RGB are read as PIL's RGB conversion (the 16-bit /
    float ones, which it would clip, are refused: table rows image-16-bit, image-float-tiff)."""
    p = tmp_path / f"x.{fmt.lower()}"
    im = Image.new(mode, (8, 8), colour)
    im.save(p, format=fmt)
    got = load_rgb(p)
    ref = np.asarray(Image.open(p).convert("RGB"))
    assert got.shape == (8, 8, 3) and got.dtype == np.uint8 and np.array_equal(got, ref)
    if want is not None:
        assert tuple(got[0, 0]) == want
