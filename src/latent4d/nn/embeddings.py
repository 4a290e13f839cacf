"""Point, timestep and grid position embeddings."""

from __future__ import annotations

import math

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn


class FourierPointEmbed(nn.Module):
    """3DShape2VecSet PointEmbed: per-axis Fourier features ``sin/cos(2^k * pi * x)`` plus ``x`` -> Linear.

    Input (..., 3) (coordinates ~[-1, 1]); output (..., dim). With ``num_freqs=8`` the raw feature
    is 3 * 8 * 2 + 3 = 51 wide, as in the paper.
    """

    freqs: torch.Tensor

    def __init__(self, dim: int, num_freqs: int = 8, include_input: bool = True, in_dim: int = 3):
        super().__init__()
        freqs = (2.0 ** torch.arange(num_freqs, dtype=torch.float32)) * math.pi
        self.register_buffer("freqs", freqs, persistent=False)
        self.include_input = include_input
        self.in_dim = in_dim
        self.out_features = in_dim * num_freqs * 2 + (in_dim if include_input else 0)
        self.proj = nn.Linear(self.out_features, dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Raw Fourier features (..., out_features)."""
        proj = (x[..., :, None] * self.freqs).flatten(-2)  # (..., in_dim * F)
        parts = [proj.sin(), proj.cos()] + ([x] if self.include_input else [])
        return torch.cat(parts, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x))


class TimestepEmbedder(nn.Module):
    """Scalar (diffusion time / noise level) -> (B, dim) through diffusers' sinusoidal ``Timesteps``
    and ``TimestepEmbedding`` MLP. ``scale`` multiplies the input first (e.g. 1000 for t in [0, 1])."""

    def __init__(self, dim: int, freq_dim: int = 256, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.proj = Timesteps(freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.mlp = TimestepEmbedding(freq_dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
        return self.mlp(self.proj(t * self.scale).to(self.mlp.linear_1.weight.dtype))


def sincos_embedding_1d(positions: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Fixed sin-cos embedding (N,) -> (N, dim) (dim even)."""
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    half = dim // 2
    omega = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    ang = positions.float()[:, None] * omega[None]
    return torch.cat([ang.sin(), ang.cos()], dim=-1)


def sincos_embedding_grid(shape: tuple[int, ...], dim: int) -> torch.Tensor:
    """Fixed sin-cos positions for a 1D/2D/3D token grid -> (prod(shape), dim).

    The channels are split evenly between the axes (dim must be divisible by 2 * len(shape)).
    Token order is row-major over ``shape``.
    """
    n = len(shape)
    if dim % (2 * n):
        raise ValueError(f"dim {dim} must be divisible by {2 * n} for a {n}D grid")
    axes = torch.meshgrid(*[torch.arange(s) for s in shape], indexing="ij")
    embs = [sincos_embedding_1d(a.reshape(-1), dim // n) for a in axes]
    return torch.cat(embs, dim=-1)
