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
def _ctrl_c_enabled():
    """A shell starting the suite in the background (no job control) ignores SIGINT for it, and the
    subprocesses inherit that; the Ctrl-C tests need Python's default handler, as in a terminal."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


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


# Hair: tiny strand-VAE and hairstyle-VAE trainings (seconds), shared by the session (the hair tests and the
# viewer's bench test). Their sizes are the presets conf/preset/hair_strand_tiny.yaml / hair_style_tiny.yaml.
TINY_STRAND = ["experiment=hair/strand_vae", "callbacks=minimal", "logger=csv", "preset=hair_strand_tiny"]


@pytest.fixture(scope="session")
def strand_run(tmp_path_factory):
    """A strand-VAE run directory trained for a few seconds on procedural strands."""
    from latent4d.train import compose_config, run_training

    out = tmp_path_factory.mktemp("hair_strand_run")
    metrics = run_training(compose_config(TINY_STRAND, out))
    return out, metrics


def tiny_style_overrides(strand_dir) -> list[str]:
    return ["experiment=hair/style_vae", "callbacks=minimal", "logger=csv", f"model.strand_vae_path={strand_dir}",
            "preset=hair_style_tiny"]


@pytest.fixture(scope="session")
def style_run(tmp_path_factory, strand_run):
    """A hairstyle-VAE run directory (on the tiny strand-VAE)."""
    from latent4d.train import compose_config, run_training

    out = tmp_path_factory.mktemp("hair_style_run")
    metrics = run_training(compose_config(tiny_style_overrides(strand_run[0]), out))
    return out, metrics


@pytest.fixture(scope="module")
def scalp():
    """The default hair scalp (``latent4d.hair.scalp.Scalp()``), built once per test module."""
    from latent4d.hair.scalp import Scalp

    return Scalp()
