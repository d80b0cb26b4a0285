"""Evaluation tracks (DESIGN §10): which edits are made per test batch and what the record's
protocol says about them. ``attribute_flip`` (attribute_flip.py): the reconstruction and one
flip per attribute with the conflict rules; ``mask_to_face`` (mask_to_face.py): synthesis from
the own label map, component transfer and (extension point) edited target masks.

A track yields :class:`~.context.EditContext` objects; the components registered for it
(``components/*.py``, ``metrics.registry``) turn them into metrics.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Iterator

from ..registry import TRACKS
from .context import EditContext, EvalSetup, MethodCalls

_TRACKS: dict[str, type["Track"]] = {}


class Track:
    """``contexts(...)`` yields every context of one batch; ``protocol(...)`` the track's fields."""

    name: ClassVar[str] = ""

    def __init__(self, setup: EvalSetup, calls: MethodCalls, intensity: float | None,
                 fetch: Callable[[Any], dict] | None = None) -> None:
        self.setup, self.calls, self.intensity, self.fetch = setup, calls, intensity, fetch

    def contexts(self, batch: dict, features_fn) -> Iterator[EditContext]:
        raise NotImplementedError

    def protocol(self) -> dict:
        return {}

    def recorded_intensity(self, method) -> float | None:
        """The test intensity this track's edits used (recorded in the protocol)."""
        return None


def register_track(cls: type[Track]) -> type[Track]:
    if cls.name not in TRACKS:
        raise ValueError(f"track {cls.name!r}: expected one of {list(TRACKS)} (methods/contract.py TRACKS)")
    _TRACKS[cls.name] = cls
    return cls


def method_tracks(method) -> tuple[str, ...]:
    """The tracks ``method`` declares (``tracks`` class attribute; default attribute_flip)."""
    return tuple(getattr(method, "tracks", None) or ("attribute_flip",))


def resolve_track(method, track: str | None) -> type[Track]:
    """The track class to run: ``track``, or the method's first declared one; a track the method
    does not declare raises ``ValueError`` naming the method's tracks."""
    declared = method_tracks(method)
    name = declared[0] if track is None else track
    who = getattr(method, "method_name", type(method).__name__)
    if name not in declared:
        raise ValueError(f"{who} does not declare track {name!r}; its tracks: {list(declared)}")
    from . import attribute_flip, mask_to_face  # noqa: F401  (register the tracks)

    if name not in _TRACKS:
        raise ValueError(f"track {name!r} has no implementation; known: {sorted(_TRACKS)}")
    return _TRACKS[name]
