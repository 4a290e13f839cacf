"""``latent4d bench motion_paper_config`` (issue 22 item 4): the paper configs' divergences from the official
Motion2VecSets settings, each measured at CPU size on ``bench motion``'s held-out clips.

Each change is trained with and without, same seed, same data, same number of optimizer steps
(``conf/preset/motion_paper_config_<experiment>.yaml``; ``_quick`` for ``--quick``; ``max_time`` null, so
the figures do not depend on the machine's load):

* deformation diffusion (one shared pair of autoencoders): latent4d's layout as the paper configs had it
  (c_noise x 1000, 64 farthest-point observation tokens, no DropPath, 17-frame training windows with a
  learned frame embedding) against (a) c_noise unscaled (``time_scale=1``), (b) every observed point a
  token (``obs_tokens`` = the 300 observed points), (c) DropPath 0.1 in every denoiser branch, (d) the
  official training window (``data.train_frames=5``: 5 of the 16 deformed frames drawn per item, no
  frame embedding, evaluated on all 16) and (d0) no frame embedding alone (what (d) needs), so (d) - (d0) is
  the window's own effect; (s) latent4d's layout again with training seed 1 instead of 42 (model
  initialisation and training draws; same data): what two training runs of one setting differ by, the
  yardstick for the rest;
* autoencoders: DropPath 0.1 in the latent layers of the shape AE (held-out IoU, Chamfer-L1) and of the
  deformation AE (correspondence error), each against the same AE without;
* the official architectures (issue 22 item 1, ``conf/model/*_official.yaml``) at the same CPU size (width,
  depth, heads, latent sets), learning rate, data and step budget: (o-shape) the official shape AE and
  (o-deform) the official deformation AE against latent4d's, (o-sparse) / (o-partial) the official
  deformation denoisers for sparse / partial inputs against latent4d's layout (both trained on latent4d's
  autoencoders, both sampled in both modes). Only the layout options of the official configs change (their
  widths are paper-size: the one 512-wide head becomes one head x the bench's width, the 256-wide point
  embedding half the bench's width); the training recipe stays latent4d's (near-surface weight, 17-frame
  windows), so the rows compare architectures. Parameter counts of both sides are rows of the report.

The deformation variants reconstruct every held-out clip from sparse and partial noisy observations with
the models' plain samples (no observation guidance, no fusion: the guided recipe moves every variant of
``bench motion`` to within 0.002 IoU of each other) and frame 0 from the shape AE's encoding of the true
frame-0 points (so only the deformation diffusion differs); the same observations, frame-0 latents and
sampling seeds for every variant, so differences are paired per clip: mean and standard error of the
paired differences over clips. One training seed per variant: the run-to-run spread of training is not in
the standard errors; the row ``(s) - latent4d`` measures it for latent4d's layout.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from latent4d.bench import BenchReport

#: observed points per frame of the held-out observations (``bench motion``'s sparse input)
N_OBS = 300
#: deformation diffusion variants: label -> training overrides (on top of the preset)
PAPER_VARIANTS: dict[str, tuple[str, ...]] = {
    "latent4d (paper config before)": (),
    "(a) c_noise unscaled": ("++model.denoiser.time_scale=1.0",),
    "(b) every observed point a token": (f"model.denoiser.obs_tokens={N_OBS}",),
    "(c) DropPath 0.1 in the denoiser": ("++model.denoiser.drop_path=0.1",),
    "(d) 5 training frames, no frame embedding": (
        "data.train_frames=5",
        "++model.denoiser.frame_embedding=false",
    ),
    "(d0) no frame embedding": ("++model.denoiser.frame_embedding=false",),
    "(s) latent4d, training seed 1": ("seed=1",),
}
BASE = "latent4d (paper config before)"
#: width of the presets' networks (``motion_paper_config_<experiment>[_quick]``)
WIDTH = {False: 64, True: 32}
#: the layout options of conf/model/motion_shape_ae_official.yaml (on latent4d's CPU-sized shape AE)
OFFICIAL_SHAPE_AE = (
    "++model.ae.encoder_heads=1",
    "model.ae.decoder_heads=1",
    "++model.ae.query_residual=false",
    "++model.ae.final_norm=false",
    "++model.ae.drop_path=0.1",
)
#: the layout options of conf/model/motion_deform_diffusion_official.yaml but ``obs_dim_head`` (the width)
OFFICIAL_DENOISER = (
    "model.denoiser.obs_tokens=512",
    "++model.denoiser.time_scale=1.0",
    "++model.denoiser.obs_heads=1",
    "++model.denoiser.obs_modes=false",
    "++model.denoiser.obs_final_norm=false",
    "++model.denoiser.shape_proj=linear",
    "++model.denoiser.frame_embedding=false",
    "++model.denoiser.adaln_gate=false",
    "++model.denoiser.context_norm=false",
    "++model.denoiser.norm_eps=1e-5",
    "++model.denoiser.io_bias=false",
    "++model.denoiser.out_affine=true",
    "++model.denoiser.drop_path=0.1",
    "++model.edm.init_noise=sigma_max",
)
#: official deformation denoisers: label -> (pair observation encoder, source-frame cross-attention)
OFFICIAL_VARIANTS = {
    "(o-sparse) official sparse-input denoiser": (True, False),
    "(o-partial) official partial-input denoiser": (False, True),
}
#: the differences reported: (variant, reference)
PAIRS = (
    [(v, BASE) for v in PAPER_VARIANTS if v != BASE]
    + [("(d) 5 training frames, no frame embedding", "(d0) no frame embedding")]
    + [(v, BASE) for v in OFFICIAL_VARIANTS]
)
METRICS = {
    "iou_mean": ("IoU", 1.0, ""),
    "chamfer_l1_mean": ("Chamfer-L1", 1.0, "norm. units"),
    "corr_rel_mean": ("correspondence L2 / bbox diagonal", 100.0, "%"),
}


def _preset(exp: str, quick: bool) -> str:
    return f"motion_paper_config_{exp}{'_quick' if quick else ''}"


def official_overrides(what: str, quick: bool, label: str = "") -> tuple[str, ...]:
    """The overrides that make latent4d's CPU-sized ``shape_ae`` / ``deform_ae`` / ``deform_diffusion``
    (denoiser ``label`` of :data:`OFFICIAL_VARIANTS`) the official architecture at the preset's width."""
    w = WIDTH[quick]
    if what == "shape_ae":
        return OFFICIAL_SHAPE_AE
    if what == "deform_ae":
        return OFFICIAL_SHAPE_AE + (
            f"++model.ae.point_width={w // 2}",
            "++model.ae.pair_projection=false",
            "++model.ae.displacement_features=false",
            "++model.ae.predict=position",
        )
    pair, source = OFFICIAL_VARIANTS[label]
    return OFFICIAL_DENOISER + (
        f"++model.denoiser.obs_dim_head={w}",
        f"++model.denoiser.obs_pair={str(pair).lower()}",
        f"++model.denoiser.obs_source={str(source).lower()}",
    )


def _train_all(report: BenchReport, quick: bool, train: Callable) -> tuple[dict, dict]:
    """The autoencoders (with and without DropPath, official) and the deformation diffusion variants
    (:data:`PAPER_VARIANTS`, :data:`OFFICIAL_VARIANTS`), trained or reused -> ({"shape_ae" / "deform_ae" /
    "<ae>_drop" / "<ae>_official": run}, {variant label: run})."""
    aes, dd = {}, {}
    for exp in ("shape_ae", "deform_ae"):
        tags = (
            ("", ()),
            ("_drop", ("++model.ae.drop_path=0.1",)),
            ("_official", official_overrides(exp, quick)),
        )
        for tag, extra in tags:
            aes[exp + tag], st = train(
                exp, quick, (), extra, name=f"paper_{exp}{tag}", preset=_preset(exp, quick)
            )
            _add_training(report, f"{exp}{AE_TAGS[tag]}", st)
    links = (f"shape_ae_run={aes['shape_ae'].resolve()}", f"deform_ae_run={aes['deform_ae'].resolve()}")
    variants = {
        **PAPER_VARIANTS,
        **{k: official_overrides("deform_diffusion", quick, k) for k in OFFICIAL_VARIANTS},
    }
    for k, (label, extra) in enumerate(variants.items()):
        dd[label], st = train(
            "deform_diffusion",
            quick,
            links,
            extra,
            name=f"paper_deform_diffusion_{k}",
            preset=_preset("deform_diffusion", quick),
        )
        _add_training(report, f"deformation diffusion {label}", st)
    return aes, dd


#: the autoencoder runs' tags -> what they are
AE_TAGS = {"": "", "_drop": " DropPath 0.1", "_official": " official"}


def _add_training(report: BenchReport, label: str, st: dict) -> None:
    report.add(
        f"{label}: training steps",
        st["steps"],
        "steps",
        minutes=round(st["seconds"] / 60, 2),
        batch_size=st["batch_size"],
    )


def _ae_rows(report: BenchReport, aes: dict, clips: list, quick: bool) -> None:
    """DropPath 0.1 in the autoencoders' latent layers and the official architectures: shape-AE IoU /
    Chamfer-L1, deformation-AE correspondence error on the held-out clips, paired against latent4d's."""
    from latent4d.motion.evaluate import evaluate_deform_ae, evaluate_shape_ae
    from latent4d.motion.pipeline import MotionPipeline

    n_points, res, n_iou = (256, 48, 10_000) if quick else (512, 96, 50_000)
    T = clips[0].sequence.num_frames
    out = {}
    for tag, what in (("", "without"), ("_drop", "DropPath 0.1"), ("_official", "official")):
        pipe = MotionPipeline.from_runs(shape_ae=aes["shape_ae" + tag], deform_ae=aes["deform_ae" + tag])
        sh = evaluate_shape_ae(
            pipe, clips, (0, T // 2, T - 1), n_points=n_points, n_iou=n_iou, n_chamfer=n_iou, resolution=res
        )
        de = evaluate_deform_ae(pipe, clips, n_points=n_points)
        out[tag] = (sh, de)
        report.add(f"shape AE {what}: IoU", sh["iou"], "", frames=len(sh["rows"]))
        report.add(f"shape AE {what}: Chamfer-L1", sh["chamfer_l1"], "norm. units")
        report.add(f"deformation AE {what}: correspondence L2 / bbox diagonal", 100 * de["corr_rel"], "%")
        for name, net in (("shape AE", pipe.shape_ae), ("deformation AE", pipe.deform_ae)):
            report.add(f"{name} {what}: parameters", sum(p.numel() for p in net.parameters()), "")
    for tag, k, key, label, scale, unit in (
        ("_drop", 0, "iou", "shape AE DropPath 0.1 - without: IoU", 1.0, ""),
        (
            "_drop",
            1,
            "corr_rel",
            "deformation AE DropPath 0.1 - without: correspondence error",
            100.0,
            "% of diag",
        ),
        ("_official", 0, "iou", "(o-shape) shape AE official - latent4d: IoU", 1.0, ""),
        (
            "_official",
            0,
            "chamfer_l1",
            "(o-shape) shape AE official - latent4d: Chamfer-L1",
            1.0,
            "norm. units",
        ),
        (
            "_official",
            1,
            "corr_rel",
            "(o-deform) deformation AE official - latent4d: correspondence error",
            100.0,
            "% of diag",
        ),
    ):
        rows = [[r.get(key, np.nan) for r in out[t][k]["rows"]] for t in (tag, "")]
        _paired(report, label, *rows, scale, unit)


def _paired(report: BenchReport, label: str, a, b, scale: float, unit: str) -> None:
    """Mean of the paired differences a - b (per clip) with its standard error (``sem``) and ``n``."""
    d = scale * (np.asarray(a, float) - np.asarray(b, float))
    d = d[np.isfinite(d)]
    if not len(d):
        report.note(f"{label}: no clip on both sides")
        return
    sem = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    report.add(
        label,
        float(d.mean()),
        unit,
        sem=round(sem, 5),
        n=len(d),
        within_2sem=bool(abs(d.mean()) <= 2 * sem) if np.isfinite(sem) else None,
    )


def _deform_rows(report: BenchReport, aes: dict, dd: dict, clips: list, quick: bool) -> dict:
    """Plain samples of every variant on every clip and mode -> {(label, mode): [metrics per clip]}."""
    from latent4d.errors import InputError
    from latent4d.motion.evaluate import observe_clip, sequence_metrics
    from latent4d.motion.pipeline import MotionPipeline
    from latent4d.motion.reconstruct import MotionSolver, reconstruct_config

    cfg = reconstruct_config(name="motion_quick" if quick else "motion")
    cfg = dataclasses.replace(cfg, guidance=0.0, fuse=False, resolution=64 if quick else 96)
    n_pts = 5_000 if quick else 20_000
    pipes = {k: MotionPipeline.from_runs(shape_ae=aes["shape_ae"], deform_diffusion=r) for k, r in dd.items()}
    table: dict[tuple[str, str], list[dict]] = {}
    seconds: dict[str, list[float]] = {}
    for mode in ("sparse", "partial"):
        for c in clips:
            obs = observe_clip(c, mode, n_obs=N_OBS, noise=0.002)
            rng = np.random.default_rng([c.index, 7])
            cloud = c.surface[0][rng.choice(len(c.surface[0]), min(512, len(c.surface[0])), replace=False)]
            z0 = pipes[BASE].encode_shape(cloud)
            run_cfg = dataclasses.replace(cfg, mode=mode, seed=c.index)
            for label, pipe in pipes.items():
                t0 = time.perf_counter()
                try:
                    rec = MotionSolver(pipe, run_cfg).reconstruct(obs, shape_latents=z0)[0]
                except InputError as e:  # no surface: counted as a failure (nan)
                    report.note(f"{label} on {c.split}/{c.index} {mode}: {e}")
                    table.setdefault((label, mode), []).append({k: float("nan") for k in METRICS})
                    continue
                seconds.setdefault(label, []).append(time.perf_counter() - t0)
                table.setdefault((label, mode), []).append(
                    sequence_metrics(rec.vertices, rec.faces, c, n_pts, n_pts)
                )
    for label, s in seconds.items():
        report.add(f"{label}: seconds per clip (plain sample)", float(np.mean(s)), "s")
    for label, pipe in pipes.items():
        report.add(
            f"{label}: denoiser parameters", sum(p.numel() for p in pipe.deform_denoiser.parameters()), ""
        )
    return table


def _report_deform(report: BenchReport, table: dict) -> None:
    """Per variant and mode: means over clips; per pair: the paired differences with standard errors."""
    for mode in ("sparse", "partial"):
        for label in (*PAPER_VARIANTS, *OFFICIAL_VARIANTS):
            rows = table.get((label, mode), [])
            for key, (name, scale, unit) in METRICS.items():
                v = np.asarray([r[key] for r in rows], float)
                ok = v[np.isfinite(v)]
                report.add(
                    f"{mode}, {label}: {name}",
                    scale * float(ok.mean()) if len(ok) else float("nan"),
                    unit,
                    clips=int(len(ok)),
                    failed=int(len(v) - len(ok)),
                )
        for a, b in PAIRS:
            ra, rb = table.get((a, mode), []), table.get((b, mode), [])
            for key, (name, scale, unit) in METRICS.items():
                _paired(
                    report,
                    f"{mode}: {a.split(' ')[0]} - {b.split(' ')[0]} {name}",
                    [r[key] for r in ra],
                    [r[key] for r in rb],
                    scale,
                    unit,
                )


def run(report: BenchReport, quick: bool, train: Callable, held_out: Callable) -> None:
    """The bench (module docstring); ``train`` / ``held_out``: :func:`latent4d.motion.bench._train` and
    ``_held_out`` (passed in: this module is imported by ``bench.py``)."""
    import torch

    torch.manual_seed(0)
    report.note(
        "paired differences: 'X - latent4d' = variant minus latent4d's layout (the paper config before "
        "this bench) on the same clip, mode, observations, frame-0 latents and sampling seed; sem = standard "
        "error over clips; within_2sem: the difference is inside 2 standard errors (not resolved at this "
        "size); one training seed per variant (the spread between training runs is not in the sem)"
    )
    report.note(
        "official architectures (o-*): conf/model/*_official.yaml's layout options on latent4d's CPU-sized "
        "networks (same width / depth / heads / latent sets / lr / steps / data; one head x the width where the "
        "official has one 512-wide head, point embedding half the width where it has 256; DropPath 0.1 as "
        "official); the training recipe stays latent4d's (17-frame windows, near-surface weight 1); "
        "(o-sparse) / (o-partial) are both sampled in both modes: each is meant for its own"
    )
    aes, dd = _train_all(report, quick, train)
    clips = held_out(aes["shape_ae"], 1 if quick else 5)
    report.note(
        f"{len(clips)} held-out clips (unseen motions and unseen identities), "
        f"{clips[0].sequence.num_frames} frames, {N_OBS} observed points, noise 0.002"
    )
    _ae_rows(report, aes, clips, quick)
    _report_deform(report, _deform_rows(report, aes, dd, clips, quick))
    for k, r in {**aes, **{f"deform_diffusion {k}": v for k, v in dd.items()}}.items():
        report.artifact(k, r)
