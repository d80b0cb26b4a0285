"""FID and IS equal torch-fidelity's calculate_metrics on the same images and Inception file.

The Inception file is random-initialised in torch-fidelity's exact state-dict layout, with its
batch-norm statistics calibrated on a few images (otherwise pool3 features collapse to ~1e-8 and
every FID is ~0, reference/metrics.md §2.1); no network is used.
"""
from unittest import mock

import numpy as np
import pytest
import torch

fe = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")

from faceedit_bench.metrics.extractors import InceptionExtractor, MissingWeightsError, to_uint8  # noqa: E402
from faceedit_bench.metrics.fid import FrechetDistance  # noqa: E402
from faceedit_bench.metrics.inception_score import InceptionScore  # noqa: E402

N, RES = 6, 32


def _images(seed, n=N):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 4, 4, generator=g)
    x = torch.nn.functional.interpolate(base, size=(RES, RES), mode="bilinear", align_corners=False)
    return (x + 0.1 * torch.rand(n, 3, RES, RES, generator=g)).clamp(0, 1) * 2 - 1


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    torch.manual_seed(0)
    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"])
    for m in net.modules():  # calibrate BN: cumulative batch statistics on a few images
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(to_uint8(torch.cat([_images(10, 2), _images(11, 2)])))
    net.eval()
    with torch.no_grad():
        net.fc.weight.mul_(20)  # spread the random logits so IS is not ~1
    path = tmp_path_factory.mktemp("inc") / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)
    return path


class _DS(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = to_uint8(x)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


@pytest.fixture(scope="module")
def torch_fidelity_reference(inception_file):
    from torch_fidelity import calculate_metrics

    real, fake = _images(1), _images(2) * 0.8
    return calculate_metrics(input1=_DS(fake), input2=_DS(real), cuda=False, fid=True, isc=True,
                             isc_splits=2, feature_extractor_weights_path=str(inception_file),
                             cache=False, save_cpu_ram=True, verbose=False, batch_size=8)


@pytest.mark.parametrize("fast", [False, True], ids=["reference-path", "fast-path"])
def test_fid_and_is_equal_torch_fidelity(inception_file, torch_fidelity_reference, fast):
    ref = torch_fidelity_reference
    real, fake = _images(1), _images(2) * 0.8
    ex = InceptionExtractor(inception_file, fast=fast)
    fid, isc = FrechetDistance(2048), InceptionScore(n_total=N, splits=2)
    fr, ff = ex(real), ex(fake)
    assert ff["2048"].std() > 1e-3, "degenerate features: the test would prove nothing"
    fid.update(fr["2048"], real=True)
    # fakes fed in two shards in shuffled order: the result must not depend on it
    order = torch.randperm(N, generator=torch.Generator().manual_seed(3))
    for part in order.split(4):
        fid.update(ff["2048"][part])
        isc.update(ff["logits_unbiased"][part], part)
    ours_fid, ours_is = fid.compute()["pooled"], isc.compute()
    assert ref["frechet_inception_distance"] > 1e-2
    assert ours_fid == pytest.approx(ref["frechet_inception_distance"], rel=1e-3)
    assert ours_is["mean"] == pytest.approx(ref["inception_score_mean"], rel=1e-3)
    # The std of 2 splits is half the difference of two split scores (~0.003 here): float32
    # round-off of a differently ordered convolution (fast path: BN folded, channels_last) moves
    # each split score by ~1e-5 relative, i.e. the std by ~1e-5 absolute. The reference path
    # runs torch-fidelity's own forward and must match it to round-off of the statistics only.
    std_abs = 1e-6 if not fast else 5e-5
    assert ours_is["std"] == pytest.approx(ref["inception_score_std"], rel=1e-3, abs=std_abs)
    assert ref["inception_score_mean"] > 1.05


def test_fid_of_a_set_against_itself_is_zero():
    g = torch.Generator().manual_seed(0)
    # N > d (well conditioned) and N < d (rank-deficient, as with 2048-d features of few images)
    for n, d in ((200, 16), (12, 256)):
        f = torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g) + 3
        fid = FrechetDistance(d)
        fid.update(f, real=True)
        fid.update(f)
        trace = 2 * float(f.double().var(0).sum())
        assert abs(fid.compute()["pooled"]) < 1e-6 * trace
        other = FrechetDistance(d)
        other.update(f, real=True)
        other.update(f + 0.5)
        assert other.compute()["pooled"] == pytest.approx(0.25 * d, abs=1e-6 * trace)


def test_missing_inception_file_names_it_and_its_source(tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        InceptionExtractor(tmp_path / "nope.pth")
    msg = str(e.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in msg and "torch-fidelity" in msg
    assert "nope.pth" in msg


def test_fast_path_features_equal_torch_fidelity_forward(inception_file):
    """The default fast path (BN folded, channels_last, separable TF1 resize) gives
    torch-fidelity's features up to float32 round-off; ``fast=False`` is its forward itself."""
    x = torch.cat([_images(4, 3), _images(5, 2)])
    ref_ex = InceptionExtractor(inception_file, fast=False)
    fast_ex = InceptionExtractor(inception_file)
    assert fast_ex.fast and not ref_ex.fast and fast_ex.impl != ref_ex.impl
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast_ex.modules())
    with torch.no_grad():
        tf_out = dict(zip(["2048", "logits_unbiased"], ref_ex.net(to_uint8(x))))
    ref, fast = ref_ex(x), fast_ex(x)
    for key in ("2048", "logits_unbiased"):
        assert torch.equal(ref[key], tf_out[key])
        err = float((fast[key] - ref[key]).abs().max() / ref[key].abs().max())
        assert err < 1e-4, (key, err)
