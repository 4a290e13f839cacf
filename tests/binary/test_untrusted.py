"""Untrusted inputs through the binary (and smoke) CLI commands (issue 16).

A run folder is data: a ``config.yaml`` whose data ``_target_`` names ``builtins.open`` or
``os.system`` is refused before anything is called (the file it would create never appears), through
``latent4d evaluate`` and through a :class:`LatentDataModule` with ``autoencoder_path=``. Damaged
model folders (empty / truncated safetensors, garbage JSON, pickled weights) and malformed options
end in exit code 2 with one ``error:`` line naming the file or option, no traceback.

Runs are fabricated from tiny randomly-initialised networks saved with ``save_pretrained``.
The smoke family has no test folder of its own: its sample / evaluate cases are at the end.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from helpers import Payload, fails, refuses_existing_out_file
from omegaconf import OmegaConf

from latent4d.cli import main
from latent4d.errors import ConfigError

AE_MODULE = "latent4d.binary.module.BernoulliAEModule"
DIFF_MODULE = "latent4d.binary.module.BinaryDiffusionModule"


def _ae(dims: int = 2):
    from latent4d.binary.autoencoder import BernoulliAutoencoder

    torch.manual_seed(0)
    if dims == 2:
        return BernoulliAutoencoder(dims=2, in_channels=1, latent_channels=8, channels=(8, 16), sample_size=16)
    return BernoulliAutoencoder(dims=3, in_channels=1, latent_channels=4, channels=(8, 8), sample_size=8)


def _den(dims: int = 2):
    from latent4d.binary.denoiser import LatentTransformer

    torch.manual_seed(0)
    if dims == 2:
        return LatentTransformer(latent_channels=8, latent_shape=(4, 4), dim=32, depth=1, heads=2, dim_head=16,
                                 num_classes=3, num_train_timesteps=16)
    return LatentTransformer(latent_channels=4, latent_shape=(2, 2, 2), dim=32, depth=1, heads=2, dim_head=16,
                             num_classes=0, num_train_timesteps=16)


def _run(root: Path, name: str, cfg: dict, models: dict | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    for sub, obj in (models or {}).items():
        obj.save_pretrained(d / "models" / sub)
    OmegaConf.save(OmegaConf.create(cfg), d / "config.yaml")
    return d


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("binary_untrusted")


@pytest.fixture(scope="module")
def diffusion_run(root) -> Path:
    """A class-conditional image diffusion run (tiny random autoencoder, denoiser, T=16 scheduler)."""
    from latent4d.diffusion.bernoulli import BernoulliDiffusionScheduler

    return _run(root, "diffusion", {"family": "binary", "model": {"_target_": DIFF_MODULE},
                                    "data": {"_target_": "latent4d.binary.data.LatentDataModule",
                                             "autoencoder_path": str(root / "absent")}},
                {"autoencoder": _ae(), "denoiser": _den(), "scheduler": BernoulliDiffusionScheduler(16)})


def _evil_data(kind: str, marker: Path) -> dict:
    if kind == "open":
        return {"_target_": "builtins.open", "file": str(marker), "mode": "w"}
    if kind == "system":
        return {"_target_": "os.system", "command": f"touch {marker}"}
    if kind == "nested":  # an allowed class whose argument is a payload
        return {"_target_": "latent4d.binary.data.ImageDataModule",
                "source": {"_target_": "os.system", "command": f"touch {marker}"}}
    if kind == "lookalike":  # a class path under latent4d.binary that is not a latent4d class
        return {"_target_": "latent4d.binary.autoencoder.Path", "_args_": [str(marker)]}
    raise AssertionError(kind)


def _evil_ae_run(root: Path, name: str, kind: str, marker: Path, models: bool = True) -> Path:
    return _run(root, name, {"family": "binary", "model": {"_target_": AE_MODULE}, "data": _evil_data(kind, marker)},
                {"autoencoder": _ae()} if models else None)


# ----------------------------------------------------------------------------------------------
# run folders whose config names a function: never called


@pytest.mark.parametrize("kind,needle", [("open", "builtins.open"), ("system", "os.system"),
                                         ("nested", "os.system"), ("lookalike", "latent4d.binary.autoencoder.Path")])
def test_evaluate_refuses_config_targets(capsys, tmp_path, kind, needle):
    marker = tmp_path / "pwned.txt"
    run = _evil_ae_run(tmp_path, "evil", kind, marker)
    fails(capsys, ["evaluate", f"run={run}"], needle, "_target_")
    assert not marker.exists() and not (run / "evaluation.json").exists()
    bare = _evil_ae_run(tmp_path, "evil_bare", kind, marker, models=False)  # refused before any network loads
    fails(capsys, ["evaluate", f"run={bare}"], needle)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["open", "system"])
def test_latent_datamodule_refuses_autoencoder_run_targets(tmp_path, kind):
    from latent4d.binary.data import LatentDataModule

    marker = tmp_path / "pwned.txt"
    run = _evil_ae_run(tmp_path, "evil", kind, marker)
    with pytest.raises(ConfigError, match="refusing _target_") as e:
        LatentDataModule(autoencoder_path=str(run)).setup()
    assert str(run) in str(e.value) and not marker.exists()


def test_voxel_diffusion_evaluate_refuses_its_autoencoder_runs_targets(capsys, tmp_path):
    """evaluate of a grid diffusion run rebuilds its LatentDataModule, which reads the AE run's config."""
    from latent4d.diffusion.bernoulli import BernoulliDiffusionScheduler

    marker = tmp_path / "pwned.txt"
    evil = _evil_ae_run(tmp_path, "evil", "system", marker)
    run = _run(tmp_path, "vox", {"family": "binary", "model": {"_target_": DIFF_MODULE}, "autoencoder_path": str(evil),
                                 "data": {"_target_": "latent4d.binary.data.LatentDataModule",
                                          "autoencoder_path": str(evil)}},
               {"autoencoder": _ae(3), "denoiser": _den(3), "scheduler": BernoulliDiffusionScheduler(16)})
    fails(capsys, ["evaluate", f"run={run}", "n=2", "steps=1"], "os.system", str(evil))
    assert not marker.exists() and not (run / "evaluation.json").exists()


def test_autoencoder_path_damaged_or_foreign(tmp_path):
    from latent4d.binary.data import LatentDataModule

    with pytest.raises(ConfigError, match="does not exist"):
        LatentDataModule(autoencoder_path=str(tmp_path / "nope")).setup()
    other = _run(tmp_path, "motion_run", {"family": "motion", "model": {"_target_": AE_MODULE}},
                 {"autoencoder": _ae()})
    with pytest.raises(ConfigError, match="motion run, not a binary"):
        LatentDataModule(autoencoder_path=str(other)).setup()
    garbage = _run(tmp_path, "garbage", {"family": "binary"}, {"autoencoder": _ae()})
    (garbage / "config.yaml").write_text("{{{ not: yaml")
    with pytest.raises(ConfigError, match="config.yaml"):
        LatentDataModule(autoencoder_path=str(garbage)).setup()


# ----------------------------------------------------------------------------------------------
# damaged model folders


def _damaged(diffusion_run: Path, tmp_path: Path, sub: str, damage) -> Path:
    run = tmp_path / f"damaged_{sub}"
    shutil.copytree(diffusion_run, run)
    damage(run / "models" / sub)
    return run


def _empty(d: Path) -> None:
    next(d.glob("*.safetensors")).write_bytes(b"")


def _truncate(d: Path) -> None:
    w = next(d.glob("*.safetensors"))
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])


def _garbage_json(d: Path) -> None:
    next(d.glob("*config.json")).write_text("\x00\x01 not json")


def _wrong_class(d: Path) -> None:
    (d / "config.json").write_text((d / "config.json").read_text().replace('"BernoulliAutoencoder"',
                                                                             '"LatentTransformer"'))


DAMAGE = [
    ("autoencoder", _empty, "empty or truncated"),
    ("autoencoder", _truncate, "safetensors"),
    ("denoiser", _empty, "empty or truncated"),
    ("denoiser", _truncate, "safetensors"),
    ("denoiser", _garbage_json, "not valid JSON"),
    ("autoencoder", _garbage_json, "not valid JSON"),
    ("scheduler", _garbage_json, "not valid JSON"),
    ("autoencoder", _wrong_class, "holds a LatentTransformer"),
]


@pytest.mark.parametrize("sub,damage,needle", DAMAGE, ids=[f"{s}-{d.__name__}" for s, d, _ in DAMAGE])
def test_sample_with_damaged_model_folder(capsys, diffusion_run, tmp_path, sub, damage, needle):
    run = _damaged(diffusion_run, tmp_path, sub, damage)
    fails(capsys, ["sample", f"run={run}", "steps=2", "n=2", f"out={tmp_path / 's'}"], needle, sub)
    assert not (tmp_path / "s").exists()


def test_pickled_weights_are_never_loaded(capsys, diffusion_run, tmp_path):
    marker = tmp_path / "pwned.txt"

    def pickled(d: Path) -> None:
        next(d.glob("*.safetensors")).unlink()
        with open(d / "diffusion_pytorch_model.bin", "wb") as fh:
            pickle.dump(Payload(marker), fh)

    run = _damaged(diffusion_run, tmp_path, "denoiser", pickled)
    fails(capsys, ["sample", f"run={run}", "steps=2", "n=2", f"out={tmp_path / 's'}"], "pickled", "denoiser")
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------
# options


SAMPLE_BAD = [
    (["bogus=1"], "bogus"), (["steps=0"], "steps"), (["steps=abc"], "steps"), (["n=0"], "n=0"), (["n=-3"], "n=-3"),
    (["temperature=0"], "temperature"), (["temperature=abc"], "temperature"), (["guidance=-1"], "guidance"),
    (["class=bogus"], "class=bogus"), (["seed=-1"], "seed"), (["scale=0"], "scale"), (["render=perhaps"], "render"),
    (["steps=17"], "steps=17"), (["class=99"], "class=99"),
]


@pytest.mark.parametrize("extra,needle", SAMPLE_BAD, ids=[s[0][0] for s in SAMPLE_BAD])
def test_sample_bad_options(capsys, diffusion_run, tmp_path, extra, needle):
    out = tmp_path / "s"
    fails(capsys, ["sample", f"run={diffusion_run}", "n=2", f"out={out}", *extra], needle)
    assert not out.exists()


def test_sample_valid_and_out_file(capsys, diffusion_run, tmp_path):
    out = tmp_path / "s"
    assert main(["sample", f"run={diffusion_run}", "steps=2", "n=3", "class=1", f"out={out}"]) == 0, \
        capsys.readouterr().err
    assert (out / "samples_s2_t0.9_g1.png").stat().st_size > 100
    refuses_existing_out_file(capsys, ["sample", f"run={diffusion_run}", "steps=2"], tmp_path / "file.png")


EVALUATE_BAD = [
    (["n=0"], "n=0"), (["steps=[0,2]"], "steps"), (["steps=abc"], "steps"), (["split=bogus"], "split"),
    (["classifier_epochs=0"], "classifier_epochs"), (["temperature=-1"], "temperature"), (["bogus=1"], "bogus"),
    (["seed=x"], "seed"),
]


@pytest.mark.parametrize("extra,needle", EVALUATE_BAD, ids=[s[0][0] for s in EVALUATE_BAD])
def test_evaluate_bad_options(capsys, diffusion_run, extra, needle):
    fails(capsys, ["evaluate", f"run={diffusion_run}", *extra], needle)
    assert not (diffusion_run / "evaluation.json").exists()


# ----------------------------------------------------------------------------------------------
# smoke family: sample / evaluate options and damaged networks


@pytest.fixture(scope="module")
def smoke_run(root) -> Path:
    from latent4d.smoke.sdf import SDFNet

    torch.manual_seed(0)
    return _run(root, "smoke", {"family": "smoke", "model": {"_target_": "latent4d.smoke.module.SmokeSDFModule"},
                                "data": {"scene_seed": 0}}, {"net": SDFNet(hidden=16, layers=2)})


SMOKE_BAD = [
    ("sample", ["resolution=0"], "resolution"), ("sample", ["resolution=abc"], "resolution"),
    ("sample", ["bogus=1"], "bogus"), ("evaluate", ["resolution=-8"], "resolution"),
    ("evaluate", ["out=x"], "out"),
]


@pytest.mark.parametrize("cmd,extra,needle", SMOKE_BAD, ids=[f"{c}-{e[0]}" for c, e, _ in SMOKE_BAD])
def test_smoke_bad_options(capsys, smoke_run, tmp_path, cmd, extra, needle):
    fails(capsys, [cmd, f"run={smoke_run}", *extra], needle)
    assert not (smoke_run / "evaluation.json").exists() and not (smoke_run / "samples").exists()


@pytest.mark.parametrize("damage,needle", [(_empty, "empty or truncated"), (_truncate, "safetensors"),
                                           (_garbage_json, "not valid JSON")],
                         ids=["empty", "truncated", "garbage-config"])
def test_smoke_damaged_network(capsys, smoke_run, tmp_path, damage, needle):
    run = tmp_path / "smoke"
    shutil.copytree(smoke_run, run)
    damage(run / "models" / "net")
    fails(capsys, ["sample", f"run={run}", f"out={tmp_path / 's'}"], needle, "net")
    fails(capsys, ["evaluate", f"run={run}"], needle)
    assert not (tmp_path / "s").exists() and not (run / "evaluation.json").exists()


def test_smoke_out_existing_file(capsys, smoke_run, tmp_path):
    refuses_existing_out_file(capsys, ["sample", f"run={smoke_run}"], tmp_path / "mesh.ply")
