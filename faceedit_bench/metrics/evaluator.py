"""One-pass evaluator: every edit made once per test image, every metric fed from it, no image
written (DESIGN §7; the official pipelines write PNGs and re-read them per metric).

Per batch: the real images (classifier accuracy, real feature statistics unless cached), the
reconstruction (tgt = src: PSNR, SSIM) and each single-attribute flip of
``protocol.single_flip_targets`` (conflict rules applied, test intensity recorded) through
``method.edit``: TARR (+ preservation error, hat split), MRE, FID per attribute and pooled, IS
over the fake pool, ssFID per attribute (SeCGAN), counterfactual error on SynthFaces. All
metrics are sum-reduced torchmetrics states, so the pass runs inside Lightning ``test`` under
DDP; the test split is sharded without the padding duplicates Lightning's DistributedSampler
adds (reference/metrics.md §2.5), so DDP gives the one-process numbers.

Public API: :func:`evaluate` -> a validated result record (``results.make_record``).
"""
from __future__ import annotations

import math
import os
import subprocess
from typing import Any, Sequence

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..parts import AR_TABLE, ar_table_hash
from ..protocol import single_flip_targets
from ..results import make_record
from . import stats_cache
from .counterfactual import CounterfactualError
from .extractors import ClassifierExtractor, InceptionExtractor, SwAVExtractor
from .fid import FrechetDistance
from .inception_score import InceptionScore
from .mre import MRE
from .psnr_ssim import PSNR, SSIM
from .tarr import HAT_THRESHOLD, TARR, AttributeAccuracy


class ShardSampler(Sampler):
    """Rank r of W gets positions r, r+W, ...: every image exactly once, no padding duplicates.

    Rank and world size are read when iterating, i.e. after Lightning has set up the process
    group, so the same loader works for one process and for DDP."""

    def __init__(self, n: int) -> None:
        self.n = n

    def _rank_world(self):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __iter__(self):
        r, w = self._rank_world()
        return iter(range(r, self.n, w))

    def __len__(self) -> int:
        r, w = self._rank_world()
        return len(range(r, self.n, w))


class _WithPosition(Dataset):
    """Adds ``_pos`` (the item's position in the split) to each dict item."""

    def __init__(self, ds) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitems__(self, idx):
        """Batched read when the wrapped dataset has one (the store's one-memmap gather)."""
        if not hasattr(self.ds, "__getitems__"):
            return [self[i] for i in idx]
        batch = self.ds.__getitems__(idx)
        if isinstance(batch, dict):
            return {**batch, "_pos": torch.as_tensor(list(idx), dtype=torch.long)}
        return [{**item, "_pos": i} for item, i in zip(batch, idx)]

    def __getitem__(self, i):
        item = self.ds[i]
        if not isinstance(item, dict):
            raise TypeError(f"evaluator: test dataset items must be dicts (image/attrs/parts/index), "
                            f"got {type(item).__name__}")
        return {**item, "_pos": i}


class EvaluationModule(pl.LightningModule):
    """Wraps a method and every metric; ``trainer.test(module, loader)`` fills :attr:`result`."""

    def __init__(self, method, attrs: Sequence[str], n_images: int, classifier=None,
                 inception: InceptionExtractor | None = None, swav: SwAVExtractor | None = None,
                 intensity: float | None = None, ssim_mode: str = "skimage",
                 counterfactual: bool = False, mustache_beard: bool = False,
                 real_moments: dict | None = None, ar_table=AR_TABLE) -> None:
        super().__init__()
        self.method = method
        self.attrs = tuple(attrs)
        A = len(self.attrs)
        self.n_images, self.intensity, self.mustache_beard = int(n_images), intensity, mustache_beard
        self.classifier, self.inception, self.swav = classifier, inception, swav
        self.counterfactual = counterfactual
        self.psnr, self.ssim = PSNR(), SSIM(mode=ssim_mode)
        self.mre = MRE(self.attrs, ar_table)
        self.extractors = torch.nn.ModuleDict()
        self.fids = torch.nn.ModuleDict()
        if classifier is not None:
            missing = [a for a in self.attrs if a not in classifier.attrs]
            if missing:
                raise ValueError(f"classifier (attributes {list(classifier.attrs)}) does not predict {missing}")
            self.register_buffer("clf_idx", torch.tensor([classifier.attrs.index(a) for a in self.attrs]),
                                 persistent=False)
            self.tarr, self.clf_acc = TARR(A), AttributeAccuracy(A)
            self.extractors["fid_clf"] = ClassifierExtractor(classifier)
        if inception is not None:
            self.extractors["fid"] = inception
            self.isc = InceptionScore(n_total=self.n_images * A)
        if swav is not None:
            self.extractors["ssfid"] = swav
        for name, ex in self.extractors.items():
            self.fids[name] = FrechetDistance(ex.num_features, groups=A)
            if real_moments and real_moments.get(name) is not None:
                self.fids[name].set_real_moments(*real_moments[name])
        if counterfactual:
            self.cf = CounterfactualError(self.attrs, ar_table)
        self.result: dict | None = None

    def _features(self, name: str, images: torch.Tensor):
        # extractors run in float32 even under a mixed-precision Trainer (reference numbers)
        with torch.autocast(device_type=images.device.type, enabled=False):
            out = self.extractors[name](images.float())
        if name == "fid":
            return out["2048"], out["logits_unbiased"]
        return out, None

    def _predict(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=images.device.type, enabled=False):
            return self.classifier.predict(images.float())[:, self.clf_idx]

    @torch.no_grad()
    def test_step(self, batch, batch_idx):
        x, src, parts = batch["image"], batch["attrs"].float(), batch["parts"]
        pos = batch["_pos"].long()
        B, A = x.shape[0], len(self.attrs)
        if self.classifier is not None:
            self.clf_acc.update(self._predict(x), src)
        for name in self.extractors:
            if self.fids[name]._cached_real is None:
                self.fids[name].update(self._features(name, x)[0], real=True)
        rec = self.method.edit(x, src, src, parts, self.intensity)
        self.psnr.update(rec, x)
        self.ssim.update(rec, x)
        targets = single_flip_targets(src, self.attrs, self.mustache_beard)
        for k, tgt in enumerate(targets):
            y = self.method.edit(x, src, tgt, parts, self.intensity).clamp(-1, 1)
            group = torch.full((B,), k, dtype=torch.long, device=x.device)
            if self.classifier is not None:
                self.tarr.update(self._predict(y), src, tgt, k, parts)
            for name in self.extractors:
                feats, logits = self._features(name, y)
                self.fids[name].update(feats, group=group)
                if logits is not None:
                    self.isc.update(logits, pos * A + k)
            self.mre.update(y, x, parts, src, tgt, k)
            if self.counterfactual:
                self.cf.update(y, batch["cf_image"][:, k], parts, batch["cf_parts"][:, k], src, tgt, k)

    def on_test_epoch_end(self) -> None:
        A = self.attrs
        m: dict[str, Any] = {"psnr": float(self.psnr.compute()), "ssim": float(self.ssim.compute())}
        per: dict[str, dict] = {}
        mre = self.mre.compute()
        m["mre"] = float(mre["total"])
        per["mre"] = dict(zip(A, mre["per_attribute"].tolist()))
        if self.classifier is not None:
            t = self.tarr.compute()
            m["tarr"] = float(t["tarr_mean"])
            m["preservation_error"] = float(t["preservation_error_mean"])
            m["tarr_hat"] = float(t["tarr_hat_mean"])
            m["tarr_nohat"] = float(t["tarr_nohat_mean"])
            m["n_hat"] = float(t["n_hat"])
            for key in ("tarr", "preservation_error", "tarr_hat", "tarr_nohat"):
                per[key] = dict(zip(A, t[key].tolist()))
            acc = self.clf_acc.compute()
            m["clf_acc_test"] = float(acc.mean())
            per["clf_acc_test"] = dict(zip(A, acc.tolist()))
        for name, fid in self.fids.items():
            r = fid.compute()
            if name == "ssfid":  # SeCGAN: mean over the reversed attributes
                m["ssfid"], m["ssfid_pooled"] = r["mean"], r["pooled"]
            else:  # MagGAN: originals vs all edits; MatchGAN's per-attribute mean beside it
                m[name], m[f"{name}_attr_mean"] = r["pooled"], r["mean"]
            per[name] = dict(zip(A, r["groups"]))
        if self.inception is not None:
            s = self.isc.compute()
            m["is"], m["is_std"] = s["mean"], s["std"]
        if self.counterfactual:
            c = self.cf.compute()
            for key, v in c["per_attribute"].items():
                m[key] = float(c[key])
                per[key] = dict(zip(A, v.tolist()))
        self.result = {"metrics": m, "per_attribute": per,
                       "real_moments": {n: f.real_moments() for n, f in self.fids.items()
                                        if f._cached_real is None}}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except Exception:
        return "unknown"


def _impl(extractor) -> str:
    """", BN folded, channels_last" for the fast path (extractors.py), "" when not stated."""
    impl = getattr(extractor, "impl", None)
    return f", {impl}" if impl else ""


def _clean(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def evaluate(method, datamodule, classifier=None, *, inception_weights=None, swav_weights=None,
             inception=None, swav=None, fast_extractors: bool = True,
             intensity: float | None = None, ssim_mode: str = "skimage", mustache_beard: bool = False,
             cache_dir: str | os.PathLike | None = "data/stats_cache", trainer_kwargs: dict | None = None,
             batch_size: int | None = None, dataset: str | None = None, resolution: int | None = None,
             seed: int = 0, progress: bool = True, extra_protocol: dict | None = None) -> dict:
    """Evaluate ``method`` on ``datamodule``'s test split in one pass; return a result record.

    ``classifier``: a loaded classifier (``classifier.load_classifier``) or a path; None skips
    TARR. ``inception_weights`` / ``swav_weights``: local files (or $FACEEDIT_INCEPTION_WEIGHTS /
    $FACEEDIT_SWAV_WEIGHTS); when absent, FID/IS/ssFID are null and the protocol says why, and
    FID on the classifier's features is reported as ``fid_clf``. Extractors built from these files
    run the fast path by default (``fast_extractors=True``: BN folded, channels_last, same values
    up to float rounding; extractors.py); ``False`` runs torch-fidelity's / torchvision's forward.
    ``trainer_kwargs`` go to ``lightning.Trainer`` (devices, strategy="ddp", precision, ...); the
    sampler is ours.
    """
    from .classifier import load_classifier
    from .extractors import INCEPTION_ENV, SWAV_ENV

    datamodule.prepare_data()
    datamodule.setup("test")
    base = datamodule.test_dataloader()
    ds = _WithPosition(base.dataset)
    n = len(ds)
    attrs = tuple(method.attrs)
    if isinstance(classifier, (str, os.PathLike)):
        classifier = load_classifier(classifier)
    inception_weights = inception_weights or os.environ.get(INCEPTION_ENV)
    swav_weights = swav_weights or os.environ.get(SWAV_ENV)
    if inception is None and inception_weights:
        inception = InceptionExtractor(inception_weights, fast=fast_extractors)
    if swav is None and swav_weights:
        swav = SwAVExtractor(swav_weights, fast=fast_extractors)
    data_hash = getattr(datamodule, "data_hash", None) or "unknown"
    res = int(resolution or getattr(datamodule, "res", None) or method.res)

    extractor_hashes = {"fid": getattr(inception, "weights_hash", None),
                        "ssfid": getattr(swav, "weights_hash", None),
                        "fid_clf": getattr(classifier, "weights_hash", None)}
    keys, real = {}, {}
    for name, h in extractor_hashes.items():
        if h is None or cache_dir is None or data_hash == "unknown":
            continue
        keys[name] = stats_cache.cache_key(data_hash=data_hash, split="test", n=n, res=res,
                                           extractor=name, weights=h, quantize="uint8-round")
        real[name] = stats_cache.load_moments(cache_dir, keys[name])

    counterfactual = "cf_image" in ds[0]
    module = EvaluationModule(method, attrs, n, classifier, inception, swav, intensity, ssim_mode,
                              counterfactual, mustache_beard, real)
    bs = batch_size or base.batch_size or 32
    loader = DataLoader(ds, batch_size=bs, sampler=ShardSampler(n), num_workers=base.num_workers,
                        collate_fn=base.collate_fn, persistent_workers=False)
    kw = dict(accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=progress, enable_model_summary=False)
    kw.update(trainer_kwargs or {})
    kw["use_distributed_sampler"] = False
    trainer = pl.Trainer(**kw)
    trainer.test(module, dataloaders=loader, verbose=False)
    result = module.result
    if result is None:
        raise RuntimeError("evaluation produced no result (was the test loop skipped?)")
    for name, moments in result["real_moments"].items():
        if name in keys:
            stats_cache.save_moments(cache_dir, keys[name], *moments,
                                     meta={"data_hash": data_hash, "extractor": name})

    missing = "no weights file given (pass {arg} or set ${env}); the metric is reported as null"
    protocol = {
        "attrs": list(attrs), "crop": getattr(datamodule, "crop", None) or "none",
        "resize_filter": getattr(datamodule, "resize_filter", "bicubic"),
        "test_intensity": intensity if intensity is not None else method.paper_test_intensity,
        "seed": seed, "commit": _commit(), "precision": str(trainer.precision),
        "devices": trainer.world_size, "data_hash": data_hash,
        "mustache_beard_conflict": mustache_beard,
        "classifier_hash": extractor_hashes["fid_clf"],
        "classifier_accuracy": getattr(classifier, "accuracy", None),
        "classifier_attrs": list(getattr(classifier, "attrs", ())),
        "inception_hash": extractor_hashes["fid"], "swav_hash": extractor_hashes["ssfid"],
        "fid_extractor": (f"{getattr(inception, 'name', type(inception).__name__)} pool3 (2048), "
                          "uint8-rounded input" + _impl(inception)) if inception is not None else None,
        "ssfid_extractor": (getattr(swav, "name", type(swav).__name__) + _impl(swav)
                            if swav is not None else None),
        "fid_clf_extractor": "attr-classifier 512-d penultimate features" if classifier else None,
        "ar_table_hash": ar_table_hash(), "hat_threshold": HAT_THRESHOLD,
        "ssim": f"{ssim_mode} (see metrics/psnr_ssim.py), [0,1] uint8-rounded, mean per image",
        "psnr": "mean of per-image PSNR on [0,1], data_range 1, uint8-rounded, capped at 100 dB",
        "mre": "MagGAN eq. 2, [0,1] images, mean over pixels and RGB, AR table on source parts",
        "is_protocol": "torch-fidelity: logits_unbiased, 10 splits, shuffle seed 2020, fake pool",
        "fid_protocol": "real test images vs all single-flip edits (pooled); per attribute in per_attribute",
        "method_protocol": method.method_protocol(),
    }
    if inception is None:
        protocol["fid_status"] = missing.format(arg="inception_weights", env=INCEPTION_ENV)
        protocol["is_status"] = protocol["fid_status"]
    if swav is None:
        protocol["ssfid_status"] = missing.format(arg="swav_weights", env=SWAV_ENV)
    if classifier is None:
        protocol["tarr_status"] = "no attribute classifier given; TARR is reported as null"
    protocol.update(extra_protocol or {})
    metrics = dict(result["metrics"])
    for key in ("fid", "is", "ssfid", "tarr"):
        metrics.setdefault(key, None)
    per = {k: {a: _clean(v) for a, v in t.items()} for k, t in result["per_attribute"].items()}
    per = {k: {a: v for a, v in t.items() if v is not None} for k, t in per.items()}
    return make_record(method=method.method_name, resolution=res,
                       dataset=dataset or getattr(datamodule, "data", None) or "unknown",
                       split="test", n_images=n, metrics=metrics, protocol=protocol, per_attribute=per)
