"""A small z-buffered software rasteriser (numpy) for triangle meshes, line sets and point clouds.

Used by ``latent4d.render`` for file outputs (PNG figures of scripts, demos and benchmarks): it is
deterministic, needs no graphics stack, and takes well under a second for the figures the toolkit
writes (a few hundred thousand hair segments, meshes of ~100k faces). Open3D's OffscreenRenderer on
Mesa's llvmpipe occasionally stalls for many minutes on large line sets, which a figure must not do.

Camera convention matches Open3D's ``setup_camera``: vertical field of view in degrees, a look-at
centre, an eye and a Y-up vector. Shading: meshes are Lambert-lit by a headlight (vertex colours
interpolated by barycentric weights), lines and points are unlit; colours are linear and written as
sRGB, like Filament's output. Depth is interpolated linearly in
screen space, which is exact enough for figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_CHUNK = 4_000_000  # candidate pixels per batch (bounds memory at ~ 200 MB)


@dataclass
class Camera:
    """A pinhole camera looking from ``eye`` at ``center``; ``fov`` is vertical, in degrees."""

    eye: np.ndarray
    center: np.ndarray
    fov: float
    width: int
    height: int
    up: tuple = (0.0, 1.0, 0.0)

    def __post_init__(self):
        fwd = np.asarray(self.center, np.float64) - np.asarray(self.eye, np.float64)
        self.forward = fwd / max(np.linalg.norm(fwd), 1e-12)
        right = np.cross(self.forward, np.asarray(self.up, np.float64))
        if np.linalg.norm(right) < 1e-9:  # looking straight along the up vector
            right = np.cross(self.forward, np.array([0.0, 0.0, 1.0]))
        self.right = right / np.linalg.norm(right)
        self.true_up = np.cross(self.right, self.forward)
        self.focal = 0.5 * self.height / math.tan(math.radians(self.fov) / 2)

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 3) [u, v, depth] in pixels (v down) and world units along the view."""
        d = np.asarray(pts, np.float64) - self.eye
        z = d @ self.forward
        zs = np.maximum(z, 1e-6)
        u = 0.5 * self.width + self.focal * (d @ self.right) / zs
        v = 0.5 * self.height - self.focal * (d @ self.true_up) / zs
        return np.stack([u, v, z], 1)


class ZBuffer:
    """Depth + colour buffers; ``splat`` keeps the nearest of any number of candidate fragments."""

    def __init__(self, width: int, height: int, background):
        self.w, self.h = int(width), int(height)
        self.depth = np.full(self.w * self.h, np.inf)
        self.color = np.tile(np.asarray(background, np.float64)[:3], (self.w * self.h, 1))

    def splat(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, rgb: np.ndarray) -> None:
        """Fragments at integer pixels (x, y) with depth z (> 0) and (N, 3) colours in [0, 1]."""
        ok = (x >= 0) & (x < self.w) & (y >= 0) & (y < self.h) & (z > 0) & np.isfinite(z)
        if not ok.any():
            return
        idx = (y[ok] * self.w + x[ok]).astype(np.int64)
        z, rgb = z[ok], rgb[ok]
        order = np.lexsort((z, idx))  # by pixel, then nearest first
        idx, z, rgb = idx[order], z[order], rgb[order]
        first = np.ones(len(idx), bool)
        first[1:] = idx[1:] != idx[:-1]
        idx, z, rgb = idx[first], z[first], rgb[first]
        win = z < self.depth[idx]
        self.depth[idx[win]] = z[win]
        self.color[idx[win]] = rgb[win]

    def image(self) -> np.ndarray:
        """(H, W, 3) uint8, colours treated as linear and encoded to sRGB (as Open3D / Filament do)."""
        c = np.clip(self.color, 0, 1)
        c = np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)
        return (c * 255 + 0.5).astype(np.uint8).reshape(self.h, self.w, 3)


def draw_triangles(
    zb: ZBuffer, cam: Camera, verts: np.ndarray, faces: np.ndarray, colors: np.ndarray
) -> None:
    """Rasterise (F, 3) faces over (V, 3) vertices with (V, 3) colours, Lambert-lit by a headlight."""
    if len(faces) == 0:
        return
    p = cam.project(verts)
    tri = p[faces]  # (F, 3, 3)
    n = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    shade = 0.25 + 0.75 * np.abs(n @ cam.forward)  # two-sided headlight
    front = (tri[:, :, 2] > 1e-6).all(1)
    x0 = np.clip(np.floor(tri[:, :, 0].min(1)), 0, zb.w - 1).astype(np.int64)
    x1 = np.clip(np.ceil(tri[:, :, 0].max(1)), 0, zb.w - 1).astype(np.int64)
    y0 = np.clip(np.floor(tri[:, :, 1].min(1)), 0, zb.h - 1).astype(np.int64)
    y1 = np.clip(np.ceil(tri[:, :, 1].max(1)), 0, zb.h - 1).astype(np.int64)
    bw, bh = x1 - x0 + 1, y1 - y0 + 1
    keep = np.flatnonzero(
        front
        & (tri[:, :, 0].max(1) >= 0)
        & (tri[:, :, 0].min(1) < zb.w)
        & (tri[:, :, 1].max(1) >= 0)
        & (tri[:, :, 1].min(1) < zb.h)
    )
    area = bw[keep] * bh[keep]
    start = 0
    csum = np.cumsum(area)
    while start < len(keep):  # batches of triangles whose bounding boxes hold <= _CHUNK pixels
        base = csum[start - 1] if start else 0
        stop = max(int(np.searchsorted(csum, base + _CHUNK, side="right")), start + 1)
        sel = keep[start:stop]
        cnt = area[start:stop]
        t = np.repeat(sel, cnt)
        k = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        px = x0[t] + k % bw[t]
        py = y0[t] + k // bw[t]
        cx, cy = px + 0.5, py + 0.5
        a, b, c = tri[t, 0], tri[t, 1], tri[t, 2]
        den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
        den = np.where(np.abs(den) < 1e-12, np.nan, den)
        w0 = ((b[:, 1] - c[:, 1]) * (cx - c[:, 0]) + (c[:, 0] - b[:, 0]) * (cy - c[:, 1])) / den
        w1 = ((c[:, 1] - a[:, 1]) * (cx - c[:, 0]) + (a[:, 0] - c[:, 0]) * (cy - c[:, 1])) / den
        w2 = 1 - w0 - w1
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        t, w0, w1, w2 = t[inside], w0[inside], w1[inside], w2[inside]
        z = w0 * tri[t, 0, 2] + w1 * tri[t, 1, 2] + w2 * tri[t, 2, 2]
        f = faces[t]
        rgb = w0[:, None] * colors[f[:, 0]] + w1[:, None] * colors[f[:, 1]] + w2[:, None] * colors[f[:, 2]]
        zb.splat(px[inside], py[inside], z, rgb * shade[t, None])
        start = stop


def _disc(size: float) -> np.ndarray:
    """Integer pixel offsets (K, 2) of a square footprint ``size`` pixels wide (at least one pixel)."""
    s = max(int(round(size)), 1)
    o = np.arange(s) - (s - 1) // 2
    return np.stack(np.meshgrid(o, o, indexing="xy"), -1).reshape(-1, 2)


def draw_points(zb: ZBuffer, cam: Camera, pts: np.ndarray, colors: np.ndarray, size: float = 3.0) -> None:
    """(N, 3) points with (N, 3) colours as ``size``-pixel squares."""
    if len(pts) == 0:
        return
    p = cam.project(pts)
    off = _disc(size)
    x = (np.floor(p[:, 0])[:, None] + off[None, :, 0]).ravel()
    y = (np.floor(p[:, 1])[:, None] + off[None, :, 1]).ravel()
    zb.splat(x, y, np.repeat(p[:, 2], len(off)), np.repeat(colors, len(off), 0))


def draw_lines(
    zb: ZBuffer, cam: Camera, pts: np.ndarray, lines: np.ndarray, colors: np.ndarray, width: float = 1.0
) -> None:
    """(L, 2) segments over (N, 3) points with (L, 3) colours, ``width`` pixels wide."""
    if len(lines) == 0:
        return
    p = cam.project(pts)
    a, b = p[lines[:, 0]], p[lines[:, 1]]
    ok = (a[:, 2] > 1e-6) & (b[:, 2] > 1e-6)
    a, b, colors = a[ok], b[ok], colors[ok]
    length = np.abs(b[:, :2] - a[:, :2]).max(1)
    cnt = np.minimum(np.ceil(length).astype(np.int64), 4 * (zb.w + zb.h)) + 1
    seg = np.repeat(np.arange(len(a)), cnt)
    s = (np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)) / np.maximum(cnt[seg] - 1, 1)
    q = a[seg] + s[:, None] * (b[seg] - a[seg])
    off = _disc(width)
    x = (np.floor(q[:, 0])[:, None] + off[None, :, 0]).ravel()
    y = (np.floor(q[:, 1])[:, None] + off[None, :, 1]).ravel()
    zb.splat(x, y, np.repeat(q[:, 2], len(off)), np.repeat(colors[seg], len(off), 0))
