"""Acceptance on SynthFaces (rendered in memory by ``data.synthfaces.render_batch``, the same
renderer the export uses): identity gives MRE 0, counterfactual error equal to each flip's true
difference and TARR equal to the classifier's error rate on the test images; an oracle that
returns the ground-truth counterfactual gets counterfactual error 0 and TARR equal to the
classifier's accuracy on the true edits. The classifier is the suite's, trained here for a few epochs at 32 px
(6 epochs: its mean accuracy is high but it misses rare attributes, so "oracle TARR near the
mean accuracy" holds only for a well-trained classifier — tests/test_evaluator.py checks that on
the toy world; here the exact identities are checked, which hold for any classifier)."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import faceedit_bench.data.synthfaces as synth

from faceedit_bench.methods.identity import IdentityMethod  # noqa: E402
from faceedit_bench.metrics.classifier import load_classifier, train_classifier  # noqa: E402
from faceedit_bench.metrics.evaluator import evaluate  # noqa: E402
from faceedit_bench.protocol import CELEBA_ATTRS, DEFAULT_ATTRS, single_flip_targets  # noqa: E402

from _metrics_toy import OracleMethod, ToyDataset  # noqa: E402

RES, SEED = 32, 0
COLS = [CELEBA_ATTRS.index(a) for a in DEFAULT_ATTRS]


def _split(lo, hi, cf):
    idx = list(range(lo, hi))
    out = synth.render_batch(SEED, idx, RES, soft=False)
    d = {"image": out["image"] * 2 - 1, "attrs": out["attrs"][:, COLS].float(),
         "parts": out["labels"], "index": torch.tensor(idx)}
    if cf:
        flips = synth.flip_targets(out["attrs"])
        imgs, parts = [], []
        for a in DEFAULT_ATTRS:
            r = synth.render_batch(SEED, idx, RES, attrs=flips[a], soft=False)
            imgs.append(r["image"] * 2 - 1)
            parts.append(r["labels"])
        d["cf_image"], d["cf_parts"] = torch.stack(imgs, 1), torch.stack(parts, 1)
    return d


class SynthDM:
    data, crop, resize_filter, attrs, res = "synth-inmemory", "none", "none", DEFAULT_ATTRS, RES
    data_hash = "synthfaces-inmemory-s0-r32-640"

    def __init__(self, batch_size=32):
        self.batch_size = batch_size
        self.splits = {"train": _split(0, 512, False), "val": _split(512, 608, False),
                       "test": _split(608, 640, True)}

    def prepare_data(self):
        pass

    def setup(self, stage=None):
        pass

    def _loader(self, s, shuffle=False):
        return DataLoader(ToyDataset(self.splits[s], s == "test"), batch_size=self.batch_size,
                          shuffle=shuffle, num_workers=0)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.manual_seed(0)
    dm = SynthDM()
    path = train_classifier(dm, tmp_path_factory.mktemp("sclf") / "synth_32.pt", epochs=6, width=8,
                            lr=2e-3, progress=False)
    return dm, load_classifier(path)


def test_identity_on_synthfaces(world, tmp_path):
    dm, clf = world
    rec = evaluate(IdentityMethod(DEFAULT_ATTRS, RES), dm, clf, cache_dir=None, progress=False)
    m, per = rec["metrics"], rec["per_attribute"]
    assert m["mre"] == 0.0
    test = dm.splits["test"]
    for k, a in enumerate(DEFAULT_ATTRS):
        true = ((test["image"] - test["cf_image"][:, k]).abs() / 2).flatten(1).mean(1).mean()
        assert per["cf_l1"][a] == pytest.approx(float(true), rel=1e-6, abs=1e-12)
        assert per["tarr"][a] == pytest.approx(1 - per["clf_acc_test"][a], abs=1e-9)
    assert m["tarr"] == pytest.approx(1 - m["clf_acc_test"], abs=1e-9)
    assert m["cf_l1"] > 0


def test_oracle_on_synthfaces(world, tmp_path):
    dm, clf = world
    rec = evaluate(OracleMethod(dm.splits["test"], DEFAULT_ATTRS, RES), dm, clf, cache_dir=None, progress=False)
    m = rec["metrics"]
    assert m["cf_l1"] == 0.0 and m["cf_l1_in"] == 0.0 and m["cf_l1_out"] == 0.0
    # TARR is exactly the classifier's accuracy on the true edits (the flipped value)...
    test = dm.splits["test"]
    targets = single_flip_targets(test["attrs"], DEFAULT_ATTRS)
    for k, a in enumerate(DEFAULT_ATTRS):
        pred = clf.predict(test["cf_image"][:, k])
        hit = (pred[:, k] == targets[k][:, k]).float().mean()
        assert rec["per_attribute"]["tarr"][a] == pytest.approx(float(hit), abs=1e-9)
    # ...and far above what "no edit" gets (the classifier's error rate)
    assert m["tarr"] > 1 - m["clf_acc_test"] + 0.2
    assert rec["protocol"]["classifier_accuracy"] == pytest.approx(clf.accuracy)
