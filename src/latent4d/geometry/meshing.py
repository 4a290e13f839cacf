"""Dense grids and marching cubes (scikit-image) to trimesh meshes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import trimesh
from skimage import measure


def grid_centers(resolution: int, bounds: float = 1.0, device=None) -> torch.Tensor:
    """Cell centres of a ``resolution^3`` grid over [-bounds, bounds]^3 -> (R^3, 3), index order (i, j, k) = (x, y, z)."""
    side = 2.0 * bounds / resolution
    ax = -bounds + (torch.arange(resolution, dtype=torch.float32, device=device) + 0.5) * side
    g = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), dim=-1)
    return g.reshape(-1, 3)


@torch.no_grad()
def evaluate_grid(fn: Callable[[torch.Tensor], torch.Tensor], resolution: int, bounds: float = 1.0,
                  chunk: int = 2**16, device=None) -> torch.Tensor:
    """Evaluate ``fn`` ((N, 3) -> (N,)) at every cell centre, chunked -> (R, R, R) volume."""
    pts = grid_centers(resolution, bounds, device)
    out = torch.cat([fn(pts[s:s + chunk]).reshape(-1).float() for s in range(0, len(pts), chunk)])
    return out.reshape(resolution, resolution, resolution)


def marching_cubes(volume, level: float = 0.0, bounds: float = 1.0, inside: str = "negative",
                   mask: np.ndarray | None = None) -> trimesh.Trimesh:
    """Extract the ``level`` iso-surface of a cell-centred volume over [-bounds, bounds]^3.

    ``inside="negative"`` for SDFs (outward normals where values grow outward); ``"positive"`` for
    occupancy logits / probabilities (inside is larger). Returns an empty mesh when the volume
    never crosses ``level``.
    """
    vol = volume.detach().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
    vol = vol.astype(np.float32)
    R = vol.shape[0]
    if np.nanmin(vol) > level or np.nanmax(vol) < level:
        return trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64))
    if inside == "positive":
        vol = -vol
        level = -level
    side = 2.0 * bounds / R
    verts, faces, _, _ = measure.marching_cubes(vol, level=level, spacing=(side, side, side), mask=mask)
    verts = verts + (-bounds + 0.5 * side)
    # with values growing outward, skimage's winding is counter-clockwise seen from outside
    return trimesh.Trimesh(vertices=verts, faces=faces, process=False)


def dense_mesh(fn: Callable[[torch.Tensor], torch.Tensor], resolution: int, bounds: float = 1.0,
               level: float = 0.0, inside: str = "negative", chunk: int = 2**16) -> trimesh.Trimesh:
    """Evaluate ``fn`` on a dense grid and run marching cubes."""
    return marching_cubes(evaluate_grid(fn, resolution, bounds, chunk), level, bounds, inside)
