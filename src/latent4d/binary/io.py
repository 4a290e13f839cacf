"""The binary family's file outputs: image grids (PNG) and meshes of occupancy grids (PLY + a rendered
gallery). Every file is written atomically (:mod:`latent4d.fileio`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from latent4d.errors import InputError
from latent4d.fileio import atomic_path


def image_grid(images: torch.Tensor | np.ndarray, nrow: int | None = None, pad: int = 1, scale: int = 1
               ) -> np.ndarray:
    """(N, C, H, W) images in [0, 1] -> one (H', W', 3) uint8 grid (``nrow`` images per row, upscaled by ``scale``)."""
    x = torch.as_tensor(images).float().clamp(0, 1)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise InputError(f"image_grid: expected (N, 1|3, H, W), got {tuple(x.shape)}")
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if scale > 1:
        x = x.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    n, _, h, w = x.shape
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / nrow))
    grid = torch.ones(3, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[:, pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = x[i]
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def save_image_grid(images, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Write :func:`image_grid` as a PNG (atomically)."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image_grid(images, nrow, scale=scale)).save(tmp, format="PNG")
    return Path(path)


def occupancy_mesh(occupancy: torch.Tensor | np.ndarray, level: float = 0.5):
    """(R, R, R) occupancy probability over [-1, 1]^3 -> trimesh surface (marching cubes, inside = above level)."""
    from latent4d.geometry.meshing import marching_cubes

    vol = torch.as_tensor(occupancy).float()
    vol = torch.nn.functional.pad(vol, (1, 1, 1, 1, 1, 1))  # close surfaces that touch the border
    R = vol.shape[0]
    return marching_cubes(vol, level=level, bounds=R / (R - 2), inside="positive")


def write_voxel_samples(occupancy: torch.Tensor, out: Path, prefix: str = "sample", render: bool = True,
                        ncol: int = 4) -> dict:
    """Meshes (``<prefix>_XX.ply``, marching cubes at 0.5) for (B, 1, R, R, R) occupancies and one gallery PNG."""
    import trimesh

    meshes, paths = [], []
    for i, occ in enumerate(occupancy[:, 0]):
        mesh = occupancy_mesh(occ)
        if len(mesh.faces):
            with atomic_path(out / f"{prefix}_{i:02d}.ply") as tmp:
                mesh.export(tmp)
            paths.append(str(out / f"{prefix}_{i:02d}.ply"))
        meshes.append(mesh)
    result = {"meshes": paths, "empty": sum(len(m.faces) == 0 for m in meshes)}
    if render and any(len(m.faces) for m in meshes):
        from latent4d.render import render_png

        placed = []
        for i, m in enumerate(meshes):
            if len(m.faces) == 0:
                continue
            r, c = divmod(i, ncol)
            mm = m.copy()
            mm.apply_translation([2.4 * c, -2.4 * r, 0.0])
            placed.append(mm)
        gallery = trimesh.util.concatenate(placed)
        render_png([gallery], out / f"{prefix}_gallery.png", width=900, height=900, azimuth=25, elevation=25)
        result["gallery"] = str(out / f"{prefix}_gallery.png")
    return result
