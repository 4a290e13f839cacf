"""CLI commands of the objects family (``latent4d sample|evaluate|reconstruct|demo`` dispatch here).

* ``latent4d sample run=<dir> [objects=name,name|all] [means=true] [level=7] [out=<dir>]`` —
  decode database codes (and category means) to coloured meshes + a preview PNG;
* ``latent4d evaluate run=<dir> [scenes=6] [iterations=100] [out=<file>]`` — pose / shape accuracy on
  held-out synthetic scenes (ours and the ShAPO recipe);
* ``latent4d reconstruct objects rgb=... depth=... mask=... intrinsics=... [run=<dir>]
  [categories=mug|1:mug,2:camera] [iterations=100] [out=<dir>] [depth_scale=1000]`` — per object a
  coloured mesh in the camera frame and a JSON (pose, size, codes), plus ``overlay.png``;
* ``latent4d demo --only objects`` — train a latent database, build a scene, reconstruct it.

Options are declared as dataclasses (:class:`SampleOptions`, :class:`EvaluateOptions`,
:class:`ReconstructOptions`) and checked by :func:`latent4d.options.parse_options` before any work:
unknown keys, wrong types and out-of-range values are a ConfigError naming the option. ``out=`` is
checked before compute, and output folders are written whole into a temporary folder and swapped in
when complete (:func:`latent4d.fileio.atomic_dir`), so a failed command leaves an earlier output
byte-identical, and a non-empty folder that is not an earlier output is refused.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from latent4d.errors import ConfigError, InputError
from latent4d.fileio import atomic_dir, atomic_path, write_json_atomic
from latent4d.objects.scenes import FOV_RANGE_DEG
from latent4d.options import check_input_file, check_output_dir, check_output_file, opt, parse_options

log = logging.getLogger("latent4d.objects")


# ----------------------------------------------------------------------------------------------
# pictures


def preview_image(meshes: list, width: int = 960, height: int = 320, columns: int | None = None,
                  background=(255, 255, 255)) -> np.ndarray:
    """Side-by-side ray-cast preview of canonical meshes (one per column, in [-1, 1]^3)."""
    from latent4d.geometry.rgbd import look_at, render_rgbd

    n = max(len(meshes), 1)
    cols = columns or n
    rows = int(np.ceil(n / cols))
    placed = []
    for i, m in enumerate(meshes):
        c = m.copy()
        c.apply_translation([(i % cols - (cols - 1) / 2) * 2.3, -(i // cols - (rows - 1) / 2) * 2.3, 0.0])
        placed.append(c)
    dist = 12.0
    f = min(width * dist / (cols * 2.3 * 1.1), height * dist / (rows * 2.3 * 1.25))
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    T = look_at([0.0, 0.35 * dist, dist], [0, 0, 0])
    frame = render_rgbd(placed, K, T, width, height, ids=list(range(1, len(placed) + 1)), background=background,
                        shading=0.5)
    return frame.rgb


def overlay_image(frame, results, alpha: float = 0.65, boxes: bool = True) -> np.ndarray:
    """The input RGB with the reconstructed meshes rendered in (shaded, alpha-blended where they
    are in front of the observed depth) and their oriented boxes drawn."""
    from PIL import Image, ImageDraw

    from latent4d.geometry.rgbd import render_rgbd
    from latent4d.objects.metrics import box_corners

    H, W = frame.depth.shape
    img = frame.rgb.astype(np.float32).copy()
    ok = [r for r in results if r.status == "ok" and r.mesh_camera is not None and len(r.mesh_camera.faces)]
    if ok:
        rend = render_rgbd([r.mesh_camera for r in ok], frame.K, np.eye(4), W, H,
                           ids=[r.instance_id for r in ok], shading=0.6)
        hit = rend.mask > 0
        front = hit & ((frame.depth <= 0) | (rend.depth <= frame.depth + 0.01))
        img[front] = alpha * rend.rgb[front].astype(np.float32) + (1 - alpha) * img[front]
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if boxes:
        draw = ImageDraw.Draw(out)
        edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
        palette = [(255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0), (200, 64, 255), (0, 220, 220)]
        for k, r in enumerate(ok):
            c = box_corners(r.R, r.t, r.size)
            z = np.maximum(c[:, 2], 1e-3)
            u = frame.K[0, 0] * c[:, 0] / z + frame.K[0, 2]
            v = frame.K[1, 1] * c[:, 1] / z + frame.K[1, 2]
            for a, b in edges:
                draw.line([(u[a], v[a]), (u[b], v[b])], fill=palette[k % len(palette)], width=2)
    return np.asarray(out)


def _save_png(img: np.ndarray, path: Path) -> Path:
    from latent4d.render import save_png

    return save_png(img, path)


def _export_mesh(mesh, path: Path) -> Path:
    with atomic_path(path) as tmp:
        mesh.export(tmp)
    return path


# ----------------------------------------------------------------------------------------------
# options

MESH_LEVELS = (3, 10)
"""Octree levels of output meshes: 2**level cells per side (8 to 1024)."""


@dataclass
class SampleOptions:
    """``latent4d sample run=<objects run> ...``"""

    run: str | None = opt(None, help="objects/latent_db run directory")
    objects: Any = opt(None, help="'all', or names / indices (comma-separated or a list); default: one per category")
    means: bool = opt(True, help="also decode every category's mean code")
    level: int = opt(7, min=MESH_LEVELS[0], max=MESH_LEVELS[1], help="octree level of the meshes")
    out: str | None = opt(None, help="output folder (default <run>/samples)")


@dataclass
class EvaluateOptions:
    """``latent4d evaluate run=<objects run> ...``"""

    run: str | None = opt(None, help="objects/latent_db run directory")
    scenes: int = opt(6, min=1, max=10_000, help="held-out synthetic scenes")
    iterations: int = opt(100, min=1, max=100_000, help="optimisation iterations per object")
    seed: int = opt(0, help="scene and optimisation seed")
    max_objects: int | None = opt(None, min=1, help="evaluate at most this many objects")
    out: str | None = opt(None, help="output JSON (default <run>/evaluation.json)")


@dataclass
class ReconstructOptions:
    """``latent4d reconstruct objects rgb=... depth=... mask=... intrinsics=... ...``"""

    rgb: str | None = opt(None, help="8-bit RGB image")
    depth: str | None = opt(None, help="16-bit depth PNG (depth_scale units per metre) or (H, W) float .npy in metres")
    mask: str | None = opt(None, help="instance ids (0 = background) or a colour-coded mask")
    intrinsics: str | None = opt(None, help="JSON {fx, fy, cx, cy, width, height} (pixels) or {K}")
    run: str | None = opt(None, help="objects/latent_db run directory (default: the latest)")
    categories: Any = opt(None, help="one category for all instances, or id:name,id:name")
    iterations: int = opt(100, min=1, max=100_000, help="optimisation iterations per object")
    init_iterations: int = opt(12, min=0, max=100_000, help="iterations per initial hypothesis")
    rotation: str = opt("6d", choices=("6d", "so3"), help="rotation parametrisation")
    level: int = opt(7, min=MESH_LEVELS[0], max=MESH_LEVELS[1], help="octree level of the output meshes")
    depth_scale: float = opt(1000.0, gt=0, help="raw depth PNG units per metre (1000: millimetres)")
    min_fov: float = opt(FOV_RANGE_DEG[0], gt=0, max=FOV_RANGE_DEG[1],
                         help="smallest plausible field of view (degrees): lower it for a zoom lens or a crop")
    seed: int = opt(0, help="sampling / initialisation seed")
    out: str | None = opt(None, help="output folder (default outputs/objects/reconstruct)")


def _select_objects(sel, database) -> list[int]:
    """Database rows for ``objects=`` (None: the first object of every category); ConfigError for
    names that are not in the database or indices out of range, before any decoding."""
    names = database.names
    if sel in (None, ""):
        keys, cats = [], []
        for i, c in enumerate(database.categories):  # the first object of every category
            if c not in cats:
                cats.append(c)
                keys.append(i)
        return keys
    if str(sel) == "all":
        return list(range(len(names)))
    items = [s.strip() for s in str(sel).split(",")] if not isinstance(sel, list | tuple) else [str(k) for k in sel]
    keys = []
    for k in items:
        if k.isdigit():
            if int(k) >= len(names):
                raise ConfigError(f"sample: objects={k}: index out of range (the database holds {len(names)} "
                                  f"objects, 0-{len(names) - 1})")
            keys.append(int(k))
        elif k in names:
            keys.append(names.index(k))
        else:
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise ConfigError(f"sample: objects={k}: no such object in the database (it holds {shown}); use "
                              "names, indices or objects=all")
    if not keys:
        raise ConfigError("sample: objects= selects nothing; use names, indices or objects=all")
    return keys


# ----------------------------------------------------------------------------------------------
# sample / evaluate


def sample(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Decode database codes (``objects=all`` or names / indices) and category means to coloured
    meshes ``<out>/<name>.ply`` and a preview ``<out>/samples.png`` (options: :class:`SampleOptions`).

    ``out`` is written whole: an earlier ``sample`` output there is replaced when the new one is
    complete; a non-empty folder that is not one is refused before decoding."""
    from latent4d.objects.pipeline import ObjectsPipeline

    o = parse_options(SampleOptions, args, "sample")
    out = check_output_dir(o.out or Path(run_dir) / "samples", "out", marker="samples.png")
    pipe = ObjectsPipeline.from_pretrained(run_dir)
    keys = _select_objects(o.objects, pipe.database)
    names = pipe.database.names
    meshes, written = [], {}
    with atomic_dir(out, marker="samples.png") as tmp:
        for k in keys:
            zs, za = pipe.codes(k)
            m = pipe.mesh(zs, za, level=o.level)
            _export_mesh(m, tmp / f"{names[k]}.ply")
            written[names[k]] = str(out / f"{names[k]}.ply")
            meshes.append(m)
        if o.means:
            for c in sorted(set(pipe.database.categories)):
                zs, za = pipe.mean_codes(c)
                m = pipe.mesh(zs, za, level=o.level)
                _export_mesh(m, tmp / f"mean_{c}.ply")
                written[f"mean_{c}"] = str(out / f"mean_{c}.ply")
                meshes.append(m)
        _save_png(preview_image(meshes, columns=min(len(meshes), 8)), tmp / "samples.png")
    png = out / "samples.png"
    print(f"[latent4d] wrote {len(written)} meshes and {png}")
    return {"meshes": written, "preview": str(png)}


def evaluate(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Pose / shape accuracy on held-out synthetic scenes: ``<run>/evaluation.json`` (options:
    :class:`EvaluateOptions`; ``out`` checked before compute, written atomically)."""
    from latent4d.objects.evaluation import compare_recipes, heldout_scenes
    from latent4d.objects.pipeline import ObjectsPipeline

    o = parse_options(EvaluateOptions, args, "evaluate")
    path = check_output_file(o.out or Path(run_dir) / "evaluation.json", "out")
    pipe = ObjectsPipeline.from_pretrained(run_dir)
    cats = sorted(set(pipe.database.categories))
    scenes = heldout_scenes(o.scenes, categories=cats, seed=o.seed)
    res = compare_recipes(pipe, scenes, iterations=o.iterations, seed=o.seed, max_objects=o.max_objects)
    summary = {k: v["summary"] for k, v in res.items()}
    write_json_atomic(path, {"summary": summary, "records": {k: v["records"] for k, v in res.items()}})
    for k, s in summary.items():
        print(f"{k}: rot {s['rot_deg']:.2f} deg, trans {s['trans_cm']:.2f} cm, size {s['scale_pct']:.1f} %, "
              f"chamfer {s['start_chamfer']:.4f} -> {s['chamfer']:.4f}, mAP 5deg5cm {s['mAP_5deg5cm']:.1f}")
    print(f"[latent4d] wrote {path}")
    return summary


# ----------------------------------------------------------------------------------------------
# reconstruct


def _parse_categories(value) -> dict[int, str] | str | None:
    """``categories=``: None, one name for every instance, ``'id:name,id:name'`` or a mapping."""
    if value in (None, ""):
        return None
    if isinstance(value, DictConfig | dict):
        out = {}
        for k, v in dict(value).items():
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


def _check_categories(cats: dict[int, str] | str | None, frame, database, mask: str) -> None:
    """ConfigError for instance ids of ``categories=`` that are not in the mask and for category
    names the latent database does not hold (before any optimisation)."""
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


def write_reconstruction(frame, results, out: Path) -> dict:
    """Per object ``object_<id>.ply`` (camera frame, coloured) and ``object_<id>.json``; ``overlay.png``
    and ``summary.json``. Objects that were skipped or diverged are listed with their reason.

    The folder is written whole (:func:`latent4d.fileio.atomic_dir`): into a temporary sibling that
    replaces ``out`` only when everything is written, so a failure leaves an earlier output as it was;
    a non-empty ``out`` without ``summary.json`` (not an earlier output) is refused. The paths in the
    summary are the final ones under ``out``."""
    out = Path(out)
    summary = {"objects": [], "written": {}}
    with atomic_dir(out, marker="summary.json") as tmp:
        for r in results:
            summary["objects"].append(r.to_json())
            if r.status != "ok":
                continue
            _export_mesh(r.mesh_camera, tmp / f"object_{r.instance_id}.ply")
            write_json_atomic(tmp / f"object_{r.instance_id}.json", r.to_json())
            summary["written"][str(r.instance_id)] = {"mesh": str(out / f"object_{r.instance_id}.ply"),
                                                      "json": str(out / f"object_{r.instance_id}.json")}
        _save_png(overlay_image(frame, results), tmp / "overlay.png")
        summary["overlay"] = str(out / "overlay.png")
        write_json_atomic(tmp / "summary.json", summary)
    return summary


def reconstruct(args: DictConfig) -> dict:
    """``latent4d reconstruct objects rgb=... depth=... mask=... intrinsics=...`` (see the module docstring;
    options: :class:`ReconstructOptions`).

    Everything is checked before the optimisation starts: the options, ``out=``, the files
    (:func:`latent4d.objects.scenes.read_rgbd`: sizes, intrinsics that fit the images, plausible
    depth), the run and the categories. Nothing is written when no object could be reconstructed.
    """
    import torch

    from latent4d.objects.optimize import OptimConfig
    from latent4d.objects.pipeline import ObjectsPipeline
    from latent4d.objects.scenes import read_rgbd

    o = parse_options(ReconstructOptions, args, "reconstruct objects")
    missing = [k for k in ("rgb", "depth", "mask", "intrinsics") if not getattr(o, k)]
    if missing:
        raise ConfigError("reconstruct objects needs " + ", ".join(f"{k}=<file>" for k in missing)
                          + " (and optionally run=<objects/latent_db run dir>, categories=..., out=<dir>)")
    files = {k: check_input_file(getattr(o, k), k) for k in ("rgb", "depth", "mask", "intrinsics")}
    out = check_output_dir(o.out or "outputs/objects/reconstruct", "out", marker="summary.json")
    cats = _parse_categories(o.categories)
    frame = read_rgbd(files["rgb"], files["depth"], files["mask"], files["intrinsics"], o.depth_scale,
                      min_fov_deg=o.min_fov)
    pipe = ObjectsPipeline.from_pretrained(o.run)
    _check_categories(cats, frame, pipe.database, str(files["mask"]))
    cfg = OptimConfig(iterations=o.iterations, rotation=o.rotation, init_iterations=o.init_iterations)
    torch.manual_seed(o.seed)
    t0 = time.time()
    results = pipe.reconstruct(frame, categories=cats, config=cfg, mesh_level=o.level, seed=o.seed)
    for r in results:
        if r.status == "ok":
            print(f"object {r.instance_id} ({r.category}): t = {np.round(r.t, 3).tolist()} m, size = "
                  f"{np.round(r.size, 3).tolist()} m, {r.iterations} iterations, {r.seconds:.1f} s")
        else:
            print(f"object {r.instance_id}: {r.status} ({r.reason})")
    if not any(r.status == "ok" for r in results):
        raise InputError("no object could be reconstructed (nothing written to "
                         f"{out}): " + "; ".join(f"{r.instance_id}: {r.reason}" for r in results))
    summary = write_reconstruction(frame, results, out)
    print(f"[latent4d] {sum(r.status == 'ok' for r in results)}/{len(results)} objects in {time.time() - t0:.1f} s; "
          f"wrote {out}")
    return summary


# ----------------------------------------------------------------------------------------------
# demo


def demo(out_dir: Path, quick: bool = False) -> dict:
    """Train the CPU latent database, build a synthetic scene of unseen objects, reconstruct it,
    write meshes, the overlay PNG and metrics."""
    from latent4d.objects.evaluation import HELDOUT_SEED_OFFSET
    from latent4d.objects.metrics import pose_errors
    from latent4d.objects.optimize import OptimConfig
    from latent4d.objects.pipeline import ObjectsPipeline
    from latent4d.objects.scenes import make_scene, save_scene
    from latent4d.objects.synthetic import object_set
    from latent4d.train import compose_config, replace_run, run_training

    out_dir = Path(out_dir)
    run = out_dir / "run"
    overrides = ["experiment=objects/latent_db", "callbacks=minimal", "logger=csv"]
    cats = ["mug", "camera", "bottle"] if quick else ["bottle", "bowl", "can", "mug", "laptop", "camera"]
    if quick:
        overrides += ["trainer.max_epochs=3", f"data.categories=[{','.join(cats)}]", "data.per_category=2",
                      "data.n_sdf=4000", "data.n_color=1500", "data.resolution=64", "data.repeats=6",
                      "data.objects_per_batch=6", "model.shape_decoder.hidden=96", "model.shape_decoder.num_layers=4", "model.shape_decoder.num_freqs=2",
                      "model.shape_decoder.latent_in=[2]", "model.appearance.hidden=48",
                      "model.appearance.num_layers=2", "model.lr_decoder=3e-3", "model.lr_codes=1e-2"]
    metrics = run_training(compose_config(overrides, replace_run(run)))
    pipe = ObjectsPipeline.from_pretrained(run)
    objs = object_set(cats, 1, seed_offset=HELDOUT_SEED_OFFSET, resolution=64 if quick else 96)
    frame = make_scene(objs, seed=3, n_objects=2 if quick else 3)
    scene_dir = out_dir / "scene"
    save_scene(frame, scene_dir)
    cfg = OptimConfig(iterations=25 if quick else 100, init_iterations=4 if quick else 12)
    t0 = time.time()
    results = pipe.reconstruct(frame, categories={o.instance_id: o.category for o in frame.objects}, config=cfg,
                               mesh_level=5 if quick else 7)
    seconds = time.time() - t0
    summary = write_reconstruction(frame, results, out_dir / "reconstruction")
    per = []
    for r in results:
        gt = frame.gt(r.instance_id)
        if r.status != "ok" or gt is None:
            continue
        hd = 0.5 * float(np.linalg.norm(r.extents))
        e = pose_errors({"R": r.R, "t": r.t, "scale": r.scale * hd, "size": r.size},
                        {"R": gt.R, "t": gt.t, "scale": gt.scale, "size": gt.size}, gt.category, gt.symmetric)
        per.append({"instance_id": r.instance_id, "category": gt.category, **e})
    result = {"test_sdf_l1": metrics.get("test/sdf_l1"), "test_color_l1": metrics.get("test/color_l1"),
              "objects": len(results), "reconstructed": sum(r.status == "ok" for r in results),
              "median_rot_deg": float(np.median([p["rot_deg"] for p in per])) if per else None,
              "median_trans_cm": float(100 * np.median([p["trans_m"] for p in per])) if per else None,
              "seconds_per_object": seconds / max(len(results), 1), "overlay": summary["overlay"],
              "scene": str(scene_dir), "run": str(run), "per_object": per}
    write_json_atomic(out_dir / "metrics.json", result)
    return result

