"""In-process training behaviour: NaN guard, seeding."""

import pytest
import pytorch_lightning as pl
import torch

from latent4d.callbacks import NaNGuard
from latent4d.errors import TrainingDiverged
from latent4d.smoke.data import SmokeSDFDataModule
from latent4d.smoke.module import SmokeSDFModule
from latent4d.smoke.sdf import SDFNet
from latent4d.train import compose_config, run_training


class _ExplodesAtStep3(SmokeSDFModule):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.global_step == 3 else loss


def test_nan_loss_stops_training_naming_the_step(tmp_path):
    model = _ExplodesAtStep3(SDFNet(hidden=16, layers=2))
    before = None
    dm = SmokeSDFDataModule(n_train=4096, n_val=512, n_test=512, batch_size=512)
    trainer = pl.Trainer(max_epochs=2, callbacks=[NaNGuard()], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(TrainingDiverged, match="global step 3"):
        trainer.fit(model, datamodule=dm)
    before = [p.detach().clone() for p in model.parameters()]
    assert all(torch.isfinite(p).all() for p in before)  # the NaN never reached the weights


def test_seed_makes_runs_repeatable(tmp_path):
    ov = ["experiment=smoke/sdf_sphere", "trainer.max_epochs=1", "data.n_train=4096", "callbacks=minimal",
          "logger=none", "test=false", "seed=7"]
    m1 = run_training(compose_config(ov, tmp_path / "a"))
    m2 = run_training(compose_config(ov, tmp_path / "b"))
    m3 = run_training(compose_config([*ov[:-1], "seed=8"], tmp_path / "c"))
    assert m1["val/loss"] == m2["val/loss"]
    assert m1["val/loss"] != m3["val/loss"]
    assert m1["fit_seconds"] > 0 and m1["data_seconds"] >= 0  # data built before trainer.fit, timed apart
