"""Space-time attention over latent sequences x (B, T, M, D): interleaved spatial / temporal vs joint.

Motion2VecSets' deformation denoiser attends inside each frame (spatial: T sequences of M tokens)
and across frames for each latent index (temporal: M sequences of T tokens) instead of over all
T * M tokens at once (joint). Scores cost ``T M^2 + M T^2`` instead of ``(T M)^2``.

* :class:`SpaceTimeSelfAttention` - one self-attention over ``axis`` = ``"space"``, ``"time"`` or
  ``"joint"``; a single fused QKV projection on the (B, T, M, D) layout, the heads / axes arranged
  by strided views (no copies before the attention kernel), one copy back;
* :class:`SpaceTimeBlock` - AdaLN-Zero transformer block (conditioned on the diffusion time):
  ``interleaved``: spatial self-attn -> cross-attn to a shared context (shape latents) -> per-frame
  cross-attn (observations) -> temporal self-attn -> FFN;
  ``joint``: joint self-attn -> the same cross-attns -> FFN;
  ``spatial``: the interleaved block without its temporal layer (ablation);
* :func:`spacetime_attention_flops` / :func:`spacetime_block_flops` - analytic forward FLOPs
  (2 per multiply-add, projections included) for the benchmark.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from latent4d.nn.attention import Attention, attention_flops
from latent4d.nn.layers import AdaLayerNorm, DropPath, FeedForward

AXES = ("space", "time", "joint")
BLOCK_TYPES = ("interleaved", "joint", "spatial")


class SpaceTimeSelfAttention(nn.Module):
    """Multi-head self-attention of x (B, T, M, dim) along ``axis`` -> (B, T, M, dim).

    ``space``: within each frame; ``time``: across frames for each latent index; ``joint``: over
    all T * M tokens. ``mask`` (B, T) bool marks valid frames (``time`` / ``joint`` only).
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, axis: str = "space", qkv_bias: bool = False):
        super().__init__()
        if axis not in AXES:
            raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
        self.axis, self.heads, self.dim_head = axis, heads, dim_head
        inner = heads * dim_head
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, M, _ = x.shape
        H, dh = self.heads, self.dim_head
        if self.axis == "time":
            return self._temporal(x, mask)
        qkv = self.qkv(x).view(B, T, M, 3, H, dh).unbind(3)  # unbind: one stacked gradient, no zero-filled copies
        attn_mask = None
        # 4-D (batch, heads, length, dh) operands so that SDPA takes its fused (flash) CPU kernel;
        # the reshapes below are views whenever the merged axes are adjacent in memory
        if self.axis == "space":
            q, k, v = (t.transpose(2, 3).reshape(B * T, H, M, dh) for t in qkv)
        else:
            q, k, v = (t.reshape(B, T * M, H, dh).transpose(1, 2) for t in qkv)
            if mask is not None:
                attn_mask = mask[:, :, None].expand(B, T, M).reshape(B, 1, 1, T * M)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        if self.axis == "space":
            out = out.view(B, T, H, M, dh).transpose(2, 3)  # (B, T, M, H, dh)
        else:
            out = out.transpose(1, 2).reshape(B, T, M, H, dh)
        return self.to_out(out.reshape(B, T, M, H * dh))

    def _temporal(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Attention across frames in the (B, M, T) layout: the frames of one latent index sit next to
        each other for the kernel; the layout change back is left to the caller's next elementwise op
        (the returned (B, T, M, dim) tensor is a transposed view)."""
        B, T, M, _ = x.shape
        H, dh = self.heads, self.dim_head
        qkv = self.qkv(x.transpose(1, 2)).view(B * M, T, 3, H, dh).unbind(2)  # one copy of x into (B, M, T)
        q, k, v = (t.transpose(1, 2) for t in qkv)  # (B*M, H, T, dh) views
        attn_mask = None
        if mask is not None:
            attn_mask = mask[:, None, None, None, :].expand(B, M, 1, 1, T).reshape(B * M, 1, 1, T)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B*M, H, T, dh)
        out = self.to_out(out.transpose(1, 2).reshape(B, M, T, H * dh))
        return out.transpose(1, 2)


class ReshapeSpaceTimeAttention(nn.Module):
    """Reference implementation with :class:`latent4d.nn.Attention` and explicit reshapes
    (contiguous copies of the whole tensor before and after the attention). Same maths as
    :class:`SpaceTimeSelfAttention`; kept for the benchmark's "before" column and for tests."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, axis: str = "space"):
        super().__init__()
        if axis not in AXES:
            raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
        self.axis = axis
        self.attn = Attention(dim, heads, dim_head)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, M, D = x.shape
        if self.axis == "space":
            return self.attn(x.reshape(B * T, M, D)).reshape(B, T, M, D)
        if self.axis == "time":
            xt = x.permute(0, 2, 1, 3).reshape(B * M, T, D)
            m = None if mask is None else mask[:, None, :].expand(B, M, T).reshape(B * M, T)
            return self.attn(xt, mask=m).reshape(B, M, T, D).permute(0, 2, 1, 3).contiguous()
        m = None if mask is None else mask[:, :, None].expand(B, T, M).reshape(B, T * M)
        return self.attn(x.reshape(B, T * M, D), mask=m).reshape(B, T, M, D)


class InterleavedSelfAttention(nn.Module):
    """The interleaved pair on its own: spatial then temporal self-attention (residuals, pre-norm)."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, fused: bool = True):
        super().__init__()
        cls = SpaceTimeSelfAttention if fused else ReshapeSpaceTimeAttention
        self.norm_s, self.norm_t = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.spatial = cls(dim, heads, dim_head, axis="space")
        self.temporal = cls(dim, heads, dim_head, axis="time")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.spatial(self.norm_s(x))
        return x + self.temporal(self.norm_t(x))


class JointSelfAttention(nn.Module):
    """Full self-attention over all T * M tokens (residual, pre-norm)."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, fused: bool = True):
        super().__init__()
        cls = SpaceTimeSelfAttention if fused else ReshapeSpaceTimeAttention
        self.norm = nn.LayerNorm(dim)
        self.attn = cls(dim, heads, dim_head, axis="joint")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attn(self.norm(x))


class _CrossAttention(nn.Module):
    """Pre-normalised queries (B, N, dim) attend to a context (B, K, context_dim) (LayerNorm'd unless
    ``context_norm=False``)."""

    def __init__(self, dim: int, context_dim: int, heads: int, dim_head: int, context_norm: bool = True):
        super().__init__()
        self.norm_c = nn.LayerNorm(context_dim) if context_norm else nn.Identity()
        self.attn = Attention(dim, heads, dim_head, context_dim=context_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.attn(x, self.norm_c(context), mask=mask)


class SpaceTimeBlock(nn.Module):
    """AdaLN-Zero block over latent sequences (see module docstring).

    Args:
        dim: token width D; heads / dim_head: attention heads.
        cond_dim: width of the conditioning vector (diffusion-time embedding) (B, cond_dim).
        context_dim: width of the shared context (e.g. shape latents) (B, K, context_dim); None: no layer.
        frame_context_dim: width of per-frame contexts (observations) (B, T, N, frame_context_dim); None: no layer.
        block_type: ``interleaved`` | ``joint`` | ``spatial``.
        gate: AdaLN-Zero (a gate per residual branch); False: plain AdaLN ``x + f(norm(x) (1 + scale) + shift)``
            (the official Motion2VecSets block; its modulation rows are (scale, shift), latent4d's (shift, scale)).
        context_norm: LayerNorm on the contexts before the cross-attentions (False: official).
        norm_eps: the AdaLN LayerNorms' eps (official: 1e-5); drop_path: stochastic depth of every branch.
        source_dim: width of a second shared context (B, K, source_dim) attended after ``context`` and
            before the per-frame one (the official partial-input block's source-frame observation); None: no layer.

    forward(x (B, T, M, D), cond (B, cond_dim), context=None, frame_context=None,
    frame_context_mask (B, T, N) bool = None, frame_mask (B, T) bool = None, source=None) -> (B, T, M, D).
    """

    def __init__(self, dim: int, heads: int, dim_head: int, cond_dim: int, context_dim: int | None = None,
                 frame_context_dim: int | None = None, block_type: str = "interleaved", ff_mult: int = 4,
                 gate: bool = True, context_norm: bool = True, norm_eps: float = 1e-6, drop_path: float = 0.0,
                 source_dim: int | None = None):
        super().__init__()
        if block_type not in BLOCK_TYPES:
            raise ValueError(f"block_type must be one of {BLOCK_TYPES}, got {block_type!r}")
        self.block_type, self.gate = block_type, gate
        first_axis = "joint" if block_type == "joint" else "space"

        def ada():
            return AdaLayerNorm(dim, cond_dim, gate=gate, eps=norm_eps)

        def cross(cdim):
            return _CrossAttention(dim, cdim, heads, dim_head, context_norm=context_norm)

        self.norm1 = ada()
        self.attn1 = SpaceTimeSelfAttention(dim, heads, dim_head, axis=first_axis)
        self.norm_ctx = ada() if context_dim else None
        self.ctx = cross(context_dim) if context_dim else None
        self.norm_src = ada() if source_dim else None
        self.src = cross(source_dim) if source_dim else None
        self.norm_obs = ada() if frame_context_dim else None
        self.obs = cross(frame_context_dim) if frame_context_dim else None
        self.norm_t = ada() if block_type == "interleaved" else None
        self.temporal = SpaceTimeSelfAttention(dim, heads, dim_head, axis="time") if block_type == "interleaved" else None
        self.norm_ff = ada()
        self.ff = FeedForward(dim, mult=ff_mult)
        self.drop_path = DropPath(drop_path)

    def _branch(self, norm: AdaLayerNorm, x: torch.Tensor, cond: torch.Tensor, fn) -> torch.Tensor:
        """x + [gate *] fn(AdaLN(x)) (residual branch, dropped per sample in training with ``drop_path``)."""
        if self.gate:
            h, g = norm(x, cond)
            return x + self.drop_path(g * fn(h))
        return x + self.drop_path(fn(norm(x, cond)))

    def _shared(self, norm: AdaLayerNorm | None, attn: _CrossAttention | None, x: torch.Tensor, cond: torch.Tensor,
                context: torch.Tensor | None) -> torch.Tensor:
        """Cross-attention branch to a context (B, K, C) shared by all frames: T folded into the query length."""
        if norm is None or attn is None or context is None:
            return x
        B, T, M, D = x.shape
        return self._branch(norm, x, cond, lambda h: attn(h.reshape(B, T * M, D), context).reshape(B, T, M, D))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, context: torch.Tensor | None = None,
                frame_context: torch.Tensor | None = None, frame_context_mask: torch.Tensor | None = None,
                frame_mask: torch.Tensor | None = None, source: torch.Tensor | None = None) -> torch.Tensor:
        B, T, M, D = x.shape
        x = self._branch(self.norm1, x, cond, lambda h: self.attn1(h, mask=frame_mask if self.block_type == "joint" else None))
        x = self._shared(self.norm_ctx, self.ctx, x, cond, context)
        x = self._shared(self.norm_src, self.src, x, cond, source)
        if self.obs is not None and self.norm_obs is not None and frame_context is not None:
            obs, N = self.obs, frame_context.shape[2]
            fm = None if frame_context_mask is None else frame_context_mask.reshape(B * T, N)
            fc = frame_context.reshape(B * T, N, -1)
            x = self._branch(self.norm_obs, x, cond, lambda h: obs(h.reshape(B * T, M, D), fc, mask=fm).reshape(B, T, M, D))
        if self.temporal is not None and self.norm_t is not None:
            temporal = self.temporal
            x = self._branch(self.norm_t, x, cond, lambda h: temporal(h, mask=frame_mask))
        return self._branch(self.norm_ff, x, cond, self.ff)


# ----------------------------------------------------------------------------------------------
# analytic costs


def spacetime_attention_flops(T: int, M: int, dim: int, heads: int, dim_head: int) -> dict[str, float]:
    """Forward FLOPs of the interleaved pair and of joint self-attention (projections included)."""
    spatial = T * attention_flops(M, M, dim, heads, dim_head)
    temporal = M * attention_flops(T, T, dim, heads, dim_head)
    joint = attention_flops(T * M, T * M, dim, heads, dim_head)
    return {"spatial": spatial, "temporal": temporal, "interleaved": spatial + temporal, "joint": joint,
            "ratio": joint / (spatial + temporal)}


def spacetime_block_flops(block_type: str, T: int, M: int, dim: int, heads: int, dim_head: int,
                          context_tokens: int = 0, frame_context_tokens: int = 0, ff_mult: int = 4) -> int:
    """Forward FLOPs of one :class:`SpaceTimeBlock` (norm / modulation costs neglected)."""
    a = spacetime_attention_flops(T, M, dim, heads, dim_head)
    f = a["joint"] if block_type == "joint" else a["spatial"]
    if block_type == "interleaved":
        f += a["temporal"]
    if context_tokens:
        f += attention_flops(T * M, context_tokens, dim, heads, dim_head)
    if frame_context_tokens:
        f += T * attention_flops(M, frame_context_tokens, dim, heads, dim_head)
    f += 2 * T * M * (dim * 2 * ff_mult * dim + ff_mult * dim * dim)  # GEGLU in, linear out
    return int(f)
