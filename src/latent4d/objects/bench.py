"""``latent4d bench objects``: octree vs dense extraction, and pose / shape accuracy vs ShAPO's recipe.

1. Octree vs dense grid on trained SDFs (database codes, one per category) at 128^3 and 256^3:
   SDF evaluations, wall time of the whole extraction (evaluation + marching cubes), peak resident
   memory above the baseline, and the Chamfer-L1 between the two surfaces in voxels.
   Targets: >= 10x fewer evaluations and >= 5x faster at 128^3, >= 30x / >= 15x at 256^3,
   surfaces within one voxel.
2. Pose / shape on held-out synthetic scenes (unseen instances) from ground truth perturbed by
   20 deg / 4 cm / 20 % with category-mean codes, 100 iterations: median rotation (symmetry-aware),
   translation, size errors, shape Chamfer reduction, colour error, seconds per object, NOCS mAP;
   the same objects and perturbations through the official ShAPO loop's recipe (100 iterations and
   its own 200).

The latent database is trained once with ``experiment=objects/latent_db`` into
``<out>/objects_db`` (reused while its config is unchanged, :func:`latent4d.bench.train_or_reuse`;
``--quick`` uses ``preset=objects_quick``). Reconstruction settings: ``conf/reconstruct/objects.yaml``.
One function per benchmark: :func:`bench_octree`, :func:`bench_pose`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("latent4d.objects")

def trained_database(out_dir: Path, quick: bool) -> Path:
    """Train (or reuse, :func:`latent4d.bench.train_or_reuse`) the benchmark's latent database:
    ``experiment=objects/latent_db`` (``preset=objects_quick`` with ``quick``); returns its run directory."""
    from latent4d.bench import train_or_reuse

    run = Path(out_dir) / ("objects_db_quick" if quick else "objects_db")
    overrides = ["experiment=objects/latent_db", "callbacks=minimal", "logger=csv"]
    train_or_reuse(overrides + (["preset=objects_quick"] if quick else []), run)
    return run


class PeakRSS:
    """Peak resident set size above the level at entry (MB), sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.005):
        import psutil

        self.proc = psutil.Process(os.getpid())
        self.interval = interval
        self.peak = 0
        self.base = 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        import ctypes
        import gc

        gc.collect()
        try:  # hand freed heap memory back to the OS so that every measurement starts alike
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def mb(self) -> float:
        return (self.peak - self.base) / 2**20


def _counted(fn):
    count = [0]

    def wrapped(x):
        count[0] += len(x)
        return fn(x)

    return wrapped, count


def octree_vs_dense(pipe, codes: list[torch.Tensor], resolution: int, start_level: int = 2,
                    samples: int = 20000) -> list[dict]:
    """One record per code: evaluations, seconds, peak MB for both methods and the Chamfer in voxels."""
    from latent4d.geometry.meshing import dense_mesh
    from latent4d.geometry.octree import octree_mesh
    from latent4d.geometry.sampling import sample_surface
    from latent4d.geometry.sdf import MeshSDF

    level = int(round(np.log2(resolution)))
    out = []
    if codes:  # warm-up (lazy imports, thread pools) outside the measurements
        warm = pipe.shape_decoder.bind(codes[0].to(pipe.device))
        with torch.no_grad():
            octree_mesh(warm, 4, start_level)
            dense_mesh(warm, 16)
    for zs in codes:
        fn = pipe.shape_decoder.bind(zs.to(pipe.device))
        with torch.no_grad():
            f_oct, n_oct = _counted(fn)
            with PeakRSS() as mem_o:
                t0 = time.perf_counter()
                m_oct, _ = octree_mesh(f_oct, level, start_level)
                t_oct = time.perf_counter() - t0
            f_den, n_den = _counted(fn)
            with PeakRSS() as mem_d:
                t0 = time.perf_counter()
                m_den = dense_mesh(f_den, resolution)
                t_den = time.perf_counter() - t0
        rec = {"resolution": resolution, "evals_octree": n_oct[0], "evals_dense": n_den[0], "s_octree": t_oct,
               "s_dense": t_den, "mb_octree": mem_o.mb, "mb_dense": mem_d.mb, "faces_octree": len(m_oct.faces),
               "faces_dense": len(m_den.faces)}
        if len(m_oct.faces) and len(m_den.faces):
            # exact point-to-surface distances (Open3D), from samples of each mesh to the other mesh
            a, _, _ = sample_surface(m_oct.vertices, m_oct.faces, samples, 0)
            b, _, _ = sample_surface(m_den.vertices, m_den.faces, samples, 1)
            d_ab = MeshSDF(m_den, robust=False).unsigned_distance(a)
            d_ba = MeshSDF(m_oct, robust=False).unsigned_distance(b)
            vox = 2.0 / resolution
            rec["chamfer_voxels"] = 0.5 * (float(d_ab.mean()) + float(d_ba.mean())) / vox
            rec["hausdorff_voxels"] = max(float(d_ab.max()), float(d_ba.max())) / vox
        else:
            rec["chamfer_voxels"] = rec["hausdorff_voxels"] = float("inf")
        out.append(rec)
        log.info("octree vs dense %d^3: %s", resolution, rec)
    return out


def bench_objects(report, quick: bool) -> None:
    """``latent4d bench objects``: the latent database, then :func:`bench_octree` and :func:`bench_pose`."""
    from latent4d.objects.pipeline import ObjectsPipeline

    out_dir = Path(report.out_dir)
    t0 = time.time()
    run = trained_database(out_dir, quick)
    fit_s = None
    if (run / "metrics.json").is_file():
        fit_s = json.loads((run / "metrics.json").read_text()).get("fit_seconds")
    report.note(f"latent database: {run} (experiment=objects/latent_db{' preset=objects_quick' if quick else ''}), "
                f"ready in {time.time() - t0:.0f} s" + (f" (its training: {fit_s:.0f} s)" if fit_s else ""))
    pipe = ObjectsPipeline.from_pretrained(run)
    bench_octree(report, pipe, quick)
    bench_pose(report, pipe, quick)


def bench_octree(report, pipe, quick: bool) -> None:
    """Octree vs dense extraction on database shapes (one per category): 128^3 and 256^3 (64^3 quick)."""
    cats = sorted(set(pipe.database.categories))
    first = [pipe.database.categories.index(c) for c in cats]
    plans = [(64, first[:1])] if quick else [(128, first), (256, first[:3])]
    targets = {128: (">= 10", ">= 5"), 256: (">= 30", ">= 15"), 64: (None, None)}  # 64^3: quick plumbing only
    for res, idx in plans:
        if not idx:
            continue
        recs = octree_vs_dense(pipe, [pipe.codes(i)[0] for i in idx], res)
        ev = float(np.median([r["evals_dense"] / r["evals_octree"] for r in recs]))
        sp = float(np.median([r["s_dense"] / r["s_octree"] for r in recs]))
        report.add(f"octree {res}^3: fewer SDF evaluations (x)", ev, "x", targets[res][0])
        report.add(f"octree {res}^3: faster (x)", sp, "x", targets[res][1])
        report.add(f"octree {res}^3: Chamfer octree vs dense surface", float(max(r["chamfer_voxels"] for r in recs)),
                   "voxels", "<= 1")
        report.add(f"octree {res}^3: Hausdorff octree vs dense surface", float(max(r["hausdorff_voxels"] for r in recs)),
                   "voxels")
        report.add(f"octree {res}^3: evaluations octree / dense", int(np.median([r["evals_octree"] for r in recs])),
                   f"/ {recs[0]['evals_dense']}")
        report.add(f"octree {res}^3: seconds octree / dense",
                   f"{np.median([r['s_octree'] for r in recs]):.2f} / {np.median([r['s_dense'] for r in recs]):.2f}", "s")
        report.add(f"octree {res}^3: peak memory octree / dense",
                   f"{np.median([r['mb_octree'] for r in recs]):.0f} / {np.median([r['mb_dense'] for r in recs]):.0f}",
                   "MB")
        report.note(f"octree vs dense {res}^3 on {len(recs)} database shapes ({', '.join(cats[i] for i in range(len(idx)))}); "
                    "Chamfer / Hausdorff: exact point-to-mesh distances between the two surfaces (worst shape), in voxels (2/R); "
                    "memory: peak RSS increase")


def bench_pose(report, pipe, quick: bool) -> None:
    """Pose / shape on held-out scenes from perturbed ground truth: our recipe (settings of
    ``conf/reconstruct/objects.yaml``, 100 iterations, 30 quick) vs the ShAPO recipe (same, and 200)."""
    from latent4d.fileio import write_json_atomic
    from latent4d.objects.evaluation import compare_recipes, heldout_scenes
    from latent4d.objects.reconstruct import reconstruct_settings

    cats = sorted(set(pipe.database.categories))
    n_scenes = 1 if quick else 8
    scenes = heldout_scenes(n_scenes, categories=cats, seed=100, n_objects=(2, 2) if quick else (2, 4))
    iters = 30 if quick else 100
    config = reconstruct_settings([f"iterations={iters}"], command="bench objects")
    res = compare_recipes(pipe, scenes, config, seed=7, max_objects=2 if quick else None,
                          shapo_iterations=() if quick else (200,))
    _pose_records(report, res, iters)
    report.note(f"pose/shape: {res['latent4d']['summary']['objects']} objects in {n_scenes} held-out scenes (instances "
                "with seeds >= 1000, never in the database); same perturbations for every recipe. ShAPO recipe = raw 3x3 "
                "rotation + translation (Adam 1e-4), raw scale (1e-4), appearance code (Adam 1e-2), shape code (SGD "
                "8e-5), surface->observation nearest neighbours (pairs < 0.2) + colour; its colour-net fine-tuning is "
                "not reproduced. Size error compares metric half-diagonals.")
    path = write_json_atomic(Path(report.out_dir) / "objects_records.json",
                             {k: {"summary": v["summary"], "records": v["records"]} for k, v in res.items()})
    report.artifact("per-object records", path)


def _pose_records(report, res: dict, iters: int) -> None:
    """The pose / shape table of :func:`bench_pose`."""
    ours, shapo = res["latent4d"]["summary"], res["shapo"]["summary"]
    report.add(f"pose: median rotation error after {iters} it. (symmetry-aware)", ours["rot_deg"], "deg", "<= 5")
    report.add(f"pose: median translation error after {iters} it.", ours["trans_cm"], "cm", "<= 1")
    report.add(f"pose: median size (scale) error after {iters} it.", ours["scale_pct"], "%", "<= 5")
    report.add("shape: median Chamfer reduction vs category-mean start", ours["chamfer_reduction_pct"], "%", ">= 30")
    report.add("shape: median Chamfer-L1 start -> end (canonical units)",
               f"{ours['start_chamfer']:.4f} -> {ours['chamfer']:.4f}", "")
    report.add("colour: median error at the observed points", ours["color_err"], "/255")
    report.add("time per object", ours["seconds"], "s", "<= 10")
    report.add("objects reconstructed (not diverged)", f"{ours['ok']}/{ours['objects']}", "")
    for k in ("IoU25", "IoU50", "5deg5cm", "10deg5cm"):
        report.add(f"NOCS mAP {k}: latent4d / ShAPO recipe / start",
                   f"{ours['mAP_' + k]:.1f} / {shapo['mAP_' + k]:.1f} / {ours['start_mAP_' + k]:.1f}", "%")
    for name in [n for n in res if n != "latent4d"]:
        s = res[name]["summary"]
        its = name.split("_")[1] if "_" in name else iters
        report.add(f"ShAPO recipe ({its} it.): median rotation / translation / size error",
                   f"{s['rot_deg']:.2f} deg / {s['trans_cm']:.2f} cm / {s['scale_pct']:.1f} %", "")
        report.add(f"ShAPO recipe ({its} it.): Chamfer reduction, time per object",
                   f"{s['chamfer_reduction_pct']:.1f} % , {s['seconds']:.2f} s", "")
    report.add("start: median rotation / translation / size error",
               f"{ours['start_rot_deg']:.1f} deg / {ours['start_trans_cm']:.1f} cm / {ours['start_scale_pct']:.1f} %", "")


BENCHMARKS = {"objects": bench_objects}
