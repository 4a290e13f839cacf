"""Guide maps: strand-VAE latents of guide strands on the scalp's regular UV grid.

A guide map is ``(C + 1, H, W)``: C strand-latent channels and one *presence* channel (1 where the
texel carries hair, 0 for bald texels); texels outside the scalp are masked by ``GuideGrid.mask``.
Each texel holds the latent of the guide strand whose root UV is nearest to the texel centre,
encoded in the TBN frame at that strand's own root (HAAR's latent maps); decoding a texel places
the strand at the texel's root (or, in densification, at any dense root).
"""

from __future__ import annotations

import numpy as np
import torch

from latent4d.errors import InputError
from latent4d.hair.scalp import GuideGrid, Scalp
from latent4d.hair.strand_vae import StrandVAE
from latent4d.hair.strands import STRAND_POINTS, Hairstyle, to_local, to_world


def nearest_strands(root_uv: np.ndarray, grid: GuideGrid, max_texels: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """For every valid texel, the index of the strand whose root UV is nearest to the texel centre.

    Returns ``(index (V,), close (V,) bool)`` over ``grid.valid`` texels; ``close`` is False where the
    nearest root is farther than ``max_texels`` texel widths (no hair nearby).
    """
    from scipy.spatial import cKDTree

    tree = cKDTree(np.asarray(root_uv, np.float64))
    d, idx = tree.query(grid.uv[grid.mask].astype(np.float64), k=1)
    return idx.astype(np.int64), d <= max_texels / grid.res


def guide_strands(hairstyle: Hairstyle, scalp: Scalp, grid: GuideGrid, num_points: int = STRAND_POINTS
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Choose the guide strands of ``hairstyle`` for ``grid`` (nearest root in UV per texel).

    Returns ``(local (V, P, 3) metres in each strand's own root frame, presence (V,) bool,
    strands (V, P, 3) world, strand index (V,))`` for the ``V = grid.mask.sum()`` valid texels.
    Bald roots and texels with no strand nearby get presence False (their local strand is zeros).
    """
    hs = hairstyle
    roots_all = hs.roots
    uv = hs.root_uv if hs.root_uv is not None else scalp.uv(roots_all)
    idx, close = nearest_strands(uv, grid)
    hair = hs.resample(num_points)
    o = hair.offsets
    V = len(idx)
    world = np.zeros((V, num_points, 3), np.float32)
    presence = close & ~hair.bald[idx]
    sel = np.flatnonzero(presence)
    if len(sel):
        starts = o[idx[sel]]
        gather = starts[:, None] + np.arange(num_points)[None]
        world[sel] = hair.points[gather]
    roots = roots_all[idx]
    world[~presence] = roots[~presence, None, :]
    frames = scalp.frames(roots)
    local = to_local(world, roots, frames)
    local[~presence] = 0.0
    return local.astype(np.float32), presence, world, idx


@torch.no_grad()
def encode_guides(strand_vae: StrandVAE, local: np.ndarray | torch.Tensor, presence: np.ndarray, grid: GuideGrid
                  ) -> torch.Tensor:
    """Guide map ``(C + 1, H, W)`` from per-valid-texel local strands ``(V, P, 3)`` and presence ``(V,)``."""
    lat = strand_vae.encode_mean(torch.as_tensor(np.asarray(local), dtype=torch.float32)).float().cpu()
    pres = torch.as_tensor(np.asarray(presence), dtype=torch.float32)
    lat = lat * pres[:, None]
    return scatter_map(torch.cat([lat, pres[:, None]], 1), grid)


def scatter_map(values: torch.Tensor, grid: GuideGrid) -> torch.Tensor:
    """Per-valid-texel values (V, K) -> map (K, H, W) (zeros outside the scalp)."""
    K = values.shape[1]
    out = torch.zeros(grid.res * grid.res, K, dtype=values.dtype)
    out[torch.as_tensor(grid.valid)] = values
    return out.T.reshape(K, grid.res, grid.res).contiguous()


def gather_map(gmap: torch.Tensor, grid: GuideGrid) -> torch.Tensor:
    """Map (..., K, H, W) -> per-valid-texel values (..., V, K)."""
    flat = gmap.flatten(-2)  # (..., K, H*W)
    return flat[..., torch.as_tensor(grid.valid)].transpose(-1, -2)


@torch.no_grad()
def decode_guides(strand_vae: StrandVAE, gmap: torch.Tensor, grid: GuideGrid, threshold: float = 0.5) -> Hairstyle:
    """Guide strands (world) of a guide map ``(C + 1, H, W)``; absent texels become bald roots."""
    vals = gather_map(gmap.detach().float().cpu(), grid)  # (V, C+1)
    lat, pres = vals[:, :-1], vals[:, -1] > threshold
    roots = grid.roots[grid.mask]
    frames = grid.frames[grid.mask]
    local = strand_vae.decode_chunked(lat).float().cpu().numpy()
    world = to_world(local, roots, frames)
    keep = pres.numpy()
    counts = np.where(keep, world.shape[1], 1)
    point_mask = np.zeros(world.shape[:2], bool)
    point_mask[keep] = True
    point_mask[:, 0] = True  # absent texels keep their root (bald)
    return Hairstyle(world[point_mask], counts, root_uv=grid.uv[grid.mask])


def mirror_permutation(grid: GuideGrid) -> np.ndarray:
    """Permutation of the valid texels under the left/right mirror (u -> 1 - u, i.e. columns flipped):
    ``perm[v]`` is the valid texel that texel ``v`` maps from. Requires a symmetric scalp mask."""
    res = grid.res
    full = np.full(res * res, -1, np.int64)
    full[grid.valid] = np.arange(len(grid.valid))
    r, c = np.divmod(grid.valid, res)
    src = full[r * res + (res - 1 - c)]
    if (src < 0).any():
        raise InputError("the guide grid's scalp mask is not left/right symmetric")
    return src


def mirror_local(local: np.ndarray) -> np.ndarray:
    """Local strands (..., P, 3) of the left/right mirrored hairstyle at the mirrored roots: under
    x -> -x the TBN frame maps to (-t, b, n), so only the t coordinate changes sign."""
    out = np.array(local, copy=True)
    out[..., 0] *= -1
    return out
