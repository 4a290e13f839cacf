"""Shared layers: Fourier/timestep/grid embeddings, SDPA attention, AdaLN, GEGLU feed-forward, DropPath."""

from latent4d.nn.attention import Attention, attention_flops
from latent4d.nn.embeddings import (
    FourierPointEmbed,
    TimestepEmbedder,
    sincos_embedding_1d,
    sincos_embedding_grid,
)
from latent4d.nn.layers import GEGLU, AdaLayerNorm, DropPath, FeedForward

__all__ = [
    "AdaLayerNorm",
    "Attention",
    "DropPath",
    "FeedForward",
    "FourierPointEmbed",
    "GEGLU",
    "TimestepEmbedder",
    "attention_flops",
    "sincos_embedding_1d",
    "sincos_embedding_grid",
]
