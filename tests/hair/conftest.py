"""Hair fixtures: tiny strand-VAE and hairstyle-VAE trainings (seconds), shared by the session.

Their sizes are the presets ``conf/preset/hair_strand_tiny.yaml`` / ``hair_style_tiny.yaml``."""

from __future__ import annotations

import pytest

TINY_STRAND = ["experiment=hair/strand_vae", "callbacks=minimal", "logger=csv", "preset=hair_strand_tiny"]


@pytest.fixture(scope="session")
def strand_run(tmp_path_factory):
    """A strand-VAE run directory trained for a few seconds on procedural strands."""
    from latent4d.train import compose_config, run_training

    out = tmp_path_factory.mktemp("hair_strand_run")
    metrics = run_training(compose_config(TINY_STRAND, out))
    return out, metrics


def tiny_style_overrides(strand_dir) -> list[str]:
    return ["experiment=hair/style_vae", "callbacks=minimal", "logger=csv", f"model.strand_vae_path={strand_dir}",
            "preset=hair_style_tiny"]


@pytest.fixture(scope="session")
def style_run(tmp_path_factory, strand_run):
    """A hairstyle-VAE run directory (on the tiny strand-VAE)."""
    from latent4d.train import compose_config, run_training

    out = tmp_path_factory.mktemp("hair_style_run")
    metrics = run_training(compose_config(tiny_style_overrides(strand_run[0]), out))
    return out, metrics
