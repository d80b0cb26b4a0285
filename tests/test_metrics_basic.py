"""PSNR/SSIM against scikit-image, IS against torch-fidelity's function, TARR/MRE/counterfactual
units on hand-made tensors."""
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from faceedit_bench.metrics.counterfactual import CounterfactualError
from faceedit_bench.metrics.inception_score import InceptionScore
from faceedit_bench.metrics.mre import MRE
from faceedit_bench.metrics.psnr_ssim import PSNR, SSIM, MeanL1, to_unit
from faceedit_bench.metrics.tarr import TARR
from faceedit_bench.parts import PART_INDEX


def _pair(seed, n=3, res=24):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, res, res, generator=g) * 2 - 1
    y = (x + 0.15 * torch.randn(n, 3, res, res, generator=g)).clamp(-1, 1)
    return x, y


@pytest.mark.parametrize("mode,kw", [("skimage", {}),
                                     ("gaussian", {"gaussian_weights": True, "use_sample_covariance": False})])
@pytest.mark.parametrize("quantize", [True, False])
def test_ssim_equals_skimage(mode, kw, quantize):
    x, y = _pair(0)
    m = SSIM(mode=mode, quantize=quantize)
    m.update(y[:2], x[:2])
    m.update(y[2:], x[2:])
    ux, uy = to_unit(x, quantize).numpy(), to_unit(y, quantize).numpy()
    ref = np.mean([structural_similarity(ux[i].transpose(1, 2, 0), uy[i].transpose(1, 2, 0),
                                         channel_axis=-1, data_range=1.0, **kw) for i in range(3)])
    assert float(m.compute()) == pytest.approx(ref, abs=1e-4)
    if quantize:  # the same on uint8 data, skimage's own dtype handling
        u8 = lambda t: np.round(t * 255).astype(np.uint8)  # noqa: E731
        ref8 = np.mean([structural_similarity(u8(ux[i]).transpose(1, 2, 0), u8(uy[i]).transpose(1, 2, 0),
                                              channel_axis=-1, **kw) for i in range(3)])
        assert float(m.compute()) == pytest.approx(ref8, abs=1e-4)


def test_ssim_modes_differ_and_unknown_mode_raises():
    x, y = _pair(1)
    a, b = SSIM(mode="skimage"), SSIM(mode="gaussian")
    a.update(y, x)
    b.update(y, x)
    assert abs(float(a.compute()) - float(b.compute())) > 1e-4
    with pytest.raises(ValueError, match="skimage"):
        SSIM(mode="uniform9")


def test_psnr_equals_skimage_mean_of_per_image():
    x, y = _pair(2)
    m = PSNR()
    m.update(y, x)
    ux, uy = to_unit(x).numpy(), to_unit(y).numpy()
    ref = np.mean([peak_signal_noise_ratio(ux[i], uy[i], data_range=1.0) for i in range(3)])
    assert float(m.compute()) == pytest.approx(ref, abs=1e-4)
    same = PSNR()
    same.update(x, x)
    assert float(same.compute()) == pytest.approx(100.0)


def test_mean_l1_is_the_per_image_mean_on_unit_range():
    x, y = _pair(2)
    m = MeanL1()
    m.update(y, x)
    ref = np.mean([np.abs((y[i].numpy() - x[i].numpy()) / 2).mean() for i in range(3)])
    assert float(m.compute()) == pytest.approx(ref, rel=1e-6)
    same = MeanL1()
    same.update(x, x)
    assert float(same.compute()) == 0.0


def test_inception_score_equals_torch_fidelity_function():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = torch.randn(57, 1008, generator=torch.Generator().manual_seed(0)) * 4
    for shuffle in (True, False):
        m = InceptionScore(n_total=57, splits=10, shuffle=shuffle)
        perm = torch.randperm(57)
        for part in perm.split(13):
            m.update(logits[part], part)
        ref = isc_features_to_metric(logits, splits=10, shuffle=shuffle, rng_seed=2020)
        out = m.compute()
        assert out["mean"] == pytest.approx(ref["inception_score_mean"], rel=1e-9)
        assert out["std"] == pytest.approx(ref["inception_score_std"], rel=1e-6)
    incomplete = InceptionScore(n_total=57)
    incomplete.update(logits[:10], torch.arange(10))
    with pytest.raises(RuntimeError, match="n_total"):
        incomplete.compute()


def test_tarr_hits_preservation_and_hat_split():
    src = torch.tensor([[0., 1, 0], [1, 0, 0]])
    tgt = src.clone()
    tgt[:, 0] = 1 - tgt[:, 0]
    pred = torch.tensor([[1., 1, 1], [1, 0, 0]])  # image 0: hit, 1 of 2 others wrong; image 1: miss
    parts = torch.zeros(2, 10, 10, dtype=torch.uint8)
    parts[0, :2] = PART_INDEX["hat"]              # 20 % hat -> "hat" group
    m = TARR(3)
    m.update(pred, src, tgt, 0, parts)
    out = m.compute()
    assert out["tarr"][0] == 0.5 and torch.isnan(out["tarr"][1])
    assert out["preservation_error"][0] == pytest.approx(0.25)
    assert out["tarr_hat"][0] == 1.0 and out["tarr_nohat"][0] == 0.0
    assert out["tarr_mean"] == 0.5


def test_mre_counts_only_change_outside_the_attribute_region():
    names = ("Pale_Skin", "Bald")
    parts = torch.zeros(1, 8, 8, dtype=torch.uint8)
    parts[0, 2:6, 2:6] = PART_INDEX["skin"]
    x = torch.zeros(1, 3, 8, 8)
    y = x.clone()
    y[:, :, 2:6, 2:6] = 1.0                        # change inside skin only (0.5 on [0,1] scale)
    src = torch.tensor([[0., 0.]])
    m = MRE(names)
    for k in range(2):
        tgt = src.clone()
        tgt[:, k] = 1
        m.update(y, x, parts, src, tgt, k)
    out = m.compute()
    assert out["per_attribute"][0] == 0.0            # Pale_Skin may touch skin
    assert out["per_attribute"][1] == pytest.approx(0.5 * 16 / 64)  # Bald 0->1 may touch hair only
    assert out["total"] == pytest.approx(0.5 * 16 / 64 / 2)


def test_counterfactual_error_inside_and_outside():
    names = ("Pale_Skin",)
    parts = torch.zeros(2, 8, 8, dtype=torch.uint8)
    parts[:, :4] = PART_INDEX["skin"]
    x = torch.zeros(2, 3, 8, 8)
    cf = x.clone()
    cf[:, :, :4] = 1.0                             # the true flip brightens the skin
    src, tgt = torch.zeros(2, 1), torch.ones(2, 1)
    ident, oracle = CounterfactualError(names), CounterfactualError(names)
    ident.update(x, cf, parts, parts, src, tgt, 0)
    oracle.update(cf, cf, parts, parts, src, tgt, 0)
    a, b = ident.compute(), oracle.compute()
    assert float(a["cf_l1"]) == pytest.approx(0.25) and float(a["cf_l1_in"]) == pytest.approx(0.5)
    assert float(a["cf_l1_out"]) == 0.0
    assert float(b["cf_l1"]) == 0.0 and float(b["cf_psnr"]) == pytest.approx(100.0)


@pytest.mark.parametrize("n,d", [(300, 20), (10, 40), (12, 256)])  # well-conditioned, rank-deficient (N < d)
def test_frechet_distance_forms_agree_with_scipy_sqrtm(n, d):
    from scipy import linalg

    from faceedit_bench.metrics.fid import FrechetDistance, frechet_distance

    g = torch.Generator().manual_seed(n)
    a = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64)
    b = torch.relu(torch.randn(n + 5, d, generator=g, dtype=torch.float64)) * 2 + 0.3
    m1, m2 = a.mean(0).numpy(), b.mean(0).numpy()
    s1, s2 = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    ref = float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-6)
    fid = FrechetDistance(d)
    fid.update(a, real=True)
    fid.update(b)
    assert fid.compute()["pooled"] == pytest.approx(ref, rel=1e-6)
