"""Viewer test fixtures: the inputs (built once per session) and a runner for the real GUI under Xvfb.

The GUI runs in a subprocess (``xvfb-run``; one process per driver run, since Open3D's GUI is a
process-wide singleton) driven by ``gui_driver.py`` through the viewer's own Python API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

XVFB = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24"]


def require_xvfb() -> None:
    if shutil.which("xvfb-run") is None:
        pytest.fail(
            "xvfb-run is missing: the viewer tests run the GUI under Xvfb; run `bash scripts/setup.sh` "
            "(Debian packages xvfb xauth)"
        )


def gui_env() -> dict:
    env = dict(os.environ)
    env.setdefault("LATENT4D_VIEWER_THREADS", "1")
    return env


def run_group(cmd: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group; on timeout kill the whole group (xvfb-run's Xvfb and the
    viewer too, not only xvfb-run) and fail."""
    import signal

    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or gui_env(),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"{' '.join(cmd[:6])}... did not finish within {timeout} s:\n{out[-2000:]}\n{err[-2000:]}"
        ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture(scope="session")
def viewer_data(tmp_path_factory) -> Path:
    import viewer_data as vd

    d = tmp_path_factory.mktemp("viewer_data")
    vd.make_hair(d / "hair.data")
    vd.make_hair_model(d / "model")
    vd.make_objects_model(d / "objmodel")
    vd.make_sequence(d / "seq")
    vd.make_rgbd(d / "frame")
    vd.make_mesh(d / "mesh.obj")
    vd.make_bad_files(d / "bad")
    return d


@pytest.fixture(scope="session")
def gui_results(viewer_data, tmp_path_factory) -> dict:
    """Every scenario of gui_driver.py, run once in a real window under Xvfb."""
    require_xvfb()
    out = tmp_path_factory.mktemp("gui_out")
    proc = run_group(
        [*XVFB, sys.executable, str(HERE / "gui_driver.py"), str(viewer_data), str(out)], timeout=900
    )
    res = out / "results.json"
    if not res.is_file():
        raise AssertionError(
            f"the GUI driver wrote no results (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    results = json.loads(res.read_text())
    results["_out"] = str(out)
    return results


def scenario(results: dict, name: str) -> dict:
    r = results.get(name)
    assert r is not None, f"scenario {name} did not run"
    assert "error" not in r, f"scenario {name} failed:\n{r['error']}"
    assert r.get("window") is True, "the scenario did not run in a real window"
    return r
