"""LightningModules of the binary family: Bernoulli autoencoder, Bernoulli latent diffusion, and the
continuous-latent Gaussian diffusion baseline."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from latent4d.binary.autoencoder import BernoulliAutoencoder, PatchDiscriminator
from latent4d.binary.metrics import BitUsage, iou, psnr
from latent4d.ema import EMAMixin
from latent4d.errors import ConfigError
from latent4d.module import LatentModule

log = logging.getLogger(__name__)

RECON_LOSSES = ("l1", "bce", "mse")


class BernoulliAEModule(LatentModule):
    """Trains a :class:`BernoulliAutoencoder` on batches ``(x (B, C, ...) in [0, 1], labels)``.

    loss: ``l1`` (on the sigmoid output, the paper's), ``bce`` (on the logits; the natural choice for
    occupancy) or ``mse``; entropy_weight: weight of the optional ``mean(p (1 - p))`` regulariser that
    pushes bit probabilities away from 0.5; gan_weight > 0 adds a hinge patch-GAN term (2D only) from
    optimiser step ``gan_start`` on (manual optimisation with a second optimiser for the discriminator).
    accumulate_grad_batches: k > 1 sums the gradients of k batches (losses scaled by 1/k) before each
    optimiser step of the GAN autoencoder, which Lightning's ``trainer.accumulate_grad_batches`` cannot
    do under manual optimisation (that setting is refused with this fix; without the GAN term use the
    trainer's).

    Logged: ``{val,test}/loss``, ``{val,test}/psnr`` (images) or ``{val,test}/iou`` (grids), and
    ``{val,test}/bit_usage`` (fraction of bits not constant over the split, thresholded bits) plus
    ``{val,test}/bit_entropy``.
    """

    def __init__(self, autoencoder: BernoulliAutoencoder, lr: float = 1e-3, weight_decay: float = 0.0,
                 loss: str = "l1", entropy_weight: float = 0.0, pos_weight: float = 1.0,
                 gan_weight: float = 0.0, gan_start: int = 0, discriminator: PatchDiscriminator | None = None,
                 disc_lr: float | None = None, accumulate_grad_batches: int = 1):
        super().__init__()
        if loss not in RECON_LOSSES:
            raise ConfigError(f"unknown reconstruction loss '{loss}'; expected one of {', '.join(RECON_LOSSES)}")
        self.autoencoder = autoencoder
        self.lr, self.weight_decay, self.loss_name = lr, weight_decay, loss
        self.entropy_weight, self.pos_weight = entropy_weight, pos_weight
        self.gan_weight, self.gan_start = float(gan_weight), int(gan_start)
        if self.gan_weight > 0:
            if autoencoder.config.dims != 2:
                raise ConfigError("the patch-GAN term is for images (dims=2)")
            discriminator = discriminator or PatchDiscriminator(in_channels=autoencoder.config.in_channels)
        self.discriminator = discriminator if self.gan_weight > 0 else None
        self.disc_lr = disc_lr or lr
        self.automatic_optimization = self.discriminator is None
        self.accumulate_grad_batches = int(accumulate_grad_batches)
        if self.accumulate_grad_batches < 1:
            raise ConfigError(f"model.accumulate_grad_batches must be >= 1, got {accumulate_grad_batches}")
        if self.accumulate_grad_batches > 1 and self.automatic_optimization:
            raise ConfigError(f"model.accumulate_grad_batches={self.accumulate_grad_batches} is for the GAN "
                              "autoencoder (gan_weight > 0); without the GAN term use "
                              f"trainer.accumulate_grad_batches={self.accumulate_grad_batches}")
        self._usage: dict[str, BitUsage] = {}

    def configure_callbacks(self):
        # runs before Lightning validates the trainer: turn its refusal into the fix
        k = getattr(self._trainer, "accumulate_grad_batches", 1) if self._trainer is not None else 1
        if not self.automatic_optimization and k != 1:
            raise ConfigError(f"trainer.accumulate_grad_batches={k} cannot work with the GAN autoencoder "
                              f"(manual optimisation): use model.accumulate_grad_batches={k} instead "
                              "(and trainer.accumulate_grad_batches=1)")
        return []

    @property
    def is_volume(self) -> bool:
        return self.autoencoder.config.dims == 3

    def recon_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "bce":
            pw = torch.tensor(self.pos_weight, device=x.device) if self.pos_weight != 1.0 else None
            return F.binary_cross_entropy_with_logits(logits, x, pos_weight=pw)
        out = torch.sigmoid(logits)
        return (out - x).abs().mean() if self.loss_name == "l1" else ((out - x) ** 2).mean()

    def _losses(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.autoencoder(x)
        rec = self.recon_loss(out["logits"], x)
        p = out["probs"]
        ent = (p * (1 - p)).mean()
        loss = rec + self.entropy_weight * ent
        return loss, {"recon": rec, "p_entropy": ent, "logits": out["logits"]}

    def training_step(self, batch, batch_idx):
        x, _ = batch
        if self.automatic_optimization:
            loss, parts = self._losses(x)
            self.log("train/loss", loss, prog_bar=True)
            self.log("train/p_entropy", parts["p_entropy"])
            return loss
        return self._manual_step(x, batch_idx)

    def _window(self, batch_idx: int) -> tuple[int, bool]:
        """(optimiser step this batch contributes to, whether it closes its accumulation window: every
        ``accumulate_grad_batches`` batches and at the end of the epoch)."""
        k, n = self.accumulate_grad_batches, self.trainer.num_training_batches
        last = (batch_idx + 1) % k == 0 or batch_idx + 1 == n
        per_epoch = -(-int(n) // k) if n != float("inf") else 0
        return self.current_epoch * per_epoch + batch_idx // k, last

    def _manual_step(self, x: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """GAN autoencoder: reconstruction + generator loss for the autoencoder, hinge loss for the
        discriminator; gradients of ``accumulate_grad_batches`` batches summed (losses / k), then both
        optimisers step and zero. The generator term does not reach the discriminator's gradients."""
        opt_ae, opt_d = self.optimizers()
        k = self.accumulate_grad_batches
        step, last = self._window(batch_idx)
        use_gan = step >= self.gan_start
        loss, parts = self._losses(x)
        recon = torch.sigmoid(parts["logits"])
        if use_gan:
            self.toggle_optimizer(opt_ae)  # the discriminator is frozen for the generator term
            g_loss = -self.discriminator(recon).mean()
            loss = loss + self.gan_weight * g_loss
            self.log("train/g_loss", g_loss)
        self.manual_backward(loss / k)
        if use_gan:
            self.untoggle_optimizer(opt_ae)
            d_real = self.discriminator(x)
            d_fake = self.discriminator(recon.detach())
            d_loss = 0.5 * (F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean())
            self.manual_backward(d_loss / k)
            self.log("train/d_loss", d_loss)
        self._pending = not last
        if last:
            self._step_optimizers()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _step_optimizers(self) -> None:
        """Step each optimiser that holds gradients, then zero both."""
        for opt in self.optimizers():
            if any(p.grad is not None for g in opt.param_groups for p in g["params"]):
                opt.step()
            opt.zero_grad(set_to_none=True)

    def on_train_epoch_end(self):
        if not self.automatic_optimization:
            if getattr(self, "_pending", False):  # a stream that ended before its reported length
                self._step_optimizers()
                self._pending = False
            scheds = self.lr_schedulers()
            for s in scheds if isinstance(scheds, list) else [scheds] if scheds is not None else []:
                s.step()

    def _eval_step(self, batch, stage: str):
        x, _ = batch
        logits = self.autoencoder.encode(x)
        bits, p = self.autoencoder.quantize(logits, sample=False)
        rec_logits = self.autoencoder.decode_logits(bits)
        loss = self.recon_loss(rec_logits, x)
        rec = torch.sigmoid(rec_logits)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", sync_dist=True)
        if self.is_volume:
            self.log(f"{stage}/iou", iou(rec, x).mean(), sync_dist=True)
        else:
            self.log(f"{stage}/psnr", psnr(rec, x).mean(), sync_dist=True)
            self.log(f"{stage}/l1", (rec - x).abs().mean(), sync_dist=True)
        if self.autoencoder.config.quantize == "bernoulli":
            self._usage.setdefault(stage, BitUsage()).update(bits)

    def _eval_epoch_end(self, stage: str):
        usage = self._usage.pop(stage, None)
        if usage is not None and usage.count:
            res = usage.compute()
            self.log(f"{stage}/bit_usage", res["fraction_active"])
            self.log(f"{stage}/bit_entropy", res["mean_entropy"])

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self):
        self._eval_epoch_end("val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def on_test_epoch_end(self):
        self._eval_epoch_end("test")

    def configure_optimizers(self):
        epochs = max(1, self.trainer.max_epochs or 1)
        opt = torch.optim.AdamW(self.autoencoder.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=self.lr * 0.05)
        if self.discriminator is None:
            return {"optimizer": opt, "lr_scheduler": sched}
        opt_d = torch.optim.AdamW(self.discriminator.parameters(), lr=self.disc_lr, betas=(0.5, 0.9))
        return [opt, opt_d], [sched]


# ============================================================================= diffusion
class _LatentDiffusionBase(EMAMixin, LatentModule):
    """Shared: frozen autoencoder from ``autoencoder_path``, denoiser (+ EMA copy ``denoiser_ema``,
    :class:`latent4d.ema.EMAMixin`), warmup + cosine LR, label dropout for classifier-free guidance;
    exports the scheduler next to the networks."""

    input_mode = "bits"

    def __init__(self, denoiser, scheduler, autoencoder_path: str | None, lr: float, weight_decay: float,
                 label_dropout: float, ema_decay: float, warmup_steps: int, num_train_timesteps: int):
        super().__init__()
        from latent4d.binary.autoencoder import load_autoencoder
        from latent4d.binary.denoiser import LatentTransformer

        if not autoencoder_path:
            raise ConfigError("diffusion training needs a trained autoencoder: pass autoencoder_path=<AE run dir> "
                              "(train one first, e.g. `latent4d train experiment=binary/ae_digits`)")
        ae, _ = load_autoencoder(autoencoder_path)
        want = "bernoulli" if self.input_mode == "bits" else "none"
        if ae.config.quantize != want:
            raise ConfigError(f"{type(self).__name__} needs an autoencoder with quantize={want!r}, but "
                              f"'{autoencoder_path}' has quantize={ae.config.quantize!r}")
        for p in ae.parameters():
            p.requires_grad_(False)
        self.autoencoder = ae.eval()
        C, *grid = ae.latent_shape
        if not isinstance(denoiser, LatentTransformer):  # a Hydra partial: complete it from the autoencoder
            denoiser = denoiser(latent_channels=C, latent_shape=tuple(grid), input_mode=self.input_mode,
                                num_train_timesteps=num_train_timesteps)
        dc = denoiser.config
        if dc.latent_channels != C or tuple(dc.latent_shape) != tuple(grid):
            raise ConfigError(f"denoiser latents ({dc.latent_channels}, {tuple(dc.latent_shape)}) do not match the "
                              f"autoencoder's ({C}, {tuple(grid)})")
        if dc.input_mode != self.input_mode or dc.num_train_timesteps != num_train_timesteps:
            raise ConfigError(f"denoiser input_mode/num_train_timesteps ({dc.input_mode}, {dc.num_train_timesteps})"
                              f" do not match the diffusion ({self.input_mode}, {num_train_timesteps})")
        self.denoiser = denoiser
        self.init_ema(ema_decay)
        self.scheduler = scheduler
        self.lr, self.weight_decay = lr, weight_decay
        self.label_dropout, self.warmup_steps = label_dropout, int(warmup_steps)
        self.autoencoder_path = str(autoencoder_path)

    @property
    def eval_denoiser(self):
        return self.eval_network()

    def setup(self, stage: str | None = None) -> None:
        dm = self._trainer.datamodule if self._trainer is not None else None
        if dm is None or not hasattr(dm, "num_classes"):
            return
        dm.setup(stage)
        n = dm.num_classes
        if n and self.denoiser.config.num_classes not in (0, n):
            raise ConfigError(f"the data has {n} classes but the denoiser was configured with "
                              f"num_classes={self.denoiser.config.num_classes}")

    def train_labels(self, y: torch.Tensor) -> torch.Tensor | None:
        if self.denoiser.config.num_classes == 0:
            return None
        drop = torch.rand(y.shape, device=y.device) < self.label_dropout
        return torch.where(drop | (y < 0), torch.full_like(y, -1), y)

    def train(self, mode: bool = True):
        super().train(mode)
        self.autoencoder.eval()  # frozen: keep eval-mode behaviour (thresholded bits)
        return self

    def export(self, out_dir):
        import shutil
        from pathlib import Path

        written = super().export(out_dir)
        out = Path(out_dir)
        tmp, final = out / ".scheduler.tmp", out / "scheduler"
        if tmp.exists():
            shutil.rmtree(tmp)
        self.scheduler.save_pretrained(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        written["scheduler"] = final
        return written

    def configure_optimizers(self):
        params = [p for p in self.denoiser.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.lr, betas=(0.9, 0.99))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = min(self.warmup_steps, total // 2)

        def lr_lambda(step: int) -> float:
            import math

            if step < warm:
                return (step + 1) / max(1, warm)
            prog = (step - warm) / max(1, total - warm)
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, prog)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class BinaryDiffusionModule(_LatentDiffusionBase):
    """Bernoulli diffusion on the bits of a frozen :class:`BernoulliAutoencoder`.

    Batches ``(bits (B, C, *grid), labels (B,))`` from :class:`latent4d.binary.data.LatentDataModule`.
    Training: ``t ~ U{1..T}``, ``x_t = scheduler.add_noise(x_0, t)``, the denoiser predicts the flip
    ``x_0 XOR x_t``. Loss terms (the official implementation's, ZeWang95/BinaryLatentDiffusion):

    - ``loss``: ``bce`` (plain BCE on the flip), ``balanced`` (ones and zeros of the flip target weighted
      to equal total weight per batch) or ``focal`` (the official ``focal_loss`` with ``alpha=-1``: per
      sample, flips weighted by ``1 - f`` and keeps by ``f``, ``f`` the sample's flip fraction, times
      ``(1 - p_t)^focal_gamma``; ``focal_gamma=0`` is the released setting);
    - ``time_weighting``: ``mean`` (the released setting) or ``weighted`` (``1 - (t - 1) / T``);
    - ``aux_weight`` > 0 adds the variational-bound term: BCE between the model's reverse step
      ``p(x_{t-1} = 1 | x_t)`` (the scheduler's posterior under the predicted ``x_0``; at t = 1 the
      predicted ``x_0`` itself) and the true posterior ``q(x_{t-1} = 1 | x_t, x_0)``, same time weights.

    Labels are dropped with probability ``label_dropout`` for classifier-free guidance.

    ``calibration`` (``{steps, num_samples, temperatures, seed}`` or None): after testing, the sampling
    temperature whose codes come closest to the training codes (:mod:`latent4d.binary.calibrate`) is
    stored in the scheduler's ``sampling_temperature`` (the pipelines' default) and logged as
    ``test/sampling_temperature``.

    denoiser: a :class:`LatentTransformer` or a Hydra partial of it (the latent shape, input mode and T
    are then filled in from the autoencoder and the scheduler). The frozen autoencoder is a child, so a
    run exports ``models/{autoencoder, denoiser, denoiser_ema, scheduler}`` and is self-contained.
    """

    input_mode = "bits"

    def __init__(self, denoiser, scheduler, autoencoder_path: str | None = None, lr: float = 5e-4,
                 weight_decay: float = 0.01, loss: str = "bce", label_dropout: float = 0.1,
                 ema_decay: float = 0.999, warmup_steps: int = 200, focal_gamma: float = 0.0,
                 time_weighting: str = "mean", aux_weight: float = 0.0, calibration: dict | None = None):
        if loss not in ("bce", "balanced", "focal"):
            raise ConfigError(f"unknown diffusion loss '{loss}'; expected bce, balanced or focal")
        if time_weighting not in ("mean", "weighted"):
            raise ConfigError(f"unknown time_weighting '{time_weighting}'; expected mean or weighted")
        if float(aux_weight) < 0 or float(focal_gamma) < 0:
            raise ConfigError(f"aux_weight and focal_gamma must be >= 0, got {aux_weight}, {focal_gamma}")
        calib, T = _check_calibration(calibration), int(scheduler.config.num_train_timesteps)
        if calib is not None and calib.get("steps", 16) > T:
            raise ConfigError(f"model.calibration.steps={calib.get('steps', 16)} is more than the diffusion's "
                              f"T={T}: set model.calibration.steps to at most {T}")
        super().__init__(denoiser, scheduler, autoencoder_path, lr, weight_decay, label_dropout, ema_decay,
                         warmup_steps, T)
        self.loss_name, self.focal_gamma = loss, float(focal_gamma)
        self.time_weighting, self.aux_weight = time_weighting, float(aux_weight)
        self.calibration = calib

    def flip_loss(self, logits: torch.Tensor, target: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """The flip loss of logits / flip targets (B, C, *grid) at timesteps ``t`` (B,) (see the class)."""
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        w = self._time_weights(t, bce)
        if self.loss_name == "bce":
            return (w * bce).mean()
        if self.loss_name == "focal":
            f = target.flatten(1).mean(1).view(-1, *([1] * (target.dim() - 1)))
            alpha = (1 - f) * target + f * (1 - target)
            p = torch.sigmoid(logits)
            miss = (1 - (p * target + (1 - p) * (1 - target))).clamp(1e-6, 1 - 1e-6)
            return (w * alpha * bce * miss ** self.focal_gamma).mean()
        pos = target.mean().clamp(1e-4, 1 - 1e-4)
        wb = target * (1 - pos) + (1 - target) * pos
        return (w * wb * bce).sum() / wb.sum()

    def _time_weights(self, t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | float:
        if t is None or self.time_weighting == "mean":
            return 1.0
        T = int(self.scheduler.config.num_train_timesteps)
        return (1.0 - (t.to(like.dtype) - 1.0) / T).view(-1, *([1] * (like.dim() - 1)))

    def aux_loss(self, logits: torch.Tensor, xt: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """BCE of the model's ``p(x_{t-1} = 1 | x_t)`` against ``q(x_{t-1} = 1 | x_t, x_0)`` (time-weighted)."""
        p_flip = torch.sigmoid(logits)
        p0 = xt * (1 - p_flip) + (1 - xt) * p_flip
        post = self.scheduler.posterior_probs_batched(p0, xt, t, t - 1)
        true = self.scheduler.posterior_probs_batched(x0, xt, t, t - 1)
        bce = F.binary_cross_entropy(post.clamp(1e-6, 1 - 1e-6), true.clamp(0.0, 1.0), reduction="none")
        return (self._time_weights(t, bce) * bce).mean()

    def _noised(self, x0: torch.Tensor, generator: torch.Generator | None = None):
        T = int(self.scheduler.config.num_train_timesteps)
        t = torch.randint(1, T + 1, (x0.shape[0],), generator=generator, device="cpu").to(x0.device)
        xt = self.scheduler.add_noise(x0, t, generator=generator)
        return t, xt, (xt != x0).float()

    def training_step(self, batch, batch_idx):
        x0, y = batch
        t, xt, target = self._noised(x0)
        logits = self.denoiser(xt, t, self.train_labels(y))
        loss = self.flip_loss(logits, target, t)
        if self.aux_weight > 0:
            aux = self.aux_loss(logits, xt, x0, t)
            self.log("train/aux_loss", aux)
            loss = loss + self.aux_weight * aux
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _eval_step(self, batch, batch_idx, stage: str):
        x0, y = batch
        g = torch.Generator().manual_seed(1000 + batch_idx)  # same noise every evaluation
        t, xt, target = self._noised(x0.cpu(), g)
        t, xt, target = t.to(x0.device), xt.to(x0.device), target.to(x0.device)
        labels = y if self.denoiser.config.num_classes else None
        logits = self.eval_denoiser(xt, t, labels)
        self.log(f"{stage}/loss", F.binary_cross_entropy_with_logits(logits, target), prog_bar=stage == "val",
                 sync_dist=True)
        p0 = torch.where(xt > 0.5, 1 - torch.sigmoid(logits), torch.sigmoid(logits))
        self.log(f"{stage}/x0_accuracy", ((p0 > 0.5).float() == x0).float().mean(), sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, batch_idx, "test")

    def on_test_epoch_end(self) -> None:
        """After testing (the weights that are exported): calibrate the sampling temperature on the
        training codes (:mod:`latent4d.binary.calibrate`) when ``calibration`` is set; the result goes into
        the scheduler's ``sampling_temperature`` (exported with it) and the test metrics."""
        dm = self._trainer.datamodule if self._trainer is not None else None
        if self.calibration is None or dm is None or not hasattr(dm, "arrays"):
            return
        import time

        from latent4d.binary.calibrate import DenoiserSampler, calibrate_temperature

        codes, labels = dm.arrays("train")
        pipe = DenoiserSampler(self.eval_denoiser.eval(), self.scheduler)
        t0 = time.perf_counter()
        best, fds = calibrate_temperature(pipe, codes, labels, **self.calibration)
        self.scheduler.register_to_config(sampling_temperature=best)
        log.info("sampling temperature %.3g (code FD to the %d training codes by temperature: %s) in %.0f s",
                 best, len(codes), ", ".join(f"{t:g}: {v:.3f}" for t, v in fds.items()),
                 time.perf_counter() - t0)
        self.log("test/sampling_temperature", best)
        self.log("test/code_fd", fds[best])


def _check_calibration(calibration) -> dict | None:
    """``calibration`` (None, or a mapping of :func:`~latent4d.binary.calibrate.calibrate_temperature`'s
    ``steps`` / ``temperatures`` / ``num_samples`` / ``seed``) as a plain dict; ConfigError on other keys."""
    if calibration is None or calibration is False:
        return None
    from omegaconf import DictConfig, OmegaConf

    cfg = OmegaConf.to_container(calibration) if isinstance(calibration, DictConfig) else calibration
    if not isinstance(cfg, dict):
        raise ConfigError(f"model.calibration must be a mapping or null, got {calibration!r}")
    allowed = {"steps", "temperatures", "num_samples", "seed"}
    bad = sorted(set(cfg) - allowed)
    if bad:
        raise ConfigError(f"model.calibration: unknown keys {bad}; expected some of {sorted(allowed)}")
    out = dict(cfg)
    try:
        if "temperatures" in out:
            out["temperatures"] = [float(t) for t in out["temperatures"]]
        for k in ("steps", "num_samples", "seed"):
            if k in out:
                out[k] = int(out[k])
    except (TypeError, ValueError):
        raise ConfigError(f"model.calibration: expected numbers (temperatures: a list of them), got {cfg}") from None
    if "temperatures" in out and (not out["temperatures"] or any(not 0 < t < float("inf") for t in out["temperatures"])):
        raise ConfigError(f"model.calibration.temperatures must be positive numbers, got {out['temperatures']}")
    for k in ("steps", "num_samples"):
        if k in out and out[k] < 1:
            raise ConfigError(f"model.calibration.{k} must be >= 1, got {out[k]}")
    return out


class GaussianDiffusionModule(_LatentDiffusionBase):
    """The benchmark's baseline: Gaussian diffusion (diffusers ``DDPMScheduler`` for training, DDIM for
    sampling) on the continuous latents of the same autoencoder trained with ``quantize=none``,
    with the same denoiser (``input_mode=continuous``). Latents are standardised per channel with
    statistics of the training split, stored in the denoiser's ``latent_shift`` / ``latent_scale``
    buffers (saved with it). Loss: MSE on the scheduler's ``prediction_type`` (epsilon / v_prediction).
    ``calibration`` is checked and otherwise unused: DDIM (eta = 0) has no sampling temperature, and the
    presets shared by both diffusion experiments may set it.
    """

    input_mode = "continuous"

    def __init__(self, denoiser, scheduler, autoencoder_path: str | None = None, lr: float = 5e-4,
                 weight_decay: float = 0.01, label_dropout: float = 0.1, ema_decay: float = 0.999,
                 warmup_steps: int = 200, calibration: dict | None = None):
        _check_calibration(calibration)
        super().__init__(denoiser, scheduler, autoencoder_path, lr, weight_decay, label_dropout, ema_decay,
                         warmup_steps, int(scheduler.config.num_train_timesteps))

    def on_fit_start(self) -> None:
        dm = self.trainer.datamodule
        z = dm.arrays("train")[0]
        dims = [0] + list(range(2, z.dim()))
        shift, scale = z.mean(dims), z.std(dims).clamp_min(1e-3)
        for net in (self.denoiser, self.denoiser_ema):
            if net is not None:
                net.latent_shift.copy_(shift.to(net.latent_shift.device))
                net.latent_scale.copy_(scale.to(net.latent_scale.device))

    def _normalise(self, z: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (z.dim() - 2)
        return (z - self.denoiser.latent_shift.view(shape)) / self.denoiser.latent_scale.view(shape)

    def _loss(self, net, z: torch.Tensor, labels, generator: torch.Generator | None = None) -> torch.Tensor:
        x0 = self._normalise(z)
        T = int(self.scheduler.config.num_train_timesteps)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device) if generator is not None \
            else torch.randn_like(x0)
        t = torch.randint(0, T, (x0.shape[0],), generator=generator).to(x0.device)
        xt = self.scheduler.add_noise(x0, noise, t)
        pred = net(xt, t, labels)
        kind = self.scheduler.config.prediction_type
        target = noise if kind == "epsilon" else self.scheduler.get_velocity(x0, noise, t) if kind == "v_prediction" \
            else x0
        return F.mse_loss(pred, target)

    def training_step(self, batch, batch_idx):
        z, y = batch
        loss = self._loss(self.denoiser, z, self.train_labels(y))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _eval_step(self, batch, batch_idx, stage):
        z, y = batch
        labels = y if self.denoiser.config.num_classes else None
        loss = self._loss(self.eval_denoiser, z, labels, torch.Generator().manual_seed(1000 + batch_idx))
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, batch_idx, "test")
