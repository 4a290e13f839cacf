"""EDM (Karras et al. 2022) preconditioning, training loss and sampling with diffusers' EDM schedulers.

Denoiser ``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)`` with

    c_skip = sd^2 / (sigma^2 + sd^2),  c_out = sigma sd / sqrt(sigma^2 + sd^2),
    c_in = 1 / sqrt(sigma^2 + sd^2),   c_noise = ln(sigma) / 4,

``sd`` = sigma_data. Training draws ``ln sigma ~ N(P_mean, P_std^2)`` and minimises
``lambda(sigma) |D(x0 + sigma n; sigma) - x0|^2`` with ``lambda = (sigma^2 + sd^2) / (sigma sd)^2``.
Motion2VecSets: P_mean -1.2, P_std 1.2, sigma_data 1, sigma in [0.002, 80], rho 7, 18 steps.

Sampling runs a diffusers scheduler configured with the same constants (``EDMEulerScheduler``,
``EDMDPMSolverMultistepScheduler``): the network gets ``scheduler.scale_model_input(x)`` (= c_in x)
and ``t`` (= c_noise), the scheduler applies ``c_skip`` / ``c_out`` itself (``prediction_type=
"epsilon"`` gives exactly the coefficients above). ``"heun"`` is EDM's deterministic 2nd-order
sampler (Algorithm 1) on the EDMEuler scheduler's sigma schedule and preconditioning.

``net(x_in, c_noise, **cond) -> F`` takes x_in shaped like the sample and c_noise (B,).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

SAMPLERS = ("dpmsolver", "euler", "heun")


@dataclass
class EDM:
    """EDM constants + preconditioning / loss / sampling helpers (stateless)."""

    sigma_data: float = 1.0
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    #: scale of the initial noise: ``"scheduler"`` (diffusers' ``init_noise_sigma`` = sqrt(sigma_max^2 + 1))
    #: or ``"sigma_max"`` (EDM Algorithm 1 and the official Motion2VecSets ``edm_sampler``: x_0 = sigma_max n)
    init_noise: str = "scheduler"

    # -- preconditioning ----------------------------------------------------------------------
    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in, c_noise) for sigma (B,)."""
        sd2 = self.sigma_data ** 2
        s2 = sigma.square()
        c_skip = sd2 / (s2 + sd2)
        c_out = sigma * self.sigma_data / (s2 + sd2).sqrt()
        c_in = 1.0 / (s2 + sd2).sqrt()
        c_noise = sigma.log() / 4.0
        return c_skip, c_out, c_in, c_noise

    def denoise(self, net: Callable, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        """D(x; sigma): x (B, ...), sigma (B,) -> denoised estimate shaped like x."""
        sigma = sigma.to(x.dtype).reshape(-1)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        shape = (-1,) + (1,) * (x.dim() - 1)
        f = net(x * c_in.view(shape), c_noise, **cond)
        return c_skip.view(shape) * x + c_out.view(shape) * f

    # -- training ------------------------------------------------------------------------------
    def sample_sigma(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n,) training noise levels, log-normal(P_mean, P_std)."""
        return (torch.randn(n, device=device, generator=generator) * self.p_std + self.p_mean).exp()

    def loss(self, net: Callable, x0: torch.Tensor, sigma: torch.Tensor | None = None,
             noise: torch.Tensor | None = None, **cond) -> torch.Tensor:
        """Per-sample weighted denoising loss (B,) (mean over the sample's elements)."""
        B = x0.shape[0]
        sigma = self.sample_sigma(B, x0.device) if sigma is None else sigma.reshape(-1)
        noise = torch.randn_like(x0) if noise is None else noise
        shape = (-1,) + (1,) * (x0.dim() - 1)
        x = x0 + sigma.view(shape) * noise
        d = self.denoise(net, x, sigma, **cond)
        weight = (sigma.square() + self.sigma_data ** 2) / (sigma * self.sigma_data).square()
        return weight * (d - x0).square().reshape(B, -1).mean(1)

    # -- sampling ------------------------------------------------------------------------------
    def scheduler(self, kind: str = "dpmsolver"):
        """A diffusers EDM scheduler with these constants (``kind`` in :data:`SAMPLERS`)."""
        from diffusers import EDMDPMSolverMultistepScheduler, EDMEulerScheduler

        common = dict(sigma_min=self.sigma_min, sigma_max=self.sigma_max, sigma_data=self.sigma_data,
                      rho=self.rho, prediction_type="epsilon", sigma_schedule="karras")
        if kind == "dpmsolver":
            return EDMDPMSolverMultistepScheduler(**common, solver_order=2, algorithm_type="dpmsolver++")
        if kind in ("euler", "heun"):
            return EDMEulerScheduler(**common)
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")

    @torch.no_grad()
    def sample(self, net: Callable, shape: tuple[int, ...], steps: int = 18, sampler: str = "dpmsolver",
               generator: torch.Generator | None = None, device=None, noise: torch.Tensor | None = None,
               guide: Callable[[torch.Tensor, float], torch.Tensor] | None = None, **cond) -> torch.Tensor:
        """Draw samples of ``shape`` (B, ...) from ``net`` conditioned on ``cond`` in ``steps`` steps.

        ``guide(x0, sigma) -> x0'``: optional data-consistency step applied to the denoised estimate
        D(x; sigma) before every solver step (plug-and-play posterior sampling: the solver continues
        from the corrected estimate, so the prior still shapes the result). It runs under
        ``torch.enable_grad`` when it needs gradients.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        sched = self.scheduler(sampler)
        sched.set_timesteps(steps, device=device)
        x = torch.randn(shape, generator=generator, device=device) if noise is None else noise.to(device)
        if self.init_noise not in ("scheduler", "sigma_max"):
            raise ValueError(f"init_noise must be 'scheduler' or 'sigma_max', got {self.init_noise!r}")
        x = x * (self.sigma_max if self.init_noise == "sigma_max" else sched.init_noise_sigma)
        B = shape[0]
        if sampler == "heun":
            return self._heun(net, x, sched, guide, **cond)
        for t in sched.timesteps:
            x_in = sched.scale_model_input(x, t)
            f = net(x_in, t.reshape(1).expand(B).to(x.dtype), **cond)
            if guide is not None:  # correct the denoised estimate, hand the solver the matching output
                sigma = sched.sigmas[sched.step_index].to(x.device, x.dtype).reshape(1)
                c_skip, c_out, _, _ = self.coefficients(sigma)
                x0 = guide(c_skip * x + c_out * f, float(sigma))
                f = (x0 - c_skip * x) / c_out
            x = sched.step(f, t, x).prev_sample
        return x

    def _heun(self, net: Callable, x: torch.Tensor, sched, guide=None, **cond) -> torch.Tensor:
        sigmas = sched.sigmas.to(x.device, x.dtype)
        B = x.shape[0]

        def d_of(xc: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            d = self.denoise(net, xc, s.expand(B), **cond)
            return d if guide is None else guide(d, float(s))

        for i in range(len(sigmas) - 1):
            s, s_next = sigmas[i], sigmas[i + 1]
            d = (x - d_of(x, s)) / s
            x_next = x + (s_next - s) * d
            if s_next > 0:
                d2 = (x_next - d_of(x_next, s_next)) / s_next
                x_next = x + (s_next - s) * 0.5 * (d + d2)
            x = x_next
        return x

    def num_evaluations(self, steps: int, sampler: str = "dpmsolver") -> int:
        """Network evaluations per sample."""
        return 2 * steps - 1 if sampler == "heun" else steps


def edm_sigma_schedule(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """Karras sigmas (steps,) from sigma_max down to sigma_min (reference for tests)."""
    i = torch.arange(steps, dtype=torch.float64)
    inv = 1.0 / rho
    s = (sigma_max ** inv + i / max(1, steps - 1) * (sigma_min ** inv - sigma_max ** inv)) ** rho
    return s.float()


__all__ = ["EDM", "SAMPLERS", "edm_sigma_schedule"]
