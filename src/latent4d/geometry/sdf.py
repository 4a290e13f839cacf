"""Signed distance, occupancy and closest surface points of triangle meshes (Open3D RaycastingScene).

Open3D is imported when a :class:`MeshSDF` is built, not with this module: code paths that never query a
mesh (training on precomputed O-Flow data, binary and hair models) run where Open3D is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import trimesh

if TYPE_CHECKING:
    import open3d as o3d

from latent4d.errors import InputError


def _as_arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(mesh, trimesh.Trimesh):
        return np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.uint32)
    if isinstance(mesh, tuple | list) and len(mesh) == 2:
        return np.asarray(mesh[0], np.float32), np.asarray(mesh[1], np.uint32)
    raise InputError(f"expected a trimesh.Trimesh or (vertices, faces), got {type(mesh).__name__}")


class MeshSDF:
    """Queries against one triangle mesh (build once, query many times).

    All query points are (N, 3) float arrays in the mesh's frame; outputs are numpy arrays.
    Signs follow Open3D: negative inside. ``robust=True`` decides inside/outside by majority vote
    over several rays (``compute_occupancy(nsamples=)``), which tolerates small holes.
    """

    def __init__(self, mesh, robust: bool = True, nsamples: int = 5):
        v, f = _as_arrays(mesh)
        if len(f) == 0:
            raise InputError("MeshSDF: mesh has no faces")
        if not np.isfinite(v).all():
            raise InputError("MeshSDF: mesh vertices contain NaN or inf")
        import open3d as o3d

        self.vertices, self.faces = v, f
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(f))  # type: ignore[call-overload]  # open3d stubs
        self.robust = robust
        self.nsamples = nsamples

    @staticmethod
    def _q(points) -> o3d.core.Tensor:
        import open3d as o3d

        p = np.ascontiguousarray(np.asarray(points, dtype=np.float32))
        if p.ndim != 2 or p.shape[1] != 3:
            raise InputError(f"query points must be (N, 3), got {p.shape}")
        return o3d.core.Tensor(p)  # type: ignore[call-overload]  # open3d stubs lack the ndarray overload

    def unsigned_distance(self, points) -> np.ndarray:
        """(N,) distance to the surface."""
        return self.scene.compute_distance(self._q(points)).numpy()

    def occupancy(self, points) -> np.ndarray:
        """(N,) bool, True inside."""
        q = self._q(points)
        if self.robust:
            return self.scene.compute_occupancy(q, nsamples=self.nsamples).numpy() > 0.5
        return self.scene.compute_occupancy(q).numpy() > 0.5

    def signed_distance(self, points) -> np.ndarray:
        """(N,) signed distance, negative inside."""
        d = self.unsigned_distance(points)
        return np.where(self.occupancy(points), -d, d).astype(np.float32)

    def closest_points(self, points) -> dict[str, np.ndarray]:
        """Closest surface point per query: ``points`` (N, 3), ``face`` (N,), ``bary`` (N, 3)."""
        ans = self.scene.compute_closest_points(self._q(points))
        uv = ans["primitive_uvs"].numpy()
        bary = np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1).astype(np.float32)
        return {"points": ans["points"].numpy(), "face": ans["primitive_ids"].numpy().astype(np.int64),
                "bary": bary}

    def closest_attribute(self, points, vertex_attr: np.ndarray) -> np.ndarray:
        """Interpolate a per-vertex attribute (V, C) (e.g. colours) at the closest surface points."""
        cp = self.closest_points(points)
        tri = np.asarray(vertex_attr)[self.faces[cp["face"]]]
        return (tri * cp["bary"][:, :, None]).sum(1)


def sdf_samples(mesh, n_uniform: int, n_near: int, sigmas=(0.01, 0.05), bounds: float = 1.0,
                clamp: float | None = None, rng: np.random.Generator | int | None = None,
                robust: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """DeepSDF-style SDF samples: uniform in [-bounds, bounds]^3 plus Gaussian-perturbed surface points.

    Returns ``(points (n_uniform + n_near, 3) float32, sdf (n,) float32)``; ``clamp`` clips the SDF.
    """
    from latent4d.geometry.sampling import sample_surface

    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    v, f = _as_arrays(mesh)
    uni = rng.uniform(-bounds, bounds, size=(n_uniform, 3))
    parts = [uni]
    if n_near > 0:
        surf, _, _ = sample_surface(v, f, n_near, rng)
        sig = np.asarray(sigmas, dtype=np.float64)[rng.integers(0, len(sigmas), n_near)]
        parts.append(surf + rng.normal(size=(n_near, 3)) * sig[:, None])
    pts = np.concatenate(parts).astype(np.float32)
    sdf = MeshSDF((v, f), robust=robust).signed_distance(pts)
    if clamp is not None:
        sdf = np.clip(sdf, -clamp, clamp)
    return pts, sdf
