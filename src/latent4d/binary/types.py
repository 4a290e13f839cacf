"""Result types of the binary family (shared by the pipeline, the commands and the benchmark)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LatentSamples:
    """samples: decoded (B, C_in, H, W) images in [0, 1] or (B, 1, R, R, R) occupancy probabilities;
    latents: (B, C, *grid) bits (or continuous latents); labels: (B,) requested classes (-1 = none)."""

    samples: torch.Tensor
    latents: torch.Tensor
    labels: torch.Tensor
