"""Shared fixtures: one tiny latent database trained once per session (in-process, ~20 s)."""

from __future__ import annotations

import pytest
import torch

TINY = ["experiment=objects/latent_db", "preset=objects_tiny", "callbacks=minimal", "logger=csv"]


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    """Small tensors: one intra-op thread is as fast on an idle machine and far faster on a busy one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory of a tiny objects/latent_db training (3 categories x 2 objects, conf/preset/objects_tiny)."""
    from latent4d.train import compose_config, run_training

    out = tmp_path_factory.mktemp("objects_run")
    metrics = run_training(compose_config(TINY, out))
    return out, metrics


@pytest.fixture(scope="session")
def tiny_pipe(tiny_run):
    from latent4d.objects.pipeline import ObjectsPipeline

    return ObjectsPipeline.from_pretrained(tiny_run[0])
