"""Hairstyle-VAE sampling prior (issue 20): the Gaussian fitted to the training styles' posterior means,
the latent-use measures behind it, the nearest-training novelty measure, and the one root-on-scalp check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latent4d.errors import InputError
from latent4d.hair.metrics import nearest_distances, posterior_stats
from latent4d.hair.style_vae import HairstyleVAE, load_style_vae

SMALL = {"latent_channels": 8, "grid": 32, "style_dim": 6, "channels": (8, 8, 16, 16)}


def _correlated(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(6, 6, generator=g) * 0.3
    A[4:] = 0.0  # two dimensions the data does not use
    mean = torch.arange(6.0) * 0.1
    return mean + torch.randn(n, 6, generator=g) @ A.T, mean, A @ A.T


def test_fit_prior_matches_posterior_means_and_survives_save(tmp_path):
    vae = HairstyleVAE(**SMALL, fitted_prior=True)
    eps = torch.randn(20000, 6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(vae.prior_sample(eps), eps)  # N(0, I) until fitted
    mu, mean, cov = _correlated(5000)
    vae.fit_prior(mu)
    z = vae.prior_sample(eps)
    assert torch.allclose(z.mean(0), mean, atol=0.03)
    assert torch.allclose(torch.cov(z.T), cov, atol=0.03)
    assert float(z[:, 4:].std(0).max()) < 0.01  # unused dimensions stay (nearly) where the data is
    vae.save_pretrained(tmp_path / "style_vae")
    back = load_style_vae(tmp_path)
    assert back.has_fitted_prior and torch.equal(back.prior_sample(eps), z)


def test_networks_without_a_fitted_prior_sample_the_standard_normal(tmp_path):
    vae = HairstyleVAE(**SMALL)
    assert not vae.has_fitted_prior and "prior_mean" not in vae.state_dict()
    vae.fit_prior(torch.randn(50, 6))  # a no-op
    eps = torch.randn(5, 6)
    assert torch.equal(vae.prior_sample(eps), eps)
    vae.save_pretrained(tmp_path / "style_vae")  # as networks saved before the fitted prior existed
    assert not load_style_vae(tmp_path).has_fitted_prior


def test_fit_prior_few_styles_is_positive_definite():
    vae = HairstyleVAE(**SMALL, fitted_prior=True)
    vae.fit_prior(torch.randn(3, 6))  # fewer styles than dimensions: shrunk towards the diagonal
    assert torch.isfinite(vae.prior_scale).all() and float(vae.prior_scale.diagonal().min()) > 0
    before = vae.prior_scale.clone()
    vae.fit_prior(torch.full((10, 6), float("nan")))  # a diverged epoch keeps the previous fit
    assert torch.equal(vae.prior_scale, before)


def test_posterior_stats_counts_active_units():
    g = torch.Generator().manual_seed(0)
    mu = torch.zeros(1000, 8)
    mu[:, :3] = torch.randn(1000, 3, generator=g) * 0.8  # 3 used dimensions, 5 collapsed ones
    logvar = torch.zeros(1000, 8)
    logvar[:, :3] = np.log(0.36)
    st = posterior_stats(mu, logvar)
    assert st["active_units"] == 3 and st["dims"] == 8
    assert st["mu_var_active"] == pytest.approx(0.64, abs=0.05)
    assert st["sigma2_active"] == pytest.approx(0.36, abs=1e-6)
    assert st["kl_active_share"] == pytest.approx(1.0)
    expect = 3 * 0.5 * (0.64 + 0.36 - 1 - np.log(0.36))
    assert st["kl"] == pytest.approx(expect, rel=0.05)


def test_nearest_distances_finds_copies_and_offsets():
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(10, 20, 5, 3, generator=g)
    q = [bank[3].clone(), bank[7] + torch.tensor([0.0, 0.01, 0.0])]
    d = nearest_distances(q, iter([bank[:4], bank[4:]]), chunk=3)
    assert d[0] == pytest.approx(0.0, abs=1e-6)
    assert d[1] == pytest.approx(10.0, abs=1e-3)
    assert nearest_distances(q, [bank[i] for i in range(10)], point_step=2)[1] == pytest.approx(10.0, abs=1e-3)


def test_pipeline_samples_from_the_fitted_prior(style_run):
    from latent4d.hair.pipeline import HairPipeline

    pipe = HairPipeline.from_pretrained(style_run[0])
    vae = pipe.style_vae
    assert vae.has_fitted_prior  # the default model config fits it during training
    assert not torch.equal(vae.prior_mean, torch.zeros_like(vae.prior_mean))
    z = pipe.sample_latents(3, seed=5, temperature=0.5)
    eps = torch.randn(3, pipe.style_dim, generator=torch.Generator().manual_seed(5)) * 0.5
    assert torch.allclose(z, vae.prior_mean + eps @ vae.prior_scale.T)
    assert torch.equal(pipe.sample_latents(3, seed=5, temperature=0.5, prior="normal"), eps)
    with pytest.raises(InputError, match="prior"):
        pipe.sample_latents(1, prior="uniform")


def test_guide_map_of_uses_the_align_check(style_run):
    from latent4d.hair.pipeline import HairPipeline
    from latent4d.hair.strands import Hairstyle
    from latent4d.hair.synthetic import generate_hairstyle

    pipe = HairPipeline.from_pretrained(style_run[0])
    hs = generate_hairstyle(3, 400, pipe.scalp)
    assert pipe.guide_map_of(hs).shape[0] == pipe.strand_vae.config.latent_dim + 1
    moved = Hairstyle(hs.points + np.array([0.0, 0.02, 0.0]), hs.counts)  # 20 mm up: the old 50 mm check passed it
    with pytest.raises(InputError, match="latent4d align"):
        pipe.guide_map_of(moved)
