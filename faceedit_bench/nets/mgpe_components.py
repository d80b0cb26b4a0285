"""MGPE local embedding sub-network (Gu et al., CVPR 2019, §3.1, eq. 1).

Layouts from cientgu/Mask_Guided_Portrait_Editing ``models/networks.py`` (implementations.md §7).

Five component auto-encoders {E_local^i, G_local^i}: left eye, right eye, mouth (crops), skin
(skin + brows + nose) and hair (masked full images). Paper sizes at 256 px (§4; implementations.md
§7): eyes 32x48 (HxW), mouth 80x144, skin/hair 256x256. Each encoder is ``n`` x [conv 4x4 s2 ->
BN -> ReLU] then an FC head (FC 1024 -> ReLU -> FC ``embed_dim``); each has a *feature decoder*
(FC -> bottleneck, ``n - 2`` x [deconv 4x4 s2 -> BN -> ReLU] to ``feat_dim`` channels at 1/4 of
the crop, the window it fills in the generator's 1/4-resolution map: eyes 8x12, mouth 20x36,
skin/hair 64x64 at 256 px) and an *image decoder* (FC -> bottleneck, ``n`` deconvs, reflect-pad
conv 5x5 -> 3, tanh) for the local reconstruction loss, eq. 1.

Resolution: everything derives from ``res`` (a multiple of 64; **64 px is the minimum**, where the
eye crop is 8x12 and its map window 2x3; at 32 px the eye window would be 1x1.5). Crop sizes are
the paper's times ``res/256``; the number of stride-2 convs ``n`` is "halve while both sides are
even and the height stays >= 2" (256 px: eyes 4 -> 2x3, mouth 4 -> 5x9, skin 7 -> 2x2, exactly the
official layer lists). Widths count from the bottleneck, so at 64 * 2**k px the network is the
paper's minus (or plus) its highest-resolution layers and the FC sizes stay the paper's (G: 202 M
parameters at 64 px, 222 M at 128, 228 M at 256). Other multiples of 64 work but stop at larger
bottlenecks (384 px: eyes 6x9, mouth 15x27, skin 3x3), whose FCs make G 958 M parameters.

Choices (paper vs official code):

- ``embedding='vae'`` (default, official): the encoder gives (mu, logvar); in training
  ``z = mu + eps * exp(logvar / 2)``, at eval ``z = mu``. The official KL term is computed but
  never added to the loss (:meth:`LocalCodes.kl` gives it for logging). ``'ae'``: a plain
  auto-encoder, as the paper's text ("auto-encoder networks", eq. 1).
- Crop centres are the bounding-box centres of the component's labels in the label map
  (official ``aligned_dataset.py``), snapped so that the crop's top-left corner lies on the
  1/4-map grid: one box serves both the crop and the paste, and at 256 px the paste window equals
  the official one (``int(c/4 + 0.5) -/+ h/2``; the official crop is up to 2 px off its paste).
  Windows are clamped inside the image (the official code asserts instead). A missing component
  falls back to the official canonical centre (256 px, (y, x)): left eye (116, 96), right eye
  (116, 160), mouth (184, 128), scaled by ``res/256``.
- Masks: mouth crops are multiplied by the mouth mask, skin/hair images by theirs; eye crops are
  not masked (official; ``mask_eye_crops=True`` masks them too).
- Component BN momentum defaults to the official 0.9 (PyTorch semantics: running stats track the
  latest batch); the official code hard-codes BN here whatever ``--norm`` says.
- Convs followed by a norm have no bias (shared :mod:`.blocks`; the official ones carry a
  redundant bias) and the eye FCs have a bias (official: none): tests derive the official counts.

Label classes are referred to by name (:mod:`faceedit_bench.parts`, 19 face-parser classes).
Helen's 11 classes map as: skin = {skin, l_brow, r_brow, nose}, mouth = {mouth, u_lip, l_lip};
every class in no component (ears, neck, cloth, hat, eyeglasses, ...) is background, as in Helen.
``l_eye`` is the eye on the image's left (Helen label 4, official canonical x = 96).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

import torch
import torch.nn as nn

from ..parts import PART_INDEX, PARTS, region_mask
from .blocks import ConvTranspose2dBlock, LinearBlock, conv_trunk, fc_head

#: component order of the generator's concatenation (official ``pix2pixHD_mask_model.py``)
COMPONENTS: tuple[str, ...] = ("l_eye", "r_eye", "skin", "hair", "mouth")
CROPPED: tuple[str, ...] = ("l_eye", "r_eye", "mouth")
COMPONENT_PARTS: dict[str, tuple[str, ...]] = {
    "l_eye": ("l_eye",), "r_eye": ("r_eye",), "mouth": ("mouth", "u_lip", "l_lip"),
    "skin": ("skin", "l_brow", "r_brow", "nose"), "hair": ("hair",),
}
MAP_STRIDE = 4  # the generator's map is 1/4 of the image (official ``--n_downsample_global 2``)
EMBEDDINGS = ("vae", "ae")

# paper input sizes at 256 px (H, W) and the official number of stride-2 convs at 256 px
_PAPER_CROP = {"l_eye": (32, 48), "r_eye": (32, 48), "mouth": (80, 144), "skin": (256, 256),
               "hair": (256, 256)}
_PAPER_DOWN = {"l_eye": 4, "r_eye": 4, "mouth": 4, "skin": 7, "hair": 7}
# image decoder width of deconv m (m = 0 next to the bottleneck; p = the paper's count):
# min(dim * 2**max(p - 1 - m - shift, 0), max) (official: skin/hair 512,512,512,512,256,128,64;
# eyes/mouth 256,128,64,64)
_IMG_DEC_SHIFT = {"l_eye": 1, "r_eye": 1, "mouth": 1, "skin": 0, "hair": 0}
_CANONICAL_CENTRE = {"l_eye": (116, 96), "r_eye": (116, 160), "mouth": (184, 128)}  # at 256 px


class Geometry(NamedTuple):
    """Per-component sizes at one resolution: crop (H, W), stride-2 convs, bottleneck (h, w)."""

    crop: tuple[int, int]
    n_down: int
    bottleneck: tuple[int, int]

    @property
    def window(self) -> tuple[int, int]:
        """Size of the component's feature map in the generator's 1/4 map."""
        return self.crop[0] // MAP_STRIDE, self.crop[1] // MAP_STRIDE


def check_res(res: int) -> int:
    if res < 64 or res % 64:
        raise ValueError(f"res must be a multiple of 64 (>= 64: the eye window is res/32 x "
                         f"3*res/64 in the 1/4 map), got {res}")
    return res


def component_geometry(res: int) -> dict[str, Geometry]:
    """Crop sizes (paper's x ``res/256``), number of stride-2 convs and bottleneck per component."""
    check_res(res)
    out = {}
    for name, (h, w) in _PAPER_CROP.items():
        h, w = h * res // 256, w * res // 256
        n, bh, bw = 0, h, w
        while bh % 2 == 0 and bw % 2 == 0 and bh // 2 >= 2:
            n, bh, bw = n + 1, bh // 2, bw // 2
        out[name] = Geometry((h, w), n, (bh, bw))
    return out


def check_component_parts(parts: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Validate a component -> class-name table (keys: :data:`COMPONENTS`)."""
    if set(parts) != set(COMPONENTS):
        raise ValueError(f"component_parts must have the keys {COMPONENTS}, got {sorted(parts)}")
    for name, names in parts.items():
        bad = [p for p in names if p not in PART_INDEX]
        if bad or not names:
            raise ValueError(f"component_parts[{name!r}]: unknown or no classes {bad}; expected "
                             f"names from {PARTS}")
    return {k: tuple(parts[k]) for k in COMPONENTS}


def background_parts(parts: Mapping[str, Sequence[str]] = COMPONENT_PARTS) -> tuple[str, ...]:
    """Classes in no component: what the background fusing sub-network keeps."""
    used = {p for names in parts.values() for p in names}
    return tuple(p for p in PARTS if p not in used)


def _square_res(labels: torch.Tensor) -> int:
    if labels.dim() != 3 or labels.size(1) != labels.size(2):
        raise ValueError(f"labels must be a square B x H x W label map, got {tuple(labels.shape)}")
    return check_res(labels.size(-1))


def _bbox_centre(any_along: torch.Tensor) -> torch.Tensor:
    """Integer centre (first + last) // 2 of the True entries of each row of B x L (official)."""
    idx = torch.arange(any_along.size(1), device=any_along.device)
    first = torch.where(any_along, idx, any_along.size(1)).amin(1)
    last = torch.where(any_along, idx, -1).amax(1)
    return torch.div(first + last, 2, rounding_mode="floor")


def component_boxes(labels: torch.Tensor,
                    parts: Mapping[str, Sequence[str]] = COMPONENT_PARTS
                    ) -> dict[str, torch.Tensor]:
    """B x H x W label map -> {component: B x 4 long boxes (y0, x0, y1, x1)}, image pixels.

    The resolution is the label map's (square, a multiple of 64). Box sizes are the crop sizes of
    :func:`component_geometry`; corners are multiples of :data:`MAP_STRIDE`. Skin and hair get the
    whole image. A component absent from a map gets its canonical box (module docstring).
    """
    res = _square_res(labels)
    geo = component_geometry(res)
    b, dev = labels.size(0), labels.device
    full = torch.tensor([0, 0, res, res], device=dev).expand(b, 4)
    boxes = {}
    for name in COMPONENTS:
        if name not in CROPPED:
            boxes[name] = full
            continue
        mask = region_mask(labels, parts[name])
        present = mask.flatten(1).any(1)
        cy0, cx0 = (c * res // 256 for c in _CANONICAL_CENTRE[name])
        cy = torch.where(present, _bbox_centre(mask.any(2)), cy0)
        cx = torch.where(present, _bbox_centre(mask.any(1)), cx0)
        (mh, mw), m = geo[name].window, res // MAP_STRIDE
        my = torch.floor(cy / MAP_STRIDE - mh / 2 + 0.5).long().clamp(0, m - mh)
        mx = torch.floor(cx / MAP_STRIDE - mw / 2 + 0.5).long().clamp(0, m - mw)
        y0, x0 = my * MAP_STRIDE, mx * MAP_STRIDE
        h, w = geo[name].crop
        boxes[name] = torch.stack([y0, x0, y0 + h, x0 + w], 1)
    return boxes


def _window_index(boxes: torch.Tensor, h: int, w: int, scale: int = 1):
    """Advanced-index triple (batch, rows, cols) selecting each box's h x w window (at 1/scale)."""
    y0 = torch.div(boxes[:, 0], scale, rounding_mode="floor")
    x0 = torch.div(boxes[:, 1], scale, rounding_mode="floor")
    ar_h = torch.arange(h, device=boxes.device)
    ar_w = torch.arange(w, device=boxes.device)
    bi = torch.arange(boxes.size(0), device=boxes.device).view(-1, 1, 1)
    return bi, (y0[:, None] + ar_h)[:, :, None], (x0[:, None] + ar_w)[:, None, :]


def crop_windows(x: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B x C x H x W -> B x C x h x w: the ``size`` windows at the top-left corners of ``boxes``."""
    return x.permute(0, 2, 3, 1)[_window_index(boxes, *size)].permute(0, 3, 1, 2)


def place_features(feature_maps: torch.Tensor, boxes: torch.Tensor, map_size: int,
                   stride: int = MAP_STRIDE) -> torch.Tensor:
    """Paste each B x C x h x w component map into a zero B x C x map x map tensor (differentiable).

    ``boxes``: B x 4 image-pixel boxes (y0, x0, y1, x1) from :func:`component_boxes`; the window
    is ``box / stride`` and must have the feature map's size (§3.1: "copy each ... centered at
    c_i").
    """
    b, c, h, w = feature_maps.shape
    if boxes.shape != (b, 4):
        raise ValueError(f"boxes must be {b} x 4, got {tuple(boxes.shape)}")
    if h == w == map_size:
        return feature_maps
    sizes = (boxes[:, 2:] - boxes[:, :2]) // stride
    if not bool((sizes == torch.tensor([h, w], device=boxes.device)).all()):
        raise ValueError(f"boxes / stride {stride} do not match the {h}x{w} feature maps")
    canvas = feature_maps.new_zeros(b, map_size, map_size, c)
    canvas = canvas.index_put(_window_index(boxes, h, w, stride), feature_maps.permute(0, 2, 3, 1))
    return canvas.permute(0, 3, 1, 2)


class Crop(NamedTuple):
    """A component input (B x 3 x h x w, masked where the official code masks) and its mask."""

    image: torch.Tensor
    mask: torch.Tensor


def crop_components(images: torch.Tensor, labels: torch.Tensor,
                    parts: Mapping[str, Sequence[str]] = COMPONENT_PARTS,
                    boxes: Mapping[str, torch.Tensor] | None = None,
                    mask_eye_crops: bool = False) -> dict[str, Crop]:
    """Source images + labels -> {component: Crop}: eye/mouth crops, masked skin/hair images."""
    if images.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and labels {tuple(labels.shape)} differ "
                         "in size")
    boxes = component_boxes(labels, parts) if boxes is None else boxes
    geo = component_geometry(labels.size(-1))
    out = {}
    for name in COMPONENTS:
        mask = region_mask(labels, parts[name]).unsqueeze(1).to(images.dtype)
        if name in CROPPED:
            size = geo[name].crop
            image = crop_windows(images, boxes[name], size)
            mask = crop_windows(mask, boxes[name], size)
            if name == "mouth" or mask_eye_crops:
                image = image * mask
        else:
            image = images * mask
        out[name] = Crop(image, mask)
    return out


@dataclass
class LocalCodes:
    """Component embeddings of a batch: ``z`` (what the decoders read), ``mu``, ``logvar``.

    ``logvar`` is empty for ``embedding='ae'``. :meth:`select` and :meth:`replace` build the
    "transfer" inputs: components of other faces (official ``randperm``; Fig. 7/8 swaps).
    """

    z: dict[str, torch.Tensor]
    mu: dict[str, torch.Tensor]
    logvar: dict[str, torch.Tensor]

    def select(self, index: torch.Tensor) -> LocalCodes:
        """Every component taken from face ``index[i]`` for face i (e.g. ``torch.randperm(B)``)."""
        pick = lambda d: {k: v[index] for k, v in d.items()}  # noqa: E731
        return LocalCodes(pick(self.z), pick(self.mu), pick(self.logvar))

    def replace(self, donor: LocalCodes, names: Sequence[str]) -> LocalCodes:
        """These codes with the components ``names`` taken from ``donor`` (same batch size)."""
        bad = [n for n in names if n not in COMPONENTS]
        if bad:
            raise ValueError(f"names: unknown components {bad}; expected some of {COMPONENTS}")
        mix = lambda a, b: {k: (b[k] if k in names else v) for k, v in a.items()}  # noqa: E731
        return LocalCodes(mix(self.z, donor.z), mix(self.mu, donor.mu),
                          mix(self.logvar, donor.logvar))

    def kl(self) -> torch.Tensor:
        """Summed KL(N(mu, var) || N(0, 1)) over components, as the official (unused) loss term."""
        total = next(iter(self.mu.values())).new_zeros(())
        for k, lv in self.logvar.items():
            total = total + (-0.5 * (1 + lv - self.mu[k].pow(2) - lv.exp()).sum())
        return total


class ComponentAutoencoder(nn.Module):
    """One component's encoder, feature decoder and image decoder (module docstring).

    ``encode(x) -> (mu, logvar | None)``; ``decode_features(z) -> B x feat_dim x window``;
    ``decode_image(z) -> B x 3 x crop`` in [-1, 1].
    """

    def __init__(self, name: str, res: int = 256, enc_dim: int = 64, enc_max_dim: int = 512,
                 embed_dim: int = 512, fc_dim: int = 1024, feat_dim: int = 256,
                 img_dec_dim: int = 64, img_dec_max_dim: int = 512, embedding: str = "vae",
                 bn_momentum: float = 0.9) -> None:
        super().__init__()
        if name not in COMPONENTS:
            raise ValueError(f"name must be one of {COMPONENTS}, got {name!r}")
        if embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
        geo = component_geometry(res)[name]
        self.geometry = geo
        n, p = geo.n_down, _PAPER_DOWN[name]
        if n > p and enc_dim % 2 ** (n - p):
            raise ValueError(f"enc_dim {enc_dim} must be divisible by {2 ** (n - p)} at res {res}")
        # widths min(enc_dim * 2**(p-1-j), max), j = 0 at the bottleneck
        first_dim = enc_dim * 2**p // 2**n
        bn = dict(norm_momentum=bn_momentum)
        enc, chans = conv_trunk(first_dim, n, "batchnorm", "relu", enc_max_dim, **bn)
        self.encoder = nn.Sequential(*enc)
        bh, bw = geo.bottleneck
        flat = chans[-1] * bh * bw
        self.bottleneck_dim = chans[-1]
        self.fc_mu = fc_head(flat, fc_dim, embed_dim, acti_fn="relu")
        self.fc_logvar = (fc_head(flat, fc_dim, embed_dim, acti_fn="relu")
                          if embedding == "vae" else None)

        n_up = n - 2  # bottleneck -> window (1/4 of the crop)
        fc_out = self.bottleneck_dim if n_up else feat_dim
        self.feature_fc = LinearBlock(embed_dim, fc_out * bh * bw)
        ups, c = [], fc_out
        for _ in range(n_up):
            ups.append(ConvTranspose2dBlock(c, feat_dim, 4, 2, 1, "batchnorm", "relu", **bn))
            c = feat_dim
        self.feature_decoder = nn.Sequential(*ups)

        shift = _IMG_DEC_SHIFT[name]
        self.image_fc = LinearBlock(embed_dim, self.bottleneck_dim * bh * bw)
        ups, c = [], self.bottleneck_dim
        for m in range(n):  # widths counted from the bottleneck, as the encoder's
            c_out = min(img_dec_dim * 2 ** max(p - 1 - m - shift, 0), img_dec_max_dim)
            ups.append(ConvTranspose2dBlock(c, c_out, 4, 2, 1, "batchnorm", "relu", **bn))
            c = c_out
        ups += [nn.ReflectionPad2d(2), nn.Conv2d(c, 3, 5), nn.Tanh()]
        self.image_decoder = nn.Sequential(*ups)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if tuple(x.shape[-2:]) != self.geometry.crop:
            raise ValueError(f"component input must be {self.geometry.crop}, "
                             f"got {tuple(x.shape[-2:])}")
        h = self.encoder(x).flatten(1)
        return self.fc_mu(h), (self.fc_logvar(h) if self.fc_logvar is not None else None)

    def _unflatten(self, v: torch.Tensor) -> torch.Tensor:
        return v.view(v.size(0), -1, *self.geometry.bottleneck)

    def decode_features(self, z: torch.Tensor) -> torch.Tensor:
        return self.feature_decoder(self._unflatten(self.feature_fc(z)))

    def decode_image(self, z: torch.Tensor) -> torch.Tensor:
        return self.image_decoder(self._unflatten(self.image_fc(z)))


class LocalEmbedding(nn.Module):
    """The five component auto-encoders (``nets[name]``); kwargs: :class:`ComponentAutoencoder`."""

    def __init__(self, res: int = 256, **kw) -> None:
        super().__init__()
        self.nets = nn.ModuleDict({n: ComponentAutoencoder(n, res, **kw) for n in COMPONENTS})

    def encode(self, inputs: Mapping[str, torch.Tensor], sample: bool | None = None) -> LocalCodes:
        """{component: input} -> codes; ``sample`` (default: training mode) draws z ~ N(mu, var)."""
        sample = self.training if sample is None else sample
        z, mu, logvar = {}, {}, {}
        for name in COMPONENTS:
            m, lv = self.nets[name].encode(inputs[name])
            mu[name], z[name] = m, m
            if lv is not None:
                logvar[name] = lv
                if sample:
                    z[name] = m + torch.randn_like(m) * torch.exp(0.5 * lv)
        return LocalCodes(z, mu, logvar)

    def feature_maps(self, codes: LocalCodes) -> dict[str, torch.Tensor]:
        return {n: self.nets[n].decode_features(codes.z[n]) for n in COMPONENTS}

    def reconstruct(self, codes: LocalCodes) -> dict[str, torch.Tensor]:
        """Image-decoder outputs G_local^i(E_local^i(x_i)) for the local loss, eq. 1."""
        return {n: self.nets[n].decode_image(codes.z[n]) for n in COMPONENTS}
