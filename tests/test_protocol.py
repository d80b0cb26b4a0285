"""Protocol facts: attribute vocabulary, conflict rules, AR tables."""
import pytest
import torch

from faceedit_bench.parts import AR_TABLE, PARTS, ar_table_hash, attribute_region, validate_ar_table
from faceedit_bench.protocol import (
    CELEBA_ATTRS, DEFAULT_ATTRS, check_attribute_conflict, single_flip_targets, validate_attrs,
)


def test_vocabulary():
    assert len(CELEBA_ATTRS) == 40 and len(DEFAULT_ATTRS) == 13 and len(PARTS) == 19
    assert PARTS[17] == "hair" and PARTS[6] == "eye_g"
    with pytest.raises(ValueError, match="Blue_Hair"):
        validate_attrs(["Bald", "Blue_Hair"])


def test_conflicts_hair_and_bald():
    names = list(DEFAULT_ATTRS)
    a = torch.zeros(1, 13)
    a[0, names.index("Black_Hair")] = 1
    a[0, names.index("Bangs")] = 1
    flips = single_flip_targets(a, names)
    blond = flips[names.index("Blond_Hair")][0]
    assert blond[names.index("Blond_Hair")] == 1 and blond[names.index("Black_Hair")] == 0
    bald = flips[names.index("Bald")][0]
    assert bald[names.index("Bald")] == 1 and bald[names.index("Bangs")] == 0
    # turning a hair colour OFF leaves the others alone
    black_off = flips[names.index("Black_Hair")][0]
    assert black_off.sum() == 1 and black_off[names.index("Bangs")] == 1
    # Mustache/No_Beard only with the AttGAN-PyTorch rule on
    m = torch.zeros(1, 13)
    m[0, names.index("No_Beard")] = 1
    m[0, names.index("Mustache")] = 1
    assert check_attribute_conflict(m, "Mustache", names)[0, names.index("No_Beard")] == 1
    assert check_attribute_conflict(m, "Mustache", names, True)[0, names.index("No_Beard")] == 0


def test_ar_table_covers_attributes_and_regions():
    assert set(DEFAULT_ATTRS) <= set(AR_TABLE)
    validate_ar_table(AR_TABLE)
    with pytest.raises(ValueError, match="'beard'"):
        validate_ar_table({"Mustache": [["beard"], []]})
    h = ar_table_hash()
    assert len(h) == 16 and h != ar_table_hash({"Bald": (("hair",), ())})
    src = torch.tensor([[[0, 17], [1, 6]]], dtype=torch.uint8)
    on = attribute_region(src, None, "Bald", torch.tensor([True]))
    off = attribute_region(src, None, "Bald", torch.tensor([False]))
    assert on.tolist() == [[[False, True], [False, False]]]
    assert off.tolist() == [[[True, False], [True, False]]]
