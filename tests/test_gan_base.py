"""The shared adversarial base, target encodings, schedules and the resumable stream (toy nets)."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from faceedit_bench.methods.adversarial import AdversarialEditor, LRSchedule
from faceedit_bench.methods.targets import (attgan_test_code, shuffled_targets, stargan_test_labels,
                                            stgan_test_diff, stgan_train_diff)
from faceedit_bench.train_data import StreamSampler, TrainStream

from _train_worker import ToyFaces

A = 3
ATTRS = ("Bald", "Bangs", "Male")


class ToyG(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3 + A, 3, 3, padding=1)

    def forward(self, x, c):
        return torch.tanh(self.conv(torch.cat([x, c[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)))


class ToyD(nn.Module):
    def __init__(self, res=8):
        super().__init__()
        self.adv = nn.Linear(3 * res * res, 1)
        self.cls = nn.Linear(3 * res * res, A)

    def forward(self, x):
        h = x.flatten(1)
        return self.adv(h), self.cls(h)


class Toy(AdversarialEditor):
    method_name = "toy"

    def build_networks(self, nets):
        return {"G": ToyG(), "D": ToyD(self.res)}

    def test_code(self, src, tgt, intensity):
        return tgt

    def d_loss(self, batch, rng):
        x, a = batch["image"], batch["attrs"]
        with torch.no_grad():
            fake = self.generate(x, shuffled_targets(a, rng))
        real_adv, real_cls = self.dis_net(x)
        wd = real_adv.mean() - self.dis_net(fake)[0].mean()
        gp = self.gradient_penalty(x, fake, rng)
        loss = -wd + self.lambda_gp * gp + F.binary_cross_entropy_with_logits(real_cls, a)
        return loss, {"d_loss": loss}

    def g_loss(self, batch, rng):
        x, a = batch["image"], batch["attrs"]
        fake = self.generate(x, shuffled_targets(a, rng))
        loss = -self.dis_net(fake)[0].mean() + F.l1_loss(self.generate(x, a), x)
        return loss, {"g_loss": loss}


def _trainer(max_iters, **kw):
    from faceedit_bench.callbacks import StopAtIteration

    return pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, use_distributed_sampler=False,
                      callbacks=[StopAtIteration(max_iters)], **kw)


def _fit(method, iters, batch=2):
    stream = TrainStream(ToyFaces(n=24, res=8, n_attrs=A), batch, method.chunks_per_iter, iters)
    trainer = _trainer(iters)
    trainer.fit(method, datamodule=stream)
    return trainer


# ------------------------------------------------------------------ encodings (reference §0)
def test_encodings_follow_the_official_code():
    src = torch.tensor([[1.0, 0.0, 1.0]])
    tgt = torch.tensor([[0.0, 0.0, 1.0]])
    # AttGAN: unchanged ±0.5, the edited attribute ±test_int
    assert attgan_test_code(src, tgt, 1.0).tolist() == [[-1.0, -0.5, 0.5]]
    # STGAN released test.py with test_int 2: target ±1, source ∓0.5 -> diff ±1.5; others 0
    assert stgan_test_diff(src, tgt, 2.0).tolist() == [[-1.5, 0.0, 0.0]]
    assert stgan_train_diff(src, tgt).tolist() == [[-1.0, 0.0, 0.0]]
    assert stargan_test_labels(src, tgt, 1.0).tolist() == tgt.tolist()
    with pytest.raises(ValueError, match="B x A"):
        attgan_test_code(src, tgt[0], 1.0)


def test_shuffled_targets_are_a_permutation_of_the_batch():
    a = torch.eye(5)
    b = shuffled_targets(a, torch.Generator().manual_seed(0))
    assert sorted(map(tuple, b.tolist())) == sorted(map(tuple, a.tolist()))


def test_schedules():
    step = LRSchedule("step", 0.5, 100)
    assert step(49) == 1.0 and step(50) == 0.1
    lin = LRSchedule("linear", 0.5, 100)
    assert lin(50) == 1.0 and lin(75) == pytest.approx(0.5) and lin(100) == 0.0


# ------------------------------------------------------------------ the stream
def test_stream_sampler_shards_and_resumes():
    full = list(StreamSampler(10, per_rank=3, total_steps=6, seed=1))
    assert len(full) == 18 and sorted(full[:10]) == list(range(10))  # epoch 0 is a permutation
    # two ranks: disjoint halves of each global batch, together the one-rank stream
    r0 = list(StreamSampler(10, 3, 3, seed=1, rank=0, world=2))
    r1 = list(StreamSampler(10, 3, 3, seed=1, rank=1, world=2))
    merged = sum(([*r0[i:i + 3], *r1[i:i + 3]] for i in range(0, 9, 3)), [])
    assert merged == full
    # resuming at step 4 of 6 yields exactly the rest
    assert list(StreamSampler(10, 3, 6, seed=1, start=12)) == full[12:]


# ------------------------------------------------------------------ the base module
def test_gradient_penalty_of_a_linear_critic():
    m = Toy(attrs=ATTRS, res=8)
    with torch.no_grad():
        m.D.adv.weight.fill_(0.01)
    x = torch.rand(4, 3, 8, 8)
    gp = m.gradient_penalty(x, torch.rand_like(x), torch.Generator().manual_seed(0))
    expected = (m.D.adv.weight.norm() - 1) ** 2  # ∇x (w·x + b) = w for every interpolate
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)


def test_iteration_is_generator_updates_and_each_critic_step_has_its_own_batch():
    m = Toy(attrs=ATTRS, res=8, n_critic=3)
    seen = []
    orig = m.d_loss
    m.d_loss = lambda b, r: (seen.append(b["index"].tolist()), orig(b, r))[1]
    g0 = [p.clone() for p in m.G.parameters()]
    d0 = [p.clone() for p in m.D.parameters()]
    trainer = _fit(m, iters=2)
    assert m.iteration == 2
    assert trainer.global_step == 2 * (3 + 1)  # Lightning counts optimizer steps (suites.md §C2)
    opt_g, opt_d = m.phase_optimizer("G"), m.phase_optimizer("D")
    assert int(opt_g.state[next(m.G.parameters())]["step"]) == 2
    assert int(opt_d.state[next(m.D.parameters())]["step"]) == 6
    assert len(seen) == 6
    flat = [i for s in seen[:3] for i in s]
    assert len(set(flat)) == len(flat)  # three different D batches in one iteration
    assert all(not torch.equal(a, b) for a, b in zip(g0, m.G.parameters()))
    # every D weight moves (the adversarial bias cancels in E[D(real)] - E[D(fake)])
    assert all(not torch.equal(a, b) for a, (n, b) in zip(d0, m.D.named_parameters()) if "weight" in n)


def test_reuse_of_last_d_batch_changes_the_chunk_count():
    class Reuse(Toy):
        g_reuses_last_d_batch = True

    assert Toy(attrs=ATTRS, res=8, n_critic=5).chunks_per_iter == 6
    assert Reuse(attrs=ATTRS, res=8, n_critic=5).chunks_per_iter == 5
    m = Toy(attrs=ATTRS, res=8, n_critic=2)
    with pytest.raises(ValueError, match="chunks_per_iter=3"):
        m.split_batch({"image": torch.zeros(4, 3, 8, 8)})


def test_ema_and_schedule_state():
    m = Toy(attrs=ATTRS, res=8, n_critic=1, ema_decay=0.5, schedule="step", decay_start=0.5,
            max_iters=2)
    _fit(m, iters=2)
    assert m.G_ema is not None and "G_ema.conv.weight" in m.state_dict()
    assert not torch.equal(m.G_ema.conv.weight, m.G.conv.weight)
    assert m.phase_optimizer("G").param_groups[0]["lr"] == pytest.approx(2e-5)  # lr/10 from it 1


def test_compiled_nets_train_both_players():
    m = Toy(attrs=ATTRS, res=8, n_critic=1, compile="eager")  # GP runs on the uncompiled D
    g0, d0 = m.G.conv.weight.clone(), m.D.adv.weight.clone()
    _fit(m, iters=1)
    assert not torch.equal(g0, m.G.conv.weight) and not torch.equal(d0, m.D.adv.weight)


def test_edit_checks_shapes_and_uses_the_paper_intensity_by_default():
    m = Toy(attrs=ATTRS, res=8)
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    a = torch.zeros(2, A)
    assert m.edit(x, a, 1 - a).images.shape == x.shape
    assert m.test_intensity == m.paper_test_intensity
    with pytest.raises(ValueError, match="B x 3"):
        m.edit(torch.rand(2, 8, 8), a, a)
    grid = m.sample_grid(x, a)
    assert grid.shape == (2 * (2 + A), 3, 8, 8)


def test_bf16_mixed_and_channels_last_train():
    m = Toy(attrs=ATTRS, res=8, n_critic=1, channels_last=True)
    assert m.G.conv.weight.is_contiguous(memory_format=torch.channels_last)
    w0 = m.G.conv.weight.clone()
    stream = TrainStream(ToyFaces(n=24, res=8, n_attrs=A), 2, m.chunks_per_iter, 1)
    _trainer(1, precision="bf16-mixed").fit(m, datamodule=stream)
    assert m.iteration == 1 and not torch.equal(w0, m.G.conv.weight)
    assert all(torch.isfinite(p).all() for p in m.parameters())


def test_exponential_schedule_reaches_the_final_factor():
    s = LRSchedule("exponential", 0.5, 100, final_factor=0.01)
    assert s(49) == 1.0 and s(50) == 1.0
    assert s(75) == pytest.approx(0.1) and s(100) == pytest.approx(0.01) and s(200) == pytest.approx(0.01)
