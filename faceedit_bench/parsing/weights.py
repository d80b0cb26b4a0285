"""Loading and saving BiSeNet parser weights (local files only, ``weights_only=True``).

Two file layouts are accepted:

- the public face-parsing.PyTorch checkpoint ``79999_iter.pth``: a bare state dict (keys as in
  implementations.md §9, no ``module.`` prefix; a ``module.`` prefix from a DataParallel save is
  stripped), loaded into the official-width ``BiSeNet(19)`` with ``strict=True``;
- our own checkpoints written by :func:`save_bisenet` (``faceedit-bench parser train``):
  ``{"format": "faceedit-bisenet", "config": {...}, "state_dict": {...}}``, which record the
  width and input size of the model.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from .bisenet import BiSeNet
from ..io_utils import atomic_torch_save, load_tensor_file

ENV_VAR = "FACEEDIT_PARSER_WEIGHTS"
OFFICIAL_FILE = "79999_iter.pth"
FORMAT = "faceedit-bisenet"
SOURCE = (
    "the public BiSeNet face-parsing checkpoint `79999_iter.pth` comes from the Google Drive link "
    "given in the README of https://github.com/zllrunning/face-parsing.PyTorch (the official "
    "code keeps it at res/cp/79999_iter.pth); or train one with `faceedit-bench parser train`"
)


class ParserWeightsError(FileNotFoundError):
    """The parser weights file is missing or unreadable; the message says what to do."""


def resolve_weights_path(path: str | os.PathLike | None) -> Path:
    """``path`` if given, else ``$FACEEDIT_PARSER_WEIGHTS``; an error says where to get it."""
    source = "--parser-weights"
    if path is None or str(path) == "":
        path, source = os.environ.get(ENV_VAR), ENV_VAR
    if path is None or str(path) == "":
        raise ParserWeightsError(
            f"no face-parser weights given: pass --parser-weights PATH or set {ENV_VAR}=PATH "
            f"(e.g. data/weights/{OFFICIAL_FILE}); {SOURCE}"
        )
    p = Path(path).expanduser()
    if not p.is_file():
        raise ParserWeightsError(
            f"face-parser weights file not found: {p} (from {source}). Put the file there, or pass "
            f"--parser-weights PATH / set {ENV_VAR}=PATH; {SOURCE}"
        )
    return p


def strip_module_prefix(state_dict: dict) -> dict:
    """Remove a leading ``module.`` (DataParallel / DDP saves) from every key when all have it."""
    keys = list(state_dict)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _describe_mismatch(model: BiSeNet, sd: dict, path: Path) -> str:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and hasattr(sd[k], "shape") and sd[k].shape != own[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (first: {missing[:3]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[:3]})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches (first: {shapes[:3]})")
    return (f"{path}: not a face-parsing.PyTorch BiSeNet(n_classes={model.n_classes}, "
            f"base={model.base}) state dict: " + "; ".join(parts))


def load_bisenet(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 n_classes: int = 19, eval_mode: bool = True) -> BiSeNet:
    """A :class:`BiSeNet` with the weights of ``path`` (or ``$FACEEDIT_PARSER_WEIGHTS``).

    Loaded with ``torch.load(weights_only=True)`` and ``load_state_dict(strict=True)``; the
    model is returned in eval mode with ``.weights_path`` and ``.weights_hash`` (sha256 of the
    file, for the result record) set.
    """
    p = resolve_weights_path(path)
    try:
        obj = load_tensor_file(p)
    except Exception as e:  # corrupt / not a torch file / pickled code
        raise ParserWeightsError(f"{p}: cannot read face-parser weights ({type(e).__name__}: {e}); "
                                 f"expected a state dict such as {OFFICIAL_FILE}; {SOURCE}") from e
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        cfg = dict(obj["config"])
        input_size = cfg.get("input_size", -1)
        model = BiSeNet(n_classes=int(cfg["n_classes"]), base=int(cfg["base"]),
                        input_size=None if input_size in (None, -1) else int(input_size))
        sd = obj["state_dict"]
    elif isinstance(obj, dict):
        sd = obj["state_dict"] if isinstance(obj.get("state_dict"), dict) else obj
        model = BiSeNet(n_classes=n_classes)
    else:
        raise ParserWeightsError(f"{p}: expected a state dict (dict of tensors), got {type(obj).__name__}")
    sd = strip_module_prefix(sd)
    own = model.state_dict()
    if set(sd) != set(own) or any(getattr(sd[k], "shape", None) != own[k].shape for k in own):
        raise ValueError(_describe_mismatch(model, sd, p))
    model.load_state_dict(sd, strict=True)
    model.weights_path = str(p)
    model.weights_hash = file_sha256(p)
    model.to(device)
    if eval_mode:
        model.eval()
    return model


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def save_bisenet(model: BiSeNet, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write our checkpoint layout atomically (temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"format": FORMAT, "config": model.config(),
           "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    if extra:
        obj["extra"] = extra
    atomic_torch_save(obj, path)
    return path
