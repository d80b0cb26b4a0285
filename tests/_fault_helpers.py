"""Killable CLI runs for the fault tests: a zygote process that forks one child per command.

Starting ``python -m faceedit_bench.cli`` costs seconds of imports (torch, Lightning) before any
work; at the suite's tiny sizes the work itself is well under a second, so a kill "at a seeded
moment" would nearly always land in ``import``. The zygote (``python tests/_fault_helpers.py``,
started once per test module) imports the package and its heavy dependencies once, then
serves requests on stdin, one JSON object a line:

* ``{"op": "run", "argv": [...], "cwd": DIR, "log": FILE, "tmpdir": DIR, "kill_on": SPEC}``
  forks a child that runs ``faceedit_bench.cli.main(argv)`` in ``cwd`` with stdout/stderr to
  ``log`` and ``TMPDIR=tmpdir``, and exits with its return code; answers ``{"pid": N}``.
  ``kill_on`` (optional) = ``{"event": "open" | "os.rename", "match": REGEX, "nth": K}``: the
  child SIGKILLs itself at its K-th audit event of that kind on a path matching REGEX: an open
  for writing (the hook runs before the call: a second open of a file that ``mkstemp`` made
  finds it created and empty) or a rename (``os.replace``: the temporary file is complete, not
  yet in place) — a kill at an exact point of a write, through a CPython audit hook, without
  any hook in the package. ``{"call": "module:function"}`` runs ``function(*argv)`` instead
  of the CLI;
* ``{"op": "poll", "pid": N}`` answers ``{"rc": exit code or null while running}``
  (``-9`` after SIGKILL);
* ``{"op": "wait", "pid": N}`` blocks until the child ends and answers ``{"rc": ...}``.

The child is a real process: the test SIGKILLs its pid, so nothing of the command can react
(no ``finally``, no atexit). It inherits no open file but the log; the global ``random`` and
``numpy.random`` states are reseeded from the OS as in a fresh interpreter (``torch``'s default
seed is fixed in a fresh interpreter too); only the hash seed is shared with the zygote.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

#: names an interrupted atomic write leaves behind (io_utils, leaderboard.io, callbacks,
#: synth_export, store, precompute, results): any of these after a completed rerun is a leak
TEMP_NAME = re.compile(r"(\.tmp(\d+|-.*|\.png)?$)|(\.partial$)|(\.progress$)|(\.new\.npy$)")


def temp_files(root: Path) -> list[str]:
    """Relative paths under ``root`` that look like an interrupted write's temporary file."""
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if TEMP_NAME.search(p.name))


def record(i: int) -> dict:
    """A valid result record told apart by ``n_images = i``."""
    from faceedit_bench.results import make_record

    proto = {"attrs": ["Bald"], "crop": "none", "resize_filter": "bicubic", "test_intensity": 1.0,
             "seed": 0, "commit": "x", "precision": "32-true", "devices": 1, "data_hash": "d"}
    return make_record("identity", 32, "synth", "test", i, {"psnr": 1.0}, proto, track="attribute_flip")


def append_loop(path: str, start: str) -> int:
    """Append records ``start, start + 1, ...`` to ``path`` forever, printing each number once
    its append returned (the writer's acknowledgement)."""
    from faceedit_bench.results import append_record

    for i in range(int(start), 10**9):
        append_record(path, record(i))
        print(i, flush=True)
    return 0


class Zygote:
    """Client of the zygote process (see the module docstring)."""

    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled",
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                              os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        assert self._read() == {"ready": True}

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"zygote exited with {self.proc.wait()}")
        return json.loads(line)

    def _ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def start(self, argv: list, cwd: Path, log: Path, tmpdir: Path | None = None,
              kill_on: dict | None = None, call: str | None = None) -> int:
        return self._ask(op="run", argv=[str(a) for a in argv], cwd=str(cwd), log=str(log),
                         tmpdir=str(tmpdir) if tmpdir else None, kill_on=kill_on, call=call)["pid"]

    def poll(self, pid: int) -> int | None:
        return self._ask(op="poll", pid=pid)["rc"]

    def wait(self, pid: int) -> int:
        return self._ask(op="wait", pid=pid)["rc"]

    def run(self, argv, cwd: Path, log: Path, tmpdir: Path | None = None,
            kill_on: dict | None = None) -> tuple[int, float]:
        """Run to the end (or to its ``kill_on`` point): (exit code, seconds)."""
        t0 = time.perf_counter()
        rc = self.wait(self.start(argv, cwd, log, tmpdir, kill_on))
        return rc, time.perf_counter() - t0

    def run_and_kill(self, argv, cwd: Path, log: Path, *, after: float, tmpdir: Path | None = None,
                     timeout: float = 120.0, poll_s: float = 0.002) -> tuple[int, float]:
        """Start, then SIGKILL after ``after`` seconds. Returns (exit code, seconds until the
        kill or the end): ``-9`` when the kill landed, else the code of a run that ended first."""
        pid = self.start(argv, cwd, log, tmpdir)
        t0 = time.perf_counter()
        while True:
            now = time.perf_counter() - t0
            if now >= after:
                os.kill(pid, signal.SIGKILL)
                return self.wait(pid), now
            rc = self.poll(pid)
            if rc is not None:
                return rc, now
            if now > timeout:
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError(f"{argv[0]} still running after {timeout} s (log: {log})")
            time.sleep(poll_s)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(30)


# ------------------------------------------------------------------------------ zygote side
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND


def _arm(spec: dict) -> None:
    """Install the audit hook that SIGKILLs this process at ``spec`` (see the module docstring)."""
    pattern, nth, seen = re.compile(spec["match"]), int(spec["nth"]), [0]

    def hook(event: str, args) -> None:
        if event != spec["event"]:
            return
        if event == "open" and (isinstance(args[0], int) or not (args[2] or 0) & _WRITING):
            return
        if pattern.search(os.fsdecode(os.fspath(args[0]))):
            seen[0] += 1
            if seen[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)


def _child(req: dict) -> None:
    """In the forked child: redirect, run the command, exit with its code (never return)."""
    try:
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.chdir(req["cwd"])
        if req.get("tmpdir"):
            import tempfile

            os.environ["TMPDIR"] = req["tmpdir"]
            tempfile.tempdir = None
        if req.get("kill_on"):
            _arm(req["kill_on"])
        random.seed()
        import numpy as np

        np.random.seed(None)
        if req.get("call"):
            import importlib

            module, func = req["call"].split(":")
            rc = getattr(importlib.import_module(module), func)(*req["argv"])
        else:
            sys.argv = ["faceedit-bench", *req["argv"]]
            from faceedit_bench.cli import main

            rc = main(req["argv"])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(rc or 0))


def _serve() -> None:
    os.environ.setdefault("WANDB_MODE", "disabled")
    import torch

    torch.set_num_threads(1)
    import lightning.pytorch  # noqa: F401
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()          # first draw loads fonts (seconds): once here, not per child
    ax.bar([0, 1], [1, 2])
    ax.set_title("warm-up")
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)
    import faceedit_bench.bench  # noqa: F401
    import faceedit_bench.cli
    import faceedit_bench.data.datamodule  # noqa: F401
    import faceedit_bench.data.store  # noqa: F401
    import faceedit_bench.data.synth_export  # noqa: F401
    import faceedit_bench.leaderboard  # noqa: F401
    import faceedit_bench.metrics.classifier  # noqa: F401
    import faceedit_bench.metrics.evaluator  # noqa: F401
    import faceedit_bench.parsing.precompute  # noqa: F401
    import faceedit_bench.results  # noqa: F401
    import faceedit_bench.train  # noqa: F401

    faceedit_bench.cli.build_parser()           # imports every subcommand module
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    done: dict[int, int] = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "run":
            out.flush()
            pid = os.fork()
            if pid == 0:
                _child(req)
            answer = {"pid": pid}
        else:
            pid = req["pid"]
            if pid not in done:
                flags = 0 if req["op"] == "wait" else os.WNOHANG
                got, status = os.waitpid(pid, flags)
                if got == pid:
                    done[pid] = os.waitstatus_to_exitcode(status)
            answer = {"rc": done.get(pid)}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    _serve()
