"""The metric registry (metrics/registry.py, stylegan2-ada's metric_main, suites.md §B1.3): every
key the evaluator produces is registered for its track, leaderboard directions and units come
from it, a metric component in a new module shows up in records without editing evaluator.py,
components asking for an extra run only when the method's EditResult has it, and the edit
adapter passes ``attr_index`` to methods that take it."""
import importlib.util
import textwrap

import pytest
import torch

from faceedit_bench.leaderboard import directions
from faceedit_bench.methods import contract
from faceedit_bench.methods.contract import EditResult
from faceedit_bench.metrics import registry
from faceedit_bench.metrics.classifier import load_classifier
from faceedit_bench.metrics.evaluator import evaluate
from faceedit_bench.metrics.registry import MetricSpec, metric_spec, metric_specs, register_metric
from faceedit_bench.metrics.tracks.context import Component

from _metrics_toy import TinyInception, TinySwAV, ToyDataModule, ToyEditor, toy_classifier_path


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    return load_classifier(toy_classifier_path(tmp_path_factory))


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test are undone afterwards."""
    metric_specs()  # discover first
    monkeypatch.setattr(registry, "_SPECS", dict(registry._SPECS))
    monkeypatch.setattr(registry, "_COMPONENTS", dict(registry._COMPONENTS))


def _eval(method, clf, **kw):
    return evaluate(method, ToyDataModule(n_test=12), clf, cache_dir=None, progress=False, **kw)


def test_tracks_agree_with_the_contract():
    assert registry.TRACKS == contract.TRACKS


def test_every_produced_key_is_registered(clf):
    """All components active (classifier, Inception, SwAV, counterfactuals): every metric and
    per-attribute key is a registered metric of the record's track, and every component's
    ``produces`` is registered for each of its tracks."""
    rec = _eval(ToyEditor(), clf, inception=TinyInception(), swav=TinySwAV())
    keys = set(rec["metrics"]) | set(rec["per_attribute"])
    assert {"tarr", "mre", "fid", "ssfid", "is", "psnr", "ssim", "cf_l1", "fid_clf", "clf_acc_test"} <= keys
    for key in keys:
        assert rec["track"] in metric_spec(key).tracks, key
    for cls in registry.component_classes():
        for key in cls.produces:
            assert set(cls.tracks) <= set(metric_spec(key).tracks), (cls.name, key)


def test_unknown_metric_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown metric 'nope'; registered metrics: .*tarr"):
        metric_spec("nope")


def test_conflicting_registration_and_unregistered_produce_fail(scratch_registry):
    with pytest.raises(ValueError, match="registered twice"):
        register_metric(MetricSpec("tarr", False, "fraction", ("attribute_flip",), "wrong direction"))
    with pytest.raises(ValueError, match="tracks"):
        MetricSpec("x", True, "score", ("no_such_track",), "bad track")

    with pytest.raises(KeyError, match=r"produces metric 'not_registered'"):
        @registry.register_component
        class Bad(Component):
            name, kinds, produces = "bad", ("flip",), ("not_registered",)


def test_directions_and_units_come_from_the_registry():
    for spec in metric_specs():
        assert directions.direction(spec.name) is spec.higher_is_better
        assert directions.direction(spec.name + "_mean") is spec.higher_is_better
        assert directions.unit(spec.name) == registry.unit(spec.name) == spec.unit
        assert directions.to_unit(spec.name, 0.5, "%") == (50.0 if spec.unit == "fraction" else 0.5)
    names = [s.name for s in metric_specs()]
    assert directions.order_metrics(reversed(names + ["zz_paper_only"])) == names + ["zz_paper_only"]
    assert directions.direction("zz_paper_only") is None
    af = {s.name for s in metric_specs("attribute_flip")}
    m2f = {s.name for s in metric_specs("mask_to_face")}
    assert "tarr" in af - m2f and "parsing_pixel_acc" in m2f - af and "psnr" in af & m2f


PLUGIN = '''
from faceedit_bench.metrics.registry import MetricSpec, register_component, register_metric
from faceedit_bench.metrics.tracks.context import Component
from torchmetrics import MeanMetric

register_metric(MetricSpec("toy_abs_change", False, "L1 [0,1]", ("attribute_flip",),
                           "mean |edit - source| / 2 over the flips (test plugin)"))


@register_component
class ToyAbsChange(Component):
    name, kinds, produces = "toy_abs_change", ("flip",), ("toy_abs_change",)

    def __init__(self, setup):
        super().__init__(setup)
        self.mean = MeanMetric()

    def update(self, ctx):
        self.mean.update(((ctx.images - ctx.x).abs() / 2).flatten(1).mean(1))

    def compute(self):
        return {"toy_abs_change": float(self.mean.compute())}, {}
'''


def test_component_from_a_new_module_appears_in_the_record(tmp_path, clf, scratch_registry):
    path = tmp_path / "toy_metric_plugin.py"
    path.write_text(textwrap.dedent(PLUGIN))
    spec = importlib.util.spec_from_file_location("toy_metric_plugin", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    rec = _eval(ToyEditor(), None)
    assert rec["metrics"]["toy_abs_change"] > 0
    assert directions.direction("toy_abs_change") is False


class AttentionEditor(ToyEditor):
    """ToyEditor answering an EditResult with an ``attention`` extra, taking ``attr_index``."""

    method_name = "attention_editor"

    def __init__(self):
        super().__init__()
        self.seen = []

    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None, *, attr_index=None):
        self.seen.append(attr_index)
        out = super().edit(images, src_attrs, tgt_attrs, parts, intensity)
        return EditResult(out, {"attention": (out - images).abs().mean(1, keepdim=True)})


LOCAL = '''
from faceedit_bench.metrics.registry import MetricSpec, register_component, register_metric
from faceedit_bench.metrics.tracks.context import Component
from torchmetrics import MeanMetric

register_metric(MetricSpec("toy_attention_mean", None, "score", ("attribute_flip",), "test plugin"))


@register_component
class ToyAttention(Component):
    name, kinds, extras, produces = "toy_attention", ("flip",), ("attention",), ("toy_attention_mean",)

    def __init__(self, setup):
        super().__init__(setup)
        self.mean = MeanMetric()

    def update(self, ctx):
        self.mean.update(ctx.edited.extras["attention"].flatten(1).mean(1))

    def compute(self):
        return {"toy_attention_mean": float(self.mean.compute())}, {}
'''


def test_extra_component_runs_only_with_the_extra(tmp_path, scratch_registry):
    path = tmp_path / "toy_attention_plugin.py"
    path.write_text(textwrap.dedent(LOCAL))
    spec = importlib.util.spec_from_file_location("toy_attention_plugin", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    with_extra = AttentionEditor()
    rec = _eval(with_extra, None)
    assert rec["metrics"]["toy_attention_mean"] > 0
    # the adapter passed attr_index: None for the reconstruction, k for flip k
    assert with_extra.seen[:4] == [None, 0, 1, 2]
    rec = _eval(ToyEditor(), None)  # bare tensors, no attention: skipped, and the protocol says so
    assert "toy_attention_mean" not in rec["metrics"]
    assert "attention" in rec["protocol"]["toy_attention_status"]


def test_undeclared_key_from_compute_fails(scratch_registry, clf):
    @registry.register_component
    class Sneaky(Component):
        name, kinds, produces = "sneaky", ("flip",), ("psnr",)

        def update(self, ctx):
            pass

        def compute(self):
            return {"psnr": 1.0, "ssim": 1.0}, {}

    with pytest.raises(RuntimeError, match=r"component 'sneaky' produced \['ssim'\]"):
        _eval(ToyEditor(), None)
