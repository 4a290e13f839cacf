"""Reconstruction of objects (shape, appearance, 6D pose, size) from one RGB-D frame: the typed
settings (:class:`ObjectsReconstructConfig`) and the solver (:func:`reconstruct_scene`).

The defaults live in ``conf/reconstruct/objects.yaml`` (a Hydra config over this dataclass, which
is registered as its structured schema); :func:`reconstruct_settings` composes them with
``key=value`` overrides, so ``latent4d reconstruct objects key=value``,
``scripts/reconstruct_objects.py``, ``latent4d evaluate``, the demo and ``latent4d bench objects``
read the same defaults, and an unknown key or a wrong type is Hydra's error, as one
:class:`~latent4d.errors.ConfigError` naming the option. ``conf/reconstruct/objects_quick.yaml``
holds the quick demo's settings.

Per instance the solver back-projects the valid depth inside the (1-pixel eroded) mask
(:func:`observe_instance`), estimates a starting pose without a detector
(:func:`latent4d.objects.optimize.initial_estimate`) unless one is given, optimises
(:class:`latent4d.objects.optimize.ObjectOptimizer`) and extracts a coloured mesh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latent4d.errors import ConfigError, InputError
from latent4d.objects.appearance import FINETUNE_PARAMS
from latent4d.objects.io import FOV_RANGE_DEG
from latent4d.objects.optimize import ROTATIONS, ObjectOptimizer, initial_estimate
from latent4d.objects.types import ObjectObservation, ObjectReconstruction, PoseInit
from latent4d.options import check_input_file, compose_settings, opt

MESH_LEVELS = (3, 10)
"""Octree levels of output meshes: 2**level cells per side (8 to 1024)."""
INPUT_FILES = ("rgb", "depth", "mask", "intrinsics")


@dataclass
class ObjectsReconstructConfig:
    """Settings of ``latent4d reconstruct objects`` (defaults: ``conf/reconstruct/objects.yaml``).

    Inputs and outputs: the four files of one frame, the run, categories, units, output mesh level,
    seed and output folder. Optimisation (see :mod:`latent4d.objects.optimize`): learning rates are
    per parameter group (rotation: 6D entries or so(3) radians; translation: metres; log-scale;
    shape code; appearance code); weights multiply the loss terms; distances are in centimetres.
    """

    # -- inputs / outputs --------------------------------------------------------------------------
    rgb: str | None = opt(None, help="8-bit RGB image")
    depth: str | None = opt(None, help="16-bit depth PNG (depth_scale units per metre) or (H, W) float .npy in metres")
    mask: str | None = opt(None, help="instance ids (0 = background) or a colour-coded mask")
    intrinsics: str | None = opt(None, help="JSON {fx, fy, cx, cy, width, height} (pixels) or {K}")
    frame: str | None = opt(None, help="a dataset frame's path prefix (NOCS .../0000, YCB .../000001, a latent4d "
                            "folder) instead of rgb/depth/mask/intrinsics")
    format: str = opt("auto", choices=("auto", "generic", "nocs", "ycb"),
                      help="layout of frame= (auto: from the file names)")
    run: str | None = opt(None, help="objects/latent_db run directory (default: the latest)")
    categories: Any = opt(None, help="one category for all instances, or id:name,id:name (default: tried); with "
                          "frame= in a dataset layout: class id:name, or a .json / .yaml table")
    depth_scale: float = opt(1000.0, gt=0, help="raw depth PNG units per metre (1000: millimetres; NOCS and YCB "
                             "frames carry their own)")
    min_fov: float = opt(FOV_RANGE_DEG[0], gt=0, max=FOV_RANGE_DEG[1],
                         help="smallest plausible field of view (degrees): lower it for a zoom lens or a crop")
    level: int = opt(7, min=MESH_LEVELS[0], max=MESH_LEVELS[1], help="octree level of the output meshes")
    seed: int = opt(0, help="sampling / initialisation seed")
    workers: int = opt(0, min=0, max=256, help="processes refining objects side by side (forked, one torch thread "
                       "each; 0: one per object and candidate category, up to 4 per CPU core; 1: in this process); "
                       "results do not depend on it")
    out: str = opt("outputs/objects/reconstruct", help="output folder")
    # -- detection (no mask= given) ----------------------------------------------------------------
    detector: str | None = opt(None, help="objects/detector run used when mask= is not given (default: the latest)")
    detect_threshold: float = opt(0.15, gt=0, max=1, help="detections: heatmap peaks above this value (ShAPO: 0.15 on real frames)")
    detect_init: str = opt("best", choices=("detector", "plane", "best"),
                           help="start of the refinement of a detection: the detector's pose, size and codes, the "
                           "supporting-plane heuristic inside the detected mask, or the better of both after a short "
                           "pose-only optimisation")
    alternatives: float = opt(0.5, min=0, max=1, help="a detection is also refined as every category whose "
                              "probability is at least this fraction of the detector's category's; the best fit "
                              "wins (0: the detector's category only)")
    # -- optimisation ------------------------------------------------------------------------------
    iterations: int = opt(70, min=1, max=100_000, help="optimisation iterations per object (100 -> 70: poses as good or better on validation frames, 30 % faster)")
    init_iterations: int = opt(12, min=0, max=100_000, help="iterations per initial hypothesis")
    init_candidates: int = opt(3, min=1, max=64, help="initial hypotheses optimised briefly (no estimate given)")
    rotation: str = opt("6d", choices=ROTATIONS, help="rotation parametrisation")
    max_points: int = opt(1000, min=10, max=1_000_000, help="observed points used per object")
    octree_level: int = opt(5, min=3, max=8, help="surface points from a 2^level octree")
    band_every: int = opt(4, min=1, max=100_000, help="rebuild the octree band and normals every k iterations "
                          "(only while the shape code is optimised: never during the warm-up)")
    band_tolerance: float = opt(0.0, min=0, max=1, help="on band_every's schedule, rebuild only when more than "
                                "this fraction of the band's points left it (|sdf| > cell side); 0: whenever any did")
    max_surface_points: int = opt(1500, min=0, max=10_000_000, help="surface points per band (0 = all; 2500 -> "
                                  "1500: 15-18 % faster, poses as good on validation frames)")
    warmup: int = opt(15, min=0, max=100_000, help="iterations with frozen codes (pose and size first)")
    w_sdf: float = opt(1.0, min=0, help="weight of the metric SDF at the observed points")
    w_obs: float = opt(1.0, min=0, help="weight of observed point -> predicted surface")
    w_vis: float = opt(0.5, min=0, help="weight of visible predicted surface -> observed points")
    w_color: float = opt(2.0, min=0, help="weight of the colour L1")
    w_shape_prior: float = opt(0.2, min=0, help="shape-code prior (0.02 -> 0.2: Chamfer reduction 30 -> 37 %)")
    w_app_prior: float = opt(0.01, min=0, help="appearance-code prior")
    w_support: float = opt(1.0, min=0, help="supporting plane: no surface below it, objects touching it rest on it "
                           "(0: off; 0 -> 1 on validation frames: 10deg5cm 74.1 -> 78.7 and 80.7 -> 86.7)")
    support_margin: float = opt(0.005, min=0, help="metres below the supporting plane a surface point may reach "
                                "unpenalised (depth noise)")
    contact_height: float = opt(0.03, min=0, help="an object rests on the supporting plane when its lowest "
                                "observations (2nd percentile) are within this many metres of it")
    prior_shrink: float = opt(0.1, min=0, help="code priors: category covariance + shrink * mean variance * I")
    huber_cm: float = opt(0.5, gt=0, help="Huber threshold (cm)")
    color_sigma_cm: float = opt(1.0, gt=0, help="colour weight falls off with the SDF over this (cm)")
    vis_margin: float = opt(0.015, min=0, help="metres behind the observed depth that still count as visible")
    lr_rotation: float = opt(0.02, min=0, help="learning rate of the rotation")
    lr_translation: float = opt(0.004, min=0, help="learning rate of the translation (m)")
    lr_scale: float = opt(0.02, min=0, help="learning rate of the log-scale")
    lr_shape: float = opt(0.02, min=0, help="learning rate of the shape code")
    lr_appearance: float = opt(0.03, min=0, help="learning rate of the appearance code")
    lr_final: float = opt(0.05, min=0, max=1, help="cosine decay to this fraction of the start rates")
    # -- per-object appearance fine-tuning (ShAPO's) -----------------------------------------------
    appearance_finetune: int = opt(100, min=0, max=100_000, help="Adam steps fitting a per-object copy of the "
                                   "appearance network to the observed colours after the optimisation (0: off; 100 "
                                   "cut the held-out colour error 13.8 -> 4.7 /255 on validation scenes)")
    appearance_finetune_lr: float = opt(1e-4, gt=0, help="learning rate of the fine-tuning (ShAPO: 1e-4)")
    appearance_finetune_params: str = opt("all", choices=FINETUNE_PARAMS, help="weights fine-tuned: all (ShAPO), "
                                          "last (last sine layer + output layer), out (output layer)")

    def validate(self) -> None:
        """Checks Hydra cannot express: the ``categories=`` syntax (a table file with ``frame=``)."""
        if self.frame and str(self.categories or "").endswith((".json", ".yaml", ".yml")):
            return
        self.category_map()

    def category_map(self) -> dict[int, str] | str | None:
        """``categories=`` as None, one name for every instance, or ``{instance id: name}``."""
        return parse_categories(self.categories)

    def input_files(self) -> dict[str, Path]:
        """The four input files, checked to exist (ConfigError naming what is missing); with ``frame=``
        the layout's files are checked by :func:`latent4d.objects.layouts.read_layout_frame` instead."""
        if self.frame:
            given = [k for k in INPUT_FILES if k != "intrinsics" and getattr(self, k)]
            if given:
                raise ConfigError(f"reconstruct objects: frame= names the files; drop {', '.join(given)}= (or drop "
                                  "frame= and give rgb=, depth=, mask=, intrinsics=)")
            return {}
        missing = [k for k in INPUT_FILES if k != "mask" and not getattr(self, k)]
        if missing:
            raise ConfigError("reconstruct objects needs " + ", ".join(f"{k}=<file>" for k in missing)
                              + " (mask=<file> optional: without it the detector finds the objects) or frame=<dataset "
                              "frame prefix> (and optionally run=<objects/latent_db run dir>, categories=..., out=<dir>)")
        if not self.mask and self.categories not in (None, ""):
            raise ConfigError("categories= needs mask= (its instance ids); without mask= the detector gives each "
                              "object's category: drop categories=")
        return {k: check_input_file(getattr(self, k), k) for k in INPUT_FILES if getattr(self, k)}


def reconstruct_settings(overrides: list[str] | tuple[str, ...] = (), name: str = "objects",
                         command: str = "reconstruct objects") -> ObjectsReconstructConfig:
    """``conf/reconstruct/<name>.yaml`` composed with ``key=value`` ``overrides`` (ConfigError for
    unknown keys, wrong types, values out of range and a malformed ``categories=``)."""
    return compose_settings(f"reconstruct/{name}", ObjectsReconstructConfig, list(overrides), command)


def parse_categories(value) -> dict[int, str] | str | None:
    """``categories=``: None, one name for every instance, ``'id:name,id:name'`` or a mapping."""
    if value in (None, ""):
        return None
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not str(k).strip().isdigit() or not isinstance(v, str) or not v.strip():
                raise ConfigError(f"categories: expected 'name' or 'id:name,id:name', got {dict(value)}")
            out[int(k)] = v.strip()
        return out
    if isinstance(value, list | tuple):
        raise ConfigError(f"categories: expected 'name' or 'id:name,id:name', got a list {list(value)}")
    text = str(value)
    if ":" not in text:
        return text.strip()
    out = {}
    for part in text.split(","):
        k, _, v = part.partition(":")
        if not k.strip().isdigit() or not v.strip():
            raise ConfigError(f"categories: expected 'name' or 'id:name,id:name', got '{text}'")
        out[int(k)] = v.strip()
    return out


def check_categories(cats: dict[int, str] | str | None, frame, database, mask: str) -> None:
    """ConfigError for instance ids of ``categories=`` that are not in the frame's mask and for
    category names the latent database does not hold (before any optimisation)."""
    if cats is None:
        return
    present = frame.instance_ids
    known = sorted(set(database.categories))
    if isinstance(cats, dict):
        absent = sorted(set(cats) - set(present))
        if absent:
            raise ConfigError(f"categories: instance id(s) {', '.join(map(str, absent))} are not in mask '{mask}' "
                              f"(it holds {', '.join(map(str, present))}); give categories for those ids")
        names = sorted(set(cats.values()))
    else:
        names = [cats]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"categories: {', '.join(unknown)} not in the latent database (it holds "
                          f"{', '.join(known)}); use one of those or train a database with that category")


def observe_instance(frame, instance_id: int, max_points: int = 1500, seed: int = 0, min_points: int = 50,
                     erode: int = 1) -> ObjectObservation:
    """Back-project the valid depth of ``frame`` (an RGB-D frame with rgb and mask) inside one
    instance's mask (eroded by ``erode`` pixels when enough remains), subsample to ``max_points``;
    InputError when fewer than ``min_points`` remain."""
    from scipy import ndimage

    from latent4d.geometry.rgbd import backproject_depth

    m = frame.mask == instance_id
    if not m.any():
        raise InputError(f"instance {instance_id}: not in the mask")
    if erode > 0:
        me = ndimage.binary_erosion(m, iterations=erode)
        if ((frame.depth > 0) & me).sum() >= min_points:
            m = me
    pts, pix = backproject_depth(frame.depth, frame.K, m)
    if len(pts) < min_points:
        raise InputError(f"instance {instance_id}: {len(pts)} valid depth pixel(s) inside the mask, "
                         f"need at least {min_points}")
    n_valid = len(pts)
    if len(pts) > max_points:
        sel = np.random.default_rng(seed).choice(len(pts), max_points, replace=False)
        pts, pix = pts[sel], pix[sel]
    cols = frame.rgb[pix[:, 0], pix[:, 1]].astype(np.float32) / 255.0
    return ObjectObservation(instance_id, pts.astype(np.float32), cols, pix, n_valid)


def reconstruct_scene(pipe, frame, config: ObjectsReconstructConfig | None = None,
                      categories: dict[int, str] | str | None = None, init: dict[int, PoseInit] | None = None,
                      callback: Callable[[int, int, dict], bool | None] | None = None,
                      instance_ids: list[int] | None = None, choose_start: bool = False) -> list[ObjectReconstruction]:
    """Reconstruct every instance of ``frame`` (:class:`latent4d.objects.types.Scene`) with the
    networks of ``pipe`` (:class:`latent4d.objects.pipeline.ObjectsPipeline`).

    Args:
        config: the settings (``ObjectsReconstructConfig()``, i.e. the defaults, when None); its
            ``level`` is the octree level of the output meshes, ``seed`` the sampling seed, ``workers``
            the processes refining objects side by side (:func:`latent4d.parallel.map_processes`).
        categories: category per instance id (or one for all); None takes ``config.categories``;
            unknown -> chosen by the initialisation among the database categories. A tuple of
            categories for an id (the detector's first, then ``config.alternatives``' runners-up): the
            object is refined as each of them (the first from its ``init``, the others from the plane
            heuristic) and the one that fits best (:func:`latent4d.objects.optimize.fit_cost`) is kept.
        init: optional ``{instance_id: PoseInit}`` initial estimates (else from the observation).
        callback: ``callback(instance_id, iteration, state)`` after every iteration (state: see
            :meth:`ObjectOptimizer.optimize`); returning False stops that object's optimisation. With a
            callback the objects are refined one after another in this process.
        choose_start: start each object given in ``init`` from the better of that estimate and the
            supporting-plane one (:func:`_better_start`).

    Returns one :class:`ObjectReconstruction` per instance; objects without enough valid depth are
    ``skipped`` and diverged ones ``diverged`` (with reasons), the others ``ok``. The results do not
    depend on ``workers`` (every random choice is seeded per object).
    """
    import logging

    from latent4d.objects.optimize import supporting_plane
    from latent4d.parallel import map_processes

    cfg = config or ObjectsReconstructConfig()
    cats = cfg.category_map() if categories is None else categories
    ids = list(instance_ids or frame.instance_ids)
    plane = supporting_plane(frame)  # once per frame: every object's start and support term
    # one refinement per (instance, candidate category): a runner-up category runs beside the other
    # objects instead of after its instance's first category, so the cores stay busy to the end
    jobs = []
    for iid in ids:
        cat = cats.get(iid) if isinstance(cats, dict) else cats
        jobs += [(iid, k, c) for k, c in enumerate(cat if isinstance(cat, tuple) else (cat,))]

    def refine(job: tuple) -> tuple[ObjectReconstruction, float]:
        iid, k, cat = job
        cb = None if callback is None else (lambda it, st: callback(iid, it, st))
        st = (init or {}).get(iid) if k == 0 else None  # runner-up categories start from the plane heuristic
        return _refine_candidate(pipe, frame, cfg, iid, cat, st, choose_start, cb, plane)

    workers = 1 if callback is not None else cfg.workers
    fits = map_processes(refine, jobs, workers=workers, label=f"refining {len(ids)} objects")
    log = logging.getLogger("latent4d.objects")
    chosen: dict[int, tuple[ObjectReconstruction, float]] = {}
    for (iid, _, cat), (res, cost) in zip(jobs, fits):
        if iid not in chosen:
            chosen[iid] = (res, cost)
        elif cost < chosen[iid][1]:
            log.info("instance %d: refined as %s, which fits better than %s (%.3f < %.3f)", iid, cat,
                     chosen[iid][0].category, cost, chosen[iid][1])
            chosen[iid] = (res, cost)

    def finish(iid: int) -> ObjectReconstruction:
        res = chosen[iid][0]
        res.instance_id = iid
        if res.status == "ok":
            obs = observe_instance(frame, iid, max_points=cfg.max_points, seed=cfg.seed + iid)
            _attach_meshes(pipe, res, cfg, obs)
        elif res.status != "skipped":
            log.warning("instance %d %s: %s", iid, res.status, res.reason)
        return res

    return map_processes(finish, ids, workers=workers, label=f"meshing {len(ids)} objects")


def _refine_candidate(pipe, frame, cfg: ObjectsReconstructConfig, iid: int, category: str | None,
                      start: PoseInit | None, choose_start: bool,
                      callback: Callable[[int, dict], bool | None] | None, plane) -> tuple[ObjectReconstruction, float]:
    """One instance of :func:`reconstruct_scene` refined as one category: observe, start (``start``, the
    better of it and the plane start with ``choose_start``, or the plane start), optimise. Returns the
    result (no meshes yet; ``skipped`` with the reason when the instance has too little depth) and its
    :func:`~latent4d.objects.optimize.fit_cost`; ``plane``: the frame's supporting plane or None
    (:func:`latent4d.objects.optimize.supporting_plane`)."""
    import logging

    from latent4d.objects.optimize import fit_cost

    try:
        obs = observe_instance(frame, iid, max_points=cfg.max_points, seed=cfg.seed + iid)
    except InputError as e:
        logging.getLogger("latent4d.objects").warning("instance %d skipped: %s", iid, e)
        return ObjectReconstruction(iid, status="skipped", reason=str(e)), float("inf")
    if start is not None and choose_start:
        start = _better_start(pipe, frame, obs, start, cfg, plane)
    start = start or initial_estimate(pipe, frame, obs, category, cfg, plane)
    res = ObjectOptimizer(pipe, cfg).optimize(obs, start, frame=frame, callback=callback, finetune=False, plane=plane,
                                              score=cfg.level < SURFACE_LEVEL)
    return res, fit_cost(res, cfg)


def _attach_meshes(pipe, res: ObjectReconstruction, cfg: ObjectsReconstructConfig, obs: ObjectObservation) -> None:
    """The canonical mesh of a result (octree ``cfg.level``), the object's fine-tuned appearance network
    (``cfg.appearance_finetune`` steps, :func:`latent4d.objects.optimize.finetune_appearance`, fitted at
    the mesh's vertices: the surface is decoded once), the mesh coloured by it, the box extents and the
    mesh in the camera frame. From level :data:`SURFACE_LEVEL` on, the extents (the mesh's bounding box)
    and the score (inlier fraction) are measured on the mesh's vertices, not on a second decode."""
    import time

    from latent4d.objects.optimize import finetune_appearance

    zs, za = torch.as_tensor(res.shape_code), torch.as_tensor(res.appearance_code)
    canon = pipe.mesh(zs, None, level=cfg.level)
    if cfg.appearance_finetune > 0 and res.appearance_net is None:
        t0 = time.perf_counter()
        res.appearance_net = finetune_appearance(pipe, obs, res, cfg, surface=np.asarray(canon.vertices, np.float32))
        res.seconds += time.perf_counter() - t0
    res.mesh_canonical = pipe.paint(canon, zs, za, appearance=res.appearance_net)
    verts = np.asarray(canon.vertices, np.float64)
    if cfg.level >= SURFACE_LEVEL and len(verts):
        res.extents = verts.max(0) - verts.min(0)
        res.score = ObjectOptimizer(pipe, cfg).inlier_fraction(obs, res, surface=verts)
    else:
        res.extents = pipe.extents(zs)
    cam = canon.copy()
    cam.vertices = res.scale * np.asarray(canon.vertices) @ res.R.T + res.t
    res.mesh_camera = cam


SURFACE_LEVEL = 6
"""Output meshes of this octree level or finer stand for the decoded surface in the box extents and the
score (the level-6 band that they replace is coarser)."""


def detected_frame(frame, detections: list, known: list[str], min_height: float = 0.008,
                   alternatives: float = 0.0) -> tuple:
    """A :class:`~latent4d.objects.types.Scene` of ``frame`` whose mask holds the detections (ids 1..N
    in the order given, best first; a pixel keeps the first detection that claims it; pixels within
    ``min_height`` m of the supporting plane dropped, 0: kept), with
    ``({id: category}, {id: PoseInit}, {id: skip reason})``: detections of categories that the latent
    database lacks (``known``) are skipped with the reason. ``alternatives`` > 0: an id's category is a
    tuple, the detector's then every known category whose probability is at least ``alternatives`` times
    the detector's (most probable first), for :func:`reconstruct_scene` to try."""
    from latent4d.objects.types import Scene

    mask = np.zeros(frame.depth.shape, np.int32)
    cats, inits, skipped = {}, {}, {}
    for iid, d in enumerate(detections, 1):
        mask[(mask == 0) & d.mask] = iid
        if d.category not in known:
            skipped[iid] = (f"detected category '{d.category}' (score {d.score:.2f}) is not in the latent database "
                            f"({', '.join(sorted(known))})")
            continue
        top = float(d.category_probs.get(d.category, 1.0))
        runners = [c for c, q in sorted(d.category_probs.items(), key=lambda cq: -cq[1])
                   if alternatives > 0 and c != d.category and c in known and q >= alternatives * top]
        cats[iid] = (d.category, *runners) if runners else d.category
        inits[iid] = PoseInit(np.asarray(d.R), np.asarray(d.t), float(d.scale), torch.as_tensor(d.shape_code).float(),
                              torch.as_tensor(d.appearance_code).float(), d.category)
    scene = Scene(rgb=frame.rgb, depth=frame.depth, mask=mask, K=frame.K, objects=list(getattr(frame, "objects", [])))
    if min_height > 0 and (mask > 0).any():
        scene.mask = _above_plane(scene, min_height)
    return scene, cats, inits, skipped


def _above_plane(scene, min_height: float) -> np.ndarray:
    """The scene's mask without pixels less than ``min_height`` metres above the supporting plane
    (fitted to the pixels outside every mask, :func:`latent4d.objects.optimize.estimate_up`): the
    detector's coarse masks lose the table around each object."""
    from latent4d.objects.optimize import estimate_up

    up, off = estimate_up(scene)
    H, W = scene.depth.shape
    v, u = np.mgrid[0:H, 0:W]
    z = scene.depth
    pts = np.stack([(u - scene.K[0, 2]) / scene.K[0, 0] * z, (v - scene.K[1, 2]) / scene.K[1, 1] * z, z], -1)
    height = pts @ up + off
    return np.where((z > 0) & (height < min_height), 0, scene.mask).astype(np.int32)


def _better_start(pipe, scene, obs: ObjectObservation, start: PoseInit, cfg: ObjectsReconstructConfig,
                  plane="auto") -> PoseInit:
    """The detector's start or the supporting-plane one (:func:`initial_estimate` with the detected
    category), whichever fits the observation ``obs`` better (:func:`~latent4d.objects.optimize.fit_cost`:
    the loss without the code priors) after ``init_iterations`` pose-only iterations (the detector's codes
    stay with its start; the plane start's brief fit is the one that chose it among its hypotheses).
    ``plane``: the frame's supporting plane (see ``ObjectOptimizer.optimize``)."""
    from latent4d.objects.optimize import fit_starts

    heuristic, cost = initial_estimate(pipe, scene, obs, start.category, cfg, plane, with_cost=True)
    fitted = fit_starts(pipe, scene, obs, [start] if cost is not None else [start, heuristic], cfg, plane)
    if cost is not None:
        fitted = sorted(fitted + [(heuristic, cost)], key=lambda c: c[1])
    return fitted[0][0] if fitted else start


def reconstruct_detected(pipe, detector, frame, config: ObjectsReconstructConfig | None = None,
                         callback: Callable[[int, int, dict], bool | None] | None = None) -> dict:
    """Detect the objects of ``frame`` (rgb, depth, K; no mask needed) with ``detector``
    (:class:`latent4d.objects.pipeline.DetectorPipeline`), then refine each with
    :func:`refine_detections`.

    Returns ``{"frame": Scene with the detections' mask, "detections": [Detection], "results":
    [ObjectReconstruction] (skipped ones with their reason), "detect_seconds", "refine_seconds"}``.
    An empty ``detections`` list means nothing was found (no result, nothing refined).
    """
    import time

    cfg = config or ObjectsReconstructConfig()
    t0 = time.perf_counter()
    dets = detector.detect(frame, threshold=cfg.detect_threshold)
    t1 = time.perf_counter()
    return {**refine_detections(pipe, frame, dets, cfg, callback), "detect_seconds": t1 - t0}


def refine_detections(pipe, frame, detections: list, config: ObjectsReconstructConfig | None = None,
                      callback: Callable[[int, int, dict], bool | None] | None = None) -> dict:
    """Refine ``detections`` (:class:`latent4d.objects.detector.Detection`, best first) of ``frame``
    with :func:`reconstruct_scene` from the detector's pose, size and codes (``config.detect_init=plane``:
    from the supporting-plane heuristic inside the detected mask, category from the detector;
    ``best``: the better of both, :func:`_better_start`); the viewer's *Reconstruct* after *Detect*.

    Returns ``{"frame": Scene with the detections' mask (ids 1..N in the order given), "detections",
    "results": [ObjectReconstruction] (skipped ones with their reason), "refine_seconds"}``.
    """
    import time

    cfg = config or ObjectsReconstructConfig()
    dets = list(detections)
    t1 = time.perf_counter()
    scene, cats, inits, skipped = detected_frame(frame, dets, sorted(set(pipe.database.categories)),
                                                 alternatives=cfg.alternatives)
    results = []
    if cats:
        results = reconstruct_scene(pipe, scene, cfg, categories=cats, callback=callback, instance_ids=sorted(cats),
                                    init=None if cfg.detect_init == "plane" else inits,
                                    choose_start=cfg.detect_init == "best")
    results += [ObjectReconstruction(iid, category=dets[iid - 1].category, status="skipped", reason=why)
                for iid, why in skipped.items()]
    return {"frame": scene, "detections": dets, "results": sorted(results, key=lambda r: r.instance_id),
            "refine_seconds": time.perf_counter() - t1}


__all__ = ["MESH_LEVELS", "ObjectsReconstructConfig", "check_categories", "detected_frame", "observe_instance",
           "parse_categories", "reconstruct_detected", "reconstruct_scene", "reconstruct_settings",
           "refine_detections"]
