"""Exceptions with messages that name the problem (file, field, expected value)."""

from __future__ import annotations


class Latent4DError(Exception):
    """Base class: every error latent4d raises on purpose derives from it."""


class InputError(Latent4DError, ValueError):
    """Bad user input: a corrupt file, NaNs, wrong shapes, empty point clouds."""


class ConfigError(Latent4DError):
    """Unknown experiment / config option / missing run directory."""


class TrainingDiverged(Latent4DError, FloatingPointError):
    """A loss became NaN or infinite during training."""


def check_points(x, name: str = "points", *, dims: int = 3, min_points: int = 1):
    """Validate a point cloud tensor / array of shape (..., N, dims).

    Raises InputError naming ``name`` if it has the wrong trailing dimension, fewer than
    ``min_points`` points, or any NaN / inf value. Returns ``x`` unchanged.
    """
    import numpy as np
    import torch

    shape = tuple(x.shape)
    if len(shape) < 2 or shape[-1] != dims:
        raise InputError(f"{name}: expected shape (..., N, {dims}), got {shape}")
    if shape[-2] < min_points:
        raise InputError(f"{name}: expected at least {min_points} point(s), got {shape[-2]}")
    finite = torch.isfinite(x).all() if isinstance(x, torch.Tensor) else np.isfinite(x).all()
    if not bool(finite):
        raise InputError(f"{name}: contains NaN or infinite coordinates")
    return x
