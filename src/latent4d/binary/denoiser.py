"""Transformer denoiser over latent tokens (DiT-style blocks with AdaLN-Zero conditioning).

Input latents (B, C, *grid) (2D ``(h, w)`` or 3D ``(d, h, w)`` token grids) are flattened row-major into
N tokens of C channels. ``input_mode="bits"``: bits {0, 1} -> ``2 x - 1`` -> Linear; ``"continuous"``:
the (normalised) continuous latents -> Linear (the Gaussian baseline, same network otherwise).
Fixed sin-cos positions over the token grid are added. Conditioning vector = timestep embedding +
class embedding (index ``num_classes`` is the "no label" token used for label dropout and
classifier-free guidance). Output (B, C, *grid): per-bit flip logits (bits) or the Gaussian model's
prediction (epsilon / v).

Timesteps are the diffusion's own integers in [0, T] (T = ``num_train_timesteps``), embedded as
``t * 1000 / T``: the embedding depends on t / T only, never on the number of sampling steps (the
official code scales by the number of sampling steps, so skipping steps shifts the time input).
"""

from __future__ import annotations

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from latent4d.errors import ConfigError, InputError
from latent4d.nn import AdaLayerNorm, Attention, FeedForward, TimestepEmbedder, sincos_embedding_grid


class DiTBlock(nn.Module):
    """x + gate * Attn(AdaLN(x)); x + gate * FF(AdaLN(x))."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_mult: int, dropout: float):
        super().__init__()
        self.norm1 = AdaLayerNorm(dim, dim, gate=True)
        self.attn = Attention(dim, heads=heads, dim_head=dim_head, dropout=dropout)
        self.norm2 = AdaLayerNorm(dim, dim, gate=True)
        self.ff = FeedForward(dim, mult=mlp_mult, dropout=dropout)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h, g = self.norm1(x, cond)
        x = x + g * self.attn(h)
        h, g = self.norm2(x, cond)
        return x + g * self.ff(h)


class LatentTransformer(ModelMixin, ConfigMixin):
    """See the module docstring.

    latent_channels: C; latent_shape: token grid (h, w) or (d, h, w); dim / depth / heads / dim_head /
    mlp_mult: transformer size; num_classes: 0 for unconditional; num_train_timesteps: T of the
    diffusion it is trained with; input_mode: ``bits`` | ``continuous``.
    """

    @register_to_config
    def __init__(self, latent_channels: int = 16, latent_shape: tuple[int, ...] = (4, 4), dim: int = 128,
                 depth: int = 4, heads: int = 4, dim_head: int = 32, mlp_mult: int = 4, num_classes: int = 0,
                 num_train_timesteps: int = 64, input_mode: str = "bits", dropout: float = 0.0):
        super().__init__()
        if input_mode not in ("bits", "continuous"):
            raise ConfigError(f"input_mode must be 'bits' or 'continuous', got {input_mode!r}")
        shape = tuple(int(s) for s in latent_shape)
        self.register_to_config(latent_shape=list(shape))  # plain JSON list even when Hydra passes a ListConfig
        if len(shape) not in (2, 3):
            raise ConfigError(f"latent_shape must be a 2D or 3D token grid, got {shape}")
        self.grid = shape
        self.inp = nn.Linear(latent_channels, dim)
        pos_dim = dim - dim % (2 * len(shape))
        pos = sincos_embedding_grid(shape, pos_dim)
        pos = torch.cat([pos, torch.zeros(pos.shape[0], dim - pos_dim)], -1)
        self.register_buffer("pos", pos[None], persistent=False)
        self.time = TimestepEmbedder(dim, scale=1000.0 / num_train_timesteps)
        self.label = nn.Embedding(num_classes + 1, dim) if num_classes > 0 else None
        self.blocks = nn.ModuleList(DiTBlock(dim, heads, dim_head, mlp_mult, dropout) for _ in range(depth))
        self.norm_out = AdaLayerNorm(dim, dim)
        self.out = nn.Linear(dim, latent_channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # per-channel normalisation of continuous latents (set by the baseline's training; saved with it)
        self.register_buffer("latent_shift", torch.zeros(latent_channels))
        self.register_buffer("latent_scale", torch.ones(latent_channels))

    @property
    def null_class(self) -> int:
        return int(self.config.num_classes)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | int, class_labels: torch.Tensor | None = None
                ) -> torch.Tensor:
        """x (B, C, *grid), timesteps int or (B,) in [0, T], class_labels (B,) int (or None / -1 = no label)."""
        B, C = x.shape[:2]
        if C != self.config.latent_channels or tuple(x.shape[2:]) != self.grid:
            raise InputError(f"denoiser input: expected (B, {self.config.latent_channels}, "
                             f"{', '.join(map(str, self.grid))}), got {tuple(x.shape)}")
        tok = x.flatten(2).transpose(1, 2)  # (B, N, C)
        if self.config.input_mode == "bits":
            tok = tok * 2.0 - 1.0
        h = self.inp(tok) + self.pos
        t = torch.as_tensor(timesteps, device=x.device, dtype=torch.float32).reshape(-1).expand(B)
        cond = self.time(t)
        if self.label is not None:
            if class_labels is None:
                labels = torch.full((B,), self.null_class, dtype=torch.long, device=x.device)
            else:
                labels = torch.as_tensor(class_labels, device=x.device).long().reshape(-1).expand(B)
                labels = torch.where(labels < 0, torch.full_like(labels, self.null_class), labels)
                if (labels > self.null_class).any():
                    raise InputError(f"class label out of range: the model has {self.null_class} classes")
            cond = cond + self.label(labels)
        for blk in self.blocks:
            h = blk(h, cond)
        out = self.out(self.norm_out(h, cond))  # (B, N, C)
        return out.transpose(1, 2).reshape(B, C, *self.grid)
