"""Load the officially released generator weights into our modules (local files only).

- AttGAN: elvisyjlin/AttGAN-PyTorch ``output/<experiment>/checkpoint/weights.<epoch>.pth``, a
  dict ``{'G': state_dict, 'D': ..., 'optim_G': ..., 'optim_D': ...}`` (released files hold only
  ``'G'``). A bare generator state dict is accepted too. Our :class:`AttGANGenerator` has the
  official key names, so no key map is needed beyond dropping a ``module.`` (DataParallel) prefix.
- StarGAN: yunjey/stargan ``stargan_celeba_{128,256}/models/200000-G.ckpt``, a bare
  ``G.state_dict()``; :class:`StarGANGenerator` has the official key names.

Checkpoints written by PyTorch 0.4.0 lack the ``num_batches_tracked`` buffers; they are filled
with 0 (they only matter for ``momentum=None``, which neither code uses). Loading is strict
otherwise. Constructor arguments not given are inferred from the tensor shapes; the attribute
code and the test intensity conventions stay with the caller (implementations.md §0).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from .attgan import AttGANGenerator
from .stargan import StarGANGenerator
from ..io_utils import load_tensor_file

ATTGAN_SOURCE = (
    "the AttGAN-PyTorch pretrained models (README of https://github.com/elvisyjlin/AttGAN-PyTorch, "
    "'Pretrained models' link http://bit.ly/attgan-pretrain), e.g. "
    "output/128_shortcut1_inject1_none/checkpoint/weights.49.pth")
STARGAN_SOURCE = (
    "the StarGAN pretrained model (https://github.com/yunjey/stargan, `bash download.sh "
    "pretrained-celeba-128x128`, https://www.dropbox.com/s/7e966qq0nlxwte4/"
    "celeba-128x128-5attrs.zip), e.g. stargan_celeba_128/models/200000-G.ckpt")


def _read(path: str | Path, source: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official weights file {path} not found; download {source} and "
                                f"pass its local path")
    try:
        obj = load_tensor_file(path)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise RuntimeError(f"{path}: cannot be read as a weights-only torch checkpoint: {e}") from e
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict or a {{'G': state_dict}} checkpoint, got "
                         f"{type(obj).__name__}")
    return dict(obj)


def _generator_state(obj: dict[str, Any], path: str | Path) -> dict[str, torch.Tensor]:
    sd = obj["G"] if "G" in obj and isinstance(obj["G"], Mapping) else obj
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"{path}: entry {k!r} is {type(v).__name__}, expected a tensor; keys "
                             f"found: {sorted(obj)[:8]}")
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def _strict_load(model: torch.nn.Module, sd: dict[str, torch.Tensor], path: str | Path) -> None:
    own = model.state_dict()
    for k, v in own.items():  # PyTorch 0.4.0 checkpoints have no num_batches_tracked
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = torch.zeros_like(v)
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{path}: does not match {type(model).__name__}: missing {missing[:6]}, "
                         f"unexpected {unexpected[:6]}, shape mismatches {shapes[:6]}")
    model.load_state_dict(sd, strict=True)


def _norm_of(sd: dict[str, torch.Tensor], prefix: str, path) -> str:
    if f"{prefix}.layers.1.running_mean" in sd:
        return "batchnorm"
    if f"{prefix}.layers.1.weight" in sd:
        if f"{prefix}.layers.1.mean_weight" in sd:
            raise ValueError(f"{path}: switchable norm ('switchnorm') is not supported")
        return "instancenorm"
    return "none"


def infer_attgan_config(sd: Mapping[str, torch.Tensor], path: str | Path = "<state dict>") -> dict:
    """AttGAN-PyTorch ``Generator`` arguments recovered from the shapes of its state dict."""
    def n_blocks(name: str) -> int:
        return len({int(m.group(1)) for k in sd if (m := re.match(rf"{name}\.(\d+)\.layers\.0\.weight$", k))})

    n_enc, n_dec = n_blocks("enc_layers"), n_blocks("dec_layers")
    if n_enc == 0 or n_dec == 0:
        raise ValueError(f"{path}: no 'enc_layers.*'/'dec_layers.*' keys; not an AttGAN-PyTorch "
                         f"generator (keys: {sorted(sd)[:6]})")
    enc_out = [sd[f"enc_layers.{i}.layers.0.weight"].shape[0] for i in range(n_enc)]
    dec_in = [sd[f"dec_layers.{i}.layers.0.weight"].shape[0] for i in range(n_dec)]  # ConvT: in, out
    dec_out = [sd[f"dec_layers.{i}.layers.0.weight"].shape[1] for i in range(n_dec)]
    n_attrs = dec_in[0] - enc_out[-1]
    shortcut = inject = 0
    for i in range(n_dec - 1):
        extra = dec_in[i + 1] - dec_out[i]
        skip = enc_out[n_dec - 2 - i]
        if extra in (skip, skip + n_attrs) and shortcut == i:
            shortcut += 1
            extra -= skip
        if extra == n_attrs and inject == i:
            inject += 1
    return dict(enc_dim=enc_out[0], enc_layers=n_enc, enc_norm=_norm_of(sd, "enc_layers.0", path),
                dec_dim=dec_out[-2] // 2, dec_layers=n_dec,
                dec_norm=_norm_of(sd, "dec_layers.0", path), n_attrs=n_attrs,
                shortcut_layers=shortcut, inject_layers=inject)


def load_attgan_generator(path: str | Path, **kwargs) -> AttGANGenerator:
    """AttGAN-PyTorch ``weights.*.pth`` (or a bare G state dict) -> :class:`AttGANGenerator` in eval mode.

    ``kwargs`` override the inferred constructor arguments (``img_size`` defaults to 128 and
    only fixes the expected input size; activations must be passed if not the defaults).
    """
    sd = _generator_state(_read(path, ATTGAN_SOURCE), path)
    cfg = infer_attgan_config(sd, path)
    cfg.update(kwargs)
    model = AttGANGenerator(**cfg)
    _strict_load(model, sd, path)
    return model.eval()


def infer_stargan_config(sd: Mapping[str, torch.Tensor], path: str | Path = "<state dict>") -> dict:
    """yunjey/stargan ``Generator`` arguments recovered from its state dict."""
    if "main.0.weight" not in sd:
        raise ValueError(f"{path}: no 'main.0.weight'; not a StarGAN generator (keys: {sorted(sd)[:6]})")
    w = sd["main.0.weight"]
    repeat = len({k.split(".")[1] for k in sd if re.match(r"main\.\d+\.main\.0\.weight$", k)})
    return dict(conv_dim=w.shape[0], c_dim=w.shape[1] - 3, repeat_num=repeat)


def load_stargan_generator(path: str | Path, **kwargs) -> StarGANGenerator:
    """StarGAN ``*-G.ckpt`` -> :class:`StarGANGenerator` in eval mode (instance statistics at eval,
    as the official test, unless ``eval_running_stats=True``)."""
    sd = _generator_state(_read(path, STARGAN_SOURCE), path)
    cfg = infer_stargan_config(sd, path)
    cfg.update(kwargs)
    model = StarGANGenerator(**cfg)
    _strict_load(model, sd, path)
    return model.eval()
