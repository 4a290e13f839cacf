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

Every option is typed and range-checked (:class:`ReconstructOptions`, :class:`SampleOptions`,
:class:`EvaluateOptions`; unknown keys are errors), ``out=`` is checked and every input file read
and validated (shapes, NaNs, frame counts, and for ``method=autoencoder`` points per frame >= the shape
encoder's latent queries)
before any network runs; the output folder is written whole into a temporary sibling and swapped in
when complete, so a failed run leaves an earlier output untouched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from latent4d.errors import ConfigError, InputError
from latent4d.fileio import atomic_dir, atomic_path, write_json_atomic
from latent4d.motion.observe import OBSERVATIONS
from latent4d.options import check_input_file, check_output_dir, opt, parse_options

# the same tuples as latent4d.diffusion.edm.SAMPLERS and latent4d.motion.data.HELD_OUT (not imported here:
# they pull in diffusers / Lightning, seconds before the options are even checked; a test keeps them equal)
SAMPLERS = ("dpmsolver", "euler", "heun")
HELD_OUT = ("test_motion", "test_identity")
MESH_METHODS = ("octree", "mise", "dense")
METHODS = ("diffusion", "autoencoder")
_SEED_MAX = 2**32 - 1
_N_SURFACE = 2048  # surface samples per held-out frame (the most sparse observations a clip gives)


# ----------------------------------------------------------------------------------------------
# options (one spec per command; defaults are those of the commands before the specs)


@dataclass
class ReconstructOptions:
    """``latent4d reconstruct motion`` (see the module docstring)."""

    input: str | None = opt(None, help="folder of per-frame clouds or a (T, N, 3) .npz / .npy file")
    out: str = opt("outputs/motion/reconstruction", help="output folder (replaced whole when complete)")
    shape_run: str | None = opt(None, help="motion/shape_diffusion run (method=diffusion)")
    deform_run: str | None = opt(None, help="motion/deform_diffusion run (method=diffusion)")
    mode: str = opt("sparse", choices=OBSERVATIONS)
    num_samples: int = opt(1, min=1, max=64)
    steps: int = opt(18, min=1, max=1000, help="diffusion solver steps")
    sampler: str = opt("dpmsolver", choices=SAMPLERS)
    resolution: int = opt(128, min=8, max=1024, help="meshing grid resolution")
    mesh: str = opt("octree", choices=MESH_METHODS)
    n_obs: int = opt(300, min=1, max=1_000_000, help="observed points per frame after resampling")
    noise: float = opt(0.0, min=0.0, max=1.0, help="extra Gaussian noise (normalised units)")
    window: int | None = opt(None, min=2, max=100_000, help="frames per window (default: the model's)")
    normalize: bool = True
    render: bool = True
    seed: int = opt(0, min=0, max=_SEED_MAX)
    gt: str | None = opt(None, help="npz with ground-truth vertices (T, V, 3) and faces (F, 3)")
    method: str = opt("diffusion", choices=METHODS)
    shape_ae: str | None = opt(None, help="motion/shape_ae run (method=autoencoder)")
    deform_ae: str | None = opt(None, help="motion/deform_ae run (method=autoencoder)")
    turntable: bool = True
    render_size: int = opt(320, min=16, max=4096)
    template: str | None = opt(None, help="frame-0 mesh to track (world units)")
    guidance: float = opt(1.0, min=0.0, max=1000.0)
    fuse: bool = True
    accumulate: int = opt(0, min=0, max=100)

    def validate(self) -> None:
        if not self.input:
            raise ConfigError("reconstruct motion needs input=<folder of per-frame clouds | file.npz with (T, N, 3)>")
        if self.method == "autoencoder" and not (self.shape_ae and self.deform_ae):
            raise ConfigError("method=autoencoder needs shape_ae=<motion/shape_ae run> and "
                              "deform_ae=<motion/deform_ae run>")
        if self.method == "diffusion" and not (self.shape_run and self.deform_run):
            raise ConfigError("reconstruct motion needs shape_run=<motion/shape_diffusion run> and "
                              "deform_run=<motion/deform_diffusion run> (or method=autoencoder)")


@dataclass
class SampleOptions:
    """``latent4d sample run=<motion run>`` (see :func:`sample`)."""

    run: str | None = None
    out: str | None = opt(None, help="output folder (default <run>/samples)")
    split: str = opt("test_motion", choices=HELD_OUT)
    clip: int = opt(0, min=0, max=99)
    frame: int = opt(0, min=0, help="frame of the clip (shape AE runs)")
    render: bool = False
    resolution: int = opt(128, min=8, max=1024)
    seed: int = opt(0, min=0, max=_SEED_MAX)
    mode: str = opt("sparse", choices=OBSERVATIONS)
    n_obs: int = opt(300, min=1, max=_N_SURFACE)
    noise: float = opt(0.002, min=0.0, max=1.0)
    num_samples: int = opt(1, min=1, max=64)
    steps: int = opt(18, min=1, max=1000)
    sampler: str = opt("dpmsolver", choices=SAMPLERS)
    shape_run: str | None = opt(None, help="shape diffusion run for frame 0 (deformation diffusion runs)")


@dataclass
class EvaluateOptions:
    """``latent4d evaluate run=<motion run>`` (see :func:`evaluate`)."""

    run: str | None = None
    n: int = opt(4, min=1, max=100, help="clips per held-out split")
    resolution: int = opt(128, min=8, max=1024)
    n_iou: int = opt(100_000, min=100, max=10_000_000)
    n_chamfer: int = opt(100_000, min=100, max=10_000_000)
    mode: str = opt("sparse", choices=OBSERVATIONS)
    steps: int = opt(18, min=1, max=1000)
    shape_run: str | None = None


def _kind(run_cfg: DictConfig, run_dir: Path | str = "run") -> str:
    """Which motion model a run trained (from its config's model ``_target_`` name; nothing is built)."""
    target = str(OmegaConf.select(run_cfg, "model._target_", default="") or "")
    for k in ("ShapeAEModule", "DeformAEModule", "ShapeDiffusionModule", "DeformDiffusionModule"):
        if target.endswith(k):
            return k
    raise ConfigError(f"'{run_dir}' is not a motion run (its config.yaml names model target '{target}'; expected "
                      "a motion shape_ae / deform_ae / shape_diffusion / deform_diffusion run)")


def _num_frames(run_cfg: DictConfig, run_dir: Path | str = "run") -> int:
    """Frames per clip of a run (``data.num_frames``, default 17), checked: it comes from a file."""
    v = OmegaConf.select(run_cfg, "data.num_frames", default=None)
    if v is None:
        return 17
    if isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= 1000:
        raise ConfigError(f"'{run_dir}/config.yaml': data.num_frames={v!r} is not a frame count in [2, 1000]; "
                          "the run folder is damaged")
    return v


def _gt_metrics(recs, gt: tuple[np.ndarray, np.ndarray], loc, scale, n: int = 30_000) -> list[dict]:
    """Metrics of each reconstruction against ground truth (vertices (T, V, 3) world units, faces (F, 3))."""
    from latent4d.motion.evaluate import HeldOut, sequence_metrics
    from latent4d.motion.synthetic import Sequence

    gv, gf = gt
    gv = (gv - loc) / scale
    clip = HeldOut("user", 0, Sequence(gv, gf, np.zeros(3, np.float32), 1.0, None, None), gv)
    return [sequence_metrics(r.vertices, r.faces, clip, n, n) for r in recs]


def track(input_path, out_dir, shape_run=None, deform_run=None, mode: str = "sparse", num_samples: int = 1,
          steps: int = 18, sampler: str = "dpmsolver", resolution: int = 128, mesh: str = "octree",
          n_obs: int = 300, noise: float = 0.0, window: int | None = None, normalize: bool = True,
          render: bool = True, seed: int = 0, gt: str | None = None, method: str = "diffusion",
          shape_ae=None, deform_ae=None, turntable: bool = True, render_size: int = 320,
          template: str | None = None, guidance: float = 1.0, fuse: bool = True, accumulate: int = 0) -> dict:
    """Reconstruct + track a point-cloud sequence and write the output folder; returns the summary.

    Every argument is checked (:class:`ReconstructOptions`) and every input file read and validated
    before any network runs; ``out_dir`` is written as a whole (a failure leaves it as it was).
    """
    def s(v):
        return None if v is None else str(v)

    o = parse_options(ReconstructOptions, dict(
        input=s(input_path), out=s(out_dir), shape_run=s(shape_run), deform_run=s(deform_run), mode=mode,
        num_samples=num_samples, steps=steps, sampler=sampler, resolution=resolution, mesh=mesh, n_obs=n_obs,
        noise=noise, window=window, normalize=normalize, render=render, seed=seed, gt=s(gt), method=method,
        shape_ae=s(shape_ae), deform_ae=s(deform_ae), turntable=turntable, render_size=render_size,
        template=s(template), guidance=guidance, fuse=fuse, accumulate=accumulate), "reconstruct motion")
    return _track(o)


def _check_latent_queries(frames: list[np.ndarray], pipe, input_path: str) -> None:
    """``method=autoencoder`` encodes every frame with the shape AE, whose FPS picks ``num_latents``
    query points: each frame needs at least that many (docs/motion.md). The diffusion methods need no
    such minimum: their observation encoder takes min(obs_tokens, N) tokens and the clouds are
    resampled to ``n_obs`` (the paper's sparse D-FAUST input is 300 points against 512 latents)."""
    M = int(pipe.shape_ae.config.num_latents)
    for t, f in enumerate(frames):
        if len(f) < M:
            raise InputError(f"input '{input_path}': frame {t} has {len(f)} points, fewer than the {M} latent "
                             f"queries of the shape encoder; every frame needs at least {M} points (use denser "
                             "scans, or a model trained with fewer latents)")


def _track(o: ReconstructOptions) -> dict:
    import torch

    from latent4d.motion.io import (
        normalization,
        read_ground_truth,
        read_sequence,
        read_template,
        write_reconstruction,
    )
    from latent4d.motion.observe import add_noise
    from latent4d.motion.pipeline import MotionPipeline

    # everything the user gave is checked (and every file read) before a network runs
    out_dir = check_output_dir(o.out, "out", marker="summary.json")
    gt = read_ground_truth(check_input_file(o.gt, "gt")) if o.gt else None
    tmpl = read_template(check_input_file(o.template, "template")) if o.template and o.method == "diffusion" else None
    frames = read_sequence(o.input)
    if gt is not None and len(gt[0]) != len(frames):
        raise InputError(f"gt={o.gt}: {len(gt[0])} ground-truth frames for the {len(frames)} frames of "
                         f"input={o.input}; the frame counts must agree")
    if o.method == "autoencoder":
        pipe = MotionPipeline.from_runs(shape_ae=o.shape_ae, deform_ae=o.deform_ae)
    else:
        pipe = MotionPipeline.from_runs(shape_diffusion=o.shape_run, deform_diffusion=o.deform_run)
    if o.method == "autoencoder":
        _check_latent_queries(frames, pipe, str(o.input))
    if o.normalize:
        loc, scale = normalization(frames, name=f"input '{o.input}'")
    else:
        loc, scale = np.zeros(3, np.float32), 1.0
    rng = [np.random.default_rng([o.seed, t]) for t in range(len(frames))]
    norm = [add_noise((f - loc) / scale, o.noise, r) for f, r in zip(frames, rng)]
    t0 = time.perf_counter()
    torch.manual_seed(o.seed)
    if o.method == "autoencoder":
        recs = [pipe.autoencode(norm, o.resolution, o.mesh)]
    else:
        mesh0 = None
        if tmpl is not None:
            import trimesh

            mesh0 = trimesh.Trimesh((np.asarray(tmpl.vertices) - loc) / scale, tmpl.faces, process=False)
        from latent4d.motion.guidance import default_guidance

        sg, dg = default_guidance(o.guidance)
        recs = pipe.reconstruct(norm, o.mode, o.num_samples, o.steps, o.sampler, o.resolution, o.mesh, o.n_obs,
                                o.seed, o.window, mesh0=mesh0, guidance=dg, shape_guidance=sg, fuse=o.fuse,
                                accumulate=o.accumulate)
    seconds = time.perf_counter() - t0
    metrics = _gt_metrics(recs, gt, loc, scale) if gt is not None else [None] * len(recs)
    settings = dict(input=str(o.input), method=o.method, mode=o.mode, steps=o.steps, sampler=o.sampler,
                    template=o.template, guidance=o.guidance, fuse=o.fuse, accumulate=o.accumulate,
                    resolution=o.resolution, mesh=o.mesh, n_obs=o.n_obs, noise=o.noise, seed=o.seed, window=o.window,
                    shape_run=o.shape_run, deform_run=o.deform_run, loc=np.asarray(loc).tolist(), scale=float(scale))
    written = []
    with atomic_dir(out_dir, marker="summary.json") as tmp:
        for r, m in zip(recs, metrics):
            info = dict(settings, sample=r.sample, frame0=r.frame0, timings=r.timings,
                        seconds_total=seconds / len(recs))
            if m is not None:
                info["metrics"] = m
            name = f"sample_{r.sample:02d}"
            write_reconstruction(tmp / name, r.vertices, r.faces, r.observations, loc, scale, info, render=o.render,
                                 render_size=o.render_size, turntable=o.turntable)
            written.append(str(out_dir / name))
            print(f"[latent4d] sample {r.sample}: {r.num_frames} frames, {r.vertices.shape[1]} vertices -> "
                  f"{out_dir / name}")
        summary = dict(settings, samples=written, frames=recs[0].num_frames, seconds=seconds,
                       metrics=[m and {k: v for k, v in m.items() if k.endswith("_mean")} for m in metrics])
        write_json_atomic(tmp / "summary.json", summary)
    return summary


def reconstruct(args: DictConfig) -> dict:
    """``latent4d reconstruct motion input=... out=... shape_run=... deform_run=...`` (see module docstring)."""
    return _track(parse_options(ReconstructOptions, args, "reconstruct motion"))


# ----------------------------------------------------------------------------------------------
# sample / evaluate on a training run


def _clip(o: SampleOptions, run_cfg):
    from latent4d.motion.evaluate import held_out

    clips = held_out(o.clip + 1, _num_frames(run_cfg), splits=(o.split,))  # checked by sample() already
    return clips[o.clip]


def sample(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Run a trained model on a held-out procedural clip (``split=test_motion|test_identity clip=0``).

    shape AE: ``<out>/shape.ply`` (encode / decode of frame ``frame``); deformation AE: the true
    frame-0 mesh tracked through the clip; shape diffusion: ``num_samples`` shapes for the frame-0
    observation; deformation diffusion: the full reconstruction (``shape_run=`` for frame 0 from the
    shape diffusion, else the run's shape AE encodes the true frame-0 cloud). ``out=`` sets the folder.
    Options: :class:`SampleOptions` (checked, with ``out=``, before anything runs).
    """
    import torch

    from latent4d.motion.evaluate import observe
    from latent4d.motion.io import write_reconstruction
    from latent4d.motion.pipeline import MotionPipeline

    o = parse_options(SampleOptions, args, "sample")
    kind = _kind(run_cfg, run_dir)
    T = _num_frames(run_cfg, run_dir)
    if o.frame >= T:
        raise ConfigError(f"sample: frame={o.frame} is not a frame of this run's {T}-frame clips (0..{T - 1})")
    out = check_output_dir(o.out or run_dir / "samples", "out")
    clip = _clip(o, run_cfg)
    seq = clip.sequence
    res, seed, render = o.resolution, o.seed, o.render
    if kind == "ShapeAEModule":
        pipe = MotionPipeline.from_runs(shape_ae=run_dir)
        t = o.frame
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
    if kind == "ShapeDiffusionModule":
        pipe = MotionPipeline.from_runs(shape_diffusion=run_dir)
        obs = observe(clip, o.mode, o.n_obs, o.noise, seed)
        z = pipe.sample_shape(obs[0], o.num_samples, o.steps, o.sampler, o.mode == "sparse",
                              torch.Generator().manual_seed(seed))
        paths = []
        for s in range(o.num_samples):
            m = pipe.mesh(z[s], res)
            p = out / f"shape_{s:02d}.ply"
            with atomic_path(p) as tmp:
                m.export(tmp)
            paths.append(str(p))
        print(f"[latent4d] wrote {len(paths)} shapes under {out}")
        return {"meshes": paths}
    pipe = MotionPipeline.from_runs(shape_diffusion=o.shape_run, deform_diffusion=run_dir)
    obs = observe(clip, o.mode, o.n_obs, o.noise, seed)
    shape_latents = None if o.shape_run else pipe.encode_shape(clip.surface[0][:1024])
    recs = pipe.reconstruct(obs, o.mode, o.num_samples, o.steps, o.sampler, res, seed=seed,
                            shape_latents=shape_latents)
    folders = [str(write_reconstruction(out / f"sample_{r.sample:02d}", r.vertices, r.faces, r.observations,
                                        info={"run": str(run_dir), "mode": o.mode, "timings": r.timings},
                                        render=render))
               for r in recs]
    print(f"[latent4d] wrote {', '.join(folders)}")
    return {"folders": folders}


def evaluate(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Metrics of a trained run on held-out clips (``n=4`` per held-out split) -> ``<run>/evaluation.json``.

    Options: :class:`EvaluateOptions` (checked before anything runs)."""
    from latent4d.motion.evaluate import (
        evaluate_deform_ae,
        evaluate_shape_ae,
        held_out,
        observe,
        sequence_metrics,
    )
    from latent4d.motion.pipeline import MotionPipeline

    o = parse_options(EvaluateOptions, args, "evaluate")
    kind = _kind(run_cfg, run_dir)
    T = _num_frames(run_cfg, run_dir)
    res = o.resolution
    if kind == "ShapeAEModule":
        pipe = MotionPipeline.from_runs(shape_ae=run_dir)
        r = evaluate_shape_ae(pipe, held_out(o.n, T), resolution=res, n_iou=o.n_iou, n_chamfer=o.n_chamfer)
        result = {k: r[k] for k in ("iou", "chamfer_l1", "per_split", "seconds")}
    elif kind == "DeformAEModule":
        pipe = MotionPipeline.from_runs(deform_ae=run_dir)
        r = evaluate_deform_ae(pipe, held_out(o.n, T))
        result = {k: r[k] for k in ("corr_l2", "corr_rel", "per_split", "seconds")}
    else:
        mode, shape_run = o.mode, o.shape_run
        if kind == "ShapeDiffusionModule":
            pipe = MotionPipeline.from_runs(shape_diffusion=run_dir)
        else:
            pipe = MotionPipeline.from_runs(shape_diffusion=shape_run, deform_diffusion=run_dir)
        rows = []
        for c in held_out(o.n, T):
            obs = observe(c, mode)
            if kind == "ShapeDiffusionModule":
                import torch

                from latent4d.motion.metrics import chamfer_l1, mesh_iou

                z = pipe.sample_shape(obs[0], 1, o.steps, corresponding=mode == "sparse",
                                      generator=torch.Generator().manual_seed(0))
                m = pipe.mesh(z[0], res)
                rows.append({"split": c.split, "iou": mesh_iou(m, c.sequence.mesh(0)),
                             "chamfer_l1": chamfer_l1(m, c.sequence.mesh(0))})
            else:
                sl = None if shape_run else pipe.encode_shape(c.surface[0][:1024])
                rec = pipe.reconstruct(obs, mode, 1, o.steps, resolution=res, shape_latents=sl)[0]
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
    from latent4d.train import compose_config, replace_run, run_training

    out_dir = Path(out_dir)
    ov = _demo_overrides(quick)
    base = ["callbacks=minimal", "logger=csv"] + (["+trainer.enable_progress_bar=false", "test=false",
                                                   "+trainer.enable_model_summary=false"] if quick else [])
    t0 = time.perf_counter()
    runs = {}
    for exp in ("shape_ae", "deform_ae"):
        runs[exp] = out_dir / "runs" / exp
        run_training(compose_config([f"experiment=motion/{exp}", *base, *ov[exp]], replace_run(runs[exp])))
    links = [f"shape_ae_run={runs['shape_ae']}", f"deform_ae_run={runs['deform_ae']}"]
    for exp in ("shape_diffusion", "deform_diffusion"):
        runs[exp] = out_dir / "runs" / exp
        run_training(compose_config([f"experiment=motion/{exp}", *base, *links, *ov[exp]], replace_run(runs[exp])))
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
