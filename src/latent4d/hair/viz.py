"""Hair rendering helpers: strands as Open3D line sets over the head, PNGs through ``latent4d.render``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latent4d.hair.scalp import Scalp
from latent4d.hair.strands import Hairstyle

ROOT_COLOR = np.array([0.06, 0.03, 0.015])
TIP_COLOR = np.array([0.32, 0.19, 0.08])


def hair_lineset(hairstyle: Hairstyle, max_strands: int | None = 4000, seed: int = 0, color=None,
                 points_per_strand: int | None = 34):
    """An Open3D LineSet of (a random subset of at most ``max_strands``) strands, root-to-tip shaded.

    Strands are resampled to ``points_per_strand`` for drawing (None keeps every point).
    """
    import open3d as o3d

    hs = hairstyle
    keep = np.flatnonzero(~hs.bald)
    if max_strands is not None and len(keep) > max_strands:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_strands, replace=False))
    sub = hs.subset(keep)
    if points_per_strand is not None and sub.num_points > sub.num_strands * points_per_strand:
        sub = sub.resample(points_per_strand)
    o = sub.offsets
    idx = np.arange(sub.num_points - 1)
    keep_e = np.ones(len(idx), bool)
    keep_e[o[1:-1] - 1] = False
    idx = idx[keep_e]
    lines = np.stack([idx, idx + 1], 1)
    pos = np.zeros(sub.num_points)
    for_strand = np.repeat(np.arange(sub.num_strands), sub.counts)
    pos = (np.arange(sub.num_points) - o[for_strand]) / np.maximum(sub.counts[for_strand] - 1, 1)
    if color is not None:
        cols = np.broadcast_to(np.asarray(color, np.float64), (sub.num_points, 3))
    elif sub.colors is not None:
        cols = sub.colors.astype(np.float64)
    else:
        cols = ROOT_COLOR[None] * (1 - pos[:, None]) + TIP_COLOR[None] * pos[:, None]
    ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(sub.points.astype(np.float64)),
                              o3d.utility.Vector2iVector(lines.astype(np.int32)))
    ls.colors = o3d.utility.Vector3dVector(np.ascontiguousarray(cols[lines[:, 0]]))
    return ls


def _frame(geoms, margin: float = 1.08, aspect: float = 1.0) -> dict:
    """Camera centre / radius framing the x-y extent of ``geoms`` in an image of ``aspect`` = width /
    height (the renderer's default uses the 3D diagonal, which leaves wide margins around hair)."""
    lo = np.min([g.get_min_bound() for g in geoms], 0)
    hi = np.max([g.get_max_bound() for g in geoms], 0)
    half = 0.5 * max(hi[1] - lo[1], (hi[0] - lo[0]) / aspect, 1e-3)
    return {"center": (lo + hi) / 2, "radius": float(half) * margin}


def render_hair(hairstyles: Hairstyle | list, path: str | Path, scalp: Scalp | None = None,
                max_strands: int = 3000, extra: list | None = None, azimuth: float = 30.0, elevation: float = 10.0,
                width: int = 640, height: int = 640, **kwargs) -> Path:
    """Render hairstyle(s) over the head mesh to a PNG (atomically). ``extra`` adds geometries
    (e.g. an observation point cloud as an (N, 3) array)."""
    from latent4d.render import render_png, to_open3d

    scalp = scalp or Scalp()
    items = [to_open3d(scalp.mesh(3))]
    hss = hairstyles if isinstance(hairstyles, list | tuple) else [hairstyles]
    for i, h in enumerate(hss):
        items.append(hair_lineset(h, max_strands, seed=i))
    items += [to_open3d(e) for e in (extra or [])]
    frame = {} if "radius" in kwargs else _frame(items, 1.15, width / height)
    return render_png(items, path, azimuth=azimuth, elevation=elevation, width=width, height=height,
                      line_width=1.0, **frame, **kwargs)


def render_grid(hairstyles: list[Hairstyle], path: str | Path, scalp: Scalp | None = None, max_strands: int = 1500,
                cols: int = 4, spacing: float = 0.4, size: int = 320, azimuth: float = 30.0, **kwargs) -> Path:
    """Several hairstyles side by side in one PNG (one scene, one render: copies shifted along x / y)."""
    import copy

    from latent4d.render import render_png, to_open3d

    scalp = scalp or Scalp()
    head = to_open3d(scalp.mesh(3))
    items = []
    rows = (len(hairstyles) + cols - 1) // cols
    a = np.radians(azimuth)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    centre = scalp.head.c
    for i, h in enumerate(hairstyles):
        r, c = divmod(i, cols)
        shift = centre + np.array([c * spacing, -r * spacing * 1.75, 0.0])
        for g in (copy.deepcopy(head), hair_lineset(h, max_strands, seed=i)):
            g.translate(-centre)
            g.rotate(rot, center=np.zeros(3))
            items.append(g.translate(shift))
    cols_used = min(cols, len(hairstyles))
    w, h = size * cols_used, int(size * rows * 1.4)
    return render_png(items, path, azimuth=0.0, elevation=5.0, width=w, height=h, line_width=1.0,
                      **{**_frame(items, 1.1, w / h), **kwargs})
