"""Evaluation tracks (DESIGN §10): track selection, and the mask_to_face track on the toy world
with a toy mask-to-face method (each class of the target map painted with that class's mean
colour in the component face): reconstruction PSNR/SSIM equal a direct computation, transfers use
the next test face by position (batching does not matter), parsing accuracy has its stated
definition, and an edited-mask extension point is called."""
import pytest
import torch

from faceedit_bench.methods.contract import EditResult
from faceedit_bench.methods.identity import IdentityMethod
from faceedit_bench.metrics.classifier import load_classifier
from faceedit_bench.metrics.evaluator import evaluate
from faceedit_bench.metrics.psnr_ssim import psnr_per_image, ssim_per_image, to_unit
from faceedit_bench.metrics.registry import metric_specs
from faceedit_bench.metrics.tracks import mask_to_face
from faceedit_bench.methods.base import EditMethod
from faceedit_bench.parts import NUM_PARTS

from _metrics_toy import ATTRS, RES, TinyInception, ToyDataModule, toy_classifier_path


def paint(target_parts, images, parts):
    """Each class of ``target_parts`` gets that class's mean colour in (images, parts); classes the
    face lacks get its mean colour."""
    out = images.mean((2, 3), keepdim=True).expand_as(images).clone()
    for b in range(images.shape[0]):
        for c in torch.unique(target_parts[b]).tolist():
            src = parts[b] == c
            if src.any():
                out[b][:, target_parts[b] == c] = images[b][:, src].mean(1, keepdim=True)
    return out


class ClassMeanPainter(EditMethod):
    """A toy mask_to_face method; records every call (to check the donors)."""

    method_name = "class_mean_painter"
    tracks = ("mask_to_face",)

    def __init__(self):
        super().__init__(ATTRS, RES)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)
        self.calls = []

    @torch.no_grad()
    def synthesize(self, target_parts, images, parts, component_images=None, component_parts=None):
        self.calls.append((images.clone(), None if component_images is None else component_images.clone(),
                           target_parts.clone()))
        if component_images is None:
            component_images, component_parts = images, parts
        return EditResult(paint(target_parts, component_images, component_parts))


def background_parser(images):
    """Predicts class 0 (background) everywhere: its pixel accuracy is the background fraction."""
    logits = torch.zeros(images.shape[0], NUM_PARTS, *images.shape[-2:])
    logits[:, 0] = 1.0
    return logits


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    return load_classifier(toy_classifier_path(tmp_path_factory))


@pytest.fixture(scope="module")
def dm():
    d = ToyDataModule()
    d.setup()
    return d


def _run(method, dm, clf, **kw):
    return evaluate(method, dm, clf, cache_dir=None, progress=False, **kw)


def test_default_track_and_undeclared_track(dm, clf):
    rec = _run(IdentityMethod(ATTRS, RES), dm, None)
    assert rec["track"] == "attribute_flip"
    with pytest.raises(ValueError, match=r"identity does not declare track 'mask_to_face'.*\['attribute_flip'\]"):
        _run(IdentityMethod(ATTRS, RES), dm, None, track="mask_to_face")
    with pytest.raises(ValueError, match=r"does not declare track 'attribute_flip'.*\['mask_to_face'\]"):
        _run(ClassMeanPainter(), dm, None, track="attribute_flip")


def test_mask_to_face_metrics(dm, clf):
    method = ClassMeanPainter()
    rec = _run(method, dm, clf, parser=background_parser, inception=TinyInception())
    m, test = rec["metrics"], dm.splits["test"]
    # the toy data has counterfactuals: its Mouth_Slightly_Open mask edit (the flip's true label
    # map) is scored too (metrics/tracks/mask_edits.py)
    mask_edit = {"mask_edit_cf_l1", "mask_edit_cf_psnr", "mask_edit_cf_l1_in", "mask_edit_cf_l1_out",
                 "mask_edit_tarr"}
    assert rec["track"] == "mask_to_face" and set(rec["per_attribute"]) == mask_edit
    assert all(set(v) == {"Mouth_Slightly_Open"} for v in rec["per_attribute"].values())
    assert set(m) == {"psnr", "ssim", "rec_l1", "fid", "fid_clf", "parsing_pixel_acc", *mask_edit, "mask_edit_parsing_acc"}
    assert set(m) <= {s.name for s in metric_specs("mask_to_face")}
    # reconstruction: the painting of each face from its own map and components
    rec_images = paint(test["parts"], test["image"], test["parts"])
    a, b = to_unit(rec_images), to_unit(test["image"])
    assert m["psnr"] == pytest.approx(float(psnr_per_image(a, b).mean()), rel=1e-12)
    assert m["ssim"] == pytest.approx(float(ssim_per_image(a, b).mean()), rel=1e-12)
    # parsing accuracy: per-image fraction of pixels where argmax(parser) equals the target map
    assert m["parsing_pixel_acc"] == pytest.approx(float((test["parts"] == 0).flatten(1).double().mean(1).mean()))
    assert m["fid"] is not None and m["fid_clf"] is not None and m["fid_clf"] > 0
    assert rec["protocol"]["test_intensity"] is None and "parsing_protocol" in rec["protocol"]
    # transfer donors: the test face at position (i + 1) mod n
    n = len(test["image"])
    transfers = [(x, c) for x, c, _ in method.calls if c is not None]
    assert sum(len(x) for x, _ in transfers) == n
    for x, c in transfers:
        for row in range(len(x)):
            i = int((test["image"] - x[row]).abs().flatten(1).sum(1).argmin())
            assert torch.equal(c[row], test["image"][(i + 1) % n])


def test_mask_to_face_does_not_depend_on_batching(dm, clf):
    kw = dict(parser=background_parser, inception=TinyInception())
    a = _run(ClassMeanPainter(), dm, clf, batch_size=5, **kw)
    b = _run(ClassMeanPainter(), dm, clf, batch_size=24, **kw)
    for key, v in a["metrics"].items():
        assert b["metrics"][key] == pytest.approx(v, rel=1e-9, abs=1e-9), key


def test_mask_edit_extension_point(dm, monkeypatch):
    """An edited target mask registered by name becomes one more synthesize call per batch."""
    monkeypatch.setitem(mask_to_face.MASK_EDITS, "all_skin", lambda parts, batch: torch.full_like(parts, 1))
    method = ClassMeanPainter()
    rec = _run(method, dm, None)
    edited = [t for _, c, t in method.calls if c is None and bool((t == 1).all())]
    assert sum(len(t) for t in edited) == len(dm.splits["test"]["image"])
    assert rec["protocol"]["mask_edits"] == ["all_skin"]
    assert rec["metrics"]["fid"] is None and "fid_clf" not in rec["metrics"]  # no extractors given
