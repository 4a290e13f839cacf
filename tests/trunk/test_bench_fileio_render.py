import json

import numpy as np
import pytest
import trimesh

from latent4d.bench import BenchReport, check_target, render_markdown, update_readme
from latent4d.fileio import atomic_path, write_json_atomic
from latent4d.render import render_image, render_png, to_open3d


def test_targets():
    assert check_target(2.9, "<= 3") is True
    assert check_target(3.1, "<= 3") is False
    assert check_target(0.9, ">= 0.85") is True
    assert check_target(float("nan"), ">= 0.85") is False
    assert check_target(1.0, None) is None


def test_report_json_has_records_machine_versions(tmp_path):
    rep = BenchReport("unit", quick=True, out_dir=tmp_path)
    rep.add("error", 2.5, "mm", target="<= 3")
    rep.add("speed", 10.0, "it/s", target=">= 20")
    p = rep.write()
    data = json.loads(p.read_text())
    assert [r["met"] for r in data["records"]] == [True, False]
    assert {"machine", "versions", "command"} <= data.keys()
    assert "torch" in data["versions"]
    md = render_markdown([data])
    assert "| error | 2.5 | mm | <= 3 | yes |" in md and "**no**" in md


def test_update_readme_rewrites_only_the_marked_section(tmp_path):
    rep = BenchReport("unit", out_dir=tmp_path / "bench")
    rep.add("x", 1.0)
    rep.write()
    write_json_atomic(tmp_path / "bench" / "unit_records.json", {"per_object": [1, 2]})  # a companion file
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- BENCH:START -->\nold\n<!-- BENCH:END -->\noutro\n")
    update_readme(readme, tmp_path / "bench", tmp_path / "store")
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text and "`unit`" in text
    assert (tmp_path / "store" / "unit.json").is_file() and (tmp_path / "store" / "unit_records.json").is_file()
    assert "per_object" not in text and text.count("### ") == 1


def test_atomic_write_keeps_old_content_on_failure(tmp_path):
    p = tmp_path / "out.json"
    write_json_atomic(p, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("writer crashed")
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["out.json"]  # no temp files left


def test_render_draws_the_object(tmp_path):
    box = trimesh.creation.box(extents=[1, 1, 1])
    box.visual.vertex_colors = np.tile([255, 0, 0, 255], (len(box.vertices), 1))
    img = render_image([box], width=160, height=120)
    assert img.shape == (120, 160, 3)
    red = (img[..., 0] > 120) & (img[..., 1] < 80) & (img[..., 2] < 80)
    bg = render_image([to_open3d(np.zeros((1, 3)))], width=160, height=120)
    assert 0.05 < red.mean() < 0.9  # the box covers part of the frame
    assert red[60, 80]  # the centre pixel is the box
    assert not ((bg[..., 0] > 120) & (bg[..., 1] < 80)).any()
    p = render_png([box], tmp_path / "box.png", width=64, height=48)
    assert p.stat().st_size > 100


def test_finished_run_matches_compares_training_settings(tmp_path):
    from omegaconf import OmegaConf

    from latent4d.bench import finished_run_matches
    from latent4d.train import compose_config

    cfg = compose_config(["experiment=smoke/sdf_sphere"], tmp_path)
    assert not finished_run_matches(tmp_path, cfg)  # nothing trained there
    (tmp_path / "models").mkdir()
    write_json_atomic(tmp_path / "metrics.json", {"test/l1": 0.1})
    OmegaConf.save(cfg, tmp_path / "config.yaml")
    assert finished_run_matches(tmp_path, cfg)
    # callbacks are not training settings; the seed and the model are
    assert finished_run_matches(tmp_path, compose_config(["experiment=smoke/sdf_sphere", "callbacks=minimal"], tmp_path))
    assert not finished_run_matches(tmp_path, compose_config(["experiment=smoke/sdf_sphere", "seed=123"], tmp_path))
    # where the run was written is not a training setting: a copied or moved run folder is reused
    moved = tmp_path / "elsewhere"
    assert compose_config(["experiment=smoke/sdf_sphere"], moved).trainer.default_root_dir != cfg.trainer.default_root_dir
    assert finished_run_matches(tmp_path, compose_config(["experiment=smoke/sdf_sphere"], moved))
    (tmp_path / "config.yaml").write_text("{{ not yaml")
    assert not finished_run_matches(tmp_path, cfg)


def test_open3d_meshes_get_zero_uvs_so_filament_never_reads_garbage_tangents():
    import open3d as o3d

    from latent4d.render import with_uvs

    m = to_open3d(trimesh.creation.icosphere(2))
    assert m.has_triangle_uvs() and np.asarray(m.triangle_uvs).shape == (3 * len(m.triangles), 2)
    assert not np.asarray(m.triangle_uvs).any()
    textured = o3d.geometry.TriangleMesh.create_box(create_uv_map=True)
    uv = np.asarray(textured.triangle_uvs).copy()
    assert np.array_equal(np.asarray(with_uvs(textured).triangle_uvs), uv), "existing UVs are kept"
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.zeros((4, 3))))
    assert with_uvs(pc) is pc
    empty = o3d.geometry.TriangleMesh()
    assert not with_uvs(empty).has_triangle_uvs()
