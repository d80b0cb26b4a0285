"""Feature extractors for FID / IS / ssFID, loaded only from local weight files.

- :class:`InceptionExtractor`: torch-fidelity 0.4.0's ``FeatureExtractorInceptionV3``
  ("inception-v3-compat": TF1-bilinear resize to 299, (x−128)/128), returning pool3 ``2048``
  and ``logits_unbiased`` (pool3·fcᵀ, 1008 classes) in one forward (reference/metrics.md §1.1).
  Weights: the torch-fidelity / pytorch-fid file (``weights-inception-2015-12-05-6726825d.pth``,
  same tensors as ``pt_inception-2015-12-05-6726825d.pth``), 566 tensors, strict load.
- :class:`SwAVExtractor`: ssFID's SwAV ResNet-50 (Morozov et al. 2021; official
  stanis-morozov/self-supervised-gan-eval): torchvision ``resnet50`` with ``fc`` = Identity,
  2048-d global-average-pool features; ``swav_800ep_pretrain.pth.tar`` layout (``module.``
  prefixes, optional ``state_dict`` container, projection head / prototypes ignored);
  preprocessing: shorter side to 224 (bilinear, antialias), ImageNet mean/std, no crop (§3).
- :class:`ClassifierExtractor`: the suite's attribute classifier's 512-d penultimate features
  (for FID on SynthFaces when no Inception weights exist; reported as ``fid_clf``).

All take float B×3×H×W images in [-1, 1] and quantise them to uint8 as a saved PNG would
(``round((x+1)/2·255)``), so in-memory scores equal scores of written files.

Inception and SwAV run by default (``fast=True``) on the inference-only fast path of
``fast_inference.py``: BatchNorm folded into the convolutions, channels_last, torch-fidelity's
TF1 resize done separably — the same features up to float32 round-off (max deviation ~1e-5 of
the largest feature; tests assert < 1e-4) at ~1.5x less CPU per forward (benchmarks/RESULTS.md).
``fast=False`` runs the unmodified modules (torch-fidelity's ``FeatureExtractorInceptionV3.forward``;
torchvision's ResNet-50), as the reference.
"""
from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..protocol import file_hash
from .fast_inference import inception_features, prepare_fast
from ..io_utils import load_tensor_file

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_SOURCE = ("torch-fidelity v0.2.0 release: https://github.com/toshas/torch-fidelity/releases/"
                    "download/v0.2.0/weights-inception-2015-12-05-6726825d.pth (same tensors as "
                    "pytorch-fid's pt_inception-2015-12-05-6726825d.pth)")
SWAV_FILE = "swav_800ep_pretrain.pth.tar"
SWAV_SOURCE = ("SwAV (facebookresearch/swav): https://dl.fbaipublicfiles.com/deepcluster/"
               "swav_800ep_pretrain.pth.tar (the file the official ssFID code uses)")
INCEPTION_ENV, SWAV_ENV = "FACEEDIT_INCEPTION_WEIGHTS", "FACEEDIT_SWAV_WEIGHTS"


class MissingWeightsError(FileNotFoundError):
    """A weights file is absent; the message names it and where it comes from."""


def require_file(path, expected_name: str, source: str, env: str) -> Path:
    """Return ``path`` as a Path or raise :class:`MissingWeightsError` saying where to get it."""
    if path is None or not Path(path).is_file():
        where = f"'{path}' does not exist" if path is not None else "no path was given"
        raise MissingWeightsError(
            f"weights file {expected_name} not found ({where}). Download it from {source}, "
            f"then pass its path (or set ${env}=/path/to/{expected_name}). Nothing is downloaded "
            "automatically.")
    return Path(path)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8, rounding as ``torchvision.utils.save_image`` / PNG writing."""
    return ((images.detach().float() + 1) / 2 * 255 + 0.5).clamp(0, 255).to(torch.uint8)


class InceptionExtractor(nn.Module):
    """torch-fidelity Inception-v3; ``forward(images) -> {"2048": B×2048, "logits_unbiased": B×1008}``.

    ``fast=True`` (default): the same modules with BN folded, channels_last
    (``fast_inference.inception_features``); ``fast=False``: torch-fidelity's own forward."""

    name = "inception-v3-compat"
    num_features = 2048

    def __init__(self, weights_path=None, fast: bool = True) -> None:
        super().__init__()
        path = require_file(weights_path or os.environ.get(INCEPTION_ENV), INCEPTION_FILE,
                            INCEPTION_SOURCE, INCEPTION_ENV)
        from torch_fidelity import feature_extractor_inceptionv3 as fe

        state = load_tensor_file(path)
        # torch-fidelity would unpickle the file with weights_only off; hand it the safely loaded dict.
        with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: state):
            self.net = fe.FeatureExtractorInceptionV3(self.name, ["2048", "logits_unbiased"])
        self.fast = bool(fast)
        if self.fast:
            prepare_fast(self.net)
        self.impl = "BN folded, channels_last" if self.fast else "torch-fidelity forward"
        self.weights_hash = file_hash(str(path))

    @torch.no_grad()
    def forward(self, images: torch.Tensor, already_uint8: bool = False) -> dict:
        x = images if already_uint8 else to_uint8(images)
        f2048, logits = inception_features(self.net, x) if self.fast else self.net(x)
        return {"2048": f2048, "logits_unbiased": logits}


def load_swav_resnet50(weights_path) -> nn.Module:
    """torchvision ResNet-50 trunk (fc = Identity) with SwAV weights from the official file."""
    import torchvision

    path = require_file(weights_path, SWAV_FILE, SWAV_SOURCE, SWAV_ENV)
    state = load_tensor_file(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k.replace("module.", "", 1) if k.startswith("module.") else k: v for k, v in state.items()}
    net = torchvision.models.resnet50(weights=None)
    net.fc = nn.Identity()
    missing, _unexpected = net.load_state_dict(state, strict=False)
    if missing:  # a wrong prefix would silently load nothing (reference/metrics.md §3)
        raise ValueError(f"{path}: not a SwAV ResNet-50 state dict; {len(missing)} trunk keys "
                         f"missing, e.g. {missing[:3]}")
    return net.eval().requires_grad_(False)


class SwAVExtractor(nn.Module):
    """``forward(images) -> B×2048`` SwAV pool features, ssFID preprocessing.

    ``fast=True`` (default): BN folded into the convolutions, channels_last
    (``fast_inference.prepare_fast``); ``fast=False``: torchvision's ResNet-50 as loaded."""

    name = "swav-resnet50"
    num_features = 2048
    MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

    def __init__(self, weights_path=None, size: int = 224, fast: bool = True) -> None:
        super().__init__()
        path = weights_path or os.environ.get(SWAV_ENV)
        self.net = load_swav_resnet50(path)
        self.fast = bool(fast)
        if self.fast:
            prepare_fast(self.net)
        self.impl = "BN folded, channels_last" if self.fast else "torchvision forward"
        self.size = size
        self.weights_hash = file_hash(str(path))
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = to_uint8(images).float()
        h, w = x.shape[-2:]
        s = self.size / min(h, w)
        x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear",
                          align_corners=False, antialias=True)
        x = x.round().clamp(0, 255) / 255  # PIL resizes in uint8
        x = (x - self.mean) / self.std
        if self.fast:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)


class ClassifierExtractor(nn.Module):
    """The suite's attribute classifier as a feature extractor (``features`` of classifier.py)."""

    name = "attr-classifier"

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.feature_dim
        self.weights_hash = getattr(classifier, "weights_hash", None)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = to_uint8(images).float() / 127.5 - 1
        return self.classifier.features(x)
