"""CLI commands of the motion family: ``latent4d reconstruct motion``, ``sample``, ``evaluate``, ``demo``.

``latent4d reconstruct motion input=<folder|file.npz> out=<dir> shape_run=<shape_diffusion run>
deform_run=<deform_diffusion run> [key=value ...]``: every option and its default is in
``conf/reconstruct/motion.yaml`` (schema: :class:`~latent4d.motion.reconstruct.MotionReconstructConfig`;
Hydra refuses unknown keys and wrong types), e.g. ``mode=partial``, ``num_samples=3``,
``guidance=0`` (the models' plain samples), ``fuse=false``, ``deform_guidance.final_iters=0``,
``template=<mesh>`` (track a known frame-0 mesh, world units), ``gt=<npz>`` (adds metrics),
``method=autoencoder shape_ae=<run> deform_ae=<run>`` (dense *corresponding* clouds, autoencoders
only). ``input=`` may also be an O-Flow ``pcl_seq`` folder or a depth-image folder with
``intrinsics.json`` (:func:`latent4d.motion.io.read_sequence`). Output layout: :mod:`latent4d.motion.io`.
``latent4d evaluate run=<deform_diffusion run> data.source=oflow data.root=<dir>``: the paper's protocol
on an O-Flow dataset (:func:`evaluate_oflow`).

Every option is typed and range-checked (``sample`` / ``evaluate``: :class:`SampleOptions`,
:class:`EvaluateOptions`), ``out=`` is checked and every input file read and validated (shapes,
NaNs, frame counts, and for ``method=autoencoder`` points per frame >= the shape encoder's latent
queries) before any network runs; the output folder is written whole into a temporary sibling and
swapped in when complete, so a failed run leaves an earlier output untouched.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from latent4d.errors import ConfigError, InputError
from latent4d.fileio import atomic_dir, atomic_path, write_json_atomic
from latent4d.motion.observe import OBSERVATIONS
from latent4d.motion.reconstruct import SAMPLERS, SEED_MAX, MotionReconstructConfig, reconstruct_config
from latent4d.options import check_input_file, check_output_dir, opt, parse_options

# the same tuple as latent4d.motion.data.HELD_OUT (not imported here: it pulls in Lightning, seconds before
# the options are even checked; a test keeps them equal)
HELD_OUT = ("test_motion", "test_identity")
_N_SURFACE = 2048  # surface samples per held-out frame (the most sparse observations a clip gives)
#: the motion experiments, in training order (diffusion runs link the autoencoder runs)
EXPERIMENTS = ("shape_ae", "deform_ae", "shape_diffusion", "deform_diffusion")


# ----------------------------------------------------------------------------------------------
# options of sample / evaluate (reconstruct: conf/reconstruct/motion.yaml)


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
    seed: int = opt(0, min=0, max=SEED_MAX)
    mode: str = opt("sparse", choices=OBSERVATIONS)
    n_obs: int = opt(300, min=1, max=_N_SURFACE)
    noise: float = opt(0.002, min=0.0, max=1.0)
    num_samples: int = opt(1, min=1, max=64)
    steps: int = opt(18, min=1, max=1000)
    sampler: str = opt("dpmsolver", choices=SAMPLERS)
    shape_run: str | None = opt(None, help="shape diffusion run for frame 0 (deformation diffusion runs)")
    ema: bool = opt(
        True, help="diffusion runs: sample with the EMA denoiser (models/denoiser_ema); false: raw weights"
    )


#: the held-out lists of an O-Flow dataset: unseen motions, unseen individuals
OFLOW_TEST_SPLITS = ("test", "test_new_individual")


@dataclass
class EvaluateData:
    """``data.*`` of ``latent4d evaluate``: where the clips come from."""

    source: str = "procedural"
    root: str | None = None
    category: str | None = None


@dataclass
class EvaluateOptions:
    """``latent4d evaluate run=<motion run>`` (see :func:`evaluate`)."""

    run: str | None = None
    n: int = opt(4, min=1, max=100, help="clips per held-out split")
    resolution: int = opt(128, min=8, max=1024)
    n_iou: int = opt(100_000, min=100, max=10_000_000, help="O-Flow data: cap on points_seq points per frame")
    n_chamfer: int = opt(100_000, min=100, max=10_000_000)
    mode: str = opt("sparse", choices=(*OBSERVATIONS, "all"), help="all: every input mode (O-Flow data)")
    data: EvaluateData = field(default_factory=EvaluateData)
    split: str = opt("all", choices=("all", *OFLOW_TEST_SPLITS), help="O-Flow data: held-out list(s)")
    clips: int = opt(0, min=0, max=10_000_000, help="O-Flow data: clips per split (0: all, official)")
    seed: int = opt(0, min=0, max=SEED_MAX)
    steps: int = opt(18, min=1, max=1000)
    shape_run: str | None = None
    ema: bool = opt(
        True, help="diffusion runs: sample with the EMA denoiser (models/denoiser_ema); false: raw weights"
    )

    def validate(self) -> None:
        d = self.data
        if d.source not in ("procedural", "oflow"):
            raise ConfigError(f"evaluate: data.source must be 'procedural' or 'oflow', got {d.source!r}")
        if d.source == "oflow" and not d.root:
            raise ConfigError(
                "evaluate: data.source=oflow needs data.root=<dataset folder in the O-Flow layout>"
            )
        if d.source == "procedural" and (self.mode == "all" or d.root):
            raise ConfigError(
                "evaluate: mode=all and data.root= are for O-Flow data (add data.source=oflow data.root=<dir>)"
            )


def _kind(run_cfg: DictConfig, run_dir: Path | str = "run") -> str:
    """Which motion model a run trained (from its config's model ``_target_`` name; nothing is built)."""
    target = str(OmegaConf.select(run_cfg, "model._target_", default="") or "")
    for k in ("ShapeAEModule", "DeformAEModule", "ShapeDiffusionModule", "DeformDiffusionModule"):
        if target.endswith(k):
            return k
    raise ConfigError(
        f"'{run_dir}' is not a motion run (its config.yaml names model target '{target}'; expected "
        "a motion shape_ae / deform_ae / shape_diffusion / deform_diffusion run)"
    )


def num_frames(run_cfg: DictConfig, run_dir: Path | str = "run") -> int:
    """Frames per clip of a run (``data.num_frames``, which every motion run config holds), checked: it
    comes from a file."""
    v = OmegaConf.select(run_cfg, "data.num_frames", default=None)
    if isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= 1000:
        raise ConfigError(
            f"'{run_dir}/config.yaml': data.num_frames={v!r} is not a frame count in [2, 1000]; "
            "the run folder is damaged"
        )
    return v


def plain_config(*overrides: str) -> MotionReconstructConfig:
    """The reconstruction defaults without guidance and fusion (the models' plain samples), as
    ``sample`` and ``evaluate`` of a training run use them."""
    return reconstruct_config(["guidance=0", "fuse=false", *overrides])


# ----------------------------------------------------------------------------------------------
# reconstruct


def reconstruct(options: list[str]) -> dict:
    """``latent4d reconstruct motion input=... out=... shape_run=... deform_run=...`` (module docstring):
    ``key=value`` options over ``conf/reconstruct/motion.yaml``; returns the summary."""
    cfg = reconstruct_config(list(options))
    cfg.require_inputs()
    return run_reconstruction(cfg)


def run_reconstruction(cfg: MotionReconstructConfig) -> dict:
    """Reconstruct + track the point-cloud sequence of ``cfg.input`` and write ``cfg.out``; returns the
    summary. Every input file is read and validated before any network runs; ``out`` is written as a
    whole (a failure leaves it as it was)."""
    from latent4d.motion.observe import add_noise

    out_dir, frames, gt, tmpl = _read_inputs(cfg)
    pipe = _load_pipeline(cfg, frames)
    if cfg.normalize:
        from latent4d.motion.io import normalization

        loc, scale = normalization(frames, name=f"input '{cfg.input}'")
    else:
        loc, scale = np.zeros(3, np.float32), 1.0
    rng = [np.random.default_rng([cfg.seed, t]) for t in range(len(frames))]
    norm = [add_noise((f - loc) / scale, cfg.noise, r) for f, r in zip(frames, rng)]
    t0 = time.perf_counter()
    recs = _solve(cfg, pipe, norm, tmpl, loc, scale)
    seconds = time.perf_counter() - t0
    metrics = _gt_metrics(recs, gt, loc, scale) if gt is not None else [None] * len(recs)
    return _write_outputs(cfg, out_dir, recs, metrics, loc, scale, seconds)


def _read_inputs(cfg: MotionReconstructConfig):
    """Everything the user gave, checked and read before a network runs: (out folder, frames, ground
    truth or None, template or None)."""
    from latent4d.motion.io import read_ground_truth, read_sequence, read_template

    out_dir = check_output_dir(cfg.out, "out", marker="summary.json")
    gt = read_ground_truth(check_input_file(cfg.gt, "gt")) if cfg.gt else None
    tmpl = None
    if cfg.template and cfg.method == "diffusion":
        tmpl = read_template(check_input_file(cfg.template, "template"))
    frames = read_sequence(cfg.input, cfg.max_points, cfg.seed, cfg.depth_scale, cfg.depth_max)
    if gt is not None and len(gt[0]) != len(frames):
        raise InputError(
            f"gt={cfg.gt}: {len(gt[0])} ground-truth frames for the {len(frames)} frames of "
            f"input={cfg.input}; the frame counts must agree"
        )
    return out_dir, frames, gt, tmpl


def _load_pipeline(cfg: MotionReconstructConfig, frames: list[np.ndarray]):
    from latent4d.motion.pipeline import MotionPipeline

    if cfg.method == "diffusion":
        return MotionPipeline.from_runs(
            shape_diffusion=cfg.shape_run, deform_diffusion=cfg.deform_run, ema=cfg.ema
        )
    pipe = MotionPipeline.from_runs(shape_ae=cfg.shape_ae, deform_ae=cfg.deform_ae)
    _check_latent_queries(frames, pipe, str(cfg.input))
    return pipe


def _check_latent_queries(frames: list[np.ndarray], pipe, input_path: str) -> None:
    """``method=autoencoder`` encodes every frame with the shape AE, whose FPS picks ``num_latents``
    query points: each frame needs at least that many (docs/motion.md). The diffusion methods need no
    such minimum: their observation encoder takes min(obs_tokens, N) tokens and the clouds are
    resampled to ``n_obs`` (the paper's sparse D-FAUST input is 300 points against 512 latents)."""
    M = int(pipe.shape_ae.config.num_latents)
    for t, f in enumerate(frames):
        if len(f) < M:
            raise InputError(
                f"input '{input_path}': frame {t} has {len(f)} points, fewer than the {M} latent "
                f"queries of the shape encoder; every frame needs at least {M} points (use denser "
                "scans, or a model trained with fewer latents)"
            )


def _solve(cfg: MotionReconstructConfig, pipe, norm: list[np.ndarray], tmpl, loc, scale) -> list:
    import torch

    from latent4d.motion.reconstruct import MotionSolver

    torch.manual_seed(cfg.seed)
    if cfg.method == "autoencoder":
        return [pipe.autoencode(norm, cfg.resolution, cfg.mesh)]
    mesh0 = None
    if tmpl is not None:
        import trimesh

        mesh0 = trimesh.Trimesh((np.asarray(tmpl.vertices) - loc) / scale, tmpl.faces, process=False)
    return MotionSolver(pipe, cfg).reconstruct(norm, mesh0=mesh0)


def _gt_metrics(recs, gt: tuple[np.ndarray, np.ndarray], loc, scale, n: int = 30_000) -> list[dict]:
    """Metrics of each reconstruction against ground truth (vertices (T, V, 3) world units, faces (F, 3))."""
    from latent4d.motion.evaluate import sequence_metrics
    from latent4d.motion.synthetic import Sequence
    from latent4d.motion.types import HeldOut

    gv, gf = gt
    gv = (gv - loc) / scale
    clip = HeldOut("user", 0, Sequence(gv, gf, np.zeros(3, np.float32), 1.0, None, None), gv)
    return [sequence_metrics(r.vertices, r.faces, clip, n, n) for r in recs]


def _write_outputs(
    cfg: MotionReconstructConfig, out_dir: Path, recs, metrics, loc, scale, seconds: float
) -> dict:
    """One ``sample_XX`` folder per reconstruction and ``summary.json``, written as a whole folder."""
    from latent4d.motion.io import write_tracked_sequence

    settings = dict(
        input=str(cfg.input),
        method=cfg.method,
        mode=cfg.mode,
        steps=cfg.steps,
        sampler=cfg.sampler,
        template=cfg.template,
        guidance=cfg.guidance,
        fuse=cfg.fuse,
        resolution=cfg.resolution,
        mesh=cfg.mesh,
        n_obs=cfg.n_obs,
        noise=cfg.noise,
        seed=cfg.seed,
        window=cfg.window,
        shape_run=cfg.shape_run,
        deform_run=cfg.deform_run,
        loc=np.asarray(loc).tolist(),
        scale=float(scale),
        settings=asdict(cfg),
    )
    written = []
    with atomic_dir(out_dir, marker="summary.json") as tmp:
        for r, m in zip(recs, metrics):
            info = dict(
                settings,
                sample=r.sample,
                frame0=r.frame0,
                timings=r.timings,
                seconds_total=seconds / len(recs),
            )
            if m is not None:
                info["metrics"] = m
            name = f"sample_{r.sample:02d}"
            write_tracked_sequence(
                tmp / name,
                r.vertices,
                r.faces,
                r.observations,
                loc,
                scale,
                info,
                render=cfg.render,
                render_size=cfg.render_size,
                turntable=cfg.turntable,
            )
            written.append(str(out_dir / name))
            print(
                f"[latent4d] sample {r.sample}: {r.num_frames} frames, {r.vertices.shape[1]} vertices -> "
                f"{out_dir / name}"
            )
        summary = dict(
            settings,
            samples=written,
            frames=recs[0].num_frames,
            seconds=seconds,
            metrics=[m and {k: v for k, v in m.items() if k.endswith("_mean")} for m in metrics],
        )
        write_json_atomic(tmp / "summary.json", summary)
    return summary


# ----------------------------------------------------------------------------------------------
# sample / evaluate on a training run


def sample(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Run a trained model on a held-out procedural clip (``split=test_motion|test_identity clip=0``).

    shape AE: ``<out>/shape.ply`` (encode / decode of frame ``frame``); deformation AE: the true
    frame-0 mesh tracked through the clip; shape diffusion: ``num_samples`` shapes for the frame-0
    observation; deformation diffusion: the full reconstruction (``shape_run=`` for frame 0 from the
    shape diffusion, else the run's shape AE encodes the true frame-0 cloud; the models' plain samples,
    no guidance or fusion). ``out=`` sets the folder. Options: :class:`SampleOptions` (checked, with
    ``out=``, before anything runs).
    """
    from latent4d.motion.evaluate import held_out

    o = parse_options(SampleOptions, args, "sample")
    kind = _kind(run_cfg, run_dir)
    T = num_frames(run_cfg, run_dir)
    if o.frame >= T:
        raise ConfigError(
            f"sample: frame={o.frame} is not a frame of this run's {T}-frame clips (0..{T - 1})"
        )
    out = check_output_dir(o.out or run_dir / "samples", "out")
    clip = held_out(o.clip + 1, T, splits=(o.split,))[o.clip]
    run = {
        "ShapeAEModule": _sample_shape_ae,
        "DeformAEModule": _sample_deform_ae,
        "ShapeDiffusionModule": _sample_shape_diffusion,
        "DeformDiffusionModule": _sample_deform_diffusion,
    }[kind]
    return run(run_dir, o, clip, out)


def _sample_shape_ae(run_dir: Path, o: SampleOptions, clip, out: Path) -> dict:
    from latent4d.motion.pipeline import MotionPipeline

    pipe = MotionPipeline.from_runs(shape_ae=run_dir)
    z = pipe.encode_shape(clip.surface[o.frame][:1024])
    m = pipe.mesh(z[0], o.resolution)
    with atomic_path(out / "shape.ply") as tmp:
        m.export(tmp)
    with atomic_path(out / "truth.ply") as tmp:
        clip.sequence.mesh(o.frame).export(tmp)
    if o.render:
        from latent4d.render import render_png

        render_png([m], out / "shape.png")
    print(f"[latent4d] wrote {out / 'shape.ply'} ({len(m.vertices)} vertices)")
    return {"mesh": str(out / "shape.ply")}


def _sample_deform_ae(run_dir: Path, o: SampleOptions, clip, out: Path) -> dict:
    from latent4d.motion.io import write_tracked_sequence
    from latent4d.motion.pipeline import MotionPipeline

    pipe = MotionPipeline.from_runs(deform_ae=run_dir)
    seq, cl = clip.sequence, clip.surface[:, :1024]
    moved = pipe.deform(pipe.encode_deformation(cl[0], cl[1:]), seq.vertices[0])
    verts = np.concatenate([seq.vertices[:1], moved])
    d = write_tracked_sequence(
        out / "sample_00",
        verts,
        seq.faces,
        cl,
        info={"run": str(run_dir), "kind": "DeformAEModule"},
        render=o.render,
    )
    print(f"[latent4d] wrote {d}")
    return {"folder": str(d)}


def _sample_shape_diffusion(run_dir: Path, o: SampleOptions, clip, out: Path) -> dict:
    import torch

    from latent4d.motion.evaluate import observe_clip
    from latent4d.motion.pipeline import MotionPipeline

    pipe = MotionPipeline.from_runs(shape_diffusion=run_dir, ema=o.ema)
    obs = observe_clip(clip, o.mode, o.n_obs, o.noise, o.seed)
    z = pipe.sample_shape(
        obs[0], o.num_samples, o.steps, o.sampler, o.mode == "sparse", torch.Generator().manual_seed(o.seed)
    )
    paths = []
    for s in range(o.num_samples):
        m = pipe.mesh(z[s], o.resolution)
        p = out / f"shape_{s:02d}.ply"
        with atomic_path(p) as tmp:
            m.export(tmp)
        paths.append(str(p))
    print(f"[latent4d] wrote {len(paths)} shapes under {out}")
    return {"meshes": paths}


def _sample_deform_diffusion(run_dir: Path, o: SampleOptions, clip, out: Path) -> dict:
    from latent4d.motion.evaluate import observe_clip
    from latent4d.motion.io import write_tracked_sequence
    from latent4d.motion.pipeline import MotionPipeline
    from latent4d.motion.reconstruct import MotionSolver

    pipe = MotionPipeline.from_runs(shape_diffusion=o.shape_run, deform_diffusion=run_dir, ema=o.ema)
    obs = observe_clip(clip, o.mode, o.n_obs, o.noise, o.seed)
    shape_latents = None if o.shape_run else pipe.encode_shape(clip.surface[0][:1024])
    cfg = plain_config(
        f"mode={o.mode}",
        f"num_samples={o.num_samples}",
        f"steps={o.steps}",
        f"sampler={o.sampler}",
        f"resolution={o.resolution}",
        f"seed={o.seed}",
        f"n_obs={o.n_obs}",
    )
    recs = MotionSolver(pipe, cfg).reconstruct(obs, shape_latents=shape_latents)
    folders = [
        str(
            write_tracked_sequence(
                out / f"sample_{r.sample:02d}",
                r.vertices,
                r.faces,
                r.observations,
                info={"run": str(run_dir), "mode": o.mode, "timings": r.timings},
                render=o.render,
            )
        )
        for r in recs
    ]
    print(f"[latent4d] wrote {', '.join(folders)}")
    return {"folders": folders}


def evaluate(run_dir: Path, run_cfg: DictConfig, args: DictConfig) -> dict:
    """Metrics of a trained run on held-out clips (``n=4`` per held-out split) -> ``<run>/evaluation.json``.

    Diffusion runs are evaluated on their plain samples (no guidance or fusion). Options:
    :class:`EvaluateOptions` (checked before anything runs)."""
    from latent4d.motion.evaluate import evaluate_deform_ae, evaluate_shape_ae, held_out
    from latent4d.motion.pipeline import MotionPipeline

    o = parse_options(EvaluateOptions, args, "evaluate")
    kind = _kind(run_cfg, run_dir)
    if o.data.source == "oflow":
        return evaluate_oflow(run_dir, run_cfg, o, kind)
    clips = held_out(o.n, num_frames(run_cfg, run_dir))
    if kind == "ShapeAEModule":
        pipe = MotionPipeline.from_runs(shape_ae=run_dir)
        r = evaluate_shape_ae(pipe, clips, resolution=o.resolution, n_iou=o.n_iou, n_chamfer=o.n_chamfer)
        result = {k: r[k] for k in ("iou", "chamfer_l1", "per_split", "seconds")}
    elif kind == "DeformAEModule":
        r = evaluate_deform_ae(MotionPipeline.from_runs(deform_ae=run_dir), clips)
        result = {k: r[k] for k in ("corr_l2", "corr_rel", "per_split", "seconds")}
    elif kind == "ShapeDiffusionModule":
        result = _evaluate_shape_diffusion(
            MotionPipeline.from_runs(shape_diffusion=run_dir, ema=o.ema), clips, o
        )
    else:
        pipe = MotionPipeline.from_runs(shape_diffusion=o.shape_run, deform_diffusion=run_dir, ema=o.ema)
        result = _evaluate_deform_diffusion(pipe, clips, o)
    write_json_atomic(run_dir / "evaluation.json", result)
    print({k: v for k, v in result.items() if not isinstance(v, list | dict)})
    return result


def evaluate_oflow(run_dir: Path, run_cfg: DictConfig, o: EvaluateOptions, kind: str) -> dict:
    """The paper's protocol on the held-out lists of an O-Flow dataset (``data.source=oflow
    data.root=<dir> [data.category=<name>] [split=test|test_new_individual] [mode=sparse|partial|all]``)
    -> ``<run>/evaluation_oflow.json``: per split and input mode the means over clips of IoU, Chamfer-L1
    and correspondence L2 as the official evaluation computes them, per-clip rows, and the protocol
    (:data:`latent4d.motion.evaluate.OFFICIAL_PROTOCOL`). Windows, inputs and normalisation follow the
    run's ``data.*`` (clip_stride, clip_offset, n_obs, noise, normalize)."""
    from latent4d.motion.evaluate import (
        OFFICIAL_PROTOCOL,
        evaluate_oflow_clip,
        oflow_observer,
        summarise_oflow,
    )
    from latent4d.motion.oflow import OFlowIndex, clip_transforms
    from latent4d.motion.pipeline import MotionPipeline
    from latent4d.motion.reconstruct import MotionSolver

    if kind != "DeformDiffusionModule":
        raise ConfigError(
            f"evaluate data.source=oflow: '{run_dir}' is a {kind} run; the official protocol evaluates a "
            "deformation diffusion run (run=<deform_diffusion run> [shape_run=<shape_diffusion run>])"
        )
    hp = lambda key, default: OmegaConf.select(run_cfg, f"data.{key}", default=default)  # noqa: E731
    cats = [o.data.category] if o.data.category else None
    splits = OFLOW_TEST_SPLITS if o.split == "all" else (o.split,)
    modes = OBSERVATIONS if o.mode == "all" else (o.mode,)
    T, normalize = num_frames(run_cfg, run_dir), str(hp("normalize", "clip"))
    indices = {}
    for s in splits:
        root = Path(o.data.root).expanduser()
        if o.split == "all" and not any(root.glob(f"*/{s}.lst")):
            continue  # "all": the held-out lists the dataset has
        stride, offset = hp("clip_stride", None), hp("clip_offset", 0) or 0
        indices[s] = OFlowIndex(root, s, T, stride, offset, cats, max_clips=o.clips or None)
    if not indices:
        raise ConfigError(f"evaluate: no {' / '.join(f'{s}.lst' for s in splits)} under '{o.data.root}'")
    pipe = MotionPipeline.from_runs(shape_diffusion=o.shape_run, deform_diffusion=run_dir, ema=o.ema)
    shape_points = None if o.shape_run else int(hp("n_points", 2048))
    result = {
        "run": str(run_dir),
        "protocol": OFFICIAL_PROTOCOL,
        "frame0": "shape diffusion"
        if o.shape_run
        else f"the run's shape AE encoding of {shape_points} true frame-0 pcl_seq points",
        "splits": {},
    }
    for mode in modes:
        solver = MotionSolver(
            pipe,
            plain_config(f"mode={mode}", f"steps={o.steps}", f"resolution={o.resolution}", f"seed={o.seed}"),
        )
        for s, index in indices.items():
            tf = clip_transforms(index, normalize)
            observe = oflow_observer(index, tf, int(hp("n_obs", 300)), float(hp("noise", 0.001)), o.seed)
            rows = [
                evaluate_oflow_clip(solver, index, k, tf, observe(k, mode), shape_points, o, o.seed)
                for k in _track(range(len(index)), f"evaluate {s} / {mode}")
            ]
            result["splits"].setdefault(s, {})[mode] = dict(summarise_oflow(rows), rows=rows)
    write_json_atomic(run_dir / "evaluation_oflow.json", result)
    for s, per_mode in result["splits"].items():
        for mode, r in per_mode.items():
            print(
                f"[latent4d] {s} / {mode}: "
                + ", ".join(f"{k} {r[k]:.4f}" for k in ("iou", "chamfer_l1", "corr_l2"))
                + f" ({r['clips']} clips)"
            )
    return result


def _track(items, label: str):
    """``items`` with a progress bar (rich, with an ETA: :mod:`latent4d.progress`)."""
    from latent4d.progress import track

    return track(items, label)


def _summarise(mode: str, rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k != "split"]
    return {"mode": mode, **{k: float(np.mean([r[k] for r in rows])) for k in keys}, "rows": rows}


def _evaluate_shape_diffusion(pipe, clips, o: EvaluateOptions) -> dict:
    import torch

    from latent4d.motion.evaluate import observe_clip
    from latent4d.motion.metrics import chamfer_l1, mesh_iou

    rows = []
    for c in clips:
        obs = observe_clip(c, o.mode)
        z = pipe.sample_shape(
            obs[0], 1, o.steps, corresponding=o.mode == "sparse", generator=torch.Generator().manual_seed(0)
        )
        m = pipe.mesh(z[0], o.resolution)
        rows.append(
            {
                "split": c.split,
                "iou": mesh_iou(m, c.sequence.mesh(0)),
                "chamfer_l1": chamfer_l1(m, c.sequence.mesh(0)),
            }
        )
    return _summarise(o.mode, rows)


def _evaluate_deform_diffusion(pipe, clips, o: EvaluateOptions) -> dict:
    from latent4d.motion.evaluate import observe_clip, sequence_metrics
    from latent4d.motion.reconstruct import MotionSolver

    solver = MotionSolver(
        pipe, plain_config(f"mode={o.mode}", f"steps={o.steps}", f"resolution={o.resolution}")
    )
    rows = []
    for c in clips:
        sl = None if o.shape_run else pipe.encode_shape(c.surface[0][:1024])
        rec = solver.reconstruct(observe_clip(c, o.mode), shape_latents=sl)[0]
        met = sequence_metrics(rec.vertices, rec.faces, c, 30_000, 30_000)
        rows.append(
            {
                "split": c.split,
                **{k: met[k] for k in ("iou_mean", "chamfer_l1_mean", "corr_l2_mean", "corr_rel_mean")},
            }
        )
    return _summarise(o.mode, rows)


# ----------------------------------------------------------------------------------------------
# demo


def train_demo_runs(out_dir: Path, quick: bool) -> dict[str, Path]:
    """Train the four motion experiments of the demo into ``out_dir/runs/<experiment>`` with the presets
    ``motion_<experiment>_demo[_quick]`` (conf/preset); the diffusion runs link the autoencoder runs."""
    from latent4d.train import compose_config, replace_run, run_training

    base = ["callbacks=minimal", "logger=csv"] + (
        ["+trainer.enable_progress_bar=false", "test=false", "+trainer.enable_model_summary=false"]
        if quick
        else []
    )
    runs: dict[str, Path] = {}
    for exp in EXPERIMENTS:
        runs[exp] = out_dir / "runs" / exp
        links = (
            []
            if exp.endswith("_ae")
            else [f"shape_ae_run={runs['shape_ae']}", f"deform_ae_run={runs['deform_ae']}"]
        )
        preset = f"preset=motion_{exp}_demo{'_quick' if quick else ''}"
        run_training(
            compose_config([f"experiment=motion/{exp}", *base, *links, preset], replace_run(runs[exp]))
        )
    return runs


def _demo_reconstruction(pipe, clip, obs, quick: bool):
    """(reconstruction, where its frame 0 came from) with the demo's settings: ``conf/reconstruct/motion.yaml``
    at resolution 96 (quick: ``motion_demo_quick.yaml``, with fallbacks for models too briefly trained
    to find a surface)."""
    from latent4d.motion.reconstruct import MotionSolver

    if not quick:
        solver = MotionSolver(pipe, reconstruct_config(["resolution=96"]))
        return solver.reconstruct(obs)[0], "diffusion (observation guidance, temporal occupancy fusion)"
    solver = MotionSolver(pipe, reconstruct_config(name="motion_demo_quick"))
    try:
        return solver.reconstruct(obs)[0], "diffusion"
    except InputError:
        pass
    # a few seconds of training may not give the shape diffusion a surface yet: use the shape AE's
    # encoding of the true frame-0 cloud for frame 0 (the deformation diffusion still tracks it)
    try:
        sl = pipe.encode_shape(clip.surface[0][:256])
        return solver.reconstruct(obs, shape_latents=sl)[
            0
        ], "shape AE encoding of the true frame-0 cloud (quick mode)"
    except InputError:  # not even the shape AE has found a surface yet: track the true frame-0 mesh
        return (
            solver.reconstruct(obs, mesh0=clip.sequence.mesh(0))[0],
            "true frame-0 mesh (quick mode: models too briefly trained to find a surface)",
        )


def demo(out_dir: Path, quick: bool = False) -> dict:
    """Train the four motion models (CPU-sized; ``quick``: tiny), reconstruct and track a held-out
    procedural clip from sparse noisy points, write the mesh sequence, trajectories, renders and metrics."""
    from latent4d.config import load_run_config
    from latent4d.motion.evaluate import held_out, observe_clip, sequence_metrics
    from latent4d.motion.io import write_tracked_sequence
    from latent4d.motion.pipeline import MotionPipeline

    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    runs = train_demo_runs(out_dir, quick)
    t_train = time.perf_counter() - t0
    run_cfg = load_run_config(runs["deform_diffusion"])
    clip = held_out(1, num_frames(run_cfg), splits=("test_identity",), kinds=("blob",) if quick else None)[0]
    obs = observe_clip(clip, "sparse", n_obs=int(run_cfg.data.n_obs), noise=0.002)
    pipe = MotionPipeline.from_runs(
        shape_diffusion=runs["shape_diffusion"], deform_diffusion=runs["deform_diffusion"]
    )
    t1 = time.perf_counter()
    rec, source = _demo_reconstruction(pipe, clip, obs, quick)
    t_rec = time.perf_counter() - t1
    n = 20_000 if quick else 100_000
    met = sequence_metrics(rec.vertices, rec.faces, clip, n, n)
    info = {
        "clip": f"{clip.split}/{clip.index}",
        "mode": "sparse",
        "frame0_from": source,
        "seconds": t_rec,
        "metrics": met,
    }
    folder = write_tracked_sequence(
        out_dir / "reconstruction" / "sample_00",
        rec.vertices,
        rec.faces,
        rec.observations,
        info=info,
        render=not quick,
        turntable=not quick,
    )
    result = {
        "iou": met["iou_mean"],
        "chamfer_l1": met["chamfer_l1_mean"],
        "corr_l2": met["corr_l2_mean"],
        "corr_rel": met["corr_rel_mean"],
        "seconds_train": round(t_train, 1),
        "seconds_reconstruct": round(t_rec, 2),
        "frames": rec.num_frames,
        "output": str(folder),
        "runs": {k: str(v) for k, v in runs.items()},
    }
    write_json_atomic(out_dir / "metrics.json", result)
    return result
