"""SaGAN (Zhang, Kan, Shan, Chen, ECCV 2018): spatial attention GAN, one model per attribute.

Networks (three named networks, ``nets/sagan.py``): ``AMN`` (eq. 5, Table 1 left: image + tiled
target label -> RGB, tanh), ``SAN`` (eq. 6, Table 1 right: image -> 1-channel sigmoid mask m) and
``D`` (Table 2, PatchGAN: ``src`` patch map + ``cls`` logits). Output (eq. 7):
``y = AMN(x, c) * m + x * (1 - m)`` (:func:`~faceedit_bench.nets.sagan.sagan_compose`), so where
``m = 0`` the output is the input exactly.

Phases: ``D`` (``n_critic = 3`` updates per iteration, each on a fresh batch: "the generator is
updated once, while the discriminator is updated three times"), then ``G`` updating ``AMN`` and
``SAN`` together (eq. 11: min over F_m, F_a) on a fresh batch. Losses:

- D: eq. 12 WGAN-GP ``-E[D_src(x)] + E[D_src(y)] + λ_gp GP`` (λ_gp = 10, GP on the src patch map
  through ``D.forward_adv``) + eq. 2 ``λ_d_cls BCE(D_cls(x), c)`` (λ_d_cls = 1, real images only).
- G: eq. 13 ``-E[D_src(y)]`` + eq. 9 ``λ_g_cls BCE(D_cls(y), c_trg)`` (1) + eq. 10
  ``λ1 |x - G(G(x, c_trg), c)|₁`` (dual reconstruction, λ1 = ``lambda_dual`` = 20)
  ``+ λ2 |x - G(x, c)|₁`` (identity reconstruction, λ2 = ``lambda_id`` = 100).
- Adam 2e-4, β (0.5, 0.999), batch 16, constant lr (no decay), N(0, 0.02) init.

Binary editing: the model edits ONE attribute (``attribute``, any CelebA name); the target is
``c_trg = 1 - c``. ``attrs`` are the label columns the run's batches carry (the datamodule's
``attrs``, which the evaluator flips one by one): for the paper's setting the run sets
``+attrs=[<attribute>]`` (``build.attrs_of`` reads only the run config's ``attrs``, so the
method config cannot set the datamodule's columns);
with more columns the model trains on its own column only, edits rows whose ``attr_index`` is its
attribute and returns every other flip unchanged (identity, attention 0; recorded in
:meth:`method_protocol`). The SET of per-attribute models is the registered method
``sagan_set`` (:class:`SaGANSet`): it dispatches each flip to the member trained for it. The
config variants ``eyeglasses`` / ``mouth_slightly_open`` / ``no_beard`` / ``smiling`` set
``attribute`` for the paper's four models (each its own run folder and row ``sagan/<variant>``).

Multi-attribute variant (``multi: true``, config variant ``multi``; not in the paper, whose
future work it is): AMN and D condition on / classify the whole label vector, one SAN shared by
every attribute; training targets flip one random attribute per row with the conflict rules of
the evaluation (``multi_targets: flip_one``) or shuffle the batch's labels (``shuffle``). A SAN
that sees only the image must open one mask for every attribute, and the identity term (λ2 = 100
on ``G(x, c)``) then pulls that shared mask shut: ``san_condition: change`` (not in the paper)
feeds SAN the requested change ``c_trg - c`` too, so the mask can follow the attribute and close
only when nothing is asked.

Paper vs port (elvisyjlin/SpatialAttentionGAN; implementations.md §4; no official code):

- residual-block norm: the paper says only "Residual Block"; we follow the port (BatchNorm,
  ``nets.*.res_norm: batchnorm``; ``instancenorm`` selectable). BN uses running statistics in
  eval mode, as the port's ``G.eval()`` samples.
- last G layer: we follow the paper (Conv 7x7); the port's ConvTranspose 7x7 is the ``port``
  variant (``final_conv: deconv``; same shapes and count, loads port weights).
- D cls head: paper and port end with a sigmoid + BCELoss; we output logits and use
  BCE-with-logits (the same loss, stable). Both classification losses are means (port BCELoss).
- length: the paper gives none; we follow the port, 1000 kimg of D images = 62.5k D steps =
  20,834 iterations of ours at batch 16.
- data (crop 170 / first 200k split in the port, identity split in the paper): the data
  layer's business, not the method's.
- G calls per G update: three as the port (edit, dual reconstruction, identity reconstruction),
  each recomputing SAN.

``edit`` returns the attention mask as ``extras["attention"]`` (B x 1 x H x W in [0, 1]); the
edit grid shows it next to each flip. Test intensity ``k`` (default 1, the binary label) moves
the label ``c + k (c_trg - c)`` (:func:`.targets.stargan_test_labels`).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..protocol import DEFAULT_ATTRS, single_flip_targets, validate_attrs
from . import register
from .adversarial import AdversarialEditor
from .base import EditMethod
from .contract import EditResult, Phase
from .targets import shuffled_targets, stargan_test_labels

MULTI_TARGETS = ("flip_one", "shuffle")
SAN_CONDITIONS = ("none", "change")


def _bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def _rows(attr_index, n: int, device) -> torch.Tensor | None:
    """``attr_index`` (None, int or B tensor) as a B long tensor, or None."""
    if attr_index is None:
        return None
    if torch.is_tensor(attr_index) and attr_index.ndim > 0:
        return attr_index.to(device=device, dtype=torch.long)
    return torch.full((n,), int(attr_index), dtype=torch.long, device=device)


def attention_image(mask: torch.Tensor) -> torch.Tensor:
    """B x 1 x H x W mask in [0, 1] as a grey B x 3 x H x W image in [-1, 1] (edit grids)."""
    return (mask.float() * 2 - 1).expand(-1, 3, -1, -1)


@register("sagan")
class SaGAN(AdversarialEditor):
    """SaGAN; networks ``AMN`` / ``SAN`` / ``D`` (``nets.*``: kwargs of ``nets.sagan``)."""

    encoding = "stargan"            # raw {0, 1} labels
    paper_test_intensity = 1.0
    ema_default = ("AMN", "SAN")
    inference_nets = ("AMN", "SAN")  # eq. 7

    def __init__(self, attrs: Sequence[str] = DEFAULT_ATTRS, res: int = 128,
                 attribute: str | None = None, multi: bool = False,
                 multi_targets: str = "flip_one", san_condition: str = "none", **kwargs) -> None:
        attrs = validate_attrs(list(attrs))
        self.multi = bool(multi)
        if multi_targets not in MULTI_TARGETS:
            raise ValueError(f"sagan: multi_targets {multi_targets!r}; expected one of {MULTI_TARGETS}")
        self.multi_targets = multi_targets
        if san_condition not in SAN_CONDITIONS:
            raise ValueError(f"sagan: san_condition {san_condition!r}; expected one of {SAN_CONDITIONS}")
        self.san_condition = san_condition
        if attribute is None and not self.multi:
            if len(attrs) != 1:
                raise ValueError(f"sagan: one model per attribute; set method.model.attribute=<name> "
                                 f"(one of the run's attrs {list(attrs)}) or run with +attrs=[<name>]")
            attribute = attrs[0]
        if attribute is not None:
            (attribute,) = validate_attrs([attribute])
            if attribute not in attrs:
                raise ValueError(
                    f"sagan: attribute {attribute!r} is not among the run's attrs {list(attrs)}: the "
                    f"batches carry no label for it; run with +attrs=[{attribute}] (the datamodule's "
                    "attributes come from the run config's `attrs`)")
        self.attribute = attribute
        kwargs.setdefault("n_critic", 3)
        kwargs.setdefault("schedule", "constant")
        super().__init__(attrs, res, **kwargs)

    # ----------------------------------------------------------------- declarations
    @classmethod
    def run_attrs(cls, model: dict) -> list[str] | None:
        """The data attributes a run of config ``model`` needs when the run sets no ``attrs``:
        ``[attribute]`` for a one-attribute model, None (the default 13) for the multi variant.
        A hook for ``build.attrs_of`` (not wired yet: see the SaGAN report)."""
        if model.get("multi") or not model.get("attribute"):
            return None
        return [str(model["attribute"])]

    @property
    def attr_col(self) -> int | None:
        """The label column the one-attribute model reads (None for the multi variant)."""
        return None if self.multi else self.attrs.index(self.attribute)

    @property
    def n_labels(self) -> int:
        return self.n_attrs if self.multi else 1

    @property
    def edited_attrs(self) -> tuple[str, ...]:
        """The attributes this model edits (the rest of ``attrs`` are returned unchanged)."""
        return self.attrs if self.multi else (self.attribute,)

    def default_loss_weights(self) -> dict[str, float]:
        return {"lambda_dual": 20.0, "lambda_id": 100.0, "lambda_g_cls": 1.0, "lambda_d_cls": 1.0}

    def build_networks(self, nets):
        from ..nets.sagan import SaganAMN, SaganDiscriminator, SaganSAN

        return {"AMN": SaganAMN(**{**nets.get("AMN", {}), "n_labels": self.n_labels}),
                "SAN": SaganSAN(**{**nets.get("SAN", {}),
                                   "n_change": self.n_labels if self.san_condition == "change" else 0}),
                "D": SaganDiscriminator(**{**nets.get("D", {}), "n_labels": self.n_labels,
                                           "image_size": self.res})}

    def phases(self) -> list[Phase]:
        """D ``n_critic`` (3) times, then AMN + SAN once, each on a fresh batch (the port)."""
        return [Phase("D", ("D",), "d_loss", repeats=self.n_critic, lr=self.lr_d),
                Phase("G", ("AMN", "SAN"), "g_loss", lr=self.lr_g)]

    # ----------------------------------------------------------------- generator
    def compose(self, x: torch.Tensor, c: torch.Tensor, c_src: torch.Tensor, inference: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, m)``: eq. 7 with ``AMN(x, c)`` and ``m = SAN(x)`` (EMA copies when ``inference``);
        ``m = SAN(x, c - c_src)`` with ``san_condition: change``."""
        from ..nets.sagan import sagan_compose

        amn = self.inference("AMN") if inference else self.net("AMN")
        san = self.inference("SAN") if inference else self.net("SAN")
        m = san(x, (c - c_src).to(x.dtype)) if self.san_condition == "change" else san(x)
        return sagan_compose(x, amn(x, c.to(x.dtype)), m), m

    def labels(self, batch: dict) -> torch.Tensor:
        """The labels the model sees: its own column (B x 1), or all columns (multi)."""
        a = batch["attrs"].float()
        return a if self.multi else a[:, self.attr_col:self.attr_col + 1]

    def targets(self, c: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """``1 - c`` (the paper); multi: one attribute flipped per row (conflict rules) or shuffle."""
        if not self.multi:
            return 1 - c
        if self.multi_targets == "shuffle":
            return shuffled_targets(c, rng)
        flips = torch.stack(single_flip_targets(c, self.attrs), 1)  # B x A x A
        k = torch.randint(self.n_attrs, (c.size(0),), generator=rng).to(c.device)
        return flips[torch.arange(c.size(0), device=c.device), k]

    # ----------------------------------------------------------------- losses
    def d_loss(self, batch, rng):
        x, c = self.prep(batch["image"]), self.labels(batch)
        c_trg = self.targets(c, rng)
        with torch.no_grad():
            fake, _ = self.compose(x, c_trg, c)
        (real_src, real_cls), (fake_src, _) = self.d_real_fake(x, fake)  # one forward (no-norm D)
        wd = real_src.mean() - fake_src.mean()
        gp = self.gradient_penalty(x, fake, rng)
        cls = _bce(real_cls, c)
        w = self.loss_weights
        loss = -wd + self.lambda_gp * gp + w["lambda_d_cls"] * cls
        return loss, {"d_loss": loss, "d_wd": wd, "d_gp": gp, "d_cls": cls}

    def g_loss(self, batch, rng):
        x, c = self.prep(batch["image"]), self.labels(batch)
        c_trg = self.targets(c, rng)
        fake, m = self.compose(x, c_trg, c)
        fake_src, fake_cls = self.dis_net(fake)
        adv = -fake_src.mean()
        cls = _bce(fake_cls, c_trg)
        dual = F.l1_loss(self.compose(fake, c, c_trg)[0].float(), x.float())
        ident = F.l1_loss(self.compose(x, c, c)[0].float(), x.float())
        w = self.loss_weights
        loss = adv + w["lambda_g_cls"] * cls + w["lambda_dual"] * dual + w["lambda_id"] * ident
        return loss, {"g_loss": loss, "g_adv": adv, "g_cls": cls, "g_rec_dual": dual,
                      "g_rec_id": ident, "g_mask_mean": m.detach().float().mean()}

    # ----------------------------------------------------------------- inference
    def test_code(self, src, tgt, intensity):
        if self.multi:
            return stargan_test_labels(src, tgt, intensity)
        j = self.attr_col
        return stargan_test_labels(src[:, j:j + 1], tgt[:, j:j + 1], intensity)

    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None, *, attr_index=None):
        """Eq. 7 with the EMA networks if kept; ``extras["attention"]`` = the SAN mask. A
        one-attribute model returns rows whose ``attr_index`` is another attribute unchanged
        (attention 0)."""
        self.check_edit_inputs(images, src_attrs, tgt_attrs)
        k = self.test_intensity if intensity is None else float(intensity)
        x = self.prep(images)
        src = src_attrs.float() if self.multi else src_attrs.float()[:, self.attr_col:self.attr_col + 1]
        y, m = self.compose(x, self.test_code(src_attrs.float(), tgt_attrs.float(), k), src, inference=True)
        rows = _rows(attr_index, x.size(0), x.device)
        if rows is not None and not self.multi:
            keep = (rows != self.attr_col).view(-1, 1, 1, 1)
            y = torch.where(keep, images, y)
            m = torch.where(keep, torch.zeros_like(m), m)
        return EditResult(y.clamp(-1, 1), {"attention": m.float()})

    @torch.no_grad()
    def grid_columns(self, batch):
        """Input, reconstruction, then per edited attribute its flip and its attention mask."""
        return edit_columns(self, batch, self.edited_attrs)

    def method_protocol(self) -> dict[str, Any]:
        out = super().method_protocol()
        out.update({
            "attribute": self.attribute, "multi": self.multi,
            "edited_attrs": list(self.edited_attrs),
            "identity_attrs": [a for a in self.attrs if a not in self.edited_attrs],
            "training_target": (f"multi: {self.multi_targets}" if self.multi else "1 - c"),
            "san_condition": self.san_condition,
            "target_sampling": (self.multi_targets if self.multi else "1 - c"),
            "loss_weights": dict(self.loss_weights), "lambda_gp": self.lambda_gp,
        })
        return out


def edit_columns(method: EditMethod, batch: dict, attrs: Sequence[str]):
    """Grid columns: input, reconstruction, then ``flip <a>`` and ``attention <a>`` for each
    attribute in ``attrs`` (the bench adds ``true <a>`` after each flip on SynthFaces)."""
    x, src, parts = batch["image"], batch["attrs"].float(), batch.get("parts")
    cols, names = [x, method.edit(x, src, src, parts).images], ["input", "recon"]
    targets = single_flip_targets(src, method.attrs)
    for a in attrs:
        k = method.attrs.index(a)
        r = method.edit(x, src, targets[k], parts, attr_index=k)
        cols.append(r.images)
        names.append(f"flip {a}")
        if "attention" in r.extras:
            cols.append(attention_image(r.extras["attention"]))
            names.append(f"attention {a}")
    return cols, names


@register("sagan_set")
class SaGANSet(EditMethod):
    """The SET of per-attribute SaGAN models as one row (the paper trains one model per
    attribute): ``members: {attribute: checkpoint}``; ``edit`` dispatches each row by
    ``attr_index`` to the member trained for that attribute and returns flips of attributes
    without a member unchanged (identity, attention 0). The reconstruction (``attr_index``
    None) is made by the member named by ``reconstruction`` (default: the first member in
    ``attrs`` order; ``identity``: the input). Nothing is trained; :meth:`method_protocol`
    lists which checkpoint served which attribute."""

    def __init__(self, attrs: Sequence[str] = DEFAULT_ATTRS, res: int = 128,
                 members: dict[str, str] | None = None, reconstruction: str | None = None) -> None:
        from ..parsing.weights import file_sha256
        from ..train import load_method

        super().__init__(attrs, res)
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)
        members = {k: str(v) for k, v in (members or {}).items() if v}
        unknown = [a for a in members if a not in self.attrs]
        if unknown:
            raise ValueError(f"sagan_set: members {unknown} are not among the run's attrs "
                             f"{list(self.attrs)}")
        self.members = torch.nn.ModuleDict()
        self.member_info: dict[str, dict] = {}
        for a in sorted(members, key=self.attrs.index):
            m = load_method(members[a])
            if a not in getattr(m, "edited_attrs", ()):
                raise ValueError(f"sagan_set: checkpoint {members[a]} ({m.method_name}, edits "
                                 f"{list(getattr(m, 'edited_attrs', ()))}) does not edit {a!r}")
            if m.res != self.res:
                raise ValueError(f"sagan_set: member {a} is {m.res} px, the set {self.res} px")
            missing = [c for c in m.attrs if c not in self.attrs]
            if missing:
                raise ValueError(f"sagan_set: member {a} reads labels {missing} the run lacks")
            self.members[a] = m.requires_grad_(False).eval()
            self.member_info[a] = {"checkpoint": members[a], "sha256": file_sha256(members[a]),
                                   "iteration": int(getattr(m, "iteration", 0)),
                                   "variant": m.variant, "multi": bool(getattr(m, "multi", False))}
        if reconstruction is None:
            reconstruction = next(iter(self.members), "identity")
        if reconstruction != "identity" and reconstruction not in self.members:
            raise ValueError(f"sagan_set: reconstruction {reconstruction!r}: expected 'identity' "
                             f"or a member {list(self.members)}")
        self.reconstruction = reconstruction

    def _member_edit(self, a: str, x, src, tgt, parts, intensity, sel, flip: bool) -> EditResult:
        """Member ``a`` on the rows ``sel``, its label columns taken from the set's."""
        m = self.members[a]
        cols = [self.attrs.index(c) for c in m.attrs]
        p = None if parts is None else parts[sel]
        return m.edit(x[sel], src[sel][:, cols], tgt[sel][:, cols], p, intensity,
                      attr_index=m.attrs.index(a) if flip else None)

    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None, *, attr_index=None):
        """Each row by its ``attr_index`` to the member of that attribute; reconstructions
        (``attr_index`` None) to the ``reconstruction`` member; the rest unchanged."""
        self.check_edit_inputs(images, src_attrs, tgt_attrs)
        out, att = images.clone(), images.new_zeros(images.size(0), 1, *images.shape[2:])
        rows = _rows(attr_index, images.size(0), images.device)
        if rows is None:
            everyone = torch.ones(images.size(0), dtype=torch.bool, device=images.device)
            jobs = [(self.reconstruction, everyone)]
        else:
            jobs = [(a, rows == self.attrs.index(a)) for a in self.members]
        for a, sel in jobs:
            if a == "identity" or not bool(sel.any()):
                continue
            r = self._member_edit(a, images, src_attrs, tgt_attrs, parts, intensity, sel,
                                  flip=rows is not None)
            out[sel] = r.images.to(out.dtype)
            att[sel] = r.extras["attention"].to(att.dtype)
        extras = {"attention": att.float()} if len(self.members) else {}
        return EditResult(out, extras)

    @torch.no_grad()
    def grid_columns(self, batch):
        if not len(self.members):
            return super().grid_columns(batch)
        return edit_columns(self, batch, list(self.members))

    def training_step(self, batch, batch_idx):  # nothing to learn
        return None

    def configure_optimizers(self):
        return None

    def method_protocol(self) -> dict[str, Any]:
        out = super().method_protocol()
        out.update({"members": self.member_info,
                    "identity_attrs": [a for a in self.attrs if a not in self.members],
                    "reconstruction": self.reconstruction})
        return out
