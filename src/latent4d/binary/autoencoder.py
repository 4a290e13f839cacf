"""Bernoulli autoencoder (2D images / 3D occupancy grids) with straight-through binary latents.

encoder: conv (or patchify) -> [res blocks -> stride-2 conv] x L -> res block -> 1x1 conv to C channels = bit logits;
``p = sigmoid(logits)``; bits ``b ~ Bernoulli(p)`` during training with the straight-through estimator
``b + p - p.detach()`` (thresholded ``p > 0.5`` in evaluation); decoder: ``2 b - 1`` -> 1x1 conv (the
linear projection of the bits) -> res block -> [res blocks -> nearest x2 + conv] x L -> conv to the
input channels (logits; ``decode`` applies the sigmoid so outputs are in [0, 1]).

``quantize="none"`` is the same network made continuous (the decoder receives ``p`` itself): the
baseline for the benchmark's Gaussian latent diffusion.

Shapes: images (B, C_in, H, W) -> latents (B, C, H / 2^L, W / 2^L); grids (B, 1, R, R, R) ->
(B, C, R / 2^L, R / 2^L, R / 2^L).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from latent4d.errors import ConfigError, InputError


def _conv(dims: int):
    return {2: nn.Conv2d, 3: nn.Conv3d}[dims]


def _groups(ch: int, max_groups: int = 8) -> int:
    g = min(max_groups, ch)
    while ch % g:
        g -= 1
    return g


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv x 2 with a (1x1 conv) skip."""

    def __init__(self, dims: int, cin: int, cout: int):
        super().__init__()
        Conv = _conv(dims)
        self.body = nn.Sequential(nn.GroupNorm(_groups(cin), cin), nn.SiLU(), Conv(cin, cout, 3, padding=1),
                                  nn.GroupNorm(_groups(cout), cout), nn.SiLU(), Conv(cout, cout, 3, padding=1))
        self.skip = Conv(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class BernoulliAutoencoder(ModelMixin, ConfigMixin):
    """See the module docstring.

    dims: 2 (images) or 3 (grids); in_channels: image channels (1 gray, 3 RGB; 1 for occupancy);
    latent_channels: bits per latent token; channels: feature widths per resolution level (one
    stride-2 downsampling per entry); num_res_blocks: residual blocks per level; sample_size: input
    side (px / voxels); quantize: ``bernoulli`` (bits) or ``none`` (continuous baseline); patch_size:
    > 1 replaces the first 3x3 conv by a ``patch_size``-strided patchify conv (and the last one by its
    transpose), so the full-resolution level costs nothing (used for 32^3 grids on CPUs). Latent side =
    input side / (patch_size * 2^len(channels)).
    """

    @register_to_config
    def __init__(self, dims: int = 2, in_channels: int = 1, latent_channels: int = 16,
                 channels: tuple[int, ...] = (32, 64), num_res_blocks: int = 1, sample_size: int = 16,
                 quantize: str = "bernoulli", patch_size: int = 1):
        super().__init__()
        if dims not in (2, 3):
            raise ConfigError(f"dims must be 2 or 3, got {dims}")
        if quantize not in ("bernoulli", "none"):
            raise ConfigError(f"quantize must be 'bernoulli' or 'none', got {quantize!r}")
        channels = tuple(int(c) for c in channels)
        self.register_to_config(channels=list(channels))  # plain JSON list even when Hydra passes a ListConfig
        if sample_size % self._factor(len(channels), patch_size):
            raise ConfigError(f"sample_size {sample_size} is not divisible by {self._factor(len(channels), patch_size)}")
        Conv = _conv(dims)
        ConvT = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]
        stem = (Conv(in_channels, channels[0], patch_size, stride=patch_size) if patch_size > 1
                else Conv(in_channels, channels[0], 3, padding=1))
        enc: list[nn.Module] = [stem]
        ch = channels[0]
        for c in channels:
            for _ in range(num_res_blocks):
                enc.append(ResBlock(dims, ch, c))
                ch = c
            enc.append(Conv(ch, ch, 4, stride=2, padding=1))
        enc += [ResBlock(dims, ch, ch), nn.GroupNorm(_groups(ch), ch), nn.SiLU(), Conv(ch, latent_channels, 1)]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [Conv(latent_channels, ch, 1), ResBlock(dims, ch, ch)]
        for c in reversed(channels):
            for _ in range(num_res_blocks):
                dec.append(ResBlock(dims, ch, c))
                ch = c
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), Conv(ch, ch, 3, padding=1)]
        head = (ConvT(ch, in_channels, patch_size, stride=patch_size) if patch_size > 1
                else Conv(ch, in_channels, 3, padding=1))
        dec += [nn.GroupNorm(_groups(ch), ch), nn.SiLU(), head]
        self.decoder = nn.Sequential(*dec)

    # ------------------------------------------------------------------ shapes
    @staticmethod
    def _factor(levels: int, patch_size: int) -> int:
        return int(patch_size) * 2 ** levels

    @property
    def downsampling(self) -> int:
        """Input side / latent side: ``patch_size * 2^len(channels)``."""
        return self._factor(len(self.config.channels), self.config.patch_size)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """(C, h, w) or (C, d, h, w) of the latents of a ``sample_size`` input."""
        s = self.config.sample_size // self.downsampling
        return (self.config.latent_channels,) + (s,) * self.config.dims

    @property
    def num_bits(self) -> int:
        n = 1
        for s in self.latent_shape:
            n *= s
        return n

    def _check_input(self, x: torch.Tensor) -> None:
        want = 2 + self.config.dims
        if x.dim() != want or x.shape[1] != self.config.in_channels:
            raise InputError(f"autoencoder input: expected (B, {self.config.in_channels}, "
                             f"{', '.join(['S'] * self.config.dims)}), got {tuple(x.shape)}")
        if any(s % self.downsampling for s in x.shape[2:]):
            raise InputError(f"autoencoder input: spatial size {tuple(x.shape[2:])} must be divisible by "
                             f"{self.downsampling}")

    # ------------------------------------------------------------------ encode / quantize / decode
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs in [0, 1] -> bit logits (B, C, *latent)."""
        self._check_input(x)
        return self.encoder(x * 2.0 - 1.0)

    def quantize(self, logits: torch.Tensor, sample: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(latent fed to the decoder, probabilities p). ``sample`` defaults to ``self.training``.

        bernoulli: sampled bits with the straight-through gradient (``sample``) or ``p > 0.5``;
        none: ``p`` itself.
        """
        p = torch.sigmoid(logits)
        if self.config.quantize == "none":
            return p, p
        sample = self.training if sample is None else sample
        if sample:
            bits = torch.bernoulli(p.detach())
            return bits + p - p.detach(), p
        return (p > 0.5).to(p.dtype), p

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (bits in {0, 1}, or probabilities for the continuous AE) -> output logits."""
        if z.dim() != 2 + self.config.dims or z.shape[1] != self.config.latent_channels:
            raise InputError(f"latents: expected (B, {self.config.latent_channels}, ...), got {tuple(z.shape)}")
        return self.decoder(z * 2.0 - 1.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> reconstruction in [0, 1] (images) / occupancy probability (grids)."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor, sample: bool | None = None) -> dict[str, torch.Tensor]:
        """``{"logits": output logits, "probs": bit probabilities, "latents": decoder input}``."""
        z, p = self.quantize(self.encode(x), sample)
        return {"logits": self.decode_logits(z), "probs": p, "latents": z}

    @torch.no_grad()
    def encode_latents(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic latents: thresholded bits (bernoulli) or probabilities (none)."""
        return self.quantize(self.encode(x), sample=False)[0]

    @torch.no_grad()
    def encode_latents_batched(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        was = self.training
        self.eval()
        try:
            dev = next(self.parameters()).device
            out = [self.encode_latents(x[i:i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)]
        finally:
            self.train(was)
        return torch.cat(out) if out else torch.empty(0, *self.latent_shape)


class PatchDiscriminator(ModelMixin, ConfigMixin):
    """PatchGAN discriminator (images (B, C, H, W) in [0, 1] -> patch logits (B, 1, h, w))."""

    @register_to_config
    def __init__(self, in_channels: int = 3, channels: int = 64, layers: int = 3):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = channels
        for i in range(1, layers):
            nxt = channels * min(2 ** i, 8)
            mods += [nn.Conv2d(ch, nxt, 4, 2 if i < layers - 1 else 1, 1), nn.GroupNorm(_groups(nxt), nxt),
                     nn.LeakyReLU(0.2)]
            ch = nxt
        mods.append(nn.Conv2d(ch, 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2.0 - 1.0)


def load_autoencoder(path: str | Path):
    """``(BernoulliAutoencoder in eval mode, the run's config or None)`` from a run dir or exported folder.

    The folder is found by :func:`latent4d.runs.network_folder` (``<run>/models/autoencoder``,
    ``<path>/autoencoder`` or ``path`` itself); the weights load through
    :func:`latent4d.trust.load_network` (safetensors only, damaged folders are a clear
    :class:`InputError`); the run's ``config.yaml`` (when the folder belongs to a run) through
    :class:`latent4d.runs.Run` and must be a binary-family run. Nothing in the config is instantiated
    here (see :func:`latent4d.trust.instantiate_from_run`).
    """
    from latent4d.runs import Run, network_folder, run_of
    from latent4d.trust import load_network

    folder = network_folder(path, "autoencoder", BernoulliAutoencoder.__name__, "binary")
    run = run_of(folder)
    cfg = None
    if run is not None:
        found = Run.open(run)
        if found.family != "binary":
            raise ConfigError(f"'{run}' is a {found.family} run, not a binary autoencoder run (config.yaml family)")
        cfg = found.config
    ae = load_network(BernoulliAutoencoder, folder).eval()
    return ae, cfg
