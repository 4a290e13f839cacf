"""Hair fixtures: tiny strand-VAE and hairstyle-VAE trainings (seconds), shared by the session."""

from __future__ import annotations

import pytest

TINY_STRAND = ["experiment=hair/strand_vae", "callbacks=minimal", "logger=csv", "trainer.max_epochs=2",
               "data.n_train=12", "data.n_val=2", "data.n_test=3", "data.strands_per_style=64", "data.batch_size=64",
               "model.strand_vae.channels=[16,32,32,32]", "model.strand_vae.hidden=128", "model.strand_vae.layers=2",
               "model.kl_warmup_steps=5"]


@pytest.fixture(scope="session")
def strand_run(tmp_path_factory):
    """A strand-VAE run directory trained for a few seconds on procedural strands."""
    from latent4d.train import compose_config, run_training

    out = tmp_path_factory.mktemp("hair_strand_run")
    metrics = run_training(compose_config(TINY_STRAND, out))
    return out, metrics


def tiny_style_overrides(strand_dir) -> list[str]:
    return ["experiment=hair/style_vae", "callbacks=minimal", "logger=csv", "trainer.max_epochs=2",
            f"model.strand_vae_path={strand_dir}", "data.n_train=12", "data.n_val=3", "data.n_test=3",
            "data.batch_size=4", "model.style_vae.channels=[16,32,32,48]", "model.style_vae.style_dim=32",
            "model.strand_samples=16", "model.kl_warmup_steps=2"]


@pytest.fixture(scope="session")
def style_run(tmp_path_factory, strand_run):
    """A hairstyle-VAE run directory (on the tiny strand-VAE)."""
    from latent4d.train import compose_config, run_training

    out = tmp_path_factory.mktemp("hair_style_run")
    metrics = run_training(compose_config(tiny_style_overrides(strand_run[0]), out))
    return out, metrics
