"""Synthetic RGB-D scenes of objects on a table, and RGB-D file input / output.

A scene: 1-5 canonical objects placed upright on a textured table plane (world up = +y) with a
random yaw, position and metric size, seen by a pinhole camera (640 x 480, NOCS-real intrinsics
by default) from a random elevated viewpoint. Rendering is ray casting
(:func:`latent4d.geometry.rgbd.render_rgbd`); depth then gets a Kinect-like noise model
(axial sigma ``0.0012 + 0.0019 (z - 0.4)^2`` m, Nguyen et al. 2012), holes (random drop-out,
grazing angles, depth discontinuities, a few blobs) and millimetre quantisation.

Files (what :func:`save_scene` writes and :func:`read_rgbd` reads):

* ``rgb.png`` 8-bit RGB; ``depth.png`` 16-bit, millimetres, 0 = no measurement;
* ``mask.png`` 8- or 16-bit instance ids (0 = background);
* ``intrinsics.json`` ``{"fx", "fy", "cx", "cy", "width", "height"}`` (or ``{"K": 3x3}``);
* ``gt.json`` per object: instance id, category, name, ``R`` (3x3, canonical -> camera),
  ``t`` (3, m), ``scale`` (m, half-diagonal), ``size`` (3, m, NOCS-style box extents) and, when the
  object is in a latent database, its ``shape_code`` / ``appearance_code``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from latent4d.errors import InputError
from latent4d.fileio import atomic_path, write_json_atomic
from latent4d.geometry.rgbd import check_intrinsics, look_at, orbit_eye, render_rgbd
from latent4d.objects.synthetic import METRIC_HALF_DIAGONAL, ProceduralObject

WIDTH, HEIGHT = 640, 480
NOCS_K = np.array([[591.0125, 0.0, 322.525], [0.0, 590.16786, 244.11084], [0.0, 0.0, 1.0]])
"""NOCS REAL275 camera intrinsics (pixels)."""


@dataclass
class SceneObject:
    """Ground truth of one object: ``x_cam = scale * R @ x_canonical + t``.

    R (3, 3), t (3,) metres, scale = metric half-diagonal (m), size (3,) metric box extents,
    extents (3,) canonical box extents; mesh: the canonical coloured mesh (not saved).
    """

    instance_id: int
    category: str
    name: str
    R: np.ndarray
    t: np.ndarray
    scale: float
    extents: np.ndarray
    shape_code: np.ndarray | None = None
    appearance_code: np.ndarray | None = None
    mesh: trimesh.Trimesh | None = field(default=None, repr=False)
    handle_visible: bool | None = None

    @property
    def size(self) -> np.ndarray:
        return self.scale * np.asarray(self.extents)

    @property
    def symmetric(self) -> bool:
        """Whether the rotation about the up axis is unobservable: symmetric categories, and (as in
        the NOCS evaluation) mugs whose handle is hidden."""
        from latent4d.objects.synthetic import SYMMETRIC

        return self.category in SYMMETRIC or (self.category == "mug" and self.handle_visible is False)

    def to_json(self) -> dict:
        d = {"instance_id": int(self.instance_id), "category": self.category, "name": self.name,
             "R": np.asarray(self.R).tolist(), "t": np.asarray(self.t).tolist(), "scale": float(self.scale),
             "size": self.size.tolist(), "extents": np.asarray(self.extents).tolist()}
        if self.shape_code is not None:
            d["shape_code"] = np.asarray(self.shape_code).tolist()
        if self.appearance_code is not None:
            d["appearance_code"] = np.asarray(self.appearance_code).tolist()
        if self.handle_visible is not None:
            d["handle_visible"] = bool(self.handle_visible)
        return d

    @classmethod
    def from_json(cls, d: dict) -> SceneObject:
        return cls(int(d["instance_id"]), d["category"], d.get("name", ""), np.asarray(d["R"], np.float64),
                   np.asarray(d["t"], np.float64), float(d["scale"]), np.asarray(d["extents"], np.float64),
                   None if d.get("shape_code") is None else np.asarray(d["shape_code"], np.float32),
                   None if d.get("appearance_code") is None else np.asarray(d["appearance_code"], np.float32),
                   handle_visible=d.get("handle_visible"))


@dataclass
class RGBDInput:
    """One RGB-D frame with instance masks.

    rgb (H, W, 3) uint8; depth (H, W) float32 metres (0 = invalid); mask (H, W) int instance ids;
    K (3, 3) pixels. ``objects`` holds ground truth when the frame comes from a synthetic scene.
    """

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    K: np.ndarray
    objects: list[SceneObject] = field(default_factory=list)
    depth_clean: np.ndarray | None = field(default=None, repr=False)

    @property
    def instance_ids(self) -> list[int]:
        return [int(i) for i in np.unique(self.mask) if i != 0]

    def gt(self, instance_id: int) -> SceneObject | None:
        return next((o for o in self.objects if o.instance_id == instance_id), None)


# --------------------------------------------------------------------------------------------
# scene generation


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
               max_tries: int = 50) -> RGBDInput:
    """Place ``n_objects`` (an int or an inclusive range) of ``objects`` on a table and render them.

    Objects are drawn without replacement; each is upright, with a random yaw, a metric size from
    :data:`latent4d.objects.synthetic.METRIC_HALF_DIAGONAL` and a non-overlapping footprint. The
    camera looks at the table centre from 0.55-0.9 m at 30-60 degrees elevation. ``codes`` maps
    object names to (shape, appearance) codes to store in the ground truth.
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
    frame = render_rgbd(world_meshes + [table], K, T, width, height, ids=ids + [0], shading=0.0)
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
    return RGBDInput(frame.rgb, depth, frame.mask.astype(np.int32), K, gts, depth_clean=frame.depth)


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


# --------------------------------------------------------------------------------------------
# file input / output


def write_depth_png(path: str | Path, depth_m: np.ndarray, depth_scale: float = 1000.0) -> Path:
    """Depth in metres (H, W) -> 16-bit PNG in 1/``depth_scale`` m units (millimetres by default)."""
    from PIL import Image

    d = np.asarray(depth_m, np.float64)
    if d.ndim != 2:
        raise InputError(f"depth: expected an (H, W) array, got shape {d.shape}")
    q = np.rint(np.nan_to_num(d, nan=0.0) * depth_scale)
    if q.max(initial=0) > 65535:
        raise InputError(f"depth: {d.max():.2f} m does not fit a 16-bit PNG at scale {depth_scale}")
    with atomic_path(path) as tmp:
        Image.fromarray(q.astype(np.uint16)).save(tmp, format="PNG")
    return Path(path)


def read_depth_png(path: str | Path, depth_scale: float = 1000.0) -> np.ndarray:
    """16-bit depth PNG -> float32 metres (0 = invalid). 8-bit or colour PNGs are rejected."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise InputError(f"depth file '{path}' does not exist")
    if path.suffix.lower() == ".npy":
        d = np.load(path)
        if d.ndim != 2 or not np.issubdtype(d.dtype, np.floating):
            raise InputError(f"depth '{path}': a .npy depth must be an (H, W) float array in metres, "
                             f"got {d.dtype} {d.shape}")
        return np.where(np.isfinite(d), d, 0).astype(np.float32)
    try:
        img = Image.open(path)
        img.load()
    except Exception as e:  # noqa: BLE001
        raise InputError(f"depth '{path}' could not be read as an image ({type(e).__name__}: {e})") from e
    arr = np.asarray(img)
    if img.mode not in ("I;16", "I;16B", "I;16L", "I") or arr.ndim != 2:
        raise InputError(f"depth '{path}': expected a single-channel 16-bit PNG in millimetres, got mode "
                         f"'{img.mode}' with shape {arr.shape} (dtype {arr.dtype})")
    if arr.dtype == np.int32 and (arr.min() < 0 or arr.max() > 65535):
        raise InputError(f"depth '{path}': values outside the 16-bit range")
    return (arr.astype(np.float64) / depth_scale).astype(np.float32)


def read_intrinsics(path_or_dict) -> np.ndarray:
    """Intrinsics JSON ({fx, fy, cx, cy[, width, height]} or {"K": 3x3}) -> checked 3x3 matrix."""
    if isinstance(path_or_dict, dict):
        d = path_or_dict
        where = "intrinsics"
    else:
        p = Path(path_or_dict)
        if not p.is_file():
            raise InputError(f"intrinsics file '{p}' does not exist")
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"intrinsics '{p}' is not valid JSON ({e})") from e
        where = f"intrinsics '{p}'"
    if "K" in d:
        K = np.asarray(d["K"], np.float64)
    else:
        missing = [k for k in ("fx", "fy", "cx", "cy") if k not in d]
        if missing:
            raise InputError(f"{where}: missing {', '.join(missing)} (expected fx, fy, cx, cy or K)")
        K = np.array([[d["fx"], 0, d["cx"]], [0, d["fy"], d["cy"]], [0, 0, 1]], np.float64)
    try:
        return check_intrinsics(K)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None


def write_intrinsics(path: str | Path, K, width: int, height: int) -> Path:
    K = check_intrinsics(K)
    return write_json_atomic(path, {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2],
                                    "width": int(width), "height": int(height)})


def _read_image(path: str | Path, what: str) -> np.ndarray:
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file '{path}' does not exist")
    try:
        img = Image.open(path)
        img.load()
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{what} '{path}' could not be read as an image ({type(e).__name__}: {e})") from e
    return img


def read_rgbd(rgb: str | Path, depth: str | Path, mask: str | Path, intrinsics, depth_scale: float = 1000.0,
              gt: str | Path | None = None) -> RGBDInput:
    """Read and validate one frame (see the module docstring for the formats).

    Raises InputError for a missing / unreadable file, a depth that is not 16-bit, images of
    different sizes, an all-invalid depth, an empty mask or intrinsics without positive focal lengths.
    """
    K = read_intrinsics(intrinsics)
    img = _read_image(rgb, "rgb")
    rgb_arr = np.asarray(img.convert("RGB"))
    d = read_depth_png(depth, depth_scale)
    m_img = _read_image(mask, "mask")
    if m_img.mode in ("RGB", "RGBA", "P"):
        # colour-coded instances: every non-black colour is one instance (ids in colour order)
        arr = np.asarray(m_img.convert("RGB")).astype(np.int64)
        code = (arr[..., 0] << 16) | (arr[..., 1] << 8) | arr[..., 2]
        colours = np.unique(code)
        lut = {int(c): i for i, c in enumerate(c for c in colours if c != 0)}
        m = np.vectorize(lambda c: 0 if c == 0 else lut[int(c)] + 1, otypes=[np.int64])(code) if len(colours) < 256 \
            else np.searchsorted(colours, code) + (0 if colours[0] == 0 else 1)
    else:
        m = np.asarray(m_img).astype(np.int64)
    H, W = rgb_arr.shape[:2]
    if d.shape != (H, W):
        raise InputError(f"depth '{depth}' is {d.shape[1]}x{d.shape[0]} but rgb '{rgb}' is {W}x{H}")
    if m.shape != (H, W):
        raise InputError(f"mask '{mask}' is {m.shape[1]}x{m.shape[0]} but rgb '{rgb}' is {W}x{H}")
    if not (d > 0).any():
        raise InputError(f"depth '{depth}' has no valid pixel (all zero)")
    if not (m > 0).any():
        raise InputError(f"mask '{mask}' is empty (no pixel with an instance id > 0)")
    objects = []
    if gt is not None and Path(gt).is_file():
        objects = [SceneObject.from_json(o) for o in json.loads(Path(gt).read_text())["objects"]]
    return RGBDInput(rgb_arr, d, m.astype(np.int32), K, objects)


def save_scene(scene: RGBDInput, folder: str | Path, depth_scale: float = 1000.0) -> dict[str, Path]:
    """Write rgb.png, depth.png (16-bit mm), mask.png, intrinsics.json and gt.json into ``folder``."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f for k, f in (("rgb", "rgb.png"), ("depth", "depth.png"), ("mask", "mask.png"),
                                        ("intrinsics", "intrinsics.json"), ("gt", "gt.json"))}
    with atomic_path(paths["rgb"]) as tmp:
        Image.fromarray(np.ascontiguousarray(scene.rgb)).save(tmp, format="PNG")
    write_depth_png(paths["depth"], scene.depth, depth_scale)
    mask = scene.mask.astype(np.uint8 if scene.mask.max(initial=0) < 256 else np.uint16)
    with atomic_path(paths["mask"]) as tmp:
        Image.fromarray(mask).save(tmp, format="PNG")
    H, W = scene.depth.shape
    write_intrinsics(paths["intrinsics"], scene.K, W, H)
    write_json_atomic(paths["gt"], {"depth_scale": depth_scale, "objects": [o.to_json() for o in scene.objects]})
    return paths


def load_scene(folder: str | Path, depth_scale: float = 1000.0) -> RGBDInput:
    """Read a folder written by :func:`save_scene` (ground truth included when gt.json exists)."""
    folder = Path(folder)
    return read_rgbd(folder / "rgb.png", folder / "depth.png", folder / "mask.png", folder / "intrinsics.json",
                     depth_scale, gt=folder / "gt.json")
