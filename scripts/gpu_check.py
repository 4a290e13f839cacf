#!/usr/bin/env python
"""GPU readiness: every paper-size experiment trains a few steps on this machine's GPU(s).

    python scripts/gpu_check.py [--steps 30] [--out outputs/gpu_check] [--budget 540] [--only motion,binary]
                                [--oflow-root <O-Flow dataset> [--oflow-category D-FAUST]]

For each experiment (the paper-size ``model=<family>_..._paper`` networks on the procedural data; the
diffusion stages on the autoencoders trained a few steps just before) it runs
``latent4d train ... trainer=gpu trainer.max_steps=<steps>`` and, where the machine has more than one
GPU, the same with ``trainer=ddp trainer.devices=<n>``; it writes ``<out>/gpu_check.json`` with, per run,
throughput (samples/s after 3 warm-up steps, all ranks), seconds per step, peak GPU memory (GB, rank 0)
and the training loss after the last step, and prints a table. With ``--oflow-root`` the four D-FAUST
experiments (``experiment=motion/dfaust/<exp>``, paper size, their own data settings) also train on that
dataset (stages ``motion_dfaust_*``; sequences of at least 50 frames: the deformation AE's windows). Stages past ``--budget`` seconds are
listed as skipped. On a machine without a CUDA GPU it says so and exits 0 (``--cpu-smoke`` runs the
same stages at the tiny test sizes on the CPU, which is what the tests do).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

#: (stage, overrides, {config key: stage whose run folder it needs}, tiny preset for --cpu-smoke)
STAGES: list[tuple[str, list[str], dict[str, str], list[str]]] = [
    ("smoke", ["experiment=smoke/sdf_sphere", "model=smoke_sdf_paper"], {}, ["preset=smoke_tiny"]),
    (
        "hair_strand_vae",
        ["experiment=hair/strand_vae", "model=hair_strand_vae_paper"],
        {},
        ["preset=hair_strand_tiny"],
    ),
    (
        "hair_style_vae",
        ["experiment=hair/style_vae", "model=hair_style_vae_paper"],
        {"model.strand_vae_path": "hair_strand_vae"},
        ["preset=hair_style_tiny"],
    ),
    (
        "objects_latent_db",
        ["experiment=objects/latent_db", "model=objects_latent_db_paper"],
        {},
        ["preset=objects_tiny"],
    ),
    (
        "motion_shape_ae",
        ["experiment=motion/shape_ae", "model=motion_shape_ae_paper"],
        {},
        ["preset=motion_shape_ae_quick"],
    ),
    (
        "motion_deform_ae",
        ["experiment=motion/deform_ae", "model=motion_deform_ae_paper"],
        {},
        ["preset=motion_deform_ae_quick"],
    ),
    (
        "motion_shape_diffusion",
        ["experiment=motion/shape_diffusion", "model=motion_shape_diffusion_paper"],
        {"shape_ae_run": "motion_shape_ae", "deform_ae_run": "motion_deform_ae"},
        ["preset=motion_shape_diffusion_quick"],
    ),
    (
        "motion_deform_diffusion",
        ["experiment=motion/deform_diffusion", "model=motion_deform_diffusion_paper"],
        {"shape_ae_run": "motion_shape_ae", "deform_ae_run": "motion_deform_ae"},
        ["preset=motion_deform_diffusion_quick"],
    ),
    (
        "binary_ae",  # the paper AE takes 256 px RGB: scikit-image's photographs (a few crops)
        [
            "experiment=binary/ae_images",
            "model=binary_ae_paper",
            "data.image_size=256",
            "data.photo_short_side=256",
            "data.n_train=256",
            "data.n_eval=16",
        ],
        {},
        ["preset=binary_ae_tiny"],
    ),
    (
        "binary_diffusion",
        ["experiment=binary/diffusion_digits", "model=binary_diffusion_paper"],
        {"autoencoder_path": "binary_ae"},
        ["preset=binary_diffusion_tiny"],
    ),
    (
        "binary_ae_voxels",
        ["experiment=binary/ae_voxels", "model=binary_ae_voxels_paper"],
        {},
        ["preset=binary_ae_voxels_tiny"],
    ),
]

#: the D-FAUST experiments at paper size on an O-Flow dataset (``--oflow-root``): stage, experiment, needs
OFLOW_STAGES: list[tuple[str, str, dict[str, str]]] = [
    ("motion_dfaust_shape_ae", "shape_ae", {}),
    ("motion_dfaust_deform_ae", "deform_ae", {}),
    *(
        (
            f"motion_dfaust_{exp}",
            exp,
            {"shape_ae_run": "motion_dfaust_shape_ae", "deform_ae_run": "motion_dfaust_deform_ae"},
        )
        for exp in ("shape_diffusion", "deform_diffusion")
    ),
]


def oflow_stages(root: Path | None, category: str) -> list[tuple]:
    """:data:`OFLOW_STAGES` as :data:`STAGES` entries reading ``root`` / ``category`` (none without a root;
    the tiny CPU-smoke sizes are the ``motion_oflow_<exp>_cpu`` presets)."""
    if root is None:
        return []
    data = [f"data.root={root.resolve()}", f"data.category={category}"]
    return [
        (name, [f"experiment=motion/dfaust/{exp}", *data], needs, [f"preset=motion_oflow_{exp}_cpu", *data])
        for name, exp, needs in OFLOW_STAGES
    ]


#: what every run adds: a few steps, no validation / test, the speed meter, checkpoints and CSV logs
COMMON = [
    "trainer.max_epochs=-1",
    "++trainer.max_time=null",
    "++trainer.limit_val_batches=0",
    "test=false",
    "callbacks=minimal",
    "+callbacks.speed._target_=latent4d.callbacks.SpeedMeter",
    "logger=csv",
]


def stage_overrides(
    stage: tuple, runs: dict[str, Path], trainer: list[str], steps: int, smoke: bool, run_dir: Path
) -> list[str] | None:
    """The ``latent4d train`` overrides of one stage (None when a stage it needs did not produce a run)."""
    name, base, needs, tiny = stage
    picked = [base[0], *tiny] if smoke else base
    deps = []
    for key, other in needs.items():
        if other not in runs:
            return None
        deps.append(f"{key}={runs[other]}")
    return [*picked, *deps, *COMMON, *trainer, f"++trainer.max_steps={steps}", f"hydra.run.dir={run_dir}"]


def read_result(run_dir: Path, proc: subprocess.CompletedProcess, seconds: float) -> dict:
    """The figures of one finished run from its ``metrics.json`` (or the error's last lines)."""
    if proc.returncode != 0 or not (run_dir / "metrics.json").is_file():
        return {"ok": False, "seconds": round(seconds, 1), "error": (proc.stderr or proc.stdout)[-800:]}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    losses = {k: v for k, v in metrics.items() if k.startswith("train/") and "loss" in k}
    loss_key = min(losses, key=len) if losses else None
    return {
        "ok": True,
        "seconds": round(seconds, 1),
        "samples_per_s": metrics.get("perf/samples_per_s"),
        "step_seconds": metrics.get("perf/step_seconds"),
        "peak_mem_gb": metrics.get("perf/peak_mem_gb"),
        "loss": metrics.get(loss_key) if loss_key else None,
        "loss_key": loss_key,
    }


def run_stage(overrides: list[str], run_dir: Path, timeout: float) -> dict:
    """One ``latent4d train`` subprocess; its figures (an error entry when it fails or times out)."""
    exe = Path(sys.executable).parent / "latent4d"
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [str(exe), "train", *overrides], capture_output=True, text=True, timeout=max(timeout, 1.0)
        )
    except subprocess.TimeoutExpired:
        return {
            "ok": False,
            "seconds": round(time.perf_counter() - t0, 1),
            "error": f"timed out after {timeout:.0f} s",
        }
    return read_result(run_dir, proc, time.perf_counter() - t0)


def trainers(smoke: bool) -> list[tuple[str, list[str]]]:
    """(label, trainer overrides) to measure: one GPU, and DDP over every GPU when there are several."""
    if smoke:
        return [("cpu", ["trainer=cpu"])]
    import torch

    n = torch.cuda.device_count()
    plans = [("gpu", ["trainer=gpu"])]
    if n > 1:
        plans.append((f"ddp{n}", ["trainer=ddp", f"trainer.devices={n}"]))
    return plans


def check(args: argparse.Namespace) -> dict:
    """Run every selected stage under every trainer plan within the time budget; the report."""
    only = set(args.only.split(",")) if args.only else None
    report: dict = {"steps": args.steps, "smoke": args.cpu_smoke, "runs": {}}
    start = time.perf_counter()
    for label, trainer in trainers(args.cpu_smoke):
        runs: dict[str, Path] = {}
        for stage in [*STAGES, *oflow_stages(args.oflow_root, args.oflow_category)]:
            name = stage[0]
            if only and not any(name.startswith(o) for o in only):
                continue
            key, run_dir = f"{name}/{label}", args.out / label / name
            left = args.budget - (time.perf_counter() - start)
            ov = stage_overrides(stage, runs, trainer, args.steps, args.cpu_smoke, run_dir)
            if left <= 0 or ov is None:
                report["runs"][key] = {
                    "ok": False,
                    "skipped": "time budget spent" if left <= 0 else "needs a failed stage",
                }
                continue
            print(f"[gpu_check] {key}: {args.steps} steps ...", flush=True)
            result = run_stage(ov, run_dir, left)
            report["runs"][key] = {**result, "overrides": ov}
            if result["ok"]:
                runs[name] = run_dir
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def table(report: dict) -> str:
    """The report as a plain-text table."""
    lines = [f"{'run':34s} {'samples/s':>10s} {'s/step':>8s} {'peak GB':>8s} {'loss':>10s}"]
    for key, r in report["runs"].items():
        if not r.get("ok"):
            lines.append(f"{key:34s} {'-- ' + (r.get('skipped') or 'failed (see JSON)')}")
            continue

        def fmt(v, spec):
            return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "-"

        lines.append(
            f"{key:34s} {fmt(r['samples_per_s'], '10.1f')} {fmt(r['step_seconds'], '8.3f')} "
            f"{fmt(r['peak_mem_gb'], '8.2f')} {fmt(r['loss'], '10.4g')}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[1], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=30, help="optimiser steps per run (>= 5)")
    p.add_argument("--out", type=Path, default=Path("outputs/gpu_check"))
    p.add_argument(
        "--budget", type=float, default=540.0, help="seconds for all runs (later stages are skipped)"
    )
    p.add_argument("--only", default="", help="comma-separated stage prefixes, e.g. motion,binary")
    p.add_argument("--oflow-root", type=Path, default=None, help="O-Flow dataset: adds the D-FAUST stages")
    p.add_argument("--oflow-category", default="D-FAUST", help="category folder under --oflow-root")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (tests the script itself)")
    args = p.parse_args(argv)
    if args.steps < 5:
        p.error("--steps must be at least 5 (3 warm-up steps are not measured)")
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA GPU on this machine; nothing measured (run it where `nvidia-smi` shows a GPU)"
        )
        return 0
    from latent4d.fileio import write_json_atomic

    report = check(args)
    if not args.cpu_smoke:
        report["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    write_json_atomic(args.out / "gpu_check.json", report)
    print(table(report))
    print(f"[gpu_check] {args.out / 'gpu_check.json'} ({report['seconds']:.0f} s)")
    return 0 if all(r.get("ok") for r in report["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
