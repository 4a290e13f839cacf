"""Inference for the motion family: encode / decode, mesh extraction, diffusion sampling, autoencoder tracking.

* :func:`extract_mesh` - occupancy logits -> mesh, on a dense grid or with the shared octree
  (:func:`latent4d.geometry.octree.octree_mesh`) and a keep rule for logits (:func:`occupancy_keep`),
  marching cubes at logit 0;
* :class:`MotionPipeline` - loads exported networks (run directories or ``save_pretrained``
  folders) and runs

  - :meth:`MotionPipeline.autoencode`: dense corresponding clouds -> frame-0 mesh (shape AE) ->
    its vertices carried through every frame by the deformation AE (fixed topology);
  - :meth:`MotionPipeline.sample_shape` / :meth:`MotionPipeline.sample_deformation`: the diffusion
    models' samples (optionally guided by observations), the building blocks of the reconstruction
    solver (:class:`latent4d.motion.reconstruct.MotionSolver`).

Everything is in the normalised frame [-0.5, 0.5]^3 unless ``loc`` / ``scale`` are given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import trimesh

from latent4d.errors import ConfigError, InputError
from latent4d.geometry.meshing import dense_mesh
from latent4d.geometry.octree import octree_mesh
from latent4d.motion.deform import DeformVecSetAE
from latent4d.motion.denoiser import DeformDenoiser, ShapeDenoiser
from latent4d.motion.types import Reconstruction
from latent4d.motion.vecset import ShapeVecSetAE
from latent4d.pipeline import LatentPipeline

# ----------------------------------------------------------------------------------------------
# mesh extraction


def occupancy_keep(slope: float, safety: float = 2.5):
    """Octree keep rule for occupancy logits: a logit grows roughly like ``slope`` x distance near the
    surface, so a cell of side ``s`` may contain the zero level when ``|logit| <= safety * slope *
    sqrt(3)/2 * s``."""

    def keep(values: torch.Tensor, side: float) -> torch.Tensor:
        return values.abs() <= safety * slope * 0.5 * math.sqrt(3.0) * side

    return keep


def estimate_logit_slope(
    fn: Callable[[torch.Tensor], torch.Tensor], bounds: float = 0.55, resolution: int = 24, band: float = 3.0
) -> float:
    """Median |grad logit| (per unit length) at the grid points of a coarse grid whose |logit| < ``band``
    (autograd); falls back to the largest value seen when no point is near the surface."""
    from latent4d.geometry.meshing import grid_centers

    pts = grid_centers(resolution, bounds)
    with torch.no_grad():
        v = fn(pts)
    sel = pts[v.abs() < band]
    if len(sel) < 8:
        sel = pts[v.abs().argsort()[:64]]
    sel = sel.clone().requires_grad_(True)
    with torch.enable_grad():
        out = fn(sel)
        if not out.requires_grad:  # not differentiable (e.g. a constant): any band will do
            return 1.0
        (g,) = torch.autograd.grad(out.sum(), sel)
    return float(g.norm(dim=-1).median().clamp_min(1.0))


def extract_mesh(
    fn: Callable[[torch.Tensor], torch.Tensor],
    resolution: int = 128,
    bounds: float = 0.55,
    method: str = "octree",
    start_level: int = 4,
    safety: float = 2.5,
) -> trimesh.Trimesh:
    """Zero level set of occupancy logits ``fn`` ((N, 3) -> (N,), inside positive) as a mesh.

    ``method="dense"`` evaluates a ``resolution^3`` grid; ``"octree"`` refines only cells that may
    contain the surface (resolution rounded to a power of two); ``"mise"`` refines cells whose corners
    change sign (:mod:`latent4d.geometry.mise`; resolution rounded to a power of two, start grid 16^3).
    Empty mesh if nothing is inside.
    """
    if method == "dense":
        return dense_mesh(fn, resolution, bounds, level=0.0, inside="positive")
    if method == "mise":
        from latent4d.geometry.mise import mise_mesh

        res = 2 ** max(start_level, int(round(math.log2(resolution))))
        return mise_mesh(fn, res, bounds, start_resolution=min(16, res), level=0.0, inside="positive")[0]
    if method != "octree":
        raise ConfigError(f"mesh extraction method must be 'octree', 'mise' or 'dense', got {method!r}")
    level = max(start_level, int(round(math.log2(resolution))))
    keep = occupancy_keep(estimate_logit_slope(fn, bounds), safety)
    try:
        mesh, _ = octree_mesh(
            fn, level=level, start_level=start_level, bounds=bounds, keep=keep, inside="positive"
        )
    except ValueError as e:  # scikit-image: the band never crosses the level set -> no surface
        if "within volume data range" not in str(e):
            raise
        return trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64))
    return mesh


def largest_component(mesh: trimesh.Trimesh, min_fraction: float = 0.02) -> trimesh.Trimesh:
    """Drop floating fragments smaller than ``min_fraction`` of the faces (keeps vertex order stable)."""
    if len(mesh.faces) == 0:
        return mesh
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    counts = np.bincount(labels)
    keep_faces = np.isin(labels, np.nonzero(counts >= min_fraction * len(mesh.faces))[0])
    if keep_faces.all():
        return mesh
    m = trimesh.Trimesh(mesh.vertices, mesh.faces[keep_faces], process=False)
    m.remove_unreferenced_vertices()
    return m


# ----------------------------------------------------------------------------------------------
# the pipeline


class MotionPipeline(LatentPipeline):
    """Shape / deformation autoencoders (+ optional diffusion denoisers) for inference.

    Components (:class:`latent4d.pipeline.LatentPipeline`): ``shape_ae``, ``deform_ae``,
    ``shape_denoiser``, ``deform_denoiser``, each optional. ``from_pretrained(folder)`` loads a
    folder written by :meth:`save_pretrained` or one run directory (a diffusion run also holds the
    autoencoders it was trained on); :meth:`from_runs` combines the runs of several experiments.
    Denoisers load from a run's EMA copy (``models/denoiser_ema``) by default (:attr:`use_ema`).
    """

    family = "motion"
    component_classes = {
        "shape_ae": ShapeVecSetAE,
        "deform_ae": DeformVecSetAE,
        "shape_denoiser": ShapeDenoiser,
        "deform_denoiser": DeformDenoiser,
    }
    optional = ("shape_ae", "deform_ae", "shape_denoiser", "deform_denoiser")
    #: load a denoiser's EMA copy (``<run>/models/denoiser_ema``) when its run has one; ``ema=False``
    #: in :meth:`from_runs` / :meth:`load_from` (or this set to False) loads the raw weights
    use_ema: ClassVar[bool] = True
    ema_components = ("shape_denoiser", "deform_denoiser")
    #: the name each component has in the run that trains it (``<run>/models/<name>``)
    run_names = {
        "shape_ae": "ae",
        "deform_ae": "ae",
        "shape_denoiser": "denoiser",
        "deform_denoiser": "denoiser",
    }

    def __init__(
        self,
        shape_ae: ShapeVecSetAE | None = None,
        deform_ae: DeformVecSetAE | None = None,
        shape_denoiser: ShapeDenoiser | None = None,
        deform_denoiser: DeformDenoiser | None = None,
        bounds: float = 0.55,
        device: str | torch.device | None = None,
    ):
        self.register_modules(
            shape_ae=shape_ae,
            deform_ae=deform_ae,
            shape_denoiser=shape_denoiser,
            deform_denoiser=deform_denoiser,
        )
        for net in self.components.values():
            net.eval()
        self.bounds = bounds
        if device is not None:
            self.to(device)

    @classmethod
    def component_folder(
        cls, run_or_folder: str | Path, name: str, run_name: str | None = None, ema: bool | None = None
    ) -> Path | None:
        """Folder of component ``name``: ``<folder>/<name>`` (a saved pipeline, or a diffusion run's
        autoencoders) or ``<run>/models/<run name>`` (``ae`` / ``denoiser`` in the run that trains it),
        checked to hold the component's class; None when absent (every component is optional).
        A denoiser comes from the run's EMA copy ``models/denoiser_ema`` when there is one, unless
        ``ema`` (default :attr:`use_ema`) is False."""
        from latent4d.ema import ema_folder
        from latent4d.runs import has_network, network_folder

        class_name = cls.component_classes[name].__name__
        names = (name, run_name or cls.run_names[name])
        if name in cls.ema_components and (cls.use_ema if ema is None else ema):
            folder = ema_folder(run_or_folder, names[1], class_name, cls.family)
            if folder is not None:
                return folder
        for n in names:
            if has_network(run_or_folder, n, class_name):
                return network_folder(run_or_folder, n, class_name, cls.family)
        return None

    @classmethod
    def load_from(
        cls, path: str | Path, name: str, run_name: str | None = None, ema: bool | None = None
    ) -> Any:
        """Component ``name`` from ``path`` (see :meth:`component_folder`; ``ema``: a denoiser's EMA
        copy or raw weights), loaded through :func:`latent4d.trust.load_network`; a
        :class:`ConfigError` naming the path when it is not there."""
        from latent4d.pipeline import load_component
        from latent4d.runs import network_folder

        comp_cls = cls.component_classes[name]
        folder = cls.component_folder(path, name, run_name, ema)
        if folder is None:  # the error names the run layout expected (and a network of another class)
            folder = network_folder(path, run_name or cls.run_names[name], comp_cls.__name__, cls.family)
        return load_component(comp_cls, folder, cls.limits.get(name))

    @classmethod
    def from_runs(
        cls,
        shape_ae=None,
        deform_ae=None,
        shape_diffusion=None,
        deform_diffusion=None,
        device="cpu",
        bounds: float = 0.55,
        ema: bool | None = None,
    ) -> MotionPipeline:
        """Load networks from the runs of several experiments (run directories or exported folders).
        A diffusion run also holds the autoencoders it was trained on (``models/shape_ae``,
        ``models/deform_ae``), used when no autoencoder run is given. The denoisers are the runs'
        EMA copies (``models/denoiser_ema``) where they have one, unless ``ema=False`` (default:
        :attr:`use_ema`)."""
        sae = cls.load_from(shape_ae, "shape_ae") if shape_ae else None
        dae = cls.load_from(deform_ae, "deform_ae") if deform_ae else None
        sden = dden = None
        if shape_diffusion:
            sden = cls.load_from(shape_diffusion, "shape_denoiser", ema=ema)
            sae = sae or cls.load_from(shape_diffusion, "shape_ae", "shape_ae")
        if deform_diffusion:
            dden = cls.load_from(deform_diffusion, "deform_denoiser", ema=ema)
            dae = dae or cls.load_from(deform_diffusion, "deform_ae", "deform_ae")
            sae = sae or cls.load_from(deform_diffusion, "shape_ae", "shape_ae")
        return cls(sae, dae, sden, dden, bounds, device)

    def need(self, what: str):
        net = getattr(self, what)
        if net is None:
            raise ConfigError(
                f"this pipeline has no {what.replace('_', ' ')} (load it with MotionPipeline.from_runs)"
            )
        return net

    def as_tensor(self, a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, np.float32), device=self.device)

    # -- shape ---------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_shape(self, points) -> torch.Tensor:
        """Posterior mean latents (B, M, C) of clouds (B, N, 3) or (N, 3)."""
        p = self.as_tensor(points)
        p = p[None] if p.dim() == 2 else p
        return self.need("shape_ae").encode(p, sample=False).z

    def occupancy_fn(self, z: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """xyz (N, 3) -> logits (N,) of one latent set z (M, C) or (1, M, C)."""
        ae = self.need("shape_ae")
        z = z[None] if z.dim() == 2 else z
        with torch.no_grad():
            tokens = ae.decode(z.to(self.device))

        def fn(xyz: torch.Tensor) -> torch.Tensor:
            return ae.query(tokens, xyz.to(self.device)[None], chunk=32768)[0]

        return fn

    @torch.no_grad()
    def occupancy(self, z: torch.Tensor, points) -> np.ndarray:
        """Occupancy logits (N,) of latent set z at points (N, 3)."""
        return self.occupancy_fn(z)(self.as_tensor(points)).cpu().numpy()

    def mesh(
        self, z: torch.Tensor, resolution: int = 128, method: str = "octree", clean: bool = True
    ) -> trimesh.Trimesh:
        """Mesh of one latent set (zero level of the logits)."""
        m = extract_mesh(self.occupancy_fn(z), resolution, self.bounds, method)
        return largest_component(m) if clean else m

    # -- deformation ---------------------------------------------------------------------------
    @torch.no_grad()
    def encode_deformation(self, source, targets) -> torch.Tensor:
        """Deformation latents (K, M, C) from a source cloud (N, 3) to K corresponding targets (K, N, 3)."""
        tg = self.as_tensor(targets)
        src = self.as_tensor(source)[None].expand(tg.shape[0], -1, -1)
        return self.need("deform_ae").encode(src, tg, sample=False).z

    @torch.no_grad()
    def deform(self, z: torch.Tensor, points, chunk: int = 32768) -> np.ndarray:
        """Positions (K, V, 3) of source points (V, 3) under K deformation latent sets z (K, M, C)."""
        ae = self.need("deform_ae")
        tokens = ae.decode(z.to(self.device))
        p = self.as_tensor(points)[None].expand(z.shape[0], -1, -1)
        return ae.query(tokens, p, chunk=chunk).cpu().numpy()

    # -- autoencoder reconstruction and tracking -----------------------------------------------
    @torch.no_grad()
    def autoencode(
        self,
        clouds,
        resolution: int = 128,
        method: str = "octree",
        n_points: int | None = None,
        seed: int = 0,
    ) -> Reconstruction:
        """Dense corresponding clouds (T, N, 3) -> mesh of frame 0 tracked through all frames.

        Each frame is resampled to ``n_points`` (default: all of frame 0's points) with the same
        indices in every frame (the clouds must correspond point by point).
        """
        import time

        from latent4d.motion.observe import check_sequence

        frames = check_sequence(clouds, "autoencode input")
        n = len(frames[0])
        if any(len(f) != n for f in frames):
            raise InputError(
                "autoencode: corresponding clouds need the same number of points in every frame "
                f"(got {[len(f) for f in frames]})"
            )
        arr = np.stack(frames)
        if n_points is not None and n_points != n:
            idx = np.random.default_rng(seed).choice(n, n_points, replace=n < n_points)
            arr = arr[:, idx]
        t0 = time.perf_counter()
        z = self.encode_shape(arr[0])
        mesh = self.mesh(z[0], resolution, method)
        t1 = time.perf_counter()
        if len(mesh.vertices) == 0:
            raise InputError("autoencode: the shape decoder found no surface in frame 0")
        zd = self.encode_deformation(arr[0], arr[1:])
        moved = self.deform(zd, mesh.vertices)
        verts = np.concatenate([np.asarray(mesh.vertices, np.float32)[None], moved.astype(np.float32)])
        t2 = time.perf_counter()
        return Reconstruction(verts, np.asarray(mesh.faces), arr, {"shape": t1 - t0, "track": t2 - t1})

    # -- diffusion -----------------------------------------------------------------------------
    def _sample(
        self, den, shape: tuple, steps: int, sampler: str, generator, edm, guide, **cond
    ) -> torch.Tensor:
        """EDM sampling of denoiser ``den`` (latents of ``shape``, conditioned on ``cond``), the guide's
        final fit when there is one, back to the autoencoder's latent units."""
        from latent4d.diffusion.edm import EDM

        x = (edm or EDM()).sample(den, shape, steps, sampler, generator, self.device, guide=guide, **cond)
        if guide is not None:
            x = guide.refine(x)
        return den.denormalize(x)

    @torch.no_grad()
    def sample_shape(
        self,
        obs,
        num_samples: int = 1,
        steps: int = 18,
        sampler: str = "dpmsolver",
        corresponding: bool = True,
        generator: torch.Generator | None = None,
        edm=None,
        guidance=None,
    ) -> torch.Tensor:
        """Shape latents (S, M, C) of frame 0 from its observed cloud (N, 3) (S = ``num_samples``).

        ``guidance``: a :class:`~latent4d.motion.guidance.GuidanceConfig` pulling every solver step
        towards surfaces through the observed points (None or weight 0: plain sampling).
        """
        from latent4d.motion.guidance import ShapeObservationGuide

        den = self.need("shape_denoiser")
        o = self.as_tensor(obs)[None].expand(num_samples, -1, -1)
        corr = torch.full((num_samples,), bool(corresponding), device=self.device)
        shape = (num_samples, den.config.num_latents, den.config.latent_channels)
        guide = None
        if guidance is not None and guidance.enabled:
            guide = ShapeObservationGuide(self.need("shape_ae"), den, o, guidance)
        return self._sample(den, shape, steps, sampler, generator, edm, guide, obs=o, corresponding=corr)

    @torch.no_grad()
    def sample_deformation(
        self,
        shape_latents: torch.Tensor,
        obs,
        steps: int = 18,
        sampler: str = "dpmsolver",
        corresponding: bool = True,
        generator: torch.Generator | None = None,
        edm=None,
        guidance=None,
        surface0=None,
        frame_shapes: torch.Tensor | None = None,
        frame_slope: float | None = None,
    ) -> torch.Tensor:
        """Deformation latents (S, T-1, M, C) for frames 1..T-1 from shape latents (S, Ms, Cs) of frame 0
        and the observed window (T, N, 3).

        ``guidance``: a :class:`~latent4d.motion.guidance.GuidanceConfig` to steer every solver step
        towards the observations (None or weight 0: plain sampling); partial (non-corresponding)
        guidance needs ``surface0`` (S, P, 3), points on each sample's frame-0 surface.
        ``frame_shapes``: shape latents (S, T-1, Ms, Cs) sampled on frames 1..T-1; with
        ``guidance.shape_weight > 0`` the carried ``surface0`` is also pulled onto them;
        ``frame_slope``: the logit slope that turns their logits into distances (None: estimated on
        the first frame-0 sample, :func:`estimate_logit_slope`).
        """
        from latent4d.motion.guidance import DeformObservationGuide

        den = self.need("deform_denoiser")
        S = shape_latents.shape[0]
        o = self.as_tensor(obs)[None].expand(S, -1, -1, -1)
        corr = torch.full((S,), bool(corresponding), device=self.device)
        shape = (S, o.shape[1] - 1, den.config.num_latents, den.config.latent_channels)
        guide = None
        if guidance is not None and guidance.enabled:
            fs = None
            if frame_shapes is not None and guidance.shape_weight > 0:
                fs = self._frame_shape_tokens(shape_latents, frame_shapes, frame_slope)
            guide = DeformObservationGuide(
                self.need("deform_ae"),
                den,
                o,
                corresponding,
                None if surface0 is None else self.as_tensor(surface0),
                guidance,
                fs,
            )
        return self._sample(
            den,
            shape,
            steps,
            sampler,
            generator,
            edm,
            guide,
            shape_latents=shape_latents.to(self.device),
            obs=o,
            corresponding=corr,
        )

    def _frame_shape_tokens(
        self, shape_latents: torch.Tensor, frame_shapes: torch.Tensor, slope: float | None = None
    ) -> tuple:
        """(shape AE, decoded tokens (S * (T-1), Nt, D), logit slope) for the frame-shape guidance term;
        unless given, the slope (median |grad logit| near the surface) is estimated on the first
        frame-0 sample."""
        sae = self.need("shape_ae")
        S, T1 = frame_shapes.shape[:2]
        if len(shape_latents) != S:
            raise InputError(f"frame shapes for {S} samples, shape latents for {len(shape_latents)}")
        with torch.no_grad():
            tokens = sae.decode(frame_shapes.reshape(S * T1, *frame_shapes.shape[2:]).to(self.device))
        if slope is None:
            slope = estimate_logit_slope(self.occupancy_fn(shape_latents[0]), self.bounds)
        return sae, tokens, slope

    @property
    def window(self) -> int:
        """Frames per deformation-diffusion window (the model's T)."""
        return int(self.need("deform_denoiser").config.num_frames)

    def fused_occupancy_fn(
        self, shape_latents: torch.Tensor, deform_latents: torch.Tensor
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """xyz (N, 3) at frame 0 -> mean over frames t of logit_t(phi_t(xyz)) (N,): per-frame shape latents
        (T, M, C) (frame 0 first), deformation latents (T-1, Md, Cd) of frames 1..T-1 (phi_0 = identity)."""
        sae, dae = self.need("shape_ae"), self.need("deform_ae")
        T = len(shape_latents)
        if len(deform_latents) != T - 1:
            raise InputError(
                f"fusion: {len(deform_latents)} deformation latent sets for {T} frames (need {T - 1})"
            )
        with torch.no_grad():
            stoks = sae.decode(shape_latents.to(self.device))
            dtoks = dae.decode(deform_latents.to(self.device)) if T > 1 else None

        def fn(xyz: torch.Tensor) -> torch.Tensor:
            x = xyz.to(self.device)[None]
            out = sae.query(stoks[:1], x)[0]
            for t in range(1, T):
                out = out + sae.query(stoks[t : t + 1], dae.query(dtoks[t - 1 : t], x))[0]
            return out / T

        return fn
