"""The motion panel: play a deforming mesh sequence, with the input point clouds beside it.

Accepted inputs (``read``), each read by the motion family's I/O module (:mod:`latent4d.motion.io`)
or, for plain per-frame mesh files, by the viewer's mesh reader (:mod:`latent4d.viewer.meshes`):

- a folder of per-frame meshes (``.ply``/``.obj``/``.off``, naturally sorted: ``frame_2`` before
  ``frame_10``); PLY files without faces in the same folder are per-frame point clouds;
- a folder with sub-folders ``meshes/`` (or ``mesh/``) and ``points/`` (or ``pointclouds/``,
  ``observations/``, ``inputs/``; the clouds through ``motion.io.read_sequence``);
- an ``.npz`` with ``vertices (T, V, 3)`` and ``faces (F, 3)`` (``motion.io.read_ground_truth``),
  optionally ``points (T, N, 3)`` (``motion.io.read_sequence``);
- a motion reconstruction output (``latent4d reconstruct motion``, see docs/motion.md): a sample
  folder with ``trajectories.npz`` (meshes, observations and correspondence colours;
  ``motion.io.load_tracked_sequence``), or the output root (its first ``sample_*``);
- a folder of observed point clouds only (any format ``motion.io.read_sequence`` reads).

When every frame shares frame 0's faces (a tracked sequence), vertices can be coloured by
correspondence: each vertex keeps the colour of its frame-0 position, so tracking drift shows as
colours sliding over the surface. Play / pause, a timeline slider and the frame rate drive
playback (a tick callback of the window advances frames).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from latent4d.viewer import ui
from latent4d.viewer.meshes import MeshItem, read_geometry
from latent4d.viewer.registry import FileKind, register_panel
from latent4d.viewer.scene import Style, mesh_geometry, point_geometry, position_colors

from latent4d.errors import InputError

SEQUENCE_MESH_EXTS = (".ply", ".obj", ".off", ".stl", ".glb")  # per-frame files of a sequence folder
POINT_DIRS = ("points", "pointclouds", "point_clouds", "observations", "inputs", "input")
MESH_DIRS = ("meshes", "mesh", "reconstruction", "outputs")
COLOR_MODES = ("correspondence", "plain")
POINT_COLOR = (0.95, 0.45, 0.1)
MESH_COLOR = (0.70, 0.72, 0.78)


def natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


@dataclass
class MotionData:
    """What ``MotionPanel.read`` returns: per-frame meshes (``vertices[t] (V_t, 3)``, ``faces[t]
    (F_t, 3)``, world units) and / or per-frame observed points ``points[t] (N_t, 3)``."""

    name: str
    vertices: list[np.ndarray]
    faces: list[np.ndarray]
    points: list[np.ndarray] | None = None
    files: list[str] = field(default_factory=list)
    colors: np.ndarray | None = None  # (V, 3) in [0, 1]: correspondence colours given by the file

    @property
    def num_frames(self) -> int:
        return len(self.vertices) if self.vertices else len(self.points or [])

    @property
    def shared_topology(self) -> bool:
        if not self.vertices:
            return False
        f0, n0 = self.faces[0], len(self.vertices[0])
        return all(
            len(v) == n0 and f.shape == f0.shape and np.array_equal(f, f0)
            for v, f in zip(self.vertices, self.faces)
        )


def _files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SEQUENCE_MESH_EXTS),
        key=natural_key,
    )


def _recon_sample(path: Path) -> Path | None:
    """The sample folder of a motion reconstruction output (``trajectories.npz``), if ``path`` is one
    (or an output root holding ``sample_*`` folders: the first)."""
    if (path / "trajectories.npz").is_file():
        return path
    samples = sorted(
        (p for p in path.glob("sample_*") if (p / "trajectories.npz").is_file()), key=natural_key
    )
    return samples[0] if samples else None


def _npz_keys(path: Path) -> set[str]:
    """Array names of an ``.npz`` (its listing only; nothing is read)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return {n.removesuffix(".npy") for n in z.namelist()}
    except (OSError, zipfile.BadZipFile):
        return set()


def _read_tracked(folder: Path) -> MotionData:
    """A sample folder of ``latent4d reconstruct motion`` (:func:`latent4d.motion.io.load_tracked_sequence`)."""
    from latent4d.motion.io import load_tracked_sequence

    f = folder / "trajectories.npz"
    d = load_tracked_sequence(folder)
    v = np.asarray(d.get("vertices"), np.float32)
    faces = np.asarray(d.get("faces"), np.int64)
    if v.ndim != 3 or v.shape[-1] != 3 or faces.ndim != 2 or faces.shape[-1] != 3 or len(faces) == 0:
        raise InputError(
            f"{f}: expected vertices (T, V, 3) and faces (F, 3), got {v.shape} and {faces.shape}"
        )
    if not np.isfinite(v).all() or faces.min() < 0 or faces.max() >= v.shape[1]:
        raise InputError(f"{f}: non-finite vertices or face indices out of range")
    obs = d.get("observations")
    pts = [np.asarray(o, np.float32) for o in obs] if obs is not None and len(obs) == len(v) else None
    name = f"{folder.parent.name}/{folder.name}" if folder.name.startswith("sample") else folder.name
    seq = MotionData(name, list(v), [faces] * len(v), pts)
    if d.get("colors") is not None and len(d["colors"]) == v.shape[1]:
        seq.colors = np.asarray(d["colors"], np.float64)[:, :3] / 255.0
    return seq


def _read_npz(path: Path) -> MotionData:
    """``vertices (T, V, 3)`` and ``faces (F, 3)`` (:func:`latent4d.motion.io.read_ground_truth`), and
    ``points (T, N, 3)`` when present (:func:`latent4d.motion.io.read_sequence`)."""
    from latent4d.motion.io import read_ground_truth
    from latent4d.motion.io import read_sequence as read_clouds

    v, f = read_ground_truth(path)
    pts = None
    if "points" in _npz_keys(path):
        pts = read_clouds(path)
        if len(pts) != len(v):
            raise InputError(f"{path}: 'points' has {len(pts)} frames but 'vertices' {len(v)}")
    return MotionData(path.stem, list(v), [f] * len(v), pts)


def _read_frames(files: list[Path], meshes_only: bool) -> tuple[list, list, list, list[str]]:
    """Per-frame mesh files (:func:`latent4d.viewer.meshes.read_geometry`): ``(vertices, faces,
    points, mesh file names)``; files without faces are point clouds (refused with ``meshes_only``)."""
    verts, faces, pts, names = [], [], [], []
    for f in files:
        item = read_geometry(f)
        if isinstance(item, MeshItem):
            v, fc = item.arrays
            verts.append(v)
            faces.append(fc)
            names.append(f.name)
        elif meshes_only:
            raise InputError(f"{f}: expected a mesh (faces), found a point cloud")
        else:
            pts.append(item.points)
    return verts, faces, pts, names


def _read_folder(path: Path) -> MotionData:
    """A folder of per-frame meshes (and clouds), or ``meshes/`` + ``points/`` sub-folders; point
    clouds alone through :func:`latent4d.motion.io.read_sequence`."""
    from latent4d.motion.io import read_sequence as read_clouds

    sub = {p.name.lower(): p for p in path.iterdir() if p.is_dir()}
    mesh_dir = next((sub[d] for d in MESH_DIRS if d in sub), None)
    point_dir = next((sub[d] for d in POINT_DIRS if d in sub), None)
    if mesh_dir is not None or point_dir is not None:
        verts, faces, _, names = _read_frames(_files(mesh_dir), True) if mesh_dir else ([], [], [], [])
        pts = read_clouds(point_dir) if point_dir is not None else []
    else:
        verts, faces, pts, names = _read_frames(_files(path), False)
    if not verts and not pts:
        try:  # observed clouds in the formats the motion family reads (.npy, .npz, .xyz, .txt, .pts)
            pts = read_clouds(path)
        except InputError as e:
            raise InputError(f"{path}: no per-frame meshes or point clouds found ({e})") from e
    if verts and len(verts) < 2 and not pts:
        raise InputError(f"{path}: a sequence needs at least 2 frames, found 1 mesh")
    if verts and pts and len(pts) != len(verts):
        raise InputError(f"{path}: {len(verts)} mesh frames but {len(pts)} point-cloud frames")
    return MotionData(path.name, verts, faces, pts or None, names)


def read_motion(path) -> MotionData:
    """Read a sequence (see the module docstring); InputError names the offending file."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".npz":
        return _read_tracked(path.parent) if path.name == "trajectories.npz" else _read_npz(path)
    if path.is_dir() and (sample := _recon_sample(path)) is not None:
        return _read_tracked(sample)
    if not path.is_dir():
        raise InputError(f"{path}: expected a folder of per-frame meshes or an .npz sequence")
    return _read_folder(path)


def is_sequence(path: Path) -> bool:
    if path.is_dir() and _recon_sample(path) is not None:
        return True
    if path.is_file() and path.name == "trajectories.npz":
        return True
    if path.is_dir():
        sub = {p.name.lower() for p in path.iterdir() if p.is_dir()}
        if sub & set(MESH_DIRS) or sub & set(POINT_DIRS):
            return True
        return len(_files(path)) >= 2
    return path.suffix.lower() == ".npz" and "vertices" in _npz_keys(path)


FILE_KINDS = (  # what the panel opens (see viewer.registry)
    FileKind("a mesh sequence folder"),
    FileKind("a mesh sequence", (".npz",)),
    FileKind("a motion reconstruction folder"),
)


@register_panel("motion", kinds=FILE_KINDS, runs=("motion",), order=2, probe=1)
class MotionPanel(ui.Panel):
    title = "Motion"

    def __init__(self, app):
        super().__init__(app, COLOR_MODES)
        self.seq: MotionData | None = None
        self.frame = 0
        self.fps = 10.0
        self.playing = False
        self.show_mesh = True
        self.show_points = True
        self.side_by_side = True
        self._last_step = 0.0
        self.frames_played = 0  # frames advanced by playback (not by set_frame)
        self._colors: np.ndarray | None = None
        self._offset = np.zeros(3)

    @property
    def active(self) -> bool:
        return self.seq is not None

    @property
    def num_frames(self) -> int:
        return 0 if self.seq is None else self.seq.num_frames

    @staticmethod
    def can_read(path: Path) -> bool:
        return is_sequence(path)

    @staticmethod
    def read(path) -> MotionData:
        return read_motion(path)

    @classmethod
    def check_run(cls, path) -> None:
        if not is_sequence(Path(path)):
            raise InputError(
                f"{path}: a motion training run; reconstruct a sequence with `latent4d reconstruct "
                "motion ...` and open its output folder (meshes, inputs and trajectories.npz)"
            )

    def on_key(self, key, ctrl: bool) -> bool:
        """Space: play / pause."""
        if key == ui.gui().KeyName.SPACE:
            self.app.call_ui(self.toggle_play)
            return True
        return False

    def show(self, seq: MotionData) -> None:
        self.stop()
        self.seq = seq
        self.frame = 0
        self._colors = None
        if seq.vertices and seq.shared_topology:
            self._colors = seq.colors if seq.colors is not None else position_colors(seq.vertices[0])
        self.color_mode = "correspondence" if self._colors is not None else "plain"
        lo = self._bounds(seq.vertices)
        # points beside the meshes: shifted along +x by the meshes' width and a margin
        if seq.vertices and seq.points:
            self._offset = np.array([(lo[1][0] - lo[0][0]) * 1.25, 0.0, 0.0])
        else:
            self._offset = np.zeros(3)
        self.clear()
        self._draw()
        self.set_visible(True)
        self.enable("color", self._colors is not None, "the frames do not share one mesh topology")
        self.sync()

    def reset(self) -> None:
        self.stop()
        self.seq = None
        self.clear()
        self.sync()

    @staticmethod
    def _bounds(arrs) -> tuple[np.ndarray, np.ndarray]:
        if not arrs:
            return np.zeros(3), np.zeros(3)
        return (
            np.min([a.min(0) for a in arrs], 0).astype(np.float64),
            np.max([a.max(0) for a in arrs], 0).astype(np.float64),
        )

    def camera_hint(self) -> dict:
        """Frame every frame of the sequence (the camera does not jump while playing)."""
        seq = self.seq
        parts = []
        if seq.vertices and self.show_mesh:
            parts += list(self._bounds(seq.vertices))
        if seq.points and self.show_points:
            lo, hi = self._bounds(seq.points)
            off = self._offset if self.side_by_side else 0
            parts += [lo + off, hi + off]
        if not parts:
            return {}
        lo, hi = np.min(parts, 0), np.max(parts, 0)
        return {
            "center": (lo + hi) / 2,
            "radius": max(float(np.linalg.norm(hi - lo)) / 2, 1e-3),
            "azimuth": 20.0,
            "elevation": 15.0,
        }

    def _draw(self) -> None:
        seq, t = self.seq, self.frame
        if seq.vertices:
            v, f = seq.vertices[t], seq.faces[t]
            vc = self._colors if self.color_mode == "correspondence" and self._colors is not None else None
            self.view.set(
                self.prefix + "mesh",
                mesh_geometry((v, f), color=None if vc is not None else MESH_COLOR, vertex_colors=vc),
            )
            self.view.show(self.prefix + "mesh", self.show_mesh)
        if seq.points:
            p = seq.points[t] + (self._offset if self.side_by_side else 0)
            self.view.set(
                self.prefix + "points", point_geometry(p, color=POINT_COLOR), Style("unlit", point_size=4.0)
            )
            self.view.show(self.prefix + "points", self.show_points)

    # ------------------------------------------------------------------- API
    def set_frame(self, i: int) -> None:
        if self.seq is None:
            raise InputError("no sequence is open")
        self.frame = int(i) % self.num_frames
        self._draw()
        self.sync()

    def step(self, n: int = 1) -> None:
        self.set_frame(self.frame + n)

    def play(self) -> None:
        if self.seq is None:
            raise InputError("no sequence is open")
        self.playing = True
        self._last_step = time.monotonic()
        self.sync()

    def pause(self) -> None:
        self.playing = False
        self.sync()

    stop = pause

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def set_fps(self, fps: float) -> None:
        if not fps > 0:
            raise InputError(f"frame rate must be positive, got {fps}")
        self.fps = float(fps)
        self.sync()

    def set_color_mode(self, mode: str) -> None:
        if mode == "correspondence" and self._colors is None and self.seq is not None:
            raise InputError(
                f"{self.seq.name}: the frames do not share one mesh topology (no correspondence)"
            )
        super().set_color_mode(mode)

    def _recolor(self) -> None:
        if self.seq is not None:
            self._draw()

    set_show_points = ui.show_setter("show_points", "points")
    set_show_mesh = ui.show_setter("show_mesh", "mesh")

    def set_side_by_side(self, on: bool) -> None:
        self.side_by_side = bool(on)
        if self.seq is not None:
            self._draw()
            self.app.reset_camera()
        self.sync()

    def tick(self, now: float) -> bool:
        """Advance playback (called by the window's tick event); True when a frame was drawn."""
        if not self.playing or self.seq is None:
            return False
        steps = int((now - self._last_step) * self.fps)
        if steps <= 0:
            return False
        self._last_step += steps / self.fps
        self.frames_played += steps
        self.set_frame(self.frame + steps)
        return True

    # ------------------------------------------------------------------ widgets
    def build(self, em: float):
        g = ui.gui()
        root = self.new_root(em)
        w = self.widgets
        self.add_label(root, "info", "no sequence open")
        w["play"] = ui.button("Play", lambda: self.app.call_ui(self.toggle_play), "play / pause (space)")
        w["prev"] = ui.button("<", lambda: self.app.call_ui(self.step, -1), "previous frame")
        w["next"] = ui.button(">", lambda: self.app.call_ui(self.step, 1), "next frame")
        w["fps"] = ui.number(
            self.fps,
            lambda v: self.app.call_ui(self.set_fps, v),
            integer=False,
            lo=0.5,
            hi=120,
            tooltip="frames per second",
        )
        root.add_child(ui.hrow(em, w["play"], w["prev"], w["next"], g.Label("fps"), w["fps"]))
        w["timeline"] = ui.slider(
            0, 1, 0, lambda v: self.app.call_ui(self.set_frame, int(v)), integer=True, tooltip="frame"
        )
        root.add_child(w["timeline"])
        self.add_label(root, "frame", "frame 0 / 0")
        self.add_color_combo(
            root, em, "Colour", "correspondence: each vertex keeps its frame-0 colour (drift shows)"
        )
        mesh = self.flag_checkbox("mesh", "Meshes", "show_mesh", self.set_show_mesh)
        points = self.flag_checkbox("points", "Points", "show_points", self.set_show_points)
        side = self.flag_checkbox(
            "side",
            "Beside",
            "side_by_side",
            self.set_side_by_side,
            "draw the input points beside the meshes (else overlaid)",
        )
        root.add_child(ui.hrow(em, mesh, points, side))
        self.root = root
        root.visible = self.active
        return root

    def sync(self) -> None:
        w = self.widgets
        if not w:
            return
        if self.seq is not None:
            seq = self.seq
            kinds = [
                f"{len(seq.vertices)} meshes" if seq.vertices else "",
                f"{len(seq.points)} point clouds" if seq.points else "",
            ]
            w["info"].text = f"{seq.name}: " + ", ".join(k for k in kinds if k)
            w["timeline"].set_limits(0, max(self.num_frames - 1, 1))
            w["timeline"].int_value = self.frame
            w["frame"].text = f"frame {self.frame} / {self.num_frames - 1}"
        w["play"].text = "Pause" if self.playing else "Play"
        w["fps"].set_value(self.fps)
        w["color"].selected_index = COLOR_MODES.index(self.color_mode)
        has_pts = self.seq is not None and bool(self.seq.points)
        self.enable("points", has_pts, "no point clouds in this sequence")
        self.enable(
            "side",
            has_pts and self.seq is not None and bool(self.seq.vertices),
            "needs both meshes and point clouds",
        )
