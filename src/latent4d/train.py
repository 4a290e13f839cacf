"""Training entry: config -> data, model, trainer, callbacks, loggers -> fit, test, export.

``latent4d train experiment=<family>/<name> [overrides]`` runs :func:`run_training` inside a Hydra
app (so multirun sweeps and launchers such as ``hydra/launcher=slurm`` (conf/hydra/launcher) work); tests and the
demo use :func:`compose_config` + :func:`run_training` in-process.

A run directory holds ``config.yaml`` (resolved) and ``.hydra/`` (Hydra's own copy),
``checkpoints/{last.ckpt, best-*.ckpt}``, ``logs/{csv,tensorboard}``, ``models/<net>/``
(``save_pretrained``: config.json + safetensors) and ``metrics.json``.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from latent4d.cluster import cluster_plugins, in_cluster_job, is_rank_zero, resume_checkpoint
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


def check_checkpoint(path: str | Path, cfg: DictConfig | None = None) -> dict:
    """The Lightning checkpoint at ``path`` (loaded with ``weights_only=True``: nothing in it is
    executed), after checking, given the training config, that it was written by the same
    LightningModule (``model._target_``); clear :class:`InputError` otherwise."""
    from latent4d.trust import check_lightning_checkpoint

    p = Path(path).expanduser()
    ckpt = check_lightning_checkpoint(p)
    if cfg is not None and cfg.get("model") is not None:
        found = ckpt.get("latent4d")
        meta: dict = found if isinstance(found, dict) else {}
        written_by, want = meta.get("module"), cfg.model.get("_target_")
        if written_by and want and written_by != want:
            raise InputError(f"checkpoint '{p}' was written by {written_by}, but experiment "
                             f"{cfg.get('family')}/{cfg.get('name')} trains {want}: resume with a checkpoint "
                             "of this experiment (<run>/checkpoints/last.ckpt)")
    return ckpt


def check_resume_target(out: Path, cfg: DictConfig) -> None:
    """Training into an existing run folder is allowed only to resume it (``ckpt_path=``), with the
    same experiment; nothing in the folder is touched when this refuses."""
    from latent4d.config import load_run_config

    if not (out / "config.yaml").is_file() or not is_rank_zero():
        return  # DDP worker processes start after rank 0 has written the run's config.yaml
    if not cfg.get("ckpt_path") and resume_mode(cfg) != "auto":
        raise ConfigError(f"'{out}' already holds a run (config.yaml); latent4d trains into an existing run folder "
                          "only to resume it: add resume=auto (or ckpt_path=last), or leave out hydra.run.dir= "
                          "to get a new folder")
    old = load_run_config(out)
    if (old.get("family"), old.get("name")) != (cfg.get("family"), cfg.get("name")):
        raise ConfigError(f"'{out}' holds a run of {old.get('family')}/{old.get('name')}, not of "
                          f"{cfg.get('family')}/{cfg.get('name')}: resume it with its own experiment, or train "
                          "into a new folder")


def resume_mode(cfg: DictConfig) -> str:
    """``auto`` (continue the run folder from its newest checkpoint when it has one) or ``never``;
    ``resume: null`` (the default) means ``auto`` inside a Slurm / submitit job, ``never`` elsewhere."""
    mode = cfg.get("resume")
    if mode is None:
        return "auto" if in_cluster_job() else "never"
    if mode not in ("auto", "never"):
        raise ConfigError(f"resume={mode} is not a resume mode: use resume=auto or resume=never")
    return str(mode)


def resolve_checkpoint(out: Path, cfg: DictConfig) -> str | None:
    """The checkpoint this run starts from: ``ckpt_path=<file>``, ``ckpt_path=last`` (the run folder's
    ``checkpoints/last.ckpt``), or with ``resume=auto`` the newest of ``last.ckpt`` and Lightning's Slurm
    requeue checkpoint ``hpc_ckpt_<n>.ckpt``; None to train from scratch. Checked before use."""
    ckpt_path, mode = cfg.get("ckpt_path"), resume_mode(cfg)
    if ckpt_path == "last":
        found = out / "checkpoints" / "last.ckpt"
        if not found.is_file():
            raise ConfigError(f"ckpt_path=last: '{found}' does not exist; ckpt_path=last continues the run in "
                              "hydra.run.dir=<run folder> (add it), or give the checkpoint file itself")
        ckpt_path = str(found)
    elif not ckpt_path and mode == "auto":
        found_auto = resume_checkpoint(out)
        ckpt_path = str(found_auto) if found_auto is not None else None
        log.info("resume=auto: %s", f"continuing from {ckpt_path}" if ckpt_path else "no checkpoint yet, starting")
    if not ckpt_path:
        return None
    check_checkpoint(ckpt_path, cfg)
    return str(Path(ckpt_path).expanduser())


def replace_run(run_dir: str | Path) -> Path:
    """Clear a folder that latent4d itself owns (a demo or benchmark run) before training into it again.

    Training never writes into an existing run unless resuming it; the demo and the benches retrain
    into fixed folders, so they call this first. Only an empty folder or a latent4d run folder
    (``config.yaml``) is removed; anything else is a :class:`ConfigError`.
    """
    import shutil

    run_dir = Path(run_dir)
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"'{run_dir}' exists and is not a latent4d run folder: latent4d will not replace it "
                              "(choose another output folder)")
        shutil.rmtree(run_dir)
    return run_dir


def _ckpt_mismatch(e: RuntimeError, ckpt_path: str, cfg: DictConfig) -> InputError | None:
    """Lightning's state-dict mismatch on resume, as one clear error (None for other errors)."""
    text = str(e)
    if "Error(s) in loading state_dict" not in text and "size mismatch" not in text:
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()][1:4]
    return InputError(f"checkpoint '{ckpt_path}' does not fit experiment {cfg.get('family')}/{cfg.get('name')} "
                      f"({'; '.join(lines)[:400]}): it was written by another experiment or model size")


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
    from latent4d.config import check_value_types

    out = Path(cfg.paths.output_dir)
    check_resume_target(out, cfg)
    for section in ("data", "model", "trainer"):
        check_value_types(cfg.get(section), section)
    ckpt_path = resolve_checkpoint(out, cfg)
    torch.set_float32_matmul_precision(cfg.get("float32_matmul_precision", "high"))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = _instantiate_checked(cfg.data)
    model = _instantiate_checked(cfg.model)
    # build / load the data before trainer.fit (setup is idempotent; Lightning calls it again) so
    # that fit_seconds and trainer.max_time measure training alone, and bad data fails before any
    # config, checkpoint or log is written
    t_data = time.perf_counter()
    datamodule.setup("fit")
    data_seconds = time.perf_counter() - t_data
    # the config and the data are valid: only now is anything written into the run folder
    out.mkdir(parents=True, exist_ok=True)
    if is_rank_zero():
        OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    plugins = cluster_plugins()  # submitit's local executor; Slurm / torchrun are found by Lightning
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                      **({"plugins": plugins} if plugins else {}))

    t_fit = time.perf_counter()
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except RuntimeError as e:
        err = _ckpt_mismatch(e, str(ckpt_path), cfg) if ckpt_path else None
        if err is None:
            raise
        raise err from None
    fit_seconds = time.perf_counter() - t_fit
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}

    metrics: dict[str, float] = dict(fit_metrics)
    metrics["fit_seconds"] = fit_seconds  # wall time of trainer.fit (training + validation)
    metrics["data_seconds"] = data_seconds  # building / loading the training and validation data
    if cfg.get("test"):
        ckpt_cb = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
        best = "best" if (ckpt_cb is not None and ckpt_cb.best_model_path and not getattr(trainer, "fast_dev_run", False)) else None
        results = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
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


def _guard_run_dir(overrides: list[str]) -> list[str]:
    """Before Hydra writes anything: an existing run folder (``hydra.run.dir=`` holding config.yaml) is
    only trained into to resume it (``ckpt_path=``), and then Hydra does not rewrite its ``.hydra/``
    copies (the run's own ``config.yaml`` is replaced only once the new config is validated)."""
    kv = dict(o.split("=", 1) for o in overrides if "=" in o and not o.startswith(("+", "~")))
    run_dir = kv.get("hydra.run.dir")
    if not run_dir or not (Path(run_dir) / "config.yaml").is_file() or not is_rank_zero():
        return overrides  # DDP worker processes re-run the command after rank 0 wrote config.yaml
    resuming = kv.get("resume") == "auto" or (kv.get("resume") in (None, "null") and in_cluster_job())
    if kv.get("ckpt_path") in (None, "", "null") and not resuming:
        raise ConfigError(f"'{run_dir}' already holds a run (config.yaml); latent4d trains into an existing run "
                          "folder only to resume it: add resume=auto (or ckpt_path=last), or leave out "
                          "hydra.run.dir= to get a new folder")
    return [*overrides, "hydra.output_subdir=null"] if "hydra.output_subdir" not in kv else overrides


def _check_launcher(overrides: list[str]) -> None:
    """With ``hydra/launcher=<name>``: resolve the launcher's settings (tasks and GPUs per node tied to the
    trainer) before Hydra starts any job, so a setting that cannot size a job is one clear error. Sweep
    overrides are left out of this check (each job is checked again when it starts)."""
    if not any(o.startswith("hydra/launcher=") for o in overrides):
        return
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    from latent4d.config import conf_dir
    from latent4d.errors import Latent4DError

    parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("-")])
    single = [o.input_line for o in parsed if not o.is_sweep_override() and o.input_line]
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose("train", overrides=single, return_hydra_config=True)
        OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    except MissingConfigException as e:
        if "submitit" in str(e):
            raise ConfigError("the cluster launchers need Hydra's submitit plugin: pip install 'latent4d[cluster]' "
                              "(hydra-submitit-launcher)") from None
        raise
    except OmegaConfBaseException as e:
        cause: BaseException | None = e
        while cause is not None and not isinstance(cause, Latent4DError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise


def hydra_train(overrides: list[str]) -> None:
    """Run training as a Hydra app with ``overrides`` (what ``latent4d train`` calls)."""
    import hydra

    from latent4d.config import conf_dir, validate_overrides

    validate_overrides(overrides)
    overrides = _guard_run_dir(overrides)
    _check_launcher(overrides)
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
