"""Farthest point sampling and mesh surface sampling with barycentric coordinates."""

from __future__ import annotations

import numpy as np
import torch

from latent4d.errors import InputError


def farthest_point_sampling(points: torch.Tensor, n: int, lengths: torch.Tensor | None = None,
                            start: str | int = "first",
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of ``n`` farthest-point samples.

    Args:
        points: (B, N, D) or (N, D).
        n: number of samples (<= valid points per cloud).
        lengths: (B,) valid counts for padded batches.
        start: ``"first"`` (index 0, deterministic), ``"random"`` or an index.

    Returns:
        (B, n) or (n,) long indices into ``points``.
    """
    unb = points.dim() == 2
    p = points[None] if unb else points
    B, N, _ = p.shape
    lens = torch.full((B,), N, dtype=torch.long, device=p.device) if lengths is None else lengths.long()
    if int(lens.min()) < n:
        raise InputError(f"farthest_point_sampling: asked for {n} samples from a cloud of {int(lens.min())} points")
    p = p.detach()
    valid = torch.arange(N, device=p.device)[None, :] < lens[:, None]
    dist = torch.full((B, N), float("inf"), device=p.device, dtype=p.dtype)
    dist = dist.masked_fill(~valid, -1.0)
    idx = torch.empty(B, n, dtype=torch.long, device=p.device)
    if start == "random":
        cur = (torch.rand(B, generator=generator) * lens.cpu()).long().to(p.device)
    elif start == "first":
        cur = torch.zeros(B, dtype=torch.long, device=p.device)
    else:
        cur = torch.full((B,), int(start), dtype=torch.long, device=p.device)
    ar = torch.arange(B, device=p.device)
    for i in range(n):
        idx[:, i] = cur
        c = p[ar, cur][:, None, :]
        d = (p - c).square().sum(-1)
        dist = torch.minimum(dist, d.masked_fill(~valid, -1.0))
        cur = dist.argmax(-1)
    return idx[0] if unb else idx


def sample_surface(vertices, faces, n: int, generator: np.random.Generator | int | None = None):
    """Area-weighted uniform samples on a triangle mesh.

    Args:
        vertices: (V, 3) array-like; faces: (F, 3) int.
        n: number of samples.
        generator: numpy Generator or seed.

    Returns:
        ``(points (n, 3) float32, face_idx (n,) int64, bary (n, 3) float32)``. Reuse
        ``face_idx`` and ``bary`` with :func:`interpolate_barycentric` on deformed vertices of the
        same topology to get corresponding samples in every frame.
    """
    V = np.asarray(vertices, dtype=np.float64)
    F = np.asarray(faces, dtype=np.int64)
    if F.ndim != 2 or F.shape[1] != 3 or len(F) == 0:
        raise InputError(f"sample_surface: faces must be (F, 3) with F > 0, got {F.shape}")
    if V.ndim != 2 or V.shape[1] != 3:
        raise InputError(f"sample_surface: vertices must be (V, 3), got {V.shape}")
    rng = generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)
    tri = V[F]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = area.sum()
    if not np.isfinite(total) or total <= 0:
        raise InputError("sample_surface: mesh has zero or non-finite surface area")
    face_idx = rng.choice(len(F), size=n, p=area / total)
    r1 = np.sqrt(rng.random(n))
    r2 = rng.random(n)
    bary = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], axis=1)
    pts = (tri[face_idx] * bary[:, :, None]).sum(1)
    return pts.astype(np.float32), face_idx.astype(np.int64), bary.astype(np.float32)


def interpolate_barycentric(vertices, faces, face_idx, bary):
    """Points at (face_idx, bary) on a mesh; works for numpy arrays and torch tensors.

    vertices (..., V, C) (positions, colours, normals...), faces (F, 3), face_idx (n,),
    bary (n, 3) -> (..., n, C).
    """
    if isinstance(vertices, torch.Tensor):
        f = torch.as_tensor(np.asarray(faces), device=vertices.device)[torch.as_tensor(np.asarray(face_idx))]
        b = torch.as_tensor(np.asarray(bary), dtype=vertices.dtype, device=vertices.device)
        tri = vertices[..., f, :]  # (..., n, 3, C)
        return (tri * b[..., None]).sum(-2)
    V = np.asarray(vertices)
    tri = V[..., np.asarray(faces)[face_idx], :]
    return (tri * np.asarray(bary)[..., None]).sum(-2).astype(V.dtype)
