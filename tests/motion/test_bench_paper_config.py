"""``latent4d bench motion_paper_config`` (issue 22 item 4) and what it measures: the official training window
(``data.train_frames``), the variants' overrides on the step-capped presets, the paired differences, and the
paper configs' values that the bench backs."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from latent4d.errors import ConfigError


def _window_dataset(T: int = 6):
    """A one-sequence deformation dataset whose frame t holds the value t (surface and deformation latents)."""
    from latent4d.motion.data import LatentDiffusionDataset

    surface = np.broadcast_to(np.arange(T, dtype=np.float32)[:, None, None], (1, T, 20, 3)).copy()
    deform = np.broadcast_to(np.arange(1, T, dtype=np.float32)[:, None, None], (1, 1, T - 1, 2, 4)).copy()
    latents = {"shape": np.zeros((1, T, 2, 3), np.float32), "deform": deform}
    return LatentDiffusionDataset({"surface": surface}, latents, None, "deform", n_obs=5, noise=0.0)


def test_train_frames_draws_later_frames_behind_frame0():
    ds = _window_dataset()
    whole = ds[0]
    assert whole["x0"].shape == (5, 2, 4) and whole["obs"].shape == (6, 5, 3)
    ds.train_frames = 3
    seen = set()
    for _ in range(20):
        item = ds[0]
        frames = item["obs"][:, 0, 0].numpy()
        assert item["x0"].shape == (3, 2, 4) and frames[0] == 0  # frame 0 (the source) always first
        assert np.all(np.diff(frames) > 0) and frames[1:].min() >= 1  # later frames, sorted, distinct
        assert np.array_equal(item["x0"][:, 0, 0].numpy(), frames[1:])  # latents of the same frames
        seen.add(tuple(frames[1:]))
    assert len(seen) > 1  # drawn at random per item


def test_train_frames_must_be_positive():
    from latent4d.motion.data import MotionLatentDataModule

    with pytest.raises(ConfigError, match="train_frames"):
        MotionLatentDataModule(mode="deform", shape_ae_run="/a", deform_ae_run="/b", train_frames=0)


def _compose(exp: str, *overrides: str) -> dict:
    from latent4d.train import compose_config

    links = [] if exp.endswith("_ae") else ["shape_ae_run=/a", "deform_ae_run=/b"]
    return OmegaConf.to_container(
        compose_config([f"experiment=motion/{exp}", *links, *overrides], "/tmp/unused"), resolve=True
    )


@pytest.mark.parametrize("quick", [False, True])
def test_variants_compose_on_the_step_capped_presets(quick):
    from latent4d.motion.bench_paper import PAPER_VARIANTS, _preset

    seen = {}
    for label, extra in PAPER_VARIANTS.items():
        cfg = _compose("deform_diffusion", f"preset={_preset('deform_diffusion', quick)}", *extra)
        assert cfg["trainer"]["max_time"] is None and cfg["trainer"]["max_steps"] > 0
        den = cfg["model"]["denoiser"]
        seen[label] = (
            den.get("time_scale", 1000.0),
            den["obs_tokens"],
            den.get("drop_path", 0.0),
            den.get("frame_embedding", True),
            cfg["data"]["train_frames"],
            cfg["seed"],
        )
    assert len(set(seen.values())) == len(seen)  # every variant changes something
    assert (
        seen["(a) c_noise unscaled"][0] == 1.0 and seen["(d) 5 training frames, no frame embedding"][4] == 5
    )
    for exp in ("shape_ae", "deform_ae"):
        cfg = _compose(exp, f"preset={_preset(exp, quick)}", "++model.ae.drop_path=0.1")
        assert cfg["model"]["ae"]["drop_path"] == 0.1 and cfg["trainer"]["max_time"] is None


def test_paired_differences_and_standard_error(tmp_path):
    from latent4d.bench import BenchReport
    from latent4d.motion.bench_paper import _paired

    report = BenchReport("t", out_dir=tmp_path)
    _paired(report, "d", [0.5, 0.7, float("nan"), 0.9], [0.4, 0.4, 0.3, 0.4], 1.0, "")
    rec = report.records[-1]
    d = np.array([0.1, 0.3, 0.5])
    assert rec["n"] == 3 and rec["value"] == pytest.approx(d.mean())
    assert rec["sem"] == pytest.approx(d.std(ddof=1) / np.sqrt(3), abs=1e-5) and rec["within_2sem"] is False
    _paired(report, "none", [float("nan")], [0.1], 1.0, "")
    assert report.records[-1] is rec and "none" in report.notes[-1]


def test_the_bench_is_registered():
    from latent4d.bench import registry

    assert "motion_paper_config" in registry()


@pytest.mark.parametrize("dataset", ["dfaust", "dt4d"])
def test_paper_configs_hold_the_official_values_the_bench_backs(dataset):
    """time_scale 1, every observed point a token (up to 512), DropPath 0.1 in the autoencoders and the
    denoisers, the official training window (5 random frames, no frame embedding); the CPU defaults keep
    latent4d's values."""
    for exp in ("shape_ae", "deform_ae"):
        assert _compose(f"{dataset}/{exp}")["model"]["ae"]["drop_path"] == 0.1
        assert _compose(exp)["model"]["ae"].get("drop_path", 0.0) == 0.0
    for exp in ("shape_diffusion", "deform_diffusion"):
        cfg = _compose(f"{dataset}/{exp}")
        den = cfg["model"]["denoiser"]
        assert (den["time_scale"], den["obs_tokens"], den["drop_path"]) == (1.0, 512, 0.1)
        assert den["obs_tokens"] >= cfg["data"]["n_obs"]  # every observed point a token
        cpu = _compose(exp)["model"]["denoiser"]
        assert cpu.get("time_scale", 1000.0) == 1000.0 and cpu.get("drop_path", 0.0) == 0.0
    cfg = _compose(f"{dataset}/deform_diffusion")
    assert cfg["data"]["train_frames"] == 5 and cfg["model"]["denoiser"]["frame_embedding"] is False
    assert _compose("deform_diffusion")["data"]["train_frames"] is None


def test_train_frames_with_a_frame_embedding_is_refused_before_training():
    from types import SimpleNamespace

    import torch

    from latent4d.motion.module import DeformDiffusionModule

    fake = SimpleNamespace(
        trainer=SimpleNamespace(datamodule=SimpleNamespace(hparams={"train_frames": 5})),
        denoiser=SimpleNamespace(frame_embed=torch.zeros(17, 8)),
    )
    with pytest.raises(ConfigError, match="frame_embedding=false"):
        DeformDiffusionModule.on_fit_start(fake)


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize(
    "exp, official, label",
    [
        ("shape_ae", "motion_shape_ae_official", ""),
        ("deform_ae", "motion_deform_ae_official", ""),
        ("deform_diffusion", "motion_deform_diffusion_official", "(o-sparse) official sparse-input denoiser"),
        (
            "deform_diffusion",
            "motion_deform_diffusion_partial_official",
            "(o-partial) official partial-input denoiser",
        ),
    ],
)
def test_official_variants_take_the_official_layout_at_the_bench_size(quick, exp, official, label):
    """The (o-*) variants: every layout option of conf/model/<official>.yaml (and of the config it extends,
    for the partial denoiser) at its official value, the widths scaled to the preset's (one head x the
    width, point embedding half the width), and the preset's sizes, learning rate and step budget."""
    from latent4d.config import conf_dir
    from latent4d.motion.bench_paper import WIDTH, _preset, official_overrides

    key = "ae" if exp.endswith("_ae") else "denoiser"
    base = _compose(exp, f"preset={_preset(exp, quick)}")
    cfg = _compose(exp, f"preset={_preset(exp, quick)}", *official_overrides(exp, quick, label))
    want = {}
    for name in [official] if "partial" not in official else ["motion_deform_diffusion_official", official]:
        yaml = OmegaConf.to_container(OmegaConf.load(conf_dir() / "model" / f"{name}.yaml"))
        want.update(yaml[key])
        if "edm" in yaml:
            assert cfg["model"]["edm"] == {**base["model"]["edm"], **yaml["edm"]}
    scaled = {"point_width": WIDTH[quick] // 2, "obs_dim_head": WIDTH[quick]}
    for k, v in want.items():
        assert cfg["model"][key][k] == scaled.get(k, v), k
    for k in ("width", "depth", "heads", "dim_head", "num_latents", "latent_channels"):
        assert cfg["model"][key].get(k) == base["model"][key].get(k), k
    assert cfg["model"][key]["width"] == WIDTH[quick]
    assert (cfg["model"]["lr"], cfg["trainer"], cfg["data"]) == (
        base["model"]["lr"],
        base["trainer"],
        base["data"],
    )


@pytest.mark.parametrize("exp", ["shape_ae", "deform_ae", "deform_diffusion"])
def test_official_variants_build_at_tiny_size(exp):
    """The quick preset's official networks build and run a forward pass at tiny size."""
    import hydra
    import torch

    from latent4d.motion.bench_paper import OFFICIAL_VARIANTS, _preset, official_overrides

    labels = [""] if exp.endswith("_ae") else list(OFFICIAL_VARIANTS)
    key = "ae" if exp.endswith("_ae") else "denoiser"
    sizes = set()
    for label in labels:
        cfg = _compose(exp, f"preset={_preset(exp, True)}", *official_overrides(exp, True, label))
        net = hydra.utils.instantiate(cfg["model"][key])
        sizes.add(sum(p.numel() for p in net.parameters()))
        if exp == "shape_ae":
            torch.manual_seed(0)
            out = net(torch.rand(2, 64, 3) - 0.5, torch.rand(2, 10, 3) - 0.5)
            assert all(
                torch.isfinite(t).all()
                for t in (out if isinstance(out, tuple) else (out,))
                if torch.is_tensor(t)
            )
    assert len(sizes) == len(labels) and min(sizes) > 0  # the partial denoiser has its own layers
