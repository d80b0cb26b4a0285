"""Loader throughput from the store: images + label maps through FaceEditDataModule's train loader.

Writes a store of random images/labels (format of ``faceedit_bench.data.store``; random bytes
so nothing is faster than real data), then times ``train_dataloader()`` of the DataModule
(same sampler, workers, ``__getitems__`` batched memmap reads, float conversion to [-1, 1]).

    .venv/bin/python benchmarks/loader.py --res 128 256 --workers 2 --n 4096 --batches 150
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def fake_store(path: Path, n: int, res: int) -> None:
    """A valid store folder of ``n`` random rows (all in the train split)."""
    from faceedit_bench.data.store import FORMAT
    from faceedit_bench.protocol import CELEBA_ATTRS, stable_hash

    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    img = np.lib.format.open_memmap(path / "images.npy", "w+", np.uint8, (n, res, res, 3))
    lab = np.lib.format.open_memmap(path / "labels.npy", "w+", np.uint8, (n, res, res))
    for a in range(0, n, 256):
        b = min(a + 256, n)
        img[a:b] = rng.integers(0, 256, (b - a, res, res, 3), np.uint8)
        lab[a:b] = rng.integers(0, 19, (b - a, res, res), np.uint8)
    img.flush()
    lab.flush()
    del img, lab
    np.save(path / "attrs.npy", rng.integers(0, 2, (n, 40), np.uint8))
    np.save(path / "split.npy", np.zeros(n, np.uint8))
    (path / "filenames.txt").write_text("\n".join(f"{i + 1:06d}.jpg" for i in range(n)) + "\n")
    man = {"format": FORMAT, "dataset": "synth", "res": res, "n": n,
           "attr_names": list(CELEBA_ATTRS), "counterfactuals": None, "benchmark": True}
    man["hash"] = stable_hash(man)
    (path / "manifest.json").write_text(json.dumps(man))


def measure(root: Path, res: int, n: int, workers: int, batch: int, batches: int) -> dict:
    from faceedit_bench.data.datamodule import FaceEditDataModule

    dm = FaceEditDataModule(data="synth", res=res, batch_size=batch, num_workers=workers,
                            store_root=str(root))
    if not (dm.store_path / "manifest.json").is_file() or \
            json.loads((dm.store_path / "manifest.json").read_text())["n"] != n:
        fake_store(dm.store_path, n, res)
    dm.setup("fit")
    loader = dm.train_dataloader()
    cpu0, seen, t0, warm, total, epoch = _cpu(), 0, None, 10, 0, 0
    result = None
    while result is None:
        dm._train_sampler.set_epoch(epoch)
        for b in loader:
            total += len(b["index"])
            assert b["image"].dtype.is_floating_point and b["parts"].shape[-1] == res
            if warm:
                warm -= 1
                if not warm:
                    t0 = time.perf_counter()
                continue
            seen += len(b["index"])
            if seen >= batches * batch:
                dt = time.perf_counter() - t0
                result = {"res": res, "workers": workers, "batch_size": batch, "n_store": n,
                          "images": seen, "seconds": round(dt, 3),
                          "images_per_s": round(seen / dt, 1)}
                break
        epoch += 1
    if getattr(loader, "_iterator", None) is not None:       # join the persistent workers
        loader._iterator._shutdown_workers()
    cpu = _cpu() - cpu0
    # CPU seconds of the main process + workers per image, warm-up included; 2 / that is the
    # rate two otherwise idle cores could sustain (an estimate, assumes perfect overlap).
    result["cpu_ms_per_image"] = round(1000 * cpu / total, 3)
    result["est_images_per_s_2_idle_cores"] = round(2 * total / cpu, 1)
    return result


def _cpu() -> float:
    import resource

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--res", type=int, nargs="+", default=[128, 256])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--batches", type=int, default=150)
    p.add_argument("--root", default="/tmp/faceedit_loader_bench")
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    for res in a.res:
        print(json.dumps(measure(Path(a.root), res, a.n, a.workers, a.batch_size, a.batches)),
              flush=True)


if __name__ == "__main__":
    main()
