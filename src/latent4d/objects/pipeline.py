"""Inference for the objects family: decode codes to coloured surfaces / meshes, and reconstruct
objects (shape, appearance, 6D pose, size) from one RGB-D frame.

Typical use::

    from latent4d.objects.pipeline import ObjectsPipeline
    from latent4d.objects.scenes import read_rgbd

    pipe = ObjectsPipeline.from_pretrained("outputs/objects/latent_db/<run>")
    frame = read_rgbd("rgb.png", "depth.png", "mask.png", "intrinsics.json")
    results = pipe.reconstruct(frame, callback=lambda it, state: print(it, state["loss"]))
    for r in results:                      # one ObjectReconstruction per instance id
        r.mesh_camera                      # trimesh, camera frame, vertex colours
        r.R, r.t, r.scale, r.size          # canonical -> camera pose, metric size

Every function takes and returns tensors / arrays with the shapes and units in its docstring;
coordinates are canonical ([-1, 1]^3) unless the name says camera (metres, OpenCV axes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import trimesh

from latent4d.errors import ConfigError, InputError
from latent4d.geometry.octree import octree_mesh, octree_surface_points
from latent4d.objects.appearance import AppearanceNet
from latent4d.objects.database import LatentDatabase
from latent4d.objects.sdf import ShapeDecoder

log = logging.getLogger("latent4d.objects")


def find_latest_run(root: str | Path = "outputs/objects/latent_db") -> Path:
    """The most recent run directory of ``experiment=objects/latent_db`` with exported models."""
    root = Path(root)
    runs = sorted((p.parent.parent for p in root.glob("**/models/shape_decoder/config.json")),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise ConfigError(f"no trained objects latent database under '{root}': train one with "
                          "`latent4d train experiment=objects/latent_db` or pass run=<run dir>")
    return runs[-1]


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


@dataclass
class ObjectReconstruction:
    """Result for one instance.

    R (3, 3) canonical -> camera rotation; t (3,) metres; scale: metric half-diagonal (m);
    size (3,) metric box extents (m); shape_code / appearance_code (D,); category: the prior used;
    mesh_camera: coloured mesh in the camera frame (None when skipped); loss: final loss terms;
    history: per-iteration total loss; status: "ok" | "diverged" | "skipped"; reason: why not ok.
    """

    instance_id: int
    R: np.ndarray | None = None
    t: np.ndarray | None = None
    scale: float | None = None
    extents: np.ndarray | None = None
    shape_code: np.ndarray | None = None
    appearance_code: np.ndarray | None = None
    category: str | None = None
    mesh_camera: trimesh.Trimesh | None = field(default=None, repr=False)
    mesh_canonical: trimesh.Trimesh | None = field(default=None, repr=False)
    loss: dict = field(default_factory=dict)
    history: list[float] = field(default_factory=list, repr=False)
    iterations: int = 0
    seconds: float = 0.0
    status: str = "ok"
    reason: str = ""
    score: float = 0.0

    @property
    def size(self) -> np.ndarray | None:
        return None if self.extents is None or self.scale is None else self.scale * np.asarray(self.extents)

    def to_json(self) -> dict:
        d = {"instance_id": self.instance_id, "status": self.status, "category": self.category,
             "iterations": self.iterations, "seconds": round(self.seconds, 3)}
        if self.reason:
            d["reason"] = self.reason
        if self.status == "ok":
            d.update({"R": np.asarray(self.R).tolist(), "t": np.asarray(self.t).tolist(),
                      "scale": float(self.scale), "size": self.size.tolist(),
                      "extents": np.asarray(self.extents).tolist(), "score": float(self.score),
                      "shape_code": np.asarray(self.shape_code).tolist(),
                      "appearance_code": np.asarray(self.appearance_code).tolist(),
                      "loss": {k: float(v) for k, v in self.loss.items()}})
        return d


class ObjectsPipeline:
    """Shape decoder + appearance network + latent database of one trained run.

    Attributes: ``shape_decoder`` (:class:`ShapeDecoder`), ``appearance`` (:class:`AppearanceNet`),
    ``database`` (:class:`LatentDatabase`); all in eval mode on ``device``.
    """

    def __init__(self, shape_decoder: ShapeDecoder, appearance: AppearanceNet, database: LatentDatabase,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.shape_decoder = shape_decoder.fuse_weight_norm().to(self.device).eval().requires_grad_(False)
        self.appearance = appearance.to(self.device).eval().requires_grad_(False)
        self.database = database.to(self.device).eval().requires_grad_(False)
        self._extents_cache: dict[str, np.ndarray] = {}

    @classmethod
    def from_pretrained(cls, run_or_folder: str | Path | None = None, device: str = "cpu") -> ObjectsPipeline:
        """Load ``<run>/models/{shape_decoder,appearance,database}`` (or a folder holding them);
        ``None`` takes the latest run under ``outputs/objects/latent_db``.

        Each network goes through :func:`latent4d.trust.load_network` (config.json checked, safetensors
        only); before anything is built, the tensor shapes its config.json implies are compared with
        the safetensors header, so a config declaring huge sizes allocates nothing. Damaged folders
        raise :class:`InputError` naming the file.
        """
        from latent4d.trust import load_network

        p = find_latest_run() if run_or_folder is None else Path(run_or_folder)
        folder = p / "models" if (p / "models").is_dir() else p
        missing = [n for n in ("shape_decoder", "appearance", "database") if not (folder / n / "config.json").is_file()]
        if missing:
            raise ConfigError(f"'{p}' has no exported objects latent database (missing {', '.join(missing)} under "
                              f"{folder}); train with `latent4d train experiment=objects/latent_db`")
        nets = {}
        for name, net_cls in (("shape_decoder", ShapeDecoder), ("appearance", AppearanceNet),
                              ("database", LatentDatabase)):
            _check_network_shapes(net_cls, folder / name)
            nets[name] = load_network(net_cls, folder / name)
        return cls(nets["shape_decoder"], nets["appearance"], nets["database"], device)

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
        from latent4d.config import load_run_config
        from latent4d.trust import check_lightning_checkpoint, instantiate_from_run, load_state_checked

        run_dir = Path(run_dir)
        cfg = load_run_config(run_dir)
        where = f"run config '{run_dir / 'config.yaml'}'"
        if str(cfg.get("family")) != "objects":
            raise ConfigError(f"{where}: family '{cfg.get('family')}' is not objects; from_checkpoint needs a run of "
                              "experiment=objects/latent_db")
        if cfg.get("model") is None:
            raise ConfigError(f"{where} has no model section; the run folder is damaged")
        path = Path(ckpt) if ckpt else run_dir / "checkpoints" / "last.ckpt"
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

    def color(self, xyz: torch.Tensor, shape_code: torch.Tensor, appearance_code: torch.Tensor) -> torch.Tensor:
        """Colour at canonical points: xyz (N, 3) -> RGB (N, 3) in [0, 1]."""
        return self.appearance(xyz.to(self.device), shape_code.to(self.device), appearance_code.to(self.device))

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
             start_level: int = 2, octree: bool = True) -> trimesh.Trimesh:
        """Canonical mesh of a code (sparse octree marching cubes at ``2**level``; ``octree=False``:
        dense grid), coloured by the appearance network at the vertices when a code is given."""
        from latent4d.geometry.meshing import dense_mesh

        fn = self.shape_decoder.bind(shape_code.to(self.device))
        mesh = octree_mesh(fn, level, start_level)[0] if octree else dense_mesh(fn, 2 ** level)
        if appearance_code is not None and len(mesh.vertices):
            v = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32, device=self.device)
            col = torch.cat([self.color(v[s:s + 65536], shape_code, appearance_code)
                             for s in range(0, len(v), 65536)]).cpu().numpy()
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
                    instance_ids: list[int] | None = None, mesh_level: int = 7,
                    seed: int = 0) -> list[ObjectReconstruction]:
        """Reconstruct every instance of ``frame`` (:class:`latent4d.objects.scenes.RGBDInput`).

        Args:
            categories: category per instance id (or one for all); unknown -> chosen by the
                initialisation among the database categories.
            config: :class:`latent4d.objects.optimize.OptimConfig` (defaults when None).
            init: optional ``{instance_id: PoseInit}`` initial estimates (else from the observation).
            callback: ``callback(instance_id, iteration, state)`` after every iteration (state: see
                :meth:`ObjectOptimizer.optimize`); returning False stops that object's optimisation.
            mesh_level: octree level of the output meshes.

        Returns one :class:`ObjectReconstruction` per instance; objects without enough valid
        depth are ``skipped`` and diverged ones ``diverged`` (with reasons), the others ``ok``.
        """
        from latent4d.objects.optimize import ObjectOptimizer, OptimConfig, initial_estimate, observe

        cfg = config or OptimConfig()
        opt = ObjectOptimizer(self, cfg)
        ids = instance_ids or frame.instance_ids
        results = []
        for iid in ids:
            try:
                obs = observe(frame, iid, max_points=cfg.max_points, seed=seed + iid)
            except InputError as e:
                log.warning("instance %d skipped: %s", iid, e)
                results.append(ObjectReconstruction(iid, status="skipped", reason=str(e)))
                continue
            cat = categories.get(iid) if isinstance(categories, dict) else categories
            start = (init or {}).get(iid) or initial_estimate(self, frame, obs, cat, cfg)
            cb = None if callback is None else (lambda it, st, _i=iid: callback(_i, it, st))
            res = opt.optimize(obs, start, frame=frame, callback=cb)
            res.instance_id = iid
            if res.status == "ok":
                zs, za = torch.as_tensor(res.shape_code), torch.as_tensor(res.appearance_code)
                canon = self.mesh(zs, za, level=mesh_level)
                res.mesh_canonical = canon
                res.extents = self.extents(zs)
                cam = canon.copy()
                cam.vertices = res.scale * np.asarray(canon.vertices) @ res.R.T + res.t
                res.mesh_camera = cam
            else:
                log.warning("instance %d %s: %s", iid, res.status, res.reason)
            results.append(res)
        return results
