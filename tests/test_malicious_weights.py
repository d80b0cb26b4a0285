"""Every weights loader refuses a file whose pickle would run code (a ``__reduce__`` that creates
a sentinel file): one line saying it is not a plain tensor file, and the sentinel never appears.
The package has exactly one ``torch.load`` (``io_utils.load_tensor_file``); this test finds every
call by grep, so a new loader that bypasses it fails here."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from faceedit_bench.io_utils import UnsafeFileError

PKG = Path(__file__).resolve().parents[1] / "faceedit_bench"


class _Evil:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self):  # unpickling would create the sentinel file
        return (open, (self.sentinel, "w"))


def _loaders(path: Path, tmp: Path):
    from faceedit_bench import zoo
    from faceedit_bench.bench import method_from_checkpoint
    from faceedit_bench.metrics import stats_cache
    from faceedit_bench.metrics.classifier import load_classifier
    from faceedit_bench.metrics.extractors import InceptionExtractor, load_swav_resnet50
    from faceedit_bench.nets.official_weights import load_attgan_generator, load_stargan_generator
    from faceedit_bench.parsing.weights import load_bisenet
    from faceedit_bench.quickstart import training_line
    from faceedit_bench.train import load_method

    incep = tmp / "pt_inception-2015-12-05-6726825d.pth"
    swav = tmp / "swav_800ep_pretrain.pth.tar"
    for p in (incep, swav):
        p.write_bytes(path.read_bytes())
    cache = tmp / "cache"
    cache.mkdir()
    stats_cache.cache_path(cache, "k").write_bytes(path.read_bytes())
    return {
        "training checkpoint": lambda: load_method(path),
        "zoo file": lambda: zoo.load_inference(path),
        "bench --ckpt": lambda: method_from_checkpoint(SimpleNamespace(ckpt=str(path), method="x", res=None)),
        "official AttGAN": lambda: load_attgan_generator(path),
        "official StarGAN": lambda: load_stargan_generator(path),
        "face parser": lambda: load_bisenet(path),
        "classifier": lambda: load_classifier(path),
        "Inception": lambda: InceptionExtractor(incep),
        "SwAV": lambda: load_swav_resnet50(swav),
        "statistics cache": lambda: stats_cache.load_moments(cache, "k"),
        "verdict training line": lambda: training_line(path),
    }


def test_the_package_has_one_torch_load():
    calls = [f"{p.relative_to(PKG)}:{i}" for p in PKG.rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"\btorch\.load\(", line) and not line.lstrip().startswith(("#", '"', "'"))
             and "``" not in line]
    assert calls == ["io_utils.py:" + str(next(i for i, line in enumerate(
        (PKG / "io_utils.py").read_text().splitlines(), 1) if "torch.load(" in line and "``" not in line))]
    offenders = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                 if re.search(r"torch\.load\([^)]*weights_only\s*=\s*False", p.read_text())]
    assert offenders == []


@pytest.mark.parametrize("name", ["training checkpoint", "zoo file", "bench --ckpt", "official AttGAN",
                                  "official StarGAN", "face parser", "classifier", "Inception", "SwAV",
                                  "statistics cache", "verdict training line"])
def test_every_loader_refuses_code(name, tmp_path):
    sentinel = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Evil(sentinel)}, evil)
    assert not sentinel.exists()
    load = _loaders(evil, tmp_path)[name]
    if name == "statistics cache":  # a cache is recomputed rather than trusted
        assert load() is None
    else:
        with pytest.raises(Exception) as e:
            load()
        chain = [e.value, e.value.__cause__]
        assert any(isinstance(x, UnsafeFileError) or "not a plain tensor file" in str(x) for x in chain), e.value
        assert len(str(e.value).strip().splitlines()) == 1
    assert not sentinel.exists()


def test_the_loader_list_covers_every_loading_module():
    """Each module calling load_tensor_file has a loader in the parametrised test above."""
    users = sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                   if "load_tensor_file(" in p.read_text() and p.name != "io_utils.py")
    covered = {"train.py", "zoo.py", "bench.py", "nets/official_weights.py", "parsing/weights.py",
               "metrics/classifier.py", "metrics/extractors.py", "metrics/stats_cache.py", "cli/zoo.py",
               "quickstart.py"}
    assert set(users) <= covered, f"new loaders without a malicious-pickle case: {set(users) - covered}"
