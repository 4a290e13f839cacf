"""`latent4d bench viewer --quick`: edit-to-redraw timings of the headless viewer (file-only and model-backed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_cli import _headless_env

EXE = str(Path(sys.executable).parent / "latent4d")


def test_quick_viewer_bench_reports_every_timing(tmp_path):
    proc = subprocess.run(
        [EXE, "bench", "viewer", "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=_headless_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "outputs" / "bench" / "viewer.json").read_text())
    rec = {r["metric"]: r["value"] for r in data["records"]}
    for prefix in ("file", "model"):
        for op in ("extend", "cut", "curl"):
            key = next(k for k in rec if k.startswith(f"{prefix}: {op}"))
            assert rec[key] is not None and 0 < rec[key] < 60, (key, rec[key])
    assert rec["file: strands drawn"] == 2000 and rec["model: strands drawn"] == 2000
    assert data["quick"] is True and "headless viewer" in " ".join(data["notes"])
