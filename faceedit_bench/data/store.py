"""The decoded store: cropped, resized images and hard label maps in memory-mappable ``.npy`` files.

Layout of a store folder (docs/data.md): ``images.npy`` (N,H,W,3) uint8, ``labels.npy`` (N,H,W)
uint8 (19 classes of ``parts.PARTS``; soft masks are made on the device with
``parts.one_hot_parts``), ``attrs.npy`` (N,40) uint8 {0,1}, ``split.npy`` (N,) uint8 (0 train,
1 val, 2 test, 255 unused), ``filenames.txt``, ``manifest.json`` and, for SynthFaces,
``cf/<attr>_{images,labels,attrs}.npy`` (test-split counterfactuals, rows in test order).
The folder is built under a temporary name and moved into place with ``os.replace``, so a killed
build leaves nothing half-written behind. DESIGN §5, reference/suites.md §D.
"""
from __future__ import annotations

import concurrent.futures as cf
import datetime
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from ..protocol import CELEBA_ATTRS, CROPS, file_hash, stable_hash
from .celeba import RESIZE_FILTERS, DataFormatError, crop_box, crop_resize, load_rgb
from .celebamask import index_mask_dir, merge_part_masks
from ..resource_errors import is_resource_error, naming
from .sources import SPLIT_CODES, Source, open_source

FORMAT = "faceedit-store/1"
MASK_SOURCES = ("gt", "parser", "none")
DEFAULT_CROP = {"celeba": "attgan170", "celebahq": "none", "synth": "none"}
#: CROPS boxes are in pixels of the 178x218 aligned CelebA images.
CELEBA_HW = (218, 178)
#: manifest keys that identify the data (hashed); the rest is informational.
HASHED_KEYS = ("format", "dataset", "res", "crop", "resize_filter", "mask_resize", "masks",
               "parser_weights_hash", "split", "n", "shapes", "attr_names", "sources",
               "skipped_files", "counterfactuals")


def store_name(dataset: str, res: int, crop: str, masks: str, split: str | None = None,
               tag: str | None = None) -> str:
    """Folder name of a store under a store root, e.g. ``celeba_r128_attgan170_gt``.

    ``tag`` tells sources of one dataset apart (SynthFaces: ``n<N>``).
    """
    return (f"{dataset}" + (f"_{tag}" if tag else "") + f"_r{res}_{crop}_{masks}"
            + (f"_{split}" if split else ""))


# ------------------------------------------------------------------------------------ building
def _process_chunk(job) -> tuple[list[tuple[int, str]], int]:
    """Decode, crop and resize rows of a chunk straight into the temp memmaps (worker side)."""
    tmp, rows, res, box, resample, with_masks = job
    images = np.load(tmp / "images.npy", mmap_mode="r+")
    labels = np.load(tmp / "labels.npy", mmap_mode="r+") if with_masks else None
    errors, no_mask = [], 0
    for i, path, ref, mask_files, mask_hw in rows:
        try:
            img = load_rgb(path, ref)
            b = None
            if box is not None:
                b = box if img.shape[:2] == CELEBA_HW else crop_box(box, img.shape[:2], CELEBA_HW)
            images[i] = crop_resize(img, b, res, resample, path)
            if with_masks:
                hw = tuple(mask_hw) if mask_hw else img.shape[:2]
                if not mask_files:
                    no_mask += 1
                lab = merge_part_masks(mask_files or {}, hw)
                mb = None if b is None else crop_box(b, hw, img.shape[:2])
                labels[i] = crop_resize(lab, mb, res, 0, path)
        except DataFormatError as e:
            errors.append((i, str(e)))
    images.flush()
    if labels is not None:
        labels.flush()
    return errors, no_mask


def _run_jobs(jobs, workers: int, progress: bool, n: int, skip_bad: bool):
    errors, no_mask, done, t0 = [], 0, 0, time.time()

    def report(res):
        nonlocal no_mask, done
        errors.extend(res[0])
        no_mask += res[1]
        if res[0] and not skip_bad:
            raise DataFormatError(min(res[0])[1])
        if progress:
            print(f"\rstore: {done}/{n} images ({done / max(time.time() - t0, 1e-6):.0f}/s)",
                  end="", file=sys.stderr, flush=True)

    if workers <= 1:
        for job in jobs:
            res = _process_chunk(job)
            done += len(job[1])
            report(res)
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futures = [pool.submit(_process_chunk, job) for job in jobs]
            try:
                for fut, job in zip(futures, jobs):
                    res = fut.result()
                    done += len(job[1])
                    report(res)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    if progress:
        print(file=sys.stderr)
    return sorted(errors), no_mask


def _synth_identity(dataset: str, root: Path, sources: dict) -> tuple[dict, dict | None]:
    """``(hashed sources, informational listing)``. A SynthFaces export is identified by its
    recipe (``synthfaces.json``: renderer, seed, n, res, JPEG quality) and its exact text tables,
    not by the sizes of its JPEG / PNG files: torch's float rounding differs by CPU (AVX2 vs
    AVX-512 vs default kernels move ~1 % of the images by a few grey levels), and so do the
    encoded sizes, which would give every machine its own data hash and orphan the zoo's
    classifier and records. The image / mask listing stays in the manifest as ``listing``."""
    recipe = Path(root) / "synthfaces.json"
    if dataset != "synth" or not recipe.is_file():
        return sources, None
    listing = {k: v for k, v in sources.items() if k != "files"}
    return {"files": sources["files"], "synthfaces": json.loads(recipe.read_text())}, listing


def _listing_hash(folder: Path, names) -> dict:
    """Cheap identity of many files: count + hash of (name, size) pairs."""
    items = []
    for n in names:
        try:
            items.append((str(n), os.path.getsize(folder / n)))
        except OSError:
            items.append((str(n), -1))
    return {"count": len(items), "names_sizes_hash": stable_hash(sorted(items))}


def _parser_labels(tmp: Path, out_dir: Path, parser_weights, progress: bool) -> str:
    """Fill ``labels.npy`` with the BiSeNet parser (``faceedit_bench.parsing.precompute``).

    The parser writes to a stable side file next to the store (resumable after a kill, see
    ``precompute_masks``) which is then moved into the temporary store folder.
    """
    try:
        from ..parsing.precompute import precompute_masks
    except ImportError as e:
        raise ImportError("parser masks need faceedit_bench.parsing (BiSeNet parser, "
                          f"`faceedit-bench masks`): {e}") from None
    if parser_weights is None or not Path(parser_weights).is_file():
        raise FileNotFoundError(
            f"parser weights {parser_weights!r} not found; masks='parser' needs a BiSeNet state "
            "dict: the public face-parsing.PyTorch 79999_iter.pth (put it at "
            "data/weights/79999_iter.pth) or one trained with `faceedit-bench parser train`")
    side = out_dir.parent / f".{out_dir.name}.parser-labels.npy"
    images = np.load(tmp / "images.npy", mmap_mode="r")
    precompute_masks(images, str(parser_weights), side, res=images.shape[1], progress=progress)
    os.replace(side, tmp / "labels.npy")
    return file_hash(str(parser_weights))


def _copy_counterfactuals(src: Source, tmp: Path, filenames: list[str], split: np.ndarray,
                          res: int, resample: int) -> dict | None:
    """Copy a SynthFaces export's counterfactuals into ``cf/``, rows in the store's test order."""
    cf_root = src.root / "counterfactuals"
    if not cf_root.is_dir():
        return None
    from .counterfactuals import read_counterfactuals   # SynthFaces engineer's module

    index = [ln.strip() for ln in (cf_root / "index.txt").read_text().splitlines() if ln.strip()]
    pos = {n: j for j, n in enumerate(index)}
    test_rows = np.flatnonzero(split == SPLIT_CODES["test"])
    missing = [filenames[r] for r in test_rows if filenames[r] not in pos]
    if missing:
        raise DataFormatError(f"{cf_root / 'index.txt'}: no counterfactual row for test image "
                              f"{missing[0]}; expected every test image of the export")
    take = np.asarray([pos[filenames[r]] for r in test_rows], np.int64)
    (tmp / "cf").mkdir()
    attrs_out = []
    for attr, c in sorted(read_counterfactuals(src.root).items()):
        imgs, labs = np.asarray(c.images)[take], np.asarray(c.labels)[take]
        if imgs.shape[1] != res:
            imgs = np.stack([crop_resize(x, None, res, resample) for x in imgs])
            labs = np.stack([crop_resize(x, None, res, 0) for x in labs])
        np.save(tmp / "cf" / f"{attr}_images.npy", imgs.astype(np.uint8))
        np.save(tmp / "cf" / f"{attr}_labels.npy", labs.astype(np.uint8))
        np.save(tmp / "cf" / f"{attr}_attrs.npy", np.asarray(c.attrs, np.uint8)[take])
        attrs_out.append(attr)
    return {"attrs": attrs_out, "n": int(len(take)),
            "source_hash": file_hash(str(cf_root / "index.txt"))}


def _compact(tmp: Path, keep: np.ndarray, with_labels: bool) -> None:
    """Rewrite the arrays with only the ``keep`` rows (after --skip-bad dropped some)."""
    for name in ("images", "labels") if with_labels else ("images",):
        old = np.load(tmp / f"{name}.npy", mmap_mode="r")
        new = np.lib.format.open_memmap(tmp / f"{name}.new.npy", "w+", old.dtype,
                                        (len(keep),) + old.shape[1:])
        for a in range(0, len(keep), 4096):
            new[a:a + 4096] = old[keep[a:a + 4096]]
        new.flush()
        del old, new
        os.replace(tmp / f"{name}.new.npy", tmp / f"{name}.npy")


def _remove_stale_temps(out_dir: Path) -> None:
    """Delete temp folders of builds of ``out_dir`` whose process is gone (killed builds)."""
    for p in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        try:
            pid = int(p.name.rsplit(".tmp-", 1)[1].split("-")[0])
            os.kill(pid, 0)
            if pid == os.getpid():
                raise ProcessLookupError
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


def _existing(out_dir: Path, config: dict, overwrite: bool) -> bool:
    man = out_dir / "manifest.json"
    if not man.is_file() or overwrite:
        return False
    old = json.loads(man.read_text()).get("config", {})
    diff = {k: (old[k], v) for k, v in config.items() if k in old and old[k] != v}
    if diff:
        raise FileExistsError(f"{out_dir} holds a store built with other settings {diff} "
                              "(old, new); choose another folder or pass overwrite=True")
    return True


def build_store(source_root, out_dir, dataset: str, res: int, crop: str | None = None,
                masks: str = "gt", parser_weights=None, skip_bad: bool = False,
                split: str | None = None, resize_filter: str = "bicubic",
                workers: int | None = None, overwrite: bool = False,
                progress: bool = False, chunk: int = 256) -> Path:
    """:func:`_build_store` under a lock beside ``out_dir`` (``<name>.build.lock``): concurrent
    builders of one store build it once, the others reuse it."""
    from filelock import FileLock

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out_dir.parent / f"{out_dir.name}.build.lock")):
        return _build_store(source_root, out_dir, dataset, res, crop, masks, parser_weights,
                            skip_bad, split, resize_filter, workers, overwrite, progress, chunk)


def _build_store(source_root, out_dir, dataset: str, res: int, crop: str | None = None,
                masks: str = "gt", parser_weights=None, skip_bad: bool = False,
                split: str | None = None, resize_filter: str = "bicubic",
                workers: int | None = None, overwrite: bool = False,
                progress: bool = False, chunk: int = 256) -> Path:
    """Decode ``source_root`` into a store at ``out_dir`` (returned); reuses a finished one.

    ``crop``: a key of ``protocol.CROPS`` (default per dataset: celeba attgan170, else none);
    ``masks``: gt (CelebAMask-HQ / SynthFaces PNGs) | parser | none (labels all 0);
    ``skip_bad``: skip bad rows/images/masks and list them in the manifest instead of raising.
    """
    out_dir = Path(out_dir)
    crop = crop or DEFAULT_CROP.get(dataset, "none")
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}; expected one of {list(CROPS)}")
    if masks not in MASK_SOURCES:
        raise ValueError(f"unknown masks {masks!r}; expected one of {MASK_SOURCES}")
    if resize_filter not in RESIZE_FILTERS:
        raise ValueError(f"unknown resize filter {resize_filter!r}; expected {list(RESIZE_FILTERS)}")
    if masks == "parser" and (parser_weights is None or not Path(parser_weights).is_file()):
        raise FileNotFoundError(
            f"parser weights {parser_weights!r} not found; masks='parser' needs a BiSeNet state "
            "dict: the public face-parsing.PyTorch 79999_iter.pth (put it at "
            "data/weights/79999_iter.pth) or one trained with `faceedit-bench parser train`")
    config = {"dataset": dataset, "res": int(res), "crop": crop, "masks": masks,
              "split": split, "resize_filter": resize_filter, "skip_bad": bool(skip_bad),
              "source_root": str(Path(source_root).resolve())}
    if _existing(out_dir, config, overwrite):
        return out_dir
    t0 = time.time()
    src = open_source(source_root, dataset, split, skip_bad)
    n, box, resample = len(src.filenames), CROPS[crop], RESIZE_FILTERS[resize_filter]
    if n == 0:
        raise DataFormatError(f"{src.table.path}: no usable rows; expected at least one image")
    if masks == "gt" and not src.mask_dir.is_dir():
        raise FileNotFoundError(
            f"{src.mask_dir}: mask folder not found; masks='gt' needs CelebAMask-HQ part PNGs "
            "(<k//2000>/<k:05d>_<part>.png). For CelebA use masks='parser' (--masks parser "
            "--parser-weights PATH) or masks='none'")
    mask_index = index_mask_dir(src.mask_dir) if masks == "gt" else None
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        np.lib.format.open_memmap(tmp / "images.npy", "w+", np.uint8, (n, res, res, 3)).flush()
        lab = np.lib.format.open_memmap(tmp / "labels.npy", "w+", np.uint8, (n, res, res))
        lab[:] = 0
        lab.flush()
        del lab
        rows = [(i, src.image_path(i), src.line_ref(i),
                 mask_index.get(int(src.mask_k[i]), {}) if mask_index is not None else None,
                 src.mask_size) for i in range(n)]
        jobs = [(tmp, rows[a:a + chunk], res, box, resample, masks == "gt")
                for a in range(0, n, chunk)]
        workers = workers if workers is not None else min(8, os.cpu_count() or 1)
        errors, no_mask = _run_jobs(jobs, workers, progress, n, skip_bad)
        skipped = list(src.skipped)
        bad_rows = sorted({i for i, _ in errors})
        for i, msg in errors:
            skipped.append({"file": str(src.image_path(i)), "line": int(src.table.lines[i]),
                            "reason": msg})
        keep = np.setdiff1d(np.arange(n), bad_rows)
        if bad_rows:
            _compact(tmp, keep, masks == "gt")
        filenames = [src.filenames[i] for i in keep]
        split_codes = src.split[keep]
        np.save(tmp / "attrs.npy", src.table.values[keep])
        np.save(tmp / "split.npy", split_codes)
        np.save(tmp / "lines.npy", src.table.lines[keep])
        (tmp / "filenames.txt").write_text("\n".join(filenames) + "\n")
        parser_hash = _parser_labels(tmp, out_dir, parser_weights, progress) if masks == "parser" else None
        cfs = _copy_counterfactuals(src, tmp, filenames, split_codes, res, resample) \
            if dataset == "synth" else None
        sources = {"files": {p.name: file_hash(str(p)) for p in src.list_files},
                   "images": _listing_hash(src.image_dir, src.filenames)}
        if mask_index is not None:
            sources["masks"] = _listing_hash(
                src.mask_dir, sorted(str(p.relative_to(src.mask_dir))
                                     for d in mask_index.values() for p in d.values()))
        sources, listing = _synth_identity(dataset, src.root, sources)
        root = src.root.resolve()
        manifest = {
            "format": FORMAT, "dataset": dataset, "res": int(res),
            "crop": {"name": crop, "box_top_left_h_w": list(box) if box else None,
                     "box_reference": "178x218 aligned CelebA pixels (scaled for other sizes)"},
            "resize_filter": f"{resize_filter} (PIL, antialiased when downsampling)",
            "mask_resize": "nearest", "masks": masks, "parser_weights_hash": parser_hash,
            "split": {"rule": src.split_rule,
                      "counts": {k: int((split_codes == c).sum()) for k, c in SPLIT_CODES.items()}},
            "n": len(keep),
            "shapes": {"images": [len(keep), res, res, 3], "labels": [len(keep), res, res],
                       "attrs": [len(keep), len(CELEBA_ATTRS)]},
            "attr_names": list(CELEBA_ATTRS),
            "sources": sources, "listing": listing,
            "skipped_files": sorted(os.path.relpath(s["file"], root) if os.path.isabs(s["file"])
                                    else s["file"] for s in skipped),
            "counterfactuals": cfs,
            "skipped": skipped, "notes": src.notes, "rows_without_masks": no_mask,
            "config": config, "source_root": str(root),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.time() - t0, 2),
        }
        manifest["hash"] = stable_hash({k: manifest[k] for k in HASHED_KEYS})
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_resource_error(e, write_only=True):  # disk full / size limit: name the store, not a temp file
            raise naming(e, out_dir) from None
        raise
    return out_dir


# ------------------------------------------------------------------------------------- reading
class Store:
    """Read side of a store folder; arrays are opened lazily as read-only memmaps (fork-safe)."""

    def __init__(self, path):
        self.path = Path(path)
        man = self.path / "manifest.json"
        if not man.is_file():
            raise FileNotFoundError(f"{man}: no store manifest; build one with "
                                    "`faceedit-bench store` or FaceEditDataModule.prepare_data()")
        try:
            self.manifest = json.loads(man.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{man}: not a JSON store manifest ({e}); rebuild the store with "
                             "`faceedit-bench store`") from None
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT:
            got = self.manifest.get("format") if isinstance(self.manifest, dict) else self.manifest
            raise ValueError(f"{man}: format {got!r}; expected {FORMAT!r}")
        self._arrays: dict = {}
        self._check_rows(man)

    def _check_rows(self, man: Path) -> None:
        """Every array present has ``manifest['n']`` rows and its full length on disk (opening a
        memmap reads only the header and maps the file: cheap at any store size)."""
        n = self.manifest.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"{man}: key 'n' is {n!r}; expected the row count (an integer >= 0)")
        for name in ("images", "labels", "attrs", "split"):
            if (self.path / f"{name}.npy").is_file() and len(self._array(name)) != n:
                raise ValueError(f"{man}: key 'n' is {n} but {name}.npy has {len(self._array(name))} "
                                 "rows; rebuild the store with `faceedit-bench store`")

    def __getstate__(self):
        return {"path": self.path, "manifest": self.manifest, "_arrays": {}}

    def _array(self, name: str, mmap: bool = True) -> np.ndarray:
        if name not in self._arrays:
            f = self.path / f"{name}.npy"
            try:
                self._arrays[name] = np.load(f, mmap_mode="r" if mmap else None)
            except (ValueError, OSError, EOFError) as e:
                raise ValueError(f"{f}: cannot be read as a .npy array ({e}; truncated or damaged?); "
                                 "rebuild the store with `faceedit-bench store`") from None
        return self._arrays[name]

    @property
    def hash(self) -> str:
        return self.manifest["hash"]

    @property
    def images(self) -> np.ndarray:
        return self._array("images")

    @property
    def labels(self) -> np.ndarray:
        return self._array("labels")

    @property
    def attrs(self) -> np.ndarray:
        return self._array("attrs", mmap=False)

    @property
    def split(self) -> np.ndarray:
        return self._array("split", mmap=False)

    @property
    def attr_names(self) -> tuple[str, ...]:
        return tuple(self.manifest["attr_names"])

    @property
    def filenames(self) -> list[str]:
        if "_filenames" not in self._arrays:
            self._arrays["_filenames"] = (self.path / "filenames.txt").read_text().split()
        return self._arrays["_filenames"]

    def __len__(self) -> int:
        return int(self.manifest["n"])

    def split_indices(self, split: str) -> np.ndarray:
        """Store rows of ``split`` (train / val / test), in file order."""
        if split not in SPLIT_CODES:
            raise ValueError(f"unknown split {split!r}; expected one of {list(SPLIT_CODES)}")
        return np.flatnonzero(self.split == SPLIT_CODES[split])

    def attr_columns(self, names) -> list[int]:
        from ..protocol import validate_attrs

        return [self.attr_names.index(n) for n in validate_attrs(names)]

    @property
    def counterfactual_attrs(self) -> list[str]:
        c = self.manifest.get("counterfactuals")
        return list(c["attrs"]) if c else []

    def counterfactuals(self, attr: str):
        """(images, labels, attrs) of the single flip of ``attr`` for the test rows, or None."""
        if attr not in self.counterfactual_attrs:
            return None
        return tuple(self._array(f"cf/{attr}_{k}", mmap=(k != "attrs"))
                     for k in ("images", "labels", "attrs"))
