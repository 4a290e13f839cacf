"""One split DataModule base: train / val / test datasets and one loader rule for all of them.

A family's DataModule builds its datasets in ``setup`` (``self.sets[split] = ...``, or by overriding
:meth:`split_dataset`) and inherits the three dataloaders::

    class MyDataModule(SplitDataModule):
        def __init__(self, batch_size: int = 32, num_workers: int = 0, n: int = 1000):
            super().__init__(batch_size=batch_size, num_workers=num_workers)
            self.n = n

        def split_dataset(self, split: str) -> Dataset:
            return TensorDataset(torch.randn(self.n, 3))

The loader rule: training batches are shuffled and drop the last incomplete batch only when the split
holds more than one batch (so a tiny split still trains); validation and test keep every sample in
order; worker processes persist between epochs when there are any. An empty split is an
:class:`~latent4d.errors.InputError` naming it.
"""

from __future__ import annotations

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from latent4d.errors import InputError

SPLITS = ("train", "val", "test")


class SplitDataModule(pl.LightningDataModule):
    """LightningDataModule with ``sets: dict[split, Dataset]`` and the shared loader rule."""

    def __init__(self, batch_size: int = 32, num_workers: int = 0):
        super().__init__()
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.sets: dict[str, Dataset] = {}

    # -- datasets ----------------------------------------------------------------------------------
    def split_dataset(self, split: str) -> Dataset:
        """Build the dataset of ``split`` (override, or fill ``self.sets`` in ``setup``)."""
        raise NotImplementedError(f"{type(self).__name__} builds no '{split}' split")

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage or "", SPLITS)
        for split in wanted:
            if split not in self.sets:
                self.sets[split] = self.split_dataset(split)

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (built on first use)."""
        if split not in self.sets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}.get(split))
        return self.sets[split]

    # -- loaders -----------------------------------------------------------------------------------
    def loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.dataset(split)
        n = len(ds)  # type: ignore[arg-type]
        if n == 0:
            raise InputError(f"{type(self).__name__}: the {split} split is empty: use more data or another split")
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          drop_last=shuffle and n > self.batch_size, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", False)
