"""SynthFaces geometry and shading: one tensor function from (identity uniforms, attributes).

Shapes are signed distance functions (SDFs) in a face-local frame (x right, y down, the image
spans [-1, 1]); pixel coverage is the hard-edged ``clamp(0.5 - d / px, 0, 1)`` (no colour leaks
outside a part, unlike sigmoid tails). Layers are composited front to back, each only inside its
window (synth_raster: union over the batch of the part's image-space box); each layer's visible
coverage goes to its class, which gives the label map (class with the largest total visible
coverage, face-parsing.PyTorch order of :mod:`faceedit_bench.parts`) and, if asked, the soft
masks (B, 19, H, W). Symmetric parts are computed once on |x| and split into l_/r_ by the sign
of x (l_ = image left). Strokes are at least 1.3 px wide, so no part is thinner than a pixel.

Locality by construction (issue 3): nothing an attribute changes is coloured from anything another
attribute changes, except as allowed by the AR table (parts.AR_TABLE). In particular beard,
mustache and eyebrows have their *own* facial-hair colour factor (not the hair colour), the nose,
ears, neck and lips are not paled by Pale_Skin, lenses are clear (only frames are eye_g), and
shading depends only on identity geometry. Windows depend on identity factors only, so a
counterfactual runs the same float operations as its source on every pixel it does not change.
"""
from __future__ import annotations

import math

import torch

from ..parts import PART_INDEX
from .synth_raster import (
    Compositor, Frame, band, bump, cov_of, ellipse, labels_from_soft, rbox, segment, step, union,
)

__all__ = ["render_tensors", "labels_from_soft"]

P = PART_INDEX

# attribute column order = synth_factors.RENDERED_ATTRS
(A_BALD, A_BANGS, A_BLACK, A_BLOND, A_BROWN, A_BUSHY, A_GLASSES, A_MALE, A_MOUTH, A_MUSTACHE,
 A_NOBEARD, A_PALE, A_YOUNG, A_SMILING) = range(14)

_GRAIN: dict = {}


def _lerp(a, b, t):
    return a + (b - a) * t


def _hsv(h, s, v):
    """(B,) hue/sat/value in [0,1] -> (B, 3) RGB."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=-1)
    f = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return v[:, None] * (1 - s[:, None] * f)


_CONST: dict = {}


def _c(*rgb, device=None):
    key = (rgb, str(device))
    if key not in _CONST:
        _CONST[key] = torch.tensor(rgb, dtype=torch.float32, device=device).view(1, 3)
    return _CONST[key]


def _grain_texture(res: int, device) -> torch.Tensor:
    """(2res, 2res) per-pixel hash noise in [-0.5, 0.5]; each face crops it at its own offset."""
    key = (res, str(device))
    if key not in _GRAIN:
        i = torch.arange(2 * res, device=device, dtype=torch.int64)
        h = i.view(1, -1) * 374761393 + i.view(-1, 1) * 668265263
        h = (h ^ (h >> 13)) * 1274126177 & 0xFFFFFFFF
        h = h ^ (h >> 16)
        _GRAIN[key] = (h & 0xFFFF).float() / 65535.0 - 0.5
    return _GRAIN[key]


def _grain(u: torch.Tensor, res: int) -> torch.Tensor:
    tex = _grain_texture(res, u.device)
    oy = (u[:, 18] * res).long().tolist()
    ox = (u[:, 56] * res).long().tolist()
    return torch.stack([tex[r:r + res, c:c + res] for r, c in zip(oy, ox)])


def render_tensors(u: torch.Tensor, a: torch.Tensor, res: int, soft: bool = False, full: bool = False):
    """Render B faces. ``u``: (B, 64) identity uniforms; ``a``: (B, 14) attributes in {0,1}.

    Returns (image (B,3,H,W) float in [0,1], labels (B,H,W) uint8, soft (B,19,H,W) visible
    coverage per class or None). ``full``: evaluate every layer on the whole image (reference
    for the windowed evaluation; same result up to float rounding).
    """
    b, dev = u.shape[0], u.device
    u = u.float()
    a = a.float()

    def s(i):  # per-sample scalar (B,1,1)
        return u[:, i].view(b, 1, 1)

    def at(i):
        return a[:, i].view(b, 1, 1)

    def rgb(c):  # (B,3) -> (B,3,1,1)
        return c.view(b, 3, 1, 1)

    def const(*c):
        return _c(*c, device=dev).view(1, 3, 1, 1)

    def anyv(t):
        return bool((t != 0).any())

    male, young, pale = at(A_MALE), at(A_YOUNG), at(A_PALE)
    old = 1 - young
    smile, mopen = at(A_SMILING), at(A_MOUTH)

    # ---- frame: per-sample similarity transform (identity) --------------------------------
    tx, ty = (s(5) - 0.5) * 0.1, 0.01 + (s(6) - 0.5) * 0.06
    ang = (s(7) - 0.5) * math.radians(14)
    scale = 1.12 + 0.16 * s(8)
    fr = Frame(res, tx, ty, ang, scale, _grain(u, res), full=full)
    inv_px = scale * res / 2.0            # 1 / (pixel size in local units)
    px = 1.0 / inv_px

    def cov(d):
        return cov_of(d, inv_px)

    def minw(w):  # stroke width of at least 1.3 px
        return torch.maximum(w, 1.3 * px)

    # ---- identity geometry -------------------------------------------------------------
    rx = 0.37 + 0.05 * s(9)
    ry = 0.48 + 0.06 * s(10)
    taper = (0.36 + 0.1 * s(11)) * (1 - male) + (0.16 + 0.08 * s(11)) * male   # Male: wider jaw
    ey = -0.02 + 0.04 * s(14)
    ex = 0.15 + 0.035 * s(15)
    erx = 0.068 + 0.018 * s(16)
    ery = 0.034 + 0.01 * s(16)
    by = ey - 0.095 - 0.015 * s(21)
    ny = 0.13 + 0.05 * s(22)
    nw = 0.06 + 0.03 * s(23)
    my = ny + 0.12 + 0.03 * s(24)
    mw0 = 0.105 + 0.035 * s(25)
    tu = 0.028 + 0.014 * s(26)
    tl = 0.036 + 0.016 * s(26)
    ear_y = ey + 0.05 + 0.03 * s(29)
    ear_rx = 0.05 + 0.015 * s(28)
    ear_ry = 0.1 + 0.025 * s(28)
    ecx = rx * 0.97
    neck_w = 0.15 + 0.04 * s(62)
    cr = rx * 1.02                        # cranium radius; centre (0, -0.12)
    vol_f = 0.045 + 0.055 * s(31)         # hair volume: women / men
    vol = vol_f * (1 - male) + (0.035 + 0.03 * s(31)) * male
    hair_len_f = 0.35 + 0.6 * s(30)
    hair_len = hair_len_f * (1 - male) + (-0.05 + 0.2 * s(63)) * male
    part_x = (s(32) - 0.5) * 0.12
    vol = torch.maximum(vol, 1.6 * px)    # never thinner than the cranium edge pixel
    vol_max = torch.maximum(vol_f, 1.6 * px)
    has_hat = (s(0) < 0.08).float()
    has_earring = (s(1) < 0.25).float()
    has_necklace = (s(2) < 0.15).float()
    gray_kind = (s(3) < 0.5).float()
    goatee = (s(4) < 0.3).float()
    brim_y = -0.29 - 0.02 * s(41)
    hat_ry = 0.27 + 0.08 * s(41)
    gxr = erx + 0.035 + 0.012 * s(61)     # glasses lens half-size
    gyr = 0.07 + 0.02 * s(61)
    ft = minw(torch.full_like(rx, 0.022))  # glasses frame width
    bxc = ex + 0.005                      # brow centre x, half length (Bushy: 1.12x)
    bl0 = 0.085 + 0.01 * s(20)
    arch = 0.015 + 0.03 * s(19)
    wl = torch.maximum(torch.full_like(rx, 0.011), 0.55 * px)   # wrinkle line half width
    ring_rx = torch.maximum(0.024 + 0 * rx, 0.8 * px)
    ring_ry = torch.maximum(0.03 + 0 * rx, 0.8 * px)
    nk_w = minw(torch.full_like(rx, 0.024)) / 2
    hbw = rx + vol + 0.05                 # back hair half width

    # ---- windows: local boxes (x0, x1, y0, y1) from identity only, 0.02 slack -------------
    def sym(hx, y0, y1, e=0.02):
        return (-hx - e, hx + e, y0 - e, y1 + e)

    ear_x1 = ecx + torch.maximum(ear_rx, 0.028 + px)
    ear_y1 = ear_y + ear_ry + 0.05 + px
    W = fr.windows({
        "hat": sym(cr + 0.14, brim_y - 0.1 - hat_ry, brim_y + 0.04),
        "glass": sym(torch.maximum(ex + gxr, rx * 0.76) + ft, ey - gyr - ft, ey + gyr + ft),
        "bangs": (part_x * 0.3 - rx * 0.88 - 0.08, part_x * 0.3 + rx * 0.88 + 0.08, -0.34, -0.14),
        "nose": sym(nw, ey + 0.04, ny + 0.023),
        "must": sym(mw0 * 1.12, ny + 0.018, my + 0.045),
        "mouth": sym(mw0 * 1.2, my - tu - 0.07, my + 0.08 + tl),
        "eye": sym(ex + erx, ey - ery, ey + ery),
        "brow": sym(bxc + bl0 * 1.12, by - arch - 0.06 - 0.65 * px, by + 0.0475 + 0.65 * px),
        "ear_r": (ecx - ear_rx - 0.02, ear_x1 + 0.02, ear_y - ear_ry - 0.02, ear_y1 + 0.02),
        "ear_l": (-ear_x1 - 0.02, -ecx + ear_rx + 0.02, ear_y - ear_ry - 0.02, ear_y1 + 0.02),
        "cap": sym(cr + vol_max, -0.12 - cr - vol_max, ey - 0.07),
        "face": sym(cr, -0.12 - cr, ry),
        "fore": sym(0.2, -0.262 - wl, -0.184 + wl),
        "fold": sym(torch.maximum(nw + 0.01, mw0 + 0.035) + wl, ny - 0.015 - wl, my + 0.03 + wl),
        "crow": sym(ex + erx + 0.06 + wl, ey - 0.025 - wl, ey + 0.035 + wl),
        "bag": sym(ex + erx, ey + ery + 0.013 - wl, ey + ery + 0.028 + wl),
        "blush": sym(ex + 0.12, ny - 0.095, ny + 0.075),
        "beard": sym(cr, 0.03, ry),
        "neckl": sym(neck_w + 0.03, 0.6 - nk_w, 0.76 + nk_w),
        "cloth": (-1.4, 1.4, 0.58, 1.4),
        "neck": sym(neck_w, 0.2, 1.4),
        "hairb": sym(rx + vol_max + 0.05, -0.26, hair_len_f),
    })
    hair_w = union(W["bangs"], W["cap"], W["hairb"])
    skin_w = union(W["must"], W["face"])

    # ---- lighting and textures (identity only) ------------------------------------------
    la = s(52) * 2 * math.pi
    lstr = 0.25 + 0.45 * s(53)
    lx, ly = lstr * torch.cos(la), lstr * torch.sin(la) * 0.6 - 0.2
    lz = torch.sqrt((1 - lx * lx - ly * ly).clamp_min(0.1))
    ph1, ph2 = s(54) * 6.283, s(55) * 6.283

    def lambert(w, cx, cy, sx, sy):
        """Lambert shading of an ellipsoid bump centred (cx, cy) with radii (sx, sy)."""
        uu, vv = fr.affine(w, 1 / sx, 0, -cx / sx), fr.affine(w, 0, 1 / sy, -cy / sy)
        lin = fr.affine(w, lx / sx, ly / sy, -(cx * lx / sx + cy * ly / sy))
        nz = (1 - uu * uu).sub_(vv * vv).clamp_(0.0, 1.0).sqrt_()
        return lin.addcmul_(nz, lz).clamp_(0, 1)

    def blotch_fn(w):
        return (fr.wave(w, 23, 0, ph1) * fr.wave(w, 0, 19, -ph2) + 0.6 * fr.wave(w, 41, -37, ph2)
                + 0.4 * fr.wave(w, 67, 71, ph1))

    def hair_fn(w):
        # strands radiate from (part_x, -0.75); angle ~ dx / (dy + 2/pi |dx|) (atan-like, dy > 0 on hair)
        dx, g = fr.affine(w, 1, 0, -part_x), w.grain
        theta = dx / torch.add(fr.affine(w, 0, 1, 0.75), dx.abs(), alpha=2 / math.pi)
        strands = torch.sin(theta * (70 + 40 * s(33)) + 1.8 * torch.sin(theta * 9 + s(34) * 6.283) + g * 0.8)
        return 0.55 + 0.12 * strands + 0.55 * lambert(w, 0.0, -0.1, cr + 0.25, cr + 0.4) + 0.08 * g

    hats, rings = anyv(has_hat), anyv(has_earring)
    lam_w = [W[k] for k in ("glass", "nose", "must", "mouth", "eye", "brow", "face")]
    fr.field("face_lam", union(*lam_w, *([W["hat"]] if hats else []), *([W["ear_l"], W["ear_r"]] if rings else [])),
             lambda w: lambert(w, 0.0, -0.05, rx * 1.12, ry * 1.18))
    fr.field("blotch", union(*(W[k] for k in ("nose", "ear_l", "ear_r", "face", "neck")), *([W["hat"]] if hats else [])),
             blotch_fn)
    fr.field("hair_sh", hair_w, hair_fn)

    # ---- colours ------------------------------------------------------------------------
    tone = s(12).view(b, 1)
    skin = _lerp(_c(0.96, 0.80, 0.70, device=dev), _c(0.42, 0.27, 0.19, device=dev), tone ** 1.3)
    skin = skin + (s(13).view(b, 1) - 0.5) * _c(0.05, 0.0, -0.04, device=dev)
    skin_face = _lerp(skin, _c(0.98, 0.93, 0.91, device=dev), 0.6 * pale.view(b, 1))
    # hair colour: categories exclusive (black > blond > brown > other), shades from identity
    blk = a[:, A_BLACK:A_BLACK + 1]
    bln = a[:, A_BLOND:A_BLOND + 1] * (1 - blk)
    brn = a[:, A_BROWN:A_BROWN + 1] * (1 - blk) * (1 - bln)
    oth = 1 - blk - bln - brn
    c_black = _lerp(_c(0.05, 0.045, 0.045, device=dev), _c(0.13, 0.10, 0.09, device=dev), u[:, 35:36])
    c_blond = _lerp(_c(0.80, 0.65, 0.38, device=dev), _c(0.95, 0.85, 0.58, device=dev), u[:, 36:37])
    c_brown = _lerp(_c(0.30, 0.17, 0.08, device=dev), _c(0.46, 0.28, 0.14, device=dev), u[:, 37:38])
    c_gray = _lerp(_c(0.55, 0.55, 0.56, device=dev), _c(0.85, 0.85, 0.86, device=dev), u[:, 38:39])
    c_red = _lerp(_c(0.62, 0.22, 0.08, device=dev), _c(0.80, 0.40, 0.16, device=dev), u[:, 38:39])
    gk = gray_kind.view(b, 1)
    c_other = gk * c_gray + (1 - gk) * c_red
    hair_c = blk * c_black + bln * c_blond + brn * c_brown + oth * c_other
    hair_c = _lerp(hair_c, _c(0.74, 0.74, 0.75, device=dev), 0.45 * old.view(b, 1))   # Young=0: greyer
    # facial hair (beard, mustache, brows): its own colour factor, never the hair colour
    fk = u[:, 57:58]
    c_fac = torch.where(fk < 0.45, _c(0.10, 0.07, 0.06, device=dev),
                        torch.where(fk < 0.8, _c(0.27, 0.16, 0.09, device=dev), _c(0.55, 0.33, 0.15, device=dev)))
    c_fac = c_fac * (0.8 + 0.4 * u[:, 58:59])
    c_fac = _lerp(c_fac, _c(0.66, 0.66, 0.67, device=dev), 0.5 * old.view(b, 1))
    c_lip = _lerp(skin * _c(0.92, 0.62, 0.62, device=dev), _c(0.62, 0.12, 0.18, device=dev),
                  (0.35 + 0.45 * u[:, 27:28]) * (1 - male.view(b, 1)))
    c_iris = torch.where(u[:, 17:18] < 0.5, _c(0.25, 0.14, 0.07, device=dev),
                         torch.where(u[:, 17:18] < 0.8, _c(0.22, 0.38, 0.55, device=dev), _c(0.28, 0.42, 0.22, device=dev)))
    c_hat = _hsv(u[:, 39], 0.35 + 0.5 * u[:, 40], 0.25 + 0.6 * u[:, 40])
    c_cloth = _hsv(u[:, 44], 0.2 + 0.6 * u[:, 45], 0.2 + 0.7 * u[:, 45])
    c_bg1 = _hsv(u[:, 48], 0.15 + 0.35 * u[:, 51], 0.45 + 0.5 * u[:, 51])
    c_bg2 = _hsv(u[:, 49], 0.15 + 0.35 * u[:, 51], 0.25 + 0.5 * u[:, 51])
    c_metal = torch.where(u[:, 42:43] < 0.5, _c(0.86, 0.68, 0.24, device=dev), _c(0.80, 0.81, 0.86, device=dev))
    c_neckl = torch.where(u[:, 43:44] < 0.4, _c(0.93, 0.91, 0.86, device=dev),
                          torch.where(u[:, 43:44] < 0.7, _c(0.86, 0.68, 0.24, device=dev), _c(0.75, 0.76, 0.8, device=dev)))
    c_frame = torch.where(u[:, 59:60] < 0.5, _c(0.06, 0.06, 0.07, device=dev),
                          torch.where(u[:, 59:60] < 0.8, _c(0.32, 0.18, 0.08, device=dev), _c(0.70, 0.60, 0.35, device=dev)))

    comp = Compositor(fr, soft)
    bald = at(A_BALD)
    bald_cut = -0.12

    def bald_clip(d, y):  # Bald removes hair above the temples (keeps side hair)
        return torch.maximum(d, (bald_cut - y) * bald - 10 * (1 - bald))

    # ---- hat ----------------------------------------------------------------------------
    w = W["hat"]
    if hats and not w.empty:
        x, y = w.x, w.y
        d_dome = torch.maximum(ellipse(x, y - (brim_y - 0.1), cr + 0.07, hat_ry), y - brim_y)
        d_hat = torch.minimum(d_dome, ellipse(x, y - brim_y, cr + 0.14, 0.04))
        band_ = step(y - (brim_y - 0.07)) * step((brim_y - 0.035) - y)
        vis = comp.layer(w, cov(d_hat) * has_hat, rgb(c_hat),
                         shade=(0.75 + 0.25 * w.face_lam + 0.05 * w.blotch) * (1 - 0.35 * band_))
        comp.label(w, vis, P["hat"])

    # ---- eyeglasses: frames only (clear lenses), label eye_g ------------------------------
    w = W["glass"]
    if anyv(at(A_GLASSES)) and not w.empty:
        x, y, ax = w.x, w.y, w.ax
        round_g = (s(60) < 0.5).float()
        d_lens_e = ellipse(ax - ex, y - ey, gxr, gyr)
        d_lens_r = rbox((ax - ex).abs_() - (gxr - 0.03), (y - ey).abs_() - (gyr - 0.03), 0.03)
        d_lens = round_g * d_lens_e + (1 - round_g) * d_lens_r
        gyb = ey - 0.02
        d_frame = d_lens.abs_() - ft / 2
        yb = (y - gyb).abs_() - ft / 2
        d_bridge = torch.maximum(yb, ax - (ex - gxr + 0.01))
        d_arm = torch.maximum(torch.maximum(yb, (ex + gxr - 0.01) - ax), ax - rx * 0.76)
        d_g = torch.minimum(torch.minimum(d_frame, d_bridge), d_arm)
        vis = comp.layer(w, cov(d_g) * at(A_GLASSES), rgb(c_frame), shade=0.8 + 0.4 * w.face_lam)
        comp.label(w, vis, P["eye_g"])

    # ---- bangs (front hair over the forehead) -------------------------------------------
    w = W["bangs"]
    if anyv(at(A_BANGS)) and not w.empty:
        x, y = w.x, w.y
        win = ellipse(x - part_x * 0.3, y - 0.05, rx * 0.88, 0.33)          # forehead window
        fringe = -0.175 + 0.014 * fr.wave(w, 48, 0, ph1)
        d_bangs = bald_clip(torch.maximum(win - 0.04, y - fringe), y)
        vis = comp.layer(w, cov(d_bangs) * at(A_BANGS), rgb(hair_c), shade=w.hair_sh)
        comp.accumulate(w, vis, P["hair"])

    # ---- nose -------------------------------------------------------------------------
    w = W["nose"]
    if not w.empty:
        x, y, ax = w.x, w.y, w.ax
        tn = ((y - ey) / (ny - ey)).clamp_(0, 1)
        tn2 = tn * tn
        d_bridge_n = torch.maximum(torch.maximum(ax - (0.022 + (nw - 0.022) * tn2), ey + 0.04 - y), y - ny)
        d_nose = torch.minimum(d_bridge_n, ellipse(x, y - (ny - 0.015), nw, 0.038))
        q1, q2 = (ax - nw * 0.55) / 0.028, (y - ny - 0.005) / 0.017
        nostril = bump(q1 * q1 + q2 * q2)
        q3 = (ax - 0.025 - (nw - 0.03) * tn) / 0.017
        side = bump(q3 * q3) * step(ny - 0.02 - y)
        vis = comp.layer(w, cov(d_nose), rgb(skin),
                         shade=w.face_lam * 0.45 + 0.6 - 0.45 * nostril - 0.12 * side + 0.05 * w.blotch)
        comp.label(w, vis, P["nose"])

    # ---- mustache (skin class, own facial-hair colour) ---------------------------------------
    w = W["must"]
    if anyv(at(A_MUSTACHE)) and not w.empty:
        x, y, ax = w.x, w.y, w.ax
        q = ax / mw0
        q = q * q
        d_mst = torch.maximum(band(y, ny + 0.018 + 0.03 * q, my - 0.012 + 0.045 * q), ax - mw0 * 1.12)
        vis = comp.layer(w, cov(d_mst) * at(A_MUSTACHE), rgb(c_fac),
                         shade=0.8 + 0.2 * torch.sin(x * 160 + w.grain) + 0.2 * w.face_lam)
        comp.accumulate(w, vis, P["skin"])

    # ---- mouth: lips and the gap ----------------------------------------------------------
    w = W["mouth"]
    if not w.empty:
        x, y, ax = w.x, w.y, w.ax
        mw = mw0 * (1 + 0.2 * smile)
        tt = (ax / mw).clamp_(max=1.0)
        tt2 = tt * tt
        prof = (1 - tt2).clamp_min_(0).sqrt_()
        ym = my - (0.065 * smile + 0.004) * tt2 + 0.014 * smile * (1 - tt2)
        gap = (0.05 + 0.012 * smile) * mopen * prof
        xb = x / 0.035
        bow = 0.008 * bump(xb * xb)
        side_ = ax - mw
        d_ul = torch.maximum(band(y, ym - tu * prof + bow, ym), side_)
        d_gap = torch.maximum(band(y, ym, ym + gap), side_)
        d_ll = torch.maximum(band(y, ym + gap, ym + gap + tl * prof), side_)
        lip_sh = 0.75 + 0.3 * w.face_lam
        comp.label(w, comp.layer(w, cov(d_ul), rgb(c_lip), shade=lip_sh * 0.9), P["u_lip"])
        ql = (y - ym - gap - tl * 0.4 * prof) / 0.014
        comp.label(w, comp.layer(w, cov(d_ll), rgb(c_lip), shade=lip_sh * (1.05 + 0.1 * bump(ql * ql))),
                   P["l_lip"])
        c_gap = cov(d_gap)
        v = comp.layer(w, c_gap * (cov(y - (ym + 0.45 * gap)) * smile), const(0.88, 0.86, 0.8))   # teeth
        v = v + comp.layer(w, c_gap, const(0.22, 0.05, 0.06))
        comp.label(w, v, P["mouth"])

    # ---- eyes ---------------------------------------------------------------------------
    w = W["eye"]
    if not w.empty:
        y, axe = w.y, w.ax - ex
        ye = y - ey
        ce = cov(ellipse(axe, ye, erx, ery))
        ir = ery * 0.95
        lid = cov(y - (ey - ery * (0.45 - 0.25 * (1 - male))))          # women: thicker liner
        v = comp.layer(w, torch.minimum(ce, cov(ellipse(axe, ye, ir * 0.45, ir * 0.45))), const(0.03, 0.03, 0.03))
        v = v + comp.layer(w, torch.minimum(ce, lid), const(0.12, 0.08, 0.07))
        v = v + comp.layer(w, torch.minimum(ce, cov(ellipse(axe, ye, ir, ir))), rgb(c_iris))
        v = v + comp.layer(w, ce, const(0.90, 0.88, 0.85), shade=0.75 + 0.25 * w.face_lam)
        comp.label(w, v, P["l_eye"], split=True)

    # ---- eyebrows (own facial-hair colour); Bushy: thicker, longer, denser --------------------
    w = W["brow"]
    if not w.empty:
        x, y, ax = w.x, w.y, w.ax
        bushy = at(A_BUSHY)
        bl = bl0 * (1 + 0.12 * bushy)
        dx = ax - bxc
        tb = (dx / bl).clamp(-1, 1)
        ybc = by - arch * (1 - tb * tb) - 0.012 * bushy
        thick = (0.036 + 0.014 * male) * (1 + 0.9 * bushy) * (1 - 0.35 * (dx / bl).clamp_(0, 1))
        d_brow = torch.maximum((y - ybc).abs_() - minw(thick) / 2, dx.abs() - bl)
        alpha = 0.75 + 0.2 * bushy      # brow hair over skin
        vis = comp.layer(w, cov(d_brow), rgb(c_fac),
                         shade=alpha * ((0.95 - 0.35 * bushy) + 0.15 * fr.wave(w, 140, 40)))
        comp.paint(w, vis * (1 - alpha) * w.face_lam, rgb(skin))
        comp.label(w, vis, P["l_brow"], split=True)

    # ---- earrings and ears (one window per side) ------------------------------------------
    for side_name in ("ear_l", "ear_r"):
        w = W[side_name]
        if w.empty:
            continue
        ax, y = w.ax, w.y
        side_ok = w.left if side_name == "ear_l" else 1 - w.left   # windows may overlap at low res
        if rings:
            d_ering = ellipse(ax - (ecx + 0.004), y - (ear_y + ear_ry + 0.02), ring_rx, ring_ry)
            vis = comp.layer(w, cov(d_ering) * (has_earring * side_ok), rgb(c_metal),
                             shade=0.75 + 0.5 * w.face_lam)
            comp.label(w, vis, P["ear_r"])
        q1, q2 = (ax - ecx - 0.008) / (ear_rx * 0.7), (y - ear_y) / (ear_ry * 0.75)
        inner = bump(q1 * q1 + q2 * q2)
        vis = comp.layer(w, cov(ellipse(ax - ecx, y - ear_y, ear_rx, ear_ry)) * side_ok, rgb(skin),
                         shade=0.78 - 0.2 * inner + 0.08 * w.blotch)
        comp.label(w, vis, P["l_ear"], split=True)

    # ---- cap hair (in front of the head skin, behind the ears) ----------------------------
    w = W["cap"]
    if not w.empty:
        x, y = w.x, w.y
        win = ellipse(x - part_x * 0.3, y - 0.05, rx * 0.88, 0.33)
        d_cap = torch.maximum(torch.maximum(ellipse(x, y + 0.12, cr + vol, cr + vol), -win), y - (ey - 0.07))
        vis = comp.layer(w, cov(bald_clip(d_cap, y)), rgb(hair_c), shade=w.hair_sh)
        comp.accumulate(w, vis, P["hair"])

    # ---- head skin: face + cranium, with wrinkles, beard, blush ------------------------------
    wf = W["face"]
    if not wf.empty:
        wr = torch.zeros_like(comp.t)      # wrinkle strength (old / smile), zero outside its windows

        def line(dist):  # a soft dark line profile, (1 - (d/w)^2)^2 on |d| < w (cheaper than exp)
            q = dist / wl
            return bump(q * q)

        if anyv(old):
            w = W["fore"]
            if not w.empty:
                x, y = w.x, w.y
                fore = sum(line(y - (-0.19 - 0.033 * k) - 0.006 * fr.wave(w, 25, 0, float(k))) for k in range(3))
                wr[w.s] += old * 0.24 * fore * step(0.2 - w.ax)
            w = W["crow"]
            if not w.empty:
                ax, y = w.ax, w.y
                crow = line(segment(ax, y, ex + erx + 0.012, ey, ex + erx + 0.06, ey - 0.025)) + line(
                    segment(ax, y, ex + erx + 0.012, ey + 0.01, ex + erx + 0.06, ey + 0.035))
                wr[w.s] += old * 0.3 * crow
            w = W["bag"]
            if not w.empty:
                ax, y = w.ax, w.y
                q = ((ax - ex) / erx).clamp_(-1, 1)
                bag = line(y - (ey + ery + 0.028 - 0.015 * (1 - q * q))) * step(erx - (ax - ex).abs_())
                wr[w.s] += old * 0.25 * bag
        w = W["fold"]
        if (anyv(old) or anyv(smile)) and not w.empty:
            fold = line(segment(w.ax, w.y, nw + 0.01, ny - 0.015, mw0 + 0.035, my + 0.03))
            wr[w.s] += (old * 0.32 + smile * 0.35) * fold
        beard = torch.zeros_like(comp.t)
        w = W["beard"]
        has_beard = (1 - at(A_NOBEARD))
        if anyv(has_beard) and not w.empty:
            ax, y = w.ax, w.y
            q = ax / rx
            beard_full = ((y - (0.05 + 0.14 * (1 - q * q))) / 0.03).clamp_(0, 1)
            beard_goat = ((y - (my + 0.045)) / 0.02).clamp_(0, 1) * ((0.12 - ax) / 0.02).clamp_(0, 1)
            beard[w.s] = (goatee * beard_goat + (1 - goatee) * beard_full) * has_beard * (0.85 + 0.15 * w.grain)
        x, y = wf.x, wf.y
        q = (y / ry).clamp(0, 1)
        xj = x / (1 - taper * (q * q))
        d_face = torch.minimum(ellipse(xj, y, rx, ry), ellipse(x, y + 0.12, cr, cr))
        skin_sh = (0.5 + 0.55 * wf.face_lam) * (1 + 0.035 * wf.blotch + 0.05 * wf.grain) * (1 - wr[wf.s])
        nobeard = 1 - beard[wf.s]
        vis = comp.layer(wf, cov(d_face), rgb(skin_face), shade=nobeard * skin_sh)
        comp.accumulate(wf, vis, P["skin"])
        w = W["blush"].inter(wf)
        if anyv(1 - male) and not w.empty:
            q1, q2 = (w.ax - ex - 0.01) / 0.11, (w.y - ny + 0.01) / 0.085
            blush = bump(q1 * q1 + q2 * q2) * (1 - male)
            comp.paint(w, wf.crop(vis, w) * wf.crop(nobeard, w) * blush * 0.12, const(0.6, -0.25, -0.2))
        w = W["beard"].inter(wf)
        if anyv(has_beard) and not w.empty:
            sh = 0.75 + 0.25 * w.face_lam + 0.3 * torch.sin(w.x * 130 + w.y * 60 + w.grain)
            comp.paint(w, wf.crop(vis, w) * beard[w.s] * sh, rgb(c_fac))
    comp.label_acc(skin_w, P["skin"])

    # ---- necklace, cloth, neck --------------------------------------------------------------
    w = W["neckl"]
    if anyv(has_necklace) and not w.empty:
        x, y, ax = w.x, w.y, w.ax
        q = (ax / neck_w).clamp(max=1)
        nk_y = 0.6 + 0.16 * (1 - q * q)
        d_nk = torch.maximum((y - nk_y).abs_() - nk_w, ax - neck_w - 0.03)
        vis = comp.layer(w, cov(d_nk) * has_necklace, rgb(c_neckl), shade=0.8 + 0.25 * fr.wave(w, 90, 0, cos=True))
        comp.label(w, vis, P["neck_l"])
    w = W["cloth"]
    if not w.empty:
        x, y, ax = w.x, w.y, w.ax
        vneck = (s(46) < 0.5).float()
        d_cl = ellipse(x, y - 1.2, 1.05 + 0.1 * s(45), 0.6)
        d_v = (y - (1.0 - 1.6 * ax)) / math.sqrt(1 + 1.6 ** 2)
        d_round = ellipse(x, y - 0.74, neck_w + 0.05, 0.13)
        d_cloth = torch.maximum(d_cl, -(vneck * d_v + (1 - vneck) * d_round))
        stripes = (s(47) < 0.3).float() * step(fr.wave(w, 0, 60) - 0.3)
        shade = (0.8 + 0.25 * (-fr.gx[..., w.c0:w.c1] * torch.cos(la) * lstr) + 0.04 * w.grain
                 - 0.25 * stripes + 0.1 * fr.wave(w, 9, 4))
        comp.label(w, comp.layer(w, cov(d_cloth), rgb(c_cloth), shade=shade), P["cloth"])
    w = W["neck"]
    if not w.empty:
        x, y, ax = w.x, w.y, w.ax
        d_neck = torch.maximum(ax - neck_w, 0.2 - y)
        q = (ax / neck_w).clamp(max=1)
        neck_sh = 0.55 + 0.3 * ((y - (ry + 0.02)) / 0.25).clamp_(0, 1) - 0.1 * (q * q)
        comp.label(w, comp.layer(w, cov(d_neck), rgb(skin), shade=neck_sh + 0.03 * w.blotch), P["neck"])

    # ---- back hair (behind head and neck) ----------------------------------------------------
    w = W["hairb"]
    if not w.empty:
        y, ax = w.y, w.ax
        qx2 = ax - (hbw - 0.12)
        qy2 = (y - (hair_len - 0.15) / 2).abs_() - ((hair_len + 0.15) / 2 - 0.12).clamp_min(0.01)
        d_hb = bald_clip(rbox(qx2, qy2, 0.12), y)
        vis = comp.layer(w, cov(d_hb), rgb(hair_c), shade=w.hair_sh * 0.8)
        comp.accumulate(w, vis, P["hair"])
    comp.label_acc(hair_w, P["hair"])

    # ---- background (covers what is left) -------------------------------------------------------
    bga = s(50) * 6.283
    gx, gy = fr.gx, fr.gy
    tb_ = (0.5 + 0.5 * (gx * torch.cos(bga) + gy * torch.sin(bga))).clamp_(0, 1)
    bg_sh = 0.04 * fr.fields["grain"] + (1 + 0.05 * torch.sin(gx * 5 + ph1) * torch.sin(gy * 4 + ph2))
    vis = comp.t.clone()
    wb = vis * bg_sh
    comp.paint(fr.all, wb * (1 - tb_), rgb(c_bg1))
    comp.paint(fr.all, wb * tb_, rgb(c_bg2))
    comp.label(fr.all, vis, P["background"])

    light = 1.0 + 0.16 * lstr * (gx * torch.cos(la) + gy * torch.sin(la))   # image-space gradient
    img = comp.img.mul_(light[:, None]).clamp_(0, 1)
    return img, comp.labels(), comp.soft
