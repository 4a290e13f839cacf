"""The latent database: one auto-decoded shape code and one appearance code per training object."""

from __future__ import annotations

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from latent4d.errors import InputError


class LatentDatabase(ModelMixin, ConfigMixin):
    """Shape codes (N, shape_dim) and appearance codes (N, appearance_dim) of N named objects.

    ``names[i]`` / ``categories[i]`` describe object i. Codes start as N(0, init_std^2)
    (DeepSDF: 1 / sqrt(dim)) and are trained jointly with the decoders (auto-decoding).
    """

    @register_to_config
    def __init__(self, names: list[str] | tuple[str, ...] = (), categories: list[str] | tuple[str, ...] = (),
                 shape_dim: int = 64, appearance_dim: int = 64, init_std: float | None = None):
        super().__init__()
        if len(names) != len(categories):
            raise InputError(f"LatentDatabase: {len(names)} names but {len(categories)} categories")
        n = max(len(names), 1)
        self.shape = nn.Embedding(n, shape_dim)
        self.appearance = nn.Embedding(n, appearance_dim)
        std_s = init_std if init_std is not None else 1.0 / shape_dim ** 0.5
        std_a = init_std if init_std is not None else 1.0 / appearance_dim ** 0.5
        nn.init.normal_(self.shape.weight, 0.0, std_s)
        nn.init.normal_(self.appearance.weight, 0.0, std_a)

    @property
    def names(self) -> list[str]:
        return list(self.config.names)

    @property
    def categories(self) -> list[str]:
        return list(self.config.categories)

    def __len__(self) -> int:
        return len(self.config.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(f"object '{name}' is not in the latent database") from None

    def codes(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes of object(s) ``idx`` (int or (B,) long): ((..., shape_dim), (..., appearance_dim))."""
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.shape.weight.device)
        return self.shape(idx), self.appearance(idx)

    def category_indices(self, category: str | None) -> torch.Tensor:
        cats = self.categories
        if category is None:
            return torch.arange(len(cats))
        sel = [i for i, c in enumerate(cats) if c == category]
        if not sel:
            raise InputError(f"category '{category}' has no object in the latent database "
                             f"(it holds: {', '.join(sorted(set(cats)))})")
        return torch.tensor(sel)

    @torch.no_grad()
    def mean_codes(self, category: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean shape and appearance code of a category (or of every object): ((shape_dim,), (appearance_dim,))."""
        idx = self.category_indices(category).to(self.shape.weight.device)
        return self.shape(idx).mean(0), self.appearance(idx).mean(0)

    @torch.no_grad()
    def code_std(self, category: str | None = None) -> tuple[float, float]:
        """Root-mean-square per-dimension spread of the codes around their mean (prior scale)."""
        idx = self.category_indices(category).to(self.shape.weight.device)
        s, a = self.shape(idx), self.appearance(idx)
        if len(idx) < 2:
            return float(s.pow(2).mean().sqrt()), float(a.pow(2).mean().sqrt())
        return float((s - s.mean(0)).pow(2).mean().sqrt()), float((a - a.mean(0)).pow(2).mean().sqrt())

    @torch.no_grad()
    def code_gaussian(self, category: str | None = None, shrink: float = 0.1) -> dict[str, torch.Tensor]:
        """Gaussian fits of a category's codes for priors: ``shape_mean`` (D,), ``shape_precision``
        (D, D) and the same for ``appearance_*``. The covariance is the sample covariance plus
        ``shrink`` x its mean variance on the diagonal (well defined with fewer codes than dimensions),
        so moving along the category's principal variations is cheap and off them expensive."""
        idx = self.category_indices(category).to(self.shape.weight.device)
        out = {}
        for name, emb in (("shape", self.shape), ("appearance", self.appearance)):
            z = emb(idx)
            mu = z.mean(0)
            zc = z - mu
            n, d = z.shape
            cov = zc.T @ zc / max(n - 1, 1)
            var = float(cov.diagonal().mean()) if n > 1 else float(z.pow(2).mean())
            cov = cov + max(shrink * var, 1e-8) * torch.eye(d, device=z.device)
            out[f"{name}_mean"] = mu
            out[f"{name}_precision"] = torch.linalg.inv(cov)
        return out
