"""The objects panel's detections, driven headless through the viewer's own API (no window: the same
panel, an offscreen scene): a detector found as ``reconstruct objects`` finds it (or opened as a run),
*Detect* on a frame without an instance mask (boxes, category labels, instance colours), *Reconstruct*
refining the detections, and the disabled control with its tooltip when there is no detector."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from latent4d.errors import InputError

HINT = "latent4d train experiment=objects/detector"


def _detector_run(folder: Path, categories=("ball",), heat_bias: float | None = None) -> Path:
    """An objects/detector run with an untrained (random) detector for the hand-set ball database."""
    import torch

    from latent4d.objects.detector import ObjectDetector

    torch.manual_seed(0)
    net = ObjectDetector(
        categories=list(categories), shape_dim=4, appearance_dim=4, widths=[8, 8, 8], head_hidden=8
    )
    if heat_bias is not None:
        with torch.no_grad():
            net.heads["heat"][-1].bias.fill_(heat_bias)
    net.save_pretrained(folder / "models" / "detector")
    (folder / "config.yaml").write_text("family: objects\nname: detector\n")
    return folder


@pytest.fixture
def app(monkeypatch, tmp_path):
    from latent4d.viewer.controller import ViewerApp

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.chdir(tmp_path)  # no outputs/objects/detector here unless a test makes one
    a = ViewerApp(320, 240, headless=True, view_size=(64, 48))
    yield a
    a.close()


@pytest.fixture
def frame_without_mask(viewer_data, tmp_path) -> Path:
    folder = tmp_path / "frame_nomask"
    shutil.copytree(viewer_data / "frame", folder)
    (folder / "mask.png").unlink()
    return folder


def _oracle(panel, viewer_data):
    """What a good detector reports on the test frame: the ball (a database category) and the box (not)."""
    import torch

    from latent4d.objects.detector import Detection
    from latent4d.objects.io import read_frame

    f = read_frame(
        viewer_data / "frame" / "depth.png",
        viewer_data / "frame" / "intrinsics.json",
        viewer_data / "frame" / "color.png",
        viewer_data / "frame" / "mask.png",
    )
    zs, za = panel.pipeline.codes(1)
    out = []
    for iid, cat, score in ((2, "ball", 0.9), (1, "box", 0.8)):
        m = f.mask == iid
        v, u = np.nonzero(m & (f.depth > 0))
        z = f.depth[v, u]
        pts = np.stack([(u - f.K[0, 2]) / f.K[0, 0] * z, (v - f.K[1, 2]) / f.K[1, 1] * z, z], 1)
        t = pts.mean(0) + np.array([0.0, 0.0, 0.1])
        code = torch.zeros(4).numpy()
        out.append(
            Detection(
                cat, score, np.eye(3), t, 0.3, zs.numpy() if cat == "ball" else code, za.numpy(), mask=m
            )
        )
    return out


def test_without_a_detector_detect_is_disabled_and_says_how_to_get_one(app, viewer_data, frame_without_mask):
    p = app.objects
    assert app.load(viewer_data / "objmodel") and app.load(frame_without_mask)
    assert p.pipeline is not None and p.detector is None
    assert not p.is_enabled("detect") and HINT in p.disabled_reasons["detect"]
    assert not p.is_enabled("reconstruct") and "Detect" in p.disabled_reasons["reconstruct"]
    assert not p.is_enabled("color"), "no mask and no detections: nothing to colour by instance"
    with pytest.raises(InputError, match=HINT):
        p.detect()
    with pytest.raises(InputError, match="no instance mask"):
        p.reconstruct(background=False)


def test_the_latest_detector_run_is_found_as_reconstruct_objects_finds_it(app, viewer_data, tmp_path):
    run = _detector_run(tmp_path / "outputs" / "objects" / "detector" / "run1")
    p = app.objects
    assert app.load(viewer_data / "objmodel")
    assert p.detector is not None and p.detector_path == Path("outputs/objects/detector/run1")
    assert p.detector.categories == ["ball"]
    assert not p.is_enabled("detect") and "open an RGB-D frame" in p.disabled_reasons["detect"]
    assert run.is_dir()


def test_detect_draws_labels_boxes_instance_colours_then_reconstruct_refines(
    app, viewer_data, frame_without_mask, tmp_path, monkeypatch
):
    from latent4d.objects.pipeline import DetectorPipeline

    p = app.objects
    assert app.load(viewer_data / "objmodel") and app.load(frame_without_mask)
    assert app.load(_detector_run(tmp_path / "det_run")), app.errors  # a detector run opened on its own
    assert p.pipeline is not None and p.detector is not None and p.detector_path.name == "det_run"
    assert p.frame.frame.mask is None and p.is_enabled("detect")
    oracle = _oracle(p, viewer_data)
    monkeypatch.setattr(DetectorPipeline, "detect", lambda self, frame, threshold=0.15: list(oracle))

    dets = p.detect()
    assert len(dets) == 2
    assert p.detection_labels() == ["1: ball 0.90", "2: box 0.80 (not in the database)"]
    assert app.view.has("objects/detbox1") and app.view.has("objects/detbox2")
    assert p.is_enabled("color") and p.is_enabled("reconstruct")
    _, pix = p.frame.points()
    rgb = p.observation_colors(pix)
    p.set_color_mode("instance")
    inst = p.observation_colors(pix)
    assert not np.allclose(rgb, inst)
    ids = p.instance_mask()[pix[:, 0], pix[:, 1]]
    assert set(np.unique(ids)) >= {1, 2}
    assert len({tuple(c) for c in inst[ids > 0].round(3)}) == 2, "one colour per detection"

    p.reconstruct(iterations=4, background=False)
    by_id = {r.instance_id: r for r in p.results}
    assert set(by_id) == {1, 2}
    assert by_id[2].status == "skipped" and "not in the latent database" in by_id[2].reason
    assert by_id[1].status in ("ok", "diverged") and p.iterations_done.get(1) == 4
    if by_id[1].status == "ok":
        assert app.view.has("objects/recon_shape1")
    assert "reconstruction done" in app.status

    p.clear_all()
    assert p.detections == [] and p.instance_mask() is None and not app.view.has("objects/detbox1")


def test_detect_with_the_untrained_network_and_frames_it_cannot_use(
    app, viewer_data, frame_without_mask, tmp_path
):
    p = app.objects
    assert app.load(_detector_run(tmp_path / "det_run", heat_bias=3.0))  # every cell a centre candidate
    assert p.pipeline is None and p.detector is not None
    assert app.load(frame_without_mask)
    dets = p.detect(threshold=0.5)
    assert len(p.detection_labels()) == len(dets) == len(p._det_boxes)
    assert all(app.view.has(f"objects/detbox{i}") for i in range(1, len(dets) + 1))
    assert all(d.mask.shape == p.frame.frame.depth.shape for d in dets)
    assert not p.is_enabled("reconstruct"), "no objects run: nothing to refine with"
    nocolor = tmp_path / "frame_nocolor"
    shutil.copytree(frame_without_mask, nocolor)
    (nocolor / "color.png").unlink()
    assert app.load(nocolor)
    assert p.detections == [], "a new frame drops the old detections"
    assert not p.is_enabled("detect") and "colour image" in p.disabled_reasons["detect"]
    with pytest.raises(InputError, match="colour image"):
        p.detect()
