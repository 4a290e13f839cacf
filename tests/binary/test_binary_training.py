"""End to end on tiny settings: AE -> Bernoulli diffusion -> sample / evaluate CLI; baseline; voxels."""

from __future__ import annotations

import json

import pytest
import torch

from latent4d.errors import ConfigError

QUIET = ["callbacks=minimal", "logger=csv"]
TINY_DEN = ["preset=binary_diffusion_tiny"]  # conf/preset: a 1-layer 32-wide denoiser, validation every 2 epochs


def _train(overrides, out):
    from latent4d.train import compose_config, run_training

    return run_training(compose_config([*overrides, *QUIET], out))


@pytest.fixture(scope="session")
def ae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("binary_ae")
    m = _train(["experiment=binary/ae_digits", "preset=binary_ae_tiny", "trainer.max_epochs=3"], out)
    return out, m


@pytest.fixture(scope="session")
def diffusion_run(ae_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("binary_diffusion")
    m = _train(["experiment=binary/diffusion_digits", f"autoencoder_path={ae_run[0]}", "trainer.max_epochs=6",
                *TINY_DEN], out)
    return out, m


def test_autoencoder_run_learns_and_reports_bit_usage(ae_run):
    out, m = ae_run
    assert (out / "models" / "autoencoder" / "config.json").is_file()
    assert m["test/psnr"] > 13.0  # a constant mid-gray image scores ~9 dB on the digits
    assert 0.0 < m["test/bit_usage"] <= 1.0 and "test/bit_entropy" in m


def test_diffusion_run_is_self_contained_and_learns(diffusion_run):
    out, m = diffusion_run
    for name in ("autoencoder", "denoiser", "denoiser_ema", "scheduler"):
        assert (out / "models" / name).is_dir(), name
    cfg = json.loads((out / "models" / "denoiser" / "config.json").read_text())
    assert cfg["latent_channels"] == 8 and cfg["latent_shape"] == [4, 4] and cfg["num_train_timesteps"] == 64
    # zero-initialised output = logit 0 = BCE ln 2 ~ 0.693; flips are rare at small t, so learning shows fast
    assert m["test/loss"] < 0.55
    assert m["test/x0_accuracy"] > 0.6
    # the tiny preset calibrates between 0.9 and 1.5; the choice is exported with the scheduler
    sch = json.loads((out / "models" / "scheduler" / "scheduler_config.json").read_text())
    assert sch["sampling_temperature"] in (0.9, 1.5)
    assert m["test/sampling_temperature"] == pytest.approx(sch["sampling_temperature"])  # logged as float32


def test_pipeline_and_sample_cli(diffusion_run, cli, tmp_path):
    from latent4d.binary.pipeline import BinaryLatentPipeline

    out, _ = diffusion_run
    pipe = BinaryLatentPipeline.from_pretrained(out)
    res = pipe(4, steps=8, class_labels=torch.tensor([0, 1, 2, 3]), guidance=1.0,
               generator=torch.Generator().manual_seed(0))
    assert res.samples.shape == (4, 1, 16, 16)
    r = cli("sample", f"run={out}", "steps=16", "temperature=0.9", "guidance=1.5", "n=20", f"out={tmp_path}",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    png = tmp_path / "samples_s16_t0.9_g1.5.png"
    assert png.stat().st_size > 500
    from PIL import Image

    assert Image.open(png).size[0] > 100
    info = json.loads((tmp_path / "samples_s16_t0.9_g1.5.json").read_text())
    assert info["steps"] == 16 and len(info["labels"]) == 20
    r = cli("sample", f"run={out}", "steps=4", "n=4", f"out={tmp_path / 'default'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert pipe.default_temperature in (0.9, 1.5)
    info = json.loads(next((tmp_path / "default").glob("samples_s4_*.json")).read_text())
    assert info["temperature"] == pipe.default_temperature  # no temperature= : the calibrated one
    r = cli("sample", f"run={out}", "steps=65", cwd=tmp_path)
    assert r.returncode == 2 and "steps=65" in r.stderr and "T=64" in r.stderr
    r = cli("sample", f"run={out}", "temperature=0", cwd=tmp_path)
    assert r.returncode == 2 and "temperature" in r.stderr


def test_evaluate_autoencoder_run(ae_run, cli, tmp_path):
    out, _ = ae_run
    r = cli("evaluate", f"run={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "evaluation.json").read_text())
    assert res["bits_per_sample"] == 128 and res["psnr"] > 13 and 0 < res["bit_usage"] <= 1
    assert (out / "evaluation" / "reconstructions.png").is_file()
    r = cli("sample", f"run={out}", cwd=tmp_path)
    assert r.returncode == 2 and "autoencoder run" in r.stderr


def test_diffusion_needs_an_autoencoder(tmp_path):
    with pytest.raises(ConfigError, match="autoencoder_path"):
        _train(["experiment=binary/diffusion_digits"], tmp_path)


def test_gaussian_baseline_trains_and_samples(tmp_path_factory):
    from latent4d.binary.pipeline import GaussianLatentPipeline

    ae = tmp_path_factory.mktemp("binary_ae_cont")
    _train(["experiment=binary/ae_digits_continuous", "preset=binary_ae_tiny", "trainer.max_epochs=1"], ae)
    with pytest.raises(ConfigError, match="quantize"):  # a continuous AE cannot feed Bernoulli diffusion
        _train(["experiment=binary/diffusion_digits", f"autoencoder_path={ae}", "trainer.max_epochs=1"],
               tmp_path_factory.mktemp("x"))
    out = tmp_path_factory.mktemp("binary_gauss")
    m = _train(["experiment=binary/diffusion_digits_continuous", f"autoencoder_path={ae}", "trainer.max_epochs=2",
                *TINY_DEN], out)
    assert m["test/loss"] < 1.5
    pipe = GaussianLatentPipeline.from_pretrained(out)
    scale = pipe.denoiser.latent_scale
    assert not torch.allclose(scale, torch.ones_like(scale))  # standardisation statistics were saved
    res = pipe(3, steps=4, class_labels=torch.tensor([1, 2, 3]), guidance=1.0,
               generator=torch.Generator().manual_seed(0))
    assert res.samples.shape == (3, 1, 16, 16) and torch.isfinite(res.samples).all()


def test_voxel_autoencoder_and_diffusion(tmp_path_factory, cli):
    ae = tmp_path_factory.mktemp("binary_vox_ae")
    m = _train(["experiment=binary/ae_voxels", "preset=binary_ae_voxels_tiny", "trainer.max_epochs=2"], ae)
    assert 0.0 <= m["test/iou"] <= 1.0 and "test/bit_usage" in m
    out = tmp_path_factory.mktemp("binary_vox_diff")
    _train(["experiment=binary/diffusion_voxels", f"autoencoder_path={ae}", "trainer.max_epochs=2", *TINY_DEN], out)
    samples = out / "s"
    r = cli("sample", f"run={out}", "steps=4", "n=3", "render=false", f"out={samples}")
    assert r.returncode == 0, r.stderr[-2000:]
    t = json.loads((out / "models" / "scheduler" / "scheduler_config.json").read_text())["sampling_temperature"]
    info = json.loads((samples / f"samples_s4_t{t:g}_g1.json").read_text())  # the calibrated temperature
    assert len(info["meshes"]) + info["empty"] == 3
    from omegaconf import OmegaConf

    from latent4d.binary.commands import evaluate

    res = evaluate(out, OmegaConf.load(out / "config.yaml"), OmegaConf.from_dotlist(["steps=2", "n=3"]))
    m = res["by_steps"][2]
    assert 0.0 <= m["occupied_fraction"] <= 1.0 and 0.0 <= m["nearest_test_iou"] <= 1.0


def test_photo_autoencoder_with_patch_gan_runs(tmp_path):
    """ae_images: photo crops, manual optimisation with the patch-GAN term from step 0 (one batch each)."""
    m = _train(["experiment=binary/ae_images", "trainer=debug", "model.gan_start=0", "data.n_train=32",
                "data.n_eval=16", "data.batch_size=16", "model.autoencoder.channels=[8,16]"], tmp_path)
    assert "train/d_loss" in m and "train/g_loss" in m
    assert m["test/psnr"] > 5.0 and 0.0 <= m["test/bit_usage"] <= 1.0


def test_evaluate_digits_diffusion_run(diffusion_run):
    from omegaconf import OmegaConf

    from latent4d.binary.commands import evaluate

    out, _ = diffusion_run
    args = OmegaConf.from_dotlist(["steps=[2,4]", "n=20", "classifier_epochs=2", "unconditional=true"])
    res = evaluate(out, OmegaConf.load(out / "config.yaml"), args)
    assert set(res["by_steps"]) == {2, 4}
    for m in res["by_steps"].values():
        assert m["fd"] >= 0 and 0 <= m["accuracy"] <= 1 and 0 <= m["accuracy_guided"] <= 1
        assert "fd_unconditional" in m
    assert (out / "evaluation.json").is_file() and res["real_fd"] >= 0
