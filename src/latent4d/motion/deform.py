"""Motion2VecSets deformation autoencoder: (source, target) clouds <-> M x C latents -> point motion.

Encoder: source and target clouds (B, N, 3) correspond point by point. Farthest-point samples of
the *source* give M query indices, reused on the target; every point is embedded as
``[PointEmbed(source), PointEmbed(target)]`` (concatenated, then a linear map to ``width``) -
with ``displacement_features`` (default) also a low-frequency Fourier embedding of the
displacement ``target - source`` (scaled by ``displacement_scale``), which the two position
embeddings only carry implicitly and which speeds up training markedly; one
cross-attention (queries <- all points) + feed-forward; KL bottleneck to (B, M, C) (C = 32 in the
paper). Decoder: linear map up, ``depth`` self-attention blocks, then each source query point
(B, Q, 3) -> PointEmbed -> cross-attention to the latents -> its position in the target frame.
The network predicts the displacement and returns ``source + displacement``; the loss is the MSE
on these absolute positions.

The official network (Motion2VecSets ``KLAutoEncoder_deform``, ``model=motion_deform_ae_official``) is
this class with ``point_width = width / 2`` (one 256-wide point embedding shared by source, target and
queries), ``pair_projection=False`` (encoder tokens: the two embeddings concatenated, no displacement
features), ``predict="position"`` (the output layer ``to_pos`` gives the target position itself), a
decoder at the query width, and the shape AE's official options (one-head cross-attentions, no query
residual or final norm, DropPath 0.1); :mod:`latent4d.motion.official` imports its published weights.
"""

from __future__ import annotations

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from latent4d.errors import InputError
from latent4d.geometry.sampling import farthest_point_sampling
from latent4d.motion.vecset import Posterior, VecSetCodec, check_cloud
from latent4d.nn import FourierPointEmbed


class DeformVecSetAE(VecSetCodec, ModelMixin, ConfigMixin):
    """Deformation autoencoder (see module docstring). Shapes: source / target (B, N, 3),
    latents (B, M, C), queries (B, Q, 3) -> positions (B, Q, 3), normalised units."""

    @register_to_config
    def __init__(
        self,
        num_latents: int = 128,
        latent_channels: int = 32,
        width: int = 128,
        heads: int = 4,
        dim_head: int = 32,
        depth: int = 4,
        num_freqs: int = 8,
        decoder_heads: int = 4,
        logvar_clamp: tuple[float, float] = (-30.0, 20.0),
        displacement_features: bool = True,
        displacement_scale: float = 4.0,
        encoder_heads: int | None = None,
        query_residual: bool = True,
        final_norm: bool = True,
        drop_path: float = 0.0,
        point_width: int | None = None,
        pair_projection: bool = True,
        predict: str = "displacement",
    ):
        """``point_width``: width of the point embedding and of the decoder's queries (None: ``width``);
        ``pair_projection``: a linear map of the pair features to ``width`` (False: the two embeddings
        concatenated are the encoder tokens, ``2 * point_width == width``); ``predict``: ``displacement``
        (returned added to the query point) or ``position``. The others as :class:`ShapeVecSetAE`."""
        super().__init__()
        pw = point_width or width
        if predict not in ("displacement", "position"):
            raise ValueError(f"predict={predict!r}: expected 'displacement' or 'position'")
        if not pair_projection and (displacement_features or 2 * pw != width):
            raise ValueError(
                "pair_projection=False needs displacement_features=False and 2 * point_width == width"
            )
        self.point_embed = FourierPointEmbed(pw, num_freqs=num_freqs)
        self.disp_embed = FourierPointEmbed(pw, num_freqs=4) if displacement_features else None
        self.pair_proj = (
            nn.Linear((3 if displacement_features else 2) * pw, width) if pair_projection else None
        )
        self.encoder = self._build_encoder(width, heads, dim_head)
        self._build_latents(width, latent_channels, heads, dim_head, depth, decoder_heads, pw)
        if predict == "position":
            self.to_pos = nn.Linear(pw, 3)
        else:
            self.to_disp = nn.Linear(pw, 3)
            nn.init.zeros_(self.to_disp.weight)
            nn.init.zeros_(self.to_disp.bias)

    def _pair(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        feats = [self.point_embed(src), self.point_embed(tgt)]
        if self.disp_embed is not None:
            feats.append(self.disp_embed((tgt - src) * self.config.displacement_scale))
        x = torch.cat(feats, dim=-1)
        return x if self.pair_proj is None else self.pair_proj(x)

    def encode(
        self,
        source: torch.Tensor,
        target: torch.Tensor,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> Posterior:
        """source, target (B, N, 3) corresponding -> :class:`Posterior` over (B, M, C)."""
        M = self.config.num_latents
        check_cloud(source, M, "deformation autoencoder source cloud")
        check_cloud(target, M, "deformation autoencoder target cloud")
        if source.shape != target.shape:
            raise InputError(
                f"deformation autoencoder: source {tuple(source.shape)} and target "
                f"{tuple(target.shape)} must have the same shape (corresponding points)"
            )
        idx = farthest_point_sampling(source, M)[..., None].expand(-1, -1, 3)
        q = self._pair(torch.gather(source, 1, idx), torch.gather(target, 1, idx))
        return self.posterior(self.encoder(q, self._pair(source, target)), sample, generator)

    def query(self, tokens: torch.Tensor, xyz: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """Target positions (B, Q, 3) of source points xyz (B, Q, 3) given decoded tokens (B, M, width)."""
        if self.config.predict == "position":
            return self._query(tokens, xyz, chunk, lambda p, h: self.to_pos(h))
        return self._query(tokens, xyz, chunk, lambda p, h: p + self.to_disp(h))

    def forward(
        self, source: torch.Tensor, target: torch.Tensor, query: torch.Tensor, sample: bool = True
    ) -> dict[str, torch.Tensor]:
        """-> ``positions`` (B, Q, 3), ``kl`` (B,), ``z`` (B, M, C)."""
        post = self.encode(source, target, sample=sample)
        return {
            "positions": self.query(self.decode(post.z), query),
            "kl": post.kl(),
            "z": post.z,
            "mean": post.mean,
        }
