"""Inference: sample binary latents with the Bernoulli scheduler and decode them (images / occupancy),
plus the continuous-latent DDIM baseline and image-grid / mesh writers.

Both pipelines derive from :class:`latent4d.pipeline.LatentPipeline` with the components
``autoencoder`` (:class:`BernoulliAutoencoder`), ``denoiser`` (:class:`LatentTransformer`) and
``scheduler``: ``BinaryLatentPipeline.from_pretrained(run)`` loads ``<run>/models/{autoencoder,
denoiser_ema (or denoiser), scheduler}`` written by a ``binary/diffusion_*`` run (or a folder written
by ``save_pretrained``), through :mod:`latent4d.runs` and :mod:`latent4d.trust`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from diffusers import DDIMScheduler

from latent4d.binary.autoencoder import BernoulliAutoencoder
from latent4d.binary.denoiser import LatentTransformer
from latent4d.diffusion.bernoulli import BernoulliDiffusionScheduler, check_temperature
from latent4d.errors import InputError
from latent4d.fileio import atomic_path
from latent4d.pipeline import LatentPipeline

#: DDIM sampling settings of the continuous baseline (eta = 0 at sampling time)
DDIM_SAMPLING = {"clip_sample": False, "timestep_spacing": "trailing", "set_alpha_to_one": True}


@dataclass
class LatentSamples:
    """samples: decoded (B, C_in, H, W) images in [0, 1] or (B, 1, R, R, R) occupancy probabilities;
    latents: (B, C, *grid) bits (or continuous latents); labels: (B,) requested classes (-1 = none)."""

    samples: torch.Tensor
    latents: torch.Tensor
    labels: torch.Tensor


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
        """The EMA denoiser (``denoiser_ema``) in place of ``denoiser`` when the run exported one."""
        from latent4d.runs import has_network, network_folder

        if name == "denoiser" and cls.use_ema and has_network(run_or_folder, "denoiser_ema", "LatentTransformer"):
            return network_folder(run_or_folder, "denoiser_ema", "LatentTransformer", cls.family)
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
    :class:`BernoulliDiffusionScheduler` at ``temperature``, classifier-free ``guidance`` on the flip
    logits, then the autoencoder's decoder."""

    component_classes: ClassVar[dict[str, type]] = {**_LatentDiffusionPipeline.component_classes,
                                                    "scheduler": BernoulliDiffusionScheduler}

    @torch.no_grad()
    def sample_latents(self, labels: torch.Tensor, steps: int = 16, temperature: float = 0.9,
                       guidance: float = 0.0, generator: torch.Generator | None = None,
                       trajectory: list | None = None) -> torch.Tensor:
        """Bits (B, C, *grid) for the class ``labels`` (B,) (-1 = unconditional)."""
        temperature = check_temperature(temperature)
        self.scheduler.set_timesteps(int(steps))  # rejects steps > T with a message
        B = len(labels)
        labels = labels.to(self.device)
        x = torch.bernoulli(torch.full((B, *self.latent_shape), 0.5), generator=generator).to(self.device)
        for t in self.scheduler.timesteps.tolist():
            logits = self._guided(x, t, labels, guidance)
            x = self.scheduler.step(logits.cpu(), t, x.cpu(), temperature=temperature,
                                    generator=generator).prev_sample.to(self.device)
            if trajectory is not None:
                trajectory.append(x.cpu())
        return x


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


# ----------------------------------------------------------------------------- writers
def image_grid(images: torch.Tensor | np.ndarray, nrow: int | None = None, pad: int = 1, scale: int = 1
               ) -> np.ndarray:
    """(N, C, H, W) images in [0, 1] -> one (H', W', 3) uint8 grid (``nrow`` images per row, upscaled by ``scale``)."""
    x = torch.as_tensor(images).float().clamp(0, 1)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise InputError(f"image_grid: expected (N, 1|3, H, W), got {tuple(x.shape)}")
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if scale > 1:
        x = x.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    n, _, h, w = x.shape
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / nrow))
    grid = torch.ones(3, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[:, pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = x[i]
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def save_image_grid(images, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Write :func:`image_grid` as a PNG (atomically)."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image_grid(images, nrow, scale=scale)).save(tmp, format="PNG")
    return Path(path)


def occupancy_mesh(occupancy: torch.Tensor | np.ndarray, level: float = 0.5):
    """(R, R, R) occupancy probability over [-1, 1]^3 -> trimesh surface (marching cubes, inside = above level)."""
    from latent4d.geometry.meshing import marching_cubes

    vol = torch.as_tensor(occupancy).float()
    vol = torch.nn.functional.pad(vol, (1, 1, 1, 1, 1, 1))  # close surfaces that touch the border
    R = vol.shape[0]
    return marching_cubes(vol, level=level, bounds=R / (R - 2), inside="positive")
