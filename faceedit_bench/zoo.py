"""The model zoo: suite-trained inference weights with a manifest (DESIGN §10, issue 14).

An entry is a small file ``zoo/<name>.pt`` holding only what :meth:`edit` needs (the method's
``inference_nets``, their EMA copies where kept, in fp16) with the method's constructor
arguments, and one object in ``zoo/manifest.json``: method, variant, resolution, dataset,
profile, the training config and command, iterations, CPU-hours, renderer version, the store's
data hash, the file's sha256 and the result record of evaluating that file. ``zoo:<name>``
works wherever a checkpoint path does (:func:`resolve`); loading checks the sha256 first and
reads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from .io_utils import load_tensor_file

FORMAT = "faceedit-zoo-v1"
PREFIX = "zoo:"


class ZooError(ValueError):
    """A zoo entry that is missing, malformed or whose file does not match its sha256."""


def zoo_dir() -> Path:
    """``$FACEEDIT_ZOO`` or the repository's ``zoo/`` folder."""
    env = os.environ.get("FACEEDIT_ZOO")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "zoo"


def manifest_path(root: Path | None = None) -> Path:
    return (root or zoo_dir()) / "manifest.json"


def read_manifest(root: Path | None = None) -> dict[str, dict]:
    """``{name: entry}``; an absent manifest is an empty zoo."""
    path = manifest_path(root)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ZooError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ZooError(f"{path}: expected an object name -> entry")
    return data


def write_manifest(entries: dict[str, dict], root: Path | None = None) -> Path:
    """Write the manifest atomically (:func:`~faceedit_bench.io_utils.atomic_write_bytes`), names
    sorted. Writers that read, change and write it go through :func:`update_manifest`."""
    from .io_utils import atomic_write_bytes

    path = manifest_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(sorted(entries.items())), indent=1, sort_keys=True) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def manifest_lock(root: Path | None = None):
    """The lock every read-change-write of the manifest holds (``manifest.json.lock``), so two
    concurrent ``zoo add`` never lose each other's entry."""
    from filelock import FileLock

    path = manifest_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock")


def update_manifest(name: str, value: dict, root: Path | None = None, force: bool = False) -> Path:
    """Add (or with ``force`` replace) entry ``name`` under :func:`manifest_lock`."""
    with manifest_lock(root):
        entries = read_manifest(root)
        if name in entries and not force:
            raise ZooError(f"zoo entry {name!r} exists; pass --force to replace it")
        entries[name] = value
        return write_manifest(entries, root)


def is_zoo_ref(ref: str | os.PathLike | None) -> bool:
    return ref is not None and str(ref).startswith(PREFIX)


def entry(name: str, root: Path | None = None) -> dict:
    entries = read_manifest(root)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise ZooError(f"no zoo entry {name!r} in {manifest_path(root)}; entries: {known}")
    return entries[name]


def resolve(ref: str, root: Path | None = None) -> Path:
    """The verified file of ``zoo:<name>``: sha256 checked against the manifest."""
    from .parsing.weights import file_sha256

    name = str(ref)[len(PREFIX):]
    e = entry(name, root)
    path = (root or zoo_dir()) / e["file"]
    if not path.is_file():
        raise ZooError(f"zoo entry {name!r}: file {path} is missing")
    digest = file_sha256(path)
    if digest != e["sha256"]:
        raise ZooError(f"zoo entry {name!r}: {path} has sha256 {digest[:12]}…, the manifest says "
                       f"{e['sha256'][:12]}… — the file was changed or replaced; refusing to load it")
    return path


def add_classifier(path: Path, root: Path | None = None) -> dict:
    """Copy the attribute classifier an entry was evaluated with into ``<zoo>/classifiers/``
    (same file name: ``<data_hash>_<res>[_<attrs>].pt``); returns the entry's ``classifier``
    field (file and sha256). Shipping it keeps ``eval --ckpt zoo:NAME`` on a fresh clone under
    the recorded protocol (the classifier's hash is part of it)."""
    from .io_utils import atomic_copy
    from .parsing.weights import file_sha256

    rel = Path("classifiers") / Path(path).name
    dst = (root or zoo_dir()) / rel
    if not dst.is_file() or file_sha256(dst) != file_sha256(path):
        atomic_copy(path, dst)
    return {"file": rel.as_posix(), "sha256": file_sha256(dst)}


def classifier_for(name: str, root: Path | None = None) -> Path | None:
    """The zoo's verified copy of the classifier file called ``name`` (any entry's
    ``classifier``), or None when the zoo has none; a copy whose sha256 differs is refused."""
    from .parsing.weights import file_sha256

    for e in read_manifest(root).values():
        c = e.get("classifier") or {}
        if Path(c.get("file", "")).name != name:
            continue
        path = (root or zoo_dir()) / c["file"]
        if not path.is_file():
            return None
        if file_sha256(path) != c["sha256"]:
            raise ZooError(f"{path}: sha256 does not match the zoo manifest's classifier entry; refusing it")
        return path
    return None


def export_inference(method, path: Path) -> Path:
    """Write ``method``'s inference weights (``inference_nets``; EMA copies under the plain
    name) in fp16 with its constructor arguments; atomic."""
    from .io_utils import atomic_torch_save

    names = tuple(getattr(method, "inference_nets", ("G",)))
    sd = {}
    for name in names:
        net = method.inference(name) if hasattr(method, "inference") else getattr(method, name)
        for k, v in net.state_dict().items():
            sd[f"{name}.{k}"] = v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
    hp = {k: v for k, v in dict(method.hparams).items() if k not in ("ema_decay", "compile")}
    blob = {"format": FORMAT, "method": method.method_name, "variant": getattr(method, "variant", None),
            "hyper_parameters": hp, "inference_nets": list(names), "state_dict": sd,
            "iteration": int(getattr(method, "iteration", 0))}
    return atomic_torch_save(blob, path)


def load_inference(path: str | os.PathLike):
    """Rebuild a method from an exported zoo file (eval mode, float32); ``weights_only``."""
    from .methods import get_method_class

    blob = load_tensor_file(path)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ZooError(f"{path}: not a faceedit-bench zoo file (format {FORMAT!r} expected)")
    cls = get_method_class(blob["method"])
    method = cls(**blob["hyper_parameters"], compile=False)
    own = method.state_dict()
    for key, value in blob["state_dict"].items():
        if key not in own:
            raise ZooError(f"{path}: weight {key!r} does not belong to method {blob['method']!r}")
        own[key] = value.to(own[key].dtype)
    method.load_state_dict(own)
    method.iteration = int(blob.get("iteration", 0))
    method.variant = blob.get("variant")
    return method.eval()


def headline(e: dict) -> dict[str, Any]:
    m = (e.get("record") or {}).get("metrics", {})
    return {k: m.get(k) for k in ("tarr", "psnr", "cf_l1_in", "cf_l1_out")}
