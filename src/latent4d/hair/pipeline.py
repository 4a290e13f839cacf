"""Inference for the hair family (completed below)."""

from __future__ import annotations

from pathlib import Path

from latent4d.errors import ConfigError
from latent4d.hair.strand_vae import StrandVAE


def resolve_model_dir(path: str | Path, name: str) -> Path:
    """``<run>/models/<name>``, ``<folder>/<name>`` or ``<folder>`` itself (a save_pretrained folder)."""
    p = Path(path).expanduser()
    for cand in (p / "models" / name, p / name, p):
        if (cand / "config.json").is_file():
            return cand
    raise ConfigError(f"no exported '{name}' network in '{p}' (expected {p}/models/{name}/config.json; "
                      "train it with `latent4d train experiment=hair/...`)")


def load_strand_vae(path: str | Path) -> StrandVAE:
    """The strand-VAE of a run directory or a save_pretrained folder."""
    return StrandVAE.from_pretrained(resolve_model_dir(path, "strand_vae"), low_cpu_mem_usage=False)
