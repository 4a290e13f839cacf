import json


def test_smoke_demo_writes_render_and_metrics(cli, tmp_path):
    r = cli("demo", "--only", "smoke", "--quick", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "demo"
    m = json.loads((out / "smoke" / "metrics.json").read_text())
    assert m["chamfer_l1"] < 0.1  # a sphere and a box, roughly
    assert (out / "smoke" / "sdf_sphere.png").stat().st_size > 1000
    assert "smoke" in json.loads((out / "summary.json").read_text())
    assert "results under" in r.stdout
    # progress with an estimate, an index page gathering the figures and pictures, timings for next time
    assert "demo 1/1: smoke (about" in r.stdout and "left in all" in r.stdout
    page = (out / "index.html").read_text()
    assert "smoke/sdf_sphere.png" in page and "chamfer_l1" in page and "latent4d bench smoke" in page
    assert json.loads((out / "timings.json").read_text())["quick"]["smoke"] > 0


def test_demo_estimates_come_from_the_last_run_on_this_machine(tmp_path):
    from latent4d.demo import TYPICAL_MINUTES, estimates, run_demo

    calls = []
    run_demo(["a", "b"], lambda name, folder: calls.append(name) or {"x": 1.5}, tmp_path, quick=False)
    assert calls == ["a", "b"] and json.loads((tmp_path / "summary.json").read_text())["b"]["x"] == 1.5
    est = estimates(["a", "b", "hair"], tmp_path, quick=False)
    assert est["a"] < 5 and est["hair"] == TYPICAL_MINUTES["hair"][0] * 60
    (tmp_path / "timings.json").write_text("{not json")
    assert estimates(["a"], tmp_path, quick=True)["a"] == 300.0  # unreadable timings: typical figures
