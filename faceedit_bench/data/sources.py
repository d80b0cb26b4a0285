"""One description of a source folder (CelebA, CelebA-HQ/CelebAMask-HQ or a SynthFaces export).

A :class:`Source` lists, per kept row: the image path, the 40 labels, the split code and the
mask index ``k``. Splits (DESIGN §4, implementations.md §0/§8), by rule name:

* ``attgan``: CelebA by line order of ``list_attr_celeba.txt`` (``protocol.CELEBA_SPLIT``:
  182,000 / 637 / 19,962); the position counts every data row, so skipped rows do not shift it.
* ``stargan``: StarGAN's ``random.seed(1234)`` shuffle, first 1,999 test, rest train, no val.
* ``partition``: ``list_eval_partition.txt`` (0 train, 1 val, 2 test): SynthFaces exports and the
  official CelebA partition.
* ``celebahq``: CelebA-HQ by HQ index (``protocol.CELEBAHQ_SPLIT``: 28,000 / 500 / 1,500).
* ``celebamask``: CelebAMask-HQ's ``g_partition.py`` by 0-based ``orig_idx``
  (train < 162771 <= val < 182638 <= test), thresholds kept as in the official script.
"""
from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import numpy as np

from ..protocol import CELEBA_SPLIT, CELEBAHQ_SPLIT
from .celeba import AttrTable, DataFormatError, read_attr_file, read_hq_mapping, read_partition
from .celebamask import MASK_DIR

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
DATASETS = ("celeba", "celebahq", "synth")
DEFAULT_SPLIT = {"celeba": "attgan", "celebahq": "celebahq", "synth": "partition"}
HQ_MASK_SIZE = (512, 512)
IMAGE_EXTS = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass
class Source:
    dataset: str
    root: Path
    image_dir: Path
    table: AttrTable
    split: np.ndarray                      # (N,) uint8 codes of SPLIT_CODES (255 = unused)
    split_rule: str
    mask_k: np.ndarray                     # (N,) int64: index k of CelebAMask-HQ-mask-anno
    list_files: list[Path]                 # hashed into the manifest
    mask_size: tuple[int, int] | None      # expected PNG size (None: same as the image)
    skipped: list[dict]
    notes: list[str]

    @property
    def filenames(self) -> list[str]:
        return self.table.filenames

    def image_path(self, i: int) -> Path:
        return self.image_dir / self.table.filenames[i]

    def line_ref(self, i: int) -> str:
        return f"{self.table.path}:{int(self.table.lines[i])}"

    @property
    def mask_dir(self) -> Path:
        return self.root / MASK_DIR


def _ranges_to_codes(pos: np.ndarray, ranges: dict) -> np.ndarray:
    codes = np.full(len(pos), 255, np.uint8)
    for name, (a, b) in ranges.items():
        codes[(pos >= a) & (pos < b)] = SPLIT_CODES[name]
    return codes


def split_codes(rule: str, table: AttrTable, n_rows_total: int, partition=None,
                orig_idx=None, hq_idx=None) -> np.ndarray:
    """Split code per kept row of ``table`` under ``rule`` (see the module docstring)."""
    if rule == "attgan":
        return _ranges_to_codes(table.ordinal, CELEBA_SPLIT)
    if rule == "stargan":
        perm = list(range(n_rows_total))
        random.Random(1234).shuffle(perm)      # StarGAN: random.seed(1234); random.shuffle(lines)
        where = np.empty(n_rows_total, np.int64)
        where[np.asarray(perm)] = np.arange(n_rows_total)
        return np.where(where[table.ordinal] + 1 < 2000, 2, 0).astype(np.uint8)
    if rule == "partition":
        if partition is None:
            raise ValueError("split rule 'partition' needs list_eval_partition.txt")
        part_map, ppath = partition
        codes = np.empty(len(table.filenames), np.uint8)
        for i, name in enumerate(table.filenames):
            if name not in part_map:
                raise DataFormatError(
                    f"{ppath}: no row for {name} (listed at {table.path}:{table.lines[i]}); "
                    "expected one '<file> 0|1|2' row per image of the attribute file")
            codes[i] = part_map[name][0]
        return codes
    if rule == "celebahq":
        return _ranges_to_codes(hq_idx, CELEBAHQ_SPLIT)
    if rule == "celebamask":
        o = orig_idx
        return np.where(o < 162771, 0, np.where(o < 182638, 1, 2)).astype(np.uint8)
    raise ValueError(f"unknown split rule {rule!r}; expected one of attgan, stargan, partition, "
                     "celebahq, celebamask")


def _check_images(image_dir: Path, table: AttrTable, skip_bad: bool, skipped: list) -> AttrTable:
    """Every listed image exists and the folder holds no unlisted images (row count = images)."""
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: image folder not found (rows listed in {table.path})")
    present = {n for n in os.listdir(image_dir) if n.lower().endswith(IMAGE_EXTS)}
    listed = set(table.filenames)
    missing = [i for i, n in enumerate(table.filenames) if n not in present]
    extra = sorted(present - listed)
    if (missing or extra) and not skip_bad:
        first = (f"first missing: {image_dir / table.filenames[missing[0]]} "
                 f"(listed at {table.path}:{table.lines[missing[0]]})" if missing
                 else f"first unlisted: {image_dir / extra[0]}")
        raise DataFormatError(
            f"{table.path}: {len(table.filenames)} rows do not match the {len(present)} images in "
            f"{image_dir} ({len(missing)} missing, {len(extra)} unlisted; {first}); expected one "
            "image per row (use --skip-bad to skip missing images)")
    for n in extra:
        skipped.append({"file": str(image_dir / n), "line": None,
                        "reason": f"{image_dir / n}: image not listed in {table.path}; ignored"})
    if missing:
        for i in missing:
            skipped.append({"file": str(image_dir / table.filenames[i]), "line": int(table.lines[i]),
                            "reason": f"{image_dir / table.filenames[i]}: image file missing "
                                      f"(listed at {table.path}:{table.lines[i]})"})
        keep = np.setdiff1d(np.arange(len(table.filenames)), missing)
        table = _take(table, keep)
    return table


def _take(table: AttrTable, keep: np.ndarray) -> AttrTable:
    return dataclasses.replace(
        table, filenames=[table.filenames[i] for i in keep], values=table.values[keep],
        lines=table.lines[keep], ordinal=table.ordinal[keep])


def _find(root: Path, *candidates: str) -> Path:
    """First existing ``root/candidate`` (else the first one, so errors name the usual path)."""
    for c in candidates:
        if (root / c).exists():
            return root / c
    return root / candidates[0]


def open_source(root, dataset: str, split: str | None = None, skip_bad: bool = False) -> Source:
    """Read the list files of ``root`` for ``dataset`` (celeba | celebahq | synth)."""
    root = Path(root)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data folder not found (dataset {dataset!r})")
    rule = split or DEFAULT_SPLIT[dataset]
    skipped: list[dict] = []
    notes: list[str] = []
    if dataset == "celebahq":
        attr_path = root / "CelebAMask-HQ-attribute-anno.txt"
        image_dir = root / "CelebA-HQ-img"
        map_path = root / "CelebA-HQ-to-CelebA-mapping.txt"
        list_files = [attr_path, map_path]
    else:
        # flat layout, or the original Google Drive one (Anno/, Eval/, Img/img_align_celeba/)
        attr_path = _find(root, "list_attr_celeba.txt", "Anno/list_attr_celeba.txt")
        image_dir = _find(root, "img_align_celeba", "Img/img_align_celeba",
                          "img_align_celeba/img_align_celeba")
        if image_dir.is_dir() and (image_dir / "img_align_celeba").is_dir() and \
                not (image_dir / "000001.jpg").exists():
            image_dir = image_dir / "img_align_celeba"          # Kaggle's nested folder
        list_files = [attr_path]
    table = read_attr_file(attr_path, skip_bad=skip_bad)
    skipped += table.skipped
    n_total = table.n_rows
    table = _check_images(image_dir, table, skip_bad, skipped)
    stems = [os.path.splitext(n)[0] for n in table.filenames]
    bad = [i for i, s in enumerate(stems) if not s.isdigit()]
    if bad:
        i = bad[0]
        raise DataFormatError(f"{table.path}:{table.lines[i]}: file name {table.filenames[i]!r}; "
                              "expected a numbered image name such as 000001.jpg or 0.jpg")
    num = np.asarray([int(s) for s in stems], np.int64)
    partition = orig_idx = None
    if dataset == "celebahq":
        mapping = read_hq_mapping(map_path)
        if mapping.had_header:
            notes.append(f"{map_path.name}: first line is a header, skipped")
        lookup = dict(zip(mapping.idx.tolist(), mapping.orig_idx.tolist()))
        missing = [i for i, k in enumerate(num) if int(k) not in lookup]
        if missing:
            i = missing[0]
            raise DataFormatError(f"{map_path}: no row for HQ index {num[i]} ({table.filenames[i]}, "
                                  f"listed at {table.path}:{table.lines[i]}); expected one row per image")
        orig_idx = np.asarray([lookup[int(k)] for k in num], np.int64)
        mask_k, mask_size = num, HQ_MASK_SIZE
    else:
        mask_k, mask_size = num - 1, None          # 000001.jpg -> k = 0
    if rule == "partition":
        ppath = _find(root, "list_eval_partition.txt", "Eval/list_eval_partition.txt")
        partition = (read_partition(ppath), ppath)
        list_files.append(ppath)
    codes = split_codes(rule, table, n_total, partition, orig_idx, num)
    if rule == "attgan" and n_total != 202_599:
        notes.append(f"split 'attgan' expects 202,599 rows (CelebA); this file has {n_total}")
    return Source(dataset, root, image_dir, table, codes, rule, mask_k, list_files, mask_size,
                  skipped, notes)
