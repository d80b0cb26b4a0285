"""Export SynthFaces in the real CelebA / CelebAMask-HQ layout (docs/synthfaces.md, INTERFACES.md).

Resumable: images are rendered in chunks; every file is written via temp file + os.replace and a
chunk's marker (``.progress/chunk_<c>.done``) only after all its files. Test chunks go first;
once they are all done a thread gathers their counterfactual rows into ``counterfactuals/``
while the workers render the rest. A rerun skips finished chunks, then writes the list files
(and the counterfactual arrays if not yet written) and, last, ``synthfaces.json`` (the completion
marker). Output bytes depend only on (n, res, seed), so a killed and rerun export ends identical
to an uninterrupted one.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

from ..parts import CELEBAMASK_HQ_FILE_PARTS, PART_INDEX
from ..protocol import CELEBA_ATTRS
from .counterfactuals import CF_DIR, write_npz

FORMAT_VERSION = 1           # the file layout (unchanged by renderer versions)
RENDERER = "windowed-v2"     # recorded in the manifest; a partial export resumes only with the same
JPEG_QUALITY = 95            # 4:4:4 chroma, PIL libjpeg
SPLIT_FRACTIONS = (0.85, 0.05, 0.10)   # train / val / test by line order, as CelebA
BATCH = 64                   # render batch (counterfactuals reuse the source's batch layout)
CHUNK = 256                  # images per resumable unit
MANIFEST = "synthfaces.json"


def split_sizes(n: int) -> tuple[int, int, int]:
    """(train, val, test) counts: test = round(0.10 n), val = round(0.05 n), train the rest."""
    n_test = int(round(SPLIT_FRACTIONS[2] * n))
    n_val = int(round(SPLIT_FRACTIONS[1] * n))
    return n - n_val - n_test, n_val, n_test


def _atomic_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file + os.replace (raw os.open/os.write: ~2x less CPU than open())."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    _atomic_bytes(path, text.encode())


def _remove_stale_tmp(out: Path) -> None:
    """Delete ``*.tmp<pid>`` files a killed run left behind (written before their os.replace)."""
    for d in [out, out / "img_align_celeba", out / CF_DIR, out / ".progress",
              *(out / "CelebAMask-HQ-mask-anno").glob("*")]:
        if d.is_dir():
            with os.scandir(d) as it:
                for e in it:
                    if ".tmp" in e.name and e.is_file():
                        os.remove(e.path)


def _jpeg(arr: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def _png(mask: np.ndarray) -> bytes:
    """(H, W) uint8 -> 8-bit grayscale PNG (filter 0, zlib level 1); ~4x faster than PIL's
    encoder for these masks, and any PNG reader decodes it (PNG spec: IHDR, IDAT, IEND)."""
    h, w = mask.shape
    raw = np.empty((h, w + 1), np.uint8)
    raw[:, 0] = 0                      # filter type None per row
    raw[:, 1:] = mask
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)    # 8-bit, grayscale, no interlace
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 1)) + _png_chunk(b"IEND", b""))


def _chunk_job(args) -> int:
    """Render chunk ``c`` and write its images, masks and (test rows) counterfactuals."""
    out, n, res, seed, c, compile_ = args
    import torch

    from ..alloc import keep_freed_memory

    torch.set_num_threads(1)
    keep_freed_memory()
    from .synthfaces import RENDERED_ATTRS, flip_targets, render_batch, to_uint8

    out = Path(out)
    n_test_start = n - split_sizes(n)[2]
    lo, hi = c * CHUNK, min((c + 1) * CHUNK, n)
    cf_rows: dict[str, list] = {"index": [], "images": [], "labels": []}
    cf_flip: dict[str, dict[str, list]] = {a: {"images_xor": [], "labels_xor": [], "attrs": []}
                                           for a in RENDERED_ATTRS}
    file_parts = [(fname, PART_INDEX[part]) for fname, part in CELEBAMASK_HQ_FILE_PARTS.items()]
    for b0 in range(lo, hi, BATCH):
        idx = np.arange(b0, min(b0 + BATCH, hi))
        r = render_batch(seed, idx, res, soft=False, compile=compile_)
        imgs, labs = to_uint8(r["image"]), r["labels"].numpy()
        for j, k in enumerate(idx):
            _atomic_bytes(out / "img_align_celeba" / f"{k + 1:06d}.jpg", _jpeg(imgs[j]))
            mdir = out / "CelebAMask-HQ-mask-anno" / str(k // 2000)
            present = np.bincount(labs[j].ravel(), minlength=len(PART_INDEX))
            for fname, cls in file_parts:
                if present[cls]:
                    _atomic_bytes(mdir / f"{k:05d}_{fname}.png", _png((labs[j] == cls).view(np.uint8) * 255))
        test = idx >= n_test_start
        if test.any():   # counterfactuals with the source's batch layout (same float rounding)
            cf_rows["index"].append(idx[test])
            cf_rows["images"].append(imgs[test])
            cf_rows["labels"].append(labs[test])
            for name, tgt in flip_targets(r["attrs"].numpy()).items():   # stored as XOR: mostly 0
                f = render_batch(seed, idx, res, attrs=tgt, soft=False, compile=compile_)
                cf_flip[name]["images_xor"].append(to_uint8(f["image"])[test] ^ imgs[test])
                cf_flip[name]["labels_xor"].append(f["labels"].numpy()[test] ^ labs[test])
                cf_flip[name]["attrs"].append(f["attrs"].numpy()[test].astype(np.int8))
    prog = out / ".progress"
    if cf_rows["index"]:
        arrays = {"index": np.concatenate(cf_rows["index"]), "images": np.concatenate(cf_rows["images"]),
                  "labels": np.concatenate(cf_rows["labels"])}
        for name, d in cf_flip.items():
            for key, v in d.items():
                arrays[f"{name}.{key}"] = np.concatenate(v)
        _write_chunk_rows(prog / f"cf_{c:05d}.npz", arrays)
    _atomic_text(prog / f"chunk_{c:05d}.done", f"{lo} {hi}\n")
    return hi - lo


def _attr_file(attrs: np.ndarray) -> str:
    """list_attr_celeba.txt in the distributed format: count, names, rows of +-1."""
    lines = [str(len(attrs)), " ".join(CELEBA_ATTRS) + " "]
    pm = np.where(attrs > 0, 1, -1)
    for k, row in enumerate(pm):
        lines.append(f"{k + 1:06d}.jpg " + " ".join(f"{v:2d}" for v in row))
    return "\n".join(lines) + "\n"


def _write_counterfactuals(out: Path, n_chunks: int, res: int) -> None:
    """Gather the per-chunk counterfactual rows into ``counterfactuals/`` one file at a time."""
    from .synth_factors import RENDERED_ATTRS

    paths = [p for p in (out / ".progress" / f"cf_{c:05d}.npz" for c in range(n_chunks)) if p.is_file()]
    empty = {"index": np.zeros(0, np.int64), "images": np.zeros((0, res, res, 3), np.uint8),
             "labels": np.zeros((0, res, res), np.uint8), "attrs": np.zeros((0, len(CELEBA_ATTRS)), np.int8)}

    def gather(keys: dict) -> dict:   # {out key: chunk key} concatenated over the chunk files
        if not paths:   # no test rows (tiny n): empty arrays of the right shapes
            return {k: empty[k.split("_")[0]] for k in keys}
        vals: dict = {k: [] for k in keys}
        for p in paths:
            with np.load(p, allow_pickle=False) as z:
                for k, ck in keys.items():
                    vals[k].append(z[ck])
        return {k: np.concatenate(v) for k, v in vals.items()}

    cf = out / CF_DIR
    cf.mkdir(parents=True, exist_ok=True)
    src = gather({"index": "index", "images": "images", "labels": "labels"})
    write_npz(cf / "source.npz", {"images": src["images"], "labels": src["labels"]})
    del src["images"], src["labels"]
    for name in RENDERED_ATTRS:   # the per-chunk rows are already XORed with their sources
        write_npz(cf / f"{name}.npz", gather({k: f"{name}.{k}" for k in ("images_xor", "labels_xor", "attrs")}))
    _atomic_text(cf / "attrs.txt", "\n".join(RENDERED_ATTRS) + "\n")
    _atomic_text(cf / "index.txt", "".join(f"{k + 1:06d}.jpg\n" for k in src["index"]))


def _write_chunk_rows(path: Path, arrays: dict) -> None:
    """Uncompressed .npz of a chunk's counterfactual rows (a temporary file: deflating ~235 MB per
    256 test images cost more CPU than rendering them)."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def export_synthfaces(out_dir, n: int, res: int, seed: int = 0, progress: bool = True,
                      workers: int | None = None, compile: bool = False) -> Path:
    """:func:`_export_synthfaces` under a lock beside ``out_dir`` (``<name>.export.lock``):
    concurrent exporters of one folder render it once."""
    from filelock import FileLock

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out.parent / f"{out.name}.export.lock")):
        return _export_synthfaces(out, n, res, seed, progress, workers, compile)


def _export_synthfaces(out_dir, n: int, res: int, seed: int = 0, progress: bool = True,
                      workers: int | None = None, compile: bool = False) -> Path:
    """Write ``n`` SynthFaces images at ``res`` px in the CelebA layout under ``out_dir``.

    Returns ``out_dir``. Idempotent: a complete export with the same (n, res, seed) returns at
    once; a partial one (killed run) is completed; a complete or partial export with other
    parameters raises (delete the folder or choose another).
    """
    from .synthfaces import sample_attrs

    if n < 1 or res < 16:
        raise ValueError(f"need n >= 1 and res >= 16, got n={n}, res={res}")
    out = Path(out_dir)
    params = {"format_version": FORMAT_VERSION, "n": int(n), "res": int(res), "seed": int(seed)}
    manifest = out / MANIFEST
    if manifest.is_file():
        have = json.loads(manifest.read_text())
        if {k: have.get(k) for k in params} == params:
            return out
        raise FileExistsError(f"{manifest}: a SynthFaces export with {{{', '.join(f'{k}: {have.get(k)}' for k in params)}}} "
                              f"is already there; asked for {params}. Delete the folder or choose another --out.")
    prog = out / ".progress"
    prog.mkdir(parents=True, exist_ok=True)
    pfile = prog / "params.json"
    # renderer versions differ; compiled and eager renders differ in float rounding: a partial
    # export is finished by the same renderer
    params = dict(params, renderer=RENDERER + ("-compiled" if compile else "-eager"))
    if pfile.is_file():
        have = json.loads(pfile.read_text())
        if have != params:
            raise FileExistsError(f"{pfile}: a partial export with {have} is in {out}; asked for {params}. "
                                  "Delete the folder or choose another --out.")
    else:
        _atomic_text(pfile, json.dumps(params, sort_keys=True))
    (out / "img_align_celeba").mkdir(exist_ok=True)
    _remove_stale_tmp(out)
    for g in range((n - 1) // 2000 + 1):
        (out / "CelebAMask-HQ-mask-anno" / str(g)).mkdir(parents=True, exist_ok=True)

    n_chunks = (n + CHUNK - 1) // CHUNK
    todo = [c for c in range(n_chunks) if not (prog / f"chunk_{c:05d}.done").is_file()]
    done_imgs = n - sum(min((c + 1) * CHUNK, n) - c * CHUNK for c in todo)
    # test chunks (with their counterfactual renders) first: the counterfactual files are then
    # gathered by a thread of this process while the workers render the other chunks
    first_test = (n - split_sizes(n)[2]) // CHUNK
    todo.sort(key=lambda c: (c < first_test, c))
    jobs = [(str(out), n, res, seed, c, compile) for c in todo]
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    cf_thread = _CfWriter(out, n_chunks, res, [c for c in range(first_test, n_chunks)])
    try:
        _run_jobs(jobs, workers, progress, n, done_imgs, res, cf_thread.poke)
    finally:
        cf_thread.join()

    attrs = sample_attrs(seed, np.arange(n))
    _atomic_text(out / "list_attr_celeba.txt", _attr_file(attrs))
    n_train, n_val, _ = split_sizes(n)
    part = np.where(np.arange(n) < n_train, 0, np.where(np.arange(n) < n_train + n_val, 1, 2))
    _atomic_text(out / "list_eval_partition.txt", "".join(f"{k + 1:06d}.jpg {p}\n" for k, p in enumerate(part)))
    if not cf_thread.ok:
        _write_counterfactuals(out, n_chunks, res)
    info = dict(params, split=dict(zip(("train", "val", "test"), split_sizes(n))), jpeg_quality=JPEG_QUALITY,
                split_fractions=list(SPLIT_FRACTIONS), layout="CelebA + CelebAMask-HQ (docs/synthfaces.md)")
    _atomic_text(manifest, json.dumps(info, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(prog, ignore_errors=True)   # chunk markers and per-chunk counterfactual rows
    return out


class _CfWriter:
    """Runs :func:`_write_counterfactuals` in a thread once every test chunk has its marker."""

    def __init__(self, out: Path, n_chunks: int, res: int, test_chunks: list[int]):
        self.args, self.test_chunks = (out, n_chunks, res), test_chunks
        self.thread: threading.Thread | None = None
        self.ok = False

    def poke(self) -> None:
        out = self.args[0]
        if self.thread is None and all((out / ".progress" / f"chunk_{c:05d}.done").is_file()
                                       for c in self.test_chunks):
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def _run(self) -> None:
        _write_counterfactuals(*self.args)
        self.ok = True

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()


def _run_jobs(jobs, workers, progress, n, done_imgs, res, on_done=lambda: None) -> None:
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn())
        bar.start()
        task = bar.add_task(f"SynthFaces {res}px", total=n, completed=done_imgs)
    try:
        on_done()   # a rerun may find every test chunk done already
        if workers <= 1 or len(jobs) <= 1:
            results = map(_chunk_job, jobs)
            for k in results:
                on_done()
                if bar:
                    bar.advance(task, k)
        else:
            with mp.get_context("spawn").Pool(workers) as pool:   # fork after OpenMP use can hang
                for k in pool.imap_unordered(_chunk_job, jobs):
                    on_done()
                    if bar:
                        bar.advance(task, k)
    finally:
        if bar:
            bar.stop()
