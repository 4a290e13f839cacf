"""Per-object fine-tuning of the appearance network (ShAPO's, ``appearance_finetune``): it lowers the
colour error, changes nothing else, leaves the shared pipeline's network as it was, gives every object
its own copy, colours the output mesh and works after detection."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from latent4d.errors import ConfigError, InputError
from latent4d.objects.metrics import observed_color_error
from latent4d.objects.optimize import ObjectOptimizer, perturb_pose
from latent4d.objects.reconstruct import ObjectsReconstructConfig as Config
from latent4d.objects.reconstruct import observe_instance, reconstruct_settings
from latent4d.objects.scenes import make_scene
from latent4d.objects.synthetic import make_object
from latent4d.objects.types import PoseInit

FT = {"appearance_finetune": 40, "appearance_finetune_lr": 1e-3}


@pytest.fixture(scope="module")
def scene(tiny_pipe):
    names = tiny_pipe.database.names
    objs = [make_object(n.split("_")[0], int(n.split("_")[1]), 64) for n in names[::2]]
    return make_scene(objs, seed=5, n_objects=2)


def _state(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _run(pipe, scene, gt, config):
    R0, t0, s0 = perturb_pose(gt.R, gt.t, gt.scale, np.random.default_rng(gt.instance_id))
    zs, za = pipe.mean_codes(gt.category)
    obs = observe_instance(scene, gt.instance_id, max_points=400, seed=gt.instance_id)
    res = ObjectOptimizer(pipe, config).optimize(obs, PoseInit(R0, t0, s0, zs, za, gt.category), frame=scene)
    assert res.status == "ok"
    return obs, res


def test_settings_on_by_default_and_checked():
    assert reconstruct_settings().appearance_finetune == 100 == Config().appearance_finetune
    assert reconstruct_settings(["appearance_finetune=0"]).appearance_finetune == 0
    s = reconstruct_settings(["appearance_finetune=5", "appearance_finetune_params=out"])
    assert (s.appearance_finetune, s.appearance_finetune_params) == (5, "out")
    for bad, word in ((["appearance_finetune=-1"], "appearance_finetune"),
                      (["appearance_finetune_params=first"], "appearance_finetune_params"),
                      (["appearance_finetune_lr=0"], "appearance_finetune_lr")):
        with pytest.raises(ConfigError, match=word):
            reconstruct_settings(bad)


def test_finetuning_lowers_colour_error_and_changes_nothing_else(tiny_pipe, scene):
    shared = _state(tiny_pipe.appearance)
    cfg = Config(iterations=20, warmup=5, appearance_finetune=0)
    gt = scene.objects[0]
    obs, off = _run(tiny_pipe, scene, gt, cfg)
    _, on = _run(tiny_pipe, scene, gt, replace(cfg, **FT))
    assert off.appearance_net is None and on.appearance_net is not None
    for k in ("R", "t", "shape_code", "appearance_code"):  # the fine-tuning comes after: pose and codes as without
        assert np.array_equal(getattr(off, k), getattr(on, k)), k
    assert off.scale == on.scale and off.history == on.history
    before, after = observed_color_error(tiny_pipe, obs, off), observed_color_error(tiny_pipe, obs, on)
    assert after < 0.8 * before, (before, after)
    assert _same(shared, _state(tiny_pipe.appearance)), "the shared pipeline's network must not change"
    assert not any(p.requires_grad for p in tiny_pipe.appearance.parameters())
    assert not any(p.requires_grad for p in on.appearance_net.parameters())


def test_every_object_gets_its_own_copy(tiny_pipe, scene):
    cfg = replace(Config(iterations=10, warmup=3), **FT)
    _, first = _run(tiny_pipe, scene, scene.objects[0], cfg)
    kept = _state(first.appearance_net)
    _, second = _run(tiny_pipe, scene, scene.objects[1], cfg)
    assert first.appearance_net is not second.appearance_net
    assert first.appearance_net is not tiny_pipe.appearance
    assert _same(kept, _state(first.appearance_net)), "fine-tuning the second object changed the first's network"
    assert not _same(kept, _state(second.appearance_net))


def test_params_choose_what_moves(tiny_pipe, scene):
    shared = _state(tiny_pipe.appearance)
    cfg = replace(Config(iterations=8, warmup=2), **FT, appearance_finetune_params="out")
    _, res = _run(tiny_pipe, scene, scene.objects[0], cfg)
    tuned = _state(res.appearance_net)
    moved = {k for k in shared if not torch.equal(shared[k], tuned[k])}
    assert moved and all(k.startswith("out.") for k in moved), moved
    with pytest.raises(InputError, match="must be one of"):
        tiny_pipe.appearance.finetune_copy("first")


def test_reconstruction_mesh_is_coloured_by_the_object_copy(tiny_pipe, scene):
    from latent4d.objects.reconstruct import reconstruct_scene

    shared = _state(tiny_pipe.appearance)
    cfg = replace(Config(iterations=10, warmup=3, level=4, init_iterations=2), **FT)
    res = reconstruct_scene(tiny_pipe, scene, cfg, categories={o.instance_id: o.category for o in scene.objects})
    ok = [r for r in res if r.status == "ok"]
    assert ok and all(r.appearance_net is not None for r in ok)
    r = ok[0]
    zs, za = torch.as_tensor(r.shape_code), torch.as_tensor(r.appearance_code)
    plain = tiny_pipe.mesh(zs, za, level=4)
    assert np.array_equal(np.asarray(r.mesh_canonical.vertices), np.asarray(plain.vertices))
    assert not np.array_equal(r.mesh_canonical.visual.vertex_colors, plain.visual.vertex_colors)
    assert _same(shared, _state(tiny_pipe.appearance))


@pytest.mark.parametrize("detect_init", ["detector", "best"])
def test_works_after_detection(tiny_pipe, scene, detect_init):
    """``reconstruct objects`` without a mask: detections (here the ground truth as a detector would
    report it) are refined, then each object's copy is fine-tuned."""
    from latent4d.objects.detector import Detection
    from latent4d.objects.reconstruct import reconstruct_detected

    class Oracle:
        def detect(self, frame, threshold=0.15):
            out = []
            for o in scene.objects:
                zs, za = tiny_pipe.mean_codes(o.category)
                out.append(Detection(o.category, 0.9, o.R, o.t, o.scale, zs.numpy(), za.numpy(),
                                     mask=scene.mask == o.instance_id))
            return out

    shared = _state(tiny_pipe.appearance)
    cfg = replace(Config(iterations=8, warmup=2, level=4, init_iterations=2, detect_init=detect_init), **FT)
    out = reconstruct_detected(tiny_pipe, Oracle(), scene, cfg)
    ok = [r for r in out["results"] if r.status == "ok"]
    assert len(ok) == len(scene.objects)
    assert all(r.appearance_net is not None for r in ok)
    assert len({id(r.appearance_net) for r in ok}) == len(ok)
    assert _same(shared, _state(tiny_pipe.appearance))


def test_bench_rows_compare_without_and_with(tiny_pipe, scene):
    """The objects bench's row pair: held-out pixels and the whole ground-truth surface, same objects."""
    from latent4d.bench import BenchReport
    from latent4d.objects.bench import finetune_rows

    report = BenchReport("objects_test", quick=True)
    cfg = replace(Config(iterations=10, warmup=3), **FT)
    med = finetune_rows(report, tiny_pipe, [scene], cfg, max_objects=1)
    assert med["held"][1] < med["held"][0], med
    assert all(np.isfinite(v) for pair in med.values() for v in pair)
    rows = [r for r in report.records if r["metric"].startswith("colour fine-tuning")]
    assert len(rows) == 2 and " / " in rows[0]["value"]
