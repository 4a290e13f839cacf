"""scripts/gpu_check.py: says so and exits 0 without a GPU; its stages, dependencies and figures work
(run at the tiny sizes on the CPU with --cpu-smoke)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_and_exits_0(tmp_path, capsys):
    assert _script().main(["--out", str(tmp_path / "gc")]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out and not (tmp_path / "gc").exists()


def test_cpu_smoke_measures_each_stage_and_chains_the_dependent_one(tmp_path, capsys):
    out = tmp_path / "gc"
    assert _script().main(["--cpu-smoke", "--steps", "6", "--only", "smoke,hair", "--out", str(out)]) == 0
    report = json.loads((out / "gpu_check.json").read_text())
    assert set(report["runs"]) == {"smoke/cpu", "hair_strand_vae/cpu", "hair_style_vae/cpu"}
    for r in report["runs"].values():
        assert r["ok"] and r["samples_per_s"] > 0 and math.isfinite(r["loss"]) and r["peak_mem_gb"] == 0.0
    # the hairstyle-VAE trained on the strand-VAE run made just before
    assert (
        f"model.strand_vae_path={out / 'cpu' / 'hair_strand_vae'}"
        in report["runs"]["hair_style_vae/cpu"]["overrides"]
    )
    assert "hair_style_vae/cpu" in capsys.readouterr().out


def test_too_few_steps_is_refused():
    with pytest.raises(SystemExit):
        _script().main(["--steps", "2"])


def test_oflow_stages_read_the_dataset_and_chain_the_diffusion_stages(tmp_path):
    gc = _script()
    assert gc.oflow_stages(None, "D-FAUST") == []
    stages = {s[0]: s for s in gc.oflow_stages(tmp_path / "data", "D-FAUST")}
    assert list(stages) == [
        f"motion_dfaust_{e}" for e in ("shape_ae", "deform_ae", "shape_diffusion", "deform_diffusion")
    ]
    runs = {"motion_dfaust_shape_ae": tmp_path / "sa", "motion_dfaust_deform_ae": tmp_path / "da"}
    ov = gc.stage_overrides(
        stages["motion_dfaust_deform_diffusion"], runs, ["trainer=gpu"], 20, False, tmp_path / "r"
    )
    assert (
        "experiment=motion/dfaust/deform_diffusion" in ov
        and f"data.root={(tmp_path / 'data').resolve()}" in ov
    )
    assert f"shape_ae_run={tmp_path / 'sa'}" in ov and f"deform_ae_run={tmp_path / 'da'}" in ov
    smoke = gc.stage_overrides(stages["motion_dfaust_shape_ae"], {}, ["trainer=cpu"], 6, True, tmp_path / "r")
    assert "preset=motion_oflow_shape_ae_cpu" in smoke and "data.category=D-FAUST" in smoke
    # without the autoencoder runs (a failed stage) the diffusion stage is not run
    assert (
        gc.stage_overrides(stages["motion_dfaust_shape_diffusion"], {}, [], 20, False, tmp_path / "r") is None
    )
