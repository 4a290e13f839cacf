"""``latent4d demo``: every family's demo stage in turn, with a per-stage progress line and an overall
estimate, a ``summary.json`` written after each stage, and an ``index.html`` that gathers each family's
figures beside its benchmark's and the pictures the stages wrote.

Estimates come from the last demo run on this machine (``<out>/timings.json``) where there is one,
else from the typical stage times below. Ctrl-C stops between (or inside) stages: what finished stays
written, nothing half-written is left (every file goes through ``latent4d.fileio``).
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

from latent4d.fileio import atomic_path, write_json_atomic

#: typical stage minutes on 2 CPU cores (full, --quick), used until this machine has its own timings
TYPICAL_MINUTES = {
    "smoke": (1, 0.3),
    "hair": (20, 3),
    "objects": (15, 3),
    "motion": (35, 5),
    "binary": (20, 3),
}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def estimates(stages: list[str], out_dir: Path, quick: bool) -> dict[str, float]:
    """Expected seconds per stage: the last run's on this machine, else the typical figure."""
    last: dict = {}
    path = out_dir / "timings.json"
    if path.is_file():
        try:
            last = json.loads(path.read_text()).get("quick" if quick else "full", {})
        except (ValueError, OSError, AttributeError):
            last = {}
    typical = {k: v[1 if quick else 0] * 60 for k, v in TYPICAL_MINUTES.items()}
    return {
        s: float(last[s]) if isinstance(last.get(s), (int, float)) else typical.get(s, 300.0) for s in stages
    }


def _record_timing(out_dir: Path, quick: bool, stage: str, seconds: float) -> None:
    path = out_dir / "timings.json"
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (ValueError, OSError):
        data = {}
    data.setdefault("quick" if quick else "full", {})[stage] = round(seconds, 1)
    write_json_atomic(path, data)


def run_demo(stages: list[str], run_stage, out_dir: Path, quick: bool) -> dict:
    """Run ``run_stage(name, folder) -> dict`` for each stage with progress; the summary (also written to
    ``<out>/summary.json`` after every stage, and ``<out>/index.html`` at the end)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    expected = estimates(stages, out_dir, quick)
    summary: dict = {}
    t_start = time.perf_counter()
    for i, stage in enumerate(stages, 1):
        left = sum(expected[s] for s in stages[i - 1 :])
        print(
            f"[latent4d] demo {i}/{len(stages)}: {stage} (about {_minutes(expected[stage])}; about "
            f"{_minutes(left)} left in all)",
            flush=True,
        )
        t0 = time.perf_counter()
        summary[stage] = run_stage(stage, out_dir / stage) or {}
        took = time.perf_counter() - t0
        summary[stage]["demo_seconds"] = round(took, 1)
        _record_timing(out_dir, quick, stage, took)
        write_json_atomic(out_dir / "summary.json", summary)
        print(
            f"[latent4d] demo {i}/{len(stages)}: {stage} done in {_minutes(took)} "
            f"({_minutes(time.perf_counter() - t_start)} so far)",
            flush=True,
        )
    write_index(out_dir, summary)
    return summary


def _scalars(result: dict) -> list[tuple[str, object]]:
    return [(k, v) for k, v in result.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]


def _bench_rows(family: str) -> list[dict]:
    """The records of ``docs/bench/<family>.json`` (empty when the docs are not beside the package)."""
    path = Path(__file__).resolve().parents[2] / "docs" / "bench" / f"{family}.json"
    try:
        return list(json.loads(path.read_text()).get("records", []))
    except (OSError, ValueError, AttributeError):
        return []


def _table(rows: list[tuple], head: tuple) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return (
        "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{cells}</table>"
        if rows
        else "<p>(none)</p>"
    )


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_index(out_dir: Path, summary: dict) -> Path:
    """``<out>/index.html``: per family, the demo's figures, the benchmark's figures with their targets,
    and every picture the stage wrote (relative links, so the folder can be moved or shared)."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>latent4d demo</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:520px;margin:4px;"
        "border:1px solid #ccc}table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;"
        "padding:3px 8px;font-size:13px}figure{display:inline-block;margin:0}figcaption{font-size:12px}"
        "</style><h1>latent4d demo</h1>"
    ]
    for family, result in summary.items():
        parts.append(f"<h2>{html.escape(family)}</h2><h3>This demo</h3>")
        parts.append(_table(_scalars(result), ("figure", "value")))
        bench = [
            (r.get("metric"), r.get("value"), r.get("unit", ""), r.get("target") or "")
            for r in _bench_rows(family)
            if not str(r.get("metric", "")).endswith(("time", "seconds"))
        ]
        parts.append(f"<h3>Benchmark (latent4d bench {html.escape(family)})</h3>")
        parts.append(_table(bench[:24], ("metric", "value", "unit", "target")))
        for png in sorted((out_dir / family).rglob("*.png"))[:24]:
            rel = png.relative_to(out_dir).as_posix()
            parts.append(
                f"<figure><img src='{html.escape(rel)}' alt='{html.escape(rel)}'>"
                f"<figcaption>{html.escape(rel)}</figcaption></figure>"
            )
    path = out_dir / "index.html"
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(parts), encoding="utf-8")
    return path
