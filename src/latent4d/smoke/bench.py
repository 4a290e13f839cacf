"""Trunk benchmarks: the smoke experiment end to end, and the shared geometry ops' speed."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from latent4d.bench import BenchReport


def bench_smoke(report: BenchReport, quick: bool) -> None:
    """Train smoke/sdf_sphere with its CPU default (``--quick``: preset ``smoke_quick``), mesh it
    (octree), compare with the ground truth (the procedural scene 0)."""
    from latent4d.smoke.metrics import mesh_chamfer_l1
    from latent4d.smoke.pipeline import SDFPipeline
    from latent4d.smoke.synthetic import sphere_and_box
    from latent4d.train import compose_config, run_training

    with tempfile.TemporaryDirectory() as tmp:
        ov = ["experiment=smoke/sdf_sphere", "callbacks=minimal", "logger=none"]
        ov += ["preset=smoke_quick"] if quick else []
        t0 = time.perf_counter()
        metrics = run_training(compose_config(ov, tmp))
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        mesh = SDFPipeline.from_pretrained(Path(tmp)).mesh(128)
        mesh_s = time.perf_counter() - t0
    report.add("train time (CPU default)", train_s, "s")
    report.add("test L1 SDF (clamped 0.1)", metrics["test/l1_sdf"], "", target="<= 0.01")
    report.add("Chamfer-L1 to ground truth", mesh_chamfer_l1(mesh, sphere_and_box(0)), "", target="<= 0.01")
    report.add("octree mesh time at 128^3", mesh_s, "s")


def bench_geometry(report: BenchReport, quick: bool) -> None:
    """k-NN / Chamfer on 100k x 100k points: Open3D op vs chunked torch vs scipy cKDTree."""
    from scipy.spatial import cKDTree

    from latent4d.geometry import chamfer_distance, knn

    n = 20_000 if quick else 100_000
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, 3, generator=g), torch.rand(n, 3, generator=g)

    def timed(fn, reps=3):
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
        return best, out

    t_o3d, (d_o3d, _) = timed(lambda: knn(x, y, 1, backend="open3d"))
    m = min(n, 20_000)  # the O(N*M) torch fallback (for GPUs) is slow on CPUs at 100k
    t_torch, (d_t, _) = timed(lambda: knn(x[:m], y[:m], 1, backend="torch"), reps=1)
    d_o3d_m, _ = knn(x[:m], y[:m], 1, backend="open3d")
    t_kd, (d_kd, _) = timed(lambda: cKDTree(y.numpy()).query(x.numpy(), k=1))
    err = float(np.abs(d_o3d[:, 0].sqrt().numpy() - d_kd).max())
    report.add(f"knn k=1 {n}x{n}: open3d", t_o3d, "s")
    report.add(f"knn k=1 {m}x{m}: torch (chunked cdist)", t_torch, "s")
    report.add(f"knn k=1 {n}x{n}: scipy cKDTree (reference)", t_kd, "s")
    report.add("knn max |distance - cKDTree|", err, "m", target="<= 1e-5")
    report.add("knn torch vs open3d max |d2 difference|", float((d_t - d_o3d_m).abs().max()), "", target="<= 1e-5")
    xr = x.clone().requires_grad_(True)
    t0 = time.perf_counter()
    c = chamfer_distance(xr, y)
    c.backward()
    report.add(f"chamfer {n}x{n} forward+backward", time.perf_counter() - t0, "s")


BENCHMARKS = {"smoke": bench_smoke, "geometry": bench_geometry}
