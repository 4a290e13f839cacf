"""Exponential moving average (EMA) of a LightningModule's networks, shared by every diffusion module.

A module that mixes in :class:`EMAMixin` (before :class:`latent4d.module.LatentModule`) and calls
:meth:`EMAMixin.init_ema` in its ``__init__`` keeps, for each network named in ``ema_networks``
(``denoiser`` by default), a frozen copy ``<name>_ema`` (:func:`ema_name`) that is

* updated once per optimiser step (so also under ``trainer.accumulate_grad_batches``) with
  torch's own EMA update (:func:`torch.optim.swa_utils.get_ema_multi_avg_fn`, a foreach lerp)
  at the decay of :func:`ema_decay_at` (the cap ``ema_decay`` reached through diffusers' ``EMAModel``
  warm-up ``(1 + t) / (warmup + t)``); buffers (e.g. latent statistics) are copied, not averaged;
* a child module, so it is in every Lightning checkpoint (``state_dict`` keys ``<name>_ema.*``:
  plain tensors, loadable with ``weights_only=True``; a resumed run continues the average, and the
  decay continues from the restored ``global_step``), and a ``ModelMixin``, so
  :meth:`LatentModule.export` writes it as its own network folder ``models/<name>_ema`` beside the
  raw ``models/<name>``;
* what validation / test use (:meth:`EMAMixin.eval_network`) and what the pipelines sample with by
  default (:func:`ema_folder` finds it in a run).

Lightning's ``WeightAveraging`` callback was not used: it averages the whole LightningModule
(frozen autoencoders included), overwrites the raw weights at the end of training and stores the
average in place of the checkpoint's ``state_dict``, so the raw and the EMA networks could not be
exported side by side. ``ema_decay=0`` turns the copy off (``<name>_ema`` is None).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import torch

from latent4d.errors import ConfigError

#: suffix of the EMA copy of a network: attribute, state-dict prefix and ``models/`` folder name
EMA_SUFFIX = "_ema"


def ema_name(name: str) -> str:
    """Name of the EMA copy of network ``name`` (``denoiser`` -> ``denoiser_ema``)."""
    return f"{name}{EMA_SUFFIX}"


def ema_decay_at(step: int, decay: float, warmup: float = 10.0) -> float:
    """Decay of the EMA update after optimiser step ``step`` (1 = the first):
    ``min(decay, (1 + step) / (warmup + step))`` (diffusers' ``EMAModel`` warm-up with ``warmup=10``):
    early updates follow the fast-changing weights closely, the cap ``decay`` is reached after about
    ``(warmup * decay - 1) / (1 - decay)`` steps (8990 steps for 0.999 and warm-up 10)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return min(float(decay), (1.0 + step) / (float(warmup) + step))


def check_ema_settings(decay: float, warmup: float) -> tuple[float, float]:
    """``(decay, warmup)`` as floats; a :class:`ConfigError` naming ``model.ema_decay`` /
    ``model.ema_warmup`` unless 0 <= decay < 1 and warmup >= 1."""
    decay, warmup = float(decay), float(warmup)
    if not 0.0 <= decay < 1.0:
        raise ConfigError(f"model.ema_decay must lie in [0, 1) (0 turns the EMA copy off), got {decay}")
    if not warmup >= 1.0:
        raise ConfigError(f"model.ema_warmup must be >= 1 (the decay warms up as (1 + t) / (warmup + t)), got {warmup}")
    return decay, warmup


@torch.no_grad()
def update_ema(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * net`` on the parameters (torch's foreach EMA update);
    buffers copied from ``net``. Both modules must have the same structure."""
    from torch.optim.swa_utils import get_ema_multi_avg_fn

    averaged = list(ema.parameters())
    if averaged:
        get_ema_multi_avg_fn(decay)(averaged, [p.detach() for p in net.parameters()], None)
    for b_ema, b in zip(ema.buffers(), net.buffers(), strict=True):
        b_ema.copy_(b)


def ema_folder(run_or_folder: str | Path, name: str, class_name: str | None, family: str) -> Path | None:
    """Folder of the EMA copy of network ``name`` (``<run>/models/<name>_ema``, or ``<folder>/<name>_ema``
    of a models folder) when there is one of class ``class_name``, else None (runs trained without EMA,
    a saved pipeline folder, a network folder given directly)."""
    from latent4d.runs import MODELS, has_network, network_folder

    p = Path(run_or_folder).expanduser()
    for cand in (p / MODELS / ema_name(name), p / ema_name(name)):
        if cand.is_dir() and has_network(cand, ema_name(name), class_name):
            return network_folder(cand, ema_name(name), class_name, family)
    return None


class EMAMixin:
    """EMA copies ``<name>_ema`` of the networks ``ema_networks`` (see the module docstring).

    Mix in before ``LatentModule``; call :meth:`init_ema` after the networks are set.
    """

    #: attribute names of the networks that get an EMA copy
    ema_networks: ClassVar[tuple[str, ...]] = ("denoiser",)
    ema_decay: float
    ema_warmup: float

    def init_ema(self, decay: float, warmup: float = 10.0) -> None:
        """Create the copies (frozen, eval mode) from the networks' current weights; ``decay=0``: none."""
        self.ema_decay, self.ema_warmup = check_ema_settings(decay, warmup)
        for name in self.ema_networks:
            net = getattr(self, name)
            twin = copy.deepcopy(net).requires_grad_(False).eval() if self.ema_decay > 0 else None
            setattr(self, ema_name(name), twin)
        self._ema_step = -1

    def ema_network(self, name: str = "denoiser") -> torch.nn.Module | None:
        """The EMA copy of network ``name`` (None when the module keeps none)."""
        return getattr(self, ema_name(name), None)

    def eval_network(self, name: str = "denoiser") -> torch.nn.Module:
        """The network validation, test and sampling use: the EMA copy when there is one."""
        ema = self.ema_network(name)
        return ema if ema is not None else getattr(self, name)

    @torch.no_grad()
    def update_ema(self, step: int) -> float:
        """One EMA update of every copy at the decay of optimiser step ``step``; returns the decay."""
        decay = ema_decay_at(step, self.ema_decay, self.ema_warmup)
        for name in self.ema_networks:
            ema = self.ema_network(name)
            if ema is not None:
                update_ema(ema, getattr(self, name), decay)
        return decay

    @torch.no_grad()
    def sync_ema_buffers(self) -> None:
        """Copy the networks' buffers (e.g. latent statistics set before training) into the copies."""
        for name in self.ema_networks:
            ema = self.ema_network(name)
            if ema is not None:
                for b_ema, b in zip(ema.buffers(), getattr(self, name).buffers(), strict=True):
                    b_ema.copy_(b)

    # -- Lightning hooks -------------------------------------------------------------------------
    def on_train_start(self) -> None:
        super().on_train_start()  # type: ignore[misc]
        self._ema_step = int(self.global_step)  # type: ignore[attr-defined]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Update after every optimiser step (a batch that only accumulated gradients changes nothing)."""
        super().on_train_batch_end(outputs, batch, batch_idx)  # type: ignore[misc]
        step = int(self.global_step)  # type: ignore[attr-defined]
        if step != self._ema_step:
            self._ema_step = step
            self.update_ema(step)

    def train(self, mode: bool = True):
        super().train(mode)  # type: ignore[misc]
        for name in self.ema_networks:
            ema = self.ema_network(name)
            if ema is not None:
                ema.eval()
        return self

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A checkpoint written before the module kept EMA copies resumes with each copy starting
        from the checkpoint's raw weights (instead of failing on the missing ``<name>_ema.*`` keys)."""
        super().on_load_checkpoint(checkpoint)  # type: ignore[misc]
        state = checkpoint.get("state_dict")
        if not isinstance(state, dict):
            return
        for name in self.ema_networks:
            if self.ema_network(name) is None or any(k.startswith(ema_name(name) + ".") for k in state):
                continue
            for k in [k for k in state if k.startswith(name + ".")]:
                state[ema_name(name) + k[len(name):]] = state[k].clone()
