"""Mask-Guided Portrait Editing networks (Gu et al., CVPR 2019; ours: ``mgpe``).

Layouts from the official cientgu/Mask_Guided_Portrait_Editing (pix2pixHD based, PyTorch 0.4;
``models/networks.py``, ``pix2pixHD_mask_model.py``, ``scripts/train.sh``; implementations.md §7),
which no longer runs; the paper leaves the details to its supplement.

- Local embedding sub-network: :mod:`.mgpe_components` (five component auto-encoders, boxes,
  crops, placement).
- Mask-guided generative sub-network (§3.1, Fig. 2b) :class:`MaskGuidedGenerator`: one-hot
  19-class target mask -> E_m (reflect-pad conv 7x7 -> ``ngf``; 2 x conv 3x3 s2 -> ``4*ngf`` at
  1/4), concatenated with the five placed component maps (order l_eye, r_eye, skin, hair, mouth),
  conv 1x1 -> ``4*ngf``, ``n_blocks`` pix2pixHD residual blocks, 2 x deconv 4x4 s2 -> ``ngf``
  channels at full resolution (no RGB layer: the "foreground face" is a feature map).
- Background fusing sub-network :class:`BackgroundFusion`: E_b = reflect-pad conv 7x7 -> ``ngf``
  on the background image; concatenated after the foreground, conv 1x1 -> ``ngf``, reflect-pad
  conv 7x7 -> 3, tanh. Where the mask is applied: ``background_mask_at='feature'`` (official:
  E_b sees the whole image, its output is multiplied by the target background mask) or
  ``'image'`` (paper §3.1: "extract the background part ... feed [it] to an encoder E_b").
- Norm ``'batchnorm'`` (official ``--norm batch``) or ``'instancenorm'`` (affine here; pix2pixHD's
  is not). Convs followed by a norm have no bias (the official ones carry a redundant one).
  ``normal_init``: pix2pixHD ``weights_init`` (conv N(0, 0.02), BN weight N(1, 0.02), bias 0).
- :class:`MGPEDiscriminator`: pix2pixHD multi-scale conditional PatchGAN (``num_D`` = 2,
  ``n_layers`` = 3, ``ndf`` = 64, kernel 4 pad 2, LeakyReLU 0.2, no norm on the first layer,
  AvgPool 3 s2 between scales), input cat(one-hot mask, image) (official order), returning every
  layer's output for :func:`feature_matching_loss`. One class, two instances (D on
  reconstructions, D2 on transfers). It returns logits; the official D ends with a sigmoid
  (``use_sigmoid = --no_lsgan``) and then applies ``BCEWithLogitsLoss`` to it, a double sigmoid
  (``use_sigmoid=True`` reproduces the network side of that).
- No VGG weights here: :func:`masked_perceptual_loss` takes a caller-supplied
  :class:`PerceptualExtractor` (never fetched).
"""
from __future__ import annotations

from typing import Mapping, Protocol, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..parts import NUM_PARTS, one_hot_parts, region_mask
from .blocks import Conv2dBlock, ConvTranspose2dBlock
from .mgpe_components import (COMPONENT_PARTS, COMPONENTS, MAP_STRIDE, Crop, LocalCodes,
                              LocalEmbedding, background_parts, check_component_parts, check_res,
                              component_boxes, crop_components, place_features)

NORMS = ("batchnorm", "instancenorm")
BACKGROUND_MASK_AT = ("feature", "image")
FM_LAYERS = ("last", "all")
FM_DISTANCES = ("l1", "l2")


def _check(value: str, allowed: tuple[str, ...], arg: str) -> str:
    if value not in allowed:
        raise ValueError(f"{arg} must be one of {allowed}, got {value!r}")
    return value


def init_pix2pixhd_(module: nn.Module) -> nn.Module:
    """pix2pixHD ``weights_init``: conv/deconv weights N(0, 0.02); BN weight N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def reflect_conv(n_in: int, n_out: int, k: int, norm: str, act: str) -> nn.Sequential:
    """Reflection pad (k // 2) -> Conv2dBlock(k, stride 1) (pix2pixHD's 'same' convs)."""
    return nn.Sequential(nn.ReflectionPad2d(k // 2),
                         Conv2dBlock(n_in, n_out, k, norm_fn=norm, acti_fn=act))


class ResnetBlock(nn.Module):
    """pix2pixHD residual block: x + [pad, conv 3x3, norm, ReLU, pad, conv 3x3, norm](x).

    (:class:`.blocks.ResidualBlock` is StarGAN's: zero padding and tracked IN.)
    """

    def __init__(self, dim: int, norm: str = "batchnorm") -> None:
        super().__init__()
        self.main = nn.Sequential(reflect_conv(dim, dim, 3, norm, "relu"),
                                  reflect_conv(dim, dim, 3, norm, "none"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class MaskGuidedGenerator(nn.Module):
    """E_m + G_m (§3.1). ``encode_mask(onehot) -> B x 4ngf x H/4 x W/4``;
    ``forward(onehot, placed) -> B x ngf x H x W`` with ``placed`` the component maps in
    :data:`COMPONENTS` order, each B x feat_dim x H/4 x W/4."""

    def __init__(self, n_classes: int = NUM_PARTS, ngf: int = 64, feat_dim: int = 256,
                 n_components: int = len(COMPONENTS), n_blocks: int = 9,
                 norm: str = "batchnorm") -> None:
        super().__init__()
        _check(norm, NORMS, "norm")
        self.n_components = n_components
        self.mask_encoder = nn.Sequential(
            reflect_conv(n_classes, ngf, 7, norm, "relu"),
            Conv2dBlock(ngf, 2 * ngf, 3, 2, 1, norm_fn=norm, acti_fn="relu"),
            Conv2dBlock(2 * ngf, 4 * ngf, 3, 2, 1, norm_fn=norm, acti_fn="relu"))
        self.fuse = nn.Conv2d(4 * ngf + n_components * feat_dim, 4 * ngf, 1)
        self.blocks = nn.Sequential(*[ResnetBlock(4 * ngf, norm) for _ in range(n_blocks)])
        self.up = nn.Sequential(
            ConvTranspose2dBlock(4 * ngf, 2 * ngf, 4, 2, 1, norm_fn=norm, acti_fn="relu"),
            ConvTranspose2dBlock(2 * ngf, ngf, 4, 2, 1, norm_fn=norm, acti_fn="relu"))

    def forward(self, onehot: torch.Tensor, placed: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(placed) != self.n_components:
            raise ValueError(f"placed must hold {self.n_components} component maps, "
                             f"got {len(placed)}")
        h = self.fuse(torch.cat([self.mask_encoder(onehot), *placed], 1))
        return self.up(self.blocks(h))


class BackgroundFusion(nn.Module):
    """E_b + G_b (§3.1). ``forward(foreground B x ngf x H x W, background_image,
    bg_mask B x 1 x H x W) -> B x 3 x H x W`` in [-1, 1]."""

    def __init__(self, ngf: int = 64, norm: str = "batchnorm", mask_at: str = "feature") -> None:
        super().__init__()
        _check(norm, NORMS, "norm")
        self.mask_at = _check(mask_at, BACKGROUND_MASK_AT, "background_mask_at")
        self.encoder = reflect_conv(3, ngf, 7, norm, "relu")
        self.decoder = nn.Sequential(nn.Conv2d(2 * ngf, ngf, 1), nn.ReflectionPad2d(3),
                                     nn.Conv2d(ngf, 3, 7), nn.Tanh())

    def forward(self, foreground: torch.Tensor, background_image: torch.Tensor,
                bg_mask: torch.Tensor) -> torch.Tensor:
        if self.mask_at == "image":
            bg = self.encoder(background_image * bg_mask)
        else:
            bg = self.encoder(background_image) * bg_mask
        return self.decoder(torch.cat([foreground, bg], 1))


class MGPEGenerator(nn.Module):
    """The whole framework G(x_s, m_s, x_t, m_t) of §3 (Fig. 2).

    Labels are B x H x W integer maps of the 19 classes (:mod:`faceedit_bench.parts`), images
    B x 3 x H x W in [-1, 1], ``H = W = res``. Paths:

    - ``forward(target_labels, source_images, source_labels=None, background_image=None)``:
      components cropped from the source (default labels: the target's), placed at the target
      mask's boxes, background from ``background_image`` (default: the source) under the target
      mask. Reconstruction (paired step): ``G(m, x)``.
    - Transfer / swap: ``codes = G.encode(G.crop(x, m))``; ``G.decode(codes.select(perm), m, x)``
      (official training transfer) or ``codes.replace(other_codes, ["hair"])`` (Fig. 7/8).
    - ``G.local.reconstruct(codes)``: component image reconstructions for eq. 1.

    Component kwargs (widths, ``embedding``, ...) are documented in :mod:`.mgpe_components`.
    """

    def __init__(self, res: int = 256, ngf: int = 64, n_blocks: int = 9, norm: str = "batchnorm",
                 feat_dim: int = 256, enc_dim: int = 64, enc_max_dim: int = 512,
                 embed_dim: int = 512, fc_dim: int = 1024, img_dec_dim: int = 64,
                 img_dec_max_dim: int = 512, embedding: str = "vae",
                 component_bn_momentum: float = 0.9,
                 component_parts: Mapping[str, Sequence[str]] | None = None,
                 mask_eye_crops: bool = False, background_mask_at: str = "feature",
                 normal_init: bool = True) -> None:
        super().__init__()
        self.res = check_res(res)
        self.map_size = res // MAP_STRIDE
        self.component_parts = check_component_parts(component_parts or COMPONENT_PARTS)
        self.background_parts = background_parts(self.component_parts)
        if not self.background_parts:
            raise ValueError("component_parts leaves no class for the background")
        self.mask_eye_crops = mask_eye_crops
        self.local = LocalEmbedding(res, enc_dim=enc_dim, enc_max_dim=enc_max_dim,
                                    embed_dim=embed_dim, fc_dim=fc_dim, feat_dim=feat_dim,
                                    img_dec_dim=img_dec_dim, img_dec_max_dim=img_dec_max_dim,
                                    embedding=embedding, bn_momentum=component_bn_momentum)
        self.mask_generator = MaskGuidedGenerator(NUM_PARTS, ngf, feat_dim, len(COMPONENTS),
                                                  n_blocks, norm)
        self.background = BackgroundFusion(ngf, norm, background_mask_at)
        if normal_init:
            init_pix2pixhd_(self)

    def _check_labels(self, labels: torch.Tensor, what: str) -> None:
        if labels.dim() != 3 or tuple(labels.shape[1:]) != (self.res, self.res):
            raise ValueError(f"{what} must be B x {self.res} x {self.res}, "
                             f"got {tuple(labels.shape)}")

    def crop(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Crop]:
        """Component inputs (and their masks, for eq. 1) of source faces."""
        self._check_labels(labels, "source_labels")
        return crop_components(images, labels, self.component_parts,
                               mask_eye_crops=self.mask_eye_crops)

    def encode(self, crops: Mapping[str, Crop], sample: bool | None = None) -> LocalCodes:
        return self.local.encode({n: c.image for n, c in crops.items()}, sample)

    def placed_features(self, codes: LocalCodes, target_labels: torch.Tensor) -> list[torch.Tensor]:
        """The five component maps at the target mask's boxes: B x feat_dim x H/4 x W/4 each."""
        self._check_labels(target_labels, "target_labels")
        boxes = component_boxes(target_labels, self.component_parts)
        maps = self.local.feature_maps(codes)
        return [place_features(maps[n], boxes[n], self.map_size) for n in COMPONENTS]

    def decode(self, codes: LocalCodes, target_labels: torch.Tensor,
               background_image: torch.Tensor) -> torch.Tensor:
        """Codes + target mask + background image -> B x 3 x H x W in [-1, 1]."""
        placed = self.placed_features(codes, target_labels)
        onehot = one_hot_parts(target_labels, background_image.dtype)
        foreground = self.mask_generator(onehot, placed)
        bg_mask = region_mask(target_labels, self.background_parts).unsqueeze(1)
        return self.background(foreground, background_image, bg_mask.to(background_image.dtype))

    def forward(self, target_labels: torch.Tensor, source_images: torch.Tensor,
                source_labels: torch.Tensor | None = None,
                background_image: torch.Tensor | None = None,
                sample: bool | None = None) -> torch.Tensor:
        self._check_labels(target_labels, "target_labels")
        source_labels = target_labels if source_labels is None else source_labels
        codes = self.encode(self.crop(source_images, source_labels), sample)
        bg = source_images if background_image is None else background_image
        return self.decode(codes, target_labels, bg)


class MGPEDiscriminator(nn.Module):
    """Multi-scale conditional PatchGAN (pix2pixHD ``MultiscaleDiscriminator``, getIntermFeat).

    ``forward(image B x 3 x H x W, labels B x H x W int or B x C x H x W one-hot)`` -> one list
    per scale (full resolution first) of the ``n_layers + 2`` layer outputs; the last is the
    patch map (logits unless ``use_sigmoid``).
    """

    def __init__(self, n_classes: int = NUM_PARTS, ndf: int = 64, n_layers: int = 3,
                 num_d: int = 2, norm: str = "batchnorm", max_dim: int = 512,
                 use_sigmoid: bool = False, normal_init: bool = True) -> None:
        super().__init__()
        _check(norm, NORMS, "norm")
        if n_layers < 1 or num_d < 1:
            raise ValueError(f"n_layers and num_d must be >= 1, got {n_layers}, {num_d}")
        self.n_classes, self.n_layers = n_classes, n_layers
        self.scales = nn.ModuleList([self._patchgan(n_classes + 3, ndf, n_layers, norm, max_dim,
                                                    use_sigmoid) for _ in range(num_d)])
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        if normal_init:
            init_pix2pixhd_(self)

    @staticmethod
    def _patchgan(n_in: int, ndf: int, n_layers: int, norm: str, max_dim: int,
                  use_sigmoid: bool) -> nn.ModuleList:
        kw = dict(padding=2, acti_fn="lrelu", lrelu_slope=0.2)
        layers = [Conv2dBlock(n_in, ndf, 4, 2, norm_fn="none", **kw)]
        nf = ndf
        for i in range(1, n_layers + 1):  # n_layers - 1 stride-2 layers, then one stride-1 layer
            nf_prev, nf = nf, min(nf * 2, max_dim)
            layers.append(Conv2dBlock(nf_prev, nf, 4, 2 if i < n_layers else 1, norm_fn=norm, **kw))
        out = [Conv2dBlock(nf, 1, 4, 1, padding=2)] + ([nn.Sigmoid()] if use_sigmoid else [])
        return nn.ModuleList(layers + [nn.Sequential(*out)])

    def forward(self, image: torch.Tensor, labels: torch.Tensor) -> list[list[torch.Tensor]]:
        onehot = one_hot_parts(labels, image.dtype) if labels.dim() == 3 else labels.to(image.dtype)
        if onehot.size(1) != self.n_classes:
            raise ValueError(f"labels must have {self.n_classes} classes, got {onehot.size(1)}")
        x = torch.cat([onehot, image], 1)
        results = []
        for i, layers in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            feats, h = [], x
            for layer in layers:
                h = layer(h)
                feats.append(h)
            results.append(feats)
        return results


def feature_matching_loss(real_feats: Sequence[Sequence[torch.Tensor]],
                          fake_feats: Sequence[Sequence[torch.Tensor]], layers: str = "last",
                          distance: str = "l1") -> torch.Tensor:
    """D feature matching (eq. 5), weighted ``4/(n_layers+1) * 1/num_D`` per (scale, layer).

    The weights are pix2pixHD's (``pix2pixHD_model.py``: ``feat_weights = 4.0/(n_layers_D+1)``,
    ``D_weights = 1.0/num_D``, L1, real features detached), copied unchanged by the MGPE code.
    ``layers='last'`` (default) matches only the last hidden layer, as MGPE does (its
    ``singleD_forward`` returns ``result[-2:]``, so the loop sees one feature) and as §3.2 says
    ("the last output layer of network D_i"); ``'all'`` is pix2pixHD's (every hidden layer).
    ``distance='l1'`` is the code's, ``'l2'`` the paper's ½||.||² (as a mean). The caller
    multiplies by lambda_FM (official ``lambda_feat`` = 10).
    """
    _check(layers, FM_LAYERS, "layers")
    _check(distance, FM_DISTANCES, "distance")
    if len(real_feats) != len(fake_feats) or not real_feats:
        raise ValueError("real_feats and fake_feats must list the same, non-zero number of scales")
    num_d, n_layers = len(real_feats), len(real_feats[0]) - 2
    weight = 4.0 / (n_layers + 1) / num_d
    loss = fake_feats[0][-1].new_zeros(()).float()
    for real, fake in zip(real_feats, fake_feats):
        pairs = zip(real[:-1], fake[:-1]) if layers == "all" else [(real[-2], fake[-2])]
        for r, f in pairs:
            d = F.l1_loss(f, r.detach()) if distance == "l1" else 0.5 * F.mse_loss(f, r.detach())
            loss = loss + weight * d
    return loss


class PerceptualExtractor(Protocol):
    """Hook for an optional, locally available VGG19 (never downloaded here): image -> features.

    pix2pixHD's ``Vgg19`` returns relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (five slices) and
    is fed the [-1, 1] images as they are.
    """

    def __call__(self, image: torch.Tensor) -> Sequence[torch.Tensor]: ...


def masked_perceptual_loss(fake: torch.Tensor, real: torch.Tensor, masks: torch.Tensor,
                           mask_weights: Sequence[float], extractor: PerceptualExtractor,
                           layer_weights: Sequence[float] = (1 / 4, 1 / 4, 1 / 4, 1 / 8, 1 / 8)
                           ) -> torch.Tensor:
    """Official ``VGGLoss`` with masks: sum_i w_i sum_k a_k L1(phi_i(fake) m_k, phi_i(real) m_k).

    ``masks``: B x K x H x W (official: l_eye, r_eye, skin, hair, mouth with weights 10, 10, 5,
    5, 10), max-pooled to each feature's size (the official halves them per layer); the official
    layer weights are the defaults here; the caller multiplies by ``lambda_feat * 3``.
    """
    if masks.size(1) != len(mask_weights):
        raise ValueError(f"mask_weights must have {masks.size(1)} entries, got {len(mask_weights)}")
    fake_f, real_f = extractor(fake), extractor(real)
    loss = fake.new_zeros(()).float()
    for w, f, r in zip(layer_weights, fake_f, real_f):
        m = F.adaptive_max_pool2d(masks.to(f.dtype), f.shape[-2:])
        for k, a in enumerate(mask_weights):
            mk = m[:, k:k + 1]
            loss = loss + w * a * F.l1_loss(f * mk, (r * mk).detach())
    return loss
