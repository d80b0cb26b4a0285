"""Training-iteration throughput: our AttGAN / StarGAN nets vs the official code (CPU, fp32).

One *iteration* = one generator update plus the discriminator updates before it, each on its own
batch, as the official loops: AttGAN-PyTorch ``train.py`` alternates 5 ``trainD`` + 1 ``trainG``
(6 batches); yunjey/stargan ``Solver.train`` does a D update every step and a G update every 5th
(5 batches). Same losses, weights, optimiser (Adam, betas (0.5, 0.999)), batch, resolution and
precision on both sides; data are random tensors made in advance (no loader cost on either side).

Official side (never committed; pass the checkouts): AttGAN is the official ``attgan.AttGAN``
class driven by the ``train.py`` loop body; StarGAN is the official ``solver.Solver.train()``
itself, with a loader of the same random batches and sampling/saving/logging pushed out of range.

Our side: :mod:`faceedit_bench.nets` with these equivalent-by-construction changes
(see benchmarks/RESULTS.md):
  1. the fake for the D update is made under ``torch.no_grad()`` (the official codes record a
     graph for it and then detach it);
  2. real and fake go through D in one batched forward (exact: the AttGAN D normalises per
     instance, the StarGAN D has no norm);
  3. D's parameters are frozen during the G update (AttGAN official does the same; StarGAN's
     official G update also computes and discards D's weight gradients);
  4. Adam with ``fused=True`` (one fused kernel per step instead of per-tensor loops);
  5. the penalty's forward skips the unused attribute head (``forward_adv``) and the D backward
     asks only for D's parameter gradients (none for the interpolated input);
  6. StarGAN: the G update reuses ``G(x_real, c_trg)`` computed (with its graph) in the D update
     of the same step, same batch, same G weights; the official code computes it twice. Outputs
     and gradients are identical (IN uses instance statistics in training); only the IN running
     buffers see that fake once instead of twice (they are unused in training and, by default,
     at test);
  7. optional ``--channels-last`` (slower on this CPU; off).

    .venv/bin/python benchmarks/train_speed.py --official-attgan /tmp/official/AttGAN-PyTorch \
        --official-stargan /tmp/official/stargan --res 64 --batch 8 --iters 3 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from faceedit_bench.nets import (AttGANDiscriminator, AttGANGenerator,  # noqa: E402
                                 StarGANDiscriminator, StarGANGenerator)

N_D = 5
N_ATTRS_ATTGAN = 13  # the official D hard-codes 13 outputs
C_DIM = 5


def make_batches(n: int, batch: int, res: int, n_attrs: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(batch, 3, res, res, generator=g) * 2 - 1,
             torch.randint(0, 2, (batch, n_attrs), generator=g).float()) for _ in range(n)]


def gradient_penalty(d_adv, x: torch.Tensor) -> torch.Tensor:
    """WGAN-GP ``E[(||grad_x D(x)||_2 - 1)^2]`` on the adversarial output (both official codes)."""
    x = x.requires_grad_(True)
    out = d_adv(x)
    grad = torch.autograd.grad(out, x, torch.ones_like(out), create_graph=True)[0]
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def _adam(params):
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), fused=True)


# ----------------------------------------------------------------------------- AttGAN
class OursAttGAN:
    """AttGAN-PyTorch ``trainD``/``trainG`` losses (wgan mode) on our nets, faster mechanics."""

    def __init__(self, res: int, channels_last: bool):
        self.G = AttGANGenerator(img_size=res, shortcut_layers=1, inject_layers=1).train()
        self.D = AttGANDiscriminator(img_size=res, fc_acti_fn="relu").train()  # train.py default
        self.cl = channels_last
        if channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.d_params = list(self.D.parameters())
        self.opt_G, self.opt_D = _adam(self.G.parameters()), _adam(self.d_params)

    def _x(self, x):
        return x.contiguous(memory_format=torch.channels_last) if self.cl else x

    def step(self, it: int, img_a, att_a):
        img_a = self._x(img_a)
        att_b = att_a[torch.randperm(len(att_a))]
        att_a_, att_b_ = (att_a * 2 - 1) * 0.5, (att_b * 2 - 1) * 0.5
        if (it + 1) % (N_D + 1) != 0:
            self.D.requires_grad_(True)
            with torch.no_grad():
                fake = self.G(img_a, att_b_)
            b = img_a.size(0)
            adv, cls = self.D(torch.cat([img_a, fake]))
            wd = adv[:b].mean() - adv[b:].mean()
            alpha = torch.rand(b, 1, 1, 1)
            gp = gradient_penalty(self.D.forward_adv, img_a + alpha * (fake - img_a))
            d_loss = -wd + 10.0 * gp + F.binary_cross_entropy_with_logits(cls[:b], att_a)
            self.opt_D.zero_grad(set_to_none=True)
            d_loss.backward(inputs=self.d_params)  # no grad for the interpolate leaf
            self.opt_D.step()
        else:
            self.D.requires_grad_(False)
            zs = self.G(img_a, mode="enc")
            fake = self.G(zs, att_b_, mode="dec")
            rec = self.G(zs, att_a_, mode="dec")
            adv, cls = self.D(fake)
            g_loss = (-adv.mean() + 10.0 * F.binary_cross_entropy_with_logits(cls, att_b)
                      + 100.0 * F.l1_loss(rec, img_a))
            self.opt_G.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_G.step()


class OfficialAttGAN:
    """The official ``attgan.AttGAN`` (AttGAN-PyTorch) with the ``train.py`` loop body."""

    def __init__(self, res: int, repo: Path):
        sys.path.insert(0, str(repo))
        try:
            import torchsummary  # noqa: F401
        except ImportError:  # only used to print a summary
            sys.modules["torchsummary"] = types.SimpleNamespace(summary=lambda *a, **k: None)
        import attgan
        args = argparse.Namespace(
            mode="wgan", gpu=False, multi_gpu=False, lambda_1=100.0, lambda_2=10.0,
            lambda_3=1.0, lambda_gp=10.0, enc_dim=64, enc_layers=5, enc_norm="batchnorm",
            enc_acti="lrelu", dec_dim=64, dec_layers=5, dec_norm="batchnorm", dec_acti="relu",
            n_attrs=N_ATTRS_ATTGAN, shortcut_layers=1, inject_layers=1, img_size=res, dis_dim=64,
            dis_norm="instancenorm", dis_acti="lrelu", dis_fc_dim=1024, dis_fc_norm="none",
            dis_fc_acti="relu", dis_layers=5, lr=2e-4, betas=(0.5, 0.999))
        self.m = attgan.AttGAN(args)
        self.m.train()

    def step(self, it: int, img_a, att_a):
        att_b = att_a[torch.randperm(len(att_a))]
        att_a_, att_b_ = (att_a * 2 - 1) * 0.5, (att_b * 2 - 1) * 0.5
        if (it + 1) % (N_D + 1) != 0:
            self.m.trainD(img_a, att_a, att_a_, att_b, att_b_)
        else:
            self.m.trainG(img_a, att_a, att_a_, att_b, att_b_)


# ----------------------------------------------------------------------------- StarGAN
def _cls_loss(logit, target):
    return F.binary_cross_entropy_with_logits(logit, target, reduction="sum") / logit.size(0)


class OursStarGAN:
    """yunjey/stargan ``Solver.train`` losses (CelebA) on our nets, faster mechanics."""

    def __init__(self, res: int, channels_last: bool):
        self.G = StarGANGenerator(c_dim=C_DIM).train()
        self.D = StarGANDiscriminator(image_size=res, c_dim=C_DIM).train()
        self.cl = channels_last
        if channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.d_params = list(self.D.parameters())
        self.opt_G = torch.optim.Adam(self.G.parameters(), 1e-4, (0.5, 0.999), fused=True)
        self.opt_D = torch.optim.Adam(self.d_params, 1e-4, (0.5, 0.999), fused=True)

    def step(self, i: int, x_real, label_org):
        if self.cl:
            x_real = x_real.contiguous(memory_format=torch.channels_last)
        label_trg = label_org[torch.randperm(label_org.size(0))]
        b = x_real.size(0)
        g_next = (i + 1) % N_D == 0
        self.D.requires_grad_(True)
        if g_next:  # the G update below needs G(x_real, c_trg) again: keep this graph
            x_fake_g = self.G(x_real, label_trg)
            x_fake = x_fake_g.detach()
        else:
            with torch.no_grad():
                x_fake = self.G(x_real, label_trg)
        src, cls = self.D(torch.cat([x_real, x_fake]))
        alpha = torch.rand(b, 1, 1, 1)
        gp = gradient_penalty(self.D.forward_adv, alpha * x_real + (1 - alpha) * x_fake)
        d_loss = -src[:b].mean() + src[b:].mean() + _cls_loss(cls[:b], label_org) + 10.0 * gp
        self.opt_D.zero_grad(set_to_none=True)
        d_loss.backward(inputs=self.d_params)
        self.opt_D.step()
        if g_next:
            self.D.requires_grad_(False)
            src, cls = self.D(x_fake_g)  # the updated D, as the official G update
            x_rec = self.G(x_fake_g, label_org)
            g_loss = (-src.mean() + 10.0 * (x_real - x_rec).abs().mean()
                      + _cls_loss(cls, label_trg))
            self.opt_G.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_G.step()


class _StampedLoader:
    """Iterable over fixed batches that records when each batch is taken (per-step timing)."""

    def __init__(self, batches):
        self.batches, self.stamps = batches, []

    def __iter__(self):
        for b in self.batches:
            self.stamps.append((time.perf_counter(), time.process_time()))
            yield b


def run_official_stargan(repo: Path, res: int, batches, workdir: Path):
    """Run the official ``Solver.train()`` over ``batches`` (the first is its fixed sample batch).

    Returns (wall, cpu) seconds per D step, from the times each batch was taken."""
    sys.path.insert(0, str(repo))
    from solver import Solver  # yunjey/stargan
    loader = _StampedLoader(batches)
    n = len(batches) - 1  # batch 0 is x_fixed
    cfg = argparse.Namespace(
        c_dim=C_DIM, c2_dim=8, image_size=res, g_conv_dim=64, d_conv_dim=64, g_repeat_num=6,
        d_repeat_num=6, lambda_cls=1.0, lambda_rec=10.0, lambda_gp=10.0, dataset="CelebA",
        batch_size=batches[0][0].size(0), num_iters=n, num_iters_decay=0, g_lr=1e-4, d_lr=1e-4,
        n_critic=N_D, beta1=0.5, beta2=0.999, resume_iters=None,
        selected_attrs=["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"],
        test_iters=0, use_tensorboard=False, log_dir=str(workdir), sample_dir=str(workdir),
        model_save_dir=str(workdir), result_dir=str(workdir), log_step=10**9,
        sample_step=10**9, model_save_step=10**9, lr_update_step=10**9)
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the networks
        solver = Solver(loader, None, cfg)
        solver.train()
    s = loader.stamps + [(time.perf_counter(), time.process_time())]
    return ([s[k + 1][0] - s[k][0] for k in range(1, 1 + n)],
            [s[k + 1][1] - s[k][1] for k in range(1, 1 + n)])


# ----------------------------------------------------------------------------- driver
def time_steps(model, batches) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds of each step (CPU time is robust to other jobs' load)."""
    wall, cpu = [], []
    for i, (x, a) in enumerate(batches):
        t, c = time.perf_counter(), time.process_time()
        model.step(i, x, a)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return wall, cpu


def per_iteration(step_times: list[float], per_it: int, warm_its: int) -> float:
    """Mean seconds per iteration (``per_it`` consecutive steps), skipping ``warm_its`` iterations."""
    its = [sum(step_times[k:k + per_it]) for k in range(0, len(step_times) - per_it + 1, per_it)]
    its = its[warm_its:]
    if not its:
        raise ValueError("not enough steps for one timed iteration")
    return statistics.mean(its)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official-attgan", type=Path, help="checkout of elvisyjlin/AttGAN-PyTorch")
    p.add_argument("--official-stargan", type=Path, help="checkout of yunjey/stargan")
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=3, help="timed iterations per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating official/ours rounds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--methods", default="attgan,stargan")
    p.add_argument("--out", type=Path, help="write the numbers as JSON here (atomically)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    res = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
           "torch": torch.__version__, "cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    its = a.warmup + a.iters
    for method in a.methods.split(","):
        repo = a.official_attgan if method == "attgan" else a.official_stargan
        if repo is None or not repo.is_dir():
            raise SystemExit(f"--official-{method} must point at a checkout of the official code "
                             f"(got {repo})")
        per_it = N_D + 1 if method == "attgan" else N_D
        n_attrs = N_ATTRS_ATTGAN if method == "attgan" else C_DIM
        t = {k: [] for k in ("official_wall", "official_cpu", "ours_wall", "ours_cpu")}

        def record(side, times):
            t[f"{side}_wall"].append(per_iteration(times[0], per_it, a.warmup))
            t[f"{side}_cpu"].append(per_iteration(times[1], per_it, a.warmup))

        for r in range(a.rounds):
            batches = make_batches(its * per_it, a.batch, a.res, n_attrs, seed=r)
            if method == "attgan":
                off = OfficialAttGAN(a.res, repo)
                record("official", time_steps(off, batches))
                del off
                ours = OursAttGAN(a.res, a.channels_last)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    record("official", run_official_stargan(repo, a.res, [batches[0]] + batches,
                                                            Path(tmp)))
                ours = OursStarGAN(a.res, a.channels_last)
            record("ours", time_steps(ours, batches))
            del ours
            print(f"{method} round {r}: s/it official {t['official_wall'][-1]:.2f} wall "
                  f"{t['official_cpu'][-1]:.2f} cpu; ours {t['ours_wall'][-1]:.2f} wall "
                  f"{t['ours_cpu'][-1]:.2f} cpu", flush=True)
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
        tmp = a.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=1))
        os.replace(tmp, a.out)
    return res


if __name__ == "__main__":
    main()
