"""Hairstyle-VAE: a guide map (strand latents on the scalp UV grid) <-> one style latent (GroomGen).

Input: guide maps ``(C + 1, H, W)`` (C strand-latent channels + presence, see ``hair.guides``). The
latents are standardised per channel with the training statistics (buffers ``latent_mean`` /
``latent_std``) and masked to the scalp; a 2D conv encoder maps them to ``(mu, logvar)`` of a
``style_dim`` latent; the decoder (transposed convs) predicts standardised latents and presence
logits. The scalp parameters and the global attribute model (linear regression of the procedural
generator's labels on style latents, used for attribute edits) are stored with the network, so
``save_pretrained`` / ``from_pretrained`` carry everything a pipeline needs.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from latent4d.hair.scalp import Scalp
from latent4d.hair.synthetic import ATTRIBUTES

#: plausible ranges of the size settings in a hairstyle-VAE's config.json (see ``STRAND_VAE_LIMITS``)
STYLE_VAE_LIMITS = {"latent_channels": (1, 4096), "grid": (8, 512), "style_dim": (1, 4096), "channels": (1, 4096)}


class HairstyleVAE(ModelMixin, ConfigMixin):
    """Conv VAE over guide maps.

    Args:
        latent_channels: C, the strand-VAE latent size.
        grid: H = W, guide-map resolution (divisible by 8).
        style_dim: size of the style latent.
        channels: conv widths at resolutions H, H/2, H/4, H/8.
        scalp: ``Scalp.to_dict()`` of the scalp the grid lives on (default head when None).
        attributes: names of the global attributes (regressed from labels during training).
        fitted_prior: sample from a Gaussian fitted to the training styles' posterior means (buffers
            ``prior_mean`` (D,) and ``prior_scale`` (D, D), lower-triangular, see :meth:`fit_prior`)
            instead of N(0, I). Off for networks saved before it existed (their config lacks the key).
    """

    @register_to_config
    def __init__(self, latent_channels: int = 64, grid: int = 32, style_dim: int = 128,
                 channels: tuple = (48, 96, 192, 256), scalp: dict | None = None,
                 attributes: tuple = ATTRIBUTES, fitted_prior: bool = False):
        super().__init__()
        if grid % 8:
            raise ValueError(f"grid must be divisible by 8, got {grid}")
        sc = Scalp.from_dict(scalp)
        if scalp is None or "uv_bounds" not in scalp:
            self.register_to_config(scalp=sc.to_dict())
        self.register_to_config(attributes=list(attributes), channels=list(channels))
        self.scalp = sc
        self.guide_grid = sc.grid(grid)
        c = list(channels)
        C = latent_channels
        self.register_buffer("mask", torch.as_tensor(self.guide_grid.mask.reshape(grid, grid), dtype=torch.float32),
                             persistent=False)
        self.register_buffer("latent_mean", torch.zeros(C))
        self.register_buffer("latent_std", torch.ones(C))
        A = len(attributes)
        self.register_buffer("attr_weight", torch.zeros(A, style_dim))  # standardised label = w . (z - z_mean)
        self.register_buffer("attr_zmean", torch.zeros(style_dim))
        self.register_buffer("attr_mean", torch.zeros(A))
        self.register_buffer("attr_std", torch.ones(A))
        if fitted_prior:  # z = prior_mean + prior_scale @ eps, eps ~ N(0, I); N(0, I) until fitted
            self.register_buffer("prior_mean", torch.zeros(style_dim))
            self.register_buffer("prior_scale", torch.eye(style_dim))
        enc: list[nn.Module] = [nn.Conv2d(C + 2, c[0], 3, padding=1), nn.SiLU()]
        for a, b in zip(c[:-1], c[1:]):
            enc += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.SiLU(), nn.Conv2d(b, b, 3, padding=1), nn.SiLU()]
        self.encoder = nn.Sequential(*enc)
        low = grid // 2 ** (len(c) - 1)
        self.low = low
        self.to_stats = nn.Linear(c[-1] * low * low, 2 * style_dim)
        self.from_latent = nn.Linear(style_dim, c[-1] * low * low)
        dec: list[nn.Module] = []
        for a, b in zip(c[::-1][:-1], c[::-1][1:]):
            dec += [nn.SiLU(), nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.SiLU(), nn.Conv2d(b, b, 3, padding=1)]
        dec += [nn.SiLU(), nn.Conv2d(c[0], C + 1, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        with torch.no_grad():  # most scalp texels carry hair: start with presence ~0.95
            self.decoder[-1].bias[-1] = 3.0

    # ------------------------------------------------------------------ normalisation
    def normalize(self, gmap: torch.Tensor) -> torch.Tensor:
        """Guide maps (B, C+1, H, W) -> encoder input (B, C+2, H, W): standardised masked latents,
        presence and the scalp mask."""
        lat, pres = gmap[:, :-1], gmap[:, -1:]
        m = self.mask[None, None]
        keep = m * (pres > 0.5).to(gmap.dtype)
        z = (lat - self.latent_mean[None, :, None, None]) / self.latent_std[None, :, None, None]
        return torch.cat([z * keep, pres * m, m.expand_as(pres)], 1)

    def denormalize(self, out: torch.Tensor) -> torch.Tensor:
        """Decoder output (standardised latents + presence logits) -> guide map (B, C+1, H, W)
        with latents in strand-VAE units and presence probabilities (zero outside the scalp)."""
        lat = out[:, :-1] * self.latent_std[None, :, None, None] + self.latent_mean[None, :, None, None]
        pres = torch.sigmoid(out[:, -1:]) * self.mask[None, None]
        return torch.cat([lat, pres], 1)

    # ------------------------------------------------------------------------ VAE
    def encode(self, gmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Guide maps (B, C+1, H, W) -> (mu, logvar), each (B, style_dim)."""
        h = self.encoder(self.normalize(gmap))
        mu, logvar = self.to_stats(h.flatten(1)).chunk(2, -1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Style latents (B, style_dim) -> standardised latents + presence logits (B, C+1, H, W)."""
        c = self.config.channels[-1]
        return self.decoder(self.from_latent(z).view(z.shape[0], c, self.low, self.low))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Style latents (B, style_dim) -> guide maps (B, C+1, H, W)."""
        return self.denormalize(self.decode_raw(z))

    def forward(self, gmap: torch.Tensor, sample: bool = True) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode(gmap)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return {"raw": self.decode_raw(z), "mu": mu, "logvar": logvar, "z": z}

    # ------------------------------------------------------------------ sampling prior
    @property
    def has_fitted_prior(self) -> bool:
        return bool(self.config.get("fitted_prior", False))

    def prior_sample(self, eps: torch.Tensor) -> torch.Tensor:
        """Standard-normal noise (n, D) -> style latents (n, D) of the sampling prior: the Gaussian fitted
        to the training styles' posterior means when the network has one (:meth:`fit_prior`), else
        N(0, I) (``eps`` itself). Scale ``eps`` by a temperature first."""
        if not self.has_fitted_prior:
            return eps
        scale = self.prior_scale.double()  # row by row in float64: a latent does not depend on the batch size
        z = torch.stack([scale @ e for e in eps.double()]) if len(eps) else eps.double()
        return (self.prior_mean.double() + z).to(eps.dtype)

    @torch.no_grad()
    def fit_prior(self, mu: torch.Tensor, shrink: float | None = None) -> None:
        """Fit the sampling prior to posterior means ``mu (N, D)`` of the training styles: the aggregate
        posterior where the decoder reproduces training styles, not the N(0, I) the KL term pulls towards.

        Full-covariance Gaussian; the covariance is shrunk towards its diagonal by ``shrink``
        (default D / (N + D), so that few styles still give a positive-definite scale) and floored at
        1e-6 per dimension. A no-op for a network without ``fitted_prior`` and for non-finite latents
        (the previous fit stays)."""
        if not self.has_fitted_prior or len(mu) < 2:
            return
        z = mu.detach().double().cpu()
        N, D = z.shape
        a = D / (N + D) if shrink is None else float(shrink)
        cov = torch.cov(z.T).reshape(D, D)
        cov = (1 - a) * cov + a * torch.diag(cov.diagonal()) + 1e-6 * torch.eye(D, dtype=z.dtype)
        L, info = torch.linalg.cholesky_ex(cov)
        if int(info) != 0 or not bool(torch.isfinite(L).all()):
            return
        self.prior_mean.copy_(z.mean(0).float())
        self.prior_scale.copy_(L.float())

    # ------------------------------------------------------------------ attributes
    @property
    def attribute_names(self) -> list[str]:
        return list(self.config.attributes)

    def has_attributes(self) -> bool:
        return bool(self.attr_weight.abs().sum() > 0)

    def attribute_direction(self, name: str) -> torch.Tensor:
        """Style-latent direction (style_dim,) along which the regressed attribute ``name`` grows by one
        standard deviation (of the training styles) per unit step."""
        names = self.attribute_names
        if name not in names:
            raise KeyError(f"unknown attribute '{name}'; known: {', '.join(names)}")
        w = self.attr_weight[names.index(name)]
        n2 = w.square().sum()
        if float(n2) == 0.0:
            raise RuntimeError("this hairstyle-VAE has no attribute model (trained without labels)")
        return w / n2

    def predict_attributes(self, z: torch.Tensor) -> torch.Tensor:
        """Attributes (B, A) in label units (length m, curliness log(1 + 1/m), volume m) predicted from z (B, D)."""
        return ((z - self.attr_zmean) @ self.attr_weight.T) * self.attr_std + self.attr_mean

    @torch.no_grad()
    def fit_attributes(self, z: torch.Tensor, labels: torch.Tensor, ridge: float = 1e-2) -> dict[str, float]:
        """Ridge regression of standardised ``labels (N, A)`` on style latents ``z (N, D)``; returns R^2 per
        attribute and stores the model in the buffers."""
        z = z.double()
        y = labels.double()
        zm, ym, ys = z.mean(0), y.mean(0), y.std(0).clamp_min(1e-9)
        zc, yc = z - zm, (y - ym) / ys
        D = z.shape[1]
        gram = zc.T @ zc + ridge * len(z) * torch.eye(D, dtype=z.dtype)
        W = torch.linalg.solve(gram, zc.T @ yc).T  # (A, D)
        pred = zc @ W.T
        r2 = 1 - (pred - yc).square().sum(0) / yc.square().sum(0).clamp_min(1e-12)
        self.attr_weight.copy_(W.float())
        self.attr_zmean.copy_(zm.float())
        self.attr_mean.copy_(ym.float())
        self.attr_std.copy_(ys.float())
        return {n: float(v) for n, v in zip(self.attribute_names, r2)}


def guide_map_numpy_mask(model: HairstyleVAE) -> np.ndarray:
    """(H, W) bool scalp mask of a model's guide grid."""
    return model.guide_grid.mask.reshape(model.config.grid, model.config.grid)


def load_style_vae(path) -> HairstyleVAE:
    """The hairstyle-VAE of a run directory (``<run>/models/style_vae``) or a save_pretrained folder,
    loaded like :func:`latent4d.hair.strand_vae.load_strand_vae` (limits :data:`STYLE_VAE_LIMITS`)."""
    from latent4d.runs import network_folder
    from latent4d.trust import load_network

    return load_network(HairstyleVAE, network_folder(path, "style_vae", "HairstyleVAE", "hair"), limits=STYLE_VAE_LIMITS)
