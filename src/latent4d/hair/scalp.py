"""The head and its scalp: a parametric ellipsoid head, the scalp region, UVs, root sampling, TBN frames.

- :class:`Head` is the collision body: an ellipsoid (default semi-axes 0.08 x 0.11 x 0.10 m, centre
  (0, 1.775, 0) in the USC-HairSalon frame: top of the head at y = 1.885 m, nape roots at about
  y = 1.70 m). ``push_out`` moves points that entered it back to its surface (GroomGen's
  penetration handling); ``level`` is < 1 inside.
- :class:`Scalp` is the part of the head where hair grows (above a hairline at elevation
  ``a + b cos(azimuth)`` degrees on the ellipsoid: 25 deg at the forehead, -10 deg over the ears,
  -45 deg at the nape), with Perm's spherical UV map about a pole ``pole_offset`` below the head
  centre, ``u = acos(dx / sqrt(dx^2 + dy^2)) / pi``, ``v = acos(dz / sqrt(dz^2 + dy^2)) / pi`` for
  ``d = p - pole``, rescaled by the scalp's bounds to [0, 1]^2 (u grows towards -x, v towards the back).
  The map is a bijection between scalp points and their UVs (the pole lies inside the head).
- TBN frame at a root: ``t`` = direction of increasing u on the surface, ``n`` = outward normal,
  ``b = n x t``; stored as columns ``[t | b | n]`` (S, 3, 3).
- A user-provided scalp mesh (``Scalp.from_mesh``) replaces the ellipsoid for roots, normals and
  the guide grid; UVs use the same spherical map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latent4d.errors import InputError

DEFAULT_CENTER = (0.0, 1.775, 0.0)
DEFAULT_SEMI_AXES = (0.08, 0.11, 0.10)
#: largest scalp / head mesh file read (256 MiB) and most faces accepted (untrusted input)
MAX_MESH_BYTES = 256 << 20
MAX_MESH_FACES = 5_000_000


def _load_mesh(path):
    """A trimesh from a mesh file; InputError for a missing, oversized or unreadable file."""
    import trimesh

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: scalp mesh file does not exist")
    if p.suffix.lower() not in (".obj", ".ply", ".off", ".stl", ".glb", ".gltf"):
        raise InputError(f"{p}: unknown mesh format '{p.suffix or '(no extension)'}'; use .obj or .ply")
    if p.stat().st_size > MAX_MESH_BYTES:
        raise InputError(f"{p}: the mesh file has {p.stat().st_size} bytes, more than the {MAX_MESH_BYTES} "
                         "latent4d reads (latent4d.hair.scalp.MAX_MESH_BYTES)")
    try:
        return trimesh.load(p, force="mesh", process=False)
    except Exception as e:  # noqa: BLE001 - any loader failure is a bad file
        raise InputError(f"{p}: cannot read scalp mesh ({type(e).__name__}: {str(e)[:200]})") from e


def _mesh_arrays(mesh, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(vertices (V, 3) float64, faces (F, 3) int64)`` of a trimesh."""
    try:
        v = np.asarray(mesh.vertices, np.float64).reshape(-1, 3)
        f = np.asarray(mesh.faces, np.int64).reshape(-1, 3)
    except (AttributeError, TypeError, ValueError) as e:
        raise InputError(f"{name}: not a triangle mesh ({type(e).__name__})") from None
    if len(v) < 3 or len(f) < 1:
        raise InputError(f"{name}: scalp mesh has no faces")
    if len(f) > MAX_MESH_FACES:
        raise InputError(f"{name}: scalp mesh has {len(f)} faces, more than {MAX_MESH_FACES} "
                         "(latent4d.hair.scalp.MAX_MESH_FACES)")
    if f.min() < 0 or f.max() >= len(v):
        raise InputError(f"{name}: scalp mesh faces index vertices outside [0, {len(v) - 1}]")
    if not np.isfinite(v).all():
        raise InputError(f"{name}: scalp mesh has NaN or infinite vertices")
    area = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum()
    if not area > 0:
        raise InputError(f"{name}: scalp mesh has zero area (degenerate faces)")
    return v, f


@dataclass
class Head:
    """Ellipsoid head (metres). ``level(p) = sum(((p - center) / semi_axes)^2)``: < 1 inside."""

    center: tuple[float, float, float] = DEFAULT_CENTER
    semi_axes: tuple[float, float, float] = DEFAULT_SEMI_AXES

    @property
    def c(self) -> np.ndarray:
        return np.asarray(self.center, np.float64)

    @property
    def a(self) -> np.ndarray:
        return np.asarray(self.semi_axes, np.float64)

    def level(self, p, margin: float = 0.0):
        """(...,) ellipsoid level of points ``p (..., 3)`` for semi-axes grown by ``margin`` metres."""
        if hasattr(p, "detach"):
            import torch

            c = torch.as_tensor(self.c, dtype=p.dtype, device=p.device)
            a = torch.as_tensor(self.a + margin, dtype=p.dtype, device=p.device)
            return (((p - c) / a) ** 2).sum(-1)
        return (((np.asarray(p) - self.c) / (self.a + margin)) ** 2).sum(-1)

    def inside(self, p, margin: float = 0.0) -> np.ndarray:
        """(...,) bool: strictly inside the ellipsoid grown by ``margin`` (negative: shrunk)."""
        return self.level(p, margin) < 1.0

    def normal(self, p) -> np.ndarray:
        g = (np.asarray(p, np.float64) - self.c) / self.a ** 2
        return (g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-12)).astype(np.float32)

    def surface_point(self, p) -> np.ndarray:
        """Radial projection of ``p`` onto the ellipsoid (towards / away from the centre)."""
        p = np.asarray(p, np.float64)
        lv = np.maximum(self.level(p), 1e-12)
        return (self.c + (p - self.c) / np.sqrt(lv)[..., None]).astype(np.float32)

    def radial_distance(self, p) -> np.ndarray:
        """Signed distance (metres) along the ray from the centre: > 0 outside, < 0 inside."""
        p = np.asarray(p, np.float64)
        r = np.linalg.norm(p - self.c, axis=-1)
        lv = np.maximum(self.level(p), 1e-12)
        return (r * (1.0 - 1.0 / np.sqrt(lv))).astype(np.float32)

    def push_out(self, points, margin: float = 0.001):
        """Move points inside the ellipsoid grown by ``margin`` radially onto that grown surface.

        Works on numpy arrays and torch tensors of shape (..., 3); returns a new array/tensor.
        """
        if hasattr(points, "detach"):
            import torch

            lv = self.level(points, margin)
            scale = torch.where(lv < 1.0, 1.0 / lv.clamp_min(1e-12).sqrt(), torch.ones_like(lv))
            c = torch.as_tensor(self.c, dtype=points.dtype, device=points.device)
            return c + (points - c) * scale.unsqueeze(-1)
        p = np.asarray(points, np.float64)
        lv = self.level(p, margin)
        scale = np.where(lv < 1.0, 1.0 / np.sqrt(np.maximum(lv, 1e-12)), 1.0)
        return (self.c + (p - self.c) * scale[..., None]).astype(np.float32)

    def resolve_strands(self, strands: np.ndarray, iterations: int = 4, margin: float = 0.001) -> np.ndarray:
        """GroomGen-style penetration handling for strands ``(S, P, 3)``: push points out of the head,
        restore segment lengths from the root (follow-the-leader), repeat; a final push-out guarantees
        that no point is left inside. Roots are kept where they are."""
        strands = np.asarray(strands)
        out = strands.astype(np.float32).copy()
        bad = np.flatnonzero((self.level(strands[:, 1:], margin) < 1.0).any(1))
        if not len(bad):
            return out
        x = strands[bad].astype(np.float64)
        seg = np.linalg.norm(np.diff(x, axis=1), axis=-1)
        for _ in range(iterations):
            inside = self.level(x, margin) < 1.0
            inside[:, 0] = False
            if not inside.any():
                break
            x = np.where(inside[..., None], self.push_out(x, margin), x)
            # follow-the-leader: keep each segment's direction, restore its length
            for i in range(1, x.shape[1]):
                d = x[:, i] - x[:, i - 1]
                n = np.linalg.norm(d, axis=-1, keepdims=True)
                x[:, i] = x[:, i - 1] + d / np.maximum(n, 1e-12) * seg[:, i - 1:i]
        x = self.push_out(x, margin * 0.5).astype(np.float32)
        x[:, 0] = strands[bad, 0]
        out[bad] = x
        return out

    def mesh(self, subdivisions: int = 3):
        """A trimesh ellipsoid (for rendering and raycasting)."""
        import trimesh

        m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
        m.vertices = m.vertices * self.a + self.c
        return m

    def to_dict(self) -> dict[str, Any]:
        return {"center": [float(x) for x in self.center], "semi_axes": [float(x) for x in self.semi_axes]}


@dataclass
class GuideGrid:
    """The regular UV grid of guide strands: texel centres, their roots on the scalp and frames.

    Arrays are flattened row-major over (v, u): index = row * res + col with row along v, col along u.
    """

    res: int
    uv: np.ndarray       # (res*res, 2) texel-centre UVs
    roots: np.ndarray    # (res*res, 3) metres (NaN where masked)
    frames: np.ndarray   # (res*res, 3, 3) TBN columns (identity where masked)
    mask: np.ndarray     # (res*res,) bool: texel lies on the scalp

    @property
    def valid(self) -> np.ndarray:
        return np.flatnonzero(self.mask)


@dataclass
class Scalp:
    """Scalp region of a :class:`Head` with Perm's spherical UV map (see module docstring).

    Args:
        head: the collision / scalp ellipsoid.
        pole_offset: metres below the head centre of the spherical map's pole (inside the head).
        hairline: ``(a, b)`` degrees: hair grows where elevation >= a + b cos(azimuth).
        uv_bounds: ``(u0, u1, v0, v1)`` raw spherical-map bounds rescaled to [0, 1]^2; computed
            from the scalp region when None.
        mesh_vertices / mesh_faces: optional user scalp mesh replacing the ellipsoid for roots,
            normals and the guide grid.
    """

    head: Head = field(default_factory=Head)
    pole_offset: float = 0.10
    hairline: tuple[float, float] = (-10.0, 35.0)
    uv_bounds: tuple[float, float, float, float] | None = None
    mesh_vertices: np.ndarray | None = None
    mesh_faces: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not 0 < self.pole_offset < self.head.semi_axes[1]:
            raise InputError(f"scalp: pole_offset {self.pole_offset} must lie inside the head (0, "
                             f"{self.head.semi_axes[1]}) so the UV map is one-to-one")
        self._scene = None
        self._region: np.ndarray | None = None  # dense scalp-region points and their KD-tree (lazy)
        self._region_tree = None
        if self.uv_bounds is None:
            if self.mesh_vertices is not None:
                raw = self.raw_uv(self.mesh_vertices)
            else:
                raw = self.raw_uv(self._dense_scalp_points(40000))
            pad = 0.01 * (raw.max(0) - raw.min(0))
            lo, hi = raw.min(0) - pad, raw.max(0) + pad
            if self.mesh_vertices is None and self.head.center[0] == 0.0:
                # the head is symmetric in x: make u symmetric too (u -> 1 - u mirrors left / right)
                lo[0] = min(lo[0], 1.0 - hi[0])
                hi[0] = 1.0 - lo[0]
            self.uv_bounds = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters (a mesh scalp is not serialised: pass the mesh again)."""
        return {"head": self.head.to_dict(), "pole_offset": float(self.pole_offset),
                "hairline": [float(x) for x in self.hairline], "uv_bounds": [float(x) for x in self.uv_bounds]}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Scalp:
        if not d:
            return cls()
        d = dict(d)
        head = Head(**{k: tuple(v) for k, v in (d.pop("head", None) or {}).items()})
        return cls(head=head, pole_offset=float(d.get("pole_offset", 0.10)),
                   hairline=tuple(d.get("hairline", (-10.0, 35.0))),
                   uv_bounds=tuple(d["uv_bounds"]) if d.get("uv_bounds") else None)

    @classmethod
    def from_mesh(cls, mesh, head: Head | None = None, pole_offset: float = 0.10,
                  max_offset: float = 0.05) -> Scalp:
        """A scalp from a user mesh (``.obj``/``.ply`` path or trimesh) in the head frame (metres).

        The mesh is untrusted data: a file larger than :data:`MAX_MESH_BYTES`, more than
        :data:`MAX_MESH_FACES` faces, face indices outside the vertices, NaN / infinite vertices,
        no faces or a zero area are InputErrors naming the mesh. It must lie near ``head`` (every
        vertex within ``max_offset`` metres of the head's surface), otherwise it is not in the head
        frame and InputError says so (with the measured offset and size, and the fix).
        """
        import trimesh

        name = str(mesh) if not isinstance(mesh, trimesh.Trimesh) else "scalp mesh"
        v, f = _mesh_arrays(mesh if isinstance(mesh, trimesh.Trimesh) else _load_mesh(mesh), name)
        head = head or Head()
        off = np.abs(head.radial_distance(v))
        if off.max() > max_offset:
            size = float(np.sqrt(((v - v.mean(0)) ** 2).sum(1).mean()) / max(np.sqrt((head.a ** 2).sum() / 3), 1e-12))
            raise InputError(f"{name}: scalp mesh does not match the head frame: a vertex lies "
                             f"{off.max() * 1000:.0f} mm from the head surface (max {max_offset * 1000:.0f} mm), "
                             f"its centre {np.linalg.norm(v.mean(0) - head.c):.3f} units from the head centre, "
                             f"its size {size:.3g} x the head's (metres, Y up, USC-HairSalon head position expected); "
                             "move and scale the mesh into the head frame first")
        return cls(head=head, pole_offset=pole_offset, mesh_vertices=v.astype(np.float32),
                   mesh_faces=f.astype(np.int32))

    # ------------------------------------------------------------------ geometry helpers
    @property
    def pole(self) -> np.ndarray:
        return self.head.c - np.array([0.0, self.pole_offset, 0.0])

    @property
    def is_mesh(self) -> bool:
        return self.mesh_vertices is not None

    def _raycaster(self):
        if self._scene is None:
            import open3d as o3d

            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(o3d.core.Tensor(self.mesh_vertices.astype(np.float32)),
                                o3d.core.Tensor(self.mesh_faces.astype(np.uint32)))
            self._scene = scene
        return self._scene

    def _elev_azim(self, p) -> tuple[np.ndarray, np.ndarray]:
        s = (np.asarray(p, np.float64) - self.head.c) / self.head.a
        s /= np.maximum(np.linalg.norm(s, axis=-1, keepdims=True), 1e-12)
        return np.degrees(np.arcsin(np.clip(s[..., 1], -1, 1))), np.arctan2(s[..., 0], s[..., 2])

    def in_region(self, p) -> np.ndarray:
        """(...,) bool: the hairline test (elevation above ``a + b cos(azimuth)``) for points ``p``."""
        el, az = self._elev_azim(p)
        return el >= self.hairline[0] + self.hairline[1] * np.cos(az)

    def _dense_scalp_points(self, n: int) -> np.ndarray:
        rng = np.random.default_rng(12345)
        s = rng.normal(size=(n, 3))
        s /= np.linalg.norm(s, axis=1, keepdims=True)
        p = self.head.c + s * self.head.a
        return p[self.in_region(p)]

    # ------------------------------------------------------------------------ UV map
    def raw_uv(self, p) -> np.ndarray:
        """(..., 2) Perm spherical map of points ``p (..., 3)`` before rescaling."""
        d = np.asarray(p, np.float64) - self.pole
        ru = np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2)
        rv = np.sqrt(d[..., 2] ** 2 + d[..., 1] ** 2)
        u = np.arccos(np.clip(d[..., 0] / np.maximum(ru, 1e-12), -1, 1)) / math.pi
        v = np.arccos(np.clip(d[..., 2] / np.maximum(rv, 1e-12), -1, 1)) / math.pi
        return np.stack([u, v], -1)

    def uv(self, p) -> np.ndarray:
        """(..., 2) float32 scalp UV of points ``p (..., 3)``: [0, 1]^2 on the scalp."""
        u0, u1, v0, v1 = self.uv_bounds
        r = self.raw_uv(p)
        return np.stack([(r[..., 0] - u0) / (u1 - u0), (r[..., 1] - v0) / (v1 - v0)], -1).astype(np.float32)

    def uv_to_direction(self, uv) -> np.ndarray:
        """Unit ray directions from the pole for UVs ``(..., 2)`` (inverse of the spherical map)."""
        uv = np.asarray(uv, np.float64)
        u0, u1, v0, v1 = self.uv_bounds
        ru = np.clip(u0 + uv[..., 0] * (u1 - u0), 1e-6, 1 - 1e-6)
        rv = np.clip(v0 + uv[..., 1] * (v1 - v0), 1e-6, 1 - 1e-6)
        d = np.stack([1.0 / np.tan(math.pi * ru), np.ones_like(ru), 1.0 / np.tan(math.pi * rv)], -1)
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def from_uv(self, uv) -> tuple[np.ndarray, np.ndarray]:
        """Scalp points for UVs ``(..., 2)``: ``(points (..., 3) float32, on_scalp (...,) bool)``.

        Points whose ray misses the scalp (mesh) or fall outside the hairline get ``on_scalp=False``.
        """
        d = self.uv_to_direction(uv)
        shape = d.shape[:-1]
        d = d.reshape(-1, 3)
        o = self.pole
        if self.is_mesh:
            import open3d as o3d

            rays = np.concatenate([np.broadcast_to(o, d.shape), d], 1).astype(np.float32)
            hit = self._raycaster().cast_rays(o3d.core.Tensor(rays))
            t = hit["t_hit"].numpy().astype(np.float64)
            ok = np.isfinite(t)
            pts = o + d * np.where(ok, t, 0.0)[:, None]
        else:
            a = self.head.a
            oc = (o - self.head.c) / a
            dd = d / a
            A = (dd ** 2).sum(1)
            B = 2 * (dd * oc).sum(1)
            C = (oc ** 2).sum() - 1.0  # < 0: pole inside
            t = (-B + np.sqrt(np.maximum(B * B - 4 * A * C, 0.0))) / (2 * A)
            pts = o + d * t[:, None]
            ok = self.in_region(pts)
        uvf = np.asarray(uv, np.float64).reshape(-1, 2)
        ok &= (uvf >= 0).all(1) & (uvf <= 1).all(1)
        return pts.reshape(*shape, 3).astype(np.float32), ok.reshape(shape)

    # ------------------------------------------------------------------------ frames
    def normals(self, p) -> np.ndarray:
        """(N, 3) outward unit normals at scalp points ``p (N, 3)``."""
        p = np.asarray(p, np.float32).reshape(-1, 3)
        if self.is_mesh:
            import open3d as o3d

            res = self._raycaster().compute_closest_points(o3d.core.Tensor(p))
            fid = res["primitive_ids"].numpy().astype(np.int64)
            v, f = self.mesh_vertices.astype(np.float64), self.mesh_faces
            fn = np.cross(v[f[fid, 1]] - v[f[fid, 0]], v[f[fid, 2]] - v[f[fid, 0]])
            fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12)
            out = self.head.normal(p)  # orient mesh normals outwards (meshes may be wound either way)
            fn *= np.sign((fn * out).sum(1, keepdims=True) + 1e-12)
            return fn.astype(np.float32)
        return self.head.normal(p)

    def _region_samples(self) -> np.ndarray:
        """(K, 3) dense points of the scalp region (about 2 mm apart), cached."""
        if self._region is None:
            self._region = self.sample_roots(20000, seed=0)[0].astype(np.float64)
        return self._region

    def closest_points(self, p) -> np.ndarray:
        """(N, 3) closest points on the scalp region to points ``p (N, 3)`` (metres): the mesh's closest
        points, or for the ellipsoid the radial projection where it falls inside the hairline and the
        nearest of :meth:`_region_samples` elsewhere."""
        p = np.asarray(p, np.float64).reshape(-1, 3)
        if self.is_mesh:
            import open3d as o3d

            res = self._raycaster().compute_closest_points(o3d.core.Tensor(p.astype(np.float32)))
            return res["points"].numpy().astype(np.float64)
        q = self.head.surface_point(p).astype(np.float64)
        out = ~self.in_region(q)
        if out.any():
            from scipy.spatial import cKDTree

            if self._region_tree is None:
                self._region_tree = cKDTree(self._region_samples())
            q[out] = self._region_samples()[self._region_tree.query(p[out])[1]]
        return q

    def surface_distance(self, p) -> np.ndarray:
        """(N,) unsigned distance (metres) of points ``p (N, 3)`` to the scalp region (see :meth:`closest_points`)."""
        p = np.asarray(p, np.float64).reshape(-1, 3)
        return np.linalg.norm(p - self.closest_points(p), axis=1)

    def frames(self, p, normals: np.ndarray | None = None) -> np.ndarray:
        """(N, 3, 3) TBN frames (columns t, b, n) at scalp points ``p (N, 3)``."""
        p = np.asarray(p, np.float64).reshape(-1, 3)
        n = self.normals(p).astype(np.float64) if normals is None else np.asarray(normals, np.float64)
        d = p - self.pole
        g = np.stack([-d[:, 1], d[:, 0], np.zeros(len(d))], 1)  # gradient direction of u
        t = g - (g * n).sum(1, keepdims=True) * n
        t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        b = np.cross(n, t)
        return np.stack([t, b, n], -1).astype(np.float32)

    # ------------------------------------------------------------------------ roots
    def area(self) -> float:
        """Scalp area in m^2 (Monte-Carlo estimate for the ellipsoid; exact sum for a mesh)."""
        if self.is_mesh:
            v, f = self.mesh_vertices.astype(np.float64), self.mesh_faces
            return float(0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]),
                                              axis=1).sum())
        rng = np.random.default_rng(7)
        s = rng.normal(size=(200000, 3))
        s /= np.linalg.norm(s, axis=1, keepdims=True)
        a = self.head.a
        w = np.prod(a) * np.sqrt(((s / a) ** 2).sum(1))  # area element per unit solid angle
        inside = self.in_region(self.head.c + s * a)
        return float(4 * math.pi * (w * inside).mean())

    def sample_roots(self, n: int | None = None, seed: int = 0, density: float | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Roots uniformly distributed by area on the scalp.

        Args:
            n: number of roots, or
            density: roots per cm^2 (n = density * area).
            seed: RNG seed (deterministic).
        Returns:
            ``(roots (n, 3) float32 metres, uv (n, 2) float32)``.
        """
        if n is None:
            if density is None:
                raise InputError("sample_roots: give n or density")
            n = int(round(density * self.area() * 1e4))
        n = int(n)
        if n < 1:
            raise InputError(f"sample_roots: need at least one root, got {n}")
        rng = np.random.default_rng(seed)
        if self.is_mesh:
            from latent4d.geometry.sampling import sample_surface

            pts, _, _ = sample_surface(self.mesh_vertices, self.mesh_faces, n, rng)
            pts = np.asarray(pts, np.float32)
            return pts, self.uv(pts)
        a = self.head.a
        wmax = np.prod(a) * np.sqrt((1 / a ** 2).max())
        got: list[np.ndarray] = []
        have = 0
        while have < n:
            m = max(4 * (n - have), 1024)
            s = rng.normal(size=(m, 3))
            s /= np.linalg.norm(s, axis=1, keepdims=True)
            w = np.prod(a) * np.sqrt(((s / a) ** 2).sum(1))
            p = self.head.c + s * a
            keep = (rng.random(m) < w / wmax) & self.in_region(p)
            got.append(p[keep])
            have += int(keep.sum())
        pts = np.concatenate(got)[:n].astype(np.float32)
        return pts, self.uv(pts)

    def grid(self, res: int = 32) -> GuideGrid:
        """The ``res x res`` guide grid over scalp UV space (texel centres), masked outside the scalp."""
        c = (np.arange(res) + 0.5) / res
        uu, vv = np.meshgrid(c, c, indexing="xy")  # row = v, col = u
        uv = np.stack([uu.ravel(), vv.ravel()], 1).astype(np.float32)
        pts, ok = self.from_uv(uv)
        frames = np.tile(np.eye(3, dtype=np.float32), (res * res, 1, 1))
        if ok.any():
            frames[ok] = self.frames(pts[ok])
        pts = np.where(ok[:, None], pts, np.nan).astype(np.float32)
        return GuideGrid(res, uv, pts, frames, ok)

    def mesh(self, subdivisions: int = 4):
        """A trimesh of the head (ellipsoid, or the user scalp mesh) for rendering."""
        if self.is_mesh:
            import trimesh

            return trimesh.Trimesh(self.mesh_vertices, self.mesh_faces, process=False)
        return self.head.mesh(subdivisions)
