"""Fréchet distances (metrics/fid.py): FID on Inception pool3 (MagGAN: real test images vs all
flips pooled; MatchGAN's per-attribute mean beside it), ssFID on SwAV features (SeCGAN: mean over
the flipped attributes, Morozov et al. 2021) and FID on the attribute classifier's features
(``fid_clf``, when no Inception weights exist). mask_to_face: real test images vs the component
transfers. Real statistics may come from the on-disk cache (``setup.real_moments``)."""
from __future__ import annotations

from typing import ClassVar

from ...fid import FrechetDistance
from ...registry import MetricSpec, register_component, register_metric
from ..context import Component

AF, BOTH = ("attribute_flip",), ("attribute_flip", "mask_to_face")
register_metric(MetricSpec("fid", False, "FID", BOTH, "FID (Inception pool3): real test images vs all "
                           "single-flip edits (attribute_flip) or all component transfers (mask_to_face)",
                           order=2))
register_metric(MetricSpec("fid_attr_mean", False, "FID", AF, "FID per flipped attribute, mean over attributes"))
register_metric(MetricSpec("fid_clf", False, "FID", BOTH, "Fréchet distance on the attribute classifier's "
                           "512-d features, pooled as fid"))
register_metric(MetricSpec("fid_clf_attr_mean", False, "FID", AF, "fid_clf per flipped attribute, mean"))
register_metric(MetricSpec("ssfid", False, "FID", AF, "ssFID (SwAV ResNet-50 features) per flipped attribute, "
                           "mean over attributes (SeCGAN)", order=3))
register_metric(MetricSpec("ssfid_pooled", False, "FID", AF, "ssFID of all flips pooled"))


class _Frechet(Component):
    """One extractor's FD; ``stat``: the record / stats-cache name, ``extractor``: features key."""

    stat: ClassVar[str] = ""
    extractor: ClassVar[str] = ""
    fake_kind: ClassVar[str] = "flip"

    def __init__(self, setup) -> None:
        super().__init__(setup)
        ex = getattr(setup, self.needs[0])
        dim = ex.feature_dim if self.extractor == "classifier" else ex.num_features
        groups = len(setup.attrs) if self.fake_kind == "flip" else 1
        self.fd = FrechetDistance(dim, groups=groups)
        cached = (setup.real_moments or {}).get(self.stat)
        if cached is not None:
            self.fd.set_real_moments(*cached)

    def _feats(self, ctx):
        f = ctx.features(self.extractor)
        return f["2048"] if self.extractor == "inception" else f

    def update(self, ctx) -> None:
        if ctx.kind == "real":
            if self.fd._cached_real is None:
                self.fd.update(self._feats(ctx), real=True)
            return
        group = None if ctx.k is None else ctx.x.new_full((ctx.x.shape[0],), ctx.k, dtype=ctx.pos.dtype)
        self.fd.update(self._feats(ctx), group=group)

    def real_stats(self) -> dict:
        return {self.stat: self.fd.real_moments()} if self.fd._cached_real is None else {}

    def compute(self):
        r = self.fd.compute()
        if self.fake_kind != "flip":
            return {self.stat: r["pooled"]}, {}
        if self.stat == "ssfid":  # SeCGAN: mean over the reversed attributes
            m = {"ssfid": r["mean"], "ssfid_pooled": r["pooled"]}
        else:  # MagGAN: originals vs all edits; MatchGAN's per-attribute mean beside it
            m = {self.stat: r["pooled"], f"{self.stat}_attr_mean": r["mean"]}
        return m, {self.stat: self.per_attr(r["groups"])}


@register_component
class FlipFID(_Frechet):
    name, stat, extractor, kinds, needs = "flip_fid", "fid", "inception", ("real", "flip"), ("inception",)
    produces, null_when_unavailable = ("fid", "fid_attr_mean"), ("fid",)


@register_component
class FlipSSFID(_Frechet):
    name, stat, extractor, kinds, needs = "flip_ssfid", "ssfid", "swav", ("real", "flip"), ("swav",)
    produces, null_when_unavailable = ("ssfid", "ssfid_pooled"), ("ssfid",)


@register_component
class FlipClassifierFID(_Frechet):
    name, stat, extractor, kinds, needs = "flip_fid_clf", "fid_clf", "classifier", ("real", "flip"), ("classifier",)
    produces = ("fid_clf", "fid_clf_attr_mean")


@register_component
class TransferFID(_Frechet):
    name, stat, extractor, kinds, needs = "transfer_fid", "fid", "inception", ("real", "transfer"), ("inception",)
    tracks, fake_kind, produces, null_when_unavailable = ("mask_to_face",), "transfer", ("fid",), ("fid",)


@register_component
class TransferClassifierFID(_Frechet):
    name, stat, extractor, kinds, needs = ("transfer_fid_clf", "fid_clf", "classifier", ("real", "transfer"),
                                           ("classifier",))
    tracks, fake_kind, produces = ("mask_to_face",), "transfer", ("fid_clf",)
