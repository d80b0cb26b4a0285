"""Method registry: name -> LightningModule class.

A method registers itself with ``@register("name")`` in its own module under
``faceedit_bench/methods/`` (discovered on first lookup) or in a module named in
``$FACEEDIT_PLUGINS`` (comma-separated), so adding a method is one file plus one config
(``configs/method/<name>.yaml``; docs/method_contract.md).
"""
from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Callable, TypeVar

_REGISTRY: dict[str, type] = {}
_DISCOVERED = False
_NOT_METHODS = {"base", "adversarial", "contract", "helpers", "targets"}

T = TypeVar("T", bound=type)


class UnknownMethodError(KeyError):
    """Raised for a method name that is not registered; the message lists the registered ones."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return self.args[0]


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` available as method ``name``."""

    def deco(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method name {name!r} is registered twice ({_REGISTRY[name]} and {cls})")
        cls.method_name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_METHODS and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    for module in filter(None, os.environ.get("FACEEDIT_PLUGINS", "").split(",")):
        importlib.import_module(module.strip())  # methods outside the package (docs/method_contract.md)
    _DISCOVERED = True


def declared_names() -> list[str]:
    """Method names without importing any method (no torch): ``@register("...")`` in this
    package's modules, plus whatever is already registered (plugins, tests). For the command
    line's fast argument checks; :func:`available` is the authority."""
    import re
    from pathlib import Path

    names = set(_REGISTRY)
    for path in Path(__path__[0]).glob("*.py"):
        if path.stem not in _NOT_METHODS and not path.stem.startswith("_"):
            names.update(re.findall(r"@register\(\s*[\"']([\w.-]+)[\"']\s*\)", path.read_text()))
    if os.environ.get("FACEEDIT_PLUGINS"):
        return available()
    return sorted(names)


def available() -> list[str]:
    """Sorted names of every registered method."""
    _discover()
    return sorted(_REGISTRY)


def get_method_class(name: str) -> type:
    _discover()
    if name not in _REGISTRY:
        raise UnknownMethodError(
            f"unknown method {name!r}; registered methods: {', '.join(available())}"
        )
    return _REGISTRY[name]


def build_method(name: str, **kwargs):
    """Instantiate method ``name`` with constructor kwargs (normally ``cfg.method.model``)."""
    return get_method_class(name)(**kwargs)
