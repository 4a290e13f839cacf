"""The hair CLI commands (subprocesses of the real console script)."""

from __future__ import annotations

import numpy as np

from latent4d.hair.formats import read_hair, write_hair
from latent4d.hair.synthetic import generate_hairstyle


def test_convert_between_formats(tmp_path, cli):
    h = generate_hairstyle(1, 50)
    write_hair(tmp_path / "a.data", h)
    cli("convert", str(tmp_path / "a.data"), str(tmp_path / "b.hair"), "--resample", "20", check=True)
    b = read_hair(tmp_path / "b.hair")
    assert b.counts.tolist() == [20] * 50
    assert np.allclose(b.roots, h.roots) and np.allclose(b.strands[:, -1], h.strands[:, -1], atol=1e-6)
    bad = cli("convert", str(tmp_path / "a.data"), str(tmp_path / "b.xyz"))
    assert bad.returncode == 2 and "unknown hair format" in bad.stderr
    (tmp_path / "c.data").write_bytes(b"\x05\x00\x00\x00")
    bad = cli("convert", str(tmp_path / "c.data"), str(tmp_path / "d.ply"))
    assert bad.returncode == 2 and "c.data" in bad.stderr and not (tmp_path / "d.ply").exists()


def _main(*args) -> tuple[int, str]:
    """Run ``latent4d <args>`` in-process (no interpreter start-up); returns (exit code, stderr)."""
    import contextlib
    import io

    from latent4d.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue()


def test_sample_cli_writes_files_and_pngs(style_run, strand_run, tmp_path, cli):
    run = style_run[0]
    r = cli("sample", f"run={run}", "n=1", "strands=300", "format=ply", f"out={tmp_path / 's'}", "temperature=0.7")
    assert r.returncode == 0, r.stderr[-2000:]
    dense = read_hair(tmp_path / "s" / "sample_00.ply")
    assert dense.num_strands == 300
    assert read_hair(tmp_path / "s" / "sample_00_guides.ply").num_strands > 600
    assert (tmp_path / "s" / "sample_00.png").stat().st_size > 1000
    code, err = _main("sample", f"run={strand_run[0]}", "n=1")
    assert code == 2 and "hairstyle-VAE run" in err
    code, err = _main("sample", f"run={run}", "format=obj")
    assert code == 2 and "not a hair format" in err


def test_evaluate_and_reconstruct_cli(style_run, tmp_path):
    import json

    from latent4d.hair.formats import write_points
    from latent4d.hair.reconstruct import synthetic_observation

    run = style_run[0]
    files = tmp_path / "files"
    for i in range(2):
        write_hair(files / f"h{i}.data", generate_hairstyle(2_000_000 + i, 800))
    code, err = _main("evaluate", f"run={run}", f"data.root={files}", f"out={tmp_path / 'eval.json'}",
                      "strands_per_file=200")
    assert code == 0, err[-2000:]
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["files"] == 2 and len(ev["per_file"]) == 2
    for k in ("pos_err_mm", "pos_err_p95_mm", "curv_err", "guide_err_mm", "densify_hybrid_mm", "densify_nearest_mm"):
        assert np.isfinite(ev[k]), k

    h = generate_hairstyle(2_000_003, 1500)
    obs, _ = synthetic_observation(h.strands, n_points=400)
    write_points(tmp_path / "obs.ply", obs.points)
    out = tmp_path / "rec"
    code, err = _main("reconstruct", "hair", f"run={run}", f"input={tmp_path / 'obs.ply'}", f"out={out}",
                      "strands=300", "inits=1", "steps=3", "format=hair", "render=false", "view=front")
    assert code == 0, err[-2000:]
    assert read_hair(out / "obs_hair.hair").num_strands == 300
    fit = json.loads((out / "obs_fit.json").read_text())
    assert fit["observed_points"] == 400 and np.isfinite(fit["chamfer_mm"])
    assert fit["view"] == [0.0, 0.0, 1.0] and np.isfinite(fit["silhouette_mm"]) and np.isfinite(fit["in_front_mm"])
    code, err = _main("reconstruct", "hair", f"run={run}", f"input={tmp_path / 'obs.ply'}", f"out={tmp_path / 'rv'}",
                      "view=sideways")
    assert code == 2 and "view 'sideways'" in err and not (tmp_path / "rv").exists()
    assert np.load(out / "obs_latent.npz")["latent"].shape == (32,)
    write_points(tmp_path / "nan.ply", np.full((4, 3), np.nan, np.float32))
    code, err = _main("reconstruct", "hair", f"run={run}", f"input={tmp_path / 'nan.ply'}", f"out={tmp_path / 'r2'}")
    assert code == 2 and "NaN" in err and not (tmp_path / "r2").exists()
    write_points(tmp_path / "far.ply", obs.points + 3.0)
    code, err = _main("reconstruct", "hair", f"run={run}", f"input={tmp_path / 'far.ply'}", f"out={tmp_path / 'r3'}")
    assert code == 2 and "head frame" in err and not (tmp_path / "r3").exists()
    (tmp_path / "weird.xyz").write_text("1 2 3\n")
    code, err = _main("reconstruct", "hair", f"run={run}", f"input={tmp_path / 'weird.xyz'}")
    assert code == 2 and "unknown observation format" in err
    code, err = _main("reconstruct", "hair", f"input={tmp_path / 'obs.ply'}")
    assert code == 2 and "run=" in err


def test_demo_quick(tmp_path):
    import json

    code, err = _main("demo", "--only", "hair", "--quick", "--out", str(tmp_path / "demo"))
    assert code == 0, err[-3000:]
    m = json.loads((tmp_path / "demo" / "hair" / "metrics.json").read_text())
    assert m["inside_head_fraction"] < 0.005 and m["root_on_scalp_mm"] < 0.1
    assert np.isfinite(m["strand_test_pos_err_mm"]) and np.isfinite(m["guide_test_err_mm"])
    assert (tmp_path / "demo" / "hair" / "hair_samples.png").stat().st_size > 1000
    assert read_hair(m["samples"][0]).num_strands == 2000


def test_reconstruct_script_reads_the_same_defaults(tmp_path, capsys):
    """scripts/reconstruct_hair.py passes only the options it was given, as overrides of
    conf/reconstruct/hair.yaml (so it has the CLI's defaults), and refuses what the CLI refuses."""
    import importlib.util
    from pathlib import Path

    from latent4d.hair.reconstruct import reconstruct_settings

    path = Path(__file__).resolve().parents[2] / "scripts" / "reconstruct_hair.py"
    spec = importlib.util.spec_from_file_location("reconstruct_hair_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    given = script.overrides(["--run", "r", "--input", "x.ply", "--strands", "300", "--no-render", "lr=0.02"])
    assert given == ["run=r", "input=x.ply", "strands=300", "render=false", "lr=0.02"]
    cfg, cli = reconstruct_settings(given), reconstruct_settings([])
    assert (cfg.strands, cfg.render, cfg.lr, cfg.steps, cfg.inits) == (300, False, 0.02, cli.steps, cli.inits)
    assert script.main(["--run", str(tmp_path), "--input", "x.ply", "bogus=1"]) == 2
    assert "unknown option 'bogus'" in capsys.readouterr().err
