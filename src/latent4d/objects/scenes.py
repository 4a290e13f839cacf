"""Synthetic RGB-D scenes of objects on a table (the benchmark's, the demo's and the tests' input).

A scene: 1-5 canonical objects placed upright on a textured table plane (world up = +y) with a
random yaw, position and metric size, seen by a pinhole camera (640 x 480, NOCS-real intrinsics
by default) from a random elevated viewpoint. Rendering is ray casting
(:func:`latent4d.geometry.rgbd.render_rgbd`); depth then gets a Kinect-like noise model
(axial sigma ``0.0012 + 0.0019 (z - 0.4)^2`` m, Nguyen et al. 2012), holes (random drop-out,
grazing angles, depth discontinuities, a few blobs) and millimetre quantisation. A scene is a
:class:`latent4d.objects.types.Scene`; its files are read and written by :mod:`latent4d.objects.io`.
"""

from __future__ import annotations

import numpy as np
import trimesh

from latent4d.errors import InputError
from latent4d.geometry.rgbd import check_intrinsics, look_at, orbit_eye, render_rgbd
from latent4d.objects.synthetic import METRIC_HALF_DIAGONAL, ProceduralObject
from latent4d.objects.types import Scene, SceneObject

WIDTH, HEIGHT = 640, 480
NOCS_K = np.array([[591.0125, 0.0, 322.525], [0.0, 590.16786, 244.11084], [0.0, 0.0, 1.0]])
"""NOCS REAL275 camera intrinsics (pixels)."""


def _table_mesh(rng: np.random.Generator, half: float = 0.9, n: int = 60) -> trimesh.Trimesh:
    """A textured table top (a thin box whose top face y = 0 is a fine grid with a wood-like pattern)."""
    ax = np.linspace(-half, half, n)
    gx, gz = np.meshgrid(ax, ax, indexing="ij")
    top = np.stack([gx.ravel(), np.zeros(gx.size), gz.ravel()], 1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, d, c], 1), np.stack([a, c, b], 1)])  # normals +y
    base = rng.uniform(0.35, 0.75, 3) * np.array([1.0, 0.85, 0.7])
    grain = 0.5 + 0.5 * np.sin(gx.ravel() * rng.uniform(15, 30) + 2 * np.sin(gz.ravel() * 4))
    col = np.clip(base[None] * (0.8 + 0.25 * grain[:, None]), 0, 1)
    rgba = np.concatenate([np.rint(col * 255), np.full((len(col), 1), 255)], 1).astype(np.uint8)
    mesh = trimesh.Trimesh(top, faces, process=False)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=rgba)
    return mesh


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def add_depth_noise(depth: np.ndarray, normals: np.ndarray, rng: np.random.Generator,
                    dropout: float = 0.01, blobs: int = 3) -> np.ndarray:
    """Kinect-like noise, holes and millimetre quantisation on a clean depth map (metres)."""
    z = depth.copy()
    valid = z > 0
    sigma = 0.0012 + 0.0019 * (z - 0.4) ** 2
    z = np.where(valid, z + rng.normal(size=z.shape) * sigma, 0)
    drop = rng.uniform(size=z.shape) < dropout
    # grazing angles: |n . view| small (normals are in the camera frame; view ~ -z for the centre)
    H, W = z.shape
    drop |= valid & (np.abs(normals[..., 2]) < 0.12) & (rng.uniform(size=z.shape) < 0.7)
    # depth discontinuities
    gy, gx = np.gradient(np.where(valid, depth, 0))
    edge = (np.hypot(gx, gy) > 0.02) | (valid != np.roll(valid, 1, 0)) | (valid != np.roll(valid, 1, 1))
    drop |= edge & (rng.uniform(size=z.shape) < 0.6)
    rows, cols = np.mgrid[0:H, 0:W]
    for _ in range(int(blobs)):
        r0, c0 = rng.uniform(0, H), rng.uniform(0, W)
        ry, rx = rng.uniform(2, 9), rng.uniform(2, 9)
        drop |= ((rows - r0) / ry) ** 2 + ((cols - c0) / rx) ** 2 < 1
    z[drop] = 0
    return (np.rint(np.clip(z, 0, 65.535) * 1000) / 1000).astype(np.float32)


def make_scene(objects: list[ProceduralObject], seed: int = 0, n_objects: int | tuple[int, int] = (1, 5),
               K=None, width: int = WIDTH, height: int = HEIGHT, noise: bool = True,
               codes: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
               max_tries: int = 50, shading: float = 0.0, background=(0, 0, 0)) -> Scene:
    """Place ``n_objects`` (an int or an inclusive range) of ``objects`` on a table and render them.

    Objects are drawn without replacement; each is upright, with a random yaw, a metric size from
    :data:`latent4d.objects.synthetic.METRIC_HALF_DIAGONAL` and a non-overlapping footprint. The
    camera looks at the table centre from 0.55-0.9 m at 30-60 degrees elevation. ``codes`` maps
    object names to (shape, appearance) codes to store in the ground truth. ``shading`` (a headlight
    Lambert term mixed into the colours, 0 = albedo) and ``background`` (RGB 0-255 where no surface is
    hit) vary the look for detector training; the defaults keep every earlier scene as it was.
    """
    rng = np.random.default_rng(seed)
    if not objects:
        raise InputError("make_scene: no objects to place")
    lo, hi = (n_objects, n_objects) if isinstance(n_objects, int) else n_objects
    n = int(min(rng.integers(lo, hi + 1), len(objects)))
    K = NOCS_K.copy() if K is None else check_intrinsics(K)
    chosen = [objects[i] for i in rng.choice(len(objects), size=n, replace=False)]
    world_meshes, placed = [], []
    footprints: list[tuple[np.ndarray, float]] = []
    for obj in chosen:
        cat = obj.category
        s = rng.uniform(*METRIC_HALF_DIAGONAL.get(cat, (0.06, 0.12)))
        ext = obj.extents
        radius = 0.5 * s * float(np.hypot(ext[0], ext[2]))
        for _ in range(max_tries):
            pos = rng.uniform(-0.22, 0.22, 2)
            if all(np.linalg.norm(pos - p) > radius + r + 0.01 for p, r in footprints):
                break
        else:
            continue  # no room left: skip this object
        footprints.append((pos, radius))
        R_w = _rot_y(rng.uniform(0, 2 * np.pi))
        lo_y = float(obj.mesh.bounds[0, 1])
        t_w = np.array([pos[0], -s * lo_y, pos[1]])
        m = obj.mesh.copy()
        m.vertices = s * np.asarray(m.vertices) @ R_w.T + t_w
        world_meshes.append(m)
        placed.append((obj, R_w, t_w, s))
    # camera: looks at the table centre from an elevated viewpoint; re-drawn until every object
    # projects inside the image (with a margin), else the objects still outside are dropped
    for _ in range(max_tries):
        az = rng.uniform(0, 2 * np.pi)
        el = np.deg2rad(rng.uniform(30, 60))
        dist = rng.uniform(0.7, 1.05)
        eye = orbit_eye(np.zeros(3), dist, az, el, degrees=False)
        target = np.array([rng.uniform(-0.04, 0.04), 0.04, rng.uniform(-0.04, 0.04)])
        T = look_at(eye, target, up=(0.0, 1.0, 0.0))
        inside = [_in_view(m, K, T, width, height, margin=8) for m in world_meshes]
        if all(inside):
            break
    keep = [i for i, ok in enumerate(inside) if ok]
    world_meshes = [world_meshes[i] for i in keep]
    placed = [placed[i] for i in keep]
    table = _table_mesh(rng)
    ids = list(range(1, len(world_meshes) + 1))
    frame = render_rgbd(world_meshes + [table], K, T, width, height, ids=ids + [0], shading=shading,
                        background=background)
    Rc, tc = T[:3, :3], T[:3, 3]
    gts = []
    for iid, (obj, R_w, t_w, s) in zip(ids, placed):
        zc = codes.get(obj.name) if codes else None
        gts.append(SceneObject(iid, obj.category, obj.name, Rc @ R_w, Rc @ t_w + tc, float(s),
                               np.asarray(obj.extents), None if zc is None else np.asarray(zc[0]),
                               None if zc is None else np.asarray(zc[1]), obj.mesh))
    for g in gts:
        if g.category == "mug":
            g.handle_visible = _handle_visible(g, frame.depth, frame.mask, K)
    depth = add_depth_noise(frame.depth, frame.normals, rng) if noise else frame.depth.astype(np.float32)
    return Scene(rgb=frame.rgb, depth=depth, mask=frame.mask.astype(np.int32), K=K, normals=frame.normals,
                 world_to_cam=T, objects=gts, depth_clean=frame.depth)


def _handle_visible(g: SceneObject, depth: np.ndarray, mask: np.ndarray, K: np.ndarray, min_pixels: int = 15) -> bool:
    """Whether at least ``min_pixels`` pixels show the handle of a mug (canonical +x beyond the body)."""
    v = np.asarray(g.mesh.vertices)
    rim = v[v[:, 1] > v[:, 1].max() - 0.03]
    axis_x = rim[:, 0].mean()
    radius = np.abs(rim[:, 0] - axis_x).max()
    handle = v[v[:, 0] > axis_x + radius + 0.02]
    if len(handle) == 0:
        return False
    c = g.scale * handle @ g.R.T + g.t
    u = np.rint(K[0, 0] * c[:, 0] / c[:, 2] + K[0, 2]).astype(int)
    w = np.rint(K[1, 1] * c[:, 1] / c[:, 2] + K[1, 2]).astype(int)
    H, W = depth.shape
    ok = (u >= 0) & (u < W) & (w >= 0) & (w < H)
    u, w, z = u[ok], w[ok], c[ok, 2]
    seen = (mask[w, u] == g.instance_id) & (np.abs(depth[w, u] - z) < 0.005)
    return len(set(zip(u[seen].tolist(), w[seen].tolist()))) >= min_pixels


def _in_view(mesh: trimesh.Trimesh, K: np.ndarray, T: np.ndarray, width: int, height: int, margin: int) -> bool:
    """Whether every vertex of a world-frame mesh projects inside the image (and in front)."""
    v = np.asarray(mesh.vertices) @ T[:3, :3].T + T[:3, 3]
    if (v[:, 2] <= 0.05).any():
        return False
    u = K[0, 0] * v[:, 0] / v[:, 2] + K[0, 2]
    w = K[1, 1] * v[:, 1] / v[:, 2] + K[1, 2]
    return bool((u >= margin).all() and (u < width - margin).all() and (w >= margin).all()
                and (w < height - margin).all())
