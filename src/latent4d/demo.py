"""``latent4d demo``: every family's demo stage in turn, with a per-stage progress line and an overall
estimate, a ``summary.json`` written after each stage, and an ``index.html`` that gathers each family's
figures beside its benchmark's and the pictures the stages wrote.

Three modes: the default (minutes: a short training run per family, then the family's results from the
small weights the project ships in ``weights/demo``, :mod:`latent4d.demo_stages`); ``--full`` (each
family's own ``demo``: every network trained from scratch at CPU size, about 1.5 hours on 2 cores);
``--make-weights`` (trains and writes ``weights/demo``, :mod:`latent4d.demo_weights`). ``--quick`` is
the tests' size of the first two.

Estimates come from the last demo run on this machine (``<out>/timings.json``) where there is one,
else from the typical stage times below. Ctrl-C stops between (or inside) stages: what finished stays
written, nothing half-written is left (every file goes through ``latent4d.fileio``).
"""

from __future__ import annotations

import html
import json
import sys
import time
from pathlib import Path
from typing import Any

from latent4d import progress
from latent4d.errors import ConfigError
from latent4d.fileio import atomic_path, write_json_atomic
from latent4d.progress import duration_text

#: typical stage minutes on 2 CPU cores per mode, used until this machine has its own timings
#: (``<out>/timings.json``). "default": measured by ``make demo`` on a fresh clone with an empty
#: ``$LATENT4D_CACHE`` on 2 quiet cores, 2026-12-04 (16 / 12 / 18 / 75 / 33 s, 2.6 min; 4.6 min with
#: the setup from pip's cache), rounded up by about a third for a machine that is not quiet (with other
#: work on it, 1-min load 4-8, the same stages took 18 min); "full" and "quick": rough figures, not
#: measured as a whole.
TYPICAL_MINUTES: dict[str, dict[str, float]] = {
    "full": {"smoke": 1, "hair": 20, "objects": 15, "motion": 35, "binary": 20},
    "default": {"smoke": 0.4, "hair": 0.3, "objects": 0.4, "motion": 1.7, "binary": 0.8},
    "quick": {"smoke": 0.3, "hair": 1, "objects": 1, "motion": 2, "binary": 1},
}
#: demo figure -> the benchmark record it is comparable with (``docs/bench/<family>.json``)
BENCH_PAIRS = {
    "smoke": {"chamfer_l1": "Chamfer-L1 to ground truth"},
    "hair": {
        "sample_diversity_mm": "samples.diversity",
        "root_on_scalp_mm": "samples.root_on_scalp_err",
        "strand_test_pos_err_mm": "strand_vae.pos_err_mean",
        "guide_test_err_mm": "style_vae.guide_err",
    },
    "objects": {
        "median_rot_deg": "pose: median rotation error after 100 it. (symmetry-aware)",
        "median_trans_cm": "pose: median translation error after 100 it.",
        "seconds_per_object": "time per object",
    },
    "motion": {
        "iou": "sparse, full (interleaved): IoU",
        "chamfer_l1": "sparse, full (interleaved): Chamfer-L1",
        "corr_rel_pct": "sparse, full (interleaved): correspondence L2 / bbox diagonal",
        "seconds_reconstruct": "full (interleaved): seconds per 17-frame clip",
    },
    "binary": {
        "fd_guidance_0": "binary S=16: FD",
        "class_accuracy_guidance_0": "binary S=16: class accuracy",
        "fd_guidance_1": "binary S=16: FD, guidance 1",
        "class_accuracy_guidance_1": "binary S=16: class accuracy, guidance 1",
    },
}


#: figures a default-mode stage measures on its short run (from scratch, --quick sizes), not on weights/demo
SHORT_RUN_KEYS = {
    "strand_test_pos_err_mm",
    "guide_test_err_mm",
    "test_sdf_l1",
    "test_color_l1",
    "ae_test_psnr",
    "diffusion_test_loss",
}


def _timings(out_dir: Path) -> dict:
    """``<out>/timings.json`` (mode -> stage -> seconds of the last run on this machine); empty when absent
    or unreadable, and each mode's entry a dict."""
    try:
        data = json.loads((out_dir / "timings.json").read_text())
    except (ValueError, OSError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def estimates(stages: list[str], out_dir: Path, mode: str) -> dict[str, float]:
    """Expected seconds per stage in ``mode`` (full | default | quick): the last run's on this machine,
    else the typical figure."""
    last = _timings(out_dir).get(mode, {})
    typical = {k: v * 60 for k, v in TYPICAL_MINUTES.get(mode, {}).items()}
    return {
        s: float(last[s]) if isinstance(last.get(s), (int, float)) else typical.get(s, 300.0) for s in stages
    }


def _record_timing(out_dir: Path, mode: str, stage: str, seconds: float) -> None:
    data = _timings(out_dir)
    data.setdefault(mode, {})[stage] = round(seconds, 1)
    write_json_atomic(out_dir / "timings.json", data)


def _estimate_source(stages: list[str], out_dir: Path, mode: str) -> str:
    """Where :func:`estimates` took the figures from, for the first progress line."""
    last = _timings(out_dir).get(mode, {})
    mine = [s for s in stages if isinstance(last.get(s), (int, float))]
    if len(mine) == len(stages):
        return f"estimates: the last run on this machine, {out_dir / 'timings.json'}"
    if mine:
        return f"estimates: the last run on this machine for {', '.join(mine)}, typical times for the rest"
    return "estimates: typical times on 2 CPU cores, this machine's own from its next run on"


def stage_line(i: int, stages: list[str], expected: dict[str, float], elapsed: float) -> str:
    """The progress line before stage ``i`` (1-based) of ``stages``: the stage's expected time, what is
    expected to be left in all (this stage and the ones after it) and the expected total (``elapsed`` so
    far + what is left), e.g. ``demo 2/4: objects (about 3 min; about 7 min left in all, of about 9 min)``."""
    stage = stages[i - 1]
    left = sum(expected[s] for s in stages[i - 1 :])
    return (
        f"[latent4d] demo {i}/{len(stages)}: {stage} (about {duration_text(expected[stage])}; about "
        f"{duration_text(left)} left in all, of about {duration_text(elapsed + left)})"
    )


def run_demo(stages: list[str], run_stage, out_dir: Path, mode: str) -> dict:
    """Run ``run_stage(name, folder) -> dict`` for each stage with a progress line per stage and one
    overall bar (:func:`latent4d.progress.overall`, which the stages' own bars join); the summary (also
    written to ``<out>/summary.json`` after every stage, and ``<out>/index.html`` at the end). Ctrl-C:
    a message naming the stage and what was kept, then ``KeyboardInterrupt`` again."""
    out_dir.mkdir(parents=True, exist_ok=True)
    expected = estimates(stages, out_dir, mode)
    print(
        f"[latent4d] demo: {len(stages)} stage(s), about {duration_text(sum(expected.values()))} in all "
        f"({_estimate_source(stages, out_dir, mode)})",
        flush=True,
    )
    summary: dict = {}
    run = progress.Overall("demo", None)
    try:
        with progress.overall("demo", sum(expected.values())) as run:
            for i, stage in enumerate(stages, 1):
                print(stage_line(i, stages, expected, run.elapsed), flush=True)
                run.expect(run.elapsed + sum(expected[s] for s in stages[i - 1 :]))
                run.stage(f"{i}/{len(stages)} {stage}")
                summary[stage] = _run_one(stage, run_stage, out_dir, mode)
                write_json_atomic(out_dir / "summary.json", summary)
                print(
                    f"[latent4d] demo {i}/{len(stages)}: {stage} done in "
                    f"{duration_text(summary[stage]['demo_seconds'])} ({duration_text(run.elapsed)} so far)",
                    flush=True,
                )
    except KeyboardInterrupt:  # also a Ctrl-C that Lightning turned into sys.exit(1) (progress.overall)
        print(
            f"[latent4d] demo interrupted during '{run.stage_name}' after {duration_text(run.elapsed)}; the "
            f"finished stages ({', '.join(summary) or 'none'}) are in {out_dir / 'summary.json'}",
            file=sys.stderr,
            flush=True,
        )
        raise
    write_index(out_dir, summary)
    return summary


def _run_one(stage: str, run_stage, out_dir: Path, mode: str) -> dict:
    """One stage: its result with ``demo_seconds``; records its time in ``timings.json``."""
    t0 = time.perf_counter()
    result = run_stage(stage, out_dir / stage) or {}
    took = time.perf_counter() - t0
    result["demo_seconds"] = round(took, 1)
    _record_timing(out_dir, mode, stage, took)
    return result


def _scalars(result: dict) -> list[tuple[str, object]]:
    return [(k, v) for k, v in result.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]


def _bench_rows(family: str) -> list[dict]:
    """The records of ``docs/bench/<family>.json`` (empty when the docs are not beside the package)."""
    path = Path(__file__).resolve().parents[2] / "docs" / "bench" / f"{family}.json"
    try:
        return list(json.loads(path.read_text()).get("records", []))
    except (OSError, ValueError, AttributeError):
        return []


def comparison(family: str, result: dict) -> list[tuple[str, Any, str, str]]:
    """(figure, this demo's value, the benchmark's value, benchmark metric) for the figures of
    :data:`BENCH_PAIRS` the stage reported."""
    bench = {r.get("metric"): r for r in _bench_rows(family)}
    rows = []
    for key, metric in BENCH_PAIRS.get(family, {}).items():
        if key in result:
            rec = bench.get(metric, {})
            value = rec.get("value", "(not benchmarked)")
            unit = f" {rec['unit']}" if rec.get("unit") and isinstance(value, (int, float)) else ""
            name = f"{key} (short run)" if "short_run" in result and key in SHORT_RUN_KEYS else key
            rows.append((name, result[key], f"{_fmt(value)}{unit}", metric))
    return rows


def _table(rows: list[tuple], head: tuple) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return (
        "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{cells}</table>"
        if rows
        else "<p>(none)</p>"
    )


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _pictures(out_dir: Path, family: str, result: dict) -> list[tuple[str, str]]:
    """(path relative to ``out_dir``, caption): the stage's ``figures``, else every PNG it wrote."""
    found = []
    for item in result.get("figures") or []:
        try:
            p, caption = Path(item[0]), str(item[1])
            found.append((p.resolve().relative_to(out_dir.resolve()).as_posix(), caption))
        except (ValueError, TypeError, IndexError):
            continue
    if found:
        return found
    return [
        (p.relative_to(out_dir).as_posix(), p.name) for p in sorted((out_dir / family).rglob("*.png"))[:24]
    ]


def write_index(out_dir: Path, summary: dict) -> Path:
    """``<out>/index.html``: per family, the demo's figures beside the benchmark's, the labelled pictures,
    the demo's other figures and the benchmark's (relative links: the folder can be moved or shared)."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>latent4d demo</title><style>"
        "body{font-family:sans-serif;max-width:1200px;margin:auto}img{max-width:100%;margin:4px 0;"
        "border:1px solid #ccc}table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;"
        "padding:3px 8px;font-size:13px}figure{margin:8px 0}figcaption{font-size:13px;color:#444}"
        "details{margin:6px 0}</style><h1>latent4d demo</h1>"
    ]
    for family, result in summary.items():
        parts.append(f"<h2>{html.escape(family)}</h2>")
        parts.append(
            _table(comparison(family, result), ("figure", "this demo", "benchmark", "benchmark metric"))
        )
        for rel, caption in _pictures(out_dir, family, result):
            parts.append(
                f"<figure><img src='{html.escape(rel)}' alt='{html.escape(caption)}'>"
                f"<figcaption>{html.escape(caption)} ({html.escape(rel)})</figcaption></figure>"
            )
        parts.append("<details><summary>all figures of this demo</summary>")
        parts.append(_table(_scalars(result), ("figure", "value")) + "</details>")
        bench = [
            (r.get("metric"), r.get("value"), r.get("unit", ""), r.get("target") or "")
            for r in _bench_rows(family)
            if not str(r.get("metric", "")).endswith(("time", "seconds"))
        ]
        parts.append(f"<details><summary>benchmark (latent4d bench {html.escape(family)})</summary>")
        parts.append(_table(bench[:40], ("metric", "value", "unit", "target")) + "</details>")
    path = out_dir / "index.html"
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(parts), encoding="utf-8")
    return path


def _stage_functions(chosen: list[str], full: bool) -> dict:
    """name -> ``fn(folder, quick) -> dict``: the default stages (:mod:`latent4d.demo_stages`), or with
    ``full`` (and for stages without shipped weights, e.g. smoke) the family's own ``demo``."""
    import importlib

    from latent4d.demo_stages import STAGES

    stages = {}
    for fam in chosen:
        if not full and fam in STAGES:
            stages[fam] = STAGES[fam]
            continue
        try:
            mod = importlib.import_module(f"latent4d.{fam}.commands")
        except ModuleNotFoundError:
            continue
        if hasattr(mod, "demo"):
            stages[fam] = mod.demo
    return stages


def print_summary(summary: dict, out_dir: Path) -> None:
    """Each family's figures beside its benchmark's, then where the results are."""
    print(f"[latent4d] demo finished; results under {out_dir.resolve()} (open index.html):")
    for fam, res in summary.items():
        rows = comparison(fam, res or {})
        print(
            f"  {fam}:" + ("" if rows else " " + ", ".join(f"{k}={_fmt(v)}" for k, v in _scalars(res or {})))
        )
        for key, value, bench, _ in rows:
            print(f"    {key:<44} {_fmt(value):>12}   (benchmark: {bench})")


def main(
    only: list[str] | None, quick: bool, out: str, full: bool = False, make_weights: bool = False
) -> dict:
    """``latent4d demo [--only ...] [--quick] [--full] [--make-weights] [--out DIR]``."""
    from latent4d.config import FAMILIES

    chosen = only or list(FAMILIES)
    unknown = [f for f in chosen if f not in FAMILIES]
    if unknown:
        raise ConfigError(f"unknown demo stage '{unknown[0]}'. Stages: {', '.join(FAMILIES)}.")
    out_dir = Path(out)
    if make_weights:
        from latent4d.demo_weights import RUNS
        from latent4d.demo_weights import make_weights as make

        written = make([f for f in chosen if f in RUNS], out_dir / "weights_runs")
        return {fam: {"weights": str(p)} for fam, p in written.items()}
    stages = _stage_functions(chosen, full)
    mode = "quick" if quick else "full" if full else "default"
    summary = run_demo(list(stages), lambda fam, folder: stages[fam](folder, quick=quick), out_dir, mode)
    print_summary(summary, out_dir)
    return summary
