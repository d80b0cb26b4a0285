"""The training speed mechanics of the adversarial methods change no number (tiny nets, CPU).

Each fast path (one batched D forward for real + fake, StarGAN's reuse of the last D update's
fake in the G update) is compared with the plain path over a whole Lightning iteration from the
same weights, with SGD in place of Adam so parameter differences are gradient differences.
"""
from __future__ import annotations

import copy

import lightning.pytorch as pl
import pytest
import torch
import torch.nn as nn

from faceedit_bench.callbacks import StopAtIteration
from faceedit_bench.methods import get_method_class
from faceedit_bench.methods.adversarial import batch_independent
from faceedit_bench.train_data import TrainStream

from _train_worker import ToyFaces

RES = 32
TINY = {  # 32 px layouts at width 4
    "attgan": ({"enc_dim": 4, "dec_dim": 4, "enc_layers": 4, "dec_layers": 4},
               {"dim": 4, "fc_dim": 16, "n_layers": 4}),
    "stgan": ({"enc_dim": 4, "dec_dim": 4, "n_layers": 4, "stu_dim": 4},
              {"dim": 4, "fc_dim": 16, "n_layers": 4}),
    "stargan": ({"conv_dim": 4, "repeat_num": 1}, {"conv_dim": 4, "repeat_num": 4}),
}


def _method(name: str, **kw):
    g, d = TINY[name]
    torch.manual_seed(0)
    return get_method_class(name)(res=RES, nets={"G": g, "D": d}, n_critic=2, **kw)


def _fit_one(m) -> pl.Trainer:
    stream = TrainStream(ToyFaces(n=24, res=RES), 3, m.chunks_per_iter, 1)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, use_distributed_sampler=False,
                         callbacks=[StopAtIteration(1)])
    trainer.fit(m, datamodule=stream)
    return trainer


def _sgd(m) -> None:
    m.make_adam = lambda params, lr, betas=None: torch.optim.SGD(params, lr=lr)


def test_batch_independence_of_the_discriminators():
    for name in TINY:
        assert batch_independent(_method(name).D), name
    assert not batch_independent(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    assert not batch_independent(nn.InstanceNorm2d(4, track_running_stats=True))
    assert not batch_independent(nn.Dropout(0.5))


@pytest.mark.parametrize("name", list(TINY))
def test_batched_real_fake_forward_equals_two_forwards(name):
    m = _method(name)
    real, fake = torch.rand(3, 3, RES, RES) * 2 - 1, torch.rand(3, 3, RES, RES) * 2 - 1
    got = m.d_real_fake(real, fake)
    m.d_batched = False
    want = m.d_real_fake(real, fake)
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["attgan", "stargan"])
def test_fast_iteration_equals_the_plain_iteration(name):
    fast = _method(name, schedule="constant", lr=1e-5)  # small steps: a linear regime
    plain = copy.deepcopy(fast)
    plain.d_batched = False
    if name == "stargan":
        assert fast.reuse_fake
        plain.reuse_fake = False
    start = {k: v.clone() for k, v in fast.state_dict().items()}
    for m in (fast, plain):
        _sgd(m)
        _fit_one(m)
        assert m.iteration == 1
    a, b = fast.state_dict(), plain.state_dict()
    moved = 0
    for k, s in start.items():
        if not s.is_floating_point():
            assert torch.equal(a[k], b[k]), k
            continue
        da, db = a[k] - s, b[k] - s
        # equal updates up to float rounding: 0.1 % of the update plus a few ulps of the value
        tol = 1e-3 * db.abs().max().item() + 4 * torch.finfo(s.dtype).eps * s.abs().max().item()
        assert (da - db).abs().max().item() <= tol, f"{k}: updates differ"
        moved += bool(db.abs().max() > 0)
    assert moved > len(start) // 2  # the iteration really trained both players
    if name == "stargan":  # the IN running statistics saw the reused fake twice, as recomputed
        assert (a["G.main.1.running_mean"] != start["G.main.1.running_mean"]).any()


def test_allocator_setting_can_be_turned_off(monkeypatch):
    from faceedit_bench.methods.adversarial import tune_cpu_allocator

    monkeypatch.setenv("FACEEDIT_MALLOC_TUNE", "0")
    assert tune_cpu_allocator() is False


def test_stargan_reuse_under_bf16_mixed_and_channels_last():
    m = _method("stargan", channels_last=True)
    w0 = m.G.main[0].weight.clone()
    stream = TrainStream(ToyFaces(n=24, res=RES), 2, m.chunks_per_iter, 1)
    pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
               precision="bf16-mixed", callbacks=[StopAtIteration(1)]).fit(m, datamodule=stream)
    assert m.iteration == 1 and m._reused is None and not torch.equal(w0, m.G.main[0].weight)
    assert all(torch.isfinite(p).all() for p in m.parameters())
