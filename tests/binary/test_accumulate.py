"""Gradient accumulation for the GAN autoencoder (manual optimisation): k batches of b give the gradients
of one batch of k*b, with 1/k of the optimiser steps; the trainer's own setting is refused with the fix."""

from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from latent4d.binary.autoencoder import BernoulliAutoencoder, PatchDiscriminator
from latent4d.binary.module import BernoulliAEModule
from latent4d.errors import ConfigError


class GradRecorder(pl.Callback):
    """The gradients each optimiser steps with: ``steps[i] = [grads of optimiser i at each step]``."""

    def __init__(self):
        self.steps: dict[int, list[list[torch.Tensor]]] = {0: [], 1: []}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        i = [o.optimizer if hasattr(o, "optimizer") else o for o in trainer.optimizers].index(optimizer)
        self.steps[i].append([p.grad.detach().clone() for g in optimizer.param_groups for p in g["params"]])


def _module(k: int = 1) -> BernoulliAEModule:
    """A deterministic GAN autoencoder (continuous latents: no bit sampling; GroupNorm only, no dropout)."""
    torch.manual_seed(0)
    ae = BernoulliAutoencoder(dims=2, in_channels=1, latent_channels=4, channels=(8, 8), num_res_blocks=1,
                              sample_size=8, quantize="none")
    disc = PatchDiscriminator(in_channels=1, channels=8, layers=2)
    return BernoulliAEModule(ae, lr=1e-3, loss="l1", entropy_weight=0.1, gan_weight=0.5, gan_start=0,
                             discriminator=disc, accumulate_grad_batches=k)


def _fit(module, batch_size: int, n_batches: int, **trainer_kw) -> GradRecorder:
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    loader = DataLoader(TensorDataset(x, torch.zeros(16, dtype=torch.long)), batch_size=batch_size, shuffle=False)
    rec = GradRecorder()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=n_batches, limit_val_batches=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[rec], **trainer_kw)
    trainer.fit(module, train_dataloaders=loader)
    return rec


def test_accumulating_two_batches_equals_one_batch_twice_the_size():
    base = _module(1)
    acc = copy.deepcopy(base)
    acc.accumulate_grad_batches = 2
    one = _fit(base, batch_size=4, n_batches=2)  # 2 optimiser steps of 4 images
    two = _fit(acc, batch_size=2, n_batches=4)  # 4 batches of 2 images, accumulated in pairs
    for opt in (0, 1):  # autoencoder, discriminator
        assert len(one.steps[opt]) == len(two.steps[opt]) == 2
        for g1, g2 in zip(one.steps[opt][0], two.steps[opt][0], strict=True):
            torch.testing.assert_close(g2, g1, rtol=1e-4, atol=1e-6)
    # same first step -> same weights -> the second windows agree as well
    for g1, g2 in zip(one.steps[0][1], two.steps[0][1], strict=True):
        torch.testing.assert_close(g2, g1, rtol=1e-3, atol=1e-5)
    assert any(g.abs().sum() > 0 for g in two.steps[1][0])  # the discriminator did learn


def test_accumulation_halves_the_optimiser_steps():
    plain, acc = _fit(_module(1), 2, 4), _fit(_module(2), 2, 4)
    assert len(plain.steps[0]) == 4 and len(acc.steps[0]) == 2
    assert len(plain.steps[1]) == 4 and len(acc.steps[1]) == 2
    odd = _fit(_module(2), 2, 3)  # the epoch's last, incomplete window still steps
    assert len(odd.steps[0]) == 2


def test_trainer_accumulation_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"model\.accumulate_grad_batches=3"):
        _fit(_module(1), 2, 3, accumulate_grad_batches=3)
    ae = BernoulliAutoencoder(dims=2, in_channels=1, latent_channels=4, channels=(8,), sample_size=8)
    with pytest.raises(ConfigError, match=r"trainer\.accumulate_grad_batches=2"):
        BernoulliAEModule(ae, gan_weight=0.0, accumulate_grad_batches=2)
    with pytest.raises(ConfigError, match=">= 1"):
        BernoulliAEModule(ae, gan_weight=0.5, accumulate_grad_batches=0)


class EmaCounter(pl.Callback):
    def __init__(self):
        self.changes = 0
        self._last = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = torch.cat([p.detach().flatten() for p in pl_module.denoiser_ema.parameters()])
        self.changes += self._last is not None and not torch.equal(now, self._last)
        self._last = now


@pytest.mark.parametrize("k", [1, 2])
def test_diffusion_ema_moves_once_per_optimiser_step(tmp_path, k):
    from functools import partial

    from latent4d.binary.denoiser import LatentTransformer
    from latent4d.binary.module import BinaryDiffusionModule
    from latent4d.diffusion.bernoulli import BernoulliDiffusionScheduler

    torch.manual_seed(0)
    BernoulliAutoencoder(dims=2, in_channels=1, latent_channels=4, channels=(8,), sample_size=8).save_pretrained(
        tmp_path / "ae")
    den = partial(LatentTransformer, dim=16, depth=1, heads=2, dim_head=8, num_classes=0)
    module = BinaryDiffusionModule(den, BernoulliDiffusionScheduler(num_train_timesteps=8), str(tmp_path / "ae"),
                                   warmup_steps=1)
    z = (torch.rand(24, 4, 4, 4) > 0.5).float()
    counter = EmaCounter()
    pl.Trainer(accelerator="cpu", max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, callbacks=[counter],
               accumulate_grad_batches=k).fit(module, DataLoader(TensorDataset(z, torch.zeros(24).long()),
                                                                 batch_size=4))
    # callbacks run before the module hook: 6 batches show 5 (k=1) or 2 (k=2: steps after batches 2, 4) moves
    assert counter.changes == 5 // k
