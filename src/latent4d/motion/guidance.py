"""Observation guidance for deformation-latent sampling (plug-and-play posterior sampling).

At every solver step whose noise level is at most ``sigma_max``, the denoised estimate of the
deformation latents is pulled towards agreeing with the observed clouds by a few Adam steps on

    weight * data(x) / noise^2  +  mean((x - x0)^2)

(x in the denoiser's normalised latent units, x0 the network's estimate), then the solver continues
from the corrected estimate (:meth:`latent4d.diffusion.edm.EDM.sample`, ``guide=``). The data term
decodes the latents with the deformation AE:

* ``sparse`` (corresponding points): the observed points of the window's first frame, carried to
  frame t, should land on the same points observed at frame t (mean squared L2);
* ``partial`` (no correspondence): every point observed at frame t should lie on the carried
  frame-0 surface (one-sided squared Chamfer from the observation to ``n_surface`` points sampled
  on the frame-0 mesh) - hidden parts stay free and are shaped by the prior alone.

The denoiser still decides everything the observation does not pin down (hidden sides, the motion
between observed points, temporal coherence), so the ablations without temporal attention get the
same guidance and remain comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from latent4d.errors import ConfigError


@dataclass
class GuidanceConfig:
    """Strength and schedule of :class:`DeformObservationGuide` (``weight=0`` disables it).

    ``noise``: expected observation error in normalised units (scales the data term);
    ``sigma_max``: guide only steps at or below this noise level; ``iters`` / ``lr``: Adam steps per
    solver step; ``final_iters``: Adam steps on the finished sample (same objective, anchored at the
    sample: a last fit to the observations that the per-step corrections leave unfinished when the
    motion is large); ``final_iters_partial``: the same for a deformation guided by partial clouds
    (one-sided Chamfer: a long fit also slides the surface along itself, which correspondence pays
    for); ``n_surface``: frame-0 surface points for the partial (Chamfer) term; ``shape_weight`` /
    ``shape_scale``: weight and pseudo-Huber scale of the frame-shape term. The tuned values of
    ``latent4d reconstruct motion`` (and why): ``conf/reconstruct/motion.yaml``.
    """

    weight: float = 1.0
    iters: int = 4
    lr: float = 0.05
    sigma_max: float = 2.0
    noise: float = 0.01
    n_surface: int = 2048
    final_iters: int = 0
    final_iters_partial: int = 0
    shape_weight: float = 0.0
    shape_scale: float = 0.01

    def __post_init__(self):
        if (
            self.weight < 0
            or min(self.iters, self.final_iters, self.final_iters_partial) < 0
            or self.lr <= 0
            or self.noise <= 0
            or self.sigma_max <= 0
            or self.shape_weight < 0
            or self.shape_scale <= 0
        ):
            raise ConfigError(f"guidance settings must be positive (weight / iters >= 0), got {self}")

    @property
    def enabled(self) -> bool:
        return self.weight > 0 and (self.iters > 0 or self.final_iters > 0 or self.final_iters_partial > 0)


def pseudo_huber(d: torch.Tensor, scale: float) -> torch.Tensor:
    """Robust squared distance of distances ``d``: ~ d^2 near 0, ~ 2 * scale * |d| far away."""
    return 2 * scale * scale * (torch.sqrt(1 + (d / scale).square()) - 1)


class _LatentGuide:
    """Shared plug-and-play step: Adam on ``weight * data_loss / data_scale + mean((x - x0)^2)``.
    Subclasses define :meth:`data_loss` of denormalised latents (-> (S,)) and ``data_scale``. The
    autoencoder's weights are frozen while a fit runs (their ``requires_grad`` flags are restored
    afterwards), so the steps never accumulate gradients in them."""

    data_scale = 1.0

    def __init__(self, ae, denoiser, obs: torch.Tensor, config: GuidanceConfig | None):
        self.ae, self.den = ae, denoiser
        self.cfg = config or GuidanceConfig()
        self.obs = obs.detach()

    def data_loss(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x0: torch.Tensor, sigma: float) -> torch.Tensor:
        """One solver step's correction of the denoised estimate x0 (normalised latents) at noise ``sigma``."""
        if not self.cfg.enabled or self.cfg.iters == 0 or sigma > self.cfg.sigma_max:
            return x0
        return self._fit(x0, self.cfg.iters)

    @property
    def final_iters(self) -> int:
        """Adam steps of :meth:`refine` (``config.final_iters``)."""
        return self.cfg.final_iters

    def refine(self, x: torch.Tensor) -> torch.Tensor:
        """The configured final steps on a finished sample x (normalised latents), anchored at x."""
        if self.cfg.weight <= 0 or self.final_iters <= 0:
            return x
        return self._fit(x, self.final_iters)

    def frozen(self) -> list[torch.nn.Module]:
        """The networks the data term runs through (frozen while a fit runs)."""
        return [self.ae]

    def _fit(self, x0: torch.Tensor, iters: int) -> torch.Tensor:
        anchor = x0.detach()
        params = [p for m in self.frozen() for p in m.parameters() if p.requires_grad]
        for p in params:  # gradients flow to the latents only; the flags are restored below
            p.requires_grad_(False)
        try:
            return self._adam(anchor, iters)
        finally:
            for p in params:
                p.requires_grad_(True)

    def _adam(self, anchor: torch.Tensor, iters: int) -> torch.Tensor:
        cfg = self.cfg
        with torch.enable_grad():
            x = anchor.clone().requires_grad_(True)
            opt = torch.optim.Adam([x], lr=cfg.lr)
            for _ in range(iters):
                opt.zero_grad(set_to_none=True)
                data = self.data_loss(self.den.denormalize(x))
                prior = (x - anchor).square().flatten(1).mean(1)
                (cfg.weight * data / self.data_scale + prior).sum().backward()
                opt.step()
        return x.detach()


class DeformObservationGuide(_LatentGuide):
    """``guide(x0, sigma) -> x0'`` for :meth:`EDM.sample` on deformation latents (S, T-1, M, C).

    Args:
        deform_ae: the :class:`~latent4d.motion.deform.DeformVecSetAE` the latents decode with.
        denoiser: the :class:`~latent4d.motion.denoiser.DeformDenoiser` (latent normalisation).
        obs: observed window (S, T, N, 3) (frame 0 first).
        corresponding: True for sparse corresponding points, False for partial clouds.
        surface0: (S, P, 3) points on each sample's frame-0 surface (needed when not corresponding,
            and for the frame-shape term).
        frame_shapes: optional ``(shape_ae, tokens, slope)``: the shape AE, its decoded tokens
            (S * (T-1), Nt, D) of shape latents sampled on frames 1..T-1 (sample-major), and the
            logit slope (per unit length) that turns a logit into a distance; used when
            ``config.shape_weight > 0``.

    The data term is in units of the expected observation error (``config.noise``) squared.
    """

    def __init__(
        self,
        deform_ae,
        denoiser,
        obs: torch.Tensor,
        corresponding: bool,
        surface0: torch.Tensor | None = None,
        config: GuidanceConfig | None = None,
        frame_shapes: tuple | None = None,
    ):
        super().__init__(deform_ae, denoiser, obs, config)
        self.data_scale = self.cfg.noise**2
        self.corresponding = bool(corresponding)
        self.frame_shapes = None
        if frame_shapes is not None and self.cfg.shape_weight > 0:
            sae, tokens, slope = frame_shapes
            self.frame_shapes = (sae, tokens.detach(), float(slope))
        if surface0 is None and (not self.corresponding or self.frame_shapes is not None):
            raise ConfigError(
                "partial-observation and frame-shape guidance need points on the frame-0 surface (surface0)"
            )
        self.surface0 = None if surface0 is None else surface0.detach()

    def frozen(self) -> list[torch.nn.Module]:
        """The deformation AE, and the shape AE when the frame-shape term is on."""
        return [self.ae] + ([self.frame_shapes[0]] if self.frame_shapes is not None else [])

    @property
    def final_iters(self) -> int:
        """``config.final_iters`` for corresponding points, ``config.final_iters_partial`` for partial clouds."""
        return self.cfg.final_iters if self.corresponding else self.cfg.final_iters_partial

    def data_loss(self, z: torch.Tensor) -> torch.Tensor:
        """Mean squared observation error (S,) of denormalised deformation latents z (S, T-1, M, C)."""
        S, T1, M, C = z.shape
        tokens = self.ae.decode(z.reshape(S * T1, M, C))
        target = self.obs[:, 1 : T1 + 1].reshape(S * T1, -1, 3)
        moved = None
        if self.surface0 is not None and (not self.corresponding or self.frame_shapes is not None):
            moved = self.ae.query(
                tokens, self.surface0[:, None].expand(-1, T1, -1, -1).reshape(S * T1, -1, 3)
            )
        if self.corresponding:
            src = self.obs[:, :1].expand(-1, T1, -1, -1).reshape(S * T1, -1, 3)
            d2 = (self.ae.query(tokens, src) - target).square().sum(-1)
        else:
            d2 = torch.cdist(target, moved).min(-1).values.square()
        loss = d2.mean(-1).view(S, T1).mean(1)
        if self.frame_shapes is not None:
            loss = loss + self.cfg.shape_weight * self.frame_shape_loss(moved, S, T1)
        return loss

    def frame_shape_loss(self, moved: torch.Tensor, S: int, T1: int) -> torch.Tensor:
        """(S,) mean pseudo-Huber distance (squared units) of the carried frame-0 surface points
        ``moved`` (S * T1, P, 3) to each frame's sampled surface."""
        sae, tokens, slope = self.frame_shapes
        if tokens.shape[0] != S * T1:
            raise ConfigError(
                f"frame-shape guidance: {tokens.shape[0]} frame shapes for {S} samples x {T1} frames"
            )
        rho = pseudo_huber(sae.query(tokens, moved) / slope, self.cfg.shape_scale)
        return rho.mean(-1).view(S, T1).mean(1)


class ShapeObservationGuide(_LatentGuide):
    """``guide(x0, sigma) -> x0'`` for :meth:`EDM.sample` on shape latents (S, M, C): the observed
    points (S, N, 3) should lie on the zero level of the decoded occupancy logits (data term: mean
    squared logit)."""

    def __init__(self, shape_ae, denoiser, obs: torch.Tensor, config: GuidanceConfig | None = None):
        super().__init__(shape_ae, denoiser, obs, config)

    def data_loss(self, z: torch.Tensor) -> torch.Tensor:
        """(S,) mean squared logit at the observed points of denormalised latents z (S, M, C)."""
        return self.ae.query(self.ae.decode(z), self.obs).square().mean(-1)


__all__ = ["DeformObservationGuide", "GuidanceConfig", "ShapeObservationGuide", "pseudo_huber"]
