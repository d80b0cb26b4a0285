"""Identity baseline: returns its input unchanged.

It bounds the metrics from one side: zero reconstruction error and MRE, attribute accuracy
equal to the classifier's error rate on flips.
"""
from __future__ import annotations

import torch

from . import register
from .base import EditMethod
from .contract import EditResult


@register("identity")
class IdentityMethod(EditMethod):
    """``edit`` returns a copy of the input; nothing to train."""

    def __init__(self, attrs=None, res: int = 128) -> None:
        from ..protocol import DEFAULT_ATTRS

        super().__init__(attrs or DEFAULT_ATTRS, res)
        # A parameter-free module still needs one tensor so Lightning can place it on a device.
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)

    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None, *, attr_index=None):
        self.check_edit_inputs(images, src_attrs, tgt_attrs)
        return EditResult(images.clone())

    def training_step(self, batch, batch_idx):  # nothing to learn
        return None

    def configure_optimizers(self):
        return None
