"""Inference: sample binary latents with the Bernoulli scheduler and decode them (images / occupancy),
plus the continuous-latent DDIM baseline (the image-grid / mesh writers live in
:mod:`latent4d.binary.io` and are re-exported here).

Both pipelines derive from :class:`latent4d.pipeline.LatentPipeline` with the components
``autoencoder`` (:class:`BernoulliAutoencoder`), ``denoiser`` (:class:`LatentTransformer`) and
``scheduler``: ``BinaryLatentPipeline.from_pretrained(run)`` loads ``<run>/models/{autoencoder,
denoiser_ema (or denoiser), scheduler}`` written by a ``binary/diffusion_*`` run (or a folder written
by ``save_pretrained``), through :mod:`latent4d.runs` and :mod:`latent4d.trust`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from diffusers import DDIMScheduler

from latent4d.binary.autoencoder import BernoulliAutoencoder
from latent4d.binary.denoiser import LatentTransformer
from latent4d.binary.io import image_grid, occupancy_mesh, save_image_grid  # noqa: F401 - re-exported (API)
from latent4d.binary.types import LatentSamples
from latent4d.diffusion.bernoulli import BernoulliDiffusionScheduler, check_temperature, sample_bits
from latent4d.errors import InputError
from latent4d.pipeline import LatentPipeline

#: DDIM sampling settings of the continuous baseline (eta = 0 at sampling time)
DDIM_SAMPLING = {"clip_sample": False, "timestep_spacing": "trailing", "set_alpha_to_one": True}


def _labels(num_samples: int, class_labels, num_classes: int) -> torch.Tensor:
    if class_labels is None:
        return torch.full((num_samples,), -1, dtype=torch.long)
    y = torch.as_tensor(class_labels, dtype=torch.long).reshape(-1)
    if y.numel() == 1:
        y = y.expand(num_samples).clone()
    if y.numel() != num_samples:
        raise InputError(f"got {y.numel()} class labels for {num_samples} samples")
    if num_classes == 0 and (y >= 0).any():
        raise InputError("this model is unconditional: it takes no class labels")
    if (y >= num_classes).any():
        raise InputError(f"class labels must lie in [0, {num_classes - 1}] (or -1 for none), got {y.unique().tolist()}")
    return y


class _LatentDiffusionPipeline(LatentPipeline):
    """Shared by both pipelines: the components, classifier-free guidance, batched sampling + decoding.

    ``use_ema``: load the denoiser's EMA copy (``denoiser_ema``) when the run has one (the default).
    """

    family = "binary"
    component_classes: ClassVar[dict[str, type]] = {"autoencoder": BernoulliAutoencoder,
                                                    "denoiser": LatentTransformer}
    use_ema: ClassVar[bool] = True

    def __init__(self, autoencoder: BernoulliAutoencoder, denoiser: LatentTransformer, scheduler: Any):
        self.register_modules(autoencoder=autoencoder.eval(), denoiser=denoiser.eval(), scheduler=scheduler)

    @classmethod
    def component_folder(cls, run_or_folder: str | Path, name: str) -> Path | None:
        """The EMA denoiser (``denoiser_ema``, :func:`latent4d.ema.ema_folder`) in place of ``denoiser``
        when the run exported one."""
        from latent4d.ema import ema_folder

        if name == "denoiser" and cls.use_ema:
            folder = ema_folder(run_or_folder, name, "LatentTransformer", cls.family)
            if folder is not None:
                return folder
        return super().component_folder(run_or_folder, name)

    @property
    def num_classes(self) -> int:
        return int(self.denoiser.config.num_classes)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.denoiser.config.latent_channels, *self.denoiser.grid)

    def _guided(self, x: torch.Tensor, t, labels: torch.Tensor, guidance: float) -> torch.Tensor:
        """Classifier-free guidance on the denoiser output: (1 + w) cond - w uncond (w = 0: cond only)."""
        conditional = self.num_classes > 0 and bool((labels >= 0).any())
        if not conditional:
            return self.denoiser(x, t, None)
        if guidance == 0:
            return self.denoiser(x, t, labels)
        both = self.denoiser(torch.cat([x, x]), t, torch.cat([labels, torch.full_like(labels, -1)]))
        cond, uncond = both.chunk(2)
        return (1.0 + guidance) * cond - guidance * uncond

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        out = [self.autoencoder.decode(latents[i:i + batch_size].to(self.device)).cpu()
               for i in range(0, len(latents), batch_size)]
        return torch.cat(out)

    def __call__(self, num_samples: int = 16, steps: int = 16, class_labels=None, guidance: float = 0.0,
                 generator: torch.Generator | None = None, batch_size: int = 256, **kw) -> LatentSamples:
        """Sample ``num_samples`` latents with ``steps`` denoising steps and decode them."""
        if int(num_samples) < 1:
            raise InputError(f"num_samples must be >= 1, got {num_samples}")
        labels = _labels(int(num_samples), class_labels, self.num_classes)
        lat = [self.sample_latents(labels[i:i + batch_size], steps=steps, guidance=float(guidance),
                                   generator=generator, **kw).cpu()
               for i in range(0, int(num_samples), batch_size)]
        latents = torch.cat(lat)
        return LatentSamples(self.decode(latents), latents, labels)


class BinaryLatentPipeline(_LatentDiffusionPipeline):
    """Bernoulli diffusion sampling: x_T ~ Bernoulli(0.5), ``steps`` reverse steps of
    :class:`BernoulliDiffusionScheduler` at ``temperature`` (default: the model's calibrated one),
    classifier-free ``guidance`` on the flip logits, then the autoencoder's decoder."""

    component_classes: ClassVar[dict[str, type]] = {**_LatentDiffusionPipeline.component_classes,
                                                    "scheduler": BernoulliDiffusionScheduler}

    @property
    def default_temperature(self) -> float:
        """The model's sampling temperature: its scheduler's ``sampling_temperature`` (calibrated by the
        training run, :mod:`latent4d.binary.calibrate`; 0.9 for models saved before calibration)."""
        return check_temperature(self.scheduler.config.get("sampling_temperature", 0.9))

    @torch.no_grad()
    def sample_latents(self, labels: torch.Tensor, steps: int = 16, temperature: float | None = None,
                       guidance: float = 0.0, generator: torch.Generator | None = None,
                       trajectory: list | None = None) -> torch.Tensor:
        """Bits (B, C, *grid) for the class ``labels`` (B,) (-1 = unconditional); ``temperature`` None: the
        model's :attr:`default_temperature`."""
        temperature = self.default_temperature if temperature is None else check_temperature(temperature)
        labels = labels.to(self.device)
        return sample_bits(lambda x, t: self._guided(x, t, labels, guidance), self.scheduler,
                           (len(labels), *self.latent_shape), int(steps), temperature, generator, self.device,
                           trajectory)


class GaussianLatentPipeline(_LatentDiffusionPipeline):
    """The continuous baseline: DDIM (diffusers ``DDIMScheduler``, eta = 0, trailing timestep spacing) over
    the standardised continuous latents, classifier-free guidance on the model output, then the decoder.

    The run exports its training scheduler (a ``DDPMScheduler``); any diffusers scheduler config is
    read as a DDIM one with the sampling settings :data:`DDIM_SAMPLING`.
    """

    component_classes: ClassVar[dict[str, type]] = {**_LatentDiffusionPipeline.component_classes,
                                                    "scheduler": DDIMScheduler}

    def __init__(self, autoencoder: BernoulliAutoencoder, denoiser: LatentTransformer, scheduler: Any):
        super().__init__(autoencoder, denoiser, DDIMScheduler.from_config(scheduler.config, **DDIM_SAMPLING))

    @classmethod
    def component_folder(cls, run_or_folder: str | Path, name: str) -> Path | None:
        from latent4d.runs import network_folder

        if name == "scheduler":  # saved as the training DDPMScheduler: no class to insist on
            return network_folder(run_or_folder, name, None, cls.family)
        return super().component_folder(run_or_folder, name)

    @classmethod
    def load_components(cls, run_or_folder: str | Path, names: list[str] | None = None) -> dict[str, Any]:
        from latent4d.trust import load_scheduler

        names = list(names or cls.component_classes)
        nets = [n for n in names if n != "scheduler"]
        out = super().load_components(run_or_folder, nets) if nets else {}
        if "scheduler" in names:
            out["scheduler"] = load_scheduler(DDIMScheduler, cls.component_folder(run_or_folder, "scheduler"),
                                              check_class=False)
        return out

    @torch.no_grad()
    def sample_latents(self, labels: torch.Tensor, steps: int = 16, guidance: float = 0.0,
                       generator: torch.Generator | None = None, temperature: float | None = None,
                       trajectory: list | None = None) -> torch.Tensor:
        """Continuous latents (B, C, *grid) (un-standardised, clamped to the AE's [0, 1] range)."""
        T = int(self.scheduler.config.num_train_timesteps)
        if not 1 <= int(steps) <= T:
            raise InputError(f"steps={steps} is not possible: choose 1 <= steps <= {T}")
        self.scheduler.set_timesteps(int(steps))
        B = len(labels)
        labels = labels.to(self.device)
        x = torch.randn((B, *self.latent_shape), generator=generator).to(self.device)
        for t in self.scheduler.timesteps:
            pred = self._guided(x, t.to(self.device), labels, guidance)
            x = self.scheduler.step(pred, t, x, eta=0.0).prev_sample
            if trajectory is not None:
                trajectory.append(x.cpu())
        shape = (1, -1) + (1,) * (x.dim() - 2)
        z = x * self.denoiser.latent_scale.view(shape) + self.denoiser.latent_shift.view(shape)
        return z.clamp(0.0, 1.0)
