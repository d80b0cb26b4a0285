"""SeCGAN networks (Sun et al., arXiv 2111.09298; implementations.md §6) and its mask losses.

The semantic branch mirrors the RGB backbone with only the input/output channels and the final
activation changed (appendix A.1, Tables 2 and 3): G_seg takes the 12-channel one-hot mask s_in
and ends in a Softmax over the 12 classes instead of tanh; D_seg is the RGB D with a 12-channel
input and the same heads. The conditioning is the backbone's own (StarGAN: tiled and concatenated
to the input; AttGAN: injected in the decoder); SeCGAN feeds y_diff = y_trg - y_src (Sec. 3.1).
The "Concat" baseline (Table 1) is the RGB G with input [x, s_in] (3 + 12 channels).

The wrappers below subclass the existing backbones and swap their first conv (input channels)
and last conv (output channels) and the output activation; everything else, state-dict keys
included, is the backbone's. Choice: the Softmax output is returned as **log-probabilities**
(log-softmax in float32), so the cross-entropies of eqs. 10 and 12 are exact and stable; the
paper's probabilities ŝ_out (what D_seg sees) are ``log_probs.exp()``.

Paper vs code: the tables show D's attribute head with a Sigmoid; ours returns logits (for
BCE-with-logits), as the RGB D. Table 3's D rows list no IN and an FC ReLU, but the paper says
D_seg differs from D_rgb only in input channels and builds on AttGAN-PyTorch (IN in the trunk;
its ``train.py`` uses an FC ReLU): D_seg takes whatever the RGB D is given (``norm_fn``,
``fc_acti_fn`` ...). The extracted Table 2 lost StarGAN D's two conv heads; they are StarGAN's.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..secgan_classes import NUM_SECGAN_CLASSES
from .attgan import AttGANDiscriminator, AttGANGenerator
from .stargan import StarGANDiscriminator, StarGANGenerator

OUTPUTS = ("tanh", "log_softmax")
BACKBONES = ("stargan", "attgan")
N_RGB = 3
N_SEG = NUM_SECGAN_CLASSES  # 12


class ClassLogProbs(nn.Module):
    """Log-softmax over the channel dim, in float32 (the Softmax of Tables 2/3, in log space)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(x.float(), dim=1)


def _output_layer(output: str) -> nn.Module:
    return nn.Tanh() if output == "tanh" else ClassLogProbs()


def _check_channels(in_channels: int, out_channels: int | None = None,
                    output: str | None = None) -> None:
    for name, n in (("in_channels", in_channels), ("out_channels", out_channels)):
        if n is not None and (not isinstance(n, int) or n < 1):
            raise ValueError(f"{name} must be a positive int, got {n!r}")
    if output is not None and output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if output == "log_softmax" and out_channels < 2:
        raise ValueError(f"out_channels must be >= 2 for output='log_softmax', got {out_channels}")


def _conv_with_channels(conv: nn.Conv2d | nn.ConvTranspose2d, in_channels: int | None = None,
                        out_channels: int | None = None) -> nn.Conv2d | nn.ConvTranspose2d:
    """A new conv like ``conv`` (kernel, stride, padding, bias, device), other channel counts."""
    kw: dict[str, Any] = dict(kernel_size=conv.kernel_size, stride=conv.stride,
                              padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                              bias=conv.bias is not None, device=conv.weight.device,
                              dtype=conv.weight.dtype)
    if isinstance(conv, nn.ConvTranspose2d):
        kw["output_padding"] = conv.output_padding
    return type(conv)(conv.in_channels if in_channels is None else in_channels,
                      conv.out_channels if out_channels is None else out_channels, **kw)


class StarGANBranchGenerator(StarGANGenerator):
    """StarGAN G with ``in_channels`` + ``c_dim`` in and ``out_channels`` out (Table 2).

    ``forward(x, c)``: x B x in_channels x H x W, c B x c_dim (SeCGAN: y_diff). Returns
    ``output='log_softmax'``: float32 B x out_channels x H x W log-probabilities (G_seg);
    ``'tanh'``: image in [-1, 1] (the Concat baseline's G_rgb, ``in_channels=15``).
    ``backbone_kw``: StarGANGenerator's (conv_dim, repeat_num, eval_running_stats).
    """

    def __init__(self, in_channels: int = N_SEG, out_channels: int = N_SEG,
                 output: str = "log_softmax", c_dim: int = 13, **backbone_kw: Any) -> None:
        _check_channels(in_channels, out_channels, output)
        super().__init__(c_dim=c_dim, **backbone_kw)
        self.in_channels, self.out_channels, self.output = in_channels, out_channels, output
        self.main[0] = _conv_with_channels(self.main[0], in_channels=in_channels + c_dim)
        self.main[-2] = _conv_with_channels(self.main[-2], out_channels=out_channels)
        self.main[-1] = _output_layer(output)


class AttGANBranchGenerator(AttGANGenerator):
    """AttGAN G with ``in_channels`` into the encoder and ``out_channels`` out (Table 3).

    ``forward(x, a, mode)`` as AttGANGenerator (attributes injected in the decoder); output as
    :class:`StarGANBranchGenerator`. ``backbone_kw``: AttGANGenerator's (enc_dim, n_attrs ...).
    """

    def __init__(self, in_channels: int = N_SEG, out_channels: int = N_SEG,
                 output: str = "log_softmax", **backbone_kw: Any) -> None:
        _check_channels(in_channels, out_channels, output)
        super().__init__(**backbone_kw)
        self.in_channels, self.out_channels, self.output = in_channels, out_channels, output
        first = self.enc_layers[0].layers  # [conv, norm, act]
        first[0] = _conv_with_channels(first[0], in_channels=in_channels)
        last = self.dec_layers[-1].layers  # [deconv, tanh]
        last[0] = _conv_with_channels(last[0], out_channels=out_channels)
        last[-1] = _output_layer(output)


class StarGANBranchDiscriminator(StarGANDiscriminator):
    """StarGAN PatchGAN D with an ``in_channels`` input, same heads (Table 2); D_seg: 12."""

    def __init__(self, in_channels: int = N_SEG, c_dim: int = 13, **backbone_kw: Any) -> None:
        _check_channels(in_channels)
        super().__init__(c_dim=c_dim, **backbone_kw)
        self.in_channels = in_channels
        self.main[0] = _conv_with_channels(self.main[0], in_channels=in_channels)


class AttGANBranchDiscriminator(AttGANDiscriminator):
    """AttGAN D with an ``in_channels`` input, same FC heads (Table 3); D_seg: 12."""

    def __init__(self, in_channels: int = N_SEG, **backbone_kw: Any) -> None:
        _check_channels(in_channels)
        super().__init__(**backbone_kw)
        self.in_channels = in_channels
        first = self.conv[0].layers  # [conv, norm, act]
        first[0] = _conv_with_channels(first[0], in_channels=in_channels)


def _check_backbone(backbone: str) -> None:
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")


def semantic_generator(backbone: str, **kw: Any) -> StarGANBranchGenerator | AttGANBranchGenerator:
    """G_seg: 12-channel one-hot mask in, 12-class log-probabilities out (Tables 2/3)."""
    _check_backbone(backbone)
    cls = StarGANBranchGenerator if backbone == "stargan" else AttGANBranchGenerator
    return cls(in_channels=N_SEG, out_channels=N_SEG, output="log_softmax", **kw)


def semantic_discriminator(backbone: str,
                           **kw: Any) -> StarGANBranchDiscriminator | AttGANBranchDiscriminator:
    """D_seg: the RGB D with a 12-channel input (Tables 2/3)."""
    _check_backbone(backbone)
    cls = StarGANBranchDiscriminator if backbone == "stargan" else AttGANBranchDiscriminator
    return cls(in_channels=N_SEG, **kw)


def concat_generator(backbone: str, **kw: Any) -> StarGANBranchGenerator | AttGANBranchGenerator:
    """The Concat baseline's G_rgb (Table 1): input ``cat([x, s_in], 1)``, 3 + 12 channels; tanh."""
    _check_backbone(backbone)
    cls = StarGANBranchGenerator if backbone == "stargan" else AttGANBranchGenerator
    return cls(in_channels=N_RGB + N_SEG, out_channels=N_RGB, output="tanh", **kw)


def _ce_to_argmax(log_probs: torch.Tensor, scores: torch.Tensor,
                  names: tuple[str, str]) -> torch.Tensor:
    """−mean_ij onehot(argmax scores)_ij · log_probs_ij; no gradient into ``scores``."""
    if log_probs.dim() != 4 or log_probs.size(1) != N_SEG:
        raise ValueError(f"{names[0]} must be B x {N_SEG} x H x W, got {tuple(log_probs.shape)}")
    if scores.shape != log_probs.shape:
        raise ValueError(f"{names[1]} must have the shape of {names[0]} {tuple(log_probs.shape)}, "
                         f"got {tuple(scores.shape)}")
    return F.nll_loss(log_probs.float(), scores.detach().argmax(1))


def seg_reconstruction_loss(log_probs: torch.Tensor, target_labels: torch.Tensor) -> torch.Tensor:
    """Eq. 10: −(1/HW) Σ_ij s_in_ij · log G_seg(s_in, 0)_ij, averaged over the batch.

    ``log_probs``: B x 12 x H x W (G_seg's output); ``target_labels``: B x H x W class indices of
    s_in (integer dtype).
    """
    if log_probs.dim() != 4 or log_probs.size(1) != N_SEG:
        raise ValueError(f"log_probs must be B x {N_SEG} x H x W, got {tuple(log_probs.shape)}")
    if (target_labels.dtype.is_floating_point or target_labels.dtype == torch.bool
            or target_labels.shape != log_probs.shape[:1] + log_probs.shape[2:]):
        raise ValueError(f"target_labels must be an integer B x H x W map matching log_probs, "
                         f"got {tuple(target_labels.shape)} {target_labels.dtype}")
    return F.nll_loss(log_probs.float(), target_labels.long())


def sc_loss_rgb(parser_log_probs: torch.Tensor, seg_out_probs: torch.Tensor) -> torch.Tensor:
    """Eq. 11, L_sc for G_rgb: −(1/HW) Σ_ij s_out_ij · log P(x_out)_ij, s_out = onehot(ŝ_out).

    ``parser_log_probs``: 12-class log P(x_out), B x 12 x H x W (e.g.
    ``merge_log_probs_to_secgan(parser(x_out).log_softmax(1))``): the gradient flows through it,
    i.e. through the frozen P into x_out and G_rgb. ``seg_out_probs``: ŝ_out (probabilities or
    log-probabilities, only its argmax is used), a constant target.
    """
    return _ce_to_argmax(parser_log_probs, seg_out_probs, ("parser_log_probs", "seg_out_probs"))


def sc_loss_seg(seg_log_probs: torch.Tensor, parser_probs: torch.Tensor) -> torch.Tensor:
    """Eq. 12, L_sc for G_seg: −(1/HW) Σ_ij P̄(x_out)_ij · log ŝ_out_ij, P̄ = onehot P(x_out).

    ``seg_log_probs``: G_seg's output log ŝ_out, B x 12 x H x W, where the gradient flows.
    ``parser_probs``: 12-class P(x_out) (probabilities or log-probabilities: only its
    argmax is used), a constant target.
    """
    return _ce_to_argmax(seg_log_probs, parser_probs, ("seg_log_probs", "parser_probs"))
