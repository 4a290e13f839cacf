"""Multi-head self / cross attention on ``torch.nn.functional.scaled_dot_product_attention``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention. Self-attention when ``context`` is None, cross-attention otherwise.

    x (B, N, dim), context (B, M, context_dim) -> (B, N, dim). ``mask`` (B, M) bool marks valid
    context tokens (padded point clouds).
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, context_dim: int | None = None,
                 qkv_bias: bool = False, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.is_cross = context_dim is not None
        self.to_q = nn.Linear(dim, inner, bias=qkv_bias)
        self.to_kv = nn.Linear(context_dim or dim, 2 * inner, bias=qkv_bias)
        self.to_out = nn.Linear(inner, dim)
        self.dropout = dropout

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        B, N, _ = t.shape
        return t.view(B, N, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        ctx = x if context is None else context
        q = self._split(self.to_q(x))
        k, v = (self._split(t) for t in self.to_kv(ctx).chunk(2, dim=-1))
        attn_mask = None if mask is None else mask[:, None, None, :].to(torch.bool)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        B, _, N, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(B, N, self.heads * self.dim_head))


def attention_flops(n_query: int, n_key: int, dim: int, heads: int, dim_head: int,
                    context_dim: int | None = None) -> int:
    """Forward multiply-add FLOPs (2 per MAC) of one :class:`Attention` call, projections included."""
    inner = heads * dim_head
    cdim = context_dim or dim
    proj = 2 * (n_query * dim * inner + n_key * cdim * 2 * inner + n_query * inner * dim)
    scores = 2 * 2 * heads * n_query * n_key * dim_head  # QK^T and AV
    return proj + scores
