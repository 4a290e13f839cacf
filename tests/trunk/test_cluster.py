"""Cluster jobs: Hydra's submitit launcher with DDP, resume after preemption, the DDP-safe NaN guard and
rank-zero-only writes. Real subprocesses (`latent4d train`), tiny smoke models on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from latent4d.cluster import SubmititLocalEnvironment, is_rank_zero, resume_checkpoint
from latent4d.errors import ConfigError
from latent4d.train import compose_config, resolve_checkpoint

HERE = Path(__file__).resolve().parent
SMOKE = ["experiment=smoke/sdf_sphere", "preset=smoke_tiny", "callbacks=minimal", "logger=csv"]


def _train(*args: str, cwd: Path, timeout: int = 420) -> subprocess.CompletedProcess:
    """``latent4d train <args>`` with this folder on PYTHONPATH (for the test-only callbacks/modules)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    for name in ("SLURM_JOB_ID", "SLURM_PROCID", "SUBMITIT_EXECUTOR", "RANK", "LOCAL_RANK", "NODE_RANK"):
        env.pop(name, None)
    exe = Path(sys.executable).parent / "latent4d"
    return subprocess.run(
        [str(exe), "train", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_submitit_local_multirun_trains_one_model_on_two_ranks(tmp_path):
    sweep = tmp_path / "sweep"
    r = _train(
        "-m",
        "hydra/launcher=local",
        *SMOKE,
        "test=false",
        "trainer=ddp_cpu",
        "trainer.max_epochs=2",
        "data.n_train=8192",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    logs = sorted((sweep / ".submitit").glob("*/*_log.err"))
    text = {p.name.split("_")[1]: p.read_text() for p in logs}
    assert set(text) == {"0", "1"}, logs  # submitit started two tasks ...
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in text["0"] and "GLOBAL_RANK: 1, MEMBER: 2/2" in text["1"]
    runs = [p.parent for p in sweep.rglob("config.yaml") if ".hydra" not in p.parts]
    assert runs == [sweep / "0"]  # ... training one model in one run folder
    assert (sweep / "0" / "metrics.json").is_file() and (sweep / "0" / "models" / "net").is_dir()
    ckpt = torch.load(sweep / "0" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # 8192 samples / 2048 per batch = 4 batches an epoch, split across 2 ranks -> 2 steps an epoch
    assert ckpt["global_step"] == 4


def test_launcher_refuses_a_device_count_it_cannot_size(tmp_path):
    r = _train(
        "-m",
        "hydra/launcher=local",
        *SMOKE,
        "trainer=ddp",
        f"hydra.sweep.dir={tmp_path / 's'}",
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode != 0
    assert "trainer.devices=-1 cannot size a cluster job" in r.stderr and "trainer.devices=4" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "s").exists()


def test_preempted_run_resumes_to_the_same_weights(tmp_path):
    """Killed mid-epoch (SIGKILL, as a preemption), the same command continues from last.ckpt and ends
    bit-identical to an uninterrupted run with the same seed (RNG states travel in the checkpoint)."""
    cmd = [
        *SMOKE,
        "test=false",
        "trainer.max_epochs=3",
        "data.batch_size=256",
        "resume=auto",
    ]  # 8 steps an epoch
    kill = [
        "+callbacks.preempt._target_=cluster_jobs.PreemptAt",
        "+callbacks.preempt.step=12",
        f"+callbacks.preempt.marker={tmp_path / 'preempted'}",
    ]
    whole = _train(
        *cmd,
        *kill[:1],
        "+callbacks.preempt.step=-1",
        f"+callbacks.preempt.marker={tmp_path / 'x'}",
        f"hydra.run.dir={tmp_path / 'whole'}",
        cwd=tmp_path,
    )
    assert whole.returncode == 0, whole.stderr[-3000:]
    first = _train(*cmd, *kill, f"hydra.run.dir={tmp_path / 'job'}", cwd=tmp_path)
    assert first.returncode != 0 and (tmp_path / "preempted").is_file()
    assert not (tmp_path / "job" / "metrics.json").exists()
    saved = torch.load(tmp_path / "job" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 8  # the end of epoch 0; steps 9-12 of epoch 1 were lost with the process
    again = _train(*cmd, *kill, f"hydra.run.dir={tmp_path / 'job'}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resume=auto: continuing from" in again.stderr + again.stdout
    a, b = _state(tmp_path / "whole"), _state(tmp_path / "job")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_nan_on_one_rank_stops_every_rank_with_the_message(tmp_path):
    r = _train(
        *SMOKE,
        "test=false",
        "trainer=ddp_cpu",
        "data.batch_size=256",
        "model._target_=cluster_jobs.NaNOnRank",
        f"hydra.run.dir={tmp_path / 'nan'}",
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode != 0
    # rank 0 (the healthy one) stops at the same step with the message instead of waiting in all-reduce
    assert "non-finite on another rank (this is rank 0) at global step 1" in r.stderr
    assert "training loss became nan on rank 1 at global step 1" in r.stderr


def test_ckpt_path_last_and_resume_modes(tmp_path, monkeypatch):
    for name in ("SLURM_JOB_ID", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="ckpt_path=last: .*hydra.run.dir"):
        resolve_checkpoint(run, compose_config([*SMOKE, "ckpt_path=last"], run))
    cfg = compose_config([*SMOKE], run)
    assert resolve_checkpoint(run, cfg) is None  # resume: null outside a cluster job means never
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert resolve_checkpoint(run, cfg) is None  # auto, but nothing to resume yet
    with pytest.raises(ConfigError, match="resume=sometimes is not a resume mode"):
        resolve_checkpoint(run, compose_config([*SMOKE, "resume=sometimes"], run))
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run / "hpc_ckpt_2.ckpt").write_bytes(b"y")
    assert resume_checkpoint(run) == run / "hpc_ckpt_2.ckpt"  # the newest of last.ckpt and the requeue one
    os.utime(run / "checkpoints" / "last.ckpt", ns=(2 * 10**18, 2 * 10**18))
    assert resume_checkpoint(run) == run / "checkpoints" / "last.ckpt"


def test_rank_zero_is_known_before_the_trainer(monkeypatch):
    for name in ("RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert is_rank_zero()
    for name, value, zero in (
        ("SLURM_PROCID", "3", False),
        ("SLURM_PROCID", "0", True),
        ("RANK", "1", False),
        ("LOCAL_RANK", "1", False),
    ):
        monkeypatch.setenv(name, value)
        assert is_rank_zero() is zero, (name, value)
        monkeypatch.delenv(name)


def test_submitit_local_environment_reads_the_executor(monkeypatch):
    assert not SubmititLocalEnvironment.detect() or os.environ.get("SUBMITIT_EXECUTOR") == "local"
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    for k, v in (
        ("SUBMITIT_LOCAL_GLOBALID", "1"),
        ("SUBMITIT_LOCAL_LOCALID", "1"),
        ("SUBMITIT_LOCAL_NTASKS", "2"),
        ("SUBMITIT_LOCAL_JOB_ID", "4242"),
    ):
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    env = SubmititLocalEnvironment()
    assert SubmititLocalEnvironment.detect() and env.creates_processes_externally
    assert (env.global_rank(), env.local_rank(), env.world_size(), env.node_rank()) == (1, 1, 2, 0)
    assert env.main_port == 24242


def test_launcher_presets_tie_tasks_and_gpus_to_the_trainer():
    from hydra import compose, initialize_config_dir

    from latent4d.config import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "hydra/launcher=slurm",
                "experiment=smoke/sdf_sphere",
                "trainer=ddp",
                "trainer.devices=4",
                "trainer.num_nodes=2",
            ],
            return_hydra_config=True,
        )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (launcher["tasks_per_node"], launcher["gpus_per_node"], launcher["nodes"]) == (4, 4, 2)
    assert launcher["additional_parameters"]["signal"].startswith("USR1@")  # Lightning's requeue signal
