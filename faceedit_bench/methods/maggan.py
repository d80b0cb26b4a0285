"""MagGAN (Wei et al., ACCV 2020, arXiv 2010.01424): STGAN with mask-guided losses and conditioning.

No public code exists (implementations.md §5); everything cites ``shared/papers/maggan.txt``.
Built on :class:`.stgan.STGAN` (difference attributes ``att_diff = b' - a'``, its encodings of
:mod:`.targets`, its test intensity 2 of the released STGAN ``test.py``; MagGAN states none).

Networks (``nets``): ``G`` = :class:`..nets.maggan.MagGANGenerator` (Table 5: 6 layers, 5 STUs,
SPADE decoder of Table 4; ``model.spade: false`` = "MagGAN w/o SP", DeConv-BN-ReLU with the
attribute tensor concatenated) or, with ``model.generator: stgan``, the STGAN generator of
:mod:`..nets.stgan` with ``n_layers`` 6 (Table 3 rows (i)-(iii): STGAN at 6 layers, Appendix A);
``D`` = :class:`..nets.maggan.MultiLevelDiscriminator` (Table 6, eq. 14) for every variant (the
paper unifies the STGAN and PatchGAN discriminators in Table 6: level 0 "is equal to single
vanilla discriminator"); level i judges the image at ``base_res * 2**i`` (paper: 256 / 512 /
1024 for 1 / 2 / 3 levels; base_res = min(256, res) unless configured), the generator's
full-resolution output downsampled (box filter) for the coarser levels. ``S`` (only with
``model.segmentation: branch``, "MagGAN+Seg", Table 3 (vii)): an FCN head on G's encoder
features (one 1x1 scoring conv per encoder level, bilinearly upsampled to the image and summed,
FCN's skip fusion), trained in the G phase with cross-entropy against the batch's label maps; its
(detached) softmax replaces the stored masks everywhere.

Masks (§3.1, §4): soft part masks ``parts.part_masks(parts, smooth=mask_smooth)`` (a box blur of
the stored label maps standing in for the parser probabilities), on the device, computed at
``mask_res`` (256: the paper stores its masks at 256 x 256) and resized bilinearly to the image.
Eq. 12 conditioning (``model.conditioning: mask``): channel i of the spatial attribute tensor
is ``att_diff_i * M_i^{sgn(att_diff_i)}`` with ``M^±`` of ``parts.ar_region_masks`` (AR+ where att_diff_i > 0, AR- where < 0, zero where 0);
``conditioning: uniform`` tiles ``att_diff`` (STGAN's Att_diff, the ablations). The preserve mask
of eqs. 4-5 is :func:`..metrics.mre.preserve_mask`, the same function the MRE metric uses.

Phases (Phase lr): ``D`` (``n_critic`` updates, lr 2e-4) then ``G`` (lr 1e-4; §A, Fig. 14),
Adam β (0.5, 0.999) and the step schedule as STGAN (unstated in the paper).

Losses. D (eq. 14): ``L_D = 1/P Σ_i (L_adv^i + L_att^i)``, ``L_adv^i`` WGAN-GP (eq. 7, λ_gp 10,
the penalty of level i taken wrt level i's own input, interpolates drawn once at full
resolution), ``L_att^i`` = λ_d_cls (1) · BCE(D_att^i(x), a) (eq. 9; STGAN's sigmoid cross-entropy).
G (eq. 11): ``L_G = L_gan + λ1 L_R + λ2 L_cls + λ3 L_mre`` with λ1 = 100 (``lambda_rec``), λ2 = 10
(``lambda_g_cls``), λ3 = 200 (``lambda_mre``; 0 = "MagGAN w/o L_mre", Table 7 sweeps 0/100/200/
400); ``L_gan`` eq. 8 and ``L_cls`` eq. 10 averaged over the levels as eq. 14 does for D;
``L_R = C L_rec + (1 - C) L_cycle`` (Appendix A; ``recon_mix`` C = 1: eq. 6 ``‖G(x, 0) - x‖₁``;
C = 0: "STGAN+cycle", ``‖G(G(x, d), -d) - x‖₁``); ``L_mre`` eq. 3 ``‖M(d, x) (x - G(x, d))‖₁``
(element means on [-1, 1] images, as STGAN's L1s, so λ3 compares with λ1 as in the paper);
``λ_seg`` (1, unstated) · CE of the segmentation branch.

Output blend (eq. 13, ``model.blend: true``, Table 8 "MagGAN w/ blend"): ``x̂ = M x + (1 - M) G``
with the preserve mask of the edit, in training and at test. Choice: rows whose ``att_diff`` is
zero (reconstructions) are not blended — eq. 13 would return ``x`` itself there (``M = 1``), which
zeroes L_rec and makes the reconstruction PSNR infinite, while the paper reports 37.70 dB.

Paper-vs-code choices (no code exists): soft masks by blurring label maps (``mask_smooth``);
STGAN test intensity 2 (``eval.test_intensity`` overrides); per-level GP; the G's adversarial
and attribute terms averaged over levels; the STGAN variants use Table 6's D; the segmentation
branch's masks are detached (with gradients, L_mre could shrink by marking every pixel as
editable); CE supervision of the branch by the stored label maps (the paper does not say what
supervises its FCN branch); CPU resolutions (configs/method/maggan.yaml): widths 1/4, one D level
with base_res = res and a D trunk shortened so it ends at 4 x 4 as at 256 (64 px: channel_mults
(1, 2, 4, 16)), and at 32 px (test size) a 5-layer / 4-STU G ("genarch54", Fig. 13).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..metrics.mre import masked_l1, preserve_mask
from ..parts import AR_TABLE, NUM_PARTS, ar_region_masks, ar_table_hash, part_masks, validate_ar_table
from . import register
from .contract import EditResult, Phase
from .stgan import STGAN
from .targets import shuffled_targets, stgan_test_diff, stgan_train_diff

GENERATORS = ("maggan", "stgan")
CONDITIONINGS = ("mask", "uniform")
SEGMENTATIONS = ("parts", "branch")


class FCNHead(nn.Module):
    """MagGAN+Seg's segmentation branch on G's encoder features (FCN skip fusion): one 1x1 conv
    to ``n_classes`` per feature, each upsampled bilinearly to ``size`` and summed (logits)."""

    def __init__(self, channels: list[int], n_classes: int = NUM_PARTS) -> None:
        super().__init__()
        self.score = nn.ModuleList(nn.Conv2d(c, n_classes, 1) for c in channels)

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        return sum(F.interpolate(conv(f), size=size, mode="bilinear", align_corners=False)
                   for conv, f in zip(self.score, feats))


def mask_conditioning(att_diff: torch.Tensor, masks: torch.Tensor, attrs, table: Mapping = AR_TABLE
                      ) -> torch.Tensor:
    """Eq. 12: ``Att_diff^(i) = att_diff_i * M_i^{sgn(att_diff_i)}`` (B x A x H x W); ``masks`` the
    B x 19 x H x W part masks, ``M^±`` their AR+ / AR- regions (``parts.ar_region_masks``)."""
    plus, minus = ar_region_masks(masks, attrs, table)
    d = att_diff.to(masks.dtype)[:, :, None, None]
    return d.clamp(min=0) * plus + d.clamp(max=0) * minus


@register("maggan")
class MagGAN(STGAN):
    """MagGAN; networks ``G``, ``D`` (and ``S`` for MagGAN+Seg). Needs the batches' label maps."""

    encoding = "stgan"
    paper_test_intensity = 2.0
    needs = frozenset({"parts"})
    ema_default = ("G", "S")

    def __init__(self, *args, generator: str = "maggan", spade: bool = True,
                 conditioning: str = "mask", mask_smooth: int = 2, mask_res: int | None = 256,
                 blend: bool = False,
                 recon_mix: float = 1.0, segmentation: str = "parts",
                 ar_table: Mapping | None = None, **kwargs) -> None:
        for name, value, allowed in (("generator", generator, GENERATORS),
                                     ("conditioning", conditioning, CONDITIONINGS),
                                     ("segmentation", segmentation, SEGMENTATIONS)):
            if value not in allowed:
                raise ValueError(f"maggan: {name} {value!r}; expected one of {allowed}")
        if segmentation == "branch" and generator != "maggan":
            raise ValueError("maggan: segmentation 'branch' sits on the MagGAN generator's encoder; "
                             "set generator: maggan")
        if not 0.0 <= float(recon_mix) <= 1.0:
            raise ValueError(f"maggan: recon_mix (Appendix A's C) must be in [0, 1], got {recon_mix}")
        self.generator, self.spade, self.conditioning = generator, bool(spade), conditioning
        self.mask_smooth, self.blend, self.recon_mix = int(mask_smooth), bool(blend), float(recon_mix)
        self.mask_res = int(mask_res) if mask_res else None
        self.seg_branch = segmentation == "branch"
        #: the segmentation branch predicts the conditioning masks at test time too
        self.inference_nets = ("G", "S") if self.seg_branch else ("G",)
        self.ar_table = validate_ar_table(ar_table) if ar_table else AR_TABLE
        super().__init__(*args, **kwargs)

    def default_loss_weights(self) -> dict[str, float]:
        return {**super().default_loss_weights(), "lambda_mre": 200.0, "lambda_seg": 1.0}

    # ----------------------------------------------------------------- networks and phases
    def build_networks(self, nets):
        from ..nets.maggan import MagGANGenerator, MultiLevelDiscriminator
        from ..nets.stgan import STGANGenerator

        g = dict(nets.get("G", {}))
        if self.generator == "maggan":
            G = MagGANGenerator(**{**g, "n_attrs": self.n_attrs, "use_spade": self.spade})
        else:
            dim = g.pop("dim", 64)
            G = STGANGenerator(**{"enc_dim": dim, "dec_dim": dim, "stu_dim": dim, "n_layers": 6, **g,
                                  "n_attrs": self.n_attrs, "img_size": self.res})
        d = dict(nets.get("D", {}))
        base = int(d.pop("base_res", None) or min(256, self.res))
        levels = math.log2(self.res / base)
        if levels != int(levels) or levels < 0:
            raise ValueError(f"maggan: res {self.res} must be base_res {base} times a power of two")
        d.setdefault("n_levels", int(levels) + 1)
        out = {"G": G, "D": MultiLevelDiscriminator(base_res=base, **d, n_attrs=self.n_attrs)}
        if self.seg_branch:
            out["S"] = FCNHead(G.enc_channels, **nets.get("S", {}))
        return out

    def phases(self) -> list[Phase]:
        g_nets = ("G", "S") if self.seg_branch else ("G",)
        return [Phase("D", ("D",), "d_loss", repeats=self.n_critic, lr=self.lr_d),
                Phase("G", g_nets, "g_loss", lr=self.lr_g)]

    # ----------------------------------------------------------------- masks and conditioning
    @property
    def masks_at_test(self) -> bool:
        """Whether ``edit`` needs the label maps (mask conditioning or the blend, stored masks)."""
        mask_cond = self.generator == "maggan" and self.conditioning == "mask"
        return not self.seg_branch and (mask_cond or self.blend)

    def stored_masks(self, parts: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Soft part masks of the label maps at the images' size: ``parts.part_masks(labels,
        smooth=mask_smooth)`` of the maps at ``mask_res`` (§4: masks stored at 256 x 256; larger
        maps are subsampled, nearest), bilinearly resized to the images when they differ."""
        labels = parts.to(like.device)
        r = min(self.mask_res, labels.shape[-1]) if self.mask_res else labels.shape[-1]
        if r != labels.shape[-1]:
            labels = F.interpolate(labels[:, None].float(), size=(r, r), mode="nearest")[:, 0].long()
        masks = part_masks(labels, like.dtype, smooth=self.mask_smooth)
        if tuple(masks.shape[2:]) != tuple(like.shape[2:]):
            masks = F.interpolate(masks, size=like.shape[2:], mode="bilinear", align_corners=False)
        return masks

    def seg_logits(self, zs: list[torch.Tensor], size, net: nn.Module | None = None) -> torch.Tensor:
        return (net if net is not None else self.net("S"))(zs, tuple(size))

    def attr_map(self, att_diff: torch.Tensor, masks: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """The spatial attribute tensor the SPADEs see: eq. 12, or uniform tiling (1 x 1, resized
        by the generator)."""
        if self.conditioning == "uniform" or masks is None:
            return att_diff.to(like.dtype)[:, :, None, None]
        return mask_conditioning(att_diff, masks, self.attrs, self.ar_table).to(like.dtype)

    def keep_mask(self, att_diff: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Eq. 5's preserve mask M(att_diff, x), B x H x W (shared with the MRE metric)."""
        return preserve_mask(masks.float(), att_diff.float(), self.attrs, self.ar_table)

    def synthesize_edit(self, x: torch.Tensor, att_diff: torch.Tensor, masks: torch.Tensor | None,
                        net: nn.Module | None = None, zs: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``G(x, att_diff)`` with the configured conditioning, then eq. 13's blend when enabled."""
        G = net if net is not None else self.gen_net
        code = att_diff.to(x.dtype)
        if self.generator == "stgan":
            out = G(x, code)
        else:
            amap = self.attr_map(att_diff, masks, x)
            out = G(zs, code, amap, mode="dec") if zs is not None else G(x, code, amap)
        if self.blend and masks is not None:
            keep = self.keep_mask(att_diff, masks)
            keep = keep * (att_diff != 0).any(1).to(keep.dtype)[:, None, None]  # no blend at d = 0
            keep = keep.unsqueeze(1).to(out.dtype)
            out = keep * x + (1 - keep) * out
        return out

    # ----------------------------------------------------------------- losses
    def level_gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor,
                               rng: torch.Generator) -> torch.Tensor:
        """Mean over levels of WGAN-GP (eq. 7) of level i's D wrt its own input; the interpolates
        ``real + α (fake - real)`` (α ~ U(0, 1) per sample) are drawn once at full resolution
        and downsampled (linear, so equal to interpolating the downsampled images)."""
        D = self.D  # uncompiled: double backward
        alpha = self.rand(real.size(0), 1, 1, 1, rng=rng, like=real)
        x_hat = real + alpha * (fake.detach() - real)
        gps = []
        for i, xi in enumerate(D.level_inputs(x_hat)):
            xi = xi.detach().requires_grad_(True)
            disc = D.discs[0 if D.share_weights else i]
            adv = disc.forward_adv(xi, 2**i)
            (grad,) = torch.autograd.grad(adv.float().sum(), xi, create_graph=True)
            gps.append(((grad.float().flatten(1).norm(2, dim=1) - 1.0) ** 2).mean())
        return torch.stack(gps).mean()

    def d_loss(self, batch, rng):
        x, a = self.prep(batch["image"]), batch["attrs"].float()
        b = shuffled_targets(a, rng)
        d = stgan_train_diff(a, b, self.thres_int)
        with torch.no_grad():
            masks, zs = self._train_masks(x, batch)
            fake = self.synthesize_edit(x, d, masks, zs=zs)
        n = x.size(0)
        outs = self.dis_net(torch.cat([x, fake]))  # IN D: per sample, one batched forward
        wd = torch.stack([adv[:n].mean() - adv[n:].mean() for adv, _ in outs]).mean()
        cls = torch.stack([F.binary_cross_entropy_with_logits(c[:n].float(), a) for _, c in outs]).mean()
        gp = self.level_gradient_penalty(x, fake, rng)
        loss = -wd + self.lambda_gp * gp + self.loss_weights["lambda_d_cls"] * cls
        return loss, {"d_loss": loss, "d_wd": wd, "d_gp": gp, "d_cls": cls}

    def _train_masks(self, x: torch.Tensor, batch: dict, with_seg_loss: bool = False):
        """(masks, encoder features or None[, segmentation CE]) for a training chunk."""
        zs = self.gen_net(x, mode="enc") if self.generator == "maggan" else None
        seg = None
        if self.seg_branch:
            logits = self.seg_logits(zs, x.shape[2:])
            masks = logits.float().softmax(1).detach().to(x.dtype)
            if with_seg_loss:
                seg = F.cross_entropy(logits.float(), batch["parts"].to(x.device).long())
        else:
            masks = self.stored_masks(batch["parts"], x)
        return (masks, zs, seg) if with_seg_loss else (masks, zs)

    def g_loss(self, batch, rng):
        x, a = self.prep(batch["image"]), batch["attrs"].float()
        b = shuffled_targets(a, rng)
        d = stgan_train_diff(a, b, self.thres_int)
        masks, zs, seg = self._train_masks(x, batch, with_seg_loss=True)
        fake = self.synthesize_edit(x, d, masks, zs=zs)
        w, C = self.loss_weights, self.recon_mix
        logs: dict[str, torch.Tensor] = {}
        outs = self.dis_net(fake)
        adv = torch.stack([-o.mean() for o, _ in outs]).mean()
        cls = torch.stack([F.binary_cross_entropy_with_logits(c.float(), b) for _, c in outs]).mean()
        recon = x.new_zeros(())
        if C > 0:
            rec = self.synthesize_edit(x, torch.zeros_like(d), masks, zs=zs)
            l_rec = F.l1_loss(rec.float(), x.float())
            recon = recon + C * l_rec
            logs["g_rec"] = l_rec
        if C < 1:
            cyc = self.synthesize_edit(fake, -d, masks)
            l_cyc = F.l1_loss(cyc.float(), x.float())
            recon = recon + (1 - C) * l_cyc
            logs["g_cycle"] = l_cyc
        loss = adv + w["lambda_rec"] * recon + w["lambda_g_cls"] * cls
        if w["lambda_mre"] > 0:
            mre = masked_l1(fake.float(), x.float(), self.keep_mask(d, masks)).mean()
            loss = loss + w["lambda_mre"] * mre
            logs["g_mre"] = mre
        if seg is not None:
            loss = loss + w["lambda_seg"] * seg
            logs["g_seg"] = seg
        logs.update({"g_loss": loss, "g_adv": adv, "g_cls": cls})
        return loss, logs

    # ----------------------------------------------------------------- inference
    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None, *, attr_index=None):
        """Edit with the EMA G if kept; the label maps ``parts`` give the masks (eq. 12 / 13)
        unless the segmentation branch predicts them (returned as extras ``segmentation``)."""
        self.check_edit_inputs(images, src_attrs, tgt_attrs)
        k = self.test_intensity if intensity is None else float(intensity)
        d = stgan_test_diff(src_attrs.float(), tgt_attrs.float(), k, self.thres_int)
        x = self.prep(images)
        G = self.inference_net
        zs, masks, extras = None, None, {}
        if self.seg_branch:
            zs = G(x, mode="enc")
            masks = self.seg_logits(zs, x.shape[2:], self.inference("S")).float().softmax(1).to(x.dtype)
            extras["segmentation"] = masks
        elif self.masks_at_test:
            if parts is None:
                raise ValueError(f"maggan{'/' + self.variant if self.variant else ''}: edit needs the "
                                 "label maps `parts` (mask-guided conditioning / blend, eqs. 12-13)")
            masks = self.stored_masks(parts, x)
        out = self.synthesize_edit(x, d, masks, G, zs)
        return EditResult(out.clamp(-1, 1), extras)

    def method_protocol(self) -> dict[str, Any]:
        out = super().method_protocol()
        out.update({
            "conditioning": (f"eq. 12 mask-guided att_diff (part_masks smooth={self.mask_smooth} "
                             f"at {self.mask_res or 'image'} px)"
                             if self.conditioning == "mask" and self.generator == "maggan" else
                             "uniform tiling of att_diff" if self.generator == "maggan" else
                             "STGAN difference vector"),
            "generator": self.generator, "spade": self.spade if self.generator == "maggan" else None,
            "blend": self.blend, "recon_mix": self.recon_mix,
            "segmentation": "branch" if self.seg_branch else "parts",
            "d_levels": self.D.n_levels, "d_base_res": self.D.base_res,
            "loss_weights": dict(self.loss_weights), "ar_table_hash": ar_table_hash(self.ar_table),
        })
        return out
