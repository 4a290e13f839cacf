import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from omegaconf import OmegaConf

from latent4d.errors import ConfigError, InputError
from latent4d.motion import commands


def test_demo_quick_outputs(demo_result):
    out = demo_result["out"]
    folder = out / "reconstruction" / "sample_00"
    assert (folder / "mesh_0000.ply").is_file() and (folder / "mesh_0004.ply").is_file()
    assert (folder / "trajectories.npz").is_file() and (out / "metrics.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    print("quick demo:", metrics)
    assert 0.0 <= metrics["iou"] <= 1.0 and metrics["frames"] == 5 and np.isfinite(metrics["corr_l2"])
    for name in ("shape_ae", "deform_ae", "shape_diffusion", "deform_diffusion"):
        assert (out / "runs" / name / "models").is_dir()
    assert (out / "runs" / "deform_diffusion" / "models" / "deform_ae" / "config.json").is_file()


def _input_folder(tmp_path, surface, counts=(60, 60, 60, 60)):
    d = tmp_path / "clouds"
    d.mkdir(exist_ok=True)
    for t, n in enumerate(counts):
        np.savez(d / f"frame_{t:03d}.npz", points=surface[t][:n] * 2.0 + 5.0)  # world units
    return d


def test_reconstruct_command_writes_samples(tiny_runs, blob_clip, tmp_path):
    seq, surface = blob_clip
    inp = _input_folder(tmp_path, surface)
    tmpl = tmp_path / "template.ply"
    trimesh.Trimesh(seq.vertices[0] * 2.0 + 5.0, seq.faces).export(tmpl)
    gt = tmp_path / "gt.npz"
    np.savez(gt, vertices=seq.vertices * 2.0 + 5.0, faces=seq.faces)
    out = tmp_path / "rec"
    args = [
        f"input={inp}",
        f"shape_run={tiny_runs['shape_diffusion']}",
        f"deform_run={tiny_runs['deform_diffusion']}",
        "steps=2",
        "n_obs=40",
        "render=false",
        "resolution=32",
    ]
    # the default recipe with its final fits cut to 8 steps (the full 150 take minutes on 2 cores)
    short = ["deform_guidance.final_iters=8", "deform_guidance.final_iters_partial=8"]
    summary = commands.reconstruct(
        [*args, *short, f"out={out}", "num_samples=2", f"template={tmpl}", f"gt={gt}"]
    )
    assert len(summary["samples"]) == 2
    for s in range(2):
        z = np.load(out / f"sample_{s:02d}" / "trajectories.npz")
        assert z["vertices"].shape == (4, seq.vertices.shape[1], 3)
        # outputs are back in world units: frame 0 is the template
        np.testing.assert_allclose(z["vertices"][0], seq.vertices[0] * 2.0 + 5.0, atol=1e-4)
        assert z["observations"].shape == (4, 40, 3)
    info = json.loads((out / "sample_00" / "reconstruction.json").read_text())
    assert info["metrics"]["corr_l2"][0] == pytest.approx(0.0, abs=1e-4)  # template = truth at frame 0
    assert set(json.loads((out / "summary.json").read_text())) >= {"samples", "seconds", "metrics"}
    assert info["guidance"] == 1.0 and info["fuse"] is True  # guided and fused by default
    # every setting is recorded: the ones given and the defaults of conf/reconstruct/motion.yaml
    assert info["settings"]["deform_guidance"]["final_iters"] == 8
    assert (
        info["settings"]["deform_guidance"]["lr"] == 0.05 and info["settings"]["shape_guidance"]["iters"] == 4
    )
    assert info["frame0"] == "template"  # where the tracked frame-0 surface came from
    # guidance=0: the models' plain samples; nested settings of conf/reconstruct/motion.yaml are options too
    plain = commands.reconstruct([*args, f"out={tmp_path / 'plain'}", "guidance=0"])
    fused = commands.reconstruct([*args, f"out={tmp_path / 'fused'}", "deform_guidance.final_iters=10"])
    assert fused["settings"]["deform_guidance"]["final_iters"] == 10
    for summ in (plain, fused):
        z = np.load(Path(summ["samples"][0]) / "trajectories.npz")
        assert z["vertices"].shape[0] == 4 and np.isfinite(z["vertices"]).all()


def test_reconstruct_bad_inputs(tiny_runs, blob_clip, tmp_path):
    _, surface = blob_clip
    runs = [f"shape_run={tiny_runs['shape_diffusion']}", f"deform_run={tiny_runs['deform_diffusion']}"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="empty sequence"):
        commands.reconstruct([f"input={empty}", f"out={tmp_path / 'o1'}", *runs])
    one = tmp_path / "one"
    one.mkdir()
    np.savetxt(one / "a.xyz", surface[0][:50])
    with pytest.raises(InputError, match="at least 2 frames"):
        commands.reconstruct([f"input={one}", f"out={tmp_path / 'o2'}", *runs])
    with pytest.raises(ConfigError, match="shape_run"):
        commands.reconstruct([f"input={empty}"])
    with pytest.raises(ConfigError, match="unknown option"):
        commands.reconstruct([f"input={one}", "colour=red"])
    with pytest.raises(ConfigError, match="accumulate"):  # canonical accumulation is gone (it did not help)
        commands.reconstruct([f"input={one}", "accumulate=1", *runs])
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_track_script_reads_the_same_defaults(tiny_runs, tmp_path):
    """scripts/track_4d.py passes only what its command line gives; the rest is conf/reconstruct/motion.yaml."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "track_4d", Path(__file__).parents[2] / "scripts" / "track_4d.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    a = mod.parser().parse_args(["in", "out", "--steps", "3", "--no-fuse", "--set", "deform_guidance.lr=0.1"])
    assert mod.overrides(a) == ["input=in", "out=out", "steps=3", "fuse=false", "deform_guidance.lr=0.1"]
    cfg = commands.reconstruct_config(mod.overrides(a))
    assert (cfg.steps, cfg.fuse, cfg.resolution, cfg.deform_guidance.lr) == (3, False, 128, 0.1)
    assert (
        mod.main(
            [
                "in",
                str(tmp_path / "o"),
                "--shape-run",
                str(tiny_runs["shape_diffusion"]),
                "--deform-run",
                str(tiny_runs["deform_diffusion"]),
                "--steps",
                "0",
            ]
        )
        == 2
    )
    assert not (tmp_path / "o").exists()


def test_cli_reconstruct_reports_nan_frames(cli, tiny_runs, tmp_path):
    d = tmp_path / "nan"
    d.mkdir()
    np.savetxt(d / "a.xyz", np.zeros((10, 3)))
    np.savetxt(d / "b.xyz", np.full((10, 3), np.nan))
    r = cli(
        "reconstruct",
        "motion",
        f"input={d}",
        f"out={tmp_path / 'o'}",
        f"shape_run={tiny_runs['shape_diffusion']}",
        f"deform_run={tiny_runs['deform_diffusion']}",
        "render=false",
    )
    assert r.returncode == 2 and "NaN" in r.stderr and "b.xyz" in r.stderr
    assert not (tmp_path / "o").exists()


def test_sample_and_evaluate_each_run(tiny_runs, tmp_path):
    from latent4d.config import load_run_config

    for name in ("shape_ae", "deform_ae", "shape_diffusion", "deform_diffusion"):
        run = tiny_runs[name]
        cfg = load_run_config(run)
        res = commands.evaluate(
            run,
            cfg,
            OmegaConf.create({"resolution": 24, "steps": 2, "n": 1, "n_iou": 2000, "n_chamfer": 2000}),
        )
        assert (run / "evaluation.json").is_file()
        key = {"shape_ae": "iou", "deform_ae": "corr_rel"}.get(name)
        if key:
            assert np.isfinite(res[key])
        if name in ("deform_ae", "deform_diffusion"):
            out = commands.sample(
                run,
                cfg,
                OmegaConf.create({"out": str(tmp_path / name), "resolution": 24, "steps": 2, "n_obs": 48}),
            )
            folder = out.get("folder") or out["folders"][0]
            assert (tmp_path / name / "sample_00" / "trajectories.npz").is_file() and folder


def test_bench_key_follows_the_linked_autoencoder_weights(tmp_path):
    """A diffusion run trained on an autoencoder that was retrained at the same path is not reused."""
    from latent4d.motion.bench import _linked_weights

    w = tmp_path / "ae" / "models" / "ae" / "diffusion_pytorch_model.safetensors"
    w.parent.mkdir(parents=True)
    w.write_bytes(b"weights v1")
    ov = [f"shape_ae_run={tmp_path / 'ae'}", "trainer.max_steps=10"]
    first = _linked_weights(ov)
    assert list(first) == ["shape_ae_run"] and first == _linked_weights(ov)
    w.write_bytes(b"weights v2")
    assert _linked_weights(ov) != first
    assert _linked_weights(["trainer.max_steps=10"]) == {}
