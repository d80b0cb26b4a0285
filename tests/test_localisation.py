"""Localisation component (metrics/tracks/components/localisation.py) on SynthFaces rendered in
memory: the true counterfactual used as an edit scores 1.0 (IoU and energy ratio), a global
colour shift scores low, an attention mask equal to the true region scores 1.0, identity has no
change (energy ratio left out, IoU 0); through the evaluator and directly on the metric."""
import pytest
import torch
from torch.utils.data import DataLoader

import faceedit_bench.data.synthfaces as synth
from faceedit_bench.methods.base import EditMethod
from faceedit_bench.methods.contract import EditResult
from faceedit_bench.metrics.evaluator import evaluate
from faceedit_bench.metrics.registry import metric_spec
from faceedit_bench.metrics.tracks.components.localisation import (Localisation, changed_pixels,
                                                                   iou, to_uint8)
from faceedit_bench.protocol import CELEBA_ATTRS

RES, SEED = 32, 0
ATTRS = ("Eyeglasses", "Smiling", "Bangs")


def _q(img01):
    """[0, 1] render -> uint8 levels in [-1, 1] (as a store holds them)."""
    return (img01 * 255).round() / 127.5 - 1


def _split(lo, hi):
    idx = list(range(lo, hi))
    out = synth.render_batch(SEED, idx, RES, soft=False)
    flips = synth.flip_targets(out["attrs"])
    cols = [CELEBA_ATTRS.index(a) for a in ATTRS]
    cf = [synth.render_batch(SEED, idx, RES, attrs=flips[a], soft=False) for a in ATTRS]
    return {"image": _q(out["image"]), "attrs": out["attrs"][:, cols].float(), "parts": out["labels"],
            "index": torch.tensor(idx), "cf_image": torch.stack([_q(r["image"]) for r in cf], 1),
            "cf_parts": torch.stack([r["labels"] for r in cf], 1)}


class _DS(torch.utils.data.Dataset):
    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data["image"])

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.data.items()}


class SynthDM:
    data, crop, resize_filter, attrs, res = "synth-inmemory", "none", "none", ATTRS, RES
    data_hash = "unknown"

    def __init__(self):
        self.test = _split(600, 616)

    def prepare_data(self):
        pass

    def setup(self, stage=None):
        pass

    def test_dataloader(self):
        return DataLoader(_DS(self.test), batch_size=8, num_workers=0)


class _Probe(EditMethod):
    """mode 'oracle': the true counterfactual + its true region as attention; 'shift': a global
    colour shift with a uniform attention; 'identity': the input, no attention."""

    method_name = "probe"

    def __init__(self, test, mode):
        super().__init__(ATTRS, RES)
        self.test, self.mode = test, mode
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @torch.no_grad()
    def edit(self, images, src_attrs, tgt_attrs, parts=None, intensity=None, *, attr_index=None):
        if self.mode == "identity" or attr_index is None:
            return EditResult(images.clone())
        if self.mode == "shift":
            y = (images + torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)).clamp(-1, 1)
            return EditResult(y, {"attention": torch.full_like(images[:, :1], 0.9)})
        n = [int((self.test["image"] - im).abs().flatten(1).sum(1).argmin()) for im in images]
        cf = self.test["cf_image"][n, int(attr_index)]
        return EditResult(cf, {"attention": changed_pixels(cf, images).float()[:, None]})


@pytest.fixture(scope="module")
def dm():
    return SynthDM()


def _run(dm, mode):
    return evaluate(_Probe(dm.test, mode), dm, None, cache_dir=None, progress=False,
                    trainer_kwargs={"accelerator": "cpu"})


def test_true_counterfactual_scores_one(dm):
    rec = _run(dm, "oracle")
    m, per = rec["metrics"], rec["per_attribute"]
    for key in ("loc_iou_diff", "loc_energy_diff", "loc_iou_attn", "loc_energy_attn"):
        assert m[key] == pytest.approx(1.0, abs=1e-12), key
        assert set(per[key]) == set(ATTRS) and all(v == pytest.approx(1.0) for v in per[key].values())
    assert "> 16" in rec["protocol"]["localisation"]


def test_global_colour_shift_scores_low(dm):
    m = _run(dm, "shift")["metrics"]
    truth = torch.stack([changed_pixels(dm.test["cf_image"][:, k], dm.test["image"])
                         for k in range(len(ATTRS))], 1).float().mean()
    assert float(truth) < 0.15  # the flips touch a small share of the image
    for key in ("loc_iou_diff", "loc_energy_diff", "loc_iou_attn", "loc_energy_attn"):
        assert m[key] < 0.25, (key, m[key])


def test_identity_has_no_energy_and_no_attention_metrics(dm):
    m = _run(dm, "identity")["metrics"]
    assert m["loc_iou_diff"] == 0.0 and m["loc_energy_diff"] is None
    assert "loc_iou_attn" not in m and "loc_energy_attn" not in m


def test_metric_direct_and_specs():
    x = torch.full((2, 3, 8, 8), -1.0)
    cf = x.clone()
    cf[:, :, :4, :4] = 1.0                 # true region: top-left quarter
    y = x.clone()
    y[:, :, :4, :] = 1.0                   # changes the top half: IoU 0.5, energy ratio 0.5
    loc = Localisation(["A"])
    att = torch.zeros(2, 1, 8, 8)
    att[..., :4, :4] = 0.8
    att[..., 4:, 4:] = 0.2                 # below threshold: IoU 1; mass inside 0.8 / 1.0 = 0.8
    loc.update(y, x, cf, 0, att)
    out = {k: v.reshape(-1) for k, v in loc.compute().items()}  # torchmetrics squeezes 1 attr
    assert out["loc_iou_diff"][0] == pytest.approx(0.5) and out["loc_energy_diff"][0] == pytest.approx(0.5)
    assert out["loc_iou_attn"][0] == pytest.approx(1.0) and out["loc_energy_attn"][0] == pytest.approx(0.8)
    loc.update(y, x, x, 0, att)            # empty true region: left out
    assert loc.compute()["loc_iou_diff"] == pytest.approx(0.5)
    assert torch.equal(to_uint8(torch.tensor([-1.0, 1.0, 0.0])), torch.tensor([0.0, 255.0, 128.0]))
    assert iou(torch.zeros(1, 2, 2, dtype=torch.bool), torch.zeros(1, 2, 2, dtype=torch.bool)) == 0
    for key in ("loc_iou_diff", "loc_energy_diff", "loc_iou_attn", "loc_energy_attn"):
        spec = metric_spec(key)
        assert spec.higher_is_better and spec.tracks == ("attribute_flip",)


def test_true_counterfactual_scores_one_on_an_exported_store(tmp_path):
    """The store's sources are JPEG q95, its counterfactuals lossless: the 16-level threshold
    keeps the oracle at exactly 1.0 there too."""
    from faceedit_bench.data.datamodule import FaceEditDataModule

    dm = FaceEditDataModule(data="synth", root=str(tmp_path / "synth"), res=RES, attrs=ATTRS,
                            store_root=str(tmp_path / "stores"), synth_n=64, num_workers=0,
                            batch_size=4)
    dm.prepare_data()
    dm.setup()
    ds = dm.dataset("test")
    test = ds.__getitems__(list(range(len(ds))))
    exact = (to_uint8(test["cf_image"][:, 0]) != to_uint8(test["image"])).any(1).float().mean()
    assert exact > 0.5  # JPEG noise: nearly every pixel differs by some level
    assert changed_pixels(test["cf_image"][:, 0], test["image"]).float().mean() < 0.1
    rec = evaluate(_Probe(test, "oracle"), dm, None, cache_dir=None, progress=False,
                   trainer_kwargs={"accelerator": "cpu"})
    for key in ("loc_iou_diff", "loc_energy_diff", "loc_iou_attn", "loc_energy_attn"):
        assert rec["metrics"][key] == pytest.approx(1.0, abs=1e-12), key
    assert _run_shift(dm)["metrics"]["loc_energy_diff"] < 0.3


def _run_shift(dm):
    return evaluate(_Probe(None, "shift"), dm, None, cache_dir=None, progress=False,
                    trainer_kwargs={"accelerator": "cpu"})


def test_changed_pixel_error_separates_the_change_from_the_damage(dm):
    """``cf_l1_changed`` / ``cf_l1_unchanged`` (components/changed_pixels.py): the true
    counterfactual scores 0 on both; doing nothing scores the true change's size on the changed
    pixels and only sub-threshold residue elsewhere; a global shift damages the unchanged pixels."""
    oracle, ident, shift = (_run(dm, m) for m in ("oracle", "identity", "shift"))
    for key in ("cf_l1_changed", "cf_l1_unchanged"):
        assert oracle["metrics"][key] == pytest.approx(0.0, abs=1e-12)
        assert set(oracle["per_attribute"][key]) == set(ATTRS)
    for k, a in enumerate(ATTRS):
        x, cf = dm.test["image"], dm.test["cf_image"][:, k]
        truth = changed_pixels(cf, x).unsqueeze(1).expand_as(x)
        size = float(((x.double() - cf.double()).abs() / 2)[truth].mean())
        assert ident["per_attribute"]["cf_l1_changed"][a] == pytest.approx(size, rel=1e-9)
        assert ident["per_attribute"]["cf_l1_unchanged"][a] <= 16 / 255
    assert shift["metrics"]["cf_l1_unchanged"] > 10 * ident["metrics"]["cf_l1_unchanged"]
    assert "> 16" in oracle["protocol"]["changed_pixels"]
    assert not metric_spec("cf_l1_changed").higher_is_better
