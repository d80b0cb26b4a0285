"""AttGAN (He et al., TIP 2019) as a LightningModule on the shared adversarial base.

Losses (implementations.md §1.2; AttGAN-PyTorch ``attgan.py``, TF v1 ``train.py``):
D: ``-(E[D(x_a)] - E[D(x̂_b)]) + λ_gp GP + λ_3 BCE(D_c(x_a), a)``;
G: ``-E[D(x̂_b)] + λ_2 BCE(D_c(x̂_b), b) + λ_1 L1(x̂_a, x_a)``, with λ_1 = 100 (rec), λ_2 = 10,
λ_3 = 1, λ_gp = 10; BCE and L1 are means over all elements (TF ``sigmoid_cross_entropy``).
Targets ``b`` are the batch's labels shuffled (``target_sampling: flip_one``: one flip per sample, a CPU-recipe option); G sees ``(2b-1) * thres_int`` (thres_int 0.5).
Adam(2e-4, β 0.5/0.999), 5 D steps per G step, each on a new batch; lr/10 after half of
training (200 epochs, ``10**-(epoch//100)``).

D update: fake under ``no_grad``, real and fake in one batched D forward (the default D uses
instance norm without running statistics, i.e. per sample: exact; a batch-norm D would fall back
to two forwards, :func:`.base.batch_independent`), the penalty through ``D.forward_adv``. G
update: D frozen (``requires_grad=False``), one encoding for the edit and the reconstruction.

Test intensity (``edit(intensity=None)``): ``test_int = 1`` (AttGAN v1 / AttGAN-PyTorch
default): the non-edited attributes stay at ±0.5, the edited ones become ±test_int
(:func:`.targets.attgan_test_code`). BatchNorm uses its running averages at test (TF
``is_training=False``), i.e. Lightning's eval mode.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import register
from .adversarial import AdversarialEditor
from .targets import SAMPLINGS, attgan_code, attgan_test_code, sample_targets


@register("attgan")
class AttGAN(AdversarialEditor):
    """AttGAN; networks ``G`` / ``D`` (``nets.G`` / ``nets.D``: kwargs of ``nets.attgan``, official names)."""

    encoding = "attgan"
    paper_test_intensity = 1.0

    def __init__(self, *args, thres_int: float = 0.5, target_sampling: str = "shuffle", **kwargs) -> None:
        if target_sampling not in SAMPLINGS:
            raise ValueError(f"target_sampling must be one of {SAMPLINGS}, got {target_sampling!r}")
        self.thres_int = float(thres_int)
        self.target_sampling = target_sampling
        super().__init__(*args, **kwargs)

    def targets(self, a: torch.Tensor, rng) -> torch.Tensor:
        """Training targets: the batch shuffled (paper) or one flip per sample (``flip_one``)."""
        return sample_targets(a, self.attrs, self.target_sampling, rng)

    def default_loss_weights(self) -> dict[str, float]:
        return {"lambda_rec": 100.0, "lambda_g_cls": 10.0, "lambda_d_cls": 1.0}

    def build_networks(self, nets):
        from ..nets.attgan import AttGANDiscriminator, AttGANGenerator

        return {"G": AttGANGenerator(**{**nets.get("G", {}), "n_attrs": self.n_attrs, "img_size": self.res}),
                "D": AttGANDiscriminator(**{**nets.get("D", {}), "n_attrs": self.n_attrs, "img_size": self.res})}

    # conditioning -------------------------------------------------------------------
    def train_codes(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(code for the edit a->b, code for the reconstruction a->a)."""
        return attgan_code(b, self.thres_int), attgan_code(a, self.thres_int)

    def test_code(self, src, tgt, intensity):
        return attgan_test_code(src, tgt, intensity, self.thres_int)

    def fake_and_rec(self, x, code_b, code_a):
        """Edit and reconstruction from one encoding (AttGAN-PyTorch ``mode='enc'/'dec'``)."""
        G = self.gen_net
        zs = G(x, mode="enc")
        return G(zs, code_b, mode="dec"), G(zs, code_a, mode="dec")

    # losses ---------------------------------------------------------------------------
    def d_loss(self, batch, rng):
        x, a = self.prep(batch["image"]), batch["attrs"].float()
        b = self.targets(a, rng)
        code_b, _ = self.train_codes(a, b)
        with torch.no_grad():  # the official code records this graph, then detaches it
            fake = self.generate(x, code_b.to(x.dtype))
        (real_adv, real_cls), (fake_adv, _) = self.d_real_fake(x, fake)  # one forward (IN/LN D)
        wd = real_adv.mean() - fake_adv.mean()
        gp = self.gradient_penalty(x, fake, rng)
        cls = F.binary_cross_entropy_with_logits(real_cls.float(), a)
        w = self.loss_weights
        loss = -wd + self.lambda_gp * gp + w["lambda_d_cls"] * cls
        return loss, {"d_loss": loss, "d_wd": wd, "d_gp": gp, "d_cls": cls}

    def g_loss(self, batch, rng):
        x, a = self.prep(batch["image"]), batch["attrs"].float()
        b = self.targets(a, rng)
        code_b, code_a = self.train_codes(a, b)
        fake, rec = self.fake_and_rec(x, code_b.to(x.dtype), code_a.to(x.dtype))
        fake_adv, fake_cls = self.dis_net(fake)
        adv = -fake_adv.mean()
        cls = F.binary_cross_entropy_with_logits(fake_cls.float(), b)
        rec_l1 = F.l1_loss(rec.float(), x.float())
        w = self.loss_weights
        loss = adv + w["lambda_g_cls"] * cls + w["lambda_rec"] * rec_l1
        return loss, {"g_loss": loss, "g_adv": adv, "g_cls": cls, "g_rec": rec_l1}

    def method_protocol(self):
        out = super().method_protocol()
        out["conditioning"] = "target code (2b-1)*thres_int, edited attrs ±test_int"
        return out
