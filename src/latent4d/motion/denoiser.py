"""Motion2VecSets denoisers for EDM latent diffusion (used through :class:`latent4d.diffusion.edm.EDM`).

Both networks take the preconditioned noisy latents ``x_in`` and ``c_noise`` (B,) and return the raw
output F (same shape as x_in). Latents are normalised per channel inside (``latent_mean`` /
``latent_std`` buffers, set from the training latents and saved with the weights); use
:meth:`normalize` / :meth:`denormalize` around sampling.

Observations are point clouds in the normalised frame, encoded per frame into K tokens by
:class:`ObservationEncoder` (a *corresponding* mode for sparse inputs, whose points are tracked
across frames, and a *per-frame* mode for partial depth clouds).

* :class:`ShapeDenoiser` - frame-0 shape latents (B, M, C) conditioned on the frame-0 cloud
  (B, N, 3): blocks of self-attention -> cross-attention to the observation -> FFN, AdaLN-Zero on
  the diffusion time (one-frame :class:`~latent4d.nn.spacetime.SpaceTimeBlock`).
* :class:`DeformDenoiser` - deformation latents (B, T-1, M, C) of frames 1..T-1 relative to frame 0,
  conditioned on the frame-0 shape latents (B, Ms, Cs) and the observed clouds of all T frames
  (B, T, N, 3); blocks: spatial self-attention -> cross-attention to the shape latents ->
  per-frame cross-attention to the observation -> temporal self-attention -> FFN
  (``block_type``: ``interleaved`` (default), ``joint`` (full attention over all frames' tokens),
  ``spatial`` (no temporal layer)).
"""

from __future__ import annotations

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from latent4d.errors import InputError, check_points
from latent4d.geometry.sampling import farthest_point_sampling
from latent4d.nn import Attention, FeedForward, FourierPointEmbed, TimestepEmbedder
from latent4d.nn.spacetime import BLOCK_TYPES, SpaceTimeBlock


class ObservationEncoder(nn.Module):
    """Per-frame observation tokens: obs (B, T, N, 3) [+ reference (B, N, 3)] -> (B, T, K, dim).

    Every observed point is embedded (``PointEmbed(o_t)`` + a learned mode vector; in the
    corresponding mode also ``PointEmbed(o_0)`` of the same point); K = ``num_tokens`` farthest-point
    samples per frame (of frame 0 in the corresponding mode, so token k follows one material point)
    then gather all points of their frame by cross-attention (the 3DShape2VecSet encoder), + FFN.
    ``corresponding`` (B,) bool: True for sparse corresponding points, False for partial clouds.

    ``modes=False``: no mode vector nor reference embedding (``corresponding`` / ``reference`` ignored);
    ``final_norm=False``: no output LayerNorm. Both False with 1 head x ``dim`` and ``num_tokens`` >= N is the
    official Motion2VecSets ``Scan2latent`` (every observed point a token; official FPS only beyond 512).
    ``pair=True`` (with ``modes=False``): a point's token is ``[PointEmbed(o_0), PointEmbed(o_t)]``, one
    embedding ``dim / 2`` wide shared by both, the tokens the frame-0 FPS samples in every frame
    (``reference`` required, ``corresponding`` ignored): the official ``Scan2latent_deform_timeatt``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        dim_head: int,
        num_freqs: int = 8,
        num_tokens: int = 64,
        modes: bool = True,
        final_norm: bool = True,
        pair: bool = False,
    ):
        super().__init__()
        if pair and modes:
            raise ValueError("ObservationEncoder: pair=True embeds the reference itself (needs modes=False)")
        self.num_tokens, self.pair = num_tokens, pair
        self.embed = FourierPointEmbed(dim // 2 if pair else dim, num_freqs=num_freqs)
        self.embed_ref = FourierPointEmbed(dim, num_freqs=num_freqs) if modes else None
        self.mode = nn.Embedding(2, dim) if modes else None
        if self.mode is not None:
            nn.init.normal_(self.mode.weight, std=0.02)
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)
        self.norm_out = nn.LayerNorm(dim) if final_norm else nn.Identity()

    def forward(
        self,
        obs: torch.Tensor,
        reference: torch.Tensor | None = None,
        corresponding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T, N, _ = obs.shape
        if self.pair:
            return self._pair(obs, reference)
        corr = (
            torch.ones(B, dtype=torch.bool, device=obs.device)
            if corresponding is None
            else corresponding.to(obs.device).bool().reshape(B)
        )
        tok = self.embed(obs)
        if self.mode is None or self.embed_ref is None:
            reference = None
        else:
            tok = tok + self.mode(corr.long()).view(B, 1, 1, -1)
        if reference is not None and self.embed_ref is not None:
            tok = tok + corr.to(tok.dtype).view(B, 1, 1, 1) * self.embed_ref(reference)[:, None]
        K = min(self.num_tokens, N)
        idx_frame = farthest_point_sampling(obs.reshape(B * T, N, 3), K).view(B, T, K)
        if reference is not None:  # corresponding samples: frame-0 FPS indices in every frame
            idx_ref = farthest_point_sampling(reference, K)[:, None].expand(B, T, K)
            idx_frame = torch.where(corr.view(B, 1, 1), idx_ref, idx_frame)
        return self._attend(tok, idx_frame)

    def _pair(self, obs: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        """The pair tokens [PointEmbed(o_0), PointEmbed(o_t)] (B, T, N, dim), queried at frame 0's FPS samples."""
        B, T, N, _ = obs.shape
        if reference is None or tuple(reference.shape) != (B, N, 3):
            raise InputError(f"pair observation encoder: needs the frame-0 points (B, {N}, 3) as reference")
        ref = self.embed(reference)[:, None].expand(B, T, N, -1)
        tok = torch.cat([ref, self.embed(obs)], dim=-1)
        idx = farthest_point_sampling(reference, min(self.num_tokens, N))[:, None].expand(B, T, -1)
        return self._attend(tok, idx)

    def _attend(self, tok: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T, N, dim) at the sampled indices idx (B, T, K) cross-attend to all N, + FFN -> (B, T, K, dim)."""
        B, T, N, _ = tok.shape
        K = idx.shape[-1]
        q = torch.gather(tok, 2, idx[..., None].expand(-1, -1, -1, tok.shape[-1]))
        qf, kvf = q.reshape(B * T, K, -1), tok.reshape(B * T, N, -1)
        h = qf + self.attn(self.norm_q(qf), self.norm_kv(kvf))
        h = h + self.ff(self.norm_ff(h))
        return self.norm_out(h).view(B, T, K, -1)


class _LatentNorm(nn.Module):
    """Per-channel latent statistics (buffers saved with the weights): ``normalize`` / ``denormalize``."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("latent_mean", torch.zeros(channels))
        self.register_buffer("latent_std", torch.ones(channels))

    def set_stats(self, latents: torch.Tensor) -> None:
        """Per-channel statistics of training latents (..., C)."""
        flat = latents.reshape(-1, latents.shape[-1]).float()
        self.latent_mean.copy_(flat.mean(0))
        self.latent_std.copy_(flat.std(0).clamp_min(1e-4))

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (..., C) -> zero mean, unit standard deviation per channel."""
        return (z - self.latent_mean) / self.latent_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.latent_std + self.latent_mean


class _LatentDenoiser:
    """What both denoisers share (mixed into their ``ModelMixin`` classes): the normalisation of the
    denoised latents (``self.stats``) and the zero-initialised output head (``norm_out``, ``proj_out``)."""

    def _build_output(
        self, width: int, latent_channels: int, affine: bool = False, bias: bool = True
    ) -> None:
        self.norm_out = nn.LayerNorm(width, elementwise_affine=affine)
        self.proj_out = nn.Linear(width, latent_channels, bias=bias)
        nn.init.zeros_(self.proj_out.weight)
        if self.proj_out.bias is not None:
            nn.init.zeros_(self.proj_out.bias)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Latents as the autoencoder gives them -> the denoiser's normalised units."""
        return self.stats.normalize(z)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The denoiser's normalised units -> latents as the autoencoder decodes them."""
        return self.stats.denormalize(x)


def _blocks(
    width: int, heads: int, dim_head: int, depth: int, context_dim: int | None, block_type: str, **options
) -> nn.ModuleList:
    """``depth`` space-time blocks (:class:`SpaceTimeBlock`) of ``width``, conditioned on the diffusion time (AdaLN, ``width``)
    and per-frame observation tokens (``width``); ``context_dim``: the width of a global context
    (the deformation denoiser's shape tokens; None: none); ``options``: the block's (``gate``,
    ``context_norm``, ``norm_eps``, ``drop_path``)."""
    return nn.ModuleList(
        [
            SpaceTimeBlock(
                width,
                heads,
                dim_head,
                width,
                context_dim=context_dim,
                frame_context_dim=width,
                block_type=block_type,
                **options,
            )
            for _ in range(depth)
        ]
    )


def _block_options(gate: bool, context_norm: bool, norm_eps: float, drop_path: float, **more) -> dict:
    """The :class:`SpaceTimeBlock` options both denoisers expose (``adaln_gate``, ``context_norm``, ...)."""
    return dict(gate=gate, context_norm=context_norm, norm_eps=norm_eps, drop_path=drop_path, **more)


def _check_obs(obs: torch.Tensor, what: str, frames: int | None = None) -> None:
    check_points(obs, what)
    if frames is not None and obs.shape[1] != frames:
        raise InputError(f"{what}: expected {frames} frames, got {obs.shape[1]} (mismatched frame counts)")


class ShapeDenoiser(_LatentDenoiser, ModelMixin, ConfigMixin):
    """Conditional denoiser of shape latent sets.

    forward(x_in (B, M, C), c_noise (B,), obs (B, N, 3), corresponding (B,) bool = True: sparse points
    (True) or a partial cloud (False)) -> (B, M, C).

    The official Motion2VecSets shape denoiser (``EDMPrecond`` of ``kl_d512_m512_l8_surf*_edm``;
    ``model=motion_shape_diffusion_official``, ``latent4d import-weights m2v-shape-diffusion``) is this
    network with ``time_scale=1`` (c_noise unscaled), ``obs_heads=1, obs_dim_head=width, obs_modes=False,
    obs_final_norm=False, obs_tokens=512`` (its ``Scan2latent``), ``adaln_gate=False, context_norm=False,
    norm_eps=1e-5`` (plain AdaLN blocks, raw observation context), ``io_bias=False`` (bias-free input /
    output projections), ``out_affine=True`` (affine final LayerNorm) and ``drop_path=0.1`` (training).
    Defaults: latent4d's own layout (saved networks load unchanged).
    """

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 8,
        num_latents: int = 128,
        width: int = 128,
        depth: int = 4,
        heads: int = 4,
        dim_head: int = 32,
        num_freqs: int = 8,
        obs_tokens: int = 64,
        time_scale: float = 1000.0,
        obs_heads: int | None = None,
        obs_dim_head: int | None = None,
        obs_modes: bool = True,
        obs_final_norm: bool = True,
        adaln_gate: bool = True,
        context_norm: bool = True,
        norm_eps: float = 1e-6,
        io_bias: bool = True,
        out_affine: bool = False,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.stats = _LatentNorm(latent_channels)
        self.time = TimestepEmbedder(width, scale=time_scale)
        obs_options = dict(modes=obs_modes, final_norm=obs_final_norm)
        self.obs = ObservationEncoder(
            width, obs_heads or heads, obs_dim_head or dim_head, num_freqs, obs_tokens, **obs_options
        )
        self.proj_in = nn.Linear(latent_channels, width, bias=io_bias)
        block_options = _block_options(adaln_gate, context_norm, norm_eps, drop_path)
        self.blocks = _blocks(width, heads, dim_head, depth, None, "spatial", **block_options)
        self._build_output(width, latent_channels, affine=out_affine, bias=io_bias)

    def forward(
        self,
        x_in: torch.Tensor,
        c_noise: torch.Tensor,
        obs: torch.Tensor,
        corresponding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_obs(obs, "shape diffusion observation")
        cond = self.time(c_noise)
        o = self.obs(obs[:, None], corresponding=corresponding)  # (B, 1, N, D)
        h = self.proj_in(x_in)[:, None]  # (B, 1, M, D)
        for blk in self.blocks:
            h = blk(h, cond, frame_context=o)
        return self.proj_out(self.norm_out(h[:, 0]))


class DeformDenoiser(_LatentDenoiser, ModelMixin, ConfigMixin):
    """Conditional denoiser of deformation latent sequences.

    forward(x_in (B, T-1, M, C), c_noise (B,), shape_latents (B, Ms, Cs) shape latents (as the shape AE gives them),
    obs (B, T, N, 3), corresponding (B,) bool = True) -> (B, T-1, M, C).

    The official Motion2VecSets deformation denoisers (``EDMPrecond`` of ``de_kl_d512_m512_l32_surf*_edm``
    with ``time_attn``; ``model=motion_deform_diffusion_official`` / ``..._partial_official``, ``latent4d
    import-weights m2v-deform-diffusion`` / ``m2v-deform-diffusion-partial``) are this network with the
    shape denoiser's official options (``time_scale=1``, ``obs_heads=1, obs_dim_head=width, obs_modes=False,
    obs_final_norm=False``, ``adaln_gate=False, context_norm=False, norm_eps=1e-5``, ``io_bias=False,
    out_affine=True``, ``drop_path=0.1``), ``shape_proj="linear"`` (one bias-free linear for the shape
    latents), ``frame_embedding=False`` (no frame embedding: any number of frames) and, for sparse corresponding
    points, ``obs_pair=True`` (tokens ``[PointEmbed(o_0), PointEmbed(o_t)]``, each ``width / 2`` wide), for
    partial clouds ``obs_source=True`` (every frame's own tokens, plus a cross-attention to frame 0's before
    them). Defaults: latent4d's own layout (saved networks load unchanged).
    """

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 32,
        num_latents: int = 64,
        shape_channels: int = 8,
        num_frames: int = 17,
        width: int = 128,
        depth: int = 4,
        heads: int = 4,
        dim_head: int = 32,
        num_freqs: int = 8,
        obs_tokens: int = 64,
        block_type: str = "interleaved",
        time_scale: float = 1000.0,
        obs_heads: int | None = None,
        obs_dim_head: int | None = None,
        obs_pair: bool = False,
        obs_source: bool = False,
        obs_modes: bool = True,
        obs_final_norm: bool = True,
        adaln_gate: bool = True,
        context_norm: bool = True,
        norm_eps: float = 1e-6,
        shape_proj: str = "mlp",
        frame_embedding: bool = True,
        io_bias: bool = True,
        out_affine: bool = False,
        drop_path: float = 0.0,
    ):
        super().__init__()
        if block_type not in BLOCK_TYPES:
            raise InputError(f"block_type must be one of {BLOCK_TYPES}, got {block_type!r}")
        if shape_proj not in ("mlp", "linear"):
            raise InputError(f"shape_proj must be 'mlp' or 'linear', got {shape_proj!r}")
        self.stats = _LatentNorm(latent_channels)
        self.shape_stats = _LatentNorm(shape_channels)
        self.time = TimestepEmbedder(width, scale=time_scale)
        obs_options = dict(modes=obs_modes, final_norm=obs_final_norm, pair=obs_pair)
        self.obs = ObservationEncoder(
            width, obs_heads or heads, obs_dim_head or dim_head, num_freqs, obs_tokens, **obs_options
        )
        if shape_proj == "mlp":
            self.shape_in = nn.Sequential(
                nn.Linear(shape_channels, width), nn.GELU(), nn.Linear(width, width)
            )
        else:
            self.shape_in = nn.Linear(shape_channels, width, bias=False)
        self.proj_in = nn.Linear(latent_channels, width, bias=io_bias)
        self.frame_embed = nn.Parameter(torch.zeros(num_frames, width)) if frame_embedding else None
        if self.frame_embed is not None:
            nn.init.normal_(self.frame_embed, std=0.02)
        options = _block_options(
            adaln_gate, context_norm, norm_eps, drop_path, source_dim=width if obs_source else None
        )
        self.blocks = _blocks(width, heads, dim_head, depth, width, block_type, **options)
        self._build_output(width, latent_channels, affine=out_affine, bias=io_bias)

    def normalize_shape(self, z: torch.Tensor) -> torch.Tensor:
        """Shape latents (..., Cs) -> normalised by the training shape latents' statistics."""
        return self.shape_stats.normalize(z)

    def forward(
        self,
        x_in: torch.Tensor,
        c_noise: torch.Tensor,
        shape_latents: torch.Tensor,
        obs: torch.Tensor,
        corresponding: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T1, M, _ = x_in.shape
        if self.frame_embed is not None and T1 + 1 > self.config.num_frames:
            raise InputError(
                f"deformation diffusion: {T1 + 1} frames exceed the model's window of "
                f"{self.config.num_frames}"
            )
        _check_obs(obs, "deformation diffusion observation", frames=T1 + 1)
        cond = self.time(c_noise)
        source = None
        if self.config.obs_source:  # every frame's own tokens; frame 0's attended separately
            o = self.obs(obs)
            source, o = o[:, 0], o[:, 1:]
        else:
            o = self.obs(obs[:, 1:], reference=obs[:, 0], corresponding=corresponding)  # (B, T-1, N, D)
        ctx = self.shape_in(self.normalize_shape(shape_latents))
        h = self.proj_in(x_in)
        if self.frame_embed is not None:
            h = h + self.frame_embed[1 : T1 + 1][None, :, None, :]
        for blk in self.blocks:
            h = blk(h, cond, context=ctx, frame_context=o, frame_mask=frame_mask, source=source)
        return self.proj_out(self.norm_out(h))
