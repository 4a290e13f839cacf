"""LightningModules of the motion family: shape AE, deformation AE, shape / deformation diffusion.

Losses (Motion2VecSets / 3DShape2VecSet):
* shape AE: ``BCE(uniform) + near_weight * BCE(near) + kl_weight * KL`` (KL averaged over the
  latent set's entries and the batch, as in the 3DShape2VecSet code); paper weights 0.1 and 1e-3;
* deformation AE: ``MSE(predicted target positions, true target positions) + kl_weight * KL``;
* diffusion: EDM's weighted denoising loss (:class:`latent4d.diffusion.edm.EDM`).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from latent4d.ema import EMAMixin
from latent4d.errors import ConfigError
from latent4d.module import LatentModule
from latent4d.motion.deform import DeformVecSetAE
from latent4d.motion.vecset import ShapeVecSetAE


def load_autoencoder(cls, run: str | Path):
    """The trained autoencoder ``cls`` of a motion run (``<run>/models/ae``, or its own exported
    folder), found by :func:`latent4d.runs.network_folder` and loaded through
    :func:`latent4d.trust.load_network` (checked as untrusted data), in eval mode on the CPU."""
    from latent4d.runs import network_folder
    from latent4d.trust import load_network

    return load_network(cls, network_folder(run, "ae", cls.__name__, "motion")).eval()


def warmup_cosine(optimizer, total_steps: int, warmup: int, min_ratio: float = 0.05, progress=None):
    """LambdaLR: linear warm-up over ``warmup`` steps, cosine decay to ``min_ratio`` at ``total_steps``.

    ``progress() -> float`` (optional, e.g. the fraction of a wall-clock budget spent) moves the decay
    along when it is ahead of the step count, so that a run stopped by time still ends at a low rate.
    """
    total_steps = max(1, int(total_steps))
    warmup = max(0, min(int(warmup), total_steps - 1))

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        p = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if progress is not None:
            p = max(p, min(1.0, float(progress())))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def time_progress(trainer):
    """``progress()`` for :func:`warmup_cosine`: the fraction of ``trainer.max_time`` spent training
    (from Lightning's Timer callback), or None when the run has no time limit."""
    from pytorch_lightning.callbacks import Timer

    timer = next((c for c in getattr(trainer, "callbacks", []) if isinstance(c, Timer)), None)
    if timer is None or timer.time_remaining() is None:
        return None

    def progress() -> float:
        done = timer.time_elapsed()
        left = timer.time_remaining() or 0.0
        return done / max(done + left, 1e-9)

    return progress


class _OptimMixin:
    """AdamW + warm-up/cosine over the run's steps; with ``trainer.max_time`` set, the cosine follows
    whichever of steps and wall-clock time is further along (a time-limited run still anneals)."""

    lr: float
    weight_decay: float
    warmup_steps: int

    def configure_optimizers(self):
        params = [p for n in self.trainable for p in getattr(self, n).parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay, betas=(0.9, 0.99))
        total = self.trainer.estimated_stepping_batches if self.trainer is not None else 1000
        prog = time_progress(self.trainer) if self.trainer is not None else None
        sched = warmup_cosine(
            opt, int(total) if math.isfinite(total) else 10000, self.warmup_steps, progress=prog
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def occupancy_iou(logits: torch.Tensor, occ: torch.Tensor) -> torch.Tensor:
    """(B,) IoU of ``logits > 0`` against boolean / {0, 1} ``occ`` (B, Q); 1 where both are empty."""
    pred, gt = logits > 0, occ > 0.5
    inter = (pred & gt).sum(1).float()
    union = (pred | gt).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


class _AutoencoderModule(_OptimMixin, LatentModule):
    """Shared steps of the autoencoder modules: ``_step(batch, prefix, sample)`` computes, logs and
    returns the loss (posterior samples while training, posterior means for validation and test)."""

    trainable = ("ae",)

    def __init__(
        self,
        ae,
        lr: float = 5e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        kl_weight: float = 1e-3,
    ):
        """AdamW's ``lr`` and ``weight_decay``, ``warmup_steps`` of the warm-up/cosine schedule
        (:func:`warmup_cosine`), ``kl_weight`` of the KL term of the loss."""
        super().__init__()
        self.ae = ae
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.kl_weight = kl_weight

    def _step(self, batch, prefix: str, sample: bool) -> torch.Tensor:
        raise NotImplementedError

    def _log_all(self, prefix: str, values: dict[str, torch.Tensor], batch_size: int) -> None:
        self.log_dict(
            {f"{prefix}/{k}": v for k, v in values.items()},
            prog_bar=prefix != "test",
            batch_size=batch_size,
            sync_dist=prefix != "train",
        )

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train", sample=True)

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val", sample=False)

    def test_step(self, batch, batch_idx):
        self._step(batch, "test", sample=False)


class ShapeAEModule(_AutoencoderModule):
    """Trains :class:`ShapeVecSetAE` on :class:`~latent4d.motion.data.ShapeFrameDataset` batches."""

    def __init__(self, ae: ShapeVecSetAE, near_weight: float = 0.1, **train):
        """``near_weight`` of the near-surface BCE; ``train``: ``lr``, ``weight_decay``, ``warmup_steps``,
        ``kl_weight`` (see :class:`_AutoencoderModule`)."""
        super().__init__(ae, **train)
        self.near_weight = near_weight

    def _step(self, batch, prefix: str, sample: bool):
        out = self.ae(batch["points"], batch["queries"], sample=sample)
        logits, occ, near = out["logits"], batch["occ"], batch["near"]
        bce = F.binary_cross_entropy_with_logits(logits, occ, reduction="none")
        near_f = near.float()
        loss_vol = (bce * (1 - near_f)).sum() / (1 - near_f).sum().clamp_min(1)
        loss_near = (bce * near_f).sum() / near_f.sum().clamp_min(1)
        kl = out["kl"].mean()
        loss = loss_vol + self.near_weight * loss_near + self.kl_weight * kl
        uni = ~near
        iou = occupancy_iou(logits.masked_fill(~uni, -1.0), occ * uni).mean()
        self._log_all(
            prefix,
            {"loss": loss, "bce_vol": loss_vol, "bce_near": loss_near, "kl": kl, "iou": iou},
            logits.shape[0],
        )
        return loss


def bbox_diagonal(points: torch.Tensor) -> torch.Tensor:
    """(B,) bounding-box diagonal of clouds (B, N, 3)."""
    return (points.amax(1) - points.amin(1)).norm(dim=-1)


class DeformAEModule(_AutoencoderModule):
    """Trains :class:`DeformVecSetAE` on :class:`~latent4d.motion.data.DeformPairDataset` batches.

    Logged ``corr_l2`` is the mean Euclidean error of the decoded target positions (normalised
    units) and ``corr_rel`` the same divided by the target's bounding-box diagonal.
    """

    def _step(self, batch, prefix: str, sample: bool):
        out = self.ae(batch["source"], batch["target"], batch["query"], sample=sample)
        pred, gt = out["positions"], batch["query_target"]
        mse = (pred - gt).square().sum(-1).mean()
        kl = out["kl"].mean()
        loss = mse + self.kl_weight * kl
        err = (pred - gt).norm(dim=-1).mean(1)
        rel = (err / bbox_diagonal(gt)).mean()
        self._log_all(
            prefix,
            {"loss": loss, "mse": mse, "kl": kl, "corr_l2": err.mean(), "corr_rel": rel},
            pred.shape[0],
        )
        return loss


class _DiffusionBase(_OptimMixin, EMAMixin, LatentModule):
    """Shared EDM training logic: ``self.denoiser`` is trained, the autoencoders are frozen passengers
    (exported with the run so that inference needs only the diffusion run directories). Subclasses
    name their frozen networks (``frozen``), set the denoiser's latent statistics and give the
    conditioning of a batch (:meth:`condition`); the steps are shared.

    The denoiser's EMA copy ``denoiser_ema`` (:class:`latent4d.ema.EMAMixin`) is what validation and
    test measure, is exported as ``models/denoiser_ema`` and is what the pipeline samples with by default.
    """

    trainable = ("denoiser",)
    frozen: tuple[str, ...] = ()

    def __init__(
        self,
        denoiser,
        autoencoders: dict,
        edm: dict | None = None,
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        ema_decay: float = 0.999,
        ema_warmup: float = 10.0,
    ):
        """``autoencoders``: the frozen networks by attribute name; ``edm``: keyword arguments of
        :class:`~latent4d.diffusion.edm.EDM` (None: its defaults); AdamW's ``lr`` and ``weight_decay``,
        ``warmup_steps`` of the warm-up/cosine schedule (:func:`warmup_cosine`); ``ema_decay`` (0: no EMA
        copy) and ``ema_warmup`` of the denoiser's EMA (:func:`latent4d.ema.ema_decay_at`)."""
        super().__init__()
        self.denoiser = denoiser
        for name, ae in autoencoders.items():
            setattr(self, name, ae)
            self._freeze(ae)
        self.edm = self._edm(edm)
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.register_buffer("_stats_ready", torch.tensor(False))
        self.init_ema(ema_decay, ema_warmup)

    def _edm(self, edm: dict | None):
        from latent4d.diffusion.edm import EDM

        return EDM(**dict(edm or {}))

    def _freeze(self, *nets):
        for n in nets:
            n.eval()
            for p in n.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "train_latents") or self.stats_ready:
            return
        lat = dm.train_latents()
        self.set_latent_stats(lat)
        self.sync_ema_buffers()

    @property
    def stats_ready(self) -> bool:
        return bool(self._stats_ready.item())

    def set_latent_stats(self, latents: dict) -> None:
        raise NotImplementedError

    def condition(self, batch: dict) -> dict:
        """The denoiser's conditioning inputs of a batch (keyword arguments)."""
        raise NotImplementedError

    def _fixed(self, batch_idx: int, n: int, like: torch.Tensor):
        g = torch.Generator(device="cpu").manual_seed(1234 + batch_idx)
        sigma = (torch.randn(n, generator=g) * self.edm.p_std + self.edm.p_mean).exp().to(like.device)
        noise = torch.randn(like.shape, generator=g).to(like.device)
        return sigma, noise

    def _loss(self, batch, sigma=None, noise=None, net=None) -> torch.Tensor:
        """Mean EDM loss of ``net`` (default: the trained denoiser) on a batch."""
        net = self.denoiser if net is None else net
        x0 = net.normalize(batch["x0"])
        return self.edm.loss(net, x0, sigma=sigma, noise=noise, **self.condition(batch)).mean()

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["x0"]))
        return loss

    def validation_step(self, batch, batch_idx):
        sigma, noise = self._fixed(batch_idx, len(batch["x0"]), batch["x0"])
        self.log(
            "val/loss",
            self._loss(batch, sigma, noise, self.eval_network()),
            prog_bar=True,
            batch_size=len(batch["x0"]),
            sync_dist=True,
        )

    def test_step(self, batch, batch_idx):
        sigma, noise = self._fixed(batch_idx, len(batch["x0"]), batch["x0"])
        loss = self._loss(batch, sigma, noise, self.eval_network())
        self.log("test/loss", loss, batch_size=len(batch["x0"]), sync_dist=True)


#: the latent sizes a denoiser shares with its autoencoder: denoiser config key -> autoencoder config key
LATENT_SIZES = {"num_latents": "num_latents", "latent_channels": "latent_channels"}


def check_latent_sizes(denoiser, ae, run: str, keys: dict[str, str] = LATENT_SIZES) -> None:
    """A denoiser's latent sizes must be those of the autoencoder ``ae`` (of run ``run``) it is trained
    on: ``keys`` maps the denoiser's config keys to the autoencoder's; a :class:`ConfigError` otherwise."""
    c, a = denoiser.config, ae.config
    bad = [f"{k}={c[k]} (autoencoder: {a[theirs]})" for k, theirs in keys.items() if c[k] != a[theirs]]
    if bad:
        raise ConfigError(
            f"{type(denoiser).__name__}: {', '.join(bad)} do not match the autoencoder of '{run}'; "
            "set motion_latents.* to the sizes the autoencoder runs were trained with "
            "(conf/model/motion_latents.yaml)"
        )


class ShapeDiffusionModule(_DiffusionBase):
    """EDM training of :class:`~latent4d.motion.denoiser.ShapeDenoiser` on frame latents of a frozen shape AE."""

    frozen = ("shape_ae",)

    def __init__(self, denoiser, shape_ae_run: str, **train):
        """``train``: ``edm``, ``lr``, ``weight_decay``, ``warmup_steps``, ``ema_decay``, ``ema_warmup``
        (see :class:`_DiffusionBase`)."""
        sae = load_autoencoder(ShapeVecSetAE, shape_ae_run)
        check_latent_sizes(denoiser, sae, shape_ae_run)
        super().__init__(denoiser, {"shape_ae": sae}, **train)

    def set_latent_stats(self, latents: dict) -> None:
        self.denoiser.stats.set_stats(torch.as_tensor(latents["shape"]))
        self._stats_ready.fill_(True)

    def condition(self, batch: dict) -> dict:
        return {"obs": batch["obs"], "corresponding": batch["corresponding"]}


class DeformDiffusionModule(_DiffusionBase):
    """EDM training of :class:`~latent4d.motion.denoiser.DeformDenoiser` on deformation latents of a
    frozen deformation AE, conditioned on shape latents of a frozen shape AE and observations."""

    frozen = ("shape_ae", "deform_ae")

    def __init__(self, denoiser, shape_ae_run: str, deform_ae_run: str, **train):
        """``train``: ``edm``, ``lr``, ``weight_decay``, ``warmup_steps``, ``ema_decay``, ``ema_warmup``
        (see :class:`_DiffusionBase`)."""
        sae = load_autoencoder(ShapeVecSetAE, shape_ae_run)
        dae = load_autoencoder(DeformVecSetAE, deform_ae_run)
        check_latent_sizes(denoiser, dae, deform_ae_run)
        check_latent_sizes(denoiser, sae, shape_ae_run, {"shape_channels": "latent_channels"})
        super().__init__(denoiser, {"shape_ae": sae, "deform_ae": dae}, **train)

    def on_fit_start(self) -> None:
        """Refuse ``data.train_frames`` with a frame embedding (the drawn frames would take the embeddings of
        window positions 1..k, not their own), then set the latent statistics."""
        dm = getattr(self.trainer, "datamodule", None)
        k = getattr(dm, "hparams", {}).get("train_frames") if dm is not None else None
        if k and getattr(self.denoiser, "frame_embed", None) is not None:
            raise ConfigError(
                f"data.train_frames={k} draws random frames of each window, but the denoiser has a learned "
                "frame embedding, which would give them the wrong positions: set "
                "model.denoiser.frame_embedding=false (as the official model) or data.train_frames=null"
            )
        super().on_fit_start()

    def set_latent_stats(self, latents: dict) -> None:
        self.denoiser.stats.set_stats(torch.as_tensor(latents["deform"]))
        self.denoiser.shape_stats.set_stats(torch.as_tensor(latents["shape"]))
        self._stats_ready.fill_(True)

    def condition(self, batch: dict) -> dict:
        return {"shape_latents": batch["shape"], "obs": batch["obs"], "corresponding": batch["corresponding"]}
