"""The root of every method (DESIGN §3, §10): attributes, resolution, frozen helpers, needs,
tracks, and the one call the evaluator makes, :meth:`EditMethod.edit`.

Adversarial editors derive from :class:`.adversarial.AdversarialEditor` (named networks and
training phases) built on top of it; the parameter-free identity derives from it directly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Sequence

import lightning.pytorch as pl
import torch

from ..protocol import DEFAULT_ATTRS, validate_attrs
from .contract import TRACKS, EditResult, Helper


class EditMethod(pl.LightningModule):
    """``edit(images, src_attrs, tgt_attrs, parts, intensity, attr_index=) -> EditResult``.

    Images are float B x 3 x H x W in [-1, 1]; attributes float B x A in {0, 1} in the order of
    ``self.attrs``; ``parts`` an optional uint8 B x H x W 19-class label map; ``attr_index`` the
    attribute each row flips (int or B long tensor; None for a reconstruction or a free edit).

    Declarations (class attributes): ``needs`` (what batches must hold, :data:`.contract.NEEDS`,
    checked against the store before training), ``tracks`` (evaluation tracks,
    :data:`.contract.TRACKS`), ``paper_test_intensity``. Frozen helpers
    (:meth:`frozen_helpers`) are loaded on first use by :meth:`helper` from the path given in
    ``helpers={name: path}`` (config ``method.model.helpers``) or the helper's environment
    variable; they follow the method across devices, are never trained and are not in the state
    dict: checkpoints record their files' sha256 (``faceedit_helpers``).
    """

    method_name: ClassVar[str] = "?"
    #: test intensity that reproduces the method's paper (implementations.md §0); recorded.
    paper_test_intensity: ClassVar[float] = 1.0
    needs: ClassVar[frozenset[str]] = frozenset()
    tracks: ClassVar[tuple[str, ...]] = ("attribute_flip",)
    #: the named networks ``edit`` uses: what a zoo entry keeps (faceedit_bench/zoo.py)
    inference_nets: ClassVar[tuple[str, ...]] = ("G",)

    def __init__(self, attrs: Sequence[str] = DEFAULT_ATTRS, res: int = 128,
                 helpers: dict[str, str] | None = None) -> None:
        super().__init__()
        bad = [t for t in self.tracks if t not in TRACKS]
        if bad:
            raise ValueError(f"{type(self).__name__}: unknown tracks {bad}; known: {list(TRACKS)}")
        self.attrs = validate_attrs(attrs)
        self.res = int(res)
        self.test_intensity = float(self.paper_test_intensity)
        self.helper_paths = {k: str(v) for k, v in (helpers or {}).items() if v}
        unknown = set(self.helper_paths) - set(self.frozen_helpers())
        if unknown:
            raise ValueError(f"{type(self).__name__}: helpers {sorted(unknown)} are not declared; "
                             f"declared: {sorted(self.frozen_helpers())}")
        self._helpers: dict[str, torch.nn.Module] = {}   # not submodules: no state dict, no optimiser
        #: the config variant this model was built from (None: the method's base config)
        self.variant: str | None = None

    @property
    def n_attrs(self) -> int:
        return len(self.attrs)

    @property
    def label_conditioned(self) -> bool:
        return "attribute_flip" in self.tracks

    # ----------------------------------------------------------------- frozen helpers
    def frozen_helpers(self) -> dict[str, Helper]:
        """Declared frozen helpers by name (default none)."""
        return {}

    def helper_path(self, name: str) -> str:
        """The weights file of helper ``name``; a one-line error when none is configured."""
        import os

        spec = self.frozen_helpers()[name]
        path = self.helper_paths.get(name) or os.environ.get(spec.env)
        if not path:
            raise FileNotFoundError(spec.missing_message(self.method_name))
        if not Path(path).is_file():
            raise FileNotFoundError(f"{spec.missing_message(self.method_name)} (no file at {path})")
        return path

    def helper(self, name: str) -> torch.nn.Module:
        """Helper ``name``, loaded on first use: eval mode, ``requires_grad=False``, on this
        method's device. Gradients flow through it into the trained networks."""
        if name not in self._helpers:
            net = self.frozen_helpers()[name].load(self.helper_path(name))
            net.requires_grad_(False).eval()
            self._helpers[name] = net.to(self.device)
        return self._helpers[name]

    def helper_hashes(self) -> dict[str, str]:
        """sha256 of each configured helper file (what checkpoints and records keep)."""
        from ..parsing.weights import file_sha256

        out = {}
        for name in self.frozen_helpers():
            try:
                out[name] = file_sha256(self.helper_path(name))
            except FileNotFoundError:
                continue
        return out

    def _apply(self, fn, *args, **kwargs):  # .to() / .cuda() / .half() also move the helpers
        out = super()._apply(fn, *args, **kwargs)
        for net in self._helpers.values():
            net._apply(fn, *args, **kwargs)
        return out

    def train(self, mode: bool = True):
        out = super().train(mode)
        for net in self._helpers.values():  # helpers stay in eval mode
            net.eval()
        return out

    # ----------------------------------------------------------------- the evaluator's call
    @torch.no_grad()
    def edit(self, images: torch.Tensor, src_attrs: torch.Tensor, tgt_attrs: torch.Tensor,
             parts: torch.Tensor | None = None, intensity: float | None = None, *,
             attr_index: int | torch.Tensor | None = None) -> EditResult:
        """``images`` edited from ``src_attrs`` to ``tgt_attrs`` (no grad, in [-1, 1]).

        ``intensity`` scales the edited attributes' code (None: :attr:`test_intensity`)."""
        raise NotImplementedError

    def check_edit_inputs(self, images: torch.Tensor, src: torch.Tensor, tgt: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be B x 3 x H x W, got {tuple(images.shape)}")
        if src.shape != (images.shape[0], self.n_attrs) or tgt.shape != src.shape:
            raise ValueError(
                f"src_attrs/tgt_attrs must be B x {self.n_attrs} (attrs {list(self.attrs)}), got "
                f"{tuple(src.shape)} / {tuple(tgt.shape)}")

    @torch.no_grad()
    def grid_columns(self, batch: dict) -> tuple[list[torch.Tensor], list[str]]:
        """Columns of the edit grid for a test ``batch`` (image, attrs, parts, ...): B x 3 x H x W
        tensors in [-1, 1] and their names. Default: input, reconstruction, one flip per
        attribute; a method overrides it to show its own (e.g. attention masks, transfers)."""
        from ..protocol import single_flip_targets

        x, src, parts = batch["image"], batch["attrs"].float(), batch.get("parts")
        cols = [x, self.edit(x, src, src, parts).images]
        cols += [self.edit(x, src, t, parts, attr_index=k).images
                 for k, t in enumerate(single_flip_targets(src, self.attrs))]
        return cols, ["input", "recon", *[f"flip {a}" for a in self.attrs]]

    @torch.no_grad()
    def sample_grid(self, images: torch.Tensor, attrs: torch.Tensor,
                    parts: torch.Tensor | None = None) -> torch.Tensor:
        """Rows = inputs; columns = input, reconstruction, one single-attribute flip per attribute.

        Returns (B * (2 + A)) x 3 x H x W in [-1, 1], row-major (for ``make_grid(nrow=2+A)``).
        """
        from ..protocol import single_flip_targets

        was_training = self.training
        self.eval()
        try:
            cols = [images, self.edit(images, attrs, attrs, parts).images]
            cols += [self.edit(images, attrs, t, parts, attr_index=k).images
                     for k, t in enumerate(single_flip_targets(attrs, self.attrs))]
        finally:
            self.train(was_training)
        return torch.stack(cols, 1).flatten(0, 1)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["faceedit_method"] = self.method_name
        checkpoint["faceedit_variant"] = self.variant
        checkpoint["faceedit_helpers"] = self.helper_hashes()

    def method_protocol(self) -> dict[str, Any]:
        """Method-specific protocol fields recorded with every result (encodings, variants)."""
        out: dict[str, Any] = {"method": self.method_name, "variant": self.variant,
                               "paper_test_intensity": self.paper_test_intensity,
                               "test_intensity": self.test_intensity}
        if self.frozen_helpers():
            out["helpers"] = self.helper_hashes()
        return out
