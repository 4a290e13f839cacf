"""EMA of the motion diffusion denoisers: trained, exported beside the raw weights, sampled by default;
and the fp32 default precision of the diffusion experiments."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from latent4d.motion.module import ShapeDiffusionModule
from latent4d.motion.pipeline import MotionPipeline


class _Latents(pl.LightningDataModule):
    """Random shape latents (16 x 4) with observations, and the training latents for the statistics."""

    def __init__(self, n: int = 12):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.z = torch.randn(n, 16, 4, generator=g) * 2 + 0.5
        self.obs = torch.rand(n, 32, 3, generator=g) - 0.5

    def _loader(self):
        items = [
            {"x0": self.z[i], "obs": self.obs[i], "corresponding": torch.tensor(True)}
            for i in range(len(self.z))
        ]
        return DataLoader(items, batch_size=4, shuffle=False)

    def train_dataloader(self):
        return self._loader()

    def val_dataloader(self):
        return self._loader()

    def train_latents(self) -> dict:
        return {"shape": self.z}


def _train(tmp_path, tiny_networks, ema_decay: float) -> tuple[ShapeDiffusionModule, pl.Trainer]:
    nets = tiny_networks()
    nets["shape_ae"].save_pretrained(tmp_path / "ae_run" / "models" / "ae")
    module = ShapeDiffusionModule(
        nets["shape_denoiser"], str(tmp_path / "ae_run"), ema_decay=ema_decay, warmup_steps=1, lr=1e-2
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=_Latents())
    return module, trainer


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_shape_diffusion_keeps_exports_and_samples_with_its_ema(tmp_path, tiny_networks):
    module, trainer = _train(tmp_path, tiny_networks, ema_decay=0.999)
    ema, raw = module.denoiser_ema, module.denoiser
    assert not _same(ema, raw)  # the average lags the trained weights
    assert not torch.allclose(raw.stats.latent_std, torch.ones(4))  # statistics set at the start of fit ...
    assert torch.equal(ema.stats.latent_std, raw.stats.latent_std)  # ... and copied into the EMA copy
    assert module.eval_network() is ema
    with torch.no_grad():  # validation measures the EMA copy
        sigma, noise = module._fixed(0, 4, module.denoiser.normalize(_Latents().z[:4]))
        batch = next(iter(_Latents().val_dataloader()))
        assert not torch.equal(module._loss(batch, sigma, noise, ema), module._loss(batch, sigma, noise))

    run = tmp_path / "run"
    written = module.export(run / "models")
    assert {"denoiser", "denoiser_ema", "shape_ae"} <= set(written)
    by_default = MotionPipeline.from_runs(shape_diffusion=run)
    assert _same(by_default.shape_denoiser, ema) and not _same(by_default.shape_denoiser, raw)
    assert _same(MotionPipeline.from_runs(shape_diffusion=run, ema=False).shape_denoiser, raw)
    g = torch.Generator().manual_seed(0)
    obs = _Latents().obs[0]
    z_ema = by_default.sample_shape(obs, 1, steps=4, generator=g)
    z_raw = MotionPipeline.from_runs(shape_diffusion=run, ema=False).sample_shape(
        obs, 1, steps=4, generator=torch.Generator().manual_seed(0)
    )
    assert z_ema.shape == z_raw.shape and not torch.allclose(z_ema, z_raw)

    saved = by_default.save_pretrained(tmp_path / "pipe")  # a saved pipeline holds what it sampled with
    assert _same(MotionPipeline.from_pretrained(saved).shape_denoiser, ema)


def test_a_run_without_ema_samples_with_its_raw_denoiser(tmp_path, tiny_networks, monkeypatch):
    module, _ = _train(tmp_path, tiny_networks, ema_decay=0.0)
    assert module.denoiser_ema is None and module.eval_network() is module.denoiser
    written = module.export(tmp_path / "run" / "models")
    assert "denoiser_ema" not in written
    assert _same(MotionPipeline.from_runs(shape_diffusion=tmp_path / "run").shape_denoiser, module.denoiser)


@pytest.mark.parametrize("exp", ["shape_diffusion", "deform_diffusion"])
@pytest.mark.parametrize(
    "trainer, extra, precision",
    [("gpu", [], "32-true"), ("ddp", [], "32-true"), ("gpu", ["trainer.precision=bf16-mixed"], "bf16-mixed")],
)
def test_diffusion_trains_in_fp32_on_gpu_configs_unless_asked(tmp_path, exp, trainer, extra, precision):
    from latent4d.train import compose_config

    cfg = compose_config([f"experiment=motion/{exp}", f"trainer={trainer}", *extra], tmp_path)
    assert cfg.trainer.precision == precision
    assert 0 < cfg.model.ema_decay < 1 and cfg.model.ema_warmup >= 1
    paper = compose_config([f"experiment=motion/{exp}", f"model=motion_{exp}_paper"], tmp_path)
    assert paper.model.ema_decay == 0.9999


def test_sample_and_evaluate_take_ema_false():
    from omegaconf import OmegaConf

    from latent4d.motion.commands import EvaluateOptions, SampleOptions
    from latent4d.options import parse_options

    for cls, what in ((SampleOptions, "sample"), (EvaluateOptions, "evaluate")):
        assert parse_options(cls, OmegaConf.from_dotlist([]), what).ema is True
        assert parse_options(cls, OmegaConf.from_dotlist(["ema=false"]), what).ema is False
