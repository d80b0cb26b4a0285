"""Parameter counts equal the official code's (issue 6 acceptance) and forward shapes at 128/256/384.

The exact integers were obtained by instantiating elvisyjlin/AttGAN-PyTorch ``attgan.py`` and
yunjey/stargan ``model.py`` (HEADs be2d6c6 / 94dd002) outside the repo; they round to the
figures of implementations.md §1.1/§3.1 (43.46 M, 44.72 M, 8.43 M).
"""
import pytest
import torch

from faceedit_bench.nets import (AttGANDiscriminator, AttGANGenerator, StarGANDiscriminator,
                                 StarGANGenerator, STGANDiscriminator, STGANGenerator)
from faceedit_bench.nets.blocks import n_params


def count(cls, **kw):
    with torch.device("meta"):  # no memory, no init cost
        return n_params(cls(**kw))


def test_attgan_counts_equal_official():
    assert count(AttGANGenerator, shortcut_layers=1, inject_layers=1) == 43_459_203  # 43.46 M
    assert count(AttGANGenerator, shortcut_layers=1, inject_layers=0) == 43_352_707  # 43.35 M
    assert count(AttGANDiscriminator) == 44_718_990  # 44.72 M
    assert round(count(AttGANGenerator) / 1e6, 2) == 43.46


def test_stargan_counts_equal_official():
    assert count(StarGANGenerator, c_dim=5) == 8_430_528  # 8.43 M
    assert count(StarGANDiscriminator, image_size=128, c_dim=5) == 44_762_048  # 44.76 M


def test_stgan_counts_match_reference_breakdown():
    with torch.device("meta"):
        g = STGANGenerator()
    # implementations.md §2.1: encoder 11.2 M, STUs 30.2 M, decoder ~33.7 M
    assert n_params(g.enc_layers) == 11_148_160  # 11.15 M (the reference rounds to 11.2)
    assert round(n_params(g.stu) / 1e6, 1) == 30.1
    assert round(n_params(g.dec_layers) / 1e6, 1) == 33.7
    assert count(STGANDiscriminator) == 44_718_990  # same D as AttGAN v1


def test_discriminator_counts_at_256_384_match_reference():
    # implementations.md §1.1: D (dim 64) 145.4 M @256, 313.2 M @384 (the FC dominates)
    assert round(count(AttGANDiscriminator, img_size=256) / 1e6, 1) == 145.4
    assert round(count(AttGANDiscriminator, img_size=384) / 1e6, 1) == 313.2


def test_384_discriminator_uses_real_trunk_width():
    # dims 48, fc 512: trunk 48..768, f = 12 -> FC input 768*12*12 (the port hard-codes 1024)
    with torch.device("meta"):
        d = AttGANDiscriminator(dim=48, fc_dim=512, img_size=384)
    assert d.fc_adv[0].layers[0].in_features == 768 * 12 * 12


@pytest.mark.parametrize("res", [128, 256, 384])
def test_forward_shapes_tiny(res):
    torch.manual_seed(0)
    x = torch.randn(2, 3, res, res)
    a = torch.rand(2, 13) - 0.5
    with torch.no_grad():
        g = AttGANGenerator(enc_dim=4, dec_dim=4, img_size=res)
        assert g(x, a).shape == x.shape
        adv, cls = AttGANDiscriminator(dim=4, fc_dim=8, img_size=res)(x)
        assert adv.shape == (2, 1) and cls.shape == (2, 13)
        sg = STGANGenerator(enc_dim=4, dec_dim=4, stu_dim=4, img_size=res)
        assert sg(x, a).shape == x.shape
        adv, cls = STGANDiscriminator(dim=4, fc_dim=8, img_size=res)(x)
        assert adv.shape == (2, 1) and cls.shape == (2, 13)
        c = torch.randint(0, 2, (2, 5)).float()
        assert StarGANGenerator(conv_dim=4, c_dim=5, repeat_num=1)(x, c).shape == x.shape
        src, cl = StarGANDiscriminator(image_size=res, conv_dim=4, c_dim=5)(x)
        assert src.shape == (2, 1, res // 64, res // 64) and cl.shape == (2, 5)


def test_stgan_maggan_depth_and_options():
    x, a = torch.randn(1, 3, 64, 64), torch.zeros(1, 13)
    g = STGANGenerator(n_layers=6, enc_dim=4, dec_dim=4, stu_dim=4, img_size=64).eval()
    assert len(g.enc_layers) == 6 and len(g.stu.units) == 5 and len(g.dec_layers) == 6
    with torch.no_grad():
        assert g(x, a).shape == x.shape
        for kw in (dict(use_stu=False, shortcut_layers=1, inject_layers=1), dict(stu_state="gru"),
                   dict(stu_norm="bn"), dict(one_more_conv=3), dict(multi_inputs=3)):
            g = STGANGenerator(enc_dim=4, dec_dim=4, stu_dim=4, img_size=64, **kw).eval()
            assert g(x, a).shape == x.shape, kw


def test_bad_inputs_raise():
    g = AttGANGenerator(enc_dim=4, dec_dim=4, img_size=32).eval()
    with pytest.raises(ValueError, match="B x 13"):
        g(torch.randn(1, 3, 32, 32), torch.zeros(1, 5))
    with pytest.raises(ValueError, match="divisible"):
        AttGANGenerator(img_size=100)
    with pytest.raises(ValueError, match="normalization"):
        AttGANDiscriminator(norm_fn="groupnorm")
    with pytest.raises(ValueError, match="stu_layers"):
        STGANGenerator(stu_layers=3)
