"""Official-layout weights load into our modules and reproduce the official outputs (issue 6).

Fixtures in tests/fixtures/official/ were produced by the official AttGAN-PyTorch and yunjey/stargan
code (see its README.md); the tolerance is 1e-5 (max absolute difference).
"""
from pathlib import Path

import pytest
import torch

from faceedit_bench.nets import StarGANDiscriminator
from faceedit_bench.nets.official_weights import (infer_attgan_config, load_attgan_generator,
                                                  load_stargan_generator)

FIX = Path(__file__).parent / "fixtures" / "official"
TOL = 1e-5


def io(name):
    return torch.load(FIX / name, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("tag,shortcut,inject", [("attgan_s1i1", 1, 1), ("attgan_s2i0", 2, 0)])
def test_attgan_weights_reproduce_official(tag, shortcut, inject):
    ref = io(f"{tag}_io.pt")
    g = load_attgan_generator(FIX / f"{tag}_weights.pth", img_size=16)
    assert (g.shortcut_layers, g.inject_layers) == (shortcut, inject)  # inferred from shapes
    assert not g.training
    with torch.no_grad():
        assert (g(ref["x"], ref["a"]) - ref["y_eval"]).abs().max() < TOL
        g.train()
        assert (g(ref["x"], ref["a"]) - ref["y_train"]).abs().max() < TOL


def test_attgan_bare_state_dict_and_module_prefix(tmp_path):
    ckpt = torch.load(FIX / "attgan_s1i1_weights.pth", map_location="cpu", weights_only=True)
    bare = {f"module.{k}": v for k, v in ckpt["G"].items()}  # DataParallel-saved, bare
    torch.save(bare, tmp_path / "g.pth")
    ref = io("attgan_s1i1_io.pt")
    g = load_attgan_generator(tmp_path / "g.pth", img_size=16)
    with torch.no_grad():
        assert (g(ref["x"], ref["a"]) - ref["y_eval"]).abs().max() < TOL


def test_attgan_config_inference():
    sd = torch.load(FIX / "attgan_s1i1_weights.pth", weights_only=True)["G"]
    cfg = infer_attgan_config(sd)
    assert cfg == dict(enc_dim=2, enc_layers=3, enc_norm="batchnorm", dec_dim=2, dec_layers=3,
                       dec_norm="batchnorm", n_attrs=13, shortcut_layers=1, inject_layers=1)


def test_stargan_weights_reproduce_official():
    ref = io("stargan_io.pt")
    g = load_stargan_generator(FIX / "stargan-G.ckpt")
    assert not g.training
    with torch.no_grad():
        # eval mode by default = the official test loop (train-mode IN, instance statistics)
        assert (g(ref["x"], ref["c"]) - ref["y_train"]).abs().max() < TOL
        g2 = load_stargan_generator(FIX / "stargan-G.ckpt", eval_running_stats=True)
        assert (g2(ref["x"], ref["c"]) - ref["y_eval"]).abs().max() < TOL
        assert (ref["y_eval"] - ref["y_train"]).abs().max() > 1e-3  # the two modes do differ
    # the running buffers are untouched by our eval-mode forward
    sd = torch.load(FIX / "stargan-G.ckpt", weights_only=True)
    assert torch.equal(g.state_dict()["main.1.running_mean"], sd["main.1.running_mean"])


def test_stargan_discriminator_official_keys():
    ref = io("stargan_io.pt")
    d = StarGANDiscriminator(image_size=16, conv_dim=4, c_dim=5, repeat_num=3)
    d.load_state_dict(torch.load(FIX / "stargan-D.ckpt", weights_only=True), strict=True)
    with torch.no_grad():
        src, cls = d(ref["x"])
    assert (src - ref["d_src"]).abs().max() < TOL and (cls - ref["d_cls"]).abs().max() < TOL


def test_old_checkpoint_without_num_batches_tracked(tmp_path):
    sd = torch.load(FIX / "stargan-G.ckpt", weights_only=True)
    old = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}  # PyTorch 0.4.0
    torch.save(old, tmp_path / "old-G.ckpt", _use_new_zipfile_serialization=False)  # legacy format
    ref = io("stargan_io.pt")
    with torch.no_grad():
        y = load_stargan_generator(tmp_path / "old-G.ckpt")(ref["x"], ref["c"])
    assert (y - ref["y_train"]).abs().max() < TOL


def test_missing_and_wrong_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pth.*AttGAN-PyTorch"):
        load_attgan_generator(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match=r"200000-G\.ckpt.*download\.sh"):
        load_stargan_generator(tmp_path / "200000-G.ckpt")
    with pytest.raises(ValueError, match="not an AttGAN-PyTorch generator"):
        load_attgan_generator(FIX / "stargan-G.ckpt")
    with pytest.raises(ValueError, match=r"stargan-G\.ckpt.*does not match"):
        load_stargan_generator(FIX / "stargan-G.ckpt", repeat_num=3)
