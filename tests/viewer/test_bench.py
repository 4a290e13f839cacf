"""`latent4d bench viewer --quick`: edit-to-redraw timings of the headless viewer (file-only and model-backed)."""

from __future__ import annotations

import json
import subprocess
import sys

from test_cli import _headless_env

# `latent4d bench viewer --quick` through the CLI, with the session's tiny hair runs in place of the quick
# `bench hair` runs the bench would otherwise train first (minutes on 2 cores; the hair tests train these
# anyway): the bench asks latent4d.hair.bench.train_runs for its runs when it starts.
SCRIPT = """
import sys
import latent4d.hair.bench as hair_bench
from latent4d.cli import main

runs = {"strand_dir": sys.argv[1], "style_dir": sys.argv[2]}
hair_bench.train_runs = lambda report, reuse: dict(runs)
sys.exit(main(["bench", "viewer", "--quick"]))
"""


def test_quick_viewer_bench_reports_every_timing(tmp_path, strand_run, style_run):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(strand_run[0]), str(style_run[0])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=_headless_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "outputs" / "bench" / "viewer_quick.json").read_text())
    rec = {r["metric"]: r["value"] for r in data["records"]}
    for prefix in ("file", "model"):
        for op in ("extend", "cut", "curl"):
            key = next(k for k in rec if k.startswith(f"{prefix}: {op}"))
            assert rec[key] is not None and 0 < rec[key] < 60, (key, rec[key])
    assert rec["file: strands drawn"] == 2000 and rec["model: strands drawn"] == 2000
    for op in ("extend", "cut", "curl"):  # the fast projection against a converged one, in mm
        gap = rec[f"model: {op} projection gap to converged"]
        assert gap >= 0 and gap < 1000, (op, gap)
    assert data["quick"] is True and "headless viewer" in " ".join(data["notes"])
    assert str(style_run[0]) in " ".join(data["notes"])  # the model-backed rows used the given run
