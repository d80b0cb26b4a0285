"""Short-CPU-run recipe options of ``parsing.train``: class-centred crops, repeat-factor sampling,
soft Dice, low-resolution auxiliary losses, cosine schedule, and their CLI flags."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faceedit_bench.parsing.train import (
    OhemCELoss,
    ParserModule,
    _class_crop_origins,
    repeat_factors,
    soft_dice_loss,
    train_parser,
)
from faceedit_bench.parsing.weights import load_bisenet


def test_fast_ohem_equals_sorted_rule_on_both_branches():
    torch.manual_seed(1)
    crit = OhemCELoss()
    for scale in (0.5, 3.0, 30.0):  # few, some and many hard pixels
        logits = torch.randn(3, 19, 16, 16) * scale
        labels = torch.randint(0, 19, (3, 16, 16))
        per_px = torch.nn.functional.cross_entropy(logits, labels, reduction="none").flatten()
        srt = per_px.sort(descending=True).values
        n_min = labels.numel() // 16
        want = srt[srt > crit.thresh].mean() if srt[n_min] > crit.thresh else srt[:n_min].mean()
        assert torch.allclose(crit(logits, labels), want)


def test_repeat_factors_follow_lvis_rule():
    labels = np.zeros((10, 4, 4), np.uint8)
    labels[:5, 0, 0] = 1          # class 1 in half of the images
    labels[0, 1, 1] = 2           # class 2 in one image in ten
    labels[9, 2, 2] = 255         # ignore label counts for no class
    r = repeat_factors(labels, n_classes=19, thresh=0.4)
    assert r[0] == pytest.approx(math.sqrt(0.4 / 0.1))  # max over its classes
    assert np.allclose(r[1:5], 1.0) and np.allclose(r[5:], 1.0)  # f=0.5 >= t -> 1
    sub = repeat_factors(labels, n_classes=19, thresh=0.4, indices=[0, 9])  # f: 1 and 2 -> 0.5
    assert np.allclose(sub, [1.0, 1.0])
    sub = repeat_factors(labels, n_classes=19, thresh=0.8, indices=[0, 9])
    assert sub == pytest.approx([math.sqrt(0.8 / 0.5), 1.0])


def test_class_crops_contain_the_rare_class_often():
    torch.manual_seed(0)
    labels = torch.zeros(64, 64, 64, dtype=torch.long)
    labels[:, 60:62, 2:4] = 9       # a tiny "earring" in a corner
    labels[:, 20:40, 20:40] = 1     # a big "face" in the middle
    oy, ox = _class_crop_origins(labels, 16)
    assert all(0 <= a <= 48 and 0 <= b <= 48 for a, b in zip(oy, ox))
    hits = sum(bool((labels[i, a:a + 16, b:b + 16] == 9).any()) for i, (a, b) in enumerate(zip(oy, ox)))
    assert hits >= 12  # ~1/3 of the crops (3 classes); uniform crops would hit ~1/49 of the time


def test_soft_dice_zero_for_perfect_and_ignores_absent_classes():
    labels = torch.randint(0, 3, (2, 8, 8))
    perfect = torch.nn.functional.one_hot(labels, 19).permute(0, 3, 1, 2).float() * 50
    assert soft_dice_loss(perfect, labels) < 1e-4
    assert soft_dice_loss(torch.zeros(2, 19, 8, 8), labels) > 0.5


def test_cosine_schedule_warms_up_then_decays_to_zero():
    m = ParserModule(base=4, input_size=16, schedule="cosine", lr=1e-2, max_steps=20, warmup_steps=5)
    sched = m.configure_optimizers()["lr_scheduler"]["scheduler"]
    f = sched.lr_lambdas[0]
    assert f(0) == pytest.approx(0.2) and f(4) == pytest.approx(1.0)
    assert f(5) == pytest.approx(1.0) and f(20) == pytest.approx(0.0, abs=1e-9)
    assert f(12) < f(8)
    with pytest.raises(ValueError, match="schedule"):
        ParserModule(base=4, schedule="step")
    with pytest.raises(ValueError, match="crop_mode"):
        ParserModule(base=4, crop_mode="centre")


def test_mixed_crops_keep_batch_shapes():
    torch.manual_seed(0)
    m = ParserModule(base=4, input_size=48, crop=32, crop_mode="mixed", jitter=0.0)
    images = torch.randint(0, 256, (6, 24, 24, 3), dtype=torch.uint8)
    labels = torch.zeros(6, 24, 24, dtype=torch.long)
    labels[:, 20:22, 1:3] = 9
    x, y = m._prepare(images, labels, train=True)
    assert x.shape == (6, 3, 32, 32) and y.shape == (6, 32, 32)


def test_lowres_aux_loss_matches_heads_and_trains(tmp_path):
    torch.manual_seed(0)
    m = ParserModule(base=4, input_size=32, aux_lowres=True, dice_weight=0.5)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 19, (2, 32, 32))
    loss = m._loss(x, y)
    assert loss.ndim == 0 and torch.isfinite(loss)
    m.model.eval()
    with torch.no_grad():
        from faceedit_bench.parsing.train import _heads

        main_low = _heads(m.model, x)[0]
        up = torch.nn.functional.interpolate(main_low, (32, 32), mode="bilinear", align_corners=True)
        assert torch.allclose(up, m.model(x)[0], atol=1e-5)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 24, 24, 3), dtype=np.uint8)
    labels = np.zeros((12, 24, 24), np.uint8)
    labels[:, 6:18, 6:18] = 1
    labels[:4, 10:12, 10:12] = 6
    images[labels == 1] = (200, 150, 120)
    out = train_parser(images, labels, tmp_path / "p.pt", base=4, input_size=32, steps=3,
                       batch_size=4, crop=24, crop_mode="class", schedule="cosine",
                       aux_lowres=True, aux_weight=0.5, dice_weight=0.2, repeat_thresh=0.5,
                       warmup_steps=1, jitter=0.1, progress=False)
    extra = torch.load(out, weights_only=True)["extra"]
    assert extra["steps"] == 3 and extra["crop_mode"] == "class" and extra["aux_lowres"] is True
    assert load_bisenet(out).input_size == 32


def test_cli_exposes_recipe_options(tmp_path):
    from faceedit_bench.cli import main

    out = tmp_path / "p.pt"
    assert main(["parser", "train", "--data", "synth", "--res", "32", "--n", "8", "--n-eval", "4",
                 "--base", "4", "--steps", "2", "--batch-size", "4", "--input-size", "48",
                 "--crop", "32", "--crop-mode", "class", "--schedule", "cosine", "--aux-lowres",
                 "--aux-weight", "0.5", "--repeat-thresh", "0.3", "--warmup-steps", "1",
                 "--no-eval", "--out", str(out)]) == 0
    extra = torch.load(out, weights_only=True)["extra"]
    assert (extra["schedule"], extra["crop_mode"], extra["aux_weight"]) == ("cosine", "class", 0.5)
    assert extra["repeat_thresh"] == 0.3 and load_bisenet(out).input_size == 48
