"""Inference for the objects family: decode codes to coloured surfaces / meshes, and reconstruct
objects (shape, appearance, 6D pose, size) from one RGB-D frame.

Typical use::

    from latent4d.objects.io import read_rgbd
    from latent4d.objects.pipeline import ObjectsPipeline

    pipe = ObjectsPipeline.from_pretrained("outputs/objects/latent_db/<run>")
    frame = read_rgbd("rgb.png", "depth.png", "mask.png", "intrinsics.json")
    results = pipe.reconstruct(frame, callback=lambda iid, it, state: print(iid, it, state["loss"]))
    for r in results:                      # one ObjectReconstruction per instance id
        r.mesh_camera                      # trimesh, camera frame, vertex colours
        r.R, r.t, r.scale, r.size          # canonical -> camera pose, metric size

Every function takes and returns tensors / arrays with the shapes and units in its docstring;
coordinates are canonical ([-1, 1]^3) unless the name says camera (metres, OpenCV axes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import trimesh

from latent4d.errors import ConfigError, InputError
from latent4d.geometry.octree import octree_mesh, octree_surface_points
from latent4d.objects.appearance import AppearanceNet
from latent4d.objects.database import LatentDatabase
from latent4d.objects.detector import ObjectDetector
from latent4d.objects.sdf import ShapeDecoder
from latent4d.objects.types import ObjectReconstruction
from latent4d.pipeline import LatentPipeline

DEFAULT_RUNS = "outputs/objects/latent_db"
"""Where ``latent4d train experiment=objects/latent_db`` writes its runs (searched when no run is given)."""


def find_latest_run(root: str | Path = DEFAULT_RUNS) -> Path:
    """The most recent run directory of ``experiment=objects/latent_db`` with exported models."""
    from latent4d.runs import latest_run

    return latest_run(root, "shape_decoder", "train one with `latent4d train experiment=objects/latent_db` or "
                      "pass run=<run dir>")


def _compare_shapes(expected: dict[str, tuple], found: dict[str, tuple], source, what: str,
                    fix: str = "the weights and the config come from different models (or one was edited): "
                               "re-export the run with `latent4d export run=<run>`") -> None:
    """InputError naming missing / unexpected / mis-shaped tensors of ``source`` for a ``what``."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} {found[k]} vs {expected[k]}" for k in expected if k in found and found[k] != expected[k]]
    if missing or unexpected or shapes:
        parts = [f"{len(items)} {label} ({', '.join(items[:3])}{', ...' if len(items) > 3 else ''})"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes))
                 if items]
        raise InputError(f"'{source}' does not fit its {what} config: " + "; ".join(parts) + f"; {fix}")


def _check_network_shapes(net_cls, folder: Path) -> None:
    """Compare the tensor shapes ``folder/config.json`` implies (model built on the meta device, so
    nothing is allocated) with the shapes in the safetensors header, before any weight is loaded."""
    from safetensors import safe_open

    from latent4d.trust import check_safetensors, read_model_config

    cfg = read_model_config(folder)
    weights = sorted(folder.glob("*.safetensors"))
    if len(weights) != 1 or cfg.get("_class_name", net_cls.__name__) != net_cls.__name__:
        return  # no weights, sharded ones or another class: load_network reports it
    check_safetensors(weights[0])
    try:
        with torch.device("meta"):
            probe = net_cls.from_config(cfg)
    except Exception as e:  # noqa: BLE001 - constructors raise many kinds for bad config values
        raise InputError(f"network config '{folder / 'config.json'}' does not describe a {net_cls.__name__} "
                         f"({type(e).__name__}: {str(e).strip()[:200]}); the folder is damaged") from None
    with safe_open(str(weights[0]), framework="pt") as f:
        found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    _compare_shapes({k: tuple(v.shape) for k, v in probe.state_dict().items()}, found, weights[0], net_cls.__name__)


def _database_state(state: dict, source) -> tuple[list[str], list[str]] | None:
    """(names, categories) of the latent database stored in a checkpoint's ``_extra_state``, checked
    (lists of strings, one per row of ``database.shape.weight``); None when there is none."""
    extra = state.get("_extra_state")
    if not extra:
        return None
    names, cats = (extra.get("names"), extra.get("categories")) if isinstance(extra, dict) else (None, None)
    if not (isinstance(names, list) and isinstance(cats, list) and len(names) == len(cats)
            and all(isinstance(x, str) for x in names + cats)):
        raise InputError(f"checkpoint '{source}': its latent database entry (_extra_state) is not two lists of "
                         "names and categories of equal length; the checkpoint is damaged")
    rows = state.get("database.shape.weight")
    if not isinstance(rows, torch.Tensor) or rows.ndim != 2 or rows.shape[0] != max(len(names), 1):
        raise InputError(f"checkpoint '{source}': {len(names)} database names but database.shape.weight is "
                         f"{None if not isinstance(rows, torch.Tensor) else tuple(rows.shape)}; the checkpoint "
                         "is damaged")
    return names, cats


class ObjectsPipeline(LatentPipeline):
    """Shape decoder + appearance network + latent database of one trained run.

    Attributes: ``shape_decoder`` (:class:`ShapeDecoder`, weight norm fused), ``appearance``
    (:class:`AppearanceNet`), ``database`` (:class:`LatentDatabase`); all frozen, in eval mode on
    ``device``. Loading, saving and device moves: :class:`latent4d.pipeline.LatentPipeline`.
    """

    family = "objects"
    component_classes = {"shape_decoder": ShapeDecoder, "appearance": AppearanceNet, "database": LatentDatabase}

    def __init__(self, shape_decoder: ShapeDecoder, appearance: AppearanceNet, database: LatentDatabase,
                 device: str | torch.device = "cpu"):
        self.register_modules(shape_decoder=shape_decoder.fuse_weight_norm().eval().requires_grad_(False),
                              appearance=appearance.eval().requires_grad_(False),
                              database=database.eval().requires_grad_(False))
        self.to(device)

    @classmethod
    def from_pretrained(cls, run_or_folder: str | Path | None = None, device: str | torch.device = "cpu"
                        ) -> ObjectsPipeline:
        """Load ``<run>/models/{shape_decoder,appearance,database}`` (or a folder holding them, e.g.
        one written by :meth:`save_pretrained`); ``None`` takes the latest run under
        :data:`DEFAULT_RUNS`.

        Each network goes through :func:`latent4d.trust.load_network` (config.json checked, safetensors
        only); before anything is built, the tensor shapes its config.json implies are compared with
        the safetensors header, so a config declaring huge sizes allocates nothing. Damaged folders
        raise :class:`InputError` naming the file.
        """
        return super().from_pretrained(find_latest_run() if run_or_folder is None else run_or_folder, device)

    @classmethod
    def load_components(cls, run_or_folder: str | Path, names: list[str] | None = None) -> dict:
        """The base loader after two checks: every network is there (one ConfigError naming the missing
        ones), and each folder's config.json fits its weights (:func:`_check_network_shapes`)."""
        from latent4d.runs import MODELS, has_network

        p = Path(run_or_folder)
        missing = [n for n in cls.component_classes if not has_network(p, n)]
        if missing:
            folder = p / MODELS if (p / MODELS).is_dir() else p
            raise ConfigError(f"'{p}' has no exported objects latent database (missing {', '.join(missing)} under "
                              f"{folder}); train with `latent4d train experiment=objects/latent_db`")
        for name, net_cls in cls.component_classes.items():
            _check_network_shapes(net_cls, cls.component_folder(p, name))
        return super().load_components(p, names)

    @classmethod
    def from_module(cls, module, device: str = "cpu") -> ObjectsPipeline:
        """From a trained :class:`latent4d.objects.module.ObjectsLatentModule` (copies its networks)."""
        import copy

        if module.database is None:
            raise ConfigError("the module has no latent database yet (train it or load a checkpoint first)")
        return cls(copy.deepcopy(module.shape_decoder), copy.deepcopy(module.appearance),  # copies: fusing is in place
                   copy.deepcopy(module.database), device)

    @classmethod
    def from_checkpoint(cls, run_dir: str | Path, ckpt: str | Path | None = None, device: str = "cpu") -> ObjectsPipeline:
        """From a run's Lightning checkpoint (``last.ckpt`` by default), e.g. while it still trains.

        Nothing from the run folder is executed: the checkpoint loads with ``weights_only=True``
        (:func:`latent4d.trust.check_lightning_checkpoint`), the model is built only from latent4d
        objects classes (:func:`latent4d.trust.instantiate_from_run`), first on the meta device to
        compare its tensor shapes with the checkpoint (no allocation sized by the config), and the
        weights load through :func:`latent4d.trust.load_state_checked`.
        """
        from latent4d.runs import Run
        from latent4d.trust import check_lightning_checkpoint, instantiate_from_run, load_state_checked

        run = Run.open(run_dir)
        cfg = run.config
        where = f"run config '{run.dir / 'config.yaml'}'"
        if str(cfg.get("family")) != "objects":
            raise ConfigError(f"{where}: family '{cfg.get('family')}' is not objects; from_checkpoint needs a run of "
                              "experiment=objects/latent_db")
        if cfg.get("model") is None:
            raise ConfigError(f"{where} has no model section; the run folder is damaged")
        path = Path(ckpt) if ckpt else run.dir / "checkpoints" / "last.ckpt"
        state = check_lightning_checkpoint(path)["state_dict"]
        extra = _database_state(state, path)
        with torch.device("meta"):  # shapes only: a config declaring huge layers allocates nothing
            probe = instantiate_from_run(cfg.model, "objects", f"{where}: model")
            if extra is not None:
                probe.build_database(*extra)
        _compare_shapes({k: tuple(v.shape) for k, v in probe.state_dict().items() if isinstance(v, torch.Tensor)},
                        {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)},
                        path, type(probe).__name__, "the checkpoint was written by another experiment or model "
                        "size than the run's config.yaml describes: use a checkpoint of this run")
        module = instantiate_from_run(cfg.model, "objects", f"{where}: model")
        if extra is not None:
            module.build_database(*extra)
        load_state_checked(module, state, path)
        return cls.from_module(module, device)

    # -- codes ---------------------------------------------------------------------------------
    def codes(self, key: int | str) -> tuple[torch.Tensor, torch.Tensor]:
        """Database codes of an object (index or name): ((shape_dim,), (appearance_dim,))."""
        idx = self.database.index(key) if isinstance(key, str) else int(key)
        if not 0 <= idx < len(self.database):
            raise InputError(f"object index {idx} out of range (database holds {len(self.database)})")
        zs, za = self.database.codes(idx)
        return zs.detach(), za.detach()

    def mean_codes(self, category: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Category mean codes (all objects when ``category`` is None)."""
        return self.database.mean_codes(category)

    # -- decoding ------------------------------------------------------------------------------
    def sdf(self, xyz: torch.Tensor, shape_code: torch.Tensor) -> torch.Tensor:
        """Canonical SDF: xyz (N, 3) -> (N,)."""
        return self.shape_decoder(xyz.to(self.device), shape_code.to(self.device))

    def color(self, xyz: torch.Tensor, shape_code: torch.Tensor, appearance_code: torch.Tensor,
              appearance: AppearanceNet | None = None) -> torch.Tensor:
        """Colour at canonical points: xyz (N, 3) -> RGB (N, 3) in [0, 1] (by ``appearance``, e.g. an
        object's fine-tuned copy, when given; else by the pipeline's network)."""
        net = self.appearance if appearance is None else appearance
        return net(xyz.to(self.device), shape_code.to(self.device), appearance_code.to(self.device))

    def surface_points(self, shape_code: torch.Tensor, appearance_code: torch.Tensor | None = None,
                       level: int = 6, start_level: int = 2, create_graph: bool = False,
                       threshold: float | None = None) -> dict[str, torch.Tensor]:
        """Differentiable coloured surface points from the octree step (canonical frame).

        Returns ``points`` (K, 3), ``normals`` (K, 3), ``values`` (K,), ``evaluations`` and, with an
        appearance code, ``colors`` (K, 3) in [0, 1]. Gradients flow to the codes when they require grad.
        """
        zs = shape_code.to(self.device)
        color_fn = None
        if appearance_code is not None:
            za = appearance_code.to(self.device)
            color_fn = lambda x: self.appearance(x, zs, za)  # noqa: E731
        return octree_surface_points(self.shape_decoder.bind(zs), level, start_level, threshold=threshold,
                                     color_fn=color_fn, create_graph=create_graph)

    @torch.no_grad()
    def mesh(self, shape_code: torch.Tensor, appearance_code: torch.Tensor | None = None, level: int = 7,
             start_level: int = 2, octree: bool = True, appearance: AppearanceNet | None = None) -> trimesh.Trimesh:
        """Canonical mesh of a code (sparse octree marching cubes at ``2**level``; ``octree=False``:
        dense grid), coloured by the appearance network (``appearance`` when given) at the vertices
        when a code is given."""
        from latent4d.geometry.meshing import dense_mesh

        fn = self.shape_decoder.bind(shape_code.to(self.device))
        mesh = octree_mesh(fn, level, start_level)[0] if octree else dense_mesh(fn, 2 ** level)
        if appearance_code is not None:
            self.paint(mesh, shape_code, appearance_code, appearance)
        return mesh

    @torch.no_grad()
    def paint(self, mesh: trimesh.Trimesh, shape_code: torch.Tensor, appearance_code: torch.Tensor,
              appearance: AppearanceNet | None = None) -> trimesh.Trimesh:
        """Colour a canonical mesh's vertices (in place) by the appearance network (``appearance`` when given)."""
        from latent4d.geometry.octree import default_chunk

        if len(mesh.vertices):
            v = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32, device=self.device)
            n = default_chunk(self.device)
            col = torch.cat([self.color(v[s:s + n], shape_code, appearance_code, appearance)
                             for s in range(0, len(v), n)]).cpu().numpy()
            rgba = np.concatenate([np.rint(col * 255), np.full((len(col), 1), 255)], 1).astype(np.uint8)
            mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=rgba)
        return mesh

    @torch.no_grad()
    def band_points(self, shape_code: torch.Tensor, level: int = 6, start_level: int = 2) -> torch.Tensor:
        """Cheap surface samples without gradients: centres of the octree cells at ``level`` whose
        |sdf| is below half a cell side (K, 3), canonical."""
        from latent4d.geometry.octree import octree_band

        band = octree_band(self.shape_decoder.bind(shape_code.to(self.device)), level, start_level)
        return band.centers[band.values.abs() < 0.5 * band.side]

    @torch.no_grad()
    def extents(self, shape_code: torch.Tensor, level: int = 6) -> np.ndarray:
        """(3,) canonical bounding-box extents of the decoded surface (octree band, +- half a cell)."""
        pts = self.band_points(shape_code, level)
        if len(pts) == 0:
            return np.zeros(3)
        return (pts.max(0).values - pts.min(0).values).cpu().numpy().astype(np.float64)

    # -- reconstruction ------------------------------------------------------------------------
    def reconstruct(self, frame, categories: dict[int, str] | str | None = None, config=None,
                    init: dict | None = None, callback: Callable[[int, int, dict], bool | None] | None = None,
                    instance_ids: list[int] | None = None) -> list[ObjectReconstruction]:
        """Reconstruct every instance of ``frame`` (:class:`latent4d.objects.types.Scene`) with the
        settings ``config`` (:class:`latent4d.objects.reconstruct.ObjectsReconstructConfig`; the
        defaults when None): see :func:`latent4d.objects.reconstruct.reconstruct_scene`."""
        from latent4d.objects.reconstruct import reconstruct_scene

        return reconstruct_scene(self, frame, config, categories=categories, init=init, callback=callback,
                                 instance_ids=instance_ids)


DEFAULT_DETECTOR_RUNS = "outputs/objects/detector"
"""Where ``latent4d train experiment=objects/detector`` writes its runs (searched when no run is given)."""


class DetectorPipeline(LatentPipeline):
    """The single-shot detector of an ``objects/detector`` run (:class:`ObjectDetector`, frozen, eval).

    ``detect(frame)`` -> a list of :class:`latent4d.objects.detector.Detection` (category, score, pose,
    size, codes, a full-resolution mask), best first.
    """

    family = "objects"
    component_classes = {"detector": ObjectDetector}

    def __init__(self, detector: ObjectDetector, device: str | torch.device = "cpu"):
        self.register_modules(detector=detector.eval().requires_grad_(False))
        self.to(device)

    @classmethod
    def from_pretrained(cls, run_or_folder: str | Path | None = None, device: str | torch.device = "cpu"
                        ) -> DetectorPipeline:
        """Load ``<run>/models/detector`` through :func:`latent4d.trust.load_network`; ``None`` takes the
        latest run under :data:`DEFAULT_DETECTOR_RUNS`."""
        from latent4d.runs import latest_run

        if run_or_folder is None:
            run_or_folder = latest_run(DEFAULT_DETECTOR_RUNS, "detector", "train one with `latent4d train "
                                       "experiment=objects/detector` or pass detector=<run dir>")
        return super().from_pretrained(run_or_folder, device)

    @property
    def categories(self) -> list[str]:
        return list(self.detector.config.categories)

    @torch.no_grad()
    def detect(self, frame, threshold: float = 0.15, radius: float = 3.0, min_cells: int = 2) -> list:
        """Detections in ``frame`` (rgb (H, W, 3) uint8, depth (H, W) m, K): see
        :func:`latent4d.objects.detector.decode_detections`; sorted by score, best first."""
        from latent4d.objects.detector import decode_detections, detector_input

        if frame.rgb is None:
            raise InputError("detection needs an RGB image (rgb=)")
        cfg = self.detector.config
        x, Kw = detector_input(frame.rgb, frame.depth, frame.K, cfg.width, cfg.height)
        out = {k: v.float().cpu() for k, v in self.detector(x[None].to(self.device)).items()}
        dets = decode_detections(out, x, Kw, cfg, frame.depth, threshold, radius, min_cells)
        return sorted(dets, key=lambda d: -d.score)
