"""`latent4d bench objects_pipeline`: the mask AP by hand, and one frame through the three paths."""

from __future__ import annotations

import numpy as np


def _mask(rows, cols, shape=(10, 10)):
    m = np.zeros(shape, bool)
    m[rows[0]:rows[1], cols[0]:cols[1]] = True
    return m


def test_mask_ap_by_hand():
    from latent4d.objects.bench import mask_ap

    a, b = _mask((0, 4), (0, 4)), _mask((5, 9), (5, 9))
    half = _mask((0, 4), (0, 2))  # IoU 0.5 with a: counts at 0.5
    # mug: two ground truths; the best prediction hits a, a worse one misses -> precision 1 at recall 0.5, AP 0.5
    frames = [([("mug", a), ("mug", b)], [("mug", 0.9, a), ("mug", 0.5, _mask((0, 1), (8, 9)))])]
    assert abs(mask_ap(frames) - 0.5) < 1e-9
    # a duplicate of the same object is a false positive; a half overlap is a hit at IoU 0.5
    frames = [([("can", a)], [("can", 0.9, half), ("can", 0.8, a)])]
    assert abs(mask_ap(frames) - 1.0) < 1e-9
    assert abs(mask_ap(frames, iou=0.6) - 0.5) < 1e-9  # then the first is a false positive: precision 1/2
    frames = [([("can", a)], [("bowl", 0.9, a)])]  # wrong category: no hit
    assert mask_ap(frames) == 0.0


def test_one_frame_through_the_three_paths(tiny_pipe, monkeypatch):
    """Oracle detections: the pipeline, masks + plane and perturbed paths give boxes the NOCS tables score."""
    from latent4d.bench import BenchReport
    from latent4d.objects.bench import _nocs_tables, _pipeline_frame, _pipeline_report
    from latent4d.objects.detector import Detection
    from latent4d.objects.reconstruct import reconstruct_settings
    from latent4d.objects.scenes import make_scene
    from latent4d.objects.synthetic import object_set

    scene = make_scene(object_set(["mug", "camera", "bottle"], 1, seed_offset=1000, resolution=40), seed=4, n_objects=2)
    zs, za = tiny_pipe.mean_codes()
    dets = [Detection(o.category, 0.9 - 0.1 * i, o.R, o.t, o.scale, zs.numpy(), za.numpy(),
                      mask=scene.mask == o.instance_id) for i, o in enumerate(scene.objects)]

    class Oracle:
        categories = ["mug", "camera", "bottle"]

        def detect(self, frame, threshold=0.3):
            return dets

    cfg = reconstruct_settings(["iterations=3", "init_iterations=1", "level=4"])
    frame = _pipeline_frame(tiny_pipe, Oracle(), scene, cfg, np.random.default_rng(0))
    assert len(frame["detected"]) == len(frame["refined"]) == len(scene.objects)
    assert set(frame["seconds"]) == {"pipeline", "masks_plane", "perturbed"}
    tables = _nocs_tables([frame])
    # the detections are the ground truth poses: IoU25 is perfect after detection
    assert tables["detected"]["mean"]["IoU25"] == 1.0
    report = BenchReport("objects_pipeline", quick=True)
    _pipeline_report(report, [frame], tables, [len(scene.objects)])
    names = [r["metric"] for r in report.to_dict()["records"]]
    assert "after refinement: NOCS mAP IoU50" in names and any("(a) masks + plane" in n for n in names)
    assert report.to_dict()["records"][0]["value"] == 100.0  # oracle masks: detection AP 100 %
