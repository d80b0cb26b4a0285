"""SeCGAN's 12 semantic classes and the merge of the 19 face-parser classes into them (§3, §6).

The paper (Sec. 3) parses faces into 12 segments: skin, eyebrows, eyes, eyeglasses, ears, earrings,
nose, mouth, lips, neck, hair and "others" (background, necklace, hat, cloth). Our parser emits
the 19 face-parsing.PyTorch classes of :mod:`faceedit_bench.parts`; ``SECGAN_MERGE`` maps each
SeCGAN class to the 19-class names it unites (implementations.md §6 table). The channel order is
the paper's listing order; the paper's own order is not stated (**[unverified]** there).

Data and conversions only, self-contained so that the table can move into ``parts.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .parts import NUM_PARTS, PART_INDEX

#: SeCGAN class -> the 19-class part names merged into it (every part exactly once).
SECGAN_MERGE: dict[str, tuple[str, ...]] = {
    "skin": ("skin",),
    "eyebrows": ("l_brow", "r_brow"),
    "eyes": ("l_eye", "r_eye"),
    "eyeglasses": ("eye_g",),
    "ears": ("l_ear", "r_ear"),
    "earrings": ("ear_r",),
    "nose": ("nose",),
    "mouth": ("mouth",),
    "lips": ("u_lip", "l_lip"),
    "neck": ("neck",),
    "hair": ("hair",),
    "others": ("background", "neck_l", "cloth", "hat"),
}
SECGAN_CLASSES: tuple[str, ...] = tuple(SECGAN_MERGE)
NUM_SECGAN_CLASSES = len(SECGAN_CLASSES)


def _part_to_secgan_index() -> tuple[int, ...]:
    """For each of the 19 parts (parts.py order) the index of its SeCGAN class; checks coverage."""
    lut = [-1] * NUM_PARTS
    for k, names in enumerate(SECGAN_MERGE.values()):
        for name in names:
            if lut[PART_INDEX[name]] != -1:
                raise ValueError(f"SECGAN_MERGE: part {name!r} is merged twice")
            lut[PART_INDEX[name]] = k
    missing = [n for n, i in PART_INDEX.items() if lut[i] == -1]
    if missing:
        raise ValueError(f"SECGAN_MERGE: parts {missing} are not merged into any class")
    return tuple(lut)


#: ``PART_TO_SECGAN[i]``: SeCGAN class index of part ``i`` of parts.PARTS.
PART_TO_SECGAN: tuple[int, ...] = _part_to_secgan_index()
#: For each SeCGAN class, the 19-class indices it unites.
SECGAN_GROUPS: tuple[tuple[int, ...], ...] = tuple(
    tuple(PART_INDEX[n] for n in names) for names in SECGAN_MERGE.values())


def _check_label_map(labels: torch.Tensor, name: str) -> None:
    if labels.dim() != 3 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer B x H x W label map, got "
                         f"{tuple(labels.shape)} {labels.dtype}")


def _check_class_maps(t: torch.Tensor, n: int, name: str) -> None:
    if t.dim() != 4 or t.size(1) != n:
        raise ValueError(f"{name} must be B x {n} x H x W, got {tuple(t.shape)}")


def merge_to_secgan(labels_19: torch.Tensor) -> torch.Tensor:
    """Hard 19-class label map (uint8/long, B x H x W) -> SeCGAN 12-class map (long, B x H x W).

    Values are not range-checked (that would sync the device); they must lie in [0, 19).
    """
    _check_label_map(labels_19, "labels_19")
    lut = torch.tensor(PART_TO_SECGAN, dtype=torch.long, device=labels_19.device)
    return lut[labels_19.long()]


def merge_probs_to_secgan(probs_19: torch.Tensor) -> torch.Tensor:
    """B x 19 x H x W class probabilities -> B x 12 x H x W: each class the sum of its parts'.

    Differentiable (L_sc, eq. 11, back-propagates through it into the frozen parser's input).
    """
    _check_class_maps(probs_19, NUM_PARTS, "probs_19")
    return torch.stack([probs_19[:, list(g)].sum(1) for g in SECGAN_GROUPS], dim=1)


def merge_log_probs_to_secgan(log_probs_19: torch.Tensor) -> torch.Tensor:
    """log of :func:`merge_probs_to_secgan`, by a per-class logsumexp (no underflow to -inf).

    Use this for ``log P(x_out)`` in eq. 11: ``merge_probs(...).log()`` is -inf (and its gradient
    NaN) wherever all the merged probabilities underflow.
    """
    _check_class_maps(log_probs_19, NUM_PARTS, "log_probs_19")
    return torch.stack([log_probs_19[:, list(g)].logsumexp(1) for g in SECGAN_GROUPS], dim=1)


def one_hot_12(labels: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """SeCGAN label map B x H x W -> one-hot mask B x 12 x H x W (G_seg's input s_in, Sec. 3.1)."""
    _check_label_map(labels, "labels")
    return F.one_hot(labels.long(), NUM_SECGAN_CLASSES).permute(0, 3, 1, 2).to(dtype)
