"""One-pass evaluator: every edit made once per test image, every metric fed from it, no image
written (DESIGN §7; the official pipelines write PNGs and re-read them per metric).

What is edited comes from the **track** (``tracks/attribute_flip.py``: the reconstruction and
each single-attribute flip with the conflict rules; ``tracks/mask_to_face.py``: synthesis from
the own label map, component transfer); what is measured comes from the **components**
registered for that track (``tracks/components/*.py``, ``metrics.registry``): TARR (+
preservation error, hat split), MRE, FID / ssFID / classifier-feature FID, IS, PSNR / SSIM,
counterfactual error, parsing accuracy, and whatever a new component file adds. The method is
called through one adapter (``tracks/context.py`` :class:`MethodCalls`). All metrics are
sum-reduced torchmetrics states, so the pass runs inside Lightning ``test`` under DDP; the test
split is sharded without the padding duplicates Lightning's DistributedSampler adds
(reference/metrics.md §2.5), so DDP gives the one-process numbers.

Public API: :func:`evaluate` -> a validated result record (``results.make_record``).
"""
from __future__ import annotations

import math
import os
import subprocess
from typing import Any, Mapping

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from ..parts import AR_TABLE
from ..results import make_record
from . import stats_cache
from .extractors import ClassifierExtractor, InceptionExtractor, SwAVExtractor
from .registry import component_classes
from .tracks import resolve_track
from .tracks.attribute_flip import MISSING
from .tracks.context import EvalSetup, MethodCalls


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
    """Runs one track over the test split and feeds its registered components (``tracks/``);
    ``trainer.test(module, loader)`` fills :attr:`result` (metrics, per_attribute, real
    statistics to cache, the components' protocol fields)."""

    def __init__(self, method, setup: EvalSetup, intensity: float | None = None, fetch=None) -> None:
        super().__init__()
        self.method, self.eval_setup = method, setup  # not `setup`: that is a Lightning hook
        classifier = setup.classifier
        self.classifier, self.inception, self.swav = classifier, setup.inception, setup.swav
        self.parser = setup.parser
        self.extractors = torch.nn.ModuleDict()
        if classifier is not None:
            missing = [a for a in setup.attrs if a not in classifier.attrs]
            if missing:
                raise ValueError(f"classifier (attributes {list(classifier.attrs)}) does not predict {missing}")
            self.register_buffer("clf_idx", torch.tensor([classifier.attrs.index(a) for a in setup.attrs]),
                                 persistent=False)
            self.extractors["classifier"] = ClassifierExtractor(classifier)
        track_cls = resolve_track(method, setup.track)
        self.track = track_cls(setup, MethodCalls(method), intensity, self._fetch)
        self._fetch_items = fetch
        self.components = torch.nn.ModuleDict()
        self.unavailable: list[type] = []  # components whose needs this run lacks
        for cls in component_classes(setup.track):
            if cls.missing_needs(setup):
                self.unavailable.append(cls)
            else:
                self.components[cls.name] = cls(setup)
        self._fed: dict[str, bool] = {name: False for name in self.components}
        self.result: dict | None = None

    def _fetch(self, pos: torch.Tensor) -> dict:
        """The test items at positions ``pos`` (mask_to_face donors), as a batch on ``pos``'s device."""
        batch = self._fetch_items(pos.tolist())
        return {k: v.to(pos.device) if torch.is_tensor(v) else v for k, v in batch.items()}

    def _features(self, name: str, images: torch.Tensor):
        """``EditContext.features``: extractor ``name`` on ``images``, float32 even under a
        mixed-precision Trainer (the reference numbers)."""
        with torch.autocast(device_type=images.device.type, enabled=False):
            x = images.float()
            if name == "predict":
                return self.classifier.predict(x)[:, self.clf_idx]
            nets = {"inception": self.inception, "swav": self.swav, "parser": self.parser,
                    "classifier": self.extractors["classifier"] if "classifier" in self.extractors else None}
            if nets.get(name) is None:
                raise KeyError(f"evaluator: no extractor {name!r} in this run (have "
                               f"{[k for k, v in nets.items() if v is not None]})")
            return nets[name](x)

    @torch.no_grad()
    def test_step(self, batch, batch_idx):
        for ctx in self.track.contexts(batch, self._features):
            for name, comp in self.components.items():
                if ctx.kind not in comp.kinds:
                    continue
                if comp.extras and (ctx.edited is None or any(e not in ctx.edited.extras for e in comp.extras)):
                    continue  # e.g. no attention map: the component is skipped (see on_test_epoch_end)
                comp.update(ctx)
                self._fed[name] = True

    def _fed_anywhere(self, name: str) -> bool:
        fed = torch.tensor(float(self._fed[name]), device=self.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(fed, op=torch.distributed.ReduceOp.MAX)
        return bool(fed > 0)

    def on_test_epoch_end(self) -> None:
        m: dict[str, Any] = {}
        per: dict[str, dict] = {}
        protocol: dict[str, Any] = {}
        stats: dict[str, Any] = {}
        for name, comp in self.components.items():
            if comp.extras and not self._fed_anywhere(name):
                protocol[f"{name}_status"] = (f"skipped: the method's EditResult has no extras "
                                              f"{list(comp.extras)}")
                continue
            cm, cp = comp.compute()
            extra = sorted((set(cm) | set(cp)) - set(comp.produces))
            if extra:
                raise RuntimeError(f"component {name!r} produced {extra}, not in its `produces` "
                                   f"{list(comp.produces)} (register them with register_metric)")
            m.update(cm)
            per.update(cp)
            protocol.update(comp.protocol())
            stats.update(comp.real_stats())
        for cls in self.unavailable:
            for key in cls.null_when_unavailable:
                m.setdefault(key, None)
        self.result = {"metrics": m, "per_attribute": per, "real_moments": stats, "protocol": protocol}


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
             seed: int = 0, progress: bool = True, extra_protocol: dict | None = None,
             track: str | None = None, ar_table: Mapping = AR_TABLE, parser=None) -> dict:
    """Evaluate ``method`` on ``datamodule``'s test split in one pass; return a result record.

    ``track``: the evaluation track to run (``tracks/``; None: the method's first declared one);
    a track the method does not declare raises ``ValueError``. ``classifier``: a loaded
    classifier (``classifier.load_classifier``) or a path; None skips TARR. ``inception_weights``
    / ``swav_weights``: local files (or $FACEEDIT_INCEPTION_WEIGHTS / $FACEEDIT_SWAV_WEIGHTS); when
    absent, FID/IS/ssFID are null and the protocol says why, and FID on the classifier's features
    is reported as ``fid_clf``. Extractors built from these files run the fast path by default
    (``fast_extractors=True``: BN folded, channels_last, same values up to float rounding;
    extractors.py); ``False`` runs torch-fidelity's / torchvision's forward. ``intensity``: the
    test intensity of the edits (None: the method's ``test_intensity``; recorded either way).
    ``ar_table``: the attribute -> region table of MRE and the counterfactual error (its hash is
    recorded). ``parser``: optional callable images -> B x 19 x H x W logits (mask_to_face parsing
    accuracy). ``trainer_kwargs`` go to ``lightning.Trainer`` (devices, strategy="ddp",
    precision, ...); the sampler is ours.
    """
    from .classifier import load_classifier
    from .extractors import INCEPTION_ENV, SWAV_ENV

    track_name = resolve_track(method, track).name
    datamodule.prepare_data()
    datamodule.setup("test")
    base = datamodule.test_dataloader()
    ds = _WithPosition(base.dataset)
    n = len(ds)
    attrs = tuple(getattr(method, "attrs", ()))
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

    collate = base.collate_fn or default_collate

    def fetch(idx):
        items = ds.__getitems__(idx)
        return items if isinstance(items, dict) else collate(items)

    setup = EvalSetup(track=track_name, attrs=attrs, n_images=n, classifier=classifier,
                      inception=inception, swav=swav, parser=parser, counterfactual="cf_image" in ds[0],
                      ar_table=ar_table, ssim_mode=ssim_mode, mustache_beard=mustache_beard,
                      real_moments=real)
    module = EvaluationModule(method, setup, intensity, fetch)
    bs = batch_size or base.batch_size or 32
    loader = DataLoader(ds, batch_size=bs, sampler=ShardSampler(n), num_workers=base.num_workers,
                        collate_fn=base.collate_fn, persistent_workers=False)
    kw = dict(accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=progress, enable_model_summary=False)
    kw.update(trainer_kwargs or {})
    kw["use_distributed_sampler"] = False
    from ..quiet import install as _quiet_libraries

    _quiet_libraries()
    trainer = pl.Trainer(**kw)
    trainer.test(module, dataloaders=loader, verbose=False)
    result = module.result
    if result is None:
        raise RuntimeError("evaluation produced no result (was the test loop skipped?)")
    for name, moments in result["real_moments"].items():
        if name in keys:
            stats_cache.save_moments(cache_dir, keys[name], *moments,
                                     meta={"data_hash": data_hash, "extractor": name})

    protocol = {
        "attrs": list(attrs), "crop": getattr(datamodule, "crop", None) or "none",
        "resize_filter": getattr(datamodule, "resize_filter", "bicubic"),
        "test_intensity": module.track.recorded_intensity(method),
        "seed": seed, "commit": _commit(), "precision": str(trainer.precision),
        "devices": trainer.world_size, "data_hash": data_hash,
        "classifier_hash": extractor_hashes["fid_clf"],
        "classifier_accuracy": getattr(classifier, "accuracy", None),
        "classifier_attrs": list(getattr(classifier, "attrs", ())),
        "inception_hash": extractor_hashes["fid"], "swav_hash": extractor_hashes["ssfid"],
        "fid_extractor": (f"{getattr(inception, 'name', type(inception).__name__)} pool3 (2048), "
                          "uint8-rounded input" + _impl(inception)) if inception is not None else None,
        "ssfid_extractor": (getattr(swav, "name", type(swav).__name__) + _impl(swav)
                            if swav is not None else None),
        "fid_clf_extractor": "attr-classifier 512-d penultimate features" if classifier else None,
        "method_protocol": method.method_protocol(),
    }
    if inception is None:
        protocol["fid_status"] = MISSING.format(arg="inception_weights", env=INCEPTION_ENV)
    protocol.update(module.track.protocol())
    protocol.update(result["protocol"])
    protocol.update(extra_protocol or {})
    per = {k: {a: _clean(v) for a, v in t.items()} for k, t in result["per_attribute"].items()}
    per = {k: {a: v for a, v in t.items() if v is not None} for k, t in per.items()}
    return make_record(method=method.method_name, resolution=res,
                       dataset=dataset or getattr(datamodule, "data", None) or "unknown",
                       split="test", n_images=n, metrics=dict(result["metrics"]), protocol=protocol,
                       per_attribute=per, track=track_name)
