"""SeCGAN: the 19->12 class merge, the semantic-branch / Concat networks (appendix Tables 2-3) and
the mask losses (eqs. 10-12), including where their gradients go."""
import pytest
import torch
import torch.nn as nn

from faceedit_bench.nets import (AttGANDiscriminator, AttGANGenerator, StarGANDiscriminator,
                                 StarGANGenerator)
from faceedit_bench.nets.blocks import n_params
from faceedit_bench.nets.secgan import (AttGANBranchDiscriminator, AttGANBranchGenerator,
                                        StarGANBranchDiscriminator, StarGANBranchGenerator,
                                        concat_generator, sc_loss_rgb, sc_loss_seg,
                                        seg_reconstruction_loss, semantic_discriminator,
                                        semantic_generator)
from faceedit_bench.parts import PART_INDEX, PARTS
from faceedit_bench.secgan_classes import (SECGAN_CLASSES, SECGAN_MERGE, merge_log_probs_to_secgan,
                                           merge_probs_to_secgan, merge_to_secgan, one_hot_12)

N_ATTRS = 13


def tiny_kw(backbone: str, res: int, role: str) -> dict:
    """Tiny widths; D trunks stop at res/8 or res/16 (IN needs > 1 pixel in training)."""
    if backbone == "stargan":
        return dict(conv_dim=4, repeat_num=1) if role == "g" else dict(
            image_size=res, conv_dim=4, repeat_num=3)
    return dict(enc_dim=4, dec_dim=4, img_size=res) if role == "g" else dict(
        dim=4, fc_dim=8, img_size=res, n_layers=4)


def labels_12(b: int, res: int) -> torch.Tensor:
    return torch.randint(0, 12, (b, res, res))


# ---------------------------------------------------------------- classes and merge table

def test_merge_table_by_name():
    assert SECGAN_CLASSES == ("skin", "eyebrows", "eyes", "eyeglasses", "ears", "earrings",
                              "nose", "mouth", "lips", "neck", "hair", "others")
    merged = [p for names in SECGAN_MERGE.values() for p in names]
    assert sorted(merged) == sorted(PARTS)  # every face-parser class exactly once
    expect = {"background": "others", "neck_l": "others", "cloth": "others", "hat": "others",
              "l_brow": "eyebrows", "r_brow": "eyebrows", "l_eye": "eyes", "r_eye": "eyes",
              "l_ear": "ears", "r_ear": "ears", "ear_r": "earrings", "eye_g": "eyeglasses",
              "u_lip": "lips", "l_lip": "lips", "skin": "skin", "nose": "nose",
              "mouth": "mouth", "neck": "neck", "hair": "hair"}
    labels = torch.tensor([PART_INDEX[p] for p in expect], dtype=torch.uint8).view(1, 1, -1)
    out = merge_to_secgan(labels)
    assert out.dtype == torch.long and out.shape == labels.shape
    assert [SECGAN_CLASSES[i] for i in out.flatten()] == list(expect.values())
    assert torch.equal(merge_to_secgan(labels.long()), out)


def test_merge_probs_sum_and_log_stable():
    torch.manual_seed(0)
    logits = torch.randn(2, 19, 5, 6, requires_grad=True)
    p12 = merge_probs_to_secgan(logits.softmax(1))
    assert p12.shape == (2, 12, 5, 6)
    assert torch.allclose(p12.sum(1), torch.ones(2, 5, 6), atol=1e-6)
    brows = logits.softmax(1)[:, [PART_INDEX["l_brow"], PART_INDEX["r_brow"]]].sum(1)
    assert torch.allclose(p12[:, SECGAN_CLASSES.index("eyebrows")], brows)
    assert torch.allclose(merge_log_probs_to_secgan(logits.log_softmax(1)), p12.log(), atol=1e-5)
    p12[:, 0].sum().backward()
    assert logits.grad.abs().sum() > 0  # differentiable
    # one-hot 19-class probabilities merge to the one-hot of the merged labels
    lab = torch.randint(0, 19, (2, 4, 4))
    one_hot_19 = nn.functional.one_hot(lab, 19).permute(0, 3, 1, 2).float()
    assert torch.equal(merge_probs_to_secgan(one_hot_19), one_hot_12(merge_to_secgan(lab)))
    # log of sums of underflowing probabilities: logsumexp stays finite, log(sum) does not
    extreme = torch.full((1, 19, 1, 1), -200.0)
    extreme[:, PART_INDEX["skin"]] = 0.0
    assert torch.isfinite(merge_log_probs_to_secgan(extreme.log_softmax(1))).all()
    assert not torch.isfinite(merge_probs_to_secgan(extreme.softmax(1)).log()).all()


def test_one_hot_12():
    lab = labels_12(2, 8)
    oh = one_hot_12(lab)
    assert oh.shape == (2, 12, 8, 8) and oh.dtype == torch.float32
    assert torch.equal(oh.sum(1), torch.ones(2, 8, 8)) and torch.equal(oh.argmax(1), lab)
    assert one_hot_12(lab.to(torch.uint8), torch.bfloat16).dtype == torch.bfloat16


def test_class_helpers_bad_arguments():
    with pytest.raises(ValueError, match="labels_19"):
        merge_to_secgan(torch.zeros(1, 4, 4))  # float
    with pytest.raises(ValueError, match="labels_19"):
        merge_to_secgan(torch.zeros(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="probs_19"):
        merge_probs_to_secgan(torch.zeros(1, 12, 4, 4))
    with pytest.raises(ValueError, match="log_probs_19"):
        merge_log_probs_to_secgan(torch.zeros(19, 4, 4))
    with pytest.raises(ValueError, match="labels"):
        one_hot_12(torch.zeros(1, 4, 4, dtype=torch.bool))


# ---------------------------------------------------------------- networks

def count(fn, *a, **kw) -> int:
    with torch.device("meta"):
        return n_params(fn(*a, **kw))


def test_param_counts_paper_width_128():
    """13 attributes, 128 px. Only the first / last convs differ from the RGB networks:
    StarGAN G: 7x7 convs (3+13 -> 64) and (64 -> 3), no bias: +2 * 9*64*49; D: first conv 4x4
    (3 -> 64): +9*64*16. AttGAN G: first conv 4x4 (no bias, BN) +9*64*16, last deconv 4x4
    (128 -> 3, bias) +9*128*16 + 9; D: first conv (no bias, IN) +9*64*16. Concat: 12 extra
    input channels only."""
    rgb_g_star = count(StarGANGenerator, c_dim=13)
    rgb_d_star = count(StarGANDiscriminator, c_dim=13)
    rgb_g_att, rgb_d_att = count(AttGANGenerator), count(AttGANDiscriminator)
    assert (rgb_g_star, rgb_d_star) == (8_455_616, 44_827_584)
    assert (rgb_g_att, rgb_d_att) == (43_459_203, 44_718_990)  # test_nets_param_counts values

    assert count(semantic_generator, "stargan") == rgb_g_star + 2 * 9 * 64 * 49 == 8_512_064
    assert count(semantic_discriminator, "stargan") == rgb_d_star + 9 * 64 * 16 == 44_836_800
    assert count(semantic_generator, "attgan") == rgb_g_att + 27_657 == 43_486_860
    assert 27_657 == 9 * 64 * 16 + 9 * 128 * 16 + 9
    assert count(semantic_discriminator, "attgan") == rgb_d_att + 9 * 64 * 16 == 44_728_206
    assert count(concat_generator, "stargan") == rgb_g_star + 12 * 64 * 49 == 8_493_248
    assert count(concat_generator, "attgan") == rgb_g_att + 12 * 64 * 16 == 43_471_491


def test_state_dict_keys_and_table_layers_equal_backbone():
    with torch.device("meta"):
        pairs = [(StarGANGenerator(c_dim=13), semantic_generator("stargan")),
                 (StarGANDiscriminator(c_dim=13), semantic_discriminator("stargan")),
                 (AttGANGenerator(), semantic_generator("attgan")),
                 (AttGANDiscriminator(), semantic_discriminator("attgan"))]
        for rgb, seg in pairs:
            assert rgb.state_dict().keys() == seg.state_dict().keys()
        g_star, g_att = pairs[0][1], pairs[2][1]
    # Table 2: Conv(64, 7, 1) on 12 + n_a channels ... Conv(12, 7, 1, 3), Softmax
    assert g_star.main[0].in_channels == 12 + 13 and g_star.main[-2].out_channels == 12
    # Table 3: Conv(64, 4, 2) on 12 channels ... ConvT(12, 4, 2), Softmax
    assert g_att.enc_layers[0].layers[0].in_channels == 12
    assert g_att.dec_layers[-1].layers[0].out_channels == 12
    assert g_att.dec_layers[1].layers[0].in_channels == 1536 + 13  # the * row


@pytest.mark.parametrize("backbone,res", [("stargan", 32), ("stargan", 64),
                                          ("attgan", 32), ("attgan", 64)])
def test_semantic_branch_shapes_ranges_gradients(backbone, res):
    torch.manual_seed(0)
    g = semantic_generator(backbone, **tiny_kw(backbone, res, "g"))
    d = semantic_discriminator(backbone, **tiny_kw(backbone, res, "d"))
    s_in = one_hot_12(labels_12(2, res))
    y_diff = torch.randint(-1, 2, (2, N_ATTRS)).float()
    log_probs = g(s_in, y_diff)
    assert log_probs.shape == (2, 12, res, res) and log_probs.dtype == torch.float32
    assert (log_probs <= 0).all()
    assert torch.allclose(log_probs.exp().sum(1), torch.ones(2, res, res), atol=1e-5)
    adv, cls = d(log_probs.exp())
    assert cls.shape == (2, N_ATTRS)
    assert adv.shape == ((2, 1, res // 8, res // 8) if backbone == "stargan" else (2, 1))
    assert torch.equal(d.forward_adv(s_in), d(s_in)[0])
    ((log_probs * torch.randn_like(log_probs)).sum() + adv.sum() + cls.sum()).backward()
    for net in (g, d):
        missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
        assert not missing, missing


@pytest.mark.parametrize("backbone", ["stargan", "attgan"])
def test_concat_generator_is_rgb_with_mask_input(backbone):
    torch.manual_seed(0)
    g = concat_generator(backbone, **tiny_kw(backbone, 32, "g"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = g(torch.cat([x, one_hot_12(labels_12(2, 32))], 1), torch.zeros(2, N_ATTRS))
    assert out.shape == x.shape and out.abs().max() <= 1
    with pytest.raises(RuntimeError):  # the bare image no longer fits
        g(x, torch.zeros(2, N_ATTRS))


def test_options_change_channels_and_output():
    x, c = torch.randn(1, 5, 32, 32), torch.zeros(1, 4)
    g = StarGANBranchGenerator(in_channels=5, out_channels=7, output="tanh", c_dim=4,
                               conv_dim=4, repeat_num=1)
    out = g(x, c)
    assert out.shape == (1, 7, 32, 32) and out.abs().max() <= 1 and out.min() < 0
    g = AttGANBranchGenerator(in_channels=5, out_channels=7, n_attrs=4, enc_dim=4, dec_dim=4,
                              img_size=32, enc_layers=3, dec_layers=3)
    assert torch.allclose(g(x, c).exp().sum(1), torch.ones(1, 32, 32), atol=1e-5)
    d = StarGANBranchDiscriminator(in_channels=5, c_dim=4, image_size=32, conv_dim=4,
                                   repeat_num=2)
    assert d(x)[1].shape == (1, 4)
    d = AttGANBranchDiscriminator(in_channels=5, n_attrs=4, dim=4, fc_dim=8, img_size=32,
                                  norm_fn="none", fc_acti_fn="relu")  # Table 3's D rows
    assert d(x)[1].shape == (1, 4)
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in d.modules())


@pytest.mark.parametrize("backbone", ["stargan", "attgan"])
def test_channels_last_and_bf16_autocast(backbone):
    torch.manual_seed(0)
    cl = torch.channels_last
    g = semantic_generator(backbone, **tiny_kw(backbone, 32, "g")).to(memory_format=cl)
    d = semantic_discriminator(backbone, **tiny_kw(backbone, 32, "d")).to(memory_format=cl)
    s_in = one_hot_12(labels_12(2, 32)).contiguous(memory_format=cl)
    y = torch.zeros(2, N_ATTRS)
    ref = g(s_in, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_probs = g(s_in, y)
        adv, cls = d(log_probs.exp())
    assert log_probs.dtype == torch.float32 and torch.isfinite(log_probs).all()
    assert torch.allclose(log_probs.exp().sum(1), torch.ones(2, 32, 32), atol=1e-4)
    assert (log_probs.exp() - ref.exp()).abs().max() < 0.1  # bf16 close to fp32
    assert torch.isfinite(adv).all() and cls.shape == (2, N_ATTRS)
    assert seg_reconstruction_loss(log_probs, s_in.argmax(1)).dtype == torch.float32


def test_network_bad_arguments():
    with pytest.raises(ValueError, match="in_channels"):
        StarGANBranchGenerator(in_channels=0)
    with pytest.raises(ValueError, match="out_channels"):
        AttGANBranchGenerator(out_channels=1)  # a 1-class softmax
    with pytest.raises(ValueError, match="output"):
        StarGANBranchGenerator(output="softmax")
    with pytest.raises(ValueError, match="in_channels"):
        AttGANBranchDiscriminator(in_channels=2.5)
    with pytest.raises(ValueError, match="backbone"):
        semantic_generator("stgan")
    with pytest.raises(ValueError, match="B x 13"):  # the backbone's own conditioning check
        semantic_generator("stargan", conv_dim=4, repeat_num=1)(torch.zeros(1, 12, 8, 8),
                                                                 torch.zeros(1, 5))


# ---------------------------------------------------------------- losses (eqs. 10-12)

def manual_ce(log_probs: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
    """−(1/HW) Σ_ij onehot_ij · log p_ij, averaged over the batch (eqs. 10-12)."""
    return -(one_hot * log_probs).sum(1).mean((1, 2)).mean()


def test_losses_equal_equations():
    torch.manual_seed(0)
    lp_a = torch.randn(2, 12, 6, 6).log_softmax(1)
    lp_b = torch.randn(2, 12, 6, 6).log_softmax(1)
    target = labels_12(2, 6)
    rec = seg_reconstruction_loss(lp_a, target)
    assert torch.allclose(rec, manual_ce(lp_a, one_hot_12(target)))
    # eq. 11: target s_out = onehot(argmax ŝ_out); eq. 12: target onehot(argmax P(x_out))
    s_out, p_bar = one_hot_12(lp_b.argmax(1)), one_hot_12(lp_a.argmax(1))
    assert torch.allclose(sc_loss_rgb(lp_a, lp_b.exp()), manual_ce(lp_a, s_out))
    assert torch.allclose(sc_loss_seg(lp_b, lp_a.exp()), manual_ce(lp_b, p_bar))
    assert torch.equal(sc_loss_rgb(lp_a, lp_b), sc_loss_rgb(lp_a, lp_b.exp()))  # argmax only
    perfect = one_hot_12(target).clamp_min(1e-12).log()
    assert seg_reconstruction_loss(perfect, target) < 1e-6


def test_sc_loss_gradients_flow_into_intended_argument_only():
    torch.manual_seed(0)
    a = torch.randn(2, 12, 4, 4, requires_grad=True)
    b = torch.randn(2, 12, 4, 4, requires_grad=True)
    sc_loss_rgb(a.log_softmax(1), b.softmax(1)).backward()
    assert a.grad.abs().sum() > 0 and b.grad is None
    a.grad = None
    sc_loss_seg(b.log_softmax(1), a.softmax(1)).backward()
    assert b.grad.abs().sum() > 0 and a.grad is None


def test_sc_losses_through_networks_and_frozen_parser():
    """Eq. 11 trains G_rgb through the frozen P (not G_seg, not P); eq. 12 trains G_seg only."""
    torch.manual_seed(0)
    res = 32
    g_rgb = AttGANGenerator(enc_dim=4, dec_dim=4, img_size=res)
    g_seg = semantic_generator("attgan", enc_dim=4, dec_dim=4, img_size=res)
    parser = nn.Conv2d(3, 19, 3, padding=1).requires_grad_(False)  # a stand-in for BiSeNet
    x = torch.rand(2, 3, res, res) * 2 - 1
    s_in = one_hot_12(merge_to_secgan(parser(x).argmax(1)))
    y_diff = torch.randint(-1, 2, (2, N_ATTRS)).float()

    def grads(net: nn.Module) -> bool:
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())

    x_out = g_rgb(x, y_diff)
    seg_log_probs = g_seg(s_in, y_diff)
    parser_log_probs = merge_log_probs_to_secgan(parser(x_out).log_softmax(1))
    sc_loss_rgb(parser_log_probs, seg_log_probs.exp()).backward()
    assert grads(g_rgb) and not grads(g_seg) and all(p.grad is None for p in parser.parameters())
    g_rgb.zero_grad(set_to_none=True)

    x_out = g_rgb(x, y_diff)
    seg_log_probs = g_seg(s_in, y_diff)
    parser_probs = merge_probs_to_secgan(parser(x_out).softmax(1))
    sc_loss_seg(seg_log_probs, parser_probs).backward()
    assert grads(g_seg) and not grads(g_rgb)


def test_loss_bad_arguments():
    lp = torch.zeros(1, 12, 4, 4)
    with pytest.raises(ValueError, match="log_probs"):
        seg_reconstruction_loss(torch.zeros(1, 19, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="target_labels"):
        seg_reconstruction_loss(lp, torch.zeros(1, 4, 4))  # float labels
    with pytest.raises(ValueError, match="target_labels"):
        seg_reconstruction_loss(lp, torch.zeros(1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="seg_out_probs"):
        sc_loss_rgb(lp, torch.zeros(1, 12, 8, 8))
    with pytest.raises(ValueError, match="parser_log_probs"):
        sc_loss_rgb(torch.zeros(1, 19, 4, 4), lp)
    with pytest.raises(ValueError, match="seg_log_probs"):
        sc_loss_seg(torch.zeros(12, 4, 4), lp)
    with pytest.raises(ValueError, match="parser_probs"):
        sc_loss_seg(lp, torch.zeros(1, 19, 4, 4))
