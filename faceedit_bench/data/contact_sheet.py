"""SynthFaces contact sheet: faces with their label maps, and one column per attribute flip.

Top block: ``n_faces`` faces, each above its 19-class label map. Bottom block: for a few
identities (a young woman, a bearded man, an older person, someone with glasses), the source and
then the counterfactual of every single-attribute flip (header: +attr turns it on, -attr off).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: label-map palette (class order of parts.PARTS), CelebAMask-HQ-like colours
PALETTE = np.array([
    [0, 0, 0], [204, 153, 128], [120, 70, 30], [150, 90, 40], [40, 90, 220], [60, 140, 255],
    [255, 255, 0], [230, 120, 170], [255, 160, 200], [255, 0, 255], [240, 90, 60], [60, 0, 0],
    [220, 0, 60], [150, 0, 40], [130, 200, 130], [0, 255, 255], [40, 110, 50], [90, 60, 20],
    [160, 80, 220]], dtype=np.uint8)


def colorize(labels: np.ndarray) -> np.ndarray:
    """(..., H, W) class ids -> (..., H, W, 3) uint8 colours."""
    return PALETTE[np.asarray(labels, dtype=np.int64)]


def _pick_identities(attrs40: np.ndarray) -> list[int]:
    from ..protocol import CELEBA_ATTRS

    col = {n: attrs40[:, CELEBA_ATTRS.index(n)].astype(bool) for n in CELEBA_ATTRS}
    no_hat = ~col["Wearing_Hat"]
    wants = [~col["Male"] & col["Young"] & no_hat & ~col["Eyeglasses"],
             col["Male"] & ~col["No_Beard"] & no_hat,
             ~col["Young"] & no_hat,
             col["Eyeglasses"] & no_hat,
             col["Male"] & col["Young"] & col["No_Beard"] & no_hat]
    picked: list[int] = []
    for w in wants:
        for i in np.flatnonzero(w):
            if int(i) not in picked:
                picked.append(int(i))
                break
    return picked


def render_contact_sheet(seed: int = 0, res: int = 128, n_faces: int = 30, cols: int = 15) -> np.ndarray:
    """The sheet as an (H, W, 3) uint8 array."""
    from PIL import Image, ImageDraw

    from .synthfaces import RENDERED_ATTRS, flip_targets, render_batch, sample_attrs, to_uint8

    pad, head = 4, 14
    src = render_batch(seed, np.arange(n_faces), res, soft=False)
    faces, labs = to_uint8(src["image"]), colorize(src["labels"].numpy())
    rows_top = (n_faces + cols - 1) // cols
    ids = _pick_identities(sample_attrs(seed, np.arange(200)))
    n_flip_cols = 1 + len(RENDERED_ATTRS)
    width = max(cols, n_flip_cols) * (res + pad) + pad
    top_h = rows_top * (2 * res + pad) + pad
    bot_h = head + len(ids) * (res + pad) + pad
    sheet = Image.new("RGB", (width, top_h + head + bot_h), (255, 255, 255))
    for k in range(n_faces):
        r, c = divmod(k, cols)
        x, y = pad + c * (res + pad), pad + r * (2 * res + pad)
        sheet.paste(Image.fromarray(faces[k]), (x, y))
        sheet.paste(Image.fromarray(labs[k]), (x, y + res))
    draw = ImageDraw.Draw(sheet)
    y0 = top_h + head
    draw.text((pad, top_h + 1), "source", fill=(0, 0, 0))
    sel = render_batch(seed, ids, res, soft=False)
    tg = flip_targets(sel["attrs"].numpy())
    sel_img = to_uint8(sel["image"])
    for j, name in enumerate(RENDERED_ATTRS):
        x = pad + (j + 1) * (res + pad)
        short = name.replace("_Hair", "").replace("Mouth_Slightly_Open", "Mouth_Open").replace("_Eyebrows", "_Brows")
        draw.text((x, y0 - head + 2), short[: max(4, res // 6)], fill=(0, 0, 0))
    for i in range(len(ids)):
        y = y0 + 2 + i * (res + pad)
        sheet.paste(Image.fromarray(sel_img[i]), (pad, y))
    for j, name in enumerate(RENDERED_ATTRS):
        cf = render_batch(seed, ids, res, attrs=tg[name], soft=False)
        cf_img = to_uint8(cf["image"])
        on = tg[name][:, RENDERED_ATTRS.index(name)]
        for i in range(len(ids)):
            x, y = pad + (j + 1) * (res + pad), y0 + 2 + i * (res + pad)
            sheet.paste(Image.fromarray(cf_img[i]), (x, y))
            draw.text((x + 2, y + res - 12), "+" if on[i] else "-", fill=(255, 255, 255))
    return np.asarray(sheet)


def write_contact_sheet(path, seed: int = 0, res: int = 128) -> Path:
    """Render the contact sheet and write it as PNG (atomically)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    Image.fromarray(render_contact_sheet(seed=seed, res=res)).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
