"""LightningModules of the hair family: strand-VAE and hairstyle-VAE training."""

from __future__ import annotations

import torch

from latent4d.hair.metrics import curvature_error, position_error, posterior_stats, summarize_errors
from latent4d.hair.strand_vae import StrandVAE, kl_divergence, strand_losses
from latent4d.module import LatentModule


def _one_cycle(opt, lr: float, total_steps, min_lr_ratio: float):
    """One-cycle schedule (5 % warm-up, cosine decay to ``lr * min_lr_ratio``) stepped per batch;
    a constant learning rate for runs too short for one (a few steps)."""
    total = int(total_steps) if total_steps is not None and total_steps != float("inf") else 0
    if total < 8:
        return opt
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=max(0.05, 2.0 / total),
                                                final_div_factor=1.0 / min_lr_ratio / 25.0)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class StrandVAEModule(LatentModule):
    """Strand-VAE training: ``w_position * L1(pos) + w_direction * (1 - cos) + w_curvature * curvature
    + w_kl * KL`` (DiffLocks weights by default, positions in units of ``position_unit`` metres),
    AdamW + one-cycle schedule, KL warm-up over ``kl_warmup_steps``.

    Logs ``val/loss``, ``val/pos_err_mm``; the test logs ``test/pos_err_mm``, ``test/pos_err_p95_mm``
    and ``test/curv_err`` (1/m) of posterior-mean reconstructions.
    """

    def __init__(self, strand_vae: StrandVAE, lr: float = 1e-3, weight_decay: float = 0.0,
                 w_position: float = 0.5, w_direction: float = 1.0, w_curvature: float = 20.0, w_kl: float = 6e-4,
                 position_unit: float = 0.001, kl_warmup_steps: int = 500, min_lr_ratio: float = 0.02):
        super().__init__()
        self.strand_vae = strand_vae
        self.save_hyperparameters(ignore=["strand_vae"])
        self._test: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _loss(self, x: torch.Tensor, sample: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        hp = self.hparams
        out = self.strand_vae(x, sample=sample)
        parts = strand_losses(out["recon"], x, hp.position_unit)
        parts["kl"] = kl_divergence(out["mu"], out["logvar"])
        warm = min(1.0, (self.global_step + 1) / max(1, hp.kl_warmup_steps)) if self.training else 1.0
        loss = (hp.w_position * parts["position"] + hp.w_direction * parts["direction"]
                + hp.w_curvature * parts["curvature"] + warm * hp.w_kl * parts["kl"])
        return loss, parts, out["recon"]

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss, parts, _ = self._loss(x, sample=True)
        self.log("train/loss", loss, prog_bar=True)
        for k, v in parts.items():
            self.log(f"train/{k}", v)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        loss, parts, recon = self._loss(x, sample=False)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)
        self.log("val/pos_err_mm", position_error(recon, x).mean() * 1000, prog_bar=True, sync_dist=True)
        self.log("val/kl", parts["kl"], sync_dist=True)

    def on_test_epoch_start(self) -> None:
        self._test = []

    def test_step(self, batch, batch_idx):
        (x,) = batch
        recon = self.strand_vae(x, sample=False)["recon"]
        self._test.append((position_error(recon, x).detach().cpu(), curvature_error(recon, x).detach().cpu()))

    def on_test_epoch_end(self) -> None:
        if not self._test:
            return
        err = torch.cat([e for e, _ in self._test])
        curv = torch.cat([c for _, c in self._test])
        for k, v in summarize_errors(err, curv).items():
            self.log(f"test/{k}", v, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(self.strand_vae.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        return _one_cycle(opt, hp.lr, self.trainer.estimated_stepping_batches, hp.min_lr_ratio)


class StyleVAEModule(LatentModule):
    """Hairstyle-VAE training on guide maps, with a frozen strand-VAE for a strand-space loss.

    Loss: ``w_latent * MSE(standardised latents) + w_presence * BCE(presence) + w_strand * L1(decoded
    guide strands, mm) + w_kl * KL`` over scalp texels (KL per dimension floored at ``kl_free_bits`` nats
    when > 0: free bits); the strand term decodes ``strand_samples``
    random texels per map with the frozen strand decoder (predicted vs. target latents).
    The attribute model (length / curliness / volume regressed on style latents) is refitted at every
    validation from the epoch's training latents, so every checkpoint carries one.
    Logs ``val/guide_err_mm`` (decoded guides vs. ground-truth guide strands) and the same for test,
    plus ``test/guide_err_vs_strand_vae_mm`` (vs. the strand-VAE reconstruction of the same guides).
    """

    def __init__(self, style_vae, strand_vae_path: str, lr: float = 1e-3, weight_decay: float = 0.0,
                 w_latent: float = 1.0, w_presence: float = 0.1, w_strand: float = 0.05, w_kl: float = 5e-4,
                 strand_samples: int = 96, kl_warmup_steps: int = 300, ridge: float = 1e-2,
                 min_lr_ratio: float = 0.02, kl_free_bits: float = 0.0):
        super().__init__()
        from latent4d.errors import ConfigError
        from latent4d.hair.strand_vae import load_strand_vae

        if not strand_vae_path:
            raise ConfigError("the hairstyle-VAE needs a trained strand-VAE: add model.strand_vae_path=<run directory "
                              "of `latent4d train experiment=hair/strand_vae`>")
        self.style_vae = style_vae
        self.strand_vae = load_strand_vae(strand_vae_path).eval().requires_grad_(False)
        if self.strand_vae.config.latent_dim != style_vae.config.latent_channels:
            raise ConfigError(f"strand-VAE latent size {self.strand_vae.config.latent_dim} != hairstyle-VAE "
                              f"latent_channels {style_vae.config.latent_channels}")
        self.save_hyperparameters(ignore=["style_vae"])
        self._epoch_z: list[torch.Tensor] = []
        self._epoch_lv: list[torch.Tensor] = []
        self._epoch_y: list[torch.Tensor] = []
        self._test: list[torch.Tensor] = []
        self._test_sv: list[torch.Tensor] = []

    def train(self, mode: bool = True):
        super().train(mode)
        self.strand_vae.eval()  # frozen
        return self

    def export(self, out_dir):
        """Both networks, plus the latent bank of the training styles (``style_vae/latent_bank.safetensors``,
        see :mod:`latent4d.hair.retrieval`) when the trainer's datamodule is at hand."""
        written = super().export(out_dir)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "dataset") and "style_vae" in written:
            from latent4d.hair.retrieval import build_latent_bank

            was = self.training
            self.eval()
            build_latent_bank(self.strand_vae, self.style_vae, dm.dataset("train").tensors[0]).save(written["style_vae"])
            self.train(was)
        return written

    def setup(self, stage: str | None = None) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and dm is not None and getattr(dm, "latent_stats", None) is None and hasattr(dm, "setup"):
            dm.setup(stage)
        if stage == "fit" and dm is not None and getattr(dm, "latent_stats", None) is not None:
            mean, std = dm.latent_stats
            self.style_vae.latent_mean.copy_(mean)
            self.style_vae.latent_std.copy_(std)

    # ------------------------------------------------------------------ losses
    def _losses(self, maps: torch.Tensor, sample: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict]:
        hp = self.hparams
        vae = self.style_vae
        out = vae(maps, sample=sample)
        raw = out["raw"]
        mask = vae.mask[None]  # (1, H, W)
        pres_t = (maps[:, -1] > 0.5).to(maps.dtype)
        keep = mask * pres_t  # (B, H, W)
        tgt = (maps[:, :-1] - vae.latent_mean[None, :, None, None]) / vae.latent_std[None, :, None, None]
        se = (raw[:, :-1] - tgt).square().mean(1)
        latent = (se * keep).sum() / keep.sum().clamp_min(1)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(raw[:, -1], pres_t, reduction="none")
        presence = (bce * mask).sum() / (mask.sum() * len(maps)).clamp_min(1)
        parts = {"latent": latent, "presence": presence}
        if hp.w_strand > 0:
            B = maps.shape[0]
            flat_keep = keep.flatten(1)  # (B, HW)
            pred_lat = (raw[:, :-1] * vae.latent_std[None, :, None, None]
                        + vae.latent_mean[None, :, None, None]).flatten(2).transpose(1, 2)  # (B, HW, C)
            tgt_lat = maps[:, :-1].flatten(2).transpose(1, 2)
            cand = flat_keep.nonzero()
            if len(cand):
                take = cand[torch.randperm(len(cand), device=cand.device)[: hp.strand_samples * B]]
                p = self.strand_vae.decode(pred_lat[take[:, 0], take[:, 1]])
                with torch.no_grad():
                    t = self.strand_vae.decode(tgt_lat[take[:, 0], take[:, 1]])
                parts["strand"] = (p - t).abs().mean() * 1000.0
            else:
                parts["strand"] = raw.sum() * 0.0
        from latent4d.hair.strand_vae import kl_divergence

        parts["kl"] = kl_divergence(out["mu"], out["logvar"])
        kl = parts["kl"]
        if hp.kl_free_bits > 0:  # free bits (Kingma et al. 2016): no pressure on a dim's batch KL below the floor
            kl_d = 0.5 * (out["mu"].square() + out["logvar"].exp() - 1 - out["logvar"]).mean(0)
            kl = kl_d.clamp_min(hp.kl_free_bits).sum()
        warm = min(1.0, (self.global_step + 1) / max(1, hp.kl_warmup_steps)) if self.training else 1.0
        loss = (hp.w_latent * latent + hp.w_presence * presence + hp.w_strand * parts.get("strand", 0.0)
                + warm * hp.w_kl * kl)
        return loss, parts, out

    def training_step(self, batch, batch_idx):
        maps, labels, _ = batch
        loss, parts, out = self._losses(maps, sample=True)
        self.log("train/loss", loss, prog_bar=True)
        for k, v in parts.items():
            self.log(f"train/{k}", v)
        self._epoch_z.append(out["mu"].detach().cpu())
        self._epoch_lv.append(out["logvar"].detach().cpu())
        self._epoch_y.append(labels.detach().cpu())
        return loss

    def _guide_error(self, maps: torch.Tensor, idx: torch.Tensor, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-map mean guide position error (m) vs. ground truth and vs. the strand-VAE reconstruction."""
        from latent4d.hair.guides import gather_map

        vae = self.style_vae
        grid = vae.guide_grid
        mu, _ = vae.encode(maps)
        rec = gather_map(vae.decode(mu), grid)  # (B, V, C+1)
        tgt = gather_map(maps, grid)
        B, V, C1 = rec.shape
        pr = self.strand_vae.decode(rec[..., :-1].reshape(B * V, C1 - 1)).view(B, V, -1, 3)
        sv = self.strand_vae.decode(tgt[..., :-1].reshape(B * V, C1 - 1)).view(B, V, -1, 3)
        present = tgt[..., -1] > 0.5
        dm = getattr(self.trainer, "datamodule", None)
        gt_all = getattr(dm, "guide_local", {}).get(split) if dm is not None else None
        e_sv = ((pr - sv).norm(dim=-1).mean(-1) * present).sum(1) / present.sum(1).clamp_min(1)
        if gt_all is not None:
            gt = torch.as_tensor(gt_all[idx.cpu().numpy()], dtype=pr.dtype, device=pr.device)
            e_gt = ((pr - gt).norm(dim=-1).mean(-1) * present).sum(1) / present.sum(1).clamp_min(1)
        else:
            e_gt = e_sv
        return e_gt, e_sv

    def validation_step(self, batch, batch_idx):
        maps, labels, idx = batch
        loss, parts, _ = self._losses(maps, sample=False)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)
        e_gt, _ = self._guide_error(maps, idx, "val")
        self.log("val/guide_err_mm", e_gt.mean() * 1000, prog_bar=True, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if self._epoch_z:
            z, lv, y = torch.cat(self._epoch_z), torch.cat(self._epoch_lv), torch.cat(self._epoch_y)
            self._epoch_z, self._epoch_lv, self._epoch_y = [], [], []
            if len(z) > 4 and bool((y.std(0) > 0).all()):
                r2 = self.style_vae.fit_attributes(z, y, self.hparams.ridge)
                for k, v in r2.items():
                    self.log(f"val/attr_r2_{k}", v)
            self.style_vae.fit_prior(z)  # the sampling prior (a no-op without fitted_prior)
            stats = posterior_stats(z, lv)
            for k in ("kl", "active_units", "mu_var_active", "sigma2_active"):
                self.log(f"val/latent_{k}", float(stats[k]))

    def on_test_epoch_start(self) -> None:
        self._test, self._test_sv = [], []

    def test_step(self, batch, batch_idx):
        maps, _, idx = batch
        e_gt, e_sv = self._guide_error(maps, idx, "test")
        self._test.append(e_gt.cpu())
        self._test_sv.append(e_sv.cpu())

    def on_test_epoch_end(self) -> None:
        if self._test:
            self.log("test/guide_err_mm", torch.cat(self._test).mean() * 1000)
            self.log("test/guide_err_vs_strand_vae_mm", torch.cat(self._test_sv).mean() * 1000)

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(self.style_vae.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        return _one_cycle(opt, hp.lr, self.trainer.estimated_stepping_batches, hp.min_lr_ratio)
