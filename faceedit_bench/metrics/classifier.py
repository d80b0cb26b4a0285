"""The attribute classifier behind TARR (LynnHo/STGAN ``att_classification``, reference
implementations.md §2.4), its training with the Lightning Trainer, and loading.

Architecture: 5 blocks of [conv3×3 (no bias) → BN → ReLU] ×2 → maxpool 2×2, channels
(16, 32, 64, 128, 256)·``width/16``; FC 512 + ReLU; FC to the attribute logits. Input: images in
[-1, 1] at the store's resolution (128 in the official code; any multiple of 32 here).
Training as the official code: Adam lr 2e-4 (β1 0.9), L2 weight decay 1e-4, BCE on logits,
linear-to-power decay after the first third of the epochs (official: 25 epochs,
lr·(1−max(epoch−8, 0)/25)^0.75). The saved file holds the weights, the attribute names, the
architecture and the **held-out accuracy** (validation split), which every TARR result records.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import lightning.pytorch as pl
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..protocol import file_hash
from ..io_utils import atomic_torch_save, load_tensor_file


def default_classifier_path(data_hash: str, res: int, root: str | os.PathLike = "data/classifiers",
                            attrs=None) -> Path:
    """Where the classifier for a data store, resolution and attribute list lives
    (``<data_hash>_<res>.pt`` for the default 13 attributes, ``..._<attrs hash>.pt`` otherwise)."""
    from ..protocol import DEFAULT_ATTRS, stable_hash

    tag = "" if attrs is None or tuple(attrs) == tuple(DEFAULT_ATTRS) else f"_{stable_hash(list(attrs), n=8)}"
    return Path(root) / f"{data_hash}_{int(res)}{tag}.pt"


class AttributeClassifier(nn.Module):
    """LynnHo/STGAN classifier: ``forward(x) -> logits B×A``; ``features(x) -> B×512``."""

    def __init__(self, n_attrs: int, res: int = 128, width: int = 16, fc_dim: int = 512) -> None:
        super().__init__()
        if res % 32:
            raise ValueError(f"classifier resolution must be a multiple of 32, got {res}")
        self.n_attrs, self.res, self.width, self.feature_dim = int(n_attrs), int(res), int(width), int(fc_dim)
        layers, c_in = [], 3
        for i in range(5):
            c = width * 2 ** i
            for _ in range(2):
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                           nn.BatchNorm2d(c, momentum=0.1, eps=1e-5), nn.ReLU(inplace=True)]
                c_in = c
            layers.append(nn.MaxPool2d(2))
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c_in * (res // 32) ** 2, fc_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(fc_dim, n_attrs)
        self.attrs: tuple[str, ...] = ()
        self.accuracy: float | None = None
        self.per_attribute_accuracy: dict = {}
        self.weights_hash: str | None = None

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.res or x.shape[-2] != self.res:
            x = F.interpolate(x, size=(self.res, self.res), mode="bilinear", align_corners=False,
                              antialias=True)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self._resize(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """{0,1} predictions (round(sigmoid(logits)), as the official test.py)."""
        return (self(x) > 0).float()


class ClassifierModule(pl.LightningModule):
    """Lightning wrapper that trains :class:`AttributeClassifier` on batches (image, attrs)."""

    def __init__(self, n_attrs: int, res: int, width: int = 16, lr: float = 2e-4,
                 weight_decay: float = 1e-4, epochs: int = 25) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = AttributeClassifier(n_attrs, res, width)

    def training_step(self, batch, batch_idx):
        loss = F.binary_cross_entropy_with_logits(self.net(batch["image"]), batch["attrs"].float())
        self.log("clf/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        acc = ((self.net(batch["image"]) > 0).float() == batch["attrs"].round()).float().mean()
        self.log("clf/val_acc", acc, prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.Adam(self.parameters(), lr=hp.lr, betas=(0.9, 0.999), weight_decay=hp.weight_decay)
        start = max(1, hp.epochs // 3)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda e: (1 - max(e - start, 0) / max(hp.epochs, 1)) ** 0.75)
        return {"optimizer": opt, "lr_scheduler": sched}


@torch.no_grad()
def heldout_accuracy(net: AttributeClassifier, loader, device="cpu") -> tuple[float, torch.Tensor, int]:
    """Mean accuracy over attributes, per-attribute accuracy and N on a loader of real batches."""
    net = net.to(device).eval()
    correct, n = None, 0
    for batch in loader:
        pred = net.predict(batch["image"].to(device))
        ok = (pred == batch["attrs"].to(device).round()).double().sum(0)
        correct = ok if correct is None else correct + ok
        n += pred.shape[0]
    if not n:
        raise ValueError("held-out accuracy: the loader yielded no images")
    per = (correct / n).cpu()
    return float(per.mean()), per, n


def save_classifier(net: AttributeClassifier, path, attrs: Sequence[str], accuracy: float,
                    per_attr: torch.Tensor, n_heldout: int, data_hash: str | None, split: str) -> Path:
    """Write the classifier file atomically (temp file + os.replace); loadable weights_only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "arch": {"n_attrs": net.n_attrs, "res": net.res, "width": net.width},
        "attrs": list(attrs),
        "accuracy": float(accuracy),
        "per_attribute_accuracy": {a: float(v) for a, v in zip(attrs, per_attr.tolist())},
        "n_heldout": int(n_heldout),
        "heldout_split": split,
        "data_hash": data_hash or "",
    }
    atomic_torch_save(blob, path)
    return path


def load_classifier(path, map_location="cpu") -> AttributeClassifier:
    """Load a classifier file (weights_only); a missing file says how to make one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"attribute classifier {path} not found. It is trained by this suite: run "
            "`faceedit-bench classifier --data <synth|celeba|celebahq> --res <R> --out "
            f"{path}` (or `make classifier DATA=... RES=...`).")
    blob = load_tensor_file(path, map_location)
    for key in ("state_dict", "arch", "attrs", "accuracy"):
        if key not in blob:
            raise ValueError(f"{path}: not a faceedit-bench classifier file (missing key {key!r})")
    net = AttributeClassifier(**blob["arch"])
    net.load_state_dict(blob["state_dict"])
    net.attrs = tuple(blob["attrs"])
    net.accuracy = float(blob["accuracy"])
    net.per_attribute_accuracy = dict(blob.get("per_attribute_accuracy", {}))
    net.data_hash = blob.get("data_hash", "")
    net.weights_hash = file_hash(str(path))
    return net.eval().requires_grad_(False)


def train_classifier(datamodule, out, epochs: int = 25, width: int = 16, lr: float = 2e-4,
                     max_steps: int = -1, trainer_kwargs: dict | None = None,
                     progress: bool = True) -> Path:
    """Train on the datamodule's train split, measure accuracy on its val split, save to ``out``.

    ``datamodule`` yields batches with ``image`` and ``attrs`` (docs/INTERFACES.md, Data).
    """
    datamodule.prepare_data()
    datamodule.setup("fit")
    attrs = tuple(getattr(datamodule, "attrs"))
    res = int(getattr(datamodule, "res"))
    module = ClassifierModule(len(attrs), res, width=width, lr=lr, epochs=epochs)
    kw = dict(accelerator="auto", devices=1, max_epochs=epochs, max_steps=max_steps, logger=False,
              enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
              num_sanity_val_steps=0)
    kw.update(trainer_kwargs or {})
    from ..quiet import install as _quiet_libraries

    _quiet_libraries()
    trainer = pl.Trainer(**kw)
    trainer.fit(module, train_dataloaders=datamodule.train_dataloader(),
                val_dataloaders=datamodule.val_dataloader())
    if not trainer.is_global_zero:
        return Path(out)
    acc, per, n = heldout_accuracy(module.net, datamodule.val_dataloader())
    return save_classifier(module.net, out, attrs, acc, per, n,
                           getattr(datamodule, "data_hash", None), "val")
