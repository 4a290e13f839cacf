"""The objects panel: meshes, point clouds and RGB-D observations; with an objects run, the
reconstructed shapes in their poses with their boxes, code sliders and a live optimisation.

Files:

- meshes (``.obj``/``.ply`` with faces/``.glb``/``.gltf``/``.off``/``.stl``, via trimesh; vertex colours or
  textures baked to vertex colours) are added to the scene (several can be open);
- point clouds (``.ply``/``.pcd``/``.xyz`` without faces) are drawn as observed points;
- an RGB-D frame: a 16-bit depth PNG in millimetres, an optional colour PNG, an optional instance
  mask PNG and an intrinsics JSON (``{"K": 3x3}`` or ``fx, fy, cx, cy[, width, height]``), given as
  the folder holding them or as the depth PNG (siblings found by name: ``[prefix]depth.png``,
  ``[prefix]color.png`` / ``rgb.png``, ``[prefix]mask.png``, ``[prefix]intrinsics.json`` /
  ``camera.json``). The files are read and checked by the objects family's reader
  (:func:`latent4d.objects.io.read_frame`, the same checks as ``latent4d reconstruct objects``)
  into a :class:`latent4d.geometry.rgbd.RGBDFrame`, whose depth is back-projected into the
  observed point cloud.

The RGB-D camera frame is OpenCV's (x right, y down, z forward); the viewer draws observations
in OpenGL's (x right, y up, z backward) so that the initial view is the camera's own.

An objects run (``latent4d train experiment=objects/latent_db``; ``latent4d.objects.pipeline``)
adds: a database object decoded to a coloured mesh (canonical frame, drawn beside the scene) whose
shape and appearance codes move along the main directions of the database codes (sliders), and
*Reconstruct*: the ShAPO-style optimisation of shape, appearance, 6D pose and size of every masked
instance of the open RGB-D frame, with the settings of ``latent4d reconstruct objects``
(``conf/reconstruct/objects.yaml``; the panel sets only the iteration count). It runs on a worker
thread; each iteration's surface points and box are posted to the main thread
(``post_to_main_thread``), so the window stays responsive and the shapes visibly converge; *Stop*
ends it early. Without a run (or without an instance mask)
those controls are disabled and their tooltip says why.

With a single-shot detector (``latent4d train experiment=objects/detector``), found as ``latent4d
reconstruct objects`` finds it (the run's own ``models/detector``, else the latest run under
``outputs/objects/detector``; or open a detector run directory), *Detect* runs it on the open frame
(colour image needed, no mask needed): each detection's box is drawn in its pose, its category and
score are listed, and its mask colours the points in the ``instance`` colour mode. *Reconstruct* on a
frame without an instance mask then refines the detections as ``latent4d reconstruct objects``
without ``mask=`` does (:func:`latent4d.objects.reconstruct.refine_detections`, its ``detect_init``
and ``detect_threshold`` from ``conf/reconstruct/objects.yaml``). Without a detector *Detect* is
disabled and its tooltip says how to get one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from latent4d.viewer import ui
from latent4d.viewer.meshes import MESH_EXTS, POINT_EXTS, CloudItem, MeshItem, read_geometry
from latent4d.viewer.registry import FileKind, register_panel
from latent4d.viewer.scene import Style, box_lineset, index_colors, mesh_geometry, point_geometry

from latent4d.errors import ConfigError, InputError

CV_TO_GL = np.diag([1.0, -1.0, -1.0])
COLOR_MODES = ("rgb", "instance")


@dataclass
class FrameData:
    """What ``ObjectsPanel.read`` returns for an RGB-D frame: the depth PNG it was opened by and the
    frame (:class:`latent4d.geometry.rgbd.RGBDFrame`; rgb and mask may be None)."""

    path: Path
    frame: object

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """Observed points ``(N, 3)`` in the OpenGL camera frame and their pixels ``(N, 2)`` (row, col)."""
        pts, pix = self.frame.points()
        return (np.asarray(pts, np.float64) @ CV_TO_GL).astype(np.float32), pix


@dataclass
class ObjectsRun:
    """An objects latent-database run: its pipeline (None: why in ``reason``) and the detector found
    for it (:func:`find_detector`; None: why in ``detector_reason``)."""

    path: Path
    pipeline: object | None
    reason: str
    detector: object | None = None
    detector_path: Path | None = None
    detector_reason: str = ""


@dataclass
class DetectorRun:
    """An ``objects/detector`` run opened on its own: its :class:`DetectorPipeline`."""

    path: Path
    detector: object


NO_DETECTOR = (
    "needs a trained detector: train one with `latent4d train experiment=objects/detector` (it lands under "
    "outputs/objects/detector, where it is found) or open its run directory"
)


def _loaded(path: Path, load, what: str):
    """``load(path)``, with anything but ConfigError / InputError from a damaged folder turned into one
    InputError naming the folder."""
    try:
        return load(path)
    except (ConfigError, InputError):
        raise
    except Exception as e:  # noqa: BLE001 - damaged networks: diffusers / torch raise many kinds
        raise InputError(
            f"{path}: cannot load the {what} ({type(e).__name__}: {str(e).strip()[:300]}); "
            "the run folder is damaged: re-export it with `latent4d export run=<run>`"
        ) from None


def find_detector(
    run: Path | None = None, root: Path | str | None = None
) -> tuple[object | None, Path | None, str]:
    """The detector ``latent4d reconstruct objects`` would use beside the objects run ``run``: the run's own
    ``models/detector`` (a pipeline folder holding both), else the latest run under ``root`` (default
    :data:`latent4d.objects.pipeline.DEFAULT_DETECTOR_RUNS`, relative to the working folder). Returns
    ``(DetectorPipeline or None, its folder, why none)``; a damaged detector is None with the reason."""
    from latent4d.objects.pipeline import DEFAULT_DETECTOR_RUNS, DetectorPipeline
    from latent4d.runs import has_network, latest_run

    if run is not None and has_network(run, "detector"):
        folder = Path(run)
    else:
        try:
            folder = latest_run(root or DEFAULT_DETECTOR_RUNS, "detector", "")
        except ConfigError:
            return None, None, NO_DETECTOR
    try:
        return _loaded(folder, DetectorPipeline.from_pretrained, "objects detector"), folder, ""
    except (ConfigError, InputError) as e:  # the objects run still opens; Detect says why it is off
        return None, None, f"the detector found at {folder} cannot be used: {e}"


def load_objects_pipeline(path: Path) -> ObjectsRun | DetectorRun:
    """The run's ObjectsPipeline, or None and why the model controls are off (no exported networks),
    with its detector (:func:`find_detector`); a detector run on its own is a :class:`DetectorRun`.
    Damaged networks are an :class:`InputError` naming the folder."""
    try:
        from latent4d.objects.pipeline import DetectorPipeline, ObjectsPipeline
    except ImportError as e:  # pragma: no cover
        return ObjectsRun(path, None, f"{path}: this latent4d has no objects pipeline ({e})")
    from latent4d.viewer.hair_model import limit_torch_threads

    from latent4d.runs import has_network

    limit_torch_threads()
    if has_network(path, "detector") and not has_network(path, "shape_decoder"):
        return DetectorRun(path, _loaded(path, DetectorPipeline.from_pretrained, "objects detector"))
    try:
        pipe = _loaded(path, ObjectsPipeline.from_pretrained, "objects model")
    except ConfigError as e:  # a run without exported networks: the model controls are off
        return ObjectsRun(path, None, f"{path}: {e}")
    det, det_path, why = find_detector(path)
    return ObjectsRun(path, pipe, "", det, det_path, why)


def code_directions(codes: np.ndarray, k: int = 3) -> np.ndarray:
    """``k`` principal directions ``(k, D)`` of database codes ``(N, D)``, scaled to one standard deviation
    (zeros where the database has fewer than ``k + 1`` objects)."""
    c = np.asarray(codes, np.float64)
    out = np.zeros((k, c.shape[1]))
    if len(c) < 2:
        return out
    _, sv, vt = np.linalg.svd(c - c.mean(0), full_matrices=False)
    n = min(k, len(sv))
    out[:n] = vt[:n] * (sv[:n] / np.sqrt(len(c) - 1))[:, None]
    return out


NO_RUN = (
    "needs a trained objects run: open a run directory of `latent4d train experiment=objects/latent_db` "
    "(models/shape_decoder, appearance, database)"
)


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
            raise InputError(
                f"{folder}: no intrinsics JSON (intrinsics.json) for the depth image {out['depth'].name}"
            )
        out["intrinsics"] = js[0]
    return out


def read_frame(path: Path) -> FrameData:
    """The RGB-D frame whose folder or depth PNG is ``path`` (files: :func:`find_frame_files`), read
    and checked by :func:`latent4d.objects.io.read_frame`."""
    from latent4d.objects.io import read_frame as read_rgbd_frame

    files = find_frame_files(path)
    frame = read_rgbd_frame(files["depth"], files["intrinsics"], rgb=files["color"], mask=files["mask"])
    return FrameData(files["depth"], frame)


def is_frame(path: Path) -> bool:
    if path.is_dir():
        return any(p.suffix.lower() == ".png" and "depth" in p.name.lower() for p in path.iterdir())
    return path.suffix.lower() == ".png" and "depth" in path.stem.lower()


FILE_KINDS = (  # what the panel opens (see viewer.registry)
    FileKind("a mesh", MESH_EXTS),
    FileKind("a point cloud", POINT_EXTS),
    FileKind("an RGB-D frame folder or depth PNG", (".png",)),
)


@register_panel("objects", kinds=FILE_KINDS, runs=("objects",), order=1, probe=2)
class ObjectsPanel(ui.Panel):
    title = "Objects"

    def __init__(self, app):
        super().__init__(app, COLOR_MODES)
        self.meshes: list[MeshItem] = []
        self.clouds: list[CloudItem] = []
        self.frame: FrameData | None = None
        self.show_observation = True
        self.show_boxes = True
        # model
        self.pipeline = None
        self.run_path: Path | None = None
        self._model_reason = NO_RUN
        self.object_index = 0
        self.shape_offsets = np.zeros(3)
        self.appearance_offsets = np.zeros(3)
        self.mesh_level = 5
        self.code_mesh = None  # trimesh of the decoded database object (canonical)
        self._dirs: tuple[np.ndarray, np.ndarray] | None = None
        self.iterations: int | None = None  # None: conf/reconstruct/objects.yaml's (set when a run opens)
        self.max_draw_points = 30000  # points drawn per reconstructed shape
        self.running = False
        self._stop = False
        self.live: dict[int, dict] = {}  # instance id -> latest optimisation state
        self.live_updates = 0  # states drawn on the main thread
        self.iterations_done: dict[int, int] = {}
        self.results: list = []
        self._worker = None
        self._last_post = 0.0
        # detector
        self.detector = None
        self.detector_path: Path | None = None
        self._detector_reason = NO_DETECTOR
        self.detections: list = []  # latent4d.objects.detector.Detection, best first (ids 1..N)
        self.detected = None  # detected_frame(...): (Scene with their mask, categories, starts, skip reasons)
        self._det_boxes: list[np.ndarray] = []  # (8, 3) camera-frame corners per detection
        self._update_model_controls()

    @property
    def active(self) -> bool:
        return bool(self.meshes or self.clouds or self.frame is not None or self.code_mesh is not None)

    @staticmethod
    def can_read(path: Path) -> bool:
        if is_frame(path):
            return True
        return path.is_file() and path.suffix.lower() in set(MESH_EXTS) | set(POINT_EXTS)

    @staticmethod
    def read(path):
        """A run directory, an RGB-D frame, a mesh or a point cloud (pure: no drawing)."""
        path = Path(path)
        if path.is_dir() and not is_frame(path):
            return load_objects_pipeline(path)
        if is_frame(path):
            return read_frame(path)
        return read_geometry(path)

    def show(self, item) -> None:
        if isinstance(item, DetectorRun):
            self.detector, self.detector_path, self._detector_reason = item.detector, item.path, NO_DETECTOR
            self.app.set_status(
                f"detector {item.path.name}: categories {', '.join(item.detector.categories)}"
            )
            self.sync()
            return
        if isinstance(item, ObjectsRun):
            self.stop()
            self.pipeline, self.run_path = item.pipeline, item.path
            self._model_reason = item.reason or NO_RUN
            if item.detector is not None or self.detector is None:  # a detector opened on its own stays
                self.detector, self.detector_path = item.detector, item.detector_path
                self._detector_reason = item.detector_reason or NO_DETECTOR
            self._dirs = None
            if self.pipeline is not None:
                if self.iterations is None:
                    self.iterations = self.settings().iterations
                self.select_object(0)
            else:
                self.app.set_status(self._model_reason)
            self.set_visible(True)
            self.sync()
            return
        if isinstance(item, FrameData):
            self.frame = item
            self.detections, self.detected, self._det_boxes = [], None, []
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
            return {
                "center": (lo + hi) / 2,
                "radius": float(np.linalg.norm(hi - lo)) / 2 * 1.1,
                "azimuth": 0.0,
                "elevation": 0.0,
            }
        return {"azimuth": 30.0, "elevation": 20.0}

    def redraw(self) -> None:
        self.clear()
        for i, m in enumerate(self.meshes):
            self.view.set(f"{self.prefix}mesh{i}", mesh_geometry(m.mesh))
        for i, c in enumerate(self.clouds):
            self.view.set(
                f"{self.prefix}cloud{i}", point_geometry(c.points, c.colors), Style("unlit", point_size=3.0)
            )
        if self.frame is not None:
            self._draw_frame()
        self._draw_code_mesh()
        self._draw_results()

    def instance_mask(self) -> np.ndarray | None:
        """The open frame's instance ids ``(H, W)``: its mask, else the detections' (ids 1..N), else None."""
        if self.frame is None:
            return None
        if self.frame.frame.mask is not None:
            return self.frame.frame.mask
        return None if self.detected is None else self.detected[0].mask

    def observation_colors(self, pix: np.ndarray) -> np.ndarray | None:
        """Colours ``(N, 3)`` of the observed points at pixels ``pix`` ``(N, 2)`` in the colour mode:
        ``instance``: one colour per instance id (grey background), else the colour image (None without one)."""
        f = self.frame.frame
        mask = self.instance_mask()
        if self.color_mode == "instance" and mask is not None:
            ids = mask[pix[:, 0], pix[:, 1]]
            pal = np.concatenate([[[0.6, 0.6, 0.6]], index_colors(int(ids.max()) + 1)[1:]], 0)
            return pal[ids]
        if f.rgb is not None:
            return f.rgb[pix[:, 0], pix[:, 1]].astype(np.float64) / 255.0
        return None

    def _draw_frame(self) -> None:
        pts, pix = self.frame.points()
        f = self.frame.frame
        cols = self.observation_colors(pix)
        self.view.set(self.prefix + "observation", point_geometry(pts, cols), Style("unlit", point_size=2.0))
        self.view.show(self.prefix + "observation", self.show_observation)
        if f.mask is not None and self.show_boxes:
            ids = f.mask[pix[:, 0], pix[:, 1]]
            for k in np.unique(ids[ids > 0]):
                sel = pts[ids == k]
                lo, hi = np.percentile(sel, 2, 0), np.percentile(sel, 98, 0)
                corners = np.array(
                    [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
                )
                self.view.set(
                    f"{self.prefix}obsbox{int(k)}",
                    box_lineset(corners, index_colors(int(k) + 1)[int(k)]),
                    Style("line", line_width=2.0),
                )
        for i, corners in enumerate(self._det_boxes, 1):
            self.view.set(
                f"{self.prefix}detbox{i}",
                box_lineset(corners @ CV_TO_GL, index_colors(i + 1)[i]),
                Style("line", line_width=2.0),
            )
            self.view.show(f"{self.prefix}detbox{i}", self.show_boxes)

    # ------------------------------------------------------------------------ API
    def _recolor(self) -> None:
        if self.frame is not None:
            self._draw_frame()

    set_show_observation = ui.show_setter("show_observation", "observation")

    def set_show_boxes(self, on: bool) -> None:
        self.show_boxes = bool(on)
        self.redraw()
        self.sync()

    def reset(self) -> None:
        self.clear_all()

    def clear_all(self) -> None:
        self.stop()
        self.meshes, self.clouds, self.frame = [], [], None
        self.code_mesh, self.results, self.live = None, [], {}
        self.detections, self.detected, self._det_boxes = [], None, []
        self.clear()
        self.sync()

    # ---------------------------------------------------------------------- model
    def _require_model(self):
        if self.pipeline is None:
            raise InputError(self._model_reason)
        return self.pipeline

    def directions(self) -> tuple[np.ndarray, np.ndarray]:
        """Main directions of the database's shape and appearance codes (3 each, one std long)."""
        pipe = self._require_model()
        if self._dirs is None:
            db = pipe.database
            zs = np.stack([db.codes(i)[0].detach().cpu().numpy() for i in range(len(db))])
            za = np.stack([db.codes(i)[1].detach().cpu().numpy() for i in range(len(db))])
            self._dirs = (code_directions(zs), code_directions(za))
        return self._dirs

    def current_codes(self):
        import torch

        pipe = self._require_model()
        zs, za = pipe.codes(int(self.object_index))
        ds, da = self.directions()
        zs = zs + torch.as_tensor(self.shape_offsets @ ds, dtype=zs.dtype)
        za = za + torch.as_tensor(self.appearance_offsets @ da, dtype=za.dtype)
        return zs, za

    def select_object(self, index: int) -> None:
        """Show database object ``index`` (codes reset to the database's)."""
        pipe = self._require_model()
        if not 0 <= int(index) < len(pipe.database):
            raise InputError(f"object {index} does not exist (the database holds {len(pipe.database)})")
        self.object_index = int(index)
        self.shape_offsets[:] = 0
        self.appearance_offsets[:] = 0
        self._decode()

    def set_shape_code(self, i: int, value: float) -> None:
        """Move the shape code along its ``i``-th main direction (in standard deviations)."""
        self._require_model()
        self.shape_offsets[int(i)] = float(value)
        self._decode()

    def set_appearance_code(self, i: int, value: float) -> None:
        """Move the appearance code along its ``i``-th main direction (in standard deviations)."""
        self._require_model()
        self.appearance_offsets[int(i)] = float(value)
        self._decode()

    def _decode(self) -> None:
        import time as _time

        pipe = self._require_model()
        t0 = _time.perf_counter()
        zs, za = self.current_codes()
        mesh = pipe.mesh(zs, za, level=self.mesh_level)
        if len(mesh.faces) == 0:
            self.code_mesh = None
            self.view.remove(self.prefix + "code")
            self.app.set_status("this code decodes to no surface")
        else:
            self.code_mesh = mesh
            self._draw_code_mesh()
            self.app.set_status(f"decoded object {self.object_index} in {_time.perf_counter() - t0:.2f} s")
        self.sync()

    def _code_offset(self) -> np.ndarray:
        """Where the canonical object is drawn: beside the observation (right of it), else at the origin."""
        if self.frame is None:
            return np.zeros(3)
        pts, _ = self.frame.points()
        lo, hi = np.percentile(pts, 2, 0), np.percentile(pts, 98, 0)
        return np.array([hi[0] + 0.1 + 0.25, (lo[1] + hi[1]) / 2, (lo[2] + hi[2]) / 2])

    def _draw_code_mesh(self) -> None:
        if self.code_mesh is None:
            return
        m = self.code_mesh.copy()
        scale = 0.25 if self.frame is not None else 1.0  # canonical [-1, 1] -> 25 cm next to a frame
        m.vertices = np.asarray(m.vertices) * scale + self._code_offset()
        self.view.set(self.prefix + "code", mesh_geometry(m))

    # ------------------------------------------------------------ reconstruction
    def scene(self):
        """The open frame as the objects family's reconstruction input
        (:class:`latent4d.objects.types.Scene`; InputError when it has no instance mask)."""
        from latent4d.objects.types import Scene

        if self.frame is None:
            raise InputError(
                "open an RGB-D frame first (a folder with depth.png, rgb.png, mask.png, intrinsics.json)"
            )
        f = self.frame.frame
        if f.mask is None or not (f.mask > 0).any():
            raise InputError(
                f"{self.frame.path.parent}: the frame has no instance mask (mask.png); reconstruction "
                "needs one, or Detect the objects first (with a detector: `latent4d train experiment=objects/detector`)"
            )
        rgb = f.rgb if f.rgb is not None else np.full(f.depth.shape + (3,), 128, np.uint8)
        return Scene(rgb=rgb, depth=f.depth, mask=f.mask, K=f.K)

    def settings(self, iterations: int | None = None):
        """The settings of ``latent4d reconstruct objects`` (``conf/reconstruct/objects.yaml``) with
        the panel's iteration count (``iterations``, else the panel's, else the config's)."""
        from latent4d.objects.reconstruct import reconstruct_settings

        n = iterations or self.iterations
        return reconstruct_settings(
            [] if n is None else [f"iterations={int(n)}"], command="viewer reconstruct"
        )

    def _refines_detections(self) -> bool:
        """Whether Reconstruct refines the detections (the frame has no instance mask of its own)."""
        f = None if self.frame is None else self.frame.frame
        return f is not None and (f.mask is None or not (f.mask > 0).any()) and bool(self.detections)

    def reconstruct(self, iterations: int | None = None, background: bool = True) -> None:
        """Optimise every masked instance (shape, appearance, pose, size); on a frame without a mask,
        refine the detections (:meth:`detect`) as ``reconstruct objects`` without ``mask=`` does. With a
        window and ``background`` it runs on a worker thread and draws each iteration as it arrives."""
        from latent4d.objects.reconstruct import refine_detections

        pipe = self._require_model()
        detections = list(self.detections) if self._refines_detections() else None
        frame = self.frame.frame if detections else self.scene()
        if self.running:
            raise InputError("a reconstruction is already running (Stop it first)")
        cfg = self.settings(iterations)
        self.running, self._stop = True, False
        self.live, self.results, self.iterations_done = {}, [], {}
        self.view.remove_prefix(self.prefix + "recon")
        self.sync()

        def work():
            if detections:
                return refine_detections(pipe, frame, detections, cfg, callback=self._on_iteration)["results"]
            return pipe.reconstruct(frame, config=cfg, callback=self._on_iteration)

        if background and self.app.window is not None:
            self._worker = self.app.run_worker(work, self._finish, on_error=self._failed)
        else:
            try:
                res = work()
            except BaseException:
                self.running = False
                self.sync()
                raise
            self._finish(res)

    def _on_iteration(self, iid: int, it: int, state: dict):
        """Worker thread: keep the latest state; post a redraw at most every 0.2 s."""
        import time as _time

        self.live[iid] = state
        self.iterations_done[iid] = it + 1
        now = _time.monotonic()
        if self.app.window is not None and now - self._last_post > 0.2:
            self._last_post = now
            self.app.post(lambda: self._draw_live())
        elif self.app.window is None:
            self._draw_live()
        return not self._stop

    def stop(self) -> None:
        """Ask a running reconstruction to stop after the current iteration."""
        self._stop = True

    def _failed(self, message: str) -> None:
        self.running = False
        self.sync()

    def _finish(self, results) -> None:
        self.running = False
        self.results = list(results)
        self._draw_live()
        self._draw_results()
        ok = sum(r.status == "ok" for r in self.results)
        self.app.set_status(
            f"reconstruction done: {ok}/{len(self.results)} objects ok" + (" (stopped)" if self._stop else "")
        )
        self.sync()

    def _draw_live(self) -> None:
        for iid, st in list(self.live.items()):
            pts = np.asarray(st["surface_points"], np.float64)
            if len(pts) == 0:
                continue
            gl = pts @ CV_TO_GL
            self.view.set(
                f"{self.prefix}recon_live{iid}",
                point_geometry(gl, np.clip(st["surface_colors"], 0, 1)),
                Style("unlit", point_size=3.0),
            )
            R, t, s = np.asarray(st["R"]), np.asarray(st["t"]), float(st["scale"])
            local = (pts - t) @ R / max(s, 1e-9)  # object frame
            lo, hi = local.min(0), local.max(0)
            corners = np.array(
                [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
            )
            cam = s * corners @ R.T + t
            self.view.set(
                f"{self.prefix}recon_box{iid}",
                box_lineset(cam @ CV_TO_GL, index_colors(iid + 1)[iid]),
                Style("line", line_width=2.0),
            )
        self.live_updates += 1

    def _draw_results(self) -> None:
        """Each reconstructed shape as its coloured mesh's vertices, drawn as unlit points in its
        pose (lit meshes of this size took tens of seconds per frame under software GL)."""
        for r in self.results:
            if r.status != "ok" or r.mesh_camera is None or len(r.mesh_camera.faces) == 0:
                continue
            m = r.mesh_camera
            v = np.asarray(m.vertices, np.float64)
            try:
                c = np.asarray(m.visual.vertex_colors, np.float64)[:, :3] / 255.0
            except Exception:  # noqa: BLE001 - no colours: grey
                c = np.full((len(v), 3), 0.6)
            if len(v) > self.max_draw_points:
                keep = np.random.default_rng(0).choice(len(v), self.max_draw_points, replace=False)
                v, c = v[keep], c[keep]
            self.view.set(
                f"{self.prefix}recon_shape{r.instance_id}",
                point_geometry(v @ CV_TO_GL, c),
                Style("unlit", point_size=3.0),
            )
            self.view.remove(f"{self.prefix}recon_live{r.instance_id}")

    # ------------------------------------------------------------------ detection
    def _require_detector(self):
        if self.detector is None:
            raise InputError(self._detector_reason)
        return self.detector

    def detect(self, threshold: float | None = None) -> list:
        """Run the detector on the open frame (its colour image and depth; no mask needed) and draw
        every detection: its box in its pose, its category and score in the list, its mask in the
        ``instance`` colour mode. ``threshold``: heatmap peaks above it (default ``detect_threshold``
        of ``conf/reconstruct/objects.yaml``). Returns the detections, best first."""
        from latent4d.objects.reconstruct import detected_frame

        det = self._require_detector()
        if self.frame is None:
            raise InputError(
                "open an RGB-D frame first (a folder with depth.png, color.png, intrinsics.json)"
            )
        f = self.frame.frame
        if f.rgb is None:
            raise InputError(
                f"{self.frame.path.parent}: the frame has no colour image (color.png); the detector needs one"
            )
        if self.running:
            raise InputError("a reconstruction is running (Stop it first)")
        th = self.settings().detect_threshold if threshold is None else float(threshold)
        dets = list(det.detect(f, threshold=th))
        known = (
            sorted(set(self.pipeline.database.categories)) if self.pipeline is not None else det.categories
        )
        self.detections = dets
        self.detected = detected_frame(f, dets, known) if dets else None
        self._det_boxes = [self._detection_corners(d) for d in dets]
        self.results, self.live = [], {}
        self.view.remove_prefix(self.prefix + "recon")
        self.view.remove_prefix(self.prefix + "detbox")
        self.redraw()
        self.app.set_status(
            f"{len(dets)} detection(s): {', '.join(self.detection_labels())}"
            if dets
            else f"no object detected (heatmap threshold {th:g})"
        )
        self.sync()
        return dets

    def _detection_corners(self, d) -> np.ndarray:
        """(8, 3) camera-frame corners of a detection's box: its pose and size, the canonical extents of
        its shape code when the open run decodes it (else a cube of half-diagonal 1)."""
        from latent4d.viewer.scene import oriented_box_corners

        ext = np.full(3, 2.0 / np.sqrt(3.0))
        pipe = self.pipeline
        if pipe is not None and d.category in pipe.database.categories:
            import torch

            e = pipe.extents(torch.as_tensor(np.asarray(d.shape_code), dtype=torch.float32))
            ext = e if np.all(e > 0) else ext
        return oriented_box_corners(np.asarray(d.t), np.asarray(d.R), float(d.scale) * ext)

    def detection_labels(self) -> list[str]:
        """One entry per detection (id 1..N, best first): ``"1: mug 0.91"``, ``(skipped: ...)`` when the
        open run's database lacks its category."""
        skipped = self.detected[3] if self.detected is not None else {}
        return [
            f"{i}: {d.category} {d.score:.2f}" + (" (not in the database)" if i in skipped else "")
            for i, d in enumerate(self.detections, 1)
        ]

    # -------------------------------------------------------------------- widgets
    def build(self, em: float):
        g = ui.gui()
        root = self.new_root(em)
        w = self.widgets
        self.add_label(root, "info", "nothing open")
        self.add_color_combo(
            root, em, "Points", "observed points coloured by the colour image or by instance mask"
        )
        obs = self.flag_checkbox("obs", "Observation", "show_observation", self.set_show_observation)
        boxes = self.flag_checkbox("boxes", "Boxes", "show_boxes", self.set_show_boxes)
        root.add_child(ui.hrow(em, obs, boxes))
        w["clear"] = ui.button("Clear", lambda: self.app.call_ui(self.clear_all), "remove every object")
        root.add_child(w["clear"])
        root.add_child(g.Label("Model"))
        self.add_label(root, "model", "no trained objects run")
        w["object"] = ui.combo(
            ["-"],
            lambda s, i: self.app.call_ui(self.select_object, i),
            tooltip="database object whose codes the sliders move",
        )
        root.add_child(ui.label_row("Object", w["object"], em))
        for kind, fn in (("shape", self.set_shape_code), ("appearance", self.set_appearance_code)):
            for i in range(3):
                w[f"{kind}{i}"] = ui.slider(
                    -3.0,
                    3.0,
                    0.0,
                    lambda v, i=i, fn=fn: self.app.call_ui(fn, i, v),
                    tooltip=f"{kind} code along its main direction {i + 1} (std)",
                )
                root.add_child(ui.label_row(f"{kind[:5].capitalize()} {i + 1}", w[f"{kind}{i}"], em))
        w["iterations"] = ui.number(
            self.iterations or 1,
            lambda v: setattr(self, "iterations", max(1, int(v))),
            lo=1,
            hi=5000,
            tooltip="optimisation iterations per object",
        )
        w["reconstruct"] = ui.button(
            "Reconstruct",
            lambda: self.app.call_ui(self.reconstruct),
            "optimise shape, appearance, pose and size of every masked instance",
        )
        w["stop"] = ui.button("Stop", lambda: self.app.call_ui(self.stop), "stop the optimisation")
        root.add_child(ui.hrow(em, w["reconstruct"], w["stop"], g.Label("its"), w["iterations"]))
        w["detect"] = ui.button(
            "Detect",
            lambda: self.app.call_ui(self.detect),
            "find the objects of the open frame with the single-shot detector (no mask needed)",
        )
        w["detections"] = ui.combo(
            ["-"], lambda s, i: None, tooltip="detections: category and score, best first"
        )
        root.add_child(ui.hrow(em, w["detect"], w["detections"]))
        self.root = root
        root.visible = self.active
        self._update_model_controls()  # without a run the model controls start disabled, saying why
        return root

    def sync(self) -> None:
        self._update_model_controls()
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
        w["obs"].checked = self.show_observation
        w["boxes"].checked = self.show_boxes
        has = self.pipeline is not None
        w["model"].text = (
            f"run {self.run_path.name}"
            if has
            else ("no trained objects run" if self.run_path is None else "model unavailable (see tooltips)")
        ) + ("" if self.detector_path is None else f", detector {self.detector_path.name}")
        labels = self.detection_labels() or ["-"]
        if [w["detections"].get_item(i) for i in range(w["detections"].number_of_items)] != labels:
            w["detections"].clear_items()
            for text in labels:
                w["detections"].add_item(text)
        if has and w["object"].number_of_items != len(self.pipeline.database):
            w["object"].clear_items()
            for i, n in enumerate(self.pipeline.database.names):
                w["object"].add_item(f"{i}: {n}")
        if has:
            w["object"].selected_index = self.object_index
        for i in range(3):
            w[f"shape{i}"].double_value = float(self.shape_offsets[i])
            w[f"appearance{i}"].double_value = float(self.appearance_offsets[i])
        if self.iterations is not None:
            w["iterations"].set_value(self.iterations)
        w["reconstruct"].text = "Running..." if self.running else "Reconstruct"

    def _update_model_controls(self) -> None:
        has = self.pipeline is not None
        for name in (
            "object",
            "shape0",
            "shape1",
            "shape2",
            "appearance0",
            "appearance1",
            "appearance2",
            "iterations",
        ):
            self.enable(name, has, self._model_reason)
        if not has:
            self.enable("reconstruct", False, self._model_reason)
        elif self.frame is None:
            self.enable(
                "reconstruct", False, "open an RGB-D frame (depth.png, rgb.png, mask.png, intrinsics.json)"
            )
        elif self.frame.frame.mask is None and not self.detections:
            self.enable(
                "reconstruct",
                False,
                "the open frame has no instance mask (mask.png): Detect the objects first"
                + ("" if self.detector is not None else f" ({self._detector_reason})"),
            )
        else:
            self.enable("reconstruct", not self.running, "a reconstruction is running")
        self.enable("stop", self.running, "nothing is running")
        self.enable(
            "color",
            self.instance_mask() is not None,
            "no instance mask in the frame (Detect the objects to colour them by detection)",
        )
        if self.detector is None:
            self.enable("detect", False, self._detector_reason)
        elif self.frame is None:
            self.enable("detect", False, "open an RGB-D frame (depth.png, color.png, intrinsics.json)")
        elif self.frame.frame.rgb is None:
            self.enable("detect", False, "the open frame has no colour image (color.png)")
        else:
            self.enable("detect", not self.running, "a reconstruction is running")
