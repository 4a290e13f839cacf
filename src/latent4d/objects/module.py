"""LightningModule training the shape and appearance latent databases together (auto-decoding).

Shape: clamped L1 on SDF samples, ``|clamp(f(x, z_i), d) - clamp(sdf, d)|`` (DeepSDF), plus the code
prior ``code_reg * |z_i|^2`` (ramped in over ``code_reg_ramp`` epochs as in DeepSDF). Appearance:
L1 between ``c(x, sg(z_i), a_i)`` and the sampled colours plus the same prior on ``a_i``; the shape
code is detached there, so colours never disturb the shape database (ShAPO trains the colour net
on a fixed shape database).

The latent database (one row per training object) is created in :meth:`setup` from the
datamodule's object list; its names travel in the checkpoint (``get_extra_state``), so a checkpoint
restores into a freshly constructed module.
"""

from __future__ import annotations

import torch

from latent4d.module import LatentModule
from latent4d.objects.appearance import AppearanceNet
from latent4d.objects.database import LatentDatabase
from latent4d.objects.sdf import ShapeDecoder


class ObjectsLatentModule(LatentModule):
    def __init__(self, shape_decoder: ShapeDecoder, appearance: AppearanceNet, clamp: float = 0.1,
                 code_reg: float = 1e-4, code_reg_ramp: int = 10, color_weight: float = 1.0,
                 lr_decoder: float = 1e-3, lr_appearance: float = 5e-4, lr_codes: float = 5e-3,
                 code_init_std: float | None = None, weight_decay: float = 0.0, lr_decay: float = 0.1):
        super().__init__()
        self.shape_decoder = shape_decoder
        self.appearance = appearance
        self.database: LatentDatabase | None = None
        self.clamp, self.code_reg, self.code_reg_ramp = clamp, code_reg, code_reg_ramp
        self.color_weight = color_weight
        self.lrs = {"decoder": lr_decoder, "appearance": lr_appearance, "codes": lr_codes}
        self.code_init_std, self.weight_decay, self.lr_decay = code_init_std, weight_decay, lr_decay

    # -- latent database -----------------------------------------------------------------------
    def build_database(self, names: list[str], categories: list[str]) -> LatentDatabase:
        self.database = LatentDatabase(names=list(names), categories=list(categories),
                                       shape_dim=self.shape_decoder.config.latent_dim,
                                       appearance_dim=self.appearance.config.appearance_dim,
                                       init_std=self.code_init_std)
        return self.database

    def setup(self, stage: str) -> None:
        if self.database is None:
            dm = self.trainer.datamodule
            dm.setup(stage)
            self.build_database(dm.object_names, dm.object_categories).to(self.device)

    def get_extra_state(self):
        if self.database is None:
            return {}
        return {"names": self.database.names, "categories": self.database.categories}

    def set_extra_state(self, state) -> None:
        if state and state.get("names") and (self.database is None or self.database.names != list(state["names"])):
            self.build_database(state["names"], state["categories"])

    # -- losses --------------------------------------------------------------------------------
    def _reg_factor(self) -> float:
        if self.code_reg_ramp <= 0 or self._trainer is None:
            return 1.0
        return min(1.0, (self.current_epoch + 1) / self.code_reg_ramp)

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        zs, za = self.database.codes(batch["index"])
        pred = self.shape_decoder(batch["sdf_points"], zs)
        c = self.clamp
        sdf_l1 = (pred.clamp(-c, c) - batch["sdf"].clamp(-c, c)).abs().mean()
        col = self.appearance(batch["color_points"], zs.detach(), za)
        color_l1 = (col - batch["color"]).abs().mean()
        reg = self.code_reg * self._reg_factor() * (zs.square().sum(-1).mean() + za.square().sum(-1).mean())
        # sign agreement outside the clamp band: a cheap sanity metric (no gradient)
        sign_acc = ((pred > 0) == (batch["sdf"] > 0)).float().mean().detach()
        loss = sdf_l1 + self.color_weight * color_l1 + reg
        return {"loss": loss, "sdf_l1": sdf_l1, "color_l1": color_l1, "code_reg": reg, "sign_acc": sign_acc}

    def training_step(self, batch, batch_idx):
        out = self.losses(batch)
        B = len(batch["index"])
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=B)
        self.log_dict({f"train/{k}": v for k, v in out.items() if k != "loss"}, batch_size=B)
        return out["loss"]

    def _eval_step(self, split: str, batch) -> None:
        out = self.losses(batch)
        B = len(batch["index"])
        self.log(f"{split}/loss", out["sdf_l1"] + self.color_weight * out["color_l1"], prog_bar=split == "val",
                 batch_size=B, sync_dist=True)
        self.log_dict({f"{split}/{k}": out[k] for k in ("sdf_l1", "color_l1", "sign_acc")}, batch_size=B,
                      sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self._eval_step("val", batch)

    def test_step(self, batch, batch_idx):
        self._eval_step("test", batch)

    def configure_optimizers(self):
        groups = [
            {"params": list(self.shape_decoder.parameters()), "lr": self.lrs["decoder"], "name": "decoder"},
            {"params": list(self.appearance.parameters()), "lr": self.lrs["appearance"], "name": "appearance"},
            {"params": list(self.database.parameters()), "lr": self.lrs["codes"], "name": "codes",
             "weight_decay": 0.0},
        ]
        opt = torch.optim.Adam(groups, weight_decay=self.weight_decay)
        epochs = max(1, self.trainer.max_epochs or 1)
        # exponential decay to lr_decay * lr over the run
        gamma = self.lr_decay ** (1.0 / epochs)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
        return {"optimizer": opt, "lr_scheduler": sched}


def _balanced_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged per class present, then over classes: large objects (laptops) and the
    background do not drown the small ones. logits (B, C, h, w), labels (B, h, w)."""
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, labels, reduction="none")
    per_class = [ce[labels == c].mean() for c in torch.unique(labels)]
    return torch.stack(per_class).mean()


class DetectorModule(LatentModule):
    """Trains :class:`latent4d.objects.detector.ObjectDetector` on procedural RGB-D scenes
    (:class:`latent4d.objects.data.DetectorDataModule`).

    Losses (weights ``w_*``): heatmap BCE against Gaussian centres (centre cells weighted up by
    ``1 + 4 * target``); per-pixel category cross-entropy, class-balanced; and on every object pixel L1 on the centre
    offset (tens of output pixels), the 6D rotation (for symmetric categories only the up column),
    the centre depth relative to the observed depth (decimetres), the log half-diagonal, and the shape
    and appearance codes on the pixels of objects that have codes (``coded``: the database's objects, not
    the extra instances; ShAPO: masked L1 on the codes and the pose). AdamW, cosine decay per step.
    """

    def __init__(self, detector, lr: float = 2e-3, weight_decay: float = 1e-4, lr_final: float = 0.05,
                 w_heat: float = 1.0, w_sem: float = 1.0, w_offset: float = 1.0, w_rotation: float = 1.0,
                 w_depth: float = 1.0, w_scale: float = 1.0, w_shape: float = 3.0, w_appearance: float = 1.0):
        super().__init__()
        self.detector = detector
        self.lr, self.weight_decay, self.lr_final = lr, weight_decay, lr_final
        self.w = {"heat": w_heat, "sem": w_sem, "offset": w_offset, "rotation": w_rotation, "depth": w_depth,
                  "scale": w_scale, "shape": w_shape, "appearance": w_appearance}

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or not hasattr(dm, "code_dims"):
            return
        from latent4d.errors import ConfigError

        cfg = self.detector.config
        if tuple(dm.code_dims) != (cfg.shape_dim, cfg.appearance_dim):
            raise ConfigError(f"model.detector: shape_dim / appearance_dim {cfg.shape_dim} / {cfg.appearance_dim} do "
                              f"not match the latent database's codes {dm.code_dims}; set them to the database's")
        if list(cfg.categories) != list(dm.hparams.categories) or cfg.out_stride != dm.hparams.out_stride \
                or (cfg.width, cfg.height) != (dm.hparams.width, dm.hparams.height):
            raise ConfigError("model.detector and data disagree on categories / out_stride / width / height: the "
                              "experiment sets both from one value (conf/experiment/objects/detector.yaml)")

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        import torch.nn.functional as F

        from latent4d.objects.detector import LOG_SCALE_OFFSET, OBJ_FIELDS, output_depth

        out = self.detector(batch["x"])
        heat_t = batch["heat"]
        bce = F.binary_cross_entropy_with_logits(out["heat"], heat_t, reduction="none")
        terms = {"heat": (bce * (1 + 4 * heat_t)).mean(), "sem": _balanced_ce(out["sem"], batch["sem"])}
        inst = batch["inst"]
        B, h, w = inst.shape
        fg = inst > 0
        n = fg.sum().clamp_min(1)
        objs = batch["objs"]
        tg = objs.gather(1, (inst - 1).clamp_min(0).view(B, -1, 1).expand(-1, -1, objs.shape[-1])).view(B, h, w, -1)
        tg = tg.permute(0, 3, 1, 2)  # (B, F, h, w)
        vv, uu = torch.meshgrid(torch.arange(h, device=inst.device), torch.arange(w, device=inst.device), indexing="ij")
        off_t = torch.stack([tg[:, 0] - uu, tg[:, 1] - vv], 1) / 10.0
        pose = out["pose"]
        sym = tg[:, 10:11]
        rot = (pose[:, :6] - tg[:, 4:10]).abs()
        rot = torch.cat([rot[:, :3] * (1 - sym), rot[:, 3:]], 1).sum(1)
        dz_t = (tg[:, 2:3] - output_depth(batch["x"], self.detector.config.out_stride)) * 10.0
        Ds = self.detector.config.shape_dim

        def masked(err, sel=fg, count=n):  # mean over object pixels of a (B, h, w) error
            return (err * sel).sum() / count

        coded = batch["coded"]  # pixels of objects with code targets (a subset of fg)
        n_coded = coded.sum().clamp_min(1)

        terms.update({"offset": masked((out["offset"] - off_t).abs().sum(1)), "rotation": masked(rot),
                      "depth": masked((pose[:, 6:7] - dz_t).abs()[:, 0]),
                      "scale": masked((pose[:, 7:8] - (tg[:, 3:4] - LOG_SCALE_OFFSET)).abs()[:, 0]),
                      "shape": masked((out["shape"] - tg[:, OBJ_FIELDS:OBJ_FIELDS + Ds]).abs().mean(1), coded, n_coded),
                      "appearance": masked((out["appearance"] - tg[:, OBJ_FIELDS + Ds:]).abs().mean(1), coded, n_coded)})
        terms["loss"] = sum(self.w[k] * v for k, v in terms.items())
        return terms

    def _step(self, split: str, batch) -> torch.Tensor:
        """Losses of a batch, logged under ``<split>/`` (the total as ``<split>/loss``)."""
        terms = self.losses(batch)
        self.log_dict({f"{split}/{k}": v for k, v in terms.items()}, batch_size=len(batch["x"]),
                      sync_dist=split != "train", prog_bar=False)
        return terms["loss"]

    def training_step(self, batch, batch_idx):
        return self._step("train", batch)

    def validation_step(self, batch, batch_idx):
        self._step("val", batch)

    def test_step(self, batch, batch_idx):
        self._step("test", batch)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.detector.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=self.lr * self.lr_final)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
