"""Inference for the motion family: encode / decode, mesh extraction, tracking, 4D reconstruction.

* :func:`extract_mesh` - occupancy logits -> mesh, on a dense grid or with the shared octree
  (:func:`latent4d.geometry.octree.octree_mesh`) and a keep rule for logits (:func:`occupancy_keep`),
  marching cubes at logit 0;
* :class:`MotionPipeline` - loads exported networks (run directories or ``save_pretrained``
  folders) and runs

  - :meth:`MotionPipeline.autoencode`: dense corresponding clouds -> frame-0 mesh (shape AE) ->
    its vertices carried through every frame by the deformation AE (fixed topology);
  - :meth:`MotionPipeline.reconstruct`: sparse / partial / noisy observations -> shape diffusion
    (frame 0) -> mesh -> deformation diffusion (frames 1..T-1) -> tracked vertices; clips longer
    than the model's window are processed in overlapping windows chained on their last frame.

Everything is in the normalised frame [-0.5, 0.5]^3 unless ``loc`` / ``scale`` are given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import trimesh

from latent4d.errors import ConfigError, InputError
from latent4d.geometry.meshing import dense_mesh
from latent4d.geometry.octree import octree_mesh
from latent4d.geometry.sampling import sample_surface
from latent4d.motion.deform import DeformVecSetAE
from latent4d.motion.vecset import ShapeVecSetAE

# ----------------------------------------------------------------------------------------------
# loading


def network_folder(path: str | Path, name: str) -> Path:
    """``<run>/models/<name>`` when ``path`` is a run directory, else ``path`` itself (a
    ``save_pretrained`` folder); :class:`ConfigError` naming the path when neither holds a config.json."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"no exported '{name}' network in '{p}': it does not exist (expected a motion run "
                          "directory or a save_pretrained folder)")
    for cand in (p / "models" / name, p / name, p):
        if (cand / "config.json").is_file():
            return cand
    raise ConfigError(f"no exported '{name}' network in '{p}' (expected {p}/models/{name}/config.json; "
                      "runs export their networks when training finishes, or with `latent4d export run=...`)")


def load_network(cls, path: str | Path, name: str, device="cpu"):
    """``cls.from_pretrained`` of :func:`network_folder`, in eval mode, through
    :func:`latent4d.trust.load_network` (safetensors only; an empty / truncated weights file, a
    garbage config.json or a network of another class is a clear :class:`InputError`)."""
    from latent4d.trust import load_network as load_checked

    return load_checked(cls, network_folder(path, name)).to(device).eval()


# ----------------------------------------------------------------------------------------------
# mesh extraction


def occupancy_keep(slope: float, safety: float = 2.5):
    """Octree keep rule for occupancy logits: a logit grows roughly like ``slope`` x distance near the
    surface, so a cell of side ``s`` may contain the zero level when ``|logit| <= safety * slope *
    sqrt(3)/2 * s``."""
    def keep(values: torch.Tensor, side: float) -> torch.Tensor:
        return values.abs() <= safety * slope * 0.5 * math.sqrt(3.0) * side
    return keep


def estimate_logit_slope(fn: Callable[[torch.Tensor], torch.Tensor], bounds: float = 0.55, resolution: int = 24,
                         band: float = 3.0) -> float:
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


def extract_mesh(fn: Callable[[torch.Tensor], torch.Tensor], resolution: int = 128, bounds: float = 0.55,
                 method: str = "octree", start_level: int = 4, safety: float = 2.5) -> trimesh.Trimesh:
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
        mesh, _ = octree_mesh(fn, level=level, start_level=start_level, bounds=bounds, keep=keep, inside="positive")
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
# results


@dataclass
class Reconstruction:
    """A reconstructed / tracked sequence in the normalised frame.

    ``vertices`` (T, V, 3) float32 trajectories of the frame-0 mesh vertices, ``faces`` (F, 3)
    shared by every frame, ``observations`` (T, N, 3) the inputs (after resampling), ``timings``
    seconds per stage, ``sample`` index when several samples are drawn, ``frame0`` where the tracked
    frame-0 surface came from (``sample``: the shape diffusion's sample or given shape latents;
    ``fused``: temporal occupancy fusion; ``template``: a given mesh; ``accumulated``: canonical
    accumulation).
    """

    vertices: np.ndarray
    faces: np.ndarray
    observations: np.ndarray | None = None
    timings: dict = field(default_factory=dict)
    sample: int = 0
    frame0: str = "sample"

    def mesh(self, t: int) -> trimesh.Trimesh:
        return trimesh.Trimesh(self.vertices[t], self.faces, process=False)

    @property
    def num_frames(self) -> int:
        return int(self.vertices.shape[0])


def accumulate_observations(vertices: np.ndarray, obs: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Observed points of every frame carried back to frame 0 through a tracked mesh: a point seen at
    frame t follows its nearest tracked vertex (frame-0 position + the point's offset from it).

    vertices (T, V, 3) tracked trajectories, obs (T, N, 3) observations -> (n, 3) frame-0 cloud
    (a random subset of the T x N carried points).
    """
    from scipy.spatial import cKDTree

    out = []
    for t in range(len(obs)):
        _, i = cKDTree(vertices[t]).query(obs[t])
        out.append(vertices[0][i] + (obs[t] - vertices[t][i]))
    pts = np.concatenate(out).astype(np.float32)
    return pts[rng.choice(len(pts), n, replace=len(pts) < n)]


# ----------------------------------------------------------------------------------------------
# the pipeline


class MotionPipeline:
    """Shape / deformation autoencoders (+ optional diffusion denoisers) for inference.

    Build with :meth:`from_runs` (run directories or exported folders) or from network objects.
    """

    def __init__(self, shape_ae: ShapeVecSetAE | None = None, deform_ae: DeformVecSetAE | None = None,
                 shape_denoiser=None, deform_denoiser=None, bounds: float = 0.55, device="cpu"):
        self.shape_ae, self.deform_ae = shape_ae, deform_ae
        self.shape_denoiser, self.deform_denoiser = shape_denoiser, deform_denoiser
        self.bounds, self.device = bounds, torch.device(device)
        for net in (shape_ae, deform_ae, shape_denoiser, deform_denoiser):
            if net is not None:
                net.to(self.device).eval()

    @classmethod
    def from_runs(cls, shape_ae=None, deform_ae=None, shape_diffusion=None, deform_diffusion=None,
                  device="cpu", bounds: float = 0.55) -> MotionPipeline:
        """Load networks. A diffusion run also holds the autoencoder it was trained on
        (``models/shape_ae``, ``models/deform_ae``), used when no autoencoder path is given."""
        from latent4d.motion.denoiser import DeformDenoiser, ShapeDenoiser

        sae = load_network(ShapeVecSetAE, shape_ae, "ae", device) if shape_ae else None
        dae = load_network(DeformVecSetAE, deform_ae, "ae", device) if deform_ae else None
        sden = dden = None
        if shape_diffusion:
            sden = load_network(ShapeDenoiser, shape_diffusion, "denoiser", device)
            sae = sae or load_network(ShapeVecSetAE, shape_diffusion, "shape_ae", device)
        if deform_diffusion:
            dden = load_network(DeformDenoiser, deform_diffusion, "denoiser", device)
            dae = dae or load_network(DeformVecSetAE, deform_diffusion, "deform_ae", device)
            sae = sae or load_network(ShapeVecSetAE, deform_diffusion, "shape_ae", device)
        return cls(sae, dae, sden, dden, bounds, device)

    def _need(self, what: str):
        net = getattr(self, what)
        if net is None:
            raise ConfigError(f"this pipeline has no {what.replace('_', ' ')} (load it with MotionPipeline.from_runs)")
        return net

    def _t(self, a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, np.float32), device=self.device)

    # -- shape ---------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_shape(self, points) -> torch.Tensor:
        """Posterior mean latents (B, M, C) of clouds (B, N, 3) or (N, 3)."""
        p = self._t(points)
        p = p[None] if p.dim() == 2 else p
        return self._need("shape_ae").encode(p, sample=False).z

    def occupancy_fn(self, z: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """xyz (N, 3) -> logits (N,) of one latent set z (M, C) or (1, M, C)."""
        ae = self._need("shape_ae")
        z = z[None] if z.dim() == 2 else z
        with torch.no_grad():
            tokens = ae.decode(z.to(self.device))

        def fn(xyz: torch.Tensor) -> torch.Tensor:
            return ae.query(tokens, xyz.to(self.device)[None], chunk=32768)[0]
        return fn

    @torch.no_grad()
    def occupancy(self, z: torch.Tensor, points) -> np.ndarray:
        """Occupancy logits (N,) of latent set z at points (N, 3)."""
        return self.occupancy_fn(z)(self._t(points)).cpu().numpy()

    def mesh(self, z: torch.Tensor, resolution: int = 128, method: str = "octree",
             clean: bool = True) -> trimesh.Trimesh:
        """Mesh of one latent set (zero level of the logits)."""
        m = extract_mesh(self.occupancy_fn(z), resolution, self.bounds, method)
        return largest_component(m) if clean else m

    # -- deformation ---------------------------------------------------------------------------
    @torch.no_grad()
    def encode_deformation(self, source, targets) -> torch.Tensor:
        """Deformation latents (K, M, C) from a source cloud (N, 3) to K corresponding targets (K, N, 3)."""
        tg = self._t(targets)
        src = self._t(source)[None].expand(tg.shape[0], -1, -1)
        return self._need("deform_ae").encode(src, tg, sample=False).z

    @torch.no_grad()
    def deform(self, z: torch.Tensor, points, chunk: int = 32768) -> np.ndarray:
        """Positions (K, V, 3) of source points (V, 3) under K deformation latent sets z (K, M, C)."""
        ae = self._need("deform_ae")
        tokens = ae.decode(z.to(self.device))
        p = self._t(points)[None].expand(z.shape[0], -1, -1)
        return ae.query(tokens, p, chunk=chunk).cpu().numpy()

    # -- autoencoder reconstruction and tracking -----------------------------------------------
    @torch.no_grad()
    def autoencode(self, clouds, resolution: int = 128, method: str = "octree", n_points: int | None = None,
                   seed: int = 0) -> Reconstruction:
        """Dense corresponding clouds (T, N, 3) -> mesh of frame 0 tracked through all frames.

        Each frame is resampled to ``n_points`` (default: all of frame 0's points) with the same
        indices in every frame (the clouds must correspond point by point).
        """
        import time

        from latent4d.motion.observe import check_sequence

        frames = check_sequence(clouds, "autoencode input")
        n = len(frames[0])
        if any(len(f) != n for f in frames):
            raise InputError("autoencode: corresponding clouds need the same number of points in every frame "
                             f"(got {[len(f) for f in frames]})")
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
    def _edm(self, edm=None):
        from latent4d.diffusion.edm import EDM

        return edm or EDM()

    @torch.no_grad()
    def sample_shape(self, obs, num_samples: int = 1, steps: int = 18, sampler: str = "dpmsolver",
                     corresponding: bool = True, generator: torch.Generator | None = None, edm=None,
                     guidance=None) -> torch.Tensor:
        """Shape latents (S, M, C) of frame 0 from its observed cloud (N, 3) (S = ``num_samples``).

        ``guidance``: a :class:`~latent4d.motion.guidance.GuidanceConfig` pulling every solver step
        towards surfaces through the observed points (None or weight 0: plain sampling).
        """
        from latent4d.motion.guidance import ShapeObservationGuide

        den = self._need("shape_denoiser")
        o = self._t(obs)[None].expand(num_samples, -1, -1)
        corr = torch.full((num_samples,), bool(corresponding), device=self.device)
        shape = (num_samples, den.config.num_latents, den.config.latent_channels)
        guide = None
        if guidance is not None and guidance.enabled:
            guide = ShapeObservationGuide(self._need("shape_ae"), den, o, guidance)
        x = self._edm(edm).sample(den, shape, steps, sampler, generator, self.device, guide=guide,
                                  obs=o, corresponding=corr)
        if guide is not None:
            x = guide.refine(x)
        return den.denormalize(x)

    @torch.no_grad()
    def sample_deformation(self, shape_latents: torch.Tensor, obs, steps: int = 18, sampler: str = "dpmsolver",
                           corresponding: bool = True, generator: torch.Generator | None = None,
                           edm=None, guidance=None, surface0=None, frame_shapes: torch.Tensor | None = None,
                           frame_slope: float | None = None) -> torch.Tensor:
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

        den = self._need("deform_denoiser")
        S = shape_latents.shape[0]
        o = self._t(obs)[None].expand(S, -1, -1, -1)
        corr = torch.full((S,), bool(corresponding), device=self.device)
        shape = (S, o.shape[1] - 1, den.config.num_latents, den.config.latent_channels)
        guide = None
        if guidance is not None and guidance.enabled:
            fs = None
            if frame_shapes is not None and guidance.shape_weight > 0:
                fs = self._frame_shape_tokens(shape_latents, frame_shapes, frame_slope)
            guide = DeformObservationGuide(self._need("deform_ae"), den, o, corresponding,
                                           None if surface0 is None else self._t(surface0), guidance, fs)
        x = self._edm(edm).sample(den, shape, steps, sampler, generator, self.device, guide=guide,
                                  shape_latents=shape_latents.to(self.device),
                                  obs=o, corresponding=corr)
        if guide is not None:
            x = guide.refine(x)
        return den.denormalize(x)

    def _frame_shape_tokens(self, shape_latents: torch.Tensor, frame_shapes: torch.Tensor,
                            slope: float | None = None) -> tuple:
        """(shape AE, decoded tokens (S * (T-1), Nt, D), logit slope) for the frame-shape guidance term;
        unless given, the slope (median |grad logit| near the surface) is estimated on the first
        frame-0 sample."""
        sae = self._need("shape_ae")
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
        return int(self._need("deform_denoiser").config.num_frames)

    def reconstruct(self, observations, mode: str = "sparse", num_samples: int = 1, steps: int = 18,
                    sampler: str = "dpmsolver", resolution: int = 128, mesh_method: str = "octree",
                    n_obs: int = 300, seed: int = 0, window: int | None = None,
                    n_shape_points: int = 1024, shape_latents: torch.Tensor | None = None,
                    mesh0: trimesh.Trimesh | None = None, guidance=None, shape_guidance=None,
                    fuse: bool = False, accumulate: int = 0, n_accumulate: int = 2048) -> list[Reconstruction]:
        """Reconstruct and track a surface from observed clouds (normalised frame).

        Args:
            observations: (T, N, 3) array or a list of T (N_t, 3) arrays (resampled to ``n_obs``).
            mode: ``sparse`` (corresponding points: the same index is the same material point in
                every frame; needs equal counts, else falls back to ``partial``) or ``partial``.
            num_samples: independent samples (diffusion is probabilistic).
            window: frames per window (default and maximum: the model's T); longer clips are split
                into windows overlapping by one frame, each chained on the previous window's last frame.
            shape_latents: (S, M, C) frame-0 shape latents to use instead of sampling the shape
                diffusion (e.g. the shape AE's encoding of a known frame-0 shape).
            mesh0: a known frame-0 mesh (template) to track instead of extracting one; its shape
                latents are the shape AE's encoding of points sampled on it (unless given). A
                template is never re-estimated (``accumulate`` is ignored).
            guidance: :class:`~latent4d.motion.guidance.GuidanceConfig` of the observation guidance
                of the deformation sampling (None: the model's samples as they are).
            shape_guidance: the same for the frame-0 shape sampling.
            fuse: temporal occupancy fusion. The shape diffusion is also sampled on every other frame
                of the first window; the frame-0 surface becomes the zero level of the mean over
                frames t of logit_t(phi_t(x)), each frame's occupancy pulled back to frame 0 through
                the sampled deformation phi_t, so every frame's observation shapes the one tracked
                mesh (meshed with ``mesh_method="mise"`` if ``mesh_method`` is ``"octree"``: the mean of
                saturated logits defeats the octree's value-based keep rule). The per-frame shapes also
                guide the deformation sampling when ``guidance.shape_weight > 0``. Each sample then keeps
                whichever frame-0 surface, the fused one or its own shape sample, agrees better with the
                window (:meth:`consistency`: observations and per-frame shapes against the carried
                surface; ``Reconstruction.frame0`` says which): fusion pulls back every frame through
                the sampled deformation, so a deformation that goes wrong somewhere blurs the fused
                surface. Ignored with ``mesh0``.
            accumulate: rounds of canonical accumulation: the observations of every frame are carried
                back to frame 0 through the tracked mesh (each point follows its nearest tracked vertex),
                the frame-0 shape is sampled again from the accumulated cloud (``n_accumulate`` points,
                sparse mode, guided by ``shape_guidance``) and the new mesh is tracked again, so later
                frames can complete what a partial frame-0 view leaves out. Off by default: with the
                CPU-trained shape diffusion it did not raise frame-0 IoU on held-out partial clips
                (0.718 -> 0.700 over 6 clips; the carried points lie 0.004-0.009 from the true surface).

        Returns one :class:`Reconstruction` per sample: frame-0 mesh vertices tracked through all frames.
        """
        import time

        from latent4d.motion.observe import check_sequence, resample_frames

        if mode not in ("sparse", "partial"):
            raise ConfigError(f"observation mode must be 'sparse' or 'partial', got {mode!r}")
        if accumulate < 0:
            raise ConfigError(f"accumulate must be >= 0 rounds, got {accumulate}")
        frames = check_sequence(observations, "observations")
        rng = np.random.default_rng(seed)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        counts = {len(f) for f in frames}
        corresponding = mode == "sparse" and len(counts) == 1
        if corresponding:
            n = counts.pop()
            idx = rng.choice(n, n_obs, replace=n < n_obs) if n != n_obs else np.arange(n)
            obs = np.stack(frames)[:, idx]
        else:
            obs = resample_frames(frames, n_obs, rng)
        W = min(window or self.window, self.window)
        if W < 2:
            raise ConfigError(f"window must be >= 2 frames, got {W}")
        timings = {"shape": 0.0, "mesh": 0.0, "deform": 0.0, "decode": 0.0, "accumulate": 0.0}

        t0 = time.perf_counter()
        if mesh0 is not None and shape_latents is None:
            p0, _, _ = sample_surface(mesh0.vertices, mesh0.faces, n_shape_points, rng)
            shape_latents = self.encode_shape(p0)
        if shape_latents is None:
            z = self.sample_shape(obs[0], num_samples, steps, sampler, corresponding, gen, guidance=shape_guidance)
        else:
            z = shape_latents.to(self.device)
            z = z[None] if z.dim() == 2 else z
            if len(z) == 1 and num_samples > 1:
                z = z.expand(num_samples, -1, -1)
            num_samples = len(z)
        timings["shape"] += time.perf_counter() - t0
        track = dict(W=W, steps=steps, sampler=sampler, corresponding=corresponding, gen=gen, rng=rng,
                     guidance=guidance, n_shape_points=n_shape_points, timings=timings)
        if fuse and mesh0 is None:
            meshes, first, sources = self._fused_meshes(z, obs, resolution,
                                                        "mise" if mesh_method == "octree" else mesh_method,
                                                        shape_guidance, **track)
            verts = self._track(meshes, z, obs, first=first, **track)
        else:
            meshes = [mesh0 if mesh0 is not None else self._frame0_mesh(z[s], s, resolution, mesh_method, timings)
                      for s in range(num_samples)]
            sources = ["template" if mesh0 is not None else "sample"] * num_samples
            verts = self._track(meshes, z, obs, **track)
        for _ in range(accumulate if mesh0 is None else 0):
            t0 = time.perf_counter()
            zs = []
            for s in range(num_samples):
                cloud = accumulate_observations(verts[s], obs, n_accumulate, rng)
                zs.append(self.sample_shape(cloud, 1, steps, sampler, True, gen, guidance=shape_guidance)[0])
            z = torch.stack(zs)
            timings["accumulate"] += time.perf_counter() - t0
            meshes = [self._frame0_mesh(z[s], s, resolution, mesh_method, timings) for s in range(num_samples)]
            sources = ["accumulated"] * num_samples
            verts = self._track(meshes, z, obs, **track)
        return [Reconstruction(verts[s], np.asarray(m.faces), obs, dict(timings), sample=s, frame0=sources[s])
                for s, m in enumerate(meshes)]

    def _frame0_mesh(self, z: torch.Tensor, s: int, resolution: int, method: str, timings: dict) -> trimesh.Trimesh:
        import time

        t0 = time.perf_counter()
        m = self.mesh(z, resolution, method)
        timings["mesh"] += time.perf_counter() - t0
        if len(m.vertices) == 0:
            raise InputError(f"sample {s}: the shape decoder found no surface in frame 0")
        return m

    def fused_occupancy_fn(self, shape_latents: torch.Tensor, deform_latents: torch.Tensor
                           ) -> Callable[[torch.Tensor], torch.Tensor]:
        """xyz (N, 3) at frame 0 -> mean over frames t of logit_t(phi_t(xyz)) (N,): per-frame shape latents
        (T, M, C) (frame 0 first), deformation latents (T-1, Md, Cd) of frames 1..T-1 (phi_0 = identity)."""
        sae, dae = self._need("shape_ae"), self._need("deform_ae")
        T = len(shape_latents)
        if len(deform_latents) != T - 1:
            raise InputError(f"fusion: {len(deform_latents)} deformation latent sets for {T} frames (need {T - 1})")
        with torch.no_grad():
            stoks = sae.decode(shape_latents.to(self.device))
            dtoks = dae.decode(deform_latents.to(self.device)) if T > 1 else None

        def fn(xyz: torch.Tensor) -> torch.Tensor:
            x = xyz.to(self.device)[None]
            out = sae.query(stoks[:1], x)[0]
            for t in range(1, T):
                out = out + sae.query(stoks[t:t + 1], dae.query(dtoks[t - 1:t], x))[0]
            return out / T
        return fn

    def _fused_meshes(self, z, obs, resolution, method, shape_guidance, W, steps, sampler, corresponding, gen, rng,
                      guidance, n_shape_points, timings):
        """Temporal occupancy fusion over the first window (see :meth:`reconstruct`, ``fuse``):
        -> (frame-0 meshes, the window's deformation latents (S, W-1, M, C))."""
        import time

        S, W0 = len(z), min(W, len(obs))
        t0 = time.perf_counter()
        frames = torch.stack([torch.stack([self.sample_shape(obs[t], 1, steps, sampler, corresponding, gen,
                                                             guidance=shape_guidance)[0] for t in range(1, W0)])
                              for _ in range(S)])  # (S, W0-1, M, C)
        timings["shape"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        surface0 = first_meshes = None
        guided = guidance is not None and guidance.enabled
        if guided and (not corresponding or guidance.shape_weight > 0):  # a first surface for the guide
            first_meshes = [self._frame0_mesh(z[s], s, resolution, method, timings) for s in range(S)]
            surface0 = np.stack([sample_surface(m.vertices, m.faces, guidance.n_surface, rng)[0] for m in first_meshes])
        slope = estimate_logit_slope(self.occupancy_fn(z[0]), self.bounds)  # logits -> distances (guide, selection)
        zd = self.sample_deformation(z, obs[:W0], steps, sampler, corresponding, gen, guidance=guidance,
                                     surface0=surface0, frame_shapes=frames, frame_slope=slope)
        timings["deform"] += time.perf_counter() - t0
        meshes, sources = [], []
        for s in range(S):
            t0 = time.perf_counter()
            zs = torch.cat([z[s:s + 1].to(frames), frames[s]])
            fused = largest_component(extract_mesh(self.fused_occupancy_fn(zs, zd[s]), resolution,
                                                   self.bounds, method))
            sampled = first_meshes[s] if surface0 is not None else self.mesh(z[s], resolution, method)
            timings["mesh"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            scores = [self.consistency(m, zd[s], obs[:W0], frames[s], slope, rng=rng) if len(m.faces) else math.inf
                      for m in (fused, sampled)]
            timings["select"] = timings.get("select", 0.0) + time.perf_counter() - t0
            if not np.isfinite(min(scores)):
                raise InputError(f"sample {s}: no surface in frame 0 (neither the fused occupancy nor the sampled shape)")
            pick = int(np.argmin(scores))
            meshes.append((fused, sampled)[pick])
            sources.append(("fused", "sample")[pick])
        return meshes, zd, sources

    @torch.no_grad()
    def consistency(self, mesh: trimesh.Trimesh, deform_latents: torch.Tensor, obs, frame_shapes: torch.Tensor,
                    slope: float, n: int = 2048, scale: float = 0.01, rng: np.random.Generator | None = None) -> float:
        """How well a frame-0 mesh, carried by deformation latents (T-1, M, C), agrees with a window's
        observations (T, N, 3) and with shape latents sampled on frames 1..T-1 (T-1, Ms, Cs): the mean
        over frames of the pseudo-Huber (scale ``scale``) distance from each observed point to the
        nearest carried vertex, plus that of ``n`` carried vertices to the frame's sampled surface
        (occupancy logit / ``slope``). Lower is better; squared normalised units."""
        from scipy.spatial import cKDTree

        from latent4d.motion.guidance import pseudo_huber

        rng = rng or np.random.default_rng(0)
        obs = np.asarray(obs, np.float32)
        v0 = np.asarray(mesh.vertices, np.float32)
        moved = np.concatenate([v0[None], self.deform(deform_latents, v0)])  # (T, V, 3)
        obs_d = self._t(np.stack([cKDTree(moved[t]).query(obs[t])[0] for t in range(len(obs))]))  # (T, N)
        sae = self._need("shape_ae")
        idx = rng.choice(len(v0), min(n, len(v0)), replace=False)
        tokens = sae.decode(frame_shapes.to(self.device))
        d = sae.query(tokens, self._t(moved[1:, idx])) / slope
        return float(pseudo_huber(obs_d, scale).mean() + pseudo_huber(d, scale).mean())

    def _track(self, meshes, z, obs, W, steps, sampler, corresponding, gen, rng, guidance, n_shape_points,
               timings, first: torch.Tensor | None = None) -> list[np.ndarray]:
        """Frame-0 meshes (one per sample) carried through the observed frames, window by window;
        returns per-sample vertex trajectories (T, V, 3). ``first``: deformation latents of the first
        window already sampled (S, W-1, M, C)."""
        import time

        T = len(obs)
        verts = [np.zeros((T, len(m.vertices), 3), np.float32) for m in meshes]
        for s, m in enumerate(meshes):
            verts[s][0] = m.vertices
        start = 0
        while start < T - 1:
            stop = min(start + W, T)  # window frames start..stop-1
            if start > 0:  # chain: shape latents of the tracked mesh at the window's first frame
                t0 = time.perf_counter()
                pts = [sample_surface(verts[s][start], m.faces, n_shape_points, rng)[0] for s, m in enumerate(meshes)]
                z = self.encode_shape(np.stack(pts))
                timings["shape"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            if start == 0 and first is not None:
                zd = first
            else:
                surface0 = None
                if guidance is not None and guidance.enabled and not corresponding:
                    surface0 = np.stack([sample_surface(verts[s][start], m.faces, guidance.n_surface, rng)[0]
                                         for s, m in enumerate(meshes)])
                zd = self.sample_deformation(z, obs[start:stop], steps, sampler, corresponding, gen,
                                             guidance=guidance, surface0=surface0)
            timings["deform"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            for s in range(len(meshes)):
                verts[s][start + 1:stop] = self.deform(zd[s], verts[s][start])
            timings["decode"] += time.perf_counter() - t0
            start = stop - 1
        return verts

    def reconstruct_per_frame(self, observations, mode: str = "sparse", steps: int = 18, sampler: str = "dpmsolver",
                              resolution: int = 128, mesh_method: str = "octree", n_obs: int = 300,
                              seed: int = 0, shape_guidance=None) -> tuple[Reconstruction, list[trimesh.Trimesh]]:
        """Baseline without a temporal model: shape diffusion on every frame independently.

        Returns the per-frame meshes and a :class:`Reconstruction` whose vertices follow the frame-0
        mesh by nearest-surface-point chaining from frame to frame (the only correspondence a
        per-frame method has).
        """
        from latent4d.geometry.sdf import MeshSDF
        from latent4d.motion.observe import check_sequence, resample_frames

        frames = check_sequence(observations, "observations")
        rng = np.random.default_rng(seed)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        corresponding = mode == "sparse" and len({len(f) for f in frames}) == 1
        obs = resample_frames(frames, n_obs, rng) if not corresponding else np.stack(frames)[
            :, rng.choice(len(frames[0]), n_obs, replace=len(frames[0]) < n_obs)]
        meshes = []
        for t in range(len(frames)):
            z = self.sample_shape(obs[t], 1, steps, sampler, corresponding, gen, guidance=shape_guidance)
            m = self.mesh(z[0], resolution, mesh_method)
            if len(m.faces) == 0:
                raise InputError(f"per-frame reconstruction: no surface found in frame {t}")
            meshes.append(m)
        verts = np.zeros((len(frames), len(meshes[0].vertices), 3), np.float32)
        verts[0] = meshes[0].vertices
        for t in range(1, len(frames)):
            verts[t] = MeshSDF(meshes[t]).closest_points(verts[t - 1])["points"]
        return Reconstruction(verts, np.asarray(meshes[0].faces), obs), meshes
