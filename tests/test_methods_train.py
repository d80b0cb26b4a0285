"""Every registered adversarial method, at every configured resolution, trains one iteration.

Networks keep the layout of the resolution's config (layers, STUs, shortcuts, image size) with
every width key (``*dim``) shrunk, batch 1 and n_critic 1 (the n_critic loop has its own test),
so the sweep runs on CPU in seconds.
"""
from __future__ import annotations

import pytest
import torch

from faceedit_bench.config import compose_config, method_resolutions
from faceedit_bench.methods import available, get_method_class
from faceedit_bench.methods.base import AdversarialEditor
from faceedit_bench.train import fit, load_method

from _train_worker import ToyFaces

TINY = {"fc_dim": 8}


def _cases():
    out = []
    for name in available():
        if not issubclass(get_method_class(name), AdversarialEditor):
            continue  # e.g. identity: nothing to train
        out += [(name, res) for res in method_resolutions(name)]
    return out


def _shrink(cfg) -> None:
    """Set every width key of the networks' kwargs to at most 4 (fc_dim 8), in place."""
    for net in ("generator", "discriminator"):
        node = cfg.method.model.get(net) or {}
        for key, value in list(node.items()):
            if key.endswith("dim") and isinstance(value, int):
                node[key] = TINY.get(key, min(value, 4))


def test_the_sweep_covers_the_three_papers():
    names = {n for n, _ in _cases()}
    assert {"attgan", "stgan", "stargan"} <= names
    for n in ("attgan", "stgan", "stargan"):
        assert {64, 128, 256, 384} <= set(method_resolutions(n))


@pytest.mark.parametrize("name,res", _cases())
def test_one_training_iteration(name, res, tmp_path):
    cfg = compose_config(name, res, overrides=[
        "profile.max_iters=1", "profile.batch_size=1", "profile.n_critic=1",
        "profile.ckpt_every=1", f"profile.sample_every={1 if res <= 64 else 0}", "profile.n_samples=1",
        "profile.progress_bar=false", "profile.resume=null", f"out_dir={tmp_path}", "+run_name=r"])
    _shrink(cfg)
    last = fit(cfg, datamodule=ToyFaces(n=12, res=res), logger=False)
    assert last.is_file()
    assert (tmp_path / "r" / "samples" / "iter_0000001.png").is_file() == (res <= 64)
    m = load_method(last)  # weights_only=True
    assert m.method_name == name
    assert m.iteration == 1 and m.res == res
    ckpt = torch.load(last, weights_only=True)
    assert len(ckpt["optimizer_states"]) == 2 and len(ckpt["lr_schedulers"]) == 2
    x = torch.rand(1, 3, res, res) * 2 - 1
    a = torch.zeros(1, m.n_attrs)
    out = m.edit(x, a, 1 - a)
    assert out.shape == x.shape and torch.isfinite(out).all() and out.abs().max() <= 1
