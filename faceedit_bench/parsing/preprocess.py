"""Official BiSeNet preprocessing and inference (face-parsing.PyTorch ``test.py``/``evaluate.py``).

Official: PIL RGB image -> resize 512x512 bilinear -> ``ToTensor`` -> ``Normalize(ImageNet
mean/std)`` -> ``net(x)[0]`` -> argmax. Here on batched tensors: the resize is
``F.interpolate(bilinear, antialias=True)`` (PIL's bilinear filter is antialiased when shrinking;
it also rounds to uint8 after resizing, we do not), and we return the softmax probabilities of
the main head resized back to the input size (or ``out_size``), so callers can take the argmax
or keep soft masks.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_unit_range(images) -> torch.Tensor:
    """Float B x 3 x H x W in [0, 1] from uint8 (B,H,W,3) / (H,W,3) arrays or tensors, or from
    float B x 3 x H x W tensors in [-1, 1] (the suite's image convention, DESIGN §3)."""
    if isinstance(images, np.ndarray):
        if not images.flags.writeable or not images.flags.c_contiguous:
            images = np.array(images)  # memmaps opened read-only: copy the batch
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images: expected a numpy array or torch tensor, got {type(images).__name__}")
    if images.dtype == torch.uint8:
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"uint8 images: expected shape (N, H, W, 3), got {tuple(images.shape)}")
        return images.permute(0, 3, 1, 2).float().div_(255.0)
    if images.is_floating_point():
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"float images: expected shape (N, 3, H, W) in [-1, 1], got {tuple(images.shape)}")
        return (images.float() + 1.0) * 0.5
    raise TypeError(f"images: expected uint8 (N,H,W,3) or float (N,3,H,W) in [-1,1], got {images.dtype}")


def resize(x: torch.Tensor, size, mode: str = "bilinear") -> torch.Tensor:
    """Bilinear resize, antialiased when shrinking (as PIL's bilinear filter)."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=shrink)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of [0, 1] images (torchvision ``Normalize``)."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def preprocess(images, input_size: int | None = 512, device=None) -> torch.Tensor:
    """Images (see :func:`to_unit_range`) -> normalised B x 3 x S x S network input."""
    x = to_unit_range(images)
    if device is not None:
        x = x.to(device)
    if input_size is not None:
        x = resize(x, (input_size, input_size))
    return normalize(x)


@torch.no_grad()
def parse(model, images, out_size=None, device=None) -> torch.Tensor:
    """19-class probabilities B x C x H x W of ``images`` at their own size (or ``out_size``).

    The model's ``input_size`` (512 for the public checkpoint) sets the parsing resolution.
    """
    if device is None:
        device = next(model.parameters()).device
    x = to_unit_range(images)
    h, w = x.shape[-2:]
    if out_size is None:
        out_size = (h, w)
    elif isinstance(out_size, int):
        out_size = (out_size, out_size)
    x = x.to(device)
    input_size = getattr(model, "input_size", 512)
    if input_size is not None:
        x = resize(x, (input_size, input_size))
    logits = model(normalize(x))[0]
    probs = torch.softmax(logits.float(), dim=1)
    return resize(probs, out_size)


@torch.no_grad()
def parse_labels(model, images, out_size=None, device=None) -> torch.Tensor:
    """Hard uint8 label maps B x H x W (argmax of :func:`parse`)."""
    return parse(model, images, out_size=out_size, device=device).argmax(1).to(torch.uint8)
