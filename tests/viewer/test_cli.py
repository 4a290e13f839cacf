"""`latent4d view --screenshot` (window under Xvfb, and offscreen without a display) and `latent4d render`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import XVFB, gui_env, require_xvfb, run_group
from gui_driver import changed, hair_pixels

EXE = str(Path(sys.executable).parent / "latent4d")


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _headless_env() -> dict:
    env = gui_env()
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


@pytest.mark.gui
def test_view_screenshot_window_and_offscreen_agree(viewer_data, tmp_path):
    require_xvfb()
    size = ["--width", "976", "--height", "480"]
    win = run_group(
        [
            *XVFB,
            EXE,
            "view",
            str(viewer_data / "hair.data"),
            "--screenshot",
            str(tmp_path / "win.png"),
            *size,
        ],
        timeout=300,
    )
    assert win.returncode == 0, win.stderr[-2000:]
    off = subprocess.run(
        [EXE, "view", str(viewer_data / "hair.data"), "--screenshot", str(tmp_path / "off.png"), *size],
        capture_output=True,
        text=True,
        timeout=300,
        env=_headless_env(),
    )
    assert off.returncode == 0, off.stderr[-2000:]
    a, b = _png(tmp_path / "win.png"), _png(tmp_path / "off.png")
    assert a.shape == b.shape == (450, 640, 3)  # the window minus the side panel and the status line
    assert hair_pixels(a) > 5000
    assert changed(a, b) < 0.02 * a.shape[0] * a.shape[1], "--screenshot draws what the window shows"


def test_view_bad_input_and_no_display(viewer_data, tmp_path):
    out = tmp_path / "never.png"
    bad = subprocess.run(
        [EXE, "view", str(viewer_data / "bad" / "corrupt.data"), "--screenshot", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_headless_env(),
    )
    assert bad.returncode == 1
    assert "corrupt.data" in bad.stderr and not out.exists()
    nodisp = subprocess.run(
        [EXE, "view", str(viewer_data / "hair.data")],
        capture_output=True,
        text=True,
        timeout=300,
        env=_headless_env(),
    )
    assert nodisp.returncode == 2 and "xvfb-run" in nodisp.stderr


def test_render_turntables_and_sequences(viewer_data, tmp_path):
    out = tmp_path / "render"
    proc = subprocess.run(
        [
            EXE,
            "render",
            str(viewer_data / "hair.data"),
            str(viewer_data / "mesh.obj"),
            str(viewer_data / "seq"),
            str(viewer_data / "bad" / "corrupt.data"),
            "--views",
            "3",
            "--size",
            "128",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=_headless_env(),
    )
    assert proc.returncode == 1, "one input is corrupt"
    assert "corrupt.data" in proc.stderr
    hair = [_png(out / f"hair_{i:02d}.png") for i in range(3)]
    assert all(hair_pixels(h) > 300 for h in hair)
    assert changed(hair[0], hair[1]) > 300 and changed(hair[1], hair[2]) > 300, "the camera turns"
    mesh = [_png(out / f"mesh_{i:02d}.png") for i in range(3)]
    assert changed(mesh[0], mesh[1]) > 100
    frames = [_png(out / f"seq_f{t:03d}.png") for t in range(6)]
    assert changed(frames[0], frames[2]) > 100, "a sequence renders one image per frame"
    for gif in ("hair.gif", "mesh.gif", "seq.gif"):
        assert (out / gif).stat().st_size > 0
    assert not any(".tmp" in p.name for p in out.iterdir())
