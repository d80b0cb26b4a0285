"""BiSeNet: official checkpoint layout (implementations.md §9), weights loading, preprocessing."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from faceedit_bench.parsing import BiSeNet, ParserWeightsError, load_bisenet, parse, save_bisenet
from faceedit_bench.parsing.preprocess import parse_labels, preprocess


def _bn(prefix: str, c: int) -> dict:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def _cbr(prefix: str, cin: int, cout: int, k: int) -> dict:
    """face-parsing ``ConvBNReLU``: ``<p>.conv.weight`` + ``<p>.bn.*``."""
    return {f"{prefix}.conv.weight": (cout, cin, k, k), **_bn(f"{prefix}.bn", cout)}


def official_key_shapes(n_classes: int = 19) -> dict:
    """Key -> shape of ``79999_iter.pth``, written from face-parsing.PyTorch model.py/resnet.py
    (reference §9), independently of our module tree."""
    s = {"cp.resnet.conv1.weight": (64, 3, 7, 7), **_bn("cp.resnet.bn1", 64)}
    for li, (cin, cout) in enumerate([(64, 64), (64, 128), (128, 256), (256, 512)], start=1):
        for bi in range(2):
            p = f"cp.resnet.layer{li}.{bi}"
            c0 = cin if bi == 0 else cout
            s[f"{p}.conv1.weight"] = (cout, c0, 3, 3)
            s.update(_bn(f"{p}.bn1", cout))
            s[f"{p}.conv2.weight"] = (cout, cout, 3, 3)
            s.update(_bn(f"{p}.bn2", cout))
            if bi == 0 and li > 1:
                s[f"{p}.downsample.0.weight"] = (cout, cin, 1, 1)
                s.update(_bn(f"{p}.downsample.1", cout))
    for name, cin in (("arm16", 256), ("arm32", 512)):
        s.update(_cbr(f"cp.{name}.conv", cin, 128, 3))
        s[f"cp.{name}.conv_atten.weight"] = (128, 128, 1, 1)
        s.update(_bn(f"cp.{name}.bn_atten", 128))
    s.update(_cbr("cp.conv_head32", 128, 128, 3))
    s.update(_cbr("cp.conv_head16", 128, 128, 3))
    s.update(_cbr("cp.conv_avg", 512, 128, 1))
    s.update(_cbr("ffm.convblk", 256, 256, 1))
    s["ffm.conv1.weight"] = (64, 256, 1, 1)
    s["ffm.conv2.weight"] = (256, 64, 1, 1)
    for head, cin, mid in (("conv_out", 256, 256), ("conv_out16", 128, 64), ("conv_out32", 128, 64)):
        s.update(_cbr(f"{head}.conv", cin, mid, 3))
        s[f"{head}.conv_out.weight"] = (n_classes, mid, 1, 1)
    return s


def official_state_dict(seed: int = 0, prefix: str = "") -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_key_shapes().items():
        if k.endswith("num_batches_tracked"):
            sd[prefix + k] = torch.tensor(80000, dtype=torch.long)
        elif k.endswith("running_var"):
            sd[prefix + k] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[prefix + k] = torch.randn(shape, generator=g) * 0.05
    return sd


def test_official_spec_matches_reference_counts():
    spec = official_key_shapes()
    # reference §9: 191 tensors (31 num_batches_tracked), 13,300,416 parameters
    assert len(spec) == 191
    assert sum(k.endswith("num_batches_tracked") for k in spec) == 31
    n_params = sum(int(np.prod(v)) for k, v in spec.items()
                   if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert n_params == 13_300_416
    # representative keys quoted in the reference
    assert spec["cp.resnet.conv1.weight"] == (64, 3, 7, 7)
    assert spec["cp.resnet.layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert spec["cp.arm16.conv.conv.weight"] == (128, 256, 3, 3)
    assert spec["cp.arm32.conv.conv.weight"] == (128, 512, 3, 3)
    assert spec["cp.conv_avg.conv.weight"] == (128, 512, 1, 1)
    assert spec["ffm.convblk.conv.weight"] == (256, 256, 1, 1)
    assert spec["conv_out.conv_out.weight"] == (19, 256, 1, 1)
    assert spec["conv_out16.conv.conv.weight"] == (64, 128, 3, 3)


def test_model_matches_official_layout():
    model = BiSeNet(19)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert own == official_key_shapes()
    assert sum(p.numel() for p in model.parameters()) == 13_300_416


@pytest.mark.parametrize("prefix", ["", "module."])
def test_official_state_dict_loads_strict(tmp_path, prefix):
    sd = official_state_dict(prefix=prefix)
    path = tmp_path / "79999_iter.pth"
    torch.save(sd, path)
    model = load_bisenet(path)
    assert not model.training and model.input_size == 512
    got = model.state_dict()
    for k in ("cp.resnet.conv1.weight", "ffm.conv2.weight", "conv_out32.conv_out.weight",
              "cp.arm32.bn_atten.running_var"):
        assert torch.equal(got[k], sd[prefix + k])
    assert len(model.weights_hash) == 64
    # the same dict also loads into a plain BiSeNet(19) with strict=True (as official test.py)
    BiSeNet(19).load_state_dict(official_state_dict(), strict=True)


def test_wrong_state_dict_names_the_key(tmp_path):
    sd = official_state_dict()
    sd["conv_out.conv_out.weight"] = torch.zeros(18, 256, 1, 1)
    del sd["ffm.conv1.weight"]
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError) as e:
        load_bisenet(path)
    msg = str(e.value)
    assert str(path) in msg and "ffm.conv1.weight" in msg and "conv_out.conv_out.weight" in msg


def test_missing_weights_message(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "79999_iter.pth"
    with pytest.raises(ParserWeightsError) as e:
        load_bisenet(missing)
    msg = str(e.value)
    assert str(missing) in msg
    assert "79999_iter.pth" in msg and "face-parsing.PyTorch" in msg and "Google Drive" in msg
    assert "--parser-weights" in msg and "FACEEDIT_PARSER_WEIGHTS" in msg
    monkeypatch.delenv("FACEEDIT_PARSER_WEIGHTS", raising=False)
    with pytest.raises(ParserWeightsError, match="FACEEDIT_PARSER_WEIGHTS"):
        load_bisenet(None)
    monkeypatch.setenv("FACEEDIT_PARSER_WEIGHTS", str(missing))
    with pytest.raises(ParserWeightsError, match="FACEEDIT_PARSER_WEIGHTS"):
        load_bisenet(None)


def test_construction_fetches_nothing(monkeypatch):
    def no_net(*a, **k):
        raise AssertionError("network access during construction")

    monkeypatch.setattr(socket, "socket", no_net)
    monkeypatch.setattr(socket, "create_connection", no_net)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_net)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_net)
    torch.manual_seed(0)
    a = BiSeNet(19, base=8)
    torch.manual_seed(1)
    b = BiSeNet(19, base=8)
    # random init, not weights from anywhere: the seed decides every convolution
    convs = [(n, p) for n, p in a.named_parameters() if p.ndim == 4]
    other = dict(b.named_parameters())
    assert convs and all(not torch.equal(p, other[n]) for n, p in convs)
    assert getattr(a, "weights_path", None) is None


def test_save_load_roundtrip_reduced_width(tmp_path):
    torch.manual_seed(0)
    model = BiSeNet(19, base=8, input_size=None).eval()
    path = save_bisenet(model, tmp_path / "p.pt")
    loaded = load_bisenet(path)
    assert loaded.base == 8 and loaded.input_size is None
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(parse(model, x), parse(loaded, x))


def test_parse_probabilities_and_input_conventions():
    torch.manual_seed(0)
    model = BiSeNet(19, base=8, input_size=64).eval()
    u8 = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    probs = parse(model, u8)
    assert probs.shape == (3, 19, 40, 40)
    assert torch.allclose(probs.sum(1), torch.ones(3, 40, 40), atol=1e-5)
    # float [-1, 1] NCHW gives the same result as uint8 NHWC
    f = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.allclose(parse(model, f), probs, atol=1e-5)
    labels = parse_labels(model, u8, out_size=20)
    assert labels.shape == (3, 20, 20) and labels.dtype == torch.uint8
    # official normalisation: ImageNet mean maps to zero
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(1, 3, 8, 8) * 2 - 1
    assert preprocess(mean, input_size=16).abs().max() < 1e-5
    with pytest.raises(ValueError, match="expected shape"):
        parse(model, np.zeros((2, 8, 8), np.uint8)[..., None])


# ----------------------------------------------------------------------------- training
def test_ohem_matches_official_rule():
    from faceedit_bench.parsing.train import OhemCELoss

    torch.manual_seed(0)
    logits = torch.randn(2, 19, 8, 8) * 3
    labels = torch.randint(0, 19, (2, 8, 8))
    per_px = torch.nn.functional.cross_entropy(logits, labels, reduction="none").flatten()
    srt = per_px.sort(descending=True).values
    n_min, thresh = 2 * 8 * 8 // 16, -np.log(0.7)
    want = srt[srt > thresh].mean() if srt[n_min] > thresh else srt[:n_min].mean()
    assert torch.allclose(OhemCELoss()(logits, labels), want)
    # easy pixels only: falls back to the n_min hardest
    easy = torch.nn.functional.one_hot(labels, 19).permute(0, 3, 1, 2).float() * 20
    per_px = torch.nn.functional.cross_entropy(easy, labels, reduction="none").flatten()
    assert torch.allclose(OhemCELoss()(easy, labels), per_px.sort(descending=True).values[:n_min].mean())


def test_flip_swaps_left_right_labels():
    from faceedit_bench.parsing.train import FLIP_PERM
    from faceedit_bench.parts import PART_INDEX

    for a, b in (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear")):
        assert FLIP_PERM[PART_INDEX[a]] == PART_INDEX[b] and FLIP_PERM[PART_INDEX[b]] == PART_INDEX[a]
    assert FLIP_PERM[PART_INDEX["nose"]] == PART_INDEX["nose"]
    assert sorted(FLIP_PERM) == list(range(19))


def _toy(n, res, seed):
    """Coloured ellipses: background, skin face, hair cap, two eyes (classes 0, 1, 17, 4, 5)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res] / res
    images = np.zeros((n, res, res, 3), np.uint8)
    labels = np.zeros((n, res, res), np.uint8)
    for i in range(n):
        images[i] = rng.integers(0, 256, 3)
        for cls, (cx, cy, rx, ry) in ((17, (.5, .42, .36, .36)), (1, (.5, .55, .26, .3)),
                                      (4, (.4, .5, .06, .04)), (5, (.6, .5, .06, .04))):
            m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
            labels[i][m] = cls
            images[i][m] = rng.integers(0, 256, 3)
    return images, labels


def test_train_parser_lightning_learns_and_saves(tmp_path):
    from faceedit_bench.parsing.train import evaluate_parser, train_parser

    images, labels = _toy(24, 32, 0)
    model0 = BiSeNet(19, base=8, input_size=32).eval()
    before = evaluate_parser(model0, images[:8], labels[:8])
    out = train_parser(images, labels, tmp_path / "p.pt", base=8, input_size=32, steps=12,
                       batch_size=8, lr=5e-3, warmup_steps=1, jitter=0.0, crop=28,
                       progress=False)
    model = load_bisenet(out)
    assert model.base == 8 and model.input_size == 32
    after = evaluate_parser(model, images[:8], labels[:8])
    assert after["pixel_acc"] > before["pixel_acc"] + 0.2
    assert set(after["iou"]) == {0, 1, 4, 5, 17}
    extra = torch.load(out, weights_only=True)["extra"]
    assert extra["steps"] == 12 and extra["loss"] == "ohem"


def test_parser_cli_train_and_eval_on_synthfaces(tmp_path, capsys):
    import json

    from faceedit_bench.cli import main

    out = tmp_path / "p.pt"
    assert main(["parser", "train", "--data", "synth", "--res", "32", "--n", "8", "--n-eval", "4",
                 "--base", "4", "--steps", "2", "--batch-size", "4", "--crop", "24",
                 "--out", str(out)]) == 0
    assert load_bisenet(out).base == 4
    capsys.readouterr()
    assert main(["parser", "eval", "--data", "synth", "--res", "32", "--n", "8", "--n-eval", "4",
                 "--parser-weights", str(out)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["n_images"] == 4 and 0 <= report["pixel_acc"] <= 1
    assert "background" in report["iou"]
