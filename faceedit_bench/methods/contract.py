"""The method contract's small types (DESIGN §10; stylegan2-ada's ``networks`` + ``phases``).

- :class:`Phase`: one optimiser, the named networks it updates, its loss and how often it runs.
- :class:`Helper`: a frozen helper network (face parser, identity net): loaded from a weights
  file, never trained, kept out of optimisers and checkpoints (recorded by file hash).
- :class:`EditResult`: what ``edit`` answers: images in [-1, 1] plus named extras (an attention
  mask, a predicted segmentation) that metrics may ask for by name.
- ``TRACKS``: the evaluation tracks a method may declare.
- ``NEEDS``: what a method may require of its batches, checked against the store's manifest
  before training (:func:`check_needs`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

#: evaluation tracks: label-conditioned flips (today's protocol) and synthesis from label maps
TRACKS = ("attribute_flip", "mask_to_face")

#: requirement -> how to satisfy it (the text of the one-line error when it is missing)
NEEDS: dict[str, str] = {
    "parts": "parser label maps in the store: build it with masks=gt (SynthFaces, CelebAMask-HQ) or "
             "`faceedit-bench masks --parser-weights FILE` (data.masks=parser)",
    "counterfactuals": "true counterfactuals: only SynthFaces stores have them (data=synth)",
}

LossFn = Callable[[dict, torch.Generator], "tuple[torch.Tensor, dict[str, torch.Tensor]]"]


@dataclass(frozen=True)
class Phase:
    """One optimiser step (or ``repeats`` of them) per iteration.

    ``updates``: names of the networks whose parameters this phase's Adam steps (every other
    trained network is frozen during its forward). ``loss(batch, rng) -> (loss, logs)``, or the
    name of such a method of the method (looked up at each step, so it can be replaced).
    ``repeats``: updates per iteration, each on a fresh chunk of the iteration's super-batch
    (n_critic for a WGAN critic). ``reuse_batch``: take the chunk of the previous update instead
    of a fresh one (StarGAN's G step). ``every``: run only on iterations ``it % every == 0``
    (its chunks are still drawn, so the sample stream stays fixed). ``lr`` / ``betas``: this
    phase's Adam settings (None: the method's ``lr`` / ``betas``).
    """

    name: str
    updates: tuple[str, ...]
    loss: LossFn | str
    repeats: int = 1
    reuse_batch: bool = False
    every: int = 1
    lr: float | None = None
    betas: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.updates:
            raise ValueError(f"phase {self.name!r}: updates must name at least one network")
        if self.repeats < 1 or self.every < 1:
            raise ValueError(f"phase {self.name!r}: repeats and every must be >= 1")
        object.__setattr__(self, "updates", tuple(self.updates))

    @property
    def fresh_chunks(self) -> int:
        """Chunks of the super-batch this phase consumes per iteration."""
        return self.repeats - (1 if self.reuse_batch else 0)


@dataclass(frozen=True)
class Helper:
    """A frozen helper: ``load(path) -> nn.Module`` from a local weights file.

    ``key``: the constructor argument (config ``method.model.helpers.<name>``) that gives the
    path; ``env``: the environment variable consulted when the key is unset; ``how_to_make``:
    one line on where the file comes from (e.g. the SynthFaces parser recipe).
    """

    name: str
    load: Callable[[str], torch.nn.Module]
    env: str
    how_to_make: str

    def missing_message(self, method: str) -> str:
        return (f"{method}: frozen helper {self.name!r} needs a weights file: set "
                f"method.model.helpers.{self.name}=PATH or ${self.env}; {self.how_to_make}")


@dataclass
class EditResult:
    """Edited images (B x 3 x H x W in [-1, 1]) and optional named extras (B x ... tensors),
    e.g. ``attention`` (B x 1 x H x W in [0, 1]) or ``segmentation`` (B x C x H x W)."""

    images: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not torch.is_tensor(self.images) or self.images.ndim != 4:
            raise TypeError("EditResult.images must be a B x 3 x H x W tensor")
        for name, value in self.extras.items():
            if not torch.is_tensor(value) or value.shape[0] != self.images.shape[0]:
                raise TypeError(f"EditResult.extras[{name!r}] must be a tensor with one row per image")


class RequirementError(ValueError):
    """The data lacks what a method declares it needs; the message names the fix."""


def check_needs(method_name: str, needs: frozenset[str] | set[str], have: Mapping[str, bool]) -> None:
    """Raise :class:`RequirementError` (one line naming the fix) when a declared need is not met.

    ``have``: need -> whether the data provides it (from the store manifest)."""
    for need in sorted(needs):
        if need not in NEEDS:
            raise ValueError(f"{method_name}: unknown requirement {need!r}; known: {sorted(NEEDS)}")
        if not have.get(need, False):
            raise RequirementError(f"{method_name} needs {need}, which this data lacks; fix: {NEEDS[need]}")


def as_edit_result(out) -> EditResult:
    """``out`` as an :class:`EditResult` (a bare tensor becomes one without extras)."""
    return out if isinstance(out, EditResult) else EditResult(out)


#: The mask_to_face track calls, on methods that declare it (Gu et al.):
#:   ``method.synthesize(target_parts, images, parts, component_images=None,
#:   component_parts=None) -> EditResult``
#: ``target_parts`` (B x H x W uint8, 19 classes): the label map to synthesise; ``images`` /
#: ``parts``: the source faces (background and, unless ``component_*`` are given, the
#: components); ``component_images`` / ``component_parts``: another face's components (transfer).
MASK_TO_FACE_CALL = "synthesize"
