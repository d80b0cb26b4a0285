"""StarGAN (Choi et al., CVPR 2018) as a LightningModule on the shared adversarial base.

Losses (yunjey/stargan ``solver.py``, implementations.md §3.2):
D: ``-E[D_src(x)] + E[D_src(G(x, c'))] + λ_cls CE(D_cls(x), c) + λ_gp GP``;
G: ``-E[D_src(G(x, c'))] + λ_cls CE(D_cls(G(x, c')), c') + λ_rec |x - G(G(x, c'), c)|₁``;
CE is BCE-with-logits summed over attributes and divided by the batch (12.4: 13x the AttGAN
mean for 13 attributes); λ_cls 1, λ_rec 10, λ_gp 10. Labels are raw {0,1}; targets the batch's
labels shuffled. D is updated every step, G every ``n_critic = 5``-th on the batch (and target)
of the D step it follows (``g_reuses_last_d_batch``): one of our iterations = 5 official
iterations. Adam(1e-4, β 0.5/0.999), batch 16; 200k official (D) iterations = 40k of ours; lr
decays linearly to 0 over the second half (the paper's intent: the official code's arithmetic,
``g_lr -= g_lr0 / num_iters_decay`` every 1000 steps, actually lowers it only by 0.1 %).

Speed mechanics (exact, see :class:`.base.AdversarialEditor`): the D has no norm, so real and
fake share one D forward; the fake of a D update is made without autograd, except in the last D
update of an iteration, whose ``G(x, c')`` (with its graph) the G update reuses: same batch, same
target, same G weights, so the same tensor the official G update recomputes; the second IN
running-statistics update that recomputation would make is replayed (``reuse_fake``; off when a
norm uses a cumulative average, ``momentum=None``). D is frozen during the G update (the
official code computes D's weight gradients there and discards them).

InstanceNorm pitfall (§3.1): the official IN layers track running statistics but the official
test never calls ``.eval()``, so released outputs use per-instance statistics. By default
(``nets.G.eval_running_stats: false``) our eval mode does the same, so ``edit()`` matches the
official outputs; ``true`` selects the running averages (plain PyTorch eval). Recorded in
:meth:`method_protocol`.

Test intensity: StarGAN sets the target labels (no intensity in the paper): ``intensity=None``
means 1; other values move the changed labels ``c + k (c' - c)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import register
from .adversarial import AdversarialEditor
from .targets import shuffled_targets, stargan_test_labels


def stargan_cls_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """StarGAN ``classification_loss``: BCE-with-logits, sum / batch size."""
    return F.binary_cross_entropy_with_logits(logits.float(), target, reduction="sum") / logits.size(0)


@register("stargan")
class StarGAN(AdversarialEditor):
    """StarGAN; networks ``G`` / ``D`` (``nets.G`` / ``nets.D``: kwargs of ``nets.stargan``, official names)."""

    encoding = "stargan"
    paper_test_intensity = 1.0
    g_reuses_last_d_batch = True

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("lr", 1e-4)
        kwargs.setdefault("schedule", "linear")
        super().__init__(*args, **kwargs)
        self._last_target: tuple[torch.Tensor, torch.Tensor] | None = None
        self._reused: dict | None = None
        #: reuse the last D update's G(x, c') (with its graph) in the G update; see d_loss
        self.reuse_fake = all(m.momentum is not None for m in self._tracked_norms())

    def default_loss_weights(self) -> dict[str, float]:
        return {"lambda_cls": 1.0, "lambda_rec": 10.0}

    def build_networks(self, nets):
        from ..nets.stargan import StarGANDiscriminator, StarGANGenerator

        return {"G": StarGANGenerator(**{**nets.get("G", {}), "c_dim": self.n_attrs}),
                "D": StarGANDiscriminator(**{**nets.get("D", {}), "c_dim": self.n_attrs, "image_size": self.res})}

    def test_code(self, src, tgt, intensity):
        return stargan_test_labels(src, tgt, intensity)

    def _tracked_norms(self) -> list[torch.nn.Module]:
        """G's norm layers with running statistics (the official IN tracks them)."""
        from torch.nn.modules.batchnorm import _NormBase

        return [m for m in self.G.modules() if isinstance(m, _NormBase) and m.track_running_stats]

    def _fake_for_d(self, batch: dict, x: torch.Tensor, c_trg: torch.Tensor) -> torch.Tensor:
        """``G(x, c')`` for a D update, detached.

        Made under ``no_grad``, except in the D update whose batch and target the G update reuses
        (``feeds_next_phase``): there G's graph is kept for :meth:`g_loss`, which would otherwise
        recompute ``G(x, c')`` from the same batch, target and G weights (G is not updated in
        between), i.e. the same tensor. The official G update also updates the IN running
        statistics a second time with that fake; :meth:`_replay_norm_update` applies that update.
        """
        if not (self.feeds_next_phase and self.reuse_fake):
            with torch.no_grad():
                return self.generate(x, c_trg.to(x.dtype))
        for p in self.G.parameters():  # toggle_optimizer froze them; untoggle restores
            p.requires_grad_(True)
        before = [(m.running_mean.clone(), m.running_var.clone()) for m in self._tracked_norms()]
        fake = self.generate(x, c_trg.to(x.dtype))
        self._reused = {"image": batch["image"], "c_trg": c_trg, "fake": fake, "before": before}
        return fake.detach()

    @torch.no_grad()
    def _replay_norm_update(self, before: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """The running-statistics update of a second forward of the same input:
        ``r2 = (1-m) r1 + m s`` with ``m s = r1 - (1-m) r0``, i.e. ``r2 = r1 + (1-m)(r1 - r0)``
        (``num_batches_tracked`` counts only in batch norm, as torch's instance norm leaves it)."""
        from torch.nn.modules.batchnorm import _BatchNorm

        for m, (mean0, var0) in zip(self._tracked_norms(), before):
            k = 1.0 - m.momentum
            m.running_mean.add_((m.running_mean - mean0) * k)
            m.running_var.add_((m.running_var - var0) * k)
            if isinstance(m, _BatchNorm):
                m.num_batches_tracked.add_(1)

    def d_loss(self, batch, rng):
        x, c_org = self.prep(batch["image"]), batch["attrs"].float()
        c_trg = shuffled_targets(c_org, rng)
        self._last_target = (batch["image"], c_trg)
        fake = self._fake_for_d(batch, x, c_trg)
        (out_src, out_cls), (fake_src, _) = self.d_real_fake(x, fake)  # one forward (no-norm D)
        loss_real = -out_src.mean()
        loss_cls = stargan_cls_loss(out_cls, c_org)
        loss_fake = fake_src.mean()
        gp = self.gradient_penalty(x, fake, rng)
        w = self.loss_weights
        loss = loss_real + loss_fake + w["lambda_cls"] * loss_cls + self.lambda_gp * gp
        return loss, {"d_loss": loss, "d_wd": -(loss_real + loss_fake), "d_gp": gp, "d_cls": loss_cls}

    def g_loss(self, batch, rng):
        x, c_org = self.prep(batch["image"]), batch["attrs"].float()
        last, reused = self._last_target, self._reused
        self._last_target = self._reused = None
        c_trg = last[1] if last is not None and last[0] is batch["image"] else shuffled_targets(c_org, rng)
        if reused is not None and reused["image"] is batch["image"] and reused["c_trg"] is c_trg:
            fake = reused["fake"]
            self._replay_norm_update(reused["before"])
        else:
            fake = self.generate(x, c_trg.to(x.dtype))
        out_src, out_cls = self.dis_net(fake)
        adv = -out_src.mean()
        cls = stargan_cls_loss(out_cls, c_trg)
        rec = F.l1_loss(self.generate(fake, c_org.to(x.dtype)).float(), x.float())
        w = self.loss_weights
        loss = adv + w["lambda_rec"] * rec + w["lambda_cls"] * cls
        return loss, {"g_loss": loss, "g_adv": adv, "g_cls": cls, "g_rec": rec}

    def method_protocol(self):
        out = super().method_protocol()
        g_cfg = (self.hparams.get("nets") or {}).get("G") or {}
        out["in_eval_running_stats"] = bool(g_cfg.get("eval_running_stats", False))
        return out


