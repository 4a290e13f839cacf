"""Strand-VAE: shapes, losses, save/load, training end to end on procedural strands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latent4d.hair.data import HairStrandDataModule, split_seeds
from latent4d.hair.metrics import PCABaseline, position_error
from latent4d.hair.strand_vae import StrandVAE, kl_divergence, load_strand_vae, strand_losses


def test_model_shapes_and_root_at_origin():
    vae = StrandVAE(channels=(8, 16, 16, 16), hidden=32, layers=2)
    x = torch.randn(5, 100, 3) * 0.05
    out = vae(x)
    assert out["recon"].shape == (5, 100, 3) and out["mu"].shape == (5, 64)
    assert torch.equal(out["recon"][:, 0], torch.zeros(5, 3))
    z = torch.randn(3, 64)
    assert vae.decode(z).shape == (3, 100, 3)
    assert torch.allclose(vae.decode_chunked(z, chunk=2), vae.decode(z), atol=1e-6)


def test_losses_are_zero_only_for_identical_strands():
    x = torch.cumsum(torch.randn(4, 100, 3) * 0.003, 1)
    parts = strand_losses(x, x)
    assert all(float(v) < 1e-6 for v in parts.values())
    y = x + torch.linspace(0, 0.002, 100)[None, :, None] * torch.tensor([1.0, 0, 0])
    parts = strand_losses(y, x)
    assert float(parts["position"]) == pytest.approx(1 / 3, rel=0.05)  # mean |dx| = 1 mm on x only, in mm
    assert float(parts["direction"]) > 0
    assert float(kl_divergence(torch.zeros(2, 8), torch.zeros(2, 8))) == 0.0


def test_save_and_load_pretrained(tmp_path):
    vae = StrandVAE(channels=(8, 16, 16, 16), hidden=32, layers=2, latent_dim=16)
    vae.save_pretrained(tmp_path / "strand_vae")
    back = load_strand_vae(tmp_path)
    assert back.config.latent_dim == 16 and back.config.channels == [8, 16, 16, 16]
    z = torch.randn(2, 16)
    assert torch.equal(back.decode(z), vae.decode(z))


def test_datamodule_splits_are_disjoint_and_local():
    assert not set(split_seeds("train", 50)) & set(split_seeds("test", 50))
    dm = HairStrandDataModule(n_train=3, n_val=1, n_test=1, strands_per_style=32)
    dm.setup()
    x = dm.dataset("train").tensors[0]
    assert x.shape == (96, 100, 3)
    assert torch.equal(x[:, 0], torch.zeros(96, 3))
    # in the TBN frame the first segment leaves the scalp or runs along it, never into it
    assert (x[:, 5, 2] > -1e-3).float().mean() > 0.95


def test_datamodule_reads_a_folder_of_hair_files(tmp_path):
    from latent4d.hair.formats import write_hair
    from latent4d.hair.synthetic import generate_hairstyle

    for i in range(4):
        write_hair(tmp_path / f"s{i}.data", generate_hairstyle(i, 200))
    dm = HairStrandDataModule(root=str(tmp_path), strands_per_style=50, cache=False)
    dm.setup()
    n = sum(len(dm.dataset(s)) for s in ("train", "val", "test"))
    assert n == 200 and len(dm.dataset("train")) >= 50


def test_training_runs_and_learns(strand_run):
    run, metrics = strand_run
    assert (run / "models" / "strand_vae" / "config.json").is_file()
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["experiment"] == "hair/strand_vae"
    for k in ("test/pos_err_mm", "test/pos_err_p95_mm", "test/curv_err"):
        assert np.isfinite(metrics[k])
    assert metrics["test/pos_err_p95_mm"] >= metrics["test/pos_err_mm"]
    # the trained network is much better than an untrained one on held-out strands
    vae = load_strand_vae(run).eval()
    dm = HairStrandDataModule(n_train=1, n_val=1, n_test=3, strands_per_style=64)
    x = dm.dataset("test").tensors[0]
    with torch.no_grad():
        trained = position_error(vae(x, sample=False)["recon"], x).mean()
        fresh = position_error(StrandVAE(**dict(vae.config))(x, sample=False)["recon"], x).mean()
    assert trained < 0.5 * fresh


def test_pca_baseline_is_exact_with_enough_components():
    x = torch.cumsum(torch.randn(300, 10, 3), 1)
    assert float(position_error(PCABaseline(30).fit(x).reconstruct(x), x).max()) < 1e-4
    assert float(position_error(PCABaseline(2).fit(x).reconstruct(x), x).mean()) > 0.1
