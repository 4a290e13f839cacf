"""The shared EMA of diffusion denoisers (latent4d.ema): the running average itself, checkpoints,
export, resume, and the pipelines' choice of the EMA copy."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch.utils.data import DataLoader, TensorDataset

from latent4d.ema import EMAMixin, ema_decay_at, ema_folder
from latent4d.errors import ConfigError
from latent4d.module import LatentModule


class TinyNet(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, dim: int = 3):
        super().__init__()
        self.lin = torch.nn.Linear(dim, 1)
        self.register_buffer("shift", torch.zeros(dim))

    def forward(self, x):
        return self.lin(x - self.shift)


class ToyDiffusion(EMAMixin, LatentModule):
    def __init__(self, ema_decay: float = 0.9, ema_warmup: float = 2.0):
        super().__init__()
        self.denoiser = TinyNet()
        self.init_ema(ema_decay, ema_warmup)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.denoiser(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.denoiser.parameters(), lr=0.2)


class RawSnapshots(pl.Callback):
    """The raw weights after every optimiser step."""

    def __init__(self):
        self.steps: list[list[torch.Tensor]] = []
        self._last = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step != self._last:
            self._last = trainer.global_step
            self.steps.append([p.detach().clone() for p in pl_module.denoiser.parameters()])


def _data(n: int = 12):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True) * 0.5 + 1), batch_size=2, shuffle=False)


def _trainer(tmp_path, **kw):
    kw = {"max_epochs": 1, **kw}
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, **kw)


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def test_decay_schedule_warms_up_to_the_cap():
    assert ema_decay_at(1, 0.999) == pytest.approx(2 / 11)
    assert ema_decay_at(100, 0.999) == pytest.approx(101 / 110)
    assert ema_decay_at(10**6, 0.999) == 0.999
    assert ema_decay_at(3, 0.9, warmup=2.0) == pytest.approx(0.8)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_ema_is_the_running_average_of_the_raw_weights(tmp_path, accumulate):
    torch.manual_seed(0)
    module = ToyDiffusion(ema_decay=0.9, ema_warmup=2.0)
    module.denoiser.shift.fill_(0.25)  # a buffer set before training (like latent statistics)
    ema = _params(module.denoiser)  # the copy starts at the initial weights
    snaps = RawSnapshots()
    _trainer(tmp_path, callbacks=[snaps], accumulate_grad_batches=accumulate).fit(module, _data())
    assert len(snaps.steps) == 6 // accumulate  # one EMA update per optimiser step
    for t, raw in enumerate(snaps.steps, start=1):
        d = min(0.9, (1 + t) / (2 + t))
        ema = [d * e + (1 - d) * w for e, w in zip(ema, raw)]
    got = _params(module.denoiser_ema)
    for e, g in zip(ema, got):
        torch.testing.assert_close(g, e)
    assert not all(torch.equal(a, b) for a, b in zip(got, _params(module.denoiser)))
    assert torch.equal(module.denoiser_ema.shift, module.denoiser.shift)
    assert not any(p.requires_grad for p in module.denoiser_ema.parameters())
    assert module.eval_network() is module.denoiser_ema


def test_ema_is_in_checkpoints_and_exported_beside_the_raw_weights(tmp_path):
    from latent4d.trust import load_checkpoint, load_network

    torch.manual_seed(0)
    module = ToyDiffusion()
    trainer = _trainer(tmp_path)
    trainer.fit(module, _data())
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    state = load_checkpoint(tmp_path / "last.ckpt")["state_dict"]  # weights_only=True
    assert torch.equal(state["denoiser_ema.lin.weight"], module.denoiser_ema.lin.weight)
    assert not torch.equal(state["denoiser_ema.lin.weight"], state["denoiser.lin.weight"])
    written = module.export(tmp_path / "models")
    assert set(written) == {"denoiser", "denoiser_ema"}
    assert ema_folder(tmp_path, "denoiser", "TinyNet", "latent4d") == tmp_path / "models" / "denoiser_ema"
    assert ema_folder(tmp_path, "denoiser", "OtherNet", "latent4d") is None
    for name, net in (("denoiser", module.denoiser), ("denoiser_ema", module.denoiser_ema)):
        loaded = load_network(TinyNet, written[name])
        for a, b in zip(loaded.parameters(), net.parameters()):
            assert torch.equal(a, b)


def test_resume_continues_the_average(tmp_path):
    """Two epochs in one go == one epoch, a checkpoint, and a resumed second epoch (bit for bit)."""
    torch.manual_seed(0)
    straight = ToyDiffusion()
    _trainer(tmp_path / "a", max_epochs=2).fit(straight, _data())

    torch.manual_seed(0)
    first = ToyDiffusion()
    t1 = _trainer(tmp_path / "b", max_epochs=1)
    t1.fit(first, _data())
    t1.save_checkpoint(tmp_path / "epoch1.ckpt")
    torch.manual_seed(1)  # a different initialisation: everything must come from the checkpoint
    resumed = ToyDiffusion()
    _trainer(tmp_path / "b", max_epochs=2).fit(resumed, _data(), ckpt_path=tmp_path / "epoch1.ckpt")
    for a, b in zip(resumed.denoiser_ema.parameters(), straight.denoiser_ema.parameters()):
        assert torch.equal(a, b)
    # the same resume with the average restarted from the raw weights ends elsewhere: the test can fail
    ckpt = torch.load(tmp_path / "epoch1.ckpt", weights_only=True)
    state = ckpt["state_dict"]
    for k in [k for k in state if k.startswith("denoiser.")]:
        state["denoiser_ema" + k[len("denoiser"):]] = state[k].clone()
    torch.save(ckpt, tmp_path / "reset.ckpt")
    restarted = ToyDiffusion()
    _trainer(tmp_path / "c", max_epochs=2).fit(restarted, _data(), ckpt_path=tmp_path / "reset.ckpt")
    assert not torch.equal(restarted.denoiser_ema.lin.weight, straight.denoiser_ema.lin.weight)
    assert torch.equal(restarted.denoiser.lin.weight, straight.denoiser.lin.weight)


def test_a_checkpoint_without_ema_resumes_with_the_copy_from_its_raw_weights(tmp_path):
    torch.manual_seed(0)
    old = ToyDiffusion(ema_decay=0.0)
    assert old.denoiser_ema is None and old.eval_network() is old.denoiser
    t = _trainer(tmp_path)
    t.fit(old, _data())
    t.save_checkpoint(tmp_path / "old.ckpt")
    new = ToyDiffusion()
    new.on_load_checkpoint(ckpt := torch.load(tmp_path / "old.ckpt", weights_only=True))
    new.load_state_dict(ckpt["state_dict"])
    assert torch.equal(new.denoiser_ema.lin.weight, old.denoiser.lin.weight)
    _trainer(tmp_path, max_epochs=2).fit(ToyDiffusion(), _data(), ckpt_path=tmp_path / "old.ckpt")


@pytest.mark.parametrize("decay, warmup", [(1.0, 10), (-0.1, 10), (0.99, 0.5)])
def test_bad_settings_are_refused(decay, warmup):
    with pytest.raises(ConfigError, match="model.ema_"):
        ToyDiffusion(decay, warmup)
