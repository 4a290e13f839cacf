"""The objects benchmark (quick, on the session's tiny database) and the quick demo stage."""

from __future__ import annotations

import json

import numpy as np
import torch


def test_octree_vs_dense_records(tiny_pipe):
    from latent4d.objects.bench import octree_vs_dense

    recs = octree_vs_dense(tiny_pipe, [tiny_pipe.codes(0)[0]], 64, samples=4000)
    r = recs[0]
    assert r["evals_dense"] == 64**3 and r["evals_octree"] < r["evals_dense"] / 2
    assert r["chamfer_voxels"] < 1.0
    assert r["faces_octree"] > 0 and r["s_octree"] > 0 and r["mb_dense"] >= 0


def test_quick_benchmark_reports_every_metric(tiny_run, tmp_path, monkeypatch):
    from latent4d.bench import BenchReport
    from latent4d.objects import bench

    monkeypatch.setattr(bench, "trained_database", lambda out_dir, quick: tiny_run[0])
    report = BenchReport("objects", quick=True, out_dir=tmp_path)
    bench.bench_objects(report, quick=True)
    names = [r["metric"] for r in report.records]
    for key in ("octree 64^3: fewer SDF evaluations", "octree 64^3: faster", "Chamfer octree vs dense",
                "median rotation error", "median translation error", "median size", "Chamfer reduction",
                "time per object", "NOCS mAP 5deg5cm", "ShAPO recipe (30 it.)"):
        assert any(key in n for n in names), key
    ev = next(r for r in report.records if r["metric"].startswith("octree 64^3: fewer"))
    assert ev["value"] > 2
    rot = next(r for r in report.records if "median rotation error" in r["metric"])
    assert rot["value"] is not None and np.isfinite(rot["value"])
    recs = json.loads((tmp_path / "objects_records.json").read_text())
    assert set(recs) == {"latent4d", "shapo"} and len(recs["latent4d"]["records"]) == 2
    # same objects and perturbations for both recipes
    a, b = recs["latent4d"]["records"], recs["shapo"]["records"]
    assert [r["start_trans_m"] for r in a] == [r["start_trans_m"] for r in b]
    path = report.write()
    assert json.loads(path.read_text())["name"] == "objects"


def test_quick_demo(tmp_path):
    from latent4d.objects.commands import demo

    n = torch.get_num_threads()
    res = demo(tmp_path, quick=True)
    torch.set_num_threads(n)
    assert res["reconstructed"] >= 1 and res["objects"] >= 1
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["median_trans_cm"] is not None and m["median_trans_cm"] < 10  # found the objects, roughly
    assert (tmp_path / "reconstruction" / "overlay.png").stat().st_size > 1000
    assert (tmp_path / "scene" / "depth.png").is_file()
    assert any(p.suffix == ".ply" for p in (tmp_path / "reconstruction").iterdir())
