"""Benchmarks: named runs that print a table and write ``outputs/bench/<name>.json`` (``--quick``:
``<name>_quick.json``, so a quick run never replaces a full result).

Each family module ``latent4d.<family>.bench`` exposes ``BENCHMARKS = {name: fn}`` where
``fn(report: BenchReport, quick: bool) -> None`` adds records. Records are
``{metric, value, unit, target, met}``; a target is a string such as ``"<= 3"`` or ``">= 0.85"``
and ``met`` is computed from it. ``latent4d bench readme`` copies the JSON files to
``docs/bench/`` and regenerates the README's results section from them.

A bench runs under one overall progress bar (:func:`latent4d.progress.overall`): the current stage's
name (what ``BenchReport.stage`` / :func:`train_or_reuse` / the last ``BenchReport.add`` says), the
elapsed time and, where a run of the same bench and size was recorded before
(:func:`last_duration`), "~X left of ~Y". Ctrl-C stops it with a message saying where it stopped;
the result file is written only after the bench finished (atomically), so an interrupted bench
leaves the previous file, ``docs/bench`` and the README as they were (the command exits with 130).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latent4d import progress
from latent4d.config import FAMILIES
from latent4d.errors import ConfigError
from latent4d.fileio import write_json_atomic

_TARGET = re.compile(r"^\s*(<=|>=|<|>|==)\s*([-+0-9.eE]+)\s*$")


def check_target(value: Any, target: str | None) -> bool | None:
    """Whether ``value`` meets ``target`` (``"<= 3"``, ``">= 0.85"``...); None without a numeric target."""
    if target is None or value is None:
        return None
    m = _TARGET.match(str(target))
    if not m:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(v):
        return False
    op, t = m.group(1), float(m.group(2))
    return {"<=": v <= t, ">=": v >= t, "<": v < t, ">": v > t, "==": v == t}[op]


class BenchReport:
    """Collects benchmark records and writes them with the machine, versions and command."""

    def __init__(self, name: str, quick: bool = False, out_dir: str | Path = "outputs/bench"):
        self.name, self.quick = name, quick
        self.out_dir = Path(out_dir)
        self.records: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.artifacts: dict[str, str] = {}
        self._t0 = time.time()

    def add(self, metric: str, value: Any, unit: str = "", target: str | None = None,
            met: bool | None = None, **extra: Any) -> dict[str, Any]:
        if isinstance(value, float) and not math.isfinite(value):
            value = None if math.isnan(value) else value
        rec = {"metric": metric, "value": value, "unit": unit, "target": target,
               "met": check_target(value, target) if met is None else bool(met), **extra}
        self.records.append(rec)
        progress.stage(f"measured {metric}")
        return rec

    def stage(self, name: str) -> None:
        """Name the stage now running (shown by the bench's progress bar)."""
        progress.stage(name)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def artifact(self, label: str, path: str | Path) -> None:
        self.artifacts[label] = str(path)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "quick": self.quick, "records": self.records, "notes": self.notes,
                "artifacts": self.artifacts, "machine": machine_info(), "versions": versions(),
                "command": "latent4d " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "duration_s": round(time.time() - self._t0, 1)}

    def write(self) -> Path:
        path = self.out_dir / result_filename(self.name, self.quick)
        write_json_atomic(path, self.to_dict())
        return path

    def table(self) -> str:
        rows = [("metric", "value", "unit", "target", "met")]
        for r in self.records:
            v = r["value"]
            vs = f"{v:.4g}" if isinstance(v, float) else str(v)
            met = {True: "yes", False: "NO", None: ""}[r["met"]]
            rows.append((r["metric"], vs, r["unit"], r["target"] or "", met))
        w = [max(len(str(r[i])) for r in rows) for i in range(5)]
        return "\n".join("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) for r in rows)


def machine_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}
    try:
        info["load_avg_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("latent4d", "torch", "pytorch-lightning", "diffusers", "open3d-cpu", "open3d", "trimesh"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    try:
        root = Path(__file__).resolve().parents[2]
        out["git"] = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "src"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        if out["git"] and dirty:  # the figures come from uncommitted package code
            out["git"] += "-dirty"
    except Exception:  # noqa: BLE001
        pass
    return out


TRAINING_KEYS = ("family", "name", "seed", "data", "model", "trainer", "autoencoder_path")


def finished_run_matches(run: str | Path, cfg, keys: tuple[str, ...] = TRAINING_KEYS) -> bool:
    """True when ``run`` holds a finished training (``metrics.json``, ``models/``, ``config.yaml``)
    whose resolved training settings (``keys`` of the config, less ``trainer.default_root_dir``: where the
    run was written, so a moved or copied run folder is still reused) equal those of ``cfg``; benches use it
    to reuse a run instead of retraining. An unreadable saved config counts as different."""
    from omegaconf import OmegaConf

    run = Path(run)
    if not ((run / "metrics.json").is_file() and (run / "config.yaml").is_file() and (run / "models").is_dir()):
        return False

    def settings(c) -> dict:
        d = OmegaConf.to_container(c, resolve=True)
        if not isinstance(d, dict):
            return {}
        if isinstance(d.get("trainer"), dict):
            d["trainer"].pop("default_root_dir", None)
        return {k: d.get(k) for k in keys}

    try:
        return settings(OmegaConf.load(run / "config.yaml")) == settings(cfg)
    except Exception:  # noqa: BLE001 - an old or broken config: retrain
        return False


def proc_status_kb(field: str) -> int | None:
    """``VmRSS`` / ``VmHWM`` (peak) of this process in KB from /proc/self/status (None where absent). Unlike
    ``ru_maxrss`` the peak belongs to this process image, not inherited from the parent across ``exec``."""
    try:
        with open("/proc/self/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith(field + ":")), None)
    except OSError:
        return None


def in_fresh_process(fn: Callable, *args, timeout: float | None = None):
    """``fn(*args)`` in a fresh spawned process (its own imports, threads and memory peak) -> its result;
    ``fn`` must be a module-level function. Benchmarks time and measure memory this way."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result(timeout=timeout)


def train_or_reuse(overrides: list[str], run: str | Path, key: dict | None = None,
                   reuse: bool = True) -> tuple[dict[str, float], bool]:
    """Train ``overrides`` into the bench's own folder ``run``, or reuse a finished run there.

    A run is reused when its resolved training settings equal the new config's
    (:func:`finished_run_matches`) and, with ``key`` (anything else the result depends on, e.g.
    hashes of the weights of linked runs), when ``run/bench_key.json`` holds the same key. Otherwise
    the folder is cleared (:func:`latent4d.train.replace_run`) and trained again. Returns
    ``(metrics, reused)``; the metrics are those of ``run/metrics.json``.
    """
    import json

    from latent4d.fileio import write_json_atomic
    from latent4d.train import compose_config, replace_run, run_training

    run = Path(run)
    cfg = compose_config(list(overrides), run)
    stamp = run / "bench_key.json"
    if reuse and finished_run_matches(run, cfg):
        saved = json.loads(stamp.read_text()).get("key") if stamp.is_file() else None
        if key is None or saved == key:
            progress.stage(f"reusing the finished run {run.name}")
            return json.loads((run / "metrics.json").read_text()), True
    progress.stage(f"training {run.name}")
    replace_run(run)
    metrics = run_training(cfg)
    if key is not None:
        write_json_atomic(stamp, {"key": key})
    return metrics, False


def registry() -> dict[str, Callable[[BenchReport, bool], None]]:
    """All benchmarks of the families present (``latent4d.<family>.bench.BENCHMARKS``) and of the
    viewer (``latent4d.viewer.bench``)."""
    out: dict[str, Callable] = {}
    for fam in (*FAMILIES, "viewer"):
        try:
            mod = importlib.import_module(f"latent4d.{fam}.bench")
        except ModuleNotFoundError as e:
            if e.name in (f"latent4d.{fam}", f"latent4d.{fam}.bench", "open3d"):
                continue
            raise
        out.update(getattr(mod, "BENCHMARKS", {}))
    return out


#: where recorded benchmark results are kept (``latent4d bench readme`` copies them there)
DOCS_BENCH = Path("docs") / "bench"


def result_filename(name: str, quick: bool) -> str:
    """``<name>.json`` for a full run, ``<name>_quick.json`` for a quick one."""
    return f"{name}_quick.json" if quick else f"{name}.json"


def last_duration(name: str, quick: bool, out_dir: str | Path = "outputs/bench") -> tuple[float, str] | None:
    """(seconds, file) of the most recently finished recorded run of bench ``name`` at the same size
    (its ``quick`` flag): in ``<out_dir>`` (this machine's last run) or ``docs/bench`` (beside the working
    folder, or beside the package in a checkout), under :func:`result_filename` or ``<name>.json`` (where
    quick runs were written before they had their own name); None when there is none (the progress bar
    then shows no estimate)."""
    here = Path(__file__).resolve().parents[2] / DOCS_BENCH
    found: list[tuple[str, float, str]] = []
    files = dict.fromkeys((result_filename(name, quick), f"{name}.json"))
    for path in dict.fromkeys(Path(d) / f for d in (out_dir, DOCS_BENCH, here) for f in files):
        try:
            rec = json.loads(path.read_text())
            seconds = float(rec["duration_s"])
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if rec.get("name") == name and bool(rec.get("quick")) == bool(quick) and seconds > 0:
            found.append((str(rec.get("finished", "")), seconds, str(path)))
    if not found:
        return None
    _, seconds, where = max(found)
    return seconds, where


def run_bench(name: str, quick: bool = False, out_dir: str | Path = "outputs/bench") -> BenchReport:
    """Run bench ``name`` under an overall progress bar, then write ``<out_dir>/<name>.json`` (quick:
    ``<name>_quick.json``) and print its table. On Ctrl-C: a message naming the stage and what was (not)
    written, then ``KeyboardInterrupt`` again (the command line exits with 130)."""
    benches = registry()
    if name not in benches:
        raise ConfigError(f"unknown benchmark '{name}'. Available: {', '.join(sorted(benches))}.")
    report = BenchReport(name, quick, out_dir)
    last = last_duration(name, quick, out_dir)
    label = f"bench {name}{' --quick' if quick else ''}"
    run = progress.Overall(label, None)
    try:
        with progress.overall(label, last[0] if last else None) as run:
            benches[name](report, quick)
    except KeyboardInterrupt:  # also a Ctrl-C that Lightning turned into sys.exit(1) (progress.overall)
        target = report.out_dir / result_filename(name, quick)
        kept = "the previous one is unchanged" if target.is_file() else "there was none before"
        at = f" during '{run.stage_name}'" if run.stage_name else ""
        print(f"[latent4d] {label} interrupted after {progress.duration_text(run.elapsed)}{at}: {target} was "
              f"not written ({kept}); docs/bench and the README are untouched", file=sys.stderr, flush=True)
        raise
    path = report.write()
    print(report.table())
    for n in report.notes:
        print(f"note: {n}")
    print(f"[latent4d] wrote {path}")
    return report


README_START, README_END = "<!-- BENCH:START -->", "<!-- BENCH:END -->"


def render_markdown(results: list[dict[str, Any]]) -> str:
    parts = []
    for res in sorted(results, key=lambda r: r["name"]):
        m = res.get("machine", {})
        parts.append(f"### `{res['name']}`{' (quick)' if res.get('quick') else ''}\n")
        parts.append(f"Command: `{res.get('command', '')}` — {res.get('finished', '')}, "
                     f"{m.get('cpu_count', '?')} CPUs, {m.get('torch_threads', '?')} torch thread(s)"
                     f"{', 1-min load at the end ' + str(m['load_avg_1min']) if 'load_avg_1min' in m else ''}"
                     f"{', GPU ' + m['gpu'] if m.get('gpu') else ''}, "
                     f"commit {res.get('versions', {}).get('git', '?')}, {res.get('duration_s', '?')} s.\n")
        parts.append("| metric | value | unit | target | met |\n|---|---|---|---|---|")
        for r in res["records"]:
            v = r["value"]
            vs = f"{v:.4g}" if isinstance(v, float) else str(v)
            met = {True: "yes", False: "**no**", None: ""}[r.get("met")]
            parts.append(f"| {r['metric']} | {vs} | {r.get('unit', '')} | {r.get('target') or ''} | {met} |")
        for n in res.get("notes", []):
            parts.append(f"\n_{n}_")
        parts.append("")
    return "\n".join(parts)


def update_readme(readme: str | Path = "README.md", src: str | Path = "outputs/bench",
                  store: str | Path = "docs/bench") -> Path:
    """Copy ``src/*.json`` into ``store`` and rewrite the README section between the BENCH markers."""
    from latent4d.fileio import write_bytes_atomic

    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    for f in sorted(Path(src).glob("*.json")):
        write_bytes_atomic(store / f.name, f.read_bytes())
    loaded = [json.loads(f.read_text()) for f in sorted(store.glob("*.json"))]
    # reports only (benchmarks may write companion files, e.g. per-object records)
    results = [r for r in loaded if isinstance(r, dict) and "name" in r and "records" in r]
    text = Path(readme).read_text()
    if README_START not in text or README_END not in text:
        raise ConfigError(f"{readme} has no {README_START} ... {README_END} section")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    body = render_markdown(results)
    write_bytes_atomic(readme, f"{head}{README_START}\n{body}\n{README_END}{tail}".encode())
    return Path(readme)
