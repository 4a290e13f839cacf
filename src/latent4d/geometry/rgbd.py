"""RGB-D rendering of coloured meshes by ray casting (Open3D RaycastingScene) and depth back-projection.

Camera convention (OpenCV): x right, y down, z forward; ``K`` is the 3x3 pinhole intrinsics matrix
in pixels; ``world_to_cam`` is a 4x4 extrinsic (x_cam = R x_world + t). Depth is the z coordinate
in the camera frame, metres; 0 where nothing is hit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import trimesh

from latent4d.errors import InputError


def check_intrinsics(K) -> np.ndarray:
    """Validate a pinhole matrix: 3x3, finite, positive focal lengths, bottom row ``[0, 0, 1]``."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise InputError(f"intrinsics: expected a 3x3 matrix, got shape {K.shape}")
    if not np.isfinite(K).all():
        raise InputError("intrinsics: contains NaN or inf")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError(f"intrinsics: focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
    if not np.allclose(K[2], [0.0, 0.0, 1.0], atol=1e-6):
        raise InputError(f"intrinsics: the last row of K must be [0, 0, 1], got {K[2].tolist()} (a scaled or "
                         "projection matrix: divide by K[2, 2] or pass the 3x3 camera matrix)")
    return K


def orbit_eye(center, distance: float, azimuth: float, elevation: float, degrees: bool = True) -> np.ndarray:
    """Camera position (3,) on a sphere of radius ``distance`` about ``center``, y up: azimuth about
    +y measured from +z towards +x, elevation above the xz-plane (degrees unless ``degrees=False``).
    The orbit convention shared by the renderer, the viewer and the object scenes."""
    az, el = (math.radians(azimuth), math.radians(elevation)) if degrees else (float(azimuth), float(elevation))
    d = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    return np.asarray(center, np.float64) + float(distance) * d


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """World-to-camera 4x4 for an OpenCV camera at ``eye`` looking at ``target`` (``up`` is world up)."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-8:
        x = np.cross(z, np.array([1.0, 0.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: camera axes in world coordinates
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = -R @ eye
    return T


def pinhole_rays(K, world_to_cam, width: int, height: int) -> np.ndarray:
    """(H, W, 6) float32 rays (world origin, world direction) through pixel centres.

    OpenCV convention: pixel (row, col) is centred at integer coordinates, so its ray is
    ``K^-1 [col, row, 1]`` (unit z in the camera frame). (Open3D's ``create_rays_pinhole`` shoots
    through ``col + 0.5``, half a pixel off this convention.)
    """
    K = check_intrinsics(K)
    T = np.asarray(world_to_cam, np.float64)
    R, t = T[:3, :3], T[:3, 3]
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    d_cam = np.stack([(cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], np.ones_like(cols)], -1)
    d_world = d_cam @ R  # R^T d for row vectors
    origin = np.broadcast_to(-R.T @ t, d_world.shape)
    return np.concatenate([origin, d_world], -1).astype(np.float32)


@dataclass
class RGBDFrame:
    """One RGB-D frame: the frame type of every latent4d reader, renderer and family.

    rgb (H, W, 3) uint8, or None for a depth-only frame; depth (H, W) float32 metres along the
    optical axis (0 = no measurement); mask (H, W) int32 instance ids (0 = background), or None;
    K (3, 3) pinhole intrinsics in pixels (OpenCV camera: x right, y down, z forward);
    normals (H, W, 3) float32 camera-frame normals (rendered frames), or None; world_to_cam (4, 4)
    extrinsics (x_cam = R x_world + t), or None when the camera frame is the world frame.
    Families add what they need by subclassing (e.g. ``latent4d.objects.types.Scene``: instance
    masks and ground truth).
    """

    rgb: np.ndarray | None
    depth: np.ndarray
    mask: np.ndarray | None
    K: np.ndarray
    normals: np.ndarray | None = field(default=None, repr=False)
    world_to_cam: np.ndarray | None = None

    @property
    def width(self) -> int:
        return int(self.depth.shape[1])

    @property
    def height(self) -> int:
        return int(self.depth.shape[0])

    @property
    def instance_ids(self) -> list[int]:
        """Sorted instance ids present in the mask (none without a mask)."""
        if self.mask is None:
            return []
        return [int(i) for i in np.unique(self.mask) if i != 0]

    def points(self, instance_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Valid depth pixels (of one instance when ``instance_id`` is given) back-projected:
        ``(points (N, 3) camera frame metres, pixels (N, 2) (row, col))`` (:func:`backproject_depth`)."""
        if instance_id is None:
            return backproject_depth(self.depth, self.K)
        if self.mask is None:
            raise InputError(f"instance {instance_id}: the frame has no instance mask")
        return backproject_depth(self.depth, self.K, self.mask == instance_id)


def render_rgbd(meshes: list[trimesh.Trimesh], K, world_to_cam, width: int, height: int,
                ids: list[int] | None = None, background=(0, 0, 0), shading: float = 0.0) -> RGBDFrame:
    """Ray-cast meshes with vertex colours into depth, RGB, instance mask and normals.

    ``ids[i]`` is the mask value of mesh i (default i + 1). ``shading`` in [0, 1] mixes a headlight
    Lambert term into the colour (0 = pure albedo, what photometric losses expect).
    """
    import open3d as o3d  # here, not at import: back-projection and intrinsics checks run without Open3D

    K = check_intrinsics(K)
    ids = list(range(1, len(meshes) + 1)) if ids is None else list(ids)
    scene = o3d.t.geometry.RaycastingScene()
    colors, faces = [], []
    for m in meshes:
        # Open3D's stubs lack the (np_array) overload of Tensor without dtype / device
        scene.add_triangles(o3d.core.Tensor(np.asarray(m.vertices, np.float32)),  # type: ignore[call-overload]
                            o3d.core.Tensor(np.asarray(m.faces, np.uint32)))  # type: ignore[call-overload]
        vc = getattr(m.visual, "vertex_colors", None)
        if vc is None or len(vc) != len(m.vertices):
            vc = np.full((len(m.vertices), 4), 200, np.uint8)
        colors.append(np.asarray(vc)[:, :3].astype(np.float32))
        faces.append(np.asarray(m.faces))
    r = pinhole_rays(K, world_to_cam, width, height)
    ans = scene.cast_rays(o3d.core.Tensor(r.reshape(-1, 6)))  # type: ignore[call-overload]
    t = ans["t_hit"].numpy().reshape(height, width)
    hit = np.isfinite(t)
    # ray directions have unit z in the camera frame, so the ray parameter is the z-depth
    depth = np.where(hit, t, 0).astype(np.float32)
    Rwc = np.asarray(world_to_cam)[:3, :3]
    geom = ans["geometry_ids"].numpy().reshape(height, width).astype(np.int64)
    prim = ans["primitive_ids"].numpy().reshape(height, width).astype(np.int64)
    uv = ans["primitive_uvs"].numpy().reshape(height, width, 2)
    nrm_w = ans["primitive_normals"].numpy().reshape(height, width, 3)
    mask = np.zeros((height, width), np.int32)
    rgb = np.tile(np.asarray(background, np.float32), (height, width, 1))
    for gi, (c, f) in enumerate(zip(colors, faces)):
        sel = hit & (geom == gi)
        if not sel.any():
            continue
        mask[sel] = ids[gi]
        tri = c[f[prim[sel]]]
        u, v = uv[sel][:, 0], uv[sel][:, 1]
        rgb[sel] = tri[:, 0] * (1 - u - v)[:, None] + tri[:, 1] * u[:, None] + tri[:, 2] * v[:, None]
    normals = (nrm_w @ Rwc.T).astype(np.float32)
    if shading > 0:
        view = -r[..., 3:] / np.linalg.norm(r[..., 3:], axis=-1, keepdims=True)
        lam = np.abs((nrm_w * view).sum(-1))
        rgb = np.where(hit[..., None], rgb * ((1 - shading) + shading * lam[..., None]), rgb)
    normals[~hit] = 0
    return RGBDFrame(rgb=np.clip(np.rint(rgb), 0, 255).astype(np.uint8), depth=depth, mask=mask, K=K,
                     normals=normals, world_to_cam=np.asarray(world_to_cam, np.float64))


def backproject_depth(depth: np.ndarray, K, mask: np.ndarray | None = None,
                      cam_to_world: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Depth (H, W) metres -> points (N, 3) for valid pixels (depth > 0, finite, inside ``mask``).

    Returns ``(points, pixels)`` with ``pixels`` (N, 2) as (row, col). Points are in the camera
    frame unless ``cam_to_world`` (4x4) is given.
    """
    K = check_intrinsics(K)
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise InputError(f"depth: expected an (H, W) image, got shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        if mask.shape != depth.shape:
            raise InputError(f"mask shape {mask.shape} does not match depth shape {depth.shape}")
        valid &= mask.astype(bool)
    rows, cols = np.nonzero(valid)
    z = depth[rows, cols].astype(np.float64)
    x = (cols - K[0, 2]) * z / K[0, 0]
    y = (rows - K[1, 2]) * z / K[1, 1]
    pts = np.stack([x, y, z], axis=1)
    if cam_to_world is not None:
        T = np.asarray(cam_to_world)
        pts = pts @ T[:3, :3].T + T[:3, 3]
    return pts.astype(np.float32), np.stack([rows, cols], axis=1)
