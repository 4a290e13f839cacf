"""Shared fixtures: one tiny latent database trained once per session (in-process, ~20 s)."""

from __future__ import annotations

import pytest
import torch

TINY = ["experiment=objects/latent_db", "callbacks=minimal", "logger=csv", "trainer.max_epochs=8",
        "data.categories=[mug,camera,bottle]", "data.per_category=2", "data.n_sdf=4000", "data.n_color=1500",
        "data.resolution=64", "data.repeats=6", "data.objects_per_batch=6", "data.sdf_per_item=512",
        "data.color_per_item=256", "model.shape_decoder.hidden=96", "model.shape_decoder.num_layers=4", "model.shape_decoder.num_freqs=2",
        "model.shape_decoder.latent_in=[2]", "model.appearance.hidden=48", "model.appearance.num_layers=2",
        "model.lr_decoder=3e-3", "model.lr_codes=1e-2"]


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    """Small tensors: one intra-op thread is as fast on an idle machine and far faster on a busy one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory of a tiny objects/latent_db training (3 categories x 2 objects)."""
    from latent4d.train import compose_config, run_training

    out = tmp_path_factory.mktemp("objects_run")
    metrics = run_training(compose_config(TINY, out))
    return out, metrics


@pytest.fixture(scope="session")
def tiny_pipe(tiny_run):
    from latent4d.objects.pipeline import ObjectsPipeline

    return ObjectsPipeline.from_pretrained(tiny_run[0])
