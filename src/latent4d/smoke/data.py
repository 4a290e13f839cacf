"""SDF samples of the procedural scene as a LightningDataModule (on the trunk's SplitDataModule)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from latent4d.datamodule import SPLITS, SplitDataModule
from latent4d.geometry.sdf import sdf_samples
from latent4d.smoke.synthetic import sphere_and_box


class SmokeSDFDataModule(SplitDataModule):
    """(points (N, 3), sdf (N,)) samples, near-surface heavy (``near_fraction`` of them within a few
    centimetres of the surface), clamped to ``clamp``.

    Train / val / test use independent samples of the same scene (seeds ``seed``, ``seed + 1``,
    ``seed + 2``); loaders follow :class:`latent4d.datamodule.SplitDataModule`'s rule.
    """

    def __init__(self, n_train: int = 60000, n_val: int = 8000, n_test: int = 8000, near_fraction: float = 0.7,
                 clamp: float = 0.1, batch_size: int = 2048, num_workers: int = 0, seed: int = 0,
                 scene_seed: int = 0):
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.save_hyperparameters()
        self.mesh = sphere_and_box(scene_seed)

    def split_dataset(self, split: str) -> TensorDataset:
        hp = self.hparams
        n = {"train": hp.n_train, "val": hp.n_val, "test": hp.n_test}[split]
        n_near = int(n * hp.near_fraction)
        pts, sdf = sdf_samples(self.mesh, n - n_near, n_near, sigmas=(0.01, 0.04), clamp=hp.clamp,
                               rng=np.random.default_rng(hp.seed + SPLITS.index(split)))
        return TensorDataset(torch.from_numpy(pts), torch.from_numpy(sdf))
