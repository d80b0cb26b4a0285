"""MGPE networks (Gu et al., CVPR 2019): geometry, boxes/crops/placement, component swaps,
shapes, options, losses, gradient flow, channels_last + bf16, and paper-width parameter counts.

Official counts: obtained by instantiating cientgu/Mask_Guided_Portrait_Editing
``models/networks.py`` (HEAD 9ce3139) outside the repo with ``label_nc`` 19:
``EmbedGlobalBGGenerator(19, 3, 64, 2, 9, 'batch', 1280)`` 12_136_899,
``MultiscaleDiscriminator(22, 64, 3, BatchNorm2d, True, 2, True)`` 5_571_970, and per component
(encoder, feature decoder, image decoder): 256 px skin/hair (20_591_936, 7_345_920, 20_592_643),
eyes (10_101_568, 4_720_128, 4_397_251), mouth (50_996_032, 14_966_784, 14_643_907).
Ours differ only by the official convs' redundant biases before a norm and the eye FCs' biases
(the official ones have none); :func:`official_count` adds/subtracts exactly those.
"""
import pytest
import torch
import torch.nn as nn

from faceedit_bench.nets.blocks import n_params
from faceedit_bench.nets.mgpe import (MGPEDiscriminator, MGPEGenerator, feature_matching_loss,
                                      masked_perceptual_loss)
from faceedit_bench.nets.mgpe_components import (COMPONENTS, ComponentAutoencoder,
                                                 component_boxes, component_geometry,
                                                 crop_components, place_features)
from faceedit_bench.parts import PART_INDEX

TINY = dict(ngf=4, feat_dim=4, enc_dim=4, enc_max_dim=8, embed_dim=8, fc_dim=16, img_dec_dim=4,
            img_dec_max_dim=8, n_blocks=2)
P = PART_INDEX


def face_labels(res: int, b: int = 2) -> torch.Tensor:
    """A plausible label map: skin oval, hair on top, eyes, brows, nose, lips, background."""
    lab = torch.zeros(b, res, res, dtype=torch.long)
    s = res / 64
    y, x = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
    lab[:, ((y - 34 * s) / (22 * s)) ** 2 + ((x - 32 * s) / (18 * s)) ** 2 < 1] = P["skin"]
    lab[:, : int(14 * s)] = P["hair"]
    for i in range(b):  # eyes/mouth move with the sample
        d = int(i * s)
        lab[i, int(27 * s) + d:int(30 * s) + d, int(20 * s):int(27 * s)] = P["l_eye"]
        lab[i, int(27 * s) + d:int(30 * s) + d, int(37 * s):int(44 * s)] = P["r_eye"]
        lab[i, int(24 * s):int(26 * s), int(20 * s):int(27 * s)] = P["l_brow"]
        lab[i, int(44 * s) - d:int(46 * s) - d, int(25 * s):int(39 * s)] = P["u_lip"]
        lab[i, int(46 * s) - d:int(48 * s) - d, int(25 * s):int(39 * s)] = P["l_lip"]
    lab[:, int(56 * s):, : int(20 * s)] = P["cloth"]
    return lab


def tiny_g(res: int = 64, **kw) -> MGPEGenerator:
    torch.manual_seed(0)
    return MGPEGenerator(res=res, **{**TINY, **kw})


def images(res: int, b: int = 2) -> torch.Tensor:
    return torch.rand(b, 3, res, res, generator=torch.Generator().manual_seed(1)) * 2 - 1


# ---------------------------------------------------------------- geometry, boxes, placement

def test_geometry_is_the_papers_at_256_and_scales():
    g = component_geometry(256)
    assert g["l_eye"].crop == (32, 48) and g["l_eye"].window == (8, 12) and g["l_eye"].n_down == 4
    assert g["mouth"].crop == (80, 144) and g["mouth"].window == (20, 36)
    assert g["mouth"].bottleneck == (5, 9) and g["l_eye"].bottleneck == (2, 3)
    assert g["skin"].window == (64, 64) and g["skin"].n_down == 7 and g["skin"].bottleneck == (2, 2)
    g64 = component_geometry(64)  # the minimum resolution
    assert g64["r_eye"].crop == (8, 12) and g64["r_eye"].window == (2, 3)
    assert g64["mouth"].crop == (20, 36) and g64["mouth"].window == (5, 9)
    for res in (32, 100):  # 32 px: the eye window would be 1 x 1.5
        with pytest.raises(ValueError, match="res"):
            component_geometry(res)
        with pytest.raises(ValueError, match="res"):
            MGPEGenerator(res=res, **TINY)


def test_boxes_centre_on_bbox_and_match_official_paste_at_256():
    lab = torch.zeros(3, 256, 256, dtype=torch.long)
    tops = [(100, 80), (111, 70), (123, 91)]
    for i, (t, l) in enumerate(tops):
        lab[i, t:t + 13, l:l + 31] = P["l_eye"]
    boxes = component_boxes(lab)["l_eye"]
    for i, (t, l) in enumerate(tops):
        cy, cx = (t + t + 12) // 2, (l + l + 30) // 2  # official int((top + bottom) / 2)
        y0, x0, y1, x1 = boxes[i].tolist()
        assert (y1 - y0, x1 - x0) == (32, 48) and y0 % 4 == 0 and x0 % 4 == 0
        assert (y0 // 4, x0 // 4) == (int(cy / 4 + 0.5) - 4, int(cx / 4 + 0.5) - 6)  # official
        assert y0 <= t and t + 13 <= y1 and x0 <= l and l + 31 <= x1


def test_boxes_fallback_and_clamping():
    lab = torch.full((2, 64, 64), P["skin"], dtype=torch.long)
    lab[1, :3, :3] = P["mouth"]  # mouth in the corner: window clamped inside
    boxes = component_boxes(lab)
    y0, x0, y1, x1 = boxes["l_eye"][0].tolist()  # absent: canonical centre (116, 96) * 64/256
    assert abs((y0 + y1) / 2 - 29) <= 2 and abs((x0 + x1) / 2 - 24) <= 2
    assert boxes["mouth"][1].tolist() == [0, 0, 20, 36]
    assert boxes["skin"].tolist() == [[0, 0, 64, 64]] * 2


def test_crop_components_contents_and_masks():
    lab, x = face_labels(64), images(64)
    boxes = component_boxes(lab)
    crops = crop_components(x, lab)
    y0, x0, y1, x1 = boxes["l_eye"][1].tolist()
    assert torch.equal(crops["l_eye"].image[1], x[1, :, y0:y1, x0:x1])  # eyes: not masked
    y0, x0, y1, x1 = boxes["mouth"][0].tolist()
    mouth = ((lab[0] == P["u_lip"]) | (lab[0] == P["l_lip"]))[y0:y1, x0:x1]
    assert torch.equal(crops["mouth"].mask[0, 0].bool(), mouth)
    assert torch.equal(crops["mouth"].image[0], x[0, :, y0:y1, x0:x1] * mouth)
    skin = (lab == P["skin"]) | (lab == P["l_brow"])
    assert torch.equal(crops["skin"].image, x * skin.unsqueeze(1))
    assert crops["hair"].image.shape == (2, 3, 64, 64)
    assert crops["mouth"].image.shape == (2, 3, 20, 36)
    masked = crop_components(x, lab, mask_eye_crops=True)["l_eye"]
    assert torch.equal(masked.image, crops["l_eye"].image * crops["l_eye"].mask)


def test_place_features_lands_in_window_and_is_differentiable():
    feats = torch.randn(2, 3, 5, 9, requires_grad=True)
    boxes = torch.tensor([[8, 12, 28, 48], [0, 28, 20, 64]])  # image px, stride 4
    out = place_features(feats, boxes, 16)
    assert out.shape == (2, 3, 16, 16)
    for i, (y0, x0) in enumerate([(2, 3), (0, 7)]):
        assert torch.equal(out[i, :, y0:y0 + 5, x0:x0 + 9], feats[i])
        inside = torch.zeros(16, 16, dtype=torch.bool)
        inside[y0:y0 + 5, x0:x0 + 9] = True
        assert out[i][:, ~inside].abs().sum() == 0
    w = torch.randn_like(out)
    (out * w).sum().backward()
    assert torch.equal(feats.grad[0], w[0, :, 2:7, 3:12])
    with pytest.raises(ValueError, match="boxes"):
        place_features(feats.detach(), boxes[:, :2], 16)


# ---------------------------------------------------------------- generator

@pytest.mark.parametrize("res", [64, 128])
def test_generator_shapes_and_range(res):
    g, lab, x = tiny_g(res), face_labels(res), images(res)
    y = g(lab, x)
    assert y.shape == (2, 3, res, res) and y.abs().max() <= 1
    g.eval()
    codes = g.encode(g.crop(x, lab))
    assert all(codes.z[n].shape == (2, 8) for n in COMPONENTS)
    rec = g.local.reconstruct(codes)
    geo = component_geometry(res)
    for n in COMPONENTS:
        assert rec[n].shape == (2, 3, *geo[n].crop) and rec[n].abs().max() <= 1
    placed = g.placed_features(codes, lab)
    assert [p.shape for p in placed] == [(2, 4, res // 4, res // 4)] * 5
    # transfer: other faces' components at this face's boxes, this face's background
    t = g.decode(codes.select(torch.tensor([1, 0])), lab, x)
    assert t.shape == y.shape and not torch.equal(t, g(lab, x))


def test_swapping_a_component_changes_only_its_placed_features():
    g, lab, x = tiny_g().eval(), face_labels(64), images(64)
    codes = g.encode(g.crop(x, lab))
    donor = codes.select(torch.tensor([1, 0]))
    base = g.placed_features(codes, lab)
    boxes = component_boxes(lab)
    for name in ("mouth", "hair", "l_eye"):
        mixed = codes.replace(donor, [name])
        placed = g.placed_features(mixed, lab)
        for k, n in enumerate(COMPONENTS):
            diff = (placed[k] - base[k]).abs().sum(1)  # B x 16 x 16
            if n != name:
                assert diff.sum() == 0
                continue
            assert diff.sum() > 0
            for i in range(2):
                y0, x0, y1, x1 = (boxes[n][i] // 4).tolist()
                outside = torch.ones(16, 16, dtype=torch.bool)
                outside[y0:y1, x0:x1] = False
                assert diff[i][outside].sum() == 0
        assert not torch.equal(g.decode(mixed, lab, x), g.decode(codes, lab, x))
    with pytest.raises(ValueError, match="names"):
        codes.replace(donor, ["nose"])


def test_component_boxes_follow_the_target_mask():
    g, lab, x = tiny_g().eval(), face_labels(64), images(64)
    codes = g.encode(g.crop(x, lab))
    moved = torch.roll(lab, shifts=8, dims=2)  # edited target mask: face 8 px to the right
    a, b = g.placed_features(codes, lab)[4], g.placed_features(codes, moved)[4]  # mouth
    assert torch.equal(torch.roll(a, 2, dims=3), b)


def test_options_change_what_they_should():
    lab, x = face_labels(64), images(64)
    vae = tiny_g()
    crops = vae.crop(x, lab)
    vae.train()
    assert not torch.equal(vae.encode(crops).z["hair"], vae.encode(crops).z["hair"])
    codes = vae.encode(crops, sample=False)
    assert torch.equal(codes.z["hair"], codes.mu["hair"])
    lv, mu = codes.logvar["mouth"], codes.mu["mouth"]
    kl_mouth = -0.5 * torch.sum(-lv.exp() - mu.pow(2) + lv + 1)  # official formula
    assert codes.kl() >= kl_mouth > 0

    ae = tiny_g(embedding="ae")
    assert ae.local.nets["skin"].fc_logvar is None
    c = ae.train().encode(ae.crop(x, lab))
    assert c.logvar == {} and c.kl() == 0 and torch.equal(c.z["skin"], c.mu["skin"])
    assert n_params(ae) < n_params(vae)

    assert any(isinstance(m, nn.InstanceNorm2d) for m in tiny_g(norm="instancenorm").modules())

    # background mask on the image (paper) vs on the E_b feature (official)
    face = (lab == P["skin"]).unsqueeze(1)
    other_bg = torch.where(face, -x, x)  # the background image differs only on the face
    for mask_at, invariant in (("image", True), ("feature", False)):
        g = tiny_g(background_mask_at=mask_at).eval()
        same = torch.allclose(g(lab, x, background_image=x), g(lab, x, background_image=other_bg))
        assert same == invariant

    d = MGPEDiscriminator(ndf=4, max_dim=8, use_sigmoid=True)
    out = d(x, lab)[0][-1]
    assert out.min() > 0 and out.max() < 1


@pytest.mark.parametrize("kw, arg", [
    (dict(norm="group"), "norm"), (dict(embedding="flow"), "embedding"),
    (dict(background_mask_at="both"), "background_mask_at"),
    (dict(component_parts={"skin": ("skin",)}), "component_parts")])
def test_bad_generator_arguments_raise(kw, arg):
    with pytest.raises(ValueError, match=arg):
        MGPEGenerator(res=64, **{**TINY, **kw})


def test_bad_other_arguments_raise():
    with pytest.raises(ValueError, match="norm"):
        MGPEDiscriminator(norm="layer")
    with pytest.raises(ValueError, match="name"):
        ComponentAutoencoder("nose", 64)
    parts = {"l_eye": ("l_eye",), "r_eye": ("r_eye",), "mouth": ("mouth",), "skin": ("skin",),
             "hair": ("hairs",)}
    with pytest.raises(ValueError, match="component_parts"):
        MGPEGenerator(res=64, component_parts=parts, **TINY)
    g = tiny_g()
    with pytest.raises(ValueError, match="target_labels"):
        g(face_labels(128)[:, :64], images(64))
    with pytest.raises(ValueError, match="layers"):
        feature_matching_loss([[torch.zeros(1)] * 3], [[torch.zeros(1)] * 3], layers="mid")


# ---------------------------------------------------------------- discriminator and losses

def test_discriminator_scales_and_features():
    d = MGPEDiscriminator(ndf=4, max_dim=8)
    lab, x = face_labels(64), images(64)
    feats = d(x, lab)
    assert len(feats) == 2 and all(len(f) == 5 for f in feats)  # n_layers + 2 per scale
    assert [t.shape[1] for t in feats[0]] == [4, 8, 8, 8, 1]
    assert feats[0][-1].shape[-1] == 11 and feats[1][-1].shape[-1] == 7  # pix2pixHD pad-2 sizes
    onehot = torch.nn.functional.one_hot(lab, 19).permute(0, 3, 1, 2).float()
    assert torch.equal(d(x, onehot)[1][-1], feats[1][-1])


def test_feature_matching_loss_weights():
    n_layers, num_d = 3, 2
    real = [[torch.zeros(2, 4, 3, 3) for _ in range(n_layers + 2)] for _ in range(num_d)]
    fake = [[torch.ones(2, 4, 3, 3, requires_grad=True) for _ in range(n_layers + 2)]
            for _ in range(num_d)]
    w = 4.0 / (n_layers + 1) / num_d
    every = feature_matching_loss(real, fake, "all")  # pix2pixHD: every hidden layer
    assert every.item() == pytest.approx(num_d * (n_layers + 1) * w)
    last = feature_matching_loss(real, fake)  # MGPE default: last hidden layer only
    assert last.item() == pytest.approx(num_d * w)
    assert feature_matching_loss(real, fake, distance="l2").item() == pytest.approx(num_d * w * 0.5)
    last.backward()
    assert fake[0][-2].grad is not None and fake[0][0].grad is None and fake[0][-1].grad is None


def test_masked_perceptual_loss_with_a_toy_extractor():
    def extractor(im):  # stands in for a local VGG19: two "layers" at 1/1 and 1/2
        return [im, torch.nn.functional.avg_pool2d(im, 2)]

    real = images(8, 1)
    fake = real.clone()
    fake[..., :4, :] += 1.0  # top half differs
    masks = torch.zeros(1, 2, 8, 8)
    masks[:, 0, :4] = 1  # top half
    masks[:, 1, 4:] = 1  # bottom half
    loss = masked_perceptual_loss(fake, real, masks, [10.0, 5.0], extractor, (1.0, 0.5))
    # layer 0: top half differs by 1 over half the elements -> L1 mean 0.5, weighted 10
    # layer 1 (1/2 res): pooled top-half rows differ by 1 -> 0.5, weighted 10 * 0.5
    assert loss.item() == pytest.approx(10 * 0.5 + 0.5 * 10 * 0.5)
    assert masked_perceptual_loss(real, real, masks, [10.0, 5.0], extractor) == 0
    with pytest.raises(ValueError, match="mask_weights"):
        masked_perceptual_loss(fake, real, masks, [1.0], extractor)


# ---------------------------------------------------------------- gradients, formats

def test_gradient_reaches_every_parameter():
    g, lab, x = tiny_g().train(), face_labels(64), images(64)
    crops = g.crop(x, lab)
    codes = g.encode(crops)
    out = g.decode(codes, lab, x) + g.decode(codes.select(torch.tensor([1, 0])), lab, x)
    rec = g.local.reconstruct(codes)
    loss = out.square().mean() + sum((rec[n] - crops[n].image).square().mean() for n in COMPONENTS)
    loss.backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing
    d = MGPEDiscriminator(ndf=4, max_dim=8)
    sum(f.square().mean() for scale in d(out.detach(), lab) for f in scale).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())


def test_channels_last_and_bf16_autocast():
    g, d = tiny_g().eval(), MGPEDiscriminator(ndf=4, max_dim=8).eval()
    lab, x = face_labels(64), images(64)
    ref = g(lab, x)
    g_cl = g.to(memory_format=torch.channels_last)
    x_cl = x.to(memory_format=torch.channels_last)
    assert torch.allclose(g_cl(lab, x_cl), ref, atol=1e-5)
    d_cl = d.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = g_cl(lab, x_cl)
        feats = d_cl(y, lab)
    assert y.shape == ref.shape and torch.isfinite(y).all()
    assert (y.float() - ref).abs().max() < 0.2
    assert all(torch.isfinite(f).all() for s in feats for f in s)


# ---------------------------------------------------------------- paper-width parameter counts

def official_count(module: nn.Module) -> int:
    """Our count + the official redundant conv biases (before a norm) - our eye FC biases."""
    extra = sum(m.out_channels for m in module.modules()
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is None)
    for name, m in module.named_modules():
        decoder_fc = "feature_fc" in name or "image_fc" in name
        if isinstance(m, nn.Linear) and "eye" in name and decoder_fc:
            extra -= m.out_features
    return n_params(module) + extra


def test_paper_width_parameter_counts():
    with torch.device("meta"):
        g, d = MGPEGenerator(), MGPEDiscriminator()
        comps = {n: ComponentAutoencoder(n, 256) for n in ("l_eye", "mouth", "skin")}
    assert n_params(g) == 228_230_994 and n_params(d) == 5_570_178
    assert n_params(g.mask_generator) + n_params(g.background) == 12_131_587
    assert official_count(g.mask_generator) + official_count(g.background) == 12_136_899
    assert official_count(d) == 5_571_970
    official = {"skin": (20_591_936, 7_345_920, 20_592_643),
                "l_eye": (10_101_568, 4_720_128, 4_397_251),
                "mouth": (50_996_032, 14_966_784, 14_643_907)}
    for n, (enc, fdec, idec) in official.items():
        c = comps[n]
        parts = (nn.ModuleList([c.encoder, c.fc_mu, c.fc_logvar]),
                 nn.ModuleDict({"eye_feature_fc" if "eye" in n else "feature_fc": c.feature_fc,
                                "dec": c.feature_decoder}),
                 nn.ModuleDict({"eye_image_fc" if "eye" in n else "image_fc": c.image_fc,
                                "dec": c.image_decoder}))
        assert tuple(official_count(p) for p in parts) == (enc, fdec, idec)
    total_official = 12_136_899 + 2 * sum(official["skin"]) + 2 * sum(official["l_eye"]) + sum(
        official["mouth"])
    assert official_count(g) == total_official == 228_242_514
