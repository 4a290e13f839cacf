"""The viewer's 3D view and the geometry it draws.

:class:`SceneView` wraps one ``rendering.Open3DScene``: the scene of a ``gui.SceneWidget`` inside
the application window (interactive use and the GUI tests), or the scene of an
``OffscreenRenderer`` (headless ``--screenshot`` when no display is available). Everything the
panels draw goes through :meth:`SceneView.set` / :meth:`SceneView.remove` by name, so the two
backends draw exactly the same thing.

Helpers turn data into Open3D geometries: :func:`polyline_lineset` (uniform strands ``(S, P, 3)``,
one colour per point), :func:`mesh_geometry` (trimesh -> coloured ``TriangleMesh``),
:func:`point_geometry` and :func:`box_lineset`; the colour maps used by the panels are here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import open3d as o3d
from open3d.visualization import rendering

from latent4d.geometry.rgbd import orbit_eye
from latent4d.render import with_uvs

BACKGROUND = (1.0, 1.0, 1.0, 1.0)
HEAD_COLOR = (0.78, 0.78, 0.80)
DEFAULT_FOV = 40.0


@dataclass
class Style:
    """How a named geometry is drawn: ``kind`` is ``lit`` (meshes), ``unlit`` (points), ``line``."""

    kind: str = "lit"
    point_size: float = 3.0
    line_width: float = 1.0
    opacity: float = 1.0

    def material(self) -> rendering.MaterialRecord:
        mat = rendering.MaterialRecord()
        if self.kind == "line":
            mat.shader = "unlitLine"
            mat.line_width = float(self.line_width)
        elif self.kind == "unlit":
            mat.shader = "defaultUnlit"
            mat.point_size = float(self.point_size)
        elif self.opacity < 1.0:
            mat.shader = "defaultLitTransparency"
            mat.base_color = [1.0, 1.0, 1.0, float(self.opacity)]
        else:
            mat.shader = "defaultLit"
        if mat.shader.startswith("defaultLit"):
            mat.base_roughness = 0.8  # matte: no hot specular spot from the headlight
        return mat


def style_for(geom) -> Style:
    if isinstance(geom, o3d.geometry.LineSet):
        return Style("line")
    if isinstance(geom, o3d.geometry.PointCloud):
        return Style("unlit")
    return Style("lit")


class SceneView:
    """Named geometries in one Open3D scene, a camera that frames them, and image capture.

    Args:
        widget: a ``gui.SceneWidget`` whose ``scene`` is set (windowed mode), or None.
        window: the ``gui.Window`` holding ``widget`` (needed to pump redraws), or None.
        size: ``(width, height)`` of the offscreen image when ``widget`` is None.
    """

    def __init__(self, widget=None, window=None, size: tuple[int, int] = (640, 480)):
        self.widget = widget
        self.window = window
        self._renderer = None
        if widget is None:
            self._renderer = rendering.OffscreenRenderer(int(size[0]), int(size[1]))
            self.scene = self._renderer.scene
        else:
            self.scene = widget.scene
        self.scene.set_background(list(BACKGROUND))
        # no post-processing (tone mapping / colour grading): white stays white and colours are drawn as
        # given, so what the panels choose is what the screenshots show
        self.scene.view.set_post_processing(False)
        # no shadow maps and no MSAA: on a software rasteriser (llvmpipe) shadow-map passes dominate the
        # frame time and some view / light directions made single frames take minutes
        self.scene.view.set_shadowing(False, rendering.View.ShadowType.PCF)
        self.scene.view.set_sample_count(1)
        self.scene.set_lighting(
            rendering.Open3DScene.LightingProfile.NO_SHADOWS, np.array([0.3, -0.8, -0.5], np.float32)
        )
        self.scene.scene.set_indirect_light_intensity(30000)
        self.scene.scene.enable_sun_light(True)
        self._size = (int(size[0]), int(size[1]))
        self.items: dict[str, tuple[Style, tuple[np.ndarray, np.ndarray] | None]] = {}
        self.hidden: set[str] = set()
        self.azimuth, self.elevation, self.fov = 30.0, 10.0, DEFAULT_FOV
        self._frame: tuple[np.ndarray, float] | None = None

    # ------------------------------------------------------------------ geometry
    def set(self, name: str, geom, style: Style | None = None, visible: bool = True) -> None:
        """Add ``geom`` under ``name`` (replacing what was there)."""
        style = style or style_for(geom)
        if self.scene.has_geometry(name):
            self.scene.remove_geometry(name)
        empty = hasattr(geom, "is_empty") and geom.is_empty()
        bounds = (
            None
            if empty
            else (np.asarray(geom.get_min_bound(), np.float64), np.asarray(geom.get_max_bound(), np.float64))
        )
        if not empty:
            self.scene.add_geometry(name, with_uvs(geom), style.material())
            self.scene.show_geometry(name, visible and name not in self.hidden)
        self.items[name] = (style, bounds)
        self._redraw()

    def remove(self, name: str) -> None:
        if self.scene.has_geometry(name):
            self.scene.remove_geometry(name)
        self.items.pop(name, None)
        self._redraw()

    def remove_prefix(self, prefix: str) -> None:
        for name in [n for n in self.items if n.startswith(prefix)]:
            self.remove(name)

    def has(self, name: str) -> bool:
        return name in self.items

    def names(self) -> list[str]:
        return sorted(self.items)

    def show(self, name: str, visible: bool) -> None:
        """Show or hide ``name`` (remembered for geometries set later under the same name)."""
        if visible:
            self.hidden.discard(name)
        else:
            self.hidden.add(name)
        if self.scene.has_geometry(name):
            self.scene.show_geometry(name, visible)
        self._redraw()

    def is_visible(self, name: str) -> bool:
        return name in self.items and name not in self.hidden

    def clear(self) -> None:
        self.scene.clear_geometry()
        self.items.clear()
        self._redraw()

    def bounds(self, prefix: str = "") -> tuple[np.ndarray, float]:
        """Centre and radius of the visible geometries whose name starts with ``prefix``."""
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for name, (_, b) in self.items.items():
            if b is None or not name.startswith(prefix) or name in self.hidden:
                continue
            lo, hi = np.minimum(lo, b[0]), np.maximum(hi, b[1])
        if not np.isfinite(lo).all():
            return np.zeros(3), 1.0
        return (lo + hi) / 2, max(float(np.linalg.norm(hi - lo)) / 2, 1e-3)

    # -------------------------------------------------------------------- camera
    def view_size(self) -> tuple[int, int]:
        if self.widget is not None:
            f = self.widget.frame
            return max(int(f.width), 1), max(int(f.height), 1)
        return self._size

    def reset_camera(
        self,
        center=None,
        radius: float | None = None,
        azimuth: float | None = None,
        elevation: float | None = None,
    ) -> None:
        """Frame ``center``/``radius`` (default: everything visible) from ``azimuth``/``elevation`` degrees."""
        if azimuth is not None:
            self.azimuth = float(azimuth)
        if elevation is not None:
            self.elevation = float(elevation)
        c, r = self.bounds()
        c = c if center is None else np.asarray(center, np.float64)
        r = r if radius is None else float(radius)
        self._frame = (c, r)
        w, h = self.view_size()
        # fit the bounding sphere in the narrower field of view
        half = math.radians(self.fov) / 2
        if w < h:
            half = math.atan(math.tan(half) * w / h)
        eye = orbit_eye(c, r / math.sin(half) * 1.08, self.azimuth, self.elevation)
        up = np.array([0.0, 1.0, 0.0], np.float32)
        c32, eye32 = c.astype(np.float32), eye.astype(np.float32)
        # a headlight from the camera, slightly from above
        light = (c - eye) / max(np.linalg.norm(c - eye), 1e-9) + np.array([0.0, -0.3, 0.0])
        self.scene.scene.set_sun_light(
            (light / np.linalg.norm(light)).astype(np.float32), [1.0, 1.0, 1.0], 45000
        )
        if self.widget is not None:
            bbox = o3d.geometry.AxisAlignedBoundingBox(c - r, c + r)
            self.widget.setup_camera(self.fov, bbox, c32)
            self.widget.look_at(c32, eye32, up)
        else:
            self._renderer.setup_camera(self.fov, c32, eye32, up)
        self._redraw()

    def orbit(self, azimuth: float, elevation: float | None = None) -> None:
        """Turn the camera about the framed centre (keeps the framing)."""
        c, r = self._frame if self._frame is not None else self.bounds()
        self.reset_camera(c, r, azimuth, elevation)

    def project(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates ``(N, 2)`` (x right, y down, in the view) and view depth ``(N,)`` (> 0 in front)."""
        cam = self.scene.camera
        V = np.asarray(cam.get_view_matrix(), np.float64)
        P = np.asarray(cam.get_projection_matrix(), np.float64)
        p = np.asarray(points, np.float64).reshape(-1, 3)
        ph = np.concatenate([p, np.ones((len(p), 1))], 1)
        v = ph @ V.T
        clip = v @ P.T
        w = np.where(np.abs(clip[:, 3:4]) > 1e-12, clip[:, 3:4], 1e-12)
        ndc = clip[:, :3] / w
        W, H = self.view_size()
        xy = np.stack([(ndc[:, 0] + 1) / 2 * W, (1 - ndc[:, 1]) / 2 * H], 1)
        return xy, -v[:, 2]

    def unproject(self, x: float, y: float, ref_point) -> np.ndarray:
        """The world point under pixel ``(x, y)`` on the plane through ``ref_point`` facing the camera."""
        cam = self.scene.camera
        V = np.asarray(cam.get_view_matrix(), np.float64)
        P = np.asarray(cam.get_projection_matrix(), np.float64)
        W, H = self.view_size()
        ndc = np.array([2 * x / W - 1, 1 - 2 * y / H])
        ref_v = V @ np.append(np.asarray(ref_point, np.float64), 1.0)
        depth = -ref_v[2]
        # perspective: x_ndc = P00 * xv / depth + P02 * zv / -depth ...; solve for xv, yv at zv = -depth
        xv = (ndc[0] * depth - P[0, 2] * -depth) / P[0, 0] if P[3, 2] != 0 else (ndc[0] - P[0, 3]) / P[0, 0]
        yv = (ndc[1] * depth - P[1, 2] * -depth) / P[1, 1] if P[3, 2] != 0 else (ndc[1] - P[1, 3]) / P[1, 1]
        pv = np.array([xv, yv, ref_v[2], 1.0])
        return (np.linalg.inv(V) @ pv)[:3]

    # -------------------------------------------------------------------- images
    def render(self, timeout: float = 60.0) -> np.ndarray:
        """The view as an ``(H, W, 3)`` uint8 image (windowed mode pumps the event loop until drawn).

        Not for use inside a GUI callback (it runs the event loop); use :meth:`render_async` there.
        """
        if self._renderer is not None:
            return np.asarray(self._renderer.render_to_image()).copy()
        from open3d.visualization import gui

        # synchronous: the scene is drawn into an offscreen target by the window's renderer now
        # (the asynchronous Scene.render_to_image request can wait for a redraw that never comes)
        W, H = self.view_size()
        img = gui.Application.instance.render_to_image(self.scene, W, H)
        return np.asarray(img)[..., :3].copy()

    def render_async(self, callback: Callable[[np.ndarray], None]) -> None:
        """Ask for the next drawn frame; ``callback(image)`` runs on the main thread once it exists."""
        if self._renderer is not None:
            callback(self.render())
            return
        self.scene.scene.render_to_image(lambda im: callback(np.asarray(im)[..., :3].copy()))
        self.widget.force_redraw()
        self._redraw()

    def _redraw(self) -> None:
        if self.window is not None:
            self.window.post_redraw()

    def close(self) -> None:
        """Release the offscreen renderer. Its geometry goes first: Filament aborts the process when a
        renderer is destroyed while a material instance is still used by a renderable."""
        if self._renderer is not None:
            self.scene.clear_geometry()
            self.items.clear()
            self.scene = None
            self._renderer = None


# ------------------------------------------------------------------------ geometry helpers
def polyline_lineset(
    strands: np.ndarray, colors: np.ndarray | None = None, color=None
) -> o3d.geometry.LineSet:
    """LineSet of uniform polylines ``(S, P, 3)``; ``colors`` per point ``(S, P, 3)`` or one ``color``."""
    x = np.asarray(strands, np.float64)
    S, P, _ = x.shape
    base = (np.arange(S) * P)[:, None]
    seg = np.arange(P - 1)[None]
    a = (base + seg).ravel()
    lines = np.stack([a, a + 1], 1).astype(np.int32)
    ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(x.reshape(-1, 3)), o3d.utility.Vector2iVector(lines))
    if colors is not None:
        c = np.asarray(colors, np.float64).reshape(S, P, 3)[:, :-1].reshape(-1, 3)
        ls.colors = o3d.utility.Vector3dVector(np.ascontiguousarray(c))
    elif color is not None:
        ls.paint_uniform_color(np.asarray(color, np.float64))
    return ls


def mesh_geometry(mesh, color=None, vertex_colors: np.ndarray | None = None) -> o3d.geometry.TriangleMesh:
    """A trimesh (or vertices/faces pair) as a lit Open3D mesh with vertex colours and normals."""
    import trimesh

    if isinstance(mesh, tuple):
        v, f = mesh
        mesh = trimesh.Trimesh(np.asarray(v), np.asarray(f), process=False)
    m = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(mesh.vertices, np.float64)),
        o3d.utility.Vector3iVector(np.asarray(mesh.faces, np.int32)),
    )
    if vertex_colors is not None:
        m.vertex_colors = o3d.utility.Vector3dVector(np.asarray(vertex_colors, np.float64)[:, :3])
    elif color is not None:
        m.paint_uniform_color(np.asarray(color, np.float64))
    else:
        vc = None
        try:
            if mesh.visual.kind == "vertex":
                vc = np.asarray(mesh.visual.vertex_colors)
            elif mesh.visual.kind == "texture":
                vc = np.asarray(mesh.visual.to_color().vertex_colors)
            elif mesh.visual.kind == "face":
                vc = np.asarray(mesh.visual.vertex_colors)
        except Exception:  # noqa: BLE001 - a mesh without usable colours is drawn grey
            vc = None
        if vc is not None and len(vc) == len(mesh.vertices):
            m.vertex_colors = o3d.utility.Vector3dVector(vc[:, :3].astype(np.float64) / 255.0)
        else:
            m.paint_uniform_color(np.array([0.72, 0.72, 0.75]))
    m.compute_vertex_normals()
    return m


def point_geometry(points, colors=None, color=(0.1, 0.35, 0.9)) -> o3d.geometry.PointCloud:
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64).reshape(-1, 3)))
    if colors is not None:
        c = np.asarray(colors, np.float64).reshape(-1, 3)
        pc.colors = o3d.utility.Vector3dVector(c / 255.0 if c.max() > 1.0 else c)
    else:
        pc.paint_uniform_color(np.asarray(color, np.float64))
    return pc


def box_lineset(corners: np.ndarray, color=(0.1, 0.7, 0.2)) -> o3d.geometry.LineSet:
    """The 12 edges of a box from its 8 corners ordered as ``itertools.product([0, 1], repeat=3)``."""
    edges = [(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 3), (2, 6), (3, 7), (4, 5), (4, 6), (5, 7), (6, 7)]
    ls = o3d.geometry.LineSet(
        o3d.utility.Vector3dVector(np.asarray(corners, np.float64)),
        o3d.utility.Vector2iVector(np.asarray(edges, np.int32)),
    )
    ls.paint_uniform_color(np.asarray(color, np.float64))
    return ls


def oriented_box_corners(center, rotation, size) -> np.ndarray:
    """(8, 3) corners of a box with ``center (3,)``, ``rotation (3, 3)`` (columns = box axes), ``size (3,)``."""
    unit = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], np.float64) - 0.5
    return np.asarray(center, np.float64) + (unit * np.asarray(size, np.float64)) @ np.asarray(rotation).T


# ------------------------------------------------------------------------------ colours
def colormap(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Blue -> cyan -> yellow -> red colours ``(..., 3)`` for scalar ``values`` (robust range by default)."""
    v = np.asarray(values, np.float64)
    finite = v[np.isfinite(v)]
    if lo is None:
        lo = float(np.percentile(finite, 2)) if finite.size else 0.0
    if hi is None:
        hi = float(np.percentile(finite, 98)) if finite.size else 1.0
    t = np.clip((v - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    t = np.nan_to_num(t)
    stops = np.array([[0.10, 0.20, 0.85], [0.05, 0.75, 0.85], [0.95, 0.85, 0.10], [0.85, 0.10, 0.08]])
    x = t * (len(stops) - 1)
    i = np.clip(np.floor(x).astype(int), 0, len(stops) - 2)
    f = (x - i)[..., None]
    return stops[i] * (1 - f) + stops[i + 1] * f


def index_colors(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) distinct, fairly saturated colours (golden-ratio hues)."""
    h = (np.arange(n) * 0.618033988749895 + 0.13 * seed) % 1.0
    s, v = 0.75, 0.85
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [
            np.stack([np.full(n, v), t, np.full(n, p)], 1),
            np.stack([q, np.full(n, v), np.full(n, p)], 1),
            np.stack([np.full(n, p), np.full(n, v), t], 1),
            np.stack([np.full(n, p), q, np.full(n, v)], 1),
            np.stack([t, np.full(n, p), np.full(n, v)], 1),
            np.stack([np.full(n, v), np.full(n, p), q], 1),
        ]
    )
    return table[i, np.arange(n)]


def position_colors(points: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Colours from positions normalised to the bounding box of ``reference`` (default: ``points``)."""
    ref = np.asarray(points if reference is None else reference, np.float64)
    lo, hi = ref.min(0), ref.max(0)
    return np.clip((np.asarray(points, np.float64) - lo) / np.maximum(hi - lo, 1e-9), 0, 1) * 0.8 + 0.1
