"""Benchmarks of the motion family, one function per benchmark (``BENCHMARKS``).

``latent4d bench motion_ae`` (:func:`bench_motion_ae`) - trains the CPU-default shape and deformation
autoencoders (each capped at 20 minutes), then on held-out clips (unseen motion, unseen identity):
shape-AE IoU on 100k uniform points and Chamfer-L1 of the extracted meshes, deformation-AE
correspondence error relative to the bounding-box diagonal, autoencoder tracking of whole clips,
training and encode / decode throughput, octree vs dense mesh extraction.

``latent4d bench motion`` (:func:`bench_motion`) - (1) attention: the interleaved pair (spatial +
temporal self-attention) vs one joint self-attention over T x M tokens, and whole blocks of each
type, forward + backward at T = 5, 9, 17, 33, M = 512, width 512, 8 heads, batch 1: time, peak
memory, analytic FLOPs; plus the unfused reshape-based pair to show what fusing the layouts gains;
(2) reconstruction and tracking of held-out clips from sparse and partial noisy observations with
the full model and the ablations (a) per-frame shape reconstruction without a temporal model,
(b) ``joint`` attention, (c) no temporal attention: IoU, Chamfer-L1, correspondence L2, seconds per clip.

``latent4d bench motion_paper_config`` (:func:`bench_motion_paper_config`, :mod:`latent4d.motion.bench_paper`) -
the paper configs' divergences from the official settings (c_noise scale, observation tokens, DropPath,
training window), each trained with and without at CPU size and compared on the held-out clips.

Training sizes are presets (``conf/preset/motion_<experiment>_quick.yaml`` for ``--quick``,
``motion_<experiment>_bench.yaml`` for the time caps of the full runs); the reconstruction settings
are ``conf/reconstruct/motion.yaml`` (``motion_quick.yaml`` for ``--quick``), the defaults of
``latent4d reconstruct motion``. Runs land in ``outputs/bench/motion_runs/`` and are trained or
reused by :func:`latent4d.bench.train_or_reuse` (a diffusion run's key holds the SHA-256 of the
autoencoder weights it was trained on); ``bench motion`` reuses the autoencoders of a previous
``bench motion_ae`` with the same settings. Each run's training statistics (seconds, steps, batch
size) are kept in its ``bench_stats.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from latent4d.bench import BenchReport

RUNS = Path(os.environ.get("LATENT4D_BENCH_RUNS", "outputs/bench/motion_runs"))
QUIET = [
    "callbacks=minimal",
    "logger=csv",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]
STATS = "bench_stats.json"


def _train(
    exp: str,
    quick: bool,
    links: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    name: str | None = None,
    reuse: bool = True,
    experiment: str | None = None,
    preset: str | None = None,
) -> tuple[Path, dict]:
    """Train ``experiment=motion/<exp>`` with its bench preset (``motion_<exp>_quick`` / ``_bench``) into
    ``RUNS/[quick_]<name or exp>``, or reuse a finished run there (:func:`latent4d.bench.train_or_reuse`;
    ``links``: ``*_run=<dir>`` of the autoencoders, whose weights' hashes are part of the reuse key);
    ``experiment`` / ``preset`` replace those two choices (e.g. ``motion/dfaust/<exp>``);
    returns (run dir, training statistics)."""
    from latent4d.bench import train_or_reuse
    from latent4d.fileio import write_json_atomic

    run = RUNS / f"{'quick_' if quick else ''}{name or exp}"
    preset = preset or f"motion_{exp}_{'quick' if quick else 'bench'}"
    linked = _linked_weights(list(links))
    t0 = time.perf_counter()
    metrics, reused = train_or_reuse(
        [f"experiment={experiment or 'motion/' + exp}", *QUIET, f"preset={preset}", *links, *extra],
        run,
        key={"inputs": linked} if linked else None,
        reuse=reuse,
    )
    seconds = time.perf_counter() - t0
    stats = _saved_stats(run) if reused else None
    if stats is None:
        from omegaconf import OmegaConf

        stats = {
            "seconds": seconds,
            "fit_seconds": float(metrics.get("fit_seconds", seconds)),
            "steps": _trained_steps(run),
            "batch_size": int(OmegaConf.load(run / "config.yaml").data.batch_size),
            "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        }
        write_json_atomic(run / STATS, stats)
    return run, stats


def _saved_stats(run: Path) -> dict | None:
    """Training statistics of a reused run (``bench_stats.json``; runs of earlier versions kept them in
    ``bench_key.json``)."""
    for name, key in ((STATS, None), ("bench_key.json", "stats")):
        f = run / name
        if f.is_file():
            data = json.loads(f.read_text())
            data = data.get(key) if key and isinstance(data, dict) else data
            if isinstance(data, dict) and "seconds" in data:
                return data
    return None


def _linked_weights(overrides: list[str]) -> dict[str, str]:
    """SHA-256 of the exported weights of the runs an experiment builds on (``*_run=<dir>``), so a
    model trained on an autoencoder that has since been retrained at the same path is not reused."""
    import hashlib

    out = {}
    for o in overrides:
        k, _, v = o.partition("=")
        if k.endswith("_run") and v:
            h = hashlib.sha256()
            for f in sorted(Path(v).glob("models/*/*.safetensors")):
                h.update(f.read_bytes())
            out[k] = h.hexdigest()
    return out


def _trained_steps(run: Path) -> int:
    """Optimizer steps of a finished run (largest step logged by the CSV logger)."""
    import csv

    f = run / "logs" / "csv" / "metrics.csv"
    if not f.is_file():
        return 0
    with open(f) as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh) if r.get("step", "").isdigit()]
    return max(steps, default=0)


def _load_note(report: BenchReport) -> None:
    try:
        load = os.getloadavg()[0]
        report.note(
            f"1-minute load average at the start: {load:.1f} on {os.cpu_count()} CPUs "
            "(wall-clock figures scale with the machine's load)"
        )
    except OSError:
        pass


def _held_out(run: Path, n: int, splits=None) -> list:
    """The first ``n`` held-out clips per split with the run's clip length and identity kinds."""
    from latent4d.config import load_run_config
    from latent4d.motion.commands import num_frames
    from latent4d.motion.evaluate import held_out

    cfg = load_run_config(run)
    kw = {"splits": splits} if splits else {}
    return held_out(n, num_frames(cfg, run), kinds=tuple(cfg.data.kinds), **kw)


# ----------------------------------------------------------------------------------------------
# motion_ae


def bench_motion_ae(report: BenchReport, quick: bool) -> None:
    """``latent4d bench motion_ae`` (module docstring)."""
    from latent4d.motion.pipeline import MotionPipeline

    _load_note(report)
    reuse = os.environ.get("LATENT4D_BENCH_REUSE", "0") == "1"
    shape_run, s_stats = _train("shape_ae", quick, reuse=reuse)
    deform_run, d_stats = _train("deform_ae", quick, reuse=reuse)
    for label, st in (("shape AE", s_stats), ("deformation AE", d_stats)):
        _report_training(report, label, st, quick)
    clips = _held_out(shape_run, 1 if quick else 4)
    pipe = MotionPipeline.from_runs(shape_ae=shape_run, deform_ae=deform_run)
    n_points, res = (512, 64) if quick else (1024, 128)
    _report_shape_ae(report, pipe, clips, quick, n_points, res)
    _report_deform_ae(report, pipe, clips, n_points)
    # autoencoder tracking of whole clips: shape-AE mesh of frame 0 carried by the deformation AE
    from latent4d.motion.evaluate import autoencode_metrics

    n_eval = 20_000 if quick else 50_000
    tr = [
        autoencode_metrics(pipe, c, n_points, res, n_eval, n_eval) for c in clips[:: max(1, len(clips) // 2)]
    ]
    report.add("AE tracking: IoU over the clip", float(np.mean([m["iou_mean"] for m in tr])), "")
    report.add(
        "AE tracking: correspondence L2 / bbox diagonal",
        100 * float(np.mean([m["corr_rel_mean"] for m in tr])),
        "%",
    )
    report.add("AE tracking: seconds per clip", float(np.mean([m["seconds"] for m in tr])), "s")
    _report_mesh_extraction(report, pipe, clips[0].surface[0][:n_points], res)
    report.artifact("shape_ae_run", shape_run)
    report.artifact("deform_ae_run", deform_run)


def _report_training(report: BenchReport, label: str, st: dict, quick: bool) -> None:
    fit = st.get("fit_seconds")  # trainer.fit alone; older runs only have the whole run_training time
    report.add(
        f"{label}: training time" + ("" if fit else " (incl. data, test, export)"),
        (fit or st["seconds"]) / 60,
        "min",
        target="<= 20" if not quick else None,
    )
    if fit:
        report.add(f"{label}: whole run incl. data, test, export", st["seconds"] / 60, "min")
    data_s = st.get("metrics", {}).get("data_seconds")
    if data_s is not None:
        report.add(f"{label}: data building / loading (before training)", data_s / 60, "min")
    report.add(f"{label}: training steps", st["steps"], "steps")
    report.add(
        f"{label}: training throughput",
        st["steps"] * st["batch_size"] / max(fit or st["seconds"], 1e-9),
        "samples/s",
    )


def _report_shape_ae(report: BenchReport, pipe, clips, quick: bool, n_points: int, res: int) -> None:
    from latent4d.motion.evaluate import evaluate_shape_ae

    T = clips[0].sequence.num_frames
    frames = (0, T // 2) if quick else (0, T // 2, T - 1)
    n_iou = 20_000 if quick else 100_000
    sh = evaluate_shape_ae(
        pipe, clips, frames, n_points=n_points, n_iou=n_iou, n_chamfer=n_iou, resolution=res
    )
    report.add(
        "shape AE IoU (held-out, 100k uniform points)" if not quick else "shape AE IoU (held-out)",
        sh["iou"],
        "",
        target=">= 0.85",
    )
    for split, v in sh["per_split"].items():
        report.add(f"shape AE IoU, {split}", v["iou"], "")
        report.add(f"shape AE Chamfer-L1, {split}", v["chamfer_l1"], "norm. units")
    report.add(f"shape AE Chamfer-L1 (ONet, mesh at {res}^3)", sh["chamfer_l1"], "norm. units")
    report.add("shape AE encode", 1.0 / max(sh["seconds"]["encode_per_shape"], 1e-9), "shapes/s")
    report.add("shape AE decode", n_iou / max(sh["seconds"]["decode_per_shape"], 1e-9), "points/s")


def _report_deform_ae(report: BenchReport, pipe, clips, n_points: int) -> None:
    from latent4d.motion.evaluate import evaluate_deform_ae

    de = evaluate_deform_ae(pipe, clips, n_points=n_points)
    report.add(
        "deformation AE correspondence error / bbox diagonal", 100 * de["corr_rel"], "%", target="<= 1.5"
    )
    for split, v in de["per_split"].items():
        report.add(f"deformation AE correspondence error, {split}", 100 * v["corr_rel"], "%")
    report.add("deformation AE correspondence L2", de["corr_l2"], "norm. units")
    report.add("deformation AE encode", 1.0 / max(de["seconds"]["encode_per_pair"], 1e-9), "pairs/s")
    report.add(
        "deformation AE decode (mesh vertices of one target frame)",
        1.0 / max(de["seconds"]["decode_per_pair"], 1e-9),
        "frames/s",
    )


def _report_mesh_extraction(report: BenchReport, pipe, cloud: np.ndarray, res: int) -> None:
    """Octree, MISE and dense mesh extraction of one held-out shape: time, decoder evaluations, agreement."""
    from latent4d.motion.metrics import chamfer_points
    from latent4d.motion.pipeline import extract_mesh

    fn = pipe.occupancy_fn(pipe.encode_shape(cloud)[0])
    calls = {"n": 0}

    def counted(x):
        calls["n"] += len(x)
        return fn(x)

    out = {}
    for method in ("dense", "octree", "mise"):
        calls["n"] = 0
        t0 = time.perf_counter()
        m = extract_mesh(counted, res, method=method)
        out[method] = (time.perf_counter() - t0, calls["n"], m)
    report.add(f"mesh {res}^3 dense: time", out["dense"][0], "s")
    report.add(f"mesh {res}^3 octree: time", out["octree"][0], "s")
    report.add("octree / dense decoder evaluations", out["octree"][1] / out["dense"][1], "")
    report.add(f"mesh {res}^3 MISE (sign-change refinement): time", out["mise"][0], "s")
    report.add("MISE / dense decoder evaluations", out["mise"][1] / out["dense"][1], "")
    md = out["dense"][2]
    for method in ("octree", "mise"):
        mo = out[method][2]
        if len(mo.vertices) and len(md.vertices):
            voxel = 2 * 0.55 / res
            # MISE samples cell corners, dense / octree cell centres: the surfaces agree to a fraction of a voxel
            report.add(
                f"{method} vs dense mesh: mean vertex distance",
                chamfer_points(mo.vertices, md.vertices) / voxel,
                "voxels",
                target="<= 0.1" if method == "octree" else None,
            )
        else:
            report.note(f"{method} mesh comparison skipped: the decoder found no surface")


# ----------------------------------------------------------------------------------------------
# motion: attention


def _peak_bytes(fn) -> int:
    """Peak bytes allocated by ``fn()`` on the CPU (torch profiler memory events, relative to the start)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    cur = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak


def _time(fn, reps: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _attention_modules(D: int, H: int, dh: int) -> dict:
    """The attention layers and blocks compared by :func:`bench_attention` (AdaLN gates opened)."""
    from latent4d.nn.spacetime import InterleavedSelfAttention, JointSelfAttention, SpaceTimeBlock

    mods = {
        "pair": InterleavedSelfAttention(D, H, dh),
        "pair (unfused reshapes)": InterleavedSelfAttention(D, H, dh, fused=False),
        "joint": JointSelfAttention(D, H, dh),
        "block interleaved": SpaceTimeBlock(D, H, dh, D, D, D, "interleaved"),
        "block joint": SpaceTimeBlock(D, H, dh, D, D, D, "joint"),
    }
    for name in ("block interleaved", "block joint"):  # open the zero-initialised AdaLN gates
        for p in mods[name].parameters():
            if p.abs().sum() == 0:
                p.data.normal_(0, 0.02)
    return mods


def _report_attention(report: BenchReport, T: int, times: dict, mem: dict, dims: tuple) -> None:
    """The rows of one clip length T: times (s), peak memory (bytes), FLOP ratios."""
    from latent4d.nn.spacetime import spacetime_attention_flops, spacetime_block_flops

    M, D, H, dh, ctx_tokens, obs_tokens = dims
    fl = spacetime_attention_flops(T, M, D, H, dh)
    speed = times["joint"] / times["pair"]
    report.add(f"T={T}: joint attention fwd+bwd", times["joint"] * 1e3, "ms")
    report.add(f"T={T}: interleaved pair fwd+bwd", times["pair"] * 1e3, "ms")
    report.add(f"T={T}: interleaved pair, unfused reshapes", times["pair (unfused reshapes)"] * 1e3, "ms")
    report.add(f"T={T}: FLOP ratio joint / pair", fl["ratio"], "x")
    report.add(f"T={T}: measured speed-up joint / pair", speed, "x", target=f">= {0.8 * fl['ratio']:.3f}")
    report.add(f"T={T}: speed-up / FLOP ratio", speed / fl["ratio"], "", target=">= 0.8")
    report.add(f"T={T}: fused pair gain over unfused", times["pair (unfused reshapes)"] / times["pair"], "x")
    report.add(f"T={T}: peak memory joint attention", mem["joint"] / 2**20, "MiB")
    report.add(f"T={T}: peak memory interleaved pair", mem["pair"] / 2**20, "MiB")
    bj = spacetime_block_flops("joint", T, M, D, H, dh, ctx_tokens, obs_tokens)
    bi = spacetime_block_flops("interleaved", T, M, D, H, dh, ctx_tokens, obs_tokens)
    report.add(
        f"T={T}: block joint / interleaved time",
        times["block joint"] / times["block interleaved"],
        "x",
        flop_ratio=bj / bi,
        joint_ms=times["block joint"] * 1e3,
        interleaved_ms=times["block interleaved"] * 1e3,
    )
    report.add(
        f"T={T}: block peak memory joint / interleaved",
        mem["block joint"] / max(mem["block interleaved"], 1),
        "x",
        joint_mib=mem["block joint"] / 2**20,
        interleaved_mib=mem["block interleaved"] / 2**20,
    )


def bench_attention(report: BenchReport, quick: bool) -> None:
    """Part (1) of ``bench motion``: interleaved vs joint space-time attention (module docstring)."""
    torch.manual_seed(0)
    Ts = (5, 9) if quick else (5, 9, 17, 33)
    M, D, H, dh = (128, 128, 4, 32) if quick else (512, 512, 8, 64)
    ctx_tokens, obs_tokens = M, 64
    report.note(
        f"attention benchmark: M={M}, width {D}, {H} heads x {dh}, batch 1, forward + backward, "
        f"{torch.get_num_threads()} threads; blocks include cross-attention to {ctx_tokens} shape tokens, "
        f"{obs_tokens} observation tokens per frame and the GEGLU FFN"
    )
    mods = _attention_modules(D, H, dh)
    ratios = []
    for T in Ts:
        x = torch.randn(1, T, M, D, requires_grad=True)
        cond = torch.randn(1, D)
        ctx = torch.randn(1, ctx_tokens, D)
        obs = torch.randn(1, T, obs_tokens, D)

        def run(name, x=x, cond=cond, ctx=ctx, obs=obs):
            m = mods[name]

            def f():
                m.zero_grad(set_to_none=True)
                y = m(x, cond, ctx, obs) if name.startswith("block") else m(x)
                y.square().mean().backward()
                x.grad = None

            return f

        reps = 1 if (quick or T >= 33) else 2
        times = {n: _time(run(n), reps) for n in mods}
        mem = {n: _peak_bytes(run(n)) for n in ("pair", "joint", "block interleaved", "block joint")}
        ratios.append(times["joint"] / times["pair"])
        _report_attention(report, T, times, mem, (M, D, H, dh, ctx_tokens, obs_tokens))
    grows = all(b > a for a, b in zip(ratios, ratios[1:]))
    report.add("speed-up grows with T", int(grows), "", target="== 1")


# ----------------------------------------------------------------------------------------------
# motion: reconstruction ablations

#: deformation diffusion variants of the ablation: label -> model.denoiser.block_type
VARIANTS = {
    "full (interleaved)": "interleaved",
    "(b) joint attention": "joint",
    "(c) no temporal attention": "spatial",
}
ORDER = [
    "full (interleaved)",
    "(a) per-frame shape",
    "(b) joint attention",
    "(c) no temporal attention",
    "full, no guidance",
    "(a) per-frame shape, no guidance",
]


def _mean(xs):
    xs = [x for x in xs if np.isfinite(x)]
    return float(np.mean(xs)) if xs else float("nan")


def _plain(cfg):
    """The reconstruction recipe without guidance and fusion (the models' plain samples)."""
    return dataclasses.replace(cfg, guidance=0.0, fuse=False)


def bench_reconstruction(report: BenchReport, quick: bool) -> None:
    """Part (2) of ``bench motion``: the full model and the ablations on held-out clips (module docstring)."""
    from latent4d.motion.reconstruct import reconstruct_config

    pipes, train_stats, ae_run, raw = _train_reconstruction_runs(report, quick)
    cfg = reconstruct_config(name="motion_quick" if quick else "motion")
    clips = _held_out(ae_run, 1 if quick else 3)
    n_pts = 10_000 if quick else 50_000
    sg, dg = cfg.guides()
    report.note(
        f"reconstruction recipe (latent4d reconstruct motion defaults): observation guidance of shape and "
        f"deformation sampling (shape {sg}, deformation {dg}), temporal occupancy fusion over the window "
        f"(fuse={cfg.fuse}; each clip keeps the fused or the sampled frame-0 surface, whichever agrees better "
        "with the observations and per-frame shapes); (a) samples every frame with the "
        "same guided shape sampler; the 'no guidance' rows are the models' plain samples (no guidance, "
        "no fusion)"
    )
    table, seconds = _ablation_rows(report, pipes, clips, cfg, n_pts)
    summary = _report_ablations(report, table, cfg.fuse)
    _report_differences(report, summary)
    _ema_comparison(report, raw, clips, cfg, n_pts, summary)
    T = clips[0].sequence.num_frames
    if not quick:
        _validation(report, pipes["full (interleaved)"], ae_run, cfg, n_pts)
    for label in ORDER:
        if seconds.get(label):
            report.add(f"{label}: seconds per {T}-frame clip", _mean(seconds[label]), "s")
    ts = {k: v["seconds"] / max(v["steps"], 1) for k, v in train_stats.items()}
    report.add(
        "(b) joint / full: training seconds per step",
        ts["(b) joint attention"] / ts["full (interleaved)"],
        "x",
    )


def _train_reconstruction_runs(report: BenchReport, quick: bool):
    """The autoencoders, the shape diffusion and the three deformation diffusion variants (trained or
    reused) -> ({variant label: pipeline}, {variant label: training stats}, the shape AE run, the full
    model's pipeline with the raw denoisers (``ema=False``) beside the EMA copies the others sample with)."""
    from latent4d.motion.pipeline import MotionPipeline

    shape_run, _ = _train("shape_ae", quick)
    deform_run, _ = _train("deform_ae", quick)
    links = (f"shape_ae_run={shape_run.resolve()}", f"deform_ae_run={deform_run.resolve()}")
    sd_run, sd_stats = _train("shape_diffusion", quick, links)
    report.add("shape diffusion: training time", sd_stats["seconds"] / 60, "min", steps=sd_stats["steps"])
    pipes, train_stats = {}, {}
    for label, bt in VARIANTS.items():
        run, st = _train(
            "deform_diffusion",
            quick,
            links,
            (f"model.denoiser.block_type={bt}",),
            name=f"deform_diffusion_{bt}",
        )
        pipes[label] = MotionPipeline.from_runs(shape_diffusion=sd_run, deform_diffusion=run)
        if bt == VARIANTS["full (interleaved)"]:
            raw = MotionPipeline.from_runs(shape_diffusion=sd_run, deform_diffusion=run, ema=False)
            _note_ema(report, sd_stats, st, run)
        train_stats[label] = st
        report.add(
            f"deformation diffusion {label}: training",
            st["seconds"] / 60,
            "min",
            steps=st["steps"],
            seconds_per_step=st["seconds"] / max(st["steps"], 1),
        )
    return pipes, train_stats, shape_run, raw


def _note_ema(report: BenchReport, sd_stats: dict, dd_stats: dict, dd_run: Path) -> None:
    """What the EMA copies average at the end of these trainings: steps and the decay then reached."""
    from omegaconf import OmegaConf

    from latent4d.ema import ema_decay_at

    m = OmegaConf.load(dd_run / "config.yaml").model
    decay, warmup = float(m.get("ema_decay", 0.0)), float(m.get("ema_warmup", 10.0))
    steps = {"shape": int(sd_stats["steps"]), "deformation": int(dd_stats["steps"])}
    report.note(
        "EMA: every row samples with the denoisers' EMA copies (models/denoiser_ema) except the 'raw "
        f"denoisers (no EMA)' rows (models/denoiser, same runs, clips and seeds); cap {decay}, warm-up "
        f"{warmup:g}: after "
        + ", ".join(
            f"{k} diffusion's {n} steps the decay was {ema_decay_at(n, decay, warmup):.3f}"
            for k, n in steps.items()
        )
        + " (an average over roughly the last 1 / (1 - decay) steps)"
    )


def _sample_frame0(pipe, obs: np.ndarray, run_cfg, seed: int) -> torch.Tensor:
    """Frame-0 shape latents (1, M, C) of an observed clip (T, N, 3): the recipe's guided (or plain) shape
    sampler, seeded with ``seed``."""
    return pipe.sample_shape(
        obs[0],
        1,
        run_cfg.steps,
        run_cfg.sampler,
        run_cfg.mode == "sparse",
        torch.Generator().manual_seed(seed),
        guidance=run_cfg.guides()[0],
    )


def _ema_comparison(report: BenchReport, raw, clips, cfg, n_pts: int, summary: dict) -> None:
    """Issue 23 item 4: the full model's recipe and plain samples with the raw denoisers, on the clips,
    observations and seeds of the EMA rows (``full (interleaved)``, ``full, no guidance``); rows per
    mode: IoU and correspondence error without EMA, and EMA minus raw."""
    from latent4d.errors import InputError
    from latent4d.motion.evaluate import observe_clip, sequence_metrics
    from latent4d.motion.reconstruct import MotionSolver

    for mode in ("sparse", "partial"):
        for guided, label in ((True, "full (interleaved)"), (False, "full, no guidance")):
            rows = []
            for c in clips:
                obs = observe_clip(c, mode, n_obs=300, noise=0.002)
                run_cfg = dataclasses.replace(cfg if guided else _plain(cfg), mode=mode, seed=c.index)
                try:
                    z0 = _sample_frame0(raw, obs, run_cfg, c.index)
                    rec = MotionSolver(raw, run_cfg).reconstruct(obs, shape_latents=z0)[0]
                except InputError as e:  # no surface in frame 0: count as failure
                    report.note(f"{label}, raw denoisers on {c.split}/{c.index} {mode}: {e}")
                    continue
                rows.append(sequence_metrics(rec.vertices, rec.faces, c, n_pts, n_pts))
            if not rows:
                continue
            iou = _mean([r["iou_mean"] for r in rows])
            corr = 100 * _mean([r["corr_rel_mean"] for r in rows])
            report.add(f"{mode}, {label}, raw denoisers (no EMA): IoU", iou, "", clips=len(rows))
            report.add(
                f"{mode}, {label}, raw denoisers (no EMA): correspondence L2 / bbox diagonal", corr, "%"
            )
            ema = summary.get((label, mode))
            if ema:
                report.add(f"{mode}, {label}: EMA - raw IoU", ema["iou_mean"] - iou, "")
                report.add(
                    f"{mode}, {label}: raw - EMA correspondence error",
                    corr - 100 * ema["corr_rel_mean"],
                    "% of diag",
                )


def _ablation_rows(report: BenchReport, pipes: dict, clips, cfg, n_pts: int):
    """Metrics of every variant on every clip and mode -> ({(label, mode): [metrics]}, {label: [seconds]})."""
    from latent4d.errors import InputError
    from latent4d.motion.evaluate import observe_clip, sequence_metrics
    from latent4d.motion.reconstruct import MotionSolver

    full = pipes["full (interleaved)"]
    table: dict[tuple[str, str], list[dict]] = {}
    seconds: dict[str, list[float]] = {}
    for mode in ("sparse", "partial"):
        for c in clips:
            obs = observe_clip(c, mode, n_obs=300, noise=0.002)
            for guided in (True, False):
                run_cfg = dataclasses.replace(cfg if guided else _plain(cfg), mode=mode, seed=c.index)
                t0 = time.perf_counter()
                z0 = _sample_frame0(full, obs, run_cfg, c.index)
                t_shape = time.perf_counter() - t0
                for label, pipe in pipes.items():
                    if not guided and label != "full (interleaved)":
                        continue
                    name = label if guided else "full, no guidance"
                    t0 = time.perf_counter()
                    try:
                        rec = MotionSolver(pipe, run_cfg).reconstruct(obs, shape_latents=z0)[0]
                    except InputError as e:  # no surface in frame 0: count as failure
                        report.note(f"{name} on {c.split}/{c.index} {mode}: {e}")
                        continue
                    seconds.setdefault(name, []).append(time.perf_counter() - t0 + t_shape)
                    metrics = sequence_metrics(rec.vertices, rec.faces, c, n_pts, n_pts)
                    table.setdefault((name, mode), []).append({**metrics, "frame0": rec.frame0})
                name = "(a) per-frame shape" + ("" if guided else ", no guidance")
                t0 = time.perf_counter()
                try:
                    metrics = _per_frame_metrics(full, obs, c, run_cfg, n_pts)
                except InputError as e:  # a frame without surface: count as failure
                    report.note(f"{name} on {c.split}/{c.index} {mode}: {e}")
                    continue
                seconds.setdefault(name, []).append(time.perf_counter() - t0)
                table.setdefault((name, mode), []).append(metrics)
    return table, seconds


def _report_ablations(report: BenchReport, table: dict, fuse: bool) -> dict:
    """One row per variant and mode (IoU, Chamfer-L1, correspondence); returns their means."""
    summary = {}
    for mode in ("sparse", "partial"):
        for label in ORDER:
            rows = table.get((label, mode), [])
            if not rows:
                continue
            s = {
                k: _mean([r[k] for r in rows])
                for k in ("iou_mean", "chamfer_l1_mean", "corr_l2_mean", "corr_rel_mean")
            }
            s["iou_sem"] = float(np.std([r["iou_mean"] for r in rows]) / max(1, np.sqrt(len(rows))))
            summary[(label, mode)] = s
            per_frame_iou = np.mean([r["iou"] for r in rows], axis=0).round(3).tolist()
            per_frame_corr = np.mean([r["corr_rel"] for r in rows], axis=0).round(4).tolist()
            report.add(f"{mode}, {label}: IoU", s["iou_mean"], "", per_frame=per_frame_iou, clips=len(rows))
            report.add(f"{mode}, {label}: Chamfer-L1", s["chamfer_l1_mean"], "norm. units")
            report.add(
                f"{mode}, {label}: correspondence L2 / bbox diagonal",
                100 * s["corr_rel_mean"],
                "%",
                per_frame=per_frame_corr,
            )
            if fuse and label in VARIANTS:  # the guided, fused recipe
                report.add(
                    f"{mode}, {label}: clips keeping the fused frame-0 surface",
                    sum(r.get("frame0") == "fused" for r in rows),
                    f"of {len(rows)}",
                )
    return summary


def _report_differences(report: BenchReport, summary: dict) -> None:
    """The targets: the full model beats (a) and (c); (b) joint attention matches it within noise."""
    for mode in ("sparse", "partial"):
        f = summary.get(("full (interleaved)", mode))
        if not f:
            continue
        for label, short in (("(a) per-frame shape", "a"), ("(c) no temporal attention", "c")):
            o = summary.get((label, mode))
            if o:
                report.add(f"{mode}: full - ({short}) IoU", f["iou_mean"] - o["iou_mean"], "", target="> 0")
                report.add(
                    f"{mode}: ({short}) - full correspondence error",
                    100 * (o["corr_rel_mean"] - f["corr_rel_mean"]),
                    "% of diag",
                    target="> 0",
                )
        b = summary.get(("(b) joint attention", mode))
        if b:
            noise = 2 * np.hypot(f["iou_sem"], b["iou_sem"])
            report.add(
                f"{mode}: |full - (b) joint| IoU (2 x s.e.m. = {noise:.3f})",
                abs(f["iou_mean"] - b["iou_mean"]),
                "",
                met=bool(abs(f["iou_mean"] - b["iou_mean"]) <= max(noise, 0.01)),
                target=f"<= {max(noise, 0.01):.3f}",
            )


def _per_frame_metrics(full, obs, clip, cfg, n_pts: int) -> dict:
    """Ablation (a) on one clip: the shape diffusion on every frame, chained by nearest surface points."""
    from latent4d.motion.evaluate import sequence_metrics
    from latent4d.motion.reconstruct import MotionSolver

    rec, meshes = MotionSolver(full, cfg).reconstruct_per_frame(obs)
    return sequence_metrics(rec.vertices, rec.faces, clip, n_pts, n_pts, frame_meshes=meshes)


def _validation(report: BenchReport, full, ae_run: Path, cfg, n_pts: int) -> None:
    """The full recipe and (a) on 6 validation clips per mode (training identities and motions in
    unseen pairs): clips 0-2, where the deformation's final fits, the frame-shape term and the frame-0
    selection were chosen, and clips 3-5, which no setting was chosen on. Reported, no targets."""
    from latent4d.errors import InputError
    from latent4d.motion.evaluate import observe_clip, sequence_metrics
    from latent4d.motion.reconstruct import MotionSolver

    report.note(
        "validation rows: the 'val' split; clips 0-2 ('tuning'): the final fits of the deformations, the "
        "frame-shape guidance term and the frame-0 selection were chosen on them (the other settings on the "
        "first test clips); clips 3-5 ('unseen'): no setting was chosen on them"
    )
    clips = _held_out(ae_run, 6, splits=("val",))
    for mode in ("sparse", "partial"):
        rows: dict[tuple[str, str], list[dict]] = {}
        for c in clips:
            group = "tuning" if c.index < 3 else "unseen"
            obs = observe_clip(c, mode, n_obs=300, noise=0.002)
            run_cfg = dataclasses.replace(cfg, mode=mode, seed=c.index)
            try:
                z0 = _sample_frame0(full, obs, run_cfg, c.index)
                rec = MotionSolver(full, run_cfg).reconstruct(obs, shape_latents=z0)[0]
                rows.setdefault((group, "full"), []).append(
                    {**sequence_metrics(rec.vertices, rec.faces, c, n_pts, n_pts), "frame0": rec.frame0}
                )
                rows.setdefault((group, "(a)"), []).append(_per_frame_metrics(full, obs, c, run_cfg, n_pts))
            except InputError as e:
                report.note(f"validation {c.split}/{c.index} {mode}: {e}")
        for (group, name), rs in rows.items():
            report.add(
                f"validation {mode} ({group} clips), {name}: IoU",
                _mean([r["iou_mean"] for r in rs]),
                "",
                per_clip=[round(r["iou_mean"], 3) for r in rs],
                **({"frame0": [r["frame0"] for r in rs]} if "frame0" in rs[0] else {}),
            )
            report.add(
                f"validation {mode} ({group} clips), {name}: correspondence L2 / bbox diagonal",
                100 * _mean([r["corr_rel_mean"] for r in rs]),
                "%",
                per_clip=[round(100 * r["corr_rel_mean"], 2) for r in rs],
            )


def bench_motion(report: BenchReport, quick: bool) -> None:
    """``latent4d bench motion``: the attention benchmark, then the reconstruction ablations."""
    _load_note(report)
    bench_attention(report, quick)
    bench_reconstruction(report, quick)


# ----------------------------------------------------------------------------------------------
# motion_oflow


def bench_motion_oflow(report: BenchReport, quick: bool) -> None:
    """``latent4d bench motion_oflow`` (issue 18, :mod:`latent4d.motion.bench_oflow`): the O-Flow path on
    procedural data, side by side with ``bench motion``'s evaluation path, and loading at D-FAUST size."""
    from latent4d.motion import bench_oflow

    _load_note(report)
    bench_oflow.run(report, quick, RUNS, _train, _report_training)


# ----------------------------------------------------------------------------------------------
# motion_paper_config


def bench_motion_paper_config(report: BenchReport, quick: bool) -> None:
    """``latent4d bench motion_paper_config`` (issue 22 item 4): the paper configs' divergences from the
    official settings, each trained with and without at CPU size (:mod:`latent4d.motion.bench_paper`)."""
    from latent4d.motion import bench_paper

    _load_note(report)
    bench_paper.run(report, quick, _train, _held_out)


BENCHMARKS = {
    "motion_ae": bench_motion_ae,
    "motion": bench_motion,
    "motion_oflow": bench_motion_oflow,
    "motion_paper_config": bench_motion_paper_config,
}
