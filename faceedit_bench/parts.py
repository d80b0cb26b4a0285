"""The 19 face-parser classes and the attribute -> part tables (MagGAN AR+ / AR-).

Class order is face-parsing.PyTorch's (what the public BiSeNet checkpoint emits), DESIGN §4.
CelebAMask-HQ files use another order: always map by part *name*.
The AR tables are our definition (MagGAN gives them only as a figure; DESIGN §4 derives them
from the paper's examples). They are data: users may pass their own; their hash goes into every
MRE result.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .protocol import stable_hash

PARTS: tuple[str, ...] = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
    "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)
PART_INDEX: dict[str, int] = {name: i for i, name in enumerate(PARTS)}
NUM_PARTS = len(PARTS)

#: CelebAMask-HQ per-part file names -> our class names (map by name, never by index).
CELEBAMASK_HQ_FILE_PARTS: dict[str, str] = {
    "skin": "skin", "l_brow": "l_brow", "r_brow": "r_brow", "l_eye": "l_eye", "r_eye": "r_eye",
    "eye_g": "eye_g", "l_ear": "l_ear", "r_ear": "r_ear", "ear_r": "ear_r", "nose": "nose",
    "mouth": "mouth", "u_lip": "u_lip", "l_lip": "l_lip", "neck": "neck", "neck_l": "neck_l",
    "cloth": "cloth", "hair": "hair", "hat": "hat",
}

_MALE = ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "l_ear", "r_ear", "nose", "mouth",
         "u_lip", "l_lip", "neck", "hair")
_YOUNG = ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip",
          "neck", "hair")

#: attribute -> (AR+ parts: strengthened 0->1, AR- parts: weakened 1->0). DESIGN §4 table.
AR_TABLE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Bald": (("hair",), ("background", "skin", "l_ear", "r_ear", "ear_r")),
    "Bangs": (("skin", "l_brow", "r_brow", "hair"), ("hair", "skin")),
    "Black_Hair": (("hair",), ("hair",)),
    "Blond_Hair": (("hair",), ("hair",)),
    "Brown_Hair": (("hair",), ("hair",)),
    "Bushy_Eyebrows": (("l_brow", "r_brow", "skin"), ("l_brow", "r_brow")),
    "Eyeglasses": (("skin", "l_eye", "r_eye", "l_brow", "r_brow", "nose"), ("eye_g",)),
    "Male": (_MALE, _MALE),
    "Mouth_Slightly_Open": (("mouth", "u_lip", "l_lip", "skin"), ("mouth", "u_lip", "l_lip", "skin")),
    "Mustache": (("skin", "u_lip"), ("skin", "u_lip")),
    "No_Beard": (("skin", "neck"), ("skin", "neck", "u_lip", "l_lip")),
    "Pale_Skin": (("skin",), ("skin",)),
    "Young": (_YOUNG, _YOUNG),
    # Smiling (SaGAN's attribute) is not in MagGAN's table; mouth region both ways.
    "Smiling": (("mouth", "u_lip", "l_lip", "skin"), ("mouth", "u_lip", "l_lip", "skin")),
}


def validate_ar_table(table: Mapping[str, Sequence[Sequence[str]]]) -> dict:
    """Check a user-supplied AR table: each value is (AR+ names, AR- names) of known parts."""
    out = {}
    for attr, value in table.items():
        if len(value) != 2:
            raise ValueError(f"AR table entry {attr!r}: expected [AR+ parts, AR- parts], got {value!r}")
        for side in value:
            for part in side:
                if part not in PART_INDEX:
                    raise ValueError(
                        f"AR table entry {attr!r}: unknown part {part!r}; expected one of {list(PARTS)}"
                    )
        out[attr] = (tuple(value[0]), tuple(value[1]))
    return out


def ar_table_hash(table: Mapping = AR_TABLE) -> str:
    return stable_hash({k: [list(v[0]), list(v[1])] for k, v in sorted(table.items())})


def part_ids(names: Sequence[str]) -> list[int]:
    return [PART_INDEX[n] for n in names]


def region_mask(labels: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """Bool mask (same shape as the label map ``labels``) of pixels whose class is in ``names``."""
    ids = torch.tensor(part_ids(names), device=labels.device, dtype=labels.dtype)
    return torch.isin(labels, ids)


def ar_matrices(attrs: Sequence[str], table: Mapping = AR_TABLE,
                device=None, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """MagGAN's AR+ / AR- as A x 19 {0,1} matrices for ``attrs`` (rows in ``attrs`` order)."""
    plus = torch.zeros(len(attrs), NUM_PARTS, dtype=dtype, device=device)
    minus = torch.zeros_like(plus)
    for i, name in enumerate(attrs):
        if name not in table:
            raise KeyError(f"attribute {name!r} has no entry in the AR table (parts.AR_TABLE); "
                           "add one or pass your own table")
        p, m = table[name]
        plus[i, part_ids(p)] = 1
        minus[i, part_ids(m)] = 1
    return plus, minus


def ar_region_masks(masks: torch.Tensor, attrs: Sequence[str], table: Mapping = AR_TABLE
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-attribute region masks from per-part (soft) masks: ``M_i^± = min(1, Σ_p AR±_ip M_p)``
    (MagGAN §3, eq. 12's ``M_i``). ``masks`` B x 19 x H x W (:func:`part_masks`); returns the
    B x A x H x W masks for strengthening (AR+) and weakening (AR-) each attribute."""
    plus, minus = ar_matrices(attrs, table, masks.device, masks.dtype)
    return (torch.einsum("ap,bphw->bahw", plus, masks).clamp_max(1),
            torch.einsum("ap,bphw->bahw", minus, masks).clamp_max(1))


def part_masks(labels: torch.Tensor, dtype: torch.dtype = torch.float32, smooth: int = 0) -> torch.Tensor:
    """The one on-device soft-mask function: B x H x W label map -> B x 19 x H x W masks.

    ``smooth=0``: one-hot (hard masks, what MRE uses); ``smooth=k`` > 0: a (2k+1)^2 box blur of
    the one-hot maps (soft edges summing to 1 per pixel), for conditioning (MagGAN)."""
    masks = torch.nn.functional.one_hot(labels.long(), NUM_PARTS).permute(0, 3, 1, 2).to(dtype)
    if smooth > 0:
        k = 2 * smooth + 1
        masks = torch.nn.functional.avg_pool2d(masks, k, stride=1, padding=smooth, count_include_pad=False)
    return masks


def attribute_region(
    src_labels: torch.Tensor,
    tgt_labels: torch.Tensor | None,
    attr: str,
    turn_on: torch.Tensor,
    table: Mapping = AR_TABLE,
) -> torch.Tensor:
    """Region an edit of ``attr`` may touch: AR+ where ``turn_on`` else AR-, on source and target maps.

    ``src_labels``/``tgt_labels``: B x H x W; ``turn_on``: B bool. Returns B x H x W bool: the
    union over the maps of :func:`ar_region_masks` of the hard :func:`part_masks`, computed by
    indexing the same :func:`ar_matrices` rows with the labels (equal for one-hot masks).
    """
    plus, minus = ar_matrices([attr], table, src_labels.device, torch.bool)
    region = torch.zeros_like(src_labels, dtype=torch.bool)
    for m in [src_labels] + ([tgt_labels] if tgt_labels is not None else []):
        m = m.long()
        region |= torch.where(turn_on.view(-1, 1, 1), plus[0][m], minus[0][m])
    return region


def one_hot_parts(labels: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Hard masks on the device: B x H x W -> B x 19 x H x W (``part_masks(labels, dtype)``)."""
    return part_masks(labels, dtype)
