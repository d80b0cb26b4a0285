"""Counterfactual locality of SynthFaces flips (issue 3): changed pixels vs the AR region.

The region of a flip of ``attr`` is ``parts.attribute_region`` on the source and target label
maps (AR+ when the attribute turns on, AR- when it turns off), dilated by ``dilate`` pixels.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..parts import attribute_region
from .synth_factors import RENDERED_ATTRS
from .synthfaces import flip_targets, render_batch, to_uint8


def dilate(mask: torch.Tensor, px: int) -> torch.Tensor:
    """Binary dilation of a (B,H,W) bool mask by a (2px+1)^2 square."""
    if px <= 0:
        return mask
    return F.max_pool2d(mask[:, None].float(), 2 * px + 1, stride=1, padding=px)[:, 0] > 0.5


def flip_locality(seed: int, indices, res: int, attrs=RENDERED_ATTRS, px: int = 2) -> dict:
    """Per attribute: changed pixels, changed pixels inside the region, flips that changed nothing."""
    src = render_batch(seed, indices, res, soft=False)
    src_img = torch.from_numpy(to_uint8(src["image"]))
    targets = flip_targets(src["attrs"].numpy())
    out = {}
    for name in attrs:
        tgt = targets[name]
        cf = render_batch(seed, indices, res, attrs=tgt, soft=False)
        changed = (torch.from_numpy(to_uint8(cf["image"])) != src_img).any(-1)
        turn_on = torch.from_numpy(tgt[:, RENDERED_ATTRS.index(name)] == 1)
        region = dilate(attribute_region(src["labels"], cf["labels"], name, turn_on), px)
        per = changed.flatten(1).sum(1)
        out[name] = {
            "changed": int(changed.sum()),
            "inside": int((changed & region).sum()),
            "unchanged_flips": int((per == 0).sum()),
            "n": len(per),
        }
    return out
