"""The `latent4d` console script: listing, errors, training modes, resume, DDP, export."""

import json
from pathlib import Path

import pytest
import torch

from latent4d.smoke.sdf import SDFNet


def test_list_shows_experiments_with_descriptions(cli, tmp_path):
    r = cli("list", cwd=tmp_path)  # any working directory: configs come from the package
    assert r.returncode == 0
    assert "smoke/sdf_sphere" in r.stdout and "Smoke test" in r.stdout


def test_unknown_experiment_is_one_clear_paragraph(cli, tmp_path):
    r = cli("train", "experiment=smoke/sdf_spere", cwd=tmp_path)
    assert r.returncode != 0
    assert "Unknown experiment 'smoke/sdf_spere'" in r.stderr
    assert "Did you mean 'smoke/sdf_sphere'" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_unknown_trainer_option_names_the_choices(cli, tmp_path):
    r = cli("train", "experiment=smoke/sdf_sphere", "trainer=tpu", cwd=tmp_path)
    assert r.returncode != 0
    assert "Unknown trainer 'tpu'" in r.stderr and "ddp_cpu" in r.stderr and "debug" in r.stderr
    assert "Traceback" not in r.stderr


def test_no_experiment_and_unknown_command(cli, tmp_path):
    r = cli("train", cwd=tmp_path)
    assert r.returncode != 0 and "experiment=<family>/<name>" in r.stderr
    r = cli("frobnicate", cwd=tmp_path)
    assert r.returncode == 2 and "unknown command" in r.stderr


def test_missing_run_dir(cli, tmp_path):
    r = cli("sample", f"run={tmp_path / 'nope'}", cwd=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = cli("sample", f"run={tmp_path}", cwd=tmp_path)
    assert r.returncode == 2 and "not a latent4d run directory" in r.stderr
    r = cli("evaluate", cwd=tmp_path)
    assert r.returncode == 2 and "run=<run directory>" in r.stderr


def test_debug_trainer_runs_fast_dev_run(cli, tmp_path):
    r = cli("train", "experiment=smoke/sdf_sphere", "trainer=debug", "data.n_train=4096",
            f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / ".hydra" / "config.yaml").is_file()
    assert (run / "models" / "net" / "diffusion_pytorch_model.safetensors").is_file()
    assert "test/l1_sdf" in json.loads((run / "metrics.json").read_text())


def test_run_dir_contents_and_export_reload(smoke_run):
    run = Path(smoke_run)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("best-*.ckpt"))
    assert (run / "logs" / "csv" / "metrics.csv").is_file()
    net = SDFNet.from_pretrained(run / "models" / "net")
    assert net.config.hidden == 96
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1
    x = torch.rand(10, 3) * 2 - 1
    # exported weights = best checkpoint's weights
    best = sorted((run / "checkpoints").glob("best-*.ckpt"))[-1]
    state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    ref = SDFNet(**{k: net.config[k] for k in ("hidden", "layers", "num_freqs")})
    ref.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
    assert torch.allclose(net(x), ref(x))


def test_resume_from_last_checkpoint(cli, smoke_run, tmp_path):
    r = cli("train", "experiment=smoke/sdf_sphere", "trainer.max_epochs=3", "data.n_train=12000",
            "callbacks=minimal", "logger=csv", f"ckpt_path={smoke_run / 'checkpoints' / 'last.ckpt'}",
            f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Restored all states" in r.stdout + r.stderr
    last = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 2  # continued from epoch 1 for one more epoch


def test_corrupted_checkpoint_is_reported(cli, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    r = cli("train", "experiment=smoke/sdf_sphere", f"ckpt_path={bad}", f"hydra.run.dir={tmp_path / 'r'}",
            cwd=tmp_path)
    assert r.returncode != 0 and "corrupted" in r.stderr and str(bad) in r.stderr


def test_ddp_on_two_cpu_processes(cli, tmp_path):
    r = cli("train", "experiment=smoke/sdf_sphere", "trainer=ddp_cpu", "trainer.max_epochs=1",
            "data.n_train=8192", "callbacks=minimal", "logger=csv", f"hydra.run.dir={tmp_path / 'ddp'}",
            cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "ddp"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "train_ddp_process_1.log").is_file()  # a second rank really ran
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # 8192 samples / 2048 per batch = 4 full batches, split across 2 ranks -> 2 optimiser steps
    assert ckpt["global_step"] == 2


def test_export_command_from_checkpoint(cli, smoke_run, tmp_path):
    r = cli("export", f"run={smoke_run}", "ckpt=last", f"out={tmp_path / 'exp'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert SDFNet.from_pretrained(tmp_path / "exp" / "net").config.layers == 4


def test_sample_and_evaluate_commands(cli, smoke_run, tmp_path):
    r = cli("sample", f"run={smoke_run}", f"out={tmp_path / 's'}", "resolution=64", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s" / "mesh.ply").stat().st_size > 1000 and (tmp_path / "s" / "mesh.png").is_file()
    r = cli("evaluate", f"run={smoke_run}", "resolution=64", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((smoke_run / "evaluation.json").read_text())["chamfer_l1"] < 0.25  # 2 epochs only


@pytest.mark.parametrize("cmd", ["sample", "evaluate"])
def test_commands_need_key_value_options(cli, cmd, tmp_path):
    r = cli(cmd, "run", cwd=tmp_path)
    assert r.returncode == 2 and "key=value" in r.stderr
