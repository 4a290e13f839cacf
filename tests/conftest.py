"""Shared fixtures. Tests are fast and honest; quality and speed targets live in `latent4d bench`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The test folders are no packages: the modules shared by several of them (helpers.py, codeshape.py)
# sit in this folder and are imported by name.
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Procedural datasets are cached per test session, never in the user's cache."""
    os.environ["LATENT4D_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


def run_cli(*args: str, cwd: str | Path | None = None, timeout: int = 600, check: bool = False):
    """Run ``latent4d <args>`` in a subprocess; returns CompletedProcess (text)."""
    exe = Path(sys.executable).parent / "latent4d"
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"latent4d {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """A short smoke/sdf_sphere training run (in-process), shared by the tests that need a run dir."""
    from latent4d.train import compose_config, run_training

    out = tmp_path_factory.mktemp("smoke_run")
    cfg = compose_config(["experiment=smoke/sdf_sphere", "trainer.max_epochs=2", "data.n_train=12288",
                          "callbacks=minimal", "logger=csv"], out)
    run_training(cfg)
    return out


@pytest.fixture(scope="module")
def scalp():
    """The default hair scalp (``latent4d.hair.scalp.Scalp()``), built once per test module."""
    from latent4d.hair.scalp import Scalp

    return Scalp()
