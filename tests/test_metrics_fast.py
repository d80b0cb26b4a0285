"""The extractors' inference-only fast path (metrics/fast_inference.py): the TF1 resize is
bit-identical to torch-fidelity's, BatchNorm folding leaves a ResNet-50 (SwAV layout) computing
the same features up to float32 round-off, and layouts it does not know are refused."""
import pytest
import torch
import torch.nn as nn

from faceedit_bench.metrics.fast_inference import fold_batchnorm, prepare_fast, tf1_bilinear_resize

tfc = pytest.importorskip("torch_fidelity.interpolate_compat_tensorflow")


@pytest.mark.parametrize("h,w,size", [(64, 64, 299), (37, 50, 299), (320, 310, 299), (299, 299, 299), (8, 8, 5)])
def test_tf1_resize_is_bit_identical_to_torch_fidelity(h, w, size):
    g = torch.Generator().manual_seed(h * w)
    x = torch.randint(0, 256, (2, 3, h, w), generator=g).float()
    ref = tfc.interpolate_bilinear_2d_like_tensorflow1x(x, size=(size, size), align_corners=False)
    assert torch.equal(tf1_bilinear_resize(x, size), ref)


def _randomise_bn(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
    return net


def test_swav_fast_path_equals_reference(tmp_path):
    import torchvision

    from faceedit_bench.metrics.extractors import SwAVExtractor

    torch.manual_seed(0)
    net = _randomise_bn(torchvision.models.resnet50(weights=None))
    path = tmp_path / "swav_800ep_pretrain.pth.tar"
    torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, path)
    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ref_ex, fast_ex = SwAVExtractor(path, fast=False), SwAVExtractor(path)
    assert fast_ex.fast and not ref_ex.fast
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast_ex.modules())
    ref, fast = ref_ex(x), fast_ex(x)
    assert ref.std() > 1e-3
    err = float((fast - ref).abs().max() / ref.abs().max())
    assert err < 1e-4, err


def test_fold_batchnorm_refuses_unknown_layouts_and_train_mode():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)).eval()  # BN after ReLU
    with pytest.raises(ValueError, match="do not follow a known conv"):
        fold_batchnorm(net)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))


def test_fold_named_pairs_and_sequential():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5)
            self.conv, self.bn = nn.Conv2d(5, 6, 1), nn.BatchNorm2d(6, eps=1e-3)
            self.down = nn.Sequential(nn.Conv2d(3, 6, 1, bias=False), nn.BatchNorm2d(6))

        def forward(self, x):
            return torch.relu(self.bn(self.conv(torch.relu(self.bn1(self.conv1(x)))))) + self.down(x)

    torch.manual_seed(0)
    net = _randomise_bn(Block()).eval()
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        ref = net(x)
        fast = prepare_fast(net)(x.contiguous(memory_format=torch.channels_last))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert torch.allclose(fast, ref, rtol=1e-5, atol=1e-5)
