"""Reconstruction of a complete hairstyle from a partial observation, with the hairstyle-VAE as prior.

Observation: points on the visible hair surface (optionally with strand directions), or partial
strands (their points and tangents). Method (GroomGen as a prior):

1. optimise the style latent ``z`` so that the decoded guides explain the observation:
   one-sided Chamfer (observation -> hair), ``1 - |cos|`` between observed directions and the
   tangents of the nearest hair points, a penetration penalty (points inside the head), and a
   Gaussian prior ``|z|^2``; from several initial latents (the mean, random samples and optionally
   given ones), keeping the best;
2. optionally refine the guide latents ``L = decode(z) + delta`` with the prior as regulariser
   (``|delta / std|^2``), which fits visible detail while hidden texels stay on the prior's guess;
3. densify.

The same machinery with ``use_prior=False`` (guide latents optimised from the mean strand, no
hairstyle-VAE) is the "no prior" baseline of ``latent4d bench hair_fit``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latent4d.errors import InputError
from latent4d.geometry.distances import knn
from latent4d.hair.guides import gather_map, scatter_map
from latent4d.hair.pipeline import HairPipeline, HairResult


@dataclass
class Observation:
    """Observed hair: ``points (N, 3)`` metres, optional unit ``directions (N, 3)`` and optional
    ``view (3,)``: the unit direction from the hair towards an orthographic camera that saw it (e.g.
    ``(0, 0, 1)`` for a front view). With a view the fit also uses free space: no hair may stand in
    front of the observed surface, nor show where the camera saw no hair (see :func:`fit_observation`).
    """

    points: np.ndarray
    directions: np.ndarray | None = None
    name: str = "observation"
    view: np.ndarray | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> Observation:
        """PLY / NPZ point cloud (``dx dy dz`` or ``nx ny nz`` as directions) or a hair file (partial strands)."""
        from latent4d.hair.formats import read_points

        pts, dirs = read_points(path)
        return cls(pts, dirs, str(path))

    def validate(self, pipeline: HairPipeline, max_distance: float = 0.6) -> Observation:
        """Raise InputError for empty / NaN clouds, and for observations far from the scalp (wrong frame)."""
        pts = np.asarray(self.points, np.float32).reshape(-1, 3)
        if len(pts) == 0:
            raise InputError(f"{self.name}: the observation is empty")
        if not np.isfinite(pts).all():
            raise InputError(f"{self.name}: the observation contains NaN or infinite coordinates")
        if self.directions is not None:
            d = np.asarray(self.directions, np.float32).reshape(-1, 3)
            if d.shape != pts.shape or not np.isfinite(d).all():
                raise InputError(f"{self.name}: directions must be finite and match the points ({pts.shape})")
        if self.view is not None:
            self.view = parse_view(self.view, self.name)
        dist = np.linalg.norm(pts - pipeline.head.c[None].astype(np.float32), axis=1)
        med = float(np.median(dist))
        if med > max_distance:
            raise InputError(f"{self.name}: the observation lies {med:.2f} m (median) from the head centre "
                             f"{tuple(round(float(c), 3) for c in pipeline.head.c)}; it does not match the head frame "
                             "(metres, Y up, USC-HairSalon head position expected)")
        return self


@dataclass
class FitResult:
    """A reconstruction: the hairstyle (latent, guide map, guides, dense) and fitting diagnostics."""

    hair: HairResult
    loss: float
    losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    inits: int = 0
    retrieved: list[int] = field(default_factory=list)  # latent-bank styles used as starts
    winner: str = ""  # which start won: "retrieved <i>", "given <i>", "zero" or "random <i>"

    @property
    def latent(self) -> torch.Tensor | None:
        return self.hair.latent


VIEWS = {"front": (0.0, 0.0, 1.0), "back": (0.0, 0.0, -1.0), "left": (1.0, 0.0, 0.0), "right": (-1.0, 0.0, 0.0),
         "top": (0.0, 1.0, 0.0)}


def parse_view(view, name: str = "view") -> np.ndarray:
    """A camera direction: a name in :data:`VIEWS` (head frame: +z front, +y up, +x the head's left)
    or three numbers (a string ``"x,y,z"`` or a sequence); returned as a unit (3,) float32."""
    if isinstance(view, str):
        v = VIEWS.get(view.strip().lower())
        if v is None:
            try:
                v = [float(t) for t in view.split(",")]
            except ValueError:
                v = None
        if v is None:
            raise InputError(f"{name}: view '{view}' is neither one of {', '.join(VIEWS)} nor 'x,y,z'")
    else:
        v = view
    v = np.asarray(v, np.float64).reshape(-1)
    n = float(np.linalg.norm(v)) if v.shape == (3,) and np.isfinite(v).all() else 0.0
    if n < 1e-9:
        raise InputError(f"{name}: view must be a finite non-zero 3-vector, got {view!r}")
    return (v / n).astype(np.float32)


def _tangents(x: torch.Tensor) -> torch.Tensor:
    d = torch.cat([x[:, 1:] - x[:, :-1], x[:, -1:] - x[:, -2:-1]], 1)
    return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-9)


class _Objective:
    """Observation loss of guide strands decoded from standardised guide latents."""

    def __init__(self, pipe: HairPipeline, obs: Observation, w_dir: float, w_pen: float, point_stride: int,
                 max_obs: int, seed: int, w_free: float = 0.0, free_margin: float = 0.003):
        self.pipe = pipe
        grid = pipe.grid
        rng = np.random.default_rng(seed)
        pts = np.asarray(obs.points, np.float32)
        sel = np.arange(len(pts)) if len(pts) <= max_obs else np.sort(rng.choice(len(pts), max_obs, replace=False))
        self.obs = torch.from_numpy(pts[sel])
        self.dirs = None if obs.directions is None else torch.from_numpy(np.asarray(obs.directions, np.float32)[sel])
        self.roots = torch.from_numpy(grid.roots[grid.mask].astype(np.float32))
        self.frames = torch.from_numpy(grid.frames[grid.mask].astype(np.float32))
        self.w_dir, self.w_pen, self.stride = w_dir, w_pen, point_stride
        self.head = pipe.head
        self.w_free, self.margin = (float(w_free), float(free_margin)) if obs.view is not None else (0.0, 0.0)
        if self.w_free > 0:
            # image plane basis (u, v) and depth axis w (towards the camera)
            w = torch.from_numpy(np.asarray(obs.view, np.float32))
            a = torch.tensor([0.0, 1.0, 0.0]) if abs(float(w[1])) < 0.9 else torch.tensor([1.0, 0.0, 0.0])
            u = torch.linalg.cross(a, w)
            u = u / u.norm()
            self.basis = torch.stack([u, torch.linalg.cross(w, u), w], 1)  # (3, 3): columns u, v, w
            o = self.obs @ self.basis
            self.obs_2d = torch.cat([o[:, :2], torch.zeros(len(o), 1)], 1)
            self.obs_depth = o[:, 2]

    def _free_space(self, pts: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Free-space loss of hair points (N, 3) seen from the observation's view: a point whose image
        lies further than ``margin`` from every observed point's image must be hidden by the head
        (else its image distance counts), and one over the observed hair must not stand more than
        ``margin`` in front of it (else that depth counts)."""
        q = pts @ self.basis
        q2 = torch.cat([q[:, :2], torch.zeros(len(q), 1)], 1)
        _, idx = knn(q2, self.obs_2d, 1)
        j = idx[:, 0]
        d2 = (q2 - self.obs_2d[j]).norm(dim=-1)
        with torch.no_grad():
            hidden = self._behind_head(pts.detach())
        outside = torch.relu(d2 - self.margin) * (~hidden).float()
        front = torch.relu(q[:, 2] - self.obs_depth[j] - self.margin) * (d2 <= self.margin).float()
        sil, dep = outside.mean(), front.mean()
        return sil + dep, {"silhouette_mm": float(sil.detach()) * 1000, "in_front_mm": float(dep.detach()) * 1000}

    def _behind_head(self, pts: torch.Tensor) -> torch.Tensor:
        """(N,) bool: the ray from each point towards the camera enters the head ellipsoid."""
        c = torch.as_tensor(self.head.c, dtype=pts.dtype)
        a = torch.as_tensor(self.head.a, dtype=pts.dtype)
        q = (pts - c) / a
        d = self.basis[:, 2] / a
        dd = (d * d).sum()
        b = (q * d).sum(-1)
        cc = (q * q).sum(-1) - 1.0
        disc = b * b - dd * cc
        return (disc > 0) & (cc > 0) & (-b - disc.clamp_min(0).sqrt() > 0)

    def strands(self, latents: torch.Tensor) -> torch.Tensor:
        """Guide strands (V, P, 3) world from strand latents (V, C) (differentiable)."""
        local = self.pipe.strand_vae.decode(latents)
        return torch.einsum("vij,vpj->vpi", self.frames, local) + self.roots[:, None]

    def __call__(self, latents: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x = self.strands(latents)  # (V, P, 3)
        xs = x[present][:, :: self.stride]
        pts = xs.reshape(-1, 3)
        _, idx = knn(self.obs, pts, 1)
        near = pts[idx[:, 0]]
        d = (self.obs - near).norm(dim=-1)
        chamfer = d.mean()
        loss = chamfer
        parts = {"chamfer_mm": float(chamfer.detach()) * 1000}
        if self.dirs is not None and self.w_dir > 0:
            tan = _tangents(xs).reshape(-1, 3)[idx[:, 0]]
            dl = (1 - (tan * self.dirs).sum(-1).abs()).mean()
            loss = loss + self.w_dir * 0.01 * dl
            parts["direction"] = float(dl.detach())
        if self.w_free > 0:
            free, fparts = self._free_space(pts)
            loss = loss + self.w_free * free
            parts.update(fparts)
        if self.w_pen > 0:
            lv = self.head.level(x[:, 1:].reshape(-1, 3))
            pen = torch.relu(1.0 - lv).mean()
            loss = loss + self.w_pen * pen
            parts["penetration"] = float(pen.detach())
        return loss, parts


def fit_observation(pipe: HairPipeline, observation: Observation | str | Path, inits: int = 4, steps: int = 200,
                    refine_steps: int = 0, lr: float = 0.05, refine_lr: float = 0.05, w_dir: float = 1.0,
                    w_pen: float = 1.0, w_prior: float = 1e-5, w_refine: float = 1e-4, use_prior: bool = True,
                    init_latents: torch.Tensor | None = None, strands: int = 10000, mode: str = "hybrid",
                    seed: int = 0, max_obs: int = 4000, point_stride: int = 2, w_free: float = 1.0,
                    free_margin: float = 0.003, w_free_refine: float | None = None, screen: int = 0,
                    retrieve: int = 2) -> FitResult:
    """Reconstruct a complete hairstyle that explains ``observation`` (see the module docstring).

    Args:
        observation: an :class:`Observation` or a file path (PLY / NPZ points, or a hair file).
        inits: initial latents tried besides any ``init_latents (K, D)``: the zero latent, then random
            samples at temperature 0.7; each is optimised for ``steps`` Adam steps, the best kept
            (200: on validation styles the per-point error kept falling from 100 to 150 to 200).
        retrieve: when the pipeline has a latent bank (:mod:`latent4d.hair.retrieval`), the latents of
            the ``retrieve`` training styles nearest to the observation (one-sided Chamfer to their
            guides) are optimised too, before the others (on validation styles, 2 retrieved starts
            lowered the per-point error from 18.5 / 19.9 mm to 15.2 / 17.3 mm, visible / hidden).
        screen: when larger than ``inits``, that many candidates (the zero latent and samples) are
            scored by the objective without optimisation and the best ``inits`` are optimised.
        w_free, free_margin: weight and margin (metres) of the free-space term, used when the
            observation has a ``view``: hair must not show where the camera saw none (unless the
            head hides it) nor stand in front of the observed surface. The margin should exceed the
            observation noise (3 mm, about 1.5x the benchmark's 2 mm noise, was chosen on validation
            styles over 4 and 6 mm). ``w_free_refine``: its weight
            in the guide-latent refinement (default: ``w_free``).
        refine_steps: steps of guide-latent refinement regularised by ``w_refine * |delta / std|^2``
            (default none: it lowers the observation Chamfer but, on ``latent4d bench hair_fit``, it
            raised the per-point error of the completed hair, visible and hidden).
        use_prior: False optimises guide latents directly from the mean strand (no hairstyle-VAE):
            the no-prior baseline.
        strands: dense strands of the result (0 = guides only).
    Returns:
        :class:`FitResult` (``hair.latent`` is None when ``use_prior`` is False).
    """
    t0 = time.time()
    retrieved: list[int] = []
    obs = observation if isinstance(observation, Observation) else Observation.from_file(observation)
    obs.validate(pipe)
    objective = _Objective(pipe, obs, w_dir, w_pen, point_stride, max_obs, seed, w_free, free_margin)
    grid = pipe.grid
    vae = pipe.style_vae
    V = int(grid.mask.sum())
    C = pipe.strand_vae.config.latent_dim
    if vae is not None:
        mean, std = vae.latent_mean.detach().clone(), vae.latent_std.detach().clone()
    else:
        mean, std = torch.zeros(C), torch.ones(C)
    for p in pipe.strand_vae.parameters():
        p.requires_grad_(False)
    if use_prior:
        if vae is None:
            raise InputError("fitting with the hairstyle prior needs a hairstyle-VAE run")
        for p in vae.parameters():
            p.requires_grad_(False)
        cands = [] if init_latents is None else list(torch.as_tensor(init_latents, dtype=torch.float32).reshape(
            -1, pipe.style_dim))
        labels = [f"given {i}" for i in range(len(cands))]
        if retrieve > 0 and getattr(pipe, "bank", None) is not None:
            idx, _ = pipe.bank.nearest(obs.points, int(retrieve), seed=seed)
            cands += list(pipe.bank.latents[idx])
            retrieved = [int(i) for i in idx]
            labels += [f"retrieved {i}" for i in retrieved]
        n_given, n_free = len(cands), max(int(inits), 1)
        g = torch.Generator().manual_seed(seed)
        cands.append(torch.zeros(pipe.style_dim))
        labels.append("zero")
        while len(cands) < n_given + max(n_free, int(screen)):
            cands.append(torch.randn(pipe.style_dim, generator=g) * 0.7)
            labels.append(f"random {len(cands) - n_given - 1}")
        if len(cands) > n_given + n_free:  # screening: keep the best n_free of the generated candidates
            with torch.no_grad():
                scores = []
                for z0 in cands[n_given:]:
                    raw = gather_map(vae.decode_raw(z0[None])[0], grid)
                    present = raw[:, -1] > 0
                    sc, _ = objective(raw[:, :-1] * std + mean, present if present.any() else ~present)
                    scores.append(float(sc) + w_prior * float(z0.square().sum()))
            keep = np.argsort(scores)[:n_free]
            cands = cands[:n_given] + [cands[n_given + int(k)] for k in keep]
            labels = labels[:n_given] + [labels[n_given + int(k)] for k in keep]
        best = None
        for z0, label in zip(cands, labels, strict=True):
            z = z0.clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=lr)
            for _ in range(int(steps)):
                raw = gather_map(vae.decode_raw(z[None])[0], grid)
                lat = raw[:, :-1] * std + mean
                present = raw[:, -1].detach() > 0
                if not present.any():
                    present = torch.ones_like(present)
                loss, parts = objective(lat, present)
                loss = loss + w_prior * z.square().sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                raw = gather_map(vae.decode_raw(z[None])[0], grid)
                present = raw[:, -1] > 0
                final, parts = objective(raw[:, :-1] * std + mean, present if present.any() else ~present)
                final = float(final) + w_prior * float(z.square().sum())
            if best is None or final < best[0]:
                best = (final, z.detach().clone(), parts, label)
        _, z_best, parts, winner = best
        with torch.no_grad():
            base = gather_map(vae.decode_raw(z_best[None])[0], grid)
        base_lat = base[:, :-1]
        present = base[:, -1] > 0
        latent_out: torch.Tensor | None = z_best
    else:
        winner = "no prior"
        base_lat = torch.zeros(V, C)  # standardised: the mean strand everywhere
        present = torch.ones(V, dtype=torch.bool)
        latent_out = None
        refine_steps = int(steps) + int(refine_steps)  # all iterations go to the guide latents
    if w_free_refine is not None and objective.w_free > 0:
        objective.w_free = float(w_free_refine)
    delta = torch.zeros(V, C, requires_grad=True)
    if refine_steps > 0:
        opt = torch.optim.Adam([delta], lr=refine_lr)
        for _ in range(int(refine_steps)):
            lat = (base_lat + delta) * std + mean
            loss, parts = objective(lat, present)
            loss = loss + w_refine * delta.square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        lat = (base_lat + delta) * std + mean
        final, parts = objective(lat, present)
        vals = torch.cat([lat, present.float()[:, None]], 1)
        gmap = scatter_map(vals, grid)
    hair = pipe.result(gmap, latent_out, strands, mode, seed)
    return FitResult(hair, float(final), parts, time.time() - t0, inits if use_prior else 0, retrieved, winner)


def visible_mask(strands: np.ndarray, view: str = "front", pixel: float = 0.002, depth_tol: float = 0.006,
                 head=None) -> np.ndarray:
    """(S, P) bool: strand points visible from one side (orthographic z-buffer with ``pixel`` metres).

    ``view`` is ``front`` (camera on +z looking at -z) or ``back``. A point is visible when it is
    within ``depth_tol`` of the front-most hair in its pixel and not behind the head.
    """
    x = np.asarray(strands, np.float64)
    S, P, _ = x.shape
    sign = 1.0 if view == "front" else -1.0
    pts = x.reshape(-1, 3)
    depth = sign * pts[:, 2]
    ij = np.floor(pts[:, :2] / pixel).astype(np.int64)
    ij -= ij.min(0)
    key = ij[:, 0] * (int(ij[:, 1].max()) + 1) + ij[:, 1]
    order = np.argsort(key, kind="stable")
    k_sorted = key[order]
    starts = np.flatnonzero(np.r_[True, k_sorted[1:] != k_sorted[:-1]])
    zmax = np.maximum.reduceat(depth[order], starts)
    pix_max = np.empty_like(depth)
    counts = np.diff(np.r_[starts, len(order)])
    pix_max[order] = np.repeat(zmax, counts)
    vis = depth >= pix_max - depth_tol
    if head is not None:
        # behind the head: the ray towards the camera enters the ellipsoid
        c, a = head.c, head.a
        q = (pts - c) / a
        dz = sign / a[2]
        b = q[:, 2] * dz
        cc = (q ** 2).sum(1) - 1.0
        disc = b * b - dz * dz * cc
        t_far = (-b + np.sqrt(np.maximum(disc, 0.0))) / (dz * dz)
        blocked = (disc > 0) & (t_far > 0) & (cc > 0) & (-b - np.sqrt(np.maximum(disc, 0)) > 0)
        vis &= ~blocked
    return vis.reshape(S, P)


def synthetic_observation(strands: np.ndarray, n_points: int = 4000, noise: float = 0.002, seed: int = 0,
                          view: str = "front", directions: bool = False, head=None) -> tuple[Observation, np.ndarray]:
    """A partial observation of hair ``(S, P, 3)``: ``n_points`` points sampled on the strands visible
    from ``view`` plus Gaussian noise of ``noise`` metres; returns ``(Observation, visible (S, P))``."""
    x = np.asarray(strands, np.float32)
    vis = visible_mask(x, view, head=head)
    rng = np.random.default_rng(seed)
    cand = np.flatnonzero(vis.ravel())
    if len(cand) == 0:
        raise InputError("synthetic_observation: no visible hair")
    pick = rng.choice(cand, min(n_points, len(cand)), replace=False)
    pts = x.reshape(-1, 3)[pick] + rng.normal(scale=noise, size=(len(pick), 3)).astype(np.float32)
    dirs = None
    if directions:
        t = np.concatenate([x[:, 1:] - x[:, :-1], x[:, -1:] - x[:, -2:-1]], 1).reshape(-1, 3)[pick]
        dirs = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
    return Observation(pts.astype(np.float32), dirs, f"{view} view", parse_view(view)), vis
