"""The single-shot detector: targets -> decoding round trip, training, and `reconstruct objects`
without a mask (detect, then refine; empty frames; categories the database lacks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latent4d.objects.detector import (
    LOG_SCALE_OFFSET,
    OBJ_FIELDS,
    ObjectDetector,
    decode_detections,
    detector_input,
    detector_targets,
    output_depth,
    output_intrinsics,
)

CATS = ["mug", "camera", "bottle", "laptop"]


def _scene(seed: int = 4, n: int = 3):
    from latent4d.objects.scenes import make_scene
    from latent4d.objects.synthetic import object_set

    return make_scene(object_set(CATS[:3], 1, seed_offset=1000, resolution=40), seed=seed, n_objects=n)


def _oracle_outputs(scene, net_cfg, codes) -> tuple[dict, torch.Tensor, np.ndarray]:
    """What a perfect network would output for ``scene`` (built from the training targets)."""
    from latent4d.objects.synthetic import SYMMETRIC

    x, Kw = detector_input(scene.rgb, scene.depth, scene.K, net_cfg.width, net_cfg.height)
    s = net_cfg.out_stride
    step = scene.depth.shape[1] // (net_cfg.width // s)
    mask_out = scene.mask[step // 2::step, step // 2::step]
    objs = [{"instance_id": o.instance_id, "label": CATS.index(o.category) + 1, "R": o.R, "t": o.t,
             "scale": o.scale, "symmetric": o.category in SYMMETRIC, "shape_code": codes[o.name][0],
             "appearance_code": codes[o.name][1]} for o in scene.objects]
    tg = detector_targets(mask_out, output_intrinsics(Kw, s), objs, 6, (8, 8))
    inst = torch.as_tensor(tg["inst"])
    rows = torch.as_tensor(tg["objs"])[(inst - 1).clamp_min(0)].permute(2, 0, 1)  # (F, h, w)
    h, w = inst.shape
    vv, uu = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    d_out = output_depth(x[None], s)[0, 0]
    heat = torch.as_tensor(tg["heat"]).clamp(1e-4, 1 - 1e-4)
    out = {"heat": torch.log(heat / (1 - heat))[None],
           "sem": 10 * torch.nn.functional.one_hot(torch.as_tensor(tg["sem"]), len(CATS) + 1).permute(2, 0, 1)[None].float(),
           "offset": torch.stack([rows[0] - uu, rows[1] - vv])[None] / 10.0,
           "pose": torch.cat([rows[4:10], (rows[2:3] - d_out) * 10, rows[3:4] - LOG_SCALE_OFFSET])[None],
           "shape": rows[OBJ_FIELDS:OBJ_FIELDS + 8][None], "appearance": rows[OBJ_FIELDS + 8:][None]}
    return out, x, Kw


@pytest.mark.parametrize("size", [{}, {"width": 320, "height": 240, "stem_stride": 4, "out_stride": 8}])
def test_targets_decode_back_to_the_ground_truth(size):
    """Decoding what a perfect network outputs gives every object back: category, pose, size, codes
    (at either working size: the grouping radius is in output cells)."""
    from latent4d.objects.metrics import rotation_error_deg

    scene = _scene()
    net = ObjectDetector(categories=CATS, shape_dim=8, appearance_dim=8, **size)
    rng = np.random.default_rng(0)
    codes = {o.name: (rng.normal(size=8), rng.normal(size=8)) for o in scene.objects}
    out, x, Kw = _oracle_outputs(scene, net.config, codes)
    dets = decode_detections(out, x, Kw, net.config, scene.depth, threshold=0.3)
    assert len(dets) == len(scene.objects)
    for o in scene.objects:
        d = min(dets, key=lambda d: np.linalg.norm(d.t - o.t))
        assert d.category == o.category
        assert np.linalg.norm(d.t - o.t) < 0.01
        assert rotation_error_deg(d.R, o.R, symmetric=o.symmetric) < 1.0
        assert abs(d.scale / o.scale - 1) < 1e-3
        np.testing.assert_allclose(d.shape_code, codes[o.name][0], atol=1e-4)
        assert max(d.category_probs, key=d.category_probs.get) == o.category
        assert abs(sum(d.category_probs.values()) - 1) < 1e-5 and d.to_json()["category_probs"][o.category] > 0.9
        iou = (d.mask & (scene.mask == o.instance_id)).sum() / max((d.mask | (scene.mask == o.instance_id)).sum(), 1)
        assert iou > 0.5, f"{o.category}: mask IoU {iou:.2f}"


def test_objects_without_codes_get_every_target_but_the_codes():
    """An extra training instance (no database code) is labelled, centred and posed like the others; only
    its pixels are left out of the code losses (``coded``)."""
    scene = _scene()
    K_out = np.array([[50.0, 0, 20], [0, 50.0, 15], [0, 0, 1]])
    mask = np.asarray(scene.mask[2::4, 2::4], np.int64)
    objs = [{"instance_id": o.instance_id, "label": 1, "R": o.R, "t": o.t, "scale": o.scale, "symmetric": False,
             "shape_code": np.ones(4) if k == 0 else None, "appearance_code": np.ones(3) if k == 0 else None}
            for k, o in enumerate(scene.objects)]
    tg = detector_targets(mask, K_out, objs, 6, (4, 3))
    first, other = mask == scene.objects[0].instance_id, mask == scene.objects[1].instance_id
    assert first.any() and other.any()
    assert (tg["coded"][first] == 1).all() and (tg["coded"][other] == 0).all() and (tg["coded"][mask == 0] == 0).all()
    assert (tg["sem"][other] == 1).all() and (tg["inst"][other] == 2).all()
    np.testing.assert_array_equal(tg["objs"][1, OBJ_FIELDS:], 0)
    np.testing.assert_array_equal(tg["objs"][0, OBJ_FIELDS:], 1)


def test_extra_instances_are_placed_without_code_targets(tiny_run, tmp_path, monkeypatch):
    from latent4d.objects.data import EXTRA_SEED_OFFSET, DetectorDataModule

    monkeypatch.setenv("LATENT4D_CACHE", str(tmp_path))
    dm = DetectorDataModule(database=str(tiny_run[0]), categories=["mug", "camera", "bottle"], train_scenes=6,
                            val_scenes=1, test_scenes=1, n_objects=(3, 3), extra_per_category=4)
    arrays = dm._scenes("train")
    rows = np.concatenate([a[: int(n)] for a, n in zip(arrays["objects"], arrays["n"])])
    assert (rows[:, 1] == -1).any() and (rows[:, 1] >= 0).any()  # extra instances and database objects
    ds = dm.split_dataset("train")
    coded_off = sum(int(((it["inst"] > 0) & (it["coded"] == 0)).sum()) for it in (ds[i] for i in range(len(ds))))
    assert coded_off > 0
    assert EXTRA_SEED_OFFSET >= 100


def test_network_shapes_and_bad_config():
    from latent4d.errors import InputError

    net = ObjectDetector(categories=CATS, shape_dim=8, appearance_dim=6)
    out = net(torch.zeros(2, 7, 120, 160))
    assert out["heat"].shape == (2, 1, 30, 40) and out["sem"].shape == (2, len(CATS) + 1, 30, 40)
    assert out["shape"].shape[1] == 8 and out["appearance"].shape[1] == 6 and out["pose"].shape[1] == 8
    with pytest.raises(InputError, match="out_stride"):
        ObjectDetector(out_stride=3)
    # the CPU default: 320 x 240 through a 4 x 4 patch stem (every pixel seen), the same 40 x 30 cells
    big = ObjectDetector(categories=CATS, shape_dim=8, appearance_dim=6, stem_stride=4, out_stride=8, width=320,
                         height=240)
    stem = big.down[0][0]
    assert stem.kernel_size == (4, 4) and stem.stride == (4, 4)
    assert big(torch.zeros(1, 7, 240, 320))["heat"].shape == (1, 1, 30, 40)


@pytest.fixture(scope="module")
def detector_run(tiny_run, tmp_path_factory, monkeypatch_module):
    """A detector trained for one epoch on a few scenes of the tiny database."""
    from latent4d.train import compose_config, run_training

    monkeypatch_module.setenv("LATENT4D_CACHE", str(tmp_path_factory.mktemp("cache")))
    out = tmp_path_factory.mktemp("detector_run")
    cfg = compose_config(["experiment=objects/detector", f"data.database={tiny_run[0]}", "data.categories=[mug,camera,bottle]",
                          "data.train_scenes=8", "data.val_scenes=2", "data.test_scenes=2", "data.batch_size=4",
                          "data.extra_per_category=1", "trainer.max_epochs=1", "callbacks=minimal", "logger=csv"], out)
    return out, run_training(cfg)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_detector_trains_and_exports(detector_run):
    from latent4d.objects.pipeline import DetectorPipeline

    run, metrics = detector_run
    assert np.isfinite(metrics["val/loss"]) and np.isfinite(metrics["test/shape"])
    pipe = DetectorPipeline.from_pretrained(run)
    assert pipe.categories == ["mug", "camera", "bottle"]
    dets = pipe.detect(_scene(), threshold=0.05)
    assert all(d.category in pipe.categories and 0 <= d.score <= 1 for d in dets)


def _save(scene, folder):
    from latent4d.objects.io import save_scene

    paths = save_scene(scene, folder)
    return [f"rgb={paths['rgb']}", f"depth={paths['depth']}", f"intrinsics={paths['intrinsics']}"]


def test_reconstruct_without_mask_detects_then_refines(tiny_run, detector_run, tmp_path, monkeypatch, capsys):
    """Oracle detections (what a perfect detector would find) plus one of a category the database
    lacks: the known ones are refined close to the ground truth, the other is skipped with the reason."""
    from latent4d.objects import commands
    from latent4d.objects.pipeline import DetectorPipeline

    scene = _scene(seed=4, n=2)
    net_cfg = ObjectDetector(categories=CATS, shape_dim=8, appearance_dim=8).config
    codes = {o.name: (np.zeros(8), np.zeros(8)) for o in scene.objects}
    out, x, Kw = _oracle_outputs(scene, net_cfg, codes)
    oracle = decode_detections(out, x, Kw, net_cfg, scene.depth)
    from latent4d.objects.pipeline import ObjectsPipeline

    zs, za = ObjectsPipeline.from_pretrained(tiny_run[0]).mean_codes()
    for d in oracle:
        d.shape_code, d.appearance_code = zs.numpy(), za.numpy()
    extra = oracle[0].__class__("laptop", 0.5, np.eye(3), np.array([0.0, 0.0, 0.8]), 0.1, zs.numpy(), za.numpy(),
                                mask=np.zeros(scene.depth.shape, bool))
    monkeypatch.setattr(DetectorPipeline, "detect", lambda self, frame, threshold=0.3: [*oracle, extra])
    args = _save(scene, tmp_path / "scene") + [f"run={tiny_run[0]}", f"detector={detector_run[0]}",
                                                 f"out={tmp_path / 'rec'}", "iterations=20", "level=4"]
    commands.reconstruct(args)
    summary = json.loads((tmp_path / "rec" / "summary.json").read_text())
    ok = [o for o in summary["objects"] if o["status"] == "ok"]
    skipped = [o for o in summary["objects"] if o["status"] == "skipped"]
    assert len(ok) == len(scene.objects)
    assert len(skipped) == 1 and "laptop" in skipped[0]["reason"] and "not in the latent database" in skipped[0]["reason"]
    for o in scene.objects:
        best = min(np.linalg.norm(np.array(r["t"]) - o.t) for r in ok)
        assert best < 0.03
    dets = json.loads((tmp_path / "rec" / "detections.json").read_text())
    assert len(dets["detections"]) == len(scene.objects) + 1
    assert "not in the latent database" in capsys.readouterr().out


def test_reconstruct_without_detections_writes_an_empty_result(tiny_run, detector_run, tmp_path, monkeypatch, capsys):
    from latent4d.objects import commands
    from latent4d.objects.pipeline import DetectorPipeline

    monkeypatch.setattr(DetectorPipeline, "detect", lambda self, frame, threshold=0.3: [])
    args = _save(_scene(seed=5, n=1), tmp_path / "scene") + [f"run={tiny_run[0]}", f"detector={detector_run[0]}",
                                                              f"out={tmp_path / 'rec'}"]
    commands.reconstruct(args)
    assert json.loads((tmp_path / "rec" / "summary.json").read_text())["objects"] == []
    assert json.loads((tmp_path / "rec" / "detections.json").read_text())["note"] == "no object detected"
    assert "no object detected" in capsys.readouterr().out


def test_reconstruct_with_the_trained_detector_end_to_end(tiny_run, detector_run, tmp_path):
    """The real (briefly trained) detector through the command: whatever it finds is written."""
    from latent4d.objects import commands

    args = _save(_scene(seed=6, n=2), tmp_path / "scene") + [f"run={tiny_run[0]}", f"detector={detector_run[0]}",
                                                              f"out={tmp_path / 'rec'}", "iterations=5", "level=4",
                                                              "detect_threshold=0.05"]
    res = commands.reconstruct(args)
    dets = json.loads((tmp_path / "rec" / "detections.json").read_text())["detections"]
    assert res["detections"] == len(dets)
    assert (tmp_path / "rec" / "overlay.png").is_file()


def test_categories_without_mask_is_refused(tmp_path):
    from latent4d.errors import ConfigError
    from latent4d.objects import commands

    args = _save(_scene(seed=5, n=1), tmp_path / "scene") + ["categories=mug", f"out={tmp_path / 'rec'}"]
    with pytest.raises(ConfigError, match="categories= needs mask="):
        commands.reconstruct(args)
