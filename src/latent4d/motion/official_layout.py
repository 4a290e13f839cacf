"""What the importers of the official Motion2VecSets / 3DShape2VecSet checkpoints share
(:mod:`latent4d.motion.official`, :mod:`latent4d.motion.official_diffusion`): the renaming rules, the sizes read
from tensor shapes, the official constants, and :class:`OfficialKind` (one importable kind)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from latent4d.errors import InputError

#: heads x dim_head of the official latent self-attention layers (fixed in models_ae.create_autoencoder)
OFFICIAL_HEADS = 8
#: stochastic depth of the official latent layers (training only)
OFFICIAL_DROP_PATH = 0.1
#: the official Fourier basis buffer: checked against the frequencies, not stored (latent4d rebuilds it)
BASIS = "point_embed.basis"
#: the same buffer in the official denoiser's observation encoder
DIFFUSION_BASIS = "cond_enc.point_embed.basis"


def _pattern(template: str) -> re.Pattern:
    return re.compile("^" + r"(\d+)".join(re.escape(part) for part in template.split("{i}")))


def rename(key: str, rules: tuple[tuple[str, str], ...], reverse: bool = False) -> str | None:
    """``key`` under the first matching ``(official, latent4d)`` prefix rule (``reverse``: latent4d ->
    official); None when no rule matches."""
    for a, b in rules:
        src, dst = (b, a) if reverse else (a, b)
        m = _pattern(src).match(key)
        if m:
            return (dst.replace("{i}", m.group(1)) if m.groups() else dst) + key[m.end() :]
    return None


def tensor_shape(sd: dict, key: str, where: str) -> tuple[int, ...]:
    if key not in sd:
        raise InputError(f"{where}: tensor '{key}' is missing; it is not an official checkpoint of this kind")
    return tuple(sd[key].shape)


def fourier_freqs(sd: dict, width: int, n_in: int, where: str, basis: str = BASIS) -> int:
    """Frequencies of the Fourier point embedding (3 * 2F + 3 features), checked against the basis buffer."""
    freqs = (n_in - 3) // 6
    if n_in != 6 * freqs + 3 or freqs < 1:
        raise InputError(
            f"{where}: point_embed.mlp.weight {(width, n_in)} is not a 3DShape2VecSet point "
            "embedding (6 F + 3 inputs)"
        )
    if basis in sd:
        e = (2.0 ** torch.arange(freqs, dtype=torch.float64)) * math.pi
        want = torch.block_diag(e[None], e[None], e[None])
        got = sd[basis].double()
        if tuple(got.shape) != tuple(want.shape) or not torch.allclose(got, want, rtol=1e-5):
            raise InputError(
                f"{where}: {basis} {tuple(got.shape)} is not the 3DShape2VecSet Fourier basis "
                f"(2^k pi, k < {freqs}, per axis); latent4d's embedding would differ"
            )
    return freqs


@dataclass(frozen=True)
class OfficialKind:
    """One importable kind: the official class, the latent4d class, the renaming and the settings;
    ``prepare``: official tensors -> latent4d's arrangement (still official names); ``basis``: the
    Fourier basis buffer (checked, not stored); ``own``: latent4d tensors the official network has no
    counterpart of, kept at their initial values (the denoiser's latent statistics: identity)."""

    official: str
    cls: type
    rules: tuple[tuple[str, str], ...]
    config: Callable[[dict, int, str], dict]
    prepare: Callable[[dict], dict] | None = None
    basis: str = "point_embed.basis"
    own: tuple[str, ...] = ()
