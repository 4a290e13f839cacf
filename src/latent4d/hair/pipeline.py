"""Hair inference: :class:`HairPipeline` (sample / encode / decode / interpolate / densify / fit) and
:class:`HairEditor` (global attribute edits, local guide edits with projection, undo / redo).

Typical use::

    from latent4d.hair.pipeline import HairPipeline
    pipe = HairPipeline.from_pretrained("outputs/hair/style_vae/<time>")   # a hairstyle-VAE run
    res = pipe.sample(n=2, seed=0, temperature=0.8, strands=20000)       # list[HairResult]
    z = pipe.encode(some_hairstyle)                                        # (D,) style latent
    frames = pipe.interpolate(res[0].latent, res[1].latent, steps=8)
    ed = pipe.editor(res[0].latent)
    ed.edit_attribute("length", +1.0); ed.cut(ed.select(point=(0, 1.9, 0.05), radius=0.03), fraction=0.5)
    preview = ed.dense(10000); ed.undo()

All positions are metres in the USC-HairSalon head frame; strands have 100 points. Hairstyles come
back as :class:`~latent4d.hair.strands.Hairstyle`; latents as float32 CPU tensors.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from latent4d.errors import ConfigError, InputError
from latent4d.hair.align import check_on_scalp
from latent4d.hair.densify import MODES, densify, guide_world, texel_similarity
from latent4d.hair.edit import DEFAULTS as EDIT_DEFAULTS
from latent4d.hair.edit import apply_op, brush_edit
from latent4d.hair.guides import encode_guides, gather_map, guide_strands, scatter_map
from latent4d.hair.scalp import Scalp
from latent4d.hair.strand_vae import STRAND_VAE_LIMITS, StrandVAE
from latent4d.hair.strands import Hairstyle, resample_polylines, to_local
from latent4d.hair.style_vae import STYLE_VAE_LIMITS, HairstyleVAE
from latent4d.hair.types import EditState, HairResult
from latent4d.pipeline import LatentPipeline


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latents (linear when they are (anti)parallel or tiny)."""
    na, nb = a.norm(), b.norm()
    if float(na) < 1e-8 or float(nb) < 1e-8:
        return (1 - t) * a + t * b
    cos = float(torch.dot(a / na, b / nb).clamp(-1, 1))
    omega = math.acos(cos)
    if omega < 1e-4 or abs(math.pi - omega) < 1e-4:
        return (1 - t) * a + t * b
    s = math.sin(omega)
    return (math.sin((1 - t) * omega) / s) * a + (math.sin(t * omega) / s) * b


class HairPipeline(LatentPipeline):
    """Strand-VAE + hairstyle-VAE inference on one scalp (a :class:`~latent4d.pipeline.LatentPipeline`:
    ``from_pretrained(run or folder, scalp=...)``, ``save_pretrained``, ``components``, ``to``).

    Args:
        strand_vae: trained :class:`StrandVAE`.
        style_vae: trained :class:`~latent4d.hair.style_vae.HairstyleVAE` (None: guide-map level only,
            no sampling / encoding of style latents; a strand-VAE run loads this way).
        scalp: scalp for dense roots and frames: a :class:`Scalp`, a scalp mesh path (``.obj`` /
            ``.ply``, head frame) or None (the one the hairstyle-VAE was trained on).
        bank: :class:`~latent4d.hair.retrieval.LatentBank` of the training styles (retrieval starts for
            fitting); ``from_pretrained`` reads ``style_vae/latent_bank.safetensors`` when there is one.
    """

    family = "hair"
    strand_vae: StrandVAE
    style_vae: HairstyleVAE | None
    component_classes = {"strand_vae": StrandVAE, "style_vae": HairstyleVAE}
    optional = ("style_vae",)
    limits = {"strand_vae": STRAND_VAE_LIMITS, "style_vae": STYLE_VAE_LIMITS}

    def __init__(self, strand_vae: StrandVAE, style_vae: HairstyleVAE | None = None,
                 scalp: Scalp | str | Path | None = None, bank=None):
        if style_vae is not None and style_vae.config.latent_channels != strand_vae.config.latent_dim:
            raise InputError(f"the hairstyle-VAE expects {style_vae.config.latent_channels}-d strand latents but "
                             f"the strand-VAE gives {strand_vae.config.latent_dim}-d ones: the two networks are "
                             "from different runs")
        if bank is not None and style_vae is not None and bank.latents.shape[1] != style_vae.config.style_dim:
            raise InputError(f"the latent bank holds {bank.latents.shape[1]}-d latents but the hairstyle-VAE's are "
                             f"{style_vae.config.style_dim}-d: the bank is from another run")
        self.register_modules(strand_vae=strand_vae.eval(),
                              style_vae=style_vae.eval() if style_vae is not None else None)
        base = style_vae.scalp if style_vae is not None else Scalp()
        if isinstance(scalp, str | Path):
            scalp = Scalp.from_mesh(scalp, head=(style_vae.scalp.head if style_vae is not None else None))
        self.scalp = scalp or base
        self.grid = style_vae.guide_grid if style_vae is not None else base.grid(32)
        self.bank = bank
        self._sim_cache: tuple[int, torch.Tensor] | None = None
        self._roots_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(cls, run_or_folder: str | Path, device: str | torch.device = "cpu", **options) -> HairPipeline:
        """Load from a hairstyle-VAE run directory (``<run>/models/{strand_vae,style_vae}``) or a folder
        written by :meth:`save_pretrained`; a strand-VAE run gives a guide-level pipeline. ``options``
        go to ``__init__`` (``scalp=<Scalp or mesh path>``). The latent bank next to the hairstyle-VAE
        is read first, so that a damaged bank is named as such."""
        if run_or_folder not in (None, "") and "bank" not in options:
            from latent4d.hair.retrieval import LatentBank

            style_dir = cls.component_folder(run_or_folder, "style_vae")
            options["bank"] = LatentBank.load(style_dir) if style_dir is not None else None
        try:
            return super().from_pretrained(run_or_folder, device, **options)
        except InputError as e:
            if str(run_or_folder) in str(e):
                raise
            raise InputError(f"'{run_or_folder}': {e}") from None

    def save_pretrained(self, folder: str | Path) -> Path:
        """Both networks (``strand_vae/``, ``style_vae/``) and ``pipeline.json`` as a whole folder (see
        :meth:`LatentPipeline.save_pretrained`), then the latent bank (``style_vae/latent_bank.safetensors``,
        written atomically) when the pipeline has one."""
        folder = super().save_pretrained(folder)
        if self.style_vae is not None and self.bank is not None:
            self.bank.save(folder / "style_vae")
        return folder

    def _need_style(self, what: str):
        if self.style_vae is None:
            raise ConfigError(f"{what} needs a hairstyle-VAE: load the pipeline from a run of "
                              "`latent4d train experiment=hair/style_vae`")
        return self.style_vae

    @property
    def style_dim(self) -> int:
        return int(self._need_style("style_dim").config.style_dim)

    @property
    def head(self):
        return self.scalp.head

    # ------------------------------------------------------------------ latents <-> guide maps
    def sample_latents(self, n: int = 1, seed: int = 0, temperature: float = 1.0, prior: str = "auto") -> torch.Tensor:
        """``n`` style latents (n, D) (seeded): ``mean + temperature * scale @ eps`` of the Gaussian fitted to
        the training styles' posterior means when the hairstyle-VAE has one (``fitted_prior``, see
        :meth:`HairstyleVAE.fit_prior`), else from N(0, temperature^2 I). ``prior="normal"`` forces N(0, I)."""
        if prior not in ("auto", "normal"):
            raise InputError(f"prior must be 'auto' or 'normal', got '{prior}'")
        vae = self._need_style("sampling")
        g = torch.Generator().manual_seed(int(seed))
        eps = torch.randn(int(n), self.style_dim, generator=g) * float(temperature)
        return eps if prior == "normal" else vae.prior_sample(eps)

    @torch.no_grad()
    def guide_map(self, latent: torch.Tensor) -> torch.Tensor:
        """Guide map(s) of style latent(s): (D,) -> (C+1, H, W); (B, D) -> (B, C+1, H, W)."""
        vae = self._need_style("decoding a style latent")
        z = torch.as_tensor(latent, dtype=torch.float32)
        single = z.dim() == 1
        out = vae.decode(z[None] if single else z)
        return out[0] if single else out

    def guide_map_of(self, hairstyle: Hairstyle) -> torch.Tensor:
        """Guide map (C+1, H, W) of a hairstyle: the strand nearest (in UV) to each texel, encoded."""
        if not isinstance(hairstyle, Hairstyle):
            raise InputError(f"expected a Hairstyle, got {type(hairstyle).__name__}")
        hairstyle.validate("hairstyle to encode")
        check_on_scalp(hairstyle, self.scalp, "hairstyle to encode")  # the one root-on-scalp check (align.py)
        local, presence, _, _ = guide_strands(hairstyle, self.scalp, self.grid, self.strand_vae.config.num_points)
        return encode_guides(self.strand_vae, local, presence, self.grid)

    @torch.no_grad()
    def encode(self, hairstyle: Hairstyle | torch.Tensor) -> torch.Tensor:
        """Style latent (D,) (posterior mean) of a Hairstyle (guides chosen from its strands) or a guide map."""
        vae = self._need_style("encode")
        gmap = hairstyle if isinstance(hairstyle, torch.Tensor) else self.guide_map_of(hairstyle)
        mu, _ = vae.encode(gmap[None].float())
        return mu[0]

    # ------------------------------------------------------------------ strands
    @torch.no_grad()
    def guides(self, gmap: torch.Tensor, resolve: bool = True) -> Hairstyle:
        """Guide strands (world) of a guide map; absent texels are bald roots. ``resolve`` pushes
        strands out of the head (GroomGen's iterative push-out with length restoration)."""
        world, present = guide_world(self.strand_vae, gmap, self.grid)
        x = world.numpy()
        if resolve:
            x = self.head.resolve_strands(x, iterations=2)
        keep = present.numpy()
        mask = np.zeros(x.shape[:2], bool)
        mask[keep] = True
        mask[:, 0] = True
        return Hairstyle(x[mask], np.where(keep, x.shape[1], 1), root_uv=self.grid.uv[self.grid.mask])

    def similarity(self, gmap: torch.Tensor) -> torch.Tensor:
        """Per-texel guide similarity (V,) for hybrid densification (cached for the last map)."""
        key = hash(gmap.detach().cpu().numpy().tobytes())
        if self._sim_cache is not None and self._sim_cache[0] == key:
            return self._sim_cache[1]
        world, present = guide_world(self.strand_vae, gmap, self.grid)
        s = texel_similarity(world, present, self.grid)
        self._sim_cache = (key, s)
        return s

    def densify(self, gmap: torch.Tensor, strands: int = 10000, mode: str = "hybrid", seed: int = 0,
                roots: np.ndarray | None = None, chunk: int = 16384) -> Hairstyle:
        """Dense hair (``strands`` roots on the scalp, seeded, or the given ``roots (N, 3)``) from a guide map."""
        if mode not in MODES:
            raise InputError(f"densification mode '{mode}' unknown; use one of {', '.join(MODES)}")
        sim = self.similarity(gmap) if mode == "hybrid" else None
        uv = frames = None
        if roots is None:  # cache the dense roots, their UVs and frames per (count, seed): fast previews
            key = (int(strands), int(seed))
            if key not in self._roots_cache:
                if len(self._roots_cache) > 8:
                    self._roots_cache.clear()
                r, u = self.scalp.sample_roots(int(strands), seed=int(seed))
                self._roots_cache[key] = (r, u, self.scalp.frames(r))
            roots, uv, frames = self._roots_cache[key]
        return densify(self.strand_vae, gmap, self.grid, self.scalp, n_strands=strands, roots=roots, uv=uv,
                       mode=mode, seed=seed, chunk=chunk, similarity=sim, frames=frames)

    def decode(self, latent: torch.Tensor, strands: int = 0, mode: str = "hybrid", seed: int = 0) -> HairResult:
        """Hairstyle of a style latent (D,): guides, plus ``strands`` dense strands when > 0."""
        z = torch.as_tensor(latent, dtype=torch.float32).reshape(-1)
        gmap = self.guide_map(z)
        return self.result(gmap, z, strands, mode, seed)

    def result(self, gmap: torch.Tensor, latent: torch.Tensor | None = None, strands: int = 0, mode: str = "hybrid",
               seed: int = 0) -> HairResult:
        """A :class:`HairResult` for a guide map (guides always, dense when ``strands`` > 0)."""
        dense = self.densify(gmap, strands, mode, seed) if strands else None
        return HairResult(latent, gmap, self.guides(gmap), dense)

    def sample(self, n: int = 1, seed: int = 0, temperature: float = 1.0, strands: int = 10000,
               mode: str = "hybrid") -> list[HairResult]:
        """``n`` random hairstyles (guides + ``strands`` dense strands each; 0 = guides only)."""
        zs = self.sample_latents(n, seed, temperature)
        return [self.decode(z, strands, mode, seed + i) for i, z in enumerate(zs)]

    def interpolate(self, a, b, steps: int = 8, strands: int = 0, mode: str = "hybrid") -> list[HairResult]:
        """``steps`` hairstyles from ``a`` to ``b`` (latents (D,) or Hairstyles), slerp in style-latent space.
        Every frame has its roots on the scalp and is pushed out of the head."""
        if steps < 2:
            raise InputError(f"interpolate: steps must be >= 2, got {steps}")
        za = a if isinstance(a, torch.Tensor) else self.encode(a)
        zb = b if isinstance(b, torch.Tensor) else self.encode(b)
        return [self.decode(slerp(za.float(), zb.float(), t), strands, mode)
                for t in np.linspace(0.0, 1.0, int(steps))]

    # ------------------------------------------------------------------ attributes
    @property
    def attributes(self) -> list[str]:
        """Names of the global attribute directions (``length``, ``curliness``, ``volume``)."""
        vae = self._need_style("attributes")
        return vae.attribute_names if vae.has_attributes() else []

    def attribute_direction(self, name: str) -> torch.Tensor:
        """Unit-strength direction (D,) of a global attribute (+1 = one std of the training styles)."""
        return self._need_style("attribute edits").attribute_direction(name).detach().clone()

    def edit_attribute(self, latent: torch.Tensor, name: str, strength: float) -> torch.Tensor:
        """``latent + strength * direction(name)``."""
        return torch.as_tensor(latent, dtype=torch.float32) + float(strength) * self.attribute_direction(name)

    @torch.no_grad()
    def predict_attributes(self, latent: torch.Tensor) -> dict[str, float]:
        """Regressed attributes of a latent: length (m), curliness (log(1 + mean curvature in 1/m)), volume (m)."""
        vae = self._need_style("attributes")
        v = vae.predict_attributes(torch.as_tensor(latent, dtype=torch.float32).reshape(1, -1))[0]
        return {n: float(x) for n, x in zip(vae.attribute_names, v)}

    # ------------------------------------------------------------------ projection
    def project(self, target: torch.Tensor, weights: torch.Tensor | None = None, init: torch.Tensor | None = None,
                steps: int = 80, lr: float = 0.05, prior: float = 1e-3) -> torch.Tensor:
        """Style latent whose decoded guide map matches ``target (C+1, H, W)`` (standardised latents,
        texel ``weights (V,)``) with a Gaussian prior ``prior * |z|^2``; Adam from ``init`` (or the
        encoding of ``target``)."""
        vae = self._need_style("projection")
        grid = self.grid
        tgt = gather_map(target.float(), grid)  # (V, C+1)
        pres = (tgt[:, -1] > 0.5).float()
        w = torch.ones(tgt.shape[0]) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        mean, std = vae.latent_mean, vae.latent_std
        tn = (tgt[:, :-1] - mean) / std
        z0 = self.encode(target) if init is None else torch.as_tensor(init, dtype=torch.float32).reshape(-1)
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(int(steps)):
            out = gather_map(vae.decode_raw(z[None])[0], grid)
            lat = out[:, :-1]
            err = ((lat - tn).square().mean(1) * pres * w).sum() / (w * pres).sum().clamp_min(1e-6)
            bce = torch.nn.functional.binary_cross_entropy_with_logits(out[:, -1], pres, reduction="mean")
            loss = err + 0.1 * bce + prior * z.square().sum()
            (z.grad,) = torch.autograd.grad(loss, [z])  # gradients for z only, not the network weights
            opt.step()
        return z.detach()

    def editor(self, start, strands: int = 10000, mode: str = "hybrid", seed: int = 0) -> HairEditor:
        """An editing session starting from a latent, a Hairstyle or a HairResult."""
        return HairEditor(self, start, strands=strands, mode=mode, seed=seed)

    # ------------------------------------------------------------------ reconstruction
    def fit(self, observation, config=None, **settings):
        """Reconstruct a complete hairstyle from a partial observation (a
        :class:`~latent4d.hair.types.HairObservation` or a file): :func:`latent4d.hair.reconstruct.fit_observation`
        with ``config`` (a :class:`~latent4d.hair.reconstruct.HairReconstructConfig`; default the
        defaults of ``conf/reconstruct/hair.yaml``) and ``settings`` replacing some of its fields
        (``strands=0``, ``steps=50``, ...). Returns a :class:`~latent4d.hair.types.FitResult`."""
        import dataclasses

        from latent4d.hair.reconstruct import HairReconstructConfig, fit_observation

        cfg = dataclasses.replace(config or HairReconstructConfig(), **settings)
        return fit_observation(self, observation, cfg)


# =========================================================================== editing
class HairEditor:
    """Interactive editing with undo / redo. Every edit pushes a new :class:`EditState`.

    Guides are addressed by their index among the valid scalp texels (``0 .. V-1``, the order of
    :meth:`guides`); :meth:`select` finds them by position. Local edits (:meth:`edit` with the
    brush, or :meth:`cut` / :meth:`extend` / :meth:`curl` / :meth:`move_tip` on chosen guides) are the
    operations of :mod:`latent4d.hair.edit`, the same as the viewer's file-only editor's; they change
    guide strands (metres), which are then projected back onto the hairstyle-VAE manifold (``project=True``):
    the style latent is optimised to match the edited guides (weighted ``edit_weight``) and the
    rest, with a Gaussian prior. With ``exact=True`` the edited texels keep their exact latents on
    top of the projected map.
    """

    def __init__(self, pipeline: HairPipeline, start, strands: int = 10000, mode: str = "hybrid", seed: int = 0):
        self.pipe = pipeline
        self.strands, self.mode, self.seed = int(strands), mode, int(seed)
        if isinstance(start, HairResult):
            z = start.latent if start.latent is not None else pipeline.encode(start.guide_map)
        elif isinstance(start, Hairstyle):
            z = pipeline.encode(start)
        else:
            z = torch.as_tensor(start, dtype=torch.float32).reshape(-1)
        self._undo: list[EditState] = [EditState(z.clone(), pipeline.guide_map(z), "start")]
        self._redo: list[EditState] = []

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> EditState:
        return self._undo[-1]

    @property
    def latent(self) -> torch.Tensor:
        return self.state.latent.clone()

    @property
    def history(self) -> list[str]:
        return [s.label for s in self._undo]

    def can_undo(self) -> bool:
        return len(self._undo) > 1

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> EditState:
        """Go back one edit (no-op at the start)."""
        if self.can_undo():
            self._redo.append(self._undo.pop())
        return self.state

    def redo(self) -> EditState:
        """Re-apply the last undone edit (no-op when there is none)."""
        if self._redo:
            self._undo.append(self._redo.pop())
        return self.state

    def _push(self, latent: torch.Tensor, gmap: torch.Tensor | None, label: str) -> EditState:
        st = EditState(latent.detach().clone(), self.pipe.guide_map(latent) if gmap is None else gmap, label)
        self._undo.append(st)
        self._redo.clear()
        return st

    def guides(self) -> Hairstyle:
        """Guide strands of the current state (cached)."""
        c = self.state._cache
        if "guides" not in c:
            c["guides"] = self.pipe.guides(self.state.guide_map)
        return c["guides"]

    def dense(self, strands: int | None = None, mode: str | None = None) -> Hairstyle:
        """Densified hair of the current state (cached per strand count / mode)."""
        n, m = int(strands or self.strands), mode or self.mode
        c = self.state._cache
        if ("dense", n, m) not in c:
            c[("dense", n, m)] = self.pipe.densify(self.state.guide_map, n, m, self.seed)
        return c[("dense", n, m)]

    def result(self, strands: int | None = None) -> HairResult:
        return HairResult(self.latent, self.state.guide_map, self.guides(), self.dense(strands))

    # ------------------------------------------------------------------ global edits
    def edit_attribute(self, name: str, strength: float) -> EditState:
        """Move the style latent along a global attribute direction (``length``, ``curliness``, ``volume``)."""
        z = self.pipe.edit_attribute(self.state.latent, name, strength)
        return self._push(z, None, f"{name} {strength:+.2f}")

    def set_latent(self, latent: torch.Tensor, label: str = "set latent") -> EditState:
        return self._push(torch.as_tensor(latent, dtype=torch.float32).reshape(-1), None, label)

    # ------------------------------------------------------------------ local edits
    def select(self, point=None, radius: float = 0.02, uv=None) -> np.ndarray:
        """Indices of guides whose root is within ``radius`` metres of ``point`` (3,) (or within
        ``radius`` in UV units of ``uv`` (2,)); the single nearest guide when none is that close."""
        grid = self.pipe.grid
        if uv is not None:
            d = np.linalg.norm(grid.uv[grid.mask] - np.asarray(uv, np.float32).reshape(1, 2), axis=1)
        elif point is not None:
            d = np.linalg.norm(grid.roots[grid.mask] - np.asarray(point, np.float32).reshape(1, 3), axis=1)
        else:
            raise InputError("select: give a point (metres) or a uv")
        idx = np.flatnonzero(d <= radius)
        return idx if len(idx) else np.array([int(np.argmin(d))])

    def nearest_guide(self, point) -> int:
        """Index of the guide whose strand passes closest to ``point`` (3,) (e.g. a picked 3D point)."""
        g = self.guides()
        hair = ~g.bald
        pts, idx = g.hair_strands(None)
        d = np.linalg.norm(pts - np.asarray(point, np.float32).reshape(1, 1, 3), axis=-1).min(1)
        return int(np.flatnonzero(hair)[np.argmin(d)]) if len(idx) else 0

    def _guide_world(self) -> np.ndarray:
        """(V, P, 3) current guide strands (bald texels: repeated roots)."""
        world, _ = guide_world(self.pipe.strand_vae, self.state.guide_map, self.pipe.grid)
        return world.numpy().copy()

    def _check(self, guides) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(guides, np.int64))
        V = int(self.pipe.grid.mask.sum())
        if len(idx) == 0 or (idx < 0).any() or (idx >= V).any():
            raise InputError(f"guide indices must lie in [0, {V}), got {idx.tolist()}")
        return idx

    def set_guides(self, guides, strands: np.ndarray, project: bool = True, exact: bool = False,
                   edit_weight: float = 20.0, steps: int = 80, lr: float = 0.05,
                   label: str = "edit guides") -> EditState:
        """Replace guide strands ``guides`` by ``strands (k, P', 3)`` (world, metres; resampled to P).

        Their roots are moved to the guides' scalp roots. With ``project`` the style latent is
        optimised to match the edited guide map (edited texels weighted ``edit_weight``; ``steps`` Adam
        steps of learning rate ``lr`` from the current latent, see :meth:`HairPipeline.project`).
        """
        idx = self._check(guides)
        pipe = self.pipe
        x = np.asarray(strands, np.float32).reshape(len(idx), -1, 3)
        if not np.isfinite(x).all():
            raise InputError("edited guide strands contain NaN or infinite values")
        P = pipe.strand_vae.config.num_points
        if x.shape[1] != P:
            x = resample_polylines(x, P)
        grid = pipe.grid
        roots = grid.roots[grid.mask][idx]
        x = x - x[:, :1] + roots[:, None]
        x[:, 1:] = pipe.head.push_out(x[:, 1:], 0.0)
        local = to_local(x, roots, grid.frames[grid.mask][idx])
        with torch.no_grad():
            lat = pipe.strand_vae.encode_mean(torch.from_numpy(local)).float()
        vals = gather_map(self.state.guide_map.clone(), grid)
        vals[torch.as_tensor(idx), :-1] = lat
        vals[torch.as_tensor(idx), -1] = 1.0
        edited = scatter_map(vals, grid)
        if not project:
            return self._push(self.state.latent, edited, label)
        w = torch.ones(vals.shape[0])
        w[torch.as_tensor(idx)] = float(edit_weight)
        z = pipe.project(edited, w, init=self.state.latent, steps=steps, lr=lr)
        gmap = pipe.guide_map(z)
        if exact:
            g = gather_map(gmap, grid)
            g[torch.as_tensor(idx)] = vals[torch.as_tensor(idx)]
            gmap = scatter_map(g, grid)
        return self._push(z, gmap, label)

    # one set of operations (latent4d.hair.edit), shared with the viewer's file-only editor
    def edit(self, guide: int, op: str, radius: float = 0.0, **kw) -> np.ndarray:
        """Apply ``op`` (``move_tip`` / ``cut`` / ``extend`` / ``curl``, settings as in
        :mod:`latent4d.hair.edit`) to ``guide`` and, with ``radius`` > 0 metres, to its neighbours with
        Gaussian weights (:func:`latent4d.hair.edit.brush_edit`, the viewer's brush), then
        :meth:`set_guides` (``project`` / ``exact`` / ``edit_weight`` / ``steps`` / ``lr``). Returns the
        indices of the guides changed (the new state is :attr:`state`)."""
        self._check([guide])
        opts = {k: kw.pop(k) for k in ("project", "exact", "edit_weight", "steps", "lr") if k in kw}
        sel, new = brush_edit(self._guide_world(), int(guide), op, radius, **kw)
        label = f"move tip {int(guide)}" if op == "move_tip" else f"{op} {len(sel)}"
        self.set_guides(sel, new, label=label, **opts)
        return sel

    def _each(self, guides, op: str, label: str, kw: dict, **settings) -> EditState:
        """``op`` with ``settings`` on every guide of ``guides`` at full strength, then :meth:`set_guides`."""
        idx = self._check(guides)
        x = self._guide_world()[idx]
        new = np.stack([apply_op(xi, op, **settings) for xi in x])
        return self.set_guides(idx, new, label=label, **kw)

    def move_tip(self, guide: int, target, falloff: float = EDIT_DEFAULTS["move_tip"]["falloff"], **kw) -> EditState:
        """Move a guide's tip to ``target`` (3,) metres, bending the strand smoothly from the root
        (displacement grows as ``u^falloff`` along the normalised arc length ``u``)."""
        return self._each([guide], "move_tip", f"move tip {int(guide)}", kw, target=target, falloff=falloff)

    def cut(self, guides, fraction: float | None = None, length: float | None = None, **kw) -> EditState:
        """Cut guides to ``fraction`` of their length or to ``length`` metres (whichever is given)."""
        if fraction is None and length is None:
            raise InputError("cut: give fraction or length")
        n = len(np.atleast_1d(guides))
        return self._each(guides, "cut", f"cut {n}", kw, fraction=fraction, length=length)

    def extend(self, guides, length: float = EDIT_DEFAULTS["extend"]["metres"], **kw) -> EditState:
        """Extend guides by ``length`` metres past their tips, bending under gravity (:func:`latent4d.hair.edit.extend`)."""
        n = len(np.atleast_1d(guides))
        return self._each(guides, "extend", f"extend {n}", kw, metres=float(length))

    def curl(self, guides, radius: float = EDIT_DEFAULTS["curl"]["amplitude"],
             turns: float = EDIT_DEFAULTS["curl"]["turns"], **kw) -> EditState:
        """Add a helical curl to guides: ``radius`` metres at the tip, ``turns`` cycles over the strand
        (:func:`latent4d.hair.edit.curl`)."""
        n = len(np.atleast_1d(guides))
        return self._each(guides, "curl", f"curl {n}", kw, amplitude=float(radius), turns=float(turns))

    def copy(self) -> HairEditor:
        return copy.copy(self)
