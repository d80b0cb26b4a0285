"""SynthFaces renderer: determinism, marginals, correlation rules, classes, counterfactual locality."""
import numpy as np
import pytest
import torch

from faceedit_bench.data.synth_factors import (
    RENDERED_ATTRS, TARGET_MARGINALS, fill_celeba_columns, identity_uniforms, sample_rendered_attrs,
)
from faceedit_bench.data.synth_locality import flip_locality
from faceedit_bench.data.synthfaces import flip_targets, render_batch, to_uint8
from faceedit_bench.parts import NUM_PARTS
from faceedit_bench.protocol import CELEBA_ATTRS


def test_same_seed_identical_bytes_different_seed_differs():
    a = render_batch(0, [0, 1, 2, 3], 32)
    b = render_batch(0, [0, 1, 2, 3], 32)
    c = render_batch(1, [0, 1, 2, 3], 32)
    assert to_uint8(a["image"]).tobytes() == to_uint8(b["image"]).tobytes()
    assert a["labels"].numpy().tobytes() == b["labels"].numpy().tobytes()
    assert torch.equal(a["attrs"], b["attrs"])
    assert to_uint8(a["image"]).tobytes() != to_uint8(c["image"]).tobytes()
    # distinct identities within a dataset differ too
    assert not np.array_equal(to_uint8(a["image"])[0], to_uint8(a["image"])[1])


def test_output_shapes_and_ranges():
    r = render_batch(3, [5, 9], 32)
    assert r["image"].shape == (2, 3, 32, 32) and r["image"].dtype == torch.float32
    assert 0 <= r["image"].min() and r["image"].max() <= 1
    assert r["labels"].shape == (2, 32, 32) and r["labels"].dtype == torch.uint8
    assert r["soft"].shape == (2, NUM_PARTS, 32, 32)
    assert torch.allclose(r["soft"].sum(1), torch.ones(2, 32, 32), atol=1e-4)
    assert torch.equal(r["labels"], r["soft"].argmax(1).to(torch.uint8))
    assert r["attrs"].shape == (2, 40) and set(r["attrs"].unique().tolist()) <= {0, 1}


def test_sample_independent_of_batch_composition():
    alone = render_batch(0, [7], 48)
    inside = render_batch(0, [3, 11, 7, 2], 48)
    diff = (alone["image"][0] - inside["image"][2]).abs().max().item()
    assert diff <= 1.0 / 255   # identical up to float rounding of vectorised kernels
    assert (alone["labels"][0] != inside["labels"][2]).float().mean() < 1e-3
    assert torch.equal(alone["attrs"][0], inside["attrs"][2])


def test_marginals_within_two_points_over_20000():
    r = sample_rendered_attrs(0, np.arange(20_000))
    for i, name in enumerate(RENDERED_ATTRS):
        assert abs(r[:, i].mean() - TARGET_MARGINALS[name]) <= 0.02, name
    ident = identity_uniforms(0, np.arange(20_000))
    full = fill_celeba_columns(r, ident)
    assert abs(full[:, CELEBA_ATTRS.index("Wearing_Hat")].mean() - 0.08) <= 0.02


def test_correlation_rules_hold_for_every_sample():
    r = sample_rendered_attrs(5, np.arange(20_000)).astype(bool)
    c = {n: r[:, i] for i, n in enumerate(RENDERED_ATTRS)}
    assert not (c["Mustache"] & ~c["Male"]).any()
    assert not (~c["No_Beard"] & ~c["Male"]).any()
    assert not (c["Bald"] & c["Bangs"]).any()
    assert (c["Black_Hair"].astype(int) + c["Blond_Hair"] + c["Brown_Hair"] <= 1).all()
    full = fill_celeba_columns(r.astype(np.uint8), identity_uniforms(5, np.arange(20_000)))
    hair = full[:, [CELEBA_ATTRS.index(n) for n in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")]]
    assert (hair.sum(1) <= 1).all()


def test_flip_targets_apply_conflict_rules():
    attrs = np.zeros((1, 40), np.uint8)
    attrs[0, CELEBA_ATTRS.index("Black_Hair")] = 1
    attrs[0, CELEBA_ATTRS.index("Bangs")] = 1
    t = flip_targets(attrs)
    blond = t["Blond_Hair"][0]
    assert blond[RENDERED_ATTRS.index("Blond_Hair")] == 1 and blond[RENDERED_ATTRS.index("Black_Hair")] == 0
    bald = t["Bald"][0]
    assert bald[RENDERED_ATTRS.index("Bald")] == 1 and bald[RENDERED_ATTRS.index("Bangs")] == 0


def test_all_19_classes_occur():
    labels = render_batch(0, np.arange(64), 48, soft=False)["labels"]
    present = set(labels.unique().tolist())
    assert present == set(range(NUM_PARTS)), sorted(set(range(NUM_PARTS)) - present)


def test_attrs_override_rejects_bad_shapes():
    with pytest.raises(ValueError, match="40 .* or 14"):
        render_batch(0, [0, 1], 32, attrs=np.zeros((2, 5), np.uint8))
    with pytest.raises(ValueError, match="one row per index"):
        render_batch(0, [0, 1], 32, attrs=np.zeros((3, 14), np.uint8))


def test_counterfactual_locality_every_attribute_200_identities():
    """>= 99% of changed pixels inside the AR region (src+tgt maps, dilated 2 px); every flip changes."""
    report = flip_locality(0, np.arange(200), 32)
    assert set(report) == set(RENDERED_ATTRS)
    for name, r in report.items():
        assert r["n"] == 200
        assert r["unchanged_flips"] == 0, name
        assert r["inside"] / r["changed"] >= 0.99, (name, r)


def test_windowed_layers_equal_full_image_evaluation():
    """Every layer's window (union of per-sample boxes) contains all of its coverage: rendering
    with every window = the whole image gives the same pixels and labels."""
    from faceedit_bench.data.synth_render import render_tensors

    idx = np.arange(48)
    u = torch.from_numpy(identity_uniforms(4, idx).astype(np.float32))
    a = torch.from_numpy(sample_rendered_attrs(4, idx).astype(np.float32))
    a[::3, RENDERED_ATTRS.index("Eyeglasses")] = 1        # exercise the optional layers
    a[1::4, RENDERED_ATTRS.index("Mustache")] = 1
    for res in (16, 40):
        img, lab, soft = render_tensors(u, a, res, soft=True)
        img_f, lab_f, _ = render_tensors(u, a, res, full=True)
        assert (img - img_f).abs().max() <= 1e-5
        assert torch.equal(lab, lab_f)
        assert torch.equal(lab, soft.argmax(1).to(torch.uint8))
