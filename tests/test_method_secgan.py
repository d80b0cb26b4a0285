"""SeCGAN as a method (issue 16): variants, parameter counts against the appendix tables, the
frozen parser's gradients, the 19 -> 12 merge by name, the smoke path of every variant through
the CLI (with a tiny parser file) and the ``sweep`` command."""
from __future__ import annotations

import json

import lightning.pytorch as pl
import pytest
import torch

from faceedit_bench.build import build_method
from faceedit_bench.callbacks import StopAtIteration
from faceedit_bench.cli import main
from faceedit_bench.config import compose_config, method_variants
from faceedit_bench.methods import get_method_class
from faceedit_bench.nets.blocks import n_params
from faceedit_bench.parsing import BiSeNet, save_bisenet
from faceedit_bench.parts import PARTS
from faceedit_bench.results import validate_record
from faceedit_bench.secgan_classes import (SECGAN_CLASSES, SECGAN_MERGE, merge_probs_to_secgan,
                                           merge_to_secgan)
from faceedit_bench.train_data import TrainStream

from _train_worker import ToyFaces

RES = 32
N_A = 13
TINY = {"stargan": {"G": {"conv_dim": 4, "repeat_num": 1}, "D": {"conv_dim": 4, "repeat_num": 4}},
        "attgan": {"G": {"enc_dim": 4, "dec_dim": 4, "enc_layers": 4, "dec_layers": 4},
                   "D": {"dim": 4, "fc_dim": 8, "n_layers": 4}}}


@pytest.fixture(scope="module")
def parser_file(tmp_path_factory):
    torch.manual_seed(0)
    return save_bisenet(BiSeNet(19, base=8, input_size=None),
                        tmp_path_factory.mktemp("parser") / "tiny_parser.pt")


def tiny(backbone="stargan", arm="secgan", parser=None, **kw):
    torch.manual_seed(0)
    return get_method_class("secgan")(res=RES, backbone=backbone, arm=arm, backbone_nets=TINY,
                                      helpers={"parser": str(parser)} if parser else None, **kw)


def toy_batch(n=2):
    g = torch.Generator().manual_seed(1)
    return {"image": torch.rand(n, 3, RES, RES, generator=g) * 2 - 1,
            "attrs": (torch.rand(n, N_A, generator=g) > 0.5).float(),
            "parts": torch.randint(0, 19, (n, RES, RES), generator=g, dtype=torch.uint8)}


# ---------------------------------------------------------------- the 19 -> 12 merge

def test_merge_maps_every_face_parsing_class_exactly_once_by_name():
    merged = [name for names in SECGAN_MERGE.values() for name in names]
    assert sorted(merged) == sorted(PARTS) and len(merged) == len(set(merged)) == 19
    assert len(SECGAN_CLASSES) == 12 and SECGAN_CLASSES[-1] == "others"
    assert set(SECGAN_MERGE["others"]) == {"background", "neck_l", "hat", "cloth"}  # Sec. 3
    labels = torch.arange(19, dtype=torch.uint8).view(1, 1, 19)
    for part, k in zip(PARTS, merge_to_secgan(labels).flatten().tolist()):
        assert part in SECGAN_MERGE[SECGAN_CLASSES[k]], part
    one_hot = torch.eye(19).view(1, 19, 19, 1)  # part i at row i: each lands in one class
    assert torch.equal(merge_probs_to_secgan(one_hot).sum(1), torch.ones(1, 19, 1))


# ---------------------------------------------------------------- variants, phases, codes

def test_six_variants_compose_and_declare_their_networks():
    assert method_variants("secgan") == sorted(
        f"{b}_{a}" for b in ("stargan", "attgan") for a in ("baseline", "concat", "secgan"))
    for v in method_variants("secgan"):
        cfg = compose_config("secgan", RES, profile="smoke", variant=v)
        backbone, arm = v.split("_")
        assert (cfg.method.model.backbone, cfg.method.model.arm) == (backbone, arm)
        assert cfg.method.train.n_critic == 5 and cfg.method.model.lambda_sc == 0.0  # smoke
        m = build_method(cfg)
        nets = {"G_rgb", "D_rgb"} | ({"G_seg", "D_seg"} if arm == "secgan" else set())
        assert set(m.network_names) == nets
        assert [(p.name, set(p.updates)) for p in m._phases] == [
            ("D", {n for n in nets if n[0] == "D"}), ("G", {n for n in nets if n[0] == "G"})]
        assert m._phases[1].reuse_batch and m.chunks_per_iter == m.n_critic  # Algorithm 1
        assert m.needs == (frozenset() if arm == "baseline" else frozenset({"parts"}))  # labels
        want_in = 3 + (12 if arm == "concat" else 0)
        first = (m.G_rgb.main[0] if backbone == "stargan" else m.G_rgb.enc_layers[0].layers[0])
        assert first.in_channels == want_in + (N_A if backbone == "stargan" else 0)
    base = compose_config("secgan", 128, profile="paper")
    assert (base.method.model.backbone, base.method.model.arm, base.method.model.seg_input) == (
        "stargan", "secgan", "parser")
    quick = compose_config("secgan", RES, profile="quick", variant="stargan_secgan")
    assert build_method(quick).needs == frozenset()  # s_in from the parser
    att = compose_config("secgan", 128, profile="paper", variant="attgan_secgan").method.train
    assert (att.lr, att.batch_size, att.schedule, att.n_critic) == (2e-4, 32, "exponential", 5)


def test_weights_codes_and_protocol():
    star, att = tiny("stargan"), tiny("attgan")
    assert {k: star.loss_weights[k] for k in ("lambda_g_cls", "lambda_d_cls", "lambda_rec", "lambda_sc")} == {
        "lambda_g_cls": 1.0, "lambda_d_cls": 1.0, "lambda_rec": 10.0, "lambda_sc": 0.01}
    assert {k: att.loss_weights[k] for k in ("lambda_g_cls", "lambda_d_cls", "lambda_rec")} == {
        "lambda_g_cls": 10.0, "lambda_d_cls": 1.0, "lambda_rec": 100.0}
    assert (star.lr_g, star.schedule, att.lr_g, att.schedule) == (1e-4, "linear", 2e-4, "exponential")
    a = torch.tensor([[0.0, 1.0, 0.0]]).repeat(1, 5)[:, :N_A]
    b = 1 - a
    assert torch.equal(star.train_code(a, b), b - a)  # y_diff = y_trg - y_src (Sec. 3.1)
    assert torch.equal(star.test_code(a, b, 1.0), b - a)
    proto = tiny("attgan", "concat", seg_input="labels").method_protocol()
    assert proto["seg_input"] == "ground-truth label maps merged to 12"
    assert (proto["backbone"], proto["arm"], proto["paper_crop"]) == ("attgan", "concat", "center178")
    assert proto["attr_encoding"] == "stgan" and proto["loss_weights"]["lambda_rec"] == 100.0
    ema = tiny(ema_decay=0.999)
    assert ema.ema_names == ("G_rgb",) and ema.inference("G_rgb") is ema.G_rgb_ema
    with pytest.raises(ValueError, match="arm"):
        tiny(arm="fusion")


@pytest.mark.parametrize("backbone", ["stargan", "attgan"])
@pytest.mark.parametrize("arm", ["baseline", "concat", "secgan"])
def test_losses_and_edit_run(backbone, arm, parser_file):
    m = tiny(backbone, arm, parser_file)
    batch, rng = toy_batch(), torch.Generator().manual_seed(0)
    d, d_logs = m.d_loss(batch, rng)
    g, g_logs = m.g_loss(batch, rng)
    assert torch.isfinite(d) and torch.isfinite(g)
    assert ("g_sc_rgb" in g_logs) == (arm == "secgan") and ("d_seg_gp" in d_logs) == (arm == "secgan")
    m.eval()
    x, a = batch["image"], batch["attrs"]
    out = m.edit(x, a, 1 - a).images
    assert out.shape == x.shape and out.abs().max() <= 1
    cols, names = m.grid_columns(batch)
    assert len(cols) == len(names) == 2 + N_A + (1 + N_A if arm == "secgan" else 0)
    assert all(c.shape == x.shape and c.abs().max() <= 1 for c in cols)
    if arm == "secgan":
        assert names[2 + N_A:2 + N_A + 2] == ["mask in", f"mask {m.attrs[0]}"]
    if arm == "concat":  # s_in at test as in training: from P, or from the label maps
        lab = tiny(backbone, arm, seg_input="labels")
        lab.eval()
        assert lab.edit(x, a, a, batch["parts"]).images.shape == x.shape
        with pytest.raises(ValueError, match="parts"):
            lab.edit(x, a, a)
        assert lab.sample_grid(x, a, batch["parts"]).shape == (2 * (2 + N_A), 3, RES, RES)
    assert m.sample_grid(x, a).shape == (2 * (2 + N_A), 3, RES, RES)


def test_missing_parser_is_one_line_naming_the_fix():
    m = tiny()
    with pytest.raises(FileNotFoundError, match="method.model.helpers.parser=PATH"):
        m.g_loss(toy_batch(), torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- parameter counts (Tables 2-3)

def conv(cin, cout, k, bias=False):
    return cin * cout * k * k + (cout if bias else 0)


def norm(c):  # IN (affine) / BN: scale + shift
    return 2 * c


def stargan_g(cin, cout, c=64, n_res=6):
    """Table 2 generator rows: Conv(64, 7, 1), 2 x Conv(4, 2), 6 x Res(2 x Conv(3, 1)), 2 x ConvT, Conv(7)."""
    down = conv(cin, c, 7) + norm(c) + conv(c, 2 * c, 4) + norm(2 * c) + conv(2 * c, 4 * c, 4) + norm(4 * c)
    res = n_res * 2 * (conv(4 * c, 4 * c, 3) + norm(4 * c))
    up = conv(4 * c, 2 * c, 4) + norm(2 * c) + conv(2 * c, c, 4) + norm(c) + conv(c, cout, 7)
    return down + res + up


def stargan_d(cin, res=128, c=64, n=6):
    """StarGAN PatchGAN: n x Conv(4, 2) + bias, LReLU; Conv(1, 3, 1); Conv(n_a, h/2^n). Table 2's
    extracted D rows are garbled (five convs, then decoder rows); the paper says D_seg is D_rgb with
    12 input channels, so the rows are yunjey/stargan's."""
    chans = [cin] + [c * 2 ** i for i in range(n)]
    trunk = sum(conv(a, b, 4, bias=True) for a, b in zip(chans, chans[1:]))
    return trunk + conv(chans[-1], 1, 3) + conv(chans[-1], N_A, res // 2 ** n)


def attgan_g(cin, cout):
    """Table 3 generator rows (shortcut ** -> *, attributes injected at the first two ConvT)."""
    enc = [cin, 64, 128, 256, 512, 1024]
    total = sum(conv(a, b, 4) + norm(b) for a, b in zip(enc, enc[1:]))
    dec_in = [1024 + N_A, 1536 + N_A, 512, 256]
    dec_out = [1024, 512, 256, 128]
    total += sum(conv(a, b, 4) + norm(b) for a, b in zip(dec_in, dec_out))
    return total + conv(128, cout, 4, bias=True)


def attgan_d(cin, res=128, instance_norm=True):
    """Table 3 D rows: 5 x Conv(4, 2), FC(1024) ReLU FC(1) | FC(1024) ReLU FC(n_a). The table lists
    no norm (convs with bias); AttGAN-PyTorch (and ours) put IN after the convs (no bias)."""
    ch = [cin, 64, 128, 256, 512, 1024]
    trunk = sum((conv(a, b, 4) + norm(b)) if instance_norm else conv(a, b, 4, bias=True)
                for a, b in zip(ch, ch[1:]))
    flat = 1024 * (res // 32) ** 2
    return trunk + 2 * (flat * 1024 + 1024) + (1024 + 1) + (1024 * N_A + N_A)


@pytest.mark.parametrize("backbone", ["stargan", "attgan"])
def test_param_counts_at_128_paper_widths_match_the_appendix_tables(backbone, capsys):
    cfg = compose_config("secgan", 128, profile="paper", variant=f"{backbone}_secgan")
    with torch.device("meta"):
        m = build_method(cfg)
    got = {name: n_params(getattr(m, name)) for name in m.network_names}
    if backbone == "stargan":
        want = {"G_rgb": stargan_g(3 + N_A, 3), "G_seg": stargan_g(12 + N_A, 12),
                "D_rgb": stargan_d(3), "D_seg": stargan_d(12)}
    else:
        want = {"G_rgb": attgan_g(3, 3), "G_seg": attgan_g(12, 12),
                "D_rgb": attgan_d(3), "D_seg": attgan_d(12)}
        table_d = attgan_d(12, instance_norm=False)
        assert want["D_seg"] - table_d == sum((64, 128, 256, 512, 1024))  # IN scale+shift - bias
    with capsys.disabled():
        print(f"\nSeCGAN {backbone} 128 px parameters: " + ", ".join(
            f"{k} {v:,} (tables {want[k]:,})" for k, v in got.items()))
    assert got == want
    # "8M trainable parameters in StarGAN's generator ... AttGAN's ... 43M" (Sec. 4.2)
    assert round(got["G_rgb"] / 1e6) == (8 if backbone == "stargan" else 43)


# ---------------------------------------------------------------- the frozen parser and L_sc

def _train_one_iteration(m):
    stream = TrainStream(ToyFaces(n=16, res=RES), 2, m.chunks_per_iter, 1)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, use_distributed_sampler=False,
                         callbacks=[StopAtIteration(1)])
    trainer.fit(m, datamodule=stream)


@pytest.mark.parametrize("backbone", ["stargan", "attgan"])
def test_training_step_leaves_parser_frozen_and_sc_alone_trains_g_rgb(backbone, parser_file):
    zero = dict(lambda_adv=0.0, lambda_g_cls=0.0, lambda_d_cls=0.0, lambda_rec=0.0, lambda_gp=0.0)
    m = tiny(backbone, "secgan", parser_file, n_critic=1, lambda_sc=1.0, lr=1e-3, **zero)
    parser = m.helper("parser")
    before = {k: v.clone() for k, v in parser.state_dict().items()}
    g_before = {k: v.clone() for k, v in m.G_rgb.named_parameters()}
    _train_one_iteration(m)
    assert m.iteration == 1 and m.helper("parser") is parser
    assert all(p.grad is None and not p.requires_grad for p in parser.parameters())
    assert all(torch.equal(v, parser.state_dict()[k]) for k, v in before.items())
    assert not any(k.startswith("parser") for k in m.state_dict())
    grads = [p.grad for p in m.G_rgb.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert any(not torch.equal(p, g_before[k]) for k, p in m.G_rgb.named_parameters())
    # the same loss without L_sc gives G_rgb nothing: the gradient came from L_sc alone
    m.train()
    batch, rng = toy_batch(), torch.Generator().manual_seed(0)
    m.loss_weights["lambda_sc"] = 1.0
    loss, logs = m.g_loss(batch, rng)
    assert logs["g_sc_rgb"] > 0
    gs = torch.autograd.grad(loss, list(m.G_rgb.parameters()), allow_unused=True)
    assert sum(g.abs().sum() for g in gs if g is not None) > 0
    m.loss_weights["lambda_sc"] = 0.0
    loss, _ = m.g_loss(batch, rng)
    gs = torch.autograd.grad(loss, list(m.G_rgb.parameters()), allow_unused=True)
    assert all(g is None or not g.abs().sum() for g in gs)


# ---------------------------------------------------------------- smoke path of every variant

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tmp_path_factory.mktemp("secgan_smoke")


def _common(world, parser_file, variant):
    return ["--method", "secgan", "--variant", variant, "--res", str(RES), "--profile", "smoke",
            f"out_dir={world / 'runs'}", f"data_dir={world / 'data'}", "data.num_workers=0",
            f"method.model.helpers.parser={parser_file}", "method.model.seg_input=parser",
            "method.model.lambda_sc=0.01"]


@pytest.mark.parametrize("variant", method_variants("secgan"))
def test_variant_smoke_fit_then_eval_with_a_parser(world, parser_file, variant, capsys):
    assert main(["fit", *_common(world, parser_file, variant)]) == 0
    ckpt = world / "runs" / f"secgan-{variant}_{RES}_synth_smoke" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and "reached max_iters=2 at iteration 2" in capsys.readouterr().out
    results = world / f"results_{variant}"
    assert main(["eval", *_common(world, parser_file, variant), "--no-progress", "--results",
                 str(results), "--out", str(world / f"lb_{variant}"), "--data-dir",
                 str(world / "data")]) == 0
    rec = validate_record(json.loads((results / "results.jsonl").read_text().splitlines()[-1]))
    assert (rec["method"], rec["variant"], rec["resolution"]) == ("secgan", variant, RES)
    mp = rec["protocol"]["method_protocol"]
    assert (mp["backbone"], mp["arm"]) == tuple(variant.split("_"))
    assert mp["helpers"]["parser"] and 0.0 <= rec["metrics"]["tarr"] <= 1.0


def test_sweep_writes_one_record_per_value_and_a_plot(world, parser_file, capsys):
    results, boards = world / "results_sweep", world / "lb_sweep"
    args = ["sweep", *_common(world, parser_file, "stargan_secgan"), "--key",
            "method.model.lambda_sc", "--values", "0.001,1", "--no-progress", "--results",
            str(results), "--out", str(boards), "--data-dir", str(world / "data")]
    assert main(args) == 0
    files = list((results / "sweeps").glob("*.jsonl"))
    assert len(files) == 1 and not list(results.glob("*.jsonl"))  # leaderboard rows untouched
    recs = [validate_record(json.loads(line)) for line in files[0].read_text().splitlines()]
    assert [r["run"]["sweep"]["value"] for r in recs] == ["0.001", "1"]
    assert [r["protocol"]["method_protocol"]["loss_weights"]["lambda_sc"] for r in recs] == [0.001, 1.0]
    assert len({r["run"]["name"] for r in recs}) == 2
    plots = list((boards / "plots").glob("sweep_*.png"))
    assert len(plots) == 1 and plots[0].stat().st_size > 0
    assert main(["sweep", "--method", "secgan", "--key", "k", "--values", "1", "--ckpt", "x"]) == 2
