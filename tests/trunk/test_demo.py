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
