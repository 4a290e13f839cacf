"""Coarse-to-fine sparse (octree) evaluation of implicit surfaces.

Shared by the objects family (ShAPO's differentiable octree step) and the motion family (fast mesh
extraction). The cube [-bounds, bounds]^3 is split into cells of side ``2 * bounds / 2**level``.
Starting at ``start_level``, the function is evaluated at the cell centres (no gradients); a cell
is kept when it may contain the surface and split in 8; the rest are settled. For a true SDF
(1-Lipschitz) a cell can contain the zero level only if ``|sdf(centre)| <= half_diagonal``
(= sqrt(3)/2 * side): that bound keeps every surface cell, whereas ShAPO's ``|sdf| < side`` can
drop some. ``lipschitz`` > 1 widens the band for networks that are not exactly 1-Lipschitz.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import trimesh

from latent4d.geometry.meshing import marching_cubes

KeepFn = Callable[[torch.Tensor, float], torch.Tensor]


def sdf_keep(lipschitz: float = 1.0) -> KeepFn:
    """Keep cells whose centre value satisfies ``|v| <= lipschitz * half_diagonal``."""
    def keep(values: torch.Tensor, side: float) -> torch.Tensor:
        return values.abs() <= lipschitz * 0.5 * math.sqrt(3.0) * side
    return keep


def _children(centers: torch.Tensor, side: float) -> torch.Tensor:
    off = torch.tensor([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)],
                       dtype=centers.dtype, device=centers.device) * (side / 4.0)
    return (centers[:, None, :] + off[None]).reshape(-1, 3)


@dataclass
class OctreeBand:
    """The cells kept at the target level.

    centers: (K, 3) cell centres; values: (K,) function values there (no grad);
    level / side: target level and its cell side; evaluations: total function evaluations;
    per_level: number of cells evaluated per level; fill: optional (R, R, R) dense volume at the
    target level holding exact values in the band and the settled ancestor's value elsewhere.
    """

    centers: torch.Tensor
    values: torch.Tensor
    level: int
    side: float
    bounds: float
    evaluations: int
    per_level: list[int] = field(default_factory=list)
    fill: torch.Tensor | None = None


def _eval(fn, pts: torch.Tensor, chunk: int) -> torch.Tensor:
    if len(pts) == 0:
        return pts.new_zeros(0)
    return torch.cat([fn(pts[s:s + chunk]).reshape(-1).float() for s in range(0, len(pts), chunk)])


def _to_index(centers: torch.Tensor, bounds: float, side: float) -> torch.Tensor:
    return ((centers + bounds) / side - 0.5).round().long()


@torch.no_grad()
def octree_band(fn: Callable[[torch.Tensor], torch.Tensor], level: int, start_level: int = 2,
                bounds: float = 1.0, keep: KeepFn | None = None, chunk: int = 2**16,
                dense_fill: bool = False) -> OctreeBand:
    """Sparse coarse-to-fine evaluation of ``fn`` ((N, 3) -> (N,)) down to ``level``.

    ``keep(values, side) -> bool mask`` decides which cells are refined (default :func:`sdf_keep`).
    With ``dense_fill`` the result carries a dense ``2**level``-cube volume for marching cubes
    (memory ``8**level`` floats).
    """
    if not 0 <= start_level <= level:
        raise ValueError(f"need 0 <= start_level ({start_level}) <= level ({level})")
    keep = keep or sdf_keep()
    R0 = 2 ** start_level
    side = 2.0 * bounds / R0
    ax = -bounds + (torch.arange(R0, dtype=torch.float32) + 0.5) * side
    centers = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    evaluations, per_level = 0, []
    fill = None
    for lvl in range(start_level, level + 1):
        values = _eval(fn, centers, chunk)
        evaluations += len(centers)
        per_level.append(len(centers))
        if dense_fill:
            R = 2 ** lvl
            fill = (torch.full((R, R, R), float("nan")) if fill is None
                    else fill.repeat_interleave(2, 0).repeat_interleave(2, 1).repeat_interleave(2, 2))
            ijk = _to_index(centers, bounds, side)
            fill[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = values
        if lvl == level:
            break
        mask = keep(values, side)
        centers = _children(centers[mask], side)
        side /= 2.0
    if fill is not None:
        # cells never evaluated (only possible at start) stay NaN: treat as far outside
        fill = torch.nan_to_num(fill, nan=float(bounds))
    return OctreeBand(centers, values, level, side, bounds, evaluations, per_level, fill)


def project_to_surface(fn: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor,
                       create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One projection step ``p' = p - f(p) * n(p)`` with ``n = grad f / |grad f|`` by autograd.

    Differentiable w.r.t. the parameters/latents inside ``fn`` when ``create_graph``.
    Returns ``(projected (N, 3), values (N,), normals (N, 3))``.
    """
    p = points.detach().requires_grad_(True)
    with torch.enable_grad():
        v = fn(p).reshape(-1)
        (g,) = torch.autograd.grad(v.sum(), p, create_graph=create_graph)
    n = g / g.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return p - v[:, None] * n, v, n


def octree_surface_points(fn: Callable[[torch.Tensor], torch.Tensor], level: int, start_level: int = 2,
                          bounds: float = 1.0, threshold: float | None = None, keep: KeepFn | None = None,
                          chunk: int = 2**16) -> dict[str, torch.Tensor]:
    """ShAPO's differentiable surface points: octree band at ``level``, then a projection step.

    Points whose value exceeds ``threshold`` (default: the final cell side) are dropped.
    Returns ``points`` (K, 3) (differentiable), ``normals`` (K, 3), ``values`` (K,),
    ``evaluations`` (int, as a 0-d tensor).
    """
    band = octree_band(fn, level, start_level, bounds, keep, chunk)
    threshold = band.side if threshold is None else threshold
    pts, vals, nrm = project_to_surface(fn, band.centers)
    sel = vals.detach().abs() < threshold
    return {"points": pts[sel], "normals": nrm[sel], "values": vals[sel],
            "evaluations": torch.tensor(band.evaluations + len(band.centers))}


def octree_mesh(fn: Callable[[torch.Tensor], torch.Tensor], level: int, start_level: int = 2,
                bounds: float = 1.0, keep: KeepFn | None = None, level_set: float = 0.0,
                inside: str = "negative", chunk: int = 2**16) -> tuple[trimesh.Trimesh, OctreeBand]:
    """Marching cubes on the sparse band (settled cells carry their ancestor's value, whose sign is exact)."""
    band = octree_band(fn, level, start_level, bounds, keep, chunk, dense_fill=True)
    return marching_cubes(band.fill, level_set, bounds, inside), band
