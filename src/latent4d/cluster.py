"""Cluster jobs: process ranks before the trainer exists, submitit's local executor as a Lightning
cluster environment, and the checkpoint a preempted run resumes from.

Launching stays with Hydra's submitit launcher (``hydra/launcher=slurm`` or ``local``, presets in
``conf/hydra/launcher/``) and Lightning's strategies; this module only tells them about each other:

- under Slurm (``submitit_slurm``), Lightning's own ``SLURMEnvironment`` finds the ranks and requeues
  the job on ``SIGUSR1`` (saving ``hpc_ckpt_<n>.ckpt`` into the run folder first);
- under submitit's local executor (``submitit_local``, one process per task on this machine),
  :class:`SubmititLocalEnvironment` gives Lightning the ranks, so ``trainer=ddp_cpu`` with
  ``tasks_per_node: 2`` trains one model on two processes exactly as on two Slurm tasks.
"""

from __future__ import annotations

import os
from pathlib import Path

from lightning_fabric.plugins.environments.cluster_environment import ClusterEnvironment

#: environment variables that give a process's global rank, most specific first (torchrun / Lightning
#: children, Slurm tasks under srun, submitit's local executor)
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID")


def is_rank_zero() -> bool:
    """True in the process that writes configs, exports and metrics (global rank 0), read before any
    trainer exists.

    Lightning's DDP children carry ``LOCAL_RANK`` / ``NODE_RANK``; tasks started by Slurm (srun),
    torchrun or submitit carry ``SLURM_PROCID`` / ``RANK`` / ``SUBMITIT_LOCAL_GLOBALID`` from the
    start, so every rank but 0 is known before it could write a run's ``config.yaml``.
    """
    for name in RANK_VARIABLES:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value) == 0
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def in_cluster_job() -> bool:
    """True inside a Slurm job or a submitit job (where ``resume`` defaults to ``auto``)."""
    return "SLURM_JOB_ID" in os.environ or "SUBMITIT_EXECUTOR" in os.environ


class SubmititLocalEnvironment(ClusterEnvironment):
    """Lightning cluster environment for submitit's local executor: its tasks are the processes.

    submitit starts ``tasks_per_node`` processes and numbers them in ``SUBMITIT_LOCAL_GLOBALID`` /
    ``SUBMITIT_LOCAL_LOCALID`` / ``SUBMITIT_LOCAL_NTASKS``; Lightning must then not start processes
    itself. The rendezvous is on this machine, at a port derived from the job id (same in every task).
    """

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return os.environ.get("MASTER_ADDR", "127.0.0.1")

    @property
    def main_port(self) -> int:
        if "MASTER_PORT" in os.environ:
            return int(os.environ["MASTER_PORT"])
        return 20000 + int(os.environ.get("SUBMITIT_LOCAL_JOB_ID", "0")) % 20000

    @staticmethod
    def detect() -> bool:
        return os.environ.get("SUBMITIT_EXECUTOR") == "local" and "SUBMITIT_LOCAL_GLOBALID" in os.environ

    def world_size(self) -> int:
        return int(os.environ.get("SUBMITIT_LOCAL_NTASKS", "1"))

    def set_world_size(self, size: int) -> None:
        pass  # fixed by the executor's task count

    def global_rank(self) -> int:
        return int(os.environ.get("SUBMITIT_LOCAL_GLOBALID", "0"))

    def set_global_rank(self, rank: int) -> None:
        pass  # fixed by the executor

    def local_rank(self) -> int:
        return int(os.environ.get("SUBMITIT_LOCAL_LOCALID", "0"))

    def node_rank(self) -> int:
        return int(os.environ.get("SUBMITIT_LOCAL_NODEID", "0"))


def cluster_plugins() -> list:
    """Lightning plugins this process needs (``[SubmititLocalEnvironment()]`` under submitit's local
    executor; nothing elsewhere: Slurm and torchrun are detected by Lightning itself)."""
    return [SubmititLocalEnvironment()] if SubmititLocalEnvironment.detect() else []


def resume_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint a preempted run in ``run_dir`` continues from: ``checkpoints/last.ckpt`` or
    Lightning's Slurm requeue checkpoint ``hpc_ckpt_<n>.ckpt`` (None when the run has neither)."""
    run_dir = Path(run_dir)
    found = [
        p for p in [run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")] if p.is_file()
    ]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def _tasks_per_node(devices) -> int:
    """``${l4d_tasks:${trainer.devices}}``: one launcher task per trainer device (a positive count)."""
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0:
        return devices
    from latent4d.errors import ConfigError

    raise ConfigError(
        f"trainer.devices={devices!r} cannot size a cluster job: the launcher starts one task per "
        "device, so give the number of devices per node, e.g. trainer.devices=4"
    )


def _gpus_per_node(accelerator, devices) -> int:
    """``${l4d_gpus:${trainer.accelerator},${trainer.devices}}``: GPUs to allocate per node (0 on CPU)."""
    return _tasks_per_node(devices) if str(accelerator) in ("gpu", "cuda") else 0


def register_resolvers() -> None:
    """The OmegaConf resolvers the launcher presets use (idempotent)."""
    from omegaconf import OmegaConf

    for name, fn in (("l4d_tasks", _tasks_per_node), ("l4d_gpus", _gpus_per_node)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()
