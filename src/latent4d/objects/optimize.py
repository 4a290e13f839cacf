"""Analysis-by-synthesis optimisation of shape code, appearance code, rotation, translation and
log-scale of one object from one RGB-D view (ShAPO's test-time optimisation, improved).

Pose convention: ``x_cam = s * R @ x_canonical + t`` (R (3, 3), t (3,) metres, s metric half-diagonal).
The rotation is parameterised by its 6D representation (first two columns, Gram-Schmidt) or by an
so(3) increment ``R = exp(w) @ R0``; never by a raw 3 x 3 matrix (except in the ``recipe="shapo"``
reference loop below, which reproduces that weakness on purpose).

Loss of the default recipe (``"latent4d"``), distances in centimetres with a Huber penalty:

* ``sdf``: metric SDF of the observed points mapped into the canonical frame, ``s * f(x_i)`` -> 0;
* ``obs``: distance of every observed point to its nearest octree surface point (one-sided,
  observations must lie on the predicted surface; Open3D knn, gradients through the surface
  points, which move with the codes via the projection step);
* ``vis``: distance of the predicted *visible* surface points (facing the camera, inside the
  image, not behind the observed depth) to their nearest observed point;
* ``color``: L1 between the appearance network at the observed points and their RGB, weighted by
  how close the points are to the predicted surface;
* ``prior``: Gaussian priors on both codes fitted to the category's database codes (sample
  covariance, shrunk towards a scaled identity): moving along the category's variations is cheap;
* ``support``: the supporting plane (:func:`supporting_plane`, RANSAC on the depth outside every
  mask) is solid: predicted surface points more than ``support_margin`` below it are penalised (the
  visibility term cannot see them: they hide behind the observed table), and an object whose
  observations reach within ``contact_height`` of the plane rests on it (the mean height of its lowest
  1 % of surface points -> 0). Without it a laptop whose shape code opens the lid at another angle
  tilts about the hinge and floats (validation frames: 28 deg -> 3 deg). Objects whose observations are
  not above the plane, and frames without a plane, get no such term.

Codes are frozen for the first ``warmup`` iterations (pose and size first); at the end of the
warm-up they restart from the best database codes of the category when those explain the
observations better; learning rates decay by cosine to ``lr_final`` of their start value.

The ``"shapo"`` recipe (the benchmark's reference; worse) is the official ShAPO loop run through the
same code: raw 3 x 3 rotation matrix and translation (Adam, lr 1e-4), raw scale (Adam, 1e-4),
appearance code (Adam, 1e-2), shape code (SGD, 8e-5), loss = mean distance of predicted surface
points to their nearest canonicalised observed point (pairs < 0.2) + L2 colour error of those pairs,
octree with the ``|sdf| < side`` rule rebuilt every iteration, no warm-up, every band point. (The
official loop also fine-tunes the colour network per object, jointly; here that is the separate
option below.) Its result rotation is the nearest rotation to the final matrix.

Appearance fine-tuning (``appearance_finetune`` steps, 100 by default; 0 turns it off): after either
recipe, a copy of the appearance network made for that object (:meth:`AppearanceNet.finetune_copy`) is
fitted to the observed colours for ``appearance_finetune`` Adam steps (:func:`finetune_appearance`); the result
carries the copy (``ObjectReconstruction.appearance_net``) and its mesh is coloured by it, while the
pipeline's network stays unchanged. ShAPO (``opt/optimization_all.py``) loads a fresh colour network
per object and optimises all its weights with Adam at lr 1e-4 jointly with the codes and pose for its
200 iterations, on the L2 norm of the RGB difference between each predicted surface point and its
nearest canonicalised observed point (pairs < 0.2); here the pose and codes are final first, and the
loss is the ``color`` term's weighted L1 at the surface points nearest to the observations (the
reconstruction takes them from the output mesh's vertices, which it decodes anyway).

Every function takes its settings as a :class:`latent4d.objects.reconstruct.ObjectsReconstructConfig`
(``config``; defaults in ``conf/reconstruct/objects.yaml``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from latent4d.errors import InputError
from latent4d.geometry.distances import knn, nearest_distance
from latent4d.geometry.octree import octree_band, project_to_surface, sdf_keep, shapo_keep
from latent4d.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_6d,
    project_to_rotation,
    sixd_to_matrix,
)
from latent4d.objects.synthetic import SYMMETRIC
from latent4d.objects.types import ObjectObservation, ObjectReconstruction, PoseInit

RECIPES = ("latent4d", "shapo")
"""``latent4d``: the default recipe; ``shapo``: the official ShAPO loop (benchmark reference)."""
ROTATIONS = ("6d", "so3")
"""Rotation parametrisations of the default recipe (the ShAPO recipe optimises the raw matrix)."""
START_LEVEL = 2
"""Coarsest octree level of the surface band (4^3 cells)."""
SHAPO_PAIR_THRESHOLD = 0.2
"""ShAPO recipe: surface / observation pairs farther apart than this (canonical units) are ignored."""
LOSS_TERMS = (("sdf", "w_sdf", False), ("obs", "w_obs", False), ("vis", "w_vis", False), ("color", "w_color", False),
              ("prior_shape", "w_shape_prior", True), ("prior_app", "w_app_prior", True),
              ("support", "w_support", False))
"""The default recipe's loss terms: (name in the terms dict, weight in the config, code prior?), in the
order they are summed."""
SHAPO_SETTINGS = {"band_every": 1, "band_tolerance": -1.0, "warmup": 0, "max_surface_points": 0}
"""ShAPO recipe: the official loop's octree band schedule (every iteration, all points) and no warm-up."""


def _huber(x: torch.Tensor, delta: float) -> torch.Tensor:
    a = x.abs()
    return torch.where(a < delta, 0.5 * a * a / delta, a - 0.5 * delta)


class _Params(torch.nn.Module):
    """The optimised variables of one object."""

    def __init__(self, init: PoseInit, rotation: str, log_scale: bool):
        super().__init__()
        R0 = torch.as_tensor(np.asarray(init.R), dtype=torch.float32)
        self.rotation = rotation
        self.register_buffer("R0", R0)
        if rotation == "6d":
            self.rot = torch.nn.Parameter(matrix_to_6d(R0))
        elif rotation == "so3":
            self.rot = torch.nn.Parameter(torch.zeros(3))
        else:  # raw matrix: the ShAPO reference only
            self.rot = torch.nn.Parameter(R0.clone())
        self.t = torch.nn.Parameter(torch.as_tensor(np.asarray(init.t), dtype=torch.float32).clone())
        s0 = float(init.scale)
        self.log_scale = log_scale
        self.s = torch.nn.Parameter(torch.tensor(math.log(s0) if log_scale and s0 > 0 else s0, dtype=torch.float32))
        self.zs = torch.nn.Parameter(torch.as_tensor(init.shape_code, dtype=torch.float32).detach().clone())
        self.za = torch.nn.Parameter(torch.as_tensor(init.appearance_code, dtype=torch.float32).detach().clone())

    def R(self) -> torch.Tensor:
        if self.rotation == "6d":
            return sixd_to_matrix(self.rot)
        if self.rotation == "so3":
            return axis_angle_to_matrix(self.rot) @ self.R0
        return self.rot

    def scale(self) -> torch.Tensor:
        return self.s.exp() if self.log_scale else self.s

    def finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.parameters())


class ObjectOptimizer:
    """Optimise one object at a time against a pipeline's decoders (which stay frozen).

    ``config``: :class:`latent4d.objects.reconstruct.ObjectsReconstructConfig`; ``recipe``: one of
    :data:`RECIPES` (``"shapo"`` replaces the band schedule, warm-up and rotation parametrisation by
    the official loop's, :data:`SHAPO_SETTINGS`).
    """

    def __init__(self, pipeline, config, recipe: str = "latent4d"):
        if recipe not in RECIPES:
            raise InputError(f"recipe must be one of {RECIPES}, got '{recipe}'")
        if config.rotation not in ROTATIONS:
            raise InputError(f"rotation must be one of {ROTATIONS}, got '{config.rotation}'")
        self.pipe = pipeline
        self.recipe = recipe
        self.shapo = recipe == "shapo"
        self.cfg = replace(config, **SHAPO_SETTINGS) if self.shapo else config
        self.rotation = "matrix" if self.shapo else config.rotation
        self._prior: dict[str | None, dict] = {}

    def _prior_stats(self, category: str | None) -> dict[str, torch.Tensor]:
        if category not in self._prior:
            try:
                g = self.pipe.database.code_gaussian(category, self.cfg.prior_shrink)
            except InputError:
                g = self.pipe.database.code_gaussian(None, self.cfg.prior_shrink)
            self._prior[category] = {k: v.detach() for k, v in g.items()}
        return self._prior[category]

    # ------------------------------------------------------------------------------------------
    def optimize(self, obs: ObjectObservation, init: PoseInit, frame=None,
                 callback: Callable[[int, dict], bool | None] | None = None,
                 iterations: int | None = None, optimize_codes: bool = True, score: bool = True,
                 finetune: bool = True, plane: tuple[np.ndarray, float] | None | str = "auto") -> ObjectReconstruction:
        """Run the optimisation; returns an :class:`ObjectReconstruction` (mesh not yet extracted).

        ``callback(iteration, state)`` is called after every iteration with ``state`` =
        ``{"loss": float, "terms": {name: float}, "R": (3, 3), "t": (3,), "scale": float,
        "shape_code": (D,), "appearance_code": (D,), "surface_points": (K, 3) camera frame,
        "surface_colors": (K, 3) in [0, 1]}`` (numpy, detached); returning ``False`` stops.
        ``frame`` (the full RGB-D input, an :class:`~latent4d.geometry.rgbd.RGBDFrame`) enables the
        visibility test of the ``vis`` term. ``finetune=False`` leaves the appearance fine-tuning to the
        caller (:func:`latent4d.objects.reconstruct.reconstruct_scene` runs it on the output mesh's vertices).
        ``plane``: the frame's supporting plane ``(up (3,), offset)`` of the ``support`` term
        (:func:`supporting_plane`), None for none, ``"auto"``: fitted to ``frame`` here.
        """
        n_it = self.cfg.iterations if iterations is None else iterations
        dev = self.pipe.device
        params = _Params(init, self.rotation, log_scale=not self.shapo).to(dev)
        view = None
        if frame is not None:
            view = (torch.as_tensor(np.asarray(frame.depth), dtype=torch.float32, device=dev),
                    torch.as_tensor(np.asarray(frame.K), dtype=torch.float32, device=dev))
        if isinstance(plane, str):
            plane = supporting_plane(frame) if frame is not None and self.cfg.w_support > 0 else None
        support = None if self.shapo else object_support(obs, plane, self.cfg)
        if support is not None:
            support = (torch.as_tensor(support[0], dtype=torch.float32, device=dev), *support[1:])
        t0 = time.perf_counter()
        it, status, reason, history, terms = self._loop(
            params, torch.as_tensor(obs.points, device=dev), torch.as_tensor(obs.colors, device=dev), init,
            (view, support), n_it, obs.instance_id, callback, optimize_codes)
        res = ObjectReconstruction(obs.instance_id, category=init.category, history=history, iterations=it,
                                   seconds=time.perf_counter() - t0, status=status, reason=reason)
        if status == "ok":
            self._finish(res, params, terms, obs, score)
        if res.status == "ok" and optimize_codes and finetune and self.cfg.appearance_finetune > 0:
            t1 = time.perf_counter()
            res.appearance_net = finetune_appearance(self.pipe, obs, res, self.cfg)
            res.seconds += time.perf_counter() - t1
        return res

    def _optimizers(self, params: _Params, n_it: int, optimize_codes: bool) -> tuple[list, list]:
        """(optimizers, lr schedulers) of the recipe."""
        cfg = self.cfg
        if self.shapo:
            opt_a = torch.optim.Adam([{"params": [params.rot, params.t], "lr": 1e-4},
                                      {"params": [params.s], "lr": 1e-4},
                                      {"params": [params.za], "lr": 1e-2}])
            return [opt_a, torch.optim.SGD([params.zs], lr=8e-5)], []
        groups = [{"params": [params.rot], "lr": cfg.lr_rotation}, {"params": [params.t], "lr": cfg.lr_translation},
                  {"params": [params.s], "lr": cfg.lr_scale}]
        if optimize_codes:
            groups += [{"params": [params.zs], "lr": cfg.lr_shape}, {"params": [params.za], "lr": cfg.lr_appearance}]
        opt = torch.optim.Adam(groups)

        def lam(i: int) -> float:  # cosine decay to lr_final
            return cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * min(i, n_it) / max(n_it, 1)))

        return [opt], [torch.optim.lr_scheduler.LambdaLR(opt, lam)]

    def _loop(self, params: _Params, P: torch.Tensor, C: torch.Tensor, init: PoseInit, scene, n_it: int,
              seed: int, callback, optimize_codes: bool) -> tuple[int, str, str, list[float], dict]:
        """The iterations: ``(iterations done, status, reason, loss history, last loss terms)``; ``scene``:
        ``(view, support)`` of :meth:`_loss`."""
        cfg = self.cfg
        optimizers, scheds = self._optimizers(params, n_it, optimize_codes)
        prior = self._prior_stats(init.category)
        keep = shapo_keep() if self.shapo else sdf_keep()
        gen = torch.Generator().manual_seed(seed)
        band, history, terms, frozen = None, [], {}, None
        built_at, drifted = -1, 1.0  # iteration of the last band; fraction of its points that left it
        for it in range(n_it):
            if not params.finite():
                return it, "diverged", f"a parameter is NaN or infinite at iteration {it}", history, terms
            codes_on = optimize_codes and (self.shapo or it >= cfg.warmup)
            if codes_on and not self.shapo and it == cfg.warmup:
                self._retrieve(params, P, C, init.category)
                band = None  # the shape changed: rebuild the band
            zs = params.zs if codes_on else params.zs.detach()
            za = params.za if codes_on else params.za.detach()
            fn = self.pipe.shape_decoder.bind(zs)
            if band is None or (codes_on and it - built_at >= max(1, cfg.band_every) and drifted > cfg.band_tolerance):
                band, built_at, frozen = self._surface_band(zs.detach(), keep, gen), it, None
            centers, normals, side = band
            if codes_on or frozen is None:
                # projection with the cached (constant) normals: p' = p - f(p) n, differentiable via f
                with torch.set_grad_enabled(codes_on):
                    f_c = fn(centers)
                    S = centers - f_c[:, None] * normals
                drifted = float((f_c.detach().abs() > side).float().mean()) if len(f_c) else 1.0
                # codes frozen (warm-up, pose-only fits): the surface is a constant until the band changes
                frozen = None if codes_on else (S, drifted)
            else:
                S, drifted = frozen
            if len(S) < 4:
                return it, "diverged", f"the predicted surface vanished at iteration {it}", history, terms
            if not bool(torch.isfinite(S).all()):
                return it, "diverged", f"the predicted surface became NaN at iteration {it}", history, terms
            R, s, t = params.R(), params.scale(), params.t
            if self.shapo:
                loss, terms = self._shapo_loss(P, C, S, R, s, t, zs, za)
            else:
                loss, terms = self._loss(P, C, S, normals, R, s, t, zs, za, fn, prior, *scene)
            if not torch.isfinite(loss):
                return it, "diverged", f"the loss became {float(loss)} at iteration {it}", history, terms
            for o in optimizers:
                o.zero_grad(set_to_none=True)
            loss.backward()
            for o in optimizers:
                o.step()
            for sc in scheds:
                sc.step()
            history.append(float(loss.detach()))
            if callback is not None and callback(it, self._state(params, history[-1], terms, S, zs, za)) is False:
                return it + 1, "ok", "", history, terms
        return n_it, "ok", "", history, terms

    @torch.no_grad()
    def _finish(self, res: ObjectReconstruction, params: _Params, terms: dict, obs: ObjectObservation,
                score: bool) -> None:
        """Fill the final pose, size, codes, loss and score into ``res`` (diverged when not finite)."""
        R = params.R().detach()
        if self.shapo:
            R = project_to_rotation(R)
        res.R = R.cpu().numpy().astype(np.float64)
        res.t = params.t.detach().cpu().numpy().astype(np.float64)
        res.scale = float(params.scale().detach())
        res.shape_code = params.zs.detach().cpu().numpy()
        res.appearance_code = params.za.detach().cpu().numpy()
        res.loss = {k: float(v) for k, v in terms.items()}
        res.score = self.inlier_fraction(obs, res) if score else 0.0
        if not (np.isfinite(res.R).all() and np.isfinite(res.t).all() and np.isfinite(res.scale) and res.scale > 0):
            res.status, res.reason = "diverged", "the final pose is not finite (or the scale is not positive)"

    @torch.no_grad()
    def _retrieve(self, params: _Params, P: torch.Tensor, C: torch.Tensor, category: str | None) -> None:
        """Coarse search over the latent database: keep the current shape code unless a database code
        of the category explains the observations better (robust metric SDF at the observed points
        under the current pose); same for the appearance code with the colour error."""
        db = self.pipe.database
        try:
            idx = db.category_indices(category).to(P.device)
        except InputError:
            idx = torch.arange(len(db), device=P.device)
        R, s, t = params.R(), params.scale(), params.t
        X = ((P - t) @ R) / s
        cand_s = torch.cat([params.zs.detach()[None], db.shape(idx)])
        f = self.pipe.shape_decoder(X[None].expand(len(cand_s), -1, -1), cand_s)  # (K, N)
        cost = _huber(100.0 * s * f, self.cfg.huber_cm).mean(-1)
        k = int(cost.argmin())
        params.zs.copy_(cand_s[k])
        cand_a = torch.cat([params.za.detach()[None], db.appearance(idx)])
        near = (100.0 * s * f[k]).abs() < self.cfg.color_sigma_cm
        if int(near.sum()) >= 10:
            col = self.pipe.appearance(X[near][None].expand(len(cand_a), -1, -1), cand_s[k], cand_a)
            ka = int((col - C[near][None]).abs().mean((-1, -2)).argmin())
            params.za.copy_(cand_a[ka])

    def _surface_band(self, zs: torch.Tensor, keep, gen: torch.Generator):
        """Octree band of the current shape (no gradients) reduced to the cells whose centre is within
        one cell side of the surface, at most ``max_surface_points`` of them (random, reproducible),
        with their unit normals. Returns ``(centers (K, 3), normals (K, 3), cell side)``."""
        cfg = self.cfg
        fn = self.pipe.shape_decoder.bind(zs)
        band = octree_band(fn, cfg.octree_level, START_LEVEL, keep=keep)
        near = band.values.abs() < band.side
        c = band.centers[near]
        if cfg.max_surface_points and len(c) > cfg.max_surface_points:
            c = c[torch.randperm(len(c), generator=gen)[: cfg.max_surface_points].to(c.device)]
        _, _, n = project_to_surface(fn, c, create_graph=False)
        return c, n.detach(), float(band.side)


    def _loss(self, P, C, S, nrm, R, s, t, zs, za, fn, prior, view, support):
        """The default recipe's loss (see the module docstring) and its terms; ``view``: (depth (H, W) m,
        K (3, 3)) of the frame for the visibility test, or None; ``support``: :func:`object_support`'s
        ``(up, offset, contact)`` (``up`` a tensor) or None."""
        cfg = self.cfg
        depth, K = view if view is not None else (None, None)
        X = ((P - t) @ R) / s
        f = fn(X)
        r_sdf = 100.0 * s * f  # cm
        l_sdf = _huber(r_sdf, cfg.huber_cm).mean()
        S_cam = s * S @ R.T + t
        d_obs, _ = nearest_distance(P, S_cam)
        l_obs = _huber(100.0 * d_obs, cfg.huber_cm).mean()
        l_vis = torch.zeros((), device=P.device)
        if cfg.w_vis > 0:
            with torch.no_grad():
                Sc = S_cam.detach()
                front = ((nrm @ R.detach().T) * Sc).sum(-1) < 0
                vis = front & (Sc[:, 2] > 1e-3)
                if depth is not None:
                    u = (K[0, 0] * Sc[:, 0] / Sc[:, 2].clamp_min(1e-3) + K[0, 2]).round().long()
                    v = (K[1, 1] * Sc[:, 1] / Sc[:, 2].clamp_min(1e-3) + K[1, 2]).round().long()
                    H, W = depth.shape
                    inb = (u >= 0) & (u < W) & (v >= 0) & (v < H)
                    D = torch.zeros_like(Sc[:, 2])
                    D[inb] = depth[v[inb], u[inb]]
                    vis &= inb & (D > 0) & (D > Sc[:, 2] - cfg.vis_margin)
            if int(vis.sum()) > 0:
                d_vis, _ = nearest_distance(S_cam[vis], P)
                l_vis = _huber(100.0 * d_vis, cfg.huber_cm).mean()
        l_sup = self._support_loss(S_cam, support)
        col = self.pipe.appearance(X, zs.detach(), za)
        wc = torch.exp(-(r_sdf.detach() / cfg.color_sigma_cm) ** 2)
        l_col = (wc * (col - C).abs().sum(-1)).sum() / wc.sum().clamp_min(1e-6) / 3.0
        ds, da = zs - prior["shape_mean"], za - prior["appearance_mean"]
        p_s = ds @ prior["shape_precision"] @ ds / len(ds)  # Mahalanobis, per dimension
        p_a = da @ prior["appearance_precision"] @ da / len(da)
        raw = {"sdf": l_sdf, "obs": l_obs, "vis": l_vis, "color": l_col, "prior_shape": p_s, "prior_app": p_a,
               "support": l_sup}
        loss = sum(getattr(cfg, w) * raw[k] for k, w, _ in LOSS_TERMS)
        return loss, {k: v.detach() for k, v in raw.items()}

    def _support_loss(self, S_cam: torch.Tensor, support) -> torch.Tensor:
        """The ``support`` term (cm, Huber) of the surface points ``S_cam`` (K, 3) camera metres."""
        if support is None:  # None as well when w_support is 0 (object_support)
            return torch.zeros((), device=S_cam.device)
        up, off, contact = support
        h = S_cam @ up + off  # height above the plane (m)
        below = (-h - self.cfg.support_margin).clamp_min(0)
        loss = _huber(100.0 * below, self.cfg.huber_cm).mean()
        if contact:
            low = torch.topk(h, max(1, len(h) // 100), largest=False).values.mean()
            loss = loss + _huber(100.0 * low, self.cfg.huber_cm)
        return loss

    def _shapo_loss(self, P, C, S, M, s, t, zs, za):
        """The official ShAPO loop's loss (raw matrix ``M``) and its terms."""
        X = ((P - t) @ torch.linalg.inv(M).T) / s  # (s M)^-1 (p - t)
        _, idx = knn(S, X, 1)
        nn = X[idx[:, 0]]
        d = (nn - S).norm(dim=-1)
        close = d.detach() < SHAPO_PAIR_THRESHOLD
        if int(close.sum()) == 0:
            z = (S.sum() + X.sum()) * 0.0
            return z, {"shapo_3d": z.detach(), "shapo_rgb": z.detach()}
        col = self.pipe.appearance(S[close], zs, za)
        l3 = d[close].mean()
        lrgb = (C[idx[:, 0]][close] - col).norm(dim=-1).mean()
        return l3 + lrgb, {"shapo_3d": l3.detach(), "shapo_rgb": lrgb.detach()}

    @torch.no_grad()
    def _state(self, params, loss, terms, S, zs, za) -> dict:
        R = params.R().detach()
        s = params.scale().detach()
        Sd = S.detach()
        cols = self.pipe.appearance(Sd, zs.detach(), za.detach())
        return {"loss": loss, "terms": {k: float(v) for k, v in terms.items()}, "R": R.cpu().numpy(),
                "t": params.t.detach().cpu().numpy(), "scale": float(s), "shape_code": params.zs.detach().cpu().numpy(),
                "appearance_code": params.za.detach().cpu().numpy(),
                "surface_points": (s * Sd @ R.T + params.t.detach()).cpu().numpy(), "surface_colors": cols.cpu().numpy()}

    @torch.no_grad()
    def inlier_fraction(self, obs: ObjectObservation, res, tol: float = 0.01, surface=None) -> float:
        """Fraction of observed points within ``tol`` metres of the reconstructed surface (a confidence
        score in [0, 1]); the surface is the octree band at ``octree_level + 1`` (cells within half a side),
        or ``surface`` (K, 3) canonical points given (a mesh's vertices)."""
        dev = self.pipe.device
        pts = (self.pipe.band_points(torch.as_tensor(res.shape_code, device=dev), level=self.cfg.octree_level + 1)
               if surface is None else torch.as_tensor(np.asarray(surface), dtype=torch.float32, device=dev))
        if len(pts) == 0:
            return 0.0
        R = torch.as_tensor(res.R, dtype=torch.float32, device=dev)
        S = res.scale * pts @ R.T + torch.as_tensor(res.t, dtype=torch.float32, device=dev)
        d, _ = nearest_distance(torch.as_tensor(obs.points, device=dev), S)
        return float((d < tol).float().mean())



def finetune_appearance(pipe, obs: ObjectObservation, res: ObjectReconstruction, config,
                        level: int = 6, surface: torch.Tensor | None = None) -> torch.nn.Module:
    """A per-object copy of ``pipe.appearance`` fine-tuned to one object's observed colours.

    The observed points (``obs.points`` (N, 3) camera metres, ``obs.colors`` (N, 3) in [0, 1]) are
    mapped into the canonical frame by the result's pose and snapped to the nearest point of the
    decoded surface (octree ``level``, as the colour metric does; or ``surface`` (K, 3) canonical points
    given, e.g. the output mesh's vertices); ``config.appearance_finetune``
    Adam steps at ``config.appearance_finetune_lr`` on ``config.appearance_finetune_params`` minimise
    the weighted L1 of the ``color`` term there (weight ``exp(-(d / color_sigma_cm)^2)``, d the metric
    distance of the observation to the surface). Codes, pose and ``pipe.appearance`` stay unchanged;
    returns the fine-tuned copy (eval mode, frozen).
    """
    dev = pipe.device
    net, trainable = pipe.appearance.finetune_copy(config.appearance_finetune_params)
    zs = torch.as_tensor(res.shape_code, device=dev)
    za = torch.as_tensor(res.appearance_code, device=dev)
    with torch.no_grad():
        R = torch.as_tensor(res.R, dtype=torch.float32, device=dev)
        t = torch.as_tensor(res.t, dtype=torch.float32, device=dev)
        X = ((torch.as_tensor(obs.points, device=dev) - t) @ R) / res.scale
        surf = (pipe.surface_points(zs, level=level)["points"].detach() if surface is None
                else torch.as_tensor(surface, dtype=torch.float32, device=dev))
        if len(surf) == 0:
            return net.requires_grad_(False)
        d, idx = nearest_distance(X, surf)
        Y = surf[idx]
        w = torch.exp(-(100.0 * res.scale * d / config.color_sigma_cm) ** 2)
        w = w / w.sum().clamp_min(1e-6)
    C = torch.as_tensor(obs.colors, device=dev)
    opt = torch.optim.Adam(trainable, lr=config.appearance_finetune_lr)
    for _ in range(config.appearance_finetune):
        loss = (w * (net(Y, zs, za) - C).abs().sum(-1)).sum() / 3.0
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.requires_grad_(False).eval()


# ----------------------------------------------------------------------------------------------
# initial estimate from the observation


def supporting_plane(frame, min_inliers: int = 500, seed: int = 0) -> tuple[np.ndarray, float] | None:
    """The dominant plane of the depth outside every instance mask (all of the depth when the frame has
    no mask): :func:`ransac_plane` with 6 mm inliers.

    Returns ``(up (3,), offset)`` with ``up . x + offset`` the height of a camera-frame point above
    the plane, ``up`` pointing towards the camera; None when fewer than ``min_inliers`` pixels fit one.
    """
    from latent4d.geometry.rgbd import backproject_depth

    mask = getattr(frame, "mask", None)
    pts, _ = backproject_depth(frame.depth, frame.K, np.ones(frame.depth.shape, bool) if mask is None else mask == 0)
    if len(pts) < min_inliers:
        return None
    rng = np.random.default_rng(seed)
    if len(pts) > 20000:
        pts = pts[rng.choice(len(pts), 20000, replace=False)]
    fit = ransac_plane(pts.astype(np.float64), 0.006, rng)
    if fit is None or fit[2] < min_inliers:
        return None
    n, d, _ = fit
    if d < 0:  # the camera (origin) must be above the plane: n . 0 + d > 0
        n, d = -n, -d
    return n, d


def ransac_plane(pts: np.ndarray, threshold: float, rng: np.random.Generator, hypotheses: int = 200,
                 refine: int = 2) -> tuple[np.ndarray, float, int] | None:
    """RANSAC plane of ``pts`` (N, 3) metres: ``hypotheses`` planes through 3 random points, the one with
    the most points within ``threshold`` metres (the first on ties) refined ``refine`` times by least
    squares on its inliers. Returns ``(unit normal (3,), offset, inliers)`` with ``n . x + offset`` the
    signed distance, or None for fewer than 3 points or no non-degenerate triple.

    Seeded by ``rng`` alone and the same from run to run: Open3D's multithreaded ``segment_plane`` is not,
    even with ``open3d.utility.random.seed`` (which thread finds the best plane first depends on the
    machine's load: two offsets 0.81270 / 0.81275 m for one frame), and the refinement optimised from it
    amplified that into different poses."""
    if len(pts) < 3:
        return None
    tri = pts[rng.integers(0, len(pts), size=(hypotheses, 3))]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(n, axis=1)
    ok = norm > 1e-12
    if not ok.any():
        return None
    n = n[ok] / norm[ok, None]
    d = -np.einsum("ij,ij->i", n, tri[ok, 0])
    best = int(np.argmax([(np.abs(pts @ nk + dk) < threshold).sum() for nk, dk in zip(n, d)]))
    n, d = n[best], float(d[best])
    for _ in range(refine):
        inl = pts[np.abs(pts @ n + d) < threshold]
        if len(inl) < 3:
            break
        c = inl.mean(0)
        _, _, vt = np.linalg.svd(inl - c, full_matrices=False)
        n = vt[-1] if vt[-1] @ n >= 0 else -vt[-1]
        d = float(-n @ c)
    return n, d, int((np.abs(pts @ n + d) < threshold).sum())


def object_support(obs: ObjectObservation, plane: tuple[np.ndarray, float] | None,
                   config) -> tuple[np.ndarray, float, bool] | None:
    """``(up, offset, contact)`` of the ``support`` term for one object, or None: no plane, or fewer than
    95 % of the observed points above it (less ``config.support_margin``: the object is not on its camera
    side). ``contact``: the lowest observations (2nd percentile) are within ``config.contact_height`` m
    of the plane, so the object rests on it."""
    if plane is None or config.w_support <= 0:
        return None
    up, off = np.asarray(plane[0], np.float64), float(plane[1])
    h = obs.points.astype(np.float64) @ up + off
    if len(h) == 0 or float((h > -config.support_margin).mean()) < 0.95:
        return None
    return up, off, bool(np.percentile(h, 2) < config.contact_height)


def estimate_up(frame, min_inliers: int = 500, seed: int = 0) -> tuple[np.ndarray, float]:
    """:func:`supporting_plane`; when none is found, image-up (-y) through the lowest observed points."""
    plane = supporting_plane(frame, min_inliers, seed)
    return plane if plane is not None else _lowest_points_up(frame)


def _lowest_points_up(frame) -> tuple[np.ndarray, float]:
    """Image-up (-y) through the lowest observed point of the instances: the plane when none is found."""
    from latent4d.geometry.rgbd import backproject_depth

    up = np.array([0.0, -1.0, 0.0])
    obj, _ = backproject_depth(frame.depth, frame.K, frame.mask > 0)
    return up, float(-(obj @ up).min()) if len(obj) else 0.0


def _frame_from_up(up: np.ndarray, yaw_dir: np.ndarray) -> np.ndarray:
    """Rotation whose columns are (x, y=up, z) with x along ``yaw_dir`` projected on the plane."""
    x = yaw_dir - up * (yaw_dir @ up)
    x /= max(np.linalg.norm(x), 1e-9)
    z = np.cross(x, up)
    return np.stack([x, up, z], 1)



def _candidates(pipe, obs: ObjectObservation, up: np.ndarray, off: float, category: str | None,
                huber_cm: float) -> list[tuple[float, PoseInit]]:
    """(score, PoseInit) for every (category, yaw) hypothesis: height -> scale with the category's mean
    shape, footprint centroid pushed away from the camera -> position, footprint principal axis ->
    yaw (x4 for non-symmetric categories); score: robust SDF of the observations (lower is better)."""
    dev = pipe.device
    P = obs.points.astype(np.float64)
    h = P @ up + off
    top = max(float(np.percentile(h, 98)), 0.01)
    foot = P - np.outer(h, up)
    c0 = foot.mean(0)
    Q = foot - c0
    _, V = np.linalg.eigh(Q.T @ Q / max(len(Q), 1))
    major = V[:, -1]
    view = c0 - up * (c0 @ up)
    view /= max(np.linalg.norm(view), 1e-9)
    cands = []
    Pt = torch.as_tensor(obs.points, device=dev)
    for cat in [category] if category else sorted(set(pipe.database.categories)):
        zs, za = pipe.mean_codes(cat)
        pts = pipe.band_points(zs, level=5).cpu().numpy()
        if len(pts) == 0:
            continue
        lo, hi = pts.min(0), pts.max(0)
        s = top / max(hi[1] - lo[1], 1e-3)
        centre = c0 + view * (0.25 * s * 0.5 * ((hi[0] - lo[0]) + (hi[2] - lo[2])))
        mid = 0.5 * (lo + hi)
        for yaw in [0.0] if cat in SYMMETRIC else [0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi]:
            R = _frame_from_up(up, np.cos(yaw) * major + np.sin(yaw) * np.cross(up, major))
            # canonical centre height: the bottom (lo_y) sits on the plane; in-plane shift by the
            # canonical centre offset of the mean shape
            t = centre + up * (-s * lo[1]) - up * (centre @ up + off)
            t = t - s * (R @ np.array([mid[0], 0.0, mid[2]]))
            with torch.no_grad():
                Rt = torch.as_tensor(R, dtype=torch.float32, device=dev)
                X = ((Pt - torch.as_tensor(t, dtype=torch.float32, device=dev)) @ Rt) / s
                score = float(_huber(100 * s * pipe.sdf(X, zs), huber_cm).mean())
            cands.append((score, PoseInit(R, t, float(s), zs.detach(), za.detach(), cat)))
    return cands


def initial_estimate(pipe, frame, obs: ObjectObservation, category: str | None, config,
                     plane: tuple[np.ndarray, float] | None | str = "auto", with_cost: bool = False):
    """Initial pose, size and codes from the observation alone.

    Up axis from the supporting plane (``plane``, see :meth:`ObjectOptimizer.optimize`; without one
    :func:`estimate_up`'s fallback); every (category, yaw) hypothesis (:func:`_candidates`) is scored by
    the SDF of the observations and the best ``config.init_candidates`` are optimised briefly
    (``config.init_iterations``, pose and scale only, :func:`fit_starts`) to pick one, by :func:`fit_cost`.
    ``with_cost``: returns ``(PoseInit, cost)``, the cost of that brief fit (None when nothing was fitted:
    one candidate, or ``init_iterations`` 0).
    """
    if isinstance(plane, str):
        plane = supporting_plane(frame)
    up, off = plane if plane is not None else _lowest_points_up(frame)
    cands = _candidates(pipe, obs, up, off, category, config.huber_cm)
    if not cands:
        raise InputError(f"instance {obs.instance_id}: no usable category prior in the database")
    cands.sort(key=lambda c: c[0])
    best = [c for _, c in cands[: max(1, config.init_candidates)]]
    scored = fit_starts(pipe, frame, obs, best, config, plane) if len(best) > 1 else []
    out = scored[0] if scored else (best[0], None)
    return out if with_cost else out[0]


def fit_starts(pipe, frame, obs: ObjectObservation, starts: list[PoseInit], config,
               plane: tuple[np.ndarray, float] | None) -> list[tuple[PoseInit, float]]:
    """Each start optimised briefly (``config.init_iterations`` pose-and-scale iterations, codes frozen,
    no visibility term) as ``(fitted PoseInit with the start's codes, fit_cost)``, best first; starts
    that diverge are left out. Empty when ``init_iterations`` is 0."""
    if config.init_iterations <= 0:
        return []
    short = ObjectOptimizer(pipe, replace(config, iterations=config.init_iterations, warmup=0, w_vis=0.0))
    scored = []
    for c in starts:
        r = short.optimize(obs, c, frame=frame, optimize_codes=False, score=False, plane=plane)
        if r.status == "ok":
            scored.append((PoseInit(r.R, r.t, r.scale, c.shape_code, c.appearance_code, c.category),
                           fit_cost(r, config)))
    return sorted(scored, key=lambda c: c[1])


def fit_cost(res: ObjectReconstruction, config) -> float:
    """The weighted loss of a result's last iteration without the code priors (``inf`` unless ``ok``):
    how well a brief pose-only fit explains the observations. Starts are compared by it: their codes
    are frozen, so the priors would only add a constant per start (large for a detector's code of a
    small object) and the refinement re-chooses the codes anyway."""
    if res.status != "ok" or not res.loss:
        return float("inf")
    return float(sum(getattr(config, w) * res.loss.get(k, 0.0) for k, w, prior in LOSS_TERMS if not prior))


def perturb_pose(R: np.ndarray, t: np.ndarray, scale: float, rng: np.random.Generator, rot_deg: float = 20.0,
                 trans_m: float = 0.04, scale_frac: float = 0.2) -> tuple[np.ndarray, np.ndarray, float]:
    """Ground truth perturbed by exactly ``rot_deg`` about a random axis, ``trans_m`` in a random
    direction and a scale factor of ``1 +- scale_frac`` (random sign): the benchmark's start."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    a = np.deg2rad(rot_deg)
    Kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    dR = np.eye(3) + np.sin(a) * Kx + (1 - np.cos(a)) * Kx @ Kx
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    f = 1.0 + scale_frac * (1 if rng.uniform() < 0.5 else -1)
    return dR @ np.asarray(R), np.asarray(t) + trans_m * d, float(scale) * f


__all__ = ["ObjectOptimizer", "RECIPES", "ROTATIONS", "estimate_up", "finetune_appearance", "fit_cost",
           "fit_starts", "initial_estimate", "object_support", "perturb_pose", "ransac_plane", "supporting_plane"]
