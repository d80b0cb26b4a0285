"""SynthFaces speed: rendering images/s at several resolutions, and an export of N images.

    .venv/bin/python benchmarks/synthfaces.py --res 64 128 256 --n 2048 --procs 1 2 --threads 1 2
    .venv/bin/python benchmarks/synthfaces.py --res 128 --n 0 --export 20000 --workers 2

Prints one table row per (res, mode): wall-clock images/s and images per CPU-second (CPU time of
all rendering processes; less disturbed by other jobs on a shared machine), plus the load
average at the start, so a reader can judge the conditions. Modes: ``T thr`` = one process with
T torch threads; ``P procs`` = P spawned processes with 1 thread each, rendering disjoint
batches of 64 after a common start barrier (what the exporter does). Every rendering process
first calls ``alloc.keep_freed_memory()`` as the exporter workers do. Issue 3 targets: >= 1,000
images/s at 128 px on 2 cores; 20,000 images at 128 px exported in < 2 minutes.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _render_loop(res: int, n: int, threads: int, compile_: bool, start: int = 0, barrier=None) -> tuple:
    """Render ``n`` images (batches of 64 from index ``start``); returns (wall, cpu, warm-up s)."""
    import numpy as np
    import torch

    from faceedit_bench.alloc import keep_freed_memory
    from faceedit_bench.data.synthfaces import render_batch

    torch.set_num_threads(threads)
    keep_freed_memory()
    batch = 64
    t0 = time.time()
    render_batch(0, np.arange(batch), res, soft=False, compile=compile_)   # warm-up (compile)
    warm = time.time() - t0
    if barrier is not None:
        barrier.wait()
    done, c0, t0 = 0, time.process_time(), time.time()
    while done < n:
        render_batch(0, np.arange(start + done, start + done + batch), res, soft=False, compile=compile_)
        done += batch
    return time.time() - t0, time.process_time() - c0, warm


def _proc_worker(args):
    res, n, start, barrier = args
    return _render_loop(res, n, 1, False, start, barrier)


def bench_render(res: int, n: int, threads: int, compile_: bool) -> dict:
    n = (n + 63) // 64 * 64
    wall, cpu, warm = _render_loop(res, n, threads, compile_)
    return {"res": res, "mode": ("compiled" if compile_ else "eager") + f", {threads} thr", "n": n,
            "img_s": n / wall, "img_cpu_s": n / cpu, "warmup_s": warm}


def bench_render_procs(res: int, n: int, procs: int) -> dict:
    """``procs`` processes x 1 thread render n images together; wall from the start barrier."""
    import multiprocessing as mp

    per = (n + 64 * procs - 1) // (64 * procs) * 64
    ctx = mp.get_context("spawn")
    with ctx.Manager() as mgr:
        barrier = mgr.Barrier(procs)
        with ctx.Pool(procs) as pool:
            res_ = pool.map(_proc_worker, [(res, per, k * per, barrier) for k in range(procs)])
    wall = max(r[0] for r in res_)
    cpu = sum(r[1] for r in res_)
    total = per * procs
    return {"res": res, "mode": f"eager, {procs} procs x 1 thr", "n": total, "img_s": total / wall,
            "img_cpu_s": total / cpu, "warmup_s": max(r[2] for r in res_)}


def bench_export(res: int, n: int, workers: int) -> dict:
    from faceedit_bench.data.synth_export import export_synthfaces, split_sizes

    def cpu() -> float:   # this process + its finished children (the pool workers)
        return sum(resource.getrusage(w).ru_utime + resource.getrusage(w).ru_stime
                   for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))

    tmp = Path(tempfile.mkdtemp(prefix="synthbench"))
    try:
        c0, t0 = cpu(), time.time()
        export_synthfaces(tmp / "sf", n, res, seed=0, progress=False, workers=workers)
        wall, cpu_s = time.time() - t0, cpu() - c0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    renders = n + 14 * split_sizes(n)[2]
    return {"res": res, "mode": f"export n={n}, {workers} workers (+{renders - n} cf renders)", "n": n,
            "img_s": n / wall, "img_cpu_s": n / cpu_s, "warmup_s": wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--n", type=int, default=2048, help="images rendered per resolution and mode (0: none)")
    ap.add_argument("--threads", type=int, nargs="*", default=[1],
                    help="torch threads of the one-process modes (1: under oversubscription OpenMP spin-waits waste CPU)")
    ap.add_argument("--procs", type=int, nargs="*", default=[], help="also measure P processes x 1 thread")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (slow warm-up)")
    ap.add_argument("--export", type=int, default=0, metavar="N", help="also time an export of N images")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    load = os.getloadavg()
    print(f"# cores={os.cpu_count()} loadavg at start={load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    rows = []
    for res in args.res:
        if args.n:
            for t in args.threads:
                rows.append(bench_render(res, args.n, t, False))
                print(rows[-1], flush=True)
                if args.compile:
                    rows.append(bench_render(res, args.n, t, True))
            for p in args.procs:
                rows.append(bench_render_procs(res, args.n, p))
                print(rows[-1], flush=True)
        if args.export:
            rows.append(bench_export(res, args.export, args.workers))
            print(rows[-1], flush=True)
    print("| res | mode | images | images/s (wall) | images per CPU-s | warm-up / total s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['res']} | {r['mode']} | {r['n']} | {r['img_s']:.1f} | {r['img_cpu_s']:.1f} | {r['warmup_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
