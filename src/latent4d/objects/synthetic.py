"""Procedural textured objects in NOCS-like categories.

Every object is built as an implicit function (constructive solid geometry of revolved 2D profiles,
tori and boxes) whose zero level set is meshed by marching cubes, so meshes are watertight by
construction. Shape parameters vary within a category; each object gets a colour pattern
(stripes, gradients, labels, dots) painted on its vertices.

Canonical frame (shared by every category, ``CANONICAL`` below): up = +y, the object's "front"
(mug handle, camera lens, laptop screen facing) is fixed per category, the tight bounding box is
centred at the origin and scaled so that its half-diagonal is 1: every object fits in the unit
sphere, hence in [-1, 1]^3. A metric object is ``x_cam = s * R @ x_canonical + t`` with ``s`` the
metric half-diagonal (metres); its NOCS-style size is ``s * extents_canonical``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

from latent4d.errors import InputError

CATEGORIES = ("bottle", "bowl", "can", "mug", "laptop", "camera")
"""The procedural categories (NOCS's six, with a camera-like box for 'camera')."""

SYMMETRIC = frozenset({"bottle", "bowl", "can"})
"""Categories whose shape is symmetric about the up axis (rotation error ignores the yaw)."""

METRIC_HALF_DIAGONAL = {  # metres, (low, high) of the uniform prior used by the scene generator
    "bottle": (0.09, 0.14), "bowl": (0.07, 0.10), "can": (0.06, 0.085),
    "mug": (0.06, 0.085), "laptop": (0.17, 0.24), "camera": (0.06, 0.09),
}

CANONICAL = "up=+y; mug handle +x; camera lens +z; laptop hinge at -z, keyboard on the base (-y)"


@dataclass
class ProceduralObject:
    """One procedural object in the canonical frame.

    mesh: watertight trimesh with uint8 vertex colours (RGBA); category / seed identify it;
    params: the shape parameters drawn for it; pattern: the colour pattern description.
    """

    mesh: trimesh.Trimesh
    category: str
    seed: int
    params: dict = field(default_factory=dict)
    pattern: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.category}_{self.seed:05d}"

    @property
    def extents(self) -> np.ndarray:
        """(3,) canonical bounding-box extents (x, y, z)."""
        return np.asarray(self.mesh.extents, np.float64)


# --------------------------------------------------------------------------------------------
# implicit primitives (numpy, points (N, 3) -> (N,); only the zero level set needs to be exact)


def _polygon_sdf2(q: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Signed distance of 2D points q (N, 2) to a closed polygon (M, 2) (negative inside)."""
    d = np.full(len(q), np.inf)
    sign = np.ones(len(q))
    M = len(poly)
    for i in range(M):
        a, b = poly[i], poly[(i + 1) % M]
        e = b - a
        w = q - a
        t = np.clip((w @ e) / max(float(e @ e), 1e-12), 0.0, 1.0)
        proj = w - t[:, None] * e
        d = np.minimum(d, (proj * proj).sum(1))
        # winding (even-odd crossing test)
        c1 = q[:, 1] >= a[1]
        c2 = q[:, 1] < b[1]
        c3 = e[0] * w[:, 1] > e[1] * w[:, 0]
        flip = (c1 & c2 & c3) | (~c1 & ~c2 & ~c3)
        sign = np.where(flip, -sign, sign)
    return sign * np.sqrt(d)


def _revolve(profile: np.ndarray):
    """Solid of revolution about +y of a closed (r, y) polygon."""
    def f(p):
        r = np.sqrt(p[:, 0] ** 2 + p[:, 2] ** 2)
        return _polygon_sdf2(np.stack([r, p[:, 1]], 1), profile)
    return f


def _box(center, half, rot_x: float = 0.0, radius: float = 0.0):
    """Rounded box (optionally rotated about x by ``rot_x`` radians around its ``center``)."""
    c, h = np.asarray(center, float), np.asarray(half, float) - radius
    cs, sn = np.cos(rot_x), np.sin(rot_x)

    def f(p):
        q = p - c
        y = cs * q[:, 1] + sn * q[:, 2]
        z = -sn * q[:, 1] + cs * q[:, 2]
        q = np.abs(np.stack([q[:, 0], y, z], 1)) - h
        return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0) - radius
    return f


def _cylinder_z(center, radius, half_len):
    c = np.asarray(center, float)

    def f(p):
        q = p - c
        d = np.stack([np.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2) - radius, np.abs(q[:, 2]) - half_len], 1)
        return np.minimum(d.max(1), 0) + np.linalg.norm(np.maximum(d, 0), axis=1)
    return f


def _union(*fs):
    return lambda p: np.min(np.stack([f(p) for f in fs]), axis=0)


def _smooth_profile(pts: list[tuple[float, float]], n: int = 6) -> np.ndarray:
    """Corner-cut (Chaikin) smoothing of an open polyline, ends kept."""
    p = np.asarray(pts, float)
    for _ in range(2):
        q = [p[0]]
        for a, b in zip(p[:-1], p[1:]):
            q += [0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b]
        q.append(p[-1])
        p = np.asarray(q)
    return p


def _shell_profile(outer: np.ndarray, thickness: float, bottom: float) -> np.ndarray:
    """Wall cross-section of an open container: outer curve (r, y) bottom -> rim, inner offset curve
    back down to a floor of thickness ``bottom``; closed along the axis."""
    outer = np.asarray(outer, float)
    inner = outer.copy()
    inner[:, 0] = np.maximum(outer[:, 0] - thickness, 0.0)
    y0 = outer[0, 1]
    inner = inner[inner[:, 1] >= y0 + bottom]
    rim = outer[-1]
    poly = [(0.0, y0), *outer.tolist(), (max(rim[0] - thickness, 0.0), rim[1])]
    poly += inner[::-1].tolist() + [(max(inner[0, 0], 0.0), y0 + bottom), (0.0, y0 + bottom)]
    return np.asarray(poly)


# --------------------------------------------------------------------------------------------
# categories: each returns (implicit function, bounds lo (3,), hi (3,), params)


def _bottle(rng):
    R = rng.uniform(0.16, 0.32)
    H = rng.uniform(0.4, 0.8)             # body height
    sh = rng.uniform(0.06, 0.25)          # shoulder height
    rn = rng.uniform(0.07, 0.12)          # neck radius
    hn = rng.uniform(0.08, 0.3)           # neck height
    prof = _smooth_profile([(R * 0.92, 0.0), (R, 0.03), (R, H), (rn, H + sh), (rn, H + sh + hn)])
    top = H + sh + hn
    poly = np.vstack([[0.0, 0.0], prof, [rn * 1.1, top], [rn * 1.1, top + 0.03], [0.0, top + 0.03]])
    m = R + 0.05
    return _revolve(poly), (-m, -0.05, -m), (m, top + 0.08, m), dict(radius=R, body=H, shoulder=sh,
                                                                     neck_radius=rn, neck=hn)


def _bowl(rng):
    R = rng.uniform(0.4, 0.6)             # rim radius
    D = rng.uniform(0.18, 0.45)           # depth
    rb = rng.uniform(0.12, 0.28)          # foot radius
    th = rng.uniform(0.05, 0.07)
    ts = np.linspace(0, 1, 12)
    outer = [(rb, 0.0)] + [(rb + (R - rb) * np.sin(0.5 * np.pi * t), D * (1 - np.cos(0.5 * np.pi * t)) + 0.02)
                           for t in ts[1:]]
    outer = [(rb * 0.9, 0.0), (rb, 0.02)] + outer[1:]
    poly = _shell_profile(np.asarray(outer), th, th * 1.2)
    m = R + 0.05
    return _revolve(poly), (-m, -0.05, -m), (m, D + 0.1, m), dict(radius=R, depth=D, foot=rb, wall=th)


def _can(rng):
    R = rng.uniform(0.18, 0.36)
    H = rng.uniform(0.4, 0.95)
    rim = rng.uniform(0.015, 0.035)
    poly = np.asarray([(0.0, 0.0), (R - rim * 1.5, 0.0), (R, rim * 2), (R, H - rim * 2), (R - rim * 1.5, H),
                       (R - rim * 1.5, H + 0.015), (0.0, H + 0.015)])
    m = R + 0.05
    return _revolve(poly), (-m, -0.05, -m), (m, H + 0.07, m), dict(radius=R, height=H, rim=rim)


def _mug(rng):
    R = rng.uniform(0.2, 0.32)
    H = rng.uniform(0.38, 0.7)
    th = rng.uniform(0.05, 0.07)
    taper = rng.uniform(0.75, 1.0)
    outer = np.asarray([(R * taper * 0.95, 0.0), (R * taper, 0.02), (R, H)])
    body = _revolve(_shell_profile(outer, th, th * 1.5))
    hr = rng.uniform(0.14, 0.2) * H / 0.55   # handle ring radius
    ht = rng.uniform(0.04, 0.055)            # handle tube radius
    cy = H * rng.uniform(0.45, 0.55)
    cx = R + hr * 0.55

    def handle(p):
        q = p - np.array([cx, cy, 0.0])
        tor = np.sqrt((np.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2) - hr) ** 2 + q[:, 2] ** 2) - ht
        return np.maximum(tor, (R * 0.98 - th * 0.5) - p[:, 0])  # no part inside the cavity

    m = max(R, cx + hr + ht) + 0.05
    return _union(body, handle), (-R - 0.05, -0.05, -R - 0.05), (m, H + 0.06, R + 0.05), dict(
        radius=R, height=H, wall=th, taper=taper, handle_radius=hr, handle_tube=ht)


def _laptop(rng):
    w = rng.uniform(0.55, 0.7)             # half width (x)
    d = rng.uniform(0.38, 0.48)            # half depth (z)
    tb = rng.uniform(0.03, 0.045)          # half thickness base
    tl = rng.uniform(0.025, 0.035)         # half thickness lid
    ang = np.deg2rad(rng.uniform(80, 135))  # opening angle
    base = _box((0, tb, 0), (w, tb, d), radius=0.01)
    # lid hinged at the back edge of the base (y = 2 tb, z = -d), opened by ``ang`` from the base;
    # it starts slightly inside the base so that lid and base form one solid
    hinge = np.array([0.0, 2 * tb - tl, -d + tl])
    rot = -ang  # lid plane rotated about x: local +z runs from the hinge up and backwards
    cdir = np.array([0.0, np.sin(ang), np.cos(ang)])
    ndir = np.array([0.0, np.cos(ang), -np.sin(ang)])
    lid_c = hinge + cdir * (d - tl) - ndir * tl
    lid = _box(lid_c, (w, tl, d), rot_x=rot, radius=0.008)
    top = hinge[1] + 2 * d * abs(cdir[1]) + 0.1
    return _union(base, lid), (-w - 0.05, -0.05, -d - 2 * d * abs(cdir[2]) - 0.1), (w + 0.05, top, d + 0.05), dict(
        half_width=w, half_depth=d, base=tb, lid=tl, opening_deg=float(np.rad2deg(ang)))


def _camera(rng):
    w = rng.uniform(0.4, 0.62)
    h = rng.uniform(0.22, 0.4)
    d = rng.uniform(0.13, 0.25)
    body = _box((0, h, 0), (w, h, d), radius=0.04)
    lr = rng.uniform(0.15, 0.24)
    ll = rng.uniform(0.12, 0.3)
    lx = rng.uniform(-0.1, 0.1) * w
    lens = _cylinder_z((lx, h * 0.95, d + ll / 2), lr, ll / 2 + 0.01)
    bw = rng.uniform(0.12, 0.2)
    bump = _box((-w * 0.55, 2 * h + 0.04, 0), (bw, 0.06, d * 0.7), radius=0.02)
    return _union(body, lens, bump), (-w - 0.05, -0.05, -d - 0.05), (w + 0.05, 2 * h + 0.15, d + ll + 0.06), dict(
        half_width=w, half_height=h, half_depth=d, lens_radius=lr, lens_length=ll)


_BUILDERS = {"bottle": _bottle, "bowl": _bowl, "can": _can, "mug": _mug, "laptop": _laptop, "camera": _camera}


def _mesh_implicit(fn, lo, hi, resolution: int) -> trimesh.Trimesh:
    from skimage import measure

    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    step = (hi - lo).max() / (resolution - 1)
    axes = [np.arange(lo[i], hi[i] + step, step) for i in range(3)]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    vals = np.concatenate([fn(g[s:s + 200000]) for s in range(0, len(g), 200000)])
    vol = vals.reshape(len(axes[0]), len(axes[1]), len(axes[2]))
    v, f, _, _ = measure.marching_cubes(vol, 0.0, spacing=(step, step, step))
    mesh = trimesh.Trimesh(v + lo, f, process=True)  # skimage: outward winding for values growing outward
    # keep the largest connected piece (marching cubes can leave specks at thin features)
    parts = mesh.split(only_watertight=False)
    if len(parts) > 1:
        mesh = max(parts, key=lambda m: len(m.faces))
    return mesh


def normalize_mesh(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, np.ndarray, float]:
    """Centre the bounding box at 0 and scale its half-diagonal to 1 (in place on a copy).

    Returns ``(mesh, offset (3,), scale)`` with ``normalized = (orig - offset) * scale``.
    """
    if len(mesh.vertices) == 0:
        raise InputError("normalize_mesh: mesh has no vertices")
    lo, hi = mesh.bounds
    half_diag = 0.5 * float(np.linalg.norm(hi - lo))
    if not np.isfinite(half_diag) or half_diag <= 0:
        raise InputError("normalize_mesh: mesh has a degenerate bounding box")
    offset = 0.5 * (lo + hi)
    out = mesh.copy()
    out.vertices = (np.asarray(mesh.vertices) - offset) / half_diag
    return out, offset, 1.0 / half_diag


# --------------------------------------------------------------------------------------------
# colour patterns


def _hsv(h, s, v):
    import colorsys

    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


def paint(vertices: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> tuple[np.ndarray, dict]:
    """Per-vertex colours (V, 3) float in [0, 1] for canonical vertices, and the pattern description.

    Patterns: ``stripes`` (bands along y or around the up axis), ``gradient`` (two colours along
    an axis), ``label`` (a band around the middle with its own colour and thin lines), ``dots``.
    """
    kind = kind or str(rng.choice(["stripes", "gradient", "label", "dots"]))
    h = rng.uniform()
    c1 = _hsv(h, rng.uniform(0.5, 0.95), rng.uniform(0.55, 0.95))
    c2 = _hsv(h + rng.uniform(0.25, 0.75), rng.uniform(0.3, 0.9), rng.uniform(0.35, 0.95))
    x, y, z = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    desc = {"kind": kind, "color1": c1.round(3).tolist(), "color2": c2.round(3).tolist()}
    if kind == "stripes":
        freq = rng.uniform(2.0, 5.0)
        if rng.uniform() < 0.5:
            t = y * freq
            desc["axis"] = "y"
        else:
            t = np.arctan2(z, x) / np.pi * np.round(freq)
            desc["axis"] = "around"
        w = (np.sin(np.pi * t) > 0).astype(float)
        desc["frequency"] = float(freq)
    elif kind == "gradient":
        ax = int(rng.integers(0, 3))
        t = (vertices[:, ax] - vertices[:, ax].min()) / max(np.ptp(vertices[:, ax]), 1e-6)
        w = t
        desc["axis"] = "xyz"[ax]
    elif kind == "label":
        lo_y, hi_y = y.min(), y.max()
        a = lo_y + (hi_y - lo_y) * rng.uniform(0.2, 0.4)
        b = lo_y + (hi_y - lo_y) * rng.uniform(0.55, 0.75)
        band = (y > a) & (y < b)
        lines = np.abs(np.sin(np.pi * (y - a) / max(b - a, 1e-6) * 4)) < 0.25
        w = band.astype(float)
        w = np.where(band & lines, 0.35, w)
        desc["band"] = [float(a), float(b)]
    elif kind == "dots":
        n = int(rng.integers(6, 14))
        centers = rng.normal(size=(n, 3))
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        dirs = vertices / np.maximum(np.linalg.norm(vertices, axis=1, keepdims=True), 1e-6)
        w = ((dirs @ centers.T).max(1) > 0.93).astype(float)
        desc["dots"] = n
    else:
        raise InputError(f"unknown colour pattern '{kind}' (stripes|gradient|label|dots)")
    col = (1 - w)[:, None] * c1 + w[:, None] * c2
    return np.clip(col, 0, 1), desc


def make_object(category: str, seed: int, resolution: int = 96, pattern: str | None = None) -> ProceduralObject:
    """Build the procedural object ``(category, seed)``: watertight, normalised, coloured.

    ``resolution`` is the marching-cubes grid resolution along the longest side.
    """
    if category not in _BUILDERS:
        raise InputError(f"unknown category '{category}'. Categories: {', '.join(CATEGORIES)}.")
    rng = np.random.default_rng([CATEGORIES.index(category), int(seed)])
    fn, lo, hi, params = _BUILDERS[category](rng)
    mesh = _mesh_implicit(fn, lo, hi, resolution)
    mesh, _, _ = normalize_mesh(mesh)
    colors, desc = paint(np.asarray(mesh.vertices), rng, pattern)
    rgba = np.concatenate([np.rint(colors * 255), np.full((len(colors), 1), 255)], 1).astype(np.uint8)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=rgba)
    params = {k: float(v) for k, v in params.items()}
    return ProceduralObject(mesh, category, int(seed), params, desc)


def object_set(categories=CATEGORIES, per_category: int = 6, seed_offset: int = 0,
               resolution: int = 96) -> list[ProceduralObject]:
    """``per_category`` objects per category with seeds ``seed_offset + i`` (use a different offset
    for held-out instances)."""
    return [make_object(c, seed_offset + i, resolution) for c in categories for i in range(per_category)]
