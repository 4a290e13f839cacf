"""Base LightningModule: networks are diffusers ``ModelMixin`` children exported with ``save_pretrained``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytorch_lightning as pl
from diffusers import ModelMixin


class LatentModule(pl.LightningModule):
    """LightningModule whose trainable networks are ``ModelMixin`` attributes.

    ``export(dir)`` writes ``dir/<attribute name>/{config.json, diffusion_pytorch_model.safetensors}``
    for every such network, each through a temporary folder so a crash never leaves half a model.
    """

    def networks(self) -> dict[str, ModelMixin]:
        return {n: m for n, m in self.named_children() if isinstance(m, ModelMixin)}

    def export(self, out_dir: str | Path) -> dict[str, Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, net in self.networks().items():
            final = out_dir / name
            tmp = out_dir / f".{name}.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            net.save_pretrained(tmp, safe_serialization=True)  # type: ignore[attr-defined]  # diffusers stubs
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            written[name] = final
        return written

    # -- resuming --------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record which LightningModule wrote the checkpoint (checked before resuming or exporting)."""
        cls = type(self)
        checkpoint["latent4d"] = {"module": f"{cls.__module__}.{cls.__qualname__}"}

    def on_train_start(self) -> None:
        """On resume, stretch each LR schedule to this run's length (see :func:`continue_schedules`)."""
        if getattr(self.trainer, "ckpt_path", None):
            continue_schedules(self)


#: scheduler attributes that encode the run's length (rebuilt from this run's settings on resume)
_HORIZON_KEYS = ("T_max", "total_steps", "_schedule_phases", "step_size_up", "total_iters")


def _schedulers(configured) -> list:
    """The scheduler objects in whatever ``configure_optimizers`` returned."""
    from torch.optim.lr_scheduler import LRScheduler

    out, stack = [], [configured]
    while stack:
        item = stack.pop(0)
        if isinstance(item, LRScheduler):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(v for k, v in item.items() if k in ("lr_scheduler", "scheduler"))
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return out


def continue_schedules(module: pl.LightningModule) -> list[str]:
    """Make resumed LR schedules follow the *current* run length instead of the checkpoint's.

    A checkpoint stores each scheduler's horizon (cosine ``T_max``, one-cycle ``total_steps``); a run
    resumed with a larger ``trainer.max_epochs`` would otherwise finish the old schedule (LR at its
    floor, or a one-cycle error past its last step) and then restart it. Here the schedules are
    rebuilt by ``configure_optimizers`` for the new length, their horizon attributes copied into the
    restored schedulers (which keep their step count), and each group's LR set to the value the new
    schedule has at the current step: the run continues as if it had been started with the new length.
    ``LambdaLR`` schedules are rebuilt from the trainer on every start and need nothing. Returns a
    description of each change (also logged).
    """
    import logging

    restored = [c.scheduler for c in module.trainer.lr_scheduler_configs]
    if not restored:
        return []
    fresh = _schedulers(module.configure_optimizers())
    changes = []
    for old, new in zip(restored, fresh):
        if type(old) is not type(new):
            continue
        keys = [k for k in _HORIZON_KEYS if hasattr(new, k) and getattr(old, k, None) != getattr(new, k)]
        if not keys:
            continue
        for k in keys:
            setattr(old, k, getattr(new, k))
        closed = getattr(old, "_get_closed_form_lr", None)
        lrs = closed() if callable(closed) else old.get_lr()
        for group, lr in zip(old.optimizer.param_groups, lrs):
            group["lr"] = lr
        old._last_lr = [g["lr"] for g in old.optimizer.param_groups]
        changes.append(f"{type(old).__name__}: " + ", ".join(
            f"{k} -> {getattr(new, k)}" for k in keys if k != "_schedule_phases"))
    for c in changes:
        logging.getLogger("latent4d.train").info("resumed LR schedule stretched to this run's length: %s", c)
    return changes
