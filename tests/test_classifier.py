"""The TARR classifier: LynnHo/STGAN architecture, Lightning training, held-out accuracy stored
with the weights, weights_only loading, clear error for a missing file."""
import pytest
import torch

from faceedit_bench.metrics.classifier import (AttributeClassifier, default_classifier_path,
                                               load_classifier)

from _metrics_toy import ATTRS, ToyDataModule, toy_classifier_path


def test_architecture_matches_lynnho_at_128():
    net = AttributeClassifier(40, res=128)
    convs = [m for m in net.conv if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 128, 128, 256, 256]
    assert all(c.bias is None and c.kernel_size == (3, 3) for c in convs)
    assert net.fc[1].in_features == 4096 and net.fc[1].out_features == 512
    n = sum(p.numel() for p in net.parameters())
    assert 3.2e6 < n < 3.4e6  # reference implementations.md §10: about 3.3 M
    assert net(torch.zeros(2, 3, 128, 128)).shape == (2, 40)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return toy_classifier_path(tmp_path_factory)


def test_trained_classifier_file_has_heldout_accuracy(trained):
    net = load_classifier(trained)
    assert net.attrs == ATTRS
    assert 0.85 <= net.accuracy <= 1.0
    assert set(net.per_attribute_accuracy) == set(ATTRS)
    blob = torch.load(trained, weights_only=True)
    assert blob["heldout_split"] == "val" and blob["n_heldout"] == 96
    # the stored accuracy is what the weights give on the held-out split
    dm = ToyDataModule()
    dm.setup()
    val = dm.splits["val"]
    acc = (net.predict(val["image"]) == val["attrs"]).float().mean()
    assert float(acc) == pytest.approx(net.accuracy, abs=1e-6)


def test_missing_classifier_says_how_to_make_it(tmp_path):
    p = default_classifier_path("abc123", 64, tmp_path)
    assert p.name == "abc123_64.pt"
    with pytest.raises(FileNotFoundError, match="faceedit-bench classifier") as e:
        load_classifier(p)
    assert str(p) in str(e.value)
