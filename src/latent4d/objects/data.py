"""Object data for the latent databases: SDF and colour samples per object, as a LightningDataModule.

Objects come from the procedural generator (:mod:`latent4d.objects.synthetic`, the default) or
from any folder of meshes (:mod:`latent4d.objects.meshes`). Per object we draw

* SDF samples (``n_sdf``): uniform in [-1, 1]^3 plus Gaussian-perturbed surface points, signed
  distance from Open3D's RaycastingScene (:func:`latent4d.geometry.sdf.sdf_samples`), unclamped
  (the model clamps);
* colour samples (``n_color``): surface points jittered by ``color_sigma`` along random
  directions, coloured with the closest surface point's interpolated vertex colour, so that the
  appearance network is defined in a thin shell around the surface (what the optimiser queries).

Each object's samples are split into train / val / test parts. A batch is a dict:
``index`` (B,) object ids, ``sdf_points`` (B, S, 3), ``sdf`` (B, S), ``color_points`` (B, C, 3),
``color`` (B, C, 3) in [0, 1]. Training items draw a fresh random subset each time; val / test
items are fixed. Everything per object is cached with :func:`latent4d.cache.cached_npz`.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from latent4d.cache import cached_npz
from latent4d.datamodule import SplitDataModule
from latent4d.errors import InputError
from latent4d.geometry.sampling import sample_surface
from latent4d.geometry.sdf import MeshSDF, sdf_samples
from latent4d.objects.synthetic import CATEGORIES, ProceduralObject, make_object

log = logging.getLogger("latent4d.objects")

_VERSION = 2  # bump when the sampling changes (invalidates the cache)


def object_samples(obj: ProceduralObject, n_sdf: int, n_color: int, near_fraction: float = 0.8,
                   sigmas=(0.01, 0.04), color_sigma: float = 0.01, seed: int = 0) -> dict[str, np.ndarray]:
    """SDF and colour samples of one canonical object (see the module docstring).

    Returns ``sdf_points`` (n_sdf, 3), ``sdf`` (n_sdf,), ``color_points`` (n_color, 3),
    ``color`` (n_color, 3) float32 in [0, 1], ``surface`` (n_color, 3) exact surface points.
    """
    rng = np.random.default_rng(seed)
    n_near = int(round(n_sdf * near_fraction))
    pts, sdf = sdf_samples(obj.mesh, n_sdf - n_near, n_near, sigmas=sigmas, rng=rng)
    surf, fidx, bary = sample_surface(obj.mesh.vertices, obj.mesh.faces, n_color, rng)
    vc = np.asarray(obj.mesh.visual.vertex_colors)[:, :3].astype(np.float32) / 255.0
    d = rng.normal(size=(n_color, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    cpts = (surf + d * np.abs(rng.normal(size=(n_color, 1))) * color_sigma).astype(np.float32)
    col = MeshSDF(obj.mesh, robust=False).closest_attribute(cpts, vc).astype(np.float32)
    perm = rng.permutation(len(pts))
    return {"sdf_points": pts[perm], "sdf": sdf[perm], "color_points": cpts, "color": np.clip(col, 0, 1),
            "surface": surf.astype(np.float32)}


class ObjectSamples(Dataset):
    """Items of a split: object ``i % N`` with ``sdf_per_item`` SDF and ``color_per_item`` colour
    samples (random subsets when ``train``; the first ones otherwise)."""

    def __init__(self, arrays: list[dict[str, np.ndarray]], sdf_per_item: int, color_per_item: int,
                 repeats: int = 1, train: bool = True):
        self.sdf_p = [torch.from_numpy(a["sdf_points"]) for a in arrays]
        self.sdf = [torch.from_numpy(a["sdf"]) for a in arrays]
        self.col_p = [torch.from_numpy(a["color_points"]) for a in arrays]
        self.col = [torch.from_numpy(a["color"]) for a in arrays]
        self.sdf_per_item, self.color_per_item = sdf_per_item, color_per_item
        self.repeats, self.train = repeats, train

    def __len__(self) -> int:
        return len(self.sdf) * self.repeats

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k = i % len(self.sdf)
        ns, nc = len(self.sdf[k]), len(self.col[k])
        if self.train:
            si = torch.randint(0, ns, (self.sdf_per_item,))
            ci = torch.randint(0, nc, (self.color_per_item,))
        else:
            si = torch.arange(min(ns, self.sdf_per_item))
            ci = torch.arange(min(nc, self.color_per_item))
        return {"index": torch.tensor(k), "sdf_points": self.sdf_p[k][si], "sdf": self.sdf[k][si],
                "color_points": self.col_p[k][ci], "color": self.col[k][ci]}


class ObjectsDataModule(SplitDataModule):
    """Objects for the shape + appearance latent databases.

    Args:
        source: ``"procedural"`` (``categories`` x ``per_category`` objects, seeds
            ``seed_offset + i``) or ``"folder"`` (every mesh under ``mesh_dir``; category = sub-folder).
        resolution: marching-cubes resolution of the procedural meshes; repair_resolution: flood-fill
            grid for non-watertight meshes from a folder.
        n_sdf / n_color: samples drawn per object (then split ``1 - 2 * holdout`` / holdout / holdout).
        sdf_per_item / color_per_item: samples per object in a batch; objects_per_batch: B.
        repeats: items per object and training epoch.

    Loaders: :class:`latent4d.datamodule.SplitDataModule` (batch size ``objects_per_batch``).
    """

    def __init__(self, source: str = "procedural", categories=CATEGORIES, per_category: int = 6,
                 seed_offset: int = 0, mesh_dir: str | None = None, resolution: int = 96,
                 repair_resolution: int = 96, n_sdf: int = 20000, n_color: int = 8000, near_fraction: float = 0.8,
                 sigmas=(0.01, 0.04), color_sigma: float = 0.01, holdout: float = 0.05,
                 sdf_per_item: int = 1024, color_per_item: int = 512, objects_per_batch: int = 12,
                 repeats: int = 8, num_workers: int = 0, seed: int = 0, cache: bool = True):
        super().__init__(batch_size=objects_per_batch, num_workers=num_workers)
        categories, sigmas = [str(c) for c in categories], [float(x) for x in sigmas]  # plain types in ckpts
        self.save_hyperparameters()
        if source not in ("procedural", "folder"):
            raise InputError(f"data.source must be 'procedural' or 'folder', got '{source}'")
        if source == "folder" and not mesh_dir:
            raise InputError("data.source=folder needs data.mesh_dir=<folder of meshes>")
        unknown = [c for c in categories if c not in CATEGORIES] if source == "procedural" else []
        if unknown:
            raise InputError(f"unknown categories {unknown}; procedural categories: {', '.join(CATEGORIES)}")
        self._objects: list[ProceduralObject] | None = None
        self.skipped: list = []
        self._arrays: list[dict[str, np.ndarray]] | None = None

    # -- objects -------------------------------------------------------------------------------
    @property
    def objects(self) -> list[ProceduralObject]:
        if self._objects is None:
            hp = self.hparams
            if hp.source == "procedural":
                self._objects = [make_object(c, hp.seed_offset + i, hp.resolution)
                                 for c in hp.categories for i in range(hp.per_category)]
            else:
                from latent4d.objects.meshes import load_mesh_folder

                self._objects, self.skipped = load_mesh_folder(hp.mesh_dir, hp.repair_resolution)
        return self._objects

    @property
    def object_names(self) -> list[str]:
        return [o.name if o.pattern.get("kind") != "file" else o.params["file"] for o in self.objects]

    @property
    def object_categories(self) -> list[str]:
        return [o.category for o in self.objects]

    def _samples(self, i: int, obj: ProceduralObject) -> dict[str, np.ndarray]:
        hp = self.hparams
        params = {"v": _VERSION, "name": self.object_names[i], "source": hp.source, "res": hp.resolution,
                  "n_sdf": hp.n_sdf, "n_color": hp.n_color, "near": hp.near_fraction, "sigmas": list(hp.sigmas),
                  "color_sigma": hp.color_sigma, "seed": hp.seed}
        if hp.source == "folder":  # key on the geometry itself: files may change under the same name
            params["mesh"] = float(np.asarray(obj.mesh.vertices, np.float64).sum()) + len(obj.mesh.faces)
        return cached_npz("objects-samples", params,
                          lambda: object_samples(obj, hp.n_sdf, hp.n_color, hp.near_fraction, hp.sigmas,
                                                 hp.color_sigma, seed=hp.seed * 7919 + i),
                          enabled=hp.cache)

    def prepare_data(self) -> None:
        pass  # procedural: built on demand in setup (deterministic, cached)

    def setup(self, stage: str | None = None) -> None:
        if self._arrays is None:
            self._arrays = [self._samples(i, o) for i, o in enumerate(self.objects)]
            log.info("objects data: %d objects, %d skipped", len(self._arrays), len(self.skipped))
        if self.sets:
            return
        hp = self.hparams
        parts: dict[str, list[dict[str, np.ndarray]]] = {"train": [], "val": [], "test": []}
        for a in self._arrays:
            ns, nc = len(a["sdf"]), len(a["color"])
            hs, hc = max(1, int(ns * hp.holdout)), max(1, int(nc * hp.holdout))
            cut = {"train": (slice(0, ns - 2 * hs), slice(0, nc - 2 * hc)),
                   "val": (slice(ns - 2 * hs, ns - hs), slice(nc - 2 * hc, nc - hc)),
                   "test": (slice(ns - hs, ns), slice(nc - hc, nc))}
            for split, (s_sl, c_sl) in cut.items():
                parts[split].append({"sdf_points": a["sdf_points"][s_sl], "sdf": a["sdf"][s_sl],
                                     "color_points": a["color_points"][c_sl], "color": a["color"][c_sl]})
        self.sets = {
            "train": ObjectSamples(parts["train"], hp.sdf_per_item, hp.color_per_item, hp.repeats, True),
            "val": ObjectSamples(parts["val"], 10**9, 10**9, 1, False),
            "test": ObjectSamples(parts["test"], 10**9, 10**9, 1, False),
        }


# ----------------------------------------------------------------------------------------------
# RGB-D scenes for the single-shot detector (experiment=objects/detector)


def load_database(run: str | None):
    """The :class:`~latent4d.objects.database.LatentDatabase` of an ``objects/latent_db`` run (the latest
    under ``outputs/objects/latent_db`` when None), loaded through :mod:`latent4d.trust`."""
    from latent4d.objects.database import LatentDatabase
    from latent4d.runs import latest_run, network_folder
    from latent4d.trust import load_network

    root = run or latest_run("outputs/objects/latent_db", "database", "train one with `latent4d train "
                             "experiment=objects/latent_db` or give data.database=<run dir>")
    return load_network(LatentDatabase, network_folder(root, "database", "LatentDatabase", "objects")).eval()


def database_objects(database, resolution: int) -> list[ProceduralObject]:
    """The procedural objects behind a database's names (``<category>_<seed>``); InputError for others."""
    out = []
    for name, cat in zip(database.names, database.categories):
        head, _, seed = name.rpartition("_")
        if head != cat or not seed.isdigit() or cat not in CATEGORIES:
            raise InputError(f"latent database object '{name}' is not a procedural object (<category>_<seed>): the "
                             "detector trains on procedural scenes of a database trained with data.source=procedural")
        out.append(make_object(cat, int(seed), resolution))
    return out


#: seeds of the detector's extra training instances (``extra_per_category``): above any database's
#: (``<category>_<seed>`` with seed < this) and below the held-out instances' (1000, evaluation.py)
EXTRA_SEED_OFFSET = 500


def _render_scene(objects: list[ProceduralObject], seed: int, hp, K_render: np.ndarray, index: dict[str, int]
                  ) -> dict[str, np.ndarray]:
    """One varied scene (lighting, background, focal length) at the render size, resampled to the
    detector's working size; mask at the output grid; object rows (instance, database index or -1 for an
    extra instance without a code, R, t, scale, index of the category in ``hp.categories``)."""
    from latent4d.objects.detector import DEPTH_OFFSET, detector_input
    from latent4d.objects.scenes import make_scene

    rng = np.random.default_rng([seed, 7])
    f = rng.uniform(0.85, 1.15)
    K = K_render.copy()
    K[0, 0] *= f
    K[1, 1] *= f
    W, H = hp.width * hp.render_scale, hp.height * hp.render_scale
    scene = make_scene(objects, seed=seed, n_objects=tuple(hp.n_objects), K=K, width=W, height=H,
                       shading=float(rng.uniform(0, hp.max_shading)), background=tuple(rng.uniform(0, 255, 3)))
    x, Kw = detector_input(scene.rgb, scene.depth, scene.K, hp.width, hp.height)
    step = hp.render_scale * hp.out_stride
    rows = np.zeros((hp.max_objects, 16), np.float32)
    for k, o in enumerate(scene.objects[:hp.max_objects]):
        rows[k] = [o.instance_id, index.get(o.name, -1), *np.asarray(o.R).ravel(), *o.t, o.scale,
                   list(hp.categories).index(o.category)]
    rgb = np.rint((x[:3].permute(1, 2, 0).numpy() + 0.5) * 255).clip(0, 255).astype(np.uint8)
    depth = (x[3].numpy() + DEPTH_OFFSET) * x[4].numpy()  # the resampled depth with its holes
    return {"rgb": rgb, "depth": depth.astype(np.float32), "mask": scene.mask[step // 2::step, step // 2::step]
            .astype(np.int16), "K": Kw.astype(np.float64), "objects": rows,
            "n": np.array(len(scene.objects))}


class DetectorScenes(Dataset):
    """Items of detector training: ``x`` (7, H, W) network input, and the targets of
    :func:`latent4d.objects.detector.detector_targets` (``heat``, ``sem``, ``inst``, ``objs``).
    Training items get a random colour jitter (gain per channel, brightness, contrast, gamma)."""

    def __init__(self, arrays: dict[str, np.ndarray], database, categories: list[str], labels: list[str],
                 out_stride: int, train: bool):
        self.a, self.train, self.stride = arrays, train, out_stride
        with torch.no_grad():
            self.zs = database.shape.weight.detach().cpu().numpy()
            self.za = database.appearance.weight.detach().cpu().numpy()
        self.cats, self.labels = categories, labels

    def __len__(self) -> int:
        return len(self.a["rgb"])

    def _rgb(self, i: int) -> np.ndarray:
        rgb = self.a["rgb"][i].astype(np.float32) / 255.0
        if self.train:
            g = np.random.uniform(0.8, 1.2, 3) * np.random.uniform(0.7, 1.3)
            c = np.random.uniform(0.7, 1.3)
            rgb = np.clip((rgb * g - 0.5) * c + 0.5, 0, 1) ** np.random.uniform(0.8, 1.25)
        return np.rint(rgb * 255).astype(np.uint8)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from latent4d.objects.detector import detector_input, detector_targets, output_intrinsics
        from latent4d.objects.synthetic import SYMMETRIC

        depth = self.a["depth"][i]
        x, Kw = detector_input(self._rgb(i), depth, self.a["K"][i], depth.shape[1], depth.shape[0])
        objs = []
        for row in self.a["objects"][i][: int(self.a["n"][i])]:
            j = int(row[1])  # database index; -1: an extra instance (no code target)
            cat = self.cats[j] if j >= 0 else self.labels[int(row[15])]
            if cat not in self.labels:
                continue
            objs.append({"instance_id": int(row[0]), "label": self.labels.index(cat) + 1, "R": row[2:11].reshape(3, 3),
                         "t": row[11:14], "scale": float(row[14]), "symmetric": cat in SYMMETRIC,
                         "shape_code": self.zs[j] if j >= 0 else None,
                         "appearance_code": self.za[j] if j >= 0 else None})
        tg = detector_targets(self.a["mask"][i].astype(np.int64), output_intrinsics(Kw, self.stride), objs,
                              self.a["objects"].shape[1], (self.zs.shape[1], self.za.shape[1]))
        return {"x": x, **{k: torch.from_numpy(v) for k, v in tg.items()}}


class DetectorDataModule(SplitDataModule):
    """Procedural RGB-D scenes of a latent database's training objects for the detector.

    Args:
        database: ``objects/latent_db`` run whose objects and codes are the targets (None: the latest).
        categories: the detector's classes 1..C (database objects of other categories are not placed).
        train_scenes / val_scenes / test_scenes: scene counts (disjoint seeds).
        width / height: the detector's working size; render_scale: scenes are rendered at this multiple
            (2 x 320 x 240: 640 x 480, a Kinect's size) with the sensor noise applied there, and resampled as real frames
            are (the noise's holes are sized in sensor pixels); out_stride: the detector's output stride.
        n_objects: objects per scene (inclusive range); max_objects: target rows per scene.
        extra_per_category: procedural instances per category placed in the scenes besides the
            database's (seeds from :data:`EXTRA_SEED_OFFSET`, never database nor held-out ones): they train
            the heatmap, category, masks, pose and size on more shapes and textures than the database holds
            (no code targets: the code heads learn from the database's objects only).
        max_shading: headlight shading drawn in [0, max_shading]; resolution: marching-cubes
            resolution of the scene meshes; batch_size, num_workers, seed, cache: as usual.
    """

    def __init__(self, database: str | None = None, categories=("bottle", "bowl", "camera", "can", "laptop", "mug"),
                 train_scenes: int = 3200, val_scenes: int = 40, test_scenes: int = 40, width: int = 320,
                 height: int = 240, render_scale: int = 2, out_stride: int = 8, n_objects=(1, 5), max_objects: int = 6,
                 max_shading: float = 0.6, resolution: int = 64, batch_size: int = 8, num_workers: int = 0,
                 seed: int = 0, cache: bool = True, extra_per_category: int = 0):
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        categories, n_objects = [str(c) for c in categories], [int(n) for n in n_objects]
        self.save_hyperparameters()
        self._db = None

    @property
    def database(self):
        if self._db is None:
            self._db = load_database(self.hparams.database)
        return self._db

    @property
    def code_dims(self) -> tuple[int, int]:
        return int(self.database.config.shape_dim), int(self.database.config.appearance_dim)

    def _scenes(self, split: str) -> dict[str, np.ndarray]:
        from latent4d.objects.scenes import NOCS_K

        hp = self.hparams
        n = {"train": hp.train_scenes, "val": hp.val_scenes, "test": hp.test_scenes}[split]
        first = {"train": 0, "val": 1_000_000, "test": 2_000_000}[split] + hp.seed * 10_000
        db = self.database
        params = {"v": 2, "split": split, "n": n, "first": first, "names": db.names, "w": hp.width, "h": hp.height,
                  "rs": hp.render_scale, "st": hp.out_stride, "no": list(hp.n_objects), "mo": hp.max_objects,
                  "sh": hp.max_shading, "res": hp.resolution, "cats": list(hp.categories),
                  "ex": int(hp.extra_per_category)}

        def build():
            from latent4d.objects.detector import resize_intrinsics
            from latent4d.objects.synthetic import object_set

            objs = [o for o in database_objects(db, hp.resolution) if o.category in hp.categories]
            if not objs:
                raise InputError(f"data.categories {list(hp.categories)}: the latent database holds none of them "
                                 f"(it holds {', '.join(sorted(set(db.categories)))})")
            if params["ex"]:
                extra = object_set(hp.categories, params["ex"], EXTRA_SEED_OFFSET, hp.resolution)
                clash = sorted({o.name for o in extra} & set(db.names))
                if clash:
                    raise InputError(f"data.extra_per_category: {clash[:3]} are database objects (database seeds must "
                                     f"stay below {EXTRA_SEED_OFFSET}); lower data.extra_per_category")
                objs += extra
            K = resize_intrinsics(NOCS_K, hp.width * hp.render_scale / 640, hp.height * hp.render_scale / 480)
            index = {name: i for i, name in enumerate(db.names)}
            items = [_render_scene(objs, first + i, hp, K, index) for i in range(n)]
            log.info("detector data: rendered %d %s scenes", n, split)
            return {k: np.stack([it[k] for it in items]) for k in items[0]}

        return cached_npz("objects-detector-scenes", params, build, enabled=hp.cache)

    def split_dataset(self, split: str) -> Dataset:
        db = self.database
        return DetectorScenes(self._scenes(split), db, db.categories, list(self.hparams.categories),
                              self.hparams.out_stride, split == "train")
