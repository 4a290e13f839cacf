"""CLI commands of the objects family (``latent4d sample|evaluate|reconstruct|demo`` dispatch here).

* ``latent4d sample run=<dir> [objects=name,name|all] [means=true] [level=7] [out=<dir>]`` —
  decode database codes (and category means) to coloured meshes + a preview PNG;
* ``latent4d evaluate run=<dir> [scenes=6] [iterations=100] [out=<file>]`` — pose / shape accuracy on
  held-out synthetic scenes (ours and the ShAPO recipe);
* ``latent4d reconstruct objects rgb=... depth=... mask=... intrinsics=... [run=<dir>]
  [categories=mug|1:mug,2:camera] [iterations=100] [out=<dir>] [depth_scale=1000]`` — per object a
  coloured mesh in the camera frame and a JSON (pose, size, codes), plus ``overlay.png``;
* ``latent4d demo --only objects`` — train a latent database, build a scene, reconstruct it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from latent4d.errors import ConfigError, InputError
from latent4d.fileio import atomic_path, write_json_atomic

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
# sample / evaluate


def sample(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Decode database codes (``objects=all`` or names / indices) and category means to coloured
    meshes ``<out>/<name>.ply`` and a preview ``<out>/samples.png``."""
    from latent4d.objects.pipeline import ObjectsPipeline

    pipe = ObjectsPipeline.from_pretrained(run_dir)
    out = Path(args.get("out") or run_dir / "samples")
    level = int(args.get("level", 7))
    sel = args.get("objects")
    names = pipe.database.names
    if sel in (None, ""):
        cats = []
        keys = []
        for i, c in enumerate(pipe.database.categories):  # the first object of every category
            if c not in cats:
                cats.append(c)
                keys.append(i)
    elif str(sel) == "all":
        keys = list(range(len(names)))
    else:
        items = sel if not isinstance(sel, str) else str(sel).split(",")
        keys = [int(k) if str(k).isdigit() else pipe.database.index(str(k)) for k in items]
    meshes, written = [], {}
    for k in keys:
        zs, za = pipe.codes(k)
        m = pipe.mesh(zs, za, level=level)
        written[names[k]] = str(_export_mesh(m, out / f"{names[k]}.ply"))
        meshes.append(m)
    if bool(args.get("means", True)):
        for c in sorted(set(pipe.database.categories)):
            zs, za = pipe.mean_codes(c)
            m = pipe.mesh(zs, za, level=level)
            written[f"mean_{c}"] = str(_export_mesh(m, out / f"mean_{c}.ply"))
            meshes.append(m)
    png = _save_png(preview_image(meshes, columns=min(len(meshes), 8)), out / "samples.png")
    print(f"[latent4d] wrote {len(written)} meshes and {png}")
    return {"meshes": written, "preview": str(png)}


def evaluate(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Pose / shape accuracy on held-out synthetic scenes: ``<run>/evaluation.json``."""
    from latent4d.objects.evaluation import compare_recipes, heldout_scenes
    from latent4d.objects.pipeline import ObjectsPipeline

    pipe = ObjectsPipeline.from_pretrained(run_dir)
    cats = sorted(set(pipe.database.categories))
    scenes = heldout_scenes(int(args.get("scenes", 6)), categories=cats, seed=int(args.get("seed", 0)))
    res = compare_recipes(pipe, scenes, iterations=int(args.get("iterations", 100)), seed=int(args.get("seed", 0)),
                          max_objects=args.get("max_objects"))
    summary = {k: v["summary"] for k, v in res.items()}
    path = Path(args.get("out") or run_dir / "evaluation.json")
    write_json_atomic(path, {"summary": summary, "records": {k: v["records"] for k, v in res.items()}})
    for k, s in summary.items():
        print(f"{k}: rot {s['rot_deg']:.2f} deg, trans {s['trans_cm']:.2f} cm, size {s['scale_pct']:.1f} %, "
              f"chamfer {s['start_chamfer']:.4f} -> {s['chamfer']:.4f}, mAP 5deg5cm {s['mAP_5deg5cm']:.1f}")
    print(f"[latent4d] wrote {path}")
    return summary


# ----------------------------------------------------------------------------------------------
# reconstruct


def _parse_categories(value) -> dict[int, str] | str | None:
    if value in (None, ""):
        return None
    if isinstance(value, DictConfig):
        return {int(k): str(v) for k, v in value.items()}
    text = str(value)
    if ":" not in text:
        return text
    out = {}
    for part in text.split(","):
        k, _, v = part.partition(":")
        if not k.strip().isdigit() or not v.strip():
            raise ConfigError(f"categories: expected 'name' or 'id:name,id:name', got '{text}'")
        out[int(k)] = v.strip()
    return out


def write_reconstruction(frame, results, out: Path) -> dict:
    """Per object ``object_<id>.ply`` (camera frame, coloured) and ``object_<id>.json``; ``overlay.png``
    and ``summary.json``. Objects that were skipped or diverged are listed with their reason."""
    out = Path(out)
    summary = {"objects": [], "written": {}}
    for r in results:
        summary["objects"].append(r.to_json())
        if r.status != "ok":
            continue
        ply = _export_mesh(r.mesh_camera, out / f"object_{r.instance_id}.ply")
        js = write_json_atomic(out / f"object_{r.instance_id}.json", r.to_json())
        summary["written"][str(r.instance_id)] = {"mesh": str(ply), "json": str(js)}
    png = _save_png(overlay_image(frame, results), out / "overlay.png")
    summary["overlay"] = str(png)
    write_json_atomic(out / "summary.json", summary)
    return summary


def reconstruct(args: DictConfig) -> dict:
    """``latent4d reconstruct objects rgb=... depth=... mask=... intrinsics=...`` (see the module docstring)."""
    import torch

    from latent4d.objects.optimize import OptimConfig
    from latent4d.objects.pipeline import ObjectsPipeline
    from latent4d.objects.scenes import read_rgbd

    missing = [k for k in ("rgb", "depth", "mask", "intrinsics") if not args.get(k)]
    if missing:
        raise ConfigError("reconstruct objects needs " + ", ".join(f"{k}=<file>" for k in missing)
                          + " (and optionally run=<objects/latent_db run dir>, categories=..., out=<dir>)")
    torch.manual_seed(int(args.get("seed", 0)))
    frame = read_rgbd(args.rgb, args.depth, args.mask, args.intrinsics, float(args.get("depth_scale", 1000.0)))
    pipe = ObjectsPipeline.from_pretrained(args.get("run"))
    cfg = OptimConfig(iterations=int(args.get("iterations", 100)), rotation=str(args.get("rotation", "6d")),
                      init_iterations=int(args.get("init_iterations", OptimConfig.init_iterations)))
    cats = _parse_categories(args.get("categories"))
    t0 = time.time()
    results = pipe.reconstruct(frame, categories=cats, config=cfg, mesh_level=int(args.get("level", 7)),
                               seed=int(args.get("seed", 0)))
    out = Path(args.get("out") or "outputs/objects/reconstruct")
    summary = write_reconstruction(frame, results, out)
    for r in results:
        if r.status == "ok":
            print(f"object {r.instance_id} ({r.category}): t = {np.round(r.t, 3).tolist()} m, size = "
                  f"{np.round(r.size, 3).tolist()} m, {r.iterations} iterations, {r.seconds:.1f} s")
        else:
            print(f"object {r.instance_id}: {r.status} ({r.reason})")
    print(f"[latent4d] {sum(r.status == 'ok' for r in results)}/{len(results)} objects in {time.time() - t0:.1f} s; "
          f"wrote {out}")
    if not any(r.status == "ok" for r in results):
        raise InputError("no object could be reconstructed: " + "; ".join(f"{r.instance_id}: {r.reason}" for r in results))
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
    from latent4d.train import compose_config, run_training

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
    metrics = run_training(compose_config(overrides, run))
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

