"""Loggers: Lightning's CSVLogger, except that a resumed run appends to its ``metrics.csv``.

Lightning's writer deletes an existing ``metrics.csv`` when it starts, so resuming a run in its own
folder (``ckpt_path=<run>/checkpoints/last.ckpt``) lost every row logged before the checkpoint.
:class:`CSVLogger` keeps the file and its header and appends the new rows (a new column rewrites the
header, as Lightning already does within one run).
"""

from __future__ import annotations

import csv
import os

from pytorch_lightning.loggers import CSVLogger as _PLCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter as _PLWriter


class AppendingExperimentWriter(_PLWriter):
    """Lightning's experiment writer that continues an existing ``metrics.csv`` instead of deleting it."""

    def _check_log_dir_exists(self) -> None:
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as f:
            header = next(csv.reader(f), [])
        self.metrics_keys = sorted(set(header))


class CSVLogger(_PLCSVLogger):
    """``pytorch_lightning.loggers.CSVLogger`` whose ``metrics.csv`` survives a resume (rows are appended)."""

    @property
    def experiment(self) -> _PLWriter:
        if self._experiment is not None:
            return self._experiment  # type: ignore[return-value]  # Lightning annotates its private base
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
