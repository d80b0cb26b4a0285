"""Every registered method's zoo export (``inference_nets`` in fp16) rebuilds a method whose edits
equal the original's: a network ``edit`` uses but ``inference_nets`` leaves out is caught here
(the rebuilt method would hold freshly initialised weights for it)."""
from __future__ import annotations

import pytest
import torch

from faceedit_bench.build import build_method
from faceedit_bench.config import compose_config, method_resolutions
from faceedit_bench.methods import available, get_method_class
from faceedit_bench.methods.adversarial import AdversarialEditor
from faceedit_bench.zoo import export_inference, load_inference

#: every trainable registered method (what the zoo can hold), plus MagGAN+Seg (its S at test time)
CASES = [(m, None) for m in available() if issubclass(get_method_class(m), AdversarialEditor)] + [("maggan", "seg")]


@pytest.fixture(scope="module")
def parser_file(tmp_path_factory):
    from faceedit_bench.parsing import BiSeNet, save_bisenet

    torch.manual_seed(0)
    return save_bisenet(BiSeNet(19, base=8, input_size=None), tmp_path_factory.mktemp("p") / "tiny_parser.pt")


@pytest.mark.parametrize("method,variant", CASES, ids=[f"{m}-{v}" if v else m for m, v in CASES])
def test_exported_weights_edit_like_the_original(method, variant, parser_file, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_PARSER_WEIGHTS", str(parser_file))
    res = min(method_resolutions(method))
    cfg = compose_config(method, res, profile="smoke", variant=variant)
    torch.manual_seed(1)
    original = build_method(cfg).eval()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():  # away from any seeded initialisation a rebuild could repeat
        for p in original.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    for name in original.inference_nets:  # EMA copies (what edit uses) follow their network
        if hasattr(original, "ema_names") and name in original.ema_names:
            original.inference(name).load_state_dict(getattr(original, name).state_dict())
    path = export_inference(original, tmp_path / "entry.pt")
    torch.manual_seed(3)
    rebuilt = load_inference(path)

    n, a = 2, len(original.attrs)
    images = torch.rand(n, 3, res, res, generator=g) * 2 - 1
    src = (torch.rand(n, a, generator=g) > 0.5).float()
    tgt = src.clone()
    tgt[:, 0] = 1 - tgt[:, 0]
    parts = torch.randint(0, 19, (n, res, res), generator=g).to(torch.uint8)
    with torch.no_grad():
        want = original.half().float().edit(images, src, tgt, parts=parts)
        got = rebuilt.edit(images, src, tgt, parts=parts)
    assert torch.allclose(want.images, got.images, atol=1e-4), \
        f"{method}: edits differ by {(want.images - got.images).abs().max():.3g}; inference_nets={original.inference_nets}"
