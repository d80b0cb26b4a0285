"""mgpe (Gu et al., CVPR 2019) as a method: component crops on SynthFaces label maps, the
mouth-swap locality of the untrained wiring, the (1+1) alternation and the official variant's
losses, the optional parser path, the counterfactual mask edits (which attributes, scored), and
``faceedit-bench bench --method mgpe --profile smoke`` writing mask_to_face records."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from faceedit_bench.build import build_method
from faceedit_bench.config import compose_config
from faceedit_bench.data.synthfaces import RENDERED_ATTRS, flip_targets, render_batch
from faceedit_bench.methods.mgpe import HELEN_CLASSES, class_weights_19, derangement
from faceedit_bench.metrics.tracks.mask_edits import MASK_EXPRESSIBLE, MASK_INEXPRESSIBLE
from faceedit_bench.nets.mgpe_components import (COMPONENTS, MAP_STRIDE, component_boxes,
                                                 crop_components)
from faceedit_bench.parts import PART_INDEX, region_mask


def method(res: int = 64, profile: str = "smoke", variant: str | None = None, *overrides: str):
    torch.manual_seed(0)
    return build_method(compose_config("mgpe", res, profile=profile, variant=variant, overrides=list(overrides)))


@pytest.fixture(scope="module")
def faces():
    """Six SynthFaces faces at 64 px: images in [-1, 1], label maps, attrs."""
    r = render_batch(0, np.arange(6), 64, soft=False)
    return {"image": r["image"] * 2 - 1, "parts": r["labels"].long(), "attrs40": r["attrs"]}


def batch_of(faces, n: int = 4, attrs=("Bangs", "Mouth_Slightly_Open")) -> dict:
    from faceedit_bench.protocol import CELEBA_ATTRS

    a = faces["attrs40"][:n, [CELEBA_ATTRS.index(x) for x in attrs]].float()
    return {"image": faces["image"][:n], "parts": faces["parts"][:n].to(torch.uint8), "attrs": a}


# ---------------------------------------------------------------- crops on SynthFaces label maps

@pytest.mark.parametrize("res", [64, 128])
def test_component_crops_land_on_the_right_parts_of_synthfaces_maps(res):
    r = render_batch(0, np.arange(4), res, soft=False)
    labels, images = r["labels"].long(), r["image"] * 2 - 1
    boxes = component_boxes(labels)
    crops = crop_components(images, labels, boxes=boxes)
    for name, classes in (("l_eye", ["l_eye"]), ("r_eye", ["r_eye"]), ("mouth", ["mouth", "u_lip", "l_lip"])):
        full = region_mask(labels, classes)
        for b in range(len(labels)):
            assert full[b].any(), (name, b)
            y0, x0, y1, x1 = boxes[name][b].tolist()
            inside = full[b, y0:y1, x0:x1].sum() / full[b].sum()
            assert inside > 0.9, (name, b, float(inside))  # the crop holds the component
            ys, xs = full[b].nonzero(as_tuple=True)
            cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
            assert abs((y0 + y1) / 2 - cy) <= MAP_STRIDE and abs((x0 + x1) / 2 - cx) <= MAP_STRIDE
            assert y0 % MAP_STRIDE == 0 and x0 % MAP_STRIDE == 0
        # the crop's mask is the component's label mask inside the window
        assert crops[name].mask.sum() > 0.9 * full.sum()
    # l_eye is the eye on the image's left, above the mouth
    assert (boxes["l_eye"][:, 1] < boxes["r_eye"][:, 1]).all()
    assert (boxes["l_eye"][:, 0] < boxes["mouth"][:, 0]).all()
    for name, classes in (("skin", ["skin", "l_brow", "r_brow", "nose"]), ("hair", ["hair"])):
        m = region_mask(labels, classes).unsqueeze(1).float()
        assert torch.equal(crops[name].image, images * m)


# ---------------------------------------------------------------- wiring (untrained)

def test_mouth_swap_changes_features_only_in_the_mouth_window_and_output_only_near_it():
    # 256 px (the mouth window is 1/2 of a 64 px face's width); PyTorch's default init, not
    # pix2pixHD's N(0, 0.02), so that an untrained G carries the swap to its output visibly
    G = method(256, "smoke", None, "+method.model.nets.G.normal_init=false").G.eval()
    r = render_batch(0, np.arange(2), 256, soft=False)
    x, m = r["image"] * 2 - 1, r["labels"].long()
    with torch.no_grad():
        codes = G.encode(G.crop(x, m))
        donor = codes.select(torch.tensor([1, 0]))
        swapped = codes.replace(donor, ["mouth"])
        a, b = G.placed_features(codes, m), G.placed_features(swapped, m)
        box = component_boxes(m)["mouth"] // MAP_STRIDE
        for i, name in enumerate(COMPONENTS):
            if name != "mouth":
                assert torch.equal(a[i], b[i]), name
                continue
            diff = (a[i] - b[i]).abs().sum(1) > 0
            for r in range(2):
                y0, x0, y1, x1 = box[r].tolist()
                assert diff[r, y0:y1, x0:x1].any()
                outside = diff[r].clone()
                outside[y0:y1, x0:x1] = False
                assert not outside.any()
        out_a, out_b = G.decode(codes, m, x), G.decode(swapped, m, x)
        # composed output: changed only within the generator's receptive field of the mouth window
        # (smoke G: one residual block = radius 2 at 1/4, two 4x4 s2 deconvs, the 7x7 output conv)
        changed = (out_a - out_b).abs().sum(1) > 0
        pix = component_boxes(m)["mouth"]
        pad = 2 * MAP_STRIDE + 4 + 2 + 3 + 1  # res block (2 at 1/4), deconvs (1 at 1/4, 1 at 1/2), 7x7
        for r in range(2):
            y0, x0, y1, x1 = pix[r].tolist()
            assert changed[r, y0:y1, x0:x1].any()
            far = changed[r].clone()
            far[max(y0 - pad, 0):y1 + pad, max(x0 - pad, 0):x1 + pad] = False
            assert not far.any()
        # background fusion: the background image reaches the output only through the bg mask
        bg_mask = region_mask(m, G.background_parts).float().unsqueeze(1)
        near_bg = torch.nn.functional.max_pool2d(bg_mask, 7, 1, 3) > 0  # E_b is a 7x7 conv
        x2 = torch.where(near_bg, x, -x)          # a different image away from the background
        assert torch.equal(G.decode(codes, m, x2), out_a)
        x3 = torch.where(bg_mask > 0, -x, x)      # a different background
        assert not torch.equal(G.decode(codes, m, x3), out_a)


def test_synthesize_uses_donor_components_and_own_background(faces):
    mth = method().eval()
    x, m = faces["image"][:2], faces["parts"][:2].to(torch.uint8)
    own = mth.synthesize(m, x, m).images
    assert own.shape == x.shape and own.abs().max() <= 1
    donor = mth.synthesize(m, x, m, x.flip(0), m.flip(0)).images
    assert not torch.equal(own, donor)
    again = mth.synthesize(m, x, m, x.flip(0), m.flip(0)).images
    assert torch.equal(donor, again)  # eval: embeddings at their means
    with pytest.raises(ValueError, match="both"):
        mth.synthesize(m, x, m, component_images=x)


# ---------------------------------------------------------------- losses and alternation

def test_paper_alternation_paired_then_unpaired(faces):
    mth = method().train()
    batch, rng = batch_of(faces), torch.Generator().manual_seed(0)
    mth.iteration = 0
    _, g = mth.g_loss(batch, rng)
    _, d = mth.d_loss(batch, rng)
    assert {"g_local", "g_global", "g_adv", "g_fm"} <= set(g) and "g_adv2" not in g
    assert {"d_real", "d_fake"} <= set(d) and "d2_real" not in d
    mth.iteration = 1
    _, g = mth.g_loss(batch, rng)
    _, d = mth.d_loss(batch, rng)
    assert {"g_local", "g_adv2"} <= set(g) and not {"g_global", "g_fm", "g_adv"} & set(g)
    assert {"d2_real", "d2_fake"} <= set(d) and "d_real" not in d
    assert [p.name for p in mth.phases()] == ["G", "D"] and mth.chunks_per_iter == 1


def test_official_variant_weights_and_every_iteration_transfer(faces):
    mth = method(64, "smoke", "official").train()
    assert mth.alternation == "official" and mth.fm_distance == "l1"
    assert mth.loss_weights["lambda_local"] == 500 and mth.loss_weights["lambda_parsing"] == 10
    batch, rng = batch_of(faces), torch.Generator().manual_seed(0)
    for it in (0, 1):
        mth.iteration = it
        loss, g = mth.g_loss(batch, rng)
        _, d = mth.d_loss(batch, rng)
        assert "g_adv2" in g and {"d_real", "d2_real"} <= set(d)
        assert torch.isfinite(loss)
    w = class_weights_19(mth.parsing_class_weights)
    assert w[PART_INDEX["hat"]] == pytest.approx(0.2) and w[PART_INDEX["nose"]] == 3
    assert w[PART_INDEX["u_lip"]] == 8 and w[PART_INDEX["l_eye"]] == 5 and w[PART_INDEX["hair"]] == 1
    covered = [c for v in HELEN_CLASSES.values() for c in v]
    assert sorted(covered) == sorted(PART_INDEX)  # every 19-class name in exactly one Helen class


def test_derangement_never_keeps_a_face():
    g = torch.Generator().manual_seed(0)
    for n in (2, 3, 5):
        for _ in range(5):
            p = derangement(n, g)
            assert sorted(p.tolist()) == list(range(n)) and not (p == torch.arange(n)).any()


def test_parser_path_with_a_tiny_parser(faces, tmp_path):
    from faceedit_bench.parsing import BiSeNet, save_bisenet

    path = save_bisenet(BiSeNet(19, base=8, input_size=None), tmp_path / "p.pt")
    mth = method(64, "smoke", None, "method.model.parsing_loss=true", f"+method.model.helpers.parser={path}")
    mth.train()
    assert "parser" in mth.frozen_helpers()
    batch, rng = batch_of(faces), torch.Generator().manual_seed(0)
    loss, logs = mth.g_loss(batch, rng)
    assert torch.isfinite(logs["g_parsing"]) and logs["g_parsing"] > 0
    loss.backward()
    assert mth.G.mask_generator.fuse.weight.grad is not None
    assert all(p.grad is None for p in mth.helper("parser").parameters())  # frozen
    assert "parser" in mth.method_protocol()["helpers"]
    with pytest.raises(FileNotFoundError, match="helpers.parser"):
        method(64, "smoke", None, "method.model.parsing_loss=true").g_loss(batch, rng)


def test_smoke_widths_scale_by_one_factor():
    from faceedit_bench.config import resolve_method_config

    base = resolve_method_config("mgpe", 256, "quick").model.nets.G
    for res, prof, f in ((64, "quick", 8), (128, "quick", 8), (256, "smoke", 32)):
        g = resolve_method_config("mgpe", res, prof).model.nets.G
        for key in ("ngf", "feat_dim", "enc_dim", "enc_max_dim", "embed_dim", "fc_dim", "img_dec_dim", "img_dec_max_dim"):
            assert g[key] * f == base[key], (res, prof, key)


# ---------------------------------------------------------------- counterfactual mask edits

def test_mask_expressible_attributes_are_those_whose_flip_changes_the_label_map():
    r = render_batch(0, np.arange(12), 64, soft=False)
    changed = set()
    for name, tgt in flip_targets(r["attrs"].numpy()).items():
        f = render_batch(0, np.arange(12), 64, attrs=tgt, soft=False)
        if (f["labels"] != r["labels"]).any():
            changed.add(name)
    assert changed == set(MASK_EXPRESSIBLE) & set(RENDERED_ATTRS)
    assert set(RENDERED_ATTRS) - changed <= set(MASK_INEXPRESSIBLE)


def test_grid_columns(faces):
    mth = method().eval()
    b = batch_of(faces, 3)
    cols, names = mth.grid_columns(b)
    assert names[:7] == ["input", "mask->face", "donor", "donor eyes", "donor mouth", "donor hair", "face swap+"]
    assert all(c.shape == b["image"].shape for c in cols)
    grid = mth.sample_grid(b["image"], b["attrs"], b["parts"])  # the training callback's layout
    assert grid.shape == (3 * (2 + mth.n_attrs), 3, 64, 64)
    assert torch.equal(grid[1], cols[1][0])


def test_bench_smoke_writes_mask_to_face_records(tmp_path, capsys):
    from faceedit_bench.cli import main
    from faceedit_bench.results import validate_record

    args = ["bench", "--method", "mgpe", "--res", "64", "--profile", "smoke", "--no-progress",
            "--data-dir", str(tmp_path / "data"), "--results", str(tmp_path / "results"),
            "--out", str(tmp_path / "lb"), f"out_dir={tmp_path / 'runs'}", "data.num_workers=0"]
    assert main(args) == 0
    rec = validate_record(json.loads((tmp_path / "results" / "results.jsonl").read_text().splitlines()[-1]))
    assert rec["method"] == "mgpe" and rec["track"] == "mask_to_face" and rec["profile"] == "smoke"
    m = rec["metrics"]
    assert {"psnr", "ssim", "fid_clf", "mask_edit_cf_l1", "mask_edit_tarr"} <= set(m)
    per = rec["per_attribute"]["mask_edit_cf_l1"]
    expressible = [a for a in rec["protocol"]["attrs"] if a in MASK_EXPRESSIBLE]
    assert sorted(per) == sorted(expressible) and expressible
    assert m["mask_edit_cf_l1"] == pytest.approx(sum(per.values()) / len(per))
    status = rec["protocol"]["mask_edit_status"]
    assert set(status) == set(rec["protocol"]["attrs"]) - set(expressible)
    assert "Pale_Skin" in status and "label map" in status["Pale_Skin"]
    assert rec["protocol"]["source_mask_edits"] == sorted(f"cf_mask_{a}" for a in expressible)
    assert (tmp_path / "runs" / "mgpe_64_synth_smoke" / "checkpoints" / "last.ckpt").is_file()


def test_counterfactual_mask_edit_scores_on_the_toy_world():
    """The ``cf_mask_<attr>`` edits synthesise from ``cf_parts[:, k]`` and are scored against
    ``cf_image[:, k]``: a method answering the input image gets exactly the input's L1 to the
    counterfactual; attributes without a mask change are absent, with their reason."""
    from _metrics_toy import ATTRS, RES, ToyDataModule

    from faceedit_bench.methods.base import EditMethod
    from faceedit_bench.metrics.evaluator import evaluate

    class Echo(EditMethod):
        method_name, tracks = "echo", ("mask_to_face",)

        def __init__(self):
            super().__init__(ATTRS, RES)
            self.register_buffer("_anchor", torch.zeros(()), persistent=False)
            self.targets = []

        @torch.no_grad()
        def synthesize(self, target_parts, images, parts, component_images=None, component_parts=None):
            self.targets.append(target_parts.clone())
            return images.clone()

    dm = ToyDataModule()
    dm.setup()
    mth = Echo()
    rec = evaluate(mth, dm, None, cache_dir=None, progress=False)
    test, k = dm.splits["test"], ATTRS.index("Mouth_Slightly_Open")
    want = float(((test["image"].double() - test["cf_image"][:, k].double()).abs() / 2).flatten(1).mean(1).mean())
    assert rec["metrics"]["mask_edit_cf_l1"] == pytest.approx(want, rel=1e-9)
    assert rec["per_attribute"]["mask_edit_cf_l1"] == {"Mouth_Slightly_Open": pytest.approx(want, rel=1e-9)}
    assert set(rec["protocol"]["mask_edit_status"]) == {"Pale_Skin", "Black_Hair"}
    assert any(torch.equal(t, test["cf_parts"][:len(t), k]) for t in mth.targets)
    assert rec["protocol"]["source_mask_edits"] == ["cf_mask_Mouth_Slightly_Open"]
