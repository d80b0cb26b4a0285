"""PSNR and SSIM of reconstructions, as sum-reduced torchmetrics Metrics (reference/metrics.md §5).

Inputs are float B×3×H×W in [-1, 1] (the suite's image range); both are mapped to [0, 1]
(data_range 1) and, with ``quantize=True`` (default), rounded to 8-bit levels as a saved PNG
would be. Values are the **mean of per-image values** (the papers' convention), not the PSNR of
the pooled MSE. SSIM settings, selectable by ``mode``:

- ``"skimage"`` (default): ``skimage.metrics.structural_similarity(..., channel_axis=-1,
  data_range=1)`` defaults: 7×7 uniform window, sample covariance, border of 3 cropped,
  per-channel SSIM averaged — the common practice of face-editing papers.
- ``"gaussian"``: Wang et al.: 11-tap Gaussian σ=1.5 (skimage ``gaussian_weights=True,
  use_sample_covariance=False``), border of 5 cropped; equals skimage with those settings.

Both crop exactly the filter radius, so padding never matters and a 'valid' convolution in
float64 reproduces skimage. PSNR of identical images is capped at ``max_psnr`` (100 dB) so that
the mean stays finite.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics import Metric

K1, K2 = 0.01, 0.03


def to_unit(x: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """[-1, 1] float -> [0, 1] float64 (rounded to 1/255 steps when ``quantize``)."""
    x = ((x.detach().double() + 1) / 2).clamp(0, 1)
    return torch.round(x * 255) / 255 if quantize else x


def psnr_per_image(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0,
                   max_psnr: float = 100.0) -> torch.Tensor:
    """PSNR of each image pair (B×C×H×W, same range), skimage's formula 10·log10(dr²/MSE)."""
    mse = ((a.double() - b.double()) ** 2).flatten(1).mean(1)
    floor = data_range ** 2 / 10 ** (max_psnr / 10)
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(floor))


def _window(mode: str, device) -> tuple[torch.Tensor, bool]:
    if mode == "skimage":
        w = torch.full((7,), 1 / 7, dtype=torch.float64, device=device)
        return w, True
    if mode == "gaussian":
        sigma, radius = 1.5, int(3.5 * 1.5 + 0.5)      # scipy gaussian_filter, truncate=3.5
        t = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
        w = torch.exp(-0.5 * (t / sigma) ** 2)
        return w / w.sum(), False
    raise ValueError(f"SSIM mode {mode!r}: expected 'skimage' or 'gaussian'")


def ssim_per_image(a: torch.Tensor, b: torch.Tensor, mode: str = "skimage",
                   data_range: float = 1.0) -> torch.Tensor:
    """SSIM of each pair (B×C×H×W), mean over channels and the cropped map, as skimage."""
    w, sample_cov = _window(mode, a.device)
    k = w.numel()
    if min(a.shape[-2:]) < k:
        raise ValueError(f"SSIM mode {mode!r} needs images of at least {k}x{k}, got {tuple(a.shape[-2:])}")
    B, C, H, W = a.shape
    a = a.double().reshape(B * C, 1, H, W)
    b = b.double().reshape(B * C, 1, H, W)

    def filt(x):  # separable 'valid' filter
        x = F.conv2d(x, w.view(1, 1, 1, k))
        return F.conv2d(x, w.view(1, 1, k, 1))

    ux, uy = filt(a), filt(b)
    uxx, uyy, uxy = filt(a * a), filt(b * b), filt(a * b)
    cov_norm = k * k / (k * k - 1) if sample_cov else 1.0
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s.reshape(B, C, -1).mean(2).mean(1)


class _MeanPerImage(Metric):
    full_state_update = False
    is_differentiable = False

    def __init__(self, quantize: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.quantize = quantize
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def _values(self, a, b):
        raise NotImplementedError

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.shape != target.shape or preds.ndim != 4:
            raise ValueError(f"{type(self).__name__}.update: expected two B x C x H x W tensors of "
                             f"one shape, got {tuple(preds.shape)} and {tuple(target.shape)}")
        v = self._values(to_unit(preds, self.quantize), to_unit(target, self.quantize))
        self.total += v.sum()
        self.count += v.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count if int(self.count) else torch.tensor(math.nan)


class PSNR(_MeanPerImage):
    """Mean per-image PSNR (dB) of images in [-1, 1], computed on [0, 1] with data_range 1."""

    higher_is_better = True

    def __init__(self, quantize: bool = True, max_psnr: float = 100.0, **kwargs) -> None:
        super().__init__(quantize, **kwargs)
        self.max_psnr = max_psnr

    def _values(self, a, b):
        return psnr_per_image(a, b, 1.0, self.max_psnr)


class MeanL1(_MeanPerImage):
    """Mean per-image L1 (mean over pixels and channels) of images in [-1, 1], on [0, 1]; not
    uint8-rounded by default, in the units of the counterfactual L1 (metrics/counterfactual.py)."""

    higher_is_better = False

    def __init__(self, quantize: bool = False, **kwargs) -> None:
        super().__init__(quantize, **kwargs)

    def _values(self, a, b):
        return (a - b).abs().flatten(1).mean(1)


class SSIM(_MeanPerImage):
    """Mean per-image SSIM of images in [-1, 1], on [0, 1]; ``mode`` "skimage" | "gaussian"."""

    higher_is_better = True

    def __init__(self, mode: str = "skimage", quantize: bool = True, **kwargs) -> None:
        super().__init__(quantize, **kwargs)
        _window(mode, "cpu")
        self.mode = mode

    def _values(self, a, b):
        return ssim_per_image(a, b, self.mode, 1.0)
