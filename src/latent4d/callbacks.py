"""Lightning callbacks shared by every experiment."""

from __future__ import annotations

import torch
from pytorch_lightning import Callback

from latent4d.errors import TrainingDiverged


class NaNGuard(Callback):
    """Stop training with a message naming the step when the loss is NaN or infinite.

    Checked before the backward pass, so the weights (and the checkpoints on disk) are never
    updated from a non-finite loss.
    """

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss.detach()).all():
            raise TrainingDiverged(
                f"training loss became {loss.detach().float().item()} at global step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}); stopping. The checkpoints on disk are from before this "
                "step. Try a lower learning rate, gradient clipping (trainer.gradient_clip_val=1.0) or "
                "check the data for NaNs.")
