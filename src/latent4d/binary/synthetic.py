"""Procedural occupancy grids: primitive shapes voxelised analytically on a cell-centred grid.

Every shape is an inside test on the cell centres of a ``R^3`` grid over [-1, 1]^3 (the same
convention as :func:`latent4d.geometry.grid_centers` and :func:`latent4d.geometry.marching_cubes`,
index order (x, y, z)). Shapes get a random rotation, scale and offset but stay inside the cube.
The category index is the class label for class-conditional diffusion.
"""

from __future__ import annotations

import numpy as np

from latent4d.errors import InputError

SHAPE_CATEGORIES = ("ellipsoid", "box", "cylinder", "torus", "cone", "table")


def grid_points(resolution: int) -> np.ndarray:
    """Cell centres (R, R, R, 3) over [-1, 1]^3, index order (x, y, z)."""
    side = 2.0 / resolution
    ax = -1.0 + (np.arange(resolution) + 0.5) * side
    return np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), axis=-1)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotation (3, 3) from a QR decomposition."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _inside(category: str, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inside test in the shape's local frame; ``p`` (..., 3); shapes fit in the unit ball."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    if category == "ellipsoid":
        a = rng.uniform(0.45, 0.95, size=3)
        return (x / a[0]) ** 2 + (y / a[1]) ** 2 + (z / a[2]) ** 2 <= 1.0
    if category == "box":
        h = rng.uniform(0.3, 0.55, size=3)
        return (np.abs(x) <= h[0]) & (np.abs(y) <= h[1]) & (np.abs(z) <= h[2])
    if category == "cylinder":
        r, h = rng.uniform(0.3, 0.6), rng.uniform(0.4, 0.75)
        return (x ** 2 + z ** 2 <= r ** 2) & (np.abs(y) <= h)
    if category == "torus":
        big, small = rng.uniform(0.45, 0.65), rng.uniform(0.15, 0.28)
        return (np.sqrt(x ** 2 + z ** 2) - big) ** 2 + y ** 2 <= small ** 2
    if category == "cone":
        r, h = rng.uniform(0.4, 0.7), rng.uniform(0.5, 0.8)
        frac = (h - y) / (2 * h)  # 0 at the apex (y = h), 1 at the base (y = -h)
        return (np.abs(y) <= h) & (np.sqrt(x ** 2 + z ** 2) <= r * frac)
    if category == "table":
        w, d = rng.uniform(0.45, 0.7), rng.uniform(0.35, 0.6)
        top_y, thick, leg = rng.uniform(0.2, 0.45), rng.uniform(0.07, 0.14), rng.uniform(0.07, 0.13)
        top = (np.abs(x) <= w) & (np.abs(z) <= d) & (np.abs(y - top_y) <= thick)
        legs = np.zeros(x.shape, bool)
        for sx in (-1, 1):
            for sz in (-1, 1):
                legs |= ((np.abs(x - sx * (w - leg)) <= leg) & (np.abs(z - sz * (d - leg)) <= leg)
                         & (y >= -0.7) & (y <= top_y))
        return top | legs
    raise InputError(f"unknown shape category '{category}'. Categories: {', '.join(SHAPE_CATEGORIES)}.")


def shape_occupancy(category: str, seed: int, resolution: int = 32, rotate: bool = True) -> np.ndarray:
    """Boolean occupancy (R, R, R) of one seeded procedural shape (never empty, never touching the border)."""
    rng = np.random.default_rng([SHAPE_CATEGORIES.index(category) if category in SHAPE_CATEGORIES else 99,
                                 int(seed)])
    pts = grid_points(resolution)
    rot = _rotation(rng) if rotate else np.eye(3)
    scale = rng.uniform(0.75, 0.95)
    shift = rng.uniform(-0.05, 0.05, size=3)
    local = ((pts - shift) @ rot) / scale  # world -> local: p_local = R^T (p - t) / s
    occ = _inside(category, local, rng)
    if not occ.any():  # far too thin for this resolution: fall back to no rotation
        occ = _inside(category, (pts - shift) / scale, np.random.default_rng(int(seed)))
    return occ


def shape_dataset(n_per_category: int, resolution: int = 32, seed: int = 0,
                  categories: tuple[str, ...] = SHAPE_CATEGORIES) -> dict[str, np.ndarray]:
    """``n_per_category`` shapes per category: ``occupancy`` (N, R, R, R) bool, ``labels`` (N,) int64."""
    occ, labels = [], []
    for ci, cat in enumerate(categories):
        for i in range(n_per_category):
            occ.append(shape_occupancy(cat, seed * 1_000_003 + i, resolution))
            labels.append(ci)
    return {"occupancy": np.stack(occ), "labels": np.asarray(labels, np.int64)}
