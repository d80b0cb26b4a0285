"""Localisation of each flip against the truth on SynthFaces (needs counterfactuals).

Changed pixels of an image pair: ``max_c |uint8(a) - uint8(b)| > 16`` (``uint8(v) = round((v + 1)
* 127.5)``, the saved image; ``CHANGE_LEVELS = 16``). The threshold sits above the JPEG noise
of the stored sources (SynthFaces exports its images as JPEG q95 like CelebA, the
counterfactuals losslessly; JPEG error above 16 levels: 0.05 % of pixels at 32 px, 0.01 % at
128 px; above 8 levels: 5 % / 1 %), so no exact "differs at all" test is possible on a store.
True changed region R (per image): the changed pixels of (true counterfactual ``cf_image``,
source ``x``); it keeps 65-90 % of the pixels the render changes at all (the faint
anti-aliased edges fall under the threshold). The AR region of ``cf_parts`` would be a coarser
alternative (MRE's; whole skin for Smiling); the pixel truth is used.

Two variants, separate metric names, per attribute and overall (mean over attributes):

- difference-based, for EVERY method, on the edit ``y``: ``loc_iou_diff``: IoU of the changed
  pixels of (y, x) with R; ``loc_energy_diff``: share of the change energy ``Σ_c (y - x)²`` (on
  [0, 1], uint8-rounded, counted on the changed pixels only: sub-threshold change is noise)
  that lies inside R.
- attention-based, for methods whose ``EditResult.extras`` hold ``attention`` (B x 1 x H x W in
  [0, 1], e.g. SaGAN): ``loc_iou_attn``: IoU of ``attention > 0.5`` with R;
  ``loc_energy_attn``: share of the attention mass inside R. Absent from the record when no
  edit carried a mask.

Per image, then the mean over images: images whose R is empty (the flip renders no visible
change) are left out of everything; images with no change energy (no attention mass) are left
out of the energy ratio (IoU counts them as 0). The true counterfactual used as an edit scores
exactly 1 on both difference metrics; a global colour shift scores about |R| / (H W).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

from ...registry import MetricSpec, register_component, register_metric
from ...sums import PerAttributeSums, mean_over_attributes, ratio
from ..context import Component

AF = ("attribute_flip",)
#: attention values above this count as the attended region
ATTENTION_THRESHOLD = 0.5
#: a pixel changed when some channel moved by more than this many uint8 levels (above JPEG q95 noise)
CHANGE_LEVELS = 16
DIFF = ("loc_iou_diff", "loc_energy_diff")
ATTN = ("loc_iou_attn", "loc_energy_attn")

register_metric(MetricSpec("loc_iou_diff", True, "fraction", AF, "IoU of each flip's changed pixels "
                           "(> 16 uint8 levels) with the true changed region (SynthFaces)"))
register_metric(MetricSpec("loc_energy_diff", True, "fraction", AF, "share of each flip's change "
                           "energy |y - x|^2 inside the true changed region (SynthFaces)"))
register_metric(MetricSpec("loc_iou_attn", True, "fraction", AF, "IoU of the attention mask > 0.5 "
                           "with the true changed region (methods returning `attention`)"))
register_metric(MetricSpec("loc_energy_attn", True, "fraction", AF, "share of the attention mass "
                           "inside the true changed region (methods returning `attention`)"))



def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images as the saved uint8 values (float tensor)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round()


def changed_pixels(a: torch.Tensor, b: torch.Tensor, levels: int = CHANGE_LEVELS) -> torch.Tensor:
    """B x H x W bool: pixels where some channel of the uint8 images differs by > ``levels``."""
    return (to_uint8(a) - to_uint8(b)).abs().amax(1) > levels


def iou(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-image IoU of two B x H x W bool maps (0 where both are empty)."""
    inter = (pred & truth).flatten(1).sum(1).double()
    union = (pred | truth).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))


def inside_share(weight: torch.Tensor, region: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(share of ``weight`` (B x H x W, >= 0) inside ``region`` per image, rows with weight > 0)."""
    w = weight.double().flatten(1)
    total = w.sum(1)
    ok = total > 0
    share = (w * region.flatten(1)).sum(1) / total.clamp_min(1e-300)
    return torch.where(ok, share, torch.zeros_like(share)), ok


class Localisation(PerAttributeSums):
    """``update(edited, source, cf_image, k, attention=None)``; images in [-1, 1]."""

    higher_is_better = True
    STATES = ("iou_diff", "n_diff", "energy_diff", "ne_diff", "iou_attn", "n_attn", "energy_attn", "ne_attn")

    def update(self, edited, source, cf_image, k: int, attention=None) -> None:
        truth = changed_pixels(cf_image, source)
        keep = truth.flatten(1).any(1)
        if not bool(keep.any()):
            return
        truth, edited, source = truth[keep], edited[keep], source[keep]
        changed = changed_pixels(edited, source)
        energy = ((to_uint8(edited) - to_uint8(source)) / 255).pow(2).sum(1) * changed
        self.iou_diff[k] += iou(changed, truth).sum()
        self.n_diff[k] += truth.shape[0]
        share, ok = inside_share(energy, truth)
        self.energy_diff[k] += share[ok].sum()
        self.ne_diff[k] += ok.sum()
        if attention is None:
            return
        m = attention[keep].detach().float()
        if m.shape[-2:] != truth.shape[-2:]:
            m = F.interpolate(m, size=truth.shape[-2:], mode="bilinear", align_corners=False)
        m = m[:, 0].clamp(0, 1)
        self.iou_attn[k] += iou(m > ATTENTION_THRESHOLD, truth).sum()
        self.n_attn[k] += truth.shape[0]
        share, ok = inside_share(m, truth)
        self.energy_attn[k] += share[ok].sum()
        self.ne_attn[k] += ok.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        out = {"loc_iou_diff": ratio(self.iou_diff, self.n_diff),
               "loc_energy_diff": ratio(self.energy_diff, self.ne_diff)}
        if bool(self.n_attn.sum() > 0):
            out.update({"loc_iou_attn": ratio(self.iou_attn, self.n_attn),
                        "loc_energy_attn": ratio(self.energy_attn, self.ne_attn)})
        return out


@register_component
class LocalisationComponent(Component):
    name = "localisation"
    kinds = ("flip",)
    needs = ("counterfactuals",)
    produces = (*DIFF, *ATTN)

    def __init__(self, setup) -> None:
        super().__init__(setup)
        self.loc = Localisation(setup.attrs)

    def update(self, ctx) -> None:
        att = ctx.edited.extras.get("attention") if ctx.edited is not None else None
        self.loc.update(ctx.images, ctx.x, ctx.batch["cf_image"][:, ctx.k], ctx.k, att)

    def compute(self):
        per = {key: v.reshape(-1) for key, v in self.loc.compute().items()}  # 1 attr: 0-dim
        metrics = {key: mean_over_attributes(v) for key, v in per.items()}
        per_attr = {key: self.per_attr(v.tolist()) for key, v in per.items()}
        return metrics, per_attr

    def protocol(self) -> dict:
        return {"localisation": f"changed: max_c |uint8(a) - uint8(b)| > {CHANGE_LEVELS}; true region: "
                                "changed(cf_image, x); diff: changed(y, x) (IoU), energy sum_c (y-x)^2 "
                                f"on [0,1] on changed pixels; attention > {ATTENTION_THRESHOLD} (IoU), "
                                "mass (energy); per image, mean over images with a non-empty true region"}
