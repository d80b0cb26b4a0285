"""Mask-Guided Portrait Editing (Gu et al., CVPR 2019) on the shared adversarial base: ``mgpe``.

A mask-to-face model (track ``mask_to_face``; needs ``parts``): ``synthesize(target_parts,
images, parts, component_images=None, component_parts=None)`` draws the face of the target label
map with the components (eyes, mouth, skin, hair) of ``component_images`` (default: ``images``)
and the background of ``images``. Networks (:mod:`faceedit_bench.nets.mgpe`): ``G`` the
:class:`~faceedit_bench.nets.mgpe.MGPEGenerator` (local embedding + mask-guided generator +
background fusion), ``D`` the multi-scale conditional PatchGAN on reconstructions, ``D2`` the same
on component transfers (official: ``netD`` / ``netD2``); a frozen face parser
(:func:`.helpers.parser_helper`) for the parsing loss when ``parsing_loss`` is on.

Losses (§3.2), with ``x`` a training face, ``m`` its label map, ``x̂ = G(m, x)`` its reconstruction
(paired) and ``ŷ`` the transfer: the components of another face of the batch (a derangement,
``LocalCodes.select``) drawn on ``m`` over the background of ``x`` (unpaired):

- eq. 1 ``L_local = Σ_i ½ mean((x_i − G_local^i(E_local^i(x_i)))²)`` over the five component
  inputs (crops / masked images of ``crop_components``);
- eq. 2 ``L_global = ½ mean((x̂ − x)²)`` (``global_region_weights``: the official region-weighted
  form ``Σ_k w_k mean(((x̂ − x) m_k)²)``, eyes 10, skin 5, hair 5, mouth 10, background 10);
- eq. 3 D: ``Σ_scales BCE(D(x, m), 1) + BCE(D(fake, m), 0)`` (patch means; vanilla GAN, the
  official ``--no_lsgan``; logits, no double sigmoid), D on ``x̂``, D2 on ``ŷ``;
- eq. 4-6 ``L_GD = Σ_scales BCE(D(fake, m), 1) + λ_FM L_FM`` with eq. 5 the feature matching of
  the last hidden D layer (``feature_matching_loss``; ``fm_distance`` ``'l2'`` = the paper's
  ½||·||², ``'l1'`` the code's), λ_FM = 10 (official ``lambda_feat``; the paper gives none);
- eq. 8 ``L_GP``: pixel cross-entropy of the frozen parser's probabilities on the generated face
  against the target map (``parsing_class_weights``: the official Helen class weights
  [0.2, 1, 5, 5, 5, 5, 3, 8, 8, 8, 1] remapped to the 19 classes by name, :data:`HELEN_CLASSES`).

Paper (default, eq. 9, §3.3): ``L_G = λ_local L_local + λ_global L_global + λ_GD L_GD + λ_GP L_GP``
with {10, 1, 1, 1}; "(1+1)" alternation: even iterations are paired (D steps on ``x̂``; G gets
every term on ``x̂``), odd iterations unpaired (D2 steps on ``ŷ``; λ_global and λ_FM are zero, so
G gets local + GAN through D2 + parsing on ``ŷ``). Variant ``official`` (``train.py``,
implementations.md §7): every iteration steps D on ``x̂`` and D2 on ``ŷ`` and G on
``a·(GAN_D(x̂) + 10 FM + 2 L2_image) + GAN_D2(ŷ) + 500 L_local + 10 L_P`` with ``a`` = 1 on
even iterations and 0 on odd ones, L2_image region-weighted, L_P class-weighted on ``x̂`` and
``ŷ`` (mean), FM as an L1. Phases: ``G`` then ``D`` (updating D and D2) on the same batch, D
judging the fakes of the G step detached (pix2pixHD's order: one G forward per iteration).

Paper vs code choices (the other is selectable): the loss weights and alternation (above;
``alternation: paper | official``); the parsing loss is optional (``parsing_loss``; the paper's
Table 2 row "w/o face parsing networks" is the variant ``no_parsing``); VAE embeddings
(official; ``nets.G.embedding: ae`` for the paper's plain auto-encoders); the KL term is never
added (official); the transfer pairs faces by a derangement (the official ``randperm`` may pair a
face with itself). 19 classes instead of Helen's 11: the component grouping is data
(``nets.G.component_parts``: skin = skin + brows + nose, mouth = mouth + lips, everything in no
component is background). **VGG-free**: the official mask-weighted VGG19 loss needs weights that
are not here (never fetched); ``nets.mgpe.masked_perceptual_loss`` is the hook, unused.
Optimiser: Adam 2e-4, β (0.5, 0.999); pix2pixHD schedule: 10 epochs constant + 45 linear decay.
Not implemented: Table 1's settings 1/2 (global embedding, pasted background).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..parts import NUM_PARTS, PART_INDEX, region_mask
from . import register
from .adversarial import AdversarialEditor
from .base import EditMethod
from .contract import EditResult, Phase

#: Helen's 11 labels (official ``--label_nc 11``, ids 0..10) -> the suite's 19 classes, by name
HELEN_CLASSES: dict[str, tuple[str, ...]] = {
    "background": ("background", "eye_g", "l_ear", "r_ear", "ear_r", "neck", "neck_l", "cloth", "hat"),
    "skin": ("skin",), "l_brow": ("l_brow",), "r_brow": ("r_brow",), "l_eye": ("l_eye",),
    "r_eye": ("r_eye",), "nose": ("nose",), "u_lip": ("u_lip",), "mouth": ("mouth",),
    "l_lip": ("l_lip",), "hair": ("hair",),
}
ALTERNATIONS = ("paper", "official")


def class_weights_19(weights: Mapping[str, float]) -> torch.Tensor:
    """Per-class weights keyed by Helen class name -> a 19-vector (every 19-class name once)."""
    bad = sorted(set(weights) - set(HELEN_CLASSES))
    if bad:
        raise ValueError(f"parsing_class_weights: unknown Helen classes {bad}; known {sorted(HELEN_CLASSES)}")
    out = torch.ones(NUM_PARTS)
    for helen, w in weights.items():
        for name in HELEN_CLASSES[helen]:
            out[PART_INDEX[name]] = float(w)
    return out


def derangement(n: int, rng: torch.Generator) -> torch.Tensor:
    """Index ``(i + s) mod n`` with s uniform in 1..n-1: no face keeps its own components."""
    if n < 2:
        return torch.zeros(n, dtype=torch.long)
    s = int(torch.randint(1, n, (1,), generator=rng))
    return (torch.arange(n) + s) % n


@register("mgpe")
class MGPE(AdversarialEditor):
    """Gu et al.; networks ``G`` / ``D`` / ``D2`` (``nets.*``: kwargs of ``nets.mgpe``)."""

    tracks = ("mask_to_face",)
    needs = frozenset({"parts"})

    def __init__(self, *args, parsing_loss: bool = True, alternation: str = "paper",
                 fm_layers: str = "last", fm_distance: str = "l2",
                 global_region_weights: Mapping[str, float] | None = None,
                 parsing_class_weights: Mapping[str, float] | None = None,
                 parsing_on: str = "step", **kwargs) -> None:
        if alternation not in ALTERNATIONS:
            raise ValueError(f"alternation must be one of {ALTERNATIONS}, got {alternation!r}")
        if parsing_on not in ("step", "both"):
            raise ValueError(f"parsing_on must be 'step' or 'both', got {parsing_on!r}")
        self.parsing_loss = bool(parsing_loss)
        helpers = kwargs.get("helpers") or {}
        #: the parser is declared when the loss uses it or a file is given (evaluation's parser)
        self._declares_parser = self.parsing_loss or bool(helpers.get("parser"))
        self.alternation, self.fm_layers, self.fm_distance = alternation, fm_layers, fm_distance
        self.parsing_on = parsing_on
        self.global_region_weights = dict(global_region_weights) if global_region_weights else None
        self.parsing_class_weights = dict(parsing_class_weights) if parsing_class_weights else None
        kwargs.setdefault("n_critic", 1)
        super().__init__(*args, **kwargs)
        if self.parsing_class_weights:
            self.register_buffer("class_weights", class_weights_19(self.parsing_class_weights), persistent=False)
        else:
            self.class_weights = None
        if self.global_region_weights:
            names = set(self.G.component_parts) | {"background"}
            bad = sorted(set(self.global_region_weights) - names)
            if bad:
                raise ValueError(f"global_region_weights: unknown regions {bad}; known {sorted(names)}")
        self._fakes: dict[int, dict[str, torch.Tensor]] = {}

    # ----------------------------------------------------------------- declarations
    def frozen_helpers(self):
        from .helpers import parser_helper

        return {"parser": parser_helper()} if self._declares_parser else {}

    def default_loss_weights(self) -> dict[str, float]:
        """Eq. 9 (paper): λ_local 10, λ_global 1, λ_GD 1, λ_GP (``lambda_parsing``) 1; λ_FM 10
        (official ``lambda_feat``); ``lambda_transfer_gan`` weighs GAN_D2 in the official mode."""
        return {"lambda_local": 10.0, "lambda_global": 1.0, "lambda_gd": 1.0, "lambda_parsing": 1.0,
                "lambda_fm": 10.0, "lambda_transfer_gan": 1.0}

    def build_networks(self, nets):
        from ..nets.mgpe import MGPEDiscriminator, MGPEGenerator

        return {"G": MGPEGenerator(**{**nets.get("G", {}), "res": self.res}),
                "D": MGPEDiscriminator(**nets.get("D", {})),
                "D2": MGPEDiscriminator(**nets.get("D2", nets.get("D", {})))}

    def phases(self) -> list[Phase]:
        """G first, then D and D2 on the same batch (pix2pixHD order)."""
        return [Phase("G", ("G",), "g_loss", lr=self.lr_g),
                Phase("D", ("D", "D2"), "d_loss", reuse_batch=True, lr=self.lr_d)]

    def paired(self) -> bool:
        """Whether this iteration is a paired one of the (1+1) alternation (even iterations)."""
        return self.iteration % 2 == 0

    # ----------------------------------------------------------------- generation
    def fakes(self, batch: dict, rng: torch.Generator) -> dict[str, Any]:
        """Reconstruction and / or transfer of the batch (what this iteration trains on)."""
        G = self.G  # its crop / encode / decode paths (``compile`` is not applied to them)
        x, m = self.prep(batch["image"]), batch["parts"].long()
        crops = G.crop(x, m)
        codes = G.encode(crops)
        out: dict[str, Any] = {"x": x, "m": m, "crops": crops, "codes": codes}
        if self.alternation == "official" or self.paired():
            out["rec"] = G.decode(codes, m, x)
        if self.alternation == "official" or not self.paired():
            perm = derangement(x.size(0), rng).to(x.device)
            out["transfer"] = G.decode(codes.select(perm), m, x)
        return out

    # ----------------------------------------------------------------- losses
    def _gan(self, D, image: torch.Tensor, m: torch.Tensor, real: bool):
        outs = D(image, m)
        loss = sum(F.binary_cross_entropy_with_logits(o[-1].float(), torch.full_like(o[-1].float(), float(real)))
                   for o in outs)
        return loss, outs

    def local_loss(self, f: dict) -> torch.Tensor:
        """Eq. 1: Σ_i ½ mean((x_i − G_local^i(E_local^i(x_i)))²)."""
        recs = self.G.local.reconstruct(f["codes"])
        return sum(0.5 * F.mse_loss(recs[n].float(), f["crops"][n].image.float()) for n in recs)

    def global_loss(self, rec: torch.Tensor, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Eq. 2 (½ MSE) or the official region-weighted L2 (``global_region_weights``)."""
        if not self.global_region_weights:
            return 0.5 * F.mse_loss(rec.float(), x.float())
        parts = {**self.G.component_parts, "background": self.G.background_parts}
        d = (rec.float() - x.float()) ** 2
        return sum(w * (d * region_mask(m, parts[k]).unsqueeze(1).float()).mean()
                   for k, w in self.global_region_weights.items())

    def parsing_ce(self, image: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Eq. 8: pixel cross-entropy of the frozen parser on ``image`` vs the target map."""
        from .helpers import parse_probs

        probs = parse_probs(self.helper("parser"), image)
        w = None if self.class_weights is None else self.class_weights.to(probs.device)
        return F.nll_loss(probs.clamp_min(1e-8).log(), m, weight=w)

    def g_loss(self, batch, rng):
        f = self.fakes(batch, rng)
        x, m, w = f["x"], f["m"], self.loss_weights
        official = self.alternation == "official"
        a = 1.0 if self.paired() else 0.0
        local = self.local_loss(f)
        logs = {"g_local": local}
        loss = w["lambda_local"] * local
        judged = []
        if "rec" in f and (a or not official):
            rec = f["rec"]
            glob = self.global_loss(rec, x, m)
            adv, fake_outs = self._gan(self.net("D"), rec, m, True)
            with torch.no_grad():
                real_outs = self.net("D")(x, m)
            fm = self._fm(real_outs, fake_outs)
            loss = loss + a * (w["lambda_global"] * glob + w["lambda_gd"] * (adv + w["lambda_fm"] * fm))
            logs.update(g_global=glob, g_adv=adv, g_fm=fm)
        if "transfer" in f:
            adv2, _ = self._gan(self.net("D2"), f["transfer"], m, True)
            loss = loss + (w["lambda_transfer_gan"] if official else w["lambda_gd"]) * adv2
            logs["g_adv2"] = adv2
        if self.parsing_loss:
            if official or self.parsing_on == "both":
                judged = [f[k] for k in ("rec", "transfer") if k in f]
            else:
                judged = [f["rec"] if self.paired() else f["transfer"]]
            parse = sum(self.parsing_ce(img, m) for img in judged) / len(judged)
            loss = loss + w["lambda_parsing"] * parse
            logs["g_parsing"] = parse
        self._fakes = {id(batch): {k: f[k].detach() for k in ("rec", "transfer") if k in f}}
        logs["g_loss"] = loss
        return loss, logs

    def _fm(self, real_outs, fake_outs) -> torch.Tensor:
        from ..nets.mgpe import feature_matching_loss

        return feature_matching_loss(real_outs, fake_outs, self.fm_layers, self.fm_distance)

    def d_loss(self, batch, rng):
        fakes = self._fakes.pop(id(batch), None)
        if fakes is None:  # called on its own: this iteration's fakes, without gradients
            with torch.no_grad():
                f = self.fakes(batch, rng)
            fakes = {k: f[k] for k in ("rec", "transfer") if k in f}
        self._fakes = {}
        x, m = self.prep(batch["image"]), batch["parts"].long()
        loss, logs = x.new_zeros(()).float(), {}
        for key, name in (("rec", "D"), ("transfer", "D2")):
            if key not in fakes:
                continue
            D = self.net(name)
            real, _ = self._gan(D, x, m, True)
            fake, _ = self._gan(D, fakes[key], m, False)
            loss = loss + real + fake
            logs[f"{name.lower()}_real"], logs[f"{name.lower()}_fake"] = real, fake
        logs["d_loss"] = loss
        return loss, logs

    # ----------------------------------------------------------------- inference
    @torch.no_grad()
    def synthesize(self, target_parts: torch.Tensor, images: torch.Tensor, parts: torch.Tensor,
                   component_images: torch.Tensor | None = None,
                   component_parts: torch.Tensor | None = None) -> EditResult:
        """The face of ``target_parts`` with the components of ``component_images`` (default
        ``images``) and the background of ``images`` (embeddings at their means)."""
        if (component_images is None) != (component_parts is None):
            raise ValueError("synthesize: give both component_images and component_parts, or neither")
        G = self.inference("G")
        src_x = images if component_images is None else component_images
        src_m = parts if component_parts is None else component_parts
        codes = G.encode(G.crop(self.prep(src_x), src_m.long()), sample=False)
        return EditResult(G.decode(codes, target_parts.long(), self.prep(images)).clamp(-1, 1))

    @torch.no_grad()
    def swap(self, images: torch.Tensor, parts: torch.Tensor, donor_images: torch.Tensor,
             donor_parts: torch.Tensor, components: Sequence[str]) -> torch.Tensor:
        """``images`` redrawn on their own maps with ``components`` of the donors (Fig. 7 / 8)."""
        G = self.inference("G")
        own = G.encode(G.crop(images, parts.long()), sample=False)
        donor = G.encode(G.crop(donor_images, donor_parts.long()), sample=False)
        return G.decode(own.replace(donor, list(components)), parts.long(), images).clamp(-1, 1)

    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None, *, attr_index=None):
        """Not label-conditioned: the reconstruction from the own map (mask edits: ``synthesize``)."""
        if parts is None:
            raise ValueError("mgpe: edit needs the label maps (parts); it edits through target masks")
        return self.synthesize(parts, images, parts)

    @torch.no_grad()
    def grid_columns(self, batch: dict):
        """Input, mask-to-face reconstruction, the donor (next row), donor eyes / mouth / hair on
        the own map, face swap+ (every component of the donor, Fig. 8), and on SynthFaces the
        synthesis from each mask-expressible attribute's true edited map."""
        x, m = batch["image"], batch["parts"]
        was = self.training
        self.eval()
        try:
            idx = torch.roll(torch.arange(x.size(0)), -1)
            dx, dm = x[idx], m[idx]
            cols = [x, self.synthesize(m, x, m).images, dx,
                    self.swap(x, m, dx, dm, ["l_eye", "r_eye"]),
                    self.swap(x, m, dx, dm, ["mouth"]),
                    self.swap(x, m, dx, dm, ["hair"]),
                    self.synthesize(m, x, m, dx, dm).images]
            names = ["input", "mask->face", "donor", "donor eyes", "donor mouth", "donor hair",
                     "face swap+"]
            if "cf_parts" in batch:
                from ..metrics.tracks.mask_edits import MASK_EXPRESSIBLE

                for k, a in enumerate(self.attrs):
                    if a in MASK_EXPRESSIBLE and k < batch["cf_parts"].shape[1]:
                        cols.append(self.synthesize(batch["cf_parts"][:, k], x, m).images)
                        names.append(f"mask {a}")
                        cols.append(batch["cf_image"][:, k])
                        names.append(f"true {a}")
        finally:
            self.train(was)
        return cols, names

    @torch.no_grad()
    def sample_grid(self, images: torch.Tensor, attrs: torch.Tensor,
                    parts: torch.Tensor | None = None) -> torch.Tensor:
        """The training callback's (B * (2 + A)) grid: with ``parts``, the first columns of
        :meth:`grid_columns` (input, mask->face, donor, swaps) padded with grey columns; without
        (no label maps in the data), the input and grey columns."""
        width = 2 + self.n_attrs
        if parts is None:
            cols = [images]
        else:
            cols, _ = self.grid_columns({"image": images, "parts": parts})
        cols = (cols + [torch.zeros_like(images)] * width)[:width]
        return torch.stack(cols, 1).flatten(0, 1)

    def method_protocol(self):
        out = EditMethod.method_protocol(self)  # no attribute encoding: not label-conditioned
        out.update({"iteration": self.iteration, "ema": bool(self.ema_names),
                    "phases": [{"name": p.name, "updates": list(p.updates), "repeats": p.repeats,
                                "every": p.every} for p in self._phases]})
        out.update({"conditioning": "target label map + component embeddings (mask_to_face)",
                    "alternation": self.alternation, "parsing_loss": self.parsing_loss,
                    "fm": f"{self.fm_layers}/{self.fm_distance}", "vgg_loss": "off (no VGG weights here)",
                    "global_region_weights": self.global_region_weights,
                    "parsing_class_weights": self.parsing_class_weights,
                    "component_parts": {k: list(v) for k, v in self.G.component_parts.items()}})
        return out
