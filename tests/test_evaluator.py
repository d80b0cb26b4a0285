"""The one-pass evaluator on a tiny world with exact counterfactuals (tests/_metrics_toy.py):
identity and oracle bounds, the record, null FID without weights, the real-statistics cache."""
import pytest
import torch

from faceedit_bench.methods.identity import IdentityMethod
from faceedit_bench.metrics.classifier import load_classifier
from faceedit_bench.metrics.evaluator import evaluate
from faceedit_bench.results import validate_record

from _metrics_toy import ATTRS, RES, OracleMethod, TinyInception, TinySwAV, ToyDataModule, ToyEditor, toy_classifier_path


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    return load_classifier(toy_classifier_path(tmp_path_factory))


@pytest.fixture(scope="module")
def dm():
    d = ToyDataModule()
    d.setup()
    return d


def _run(method, dm, clf, tmp_path, **kw):
    return evaluate(method, dm, clf, cache_dir=tmp_path / "cache", progress=False, **kw)


def test_identity_bounds_and_record(dm, clf, tmp_path):
    rec = _run(IdentityMethod(ATTRS, RES), dm, clf, tmp_path)
    validate_record(rec)
    m, per, proto = rec["metrics"], rec["per_attribute"], rec["protocol"]
    assert rec["n_images"] == 24 and rec["method"] == "identity"
    assert m["mre"] == 0.0 and m["psnr"] == pytest.approx(100.0) and m["ssim"] == pytest.approx(1.0)
    # counterfactual error of "no edit" is the true difference of each flip
    test = dm.splits["test"]
    for k, a in enumerate(ATTRS):
        true = ((test["image"] - test["cf_image"][:, k]).abs() / 2).flatten(1).mean(1).mean()
        assert per["cf_l1"][a] == pytest.approx(float(true), rel=1e-6)
        assert per["cf_l1_in"][a] > 0 and per["cf_l1_out"][a] == pytest.approx(0.0, abs=1e-12)
        # an unchanged image is "flipped" exactly when the classifier errs on it
        assert per["tarr"][a] == pytest.approx(1 - per["clf_acc_test"][a], abs=1e-9)
    assert m["tarr"] < 0.2
    # no Inception / SwAV weights: null with the reason, FID on classifier features instead
    assert m["fid"] is None and m["is"] is None and m["ssfid"] is None
    assert "FACEEDIT_INCEPTION_WEIGHTS" in proto["fid_status"] and "ssfid_status" in proto
    assert m["fid_clf"] is not None and set(per["fid_clf"]) == set(ATTRS)
    assert proto["classifier_accuracy"] == pytest.approx(clf.accuracy)
    assert proto["classifier_hash"] == clf.weights_hash and len(proto["ar_table_hash"]) == 16
    assert proto["data_hash"] == dm.data_hash and proto["devices"] == 1


def test_oracle_gets_zero_counterfactual_error_and_high_tarr(dm, clf, tmp_path):
    rec = _run(OracleMethod(dm.splits["test"]), dm, clf, tmp_path)
    m = rec["metrics"]
    assert m["cf_l1"] == 0.0 and m["cf_l1_in"] == 0.0 and m["cf_l1_out"] == 0.0
    assert m["cf_psnr"] == pytest.approx(100.0)
    assert m["tarr"] == pytest.approx(m["clf_acc_test"], abs=0.1) and m["tarr"] > 0.8
    # the oracle edits only inside the flipped attribute's region
    assert m["mre"] == pytest.approx(0.0, abs=1e-12)


def test_fid_is_ssfid_with_extractors_and_stats_cache(dm, clf, tmp_path):
    kw = dict(inception=TinyInception(), swav=TinySwAV())
    a = _run(IdentityMethod(ATTRS, RES), dm, clf, tmp_path, **kw)
    cached = sorted((tmp_path / "cache").glob("real-moments-*.pt"))
    assert len(cached) == 3  # fid, ssfid, fid_clf
    b = _run(IdentityMethod(ATTRS, RES), dm, clf, tmp_path, **kw)
    for key in ("fid", "is", "ssfid", "fid_clf", "fid_attr_mean"):
        assert a["metrics"][key] is not None
        assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=1e-9, abs=1e-9)
    # identity: every edit equals its real image, so each fake set equals the real set
    assert abs(a["metrics"]["fid_attr_mean"]) < 1e-6 and abs(a["metrics"]["ssfid"]) < 1e-6
    assert all(abs(v) < 1e-6 for v in a["per_attribute"]["fid"].values())
    assert a["protocol"]["fid_extractor"].startswith("tiny-inception-standin")


class HalfIntensityEditor(ToyEditor):
    """A ToyEditor whose configured test intensity differs from the paper's, scaling its edit."""

    method_name = "half_intensity_editor"

    def __init__(self):
        super().__init__()
        self.test_intensity = 0.5  # e.g. from the method's config (method.model.test_intensity)

    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None):
        k = self.test_intensity if intensity is None else intensity
        return (images + k * ((tgt_attrs - src_attrs) @ self.w).view(-1, 3, 1, 1)).clamp(-1, 1)


def test_recorded_test_intensity_is_the_one_used(dm, clf, tmp_path):
    assert _run(ToyEditor(), dm, None, tmp_path)["protocol"]["test_intensity"] == ToyEditor.paper_test_intensity
    half = _run(HalfIntensityEditor(), dm, None, tmp_path)
    assert half["protocol"]["test_intensity"] == 0.5
    two = _run(HalfIntensityEditor(), dm, None, tmp_path, intensity=2.0)
    assert two["protocol"]["test_intensity"] == 2.0
    assert two["metrics"]["mre"] > half["metrics"]["mre"] > 0  # the edit really used that intensity


def test_ar_table_is_used_and_recorded(dm, tmp_path):
    from faceedit_bench.parts import AR_TABLE, PARTS, ar_table_hash

    everything = {a: (PARTS, PARTS) for a in AR_TABLE}  # every pixel may change: MRE 0, nothing "out"
    default = _run(ToyEditor(), dm, None, tmp_path)
    wide = _run(ToyEditor(), dm, None, tmp_path, ar_table=everything)
    assert default["protocol"]["ar_table_hash"] == ar_table_hash(AR_TABLE)
    assert wide["protocol"]["ar_table_hash"] == ar_table_hash(everything) != ar_table_hash(AR_TABLE)
    assert default["metrics"]["mre"] > 0 and wide["metrics"]["mre"] == 0.0
    assert wide["metrics"]["cf_l1_out"] is None and default["metrics"]["cf_l1_out"] is not None
