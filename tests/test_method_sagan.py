"""SaGAN method (methods/sagan.py): named networks and phases, parameter counts at 128 px, eq. 7
exactness through ``edit``, the one-attribute model inside a 13-attribute run, the multi-attribute
variant, the grid's attention columns, ``sagan_set`` dispatch, and fit + eval through the CLI
under the smoke profile for Smiling (outside the default 13, ``+attrs=[Smiling]``) and for
Mouth_Slightly_Open (inside, default attrs)."""
import json

import lightning.pytorch as pl
import pytest
import torch
import torch.nn as nn

from faceedit_bench.callbacks import StopAtIteration
from faceedit_bench.cli import main
from faceedit_bench.config import compose_config
from faceedit_bench.methods import get_method_class
from faceedit_bench.methods.sagan import SaGAN, SaGANSet
from faceedit_bench.nets.blocks import n_params
from faceedit_bench.protocol import DEFAULT_ATTRS, single_flip_targets
from faceedit_bench.results import validate_record
from faceedit_bench.train import load_method
from faceedit_bench.train_data import TrainStream

from _train_worker import ToyFaces

TINY = {"AMN": {"dim": 4, "n_res": 1}, "SAN": {"dim": 4, "n_res": 1}, "D": {"dim": 4, "n_layers": 4}}


def _tiny(**kw):
    return SaGAN(**{"attrs": ("Smiling",), "res": 32, "nets": TINY, **kw})


def test_networks_phases_and_paper_settings():
    cfg = compose_config("sagan", 128, profile="paper")
    m = cfg.method
    assert (m.train.lr, list(m.train.betas), m.train.n_critic, m.train.batch_size) == (2e-4, [0.5, 0.999], 3, 16)
    assert m.train.schedule == "constant"
    assert (m.model.lambda_dual, m.model.lambda_id, m.model.lambda_gp) == (20.0, 100.0, 10.0)
    s = _tiny()
    assert s.network_names == ("AMN", "SAN", "D")
    assert [(p.name, p.updates, p.repeats) for p in s._phases] == [("D", ("D",), 3), ("G", ("AMN", "SAN"), 1)]
    assert s.chunks_per_iter == 4 and s.schedule == "constant"
    assert s.loss_weights == {"lambda_dual": 20.0, "lambda_id": 100.0, "lambda_g_cls": 1.0, "lambda_d_cls": 1.0}
    assert s.AMN.n_labels == 1 and s.D.n_labels == 1
    v = compose_config("sagan", 32, profile="smoke", variant="smiling", overrides=["+attrs=[Smiling]"])
    assert v.method.model.attribute == "Smiling" and list(v.attrs) == ["Smiling"]
    assert SaGAN.run_attrs({"attribute": "Smiling"}) == ["Smiling"]
    assert SaGAN.run_attrs({"attribute": "Smiling", "multi": True}) is None


def test_parameter_counts_at_128(capsys):
    with torch.device("meta"):
        s = SaGAN(attrs=("Smiling",), res=128)
    g, d = n_params(s.AMN) + n_params(s.SAN), n_params(s.D)
    with capsys.disabled():
        print(f"\nSaGAN 128 px: G (AMN + SAN) {g:,} = {g / 1e6:.2f} M, D {d:,} = {d / 1e6:.2f} M")
    assert (g, d) == (12_220_644, 11_190_754)  # paper / port: 12.22 M, 11.19 M


class _Mask(nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.mask = mask

    def forward(self, x):
        return self.mask.expand(x.size(0), -1, -1, -1)


class _Wild(nn.Module):
    """An arbitrary AMN output (not even tanh-bounded)."""

    def forward(self, x, c):
        return torch.randn_like(x) * 50 + c.view(-1, 1, 1, 1)


def test_zero_attention_keeps_the_input_exactly():
    torch.manual_seed(0)
    s = _tiny().eval()
    mask = torch.rand(1, 1, 32, 32)
    mask[..., :, :16] = 0.0
    s.SAN, s.AMN = _Mask(mask), _Wild()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    src = torch.tensor([[0.0], [1.0], [0.0]])
    r = s.edit(x, src, 1 - src, attr_index=0)
    zero = (r.extras["attention"] == 0).expand_as(x)
    assert zero.any() and torch.equal(r.images[zero], x[zero])
    assert not torch.equal(r.images[~zero], x[~zero])
    assert torch.equal(r.extras["attention"], mask.expand(3, -1, -1, -1))


def test_one_attribute_model_in_a_13_attribute_run():
    s = SaGAN(attrs=DEFAULT_ATTRS, res=32, nets=TINY, attribute="Eyeglasses").eval()
    j = DEFAULT_ATTRS.index("Eyeglasses")
    assert s.attr_col == j and s.edited_attrs == ("Eyeglasses",)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    src = torch.zeros(2, 13)
    tg = single_flip_targets(src, DEFAULT_ATTRS)
    other = s.edit(x, src, tg[0], attr_index=0)
    assert torch.equal(other.images, x) and not other.extras["attention"].any()
    own = s.edit(x, src, tg[j], attr_index=j)
    assert not torch.equal(own.images, x) and own.extras["attention"].min() > 0
    p = s.method_protocol()
    assert p["attribute"] == "Eyeglasses" and len(p["identity_attrs"]) == 12 and p["training_target"] == "1 - c"
    with pytest.raises(ValueError, match=r"\+attrs=\[Smiling\]"):
        SaGAN(attrs=DEFAULT_ATTRS, res=32, nets=TINY, attribute="Smiling")
    with pytest.raises(ValueError, match="one model per attribute"):
        SaGAN(attrs=DEFAULT_ATTRS, res=32, nets=TINY)


def _train(m, n_attrs, iters=2):
    stream = TrainStream(ToyFaces(n=32, res=32, n_attrs=n_attrs), 2, m.chunks_per_iter, iters)
    pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
               callbacks=[StopAtIteration(iters)]).fit(m, datamodule=stream)
    return m


def test_training_moves_amn_san_and_d():
    torch.manual_seed(0)
    m = _tiny(n_critic=1)
    before = {n: p.clone() for n, p in m.named_parameters()}
    _train(m, 1)
    assert m.iteration == 2
    for net in ("AMN", "SAN", "D"):
        assert any(not torch.equal(p, before[n]) for n, p in m.named_parameters() if n.startswith(net + ".")), net


def test_multi_attribute_variant():
    cfg = compose_config("sagan", 32, profile="smoke", variant="multi")
    assert cfg.method.model.multi is True and "multi" in cfg.method.label
    attrs = ("Bangs", "Eyeglasses", "Smiling")
    m = SaGAN(attrs=attrs, res=32, nets=TINY, multi=True, n_critic=1)
    assert m.AMN.n_labels == 3 and m.D.n_labels == 3 and m.edited_attrs == attrs
    c = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    t = m.targets(c, torch.Generator().manual_seed(0))
    assert ((t != c).sum(1) >= 1).all()  # one attribute flipped per row (conflicts may add)
    _train(m, 3)
    m.eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    r = m.edit(x, c, t, attr_index=1)
    assert r.images.shape == x.shape and r.extras["attention"].shape == (2, 1, 32, 32)
    assert m.method_protocol()["training_target"] == "multi: flip_one"


def test_change_conditioned_san():
    """``san_condition: change`` (not in the paper): SAN sees ``c_trg - c``; it trains, the mask
    follows the requested change (none asked -> another mask than a flip), edit passes the
    source labels, and a wrong option is refused."""
    torch.manual_seed(0)
    attrs = ("Bangs", "Eyeglasses", "Smiling")
    m = SaGAN(attrs=attrs, res=32, nets=TINY, multi=True, n_critic=1, san_condition="change")
    assert m.SAN.n_change == 3 and m.method_protocol()["san_condition"] == "change"
    _train(m, 3)
    m.eval()
    x, c = torch.rand(2, 3, 32, 32) * 2 - 1, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    flip = m.edit(x, c, 1 - c).extras["attention"]
    same = m.edit(x, c, c).extras["attention"]
    assert not torch.allclose(flip, same)
    torch.testing.assert_close(same, m.SAN(x, torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="n_change=3"):
        m.SAN(x)
    with pytest.raises(ValueError, match="san_condition"):
        SaGAN(attrs=attrs, res=32, nets=TINY, multi=True, san_condition="label")


def test_grid_shows_attention_after_each_flip():
    s = SaGAN(attrs=("Bangs", "Smiling"), res=32, nets=TINY, attribute="Smiling").eval()
    batch = {"image": torch.rand(2, 3, 32, 32) * 2 - 1, "attrs": torch.zeros(2, 2)}
    cols, names = s.grid_columns(batch)
    assert names == ["input", "recon", "flip Smiling", "attention Smiling"]
    assert all(c.shape == (2, 3, 32, 32) for c in cols) and cols[-1].min() >= -1 and cols[-1].max() <= 1


# ------------------------------------------------------------------ through the CLI (smoke)
def _common(world, run, attr_args):
    return ["--method", "sagan", "--res", "32", "--profile", "smoke", f"out_dir={world / 'runs'}",
            f"data_dir={world / 'data'}", "data.num_workers=0", f"+run_name={run}", *attr_args]


def _fit_eval(world, run, attr_args, capsys, trained, attribute):
    assert main(["fit", *_common(world, run, attr_args)]) == 0
    assert "reached max_iters=2 at iteration 2" in capsys.readouterr().out
    ckpt = world / "runs" / run / "checkpoints" / "last.ckpt"
    trained[attribute] = ckpt
    results = world / f"results_{run}"
    assert main(["eval", *_common(world, run, attr_args), "--no-progress", "--results", str(results),
                 "--out", str(world / f"lb_{run}"), "--data-dir", str(world / "data")]) == 0
    rec = validate_record(json.loads((results / "results.jsonl").read_text().splitlines()[-1]))
    return ckpt, rec


@pytest.fixture(scope="module")
def trained():
    """attribute -> smoke checkpoint, filled by the two CLI tests below: Smiling (outside the 13,
    its own data dir, since the cached classifier predicts the attrs of the run that trained it)
    and Mouth_Slightly_Open (inside, default attrs)."""
    return {}


def _per_attr_takes_one_attribute() -> bool:
    """torchmetrics squeezes a 1-attribute state to 0-dim, so ``v.tolist()`` is a float."""
    from faceedit_bench.metrics.tracks.context import Component, EvalSetup

    c = Component(EvalSetup(track="attribute_flip", attrs=("Smiling",), n_images=1))
    try:
        return c.per_attr(0.5) == {"Smiling": 0.5}
    except TypeError:
        return False


@pytest.mark.xfail(not _per_attr_takes_one_attribute(), strict=True,
                   reason="a 1-attribute run needs Component.per_attr to accept a scalar "
                          "(metrics/tracks/context.py; see the SaGAN report)")
def test_smoke_smiling_outside_the_default_13(tmp_path_factory, trained, capsys):
    world = tmp_path_factory.mktemp("sagan_smiling")
    ckpt, rec = _fit_eval(world, "sagan_smiling", ["+attrs=[Smiling]", "method.model.attribute=Smiling"],
                          capsys, trained, "Smiling")
    assert rec["protocol"]["attrs"] == ["Smiling"] and rec["protocol"]["method_protocol"]["attribute"] == "Smiling"
    m = rec["metrics"]
    for key in ("tarr", "loc_iou_diff", "loc_energy_diff", "loc_iou_attn", "loc_energy_attn"):
        assert key in m and (m[key] is None or 0.0 <= m[key] <= 1.0), key
    assert set(rec["per_attribute"]["loc_iou_attn"]) == {"Smiling"}


def test_smoke_mouth_inside_the_default_13(tmp_path_factory, trained, capsys):
    world = tmp_path_factory.mktemp("sagan_mouth")
    ckpt, rec = _fit_eval(world, "sagan_mouth", [f"+attrs=[{','.join(DEFAULT_ATTRS)}]",
                                                  "method.model.attribute=Mouth_Slightly_Open"],
                          capsys, trained, "Mouth_Slightly_Open")
    assert rec["protocol"]["attrs"] == list(DEFAULT_ATTRS)
    assert rec["protocol"]["method_protocol"]["edited_attrs"] == ["Mouth_Slightly_Open"]
    per = rec["per_attribute"]["loc_iou_attn"]
    assert per["Bangs"] == 0.0  # identity flip: zero attention
    assert load_method(ckpt).attribute == "Mouth_Slightly_Open"


def test_sagan_set_dispatches_to_members(trained, tmp_path):
    if len(trained) < 2:
        pytest.skip("needs the two smoke checkpoints of the tests above")
    attrs = (*DEFAULT_ATTRS, "Smiling")
    members = {a: str(p) for a, p in trained.items()}
    s = SaGANSet(attrs=attrs, res=32, members=members).eval()
    assert s.reconstruction == "Mouth_Slightly_Open"  # the first member in attrs order
    assert not any(p.requires_grad for p in s.parameters())
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    src = torch.zeros(4, len(attrs))
    tg = single_flip_targets(src, attrs)
    ks = torch.tensor([attrs.index("Smiling"), attrs.index("Mouth_Slightly_Open"), 0, attrs.index("Smiling")])
    tgt = torch.stack([tg[int(k)][i] for i, k in enumerate(ks)])
    r = s.edit(x, src, tgt, attr_index=ks)
    smiling = load_method(members["Smiling"])
    want = smiling.edit(x[[0, 3]], src[[0, 3]][:, -1:], tgt[[0, 3]][:, -1:], attr_index=0)
    assert torch.equal(r.images[[0, 3]], want.images)
    assert torch.equal(r.extras["attention"][[0, 3]], want.extras["attention"])
    assert torch.equal(r.images[2], x[2]) and not r.extras["attention"][2].any()  # Bald: no member
    assert not torch.equal(r.images[1], x[1])
    p = s.method_protocol()
    assert set(p["members"]) == set(members) and p["members"]["Smiling"]["checkpoint"] == members["Smiling"]
    assert "Bald" in p["identity_attrs"] and "Smiling" not in p["identity_attrs"]
    cols, names = s.grid_columns({"image": x, "attrs": src})
    assert names[2:] == ["flip Mouth_Slightly_Open", "attention Mouth_Slightly_Open",
                         "flip Smiling", "attention Smiling"]
    with pytest.raises(ValueError, match="does not edit"):
        SaGANSet(attrs=attrs, res=32, members={"Bangs": members["Smiling"]})


def test_sagan_set_empty_is_identity():
    s = get_method_class("sagan_set")(attrs=DEFAULT_ATTRS, res=32)
    x = torch.rand(2, 3, 32, 32)
    a = torch.zeros(2, 13)
    r = s.edit(x, a, a + 1, attr_index=3)
    assert torch.equal(r.images, x) and r.extras == {} and s.method_protocol()["reconstruction"] == "identity"
