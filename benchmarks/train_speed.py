"""Training-iteration throughput: our AttGAN / StarGAN LightningModules vs the official code (CPU).

One *iteration* = one generator update plus the discriminator updates before it, each on its own
batch, as the official loops: AttGAN-PyTorch ``train.py`` alternates 5 ``trainD`` + 1 ``trainG``
(6 batches); yunjey/stargan ``Solver.train`` does a D update every step and a G update every 5th
(5 batches). Same architecture (full widths: AttGAN G 64 / D 64 / fc 1024, shortcut 1 / inject
1, 13 attributes, the ``train.py`` default ReLU in D's FC; StarGAN G 64 / D 64, 6 res blocks,
c_dim 5), losses and weights, optimiser (Adam, betas (0.5, 0.999)), batch, resolution and
precision (fp32) on both sides; data are random tensors made in advance (no loader cost).

Official side (never committed; pass the checkouts): AttGAN is the official ``attgan.AttGAN``
class driven by the ``train.py`` loop body; StarGAN is the official ``solver.Solver.train()``
itself, with a loader of the same random batches and sampling/saving/logging pushed out of range.

Each side of each round runs in its own process (the library sets the CPU allocator
process-wide, ``faceedit_bench.methods.base.tune_cpu_allocator``; the official code runs with the
default allocator unless ``--official-malloc-tune``; ``--ours-no-malloc-tune`` turns ours off).

Our side: the library's own ``faceedit_bench.methods`` AttGAN / StarGAN LightningModule, trained
by a real ``lightning.Trainer.fit`` (manual optimisation, ``training_step`` as users run it) over
the same batches, pre-made as super-batches; the speed mechanics are the methods' own (see
``faceedit_bench.methods.base.AdversarialEditor``). Times are stamps taken at each
``on_train_batch_start`` (so Lightning's per-step overhead is counted) and at the end of fit.

Timing (process CPU time is the primary figure on a shared machine; 1 thread):

    .venv/bin/python benchmarks/train_speed.py --official-attgan /tmp/official/AttGAN-PyTorch \\
        --official-stargan /tmp/official/stargan --res 64 --batch 8 --iters 2 --rounds 2

Equivalence (``--check``): from the same weights and the same draws (targets, penalty alphas:
ours are recorded and replayed into the official code), with SGD in place of Adam so parameter
differences are gradient differences, one iteration of each side; prints max |Δθ| between the
sides next to the parameters' movement.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_D = 5
N_ATTRS_ATTGAN = 13  # the official D hard-codes 13 outputs
STARGAN_ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")  # solver.py default


def make_batches(n: int, batch: int, res: int, n_attrs: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(batch, 3, res, res, generator=g) * 2 - 1,
             torch.randint(0, 2, (batch, n_attrs), generator=g).float()) for _ in range(n)]


# ----------------------------------------------------------------------------- ours
def build_ours(method: str, res: int, channels_last: bool = False, seed: int = 0):
    """Our LightningModule with the official architecture (constant lr: no decay in range)."""
    from faceedit_bench.methods import build_method

    torch.manual_seed(seed)
    common = dict(res=res, schedule="constant", max_iters=10**6, channels_last=channels_last,
                  n_critic=N_D)
    if method == "attgan":
        return build_method(
            "attgan", **common,
            nets={"G": dict(enc_dim=64, dec_dim=64, enc_layers=5, dec_layers=5, shortcut_layers=1,
                            inject_layers=1),
                  "D": dict(dim=64, fc_dim=1024, n_layers=5, fc_acti_fn="relu")})
    return build_method("stargan", **common, attrs=STARGAN_ATTRS,
                        nets={"G": dict(conv_dim=64, repeat_num=6), "D": dict(conv_dim=64, repeat_num=6)})


class _SuperBatches(torch.utils.data.Dataset):
    """Pre-made super-batches (one iteration each), yielded as they are (``batch_size=None``)."""

    def __init__(self, batches, per_it: int) -> None:
        self.items = [{"image": torch.cat([x for x, _ in batches[k:k + per_it]]),
                       "attrs": torch.cat([a for _, a in batches[k:k + per_it]])}
                      for k in range(0, len(batches) - per_it + 1, per_it)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class _Stamps:
    """Lightning callback: (wall, CPU) at each training batch start and at the end of fit."""

    def __new__(cls):
        import lightning.pytorch as pl

        class Stamps(pl.Callback):
            def __init__(self) -> None:
                self.stamps: list[tuple[float, float]] = []

            def on_train_batch_start(self, *args) -> None:
                self.stamps.append((time.perf_counter(), time.process_time()))

            def on_train_end(self, *args) -> None:
                self.stamps.append((time.perf_counter(), time.process_time()))

        return Stamps()


def fit_ours(method, batches, per_it: int) -> tuple[list[float], list[float]]:
    """``Trainer.fit`` over ``batches`` (grouped ``per_it`` to an iteration); per-iteration
    (wall, CPU) seconds."""
    import lightning.pytorch as pl

    from faceedit_bench.callbacks import StopAtIteration

    data = _SuperBatches(batches, per_it)
    stamps = _Stamps()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                         precision="32-true", callbacks=[StopAtIteration(len(data)), stamps])
    loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False)
    trainer.fit(method, train_dataloaders=loader)
    if method.iteration != len(data):
        raise RuntimeError(f"ours ran {method.iteration} iterations, expected {len(data)}")
    s = stamps.stamps
    return ([s[k + 1][0] - s[k][0] for k in range(len(data))],
            [s[k + 1][1] - s[k][1] for k in range(len(data))])


# ----------------------------------------------------------------------------- official
def _import_official(repo: Path) -> None:
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    try:
        import torchsummary  # noqa: F401
    except ImportError:  # AttGAN-PyTorch only uses it to print a summary
        sys.modules["torchsummary"] = types.SimpleNamespace(summary=lambda *a, **k: None)


class OfficialAttGAN:
    """The official ``attgan.AttGAN`` (AttGAN-PyTorch) with the ``train.py`` loop body."""

    def __init__(self, res: int, repo: Path):
        _import_official(repo)
        import attgan
        args = argparse.Namespace(
            mode="wgan", gpu=False, multi_gpu=False, lambda_1=100.0, lambda_2=10.0,
            lambda_3=1.0, lambda_gp=10.0, enc_dim=64, enc_layers=5, enc_norm="batchnorm",
            enc_acti="lrelu", dec_dim=64, dec_layers=5, dec_norm="batchnorm", dec_acti="relu",
            n_attrs=N_ATTRS_ATTGAN, shortcut_layers=1, inject_layers=1, img_size=res, dis_dim=64,
            dis_norm="instancenorm", dis_acti="lrelu", dis_fc_dim=1024, dis_fc_norm="none",
            dis_fc_acti="relu", dis_layers=5, lr=2e-4, betas=(0.5, 0.999))
        with contextlib.redirect_stdout(io.StringIO()):
            self.m = attgan.AttGAN(args)
        self.m.train()

    def step(self, it: int, img_a, att_a, perm=None):
        """``train.py``: targets = labels permuted (``perm``: a given permutation), ±thres_int."""
        att_b = att_a[torch.randperm(len(att_a)) if perm is None else perm].contiguous()
        att_a_, att_b_ = (att_a * 2 - 1) * 0.5, (att_b * 2 - 1) * 0.5
        if (it + 1) % (N_D + 1) != 0:
            self.m.trainD(img_a, att_a, att_a_, att_b, att_b_)
        else:
            self.m.trainG(img_a, att_a, att_a_, att_b, att_b_)


def time_steps(model, batches) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds of each official AttGAN step."""
    wall, cpu = [], []
    for i, (x, a) in enumerate(batches):
        t, c = time.perf_counter(), time.process_time()
        model.step(i, x, a)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return wall, cpu


class _StampedLoader:
    """Iterable over fixed batches that records when each batch is taken (per-step timing)."""

    def __init__(self, batches):
        self.batches, self.stamps = batches, []

    def __iter__(self):
        for b in self.batches:
            self.stamps.append((time.perf_counter(), time.process_time()))
            yield b


def official_stargan_solver(repo: Path, res: int, batches, workdir: Path):
    """The official ``Solver`` over ``batches`` (the first is its fixed sample batch)."""
    _import_official(repo)
    from solver import Solver  # yunjey/stargan
    loader = _StampedLoader(batches)
    cfg = argparse.Namespace(
        c_dim=len(STARGAN_ATTRS), c2_dim=8, image_size=res, g_conv_dim=64, d_conv_dim=64,
        g_repeat_num=6, d_repeat_num=6, lambda_cls=1.0, lambda_rec=10.0, lambda_gp=10.0,
        dataset="CelebA", batch_size=batches[0][0].size(0), num_iters=len(batches) - 1,
        num_iters_decay=0, g_lr=1e-4, d_lr=1e-4, n_critic=N_D, beta1=0.5, beta2=0.999,
        resume_iters=None, selected_attrs=list(STARGAN_ATTRS), test_iters=0,
        use_tensorboard=False, log_dir=str(workdir), sample_dir=str(workdir),
        model_save_dir=str(workdir), result_dir=str(workdir), log_step=10**9,
        sample_step=10**9, model_save_step=10**9, lr_update_step=10**9)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the networks
        solver = Solver(loader, None, cfg)
    return solver, loader


def run_official_stargan(repo: Path, res: int, batches, workdir: Path):
    """Run the official ``Solver.train()``; (wall, CPU) seconds per D step from the batch stamps."""
    solver, loader = official_stargan_solver(repo, res, batches, workdir)
    with contextlib.redirect_stdout(io.StringIO()):
        solver.train()
    n = len(batches) - 1  # batch 0 is x_fixed
    s = loader.stamps + [(time.perf_counter(), time.process_time())]
    return ([s[k + 1][0] - s[k][0] for k in range(1, 1 + n)],
            [s[k + 1][1] - s[k][1] for k in range(1, 1 + n)])


# ----------------------------------------------------------------------------- equivalence
class _Replay:
    """Records our draws (target permutations, penalty alphas) and replays them officially."""

    def __init__(self) -> None:
        self.perms: list[torch.Tensor] = []
        self.alphas: list[torch.Tensor] = []

    def instrument(self, method, module) -> None:
        """Wrap ``module.shuffled_targets`` (same RNG use) and ``method.rand`` to record."""
        def shuffled(attrs, generator=None):
            perm = torch.randperm(attrs.shape[0], generator=generator).to(attrs.device)
            self.perms.append(perm)
            return attrs[perm]

        rand = method.rand

        def rec_rand(*shape, rng, like):
            out = rand(*shape, rng=rng, like=like)
            self.alphas.append(out.clone())
            return out

        module.shuffled_targets = shuffled
        method.rand = rec_rand

    @contextlib.contextmanager
    def patched_torch(self, alpha_map=lambda a: a):
        """``torch.randperm`` / ``torch.rand`` return the recorded draws in order."""
        perms, alphas = iter(self.perms), iter(self.alphas)
        orig = torch.randperm, torch.rand
        torch.randperm = lambda n, *a, **k: next(perms)
        torch.rand = lambda *shape, **k: alpha_map(next(alphas))
        try:
            yield
        finally:
            torch.randperm, torch.rand = orig


def _sgd(method, lr: float) -> None:
    method.make_adam = lambda params, _lr, _betas=None: torch.optim.SGD(params, lr=lr)


def _compare(ours: dict, theirs: dict, start: dict) -> dict:
    """max |ours - theirs| and max |theirs - start| per player (parameters and buffers)."""
    out = {}
    for tag in ("G.", "D."):
        keys = [k for k in start if k.startswith(tag) and start[k].is_floating_point()]
        for kind, sel in (("params", [k for k in keys if "running" not in k]),
                          ("buffers", [k for k in keys if "running" in k])):
            if not sel:
                continue
            diff = max((ours[k] - theirs[k]).abs().max().item() for k in sel)
            move = max((theirs[k] - start[k]).abs().max().item() for k in sel)
            out[f"{tag[0]}_{kind}"] = {"max_abs_diff": diff, "max_abs_movement": move}
    return out


def check_attgan(repo: Path, res: int, batch: int, lr: float) -> dict:
    import faceedit_bench.methods.attgan as mod

    ours = build_ours("attgan", res)
    off = OfficialAttGAN(res, repo)
    off.m.G.load_state_dict(ours.G.state_dict())
    off.m.D.load_state_dict(ours.D.state_dict())
    off.m.optim_G = torch.optim.SGD(off.m.G.parameters(), lr=lr)
    off.m.optim_D = torch.optim.SGD(off.m.D.parameters(), lr=lr)
    start = {k: v.clone() for k, v in ours.state_dict().items()}
    rep = _Replay()
    rep.instrument(ours, mod)
    _sgd(ours, lr)
    batches = make_batches(N_D + 1, batch, res, N_ATTRS_ATTGAN, seed=123)
    fit_ours(ours, batches, N_D + 1)
    perms = list(rep.perms)
    with rep.patched_torch():  # official alpha: a + alpha (b - a), as ours
        for i, (x, a) in enumerate(batches):
            off.step(i, x, a, perm=perms[i])
    theirs = {**{f"G.{k}": v for k, v in off.m.G.state_dict().items()},
              **{f"D.{k}": v for k, v in off.m.D.state_dict().items()}}
    return _compare(ours.state_dict(), theirs, start)


def check_stargan(repo: Path, res: int, batch: int, lr: float) -> dict:
    import faceedit_bench.methods.stargan as mod

    ours = build_ours("stargan", res)
    batches = make_batches(N_D, batch, res, len(STARGAN_ATTRS), seed=123)
    with tempfile.TemporaryDirectory() as tmp:
        solver, _ = official_stargan_solver(repo, res, [batches[0]] + batches, Path(tmp))
        solver.G.load_state_dict(ours.G.state_dict())
        solver.D.load_state_dict(ours.D.state_dict())
        solver.g_optimizer = torch.optim.SGD(solver.G.parameters(), lr=lr)
        solver.d_optimizer = torch.optim.SGD(solver.D.parameters(), lr=lr)
        start = {k: v.clone() for k, v in ours.state_dict().items()}
        rep = _Replay()
        rep.instrument(ours, mod)
        _sgd(ours, lr)
        fit_ours(ours, batches, N_D)
        # official x_hat = alpha x + (1 - alpha) fake; ours x + alpha (fake - x)
        with rep.patched_torch(alpha_map=lambda a: 1 - a), contextlib.redirect_stdout(io.StringIO()):
            solver.train()
    theirs = {**{f"G.{k}": v for k, v in solver.G.state_dict().items()},
              **{f"D.{k}": v for k, v in solver.D.state_dict().items()}}
    return _compare(ours.state_dict(), theirs, start)


# ----------------------------------------------------------------------------- driver
def per_iteration(step_times: list[float], per_it: int, warm_its: int) -> float:
    """Mean seconds per iteration (``per_it`` consecutive steps), skipping ``warm_its`` iterations."""
    its = [sum(step_times[k:k + per_it]) for k in range(0, len(step_times) - per_it + 1, per_it)]
    its = its[warm_its:]
    if not its:
        raise ValueError("not enough steps for one timed iteration")
    return statistics.mean(its)


def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def run_side(a) -> dict:
    """One side of one round (run in its own process: allocator settings are process-wide)."""
    method, r = a.worker_method, a.worker_round
    per_it = N_D + 1 if method == "attgan" else N_D
    n_attrs = N_ATTRS_ATTGAN if method == "attgan" else len(STARGAN_ATTRS)
    batches = make_batches((a.warmup + a.iters) * per_it, a.batch, a.res, n_attrs, seed=r)
    if a.worker == "ours":
        w, c = fit_ours(build_ours(method, a.res, a.channels_last, seed=r), batches, per_it)
        per_it = 1  # fit_ours times whole iterations
    else:
        if a.official_malloc_tune:
            from faceedit_bench.methods.adversarial import tune_cpu_allocator
            tune_cpu_allocator()
        torch.manual_seed(r)
        if method == "attgan":
            w, c = time_steps(OfficialAttGAN(a.res, a.official_attgan), batches)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                w, c = run_official_stargan(a.official_stargan, a.res, [batches[0]] + batches,
                                            Path(tmp))
    return {"wall": per_iteration(w, per_it, a.warmup), "cpu": per_iteration(c, per_it, a.warmup)}


def _spawn_side(side: str, method: str, r: int, argv: list[str], env: dict) -> dict:
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "side.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--worker", side,
               "--worker-method", method, "--worker-round", str(r), "--out", str(out)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{side} {method} round {r} failed:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official-attgan", type=Path, help="checkout of elvisyjlin/AttGAN-PyTorch")
    p.add_argument("--official-stargan", type=Path, help="checkout of yunjey/stargan")
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=2, help="timed iterations per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per round")
    p.add_argument("--rounds", type=int, default=2, help="alternating official/ours rounds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--methods", default="attgan,stargan")
    p.add_argument("--ours-no-malloc-tune", action="store_true",
                   help="our side without the library's CPU allocator setting (FACEEDIT_MALLOC_TUNE=0)")
    p.add_argument("--official-malloc-tune", action="store_true",
                   help="give the official side the same allocator setting as ours")
    p.add_argument("--check", action="store_true",
                   help="equivalence instead of timing: one SGD iteration each side, same draws")
    p.add_argument("--check-lr", type=float, default=1e-4)
    p.add_argument("--out", type=Path, help="write the numbers as JSON here (atomically)")
    p.add_argument("--worker", choices=("official", "ours"), help=argparse.SUPPRESS)
    p.add_argument("--worker-method", help=argparse.SUPPRESS)
    p.add_argument("--worker-round", type=int, help=argparse.SUPPRESS)
    argv = list(sys.argv[1:] if argv is None else argv)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    if a.worker:
        res = run_side(a)
        _atomic_json(a.out, res)
        return res
    res = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
           "torch": torch.__version__, "cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    passthrough = [x for i, x in enumerate(argv) if x != "--out" and (i == 0 or argv[i - 1] != "--out")]
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    for method in a.methods.split(","):
        if method not in ("attgan", "stargan"):
            raise SystemExit(f"--methods: unknown method {method!r}; expected attgan and/or stargan")
        repo = a.official_attgan if method == "attgan" else a.official_stargan
        if repo is None or not repo.is_dir():
            raise SystemExit(f"--official-{method} must point at a checkout of the official code "
                             f"(got {repo})")
        if a.check:
            fn = check_attgan if method == "attgan" else check_stargan
            res[method] = {"check": fn(repo, a.res, a.batch, a.check_lr)}
            print(f"{method} equivalence (SGD lr {a.check_lr}, one iteration): "
                  f"{json.dumps(res[method]['check'])}", flush=True)
            continue
        t = {k: [] for k in ("official_wall", "official_cpu", "ours_wall", "ours_cpu")}
        for r in range(a.rounds):
            for side in ("official", "ours"):
                side_env = dict(env)
                if side == "ours" and a.ours_no_malloc_tune:
                    side_env["FACEEDIT_MALLOC_TUNE"] = "0"
                got = _spawn_side(side, method, r, passthrough, side_env)
                t[f"{side}_wall"].append(got["wall"])
                t[f"{side}_cpu"].append(got["cpu"])
            print(f"{method} round {r}: s/it official {t['official_wall'][-1]:.2f} wall "
                  f"{t['official_cpu'][-1]:.2f} cpu; ours {t['ours_wall'][-1]:.2f} wall "
                  f"{t['ours_cpu'][-1]:.2f} cpu (load {os.getloadavg()[0]:.1f})", flush=True)
        med = {k: statistics.median(v) for k, v in t.items()}
        res[method] = {"s_per_it": t, "median_s_per_it": med,
                       "speedup_cpu": med["official_cpu"] / med["ours_cpu"],
                       "speedup_wall": med["official_wall"] / med["ours_wall"]}
        print(f"{method}: it/s by CPU time official {1 / med['official_cpu']:.4f}, ours "
              f"{1 / med['ours_cpu']:.4f}, speedup {res[method]['speedup_cpu']:.2f}x; by wall time "
              f"speedup {res[method]['speedup_wall']:.2f}x (medians over {a.rounds} rounds)",
              flush=True)
    res["load_avg_end"] = os.getloadavg()
    if a.out:
        _atomic_json(a.out, res)
    return res


if __name__ == "__main__":
    main()
