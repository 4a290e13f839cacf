"""Reconstruction of a complete hairstyle from a partial observation, with the hairstyle-VAE as prior:
the typed settings (:class:`HairReconstructConfig`) and the solver (:func:`fit_observation`).

The defaults live in ``conf/reconstruct/hair.yaml`` (a Hydra config over this dataclass, registered as
its structured schema; the dataclass holds the same values); :func:`reconstruct_settings` composes
them with ``key=value`` overrides, so ``latent4d reconstruct hair key=value``,
``scripts/reconstruct_hair.py`` and ``latent4d bench hair_fit`` read the same defaults, and an unknown
key or a wrong type is Hydra's error, as one :class:`~latent4d.errors.ConfigError` naming the option.
``conf/reconstruct/hair_quick.yaml`` holds the quick benchmark's smaller fit.

Observation (:class:`~latent4d.hair.types.HairObservation`): points on the visible hair surface
(optionally with strand directions and the camera direction), or partial strands. Method (GroomGen as
a prior):

1. optimise the style latent ``z`` so that the decoded guides explain the observation: one-sided
   Chamfer (observation -> hair), ``1 - |cos|`` between observed directions and the tangents of the
   nearest hair points, a penetration penalty (points inside the head), a free-space term when the
   view is known, and a Gaussian prior ``|z|^2``; from several starts (retrieved training styles,
   given latents, the zero latent and random samples), keeping the best;
2. densify.

:func:`fit_without_prior` (guide latents optimised from the mean strand, no hairstyle-VAE) is the
"no prior" baseline of ``latent4d bench hair_fit``; :func:`refine_guides` (guide latents refined
after the prior fit) is an ablation of that benchmark: it lowers the observation Chamfer but raised
the per-point error of the completed hair, visible and hidden, so the command does not offer it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from latent4d import progress
from latent4d.errors import ConfigError, InputError
from latent4d.geometry.distances import knn
from latent4d.hair.densify import MODES
from latent4d.hair.formats import MAX_DENSE_STRANDS, check_format
from latent4d.hair.guides import gather_map, scatter_map
from latent4d.hair.types import FitResult, HairObservation, parse_view
from latent4d.options import compose_settings, opt

MAX_SEED = 2**32 - 1
#: weight of ``|delta / std|^2`` when guide latents are optimised directly (no-prior baseline, refinement)
GUIDE_REG = 1e-4


@dataclass
class HairReconstructConfig:
    """Settings of ``latent4d reconstruct hair`` (defaults: ``conf/reconstruct/hair.yaml``).

    Inputs and outputs: the run, the observation file, an optional scalp mesh, the output folder,
    format and render, and the camera direction. Result: dense strands, densification mode, seed.
    Fit (see the module docstring): starts, Adam steps and learning rate, loss weights; distances
    are metres.
    """

    # -- inputs / outputs --------------------------------------------------------------------------
    run: str | None = opt(None, help="hairstyle-VAE run directory (or a saved pipeline folder)")
    input: str | None = opt(None, help="observation: .ply / .npz point cloud or a partial hair file")
    scalp: str | None = opt(None, help="scalp mesh (.obj / .ply) in the head frame")
    out: str | None = opt(None, help="output folder (default <input>_reconstruction next to the input)")
    format: str = opt("data", help="output hair format (data, hair, ply, npz, usd, usda, usdc)")
    render: bool = opt(True, help="write <stem>.png (hair + observation)")
    view: str | None = opt(None, help="direction towards the camera: front|back|left|right|top or x,y,z "
                                      "(adds the free-space term)")
    # -- result ------------------------------------------------------------------------------------
    strands: int = opt(20000, min=0, max=MAX_DENSE_STRANDS, help="dense strands of the result (0: guides only)")
    mode: str = opt("hybrid", choices=MODES, help="densification mode")
    seed: int = opt(0, min=0, max=MAX_SEED, help="seed of the random starts, subsampling and dense roots")
    # -- fit ---------------------------------------------------------------------------------------
    inits: int = opt(1, min=1, max=256, help="starts besides retrieved / given latents: zero, then random "
                                             "samples at temperature 0.7")
    retrieve: int = opt(2, min=0, max=256, help="nearest training styles of the run's latent bank used as starts")
    steps: int = opt(200, min=1, max=100_000, help="Adam steps per start")
    lr: float = opt(0.05, gt=0, max=10, help="Adam learning rate of the style latent")
    w_dir: float = opt(1.0, min=0, help="weight of 1 - |cos| to observed directions (x 0.01)")
    w_pen: float = opt(1.0, min=0, help="weight of the head penetration penalty")
    w_prior: float = opt(1e-5, min=0, help="weight of the Gaussian prior |z|^2")
    w_free: float = opt(1.0, min=0, help="weight of the free-space term (with a view)")
    free_margin: float = opt(0.003, min=0, max=0.1, help="free-space margin (m): more than the observation noise")
    max_obs: int = opt(4000, min=1, max=10_000_000, help="observed points used (random subset)")
    point_stride: int = opt(2, min=1, max=100, help="every k-th point of a guide enters the Chamfer")
    patience: int = opt(25, min=0, max=100_000, help="stop a start after this many steps without a relative "
                                                    "improvement of min_delta (0: run every step)")
    min_delta: float = opt(1e-3, min=0, max=1, help="relative loss improvement that resets the patience")
    screen_steps: int = opt(60, min=0, max=100_000, help="after this many steps only the `keep` starts with the "
                                                         "lowest loss go on (0: every start runs on)")
    keep: int = opt(1, min=1, max=256, help="starts that go on after screen_steps")
    progress: bool = opt(True, help="show a progress bar with an ETA (stderr)")

    def validate(self) -> None:
        """Checks Hydra cannot express: ``format=`` (case, leading dot) and ``view=``."""
        self.format = check_format(self.format, "reconstruct hair")
        if self.view not in (None, ""):
            try:
                parse_view(self.view, f"reconstruct hair: view={self.view}")
            except InputError as e:
                raise ConfigError(str(e)) from None


def reconstruct_settings(overrides: list[str] | tuple[str, ...] = (), name: str = "hair",
                         command: str = "reconstruct hair") -> HairReconstructConfig:
    """``conf/reconstruct/<name>.yaml`` composed with ``key=value`` ``overrides`` (ConfigError for
    unknown keys, wrong types, values out of range, a bad ``format=`` or ``view=``, and ``${...}``
    interpolations, which options do not need and whose resolution errors would not name the option)."""
    for o in overrides:
        key, _, value = str(o).partition("=")
        if "${" in value:
            raise ConfigError(f"{command}: {key}={value}: interpolations (${{...}}) are not allowed in options")
    return compose_settings(f"reconstruct/{name}", HairReconstructConfig, list(overrides), command)


# ================================================================================== objective
def _tangents(x: torch.Tensor) -> torch.Tensor:
    d = torch.cat([x[:, 1:] - x[:, :-1], x[:, -1:] - x[:, -2:-1]], 1)
    return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-9)


#: nearest-neighbour candidates kept per point between exact searches, and the steps between searches
CANDIDATES, REFRESH = 4, 10


class _Candidates:
    """Each query point's ``CANDIDATES`` nearest neighbours from the last exact search (see
    :meth:`_Objective.terms`)."""

    def __init__(self):
        self.idx: torch.Tensor | None = None
        self.key: torch.Tensor | None = None
        self.age = 0

    def stale(self, key: torch.Tensor | None) -> bool:
        return (self.idx is None or self.age >= REFRESH or key is None or self.key is None
                or not torch.equal(key, self.key))


def _nearest(query: torch.Tensor, points: torch.Tensor, cand: _Candidates | None,
             key: torch.Tensor | None) -> torch.Tensor:
    """(Q,) index of each query point's nearest point: exact (``cand`` None or stale: one KNN search,
    which also refreshes ``cand``), else the closest of the cached candidates."""
    if cand is None:
        return knn(query, points, 1)[1][:, 0]
    if cand.stale(key):
        k = min(CANDIDATES, len(points))
        cand.idx, cand.key, cand.age = knn(query, points, k)[1], None if key is None else key.clone(), 0
        return cand.idx[:, 0]
    cand.age += 1
    with torch.no_grad():
        d = (points[cand.idx] - query[:, None]).square().sum(-1)  # (Q, k)
        return cand.idx.gather(1, d.argmin(1, keepdim=True))[:, 0]


class _Objective:
    """Observation loss of guide strands decoded from strand latents (weights of ``config``)."""

    def __init__(self, pipe, obs: HairObservation, w_dir: float, w_pen: float, point_stride: int,
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

    @classmethod
    def of(cls, pipe, obs: HairObservation, config: HairReconstructConfig) -> _Objective:
        c = config
        return cls(pipe, obs, c.w_dir, c.w_pen, c.point_stride, c.max_obs, c.seed, c.w_free, c.free_margin)

    def _free_space(self, pts: torch.Tensor, cache: dict | None = None,
                    key: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Free-space loss of hair points (N, 3) seen from the observation's view: a point whose image
        lies further than ``margin`` from every observed point's image must be hidden by the head
        (else its image distance counts), and one over the observed hair must not stand more than
        ``margin`` in front of it (else that depth counts)."""
        q = pts @ self.basis
        q2 = torch.cat([q[:, :2], torch.zeros(len(q), 1)], 1)
        j = _nearest(q2, self.obs_2d, None if cache is None else cache.setdefault("free", _Candidates()), key)
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
        """Guide strands (..., V, P, 3) world from strand latents (..., V, C) (differentiable; leading
        dimensions, e.g. one per start, decode in one batch)."""
        lead = latents.shape[:-2]
        local = self.pipe.strand_vae.decode(latents.reshape(-1, latents.shape[-1]))
        local = local.reshape(*lead, *self.frames.shape[:1], *local.shape[1:])
        return torch.einsum("vij,...vpj->...vpi", self.frames, local) + self.roots[:, None]

    def __call__(self, latents: torch.Tensor, present: torch.Tensor,
                 cache: dict | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss and its terms of strand latents (V, C) with presence (V,) bool (``cache``: see :meth:`terms`)."""
        return self.terms(self.strands(latents), present, cache)

    def terms(self, x: torch.Tensor, present: torch.Tensor,
              cache: dict | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss and its terms of guide strands ``x`` (V, P, 3) world with presence (V,) bool.

        ``cache`` (one dict per start of an optimisation, None: exact nearest neighbours) keeps each
        point's :data:`CANDIDATES` nearest neighbours of the last exact search, which is redone every
        :data:`REFRESH` steps and whenever ``present`` changes; in between, each point's nearest
        neighbour is the closest of its candidates (exact distances to them)."""
        xs = x[present][:, :: self.stride]
        pts = xs.reshape(-1, 3)
        key = present if cache is not None else None
        idx = _nearest(self.obs, pts, None if cache is None else cache.setdefault("chamfer", _Candidates()), key)
        near = pts[idx]
        d = (self.obs - near).norm(dim=-1)
        chamfer = d.mean()
        loss = chamfer
        parts = {"chamfer_mm": float(chamfer.detach()) * 1000}
        if self.dirs is not None and self.w_dir > 0:
            tan = _tangents(xs).reshape(-1, 3)[idx]
            dl = (1 - (tan * self.dirs).sum(-1).abs()).mean()
            loss = loss + self.w_dir * 0.01 * dl
            parts["direction"] = float(dl.detach())
        if self.w_free > 0:
            free, fparts = self._free_space(pts, cache, key)
            loss = loss + self.w_free * free
            parts.update(fparts)
        if self.w_pen > 0:
            lv = self.head.level(x[:, 1:].reshape(-1, 3))
            pen = torch.relu(1.0 - lv).mean()
            loss = loss + self.w_pen * pen
            parts["penetration"] = float(pen.detach())
        return loss, parts


# ================================================================================== solver
def _prepare(pipe, observation, config: HairReconstructConfig | None):
    """The settings, the checked observation, its objective and the strand-latent statistics."""
    cfg = config or HairReconstructConfig()
    obs = observation if isinstance(observation, HairObservation) else HairObservation.from_file(observation)
    obs.validate(pipe)
    for p in pipe.strand_vae.parameters():
        p.requires_grad_(False)
    vae = pipe.style_vae
    if vae is not None:
        mean, std = vae.latent_mean.detach().clone(), vae.latent_std.detach().clone()
    else:
        C = pipe.strand_vae.config.latent_dim
        mean, std = torch.zeros(C), torch.ones(C)
    return cfg, obs, _Objective.of(pipe, obs, cfg), mean, std


def _starts(pipe, obs: HairObservation, cfg: HairReconstructConfig,
            init_latents: torch.Tensor | None) -> tuple[list[torch.Tensor], list[str], list[int]]:
    """Starting latents (D,) with their labels, and the retrieved bank indices: given latents, the
    ``retrieve`` nearest styles of the latent bank, the zero latent, random samples at temperature 0.7."""
    D = pipe.style_dim
    cands = [] if init_latents is None else list(torch.as_tensor(init_latents, dtype=torch.float32).reshape(-1, D))
    labels = [f"given {i}" for i in range(len(cands))]
    retrieved: list[int] = []
    if cfg.retrieve > 0 and getattr(pipe, "bank", None) is not None:
        idx, _ = pipe.bank.nearest(obs.points, int(cfg.retrieve), seed=cfg.seed)
        cands += list(pipe.bank.latents[idx])
        retrieved = [int(i) for i in idx]
        labels += [f"retrieved {i}" for i in retrieved]
    n_given, n_free = len(cands), max(int(cfg.inits), 1)
    g = torch.Generator().manual_seed(cfg.seed)
    cands.append(torch.zeros(D))
    labels.append("zero")
    while len(cands) < n_given + n_free:
        cands.append(torch.randn(D, generator=g) * 0.7)
        labels.append(f"random {len(cands) - n_given - 1}")
    return cands, labels, retrieved


def _decoded(pipe, z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Strand latents (..., V, C) and presence logits (..., V) of style latents ``z`` (..., D) on the guide
    texels (a leading batch dimension, e.g. one per start, decodes in one pass)."""
    raw = gather_map(pipe.style_vae.decode_raw(z.reshape(-1, z.shape[-1])), pipe.grid)  # (K, V, C + 1)
    raw = raw.reshape(*z.shape[:-1], *raw.shape[1:])
    return raw[..., :-1] * std + mean, raw[..., -1]


def _present(logit: torch.Tensor) -> torch.Tensor:
    """(V,) bool texels with hair (every texel when none has)."""
    present = logit.detach() > 0
    return present if present.any() else torch.ones_like(present)


class _Plateau:
    """Early stopping per start: a start stops after ``patience`` steps whose loss did not fall below
    ``(1 - min_delta)`` times its best so far (``patience`` 0: never)."""

    def __init__(self, n: int, patience: int, min_delta: float):
        self.best = [float("inf")] * n
        self.last = [float("inf")] * n
        self.since = [0] * n
        self.patience, self.min_delta = int(patience), float(min_delta)

    def stopped(self, k: int, loss: float) -> bool:
        self.last[k] = loss
        if loss < self.best[k] * (1.0 - self.min_delta) or self.best[k] == float("inf"):
            self.best[k], self.since[k] = min(loss, self.best[k]), 0
        else:
            self.since[k] += 1
        return 0 < self.patience <= self.since[k]


def _optimise_starts(pipe, objective: _Objective, starts: list[torch.Tensor], cfg: HairReconstructConfig,
                     mean: torch.Tensor, std: torch.Tensor, advance=None) -> list[tuple[float, torch.Tensor, dict]]:
    """Up to ``cfg.steps`` Adam steps on each style latent of ``starts`` (K tensors (D,)), all starts in
    one batched decode per step; Adam's state is per element, so each start follows the same path as
    when optimised alone. A start leaves the batch on a plateau (:class:`_Plateau`), and after
    ``cfg.screen_steps`` steps only the ``cfg.keep`` active starts with the lowest loss go on
    (successive halving: the decodes are most of the time); ``advance(n)`` is called with the steps
    done (and skipped). Nearest neighbours come from per-start candidate caches (:meth:`_Objective.terms`);
    the final losses are exact. Returns per start (final loss, z, loss terms)."""
    zs = [z0.clone().float().requires_grad_(True) for z0 in starts]
    opt = torch.optim.Adam(zs, lr=cfg.lr)
    plateau, active, steps = _Plateau(len(zs), cfg.patience, cfg.min_delta), list(range(len(zs))), int(cfg.steps)
    caches: list[dict] = [{} for _ in zs]  # nearest-neighbour candidates per start (exact final losses below)
    for step in range(steps):
        lat, logit = _decoded(pipe, torch.stack([zs[k] for k in active]), mean, std)
        x = objective.strands(lat)  # (A, V, P, 3)
        total, keep = 0.0, []
        for i, k in enumerate(active):
            loss, _ = objective.terms(x[i], _present(logit[i]), caches[k])
            loss = loss + cfg.w_prior * zs[k].square().sum()
            total = total + loss
            if not plateau.stopped(k, float(loss.detach())):
                keep.append(k)
            elif advance is not None:
                advance(steps - step - 1)
        opt.zero_grad()  # grads of stopped starts stay None: Adam leaves them as they are
        total.backward()
        opt.step()
        if advance is not None:
            advance(len(active))
        if step + 1 == cfg.screen_steps and len(keep) > cfg.keep:  # successive halving: the best go on
            best = sorted(keep, key=lambda k: plateau.last[k])[: cfg.keep]
            if advance is not None:
                advance((steps - step - 1) * (len(keep) - len(best)))
            keep = [k for k in keep if k in best]
        active = keep
        if not active:
            break
    with torch.no_grad():
        Z = torch.stack(zs)
        lat, logit = _decoded(pipe, Z, mean, std)
        x = objective.strands(lat)
        out = []
        for k in range(len(zs)):
            final, parts = objective.terms(x[k], _present(logit[k]))
            out.append((float(final) + cfg.w_prior * float(Z[k].square().sum()), Z[k].clone(), parts))
    return out


def _optimise_guides(objective: _Objective, base: torch.Tensor, present: torch.Tensor, mean: torch.Tensor,
                     std: torch.Tensor, steps: int, lr: float, reg: float = GUIDE_REG) -> torch.Tensor:
    """Offsets ``delta`` (V, C) of standardised guide latents ``base`` (V, C): ``steps`` Adam steps on
    the objective + ``reg * mean(delta^2)``."""
    delta = torch.zeros_like(base, requires_grad=True)
    if steps > 0:
        opt, cache = torch.optim.Adam([delta], lr=lr), {}
        for _ in range(int(steps)):
            loss, _ = objective((base + delta) * std + mean, present, cache)
            loss = loss + reg * delta.square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return delta.detach()


def _result(pipe, objective: _Objective, lat: torch.Tensor, present: torch.Tensor, latent, cfg: HairReconstructConfig):
    """Final loss, its terms and the HairResult of strand latents (V, C) with presence (V,)."""
    with torch.no_grad():
        final, parts = objective(lat, present)
        gmap = scatter_map(torch.cat([lat, present.float()[:, None]], 1), pipe.grid)
    return float(final), parts, pipe.result(gmap, latent, cfg.strands, cfg.mode, cfg.seed)


def fit_observation(pipe, observation: HairObservation | str | Path, config: HairReconstructConfig | None = None,
                    init_latents: torch.Tensor | None = None) -> FitResult:
    """Reconstruct a complete hairstyle that explains ``observation`` (see the module docstring).

    Args:
        pipe: a :class:`~latent4d.hair.pipeline.HairPipeline` with a hairstyle-VAE.
        observation: a :class:`HairObservation` or a file path (PLY / NPZ points, or a hair file).
        config: the settings (``HairReconstructConfig()``, i.e. the defaults, when None): each start is
            optimised for ``steps`` Adam steps (200: on validation styles the per-point error kept
            falling from 100 to 150 to 200) and the best kept; ``retrieve`` bank styles (2 retrieved
            starts lowered the per-point error from 18.5 / 19.9 mm to 15.2 / 17.3 mm, visible /
            hidden); ``free_margin`` 3 mm (about 1.5x the benchmark's 2 mm noise) was chosen on
            validation styles over 4 and 6 mm. The run, input and output fields are not used here.
        init_latents: (K, D) extra starts, optimised first.
    Returns:
        :class:`FitResult` (``hair.dense`` has ``config.strands`` strands; None for 0).
    """
    t0 = time.time()
    if pipe.style_vae is None:
        raise InputError("fitting with the hairstyle prior needs a hairstyle-VAE run")
    cfg, obs, objective, mean, std = _prepare(pipe, observation, config)
    for p in pipe.style_vae.parameters():
        p.requires_grad_(False)
    starts, labels, retrieved = _starts(pipe, obs, cfg, init_latents)
    with progress.bar(len(starts) * int(cfg.steps), f"fitting {len(starts)} starts", cfg.progress) as advance:
        results = _optimise_starts(pipe, objective, starts, cfg, mean, std, advance)
    k = min(range(len(results)), key=lambda i: results[i][0])  # first best, as the loop kept it
    z_best, winner = results[k][1], labels[k]
    with torch.no_grad():
        lat, logit = _decoded(pipe, z_best, mean, std)
    final, parts, hair = _result(pipe, objective, lat, logit > 0, z_best, cfg)
    return FitResult(hair, final, parts, time.time() - t0, cfg.inits, retrieved, winner)


def fit_without_prior(pipe, observation: HairObservation | str | Path,
                      config: HairReconstructConfig | None = None) -> FitResult:
    """The no-prior baseline: guide latents optimised directly from the mean strand (no hairstyle-VAE)
    for ``config.steps`` Adam steps at ``config.lr``, regularised by :data:`GUIDE_REG` ``* |delta / std|^2``;
    every texel has hair. ``hair.latent`` is None."""
    t0 = time.time()
    cfg, obs, objective, mean, std = _prepare(pipe, observation, config)
    V, C = int(pipe.grid.mask.sum()), pipe.strand_vae.config.latent_dim
    base, present = torch.zeros(V, C), torch.ones(V, dtype=torch.bool)
    delta = _optimise_guides(objective, base, present, mean, std, cfg.steps, cfg.lr)
    final, parts, hair = _result(pipe, objective, (base + delta) * std + mean, present, None, cfg)
    return FitResult(hair, final, parts, time.time() - t0, 0, [], "no prior")


def refine_guides(pipe, fit: FitResult, observation: HairObservation | str | Path, steps: int,
                  config: HairReconstructConfig | None = None, lr: float = 0.05, reg: float = GUIDE_REG) -> FitResult:
    """Ablation: refine the guide latents of a prior fit, ``L = decode(z) + delta``, for ``steps`` Adam
    steps with the prior as regulariser (``reg * |delta / std|^2``): visible detail fits better, hidden
    texels stay on the prior's guess. On ``latent4d bench hair_fit`` it raised the per-point error of
    the completed hair, visible and hidden."""
    t0 = time.time()
    cfg, obs, objective, mean, std = _prepare(pipe, observation, config)
    with torch.no_grad():
        lat, logit = _decoded(pipe, fit.hair.latent, mean, std)
    base, present = (lat - mean) / std, logit > 0
    delta = _optimise_guides(objective, base, present, mean, std, steps, lr, reg)
    final, parts, hair = _result(pipe, objective, (base + delta) * std + mean, present, fit.hair.latent, cfg)
    return FitResult(hair, final, parts, fit.seconds + time.time() - t0, fit.inits, fit.retrieved, fit.winner)


# ================================================================================== synthetic observations
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
                          view: str = "front", directions: bool = False,
                          head=None) -> tuple[HairObservation, np.ndarray]:
    """A partial observation of hair ``(S, P, 3)``: ``n_points`` points sampled on the strands visible
    from ``view`` plus Gaussian noise of ``noise`` metres; returns ``(HairObservation, visible (S, P))``."""
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
    return HairObservation(pts.astype(np.float32), dirs, f"{view} view", parse_view(view)), vis

