"""Training entry: config -> data, model, trainer, callbacks, loggers -> fit, test, export.

``latent4d train experiment=<family>/<name> [overrides]`` runs :func:`run_training` inside a Hydra
app (so multirun sweeps and launchers such as ``hydra/launcher=submitit_slurm`` work); tests and the
demo use :func:`compose_config` + :func:`run_training` in-process.

A run directory holds ``config.yaml`` (resolved) and ``.hydra/`` (Hydra's own copy),
``checkpoints/{last.ckpt, best-*.ckpt}``, ``logs/{csv,tensorboard}``, ``models/<net>/``
(``save_pretrained``: config.json + safetensors) and ``metrics.json``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from latent4d.errors import ConfigError, InputError
from latent4d.fileio import write_json_atomic

log = logging.getLogger("latent4d.train")


def compose_config(overrides: list[str], output_dir: str | Path) -> DictConfig:
    """Compose ``train.yaml`` with ``overrides`` outside a Hydra app (tests, demo, notebooks)."""
    from hydra import compose, initialize_config_dir

    from latent4d.config import conf_dir, validate_overrides

    validate_overrides(overrides)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.output_dir={Path(output_dir).resolve()}"])
    return cfg


def check_checkpoint(path: str | Path) -> Path:
    """Make sure ``path`` is a readable Lightning checkpoint; clear error otherwise."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"checkpoint '{p}' does not exist")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means corrupt
        raise InputError(f"checkpoint '{p}' is corrupted or not a PyTorch file ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise InputError(f"checkpoint '{p}' is not a Lightning checkpoint (no 'state_dict' entry)")
    return p


def _is_rank_zero() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def _instantiate_all(section) -> list:
    from hydra.utils import instantiate

    if not section:
        return []
    return [instantiate(c) for c in section.values() if isinstance(c, DictConfig) and "_target_" in c]


def _instantiate_checked(node):
    """Hydra ``instantiate`` that re-raises latent4d's own errors from constructors unwrapped, so a bad
    config value gets its clear one-line message instead of an ``InstantiationException`` traceback."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from latent4d.errors import Latent4DError

    try:
        return instantiate(node)
    except InstantiationException as e:
        cause = e.__cause__
        while isinstance(cause, InstantiationException):
            cause = cause.__cause__
        if isinstance(cause, Latent4DError):
            raise cause from None
        raise


def run_training(cfg: DictConfig) -> dict[str, float]:
    """Fit, test and export one experiment; returns the final metrics."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate
    from pytorch_lightning.callbacks import ModelCheckpoint

    if cfg.get("model") is None or cfg.get("data") is None:
        from latent4d.config import group_options

        raise ConfigError("no experiment selected: run `latent4d train experiment=<family>/<name>`. "
                          "Valid experiments: " + ", ".join(group_options("experiment")))
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_float32_matmul_precision(cfg.get("float32_matmul_precision", "high"))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if _is_rank_zero():
        OmegaConf.save(cfg, out / "config.yaml", resolve=True)

    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        ckpt_path = str(check_checkpoint(ckpt_path))

    datamodule = _instantiate_checked(cfg.data)
    model = _instantiate_checked(cfg.model)
    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    # build / load the data before trainer.fit (setup is idempotent; Lightning calls it again) so
    # that fit_seconds and trainer.max_time measure training alone, and bad data fails before any
    # checkpoint or log is written
    t_data = time.perf_counter()
    datamodule.setup("fit")
    data_seconds = time.perf_counter() - t_data
    t_fit = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_seconds = time.perf_counter() - t_fit
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}

    metrics: dict[str, float] = dict(fit_metrics)
    metrics["fit_seconds"] = fit_seconds  # wall time of trainer.fit (training + validation)
    metrics["data_seconds"] = data_seconds  # building / loading the training and validation data
    if cfg.get("test"):
        ckpt_cb = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
        best = "best" if (ckpt_cb is not None and ckpt_cb.best_model_path and not trainer.fast_dev_run) else None
        results = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)
        for r in results:
            metrics.update({k: float(v) for k, v in r.items()})

    if trainer.is_global_zero:
        if cfg.get("export"):
            written = model.export(out / "models") if hasattr(model, "export") else {}
            for name, path in written.items():
                log.info("exported %s -> %s", name, path)
        write_json_atomic(out / "metrics.json", {"experiment": f"{cfg.family}/{cfg.name}", **metrics})
        print(f"[latent4d] run directory: {out}")
    return metrics


_ORIG_ARGV: list[str] | None = None


def hydra_train(overrides: list[str]) -> None:
    """Run training as a Hydra app with ``overrides`` (what ``latent4d train`` calls)."""
    import hydra

    from latent4d.config import conf_dir, validate_overrides

    validate_overrides(overrides)
    global _ORIG_ARGV
    _ORIG_ARGV = list(sys.argv)
    sys.argv = [sys.argv[0], *overrides]

    @hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
    def _main(cfg: DictConfig) -> None:
        # Lightning's DDP launcher re-runs sys.argv in child processes: restore `latent4d train ...`.
        sys.argv = list(_ORIG_ARGV or sys.argv)
        from latent4d.errors import Latent4DError

        try:
            run_training(cfg)
        except Latent4DError as e:
            print(f"latent4d train: error: {e}", file=sys.stderr)
            sys.exit(2)

    try:
        _main()
    finally:
        sys.argv = _ORIG_ARGV
