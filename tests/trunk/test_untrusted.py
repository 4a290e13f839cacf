"""Untrusted run folders and checkpoints through train / export / sample / evaluate, and the run folder's
safety on resume: nothing from a file is executed, nothing already written is lost."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import pytest
import torch
from helpers import Payload, call, digest
from omegaconf import OmegaConf

from latent4d.cli import main
from latent4d.errors import ConfigError, InputError
from latent4d.train import compose_config, run_training
from latent4d.trust import check_targets, load_checkpoint

SMOKE = ["experiment=smoke/sdf_sphere", "preset=smoke_tiny", "test=false"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("smoke") / "run"
    run_training(compose_config([*SMOKE, "trainer.max_epochs=2", "callbacks=default", "logger=csv"], run))
    return run


# ------------------------------------------------------------------------------- checkpoints


def test_pickle_payload_in_checkpoint_never_runs(tmp_path, smoke_run, capsys):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Payload(marker)}, bad)
    with pytest.raises(InputError, match="never unpickles"):
        load_checkpoint(bad)
    rc, err = call(capsys, "export", f"run={smoke_run}", f"ckpt={bad}", f"out={tmp_path / 'x'}")
    assert rc == 2 and "evil.ckpt" in err and "Traceback" not in err
    with pytest.raises(InputError, match="never unpickles"):
        run_training(compose_config([*SMOKE, "trainer.max_epochs=1", f"ckpt_path={bad}", "logger=none",
                                     "callbacks=minimal"], tmp_path / "resume"))
    assert not marker.exists()
    assert not (tmp_path / "resume" / "config.yaml").exists()  # refused before anything was written


@pytest.mark.parametrize("content", [b"", b"\x80\x02garbage", b"PK\x03\x04truncated"])
def test_corrupt_checkpoints_are_clear_errors(tmp_path, smoke_run, capsys, content):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(content)
    rc, err = call(capsys, "export", f"run={smoke_run}", f"ckpt={bad}", f"out={tmp_path / 'x'}")
    assert rc == 2 and "bad.ckpt" in err and "Traceback" not in err


def test_checkpoint_of_another_module_is_refused(tmp_path, smoke_run):
    ckpt = torch.load(smoke_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["latent4d"]["module"] == "latent4d.smoke.module.SmokeSDFModule"
    ckpt["latent4d"]["module"] = "latent4d.hair.module.StrandVAEModule"
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    with pytest.raises(InputError, match="StrandVAEModule"):
        run_training(compose_config([*SMOKE, f"ckpt_path={other}", "logger=none", "callbacks=minimal"],
                                    tmp_path / "r"))


def test_checkpoint_of_another_model_size_is_a_clear_error(tmp_path, smoke_run, capsys):
    ov = [*SMOKE, "model.net.hidden=24", "trainer.max_epochs=3", f"ckpt_path={smoke_run}/checkpoints/last.ckpt",
          "logger=none", "callbacks=minimal"]
    with pytest.raises(InputError, match="does not fit"):
        run_training(compose_config(ov, tmp_path / "r"))
    # export from a run whose config no longer matches its checkpoint
    run2 = tmp_path / "run2"
    run2.mkdir()
    cfg = OmegaConf.load(smoke_run / "config.yaml")
    cfg.model.net.hidden = 24
    OmegaConf.save(cfg, run2 / "config.yaml")
    rc, err = call(capsys, "export", f"run={run2}", f"ckpt={smoke_run}/checkpoints/last.ckpt", f"out={tmp_path / 'x'}")
    assert rc == 2 and "does not fit" in err and "mis-shaped" in err


# ------------------------------------------------------------------------------- config targets


@pytest.mark.parametrize("target", ["builtins.open", "os.system", "latent4d.smoke.commands.os.system",
                                    "latent4d.hair.module.StrandVAEModule", "subprocess.Popen"])
def test_foreign_targets_in_a_run_config_are_refused_before_calling(tmp_path, smoke_run, capsys, target):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    cfg = OmegaConf.load(smoke_run / "config.yaml")
    cfg.model = {"_target_": target, "_args_": [str(marker), "w"] if "open" in target else [f"touch {marker}"]}
    OmegaConf.save(cfg, run / "config.yaml")
    rc, err = call(capsys, "export", f"run={run}", f"ckpt={smoke_run}/checkpoints/last.ckpt", f"out={tmp_path / 'x'}")
    assert rc == 2 and "refusing _target_" in err and "Traceback" not in err
    assert not marker.exists()


def test_nested_targets_are_checked_too():
    check_targets({"_target_": "latent4d.smoke.module.SmokeSDFModule",
                   "net": {"_target_": "latent4d.smoke.sdf.SDFNet"}}, "smoke")
    with pytest.raises(ConfigError, match="os.system"):
        check_targets({"_target_": "latent4d.smoke.module.SmokeSDFModule", "net": {"_target_": "os.system"}}, "smoke")
    with pytest.raises(ConfigError, match="family"):
        check_targets({"_target_": "latent4d.smoke.sdf.SDFNet"}, "nope")


_LAUGHS = b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    .encode() for i in range(12)) + b"family: smoke\n"


@pytest.mark.parametrize("text", [b"", b"{{{: [", b"- just\n- a list\n", b"family: os\n", b"\xff\xfe\x00bin",
                                  b"family: !!python/object/apply:os.system [touch pwned]\n", _LAUGHS,
                                  b"family: smoke\n" + b"x: " + b"y" * (5 << 20) + b"\n"])
def test_garbage_run_config_is_a_clear_error(tmp_path, capsys, text):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_bytes(text)
    for cmd in ("sample", "evaluate", "export"):
        rc, err = call(capsys, cmd, f"run={run}")
        assert rc == 2 and "config.yaml" in err and "Traceback" not in err, (cmd, err)


def test_bad_cli_options_are_clear_errors(tmp_path, smoke_run, capsys):
    for argv in (["export", f"run={smoke_run}", "bogus=1"], ["export", f"run={smoke_run}", "a..b=1"],
                 ["export", f"run={smoke_run}", "ckpt=last", f"out={smoke_run / 'config.yaml'}"],
                 ["export", "run=/nonexistent/run"], ["sample"], ["evaluate", "notkv"]):
        rc, err = call(capsys, *argv)
        assert rc == 2 and "error:" in err and "Traceback" not in err, (argv, err)


# ------------------------------------------------------------------------------- run folders


def test_training_into_an_existing_run_needs_ckpt_path_and_touches_nothing(tmp_path, smoke_run):
    before = digest(smoke_run)
    with pytest.raises(ConfigError, match="only to resume"):
        run_training(compose_config([*SMOKE, "trainer.max_epochs=1"], smoke_run))
    with pytest.raises(ConfigError, match="model.lr"):  # invalid config, even with ckpt_path: nothing touched
        run_training(compose_config([*SMOKE, "model.lr=abc", f"ckpt_path={smoke_run}/checkpoints/last.ckpt"],
                                    smoke_run))
    assert digest(smoke_run) == before


def test_cli_train_into_existing_run_is_refused_before_hydra_writes(smoke_run, capsys):
    before = digest(smoke_run)
    rc = main(["train", *SMOKE, f"hydra.run.dir={smoke_run}"])
    assert rc == 2 and "only to resume" in capsys.readouterr().err
    assert digest(smoke_run) == before


def test_bad_value_types_in_overrides(tmp_path):
    for ov, key in (("model.lr=abc", "model.lr"), ("model.net.hidden=wide", "model.net.hidden"),
                    ("trainer.max_epochs=many", "trainer.max_epochs")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            run_training(compose_config([*SMOKE, ov], tmp_path / "r"))
        assert not (tmp_path / "r" / "config.yaml").exists()


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_resume_appends_metrics_and_stretches_the_lr_schedule(tmp_path):
    run = tmp_path / "run"
    base = [*SMOKE, "callbacks=default", "logger=csv", "callbacks.progress_bar=null", "callbacks.model_summary=null"]
    run_training(compose_config([*base, "trainer.max_epochs=2"], run))
    first = _rows(run / "logs" / "csv" / "metrics.csv")
    epochs_before = {r["epoch"] for r in first if r.get("epoch")}
    assert epochs_before == {"0", "1"}
    run_training(compose_config([*base, "trainer.max_epochs=4", f"ckpt_path={run}/checkpoints/last.ckpt"], run))
    rows = _rows(run / "logs" / "csv" / "metrics.csv")
    assert {r["epoch"] for r in rows if r.get("epoch")} == {"0", "1", "2", "3"}  # epochs 0-1 kept
    lr_key = next(k for k in rows[0] if k.startswith("lr-"))
    lr = {int(r["step"]): float(r[lr_key]) for r in rows if r.get(lr_key)}  # one batch per epoch here
    base_lr = 2e-3
    # the cosine schedule now spans 4 epochs: epoch 2 at 0.5 * base (finishing the old 2-epoch schedule
    # would give 0 there), epoch 3 at 0.5 * (1 + cos(3 pi / 4)) * base
    assert lr[2] == pytest.approx(0.5 * base_lr, rel=1e-3)
    assert lr[3] == pytest.approx(0.5 * (1 + math.cos(3 * math.pi / 4)) * base_lr, rel=1e-3)


def test_atomic_dir_keeps_the_old_output_on_failure(tmp_path):
    from latent4d.fileio import atomic_dir

    out = tmp_path / "out"
    with atomic_dir(out, marker="summary.json") as d:
        (d / "summary.json").write_text("1")
        (d / "a.txt").write_text("a")
    before = digest(out)
    with pytest.raises(RuntimeError), atomic_dir(out, marker="summary.json") as d:
        (d / "summary.json").write_text("2")
        raise RuntimeError("boom")
    assert digest(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folders left
    with atomic_dir(out, marker="summary.json") as d:
        (d / "summary.json").write_text("3")
    assert sorted(os.listdir(out)) == ["summary.json"]  # replaced whole: no stale files
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    with pytest.raises(ConfigError, match="did not write"), atomic_dir(foreign, marker="summary.json"):
        pass
    assert (foreign / "thesis.tex").read_text() == "x"
