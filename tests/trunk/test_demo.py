import json

import numpy as np
import pytest


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
    # the demo's figure is printed beside the benchmark's
    assert "chamfer_l1" in r.stdout and "(benchmark: " in r.stdout


def test_demo_estimates_come_from_the_last_run_on_this_machine(tmp_path):
    from latent4d.demo import TYPICAL_MINUTES, estimates, run_demo

    calls = []
    run_demo(["a", "b"], lambda name, folder: calls.append(name) or {"x": 1.5}, tmp_path, mode="default")
    assert calls == ["a", "b"] and json.loads((tmp_path / "summary.json").read_text())["b"]["x"] == 1.5
    est = estimates(["a", "b", "hair"], tmp_path, "default")
    assert est["a"] < 5 and est["hair"] == TYPICAL_MINUTES["default"]["hair"] * 60
    assert estimates(["hair"], tmp_path, "full")["hair"] == TYPICAL_MINUTES["full"]["hair"] * 60  # per mode
    (tmp_path / "timings.json").write_text("{not json")
    assert estimates(["a"], tmp_path, "quick")["a"] == 300.0  # unreadable timings: typical figures


def test_index_shows_each_figure_beside_the_benchmark_and_the_stage_figures(tmp_path):
    from latent4d.demo import comparison, write_index
    from latent4d.demo_figures import panel_grid

    fig = panel_grid(
        [np.full((40, 60, 3), 90, np.uint8)], ["a panel"], tmp_path / "binary" / "grid.png", "title"
    )
    (tmp_path / "binary" / "panels").mkdir()
    (tmp_path / "binary" / "panels" / "unlisted.png").write_bytes(fig.read_bytes())
    result = {"fd_guidance_0": 12.5, "figures": [[str(fig), "the samples"]]}
    rows = comparison("binary", result)
    assert rows and rows[0][0] == "fd_guidance_0" and rows[0][1] == 12.5 and rows[0][3] == "binary S=16: FD"
    page = write_index(tmp_path, {"binary": result}).read_text()
    assert "binary/grid.png" in page and "the samples" in page and "binary S=16: FD" in page
    assert "unlisted.png" not in page  # only the figures the stage lists


def test_pictures_are_cropped_to_their_subject_and_labelled(tmp_path):
    from latent4d.demo_figures import panel_grid, read_png, trim

    img = np.full((200, 300, 3), 255, np.uint8)
    img[150:170, 20:60] = 0  # a small subject in a corner: wide empty bands around it
    cropped = trim(img, margin=4)
    assert cropped.shape == (28, 48, 3)
    assert trim(np.full((10, 10, 3), 255, np.uint8)).shape == (10, 10, 3)  # nothing to crop to
    path = panel_grid([img, img], ["left", "right"], tmp_path / "grid.png", title="Two", cols=2, cell=100)
    sheet = read_png(path)
    assert sheet.shape[0] < 200 and sheet.shape[1] > 2 * 100  # two panels side by side, one row, a title
    ink = (sheet < 128).all(-1)
    panel_rows = ink[30:130].mean()
    assert panel_rows > 0.2  # the subject fills its panel (scaled up after cropping)
    assert ink[130:150].any()  # labels under the panels
    with pytest.raises(ValueError, match="one label per image"):
        panel_grid([img], [], tmp_path / "bad.png")


def test_long_labels_widen_narrow_panels_instead_of_running_into_the_next(tmp_path):
    from PIL import Image, ImageDraw

    from latent4d.demo_figures import _font, panel_grid, read_png

    tall = np.full((200, 60, 3), 255, np.uint8)
    tall[20:180, 10:50] = 0
    labels = [f"reconstruction, frame {t}" for t in range(4)]
    sheet = read_png(panel_grid([tall] * 4, labels, tmp_path / "g.png", cols=4, cell=100))
    text = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(labels[0], font=_font(13))
    assert sheet.shape[1] >= 4 * (text + 6)  # each panel at least as wide as its label


def test_shipped_weights_load_through_the_pipelines_and_stay_small():
    """weights/demo: one pipeline folder per family, float16 safetensors, a few MB in all, loading into
    float32 networks through each family's from_pretrained (latent4d.trust.load_network)."""
    from safetensors import safe_open

    from latent4d.demo_weights import RUNS, WEIGHTS_DIR, family_pipeline_class, read_info, weights_folder

    total = sum(p.stat().st_size for p in WEIGHTS_DIR.rglob("*") if p.is_file())
    assert total < 16e6, f"weights/demo holds {total / 1e6:.1f} MB"
    for family in RUNS:
        folder = weights_folder(family)
        info = read_info(folder)
        assert info["family"] == family and "--make-weights" in info["made_by"] and info["training"]
        files = list(folder.rglob("diffusion_pytorch_model.safetensors"))
        assert files
        with safe_open(files[0], "pt") as f:
            assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} <= {"F16", "I64", "BOOL", "I32"}
        pipe = family_pipeline_class(family).from_pretrained(folder)
        net = next(iter(pipe.components.values()))
        assert next(net.parameters()).dtype.is_floating_point and next(net.parameters()).element_size() == 4


def test_missing_weights_name_the_command_that_makes_them(tmp_path, monkeypatch):
    from latent4d.demo_weights import weights_folder
    from latent4d.errors import ConfigError

    monkeypatch.setenv("LATENT4D_DEMO_WEIGHTS", str(tmp_path))
    with pytest.raises(ConfigError, match=r"latent4d demo --make-weights --only hair"):
        weights_folder("hair")


def test_make_weights_trains_and_ships_a_loadable_half_precision_folder(tmp_path, monkeypatch):
    """The --make-weights path end to end for the binary family at the --quick sizes."""
    import latent4d.demo_weights as dw
    from latent4d.binary.pipeline import BinaryLatentPipeline

    quick = [(n, e, p.replace("_demo_weights", "_demo_quick"), links) for n, e, p, links in dw.RUNS["binary"]]
    monkeypatch.setitem(dw.RUNS, "binary", quick)
    written = dw.make_weights(["binary"], tmp_path / "runs", root=tmp_path / "weights")
    folder = written["binary"]
    assert (folder / "pipeline.json").is_file() and not list(folder.rglob("*.ckpt"))
    info = dw.read_info(folder)
    assert info["training"]["ae_digits"]["train_seconds"] > 0 and info["dtype"] == "float16"
    pipe = BinaryLatentPipeline.from_pretrained(folder)
    ref = BinaryLatentPipeline.from_pretrained(tmp_path / "runs" / "binary" / "diffusion_digits")
    a = dict(pipe.denoiser.named_parameters())
    for name, p in ref.denoiser.named_parameters():
        assert (a[name] - p).abs().max() <= 1e-3 * max(1.0, p.abs().max().item())  # float16 rounding only
    monkeypatch.setenv("LATENT4D_DEMO_WEIGHTS", str(tmp_path / "weights"))
    assert dw.weights_folder("binary") == folder


def test_default_demo_uses_the_shipped_weights_stages_and_full_the_families_own(tmp_path):
    from latent4d.demo import _stage_functions, main
    from latent4d.demo_stages import STAGES
    from latent4d.errors import ConfigError
    from latent4d.hair import commands as hair_commands
    from latent4d.smoke import commands as smoke_commands

    default = _stage_functions(["smoke", "hair"], full=False)
    assert (
        default["hair"] is STAGES["hair"] and default["smoke"] is smoke_commands.demo
    )  # smoke has no weights
    assert _stage_functions(["hair"], full=True)["hair"] is hair_commands.demo
    with pytest.raises(ConfigError, match="unknown demo stage 'nope'"):
        main(["nope"], quick=True, out=str(tmp_path))


def test_every_demo_weights_preset_composes_with_its_experiment(tmp_path):
    """The --make-weights runs: each preset composes with its experiment and builds its data module
    and model config (no training), so a wrong key fails here rather than an hour into --make-weights."""
    from hydra.utils import instantiate

    from latent4d.config import check_value_types
    from latent4d.demo_weights import RUNS
    from latent4d.train import compose_config

    for family, runs in RUNS.items():
        for name, experiment, preset, links in runs:
            overrides = [f"experiment={experiment}", f"preset={preset}"]
            overrides += [f"{key}={tmp_path / target}" for key, target in links.items()]
            cfg = compose_config(overrides, tmp_path / family / name)
            assert cfg.family == family and "max_time" in cfg.trainer
            check_value_types(cfg.model, f"{family}/{name}")
            instantiate(cfg.data)
