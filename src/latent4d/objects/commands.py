"""CLI commands of the objects family (``latent4d sample|evaluate|reconstruct|demo`` dispatch here).

* ``latent4d sample run=<dir> [objects=name,name|all] [means=true] [level=7] [out=<dir>]`` —
  decode database codes (and category means) to coloured meshes + a preview PNG;
* ``latent4d evaluate run=<dir> [scenes=6] [iterations=70] [out=<file>]`` — pose / shape accuracy on
  held-out synthetic scenes (ours and the ShAPO recipe);
* ``latent4d evaluate objects frames=<dir> [predictions=<dir>] [iou=nocs|aabb|exact] [out=<dir>]`` — the
  NOCS protocol (:mod:`latent4d.objects.nocs`) on a folder of frames with ground truth and predictions:
  ``nocs_map.json`` and ``precision_recall.png``;
* ``latent4d reconstruct objects rgb=... depth=... intrinsics=... [detector=<dir>]`` — without ``mask=``:
  the single-shot detector (:mod:`latent4d.objects.detector`) finds the objects, then each is refined;
  ``detections.json`` beside the results;
* ``latent4d reconstruct objects rgb=... depth=... mask=... intrinsics=... [run=<dir>]
  [categories=mug|1:mug,2:camera] [iterations=70] [out=<dir>] [depth_scale=1000] [key=value ...]`` —
  per object a coloured mesh in the camera frame and a JSON (pose, size, codes), plus ``overlay.png``;
  every setting of ``conf/reconstruct/objects.yaml`` is a ``key=value`` override; or
  ``latent4d reconstruct objects frame=<prefix> [format=nocs|ycb|generic] [categories=1:bottle,...|table.json]``
  for a frame of a dataset layout (:mod:`latent4d.objects.layouts`);
* ``latent4d demo --only objects`` — train a latent database, build a scene, reconstruct it.

``sample`` / ``evaluate`` options are dataclasses (:class:`SampleOptions`, :class:`EvaluateOptions`)
checked by :func:`latent4d.options.parse_options`; ``reconstruct`` settings are Hydra-composed
(:func:`latent4d.objects.reconstruct.reconstruct_settings`). Either way, unknown keys, wrong types and
out-of-range values are a ConfigError naming the option, before any work. ``out=`` is checked before
compute, and output folders are written whole into a temporary folder and swapped in when complete
(:func:`latent4d.fileio.atomic_dir`), so a failed command leaves an earlier output byte-identical, and a
non-empty folder that is not an earlier output is refused.
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
from latent4d.fileio import atomic_dir, write_json_atomic
from latent4d.objects.io import export_mesh, preview_image, save_png, write_scene_reconstruction
from latent4d.objects.reconstruct import MESH_LEVELS
from latent4d.objects.types import ObjectReconstruction
from latent4d.options import check_output_dir, check_output_file, opt, parse_options

log = logging.getLogger("latent4d.objects")


# ----------------------------------------------------------------------------------------------
# options


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
    iterations: int | None = opt(None, min=1, max=100_000,
                                 help="optimisation iterations per object (default: conf/reconstruct/objects.yaml)")
    seed: int = opt(0, help="scene and optimisation seed")
    max_objects: int | None = opt(None, min=1, help="evaluate at most this many objects")
    out: str | None = opt(None, help="output JSON (default <run>/evaluation.json)")


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
    codes = [(names[k], *pipe.codes(k)) for k in keys]
    if o.means:
        codes += [(f"mean_{c}", *pipe.mean_codes(c)) for c in sorted(set(pipe.database.categories))]
    meshes, written = [], {}
    with atomic_dir(out, marker="samples.png") as tmp:
        for name, zs, za in codes:
            m = pipe.mesh(zs, za, level=o.level)
            export_mesh(m, tmp / f"{name}.ply")
            written[name] = str(out / f"{name}.ply")
            meshes.append(m)
        save_png(preview_image(meshes, columns=min(len(meshes), 8)), tmp / "samples.png")
    png = out / "samples.png"
    print(f"[latent4d] wrote {len(written)} meshes and {png}")
    return {"meshes": written, "preview": str(png)}


def evaluate(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Pose / shape accuracy on held-out synthetic scenes: ``<run>/evaluation.json`` (options:
    :class:`EvaluateOptions`; settings: ``conf/reconstruct/objects.yaml``; ``out`` checked before
    compute, written atomically)."""
    from latent4d.objects.evaluation import compare_recipes, heldout_scenes
    from latent4d.objects.pipeline import ObjectsPipeline
    from latent4d.objects.reconstruct import reconstruct_settings

    o = parse_options(EvaluateOptions, args, "evaluate")
    path = check_output_file(o.out or Path(run_dir) / "evaluation.json", "out")
    config = reconstruct_settings([] if o.iterations is None else [f"iterations={o.iterations}"], command="evaluate")
    pipe = ObjectsPipeline.from_pretrained(run_dir)
    cats = sorted(set(pipe.database.categories))
    scenes = heldout_scenes(o.scenes, categories=cats, seed=o.seed)
    res = compare_recipes(pipe, scenes, config, seed=o.seed, max_objects=o.max_objects)
    summary = {k: v["summary"] for k, v in res.items()}
    write_json_atomic(path, {"summary": summary, "records": {k: v["records"] for k, v in res.items()}})
    for k, s in summary.items():
        print(f"{k}: rot {s['rot_deg']:.2f} deg, trans {s['trans_cm']:.2f} cm, size {s['scale_pct']:.1f} %, "
              f"chamfer {s['start_chamfer']:.4f} -> {s['chamfer']:.4f}, mAP 5deg5cm {s['mAP_5deg5cm']:.1f}")
    print(f"[latent4d] wrote {path}")
    return summary


@dataclass
class EvaluateFolderOptions:
    """``latent4d evaluate objects frames=<dir> ...`` (the NOCS protocol, :mod:`latent4d.objects.nocs`)."""

    frames: str | None = opt(None, help="folder of frames with ground truth: NOCS results_*.pkl, or frame "
                             "folders with gt.json (save_scene)")
    predictions: str | None = opt(None, help="folder of predictions: <frame>/summary.json or <frame>.json "
                                  "(default: <frame>/reconstruction/summary.json, or the pkl's pred_*)")
    iou: str = opt("nocs", choices=("nocs", "aabb", "exact"),
                   help="3D IoU of the IoU criteria and of the pose matching (nocs: the published formula)")
    pose_iou: float | None = opt(0.1, min=0, max=1, help="pose criteria count predictions matched at this IoU "
                                 "(the reference's 0.1; null: all predictions)")
    categories: Any = opt(None, help="class id -> category of NOCS pickles (default NOCS's 1 bottle ... 6 mug)")
    out: str = opt("outputs/objects/evaluate", help="output folder: nocs_map.json and precision_recall.png")


def evaluate_folder(args: DictConfig) -> dict:
    """``latent4d evaluate objects frames=<dir> [predictions=<dir>] [iou=nocs|aabb|exact] [out=<dir>]``:
    NOCS mAP (IoU25 / IoU50 with the chosen IoU and the exact one beside it; 5deg2cm / 5deg5cm /
    10deg2cm / 10deg5cm) per category and mean, written whole to ``<out>/nocs_map.json`` and
    ``<out>/precision_recall.png`` (options: :class:`EvaluateFolderOptions`; ``out`` checked first)."""
    from latent4d.objects.layouts import category_table
    from latent4d.objects.nocs import evaluate_frames, plot_precision_recall, read_eval_folder

    o = parse_options(EvaluateFolderOptions, args, "evaluate objects")
    if not o.frames:
        raise ConfigError("evaluate objects needs frames=<folder of frames with ground truth> (and optionally "
                          "predictions=<folder>, iou=nocs|aabb|exact, out=<folder>)")
    out = check_output_dir(o.out, "out", marker="nocs_map.json")
    frames, notes = read_eval_folder(o.frames, o.predictions, category_table(o.categories))
    for n in notes:
        print(f"[latent4d] {n}")
    methods = (o.iou, *[m for m in ("exact",) if m != o.iou])
    res = evaluate_frames(frames, methods=methods, pose_iou=o.pose_iou)
    with atomic_dir(out, marker="nocs_map.json") as tmp:
        plot_precision_recall(res, tmp / "precision_recall.png")
        write_json_atomic(tmp / "nocs_map.json", {**res, "notes": notes, "frames_dir": str(o.frames)})
    _print_map_table(res)
    print(f"[latent4d] wrote {out / 'nocs_map.json'} and {out / 'precision_recall.png'}")
    return res


def _print_map_table(res: dict) -> None:
    keys = [k for k in res["mean"]]
    print(f"{'category':<12}" + "".join(f"{k:>13}" for k in keys))
    for c, row in [*res["categories"].items(), ("mean", res["mean"])]:
        print(f"{c:<12}" + "".join(f"{100 * row[k]:>13.1f}" for k in keys))


# ----------------------------------------------------------------------------------------------
# reconstruct


def reconstruct(options: list[str]) -> dict:
    """``latent4d reconstruct objects rgb=... depth=... mask=... intrinsics=... [key=value ...]`` or
    ``latent4d reconstruct objects frame=<dataset frame prefix> [format=nocs|ycb|generic]`` (see the
    module docstring; settings: ``conf/reconstruct/objects.yaml``).

    Everything is checked before the optimisation starts: the settings, ``out=``, the files
    (:func:`latent4d.objects.io.read_rgbd` / :func:`latent4d.objects.layouts.read_layout_frame`: sizes,
    intrinsics that fit the images, plausible depth), the run and the categories. Instances a dataset
    layout cannot map to a database category are skipped with the reason (printed and in the summary).
    Nothing is written when no object could be reconstructed.
    """
    import torch

    from latent4d.objects.pipeline import ObjectsPipeline
    from latent4d.objects.reconstruct import reconstruct_settings

    cfg = reconstruct_settings(options)
    files = cfg.input_files()
    out = check_output_dir(cfg.out, "out", marker="summary.json")
    if not cfg.frame and "mask" not in files:
        return _reconstruct_detected(cfg, files, out)
    frame, cats, skipped = _read_input(cfg, files)
    pipe = ObjectsPipeline.from_pretrained(cfg.run)
    cats, skipped = _check_input_categories(cfg, files, frame, cats, skipped, pipe.database)
    for iid, why in skipped.items():
        print(f"object {iid}: skipped ({why})")
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    ids = None if cats is None or not isinstance(cats, dict) or not cfg.frame else sorted(cats)
    if ids == []:
        raise InputError(f"frame '{cfg.frame}': no instance to reconstruct (nothing written to {out}): "
                         + "; ".join(f"{i}: {w}" for i, w in skipped.items()))
    results = pipe.reconstruct(frame, categories=cats, config=cfg, instance_ids=ids)
    _print_results(results)
    if not any(r.status == "ok" for r in results):
        raise InputError("no object could be reconstructed (nothing written to "
                         f"{out}): " + "; ".join(f"{r.instance_id}: {r.reason}" for r in results))
    results += [ObjectReconstruction(iid, status="skipped", reason=why) for iid, why in skipped.items()]
    summary = write_scene_reconstruction(frame, results, out)
    n_ok = sum(r.status == "ok" for r in results)
    print(f"[latent4d] {n_ok}/{len(results)} objects in {time.time() - t0:.1f} s; wrote {out}")
    return summary


def _print_results(results: list[ObjectReconstruction], scores: dict[int, float] | None = None) -> None:
    """One line per object: pose and size when ok (with its detection score), else the reason."""
    for r in results:
        if r.status != "ok":
            print(f"object {r.instance_id}: {r.status} ({r.reason})")
            continue
        det = "" if scores is None else f", detection score {scores[r.instance_id]:.2f}"
        print(f"object {r.instance_id} ({r.category}{det}): t = {np.round(r.t, 3).tolist()} m, size = "
              f"{np.round(r.size, 3).tolist()} m, {r.iterations} iterations, {r.seconds:.1f} s")


def _reconstruct_detected(cfg, files: dict, out: Path) -> dict:
    """``reconstruct objects`` without ``mask=``: detect (:class:`DetectorPipeline`, run ``detector=``),
    then refine every detection (:func:`latent4d.objects.reconstruct.reconstruct_detected`). A frame
    without detections writes an empty result and says so; detections of categories the latent
    database lacks are skipped with the reason. ``detections.json`` lists every detection."""
    import torch

    from latent4d.objects.io import read_frame
    from latent4d.objects.pipeline import DetectorPipeline, ObjectsPipeline
    from latent4d.objects.reconstruct import reconstruct_detected

    frame = read_frame(files["depth"], files["intrinsics"], files["rgb"], None, cfg.depth_scale, min_fov_deg=cfg.min_fov)
    pipe = ObjectsPipeline.from_pretrained(cfg.run)
    detector = DetectorPipeline.from_pretrained(cfg.detector)
    torch.manual_seed(cfg.seed)
    res = reconstruct_detected(pipe, detector, frame, cfg)
    dets, results = res["detections"], res["results"]
    if not dets:
        print(f"[latent4d] no object detected (heatmap threshold detect_threshold={cfg.detect_threshold}): writing "
              "an empty result")
    _print_results(results, {i: d.score for i, d in enumerate(dets, 1)})
    summary = write_scene_reconstruction(res["frame"], results, out)
    write_json_atomic(out / "detections.json", {
        "detections": [{"instance_id": i, **d.to_json()} for i, d in enumerate(dets, 1)],
        "threshold": cfg.detect_threshold, "detect_seconds": res["detect_seconds"],
        "refine_seconds": res["refine_seconds"], "note": "" if dets else "no object detected"})
    n_ok = sum(r.status == "ok" for r in results)
    print(f"[latent4d] {len(dets)} detection(s), {n_ok} reconstructed in {res['detect_seconds']:.1f} + "
          f"{res['refine_seconds']:.1f} s; wrote {out}")
    return {**summary, "detections": len(dets)}


def _read_input(cfg, files: dict):
    """The frame of ``reconstruct objects``: (Scene, categories or None, {instance: skip reason})."""
    if not cfg.frame:
        from latent4d.objects.io import read_rgbd

        frame = read_rgbd(files["rgb"], files["depth"], files["mask"], files["intrinsics"], cfg.depth_scale,
                          min_fov_deg=cfg.min_fov)
        return frame, cfg.category_map(), {}
    from latent4d.objects.layouts import read_layout_frame

    lf = read_layout_frame(cfg.frame, cfg.format, categories=cfg.categories, intrinsics=cfg.intrinsics,
                           depth_scale=cfg.depth_scale if cfg.format == "generic" else None, min_fov_deg=cfg.min_fov)
    print(f"[latent4d] {lf.format} frame {cfg.frame}: instances {lf.scene.instance_ids}")
    return lf.scene, lf.categories, dict(lf.skipped)


def _check_input_categories(cfg, files, frame, cats, skipped, database):
    """ConfigError for ``categories=`` the database / mask cannot serve (rgb= ... input); with
    ``frame=`` instances of categories the database lacks are skipped with the reason instead."""
    from latent4d.objects.reconstruct import check_categories

    if not cfg.frame:
        check_categories(cats, frame, database, str(files["mask"]))
        return cats, skipped
    known = sorted(set(database.categories))
    keep = {}
    for iid, c in cats.items():
        if c is None or c in known:
            keep[iid] = c
        else:
            skipped[iid] = f"category '{c}' is not in the latent database ({', '.join(known)})"
    return keep, skipped


# ----------------------------------------------------------------------------------------------
# demo


def demo(out_dir: Path, quick: bool = False) -> dict:
    """Train the CPU latent database (``preset=objects_demo_quick`` with ``quick``), build a synthetic
    scene of unseen objects, reconstruct it (``conf/reconstruct/objects[_quick].yaml``), write meshes,
    the overlay PNG and metrics."""
    from latent4d.objects.evaluation import HELDOUT_SEED_OFFSET
    from latent4d.objects.io import save_scene
    from latent4d.objects.pipeline import ObjectsPipeline
    from latent4d.objects.reconstruct import reconstruct_settings
    from latent4d.objects.scenes import make_scene
    from latent4d.objects.synthetic import object_set
    from latent4d.train import compose_config, replace_run, run_training

    out_dir = Path(out_dir)
    run = out_dir / "run"
    overrides = ["experiment=objects/latent_db", "callbacks=minimal", "logger=csv"]
    cfg = compose_config(overrides + (["preset=objects_demo_quick"] if quick else []), replace_run(run))
    metrics = run_training(cfg)
    pipe = ObjectsPipeline.from_pretrained(run)
    objs = object_set(list(cfg.data.categories), 1, seed_offset=HELDOUT_SEED_OFFSET, resolution=64 if quick else 96)
    frame = make_scene(objs, seed=3, n_objects=2 if quick else 3)
    scene_dir = out_dir / "scene"
    save_scene(frame, scene_dir)
    settings = reconstruct_settings(name="objects_quick" if quick else "objects", command="demo")
    t0 = time.time()
    results = pipe.reconstruct(frame, categories={o.instance_id: o.category for o in frame.objects}, config=settings)
    seconds = time.time() - t0
    summary = write_scene_reconstruction(frame, results, out_dir / "reconstruction")
    per = demo_errors(frame, results)
    result = {"test_sdf_l1": metrics.get("test/sdf_l1"), "test_color_l1": metrics.get("test/color_l1"),
              "objects": len(results), "reconstructed": sum(r.status == "ok" for r in results),
              "median_rot_deg": float(np.median([p["rot_deg"] for p in per])) if per else None,
              "median_trans_cm": float(100 * np.median([p["trans_m"] for p in per])) if per else None,
              "seconds_per_object": seconds / max(len(results), 1), "overlay": summary["overlay"],
              "scene": str(scene_dir), "run": str(run), "per_object": per}
    write_json_atomic(out_dir / "metrics.json", result)
    return result


def demo_errors(frame, results) -> list[dict]:
    """Pose errors of the reconstructed objects against the scene's ground truth."""
    from latent4d.objects.metrics import pose_errors

    per = []
    for r in results:
        gt = frame.gt(r.instance_id)
        if r.status != "ok" or gt is None:
            continue
        hd = 0.5 * float(np.linalg.norm(r.extents))
        e = pose_errors({"R": r.R, "t": r.t, "scale": r.scale * hd, "size": r.size},
                        {"R": gt.R, "t": gt.t, "scale": gt.scale, "size": gt.size}, gt.category, gt.symmetric)
        per.append({"instance_id": r.instance_id, "category": gt.category, **e})
    return per
