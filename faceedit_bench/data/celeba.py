"""Readers for the CelebA / CelebA-HQ list files as distributed (reference/implementations.md §0, §8).

* ``list_attr_celeba.txt`` / ``CelebAMask-HQ-attribute-anno.txt``: line 1 the count, line 2 the
  40 attribute names, then ``<file> ±1 x 40``; fields separated by runs of spaces; LF or CRLF.
* ``list_eval_partition.txt``: ``<file> 0|1|2`` (train / val / test).
* ``CelebA-HQ-to-CelebA-mapping.txt``: ``idx orig_idx orig_file`` (0-based ``orig_idx``), with or
  without a header line; rows numbered 0, 1, 2, ... in order, ``orig_file`` the CelebA file of
  ``orig_idx`` (``orig_idx + 1``, 6 digits), so a damaged number is refused, not misread.

An image listed twice (attribute or partition file) is refused too: its rows could disagree.

Every format problem raises :class:`DataFormatError` naming the file, the 1-based line and what
was expected. With ``skip_bad=True`` a bad *row* is skipped instead and reported in
``AttrTable.skipped`` (a bad header cannot be skipped).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..protocol import CELEBA_ATTRS


class DataFormatError(ValueError):
    """A source file does not have the expected format; the message names file and line."""


def _where(path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


def fail(path, line: int | None, what: str, expected: str) -> DataFormatError:
    return DataFormatError(f"{_where(path, line)}: {what}; expected {expected}")


def _lines(path: Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    # splitlines() handles LF, CRLF and CR; keep positions so line numbers stay 1-based file lines.
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


@dataclasses.dataclass
class AttrTable:
    """Rows of an attribute file: ``values`` (N, 40) uint8 in {0,1} in ``CELEBA_ATTRS`` order."""

    path: Path
    filenames: list[str]
    values: np.ndarray
    lines: np.ndarray                        # 1-based file line of each kept row
    ordinal: np.ndarray                      # 0-based position among all data rows (split by order)
    skipped: list[dict] = dataclasses.field(default_factory=list)
    n_rows: int = 0                          # data rows in the file, bad ones included

    def select(self, names) -> np.ndarray:
        """Columns for any subset of the 40 attributes, by name."""
        from ..protocol import validate_attrs

        cols = [CELEBA_ATTRS.index(n) for n in validate_attrs(names)]
        return self.values[:, cols]


_PM1 = frozenset(("1", "-1"))


def _values_ok(tok: list[str]) -> bool:
    return _PM1.issuperset(tok[1:])


def read_attr_file(path, skip_bad: bool = False) -> AttrTable:
    """Parse ``list_attr_celeba.txt`` or ``CelebAMask-HQ-attribute-anno.txt``; labels ``(v+1)//2``."""
    path = Path(path)
    lines = _lines(path)
    pos = [(i + 1, ln.split()) for i, ln in enumerate(lines) if ln.strip()]
    if len(pos) < 2:
        raise fail(path, None, "file has fewer than 2 non-empty lines",
                   "a count line, a header line of 40 attribute names, then one row per image")
    count_line, count_tok = pos[0]
    if len(count_tok) != 1 or not _uint(count_tok[0]):
        raise fail(path, count_line, f"first line is {' '.join(count_tok)[:60]!r}",
                   "the number of images (e.g. 202599)")
    count = int(count_tok[0])
    head_line, header = pos[1]
    unknown = [n for n in header if n not in CELEBA_ATTRS]
    if unknown:
        raise fail(path, head_line, f"unknown attribute name {unknown[0]!r}",
                   "the 40 CelebA attribute names (" + ", ".join(CELEBA_ATTRS[:3]) + ", ...)")
    missing = [n for n in CELEBA_ATTRS if n not in header]
    if missing or len(header) != len(CELEBA_ATTRS):
        raise fail(path, head_line, f"header has {len(header)} names, missing {missing[:5]}",
                   "each of the 40 CelebA attribute names once")
    order = [header.index(n) for n in CELEBA_ATTRS]     # file column -> CELEBA_ATTRS order
    ncol = len(header) + 1
    names, rests, kept_lines, ordinal, skipped = [], [], [], [], []
    first_line: dict[str, int] = {}
    for k, (lineno, tok) in enumerate(pos[2:]):
        problem = None
        if len(tok) != ncol:
            problem = fail(path, lineno, f"row has {len(tok)} fields",
                           f"{ncol} fields (file name + {ncol - 1} values of -1/1)")
        elif not _values_ok(tok):
            bad = next(v for v in tok[1:] if v not in ("1", "-1"))
            problem = fail(path, lineno, f"value {bad!r} for {tok[0]}", "-1 or 1")
        elif tok[0] in first_line:
            problem = fail(path, lineno, f"{tok[0]} listed again (first at line {first_line[tok[0]]})",
                           "one row per image")
        if problem is not None:
            if not skip_bad:
                raise problem
            skipped.append({"file": str(path), "line": lineno, "reason": str(problem)})
            continue
        first_line[tok[0]] = lineno
        names.append(tok[0])
        rests.append(tok)
        kept_lines.append(lineno)
        ordinal.append(k)
    n_rows = len(rests) + len(skipped)
    if n_rows != count:
        problem = fail(path, count_line, f"count line says {count} but the file has {n_rows} rows",
                       "the count to equal the number of rows")
        if not skip_bad:
            raise problem
        skipped.append({"file": str(path), "line": count_line, "reason": str(problem)})
    # rows are validated above: every value is "1" or "-1"; map "-1" -> 0 vectorised.
    flat = " ".join(" ".join(t[1:]) for t in rests).replace("-1", "0").encode()
    digits = np.frombuffer(flat, np.uint8)[::2] - ord("0") if flat else np.zeros(0, np.uint8)
    vals = digits.reshape(len(rests), ncol - 1)[:, order].astype(np.uint8)
    return AttrTable(path, names, vals, np.asarray(kept_lines, np.int64),
                     np.asarray(ordinal, np.int64), skipped, n_rows)


def read_partition(path) -> dict[str, tuple[int, int]]:
    """``list_eval_partition.txt`` -> {file name: (split code 0/1/2, 1-based line)}."""
    path = Path(path)
    out = {}
    for i, ln in enumerate(_lines(path)):
        tok = ln.split()
        if not tok:
            continue
        if len(tok) != 2 or tok[1] not in ("0", "1", "2"):
            raise fail(path, i + 1, f"row {ln.strip()[:60]!r}", "'<file> 0|1|2' (train/val/test)")
        if tok[0] in out:
            raise fail(path, i + 1, f"{tok[0]} listed again (first at line {out[tok[0]][1]})",
                       "one row per image")
        out[tok[0]] = (int(tok[1]), i + 1)
    return out


@dataclasses.dataclass
class HQMapping:
    """``CelebA-HQ-to-CelebA-mapping.txt``: per HQ index, the 0-based CelebA index and file."""

    idx: np.ndarray
    orig_idx: np.ndarray
    orig_file: list[str]
    had_header: bool


def _uint(tok: str) -> bool:
    """ASCII digits only (``str.isdigit`` also takes e.g. '١٢', which ``int`` reads as 12)."""
    return tok.isascii() and tok.isdigit()


def read_hq_mapping(path) -> HQMapping:
    """Read the mapping; a first line whose first field is not an integer is taken as a header."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: CelebA-HQ mapping file not found; expected CelebA-HQ-to-CelebA-mapping.txt "
            "from the CelebAMask-HQ archive (columns: idx orig_idx orig_file)")
    lines = _lines(path)
    idx, orig, files, header = [], [], [], False
    for i, ln in enumerate(lines):
        tok = ln.split()
        if not tok:
            continue
        if not idx and not header and not _uint(tok[0]):
            header = True
            continue
        if len(tok) != 3 or not _uint(tok[0]) or not _uint(tok[1]):
            raise fail(path, i + 1, f"row {ln.strip()[:60]!r}", "'<idx> <orig_idx> <orig_file>'")
        if tok[2] != f"{int(tok[1]) + 1:06d}.jpg":      # orig_idx is 0-based, the file 1-based
            raise fail(path, i + 1, f"orig_file {tok[2]!r} for orig_idx {tok[1]}",
                       f"{int(tok[1]) + 1:06d}.jpg (the CelebA file of 0-based orig_idx)")
        if int(tok[0]) != len(idx):                      # the archive's rows are 0, 1, 2, ... in order
            raise fail(path, i + 1, f"HQ index {tok[0]} as row {len(idx) + 1}",
                       f"HQ index {len(idx)} (rows numbered 0, 1, 2, ... in order)")
        idx.append(int(tok[0]))
        orig.append(int(tok[1]))
        files.append(tok[2])
    return HQMapping(np.asarray(idx, np.int64), np.asarray(orig, np.int64), files, header)


# ---------------------------------------------------------------- images: decode, crop, resize
#: PIL resize filters by protocol name (PIL filters antialias when downsampling).
RESIZE_FILTERS = {"bicubic": 3, "bilinear": 2, "lanczos": 1, "box": 4, "nearest": 0}


#: PIL modes of more than 8 bits a channel, which ``convert("RGB")`` would clip
_HIGH_DEPTH = frozenset(("I", "F", "I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I;32", "I;32S"))


def load_rgb(path, line_ref: str = "") -> "np.ndarray":
    """Decode an image to H x W x 3 uint8; a missing or corrupt file raises naming it."""
    from PIL import Image

    path = Path(path)
    ref = f" (listed at {line_ref})" if line_ref else ""
    if not path.is_file():
        raise DataFormatError(f"{path}: image file missing{ref}; expected a JPEG at this path")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode not in _HIGH_DEPTH:
                return np.asarray(im.convert("RGB"))
    except Exception as e:  # PIL raises OSError / SyntaxError / ValueError on corrupt data
        raise DataFormatError(
            f"{path}: cannot decode image{ref} ({type(e).__name__}: {e}); expected a readable JPEG"
        ) from None
    # PIL's convert("RGB") clips 16-bit / 32-bit / float pixels to 0..255: silently wrong images
    raise DataFormatError(f"{path}: image mode {mode} (more than 8 bits a channel){ref}; expected "
                          "an 8-bit image (RGB, grayscale, palette or CMYK)")


def crop_box(box, src_hw, ref_hw) -> tuple[int, int, int, int] | None:
    """Scale a (top, left, h, w) crop given on ``ref_hw`` images to an array of size ``src_hw``."""
    if box is None:
        return None
    sy, sx = src_hw[0] / ref_hw[0], src_hw[1] / ref_hw[1]
    t, l, h, w = box
    return (round(t * sy), round(l * sx), round(h * sy), round(w * sx))


def crop_resize(arr: np.ndarray, box, res: int, resample: int, path="") -> np.ndarray:
    """Crop ``box`` = (top, left, h, w) (or None) and resize to res x res with a PIL filter."""
    from PIL import Image

    if box is not None:
        t, l, h, w = box
        if t + h > arr.shape[0] or l + w > arr.shape[1]:
            raise DataFormatError(
                f"{path}: image is {arr.shape[1]}x{arr.shape[0]} (WxH); expected at least "
                f"{l + w}x{t + h} for the crop (top={t}, left={l}, h={h}, w={w})")
        arr = arr[t:t + h, l:l + w]
    if arr.shape[0] == res and arr.shape[1] == res:
        return np.ascontiguousarray(arr)
    return np.asarray(Image.fromarray(arr).resize((res, res), resample=resample))
