"""Shape decoder, appearance net, latent database, data module and the latent_db training run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from latent4d.errors import InputError
from latent4d.objects.appearance import AppearanceNet
from latent4d.objects.database import LatentDatabase
from latent4d.objects.sdf import ShapeDecoder


def test_paper_decoder_layout_and_latent_reinjection():
    dec = ShapeDecoder()  # paper defaults: 8 x 512, re-injection at layer 4, raw xyz
    assert len(dec.layers) == 8
    assert dec.in_dim == 64 + 3
    assert dec.layers[3].out_features == 512 - 67  # so that [h, input] is 512 wide at layer 4
    assert dec.layers[4].in_features == 512
    z = torch.randn(2, 64)
    x = torch.rand(2, 100, 3) * 2 - 1
    y = dec(x, z)
    assert y.shape == (2, 100) and y.abs().max() < 1  # tanh
    # the code really enters at layer 4 too: changing it changes layer-4 input beyond h
    assert torch.allclose(dec(x[0], z[0]), y[0], atol=1e-6)  # (N, 3) with a (D,) code


@pytest.mark.parametrize("kwargs", [{}, {"hidden": 128, "num_layers": 5, "latent_in": [3], "num_freqs": 4},
                                    {"hidden": 96, "num_layers": 4, "latent_in": [], "num_freqs": 0}])
def test_one_code_per_point_set_matches_the_concatenating_path(kwargs):
    """A (D,) or (B, D) code takes the factorised path (its share of the code-fed layers once per code):
    same values and same code gradients as the per-point code, which concatenates."""
    torch.manual_seed(0)
    dec = ShapeDecoder(**kwargs)
    x = torch.rand(3, 200, 3) * 2 - 1
    z = torch.randn(3, 64, requires_grad=True)
    per_point = z[:, None].expand(3, 200, 64)
    y_shared, y_point = dec(x, z), dec(x, per_point)
    assert torch.allclose(y_shared, y_point, atol=1e-5)
    g_shared = torch.autograd.grad(y_shared.square().sum(), z)[0]
    g_point = torch.autograd.grad(dec(x, per_point).square().sum(), z)[0]
    assert torch.allclose(g_shared, g_point, rtol=1e-3, atol=1e-4)
    assert torch.allclose(dec(x[1], z[1]), y_point[1], atol=1e-5)  # (N, 3) with a (D,) code


@pytest.mark.parametrize("kwargs", [{}, {"hidden": 128, "num_layers": 3}])
def test_appearance_codes_per_point_set_match_the_concatenating_path(kwargs):
    """AppearanceNet: (D,) / (B, D) codes enter the first layer once per set; the same colours, code
    gradients and weight gradients (the fine-tuning's) as codes per point, also with mixed layouts."""
    from latent4d.objects.appearance import AppearanceNet

    torch.manual_seed(0)
    net = AppearanceNet(**kwargs)
    x = torch.rand(3, 150, 3) * 2 - 1
    zs, za = torch.randn(3, 64, requires_grad=True), torch.randn(3, 64, requires_grad=True)
    ps, pa = zs[:, None].expand(3, 150, 64), za[:, None].expand(3, 150, 64)
    y_set, y_point = net(x, zs, za), net(x, ps, pa)
    assert y_set.shape == (3, 150, 3) and torch.allclose(y_set, y_point, atol=1e-5)
    g_set = torch.autograd.grad(y_set.square().sum(), [zs, za, net.layers[0].linear.weight])
    g_point = torch.autograd.grad(net(x, ps, pa).square().sum(), [zs, za, net.layers[0].linear.weight])
    for a, b in zip(g_set, g_point):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4)
    assert torch.allclose(net(x[1], zs[1], za[1]), y_point[1], atol=1e-5)  # (N, 3) with (D,) codes
    assert torch.allclose(net(x, zs[0], za), net(x, zs[0].expand(3, 64), za), atol=1e-6)  # (D,) with (B, D)
    assert torch.allclose(net(x[0], ps[0], za[0]), y_point[0], atol=1e-5)  # per point with (D,)


def test_decoder_roundtrip_and_fused_weight_norm(tmp_path):
    dec = ShapeDecoder(hidden=96, num_layers=4, latent_in=[2], num_freqs=2)
    with pytest.raises(ValueError, match="must exceed the re-injected input width"):
        ShapeDecoder(hidden=64, num_freqs=2)
    x, z = torch.rand(50, 3), torch.randn(64)
    y = dec(x, z)
    dec.save_pretrained(tmp_path / "d")
    back = ShapeDecoder.from_pretrained(tmp_path / "d")
    assert torch.allclose(back(x, z), y, atol=1e-6)
    back.fuse_weight_norm()
    assert torch.allclose(back(x, z), y, atol=1e-5)
    assert not any("parametrizations" in k for k in back.state_dict())


def test_appearance_range_and_code_dependence():
    app = AppearanceNet(hidden=32, num_layers=3)
    x = torch.rand(2, 40, 3) * 2 - 1
    zs, za = torch.randn(2, 64) * 0.1, torch.randn(2, 64) * 0.1
    c = app(x, zs, za)
    assert c.shape == (2, 40, 3) and c.min() >= 0 and c.max() <= 1
    assert not torch.allclose(app(x, zs, za + 0.5), c)


def test_database_means_and_errors():
    db = LatentDatabase(names=["a", "b", "c"], categories=["mug", "mug", "can"], shape_dim=8, appearance_dim=4)
    ms, ma = db.mean_codes("mug")
    assert torch.allclose(ms, db.shape.weight[:2].mean(0)) and ma.shape == (4,)
    assert db.index("c") == 2
    with pytest.raises(InputError, match="category 'bowl'"):
        db.mean_codes("bowl")
    with pytest.raises(InputError, match="not in the latent database"):
        db.index("zz")
    with pytest.raises(InputError, match="2 names but 1 categories"):
        LatentDatabase(names=["a", "b"], categories=["x"])


def test_datamodule_batches_and_sdf_signs():
    from latent4d.objects.data import ObjectsDataModule

    dm = ObjectsDataModule(categories=["can", "mug"], per_category=1, n_sdf=3000, n_color=800, resolution=48,
                           sdf_per_item=256, color_per_item=64, objects_per_batch=2, repeats=2, cache=False)
    dm.setup("fit")
    b = next(iter(dm.train_dataloader()))
    assert b["sdf_points"].shape == (2, 256, 3) and b["sdf"].shape == (2, 256)
    assert b["color_points"].shape == (2, 64, 3) and b["color"].min() >= 0 and b["color"].max() <= 1
    assert dm.object_names == ["can_00000", "mug_00000"] and dm.object_categories == ["can", "mug"]
    # signs agree with an independent inside test (trimesh ray parity) away from the surface
    v = next(iter(dm.val_dataloader()))
    mesh: trimesh.Trimesh = dm.objects[int(v["index"][0])].mesh
    pts, sdf = v["sdf_points"][0].numpy(), v["sdf"][0].numpy()
    far = np.abs(sdf) > 0.03
    inside = mesh.contains(pts[far])
    assert (inside == (sdf[far] < 0)).mean() > 0.97
    with pytest.raises(InputError, match="unknown categories"):
        ObjectsDataModule(categories=["teapot"])
    with pytest.raises(InputError, match="mesh_dir"):
        ObjectsDataModule(source="folder")


def test_training_run_learns_and_exports(tiny_run, tiny_pipe):
    run, metrics = tiny_run
    for net in ("shape_decoder", "appearance", "database"):
        assert (run / "models" / net / "config.json").is_file()
    assert json.loads((run / "metrics.json").read_text())["experiment"] == "objects/latent_db"
    db = tiny_pipe.database
    assert len(db) == 6 and sorted(set(db.categories)) == ["bottle", "camera", "mug"]
    # the trained decoder beats an untrained one on held-out samples of the same objects
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run / "config.yaml")
    dm = instantiate(cfg.data)
    dm.setup("test")
    fresh = instantiate(cfg.model)
    fresh.build_database(dm.object_names, dm.object_categories)
    batch = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        untrained = float(fresh.losses(batch)["sdf_l1"])
        untrained_color = float(fresh.losses(batch)["color_l1"])
    assert metrics["test/sdf_l1"] < 0.5 * untrained
    assert metrics["test/color_l1"] < untrained_color


def test_checkpoint_restores_database_into_fresh_module(tiny_run):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    run, _ = tiny_run
    cfg = OmegaConf.load(run / "config.yaml")
    module = instantiate(cfg.model)
    assert module.database is None
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    module.load_state_dict(state)
    assert module.database is not None and len(module.database.names) == 6
    assert torch.equal(module.database.shape.weight, state["database.shape.weight"])


def test_decoded_mesh_and_surface_points(tiny_pipe):
    zs, za = tiny_pipe.codes(0)
    m = tiny_pipe.mesh(zs, za, level=5)
    assert len(m.faces) > 100
    vc = np.asarray(m.visual.vertex_colors)
    assert vc.shape == (len(m.vertices), 4)
    code = zs.clone().requires_grad_(True)
    out = tiny_pipe.surface_points(code, za, level=5)
    assert out["colors"].shape == out["points"].shape
    with torch.no_grad():
        after = tiny_pipe.sdf(out["points"].detach(), zs).abs().median()
    before = out["values"].detach().abs().median()
    assert after < before  # the gradient step moves the band centres towards the zero level
    out["points"].sum().backward()
    assert code.grad is not None and code.grad.abs().sum() > 0


def test_sample_command_writes_meshes_and_preview(tiny_run, tmp_path):
    from omegaconf import OmegaConf

    from latent4d.objects.commands import sample

    run, _ = tiny_run
    res = sample(run, OmegaConf.load(run / "config.yaml"), OmegaConf.create({"out": str(tmp_path), "level": 5}))
    assert set(res["meshes"]) == {"bottle_00000", "camera_00000", "mug_00000", "mean_bottle", "mean_camera",
                                  "mean_mug"}
    m = trimesh.load(res["meshes"]["mug_00000"])
    assert len(m.faces) > 100
    from PIL import Image

    img = np.asarray(Image.open(res["preview"]))
    assert img.shape[2] == 3 and (img < 250).any()  # something was drawn on the white background


def test_pipeline_shape_save_pretrained_and_latest_run(tiny_run, tiny_pipe, tmp_path, monkeypatch):
    """ObjectsPipeline is a LatentPipeline: registered components, save_pretrained writes a folder that
    loads back with the same outputs (fused weight norm included), device moves; run=None finds the
    latest run through latent4d.runs."""
    from latent4d.errors import ConfigError
    from latent4d.objects.pipeline import ObjectsPipeline, find_latest_run
    from latent4d.pipeline import LatentPipeline

    assert isinstance(tiny_pipe, LatentPipeline)
    assert set(tiny_pipe.components) == {"shape_decoder", "appearance", "database"}
    folder = tiny_pipe.save_pretrained(tmp_path / "saved")
    assert json.loads((folder / "pipeline.json").read_text())["_class_name"] == "ObjectsPipeline"
    back = ObjectsPipeline.from_pretrained(folder)
    zs, za = tiny_pipe.codes(1)
    x = torch.rand(200, 3) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(back.sdf(x, zs), tiny_pipe.sdf(x, zs), atol=1e-6)
        assert torch.allclose(back.color(x, zs, za), tiny_pipe.color(x, zs, za), atol=1e-6)
    assert back.database.names == tiny_pipe.database.names and back.device.type == "cpu"
    runs = tmp_path / "outputs" / "objects" / "latent_db"
    with pytest.raises(ConfigError, match="no trained run"):
        find_latest_run(runs)
    import shutil

    shutil.copytree(tiny_run[0], runs / "2024-01-01")
    assert find_latest_run(runs) == runs / "2024-01-01"
    monkeypatch.chdir(tmp_path)
    assert ObjectsPipeline.from_pretrained(None).database.names == tiny_pipe.database.names
