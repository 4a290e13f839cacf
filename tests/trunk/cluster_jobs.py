"""Test-only pieces for cluster jobs, given to `latent4d train` subprocesses by Hydra overrides (with this
folder on PYTHONPATH): a callback that kills its own process mid-training, once (what a cluster's
preemption does to a job: no signal handler, no final checkpoint), and a module that diverges on one rank."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from pytorch_lightning import Callback

from latent4d.smoke.module import SmokeSDFModule


class PreemptAt(Callback):
    """SIGKILL this process after optimiser step ``step``, unless ``marker`` exists (it is written first,
    so the rerun of the same command trains on)."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = step, Path(marker)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and not self.marker.exists():
            self.marker.write_text(f"killed after step {self.step}\n")
            os.kill(os.getpid(), signal.SIGKILL)


class NaNOnRank(SmokeSDFModule):
    """The smoke SDF module whose loss is NaN on one rank at one step: the DDP case of a diverging run."""

    def __init__(self, *args, nan_rank: int = 1, nan_step: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.nan_rank, self.nan_step = nan_rank, nan_step

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self.global_rank == self.nan_rank and self.global_step == self.nan_step:
            return loss * float("nan")
        return loss
