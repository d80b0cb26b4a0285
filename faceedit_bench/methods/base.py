"""The interface every method answers (DESIGN §3).

``EditMethod`` is the root LightningModule: it fixes the attribute list and resolution, and the
single call the evaluator makes, :meth:`EditMethod.edit`. Adversarial editors derive from the
shared GAN base built on top of it.
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import lightning.pytorch as pl
import torch

from ..protocol import DEFAULT_ATTRS, validate_attrs


class EditMethod(pl.LightningModule):
    """Root of every method: ``edit(images, src_attrs, tgt_attrs, parts) -> images``.

    Images are float B x 3 x H x W in [-1, 1]; attributes float B x A in {0, 1} in the order of
    ``self.attrs``; ``parts`` an optional uint8 B x H x W 19-class label map.
    """

    method_name: ClassVar[str] = "?"
    #: test intensity that reproduces the method's paper (implementations.md §0); recorded.
    paper_test_intensity: ClassVar[float] = 1.0
    #: whether the method is evaluated on the label-conditioned track (False for Gu et al.).
    label_conditioned: ClassVar[bool] = True

    def __init__(self, attrs: Sequence[str] = DEFAULT_ATTRS, res: int = 128) -> None:
        super().__init__()
        self.attrs = validate_attrs(attrs)
        self.res = int(res)

    @property
    def n_attrs(self) -> int:
        return len(self.attrs)

    @torch.no_grad()
    def edit(
        self,
        images: torch.Tensor,
        src_attrs: torch.Tensor,
        tgt_attrs: torch.Tensor,
        parts: torch.Tensor | None = None,
        intensity: float | None = None,
    ) -> torch.Tensor:
        """Return ``images`` edited from ``src_attrs`` to ``tgt_attrs`` (no grad, in [-1, 1]).

        ``intensity`` scales the edited attributes' code (None: :attr:`paper_test_intensity`).
        """
        raise NotImplementedError

    def method_protocol(self) -> dict[str, Any]:
        """Method-specific protocol fields recorded with every result (encodings, variants)."""
        return {"method": self.method_name, "paper_test_intensity": self.paper_test_intensity}
