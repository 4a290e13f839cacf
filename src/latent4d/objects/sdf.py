"""DeepSDF-style shape decoder: (shape code, xyz) -> signed distance.

Paper size (ShAPO / DeepSDF): 8 x 512 ReLU layers with weight normalisation, the input
``[code, xyz]`` re-injected (concatenated) at layer 4, tanh output. The CPU default is narrower and
may add Fourier features of xyz (``num_freqs > 0``) so that a small network still resolves thin
walls; ``num_freqs=0`` feeds raw xyz as in the paper.
"""

from __future__ import annotations

import math

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

_ACTS = {"relu": nn.ReLU, "silu": nn.SiLU, "softplus": lambda: nn.Softplus(beta=100)}


def broadcast_code(xyz: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Expand ``code`` (D,) | (B, D) | (..., N, D) to ``xyz``'s leading shape: -> (..., N, D)."""
    lead = xyz.shape[:-1]
    if code.dim() == 1:
        return code.expand(*lead, code.shape[-1])
    if code.shape[:-1] == lead:
        return code
    if code.dim() == xyz.dim() - 1:  # (B, D) with xyz (B, N, 3)
        return code[..., None, :].expand(*lead, code.shape[-1])
    raise ValueError(f"code of shape {tuple(code.shape)} does not match points of shape {tuple(xyz.shape)}")


def set_code(code: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor | None:
    """``code`` shaped to broadcast over the points of ``xyz`` when it is one code per point set ((D,),
    or (B, D) with xyz (B, N, 3)): (D,) or (B, 1, D); None for codes per point (..., N, D). The networks
    then feed such a code to their code-fed layers once per set instead of once per point."""
    if code.dim() == 1:
        return code
    if code.dim() == xyz.dim() - 1:
        return code[..., None, :]
    return None


class ShapeDecoder(ModelMixin, ConfigMixin):
    """f(xyz, z) -> sdf.

    Args:
        latent_dim: shape code size (64 in ShAPO).
        hidden: layer width; num_layers: hidden layers (8 in the paper).
        latent_in: layer indices whose input is concatenated with ``[code, xyz-features]``.
        weight_norm: weight-normalised linear layers (DeepSDF).
        num_freqs: Fourier frequencies for xyz (0 = raw xyz, the paper).
        activation: relu | silu | softplus; dropout: DeepSDF's dropout between layers.

    Inputs xyz (..., N, 3) canonical coordinates in [-1, 1]^3, code (D,) | (B, D) | (..., N, D);
    output (..., N) signed distance in canonical units (negative inside), in (-1, 1) (tanh).
    """

    @register_to_config
    def __init__(self, latent_dim: int = 64, hidden: int = 512, num_layers: int = 8,
                 latent_in: tuple[int, ...] | list[int] = (4,), weight_norm: bool = True, num_freqs: int = 0,
                 activation: str = "relu", dropout: float = 0.0, output_tanh: bool = True):
        super().__init__()
        if activation not in _ACTS:
            raise ValueError(f"activation must be one of {sorted(_ACTS)}, got {activation!r}")
        self.latent_in = tuple(int(i) for i in latent_in)
        freqs = (2.0 ** torch.arange(num_freqs, dtype=torch.float32)) * math.pi
        self.register_buffer("freqs", freqs, persistent=False)
        self.in_dim = latent_dim + 3 + 6 * num_freqs
        if self.latent_in and hidden <= self.in_dim:
            raise ValueError(f"hidden ({hidden}) must exceed the re-injected input width ({self.in_dim} = "
                             f"latent_dim + 3 + 6 * num_freqs) when latent_in is used")
        layers = []
        for i in range(num_layers):
            d_in = self.in_dim if i == 0 else hidden
            d_out = hidden
            if (i + 1) in self.latent_in:
                d_out = hidden - self.in_dim  # the next layer's input is [h, input] = hidden wide
            if i in self.latent_in and i > 0:
                d_in = hidden
            lin = nn.Linear(d_in, d_out)
            if weight_norm:
                lin = nn.utils.parametrizations.weight_norm(lin)
            layers.append(lin)
        self.layers = nn.ModuleList(layers)
        last = nn.Linear(hidden, 1)
        self.out = nn.utils.parametrizations.weight_norm(last) if weight_norm else last
        self.act = _ACTS[activation]()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.output_tanh = output_tanh

    def encode_xyz(self, xyz: torch.Tensor) -> torch.Tensor:
        if len(self.freqs) == 0:
            return xyz
        proj = (xyz[..., :, None] * self.freqs).flatten(-2)
        return torch.cat([xyz, proj.sin(), proj.cos()], dim=-1)

    def forward(self, xyz: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """One code per point set (code (D,) with xyz (..., N, 3), or (B, D) with (B, N, 3)): the code's
        share of every layer that takes ``[code, xyz]`` (the first and the ``latent_in`` ones) is computed
        once per code instead of once per point (a quarter of the CPU default's multiply-adds; the same
        function to float rounding, tested). A code per point (..., N, D) is concatenated."""
        enc = self.encode_xyz(xyz)
        z = set_code(code, xyz)
        shared = z is not None
        if shared:
            z = z.to(xyz.dtype)
        else:
            inp = torch.cat([broadcast_code(xyz, code).to(xyz.dtype), enc], dim=-1)
        h = None
        for i, lin in enumerate(self.layers):
            if i == 0 or i in self.latent_in:
                h = self._code_split(lin, h, z, enc) if shared else lin(inp if h is None else torch.cat([h, inp], -1))
            else:
                h = lin(h)
            h = self.drop(self.act(h))
        out = self.out(h).squeeze(-1)
        return torch.tanh(out) if self.output_tanh else out

    def _code_split(self, lin: nn.Module, h: torch.Tensor | None, z: torch.Tensor, enc: torch.Tensor) -> torch.Tensor:
        """``lin([h, code, enc])`` with the weight split by columns, so the code's product is one row."""
        import torch.nn.functional as F

        w, D = lin.weight, self.config.latent_dim
        k = w.shape[1] - self.in_dim  # columns of the previous layer's output (0 for the first layer)
        y = F.linear(enc, w[:, k + D:], lin.bias) + F.linear(z, w[:, k:k + D])
        return y if h is None else y + F.linear(h, w[:, :k])

    def fuse_weight_norm(self) -> ShapeDecoder:
        """Bake the weight normalisation into plain weights (faster inference; no more training of g, v).

        The config then says ``weight_norm=False``, so ``save_pretrained`` writes a network that loads
        back as it is (plain weights, same outputs)."""
        from torch.nn.utils import parametrize

        for m in [*self.layers, self.out]:
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        self.register_to_config(weight_norm=False)
        return self

    def bind(self, code: torch.Tensor):
        """``xyz (N, 3) -> sdf (N,)`` for one code (what the octree and meshing functions take)."""
        return lambda xyz: self(xyz, code)
