"""The mask_to_face track: synthesis from label maps (Gu et al., Mask-Guided Portrait Editing,
CVPR 2019; DESIGN §10), through ``method.synthesize(target_parts, images, parts,
component_images=None, component_parts=None) -> EditResult`` (methods/contract.py).

Per batch:

- ``real``: the test images (real feature statistics).
- ``reconstruction``: ``synthesize(parts, x, parts)``: the face from its own label map and
  components (PSNR / SSIM against ``x``; parsing accuracy against ``parts`` with a parser).
- ``transfer``: ``synthesize(parts, x, parts, donor_x, donor_parts)`` with the components of the
  **next test face**, position ``(i + 1) mod n`` of the split (fixed by the position, so the
  same under any batching or DDP sharding): FID of transfers vs the real test images.
- ``mask_edit``: one context per registered mask edit (:func:`register_mask_edit`), ``ctx.name``
  its name, ``target_parts`` the edited map. None is registered here: edited target masks are
  the Gu et al. issue's job (register the edit and a component listening to ``mask_edit``).
  Edits that depend on the run (its attributes, whether the data has counterfactuals) come from
  a *source* (:func:`register_mask_edit_source`: ``fn(setup) -> {name: edit}``), asked once per
  run; ``mask_edits.py`` registers SynthFaces' counterfactual label maps as one.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch

from . import Track, register_track
from .context import EditContext, clamp_result

#: name -> fn(parts B x H x W uint8, batch) -> edited target parts (B x H x W uint8)
MASK_EDITS: dict[str, Callable[[torch.Tensor, dict], torch.Tensor]] = {}


def register_mask_edit(name: str, fn: Callable[[torch.Tensor, dict], torch.Tensor]) -> None:
    """Add an edited-target-mask context ``mask_edit`` named ``name`` to every mask_to_face run."""
    MASK_EDITS[name] = fn


#: source name -> fn(setup: EvalSetup) -> {edit name: fn(parts, batch) -> parts}, asked per run
MASK_EDIT_SOURCES: dict[str, Callable] = {}


def register_mask_edit_source(name: str, fn: Callable) -> None:
    """Add the edits ``fn(setup)`` returns (possibly none) to every mask_to_face run."""
    MASK_EDIT_SOURCES[name] = fn


def run_mask_edits(setup) -> dict[str, Callable[[torch.Tensor, dict], torch.Tensor]]:
    """The mask edits of a run: :data:`MASK_EDITS` plus those of every source for ``setup``."""
    from . import mask_edits  # noqa: F401  (registers the counterfactual source)

    out = dict(MASK_EDITS)
    for _, source in sorted(MASK_EDIT_SOURCES.items()):
        out.update(source(setup))
    return out


@register_track
class MaskToFace(Track):
    name = "mask_to_face"

    @property
    def mask_edits(self) -> dict:
        """This run's mask edits (:func:`run_mask_edits`), fixed at first use."""
        if getattr(self, "_mask_edits", None) is None:
            self._mask_edits = run_mask_edits(self.setup)
        return self._mask_edits

    def contexts(self, batch: dict, features_fn) -> Iterator[EditContext]:
        x, parts, pos = batch["image"], batch["parts"], batch["_pos"].long()
        common = dict(x=x, pos=pos, batch=batch, features_fn=features_fn, parts=parts)
        yield EditContext("real", **common)
        rec = self.calls.synthesize(parts, x, parts)
        yield EditContext("reconstruction", target_parts=parts, edited=clamp_result(rec), **common)
        if self.fetch is None:
            raise RuntimeError("mask_to_face: component transfer needs the evaluator's fetch(positions)")
        donor = self.fetch((pos + 1) % self.setup.n_images)
        y = self.calls.synthesize(parts, x, parts, component_images=donor["image"],
                                  component_parts=donor["parts"])
        yield EditContext("transfer", target_parts=parts, edited=clamp_result(y), **common)
        for name, fn in sorted(self.mask_edits.items()):
            target = fn(parts, batch)
            z = self.calls.synthesize(target, x, parts)
            yield EditContext("mask_edit", name=name, target_parts=target, edited=clamp_result(z), **common)

    def protocol(self) -> dict:
        s = self.setup
        return {
            "ssim": f"{s.ssim_mode} (see metrics/psnr_ssim.py), [0,1] uint8-rounded, mean per image",
            "psnr": "mean of per-image PSNR on [0,1], data_range 1, uint8-rounded, capped at 100 dB",
            "reconstruction": "synthesize(own label map, own components) vs the test image",
            "transfer": "components of the next test face (position (i+1) mod n), own label map",
            "fid_protocol": "real test images vs all component transfers",
            "parsing_protocol": ("pixel accuracy of argmax parser(reconstruction) against the target "
                                 "label map, mean over images" if s.parser is not None else None),
            "mask_edits": sorted(MASK_EDITS),
            "source_mask_edits": sorted(set(self.mask_edits) - set(MASK_EDITS)),
        }
