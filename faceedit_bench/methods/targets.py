"""Target sampling and attribute encodings of the official code (implementations.md §0).

Three conventions, each recorded as protocol fields by the method that uses it:

- ``attgan``: AttGAN v1 / AttGAN-PyTorch. Training code ``a' = (2a - 1) * thres_int`` with
  ``thres_int = 0.5``; targets are the batch's own labels shuffled (``torch.randperm``). Test: the
  non-edited attributes stay at ±thres_int, the edited ones are multiplied by
  ``test_int / thres_int`` (AttGAN-PyTorch ``test.py``), i.e. become ``±test_int``.
- ``stgan``: the generator sees the difference ``b' - a'`` (training values {-1, 0, +1});
  reconstruction uses the zero difference. Test: the released ``test.py`` multiplies the edited
  target by ``test_int`` without dividing by thres_int, so ``test_int = 2`` (the paper's numbers)
  gives target ±1 and source ∓0.5: diff ±1.5.
- ``stargan``: raw {0, 1} labels, targets shuffled within the batch (``label_org[rand_idx]``).

"Edited attributes" at test time are the columns where target and source differ (so a hair
colour cleared by ``check_attribute_conflict`` is scaled too; the official scripts scale only
the one inverted attribute — with single flips on one-hot hair colours this differs only on the
cleared column; recorded as ``scale_changed_only``).
"""
from __future__ import annotations

import torch

ENCODINGS = ("attgan", "stgan", "stargan")
#: training target sampling: the official codes' batch shuffle, or one attribute flipped per
#: sample (the evaluation protocol's single flips, conflict rules applied; a CPU-recipe option)
SAMPLINGS = ("shuffle", "flip_one")


def shuffled_targets(attrs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Targets = the batch's labels permuted across the batch (all three official codes)."""
    perm = torch.randperm(attrs.shape[0], generator=generator).to(attrs.device)
    return attrs[perm]


def flip_one_targets(attrs: torch.Tensor, names, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each sample's labels with one uniformly drawn attribute inverted, then the test-time
    conflict rules (:func:`..protocol.check_attribute_conflict`): the training pairs have the
    distribution of the evaluation's single flips."""
    from ..protocol import check_attribute_conflict

    pick = torch.randint(len(names), (attrs.shape[0],), generator=generator).to(attrs.device)
    out = attrs.clone()
    rows = torch.arange(attrs.shape[0], device=attrs.device)
    out[rows, pick] = 1 - out[rows, pick]
    for j, name in enumerate(names):
        sel = pick == j
        if bool(sel.any()):
            out[sel] = check_attribute_conflict(out[sel], name, names)
    return out


def sample_targets(attrs: torch.Tensor, names, sampling: str = "shuffle",
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Training targets under ``sampling`` (:data:`SAMPLINGS`)."""
    if sampling == "shuffle":
        return shuffled_targets(attrs, generator)
    if sampling == "flip_one":
        return flip_one_targets(attrs, names, generator)
    raise ValueError(f"target_sampling must be one of {SAMPLINGS}, got {sampling!r}")


def attgan_code(attrs: torch.Tensor, thres_int: float = 0.5) -> torch.Tensor:
    """``(2a - 1) * thres_int``: {0,1} -> {-thres_int, +thres_int} (AttGAN v1 / PyTorch train)."""
    return (attrs * 2 - 1) * thres_int


def _check(src: torch.Tensor, tgt: torch.Tensor) -> None:
    if src.shape != tgt.shape or src.ndim != 2:
        raise ValueError(
            f"src_attrs and tgt_attrs must both be B x A; got {tuple(src.shape)} and {tuple(tgt.shape)}"
        )


def attgan_test_code(src: torch.Tensor, tgt: torch.Tensor, intensity: float, thres_int: float = 0.5) -> torch.Tensor:
    """AttGAN test code: ±thres_int, edited columns scaled by ``intensity / thres_int``."""
    _check(src, tgt)
    code = attgan_code(tgt, thres_int)
    changed = (tgt != src).to(code.dtype)
    return code * (1 + changed * (intensity / thres_int - 1))


def stgan_train_diff(src: torch.Tensor, tgt: torch.Tensor, thres_int: float = 0.5) -> torch.Tensor:
    """STGAN training input ``b' - a'`` (values in {-2 thres_int, 0, +2 thres_int})."""
    _check(src, tgt)
    return attgan_code(tgt, thres_int) - attgan_code(src, thres_int)


def stgan_test_diff(src: torch.Tensor, tgt: torch.Tensor, intensity: float, thres_int: float = 0.5) -> torch.Tensor:
    """STGAN released ``test.py``: edited target ``(2b-1) * thres_int * test_int``, minus ``a'``."""
    _check(src, tgt)
    b = attgan_code(tgt, thres_int)
    changed = (tgt != src).to(b.dtype)
    b = b * (1 + changed * (intensity - 1))
    return b - attgan_code(src, thres_int)


def stargan_test_labels(src: torch.Tensor, tgt: torch.Tensor, intensity: float) -> torch.Tensor:
    """StarGAN: raw labels; ``intensity`` != 1 moves the changed labels ``src + k (tgt - src)``."""
    _check(src, tgt)
    return src + intensity * (tgt - src)


def encoding_protocol(encoding: str, thres_int: float, test_intensity: float,
                      sampling: str = "shuffle") -> dict:
    """Protocol fields describing an encoding (written into every result record)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown attribute encoding {encoding!r}; expected one of {ENCODINGS}")
    train = {
        "attgan": f"(2a-1)*{thres_int}",
        "stgan": f"diff (2b-1)*{thres_int} - (2a-1)*{thres_int}",
        "stargan": "raw {0,1}",
    }[encoding]
    return {
        "attr_encoding": encoding,
        "attr_encoding_train": train,
        "thres_int": thres_int if encoding != "stargan" else None,
        "target_sampling": {"shuffle": "shuffle_batch"}.get(sampling, sampling),
        "test_intensity": float(test_intensity),
        "scale_changed_only": True,
    }
