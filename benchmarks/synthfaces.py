"""SynthFaces speed: rendering images/s at several resolutions, and an export of N images.

    .venv/bin/python benchmarks/synthfaces.py --res 64 128 256 --n 512 --threads 2
    .venv/bin/python benchmarks/synthfaces.py --res 128 --export 20000 --workers 2

Prints one table row per (res, mode): wall-clock images/s and images/s per CPU-second of this
process (the latter is less disturbed by other jobs on a shared machine), plus the load average
at the start, so a reader can judge the conditions. Issue 3 targets: >= 1,000 images/s at 128 px
on 2 cores; 20,000 images at 128 px exported in < 2 minutes.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bench_render(res: int, n: int, threads: int, compile_: bool) -> dict:
    import numpy as np
    import torch

    from faceedit_bench.data.synthfaces import render_batch

    torch.set_num_threads(threads)
    batch = 64
    t0 = time.time()
    render_batch(0, np.arange(batch), res, soft=False, compile=compile_)   # warm-up (compile)
    warm = time.time() - t0
    done, c0, t0 = 0, time.process_time(), time.time()
    while done < n:
        render_batch(0, np.arange(done, done + batch), res, soft=False, compile=compile_)
        done += batch
    wall, cpu = time.time() - t0, time.process_time() - c0
    return {"res": res, "mode": ("compiled" if compile_ else "eager") + f", {threads} thr", "n": done,
            "img_s": done / wall, "img_cpu_s": done / cpu, "warmup_s": warm}


def bench_export(res: int, n: int, workers: int) -> dict:
    from faceedit_bench.data.synth_export import export_synthfaces, split_sizes

    tmp = Path(tempfile.mkdtemp(prefix="synthbench"))
    try:
        t0 = time.time()
        export_synthfaces(tmp / "sf", n, res, seed=0, progress=False, workers=workers)
        wall = time.time() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    renders = n + 14 * split_sizes(n)[2]
    return {"res": res, "mode": f"export n={n}, {workers} workers (+{renders - n} cf renders)", "n": n,
            "img_s": n / wall, "img_cpu_s": float("nan"), "warmup_s": wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--n", type=int, default=512, help="images rendered per resolution")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: under oversubscription OpenMP spin-waits waste CPU)")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (slow warm-up)")
    ap.add_argument("--export", type=int, default=0, metavar="N", help="also time an export of N images")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    load = os.getloadavg()
    print(f"# cores={os.cpu_count()} loadavg at start={load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    rows = []
    for res in args.res:
        rows.append(bench_render(res, args.n, args.threads, False))
        print(rows[-1], flush=True)
        if args.compile:
            rows.append(bench_render(res, args.n, args.threads, True))
        if args.export:
            rows.append(bench_export(res, args.export, args.workers))
    print(f"| res | mode | images | images/s (wall) | images per CPU-s | warm-up / total s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['res']} | {r['mode']} | {r['n']} | {r['img_s']:.1f} | {r['img_cpu_s']:.1f} | {r['warmup_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
