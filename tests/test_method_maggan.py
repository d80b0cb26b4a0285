"""MagGAN the method (methods/maggan.py): every config variant trains and evaluates under the smoke
profile at 64 px, the 1024 px build with three D levels runs one iteration, L_mre and the MRE
metric share one preserve mask (and agree), eq. 12's conditioning is zero where the region is
empty, the blend, the hat-damage metric, and the paper tables regenerate from records."""
from __future__ import annotations

import json

import pytest
import torch

from faceedit_bench.build import build_method
from faceedit_bench.cli import main
from faceedit_bench.config import compose_config, method_variants
from faceedit_bench.metrics.mre import MRE, edit_region, masked_l1
from faceedit_bench.nets.spade import SPADE
from faceedit_bench.parts import PART_INDEX
from faceedit_bench.protocol import DEFAULT_ATTRS
from faceedit_bench.results import validate_record

A = len(DEFAULT_ATTRS)


def _method(res=64, variant=None, *overrides):
    torch.manual_seed(0)
    return build_method(compose_config("maggan", res, profile="smoke", variant=variant,
                                       overrides=list(overrides)))


def _batch(b=2, res=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(b, 3, res, res, generator=g) * 2 - 1,
            "attrs": (torch.rand(b, A, generator=g) > 0.5).float(),
            "parts": torch.randint(0, 19, (b, res, res), generator=g).to(torch.uint8)}


# ----------------------------------------------------------------- every variant, smoke, 64 px
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tmp_path_factory.mktemp("maggan")


def _common(world, variant):
    v = ["--variant", variant] if variant else []
    return ["--method", "maggan", "--res", "64", "--profile", "smoke", *v, f"out_dir={world / 'runs'}",
            f"data_dir={world / 'data'}", "data.num_workers=0"]


@pytest.mark.parametrize("variant", [None, *method_variants("maggan")])
def test_variant_smoke_fit_then_eval(world, variant, capsys):
    assert main(["fit", *_common(world, variant)]) == 0
    assert "reached max_iters=2 at iteration 2" in capsys.readouterr().out
    args = ["eval", *_common(world, variant), "--no-progress", "--results", str(world / "results"),
            "--out", str(world / "lb"), "--data-dir", str(world / "data")]
    assert main(args) == 0
    rec = validate_record(json.loads((world / "results" / "results.jsonl").read_text().splitlines()[-1]))
    assert (rec["method"], rec.get("variant"), rec["resolution"]) == ("maggan", variant, 64)
    assert "hat_damage" in rec["metrics"] and "mre" in rec["metrics"]


def test_paper_tables_regenerate_from_records(world):
    """After the sweep above: `faceedit-bench leaderboard` puts every variant into its paper table,
    in the table's "this suite" block (SynthFaces 64 px rows never sit among the CelebA rows)."""
    if not (world / "results" / "results.jsonl").is_file():
        pytest.skip("needs the variant sweep of this module")
    out = world / "boards"
    from pathlib import Path

    papers = Path(__file__).resolve().parents[1] / "leaderboards" / "papers"
    assert main(["leaderboard", "--results", str(world / "results"), "--out", str(out),
                 "--papers", str(papers), "--no-charts"]) == 0
    expect = {"maggan_table1": ["maggan (ours)"],
              "maggan_table3": ["maggan/stgan (ours)", "maggan/stgan_cycle (ours)", "maggan/stgan_mre (ours)",
                                "maggan/wo_mre (ours)", "maggan/wo_spade (ours)", "maggan (ours)",
                                "maggan/seg (ours)"],
              "maggan_table7": ["maggan/wo_mre (ours)", "maggan/lambda100 (ours)", "maggan (ours)",
                                "maggan/lambda400 (ours)"],
              "maggan_table8": ["maggan (ours)", "maggan/blend (ours)"]}
    for name, rows in expect.items():
        text = (out / f"{name}.csv").read_text()
        for row in rows:
            assert f"measured (this suite),{row}," in text, (name, row)
    assert "No measured rows" in (out / "maggan_table2.md").read_text()  # paper-only user study


# ----------------------------------------------------------------- 1024 px, three levels
def _configured_at(res: int, **model):
    """The method built from the config's base + at_res[res] + smoke layers (1024 is configured
    but not in ``resolutions``, which would put it in the registry's smoke sweep)."""
    from omegaconf import OmegaConf

    from faceedit_bench.config import load_method_config
    from faceedit_bench.methods import get_method_class

    raw = load_method_config("maggan")
    cfg = OmegaConf.merge({"model": raw.model, "train": raw.train}, raw.at_res[res],
                          raw.for_profile.smoke, {"model": model})
    kw = OmegaConf.to_container(cfg.model)
    train = {k: cfg.train[k] for k in ("lr", "lr_d", "betas", "n_critic", "max_iters")}
    torch.manual_seed(0)
    return get_method_class("maggan")(res=res, **kw, **train)


def test_1024_three_levels_one_iteration():
    m = _configured_at(1024, nets={"G": {"dim": 1}, "D": {"dim": 1, "head_dim": 2}})
    assert (m.D.n_levels, m.D.base_res, len(m.D.discs)) == (3, 256, 3)
    batch = _batch(1, 1024)
    maps = [adv.shape[-2:] for adv, _ in m.D(batch["image"])]
    assert maps == [(1, 1), (2, 2), (4, 4)]  # one entry per 256^2 patch (Table 6)
    opt_d = torch.optim.Adam(m.D.parameters(), 2e-4)
    opt_g = torch.optim.Adam(m.G.parameters(), 1e-4)
    before = [p.detach().clone() for p in (next(m.G.parameters()), next(m.D.parameters()))]
    for opt, fn in ((opt_d, m.d_loss), (opt_g, m.g_loss)):
        loss, logs = fn(batch, torch.Generator().manual_seed(0))
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = (next(m.G.parameters()), next(m.D.parameters()))
    assert all(not torch.equal(b, a) for b, a in zip(before, after))


# ----------------------------------------------------------------- phases, needs, protocol
def test_phases_learning_rates_and_needs():
    m = _method()
    assert m.needs == frozenset({"parts"}) and m.paper_test_intensity == 2.0
    lrs = {p.name: p.lr for p in m._phases}
    assert lrs == {"D": 2e-4, "G": 1e-4}
    assert m.loss_weights["lambda_mre"] == 200.0 and m.loss_weights["lambda_rec"] == 100.0
    b = _batch()
    with pytest.raises(ValueError, match="label maps"):
        m.edit(b["image"], b["attrs"], 1 - b["attrs"])
    proto = m.method_protocol()
    assert proto["d_levels"] == 1 and proto["generator"] == "maggan"
    seg = _method(64, "seg")
    assert [p.updates for p in seg._phases] == [("D",), ("G", "S")]
    r = seg.eval().edit(b["image"], b["attrs"], 1 - b["attrs"])  # no label maps needed
    assert r.extras["segmentation"].shape == (2, 19, 64, 64)


# ----------------------------------------------------------------- one preserve mask
def test_mre_metric_unchanged_and_agrees_with_the_loss():
    m = _method(64, None, "method.model.mask_smooth=0")
    b = _batch(4)
    x, src, parts = b["image"], b["attrs"], b["parts"]
    edited = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    metric = MRE(DEFAULT_ATTRS)
    for k in range(A):
        tgt = src.clone()
        tgt[:, k] = 1 - tgt[:, k]
        metric.update(edited, x, parts, src, tgt, k)
        # the metric as it was before it shared the preserve mask: exactly the same numbers
        keep = (~edit_region(parts, None, src, tgt, DEFAULT_ATTRS)).unsqueeze(1).double()
        old = (keep * ((edited.double() - x.double()) / 2).abs()).flatten(1).mean(1).mean()
        # L_mre on the method's masks of the same maps (hard: smooth 0), on the metric's scale
        d = 2 * (tgt - src) * m.thres_int
        loss = masked_l1(edited, x, m.keep_mask(d, m.stored_masks(parts, x)), 0.5).mean()
        per = metric.compute()["per_attribute"][k]
        assert float(per) == float(old)
        assert abs(float(loss) - float(per)) < 1e-6
    g = m.g_loss(b, torch.Generator().manual_seed(0))[1]
    assert torch.isfinite(g["g_mre"])


# ----------------------------------------------------------------- eq. 12 conditioning
def _spade_inputs(m, x, code, masks):
    seen = []
    hooks = [s.register_forward_pre_hook(lambda mod, args: seen.append(args[1].clone()))
             for s in m.G.modules() if isinstance(s, SPADE)]
    try:
        m.synthesize_edit(x, code, masks, m.G)
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_flip_with_empty_region_leaves_spade_modulation_unchanged():
    m = _method().eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    parts = torch.full((1, 64, 64), PART_INDEX["skin"], dtype=torch.uint8)
    parts[:, 40:, :] = PART_INDEX["hair"]  # no eyeglasses anywhere in the map
    masks = m.stored_masks(parts, x)
    src = torch.zeros(1, A)
    src[0, DEFAULT_ATTRS.index("Eyeglasses")] = 1
    none = torch.zeros(1, A)
    flip_glasses = torch.zeros(1, A)
    flip_glasses[0, DEFAULT_ATTRS.index("Eyeglasses")] = -1  # remove: AR- = eye_g, empty here
    flip_hair = torch.zeros(1, A)
    flip_hair[0, DEFAULT_ATTRS.index("Blond_Hair")] = 1  # AR+ = hair, present
    assert torch.equal(m.attr_map(flip_glasses, masks, x), m.attr_map(none, masks, x))
    assert not torch.equal(m.attr_map(flip_hair, masks, x), m.attr_map(none, masks, x))
    ins_none, ins_flip = _spade_inputs(m, x, none, masks), _spade_inputs(m, x, flip_glasses, masks)
    assert len(ins_flip) == 5 and all(torch.equal(a, b) for a, b in zip(ins_none, ins_flip))
    f = torch.randn(1, 4, 8, 8)
    spade = SPADE(4, A)
    assert torch.equal(spade(f, ins_none[0]), spade(f, ins_flip[0]))  # same gamma / beta
    # conditioning off: the flip is seen everywhere (uniform tiling)
    u = _method(64, None, "method.model.conditioning=uniform").eval()
    assert not torch.equal(u.attr_map(flip_glasses, masks, x), u.attr_map(none, masks, x))


def test_blend_keeps_preserved_pixels_and_not_reconstructions():
    m = _method(64, "blend", "method.model.mask_smooth=0").eval()
    b = _batch(2)
    x, src, parts = b["image"], b["attrs"], b["parts"]
    k = DEFAULT_ATTRS.index("Pale_Skin")
    tgt = src.clone()
    tgt[:, k] = 1 - tgt[:, k]
    out = m.edit(x, src, tgt, parts).images
    keep = parts != PART_INDEX["skin"]
    assert torch.allclose(out.permute(0, 2, 3, 1)[keep], x.clamp(-1, 1).permute(0, 2, 3, 1)[keep], atol=1e-6)
    rec = m.edit(x, src, src, parts).images
    assert not torch.allclose(rec, x, atol=1e-3)  # d = 0 is not blended (docstring)


# ----------------------------------------------------------------- hat damage metric
def test_hat_damage_component():
    from faceedit_bench.metrics.registry import metric_spec
    from faceedit_bench.metrics.tracks.components.hat_damage import HatDamage
    from faceedit_bench.metrics.tracks.context import EditContext, EvalSetup
    from faceedit_bench.methods.contract import EditResult

    assert metric_spec("hat_damage").higher_is_better is False
    comp = HatDamage(EvalSetup("attribute_flip", tuple(DEFAULT_ATTRS), 2))
    x = torch.zeros(2, 3, 8, 8)
    parts = torch.zeros(2, 8, 8, dtype=torch.uint8)
    parts[0, :2] = PART_INDEX["hat"]  # 16 hat pixels in image 0, none in image 1
    edited = x.clone()
    edited[0, :, :1] = 1.0  # half the hat changed by 1 (0.5 on the [0, 1] scale)
    edited[1] = 1.0  # no hat: does not count
    for k, a in enumerate(DEFAULT_ATTRS):
        comp.update(EditContext("flip", x, torch.arange(2), {}, None, k=k, parts=parts,
                                edited=EditResult(edited if a != "Male" else edited * 0 + 1)))
    m, per = comp.compute()
    assert set(per["hat_damage"]) == {"Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair"}
    assert m["hat_damage"] == pytest.approx(0.25)  # 8 of 16 hat pixels changed by 0.5


def test_table2_user_study_matches_the_paper_text():
    import csv
    from pathlib import Path

    import os

    root = Path(__file__).resolve().parents[1]
    paper = Path(os.environ.get("FACEEDIT_PAPERS", root.parent / "shared" / "papers")) / "maggan.txt"
    if not paper.is_file():
        pytest.skip(f"paper text {paper} not present (set FACEEDIT_PAPERS)")
    text = paper.read_text(encoding="utf-8")
    block = text[text.index("Table 2: Results of user study"):][:400]
    with open(root / "leaderboards" / "papers" / "maggan_table2.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for label, line_key in (("MagGAN", "MagGAN "), ("STGAN", "STGAN "), ("Tie", "Tie ")):
        line = next(ln for ln in block.splitlines() if ln.startswith(line_key))
        printed = [t.rstrip("%") for t in line.split()[1:] if t != "%"]
        ours = [r["value"] for r in rows if r["row"] == label]
        assert ours == printed, (label, line)
        assert all(r["method"] == "" for r in rows)  # paper-only: no measured counterpart


def test_training_sample_grid_finds_the_label_maps(world):
    """The SampleGrid callback's grids: MagGAN's edits need the rows' label maps, which it passes."""
    args = ["fit", "--method", "maggan", "--res", "64", "--profile", "smoke", f"out_dir={world / 'grid'}",
            f"data_dir={world / 'data'}", "data.num_workers=0", "profile.sample_every=1"]
    assert main(args) == 0
    assert len(list((world / "grid").glob("*/samples/iter_*.png"))) == 2
