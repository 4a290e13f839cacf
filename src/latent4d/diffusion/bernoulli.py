"""Bernoulli diffusion over binary latents (Binary Latent Diffusion, Wang et al., CVPR 2023).

Forward process on bits ``x_0 in {0, 1}``::

    q(x_t | x_0) = Bernoulli(k_t x_0 + (1 - k_t) / 2),   t = 0..T,  k_0 = 1, k_T = 0

i.e. with probability ``k_t`` a bit keeps its value, otherwise it is redrawn uniformly. The process is
Markov: from step ``s`` to a later step ``t`` a bit is kept with probability ``r = k_t / k_s`` and
redrawn otherwise, ``q(x_t | x_s) = Bernoulli(r x_s + (1 - r) / 2)``. Schedules: ``linear``
(``k_t = 1 - t / T``, the paper's) and ``cosine`` (``k_t = (1 + cos(pi t / T)) / 2``).

Reverse step (``step``): the denoiser predicts per-bit logits of the flip ``x_0 XOR x_t``; with
``p_0 = P(x_0 = 1)`` the next state ``x_s`` (``s`` the previous timestep of the sampling subset) is
drawn from::

    p(x_s | x_t) proportional to (k_s p_0 + (1 - k_s) / 2) * q(x_t | x_s)

per bit (the expectation of ``q(x_s, x_t | x_0)`` under the predicted ``x_0``, D3PM's
parameterisation; ``q(x_t | x_s)`` is the composition of the skipped one-step kernels). The last step
(``s = 0``) is deterministic: ``x_0 = (p_0 > 0.5)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

from latent4d.errors import InputError

SCHEDULES = ("linear", "cosine")


@dataclass
class BernoulliSchedulerOutput(BaseOutput):
    """Output of :meth:`BernoulliDiffusionScheduler.step`.

    prev_sample: bits ``x_s`` in {0, 1} (float, same shape as ``x_t``).
    pred_original_sample: predicted ``P(x_0 = 1)`` per bit in [0, 1] (after the temperature).
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


def keep_schedule(num_train_timesteps: int, schedule: str = "linear") -> np.ndarray:
    """``k_t`` for t = 0..T (float64, length T + 1): probability that a bit still holds its x_0 value."""
    T = int(num_train_timesteps)
    t = np.arange(T + 1, dtype=np.float64)
    if schedule == "linear":
        k = 1.0 - t / T
    elif schedule == "cosine":
        k = 0.5 + 0.5 * np.cos(np.pi * t / T)
    else:
        raise InputError(f"unknown Bernoulli schedule '{schedule}'; expected one of {', '.join(SCHEDULES)}")
    k[0], k[-1] = 1.0, 0.0
    return k


class BernoulliDiffusionScheduler(SchedulerMixin, ConfigMixin):  # type: ignore[misc]  # diffusers' own bases disagree on config_name
    """Bernoulli (bit-flip) diffusion with ``T = num_train_timesteps`` steps; diffusers scheduler API.

    Timesteps are integers in [0, T]; ``x_T ~ Bernoulli(0.5)`` is pure noise. Tensors of bits are
    float {0, 1} of any shape ``(B, ...)``. ``set_timesteps(S)`` picks ``S <= T`` evenly spaced
    timesteps from T down to T / S (descending); the step after the last one lands on 0.

    ``sampling_temperature`` is not used by :meth:`step` (which takes its ``temperature`` argument): it is
    the model's default sampling temperature, read by the pipelines, written by a training run's
    calibration (:mod:`latent4d.binary.calibrate`); 0.9 (the official release's) when not calibrated.
    """

    order = 1
    _compatibles: list[str] = []

    @register_to_config
    def __init__(self, num_train_timesteps: int = 64, schedule: str = "linear", sampling_temperature: float = 0.9):
        if int(num_train_timesteps) < 1:
            raise InputError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
        check_temperature(sampling_temperature)
        self.k = torch.from_numpy(keep_schedule(num_train_timesteps, schedule))  # (T + 1,) float64
        self.num_inference_steps: int | None = None
        self.timesteps = torch.arange(int(num_train_timesteps), 0, -1, dtype=torch.long)
        self._prev = {int(t): int(t) - 1 for t in self.timesteps}

    # ------------------------------------------------------------------ schedule
    @property
    def init_noise_sigma(self) -> float:  # diffusers pipelines read this; bits need no scaling
        return 1.0

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        return sample

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Choose ``S = num_inference_steps`` timesteps ``floor(T (S - i) / S)``, i = 0..S-1 (descending)."""
        T = int(self.config["num_train_timesteps"])
        if isinstance(num_inference_steps, bool) or int(num_inference_steps) != num_inference_steps:
            raise InputError(f"steps must be an integer, got {num_inference_steps!r}")
        S = int(num_inference_steps)
        if S < 1 or S > T:
            raise InputError(f"steps={S} is not possible: the model was trained with T={T} diffusion steps, "
                             f"so choose 1 <= steps <= {T}")
        ts = [(T * (S - i)) // S for i in range(S)]
        self.num_inference_steps = S
        self.timesteps = torch.tensor(ts, dtype=torch.long, device=device)
        self._prev = {t: (ts[i + 1] if i + 1 < S else 0) for i, t in enumerate(ts)}

    def previous_timestep(self, t: int | torch.Tensor) -> int:
        """The timestep the reverse step from ``t`` lands on (0 after the last one)."""
        t = _as_int(t)
        if t not in self._prev:
            raise InputError(f"timestep {t} is not one of the scheduler's timesteps {self.timesteps.tolist()}")
        return self._prev[t]

    def keep_prob(self, t, device=None, dtype=torch.float32) -> torch.Tensor:
        """``k_t`` for an int or a tensor of timesteps."""
        idx = torch.as_tensor(t, dtype=torch.long).cpu()  # the schedule stays on the CPU (GPU timesteps too)
        return self.k[idx].to(device=device, dtype=dtype)

    # ------------------------------------------------------------------ forward process
    def marginal_probs(self, original_samples: torch.Tensor, timesteps) -> torch.Tensor:
        """``P(x_t = 1 | x_0) = k_t x_0 + (1 - k_t) / 2``; ``timesteps`` an int or a (B,) tensor."""
        x0 = original_samples
        k = self.keep_prob(timesteps, x0.device, x0.dtype if x0.is_floating_point() else torch.float32)
        if k.dim() == 1:
            k = k.view(-1, *([1] * (x0.dim() - 1)))
        return k * x0 + (1.0 - k) / 2.0

    def add_noise(self, original_samples: torch.Tensor, timesteps, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
        """Sample ``x_t ~ q(x_t | x_0)`` for bits ``original_samples`` (B, ...); ``timesteps`` int or (B,)."""
        _check_bits(original_samples, "original_samples")
        t = torch.as_tensor(timesteps)
        T = int(self.config["num_train_timesteps"])
        if (t < 0).any() or (t > T).any():
            raise InputError(f"timesteps must lie in [0, {T}], got {t.tolist()}")
        probs = self.marginal_probs(original_samples.float(), t)
        return torch.bernoulli(probs, generator=generator)

    # ------------------------------------------------------------------ reverse process
    def posterior_probs(self, p0: torch.Tensor, x_t: torch.Tensor, t: int, prev_t: int) -> torch.Tensor:
        """``P(x_s = 1 | x_t)`` per bit for predicted ``p0 = P(x_0 = 1)``, ``s = prev_t < t``.

        ``(k_s p0 + (1 - k_s) / 2) q(x_t | x_s = 1)`` normalised against the same for ``x_s = 0``,
        with ``q(x_t | x_s) = Bernoulli(r x_s + (1 - r) / 2)``, ``r = k_t / k_s``.
        """
        t, s = _as_int(t), _as_int(prev_t)
        if not 0 <= s < t <= int(self.config["num_train_timesteps"]):
            raise InputError(f"posterior needs 0 <= prev_t < t <= T, got prev_t={s}, t={t}")
        ks, kt = float(self.k[s]), float(self.k[t])
        r = kt / ks
        p0 = p0.double()
        xt = x_t.double()
        prior1 = ks * p0 + (1.0 - ks) / 2.0
        like1 = r * xt + (1.0 - r) / 2.0  # q(x_t | x_s = 1)
        like0 = r * (1.0 - xt) + (1.0 - r) / 2.0  # q(x_t | x_s = 0)
        num1 = prior1 * like1
        num0 = (1.0 - prior1) * like0
        return (num1 / (num1 + num0).clamp_min(1e-300)).to(p0.dtype if p0.is_floating_point() else torch.float32)

    def posterior_probs_batched(self, p0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                                prev_t: torch.Tensor) -> torch.Tensor:
        """:meth:`posterior_probs` with per-sample timesteps ``t`` and ``prev_t`` (B,) (``prev_t < t``), in
        the dtype of ``p0`` and differentiable in ``p0`` (training's auxiliary loss). Where ``prev_t == 0``
        it is ``p0`` itself (the last reverse step predicts ``x_0``)."""
        T = int(self.config["num_train_timesteps"])
        t, s = torch.as_tensor(t).long().cpu(), torch.as_tensor(prev_t).long().cpu()
        if bool(((s < 0) | (s >= t) | (t > T)).any()):
            raise InputError(f"posterior needs 0 <= prev_t < t <= T={T} for every sample")
        view = (-1,) + (1,) * (p0.dim() - 1)
        ks = self.k[s].to(p0.device, p0.dtype).view(view)
        r = (self.k[t] / self.k[s]).to(p0.device, p0.dtype).view(view)
        prior1 = ks * p0 + (1.0 - ks) / 2.0
        like1 = r * x_t + (1.0 - r) / 2.0  # q(x_t | x_s = 1)
        like0 = r * (1.0 - x_t) + (1.0 - r) / 2.0  # q(x_t | x_s = 0)
        num1, num0 = prior1 * like1, (1.0 - prior1) * like0
        post = num1 / (num1 + num0).clamp_min(torch.finfo(p0.dtype).tiny)
        return torch.where(s.to(p0.device).view(view) == 0, p0, post)

    def step(self, flip_logits: torch.Tensor, t: int | torch.Tensor, x_t: torch.Tensor, temperature: float = 1.0,
             generator: torch.Generator | None = None, prev_t: int | None = None,
             return_dict: bool = True) -> BernoulliSchedulerOutput | tuple:
        """One reverse step from ``x_t`` (bits (B, ...)) given the denoiser's flip logits (B, ...).

        ``p_flip = sigmoid(flip_logits / temperature)``, ``p0 = x_t (1 - p_flip) + (1 - x_t) p_flip``;
        ``prev_sample ~ Bernoulli(posterior_probs(p0, x_t, t, s))`` where ``s`` is the previous timestep
        of :meth:`set_timesteps` (or ``prev_t``); when ``s == 0``, ``prev_sample = (p0 > 0.5)``.
        """
        temperature = check_temperature(temperature)
        if flip_logits.shape != x_t.shape:
            raise InputError(f"flip_logits {tuple(flip_logits.shape)} and x_t {tuple(x_t.shape)} differ in shape")
        t_int = _as_int(t)
        s = self.previous_timestep(t_int) if prev_t is None else _as_int(prev_t)
        p_flip = torch.sigmoid(flip_logits.float() / temperature)
        xt = x_t.float()
        p0 = xt * (1.0 - p_flip) + (1.0 - xt) * p_flip
        if s == 0:
            prev = (p0 > 0.5).float()
        else:
            post = self.posterior_probs(p0, xt, t_int, s).float().clamp(0.0, 1.0)
            prev = torch.bernoulli(post, generator=generator)
        if not return_dict:
            return (prev, p0)
        return BernoulliSchedulerOutput(prev_sample=prev, pred_original_sample=p0)

    def __len__(self) -> int:
        return int(self.config["num_train_timesteps"])


def sample_bits(model_fn, scheduler: BernoulliDiffusionScheduler, shape: tuple[int, ...], steps: int,
                temperature: float, generator: torch.Generator | None = None, device=None,
                trajectory: list | None = None) -> torch.Tensor:
    """Reverse process from ``x_T ~ Bernoulli(0.5)`` of ``shape`` (B, ...) in ``steps`` steps of
    ``scheduler`` (its :meth:`~BernoulliDiffusionScheduler.set_timesteps` rejects steps > T):
    ``model_fn(x_t, t)`` gives the flip logits. Returns the bits ``x_0`` on ``device``; each state
    is appended to ``trajectory`` when given."""
    scheduler.set_timesteps(int(steps))
    x = torch.bernoulli(torch.full(tuple(shape), 0.5), generator=generator).to(device)
    for t in scheduler.timesteps.tolist():
        logits = model_fn(x, t)
        out = cast(BernoulliSchedulerOutput, scheduler.step(logits.cpu(), t, x.cpu(), temperature=temperature,
                                                             generator=generator))
        x = out.prev_sample.to(device)
        if trajectory is not None:
            trajectory.append(x.cpu())
    return x


def check_temperature(temperature) -> float:
    """``temperature`` as a float; InputError unless it is a finite number > 0."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise InputError(f"temperature must be a positive number, got {temperature!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"temperature must be a positive number (> 0), got {temperature!r}")
    return value


def _as_int(t) -> int:
    if isinstance(t, torch.Tensor):
        if t.numel() != 1:
            if bool((t == t.reshape(-1)[0]).all()):
                return int(t.reshape(-1)[0])
            raise InputError("step() takes one timestep for the whole batch")
        return int(t.item())
    return int(t)


def _check_bits(x: torch.Tensor, name: str) -> None:
    if not bool(((x == 0) | (x == 1)).all()):
        raise InputError(f"{name}: expected bits in {{0, 1}}")
