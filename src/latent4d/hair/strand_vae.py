"""Strand-VAE: one 100-point strand in its root's TBN frame <-> a 64-d latent (HAAR / GroomGen).

Encoder: 1D convolutions over the points (features: positions and segment vectors) -> mean and
log-variance. Decoder: an MLP predicting the 99 segment vectors; the strand is their cumulative sum
from the root (which is the origin of the local frame). Inputs and outputs are metres; inside the
network coordinates are multiplied by ``position_scale``.
"""

from __future__ import annotations

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

#: plausible ranges of the size settings in a strand-VAE's config.json, checked before anything sized
#: by them is built (a damaged or hostile config.json must not allocate gigabytes)
STRAND_VAE_LIMITS = {"num_points": (2, 10_000), "latent_dim": (1, 4096), "channels": (1, 4096),
                     "hidden": (1, 16384), "layers": (1, 64)}


class StrandVAE(ModelMixin, ConfigMixin):
    """Strand autoencoder with a Gaussian latent.

    Args:
        num_points: P, points per strand (root included).
        latent_dim: D.
        channels: encoder conv widths (each layer after the first halves the length).
        hidden: decoder MLP width; ``layers``: its hidden layers.
        position_scale: network units per metre.
        linear_skip: add linear paths (flattened strand -> latent stats, latent -> segments) next to the
            nonlinear encoder / decoder; smooth strands are close to a linear subspace, and the skip
            makes training converge much faster.
    """

    @register_to_config
    def __init__(self, num_points: int = 100, latent_dim: int = 64, channels: tuple = (32, 64, 128, 128),
                 hidden: int = 512, layers: int = 3, position_scale: float = 10.0, linear_skip: bool = True):
        super().__init__()
        ch = list(channels)
        enc: list[nn.Module] = [nn.Conv1d(6, ch[0], 5, padding=2), nn.SiLU()]
        length = num_points
        for a, b in zip(ch[:-1], ch[1:]):
            enc += [nn.Conv1d(a, b, 4, stride=2, padding=1), nn.SiLU()]
            length = (length + 2 - 4) // 2 + 1
        self.encoder = nn.Sequential(*enc)
        self.to_stats = nn.Linear(ch[-1] * length, 2 * latent_dim)
        dec: list[nn.Module] = [nn.Linear(latent_dim, hidden), nn.SiLU()]
        for _ in range(layers - 1):
            dec += [nn.Linear(hidden, hidden), nn.SiLU()]
        dec.append(nn.Linear(hidden, (num_points - 1) * 3))
        self.decoder = nn.Sequential(*dec)
        self.enc_skip = nn.Linear(num_points * 3, 2 * latent_dim) if linear_skip else None
        self.dec_skip = nn.Linear(latent_dim, (num_points - 1) * 3) if linear_skip else None

    def encode(self, strands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Local strands (B, P, 3) metres -> (mu (B, D), logvar (B, D))."""
        cfg = self.config
        x = strands * cfg.position_scale
        seg = torch.cat([x[:, 1:] - x[:, :-1], torch.zeros_like(x[:, :1])], 1) * (cfg.num_points - 1)
        h = self.encoder(torch.cat([x, seg], -1).transpose(1, 2))
        stats = self.to_stats(h.flatten(1))
        if self.enc_skip is not None:
            stats = stats + self.enc_skip(x.flatten(1))
        mu, logvar = stats.chunk(2, -1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode_segments(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, D) -> segment vectors (B, P-1, 3) in network units (metres * position_scale)."""
        seg = self.decoder(z)
        if self.dec_skip is not None:
            seg = seg + self.dec_skip(z)
        # the network predicts segments in units of (total length / (P - 1)): outputs of order one
        return seg.view(z.shape[0], self.config.num_points - 1, 3) / (self.config.num_points - 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, D) -> local strands (B, P, 3) metres, root at the origin."""
        seg = self.decode_segments(z) / self.config.position_scale
        return torch.cat([torch.zeros_like(seg[:, :1]), seg.cumsum(1)], 1)

    def forward(self, strands: torch.Tensor, sample: bool = True) -> dict[str, torch.Tensor]:
        """Encode, reparameterise (when ``sample``), decode: ``{recon, mu, logvar, z}``."""
        mu, logvar = self.encode(strands)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return {"recon": self.decode(z), "mu": mu, "logvar": logvar, "z": z}

    @torch.no_grad()
    def encode_mean(self, strands: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """Posterior means (N, D) of local strands (N, P, 3), in chunks (no gradients)."""
        out = [self.encode(strands[i:i + chunk].to(self.device, self.dtype))[0] for i in range(0, len(strands), chunk)]
        return torch.cat(out) if out else torch.zeros(0, self.config.latent_dim)

    @torch.no_grad()
    def decode_chunked(self, z: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """Local strands (N, P, 3) of latents (N, D), in chunks (no gradients)."""
        out = [self.decode(z[i:i + chunk].to(self.device, self.dtype)) for i in range(0, len(z), chunk)]
        return torch.cat(out) if out else torch.zeros(0, self.config.num_points, 3)


def strand_losses(pred: torch.Tensor, target: torch.Tensor, position_unit: float = 0.001) -> dict[str, torch.Tensor]:
    """Perm / DiffLocks strand reconstruction terms for local strands (B, P, 3) in metres.

    ``position``: L1 of positions in units of ``position_unit`` metres (default millimetres);
    ``direction``: mean ``1 - cos`` of segment directions; ``curvature``: L1 of ``d_i x d_{i-1}``
    for unit segment directions.
    """
    pos = (pred - target).abs().mean() / position_unit
    dp = pred[:, 1:] - pred[:, :-1]
    dt = target[:, 1:] - target[:, :-1]
    up = dp / dp.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    ut = dt / dt.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    direction = (1 - (up * ut).sum(-1)).mean()
    cp = torch.linalg.cross(up[:, 1:], up[:, :-1], dim=-1)
    ct = torch.linalg.cross(ut[:, 1:], ut[:, :-1], dim=-1)
    curv = (cp - ct).abs().mean()
    return {"position": pos, "direction": direction, "curvature": curv}


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dims, averaged over the batch."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1).mean()


def load_strand_vae(path) -> StrandVAE:
    """The strand-VAE of a run directory (``<run>/models/strand_vae``) or a save_pretrained folder,
    found by :func:`latent4d.runs.network_folder` and loaded as untrusted data by the pipeline base
    (:func:`latent4d.trust.load_network`: config sizes within :data:`STRAND_VAE_LIMITS`, weights
    checked against the config). Training code uses it for the frozen strand-VAE of a hairstyle-VAE."""
    from latent4d.runs import network_folder
    from latent4d.trust import load_network

    return load_network(StrandVAE, network_folder(path, "strand_vae", "StrandVAE", "hair"), limits=STRAND_VAE_LIMITS)
