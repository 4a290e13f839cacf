"""Pictures for ``latent4d demo``: subjects cropped to what they show (no empty bands), labelled panels in a
framed grid with a title. Images are (H, W, 3) uint8 arrays, white background; files go through
:func:`latent4d.render.save_png` (atomic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

BACKGROUND = 255
LABEL_H = 22
TITLE_H = 30


def read_png(path: str | Path) -> np.ndarray:
    """A PNG as an (H, W, 3) uint8 array."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def trim(image: np.ndarray, margin: int = 8, tol: int = 12) -> np.ndarray:
    """Crop ``image`` (H, W, 3) to the box of pixels that differ from the white background by more than
    ``tol``, plus ``margin`` pixels; an empty image is returned unchanged."""
    ink = np.any(np.abs(image.astype(np.int16) - BACKGROUND) > tol, axis=-1)
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if not len(rows):
        return image
    r0, r1 = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, image.shape[0])
    c0, c1 = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, image.shape[1])
    return image[r0:r1, c0:c1]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _fit(image: np.ndarray, w: int, h: int):
    """``image`` scaled to fit (w, h) without distortion, centred on a white (w, h) canvas (PIL image)."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image))
    s = min(w / im.width, h / im.height)
    im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (w, h), (BACKGROUND,) * 3)
    canvas.paste(im, ((w - im.width) // 2, (h - im.height) // 2))
    return canvas


def panel_grid(
    images: list[np.ndarray],
    labels: list[str],
    path: str | Path,
    title: str = "",
    cols: int = 4,
    cell: int = 260,
    crop: bool = True,
) -> Path:
    """Write ``images`` as a grid of framed, labelled panels (``cell`` pixels tall; width follows the
    images' median aspect ratio) under a ``title`` bar; ``crop`` trims each image to its subject first."""
    from PIL import Image, ImageDraw

    from latent4d.render import save_png

    if len(images) != len(labels) or not images:
        raise ValueError(
            f"panel_grid needs one label per image, got {len(images)} images, {len(labels)} labels"
        )
    ims = [trim(im) if crop else im for im in images]
    aspect = float(np.clip(np.median([im.shape[1] / im.shape[0] for im in ims]), 0.5, 2.5))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max(int(measure.textlength(label, font=_font(13))) for label in labels) + 10
    cw, ch = max(int(cell * aspect), label_w), cell  # every label fits inside its panel
    cols = max(1, min(cols, len(ims)))
    rows = -(-len(ims) // cols)
    top = TITLE_H if title else 0
    width = cols * (cw + 6) + 6
    if title:  # the title fits on the sheet
        width = max(width, int(measure.textlength(title, font=_font(16))) + 16)
    sheet = Image.new("RGB", (width, top + rows * (ch + LABEL_H + 6) + 6), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((8, 6), title, fill=(0, 0, 0), font=_font(16))
    for i, (im, label) in enumerate(zip(ims, labels)):
        r, c = divmod(i, cols)
        x, y = 6 + c * (cw + 6), top + 6 + r * (ch + LABEL_H + 6)
        sheet.paste(_fit(im, cw, ch), (x, y))
        draw.rectangle([x - 1, y - 1, x + cw, y + ch + LABEL_H], outline=(150, 150, 150))
        draw.text((x + 4, y + ch + 3), label, fill=(20, 20, 20), font=_font(13))
    return save_png(np.asarray(sheet), path)
