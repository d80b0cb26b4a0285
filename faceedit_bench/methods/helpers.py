"""Frozen helpers shared by several methods (:class:`.contract.Helper`).

``parser_helper()``: the suite's BiSeNet face parser (public face-parsing.PyTorch checkpoint
layout, or a file saved by ``faceedit-bench parser train``), used inside the losses of SeCGAN,
Gu et al. and MagGAN + Seg. ``parse_probs(parser, images)`` gives its 19-class probabilities
at the images' size with gradients flowing through it into the images.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .contract import Helper

PARSER_RECIPE = ("make one for SynthFaces with `faceedit-bench parser train --base 16 --out "
                 "data/weights/parser_synth.pt` (README: Face parser), or use the public BiSeNet "
                 "checkpoint 79999_iter.pth of zllrunning/face-parsing.PyTorch")


def _load_parser(path: str) -> torch.nn.Module:
    from ..parsing.weights import load_bisenet

    return load_bisenet(path, eval_mode=True)


def parser_helper() -> Helper:
    """The frozen BiSeNet parser, from ``method.model.helpers.parser`` or $FACEEDIT_PARSER_WEIGHTS."""
    from ..parsing.weights import ENV_VAR

    return Helper("parser", _load_parser, ENV_VAR, PARSER_RECIPE)


def parse_probs(parser: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """19-class probabilities (B x 19 x H x W) of ``images`` in [-1, 1], differentiable in the
    images: the parser's own input normalisation and size (``parsing.preprocess``), resized back."""
    return parse_logits(parser, images).softmax(1)


def parse_log_probs(parser: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """As :func:`parse_probs`, as log-probabilities (``log_softmax``: finite where a probability
    underflows; for cross-entropies through the parser, SeCGAN eq. 11)."""
    return parse_logits(parser, images).log_softmax(1)


def parse_logits(parser: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The parser's main-head logits (float32) for ``images`` in [-1, 1], at their size."""
    from ..parsing.preprocess import normalize, resize

    h, w = images.shape[-2:]
    x = (images.float() + 1.0) * 0.5
    size = getattr(parser, "input_size", None)
    if size is not None:
        x = resize(x, (size, size))
    logits = parser(normalize(x))
    logits = logits[0] if isinstance(logits, (tuple, list)) else logits
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
    return logits.float()
