"""Train or fine-tune the BiSeNet parser on label maps, with the Lightning Trainer.

Recipe after face-parsing.PyTorch ``train.py`` (implementations.md §9): the loss is the official
OHEM cross-entropy (``loss.py``: keep pixels whose loss exceeds -log(0.7), at least
n_min = B*H*W/16 of them) summed over the three heads; ``loss="ce"`` uses plain cross-entropy
instead. Augmentation: horizontal flip with the left/right label swap of the official
``HorizontalFlip`` (l_brow<->r_brow, l_eye<->r_eye, l_ear<->r_ear) and ColorJitter-style
brightness/contrast/saturation (official 0.5; ``jitter``), and an optional random crop
(official RandomCrop 448 of 512; ``crop``); the official RandomScale is not done. Optimiser: ``optimizer="sgd"`` is the official SGD (momentum 0.9, wd 5e-4, 10x lr
on FFM and heads, exponential warm-up then poly 0.9); the default ``"adam"`` (AdamW, constant
lr after a linear warm-up) converges much faster in the few CPU minutes of the SynthFaces runs.

Options for short CPU runs (all off by default, i.e. the official recipe above):

- ``schedule="cosine"``: AdamW lr linear warm-up then cosine decay to 0 (SGDR, Loshchilov &
  Hutter 2017, Eq. 5 without restarts);
- ``aux_weight`` / ``aux_lowres``: weight of the two auxiliary heads' losses (official 1), and
  computing them at the heads' own 1/8 and 1/16 resolution on nearest-downsampled labels
  instead of on bilinearly upsampled logits (the aux heads are not used at inference);
- ``crop_mode="class"``: each crop is centred (with jitter) on a pixel of a class drawn
  uniformly among the classes present in that image, so thin, rare parts
  (glasses, earrings, necklace) are seen as often as large ones; ``"uniform"`` = official;
  ``"mixed"``: each image's crop is a class crop or a uniform one with probability 1/2 (class
  crops alone under-train the large peripheral classes: ears, neck, hair, background);
- ``repeat_thresh``: repeat-factor sampling (LVIS, Gupta et al. 2019, Eq. 1-2): an image is drawn
  with weight max over its classes c of max(1, sqrt(t / f_c)), f_c = fraction of training
  images containing c;
- ``dice_weight``: adds w * (1 - mean soft Dice over the classes present in the batch) on the
  main head (Milletari et al. 2016, Eq. 1), a region term that favours the IoU of thin parts.

Data: any uint8 arrays ``images`` (N,H,W,3) + ``labels`` (N,H,W) in the face-parsing class
order (``parts.PARTS``): from a data store (CelebAMask-HQ or SynthFaces ground-truth masks) or
rendered SynthFaces (:func:`synth_arrays`).
"""
from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from ..parts import NUM_PARTS, PART_INDEX
from .bisenet import BiSeNet
from .preprocess import normalize, parse_labels
from .weights import save_bisenet

#: label permutation of a horizontal flip (official transform.py HorizontalFlip).
FLIP_PERM = list(range(NUM_PARTS))
for _a, _b in (("l_brow", "r_brow"), ("l_eye", "r_eye"), ("l_ear", "r_ear")):
    FLIP_PERM[PART_INDEX[_a]], FLIP_PERM[PART_INDEX[_b]] = PART_INDEX[_b], PART_INDEX[_a]


class OhemCELoss(torch.nn.Module):
    """Official OHEM cross-entropy (face-parsing.PyTorch ``loss.py``)."""

    def __init__(self, thresh: float = 0.7, min_frac: float = 1 / 16, ignore_index: int = 255):
        super().__init__()
        self.thresh = -math.log(thresh)
        self.min_frac = min_frac
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, labels, ignore_index=self.ignore_index,
                               reduction="none").flatten()
        n_min = max(1, min(int(labels.numel() * self.min_frac), loss.numel() - 1))
        # official: sort descending; if sorted[n_min] > thresh keep all losses > thresh, else the
        # n_min largest. sorted[n_min] > thresh <=> more than n_min losses exceed thresh, so no
        # full sort is needed (it cost more than the reduced-width network on CPU).
        hard = loss > self.thresh
        if int(hard.sum()) > n_min:
            return loss[hard].mean()
        return loss.topk(n_min, sorted=False).values.mean()


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """1 - mean over the classes present in ``labels`` of the soft Dice 2|P.G| / (|P| + |G|)."""
    n_classes = logits.shape[1]
    valid = (labels != ignore_index).unsqueeze(1)
    probs = torch.softmax(logits.float(), dim=1) * valid
    onehot = F.one_hot(labels.clamp(max=n_classes - 1), n_classes).permute(0, 3, 1, 2) * valid
    inter = (probs * onehot).sum((0, 2, 3))
    gt = onehot.sum((0, 2, 3))
    dice = 2 * inter / (probs.sum((0, 2, 3)) + gt).clamp(min=1e-6)
    return 1 - dice[gt > 0].mean()


def repeat_factors(labels, n_classes: int = NUM_PARTS, thresh: float = 0.3, indices=None,
                   chunk: int = 256) -> np.ndarray:
    """LVIS repeat factors per image: max over its classes of max(1, sqrt(thresh / f_c))."""
    idx = np.arange(len(labels)) if indices is None else np.asarray(indices)
    present = np.zeros((len(idx), n_classes), bool)
    for s in range(0, len(idx), chunk):
        lab = np.asarray(labels[idx[s:s + chunk]]).reshape(len(idx[s:s + chunk]), -1)
        off = lab.astype(np.int64) + n_classes * np.arange(len(lab))[:, None]
        off = off[lab < n_classes]  # ignore labels (255) count for no class
        cnt = np.bincount(off, minlength=n_classes * len(lab)).reshape(len(lab), -1)
        present[s:s + len(lab)] = cnt > 0
    freq = present.mean(0)
    r_class = np.maximum(1.0, np.sqrt(thresh / np.maximum(freq, 1e-12)))
    return np.where(present, r_class[None], 1.0).max(1)


class LabelMapDataset(Dataset):
    """(image uint8 H,W,3 ; labels uint8 H,W) pairs as tensors; arrays may be memmaps."""

    def __init__(self, images, labels, indices=None):
        if images.shape[:3] != labels.shape[:3]:
            raise ValueError(f"images {images.shape} and labels {labels.shape} differ in N, H or W")
        self.images, self.labels = images, labels
        self.indices = np.arange(len(images)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        j = int(self.indices[i])
        return (torch.from_numpy(np.array(self.images[j])),
                torch.from_numpy(np.array(self.labels[j])).long())


def _jitter(x: torch.Tensor, strength: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Brightness, contrast, saturation factors in [1-s, 1+s] per image (ColorJitter-like)."""
    b = x.shape[0]

    def fac():
        return (1 + (torch.rand(b, 1, 1, 1, device=x.device) * 2 - 1) * strength)

    x = x * fac()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * fac() + mean
    gray = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray) * fac() + gray
    return x.clamp(0, 1)


def _heads(model: BiSeNet, x: torch.Tensor):
    """The three heads' logits at their own resolution (1/8, 1/8, 1/16): ``BiSeNet.forward``
    without the final upsampling."""
    feat_res8, feat_cp8, feat_cp16 = model.cp(x)
    feat_fuse = model.ffm(feat_res8, feat_cp8)
    return model.conv_out(feat_fuse), model.conv_out16(feat_cp8), model.conv_out32(feat_cp16)


def _class_crop_origins(labels: torch.Tensor, crop: int) -> tuple[list[int], list[int]]:
    """Top-left corners of ``crop`` windows, each centred (+- crop/4 jitter) on a random pixel of
    a class drawn uniformly among the classes present in that label map (255 = ignore excluded)."""
    side_y, side_x = labels.shape[-2:]
    oys, oxs = [], []
    for lab in labels:
        classes = torch.unique(lab)
        pool = classes[classes != 255] if bool((classes != 255).any()) else classes
        c = pool[torch.randint(len(pool), ())]
        ys, xs = torch.nonzero(lab == c, as_tuple=True)
        k = int(torch.randint(len(ys), ()))
        jy, jx = (torch.randint(-(crop // 4), crop // 4 + 1, (2,))).tolist()
        oys.append(min(max(int(ys[k]) - crop // 2 + jy, 0), side_y - crop))
        oxs.append(min(max(int(xs[k]) - crop // 2 + jx, 0), side_x - crop))
    return oys, oxs


class ParserModule(pl.LightningModule):
    """BiSeNet training step: OHEM (or CE) on the main head + ``aux_weight`` x the same loss on
    the two auxiliary heads (official: weight 1 at full resolution), + optional soft Dice."""

    def __init__(self, base: int = 64, n_classes: int = 19, input_size: int | None = None,
                 loss: str = "ohem", optimizer: str = "adam", lr: float | None = None,
                 weight_decay: float = 5e-4, max_steps: int = 1000, warmup_steps: int = 100,
                 hflip: bool = True, jitter: float = 0.5, crop: int | None = None,
                 crop_mode: str = "uniform", schedule: str = "constant", aux_weight: float = 1.0,
                 aux_lowres: bool = False, dice_weight: float = 0.0,
                 init_state_dict: dict | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["init_state_dict"])
        self.model = BiSeNet(n_classes, base=base, input_size=input_size)
        if init_state_dict is not None:
            self.model.load_state_dict(init_state_dict, strict=True)
        if loss == "ohem":
            self.criterion = OhemCELoss()
        elif loss == "ce":
            self.criterion = torch.nn.CrossEntropyLoss(ignore_index=255)
        else:
            raise ValueError(f"loss must be 'ohem' or 'ce', got {loss!r}")
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        if crop_mode not in ("uniform", "class", "mixed"):
            raise ValueError(f"crop_mode must be 'uniform', 'class' or 'mixed', got {crop_mode!r}")
        if schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
        self.register_buffer("flip_perm", torch.tensor(FLIP_PERM), persistent=False)

    def _prepare(self, images: torch.Tensor, labels: torch.Tensor, train: bool):
        x = images.permute(0, 3, 1, 2).float() / 255.0
        size = self.model.input_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=size < x.shape[-1])
            labels = F.interpolate(labels[:, None].float(), size=(size, size),
                                   mode="nearest")[:, 0].long()
        if train:
            crop = self.hparams.crop
            if crop and crop < min(x.shape[-2:]):  # official RandomCrop: one window per image
                oy = torch.randint(0, x.shape[-2] - crop + 1, (x.shape[0],)).tolist()
                ox = torch.randint(0, x.shape[-1] - crop + 1, (x.shape[0],)).tolist()
                if self.hparams.crop_mode != "uniform":
                    cy, cx = _class_crop_origins(labels, crop)
                    take = (torch.ones(x.shape[0]) if self.hparams.crop_mode == "class"
                            else torch.rand(x.shape[0]) < 0.5).tolist()
                    oy = [c if t else u for c, u, t in zip(cy, oy, take)]
                    ox = [c if t else u for c, u, t in zip(cx, ox, take)]
                x = torch.stack([xi[:, a:a + crop, b:b + crop] for xi, a, b in zip(x, oy, ox)])
                labels = torch.stack([li[a:a + crop, b:b + crop] for li, a, b in zip(labels, oy, ox)])
            if self.hparams.hflip:
                flip = torch.rand(x.shape[0], device=x.device) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                labels = torch.where(flip[:, None, None], self.flip_perm[labels.flip(-1)], labels)
            if self.hparams.jitter > 0:
                x = _jitter(x, self.hparams.jitter)
        return normalize(x), labels

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        if not hp.aux_lowres:
            main, *aux = self.model(x)
            aux_y = [y, y]
        else:
            main, *aux = _heads(self.model, x)
            main = F.interpolate(main, x.shape[2:], mode="bilinear", align_corners=True)
            aux_y = [F.interpolate(y[:, None].float(), a.shape[2:], mode="nearest")[:, 0].long()
                     for a in aux]
        loss = self.criterion(main, y)
        if hp.aux_weight:
            loss = loss + hp.aux_weight * sum(self.criterion(a, t) for a, t in zip(aux, aux_y))
        if hp.dice_weight:
            loss = loss + hp.dice_weight * soft_dice_loss(main, y)
        return loss

    def training_step(self, batch, batch_idx):
        x, y = self._prepare(*batch, train=True)
        loss = self._loss(x, y)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        hp = self.hparams
        m = self.model
        head = list(m.ffm.parameters()) + [p for h in (m.conv_out, m.conv_out16, m.conv_out32)
                                           for p in h.parameters()]
        head_ids = {id(p) for p in head}
        trunk = [p for p in m.parameters() if id(p) not in head_ids]
        if hp.optimizer == "sgd":  # official: lr 1e-2, 10x on FFM + heads, warm-up then poly 0.9
            lr = hp.lr or 1e-2
            opt = torch.optim.SGD([{"params": trunk}, {"params": head, "lr": lr * 10}], lr=lr,
                                  momentum=0.9, weight_decay=hp.weight_decay)
            warm, start = hp.warmup_steps, 1e-5 / lr

            def factor(it):
                if it < warm:
                    return start ** (1 - it / max(1, warm))  # exponential warm-up from 1e-5
                return (1 - (it - warm) / max(1, hp.max_steps - warm)) ** 0.9
        else:
            lr = hp.lr or 2e-3
            opt = torch.optim.AdamW([{"params": trunk}, {"params": head}], lr=lr, weight_decay=1e-4)
            warm, cosine = max(1, hp.warmup_steps), hp.schedule == "cosine"

            def factor(it):
                if it < warm or not cosine:
                    return min(1.0, (it + 1) / warm)
                t = min(1.0, (it - warm) / max(1, hp.max_steps - warm))
                return 0.5 * (1 + math.cos(math.pi * t))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def evaluate_parser(model: BiSeNet, images, labels, batch_size: int = 32, device=None) -> dict:
    """Pixel accuracy and IoU per class; mean IoU over the classes present in ``labels``."""
    n_classes = model.n_classes
    conf = torch.zeros(n_classes, n_classes, dtype=torch.long)
    for s in range(0, len(images), batch_size):
        pred = parse_labels(model, np.asarray(images[s:s + batch_size]), device=device).cpu().long()
        gt = torch.from_numpy(np.asarray(labels[s:s + batch_size])).long()
        conf += torch.bincount((gt * n_classes + pred).flatten(),
                               minlength=n_classes * n_classes).view(n_classes, n_classes)
    tp = conf.diag().double()
    present = conf.sum(1) > 0
    iou = tp / (conf.sum(0) + conf.sum(1) - conf.diag()).clamp(min=1).double()
    return {
        "pixel_acc": float(tp.sum() / conf.sum()),
        "miou_present": float(iou[present].mean()),
        "iou": {int(c): float(iou[c]) for c in torch.nonzero(present).flatten()},
        "n_images": int(len(images)),
    }


def train_parser(images, labels, out_path, *, base: int = 64, input_size: int | None = None,
                 steps: int = 1000, batch_size: int = 16, loss: str = "ohem",
                 optimizer: str = "adam", lr: float | None = None, warmup_steps: int = 100,
                 hflip: bool = True, jitter: float = 0.5, crop: int | None = None,
                 crop_mode: str = "uniform", schedule: str = "constant", aux_weight: float = 1.0,
                 aux_lowres: bool = False, dice_weight: float = 0.0,
                 repeat_thresh: float | None = None, init_weights=None, seed: int = 0,
                 num_workers: int = 0, accelerator: str = "auto", devices="auto",
                 precision="32-true", max_time: str | None = None, progress: bool = True,
                 indices=None, extra: dict | None = None, callbacks=None) -> Path:
    """Train a parser on uint8 ``images``/``labels`` and save it with :func:`save_bisenet`.

    ``crop``: train on random crop x crop windows of the images resized to ``input_size``
    (parsing at a larger ``input_size`` than the data resolution at the training cost of
    ``crop``; the official recipe crops 448 of 512). ``init_weights``: fine-tune from a checkpoint (e.g. the public ``79999_iter.pth``; then
    ``base`` is taken from it). ``max_time`` ("DD:HH:MM:SS") stops early. ``crop_mode``,
    ``schedule``, ``aux_weight``, ``aux_lowres``, ``dice_weight``, ``repeat_thresh``: see the
    module docstring (defaults = official recipe). Returns ``out_path``.
    """
    pl.seed_everything(seed, workers=True, verbose=False)
    init_sd = None
    if init_weights is not None:
        from .weights import load_bisenet

        init = load_bisenet(init_weights)
        base, init_sd = init.base, init.state_dict()
    module = ParserModule(base=base, input_size=input_size, loss=loss, optimizer=optimizer,
                          lr=lr, max_steps=steps, warmup_steps=min(warmup_steps, steps),
                          hflip=hflip, jitter=jitter, crop=crop, crop_mode=crop_mode,
                          schedule=schedule, aux_weight=aux_weight, aux_lowres=aux_lowres,
                          dice_weight=dice_weight, init_state_dict=init_sd)
    ds = LabelMapDataset(images, labels, indices)
    sampler = None
    if repeat_thresh:
        weights = repeat_factors(labels, module.model.n_classes, repeat_thresh, indices)
        sampler = WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(ds))
    dl = DataLoader(ds, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                    drop_last=len(ds) > batch_size, num_workers=num_workers,
                    persistent_workers=num_workers > 0)
    from ..quiet import install as _quiet_libraries

    _quiet_libraries()
    trainer = pl.Trainer(max_steps=steps, max_time=max_time, accelerator=accelerator,
                         devices=devices, precision=precision, logger=False,
                         enable_checkpointing=False, enable_progress_bar=progress,
                         enable_model_summary=False, num_sanity_val_steps=0, deterministic=False,
                         callbacks=callbacks)
    trainer.fit(module, dl)
    info = {"steps": int(trainer.global_step), "loss": loss, "optimizer": optimizer,
            "batch_size": batch_size, "seed": seed, "lr": lr, "schedule": schedule,
            "crop": crop, "crop_mode": crop_mode, "aux_weight": aux_weight,
            "aux_lowres": aux_lowres, "dice_weight": dice_weight,
            "repeat_thresh": repeat_thresh, **(extra or {})}
    return save_bisenet(module.model.eval(), out_path, extra=info)


def synth_arrays(n: int, res: int, seed: int = 0, start: int = 0, batch: int = 256):
    """Render SynthFaces ``start .. start+n-1`` of dataset ``seed``: (images uint8 N,H,W,3,
    labels uint8 N,H,W) with the renderer's ground-truth label maps (DESIGN §6)."""
    from ..data.synthfaces import render_batch, to_uint8

    images = np.empty((n, res, res, 3), np.uint8)
    labels = np.empty((n, res, res), np.uint8)
    for s in range(0, n, batch):
        idx = np.arange(start + s, start + min(s + batch, n))
        out = render_batch(seed, idx, res, soft=False)
        images[s:s + len(idx)] = to_uint8(out["image"])
        labels[s:s + len(idx)] = out["labels"].numpy()
    return images, labels


def guess_dataset(root) -> str:
    """'celebahq' (CelebA-HQ-img/), 'synth' (a SynthFaces export) or 'celeba' (img_align_celeba/)."""
    root = Path(root)
    if (root / "CelebA-HQ-img").is_dir():
        return "celebahq"
    if (root / "counterfactuals").is_dir():
        return "synth"
    if (root / "img_align_celeba").is_dir():
        return "celeba"
    raise FileNotFoundError(f"{root}: expected CelebA-HQ-img/ (CelebA-HQ) or img_align_celeba/ "
                            f"(CelebA layout, as SynthFaces exports) with CelebAMask-HQ-mask-anno/")


def store_arrays(root, res: int, dataset: str | None = None, split: str = "train",
                 store_root="data/stores"):
    """(images, labels, split indices) of a folder's ground-truth masks, via the data store."""
    from ..data.store import DEFAULT_CROP, Store, build_store, store_name

    dataset = dataset or guess_dataset(root)
    crop = DEFAULT_CROP[dataset]
    out_dir = Path(store_root) / Path(root).resolve().name / store_name(dataset, res, crop, "gt")
    store = Store(build_store(root, out_dir, dataset, res, crop, masks="gt", progress=True))
    return store.images, store.labels, store.split_indices(split)
