"""SDF samples of the procedural scene as a LightningDataModule."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from latent4d.geometry.sdf import sdf_samples
from latent4d.smoke.synthetic import sphere_and_box


class SmokeSDFDataModule(pl.LightningDataModule):
    """(points (N, 3), sdf (N,)) samples, near-surface heavy, clamped to ``clamp``.

    Train / val / test use independent samples of the same scene (seeded).
    """

    def __init__(self, n_train: int = 60000, n_val: int = 8000, n_test: int = 8000, near_fraction: float = 0.7,
                 clamp: float = 0.1, batch_size: int = 2048, num_workers: int = 0, seed: int = 0,
                 scene_seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.mesh = sphere_and_box(scene_seed)
        self._sets: dict[str, TensorDataset] = {}

    def _make(self, n: int, seed: int) -> TensorDataset:
        hp = self.hparams
        n_near = int(n * hp.near_fraction)
        pts, sdf = sdf_samples(self.mesh, n - n_near, n_near, sigmas=(0.01, 0.04), clamp=hp.clamp,
                               rng=np.random.default_rng(seed))
        return TensorDataset(torch.from_numpy(pts), torch.from_numpy(sdf))

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        if not self._sets:
            self._sets = {"train": self._make(hp.n_train, hp.seed), "val": self._make(hp.n_val, hp.seed + 1),
                          "test": self._make(hp.n_test, hp.seed + 2)}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self._sets[split], batch_size=self.hparams.batch_size, shuffle=shuffle,
                          num_workers=self.hparams.num_workers, drop_last=False)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)
