"""Appearance network: colour at a canonical point given shape and appearance codes (SIREN).

ShAPO's colour network is a SIREN taking ``[xyz, shape code, appearance code]`` (3 + 64 + 64) to RGB,
6 x 512 in the paper. Sine layers follow Sitzmann et al. (first-layer frequency ``w0``, uniform
init scaled by 1/w0 after it); the output goes through a sigmoid to [0, 1] RGB.

ShAPO also fine-tunes the colour network per object at test time (``opt/optimization_all.py``: a fresh
copy of the network is loaded for every object and all its weights join the optimisation, Adam, lr
1e-4). :meth:`AppearanceNet.finetune_copy` gives such a copy; the optimiser's use of it is
:func:`latent4d.objects.optimize.finetune_appearance`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from latent4d.errors import InputError
from latent4d.objects.sdf import broadcast_code, set_code

FINETUNE_PARAMS = ("all", "last", "out")
"""Weights a per-object fine-tuning moves: ``all`` (ShAPO), ``last`` (the last sine layer and the
output layer), ``out`` (the output layer only)."""


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
        """Codes of a point set ((D,), or (B, D) with xyz (B, N, 3)) enter the first layer once per set
        (its weight split by columns: the codes' product is one row per set instead of one per point,
        the same function to float rounding, tested); codes per point (..., N, D) are concatenated."""
        zs, za = set_code(shape_code, xyz), set_code(appearance_code, xyz)
        if zs is None or za is None:
            zs = broadcast_code(xyz, shape_code).to(xyz.dtype)
            za = broadcast_code(xyz, appearance_code).to(xyz.dtype)
            return torch.sigmoid(self.out(self.layers(torch.cat([xyz, zs, za], dim=-1))))
        lead = torch.broadcast_shapes(zs.shape[:-1], za.shape[:-1])
        code = torch.cat([zs.expand(*lead, zs.shape[-1]), za.expand(*lead, za.shape[-1])], -1).to(xyz.dtype)
        first = self.layers[0]
        w = first.linear.weight
        h = torch.sin(first.w0 * (F.linear(xyz, w[:, :3], first.linear.bias) + F.linear(code, w[:, 3:])))
        for layer in list(self.layers)[1:]:
            h = layer(h)
        return torch.sigmoid(self.out(h))

    def bind(self, shape_code: torch.Tensor, appearance_code: torch.Tensor):
        """``xyz (N, 3) -> rgb (N, 3)`` for one object."""
        return lambda xyz: self(xyz, shape_code, appearance_code)

    def finetune_copy(self, params: str = "all") -> tuple[AppearanceNet, list[nn.Parameter]]:
        """A deep copy of this network for one object and the parameters of the copy to fine-tune
        (``params``: one of :data:`FINETUNE_PARAMS`); everything else in the copy is frozen and this
        network is left as it is."""
        import copy

        if params not in FINETUNE_PARAMS:
            raise InputError(f"appearance fine-tuning params must be one of {FINETUNE_PARAMS}, got '{params}'")
        net = copy.deepcopy(self).requires_grad_(False)
        modules = {"all": [net], "last": [net.layers[-1], net.out], "out": [net.out]}[params]
        trainable = [p for m in modules for p in m.parameters()]
        for p in trainable:
            p.requires_grad_(True)
        return net, trainable
