"""Multiresolution iso-surface extraction (MISE, Occupancy Networks, Mescheder et al. 2019).

For functions whose magnitude says little about the distance to the surface (occupancy logits,
which saturate), a value-based octree keep rule must be loose; MISE refines by *sign change*
instead. The function is evaluated on the corner points of a ``start_resolution^3`` grid over
[-bounds, bounds]^3; at every refinement the grid is doubled, cells whose 8 corners straddle
``level`` (dilated by ``dilate`` cells) have all their new points evaluated, and every other new
point takes the trilinear interpolation of its coarse cell. Marching cubes then runs on the final
``(resolution + 1)^3`` corner grid. Features thinner than a start cell that no start corner sees
can be missed (the same limit as ONet's MISE); ``start_resolution`` sets that scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
import trimesh

from latent4d.geometry.meshing import marching_cubes


def _corner_points(idx: torch.Tensor, resolution: int, bounds: float) -> torch.Tensor:
    return -bounds + idx.float() * (2.0 * bounds / resolution)


@torch.no_grad()
def mise_volume(fn: Callable[[torch.Tensor], torch.Tensor], resolution: int = 128, bounds: float = 1.0,
                start_resolution: int = 16, level: float = 0.0, dilate: int = 1,
                chunk: int = 2**16) -> tuple[torch.Tensor, int]:
    """Values of ``fn`` ((N, 3) -> (N,)) on the ``(resolution + 1)^3`` corner grid of [-bounds, bounds]^3,
    exact near the ``level`` set and interpolated elsewhere -> (volume, number of evaluations).

    ``resolution / start_resolution`` must be a power of two.
    """
    ratio = resolution / start_resolution
    if start_resolution < 1 or ratio < 1 or ratio != 2 ** round(math.log2(ratio)):
        raise ValueError(f"resolution ({resolution}) / start_resolution ({start_resolution}) must be a power of two")

    def evaluate(idx: torch.Tensor, r: int) -> torch.Tensor:
        pts = _corner_points(idx, r, bounds)
        if len(pts) == 0:
            return pts.new_zeros(0)
        return torch.cat([fn(pts[s:s + chunk]).reshape(-1).float().cpu() for s in range(0, len(pts), chunk)])

    r = start_resolution
    n = r + 1
    idx = torch.stack(torch.meshgrid(*(torch.arange(n),) * 3, indexing="ij"), -1).reshape(-1, 3)
    vals = evaluate(idx, r).reshape(n, n, n)
    evaluations = n ** 3
    while r < resolution:
        inside = (vals > level).float()[None, None]
        some = F.max_pool3d(inside, 2, stride=1)[0, 0]  # (r, r, r) cells: any corner inside
        every = -F.max_pool3d(-inside, 2, stride=1)[0, 0]  # all corners inside
        active = (some > every).float()
        if dilate > 0:
            active = F.max_pool3d(active[None, None], 2 * dilate + 1, stride=1, padding=dilate)[0, 0]
        fine = F.interpolate(vals[None, None], size=(2 * r + 1,) * 3, mode="trilinear", align_corners=True)[0, 0]
        cells = active.repeat_interleave(2, 0).repeat_interleave(2, 1).repeat_interleave(2, 2)  # (2r)^3
        need = F.max_pool3d(cells[None, None], 2, stride=1, padding=1)[0, 0] > 0  # corners of active cells
        need[::2, ::2, ::2] = False  # coarse corners are already exact
        nidx = need.nonzero()
        fine[need] = evaluate(nidx, 2 * r)
        evaluations += len(nidx)
        vals, r = fine, 2 * r
    return vals, evaluations


def mise_mesh(fn: Callable[[torch.Tensor], torch.Tensor], resolution: int = 128, bounds: float = 1.0,
              start_resolution: int = 16, level: float = 0.0, inside: str = "positive", dilate: int = 1,
              chunk: int = 2**16) -> tuple[trimesh.Trimesh, int]:
    """Mesh of the ``level`` set of ``fn`` by :func:`mise_volume` + marching cubes -> (mesh, evaluations).

    ``inside="positive"`` for occupancy logits (inside is larger), ``"negative"`` for SDFs.
    """
    vol, evaluations = mise_volume(fn, resolution, bounds, start_resolution, level, dilate, chunk)
    # the corner grid is the cell-centred grid of a cube grown by half a cell on every side
    mesh = marching_cubes(vol, level, bounds * (resolution + 1) / resolution, inside)
    return mesh, evaluations


__all__ = ["mise_mesh", "mise_volume"]
