"""The attribute_flip track: today's label-conditioned protocol (STGAN/AttGAN/MagGAN; DESIGN §4).

Per batch: the real images (``real``), the reconstruction (tgt = src, ``reconstruction``) and
each single-attribute flip of ``protocol.single_flip_targets`` (conflict rules applied) as
``flip`` with ``k`` the attribute and ``attr_index=k`` passed to the method when it takes it.
"""
from __future__ import annotations

from typing import Iterator

from ...parts import AR_TABLE, ar_table_hash
from ...protocol import single_flip_targets
from . import Track, register_track
from .context import EditContext, clamp_result


@register_track
class AttributeFlip(Track):
    name = "attribute_flip"

    def contexts(self, batch: dict, features_fn) -> Iterator[EditContext]:
        x, src, parts = batch["image"], batch["attrs"].float(), batch["parts"]
        common = dict(x=x, pos=batch["_pos"].long(), batch=batch, features_fn=features_fn, parts=parts)
        yield EditContext("real", src=src, **common)
        rec = self.calls.edit(x, src, src, parts, self.intensity, attr_index=None)
        yield EditContext("reconstruction", src=src, tgt=src, edited=clamp_result(rec), **common)
        for k, tgt in enumerate(single_flip_targets(src, self.setup.attrs, self.setup.mustache_beard)):
            y = self.calls.edit(x, src, tgt, parts, self.intensity, attr_index=k)
            yield EditContext("flip", src=src, tgt=tgt, k=k, edited=clamp_result(y), **common)

    def recorded_intensity(self, method) -> float:
        """The intensity argument if given, else the method's ``test_intensity``, else the paper's."""
        if self.intensity is not None:
            return float(self.intensity)
        return float(getattr(method, "test_intensity", method.paper_test_intensity))

    def protocol(self) -> dict:
        from ..tarr import HAT_THRESHOLD

        s = self.setup
        out = {
            "mustache_beard_conflict": s.mustache_beard,
            "ar_table_hash": ar_table_hash(s.ar_table if s.ar_table is not None else AR_TABLE),
            "hat_threshold": HAT_THRESHOLD,
            "ssim": f"{s.ssim_mode} (see metrics/psnr_ssim.py), [0,1] uint8-rounded, mean per image",
            "psnr": "mean of per-image PSNR on [0,1], data_range 1, uint8-rounded, capped at 100 dB",
            "mre": "MagGAN eq. 2, [0,1] images, mean over pixels and RGB, AR table on source parts",
            "is_protocol": "torch-fidelity: logits_unbiased, 10 splits, shuffle seed 2020, fake pool",
            "fid_protocol": "real test images vs all single-flip edits (pooled); per attribute in per_attribute",
        }
        if s.inception is None:
            out["is_status"] = MISSING.format(arg="inception_weights", env="FACEEDIT_INCEPTION_WEIGHTS")
        if s.swav is None:
            out["ssfid_status"] = MISSING.format(arg="swav_weights", env="FACEEDIT_SWAV_WEIGHTS")
        if s.classifier is None:
            out["tarr_status"] = "no attribute classifier given; TARR is reported as null"
        return out


MISSING = "no weights file given (pass {arg} or set ${env}); the metric is reported as null"
