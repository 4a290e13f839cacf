"""A small SDF MLP (diffusers ModelMixin: save_pretrained / from_pretrained)."""

from __future__ import annotations

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from latent4d.nn.embeddings import FourierPointEmbed


class SDFNet(ModelMixin, ConfigMixin):
    """xyz (..., 3) in [-1, 1]^3 -> signed distance (...). Fourier features + SiLU MLP."""

    @register_to_config
    def __init__(self, hidden: int = 96, layers: int = 4, num_freqs: int = 4):
        super().__init__()
        self.embed = FourierPointEmbed(hidden, num_freqs=num_freqs)
        blocks = []
        for _ in range(layers - 1):
            blocks += [nn.SiLU(), nn.Linear(hidden, hidden)]
        self.mlp = nn.Sequential(*blocks, nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.embed(xyz)).squeeze(-1)
