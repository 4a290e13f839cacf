"""CLI commands of the motion family: ``latent4d reconstruct motion``, ``sample``, ``evaluate``, ``demo``.

``latent4d reconstruct motion input=<folder|file.npz> out=<dir> shape_run=<shape_diffusion run>
deform_run=<deform_diffusion run> [mode=sparse|partial] [num_samples=1] [steps=18]
[sampler=dpmsolver|euler|heun] [resolution=128] [mesh=octree|mise|dense] [n_obs=300] [noise=0]
[window=null] [normalize=true] [render=true] [seed=0] [gt=<npz with vertices (T, V, 3), faces>]
[template=<mesh>] [guidance=1.0] [fuse=true] [accumulate=0]``

``guidance=<weight>`` steers the shape and deformation sampling towards the observations
(:mod:`latent4d.motion.guidance`; 0 turns it off and returns the models' plain samples);
``fuse=true`` builds the tracked frame-0 surface from every frame of the first window (temporal
occupancy fusion, :meth:`~latent4d.motion.pipeline.MotionPipeline.reconstruct`; ignored with a template);
``accumulate=<rounds>`` re-estimates the frame-0 shape from the observations of all frames carried
back through the tracked mesh and tracks again (0: frame 0's observation alone).

``template=<mesh file>`` tracks a known frame-0 mesh (world units, like the input) instead of
sampling the shape diffusion. ``method=autoencoder shape_ae=<run> deform_ae=<run>`` tracks dense
*corresponding* clouds with the autoencoders only (no diffusion). Output layout: :mod:`latent4d.motion.io`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from latent4d.errors import ConfigError, InputError
from latent4d.fileio import atomic_path, write_json_atomic

_KNOWN = {"input", "out", "shape_run", "deform_run", "mode", "num_samples", "steps", "sampler", "resolution",
          "mesh", "n_obs", "noise", "window", "normalize", "render", "seed", "gt", "method", "shape_ae",
          "deform_ae", "turntable", "render_size", "template", "guidance", "fuse", "accumulate"}


def _get(args, key, default):
    v = args.get(key, default) if args is not None else default
    return default if v is None else v


def _kind(run_cfg: DictConfig) -> str:
    target = str(OmegaConf.select(run_cfg, "model._target_") or "")
    for k in ("ShapeAEModule", "DeformAEModule", "ShapeDiffusionModule", "DeformDiffusionModule"):
        if target.endswith(k):
            return k
    raise ConfigError(f"not a motion run (model target '{target}')")


def _gt_metrics(recs, gt_path: str, loc, scale, n: int = 30_000) -> list[dict]:
    from latent4d.motion.evaluate import HeldOut, sequence_metrics
    from latent4d.motion.synthetic import Sequence

    with np.load(gt_path, allow_pickle=False) as z:
        if "vertices" not in z.files or "faces" not in z.files:
            raise InputError(f"{gt_path}: expected arrays 'vertices' (T, V, 3) and 'faces' (F, 3)")
        gv, gf = z["vertices"].astype(np.float32), z["faces"].astype(np.int64)
    gv = (gv - loc) / scale
    if len(gv) != recs[0].num_frames:
        raise InputError(f"{gt_path}: {len(gv)} ground-truth frames for {recs[0].num_frames} observed frames")
    clip = HeldOut("user", 0, Sequence(gv, gf, np.zeros(3, np.float32), 1.0, None, None), gv)
    return [sequence_metrics(r.vertices, r.faces, clip, n, n) for r in recs]


def track(input_path, out_dir, shape_run=None, deform_run=None, mode: str = "sparse", num_samples: int = 1,
          steps: int = 18, sampler: str = "dpmsolver", resolution: int = 128, mesh: str = "octree",
          n_obs: int = 300, noise: float = 0.0, window: int | None = None, normalize: bool = True,
          render: bool = True, seed: int = 0, gt: str | None = None, method: str = "diffusion",
          shape_ae=None, deform_ae=None, turntable: bool = True, render_size: int = 320,
          template: str | None = None, guidance: float = 1.0, fuse: bool = True, accumulate: int = 0) -> dict:
    """Reconstruct + track a point-cloud sequence and write the output folder; returns the summary."""
    import torch

    from latent4d.motion.io import normalization, read_sequence, write_reconstruction
    from latent4d.motion.observe import add_noise
    from latent4d.motion.pipeline import MotionPipeline

    if method == "autoencoder" and not (shape_ae and deform_ae):
        raise ConfigError("method=autoencoder needs shape_ae=<motion/shape_ae run> and deform_ae=<motion/deform_ae run>")
    if method == "diffusion" and not (shape_run and deform_run):
        raise ConfigError("reconstruct motion needs shape_run=<motion/shape_diffusion run> and "
                          "deform_run=<motion/deform_diffusion run> (or method=autoencoder)")
    if method not in ("diffusion", "autoencoder"):
        raise ConfigError(f"method must be 'diffusion' or 'autoencoder', got {method!r}")
    frames = read_sequence(input_path)
    if normalize:
        loc, scale = normalization(frames)
    else:
        loc, scale = np.zeros(3, np.float32), 1.0
    norm = [add_noise((f - loc) / scale, noise, np.random.default_rng([seed, t])) for t, f in enumerate(frames)]
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    if method == "autoencoder":
        pipe = MotionPipeline.from_runs(shape_ae=shape_ae, deform_ae=deform_ae)
        recs = [pipe.autoencode(norm, resolution, mesh)]
    else:
        pipe = MotionPipeline.from_runs(shape_diffusion=shape_run, deform_diffusion=deform_run)
        mesh0 = None
        if template:
            import trimesh

            from latent4d.motion.io import read_template

            mesh0 = read_template(template)
            mesh0 = trimesh.Trimesh((np.asarray(mesh0.vertices) - loc) / scale, mesh0.faces, process=False)
        from latent4d.motion.guidance import default_guidance

        sg, dg = default_guidance(guidance)
        recs = pipe.reconstruct(norm, mode, num_samples, steps, sampler, resolution, mesh, n_obs, seed, window,
                                mesh0=mesh0, guidance=dg, shape_guidance=sg, fuse=fuse, accumulate=accumulate)
    seconds = time.perf_counter() - t0
    metrics = _gt_metrics(recs, gt, loc, scale) if gt else [None] * len(recs)
    out_dir = Path(out_dir)
    settings = dict(input=str(input_path), method=method, mode=mode, steps=steps, sampler=sampler, template=template,
                    guidance=guidance, fuse=fuse, accumulate=accumulate,
                    resolution=resolution, mesh=mesh, n_obs=n_obs, noise=noise, seed=seed, window=window,
                    shape_run=str(shape_run) if shape_run else None, deform_run=str(deform_run) if deform_run else None,
                    loc=np.asarray(loc).tolist(), scale=float(scale))
    written = []
    for r, m in zip(recs, metrics):
        info = dict(settings, sample=r.sample, frame0=r.frame0, timings=r.timings, seconds_total=seconds / len(recs))
        if m is not None:
            info["metrics"] = m
        d = write_reconstruction(out_dir / f"sample_{r.sample:02d}", r.vertices, r.faces, r.observations, loc, scale,
                                 info, render=render, render_size=render_size, turntable=turntable)
        written.append(str(d))
        print(f"[latent4d] sample {r.sample}: {r.num_frames} frames, {r.vertices.shape[1]} vertices -> {d}")
    summary = dict(settings, samples=written, frames=recs[0].num_frames, seconds=seconds,
                   metrics=[m and {k: v for k, v in m.items() if k.endswith("_mean")} for m in metrics])
    write_json_atomic(out_dir / "summary.json", summary)
    return summary


def reconstruct(args: DictConfig) -> dict:
    """``latent4d reconstruct motion input=... out=... shape_run=... deform_run=...`` (see module docstring)."""
    unknown = sorted(set(args.keys()) - _KNOWN)
    if unknown:
        raise ConfigError(f"reconstruct motion: unknown option(s) {unknown}; known: {sorted(_KNOWN)}")
    if not args.get("input"):
        raise ConfigError("reconstruct motion needs input=<folder of per-frame clouds | file.npz with (T, N, 3)>")
    return track(args.input, _get(args, "out", "outputs/motion/reconstruction"), args.get("shape_run"),
                 args.get("deform_run"), str(_get(args, "mode", "sparse")), int(_get(args, "num_samples", 1)),
                 int(_get(args, "steps", 18)), str(_get(args, "sampler", "dpmsolver")),
                 int(_get(args, "resolution", 128)), str(_get(args, "mesh", "octree")), int(_get(args, "n_obs", 300)),
                 float(_get(args, "noise", 0.0)), args.get("window"), bool(_get(args, "normalize", True)),
                 bool(_get(args, "render", True)), int(_get(args, "seed", 0)), args.get("gt"),
                 str(_get(args, "method", "diffusion")), args.get("shape_ae"), args.get("deform_ae"),
                 bool(_get(args, "turntable", True)), int(_get(args, "render_size", 320)), args.get("template"),
                 float(_get(args, "guidance", 1.0)), bool(_get(args, "fuse", True)), int(_get(args, "accumulate", 0)))


# ----------------------------------------------------------------------------------------------
# sample / evaluate on a training run


def _clip(args, run_cfg):
    from latent4d.motion.evaluate import held_out

    split = str(_get(args, "split", "test_motion"))
    k = int(_get(args, "clip", 0))
    T = int(OmegaConf.select(run_cfg, "data.num_frames") or 17)
    clips = held_out(k + 1, T, splits=(split,))
    return clips[k]


def sample(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Run a trained model on a held-out procedural clip (``split=test_motion|test_identity clip=0``).

    shape AE: ``<out>/shape.ply`` (encode / decode of frame ``frame``); deformation AE: the true
    frame-0 mesh tracked through the clip; shape diffusion: ``num_samples`` shapes for the frame-0
    observation; deformation diffusion: the full reconstruction (``shape_run=`` for frame 0 from the
    shape diffusion, else the run's shape AE encodes the true frame-0 cloud). ``out=`` sets the folder.
    """
    import torch

    from latent4d.motion.evaluate import observe
    from latent4d.motion.io import write_reconstruction
    from latent4d.motion.pipeline import MotionPipeline

    kind = _kind(run_cfg)
    out = Path(_get(args, "out", run_dir / "samples"))
    clip = _clip(args, run_cfg)
    seq = clip.sequence
    render = bool(_get(args, "render", False))
    res = int(_get(args, "resolution", 128))
    seed = int(_get(args, "seed", 0))
    if kind == "ShapeAEModule":
        pipe = MotionPipeline.from_runs(shape_ae=run_dir)
        t = int(_get(args, "frame", 0))
        z = pipe.encode_shape(clip.surface[t][:1024])
        m = pipe.mesh(z[0], res)
        with atomic_path(out / "shape.ply") as tmp:
            m.export(tmp)
        with atomic_path(out / "truth.ply") as tmp:
            seq.mesh(t).export(tmp)
        if render:
            from latent4d.render import render_png

            render_png([m], out / "shape.png")
        print(f"[latent4d] wrote {out / 'shape.ply'} ({len(m.vertices)} vertices)")
        return {"mesh": str(out / "shape.ply")}
    if kind == "DeformAEModule":
        pipe = MotionPipeline.from_runs(deform_ae=run_dir)
        cl = clip.surface[:, :1024]
        moved = pipe.deform(pipe.encode_deformation(cl[0], cl[1:]), seq.vertices[0])
        verts = np.concatenate([seq.vertices[:1], moved])
        d = write_reconstruction(out / "sample_00", verts, seq.faces, cl, info={"run": str(run_dir), "kind": kind},
                                 render=render)
        print(f"[latent4d] wrote {d}")
        return {"folder": str(d)}
    mode = str(_get(args, "mode", "sparse"))
    obs = observe(clip, mode, int(_get(args, "n_obs", 300)), float(_get(args, "noise", 0.002)), seed)
    if kind == "ShapeDiffusionModule":
        pipe = MotionPipeline.from_runs(shape_diffusion=run_dir)
        n = int(_get(args, "num_samples", 1))
        z = pipe.sample_shape(obs[0], n, int(_get(args, "steps", 18)), str(_get(args, "sampler", "dpmsolver")),
                              mode == "sparse", torch.Generator().manual_seed(seed))
        paths = []
        for s in range(n):
            m = pipe.mesh(z[s], res)
            p = out / f"shape_{s:02d}.ply"
            with atomic_path(p) as tmp:
                m.export(tmp)
            paths.append(str(p))
        print(f"[latent4d] wrote {len(paths)} shapes under {out}")
        return {"meshes": paths}
    shape_run = args.get("shape_run")
    pipe = MotionPipeline.from_runs(shape_diffusion=shape_run, deform_diffusion=run_dir)
    shape_latents = None if shape_run else pipe.encode_shape(clip.surface[0][:1024])
    recs = pipe.reconstruct(obs, mode, int(_get(args, "num_samples", 1)), int(_get(args, "steps", 18)),
                            str(_get(args, "sampler", "dpmsolver")), res, seed=seed, shape_latents=shape_latents)
    folders = [str(write_reconstruction(out / f"sample_{r.sample:02d}", r.vertices, r.faces, r.observations,
                                        info={"run": str(run_dir), "mode": mode, "timings": r.timings}, render=render))
               for r in recs]
    print(f"[latent4d] wrote {', '.join(folders)}")
    return {"folders": folders}


def evaluate(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Metrics of a trained run on held-out clips (``n=4`` per held-out split) -> ``<run>/evaluation.json``."""
    from latent4d.motion.evaluate import (
        evaluate_deform_ae,
        evaluate_shape_ae,
        held_out,
        observe,
        sequence_metrics,
    )
    from latent4d.motion.pipeline import MotionPipeline

    kind = _kind(run_cfg)
    n = int(_get(args, "n", 4))
    T = int(OmegaConf.select(run_cfg, "data.num_frames") or 17)
    clips = held_out(n, T)
    res = int(_get(args, "resolution", 128))
    if kind == "ShapeAEModule":
        r = evaluate_shape_ae(MotionPipeline.from_runs(shape_ae=run_dir), clips, resolution=res,
                              n_iou=int(_get(args, "n_iou", 100_000)), n_chamfer=int(_get(args, "n_chamfer", 100_000)))
        result = {k: r[k] for k in ("iou", "chamfer_l1", "per_split", "seconds")}
    elif kind == "DeformAEModule":
        r = evaluate_deform_ae(MotionPipeline.from_runs(deform_ae=run_dir), clips)
        result = {k: r[k] for k in ("corr_l2", "corr_rel", "per_split", "seconds")}
    else:
        mode = str(_get(args, "mode", "sparse"))
        shape_run = args.get("shape_run")
        if kind == "ShapeDiffusionModule":
            pipe = MotionPipeline.from_runs(shape_diffusion=run_dir)
        else:
            pipe = MotionPipeline.from_runs(shape_diffusion=shape_run, deform_diffusion=run_dir)
        rows = []
        for c in clips:
            obs = observe(c, mode)
            if kind == "ShapeDiffusionModule":
                import torch

                from latent4d.motion.metrics import chamfer_l1, mesh_iou

                z = pipe.sample_shape(obs[0], 1, int(_get(args, "steps", 18)), corresponding=mode == "sparse",
                                      generator=torch.Generator().manual_seed(0))
                m = pipe.mesh(z[0], res)
                rows.append({"split": c.split, "iou": mesh_iou(m, c.sequence.mesh(0)),
                             "chamfer_l1": chamfer_l1(m, c.sequence.mesh(0))})
            else:
                sl = None if shape_run else pipe.encode_shape(c.surface[0][:1024])
                rec = pipe.reconstruct(obs, mode, 1, int(_get(args, "steps", 18)), resolution=res, shape_latents=sl)[0]
                met = sequence_metrics(rec.vertices, rec.faces, c, 30_000, 30_000)
                rows.append({"split": c.split, **{k: met[k] for k in ("iou_mean", "chamfer_l1_mean", "corr_l2_mean",
                                                                     "corr_rel_mean")}})
        keys = [k for k in rows[0] if k != "split"]
        result = {"mode": mode, **{k: float(np.mean([r[k] for r in rows])) for k in keys}, "rows": rows}
    write_json_atomic(run_dir / "evaluation.json", result)
    print({k: v for k, v in result.items() if not isinstance(v, list | dict)})
    return result


# ----------------------------------------------------------------------------------------------
# demo


def _demo_overrides(quick: bool) -> dict[str, list[str]]:
    """Training overrides of the demo (CPU minutes) and of quick mode (tests: seconds)."""
    if quick:
        data = ["data.n_train=4", "data.n_val=1", "data.num_frames=5", "data.n_surface=384", "data.n_uniform_store=384",
                "data.n_near_store=384", "data.n_points=192", "data.batch_size=4", "data.kinds=[blob]"]
        ae = data + ["data.n_test=1", "data.n_uniform=192", "data.n_near=192", "data.n_queries=192",
                     "data.pairs_per_sequence=4", "model.ae.num_latents=24", "model.ae.width=32", "model.ae.depth=1",
                     "model.ae.heads=2", "model.ae.dim_head=16", "model.ae.decoder_heads=2", "model.lr=3e-3",
                     "model.warmup_steps=2"]
        den = ["model.denoiser.width=32", "model.denoiser.depth=1", "model.denoiser.heads=2",
               "model.denoiser.dim_head=16", "model.denoiser.obs_tokens=8", "model.denoiser.num_latents=24",
               "data.n_obs=48", "data.partial_points=64", "data.partial_resolution=24", "model.warmup_steps=2"]
        return {"shape_ae": ae + ["trainer.max_epochs=8"],
                "deform_ae": ae + ["trainer.max_epochs=2"],
                "shape_diffusion": data + den + ["trainer.max_epochs=1"],
                "deform_diffusion": data + den + ["model.denoiser.num_frames=5", "trainer.max_epochs=1"]}
    common = ["data.n_train=32", "data.n_val=4", "data.n_test=2"]
    return {"shape_ae": common + ["trainer.max_epochs=6"],
            "deform_ae": common + ["trainer.max_epochs=6"],
            "shape_diffusion": ["data.n_train=32", "data.n_val=4", "trainer.max_epochs=10"],
            "deform_diffusion": ["data.n_train=32", "data.n_val=4", "trainer.max_epochs=30"]}


def demo(out_dir: Path, quick: bool = False) -> dict:
    """Train the four motion models (CPU-sized; ``quick``: tiny), reconstruct and track a held-out
    procedural clip from sparse noisy points, write the mesh sequence, trajectories, renders and metrics."""
    from latent4d.motion.evaluate import held_out, observe, sequence_metrics
    from latent4d.motion.io import write_reconstruction
    from latent4d.motion.pipeline import MotionPipeline
    from latent4d.train import compose_config, run_training

    out_dir = Path(out_dir)
    ov = _demo_overrides(quick)
    base = ["callbacks=minimal", "logger=csv"] + (["+trainer.enable_progress_bar=false", "test=false",
                                                   "+trainer.enable_model_summary=false"] if quick else [])
    t0 = time.perf_counter()
    runs = {}
    for exp in ("shape_ae", "deform_ae"):
        runs[exp] = out_dir / "runs" / exp
        run_training(compose_config([f"experiment=motion/{exp}", *base, *ov[exp]], runs[exp]))
    links = [f"shape_ae_run={runs['shape_ae']}", f"deform_ae_run={runs['deform_ae']}"]
    for exp in ("shape_diffusion", "deform_diffusion"):
        runs[exp] = out_dir / "runs" / exp
        run_training(compose_config([f"experiment=motion/{exp}", *base, *links, *ov[exp]], runs[exp]))
    t_train = time.perf_counter() - t0
    T = 5 if quick else 17
    clip = held_out(1, T, splits=("test_identity",), kinds=("blob",) if quick else None)[0]
    n_obs = 48 if quick else 300
    obs = observe(clip, "sparse", n_obs=n_obs, noise=0.002)
    pipe = MotionPipeline.from_runs(shape_diffusion=runs["shape_diffusion"], deform_diffusion=runs["deform_diffusion"])
    res = 24 if quick else 96
    t1 = time.perf_counter()
    try:
        from latent4d.motion.guidance import default_guidance

        # the reconstruction recipe of `latent4d reconstruct motion` (guided, fused); quick: the plain samples
        sg, dg = default_guidance(0.0 if quick else 1.0)
        rec = pipe.reconstruct(obs, "sparse", 1, steps=4 if quick else 18, resolution=res, n_obs=n_obs,
                               guidance=dg, shape_guidance=sg, fuse=not quick)[0]
        source = "diffusion" if quick else "diffusion (observation guidance, temporal occupancy fusion)"
    except InputError:
        if not quick:
            raise
        # a few seconds of training may not give the shape diffusion a surface yet: use the shape AE's
        # encoding of the true frame-0 cloud for frame 0 (the deformation diffusion still tracks it)
        sl = pipe.encode_shape(clip.surface[0][:256])
        try:
            rec = pipe.reconstruct(obs, "sparse", 1, steps=4, resolution=res, n_obs=n_obs, shape_latents=sl)[0]
            source = "shape AE encoding of the true frame-0 cloud (quick mode)"
        except InputError:  # not even the shape AE has found a surface yet: track the true frame-0 mesh
            rec = pipe.reconstruct(obs, "sparse", 1, steps=4, n_obs=n_obs, mesh0=clip.sequence.mesh(0))[0]
            source = "true frame-0 mesh (quick mode: models too briefly trained to find a surface)"
    t_rec = time.perf_counter() - t1
    met = sequence_metrics(rec.vertices, rec.faces, clip, 20_000 if quick else 100_000, 20_000 if quick else 100_000)
    info = {"clip": f"{clip.split}/{clip.index}", "mode": "sparse", "frame0_from": source, "seconds": t_rec,
            "metrics": met}
    folder = write_reconstruction(out_dir / "reconstruction" / "sample_00", rec.vertices, rec.faces, rec.observations,
                                  info=info, render=not quick, turntable=not quick)
    result = {"iou": met["iou_mean"], "chamfer_l1": met["chamfer_l1_mean"], "corr_l2": met["corr_l2_mean"],
              "corr_rel": met["corr_rel_mean"], "seconds_train": round(t_train, 1),
              "seconds_reconstruct": round(t_rec, 2), "frames": rec.num_frames, "output": str(folder),
              "runs": {k: str(v) for k, v in runs.items()}}
    write_json_atomic(out_dir / "metrics.json", result)
    return result
