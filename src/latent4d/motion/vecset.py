"""3DShape2VecSet KL autoencoder: a surface point cloud <-> a set of M latent vectors -> occupancy.

Encoder: M query points = farthest-point samples of the input cloud; both the queries and all
input points go through the Fourier ``PointEmbed``; one cross-attention (queries <- points) and a
GEGLU feed-forward give M tokens; a KL bottleneck maps each to ``latent_channels`` (mean, log
variance clamped to [-30, 20]). Decoder: a linear map back to ``width``, ``depth`` self-attention
blocks, then any query xyz -> PointEmbed -> cross-attention to the latents -> occupancy logit.

Shapes: points (B, N, 3) in the normalised frame ([-0.5, 0.5]^3); latents z (B, M, C);
decoded tokens (B, M, width); queries (B, Q, 3) -> logits (B, Q).
Paper config: N = 2048, M = 512, C = 8, width 512, 8 x 64 heads, depth 24.

The official network (3DShape2VecSet / Motion2VecSets ``KLAutoEncoder``, ``model=motion_shape_ae_official``)
is this class with ``encoder_heads=1`` (one 512-wide head in the encoder's cross-attention),
``decoder_heads=1``, ``query_residual=False`` (the query cross-attention's output replaces the query
embedding), ``final_norm=False`` (no LayerNorm before the output layer) and ``drop_path=0.1`` in the
latent layers (training only); :mod:`latent4d.motion.official` imports its published weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from latent4d.errors import InputError, check_points
from latent4d.geometry.sampling import farthest_point_sampling
from latent4d.nn import Attention, DropPath, FeedForward, FourierPointEmbed


class CrossAttentionBlock(nn.Module):
    """Pre-norm cross-attention (+ GEGLU feed-forward): x (B, N, dim) <- context (B, M, context_dim).

    ``residual=False``: the attention output replaces x instead of being added to it (the official
    3DShape2VecSet decoder's query cross-attention)."""

    def __init__(
        self, dim: int, context_dim: int, heads: int, dim_head: int, ff: bool = True, residual: bool = True
    ):
        super().__init__()
        self.residual = residual
        self.norm_x = nn.LayerNorm(dim)
        self.norm_c = nn.LayerNorm(context_dim)
        self.attn = Attention(dim, heads, dim_head, context_dim=context_dim)
        self.norm_ff = nn.LayerNorm(dim) if ff else None
        self.ff = FeedForward(dim) if ff else None

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.attn(self.norm_x(x), self.norm_c(context), mask=mask)
        x = x + h if self.residual else h
        if self.ff is not None:
            x = x + self.ff(self.norm_ff(x))
        return x


class SelfAttentionBlock(nn.Module):
    """Pre-norm transformer block: x (B, N, dim) -> (B, N, dim); ``drop_path``: stochastic depth of
    each residual branch while training (0: none)."""

    def __init__(self, dim: int, heads: int, dim_head: int, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.ff(self.norm2(x)))


@dataclass
class Posterior:
    """Diagonal Gaussian over latents: ``mean`` / ``logvar`` (B, M, C); ``z`` a sample (or the mean)."""

    z: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor

    def kl(self) -> torch.Tensor:
        """(B,) KL to N(0, I), averaged over the latent set's M x C entries (as 3DShape2VecSet's code)."""
        return 0.5 * (self.mean.square() + self.logvar.exp() - 1.0 - self.logvar).mean(dim=(1, 2))


def init_logvar(layer: nn.Linear, value: float = -4.0) -> None:
    """Start the posterior narrow (std ~ 0.14): the decoder sees informative latents from the first
    step instead of unit-variance noise (the KL term widens them later where it can)."""
    nn.init.zeros_(layer.weight)
    nn.init.constant_(layer.bias, value)


def check_cloud(points: torch.Tensor, n_min: int, what: str) -> None:
    """(B, N, 3) finite with N >= n_min, else InputError naming ``what``."""
    if points.dim() != 3:
        raise InputError(
            f"{what}: expected a batch of point clouds (B, N, 3), got shape {tuple(points.shape)}"
        )
    check_points(points, what)
    if points.shape[1] < n_min:
        raise InputError(
            f"{what}: has {points.shape[1]} points, fewer than the {n_min} latent queries "
            f"(farthest-point samples) the encoder needs"
        )


class VecSetCodec:
    """What the shape and deformation autoencoders share (mixed into their ``ModelMixin`` classes): the
    KL bottleneck of the encoder tokens, the latent decoder (a linear map up, ``depth`` self-attention
    blocks) and the chunked cross-attention queries. Attribute names are those of the saved weights."""

    def _build_encoder(self, width: int, heads: int, dim_head: int) -> CrossAttentionBlock:
        """The encoder's cross-attention + feed-forward on ``width`` tokens: ``config.encoder_heads``
        heads each ``width // encoder_heads`` wide (the official one head x width), or, when None,
        ``heads`` x ``dim_head`` as the latent layers."""
        eh = self.config.get("encoder_heads")
        return CrossAttentionBlock(width, width, *((heads, dim_head) if eh is None else (eh, width // eh)))

    def _build_latents(
        self,
        width: int,
        latent_channels: int,
        heads: int,
        dim_head: int,
        depth: int,
        decoder_heads: int,
        query_width: int | None = None,
    ) -> None:
        """The bottleneck (``to_mean``, ``to_logvar``), the latent decoder (``from_latent``, ``layers``)
        and the query cross-attention (``decoder``, ``norm_out``), in this order. Query embeddings are
        ``query_width`` wide (default ``width``); ``config.query_residual`` / ``final_norm`` /
        ``drop_path`` (when the class has them) select the official layout."""
        cfg = self.config
        self.to_mean = nn.Linear(width, latent_channels)
        self.to_logvar = nn.Linear(width, latent_channels)
        init_logvar(self.to_logvar)
        self.from_latent = nn.Linear(latent_channels, width)
        drop = cfg.get("drop_path", 0.0)
        self.layers = nn.ModuleList([SelfAttentionBlock(width, heads, dim_head, drop) for _ in range(depth)])
        qw = query_width or width
        self.decoder = CrossAttentionBlock(
            qw,
            width,
            decoder_heads,
            width // decoder_heads,
            ff=False,
            residual=cfg.get("query_residual", True),
        )
        self.norm_out = nn.LayerNorm(qw) if cfg.get("final_norm", True) else None

    def posterior(self, x: torch.Tensor, sample: bool, generator: torch.Generator | None = None) -> Posterior:
        """Encoder tokens x (B, M, width) -> :class:`Posterior` over (B, M, C) (log variance clamped to
        ``config.logvar_clamp``; ``sample=False``: z is the mean)."""
        mean = self.to_mean(x)
        lo, hi = self.config.logvar_clamp
        logvar = self.to_logvar(x).clamp(lo, hi)
        if sample:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + (0.5 * logvar).exp() * eps
        else:
            z = mean
        return Posterior(z, mean, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, M, C) -> decoded latent tokens (B, M, width) (run once, query many times)."""
        x = self.from_latent(z)
        for layer in self.layers:
            x = layer(x)
        return x

    def _query(self, tokens: torch.Tensor, xyz: torch.Tensor, chunk: int, head) -> torch.Tensor:
        """``head(points, features)`` of query points xyz (B, Q, 3) cross-attending to decoded tokens
        (B, M, width), ``chunk`` points at a time; concatenated along Q."""
        outs = []
        for s in range(0, xyz.shape[1], chunk):
            p = xyz[:, s : s + chunk]
            h = self.decoder(self.point_embed(p), tokens)
            outs.append(head(p, h if self.norm_out is None else self.norm_out(h)))
        return torch.cat(outs, dim=1)


class ShapeVecSetAE(VecSetCodec, ModelMixin, ConfigMixin):
    """3DShape2VecSet KL autoencoder (see module docstring)."""

    @register_to_config
    def __init__(
        self,
        num_latents: int = 128,
        latent_channels: int = 8,
        width: int = 128,
        heads: int = 4,
        dim_head: int = 32,
        depth: int = 4,
        num_freqs: int = 8,
        decoder_heads: int = 4,
        logvar_clamp: tuple[float, float] = (-30.0, 20.0),
        encoder_heads: int | None = None,
        query_residual: bool = True,
        final_norm: bool = True,
        drop_path: float = 0.0,
    ):
        """``encoder_heads``: heads of the encoder's cross-attention, each ``width // encoder_heads`` wide
        (None: ``heads`` x ``dim_head`` as the latent layers); ``query_residual`` / ``final_norm``: the
        query embedding added back to the decoder's cross-attention output / a LayerNorm before the
        output layer (both False in the official network); ``drop_path``: stochastic depth in the latent
        layers while training."""
        super().__init__()
        self.point_embed = FourierPointEmbed(width, num_freqs=num_freqs)
        self.encoder = self._build_encoder(width, heads, dim_head)
        self._build_latents(width, latent_channels, heads, dim_head, depth, decoder_heads)
        self.to_occ = nn.Linear(width, 1)

    def encode(
        self, points: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None
    ) -> Posterior:
        """points (B, N, 3), N >= num_latents -> :class:`Posterior` with z (B, M, C)."""
        M = self.config.num_latents
        check_cloud(points, M, "shape autoencoder input cloud")
        idx = farthest_point_sampling(points, M)  # (B, M)
        q = torch.gather(points, 1, idx[..., None].expand(-1, -1, 3))
        return self.posterior(self.encoder(self.point_embed(q), self.point_embed(points)), sample, generator)

    def query(self, tokens: torch.Tensor, xyz: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """Occupancy logits (B, Q) at xyz (B, Q, 3) given decoded tokens (B, M, width)."""
        return self._query(tokens, xyz, chunk, lambda p, h: self.to_occ(h).squeeze(-1))

    def forward(
        self, points: torch.Tensor, queries: torch.Tensor, sample: bool = True
    ) -> dict[str, torch.Tensor]:
        """points (B, N, 3), queries (B, Q, 3) -> ``logits`` (B, Q), ``kl`` (B,), ``z`` (B, M, C)."""
        post = self.encode(points, sample=sample)
        logits = self.query(self.decode(post.z), queries)
        return {"logits": logits, "kl": post.kl(), "z": post.z, "mean": post.mean}
