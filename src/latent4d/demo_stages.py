"""The stages of the default ``latent4d demo`` (minutes on 2 CPU cores).

Each family stage (1) trains a short run from scratch at the ``--quick`` sizes, to show that training
works (its test figures carry the names ``--full`` uses, beside ``short_run`` saying what they are), then (2) shows what the family does with
the small CPU-size weights the project ships (``weights/demo/<family>``, made by ``latent4d demo
--make-weights``, see :mod:`latent4d.demo_weights`): samples, reconstructions and their figures, and
labelled pictures (:mod:`latent4d.demo_figures`). ``latent4d demo --full`` runs each family's own
``demo`` instead (every network trained from scratch at CPU size, about 1.5 hours).

Every stage returns a small JSON-able summary; ``figures`` lists ``[png, caption]`` pairs that the
index page shows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from latent4d import progress
from latent4d.demo_figures import panel_grid, read_png
from latent4d.demo_weights import read_info, weights_folder
from latent4d.fileio import write_json_atomic

#: what the training figures of the default demo measure
SHORT_RUN = "trained from scratch at the --quick sizes (seconds): proves training works; the results below it use weights/demo"


#: overrides that keep a short run's console output to its progress bar
QUIET = ["callbacks=minimal", "logger=csv", "+trainer.enable_model_summary=false"]


def _shipped(family: str) -> tuple[Path, dict]:
    """The shipped weights of ``family`` and their ``demo.json``; names the stage's second part on the
    demo's overall bar."""
    _step("results from the shipped weights")
    folder = weights_folder(family)
    return folder, read_info(folder)


def _step(text: str) -> None:
    """Name the part of the stage now running on the demo's overall bar (``2/4 objects · short training
    run``); nothing outside ``latent4d demo``."""
    run = progress.current()
    if run is not None:
        run.stage(f"{run.stage_name.split(' · ')[0]} · {text}")


def _short(metrics: dict, keys: dict[str, str]) -> dict:
    """The short run's test figures (keys: name -> metric; the names ``--full`` reports for its long runs)."""
    return {"short_run": SHORT_RUN, **{name: metrics.get(key) for name, key in keys.items()}}


def _finish(out_dir: Path, result: dict, t0: float) -> dict:
    result["seconds"] = round(time.perf_counter() - t0, 1)
    write_json_atomic(out_dir / "metrics.json", result)
    return result


# ---------------------------------------------------------------------------------------------- hair


def _hair_sheet(
    pipe, styles: list, out_dir: Path, name: str, shown: int, labels: list[str], title: str, cols: int
) -> Path:
    """``<out>/hair_<name>.png``: each hairstyle rendered over the head (``panels/``), cropped and labelled."""
    from latent4d.hair.viz import render_hair

    imgs = [
        read_png(
            render_hair(
                h,
                out_dir / "panels" / f"{name}_{i}.png",
                pipe.scalp,
                max_strands=shown,
                width=400,
                height=400,
            )
        )
        for i, h in enumerate(styles)
    ]
    return panel_grid(imgs, labels, out_dir / f"hair_{name}.png", title, cols=cols)


def hair(out_dir: Path, quick: bool) -> dict:
    """Short strand-VAE + hairstyle-VAE runs; samples and an interpolation from the shipped hairstyle-VAE."""
    from latent4d.hair.commands import train_pair
    from latent4d.hair.densify import guide_world
    from latent4d.hair.formats import write_hair
    from latent4d.hair.metrics import diversity, inside_head_fraction, root_on_scalp_error
    from latent4d.hair.pipeline import HairPipeline

    t0, out_dir = time.perf_counter(), Path(out_dir)
    _step("short training run")
    _, _, m1, m2 = train_pair(
        out_dir / "short_run", quick=True, strand_overrides=QUIET[2:], style_overrides=QUIET[2:]
    )
    folder, _ = _shipped("hair")
    pipe = HairPipeline.from_pretrained(folder)
    n, strands, shown = (2, 2000, 600) if quick else (6, 10000, 2500)
    samples = pipe.sample(n, seed=0, temperature=0.8, strands=strands)
    dense = [r.dense for r in samples if r.dense is not None]  # every sample has its dense hair (strands > 0)
    files = [str(write_hair(out_dir / f"sample_{i}.data", d)) for i, d in enumerate(dense)]
    frames = pipe.interpolate(samples[0].latent, samples[1].latent, steps=3 if quick else 5)
    fig1 = _hair_sheet(
        pipe,
        dense,
        out_dir,
        "samples",
        shown,
        [f"sample {i} ({strands} strands)" for i in range(n)],
        "Hairstyles sampled from the shipped hairstyle-VAE (temperature 0.8)",
        cols=3,
    )
    fig2 = _hair_sheet(
        pipe,
        [f.guides for f in frames],
        out_dir,
        "interpolation",
        shown,
        [f"t = {t:.2f}" for t in np.linspace(0.0, 1.0, len(frames))],
        "Interpolation between samples 0 and 1 (slerp in style-latent space; guide strands)",
        cols=len(frames),
    )
    gw = [guide_world(pipe.strand_vae, r.guide_map, pipe.grid)[0].numpy() for r in samples]
    hair_pts = [d.subset(~d.bald).strands for d in dense if (~d.bald).any()]
    pts = np.concatenate(hair_pts) if hair_pts else np.zeros((0, 2, 3), np.float32)  # (S, P, 3), metres
    result = {
        **_short(m1, {"strand_test_pos_err_mm": "test/pos_err_mm"}),
        **_short(m2, {"guide_test_err_mm": "test/guide_err_mm"}),
        "sample_diversity_mm": diversity(gw),
        "inside_head_fraction": inside_head_fraction(pts, pipe.head),
        "root_on_scalp_mm": root_on_scalp_error(np.concatenate([d.roots for d in dense]), pipe.scalp),
        "weights": str(folder),
        "samples": files,
        "figures": [
            [str(fig1), "hairstyles sampled from the shipped weights"],
            [str(fig2), "interpolation in style-latent space"],
        ],
    }
    return _finish(out_dir, result, t0)


# ------------------------------------------------------------------------------------------- objects


def _objects_sheet(frame, results, per: list[dict], overlay: str, path: Path) -> Path:
    """The input view, the reconstruction overlaid on it, and each reconstructed object (canonical frame,
    its colours) labelled with its pose error."""
    from latent4d.render import render_image

    errors = {p["instance_id"]: p for p in per}
    imgs, labels = [], []
    if frame.rgb is not None:
        imgs.append(np.asarray(frame.rgb, np.uint8))
        labels.append("input view (the RGB of the RGB-D frame)")
    imgs.append(read_png(overlay))
    labels.append("reconstruction overlaid (boxes: estimated pose and size)")
    for r in results:
        if r.status != "ok" or r.mesh_canonical is None:
            continue
        e = errors.get(r.instance_id)
        err = f": {e['rot_deg']:.0f} deg, {100 * e['trans_m']:.1f} cm off" if e else ""
        imgs.append(render_image([r.mesh_canonical], width=360, height=360, elevation=25.0))
        labels.append(f"{r.category} (shape + colour){err}")
    title = "Unseen objects reconstructed from one RGB-D view (shipped latent database)"
    return panel_grid(imgs, labels, path, title, cols=min(len(imgs), 4), cell=300)


def objects(out_dir: Path, quick: bool) -> dict:
    """A short latent-database run; a synthetic RGB-D scene of unseen objects reconstructed with the
    shipped database (shape, appearance, 6D pose and size per object)."""
    from latent4d.objects.commands import demo_errors
    from latent4d.objects.evaluation import HELDOUT_SEED_OFFSET
    from latent4d.objects.io import save_scene, write_scene_reconstruction
    from latent4d.objects.pipeline import ObjectsPipeline
    from latent4d.objects.reconstruct import reconstruct_settings
    from latent4d.objects.scenes import make_scene
    from latent4d.objects.synthetic import object_set
    from latent4d.train import compose_config, replace_run, run_training

    t0, out_dir = time.perf_counter(), Path(out_dir)
    _step("short training run")
    over = ["experiment=objects/latent_db", *QUIET, "preset=objects_demo_quick"]
    metrics = run_training(compose_config(over, replace_run(out_dir / "short_run")))
    folder, info = _shipped("objects")
    pipe = ObjectsPipeline.from_pretrained(folder)
    cats = list(info.get("settings", {}).get("categories") or ["bottle", "bowl", "can", "mug"])
    objs = object_set(cats, 1, seed_offset=HELDOUT_SEED_OFFSET, resolution=64 if quick else 96)
    frame = make_scene(objs, seed=3, n_objects=2 if quick else 3)
    save_scene(frame, out_dir / "scene")
    settings = reconstruct_settings(name="objects_quick" if quick else "objects", command="demo")
    t1 = time.perf_counter()
    results = pipe.reconstruct(
        frame, categories={o.instance_id: o.category for o in frame.objects}, config=settings
    )
    seconds = time.perf_counter() - t1
    summary = write_scene_reconstruction(frame, results, out_dir / "reconstruction")
    per = demo_errors(frame, results)
    fig = _objects_sheet(frame, results, per, summary["overlay"], out_dir / "objects_reconstruction.png")
    result = {
        **_short(metrics, {"test_sdf_l1": "test/sdf_l1", "test_color_l1": "test/color_l1"}),
        "objects": len(results),
        "reconstructed": sum(r.status == "ok" for r in results),
        "median_rot_deg": float(np.median([p["rot_deg"] for p in per])) if per else None,
        "median_trans_cm": float(100 * np.median([p["trans_m"] for p in per])) if per else None,
        "seconds_per_object": round(seconds / max(len(results), 1), 1),
        "weights": str(folder),
        "per_object": per,
        "figures": [[str(fig), "reconstruction overlaid on the input view"]],
    }
    return _finish(out_dir, result, t0)


# -------------------------------------------------------------------------------------------- motion


def _motion_strip(rec, clip, out_dir: Path, frames: list[int]) -> Path:
    """Reconstructed meshes (top) over the ground truth (bottom) at ``frames``, with the observations."""
    import trimesh

    from latent4d.render import render_image

    view: dict[str, Any] = {
        "width": 300,
        "height": 300,
        "center": (0.0, 0.0, 0.0),
        "radius": 0.6,
    }  # shapes lie in [-0.5, 0.5]^3
    imgs, labels = [], []
    for t in frames:
        mesh = trimesh.Trimesh(rec.vertices[t], rec.faces, process=False)
        imgs.append(render_image([mesh, np.asarray(rec.observations[t])], point_size=2.0, **view))
        labels.append(f"reconstruction, frame {t}")
    for t in frames:
        imgs.append(render_image([clip.sequence.mesh(t)], **view))
        labels.append(f"ground truth, frame {t}")
    return panel_grid(
        imgs,
        labels,
        out_dir / "motion_tracking.png",
        "A held-out deforming shape reconstructed and tracked from sparse noisy points (shipped weights)",
        cols=len(frames),
        cell=220,
    )


def motion(out_dir: Path, quick: bool) -> dict:
    """Short runs of the four motion models; a held-out clip reconstructed and tracked from sparse noisy
    points with the shipped weights (``conf/reconstruct/motion.yaml``, the benchmark's recipe)."""
    from latent4d.motion.commands import train_demo_runs
    from latent4d.motion.evaluate import held_out, observe_clip, sequence_metrics
    from latent4d.motion.io import write_tracked_sequence
    from latent4d.motion.pipeline import MotionPipeline
    from latent4d.motion.reconstruct import MotionSolver, reconstruct_config

    t0, out_dir = time.perf_counter(), Path(out_dir)
    _step("short training run")
    short = train_demo_runs(out_dir / "short_run", quick=True)
    folder, info = _shipped("motion")
    settings = info.get("settings", {})
    pipe = MotionPipeline.from_pretrained(folder)
    clip = held_out(1, int(settings.get("num_frames", 17)), splits=("test_identity",))[0]
    obs = observe_clip(clip, "sparse", n_obs=int(settings.get("n_obs", 300)), noise=0.002)
    t1 = time.perf_counter()
    rec = MotionSolver(pipe, reconstruct_config(name="motion_quick" if quick else "motion")).reconstruct(obs)[
        0
    ]
    seconds = time.perf_counter() - t1
    n = 20_000 if quick else 100_000
    met = sequence_metrics(rec.vertices, rec.faces, clip, n, n)
    info_out = {"clip": f"{clip.split}/{clip.index}", "mode": "sparse", "seconds": seconds, "metrics": met}
    seq = write_tracked_sequence(
        out_dir / "reconstruction" / "sample_00", rec.vertices, rec.faces, rec.observations, info=info_out
    )
    T = rec.num_frames
    fig = _motion_strip(rec, clip, out_dir, sorted({0, T // 4, T // 2, (3 * T) // 4, T - 1}))
    result = {
        "short_run": SHORT_RUN,
        "short_run_models": len(short),
        "iou": met["iou_mean"],
        "chamfer_l1": met["chamfer_l1_mean"],
        "corr_l2": met["corr_l2_mean"],
        "corr_rel_pct": 100 * met["corr_rel_mean"],
        "frames": T,
        "seconds_reconstruct": round(seconds, 1),
        "weights": str(folder),
        "output": str(seq),
        "figures": [[str(fig), "reconstruction (top) and ground truth (bottom)"]],
    }
    return _finish(out_dir, result, t0)


# -------------------------------------------------------------------------------------------- binary


def binary(out_dir: Path, quick: bool) -> dict:
    """Short autoencoder + diffusion runs; class-conditional digits from the shipped weights in 16 Bernoulli
    steps, without and with guidance, scored by the benchmark's judge (FD, class accuracy)."""
    import torch

    from latent4d.binary.io import image_grid
    from latent4d.binary.metrics import DigitsEvaluator
    from latent4d.binary.pipeline import BinaryLatentPipeline
    from latent4d.train import compose_config, replace_run, run_training

    t0, out_dir = time.perf_counter(), Path(out_dir)
    _step("short training run")
    ae_run, dm_run = out_dir / "short_run" / "ae", out_dir / "short_run" / "diffusion"
    m_ae = run_training(
        compose_config(
            ["experiment=binary/ae_digits", *QUIET, "preset=binary_ae_demo_quick"], replace_run(ae_run)
        )
    )
    m_dm = run_training(
        compose_config(
            [
                "experiment=binary/diffusion_digits",
                f"autoencoder_path={ae_run}",
                *QUIET,
                "preset=binary_diffusion_demo_quick",
            ],
            replace_run(dm_run),
        )
    )
    folder, _ = _shipped("binary")
    pipe = BinaryLatentPipeline.from_pretrained(folder)
    ev = DigitsEvaluator(epochs=5 if quick else 20)
    result = {
        **_short(m_ae, {"ae_test_psnr": "test/psnr"}),
        **_short(m_dm, {"diffusion_test_loss": "test/loss"}),
        "steps": 16,
        "temperature": pipe.default_temperature,  # calibrated by the training run (0.9 when it was not)
        "weights": str(folder),
    }
    imgs, labels = [], []
    for w in (0.0, 1.0):
        g = torch.Generator().manual_seed(0)
        res = pipe(200, steps=16, guidance=w, class_labels=torch.arange(200) // 20, generator=g)
        scores = ev.evaluate(res.samples, res.labels)
        result[f"fd_guidance_{w:g}"], result[f"class_accuracy_guidance_{w:g}"] = (
            scores["fd"],
            scores["accuracy"],
        )
        keep = torch.cat([torch.arange(d * 20, d * 20 + 8) for d in range(10)])  # 8 per digit, one row each
        imgs.append(image_grid(res.samples[keep], 8, scale=4))
        labels.append(f"guidance {w:g}: FD {scores['fd']:.1f}, accuracy {scores['accuracy']:.2f}")
    result["real_fd"] = ev.real_fd
    fig = panel_grid(
        imgs,
        labels,
        out_dir / "binary_digits.png",
        "Digits 0-9 (one row each), 16 Bernoulli steps, shipped weights",
        cols=2,
        cell=420,
        crop=False,
    )
    result["figures"] = [[str(fig), "class-conditional samples without / with guidance"]]
    return _finish(out_dir, result, t0)


STAGES = {"hair": hair, "objects": objects, "motion": motion, "binary": binary}
