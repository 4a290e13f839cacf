"""Lightning callbacks shared by every experiment."""

from __future__ import annotations

import random

import numpy as np
import torch
from pytorch_lightning import Callback

from latent4d.errors import TrainingDiverged


class NaNGuard(Callback):
    """Stop training with a message naming the step when the loss is NaN or infinite.

    Checked before the backward pass, so the weights (and the checkpoints on disk) are never
    updated from a non-finite loss. Under DDP the ranks agree first (one all-reduce of a flag per
    step), so every rank stops at the same step with the same message instead of the healthy ranks
    waiting in the gradient all-reduce until the collective times out.
    """

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        here = not bool(torch.isfinite(loss.detach()).all())
        bad = (
            bool(trainer.strategy.reduce_boolean_decision(here, all=False))
            if trainer.world_size > 1
            else here
        )
        if bad:
            where = (
                f"{loss.detach().float().item()}"
                + (f" on rank {trainer.global_rank}" if trainer.world_size > 1 else "")
                if here
                else f"non-finite on another rank (this is rank {trainer.global_rank})"
            )
            raise TrainingDiverged(
                f"training loss became {where} at "
                f"global step {trainer.global_step} (epoch {trainer.current_epoch}); stopping. The checkpoints "
                "on disk are from before this step. Try a lower learning rate, gradient clipping "
                "(trainer.gradient_clip_val=1.0) or check the data for NaNs."
            )


class RNGState(Callback):
    """Save the random generators (Python, NumPy, torch CPU and CUDA) with every checkpoint and
    restore them on resume, so that a resumed run draws the same shuffles, noise and augmentations
    as an uninterrupted one (on CPU the final weights are bit-identical).

    Stored as tensors and plain numbers only, so checkpoints still load with ``weights_only=True``.
    """

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
        state = {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": {
                "kind": str(kind),
                "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "gauss": float(gauss),
            },
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["torch"])
        version, internal, gauss = state_dict["python"]
        random.setstate((version, tuple(internal), gauss))
        n = state_dict["numpy"]
        np.random.set_state(
            (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
        )
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class SpeedMeter(Callback):
    """Training throughput and peak accelerator memory, put into the trainer's metrics (and so into the
    run's ``metrics.json``): ``perf/samples_per_s`` over the steps after ``warmup`` (summed over ranks),
    ``perf/step_seconds`` and ``perf/peak_mem_gb`` (CUDA; 0 on CPU). Used by ``scripts/gpu_check.py``."""

    def __init__(self, warmup: int = 3):
        self.warmup = warmup
        self._start: float | None = None
        self._samples = 0
        self._steps = 0

    @staticmethod
    def _batch_size(batch) -> int:
        while isinstance(batch, (list, tuple)) and batch:
            batch = batch[0]
        if isinstance(batch, dict) and batch:
            batch = next(iter(batch.values()))
        return int(batch.shape[0]) if hasattr(batch, "shape") and len(batch.shape) else 1

    def on_train_start(self, trainer, pl_module) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        import time

        if self._start is None and trainer.global_step >= self.warmup:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self._start = time.perf_counter()
        if self._start is not None:
            self._samples += self._batch_size(batch)
            self._steps += 1

    def on_train_end(self, trainer, pl_module) -> None:
        import time

        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - self._start if self._start is not None else float("nan")
        measured = {
            "perf/samples_per_s": self._samples * trainer.world_size / seconds
            if self._steps
            else float("nan"),
            "perf/step_seconds": seconds / self._steps if self._steps else float("nan"),
            "perf/peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0,
        }
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in measured.items()})
