"""Protocol facts shared by every method: attribute vocabulary, encodings, splits, crops, conflicts.

Sources: ../shared/DESIGN.md §4 and reference/implementations.md §0 (LynnHo AttGAN/STGAN,
yunjey StarGAN). Everything that changes a number is a field of :class:`Protocol` and is
written into every result record.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Sequence

import torch

#: The 40 CelebA attributes in the order of ``list_attr_celeba.txt`` (LynnHo/STGAN ``ATT_ID``).
CELEBA_ATTRS: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

#: SynthFaces images of the default export (``data.synth_n``): 4,250 / 250 / 500 by line order,
#: so the test split holds the n >= 500 images issue 14's targets are measured on.
DEFAULT_SYNTH_N = 5000

#: The 13 attributes of AttGAN / STGAN / MagGAN / SeCGAN, in their order (DESIGN §4).
DEFAULT_ATTRS: tuple[str, ...] = (
    "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows", "Eyeglasses",
    "Male", "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin", "Young",
)

HAIR_COLOURS: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")

#: CelebA split by line order of list_attr_celeba.txt (AttGAN/STGAN/MagGAN/SeCGAN).
CELEBA_SPLIT = {"train": (0, 182_000), "val": (182_000, 182_637), "test": (182_637, 202_599)}
#: CelebA-HQ split by HQ index (28,000 / 500 / 1,500).
CELEBAHQ_SPLIT = {"train": (0, 28_000), "val": (28_000, 28_500), "test": (28_500, 30_000)}

#: Crops on the 178x218 aligned CelebA images, as (top, left, height, width).
CROPS = {
    "attgan170": (26, 3, 170, 170),   # AttGAN/STGAN: 170x170 at offset (26, 3)
    "center178": (20, 0, 178, 178),   # StarGAN/SeCGAN: 178 center crop of 218x178
    "none": None,
}


def validate_attrs(attrs: Sequence[str]) -> tuple[str, ...]:
    """Check an attribute list against the 40 CelebA names; raise naming the unknown one."""
    attrs = tuple(attrs)
    for name in attrs:
        if name not in CELEBA_ATTRS:
            raise ValueError(
                f"unknown attribute {name!r}; expected one of the 40 CelebA names: "
                + ", ".join(CELEBA_ATTRS)
            )
    if len(set(attrs)) != len(attrs):
        raise ValueError(f"attribute list has duplicates: {list(attrs)}")
    return attrs


def check_attribute_conflict(
    attrs: torch.Tensor, changed: str, names: Sequence[str], mustache_beard: bool = False
) -> torch.Tensor:
    """Apply the test-time conflict rules after attribute ``changed`` was set (AttGAN/STGAN).

    ``attrs`` is B x A in {0,1}; returns a corrected copy. Rules (implementations.md §0):
    turning ON Bald/Receding_Hairline clears Bangs; ON Bangs clears Bald/Receding_Hairline;
    ON one hair colour clears the others; ON Straight/Wavy clears the other. The
    Mustache/No_Beard rule (AttGAN-PyTorch only) is off unless ``mustache_beard``.
    """
    out = attrs.clone()
    idx = {n: i for i, n in enumerate(names)}
    if changed not in idx:
        raise KeyError(f"attribute {changed!r} is not in the configured list {list(names)}")
    on = out[:, idx[changed]] > 0.5

    def clear(others: Sequence[str]) -> None:
        for other in others:
            if other in idx and other != changed:
                out[on, idx[other]] = 0

    if changed in ("Bald", "Receding_Hairline"):
        clear(["Bangs"])
    elif changed == "Bangs":
        clear(["Bald", "Receding_Hairline"])
    elif changed in HAIR_COLOURS:
        clear(HAIR_COLOURS)
    elif changed in ("Straight_Hair", "Wavy_Hair"):
        clear(["Straight_Hair", "Wavy_Hair"])
    elif mustache_beard and changed == "Mustache":
        # AttGAN-PyTorch: Mustache ON sets No_Beard = 0.
        clear(["No_Beard"])
    elif mustache_beard and changed == "No_Beard":
        clear(["Mustache"])
    return out


def single_flip_targets(
    attrs: torch.Tensor, names: Sequence[str], mustache_beard: bool = False
) -> list[torch.Tensor]:
    """For each attribute i, the target vector with i inverted and conflicts resolved."""
    targets = []
    for i, name in enumerate(names):
        tgt = attrs.clone()
        tgt[:, i] = 1 - tgt[:, i]
        targets.append(check_attribute_conflict(tgt, name, names, mustache_beard))
    return targets


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Every setting that changes a reported number; serialised into each result record."""

    attrs: tuple[str, ...] = DEFAULT_ATTRS
    split: str = "attgan"            # attgan (182000/637/19962) | stargan | celebahq
    crop: str = "attgan170"          # key of CROPS
    resize_filter: str = "bicubic"
    test_intensity: float = 1.0      # multiplier on the edited attribute (method-specific parity)
    thres_int: float = 0.5           # training encoding a' = (2a-1)*thres_int
    mustache_beard_conflict: bool = False
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["attrs"] = list(self.attrs)
        return d

    def hash(self) -> str:
        return stable_hash(self.to_dict())


def stable_hash(obj: Any, n: int = 16) -> str:
    """md5 of the canonical JSON of ``obj`` (sorted keys), truncated to ``n`` hex chars."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.md5(blob).hexdigest()[:n]


def file_hash(path: str, n: int = 16, chunk: int = 1 << 20) -> str:
    """md5 of a file's bytes, truncated to ``n`` hex chars (weights, source files)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:n]
