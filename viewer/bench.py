"""``latent4d bench viewer``: how long a hair edit takes to show in the viewer.

Issue target: after an edit, a preview of 10k strands updates in under a second on 2 cores. The
viewer runs without a window (``ViewerApp(headless=True)``: the same scene drawn by Open3D's
``OffscreenRenderer``) and every timing includes the redraw (``app.screenshot()``):

- file-only editing (``viewer.hair_edit.GuideEditor``) of a 10k-strand procedural hairstyle:
  extend / cut / curl a guide, the dense hair following;
- model-backed editing with a trained hair run (``HairPipeline``, the runs of ``latent4d bench
  hair``, trained here when missing): sample a style, the same guide edits (projection of the
  edited guides onto the hairstyle-VAE manifold + re-densification of the preview), an attribute
  slider step.

Each operation is timed ``repeats`` times (median). ``--quick``: 2k strands and tiny hair runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from latent4d.bench import BenchReport

EDITS = ("extend", "cut", "curl")


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _time_edits(report: BenchReport, app, metric: str, repeats: int, target: str | None) -> None:
    """One row per guide edit of ``EDITS`` on the hair panel's selected guide: the median seconds
    (of ``repeats``) of the edit at its default size plus the redraw; ``metric`` names the row
    (``{op}`` is the edit)."""
    h = app.hair
    for op in EDITS:
        report.add(
            metric.format(op=op),
            _median_seconds(lambda op=op: (getattr(h, op)(), app.screenshot()), repeats),
            "s",
            target,
        )


def bench_viewer(report: BenchReport, quick: bool) -> None:
    """Edit-to-redraw timings of the headless viewer: file-only, then with the hair bench's runs."""
    import torch

    from latent4d.hair.bench import train_runs
    from latent4d.hair.formats import write_hair
    from latent4d.hair.synthetic import generate_hairstyle

    n = 2000 if quick else 10000
    repeats = 2 if quick else 5
    work = Path(report.out_dir) / "viewer_work"
    work.mkdir(parents=True, exist_ok=True)
    hair_file = work / f"style_{n}.data"
    write_hair(hair_file, generate_hairstyle(3, n))
    target = None if quick else "<= 1"
    _file_editing(report, hair_file, repeats, target)
    info = train_runs(report, reuse=True)
    _model_editing(report, Path(info["style_dir"]), n, repeats, target)
    report.note(
        f"headless viewer (OffscreenRenderer, 800x600), {n}-strand preview, median of {repeats}; "
        f"torch threads {torch.get_num_threads()}; hair run {info['style_dir']}; times include the redraw "
        "and depend on machine load"
    )


def _file_editing(report: BenchReport, hair_file: Path, repeats: int, target: str | None) -> None:
    """File-only editing (``viewer.hair_edit.GuideEditor``): guide edits, the dense hair following."""
    from latent4d.viewer.controller import ViewerApp

    app = ViewerApp(800, 600, headless=True)
    try:
        app.load(hair_file)
        h = app.hair
        report.add("file: strands drawn", int(min(h.preview_size(), h.hairstyle.num_strands)), "")
        h.select_guide(5)
        _time_edits(report, app, "file: {op} + redraw", repeats, target)
        report.add(
            "file: undo + redraw", _median_seconds(lambda: (h.undo(), app.screenshot()), 1), "s", target
        )
    finally:
        app.close()


def _model_editing(report: BenchReport, run: Path, n: int, repeats: int, target: str | None) -> None:
    """Model-backed editing with a trained hair run: sample, guide edits (projection + densify), a slider."""
    from latent4d.viewer.controller import ViewerApp

    app = ViewerApp(800, 600, headless=True)
    try:
        t0 = time.perf_counter()
        app.load(run)
        report.add("model: load run", time.perf_counter() - t0, "s")
        h = app.hair
        h.set_dense_count(n)
        report.add(
            "model: sample a style + redraw",
            _median_seconds(lambda: (h.sample(3), app.screenshot()), repeats),
            "s",
            target,
        )
        report.add("model: strands drawn", int(h.preview_size()), "")
        h.select_guide(40)
        _time_edits(report, app, "model: {op} (projection + densify) + redraw", repeats, target)
        steps = iter(np.random.default_rng(0).uniform(-1, 1, size=1000))  # fixed slider positions: repeatable
        report.add(
            "model: attribute slider step + redraw",
            _median_seconds(
                lambda: (h.set_attribute("length", float(next(steps))), app.screenshot()),
                repeats,
            ),
            "s",
            target,
        )
        _projection_gap(report, h.session, h.session.latent)
    finally:
        app.close()


def _projection_gap(report: BenchReport, session, latent) -> None:
    """How far the viewer's fast projection (``session.steps`` at ``session.lr``) lands from a
    converged one (200 steps at 0.05): mean distance (mm) between the two results' decoded guides."""
    from latent4d.hair.densify import guide_world

    pipe = session.pipe
    kw = {"extend": {"length": 0.05}, "cut": {"fraction": 0.7}, "curl": {}}
    for op in EDITS:
        guides = []
        for steps, lr in ((session.steps, session.lr), (200, 0.05)):
            ed = pipe.editor(latent, strands=1000)
            getattr(ed, op)([40], steps=steps, lr=lr, **kw[op])
            guides.append(guide_world(pipe.strand_vae, ed.state.guide_map, pipe.grid)[0])
        gap = float((guides[0] - guides[1]).norm(dim=-1).mean()) * 1000.0
        report.add(f"model: {op} projection gap to converged", gap, "mm")
    report.note(
        f"viewer projection: {session.steps} Adam steps at lr {session.lr} from the current latent; the "
        "'projection gap' rows compare its guides with a 200-step projection at lr 0.05"
    )


BENCHMARKS = {"viewer": bench_viewer}
