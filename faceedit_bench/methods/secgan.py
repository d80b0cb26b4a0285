"""SeCGAN (Sun, Bhattarai, Chen, Kim; arXiv 2111.09298, CVPR-W 2022; implementations.md §6).

Four named networks (:mod:`faceedit_bench.nets.secgan`, appendix Tables 2-3): ``G_rgb`` /
``D_rgb`` (the RGB branch: the existing StarGAN or AttGAN networks, ``model.backbone``) and
``G_seg`` / ``D_seg`` (the semantic branch, the same backbone with a 12-channel one-hot mask in
and a 12-class Softmax out). Only ``G_rgb`` (its EMA copy when ``ema_decay`` is set) edits.

Conditioning (Sec. 3.1): both backbones get the difference vector ``y_diff = y_trg - y_src``
({-1, 0, 1}; :func:`.targets.stgan_train_diff` with thres_int 0.5), StarGAN's labels tiled onto
the input, AttGAN's injected in the decoder. Targets: the batch's labels shuffled, as the
original implementations (**[unverified]** in the paper). Test: ``intensity * (y_trg - y_src)``
on the edited columns (:func:`.targets.stgan_test_diff`; the paper has no test intensity, 1).

Losses (eqs. 1-16), identical in both branches:

- D (eqs. 1, 3 / 6, 8; 13, 15): ``E[D(fake)] - E[D(real)] + λ_gp GP + λ_d_cls BCE(D_cls(real), y_src)``;
  the semantic branch's real is ``s_in``, its fake ``ŝ_out = G_seg(s_in, y_diff)`` (probabilities).
- G (eqs. 2, 4, 5 / 7, 9, 10; 14, 16): ``-E[D(fake)] + λ_g_cls BCE(D_cls(fake), y_trg) + λ_rec rec
  + λ_sc L_sc``. Reconstruction with the zero vector, ``‖x - G_rgb(x, 0)‖₁`` (eq. 5: replaces
  StarGAN's cycle loss, Sec. 4.2) and the pixel-averaged cross-entropy of ``G_seg(s_in, 0)``
  against ``s_in`` (eq. 10).
- L_sc (Sec. 3.2) in both directions: eq. 11 trains G_rgb through the frozen parser P,
  ``-mean_ij onehot(ŝ_out) · log P(x_out)``; eq. 12 trains G_seg, ``-mean_ij onehot(P(x_out)) ·
  log ŝ_out``; λ_sc = 0.01 (Fig. 3's best). Each target is an argmax, so no gradient crosses.
- Weights (Sec. 4.3 "the original implementations' values", reference §6): StarGAN λ_cls 1 (G and
  D), λ_rec 10, λ_gp 10, its classification BCE summed over attributes / batch
  (``methods/stargan.py``); AttGAN λ_g_cls 10, λ_d_cls 1, λ_rec 100, λ_gp 10, BCE / L1 means.
  ``lambda_adv`` (1, not in the paper) scales the generators' adversarial terms, for ablations
  and the gradient tests.

Phases (Algorithm 1): ``D`` updates D_rgb and D_seg (one Adam over both) ``n_critic`` times (the
backbone's: 5), each on a fresh mini-batch; ``G`` updates G_rgb and G_seg once, on the mini-batch
(and targets) of the last D update ("with the same mini-batch from line 5";
``model.g_reuses_d_batch: false`` gives AttGAN-PyTorch's fresh batch). One phase per player
equals Algorithm 1's separate updates (17)-(20): the summed loss of the two branches decouples
(no gradient crosses between their parameters: L_sc's targets are argmaxes), both use the same
learning rate, and Adam is per parameter. Both branches see the same mini-batch (Sec. 3.3).

Parser P (``frozen_helpers``: ``method.model.helpers.parser`` or $FACEEDIT_PARSER_WEIGHTS): the
suite's 19-class BiSeNet, merged by name into SeCGAN's 12 classes
(:mod:`faceedit_bench.secgan_classes`; probabilities summed per class, log-probabilities by a
per-class logsumexp). ``s_in = onehot12(argmax P12(x))`` (the argmax of the merged 12-class
probabilities: what a 12-class parser, the paper's, answers) or, with ``model.seg_input:
labels``, the batch's ground-truth label maps merged to 12 (then ``needs = {"parts"}``); both are
recorded in :meth:`method_protocol`. P is frozen: gradients flow through it into G_rgb (eq. 11),
never into its weights; it is needed in training whenever ``λ_sc > 0`` (also with
``seg_input: labels``) and at inference only by the Concat arm with ``seg_input: parser``.

Arms (``model.arm``; variants of ``configs/method/secgan.yaml``, Table 1 rows): ``baseline``
(the difference-vector backbone with the zero-vector reconstruction, no semantic branch),
``concat`` (G_rgb's input is ``[x, s_in]``, 3 + 12 channels, no semantic branch) and ``secgan``.

Schedules: StarGAN 200k official iterations (= 40k of ours: one iteration is one G update after
5 D updates), batch 16, lr 1e-4 constant then linear to 0 over the second half (``linear``).
AttGAN: batch 32, lr 2e-4 constant for 100 epochs then **exponentially** to 2e-6
(``schedule: exponential``, ``final_lr_factor: 0.01``).

Data protocol: the paper centre-crops CelebA to 178 (``protocol.CROPS["center178"]``), recorded
here as ``paper_crop``; the crop used is the data config's, so the suite's common protocol stays
the default and paper parity is ``data.crop=center178`` on the command line (CelebA only;
SynthFaces and CelebA-HQ are not cropped).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from . import register
from .adversarial import AdversarialEditor
from .contract import EditResult
from .helpers import parse_log_probs, parse_probs, parser_helper
from .targets import shuffled_targets, stgan_test_diff, stgan_train_diff

BACKBONES = ("stargan", "attgan")
ARMS = ("baseline", "concat", "secgan")
SEG_INPUTS = ("parser", "labels")
#: loss weights of each backbone's original implementation (reference §6)
BACKBONE_WEIGHTS = {
    "stargan": {"lambda_g_cls": 1.0, "lambda_d_cls": 1.0, "lambda_rec": 10.0},
    "attgan": {"lambda_g_cls": 10.0, "lambda_d_cls": 1.0, "lambda_rec": 100.0},
}
#: training defaults of each backbone (Sec. 4.3); the config's ``train`` section sets them
BACKBONE_TRAIN = {"stargan": {"lr": 1e-4, "schedule": "linear"},
                  "attgan": {"lr": 2e-4, "schedule": "exponential", "final_lr_factor": 0.01}}


#: one colour per SeCGAN class (SECGAN_CLASSES order), for the edit grid's mask columns
MASK_COLOURS = ((230, 180, 150), (90, 50, 20), (30, 90, 200), (200, 200, 40), (240, 130, 100),
                (250, 0, 180), (200, 100, 60), (160, 20, 40), (230, 40, 60), (150, 120, 100),
                (60, 30, 10), (30, 30, 30))


def colour_labels(labels: torch.Tensor) -> torch.Tensor:
    """B x H x W SeCGAN class map -> B x 3 x H x W image in [-1, 1] (:data:`MASK_COLOURS`)."""
    lut = torch.tensor(MASK_COLOURS, dtype=torch.float32, device=labels.device) / 127.5 - 1
    return lut[labels.long()].permute(0, 3, 1, 2)


def _bce(logits: torch.Tensor, target: torch.Tensor, backbone: str) -> torch.Tensor:
    """Eqs. 3, 4, 8, 9 as the backbone's code reduces them (StarGAN: sum / batch; AttGAN: mean)."""
    if backbone == "stargan":
        from .stargan import stargan_cls_loss

        return stargan_cls_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits.float(), target)


@register("secgan")
class SeCGAN(AdversarialEditor):
    """SeCGAN / its Baseline / Concat on a StarGAN or AttGAN backbone; networks ``G_rgb``,
    ``D_rgb`` (+ ``G_seg``, ``D_seg`` for ``arm='secgan'``). ``backbone_nets[backbone]['G' | 'D']``:
    kwargs of the backbone's G / D shared by both branches; ``nets.<name>``: per-network extras."""

    encoding = "stgan"          # y_trg - y_src (= stgan_train_diff with thres_int 0.5)
    paper_test_intensity = 1.0
    ema_default = ("G_rgb",)
    inference_nets = ("G_rgb",)     # G_seg is not needed at inference (§3)
    paper_crop = "center178"

    def __init__(self, *args, backbone: str = "stargan", arm: str = "secgan",
                 seg_input: str = "parser", backbone_nets: dict | None = None,
                 g_reuses_d_batch: bool = True, **kwargs) -> None:
        for name, value, allowed in (("backbone", backbone, BACKBONES), ("arm", arm, ARMS),
                                     ("seg_input", seg_input, SEG_INPUTS)):
            if value not in allowed:
                raise ValueError(f"secgan: {name} must be one of {allowed}, got {value!r}")
        self.backbone, self.arm, self.seg_input = backbone, arm, seg_input
        self.backbone_nets = {k: {n: dict(v or {}) for n, v in (kw or {}).items()}
                              for k, kw in (backbone_nets or {}).items()}
        self.g_reuses_d_batch = bool(g_reuses_d_batch)
        self.thres_int = 0.5  # y_diff = (2b-1)/2 - (2a-1)/2 = b - a
        for k, v in BACKBONE_TRAIN[backbone].items():
            kwargs.setdefault(k, v)
        super().__init__(*args, **kwargs)
        #: ground-truth label maps are read only with seg_input=labels (checked before training)
        self.needs = frozenset({"parts"}) if seg_input == "labels" and arm != "baseline" else frozenset()
        self._last_target: tuple[torch.Tensor, torch.Tensor] | None = None
        self._seg_cache: tuple[torch.Tensor, torch.Tensor] | None = None

    # ----------------------------------------------------------------- declarations
    def default_loss_weights(self) -> dict[str, float]:
        return {**BACKBONE_WEIGHTS[self.backbone], "lambda_sc": 0.01, "lambda_adv": 1.0}

    def frozen_helpers(self):
        return {"parser": parser_helper()}

    @property
    def has_seg_branch(self) -> bool:
        return self.arm == "secgan"

    @property
    def uses_mask(self) -> bool:
        """Whether training needs s_in (the semantic branch's or Concat's input)."""
        return self.arm != "baseline"

    def build_networks(self, nets):
        from ..nets import (AttGANDiscriminator, AttGANGenerator, StarGANDiscriminator,
                            StarGANGenerator)
        from ..nets.secgan import concat_generator, semantic_discriminator, semantic_generator

        shared = self.backbone_nets.get(self.backbone, {})
        if self.backbone == "stargan":
            g_fix, d_fix = {"c_dim": self.n_attrs}, {"c_dim": self.n_attrs, "image_size": self.res}
            g_cls, d_cls = StarGANGenerator, StarGANDiscriminator
        else:
            g_fix = d_fix = {"n_attrs": self.n_attrs, "img_size": self.res}
            g_cls, d_cls = AttGANGenerator, AttGANDiscriminator

        def kw(name: str, role: str) -> dict:
            return {**shared.get(role, {}), **nets.get(name, {}), **(g_fix if role == "G" else d_fix)}

        out = {"G_rgb": (concat_generator(self.backbone, **kw("G_rgb", "G")) if self.arm == "concat"
                         else g_cls(**kw("G_rgb", "G"))),
               "D_rgb": d_cls(**kw("D_rgb", "D"))}
        if self.has_seg_branch:
            out["G_seg"] = semantic_generator(self.backbone, **kw("G_seg", "G"))
            out["D_seg"] = semantic_discriminator(self.backbone, **kw("D_seg", "D"))
        return out

    def phases(self):
        from .contract import Phase

        seg = self.has_seg_branch
        critics = ("D_rgb", "D_seg") if seg else ("D_rgb",)
        generators = ("G_rgb", "G_seg") if seg else ("G_rgb",)
        return [Phase("D", critics, "d_loss", repeats=self.n_critic, lr=self.lr_d),    # (17), (18)
                Phase("G", generators, "g_loss", reuse_batch=self.g_reuses_d_batch,   # (19), (20)
                      lr=self.lr_g)]

    # ----------------------------------------------------------------- conditioning and masks
    def train_code(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return stgan_train_diff(src, tgt, self.thres_int)

    def test_code(self, src, tgt, intensity):
        return stgan_test_diff(src, tgt, intensity, self.thres_int)

    def parser_probs_12(self, images: torch.Tensor) -> torch.Tensor:
        """P(x) merged to SeCGAN's 12 classes (B x 12 x H x W), differentiable in ``images``."""
        from ..secgan_classes import merge_probs_to_secgan

        return merge_probs_to_secgan(parse_probs(self.helper("parser"), images))

    def parser_log_probs_12(self, images: torch.Tensor) -> torch.Tensor:
        """log P12(x): per-class logsumexp of the 19 log-probabilities (finite where sums underflow)."""
        from ..secgan_classes import merge_log_probs_to_secgan

        return merge_log_probs_to_secgan(parse_log_probs(self.helper("parser"), images))

    def seg_labels(self, images: torch.Tensor, parts: torch.Tensor | None) -> torch.Tensor:
        """The 12-class label map of s_in (B x H x W long): argmax P12(x), or the label maps."""
        from ..secgan_classes import merge_to_secgan

        if self.seg_input == "labels":
            if parts is None:
                raise ValueError("secgan: seg_input='labels' needs the batch's label maps (parts); "
                                 "pass parts= to edit, or use seg_input='parser' with a parser file")
            return merge_to_secgan(parts.to(images.device))
        with torch.no_grad():
            return self.parser_probs_12(images).argmax(1)

    def seg_input_of(self, batch: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels, one-hot s_in) of a training chunk; the G update's reused chunk is parsed once."""
        from ..secgan_classes import one_hot_12

        cache = self._seg_cache
        if cache is not None and cache[0] is batch["image"]:
            labels = cache[1]
        else:
            labels = self.seg_labels(x, batch.get("parts"))
            self._seg_cache = (batch["image"], labels)
        return labels, one_hot_12(labels, x.dtype)

    def rgb_input(self, x: torch.Tensor, s_in: torch.Tensor | None) -> torch.Tensor:
        """G_rgb's input: ``x``, or ``[x, s_in]`` for the Concat arm (Sec. 4.5)."""
        return torch.cat([x, s_in], 1) if self.arm == "concat" else x

    def fake_and_rec(self, name: str, x_in: torch.Tensor, code: torch.Tensor):
        """(G(x_in, code), G(x_in, 0)) of network ``name``; AttGAN encodes once."""
        g, zero = self.net(name), torch.zeros_like(code)
        if self.backbone == "attgan":
            zs = g(x_in, mode="enc")
            return g(zs, code, mode="dec"), g(zs, zero, mode="dec")
        return g(x_in, code), g(x_in, zero)

    def _targets(self, batch: dict, attrs: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        last, self._last_target = self._last_target, None
        if last is not None and last[0] is batch["image"]:
            return last[1]  # the G update on the last D update's batch reuses its targets
        return shuffled_targets(attrs, rng)

    # ----------------------------------------------------------------- losses
    def _critic(self, name: str, real, fake, src, rng, tag: str):
        """Eq. 1 (6) + λ_d_cls eq. 3 (8) of critic ``name``."""
        (real_adv, real_cls), (fake_adv, _) = self.d_real_fake(real, fake, name)
        wd = real_adv.mean() - fake_adv.mean()
        gp = self.gradient_penalty(real, fake, rng, name=name)
        cls = _bce(real_cls, src, self.backbone)
        loss = -wd + self.lambda_gp * gp + self.loss_weights["lambda_d_cls"] * cls
        return loss, {f"{tag}_wd": wd, f"{tag}_gp": gp, f"{tag}_cls": cls}

    def d_loss(self, batch, rng):
        """Eqs. 13 + 15: both critics on the same mini-batch and targets."""
        x, a = self.prep(batch["image"]), batch["attrs"].float()
        b = shuffled_targets(a, rng)
        self._last_target = (batch["image"], b)
        y = self.train_code(a, b).to(x.dtype)
        labels, s_in = self.seg_input_of(batch, x) if self.uses_mask else (None, None)
        with torch.no_grad():
            fake = self.net("G_rgb")(self.rgb_input(x, s_in), y)
        loss, logs = self._critic("D_rgb", x, fake, a, rng, "d")
        if self.has_seg_branch:
            with torch.no_grad():
                s_fake = self.net("G_seg")(s_in, y).exp().to(s_in.dtype)
            loss_seg, logs_seg = self._critic("D_seg", s_in, s_fake, a, rng, "d_seg")
            loss = loss + loss_seg
            logs.update(logs_seg)
        return loss, {"d_loss": loss, **logs}

    def g_loss(self, batch, rng):
        """Eqs. 14 + 16 (with eqs. 11 / 12 when λ_sc > 0)."""
        from ..nets.secgan import sc_loss_rgb, sc_loss_seg, seg_reconstruction_loss

        x, a = self.prep(batch["image"]), batch["attrs"].float()
        b = self._targets(batch, a, rng)
        y = self.train_code(a, b).to(x.dtype)
        w = self.loss_weights
        labels, s_in = self.seg_input_of(batch, x) if self.uses_mask else (None, None)
        fake, rec = self.fake_and_rec("G_rgb", self.rgb_input(x, s_in), y)
        fake_adv, fake_cls = self.net("D_rgb")(fake)
        adv = -fake_adv.mean()
        cls = _bce(fake_cls, b, self.backbone)
        rec_l1 = F.l1_loss(rec.float(), x.float())
        loss = w["lambda_adv"] * adv + w["lambda_g_cls"] * cls + w["lambda_rec"] * rec_l1
        logs = {"g_adv": adv, "g_cls": cls, "g_rec": rec_l1}
        if self.has_seg_branch:
            s_out, s_rec = self.fake_and_rec("G_seg", s_in, y)       # log ŝ_out, log G_seg(s_in, 0)
            seg_adv_out, seg_cls_out = self.net("D_seg")(s_out.exp().to(s_in.dtype))
            seg_adv = -seg_adv_out.mean()
            seg_cls = _bce(seg_cls_out, b, self.backbone)
            seg_rec = seg_reconstruction_loss(s_rec, labels)           # eq. 10
            loss = loss + w["lambda_adv"] * seg_adv + w["lambda_g_cls"] * seg_cls + w["lambda_rec"] * seg_rec
            logs.update({"g_seg_adv": seg_adv, "g_seg_cls": seg_cls, "g_seg_rec": seg_rec})
            if w["lambda_sc"] > 0:  # a zero weight needs no parser
                p_log = self.parser_log_probs_12(fake)                 # through frozen P into G_rgb
                sc_rgb = sc_loss_rgb(p_log, s_out)                     # eq. 11 (target argmax ŝ_out)
                sc_seg = sc_loss_seg(s_out, p_log)                     # eq. 12 (target argmax P(x_out))
                loss = loss + w["lambda_sc"] * (sc_rgb + sc_seg)
                logs.update({"g_sc_rgb": sc_rgb, "g_sc_seg": sc_seg})
        return loss, {"g_loss": loss, **logs}

    # ----------------------------------------------------------------- inference
    def generate(self, images, code, net=None):
        return (net if net is not None else self.net("G_rgb"))(images, code)

    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None, *, attr_index=None):
        """G_rgb (its EMA copy when kept) on ``y_diff``; the Concat arm also on s_in (parser or
        ``parts``, as in training)."""
        self.check_edit_inputs(images, src_attrs, tgt_attrs)
        k = self.test_intensity if intensity is None else float(intensity)
        code = self.test_code(src_attrs.float(), tgt_attrs.float(), k).to(images.dtype)
        x = self.prep(images)
        s_in = None
        if self.arm == "concat":
            from ..secgan_classes import one_hot_12

            s_in = one_hot_12(self.seg_labels(x, parts), x.dtype)
        out = self.generate(self.rgb_input(x, s_in), code, self.inference("G_rgb"))
        return EditResult(out.clamp(-1, 1))

    @torch.no_grad()
    @torch.no_grad()
    def grid_columns(self, batch: dict):
        """The default columns; for the SeCGAN arm also s_in and G_seg's translated mask of each
        flip (argmax, coloured; Fig. 5's last columns). Skipped when s_in cannot be made (no
        parser file for ``seg_input='parser'``)."""
        from ..protocol import single_flip_targets
        from ..secgan_classes import one_hot_12

        cols, names = super().grid_columns(batch)
        if not self.has_seg_branch:
            return cols, names
        x, src = batch["image"].to(self.device), batch["attrs"].float().to(self.device)
        try:
            labels = self.seg_labels(x, batch.get("parts"))
        except (FileNotFoundError, ValueError):
            return cols, names
        s_in, g = one_hot_12(labels, x.dtype), self.G_seg
        cols.append(colour_labels(labels))
        names.append("mask in")
        for k, tgt in enumerate(single_flip_targets(src, self.attrs)):
            code = self.test_code(src, tgt, self.test_intensity).to(x.dtype)
            cols.append(colour_labels(g(s_in, code).argmax(1)))
            names.append(f"mask {self.attrs[k]}")
        return cols, names

    def method_protocol(self) -> dict[str, Any]:
        out = super().method_protocol()
        out.update({
            "backbone": self.backbone, "arm": self.arm,
            "seg_input": (None if not self.uses_mask else
                          "onehot12(argmax merged P(x))" if self.seg_input == "parser"
                          else "ground-truth label maps merged to 12"),
            "conditioning": "y_diff = y_trg - y_src (both backbones)",
            "reconstruction": "|x - G_rgb(x, 0)|_1 (eq. 5)" + ("; CE of G_seg(s_in, 0) (eq. 10)"
                                                                 if self.has_seg_branch else ""),
            "loss_weights": dict(self.loss_weights), "lambda_gp": self.lambda_gp,
            "g_reuses_d_batch": self.g_reuses_d_batch, "paper_crop": self.paper_crop,
            "schedule": self.schedule,
        })
        if self.uses_mask:
            from ..secgan_classes import SECGAN_MERGE

            out["secgan_classes"] = {k: list(v) for k, v in SECGAN_MERGE.items()}
        return out
