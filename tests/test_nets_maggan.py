"""MagGAN networks (Wei et al., ACCV 2020, appendix Tables 4-6): SPADE equation, generator and
multi-level discriminator wiring, options, gradients, channels_last / bf16, and paper-width counts.

No reference parameter count exists (no public code): the expected integers at paper width
(dim 64, 13 attributes, 256 px) come from ``paper_counts`` below, a closed-form sum over the
layers of Tables 4-6 written independently of the modules (conv k x k: k*k*in*out (+out bias);
BN/IN affine: 2*ch; STU as csmliu/STGAN's ConvGRUCell: deconv 4x4 + three 3x3 gates, all biased).
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from faceedit_bench.nets.blocks import n_params
from faceedit_bench.nets.maggan import (MagGANDiscriminator, MagGANGenerator,
                                        MultiLevelDiscriminator, SpadeUpBlock, uniform_attr_map)
from faceedit_bench.nets.spade import SPADE, resize_attr_map

A = 13
G_TINY = dict(n_attrs=A, dim=4)
D_TINY = dict(n_attrs=A, dim=2, channel_mults=(1, 2, 4, 16))  # 4 layers: 32 px -> 2 x 2


def conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def paper_counts(d=64, a=A, use_spade=True):
    """(G, one-level D) parameter counts from Tables 4-6 at width ``d``."""
    enc = [d, 2 * d, 4 * d, 8 * d, 16 * d, 16 * d]
    g = sum(conv(4, cin, c, False) + 2 * c for cin, c in zip([3] + enc[:-1], enc))
    state = enc[5] + a
    for j in (4, 3, 2, 1, 0):  # STU on encoder feature j, output width enc[j]
        g += conv(4, state, enc[j]) + 3 * conv(3, enc[j] + enc[j], enc[j])
        state = enc[j] + a
    dec_out = [16 * d, 16 * d, 8 * d, 4 * d, 2 * d]
    dec_in = [enc[5]] + [o + enc[4 - i] for i, o in enumerate(dec_out[:-1])]
    extra = 0 if use_spade else a
    for cin, c in zip(dec_in, dec_out):
        if use_spade:  # deconv (bias) + SPADE: LN conv + beta/gamma branches of two convs
            g += conv(4, cin, c) + conv(3, c, c) + 2 * (conv(3, c + a, c) + conv(3, c, c))
        else:  # deconv + BN
            g += conv(4, cin + extra, c, False) + 2 * c
    g += conv(4, dec_out[-1] + enc[0] + extra, 3)
    trunk = [d, 2 * d, 4 * d, 16 * d, 16 * d, 16 * d]
    dis = sum(conv(4, cin, c, False) + 2 * c for cin, c in zip([3] + trunk[:-1], trunk))
    dis += 2 * conv(1, trunk[-1], 16 * d) + conv(1, 16 * d, 1) + conv(1, 16 * d, a)
    return g, dis


def meta_count(cls, **kw):
    with torch.device("meta"):
        return n_params(cls(**kw))


def test_param_counts_paper_width():
    g, d = paper_counts()
    assert meta_count(MagGANGenerator) == g == 309_107_331
    assert meta_count(MagGANDiscriminator) == d == 40_527_758
    g_nosp, _ = paper_counts(use_spade=False)
    assert meta_count(MagGANGenerator, use_spade=False) == g_nosp == 199_164_915
    # level count changes neither the architecture nor (with shared weights) the count
    assert meta_count(MultiLevelDiscriminator, n_levels=3) == 3 * d
    assert meta_count(MultiLevelDiscriminator, n_levels=3, share_weights=True) == d


@pytest.mark.parametrize("res", [256, 512, 1024])
def test_paper_width_shapes_at_paper_resolutions(res):
    """Meta-device shape inference: paper-width G at 256-1024, PatchGAN D levels (Table 6)."""
    n_levels = {256: 1, 512: 2, 1024: 3}[res]
    with torch.device("meta"):
        x, a = torch.empty(1, 3, res, res), torch.empty(1, A)
        assert MagGANGenerator()(x, a, uniform_attr_map(a, res, res)).shape == x.shape
        out = MultiLevelDiscriminator(n_levels=n_levels, base_res=256)(x)
    assert [adv.shape[-1] for adv, _ in out] == [1, 2, 4][:n_levels]  # one entry per 256^2 patch


def reference_spade(m: SPADE, f, attr, acti=lambda t: t):
    def branch(seq, x):
        convs = [c for c in seq if isinstance(c, nn.Conv2d)]
        return F.conv2d(acti(F.conv2d(x, convs[0].weight, convs[0].bias, padding=1)),
                        convs[1].weight, convs[1].bias, padding=1)
    cond = torch.cat([f, F.interpolate(attr, size=f.shape[2:], mode="nearest")], 1)
    ln = F.layer_norm(f, f.shape[1:])  # per sample over C, H, W, no affine
    normed = F.conv2d(ln, m.norm_conv.weight, m.norm_conv.bias, padding=1)
    gamma = branch(m.gamma, cond)
    return normed * ((1 + gamma) if m.gamma_offset else gamma) + branch(m.beta, cond)


@pytest.mark.parametrize("gamma_offset,hidden_acti",
                         [(False, "none"), (True, "none"), (False, "relu")])
def test_spade_computes_table4(gamma_offset, hidden_acti):
    torch.manual_seed(0)
    m = SPADE(6, 3, hidden_acti=hidden_acti, gamma_offset=gamma_offset)
    f, attr = torch.randn(2, 6, 8, 8) * 3 + 1, torch.randn(2, 3, 32, 32)
    acti = torch.relu if hidden_acti == "relu" else (lambda t: t)
    assert torch.allclose(m(f, attr), reference_spade(m, f, attr, acti), atol=1e-5)
    assert (hidden_acti == "relu") == any(isinstance(x, nn.ReLU) for x in m.gamma)


def test_spade_options_change_output_and_resize_modes():
    torch.manual_seed(0)
    f, attr = torch.randn(1, 4, 4, 4), torch.rand(1, 2, 16, 16)
    base = SPADE(4, 2)
    outs = {}
    for kw in ({}, {"gamma_offset": True}, {"hidden_acti": "lrelu"}, {"resize_mode": "area"},
               {"resize_mode": "bilinear"}):
        m = SPADE(4, 2, **kw)
        m.load_state_dict(base.state_dict())
        outs[str(kw)] = m(f, attr)
    vals = list(outs.values())
    assert all(not torch.allclose(vals[0], v) for v in vals[1:])
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2
    checker = checker.float().expand(1, 1, 16, 16)
    assert torch.equal(resize_attr_map(checker, (4, 4), "area"), torch.full((1, 1, 4, 4), 0.5))
    assert set(resize_attr_map(checker, (4, 4), "nearest").unique().tolist()) <= {0.0, 1.0}
    assert resize_attr_map(checker, (16, 16), "area") is checker


def test_spade_bad_args():
    with pytest.raises(ValueError, match="resize_mode"):
        SPADE(4, 2, resize_mode="bicubic")
    with pytest.raises(ValueError, match="hidden_acti"):
        SPADE(4, 2, hidden_acti="tanh")
    with pytest.raises(ValueError, match="attr_map"):
        SPADE(4, 2)(torch.randn(1, 4, 4, 4), torch.randn(1, 3, 4, 4))


def test_generator_table5_layout_shapes_and_range():
    torch.manual_seed(0)
    g = MagGANGenerator(**G_TINY)
    assert g.enc_channels == [4, 8, 16, 32, 64, 64]  # 64..1024,1024 / 16
    assert g.stu.out_channels == [4, 8, 16, 32, 64, 64]
    deconvs = [m for m in g.dec_layers.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in deconvs] == [64, 64, 32, 16, 8, 3]  # 1024,1024,512,256,128,3
    assert [m.in_channels for m in deconvs] == [64, 64 + 64, 64 + 32, 32 + 16, 16 + 8, 8 + 4]
    assert sum(isinstance(m, SPADE) for m in g.modules()) == 5
    assert isinstance(g.dec_layers[-1].layers[-1], nn.Tanh)
    x, a = torch.randn(2, 3, 64, 64), torch.randn(2, A)
    y = g(x, a, uniform_attr_map(a, 64, 64))
    assert y.shape == (2, 3, 64, 64) and y.abs().max() <= 1


def test_generator_modes_and_conditioning():
    torch.manual_seed(0)
    g = MagGANGenerator(**G_TINY).eval()
    x, a = torch.randn(2, 3, 64, 64), torch.randn(2, A)
    amap = uniform_attr_map(a, 64, 64)
    assert torch.equal(amap, a[:, :, None, None].expand(2, A, 64, 64))
    with torch.no_grad():
        zs = g(x, mode="enc")
        assert [z.shape[2] for z in zs] == [32, 16, 8, 4, 2, 1]
        y = g(x, a, amap)
        assert torch.allclose(g(zs, a, amap, mode="dec"), y)
        masked = amap * (torch.arange(64) < 32).float()  # attribute change only on the top half
        assert not torch.allclose(g(x, a, masked), y)  # the spatial tensor conditions the SPADEs
        assert not torch.allclose(g(x, torch.zeros_like(a), amap), y)  # att_diff feeds the STUs
        # attr_map may come at another resolution: it is resized per layer
        assert g(x, a, uniform_attr_map(a, 16, 16)).shape == y.shape


def test_generator_without_spade_is_stgan_style_with_spatial_concat():
    torch.manual_seed(0)
    g = MagGANGenerator(**G_TINY, use_spade=False)
    assert not any(isinstance(m, (SPADE, SpadeUpBlock)) for m in g.modules())
    deconvs = [m for m in g.dec_layers.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.in_channels for m in deconvs] == [64 + A, 128 + A, 96 + A, 48 + A, 24 + A, 12 + A]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.dec_layers.modules()) == 5
    x, a = torch.randn(2, 3, 64, 64), torch.randn(2, A)
    assert g(x, a, uniform_attr_map(a, 64, 64)).shape == (2, 3, 64, 64)
    g5 = MagGANGenerator(n_attrs=A, dim=4, n_layers=5)  # 'genarch54' depth at 32 px
    assert g5(x[:, :, :32, :32], a, uniform_attr_map(a, 32, 32)).shape == (2, 3, 32, 32)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    g = MagGANGenerator(**G_TINY)
    x, a = torch.randn(2, 3, 64, 64), torch.randn(2, A)
    g(x, a, torch.rand(2, A, 64, 64) * a[:, :, None, None]).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())
    d = MultiLevelDiscriminator(n_levels=2, base_res=32, **D_TINY)
    sum(adv.mean() + cls.mean() for adv, cls in d(torch.randn(2, 3, 64, 64))).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())


def test_multilevel_d_sees_three_sizes_and_returns_patch_maps():
    torch.manual_seed(0)
    for share in (False, True):
        d = MultiLevelDiscriminator(n_levels=3, base_res=32, share_weights=share, **D_TINY)
        seen = []
        for disc in d.discs:
            disc.conv[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-1]))
        x = torch.randn(2, 3, 128, 128)
        out = d(x)
        assert seen == [32, 64, 128] and len(d.discs) == (1 if share else 3)
        assert [adv.shape for adv, _ in out] == [(2, 1, s, s) for s in (1, 2, 4)]
        assert all(cls.shape == (2, A) for _, cls in out)
        assert all(torch.equal(a, b[0]) for a, b in zip(d.forward_adv(x), out))
    assert torch.equal(d.level_inputs(x)[0], F.avg_pool2d(x, 4))  # default box filter


def test_cls_logits_are_spatial_mean_and_downsample_option():
    torch.manual_seed(0)
    disc = MagGANDiscriminator(level=1, **D_TINY)
    x = torch.randn(2, 3, 64, 64)
    adv, cls = disc(x)
    h = disc.features(x)
    assert h.shape[2:] == (2, 2) and adv.shape == (2, 1, 2, 2)
    assert torch.allclose(cls, disc.cls_head(h).mean(dim=(2, 3)))
    assert disc(x, out_size=1)[0].shape == (2, 1, 1, 1)
    box = MultiLevelDiscriminator(n_levels=2, base_res=32, **D_TINY)
    bil = MultiLevelDiscriminator(n_levels=2, base_res=32, downsample="bilinear", **D_TINY)
    xb, xl = box.level_inputs(x)[0], bil.level_inputs(x)[0]
    assert xb.shape == xl.shape == (2, 3, 32, 32) and not torch.allclose(xb, xl)


def test_gradient_penalty_double_backward():
    torch.manual_seed(0)
    d = MultiLevelDiscriminator(n_levels=2, base_res=32, **D_TINY)
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    out = sum(o.sum() for o in d.forward_adv(x))
    (grad,) = torch.autograd.grad(out, x, create_graph=True)
    grad.flatten(1).norm(dim=1).sub(1).square().mean().backward()
    for disc in d.discs:  # the penalty reaches trunk and adversarial head; forward_adv skips cls
        assert all(p.grad is not None for p in disc.conv.parameters())
        assert disc.adv_head[0].weight.grad is not None and disc.adv_head[2].weight.grad is not None
        assert all(p.grad is None for p in disc.cls_head.parameters())


def test_channels_last_and_bf16_autocast():
    torch.manual_seed(0)
    g = MagGANGenerator(**G_TINY).to(memory_format=torch.channels_last)
    d = MultiLevelDiscriminator(n_levels=2, base_res=32, **D_TINY).to(
        memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    a = torch.randn(2, A)
    y_ref = g(x, a, uniform_attr_map(a, 64, 64))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = g(x, a, uniform_attr_map(a, 64, 64))
        out = d(y)
    assert y.shape == (2, 3, 64, 64) and torch.isfinite(y.float()).all()
    assert (y.float() - y_ref).abs().mean() < 0.1
    assert [o[0].shape[-1] for o in out] == [1, 2]
    assert all(torch.isfinite(o[1].float()).all() for o in out)
    (y.float().mean() + sum(o[0].float().mean() for o in out)).backward()


def test_bad_arguments_raise_value_errors():
    g = MagGANGenerator(**G_TINY)
    x, a = torch.randn(2, 3, 64, 64), torch.randn(2, A)
    amap = uniform_attr_map(a, 64, 64)
    with pytest.raises(ValueError, match="att_diff"):
        g(x, torch.randn(2, A + 1), amap)
    with pytest.raises(ValueError, match="attr_map"):
        g(x, a, amap[:, :-1])
    with pytest.raises(ValueError, match="needs att_diff and attr_map"):
        g(x, a)
    with pytest.raises(ValueError, match="divisible"):
        g(torch.randn(2, 3, 48, 48), a, amap)
    with pytest.raises(ValueError, match="mode"):
        g(x, a, amap, mode="edit")
    with pytest.raises(ValueError, match="n_layers"):
        MagGANGenerator(n_layers=1)
    with pytest.raises(ValueError, match="resize_mode"):
        MagGANGenerator(resize_mode="cubic")
    with pytest.raises(ValueError, match="x_full"):
        MultiLevelDiscriminator(n_levels=2, base_res=32, **D_TINY)(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="base_res"):
        MultiLevelDiscriminator(n_levels=1, base_res=16, **D_TINY)  # trunk output 1 x 1
    with pytest.raises(ValueError, match="downsample"):
        MultiLevelDiscriminator(downsample="nearest")
    with pytest.raises(ValueError, match="n_levels"):
        MultiLevelDiscriminator(n_levels=0)
    with pytest.raises(ValueError, match="level"):
        MultiLevelDiscriminator(level=1)
    with pytest.raises(ValueError, match="trunk output"):
        MagGANDiscriminator(level=1, **D_TINY)(torch.randn(1, 3, 48, 48))  # 3 x 3 / 2


def test_critic_norm_is_selectable():
    """``norm_fn``: Table 6's InstanceNorm by default, LayerNorm (one group over C x H x W, per
    sample) on request, STGAN's quick critic; both keep the output shapes and the per-sample
    forward the gradient penalty needs."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for norm_fn in ("instancenorm", "layernorm"):
        disc = MagGANDiscriminator(level=0, norm_fn=norm_fn, **D_TINY)
        kinds = {type(m).__name__ for m in disc.modules()}
        assert ("InstanceNorm2d" in kinds) == (norm_fn == "instancenorm"), kinds
        assert ("GroupNorm" in kinds) == (norm_fn == "layernorm"), kinds
        adv, cls = disc(x)
        assert adv.shape == (2, 1, 1, 1) and cls.shape == (2, A)
        assert torch.allclose(disc(x[:1])[0], adv[:1], atol=1e-6)  # no statistics across the batch
    assert type(MagGANDiscriminator(**D_TINY).conv[0].layers[1]).__name__ == "InstanceNorm2d"  # the default
