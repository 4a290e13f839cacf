"""Bernoulli autoencoder, latent transformer, pipelines and metrics (no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latent4d.binary.autoencoder import BernoulliAutoencoder
from latent4d.binary.denoiser import LatentTransformer
from latent4d.binary.io import image_grid, occupancy_mesh
from latent4d.binary.metrics import BitUsage, frechet_distance, iou, psnr
from latent4d.binary.pipeline import BinaryLatentPipeline
from latent4d.diffusion.bernoulli import BernoulliDiffusionScheduler
from latent4d.errors import ConfigError, InputError


def _ae(**kw):
    torch.manual_seed(0)
    cfg = dict(dims=2, in_channels=1, latent_channels=8, channels=(8, 16), sample_size=16)
    cfg.update(kw)
    return BernoulliAutoencoder(**cfg)


def test_autoencoder_shapes_2d_and_3d():
    ae = _ae()
    assert ae.latent_shape == (8, 4, 4) and ae.num_bits == 128
    out = ae(torch.rand(3, 1, 16, 16))
    assert out["logits"].shape == (3, 1, 16, 16) and out["probs"].shape == (3, 8, 4, 4)
    ae3 = _ae(dims=3, channels=(8, 8, 8), sample_size=16, latent_channels=4)
    assert ae3.latent_shape == (4, 2, 2, 2)
    z = ae3.encode_latents(torch.rand(2, 1, 16, 16, 16))
    assert z.shape == (2, 4, 2, 2, 2) and set(z.unique().tolist()) <= {0.0, 1.0}
    assert ae3.decode(z).shape == (2, 1, 16, 16, 16)
    aep = _ae(dims=3, channels=(8, 8), patch_size=2, sample_size=16, latent_channels=4)  # patchify stem
    assert aep.latent_shape == (4, 2, 2, 2) and aep.downsampling == 8
    assert aep(torch.rand(1, 1, 16, 16, 16))["logits"].shape == (1, 1, 16, 16, 16)
    with pytest.raises(InputError, match="expected"):
        ae(torch.rand(2, 3, 16, 16))
    with pytest.raises(InputError, match="divisible"):
        ae(torch.rand(2, 1, 18, 18))


def test_straight_through_bits_train_sampled_eval_thresholded():
    ae = _ae().train()
    x = torch.rand(4, 1, 16, 16)
    out = ae(x)
    z = out["latents"]
    torch.testing.assert_close(z.detach(), z.detach().round(), atol=1e-6, rtol=0)  # forward values are bits
    loss = (torch.sigmoid(out["logits"]) - x).abs().mean()
    loss.backward()
    g = ae.encoder[0].weight.grad
    assert g is not None and g.abs().sum() > 0  # the straight-through estimator reaches the encoder
    ae.eval()
    a, b = ae.encode_latents(x), ae.encode_latents(x)
    assert torch.equal(a, b)
    assert torch.equal(a, (torch.sigmoid(ae.encode(x)) > 0.5).float())


def test_continuous_autoencoder_passes_probabilities():
    ae = _ae(quantize="none").eval()
    x = torch.rand(2, 1, 16, 16)
    z = ae.encode_latents(x)
    torch.testing.assert_close(z, torch.sigmoid(ae.encode(x)))
    assert ((z > 0) & (z < 1)).float().mean() > 0.9


def test_autoencoder_save_load_roundtrip(tmp_path):
    ae = _ae().eval()
    ae.save_pretrained(tmp_path / "ae")
    back = BernoulliAutoencoder.from_pretrained(tmp_path / "ae").eval()
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(back.decode(back.encode_latents(x)), ae.decode(ae.encode_latents(x)))
    assert tuple(back.config.channels) == (8, 16)


def _den(**kw):
    torch.manual_seed(0)
    cfg = dict(latent_channels=8, latent_shape=(4, 4), dim=32, depth=2, heads=2, dim_head=16, num_classes=3,
               num_train_timesteps=16)
    cfg.update(kw)
    return LatentTransformer(**cfg)


def test_denoiser_shapes_labels_and_3d():
    d = _den()
    for blk in d.blocks:  # break AdaLN-Zero's identity start so outputs depend on inputs
        torch.nn.init.normal_(blk.norm1.mod[1].weight, std=0.1)
    torch.nn.init.normal_(d.out.weight, std=0.1)
    x = torch.bernoulli(torch.full((5, 8, 4, 4), 0.5))
    y = d(x, torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 1, 2, -1, -1]))
    assert y.shape == x.shape
    # -1 and None both mean "no label"
    torch.testing.assert_close(d(x[3:], 4, None), d(x[3:], 4, torch.tensor([-1, -1])))
    assert not torch.allclose(d(x, 3, torch.zeros(5, dtype=torch.long)), d(x, 3, torch.ones(5, dtype=torch.long)))
    with pytest.raises(InputError, match="out of range"):
        d(x, 1, torch.full((5,), 7))
    with pytest.raises(InputError, match="expected"):
        d(torch.zeros(2, 8, 2, 2), 1)
    d3 = _den(latent_shape=(2, 2, 2), num_classes=0)
    assert d3(torch.zeros(2, 8, 2, 2, 2), torch.tensor([3, 4])).shape == (2, 8, 2, 2, 2)


def test_time_embedding_depends_on_t_over_T_not_on_sampling_steps():
    """The pipeline feeds the scheduler's own timesteps (multiples of T / S) to the denoiser."""
    d16, d64 = _den(num_train_timesteps=16), _den(num_train_timesteps=64)
    # the same fraction t / T gives the same embedding for different T
    torch.testing.assert_close(d16.time(torch.tensor([4.0])), d64.time(torch.tensor([16.0])))
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config, self.grid = inner, inner.config, inner.grid

        def forward(self, x, t, labels):
            seen.append(int(torch.as_tensor(t).reshape(-1)[0]))
            return self.inner(x, t, labels)

    ae = _ae()
    pipe = BinaryLatentPipeline(ae, _den(num_train_timesteps=64), BernoulliDiffusionScheduler(64))
    pipe.denoiser = Spy(pipe.denoiser)
    pipe(2, steps=4)
    assert seen == [64, 48, 32, 16]


def test_pipeline_validates_and_samples_bits():
    pipe = BinaryLatentPipeline(_ae(), _den(), BernoulliDiffusionScheduler(16))
    g = torch.Generator().manual_seed(0)
    out = pipe(6, steps=4, class_labels=torch.tensor([0, 1, 2, 0, -1, -1]), guidance=2.0, generator=g)
    assert out.latents.shape == (6, 8, 4, 4) and set(out.latents.unique().tolist()) <= {0.0, 1.0}
    assert out.samples.shape == (6, 1, 16, 16) and 0 <= out.samples.min() and out.samples.max() <= 1
    with pytest.raises(InputError, match="steps=17"):
        pipe(2, steps=17)
    with pytest.raises(InputError, match="temperature"):
        pipe(2, steps=4, temperature=0)
    with pytest.raises(InputError, match="temperature"):
        pipe(2, steps=4, temperature=-1.0)
    with pytest.raises(InputError, match="class labels"):
        pipe(2, steps=4, class_labels=5)


def test_bit_usage_psnr_iou_and_frechet():
    u = BitUsage()
    bits = torch.zeros(10, 2, 2)
    bits[:5, 0, 0] = 1  # one balanced position, three constant ones
    u.update(bits[:6])
    u.update(bits[6:])
    r = u.compute()
    assert r["fraction_active"] == pytest.approx(0.25) and r["mean_entropy"] == pytest.approx(0.25)
    x = torch.rand(3, 1, 8, 8)
    assert psnr(x, x).min() > 90 and psnr(x, 1 - x).max() < 20
    a = torch.zeros(2, 1, 4, 4, 4)
    a[:, :, :2] = 1
    b = a.clone()
    b[1, :, :1] = 0
    np.testing.assert_allclose(iou(a, b).numpy(), [1.0, 0.5])
    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4))
    assert frechet_distance(f1, f2) < 0.05
    assert frechet_distance(f1, f2 + 1.0) == pytest.approx(4.0, abs=0.2)


def test_image_grid_and_occupancy_mesh():
    g = image_grid(torch.rand(5, 1, 4, 4), nrow=3, pad=1, scale=2)
    assert g.shape == (2 * 9 + 1, 3 * 9 + 1, 3) and g.dtype == np.uint8
    occ = torch.zeros(16, 16, 16)
    occ[4:12, 4:12, 4:12] = 1
    mesh = occupancy_mesh(occ)
    assert mesh.is_watertight and abs(mesh.volume - 1.0) < 0.15  # an 8-voxel cube of side 1 in [-1, 1]^3
    full = torch.ones(8, 8, 8)  # touching the border: still closed thanks to the padding
    assert occupancy_mesh(full).is_watertight


def test_pipeline_from_run_prefers_ema_and_roundtrips_through_save_pretrained(tmp_path):
    """The trunk's LatentPipeline contract: <run>/models/{autoencoder, denoiser_ema or denoiser, scheduler}
    and a folder written by save_pretrained load to the same sampler."""
    import json

    ae, den, ema = _ae(), _den(), _den()
    torch.nn.init.normal_(ema.out.weight, std=0.1)  # the EMA copy differs from the raw denoiser
    run = tmp_path / "run"
    for name, module in (("autoencoder", ae), ("denoiser", den), ("denoiser_ema", ema),
                         ("scheduler", BernoulliDiffusionScheduler(16))):
        module.save_pretrained(run / "models" / name)
    (run / "config.yaml").write_text("family: binary\nname: diffusion_digits\n")
    pipe = BinaryLatentPipeline.from_pretrained(run)
    assert set(pipe.components) == {"autoencoder", "denoiser", "scheduler"} and pipe.device.type == "cpu"
    assert torch.equal(pipe.denoiser.out.weight, ema.out.weight)
    pipe.save_pretrained(tmp_path / "saved")
    meta = json.loads((tmp_path / "saved" / "pipeline.json").read_text())
    assert meta["components"] == {"autoencoder": "BernoulliAutoencoder", "denoiser": "LatentTransformer",
                                  "scheduler": "BernoulliDiffusionScheduler"}
    again = BinaryLatentPipeline.from_pretrained(tmp_path / "saved")
    for p in (pipe, again):
        p.sampled = p(3, steps=4, class_labels=[0, 1, 2], generator=torch.Generator().manual_seed(0)).latents
    assert torch.equal(pipe.sampled, again.sampled)
    with pytest.raises(ConfigError, match="holds a BernoulliAutoencoder, not a LatentTransformer"):
        BinaryLatentPipeline.from_pretrained(run / "models" / "autoencoder")
    with pytest.raises(ConfigError, match="no exported 'autoencoder'"):
        BinaryLatentPipeline.from_pretrained(tmp_path)


def test_gaussian_pipeline_reads_the_training_scheduler_as_ddim(tmp_path):
    from diffusers import DDIMScheduler, DDPMScheduler

    from latent4d.binary.pipeline import GaussianLatentPipeline

    run = tmp_path / "run"
    _ae(quantize="none").save_pretrained(run / "models" / "autoencoder")
    _den(input_mode="continuous").save_pretrained(run / "models" / "denoiser")
    DDPMScheduler(num_train_timesteps=50, prediction_type="v_prediction").save_pretrained(run / "models" / "scheduler")
    pipe = GaussianLatentPipeline.from_pretrained(run)
    assert isinstance(pipe.scheduler, DDIMScheduler) and pipe.scheduler.config.timestep_spacing == "trailing"
    assert pipe.scheduler.config.prediction_type == "v_prediction" and not pipe.scheduler.config.clip_sample
    out = pipe(2, steps=4, generator=torch.Generator().manual_seed(0))
    assert out.latents.shape == (2, 8, 4, 4) and 0 <= out.latents.min() and out.latents.max() <= 1
    again = GaussianLatentPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "saved"))
    assert again.scheduler.config == pipe.scheduler.config
