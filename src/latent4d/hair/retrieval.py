"""A bank of training hairstyles in style-latent space, for retrieval-initialised fitting.

The bank holds, for every training hairstyle (mirrored copies included), its posterior-mean style
latent and a fixed random subset of points on its decoded guide strands. Given an observation,
:meth:`LatentBank.nearest` ranks the styles by the one-sided Chamfer distance observation -> guide
points, and :func:`latent4d.hair.reconstruct.fit_observation` starts from the best few latents besides the
prior mean and random samples (as ShAPO starts from database codes). It is written next to the
hairstyle-VAE as ``style_vae/latent_bank.safetensors`` when a hairstyle-VAE run is exported;
:func:`ensure_latent_bank` adds it to runs exported before the bank existed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from latent4d.errors import InputError
from latent4d.geometry.distances import knn

log = logging.getLogger("latent4d.hair")

BANK_FILE = "latent_bank.safetensors"


@dataclass
class LatentBank:
    """``latents`` (N, D) style latents; ``points`` (N, P, 3) metres, points on each style's guides."""

    latents: torch.Tensor
    points: torch.Tensor

    def __post_init__(self):
        self.latents = torch.as_tensor(self.latents, dtype=torch.float32)
        self.points = torch.as_tensor(self.points, dtype=torch.float32)
        if self.latents.ndim != 2 or self.points.ndim != 3 or self.points.shape[-1] != 3 \
                or len(self.latents) != len(self.points) or len(self.latents) == 0:
            raise InputError(f"latent bank: expected latents (N, D) and points (N, P, 3) with N > 0, got "
                             f"{tuple(self.latents.shape)} and {tuple(self.points.shape)}")

    def __len__(self) -> int:
        return len(self.latents)

    def save(self, folder: str | Path) -> Path:
        """Write ``<folder>/latent_bank.safetensors`` atomically."""
        from safetensors.torch import save_file

        from latent4d.fileio import atomic_path

        path = Path(folder) / BANK_FILE
        with atomic_path(path) as tmp:
            save_file({"latents": self.latents.contiguous(), "points": self.points.half().contiguous()}, str(tmp))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> LatentBank | None:
        """The bank in ``folder`` (None when there is none)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(folder) / BANK_FILE
        if not path.is_file():
            return None
        try:
            t = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise InputError(f"{path}: not a readable latent bank ({e})") from None
        if "latents" not in t or "points" not in t:
            raise InputError(f"{path}: a latent bank needs 'latents' and 'points' tensors, found {sorted(t)}")
        return cls(t["latents"], t["points"].float())

    @torch.no_grad()
    def nearest(self, observation: np.ndarray | torch.Tensor, k: int = 2, max_points: int = 1024,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices (k,) of the styles whose guide points best explain ``observation`` (M, 3) metres,
        and their scores (mean distance from an observed point to the style's nearest guide point, m)."""
        obs = torch.as_tensor(np.asarray(observation, np.float32)).reshape(-1, 3)
        if len(obs) == 0:
            raise InputError("latent bank: empty observation")
        if len(obs) > max_points:
            g = torch.Generator().manual_seed(seed)
            obs = obs[torch.randperm(len(obs), generator=g)[:max_points]]
        scores = torch.empty(len(self))
        for i in range(0, len(self), 256):  # one batched KNN search per 256 styles
            pts = self.points[i:i + 256]
            d, _ = knn(obs[None].expand(len(pts), -1, -1), pts, 1)  # (b, M, 1) squared distances
            scores[i:i + 256] = d[..., 0].sqrt().mean(-1)
        k = min(int(k), len(self))
        best = torch.argsort(scores)[:k]
        return best, scores[best]


@torch.no_grad()
def build_latent_bank(strand_vae, style_vae, guide_maps: torch.Tensor, points_per_style: int = 512, seed: int = 0,
                      batch: int = 64) -> LatentBank:
    """Encode ``guide_maps`` (N, C + 1, G, G) (a hairstyle-VAE's training maps) to posterior means,
    decode each to guide strands (``strand_vae`` on ``style_vae``'s guide grid) and keep
    ``points_per_style`` random points on them. Both networks should be in eval mode."""
    from latent4d.hair.densify import guide_world

    if style_vae is None:
        raise InputError("a latent bank needs a hairstyle-VAE")
    maps = torch.as_tensor(guide_maps, dtype=torch.float32)
    mu = torch.cat([style_vae.encode(maps[i:i + batch])[0] for i in range(0, len(maps), batch)])
    g = torch.Generator().manual_seed(seed)
    pts = torch.zeros(len(mu), points_per_style, 3)
    grid = style_vae.guide_grid
    for i, z in enumerate(mu):
        w, present = guide_world(strand_vae, style_vae.decode(z[None])[0], grid)
        p = torch.as_tensor(w[present][:, ::2].reshape(-1, 3), dtype=torch.float32)
        if len(p) == 0:
            continue  # a bald decode: its points stay at the origin, far from any observation
        pts[i] = p[torch.randint(len(p), (points_per_style,), generator=g)]
    return LatentBank(mu, pts)


def bank_from_run(run_dir: str | Path, points_per_style: int = 512) -> LatentBank:
    """Build the bank of a hairstyle-VAE run from its saved config (rebuilds the training maps).

    The run folder is data: its ``config.yaml`` is read with :func:`latent4d.config.load_run_config`
    and ``data`` is built with :func:`latent4d.trust.instantiate_from_run`, which refuses any
    ``_target_`` that is not a latent4d hair class before anything is called. The networks load
    through :func:`latent4d.hair.strand_vae.load_strand_vae` / :func:`latent4d.hair.style_vae.load_style_vae`."""
    from omegaconf import DictConfig

    from latent4d.config import load_run_config
    from latent4d.errors import ConfigError
    from latent4d.hair.data import HairGuideDataModule
    from latent4d.hair.strand_vae import load_strand_vae
    from latent4d.hair.style_vae import load_style_vae
    from latent4d.trust import check_targets, instantiate_from_run

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    where = f"{run_dir / 'config.yaml'}: data"
    if str(cfg.get("family")) != "hair":
        raise ConfigError(f"{run_dir / 'config.yaml'}: a {cfg.get('family')} run, not a hair run")
    if not isinstance(cfg.get("data"), DictConfig):
        raise ConfigError(f"{where}: expected a mapping with a _target_ (the run folder is damaged)")
    check_targets(cfg.data, "hair", where)  # before anything else reads the run: no code from run folders
    strand, style = load_strand_vae(run_dir).eval(), load_style_vae(run_dir).eval()
    if style.config.latent_channels != strand.config.latent_dim:
        raise InputError(f"'{run_dir}': the hairstyle-VAE expects {style.config.latent_channels}-d strand latents "
                         f"but the strand-VAE gives {strand.config.latent_dim}-d ones: the two networks are from "
                         "different runs")
    dm = instantiate_from_run(cfg.data, "hair", where)
    if not isinstance(dm, HairGuideDataModule):
        raise ConfigError(f"{where}: builds a {type(dm).__name__}, not the HairGuideDataModule of a "
                          "hairstyle-VAE run")
    return build_latent_bank(strand, style, dm.dataset("train").tensors[0], points_per_style)


def ensure_latent_bank(run_dir: str | Path) -> Path:
    """Add ``models/style_vae/latent_bank.safetensors`` to a hairstyle-VAE run that lacks one."""
    folder = Path(run_dir) / "models" / "style_vae"
    if not (folder / BANK_FILE).is_file():
        log.info("building the latent bank of %s", run_dir)
        bank_from_run(run_dir).save(folder)
    return folder / BANK_FILE
