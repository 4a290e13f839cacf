"""Normalisation and feed-forward layers: AdaLN, GEGLU feed-forward, DropPath."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GEGLU(nn.Module):
    """Linear(dim_in, 2 * dim_out) -> a * gelu(b)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(b)


class FeedForward(nn.Module):
    """GEGLU feed-forward (dim -> mult * dim -> dim), as in 3DShape2VecSet."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0, out_dim: int | None = None):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(dropout), nn.Linear(dim * mult, out_dim or dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AdaLayerNorm(nn.Module):
    """LayerNorm modulated by a conditioning vector: ``norm(x) * (1 + scale) + shift``.

    x (B, N, dim) or (B, ..., N, dim), cond (B, cond_dim). With ``gate=True`` also returns a gate
    (B, 1, dim) for AdaLN-Zero residuals; the modulation starts at identity (zero-initialised).
    ``eps``: the LayerNorm's (1e-6; the official Motion2VecSets denoiser: 1e-5, torch's default).
    """

    def __init__(self, dim: int, cond_dim: int, gate: bool = False, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.gate = gate
        lin = nn.Linear(cond_dim, dim * (3 if gate else 2))
        nn.init.zeros_(lin.weight)
        nn.init.zeros_(lin.bias)
        self.mod = nn.Sequential(nn.SiLU(), lin)

    def forward(self, x: torch.Tensor, cond: torch.Tensor):
        m = self.mod(cond)
        m = m.view(m.shape[0], *([1] * (x.dim() - 2)), m.shape[-1])
        if self.gate:
            shift, scale, gate = m.chunk(3, dim=-1)
            return self.norm(x) * (1 + scale) + shift, gate
        shift, scale = m.chunk(2, dim=-1)
        return self.norm(x) * (1 + scale) + shift


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        return x * x.new_empty(shape).bernoulli_(keep) / keep
