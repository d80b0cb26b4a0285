"""What evaluator components see: the run's setup, one context per edit, the component base.

A **component** (``components/*.py``) owns torchmetrics states and turns the contexts of one
track into record metrics: ``update(ctx)`` for each context whose ``kind`` it listens to,
``compute() -> (metrics, per_attribute)`` once at the end (sum-reduced states: exact under DDP,
DESIGN §7). It declares what it needs (``needs``: classifier / inception / swav / parser /
counterfactuals; ``extras``: names of ``EditResult.extras`` it reads — the component is skipped
when the method's results lack one) and every key it may produce (``produces``, registered
metrics: checked at registration and after ``compute``).

Context kinds: ``real`` (the test images themselves, once per batch), ``reconstruction``
(target = source: attribute labels or the own label map), ``flip`` (attribute_flip: attribute
``k`` inverted), ``transfer`` (mask_to_face: components of another test face), ``mask_edit``
(mask_to_face: an edited target mask, ``ctx.name`` says which; see ``mask_to_face.py``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch

from ...methods.contract import EditResult, as_edit_result

#: what a component may need besides the method's edits (DESIGN §10: "ask by name")
NEEDS = ("classifier", "inception", "swav", "parser", "counterfactuals")


@dataclass
class EvalSetup:
    """Everything a component may be built from (one evaluation run)."""

    track: str
    attrs: tuple[str, ...]
    n_images: int
    classifier: Any = None
    inception: Any = None
    swav: Any = None
    parser: Callable | None = None
    counterfactual: bool = False
    ar_table: Mapping | None = None
    ssim_mode: str = "skimage"
    mustache_beard: bool = False
    real_moments: dict = field(default_factory=dict)

    def has(self, need: str) -> bool:
        if need not in NEEDS:
            raise ValueError(f"unknown component need {need!r}; expected one of {list(NEEDS)}")
        return bool(self.counterfactual) if need == "counterfactuals" else getattr(self, need) is not None


@dataclass
class EditContext:
    """One edit of one batch. ``x`` B x 3 x H x W source images in [-1, 1]; ``src`` / ``tgt``
    B x A labels (attribute_flip); ``k`` the flipped attribute (None unless ``kind == "flip"``);
    ``parts`` the source label maps; ``target_parts`` the map synthesised (mask_to_face);
    ``edited`` the method's :class:`EditResult` (None for ``real``); ``pos`` each row's position
    in the test split; ``batch`` the whole batch dict (e.g. ``cf_image``)."""

    kind: str
    x: torch.Tensor
    pos: torch.Tensor
    batch: dict
    features_fn: Callable[[str, torch.Tensor], Any]
    src: torch.Tensor | None = None
    tgt: torch.Tensor | None = None
    k: int | None = None
    parts: torch.Tensor | None = None
    target_parts: torch.Tensor | None = None
    edited: EditResult | None = None
    name: str = ""
    _cache: dict = field(default_factory=dict)

    @property
    def images(self) -> torch.Tensor:
        """The images this context is about: the edit, or the real images for ``real``."""
        return self.x if self.edited is None else self.edited.images

    def features(self, extractor: str):
        """Features of :attr:`images` by ``extractor`` ("inception": dict with ``2048`` and
        ``logits_unbiased``; "swav", "classifier": B x d; "predict": B x A classifier
        predictions in the method's attribute order), computed once per context (float32)."""
        if extractor not in self._cache:
            self._cache[extractor] = self.features_fn(extractor, self.images)
        return self._cache[extractor]


class Component(torch.nn.Module):
    """Base of the evaluator components; subclasses set the class attributes and override
    ``update`` / ``compute`` (and ``protocol`` / ``real_stats`` when they have any)."""

    name: ClassVar[str] = ""
    tracks: ClassVar[tuple[str, ...]] = ("attribute_flip",)
    kinds: ClassVar[tuple[str, ...]] = ()
    needs: ClassVar[tuple[str, ...]] = ()
    extras: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[tuple[str, ...]] = ()
    #: reported as null when a need is missing (so every record of a track has these keys)
    null_when_unavailable: ClassVar[tuple[str, ...]] = ()

    def __init__(self, setup: EvalSetup) -> None:
        super().__init__()
        self.setup = setup

    @classmethod
    def missing_needs(cls, setup: EvalSetup) -> list[str]:
        return [n for n in cls.needs if not setup.has(n)]

    def update(self, ctx: EditContext) -> None:
        raise NotImplementedError

    def compute(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        raise NotImplementedError

    def protocol(self) -> dict:
        """Protocol fields this component adds to the record (default none)."""
        return {}

    def real_stats(self) -> dict:
        """Real-image statistics to cache (``stats_cache`` name -> moments); default none."""
        return {}

    def per_attr(self, values: Sequence[float] | float) -> dict[str, float]:
        if isinstance(values, (int, float)):  # a one-attribute state comes back as a scalar
            values = [values]
        return dict(zip(self.setup.attrs, values))


class MethodCalls:
    """The evaluator's one adapter to the method contract (methods/contract.py): ``edit`` with
    ``attr_index`` only when the method's signature takes it, ``synthesize`` for mask_to_face;
    every answer wrapped by :func:`as_edit_result`."""

    def __init__(self, method) -> None:
        self.method = method
        edit = getattr(method, "edit", None)
        self._attr_index = False
        if edit is not None:
            params = inspect.signature(edit).parameters.values()
            self._attr_index = any(p.name == "attr_index" or p.kind is p.VAR_KEYWORD for p in params)

    def edit(self, x, src, tgt, parts, intensity, attr_index=None) -> EditResult:
        if self._attr_index:
            out = self.method.edit(x, src, tgt, parts, intensity, attr_index=attr_index)
        else:
            out = self.method.edit(x, src, tgt, parts, intensity)
        return as_edit_result(out)

    def synthesize(self, target_parts, images, parts, component_images=None, component_parts=None) -> EditResult:
        fn = getattr(self.method, "synthesize", None)
        if fn is None:
            raise TypeError(f"{getattr(self.method, 'method_name', type(self.method).__name__)}: the "
                            "mask_to_face track calls method.synthesize(target_parts, images, parts, "
                            "component_images=None, component_parts=None), which this method lacks")
        return as_edit_result(fn(target_parts, images, parts, component_images=component_images,
                                 component_parts=component_parts))


def clamp_result(r: EditResult) -> EditResult:
    """Images clamped to [-1, 1] (as a saved image would be), extras unchanged."""
    return EditResult(r.images.clamp(-1, 1), dict(r.extras))
