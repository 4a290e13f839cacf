"""The motion configs: presets (conf/preset/motion_*.yaml) compose with their experiments, the
diffusion models' latent sizes and window follow the autoencoders' (motion_latents) and the data's
num_frames, and the reconstruction settings (conf/reconstruct/motion*.yaml) compose."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from latent4d.motion.commands import EXPERIMENTS
from latent4d.motion.reconstruct import reconstruct_config

PRESETS = ("demo_quick", "demo", "quick", "bench")


def _compose(exp: str, *overrides: str):
    from latent4d.train import compose_config

    links = [] if exp.endswith("_ae") else ["shape_ae_run=/a", "deform_ae_run=/b"]
    cfg = compose_config([f"experiment=motion/{exp}", *links, *overrides], "/tmp/unused")
    return OmegaConf.to_container(cfg, resolve=True)


def _sizes(cfg: dict) -> dict:
    m, lat = cfg["model"], cfg["motion_latents"]
    net = m.get("ae") or m["denoiser"]
    return {"net": net, "shape": lat["shape"], "deform": lat["deform"], "frames": cfg["data"]["num_frames"]}


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_presets_tie_the_sizes(exp, preset):
    s = _sizes(_compose(exp, f"preset=motion_{exp}_{preset}"))
    net, shape, deform = s["net"], s["shape"], s["deform"]
    if exp == "shape_ae" or exp == "shape_diffusion":
        assert (net["num_latents"], net["latent_channels"]) == (shape["num_latents"], shape["channels"])
    else:
        assert (net["num_latents"], net["latent_channels"]) == (deform["num_latents"], deform["channels"])
    if exp == "deform_diffusion":
        assert net["shape_channels"] == shape["channels"] and net["num_frames"] == s["frames"]


def test_one_override_moves_autoencoder_and_diffusion_together():
    ae = _sizes(_compose("shape_ae", "motion_latents.shape.num_latents=40", "data.num_frames=7"))
    den = _sizes(_compose("deform_diffusion", "motion_latents.shape.num_latents=40", "data.num_frames=7"))
    assert ae["net"]["num_latents"] == 40 and den["net"]["num_frames"] == 7
    paper = _sizes(_compose("deform_diffusion", "model=motion_deform_diffusion_paper"))
    assert paper["net"]["num_latents"] == 512 and paper["net"]["num_frames"] == 17


def test_reconstruction_variants_build_on_the_defaults():
    base, quick, demo = (reconstruct_config(name=n) for n in ("motion", "motion_quick", "motion_demo_quick"))
    assert (quick.steps, quick.resolution) == (6, 64) and quick.deform_guidance == base.deform_guidance
    assert (demo.guidance, demo.fuse, demo.n_obs) == (0.0, False, 48) and demo.sampler == base.sampler


def test_reconstruction_samples_with_ema_unless_told_not_to(monkeypatch):
    from latent4d.motion import commands
    from latent4d.motion.pipeline import MotionPipeline

    seen = {}
    monkeypatch.setattr(MotionPipeline, "from_runs", classmethod(lambda cls, **kw: seen.update(kw)))
    for args, want in (([], True), (["ema=false"], False)):
        cfg = reconstruct_config(["input=x", "shape_run=/s", "deform_run=/d", *args])
        commands._load_pipeline(cfg, [])
        assert seen == {"shape_diffusion": "/s", "deform_diffusion": "/d", "ema": want}
