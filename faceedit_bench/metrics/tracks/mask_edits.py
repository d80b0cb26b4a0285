"""Edited target masks of the mask_to_face track (Gu et al., CVPR 2019, §4.3 / Fig. 6: editing the
target mask edits the face) where the data knows the truth.

On SynthFaces the counterfactual's own label map **is** the true edited mask: for flip ``k``
(attribute ``k`` inverted with the conflict rules, exactly the attribute_flip track's flip),
``batch["cf_parts"][:, k]`` is what the mask becomes and ``batch["cf_image"][:, k]`` what the face
becomes. The edit ``cf_mask_<attr>`` synthesises from that map with the face's own components
and background (``synthesize(cf_parts[:, k], x, parts)``); ``components/mask_edit.py`` scores it
against ``cf_image[:, k]`` with the attribute_flip track's counterfactual error (and TARR with a
classifier, parsing accuracy with a parser), so a mask-to-face method stands beside the
attribute editors' flips of the same attribute.

Which attributes: those whose flip changes the label map, :data:`MASK_EXPRESSIBLE`, read off the
data (SynthFaces at 64 px, 96 faces: every flip of these changes the map of every face; the others
change none; ``tests/test_method_mgpe.py`` re-derives it from rendered faces). The rest change only
colours or texture (:data:`MASK_INEXPRESSIBLE`, with the reason recorded in the protocol and the
metric shown as "—").

Real data (no counterfactuals): no edit here. Rule-based edits (Fig. 6: hair on the forehead ->
skin, a longer mouth, ...) are one :func:`.mask_to_face.register_mask_edit` call each; scoring
them needs a component of their own (no truth exists).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from .mask_to_face import register_mask_edit_source

#: attributes whose SynthFaces flip changes the label map (hair / bangs / brows / eyeglasses /
#: mouth / mustache shapes; Male moves the hairline and hair length)
MASK_EXPRESSIBLE: tuple[str, ...] = (
    "Bald", "Bangs", "Bushy_Eyebrows", "Eyeglasses", "Male", "Mouth_Slightly_Open", "Mustache",
    "Smiling",
)
#: attributes whose flip changes no class of the label map, and why
MASK_INEXPRESSIBLE: dict[str, str] = {
    "Black_Hair": "hair colour: the label map is unchanged",
    "Blond_Hair": "hair colour: the label map is unchanged",
    "Brown_Hair": "hair colour: the label map is unchanged",
    "Gray_Hair": "hair colour: the label map is unchanged",
    "Pale_Skin": "skin tone: the label map is unchanged",
    "Young": "texture / shading only: the label map is unchanged",
    "No_Beard": "the beard is drawn inside the skin class: the label map is unchanged",
}
PREFIX = "cf_mask_"


def edit_name(attr: str) -> str:
    return f"{PREFIX}{attr}"


def counterfactual_edit_index(attrs: Sequence[str]) -> dict[str, int]:
    """Edit name -> attribute index for the mask-expressible attributes among ``attrs``."""
    return {edit_name(a): k for k, a in enumerate(attrs) if a in MASK_EXPRESSIBLE}


def inexpressible_status(attrs: Sequence[str]) -> dict[str, str]:
    """Attribute -> why it has no mask edit, for the attributes of ``attrs`` without one."""
    return {a: MASK_INEXPRESSIBLE.get(a, "not in MASK_EXPRESSIBLE (its flip's label-map change is "
                                         "unknown)") for a in attrs if a not in MASK_EXPRESSIBLE}


def _take(k: int) -> Callable[[torch.Tensor, dict], torch.Tensor]:
    def edit(parts: torch.Tensor, batch: dict) -> torch.Tensor:
        return batch["cf_parts"][:, k].to(parts.dtype)

    return edit


def counterfactual_mask_edits(setup) -> dict[str, Callable[[torch.Tensor, dict], torch.Tensor]]:
    """The run's ``cf_mask_<attr>`` edits: none unless the test data has counterfactuals."""
    if not getattr(setup, "counterfactual", False):
        return {}
    return {name: _take(k) for name, k in counterfactual_edit_index(setup.attrs).items()}


register_mask_edit_source("counterfactual", counterfactual_mask_edits)
