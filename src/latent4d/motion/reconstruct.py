"""Reconstruction and tracking of a deforming surface from observed point clouds: the typed settings
(:class:`MotionReconstructConfig`) and the solver (:class:`MotionSolver`).

Settings: every value lives in ``conf/reconstruct/motion.yaml`` (a Hydra config over the dataclass,
registered as its structured schema; the dataclass holds types, ranges and help, no values).
:func:`reconstruct_config` composes it with ``key=value`` overrides, so ``latent4d reconstruct
motion``, ``scripts/track_4d.py``, ``sample`` / ``evaluate``, the demo and the benches read the same
defaults, and an unknown key or a wrong type is Hydra's error, as one
:class:`~latent4d.errors.ConfigError` naming the option. ``conf/reconstruct/motion_quick.yaml`` (the
quick benchmark) and ``motion_demo_quick.yaml`` (the quick demo) change a few values on top.

Solver (Motion2VecSets): sparse / partial / noisy observations -> shape diffusion (frame 0) -> mesh ->
deformation diffusion (frames 1..T-1) -> the frame-0 mesh vertices carried through every frame;
clips longer than the model's window are processed in windows overlapping by one frame, each chained
on the previous window's last frame. Options:

* observation guidance (``guidance``, ``shape_guidance``, ``deform_guidance``;
  :mod:`latent4d.motion.guidance`): every solver step of the shape and deformation sampling is pulled
  towards the observations;
* temporal occupancy fusion (``fuse``): the shape diffusion is also sampled on every other frame of
  the first window; the frame-0 surface becomes the zero level of the mean over frames t of
  logit_t(phi_t(x)), each frame's occupancy pulled back to frame 0 through the sampled deformation
  phi_t (meshed with ``mise`` when ``mesh=octree``: the mean of saturated logits defeats the
  octree's value-based keep rule). Each sample keeps whichever frame-0 surface, the fused one or its
  own shape sample, agrees better with the window (:func:`consistency`); ``Reconstruction.frame0``
  says which. Ignored with a template.

:meth:`MotionSolver.reconstruct_per_frame` is the benchmark's ablation (a): the shape diffusion on
every frame, no temporal model. Everything is in the normalised frame [-0.5, 0.5]^3.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import MISSING

from latent4d.errors import ConfigError, InputError
from latent4d.motion.guidance import GuidanceConfig
from latent4d.motion.observe import OBSERVATIONS
from latent4d.motion.types import Reconstruction
from latent4d.options import compose_settings, opt

if TYPE_CHECKING:
    import torch
    import trimesh

    from latent4d.motion.pipeline import MotionPipeline

# the same tuple as latent4d.diffusion.edm.SAMPLERS (not imported here: it pulls in diffusers, seconds
# before the options are even checked; a test keeps them equal)
SAMPLERS = ("dpmsolver", "euler", "heun")
MESH_METHODS = ("octree", "mise", "dense")
METHODS = ("diffusion", "autoencoder")
SEED_MAX = 2**32 - 1


def windows(T: int, W: int):
    """(start, stop) frame ranges of ``T`` frames in windows of ``W`` overlapping by one frame, with a
    progress bar (rich, with an ETA) when there is more than one window (long captures)."""
    spans, start = [], 0
    while start < T - 1:
        spans.append((start, min(start + W, T)))
        start = spans[-1][1] - 1
    if len(spans) < 2:
        return spans
    from latent4d.progress import track

    return track(spans, f"tracking {T} frames in {len(spans)} windows")


@dataclass
class MotionReconstructConfig:
    """Settings of ``latent4d reconstruct motion`` (values: ``conf/reconstruct/motion.yaml``).

    Inputs and outputs (the command and ``scripts/track_4d.py``), then the solver's settings (what
    every caller of :class:`MotionSolver` uses). Distances are in normalised units.
    """

    # -- inputs / outputs --------------------------------------------------------------------------
    input: str | None = opt(MISSING, help="folder of per-frame clouds or a (T, N, 3) .npz / .npy file")
    out: str = opt(MISSING, help="output folder (replaced whole when complete)")
    method: str = opt(MISSING, choices=METHODS, help="diffusion, or autoencoder (dense corresponding clouds)")
    shape_run: str | None = opt(MISSING, help="motion/shape_diffusion run (method=diffusion)")
    deform_run: str | None = opt(MISSING, help="motion/deform_diffusion run (method=diffusion)")
    ema: bool = opt(
        MISSING, help="method=diffusion: sample with the EMA denoisers (models/denoiser_ema); false: raw"
    )
    shape_ae: str | None = opt(MISSING, help="motion/shape_ae run (method=autoencoder)")
    deform_ae: str | None = opt(MISSING, help="motion/deform_ae run (method=autoencoder)")
    template: str | None = opt(MISSING, help="frame-0 mesh to track (world units)")
    gt: str | None = opt(MISSING, help="npz with ground-truth vertices (T, V, 3) and faces (F, 3)")
    normalize: bool = opt(
        MISSING, help="map the input's bounding box into [-0.5, 0.5]^3 (false: it already is)"
    )
    noise: float = opt(MISSING, min=0.0, max=1.0, help="extra Gaussian noise on the input (normalised units)")
    render: bool = opt(MISSING, help="per-frame renders, an animation and a turntable")
    render_size: int = opt(MISSING, min=16, max=4096)
    turntable: bool = opt(MISSING)
    # -- solver ------------------------------------------------------------------------------------
    mode: str = opt(MISSING, choices=OBSERVATIONS, help="sparse (corresponding points) or partial")
    num_samples: int = opt(MISSING, min=1, max=64, help="independent samples")
    steps: int = opt(MISSING, min=1, max=1000, help="diffusion solver steps")
    sampler: str = opt(MISSING, choices=SAMPLERS)
    resolution: int = opt(MISSING, min=8, max=1024, help="meshing grid resolution")
    mesh: str = opt(MISSING, choices=MESH_METHODS, help="mesh extraction")
    n_obs: int = opt(MISSING, min=1, max=1_000_000, help="observed points per frame after resampling")
    max_points: int = opt(
        MISSING, min=1, max=10_000_000, help="points read per frame of an O-Flow pcl_seq / depth input folder"
    )
    depth_scale: float = opt(MISSING, gt=0.0, help="depth-image inputs: PNG units per metre")
    depth_max: float | None = opt(MISSING, gt=0.0, help="depth-image inputs: drop pixels farther (metres)")
    window: int | None = opt(MISSING, min=2, max=100_000, help="frames per window (null: the model's)")
    seed: int = opt(MISSING, min=0, max=SEED_MAX)
    n_shape_points: int = opt(
        MISSING,
        min=1,
        max=1_000_000,
        help="surface points encoded for a template's or a chained window's shape latents",
    )
    fuse: bool = opt(MISSING, help="temporal occupancy fusion of the frame-0 surface over the first window")
    guidance: float = opt(
        MISSING, min=0.0, max=1000.0, help="scales both guidance weights (0: plain samples)"
    )
    shape_guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    deform_guidance: GuidanceConfig = field(default_factory=GuidanceConfig)

    def require_inputs(self, command: str = "reconstruct motion") -> None:
        """The command's required options: ``input=`` and the runs of the chosen method."""
        if not self.input:
            raise ConfigError(f"{command} needs input=<folder of per-frame clouds | file.npz with (T, N, 3)>")
        if self.method == "autoencoder" and not (self.shape_ae and self.deform_ae):
            raise ConfigError(
                "method=autoencoder needs shape_ae=<motion/shape_ae run> and deform_ae=<motion/deform_ae run>"
            )
        if self.method == "diffusion" and not (self.shape_run and self.deform_run):
            raise ConfigError(
                f"{command} needs shape_run=<motion/shape_diffusion run> and "
                "deform_run=<motion/deform_diffusion run> (or method=autoencoder)"
            )

    def guides(self) -> tuple[GuidanceConfig | None, GuidanceConfig | None]:
        """(shape, deformation) guidance with their weights scaled by ``guidance``; (None, None) when
        ``guidance`` is 0 (the models' plain samples)."""
        if self.guidance <= 0:
            return None, None
        return (
            dataclasses.replace(self.shape_guidance, weight=self.shape_guidance.weight * self.guidance),
            dataclasses.replace(self.deform_guidance, weight=self.deform_guidance.weight * self.guidance),
        )


def reconstruct_config(
    overrides: list[str] | tuple[str, ...] = (), name: str = "motion", command: str = "reconstruct motion"
) -> MotionReconstructConfig:
    """``conf/reconstruct/<name>.yaml`` composed with ``key=value`` ``overrides`` (one ConfigError for
    unknown keys, wrong types and values out of range)."""
    from hydra.core.config_store import ConfigStore

    # variants (motion_quick, ...) build on motion.yaml: its schema must be known too
    ConfigStore.instance().store(group="schema", name="reconstruct_motion", node=MotionReconstructConfig)
    return compose_settings(f"reconstruct/{name}", MotionReconstructConfig, list(overrides), command)


# ================================================================================== solver
@dataclass
class _Clip:
    """One reconstruction's observations (T, N, 3) after resampling, and its state: random streams,
    the window length and the seconds spent per stage."""

    obs: np.ndarray
    corresponding: bool
    W: int
    rng: np.random.Generator
    gen: torch.Generator
    timings: dict[str, float]

    def add_time(self, stage: str, t0: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0


class MotionSolver:
    """Reconstruct and track a surface from observed clouds with a :class:`MotionPipeline` (shape and
    deformation diffusion) and a :class:`MotionReconstructConfig` (see the module docstring)."""

    def __init__(self, pipe: MotionPipeline, config: MotionReconstructConfig):
        self.pipe, self.cfg = pipe, config
        self.shape_guidance, self.deform_guidance = config.guides()

    def reconstruct(
        self, observations, shape_latents: torch.Tensor | None = None, mesh0: trimesh.Trimesh | None = None
    ) -> list[Reconstruction]:
        """One :class:`Reconstruction` per sample: frame-0 mesh vertices tracked through all frames.

        Args:
            observations: (T, N, 3) array or a list of T (N_t, 3) arrays (resampled to ``n_obs``);
                ``mode=sparse`` needs equal counts (corresponding points), else falls back to partial.
            shape_latents: (S, M, C) frame-0 shape latents to use instead of sampling the shape
                diffusion (e.g. the shape AE's encoding of a known frame-0 shape).
            mesh0: a known frame-0 mesh (template) to track; its shape latents are the shape AE's
                encoding of ``n_shape_points`` points sampled on it (unless given).
        """
        clip = self._prepare(observations)
        z = self._frame0_latents(clip, shape_latents, mesh0)
        if self.cfg.fuse and mesh0 is None:
            meshes, first, sources = self._fused_meshes(clip, z)
            verts = self._track(clip, meshes, z, first=first)
        else:
            meshes = [
                mesh0 if mesh0 is not None else self._frame0_mesh(clip, z[s], s, self.cfg.mesh)
                for s in range(len(z))
            ]
            sources = ["template" if mesh0 is not None else "sample"] * len(z)
            verts = self._track(clip, meshes, z)
        return [
            Reconstruction(
                verts[s], np.asarray(m.faces), clip.obs, dict(clip.timings), sample=s, frame0=sources[s]
            )
            for s, m in enumerate(meshes)
        ]

    # -- steps -----------------------------------------------------------------------------------
    def _prepare(self, observations) -> _Clip:
        import torch

        from latent4d.motion.observe import check_sequence, resample_frames

        cfg = self.cfg
        if cfg.mode not in OBSERVATIONS:
            raise ConfigError(f"observation mode must be 'sparse' or 'partial', got {cfg.mode!r}")
        frames = check_sequence(observations, "observations")
        rng = np.random.default_rng(cfg.seed)
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        counts = {len(f) for f in frames}
        corresponding = cfg.mode == "sparse" and len(counts) == 1
        if corresponding:
            n = counts.pop()
            idx = rng.choice(n, cfg.n_obs, replace=n < cfg.n_obs) if n != cfg.n_obs else np.arange(n)
            obs = np.stack(frames)[:, idx]
        else:
            obs = resample_frames(frames, cfg.n_obs, rng)
        W = min(cfg.window or self.pipe.window, self.pipe.window)
        if W < 2:
            raise ConfigError(f"window must be >= 2 frames, got {W}")
        return _Clip(
            obs, corresponding, W, rng, gen, {"shape": 0.0, "mesh": 0.0, "deform": 0.0, "decode": 0.0}
        )

    def _frame0_latents(self, clip: _Clip, shape_latents, mesh0) -> torch.Tensor:
        """Frame-0 shape latents (S, M, C): given, encoded from the template, or sampled."""
        from latent4d.geometry.sampling import sample_surface

        cfg, pipe = self.cfg, self.pipe
        t0 = time.perf_counter()
        if mesh0 is not None and shape_latents is None:
            p0, _, _ = sample_surface(mesh0.vertices, mesh0.faces, cfg.n_shape_points, clip.rng)
            shape_latents = pipe.encode_shape(p0)
        if shape_latents is None:
            z = self._sample_shapes(clip.obs[0], cfg.num_samples, clip.corresponding, clip.gen)
        else:
            z = shape_latents.to(pipe.device)
            z = z[None] if z.dim() == 2 else z
            if len(z) == 1 and cfg.num_samples > 1:
                z = z.expand(cfg.num_samples, -1, -1)
        clip.add_time("shape", t0)
        return z

    def _sample_shapes(self, obs, n: int, corresponding: bool, gen: torch.Generator) -> torch.Tensor:
        """Shape latents (n, M, C) of one observed cloud (N, 3): the configured solver and shape guidance."""
        cfg = self.cfg
        return self.pipe.sample_shape(
            obs, n, cfg.steps, cfg.sampler, corresponding, gen, guidance=self.shape_guidance
        )

    def _sample_deformations(self, clip: _Clip, z: torch.Tensor, obs: np.ndarray, **kwargs) -> torch.Tensor:
        """Deformation latents (S, T-1, M, C) of an observed window (T, N, 3) from frame-0 shape latents
        (S, M, C): the configured solver and deformation guidance (``kwargs``: its frame-0 surface...)."""
        cfg = self.cfg
        return self.pipe.sample_deformation(
            z,
            obs,
            cfg.steps,
            cfg.sampler,
            clip.corresponding,
            clip.gen,
            guidance=self.deform_guidance,
            **kwargs,
        )

    def _frame0_mesh(self, clip: _Clip, z: torch.Tensor, s: int, method: str) -> trimesh.Trimesh:
        t0 = time.perf_counter()
        m = self.pipe.mesh(z, self.cfg.resolution, method)
        clip.add_time("mesh", t0)
        if len(m.vertices) == 0:
            raise InputError(f"sample {s}: the shape decoder found no surface in frame 0")
        return m

    def _fused_meshes(self, clip: _Clip, z: torch.Tensor):
        """Temporal occupancy fusion over the first window (module docstring) -> (frame-0 meshes, the
        window's deformation latents (S, W-1, M, C), where each frame-0 surface came from)."""
        import torch

        from latent4d.geometry.sampling import sample_surface
        from latent4d.motion.pipeline import estimate_logit_slope

        cfg, pipe, guidance = self.cfg, self.pipe, self.deform_guidance
        method = "mise" if cfg.mesh == "octree" else cfg.mesh
        S, W0 = len(z), min(clip.W, len(clip.obs))
        t0 = time.perf_counter()
        frames = torch.stack(
            [
                torch.stack(
                    [
                        self._sample_shapes(clip.obs[t], 1, clip.corresponding, clip.gen)[0]
                        for t in range(1, W0)
                    ]
                )
                for _ in range(S)
            ]
        )  # (S, W0-1, M, C)
        clip.add_time("shape", t0)
        t0 = time.perf_counter()
        surface0 = first_meshes = None
        guided = guidance is not None and guidance.enabled
        if guided and (not clip.corresponding or guidance.shape_weight > 0):  # a first surface for the guide
            first_meshes = [self._frame0_mesh(clip, z[s], s, method) for s in range(S)]
            surface0 = np.stack(
                [sample_surface(m.vertices, m.faces, guidance.n_surface, clip.rng)[0] for m in first_meshes]
            )
        # the logit slope turns logits into distances (frame-shape guidance, frame-0 selection)
        slope = estimate_logit_slope(pipe.occupancy_fn(z[0]), pipe.bounds)
        zd = self._sample_deformations(
            clip, z, clip.obs[:W0], surface0=surface0, frame_shapes=frames, frame_slope=slope
        )
        clip.add_time("deform", t0)
        meshes, sources = [], []
        for s in range(S):
            sampled = first_meshes[s] if surface0 is not None else None
            mesh, source = self._select_frame0(clip, z, s, zd[s], frames[s], slope, method, sampled)
            meshes.append(mesh)
            sources.append(source)
        return meshes, zd, sources

    def _select_frame0(
        self,
        clip: _Clip,
        z: torch.Tensor,
        s: int,
        zd: torch.Tensor,
        frames: torch.Tensor,
        slope: float,
        method: str,
        sampled: trimesh.Trimesh | None,
    ) -> tuple[trimesh.Trimesh, str]:
        """Sample ``s``'s fused frame-0 surface or its own shape sample, whichever is more consistent
        with the window (:func:`consistency`)."""
        import torch

        from latent4d.motion.pipeline import extract_mesh, largest_component

        pipe = self.pipe
        t0 = time.perf_counter()
        zs = torch.cat([z[s : s + 1].to(frames), frames])
        fused = largest_component(
            extract_mesh(pipe.fused_occupancy_fn(zs, zd), self.cfg.resolution, pipe.bounds, method)
        )
        if sampled is None:
            sampled = pipe.mesh(z[s], self.cfg.resolution, method)
        clip.add_time("mesh", t0)
        t0 = time.perf_counter()
        obs = clip.obs[: min(clip.W, len(clip.obs))]
        scores = [
            consistency(pipe, m, zd, obs, frames, slope, rng=clip.rng) if len(m.faces) else math.inf
            for m in (fused, sampled)
        ]
        clip.add_time("select", t0)
        if not np.isfinite(min(scores)):
            raise InputError(
                f"sample {s}: no surface in frame 0 (neither the fused occupancy nor the sampled shape)"
            )
        pick = int(np.argmin(scores))
        return (fused, sampled)[pick], ("fused", "sample")[pick]

    def _track(
        self, clip: _Clip, meshes, z: torch.Tensor, first: torch.Tensor | None = None
    ) -> list[np.ndarray]:
        """Frame-0 meshes (one per sample) carried through the observed frames, window by window;
        returns per-sample vertex trajectories (T, V, 3). ``first``: deformation latents of the first
        window already sampled (S, W-1, M, C)."""
        from latent4d.geometry.sampling import sample_surface

        cfg, pipe, guidance, obs = self.cfg, self.pipe, self.deform_guidance, clip.obs
        T = len(obs)
        verts = [np.zeros((T, len(m.vertices), 3), np.float32) for m in meshes]
        for s, m in enumerate(meshes):
            verts[s][0] = m.vertices
        for start, stop in windows(T, clip.W):  # window frames start..stop-1
            if start > 0:  # chain: shape latents of the tracked mesh at the window's first frame
                t0 = time.perf_counter()
                pts = [
                    sample_surface(verts[s][start], m.faces, cfg.n_shape_points, clip.rng)[0]
                    for s, m in enumerate(meshes)
                ]
                z = pipe.encode_shape(np.stack(pts))
                clip.add_time("shape", t0)
            t0 = time.perf_counter()
            if start == 0 and first is not None:
                zd = first
            else:
                surface0 = None
                if guidance is not None and guidance.enabled and not clip.corresponding:
                    surface0 = np.stack(
                        [
                            sample_surface(verts[s][start], m.faces, guidance.n_surface, clip.rng)[0]
                            for s, m in enumerate(meshes)
                        ]
                    )
                zd = self._sample_deformations(clip, z, obs[start:stop], surface0=surface0)
            clip.add_time("deform", t0)
            t0 = time.perf_counter()
            for s in range(len(meshes)):
                verts[s][start + 1 : stop] = pipe.deform(zd[s], verts[s][start])
            clip.add_time("decode", t0)
        return verts

    # -- ablation (a) ------------------------------------------------------------------------------
    def reconstruct_per_frame(self, observations) -> tuple[Reconstruction, list[trimesh.Trimesh]]:
        """Baseline without a temporal model: shape diffusion on every frame independently.

        Returns a :class:`Reconstruction` whose vertices follow the frame-0 mesh by nearest-surface-point
        chaining from frame to frame (the only correspondence a per-frame method has), and the
        per-frame meshes.
        """
        import torch

        from latent4d.geometry.sdf import MeshSDF
        from latent4d.motion.observe import check_sequence, resample_frames

        cfg, pipe = self.cfg, self.pipe
        frames = check_sequence(observations, "observations")
        rng = np.random.default_rng(cfg.seed)
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        corresponding = cfg.mode == "sparse" and len({len(f) for f in frames}) == 1
        if corresponding:
            n = len(frames[0])
            obs = np.stack(frames)[:, rng.choice(n, cfg.n_obs, replace=n < cfg.n_obs)]
        else:
            obs = resample_frames(frames, cfg.n_obs, rng)
        meshes = []
        for t in range(len(frames)):
            z = self._sample_shapes(obs[t], 1, corresponding, gen)
            m = pipe.mesh(z[0], cfg.resolution, cfg.mesh)
            if len(m.faces) == 0:
                raise InputError(f"per-frame reconstruction: no surface found in frame {t}")
            meshes.append(m)
        verts = np.zeros((len(frames), len(meshes[0].vertices), 3), np.float32)
        verts[0] = meshes[0].vertices
        for t in range(1, len(frames)):
            verts[t] = MeshSDF(meshes[t]).closest_points(verts[t - 1])["points"]
        return Reconstruction(verts, np.asarray(meshes[0].faces), obs), meshes


def consistency(
    pipe: MotionPipeline,
    mesh: trimesh.Trimesh,
    deform_latents: torch.Tensor,
    obs,
    frame_shapes: torch.Tensor,
    slope: float,
    n: int = 2048,
    scale: float = 0.01,
    rng: np.random.Generator | None = None,
) -> float:
    """How well a frame-0 mesh, carried by deformation latents (T-1, M, C), agrees with a window's
    observations (T, N, 3) and with shape latents sampled on frames 1..T-1 (T-1, Ms, Cs): the mean
    over frames of the pseudo-Huber (scale ``scale``) distance from each observed point to the
    nearest carried vertex, plus that of ``n`` carried vertices to the frame's sampled surface
    (occupancy logit / ``slope``). Lower is better; squared normalised units."""
    import torch
    from scipy.spatial import cKDTree

    from latent4d.motion.guidance import pseudo_huber

    rng = rng or np.random.default_rng(0)
    obs = np.asarray(obs, np.float32)
    v0 = np.asarray(mesh.vertices, np.float32)
    with torch.no_grad():
        moved = np.concatenate([v0[None], pipe.deform(deform_latents, v0)])  # (T, V, 3)
        obs_d = pipe.as_tensor(
            np.stack([cKDTree(moved[t]).query(obs[t])[0] for t in range(len(obs))])
        )  # (T, N)
        sae = pipe.need("shape_ae")
        idx = rng.choice(len(v0), min(n, len(v0)), replace=False)
        tokens = sae.decode(frame_shapes.to(pipe.device))
        d = sae.query(tokens, pipe.as_tensor(moved[1:, idx])) / slope
    return float(pseudo_huber(obs_d, scale).mean() + pseudo_huber(d, scale).mean())
