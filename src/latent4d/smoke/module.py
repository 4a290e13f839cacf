"""LightningModule for the smoke SDF: clamped L1 loss."""

from __future__ import annotations

import torch

from latent4d.module import LatentModule
from latent4d.smoke.sdf import SDFNet


class SmokeSDFModule(LatentModule):
    def __init__(self, net: SDFNet, lr: float = 2e-3, clamp: float = 0.1):
        super().__init__()
        self.net = net
        self.lr, self.clamp = lr, clamp

    def _loss(self, batch) -> torch.Tensor:
        pts, sdf = batch
        pred = self.net(pts).clamp(-self.clamp, self.clamp)
        return (pred - sdf).abs().mean()

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self._loss(batch), prog_bar=True, sync_dist=True)

    def test_step(self, batch, batch_idx):
        self.log("test/l1_sdf", self._loss(batch), sync_dist=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.trainer.max_epochs or 1))
        return {"optimizer": opt, "lr_scheduler": sched}
