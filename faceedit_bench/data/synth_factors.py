"""SynthFaces factor sampling: per-(seed, index) uniforms, the rendered attributes, the 40-column fill.

Every random number is a counter-based hash (splitmix64) of (seed, index, stream, k), so a sample
never depends on which other samples share its batch (DESIGN §6). Identity factors (stream 0)
and attributes (stream 1) use separate streams: flipping an attribute never moves the identity.
Target marginals are CelebA's (issue 3); the correlation rules are: Mustache and beard only on
Male, hair colours exclusive, Bald excludes Bangs (and Bald is mostly Male).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..protocol import CELEBA_ATTRS

#: The attributes the renderer draws: the 13 of DESIGN §4 plus Smiling (SaGAN).
RENDERED_ATTRS: tuple[str, ...] = (
    "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows", "Eyeglasses",
    "Male", "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin", "Young", "Smiling",
)
#: CelebA-like marginals (fraction of images with the attribute = 1), issue 3.
TARGET_MARGINALS: dict[str, float] = {
    "Bald": 0.02, "Bangs": 0.15, "Black_Hair": 0.24, "Blond_Hair": 0.15, "Brown_Hair": 0.20,
    "Bushy_Eyebrows": 0.14, "Eyeglasses": 0.07, "Male": 0.42, "Mouth_Slightly_Open": 0.48,
    "Mustache": 0.04, "No_Beard": 0.83, "Pale_Skin": 0.04, "Young": 0.77, "Smiling": 0.48,
}
#: Columns of the 40 that are filled from identity factors or rendered attributes (see
#: :func:`fill_celeba_columns`); every other non-rendered column is 0 (-1 in the file).
FILLED_ATTRS: tuple[str, ...] = (
    "Wearing_Hat", "Wearing_Earrings", "Wearing_Necklace", "Gray_Hair", "Goatee", "Sideburns",
    "Wearing_Lipstick",
)

N_IDENTITY = 64          # uniforms per identity (stream 0); the renderer maps them to factors
N_ATTR = 16              # uniforms per attribute draw (stream 1)
HAT_RATE = 0.08
EARRING_RATE = 0.25
NECKLACE_RATE = 0.15
GRAY_OF_OTHER = 0.5      # fraction of 'other' hair shades that are gray/white (else red/ginger)
GOATEE_RATE = 0.3        # beard style: goatee (chin only) vs full beard

# Identity uniform slots used outside the renderer (the renderer documents the rest).
U_HAT, U_EARRING, U_NECKLACE, U_OTHER_KIND, U_BEARD_STYLE = 0, 1, 2, 3, 4

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniforms(seed: int, indices: Sequence[int], stream: int, k: int) -> np.ndarray:
    """(B, k) float64 uniforms in [0, 1), a pure function of (seed, index, stream, column)."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1:
        raise ValueError(f"indices must be 1-D, got shape {idx.shape}")
    if (idx < 0).any():
        raise ValueError("indices must be >= 0")
    with np.errstate(over="ignore"):
        h = _mix(np.full(idx.shape, np.uint64(seed & 0xFFFFFFFFFFFFFFFF)))
        h = _mix(h ^ idx.astype(np.uint64))
        h = _mix(h ^ np.uint64(stream * 0x632BE59BD9B4E019 & 0xFFFFFFFFFFFFFFFF))
        cols = np.arange(k, dtype=np.uint64)
        z = _mix(h[:, None] + cols[None, :] * np.uint64(0xD6E8FEB86659FD93))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def identity_uniforms(seed: int, indices: Sequence[int]) -> np.ndarray:
    return uniforms(seed, indices, 0, N_IDENTITY)


def sample_rendered_attrs(seed: int, indices: Sequence[int]) -> np.ndarray:
    """(B, 14) uint8 {0,1} in :data:`RENDERED_ATTRS` order, with the correlation rules."""
    u = uniforms(seed, indices, 1, N_ATTR)
    m = TARGET_MARGINALS
    male = u[:, 0] < m["Male"]
    # Bald mostly on men: P(Bald|M)=0.045, P(Bald|F)=0.0022 -> 0.0202 overall.
    bald = np.where(male, u[:, 1] < 0.045, u[:, 1] < 0.0022)
    bangs = ~bald & (u[:, 2] < m["Bangs"] / (1 - 0.0202))
    h = u[:, 3]
    black = h < m["Black_Hair"]
    blond = (h >= m["Black_Hair"]) & (h < m["Black_Hair"] + m["Blond_Hair"])
    brown = (h >= m["Black_Hair"] + m["Blond_Hair"]) & (
        h < m["Black_Hair"] + m["Blond_Hair"] + m["Brown_Hair"])
    bushy = u[:, 4] < m["Bushy_Eyebrows"]
    glasses = u[:, 5] < m["Eyeglasses"]
    mouth = u[:, 6] < m["Mouth_Slightly_Open"]
    mustache = male & (u[:, 7] < m["Mustache"] / m["Male"])
    beard = male & (u[:, 8] < (1 - m["No_Beard"]) / m["Male"])
    pale = u[:, 9] < m["Pale_Skin"]
    young = u[:, 10] < m["Young"]
    smiling = u[:, 11] < m["Smiling"]
    cols = [bald, bangs, black, blond, brown, bushy, glasses, male, mouth, mustache, ~beard,
            pale, young, smiling]
    return np.stack(cols, axis=1).astype(np.uint8)


def hair_category(rendered: np.ndarray) -> np.ndarray:
    """0 black, 1 blond, 2 brown, 3 other; priority black > blond > brown if several are set."""
    r = {n: rendered[:, i].astype(bool) for i, n in enumerate(RENDERED_ATTRS)}
    return np.where(r["Black_Hair"], 0, np.where(r["Blond_Hair"], 1, np.where(r["Brown_Hair"], 2, 3)))


def fill_celeba_columns(rendered: np.ndarray, ident_u: np.ndarray) -> np.ndarray:
    """(B, 40) uint8 {0,1}: the 14 rendered columns plus the documented fill rule.

    Fill rule (docs/synthfaces.md): Wearing_Hat = hat factor; Wearing_Earrings / Wearing_Necklace
    = accessory factors; Gray_Hair = hair colour 'other' with a gray shade; Goatee = beard
    (No_Beard = 0) in goatee style; Sideburns = beard in full style; Wearing_Lipstick = not
    Male (women are rendered with lipstick). All other 19 columns are 0.
    """
    rendered = np.asarray(rendered)
    if rendered.ndim != 2 or rendered.shape[1] != len(RENDERED_ATTRS):
        raise ValueError(f"rendered attrs must be (B, {len(RENDERED_ATTRS)}), got {rendered.shape}")
    b = rendered.shape[0]
    out = np.zeros((b, len(CELEBA_ATTRS)), dtype=np.uint8)
    col = {n: i for i, n in enumerate(CELEBA_ATTRS)}
    for i, n in enumerate(RENDERED_ATTRS):
        out[:, col[n]] = rendered[:, i]
    r = {n: rendered[:, i].astype(bool) for i, n in enumerate(RENDERED_ATTRS)}
    beard = ~r["No_Beard"]
    goatee_style = ident_u[:, U_BEARD_STYLE] < GOATEE_RATE
    out[:, col["Wearing_Hat"]] = ident_u[:, U_HAT] < HAT_RATE
    out[:, col["Wearing_Earrings"]] = ident_u[:, U_EARRING] < EARRING_RATE
    out[:, col["Wearing_Necklace"]] = ident_u[:, U_NECKLACE] < NECKLACE_RATE
    out[:, col["Gray_Hair"]] = (hair_category(rendered) == 3) & (ident_u[:, U_OTHER_KIND] < GRAY_OF_OTHER)
    out[:, col["Goatee"]] = beard & goatee_style
    out[:, col["Sideburns"]] = beard & ~goatee_style
    out[:, col["Wearing_Lipstick"]] = ~r["Male"]
    return out


def rendered_from_celeba(attrs40: np.ndarray) -> np.ndarray:
    """(B, 40) {0,1} -> (B, 14) in :data:`RENDERED_ATTRS` order (the columns the renderer reads)."""
    attrs40 = np.asarray(attrs40)
    if attrs40.ndim != 2 or attrs40.shape[1] != len(CELEBA_ATTRS):
        raise ValueError(f"attrs must be (B, 40) in CELEBA_ATTRS order, got {attrs40.shape}")
    return attrs40[:, [CELEBA_ATTRS.index(n) for n in RENDERED_ATTRS]].astype(np.uint8)
