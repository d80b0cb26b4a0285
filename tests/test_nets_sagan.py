"""SaGAN networks (nets/sagan.py): Table 1/2 layouts, eq. 7, options, counts, dtype/layout.

Parameter counts: the exact integers were obtained by instantiating elvisyjlin/SpatialAttentionGAN
``sagan.py`` (HEAD d75c276) outside the repo, and agree with the layer-by-layer sum
(every conv with bias, IN without affine, 2 BNs of 2*256 per residual block):
AMN 6,112,675 + SAN 6,107,969 = 12,220,644 (12.22 M), D 11,190,754 (11.19 M); see
implementations.md §4.
"""
import pytest
import torch
import torch.nn as nn

from faceedit_bench.nets.blocks import n_params
from faceedit_bench.nets.sagan import (SaganAMN, SaganDiscriminator, SaganSAN, init_weights,
                                       sagan_compose)

TINY = dict(dim=4)


def count(cls, **kw):
    with torch.device("meta"):
        return n_params(cls(**kw))


def test_paper_width_counts_equal_port():
    assert count(SaganAMN) == 6_112_675
    assert count(SaganSAN) == 6_107_969
    assert count(SaganAMN) + count(SaganSAN) == 12_220_644  # G 12.22 M
    assert count(SaganDiscriminator) == 11_190_754  # D 11.19 M
    # the port's ConvT 7x7 final layer has the same count; IN residual blocks drop 4 x 2 BNs
    assert count(SaganAMN, final_conv="deconv") == 6_112_675
    assert count(SaganAMN, res_norm="instancenorm") == 6_112_675 - 4 * 2 * 2 * 256
    # multi-attribute option: 12 more input channels in the 7x7 conv (12 * 32 * 49)
    assert count(SaganAMN, n_labels=13) == 6_112_675 + 12 * 32 * 49


def test_port_state_dict_layout():
    amn = SaganAMN(final_conv="deconv")
    sd = amn.state_dict()
    assert sd["conv.0.weight"].shape == (32, 4, 7, 7)
    assert sd["conv.9.weight"].shape == (256, 128, 4, 4)
    assert sd["resblk.3.layers.4.running_mean"].shape == (256,)
    assert sd["deconv.9.weight"].shape == (32, 3, 7, 7)  # ConvTranspose2d(32, 3, 7)
    assert SaganAMN().state_dict()["deconv.9.weight"].shape == (3, 32, 7, 7)  # Conv2d (paper)


@pytest.mark.parametrize("res", [32, 64])
def test_shapes_ranges_and_compose(res):
    torch.manual_seed(0)
    x = torch.rand(2, 3, res, res) * 2 - 1
    c = torch.tensor([[1.0], [0.0]])
    amn, san = SaganAMN(**TINY), SaganSAN(**TINY)
    with torch.no_grad():
        a, m = amn(x, c), san(x)
        y = sagan_compose(x, a, m)
    assert a.shape == x.shape and m.shape == (2, 1, res, res) and y.shape == x.shape
    assert a.abs().max() < 1 and m.min() > 0 and m.max() < 1
    assert torch.allclose(y, a * m + x * (1 - m))


def test_compose_is_eq7():
    x, a = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert torch.equal(sagan_compose(x, a, ones), a)
    assert torch.equal(sagan_compose(x, a, zeros), x)
    half = sagan_compose(x, a, ones / 2)
    assert torch.allclose(half, (x + a) / 2)
    m = torch.zeros(2, 1, 4, 4)
    m[..., :2, :] = 1  # only the masked rows change, in all three channels
    y = sagan_compose(x, a, m)
    assert torch.equal(y[..., :2, :], a[..., :2, :]) and torch.equal(y[..., 2:, :], x[..., 2:, :])


def test_amn_uses_the_label():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    for n in (1, 3):
        amn = SaganAMN(n_labels=n, **TINY).eval()
        assert amn.conv[0].in_channels == 3 + n
        with torch.no_grad():
            assert not torch.allclose(amn(x, torch.zeros(1, n)), amn(x, torch.ones(1, n)))


@pytest.mark.parametrize("res,n_layers", [(128, 6), (64, 6), (32, 3)])
def test_discriminator_shapes_batch1(res, n_layers):
    d = SaganDiscriminator(n_labels=2, image_size=res, n_layers=n_layers, **TINY)
    assert d.cls.kernel_size == (res // 2**n_layers,) * 2
    for b in (1, 3):  # the port's squeeze() breaks at batch 1
        x = torch.randn(b, 3, res, res)
        with torch.no_grad():
            src, cls = d(x)
            assert src.shape == (b, 1, res // 2**n_layers, res // 2**n_layers)
            assert cls.shape == (b, 2)
            assert torch.equal(d.forward_adv(x), src)
    with torch.no_grad():  # forward_adv is not tied to image_size
        big = d.forward_adv(torch.randn(1, 3, 2 * res, 2 * res))
    assert big.shape == (1, 1, 2 * res // 2**n_layers, 2 * res // 2**n_layers)


def test_discriminator_layout_and_max_dim():
    d = SaganDiscriminator(dim=4, max_dim=16, image_size=64)
    convs = [m for m in d.conv.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [4, 8, 16, 16, 16, 16]
    assert all(m.bias is not None and m.stride == (2, 2) for m in convs)
    assert [m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)] == [0.2] * 6
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in d.modules())
    assert d.src.in_channels == d.cls.in_channels == 16 and d.src.kernel_size == (3, 3)
    with torch.no_grad():
        assert d.forward_adv(torch.randn(1, 3, 128, 128)).shape == (1, 1, 2, 2)


def _biases_before_norm(net):
    """Conv biases removed by the following IN/BN (train mode): zero gradient by construction."""
    names = set()
    for seq_name, seq in net.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        kids = list(seq.named_children())
        for (name, mod), (_, nxt) in zip(kids, kids[1:]):
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)) and \
                    isinstance(nxt, (nn.InstanceNorm2d, nn.BatchNorm2d)):
                names.add(f"{seq_name}.{name}.bias")
    return names


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    c = torch.tensor([[1.0], [0.0]])
    amn, san = SaganAMN(**TINY), SaganSAN(**TINY)
    d = SaganDiscriminator(image_size=32, n_layers=3, **TINY)
    y = sagan_compose(x, amn(x, c), san(x))
    src, cls = d(y)
    (src.mean() + cls.mean() + (y - x).abs().mean()).backward()
    for net in (amn, san, d):
        dead = _biases_before_norm(net)
        scale = max(p.grad.abs().max() for p in net.parameters())
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            if name in dead:  # kept for the port's count; no effect on the output
                assert p.grad.abs().max() < 1e-4 * scale, name
            else:
                assert p.grad.abs().sum() > 0, name
    assert len(_biases_before_norm(amn)) == 4 + 2 * 4 + 3 and not _biases_before_norm(d)


def test_residual_norm_and_final_conv_options():
    x, c = torch.rand(2, 3, 32, 32), torch.ones(2, 1)
    bn = SaganAMN(**TINY)
    inn = SaganAMN(res_norm="instancenorm", **TINY)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == 8
    assert not any(isinstance(m, nn.BatchNorm2d) for m in inn.modules())
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in inn.resblk.modules()) == 8
    assert not any(m.affine for m in bn.modules() if isinstance(m, nn.InstanceNorm2d))
    de = SaganSAN(final_conv="deconv", **TINY)
    assert isinstance(de.deconv[-2], nn.ConvTranspose2d)
    assert type(SaganSAN(**TINY).deconv[-2]) is nn.Conv2d
    assert isinstance(de.deconv[-1], nn.Sigmoid) and isinstance(bn.deconv[-1], nn.Tanh)
    shallow = SaganAMN(n_res=0, n_down=2, **TINY)
    assert len(shallow.resblk) == 0 and shallow.conv[-3].out_channels == 16
    with torch.no_grad():
        for net in (inn, shallow):
            assert net(x, c).shape == x.shape
        assert de(x).shape == (2, 1, 32, 32)


def test_normal_init_default_and_helper():
    torch.manual_seed(0)
    for net in (SaganAMN(dim=16), SaganDiscriminator(dim=16, image_size=64)):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                assert torch.count_nonzero(m.bias) == 0
                if m.weight.numel() > 5000:
                    assert abs(m.weight.std().item() - 0.02) < 0.002
    raw = SaganSAN(dim=16, normal_init=False)
    first = raw.conv[0]
    assert torch.count_nonzero(first.bias) > 0  # torch's default init
    init_weights(raw)
    assert torch.count_nonzero(first.bias) == 0 and abs(first.weight.std().item() - 0.02) < 0.002
    assert torch.equal(raw.resblk[0].layers[1].weight, torch.ones(128))  # BN keeps torch init


def test_bad_arguments_raise():
    cases = [
        (lambda: SaganAMN(n_labels=0), "n_labels"),
        (lambda: SaganSAN(dim=0), "dim"),
        (lambda: SaganSAN(n_down=0), "n_down"),
        (lambda: SaganSAN(n_res=-1), "n_res"),
        (lambda: SaganAMN(res_norm="layernorm"), "res_norm"),
        (lambda: SaganSAN(final_conv="upsample"), "final_conv"),
        (lambda: SaganDiscriminator(image_size=100), "image_size"),
        (lambda: SaganDiscriminator(n_layers=0), "n_layers"),
        (lambda: SaganDiscriminator(max_dim=0), "max_dim"),
        (lambda: SaganDiscriminator(n_labels=0), "n_labels"),
    ]
    for make, arg in cases:
        with pytest.raises(ValueError, match=arg):
            make()
    amn, d = SaganAMN(n_labels=2, **TINY), SaganDiscriminator(image_size=64, **TINY)
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="n_labels"):
        amn(x, torch.ones(2, 3))
    with pytest.raises(ValueError, match="n_labels"):
        amn(x, torch.ones(2))
    with pytest.raises(ValueError, match="n_down"):
        amn(torch.rand(2, 3, 36, 36), torch.ones(2, 2))
    with pytest.raises(ValueError, match="image_size"):
        d(x)


def _all_outputs(amn, san, d, x, c):
    return [amn(x, c), san(x), *d(x)]


def test_channels_last_and_bf16_autocast():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    c = torch.tensor([[1.0], [0.0]])
    nets = [SaganAMN(**TINY).eval(), SaganSAN(**TINY).eval(),
            SaganDiscriminator(image_size=32, n_layers=3, **TINY).eval()]
    with torch.no_grad():
        ref = _all_outputs(*nets, x, c)
        for n in nets:
            n.to(memory_format=torch.channels_last)
        cl = _all_outputs(*nets, x.to(memory_format=torch.channels_last), c)
        assert cl[0].is_contiguous(memory_format=torch.channels_last)
        for r, o in zip(ref, cl):
            assert torch.allclose(r, o, atol=1e-5)
    for n in nets:
        n.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = _all_outputs(*nets, x, c)
        y = sagan_compose(x, out[0], out[1])
        loss = y.abs().mean() + out[2].mean() + out[3].mean()
    loss.backward()
    assert out[0].dtype == torch.bfloat16 and all(torch.isfinite(o).all() for o in out)
    assert all(p.grad is not None for n in nets for p in n.parameters())
