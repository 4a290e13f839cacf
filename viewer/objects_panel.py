"""The objects panel: meshes, point clouds and RGB-D observations; with an objects run, the
reconstructed shapes in their poses with their boxes, code sliders and a live optimisation.

Files:

- meshes (``.obj``/``.ply`` with faces/``.glb``/``.gltf``/``.off``/``.stl``, via trimesh; vertex colours or
  textures baked to vertex colours) are added to the scene (several can be open);
- point clouds (``.ply``/``.pcd``/``.xyz`` without faces) are drawn as observed points;
- an RGB-D frame: a 16-bit depth PNG in millimetres, a colour PNG, an optional instance mask PNG and
  an intrinsics JSON (``{"K": 3x3}`` or ``fx, fy, cx, cy``), given as the folder holding them or as
  the depth PNG (siblings found by name: ``[prefix]depth.png``, ``[prefix]color.png`` /
  ``rgb.png``, ``[prefix]mask.png``, ``[prefix]intrinsics.json`` / ``camera.json``). The depth
  is back-projected (``latent4d.geometry.backproject_depth``) into the observed point cloud.

The RGB-D camera frame is OpenCV's (x right, y down, z forward); the viewer draws observations
in OpenGL's (x right, y up, z backward) so that the initial view is the camera's own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from latent4d.viewer import ui
from latent4d.viewer.scene import Style, box_lineset, index_colors, mesh_geometry, point_geometry

from latent4d.errors import InputError

MESH_EXTS = (".obj", ".ply", ".glb", ".gltf", ".off", ".stl")
POINT_EXTS = (".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")
CV_TO_GL = np.diag([1.0, -1.0, -1.0])
COLOR_MODES = ("rgb", "instance")


@dataclass
class MeshItem:
    path: Path
    mesh: object  # trimesh.Trimesh


@dataclass
class CloudItem:
    path: Path
    points: np.ndarray  # (N, 3)
    colors: np.ndarray | None = None  # (N, 3) in [0, 1]


@dataclass
class FrameItem:
    """An RGB-D frame: depth (H, W) metres, rgb (H, W, 3) uint8, mask (H, W) int or None, K (3, 3)."""

    path: Path
    depth: np.ndarray
    rgb: np.ndarray | None
    mask: np.ndarray | None
    K: np.ndarray

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """Observed points (OpenGL camera frame) and their pixels (row, col)."""
        from latent4d.geometry.rgbd import backproject_depth

        pts, pix = backproject_depth(self.depth, self.K)
        return (pts.astype(np.float64) @ CV_TO_GL).astype(np.float32), pix


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im)
    except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
        raise InputError(f"{path}: cannot read image ({type(e).__name__}: {e})") from e


def read_intrinsics(path: Path) -> np.ndarray:
    from latent4d.geometry.rgbd import check_intrinsics

    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from e
    if isinstance(d, dict) and "intrinsics" in d:
        d = d["intrinsics"]
    if isinstance(d, dict) and "K" in d:
        K = np.asarray(d["K"], np.float64)
        K = K.reshape(3, 3) if K.size == 9 else K
    elif isinstance(d, dict) and {"fx", "fy", "cx", "cy"} <= set(d):
        K = np.array([[d["fx"], 0, d["cx"]], [0, d["fy"], d["cy"]], [0, 0, 1]], np.float64)
    elif isinstance(d, list):
        K = np.asarray(d, np.float64).reshape(3, 3) if np.asarray(d).size == 9 else np.asarray(d)
    else:
        raise InputError(f"{path}: intrinsics JSON needs 'K' (3x3) or 'fx', 'fy', 'cx', 'cy'")
    try:
        return check_intrinsics(K)
    except InputError as e:
        raise InputError(f"{path}: {e}") from e


def find_frame_files(path: Path) -> dict[str, Path]:
    """The files of an RGB-D frame given its folder or its depth PNG (see module docstring)."""
    folder = path if path.is_dir() else path.parent
    prefix = ""
    if path.is_file():
        if "depth" not in path.stem.lower():
            raise InputError(f"{path}: expected the depth PNG of an RGB-D frame (a name with 'depth')")
        prefix = path.name[: path.name.lower().rfind("depth")]
    files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    pre = prefix.lower()

    def first(*names):
        for n in names:
            if (pre + n) in files:
                return files[pre + n]
        return None

    out = {"depth": path if path.is_file() else first("depth.png")}
    if out["depth"] is None:
        cands = sorted(p for n, p in files.items() if "depth" in n and n.endswith(".png"))
        if not cands:
            raise InputError(f"{folder}: no depth PNG (depth.png) in this RGB-D frame folder")
        out["depth"] = cands[0]
        pre = cands[0].name.lower()[: cands[0].name.lower().rfind("depth")]  # siblings share its prefix
    out["color"] = first("color.png", "colour.png", "rgb.png", "image.png")
    out["mask"] = first("mask.png", "instances.png", "seg.png")
    out["intrinsics"] = first("intrinsics.json", "camera.json", "k.json")
    if out["intrinsics"] is None:
        js = sorted(p for n, p in files.items() if n.endswith(".json"))
        if not js:
            raise InputError(f"{folder}: no intrinsics JSON (intrinsics.json) for the depth image {out['depth'].name}")
        out["intrinsics"] = js[0]
    return out


def read_frame(path: Path) -> FrameItem:
    files = find_frame_files(path)
    d = _read_png(files["depth"])
    if d.ndim != 2 or d.dtype not in (np.uint16, np.int32, np.uint32, np.int16):
        raise InputError(f"{files['depth']}: expected a 16-bit single-channel depth PNG in millimetres, "
                         f"got dtype {d.dtype} shape {d.shape}")
    depth = d.astype(np.float32) / 1000.0
    if not (depth > 0).any():
        raise InputError(f"{files['depth']}: no valid depth (every pixel is 0)")
    K = read_intrinsics(files["intrinsics"])
    rgb = mask = None
    if files["color"] is not None:
        rgb = _read_png(files["color"])
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, -1)
        rgb = rgb[..., :3].astype(np.uint8)
        if rgb.shape[:2] != depth.shape:
            raise InputError(f"{files['color']}: size {rgb.shape[1]}x{rgb.shape[0]} does not match the depth "
                             f"image {depth.shape[1]}x{depth.shape[0]}")
    if files["mask"] is not None:
        mask = _read_png(files["mask"])
        if mask.ndim == 3:
            mask = mask[..., 0]
        if mask.shape != depth.shape:
            raise InputError(f"{files['mask']}: size {mask.shape[1]}x{mask.shape[0]} does not match the depth "
                             f"image {depth.shape[1]}x{depth.shape[0]}")
        mask = mask.astype(np.int32)
    return FrameItem(files["depth"], depth, rgb, mask, K)


def read_geometry(path: Path) -> MeshItem | CloudItem:
    """A mesh or a point cloud file."""
    import trimesh

    try:
        obj = trimesh.load(path, process=False)
    except Exception as e:  # noqa: BLE001 - any loader failure is a bad file
        raise InputError(f"{path}: cannot read ({type(e).__name__}: {e})") from e
    if isinstance(obj, trimesh.Scene):
        meshes = [g for g in obj.dump() if isinstance(g, trimesh.Trimesh)] if hasattr(obj, "dump") else []
        if not meshes:
            raise InputError(f"{path}: no mesh in this scene file")
        obj = trimesh.util.concatenate(meshes)
    if isinstance(obj, trimesh.Trimesh):
        if len(obj.faces) == 0 or len(obj.vertices) == 0:
            if len(obj.vertices):
                return _cloud(path, np.asarray(obj.vertices), None)
            raise InputError(f"{path}: empty mesh (no vertices or faces)")
        if not np.isfinite(obj.vertices).all():
            raise InputError(f"{path}: NaN or infinite vertex coordinates")
        return MeshItem(path, obj)
    if hasattr(obj, "vertices"):
        cols = getattr(obj, "colors", None)
        cols = None if cols is None or len(cols) != len(obj.vertices) else np.asarray(cols)[:, :3] / 255.0
        return _cloud(path, np.asarray(obj.vertices), cols)
    raise InputError(f"{path}: not a mesh or point cloud ({type(obj).__name__})")


def _cloud(path: Path, v: np.ndarray, cols) -> CloudItem:
    if len(v) == 0:
        raise InputError(f"{path}: point cloud has no points")
    if not np.isfinite(v).all():
        raise InputError(f"{path}: NaN or infinite point coordinates")
    return CloudItem(path, v.astype(np.float32), cols)


def is_frame(path: Path) -> bool:
    if path.is_dir():
        return any(p.suffix.lower() == ".png" and "depth" in p.name.lower() for p in path.iterdir())
    return path.suffix.lower() == ".png" and "depth" in path.stem.lower()


class ObjectsPanel(ui.Panel):
    title = "Objects"
    prefix = "objects/"

    def __init__(self, app):
        super().__init__(app)
        self.meshes: list[MeshItem] = []
        self.clouds: list[CloudItem] = []
        self.frame: FrameItem | None = None
        self.color_mode = "rgb"
        self.show_observation = True
        self.show_boxes = True

    @property
    def active(self) -> bool:
        return bool(self.meshes or self.clouds or self.frame is not None)

    @staticmethod
    def can_read(path: Path) -> bool:
        if is_frame(path):
            return True
        return path.is_file() and path.suffix.lower() in set(MESH_EXTS) | set(POINT_EXTS)

    def read(self, path):
        path = Path(path)
        if is_frame(path):
            return read_frame(path)
        return read_geometry(path)

    def show(self, item) -> None:
        if isinstance(item, FrameItem):
            self.frame = item
        elif isinstance(item, MeshItem):
            self.meshes.append(item)
        elif isinstance(item, CloudItem):
            self.clouds.append(item)
        else:
            raise InputError(f"objects panel cannot show {type(item).__name__}")
        self.redraw()
        self.set_visible(True)
        self.sync()

    def camera_hint(self) -> dict:
        if self.frame is not None and not self.meshes and not self.clouds:
            pts, _ = self.frame.points()
            lo, hi = np.percentile(pts, 1, 0), np.percentile(pts, 99, 0)
            return {"center": (lo + hi) / 2, "radius": float(np.linalg.norm(hi - lo)) / 2 * 1.1,
                    "azimuth": 0.0, "elevation": 0.0}
        return {"azimuth": 30.0, "elevation": 20.0}

    def redraw(self) -> None:
        self.clear()
        for i, m in enumerate(self.meshes):
            self.view.set(f"{self.prefix}mesh{i}", mesh_geometry(m.mesh))
        for i, c in enumerate(self.clouds):
            self.view.set(f"{self.prefix}cloud{i}", point_geometry(c.points, c.colors), Style("unlit", point_size=3.0))
        if self.frame is not None:
            self._draw_frame()

    def _draw_frame(self) -> None:
        f = self.frame
        pts, pix = f.points()
        if self.color_mode == "instance" and f.mask is not None:
            ids = f.mask[pix[:, 0], pix[:, 1]]
            pal = np.concatenate([[[0.6, 0.6, 0.6]], index_colors(int(ids.max()) + 1)[1:]], 0)
            cols = pal[ids]
        elif f.rgb is not None:
            cols = f.rgb[pix[:, 0], pix[:, 1]].astype(np.float64) / 255.0
        else:
            cols = None
        self.view.set(self.prefix + "observation", point_geometry(pts, cols), Style("unlit", point_size=2.0))
        self.view.show(self.prefix + "observation", self.show_observation)
        if f.mask is not None and self.show_boxes:
            ids = f.mask[pix[:, 0], pix[:, 1]]
            for k in np.unique(ids[ids > 0]):
                sel = pts[ids == k]
                lo, hi = np.percentile(sel, 2, 0), np.percentile(sel, 98, 0)
                corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
                self.view.set(f"{self.prefix}obsbox{int(k)}", box_lineset(corners, index_colors(int(k) + 1)[int(k)]),
                              Style("line", line_width=2.0))

    # ------------------------------------------------------------------------ API
    def set_color_mode(self, mode: str) -> None:
        if mode not in COLOR_MODES:
            raise InputError(f"colour mode '{mode}' unknown (expected one of {', '.join(COLOR_MODES)})")
        self.color_mode = mode
        if self.frame is not None:
            self._draw_frame()
        self.sync()

    def set_show_observation(self, on: bool) -> None:
        self.show_observation = bool(on)
        self.view.show(self.prefix + "observation", self.show_observation)
        self.sync()

    def set_show_boxes(self, on: bool) -> None:
        self.show_boxes = bool(on)
        self.redraw()
        self.sync()

    def reset(self) -> None:
        self.clear_all()

    def clear_all(self) -> None:
        self.meshes, self.clouds, self.frame = [], [], None
        self.clear()
        self.sync()

    # -------------------------------------------------------------------- widgets
    def build(self, em: float):
        g = ui.gui()
        root = g.CollapsableVert(self.title, 0.25 * em, g.Margins(0.5 * em, 0, 0, 0))
        w = self.widgets
        w["info"] = g.Label("nothing open")
        root.add_child(w["info"])
        w["color"] = ui.combo(list(COLOR_MODES), lambda s, i: self.app.call_ui(self.set_color_mode, s),
                              tooltip="observed points coloured by the colour image or by instance mask")
        root.add_child(ui.label_row("Points", w["color"], em))
        w["obs"] = ui.checkbox("Observation", self.show_observation,
                               lambda on: self.app.call_ui(self.set_show_observation, on))
        w["boxes"] = ui.checkbox("Boxes", self.show_boxes, lambda on: self.app.call_ui(self.set_show_boxes, on))
        root.add_child(ui.hrow(em, w["obs"], w["boxes"]))
        w["clear"] = ui.button("Clear", lambda: self.app.call_ui(self.clear_all), "remove every object")
        root.add_child(w["clear"])
        self.root = root
        root.visible = self.active
        return root

    def sync(self) -> None:
        w = self.widgets
        if not w:
            return
        parts = []
        if self.meshes:
            parts.append(f"{len(self.meshes)} mesh(es)")
        if self.clouds:
            parts.append(f"{len(self.clouds)} point cloud(s)")
        if self.frame is not None:
            parts.append(f"frame {self.frame.path.parent.name}/{self.frame.path.name}")
        w["info"].text = ", ".join(parts) or "nothing open"
        w["color"].selected_index = COLOR_MODES.index(self.color_mode)
        self.enable("color", self.frame is not None and self.frame.mask is not None, "no instance mask in the frame")
        w["obs"].checked = self.show_observation
        w["boxes"].checked = self.show_boxes
