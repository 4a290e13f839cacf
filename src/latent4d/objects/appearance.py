"""Appearance network: colour at a canonical point given shape and appearance codes (SIREN).

ShAPO's colour network is a SIREN taking ``[xyz, shape code, appearance code]`` (3 + 64 + 64) to RGB,
6 x 512 in the paper. Sine layers follow Sitzmann et al. (first-layer frequency ``w0``, uniform
init scaled by 1/w0 after it); the output goes through a sigmoid to [0, 1] RGB.
"""

from __future__ import annotations

import math

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from latent4d.objects.sdf import broadcast_code


class SineLayer(nn.Module):
    def __init__(self, d_in: int, d_out: int, w0: float, first: bool):
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(d_in, d_out)
        bound = 1.0 / d_in if first else math.sqrt(6.0 / d_in) / w0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * self.linear(x))


class AppearanceNet(ModelMixin, ConfigMixin):
    """c(xyz, z_shape, z_app) -> RGB in [0, 1].

    Inputs xyz (..., N, 3) canonical, shape_code / appearance_code (D,) | (B, D) | (..., N, D);
    output (..., N, 3).
    """

    @register_to_config
    def __init__(self, shape_dim: int = 64, appearance_dim: int = 64, hidden: int = 512, num_layers: int = 6,
                 w0: float = 30.0):
        super().__init__()
        d_in = 3 + shape_dim + appearance_dim
        layers = [SineLayer(d_in, hidden, w0, first=True)]
        layers += [SineLayer(hidden, hidden, w0, first=False) for _ in range(num_layers - 1)]
        self.layers = nn.Sequential(*layers)
        self.out = nn.Linear(hidden, 3)
        with torch.no_grad():
            bound = math.sqrt(6.0 / hidden) / w0
            self.out.weight.uniform_(-bound, bound)
            self.out.bias.zero_()

    def forward(self, xyz: torch.Tensor, shape_code: torch.Tensor, appearance_code: torch.Tensor) -> torch.Tensor:
        zs = broadcast_code(xyz, shape_code).to(xyz.dtype)
        za = broadcast_code(xyz, appearance_code).to(xyz.dtype)
        return torch.sigmoid(self.out(self.layers(torch.cat([xyz, zs, za], dim=-1))))

    def bind(self, shape_code: torch.Tensor, appearance_code: torch.Tensor):
        """``xyz (N, 3) -> rgb (N, 3)`` for one object."""
        return lambda xyz: self(xyz, shape_code, appearance_code)
