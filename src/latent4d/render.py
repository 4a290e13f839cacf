"""PNG renders of meshes, hair line sets and point clouds.

``render_png(items, path)`` accepts trimesh meshes, Open3D geometries (TriangleMesh, PointCloud,
LineSet) and (N, 3) arrays (drawn as point clouds); the camera frames everything from an
azimuth / elevation (degrees, Y up). Files are written atomically.

Two backends draw the same scene with the same camera: ``"software"`` (default; the numpy
z-buffer rasteriser in ``latent4d.raster``: deterministic, no graphics stack) and ``"open3d"``
(Open3D's Filament OffscreenRenderer). Pick one with ``backend=`` or ``LATENT4D_RENDER``. The default
is the software one because, without a GPU, Filament runs on Mesa's llvmpipe, where a large hair
render sometimes stalled for many minutes (it did in CI); figures must not hang a script. The
likely cause (lit meshes without UVs, see :func:`with_uvs`) is mended, but the default stays.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import open3d as o3d
import trimesh

from latent4d.errors import InputError
from latent4d.fileio import atomic_path

o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)


def with_uvs(geom):
    """``geom`` with all-zero per-corner UVs when it is a ``TriangleMesh`` without any (in place).

    Without UVs, the tangent frames Filament derives for lit meshes are read from uninitialised
    memory; depending on the heap (e.g. whether trimesh was imported before the renderer was made)
    llvmpipe then spent 20-230 s per frame on a 1280-triangle head instead of 0.2 s. Zero UVs draw
    the same image (untextured materials ignore them) at full speed.
    """
    if isinstance(geom, o3d.geometry.TriangleMesh) and len(geom.triangles) and not geom.has_triangle_uvs():
        geom.triangle_uvs = o3d.utility.Vector2dVector(np.zeros((3 * len(geom.triangles), 2)))
    return geom


def to_open3d(item: Any, color=None):
    """Convert a trimesh mesh / point array to an Open3D legacy geometry (others pass through)."""
    if isinstance(item, trimesh.Trimesh):
        m = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(np.asarray(item.vertices, np.float64)),
            o3d.utility.Vector3iVector(np.asarray(item.faces, np.int32)),
        )
        vc = getattr(item.visual, "vertex_colors", None)
        if color is not None:
            m.paint_uniform_color(np.asarray(color, np.float64))
        elif getattr(item.visual, "kind", None) == "vertex" and vc is not None and len(vc) == len(item.vertices):
            m.vertex_colors = o3d.utility.Vector3dVector(np.asarray(vc)[:, :3] / 255.0)
        else:
            m.paint_uniform_color([0.75, 0.75, 0.78])
        m.compute_vertex_normals()
        return with_uvs(m)
    if isinstance(item, np.ndarray | list) or hasattr(item, "numpy"):
        pts = np.asarray(item.detach().cpu() if hasattr(item, "detach") else item, np.float64).reshape(-1, 3)
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
        pc.paint_uniform_color(np.asarray(color if color is not None else [0.1, 0.3, 0.9], np.float64))
        return pc
    if isinstance(item, o3d.geometry.Geometry3D):
        return item
    raise InputError(f"cannot render an object of type {type(item).__name__}")


def _material(geom, point_size: float, line_width: float):
    mat = o3d.visualization.rendering.MaterialRecord()
    if isinstance(geom, o3d.geometry.LineSet):
        mat.shader = "unlitLine"
        mat.line_width = line_width
    elif isinstance(geom, o3d.geometry.PointCloud):
        mat.shader = "defaultUnlit"
        mat.point_size = point_size
    else:
        mat.shader = "defaultLit"
    return mat


def _bounds(geoms) -> tuple[np.ndarray, float]:
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for g in geoms:
        if hasattr(g, "is_empty") and g.is_empty():
            continue
        lo = np.minimum(lo, g.get_min_bound())
        hi = np.maximum(hi, g.get_max_bound())
    if not np.isfinite(lo).all():
        return np.zeros(3), 1.0
    return (lo + hi) / 2, max(float(np.linalg.norm(hi - lo)) / 2, 1e-3)


BACKENDS = ("software", "open3d")
MAX_SIDE = 16384  # pixels per image side (an (H, W, 3) float z-buffer of 16k x 16k is ~6 GiB already)
MAX_VIEWS = 3600


def check_size(width, height) -> tuple[int, int]:
    """``(width, height)`` as ints in [1, :data:`MAX_SIDE`] pixels (whole numbers; ``640.0`` is fine);
    InputError naming both otherwise."""
    ok = all(
        isinstance(v, int | float | np.integer | np.floating)
        and not isinstance(v, bool)
        and math.isfinite(v)
        and float(v).is_integer()
        for v in (width, height)
    )
    if not ok or not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise InputError(
            f"render size {width!r} x {height!r} is not valid: expected whole numbers of pixels "
            f"from 1 to {MAX_SIDE}"
        )
    return int(width), int(height)


def check_finite(geoms) -> None:
    """Refuse geometries with NaN / infinite coordinates (they would frame and draw silently wrong)."""
    for i, g in enumerate(geoms):
        pts = (
            getattr(g, "vertices", None)
            if isinstance(g, o3d.geometry.TriangleMesh)
            else getattr(g, "points", None)
        )
        if pts is not None and len(pts) and not np.isfinite(np.asarray(pts)).all():
            raise InputError(f"render item {i} ({type(g).__name__}) has NaN or infinite coordinates")


def _eye(c: np.ndarray, r: float, azimuth: float, elevation: float, fov: float) -> np.ndarray:
    from latent4d.geometry.rgbd import orbit_eye

    return orbit_eye(c, r / math.sin(math.radians(fov) / 2) * 1.05, azimuth, elevation)


def render_image(
    items: list[Any],
    width: int = 640,
    height: int = 480,
    azimuth: float = 30.0,
    elevation: float = 20.0,
    fov: float = 40.0,
    background=(1.0, 1.0, 1.0),
    point_size: float = 3.0,
    line_width: float = 1.5,
    center=None,
    radius=None,
    backend: str | None = None,
) -> np.ndarray:
    """Render ``items`` to an (H, W, 3) uint8 image (``backend``: see the module docstring)."""
    backend = backend or os.environ.get("LATENT4D_RENDER", "software")
    if backend not in BACKENDS:
        raise InputError(f"unknown render backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    width, height = check_size(width, height)
    geoms = [to_open3d(it) for it in items]
    check_finite(geoms)
    c, r = _bounds(geoms)
    c = c if center is None else np.asarray(center, np.float64)
    r = r if radius is None else float(radius)
    eye = _eye(c, r, azimuth, elevation, fov)
    if backend == "software":
        return _render_software(geoms, width, height, c, eye, fov, background, point_size, line_width)
    return _render_open3d(geoms, width, height, c, eye, fov, background, point_size, line_width)


def _colors(geom, n: int, default) -> np.ndarray:
    """(n, 3) colours of a geometry's vertices / lines / points, ``default`` where it has none."""
    cols = np.asarray(geom.vertex_colors if isinstance(geom, o3d.geometry.TriangleMesh) else geom.colors)
    if len(cols) == n:
        return cols.astype(np.float64)
    return np.tile(np.asarray(default, np.float64), (n, 1))


def _render_software(geoms, width, height, c, eye, fov, background, point_size, line_width) -> np.ndarray:
    from latent4d import raster

    cam = raster.Camera(eye=eye, center=c, fov=fov, width=int(width), height=int(height))
    zb = raster.ZBuffer(width, height, background)
    for g in geoms:
        if isinstance(g, o3d.geometry.TriangleMesh):
            v, f = np.asarray(g.vertices, np.float64), np.asarray(g.triangles, np.int64)
            raster.draw_triangles(zb, cam, v, f, _colors(g, len(v), [0.7, 0.7, 0.7]))
        elif isinstance(g, o3d.geometry.LineSet):
            ln = np.asarray(g.lines, np.int64)
            raster.draw_lines(
                zb,
                cam,
                np.asarray(g.points, np.float64),
                ln,
                _colors(g, len(ln), [0, 0, 0]),
                width=line_width,
            )
        elif isinstance(g, o3d.geometry.PointCloud):
            p = np.asarray(g.points, np.float64)
            raster.draw_points(zb, cam, p, _colors(g, len(p), [0.1, 0.3, 0.9]), size=point_size)
        else:
            raise InputError(f"the software renderer cannot draw a {type(g).__name__}")
    return zb.image()


def _render_open3d(geoms, width, height, c, eye, fov, background, point_size, line_width) -> np.ndarray:
    renderer = o3d.visualization.rendering.OffscreenRenderer(width, height)
    try:
        scene = renderer.scene
        scene.set_background([*background, 1.0])
        # no shadow maps and no MSAA: on a software rasteriser (Mesa llvmpipe / lavapipe) shadow-map
        # passes made some frames take many minutes (a demo render under pytest spun for 25 min)
        rendering = o3d.visualization.rendering
        scene.view.set_shadowing(False, rendering.View.ShadowType.PCF)
        scene.view.set_sample_count(1)
        for i, g in enumerate(geoms):
            scene.add_geometry(f"g{i}", with_uvs(g), _material(g, point_size, line_width))
        renderer.setup_camera(
            fov, c.astype(np.float32), eye.astype(np.float32), np.array([0, 1, 0], np.float32)
        )
        scene.scene.set_sun_light((c - eye) / np.linalg.norm(c - eye), [1.0, 1.0, 1.0], 60000)  # headlight
        scene.scene.enable_sun_light(True)
        img = np.asarray(renderer.render_to_image()).copy()
    finally:
        renderer.scene.clear_geometry()  # Filament aborts when materials still in use are destroyed
        del renderer
    return img


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3|4) uint8 image as PNG atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG")
    return Path(path)


def render_png(items: list[Any], path: str | Path, **kwargs) -> Path:
    """Render ``items`` (see :func:`render_image`) and write a PNG."""
    return save_png(render_image(items, **kwargs), path)


def render_turntable(
    items: list[Any], path: str | Path, views: int = 8, elevation: float = 20.0, gif: bool = True, **kwargs
) -> list[Path]:
    """``views`` PNGs around the vertical axis (``<stem>_00.png``...) and an animated GIF when asked."""
    path = Path(path)
    if isinstance(views, bool) or not isinstance(views, int | np.integer) or not 1 <= views <= MAX_VIEWS:
        raise InputError(
            f"render_turntable: views={views!r} is not valid: expected a whole number from 1 to {MAX_VIEWS}"
        )
    frames, paths = [], []
    geoms = [to_open3d(it) for it in items]
    check_finite(geoms)
    c, r = _bounds(geoms)
    for i in range(views):
        img = render_image(
            geoms, azimuth=360.0 * i / views, elevation=elevation, center=c, radius=r, **kwargs
        )
        p = save_png(img, path.with_name(f"{path.stem}_{i:02d}.png"))
        frames.append(img)
        paths.append(p)
    if gif:
        import imageio.v2 as imageio

        with atomic_path(path.with_suffix(".gif")) as tmp:
            imageio.mimsave(tmp, list(frames), format="GIF", duration=0.25, loop=0)
        paths.append(path.with_suffix(".gif"))
    return paths
