"""The small CPU-size weights the demo starts from (``weights/demo/<family>/``, shipped with the project).

``latent4d demo --make-weights [--only FAMILY ...]`` trains them from scratch (the experiments and
``conf/preset/*_demo_weights.yaml`` presets in :data:`RUNS`, one run after another, each capped in
minutes), loads each family's inference pipeline from the finished runs and writes it with
``save_pretrained`` into ``weights/demo/<family>/`` (config.json + safetensors per network, weights
stored as float16 to keep the folder a few MB; they load back into float32 networks), beside a
``demo.json`` with the training figures and the settings the demo stage needs.

The demo loads them like any pipeline folder: ``<Pipeline>.from_pretrained`` (so every network goes
through :mod:`latent4d.runs` + :func:`latent4d.trust.load_network`), and ``demo.json`` is read as
untrusted JSON (:func:`latent4d.trust.read_json_config`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from latent4d.errors import ConfigError

#: where the shipped weights live (the repository's ``weights/demo``; ``$LATENT4D_DEMO_WEIGHTS`` points elsewhere)
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights" / "demo"
#: the file beside each family's networks: figures of the training that made them + demo settings
INFO_FILE = "demo.json"
MAKE_COMMAND = "latent4d demo --make-weights"

#: family -> runs in training order: (run name, experiment, preset, {config key: run it links to})
RUNS: dict[str, list[tuple[str, str, str, dict[str, str]]]] = {
    "hair": [
        ("strand_vae", "hair/strand_vae", "hair_strand_demo_weights", {}),
        ("style_vae", "hair/style_vae", "hair_style_demo_weights", {"model.strand_vae_path": "strand_vae"}),
    ],
    "objects": [("latent_db", "objects/latent_db", "objects_demo_weights", {})],
    "motion": [
        ("shape_ae", "motion/shape_ae", "motion_shape_ae_demo_weights", {}),
        ("deform_ae", "motion/deform_ae", "motion_deform_ae_demo_weights", {}),
        (
            "shape_diffusion",
            "motion/shape_diffusion",
            "motion_shape_diffusion_demo_weights",
            {"shape_ae_run": "shape_ae", "deform_ae_run": "deform_ae"},
        ),
        (
            "deform_diffusion",
            "motion/deform_diffusion",
            "motion_deform_diffusion_demo_weights",
            {"shape_ae_run": "shape_ae", "deform_ae_run": "deform_ae"},
        ),
    ],
    "binary": [
        ("ae_digits", "binary/ae_digits", "binary_ae_demo_weights", {}),
        (
            "diffusion_digits",
            "binary/diffusion_digits",
            "binary_diffusion_demo_weights",
            {"autoencoder_path": "ae_digits"},
        ),
    ],
}


def weights_folder(family: str, root: Path | None = None) -> Path:
    """``weights/demo/<family>``, checked to hold a pipeline folder; :class:`ConfigError` with the
    command that makes it when it does not."""
    folder = Path(root or os.environ.get("LATENT4D_DEMO_WEIGHTS") or WEIGHTS_DIR) / family
    if not (folder / "pipeline.json").is_file():
        raise ConfigError(
            f"no shipped demo weights for {family} in '{folder}': make them with "
            f"`{MAKE_COMMAND} --only {family}` (or run the long demo from scratch: latent4d demo --full)"
        )
    return folder


def read_info(folder: Path) -> dict:
    """``<folder>/demo.json`` as untrusted JSON (empty when absent)."""
    from latent4d.trust import read_json_config

    path = Path(folder) / INFO_FILE
    return read_json_config(path, "demo weights info") if path.is_file() else {}


def train_family(family: str, work: Path) -> tuple[dict[str, Path], dict[str, dict]]:
    """Train the runs of :data:`RUNS` ``[family]`` into ``work/<run>``; their folders and test metrics."""
    from latent4d.train import compose_config, replace_run, run_training

    runs: dict[str, Path] = {}
    metrics: dict[str, dict] = {}
    for name, experiment, preset, links in RUNS[family]:
        runs[name] = work / name
        overrides = [f"experiment={experiment}", "callbacks=minimal", "logger=csv", f"preset={preset}"]
        overrides += [f"{key}={runs[target]}" for key, target in links.items()]
        t0 = time.perf_counter()
        print(f"[latent4d] demo weights: training {family}/{name} ({preset})", flush=True)
        result = run_training(compose_config(overrides, replace_run(runs[name])))
        metrics[name] = {k: float(v) for k, v in result.items() if isinstance(v, (int, float))}
        metrics[name]["train_seconds"] = round(time.perf_counter() - t0, 1)
    return runs, metrics


#: family -> (module, pipeline class, the run it loads from; motion combines its two diffusion runs)
PIPELINES = {
    "hair": ("latent4d.hair.pipeline", "HairPipeline", "style_vae"),
    "objects": ("latent4d.objects.pipeline", "ObjectsPipeline", "latent_db"),
    "motion": ("latent4d.motion.pipeline", "MotionPipeline", "deform_diffusion"),
    "binary": ("latent4d.binary.pipeline", "BinaryLatentPipeline", "diffusion_digits"),
}


def family_pipeline_class(family: str):
    """The inference pipeline class of ``family`` (loads ``weights/demo/<family>`` with ``from_pretrained``)."""
    import importlib

    if family not in PIPELINES:
        raise ConfigError(f"no demo weights for '{family}' (families with weights: {', '.join(PIPELINES)})")
    module, name, _ = PIPELINES[family]
    return getattr(importlib.import_module(module), name)


def family_pipeline(family: str, runs: dict[str, Path]):
    """The inference pipeline of the trained ``runs`` (the networks the demo ships; motion's denoisers are
    the runs' EMA copies)."""
    cls = family_pipeline_class(family)
    if family == "motion":
        return cls.from_runs(
            shape_diffusion=runs["shape_diffusion"], deform_diffusion=runs["deform_diffusion"]
        )
    return cls.from_pretrained(runs[PIPELINES[family][2]])


def stage_settings(family: str, runs: dict[str, Path]) -> dict:
    """The few training settings a demo stage needs beside the networks (motion: window, observations;
    objects: the categories of the database)."""
    from latent4d.config import load_run_config

    if family == "objects":
        return {"categories": [str(c) for c in load_run_config(runs["latent_db"]).data.categories]}
    if family != "motion":
        return {}
    cfg = load_run_config(runs["deform_diffusion"])
    return {"num_frames": int(cfg.data.num_frames), "n_obs": int(cfg.data.n_obs)}


def to_half(folder: Path) -> None:
    """Store every float32 tensor of the networks' safetensors under ``folder`` as float16 (in place)."""
    import torch
    from safetensors.torch import load_file, save_file

    for path in sorted(Path(folder).rglob("diffusion_pytorch_model*.safetensors")):
        state = load_file(path)
        half = {k: v.half() if v.dtype == torch.float32 else v for k, v in state.items()}
        save_file(half, path, metadata={"format": "pt"})


def ship(family: str, runs: dict[str, Path], metrics: dict, dest: Path) -> Path:
    """Write the family's pipeline (float16 weights) and ``demo.json`` into ``dest`` as a whole folder."""
    import shutil

    from latent4d.fileio import atomic_dir, write_json_atomic

    pipe = family_pipeline(family, runs)
    with atomic_dir(dest, marker="pipeline.json") as tmp:
        staged = pipe.save_pretrained(tmp / "pipeline")
        for item in staged.iterdir():
            shutil.move(str(item), tmp / item.name)
        staged.rmdir()
        to_half(tmp)
        write_json_atomic(
            tmp / INFO_FILE,
            {
                "family": family,
                "made_by": f"{MAKE_COMMAND} --only {family}",
                "runs": {
                    name: {"experiment": exp, "preset": preset} for name, exp, preset, _ in RUNS[family]
                },
                "training": metrics,
                "settings": stage_settings(family, runs),
                "dtype": "float16",
                "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
    return dest


def make_weights(families: list[str], work: Path, root: Path | None = None) -> dict[str, Path]:
    """Train and ship the demo weights of ``families`` (runs under ``work``, weights under ``root``,
    default :data:`WEIGHTS_DIR`); the folders written."""
    unknown = [f for f in families if f not in RUNS]
    if unknown:
        raise ConfigError(f"no demo weights for '{unknown[0]}' (families with weights: {', '.join(RUNS)})")
    out = {}
    for family in families:
        runs, metrics = train_family(family, Path(work) / family)
        out[family] = ship(family, runs, metrics, Path(root or WEIGHTS_DIR) / family)
        print(f"[latent4d] demo weights: wrote {out[family]}", flush=True)
    return out
