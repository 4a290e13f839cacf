"""Small line plots (PNG, drawn with Pillow) for the binary benchmark: FD vs sampling steps, reconstruction
FD vs number of bits. No plotting library is needed; files are written atomically."""

from __future__ import annotations

import math
from pathlib import Path

PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _scale(lo: float, hi: float, a: float, b: float, log: bool):
    """Map values in [lo, hi] (log2 when ``log``) linearly to pixels [a, b]."""
    f = math.log2 if log else float
    lo_, hi_ = f(lo), f(hi)
    span = (hi_ - lo_) or 1.0
    return lambda v: a + (f(v) - lo_) / span * (b - a)


def line_plot(series: dict[str, tuple[list[float], list[float]]], path: str | Path, title: str, xlabel: str,
              ylabel: str, hlines: dict[str, float] | None = None, logx: bool = True,
              size: tuple[int, int] = (640, 420)) -> Path:
    """Plot ``series`` ({label: (xs, ys)}; None values are skipped) and dashed horizontal ``hlines``
    ({label: y}) to a PNG at ``path``; x ticks at the union of the xs (log2 axis when ``logx``)."""
    from PIL import Image, ImageDraw

    from latent4d.fileio import atomic_path

    hlines = {k: v for k, v in (hlines or {}).items() if v is not None}
    pts = {k: [(x, y) for x, y in zip(*xy, strict=True) if y is not None] for k, xy in series.items()}
    xs = sorted({x for p in pts.values() for x, _ in p})
    ys = [y for p in pts.values() for _, y in p] + list(hlines.values())
    W, H = size
    left, right, top, bottom = 70, W - 190, 36, H - 50
    y_lo, y_hi = min(ys) * 0.95, max(ys) * 1.05
    sx, sy = _scale(xs[0], xs[-1], left, right, logx), _scale(y_lo, y_hi, bottom, top, False)
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    d.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    d.text((left, 4), title, fill=(0, 0, 0))
    d.text(((left + right) // 2 - 30, H - 22), xlabel, fill=(0, 0, 0))
    d.text((6, top - 16), ylabel, fill=(0, 0, 0))
    for x in xs:
        d.line([(sx(x), bottom), (sx(x), bottom + 4)], fill=(0, 0, 0))
        d.text((sx(x) - 8, bottom + 8), f"{x:g}", fill=(0, 0, 0))
    for i in range(5):
        v = y_lo + (y_hi - y_lo) * i / 4
        d.line([(left - 4, sy(v)), (left, sy(v))], fill=(0, 0, 0))
        d.text((8, sy(v) - 6), f"{v:.1f}", fill=(0, 0, 0))
    legend = [(k, PALETTE[i % len(PALETTE)], False) for i, k in enumerate(pts)]
    legend += [(k, PALETTE[(len(pts) + i) % len(PALETTE)], True) for i, k in enumerate(hlines)]
    for k, colour, dashed in legend:
        if dashed:
            y = sy(hlines[k])
            for x0 in range(left, right, 12):
                d.line([(x0, y), (min(x0 + 6, right), y)], fill=colour, width=2)
        else:
            p = [(sx(x), sy(y)) for x, y in pts[k]]
            if len(p) > 1:
                d.line(p, fill=colour, width=2)
            for u, v in p:
                d.ellipse([u - 3, v - 3, u + 3, v + 3], fill=colour)
    for i, (k, colour, dashed) in enumerate(legend):
        y = top + 6 + 16 * i
        d.line([(right + 10, y + 6), (right + 30, y + 6)], fill=colour, width=1 if dashed else 3)
        d.text((right + 36, y), k[:30], fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
