"""Property-based bad input (hypothesis) across every family's commands and the shared readers.

For generated malformed options and files, every command must: exit non-zero (2), print one
``latent4d <command>: error: ...`` line naming an option or a file, print no Python traceback,
write nothing outside its (absent) output, and leave pre-existing outputs byte-identical. The
family readers of hair files are fuzzed in tests/hair/test_untrusted.py; here the shared loaders
(checkpoints, network folders, run configs) and the objects RGB-D readers get random bytes and
mutations of valid files, and must either load or raise latent4d's own InputError / ConfigError.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from latent4d.cli import main
from latent4d.errors import Latent4DError

FAMILY_EXPERIMENT = {"smoke": "smoke/sdf_sphere", "hair": "hair/style_vae", "objects": "objects/latent_db",
                     "motion": "motion/shape_ae", "binary": "binary/diffusion_digits"}
#: keys the generator never sets (they are given explicitly: the run, the inputs, the output)
PINNED = {"run", "out", "input", "rgb", "depth", "mask", "intrinsics", "shape_run", "deform_run", "gt",
          "shape_ae", "deform_ae", "template", "scalp", "data"}
BAD_VALUES = ["abc", "-1", "0", "-0.5", "nan", "inf", "-inf", "1e309", "", "null", "[1,2]", "{a: 1}",
              "99999999999999999999", "true", "0x10", "1.5", "../../etc/passwd", "${oc.env:HOME}", "'quoted'"]
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CASES = {"commands": 0, "clear": 0, "readers": 0, "reader_clear": 0}


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _specs(family: str) -> dict[str, type]:
    mod = importlib.import_module(f"latent4d.{family}.commands")
    out = {}
    for cmd in ("sample", "evaluate"):
        spec = getattr(mod, f"{cmd.capitalize()}Options", None)
        if spec is not None and hasattr(mod, cmd):
            out[cmd] = spec
    try:  # reconstruction settings: <family>/reconstruct.py, <Family>ReconstructConfig (conf/reconstruct/)
        rec = importlib.import_module(f"latent4d.{family}.reconstruct")
    except ModuleNotFoundError:
        return out
    out["reconstruct"] = getattr(rec, f"{family.capitalize()}ReconstructConfig")
    return out


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory) -> dict[str, Path]:
    """A run folder per family: a real composed config.yaml, no networks (every command must still
    check its options first, then fail clearly on the missing networks)."""
    from latent4d.train import compose_config

    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for fam, exp in FAMILY_EXPERIMENT.items():
        run = root / fam
        cfg = compose_config([f"experiment={exp}"], run)
        run.mkdir()
        OmegaConf.save(cfg, run / "config.yaml", resolve=True)
        runs[fam] = run
    return runs


def _option_items(spec: type):
    keys = [f.name for f in dataclasses.fields(spec) if f.name not in PINNED]
    key = st.sampled_from(keys) | st.sampled_from(["bogus", "stepz", "N", "seed.x", "a..b", "_target_"])
    value = st.sampled_from(BAD_VALUES) | st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00\n\r"), max_size=12)
    return st.lists(st.tuples(key, value), min_size=1, max_size=3)


def _check_command(argv: list[str], tmp: Path, capsys, names: list[str]) -> None:
    before = _digest(tmp)
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err
    CASES["commands"] += 1
    assert rc == 2, (argv, rc, err)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    names = [*names, *(n.split(".")[0] for n in names)]
    assert any(n and n in lines[0] for n in names), (argv, lines[0])
    assert _digest(tmp) == before, argv  # nothing written, nothing replaced
    CASES["clear"] += 1


@pytest.mark.parametrize("family", list(FAMILY_EXPERIMENT))
def test_sample_and_evaluate_with_generated_options(family, fake_runs, tmp_path, capsys):
    specs = {c: s for c, s in _specs(family).items() if c in ("sample", "evaluate")}
    assert specs, f"{family} has no option specs"
    run = fake_runs[family]
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "keep.txt").write_text("an earlier output")
    for cmd, spec in specs.items():
        _drive(cmd, spec, run, tmp_path, capsys)


def _drive(cmd: str, spec: type, run: Path, tmp_path: Path, capsys) -> None:
    @SETTINGS
    @given(items=_option_items(spec))
    def check(items):
        argv = [cmd, f"run={run}", *(f"{k}={v}" for k, v in items), f"out={tmp_path / 'new_out'}"]
        _check_command(argv, tmp_path, capsys, [k for k, _ in items] + [str(run), "out", "options"])

    check()


@pytest.mark.parametrize("family", ["hair", "objects", "motion"])
def test_reconstruct_with_generated_options(family, tmp_path, capsys):
    spec = _specs(family)["reconstruct"]

    @SETTINGS
    @given(items=_option_items(spec))
    def check(items):
        argv = ["reconstruct", family, *(f"{k}={v}" for k, v in items), f"out={tmp_path / 'new_out'}"]
        names = [k for k, _ in items] + ["input", "rgb", "depth", "mask", "intrinsics", "run", "options"]
        _check_command(argv, tmp_path, capsys, names)

    check()


# ------------------------------------------------------------------------------- shared readers


def _mutations(valid: bytes):
    """Random bytes, truncations, and byte flips of a valid file."""
    n = len(valid)
    return (st.binary(max_size=512)
            | st.integers(0, max(n - 1, 0)).map(lambda k: valid[:k])
            | st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, 255)), min_size=1, max_size=8)
            .map(lambda flips: bytes(_flip(valid, flips))))


def _flip(valid: bytes, flips) -> bytearray:
    b = bytearray(valid)
    for i, v in flips:
        b[i] = v
    return b


def _reads_or_refuses(fn, path: Path) -> None:
    CASES["readers"] += 1
    try:
        fn(path)
    except Latent4DError as e:
        assert path.name in str(e) or str(path.parent) in str(e), str(e)
    CASES["reader_clear"] += 1


def test_checkpoint_reader_on_random_and_mutated_files(tmp_path):
    from latent4d.trust import check_lightning_checkpoint

    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.ones(3)}, "epoch": 1}, buf)
    valid = buf.getvalue()

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(data=_mutations(valid))
    def check(data):
        p = tmp_path / "model.ckpt"
        p.write_bytes(data)
        _reads_or_refuses(check_lightning_checkpoint, p)

    check()


def test_network_folder_loader_on_mutated_config_and_weights(tmp_path):
    from latent4d.smoke.sdf import SDFNet
    from latent4d.trust import load_network

    good = tmp_path / "good"
    SDFNet(hidden=8, layers=2, num_freqs=2).save_pretrained(good)
    cfg_bytes = (good / "config.json").read_bytes()
    w_bytes = (good / "diffusion_pytorch_model.safetensors").read_bytes()

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(which=st.sampled_from(["config", "weights"]), data=st.data())
    def check(which, data):
        folder = tmp_path / "net"
        folder.mkdir(exist_ok=True)
        cfg = data.draw(_mutations(cfg_bytes)) if which == "config" else cfg_bytes
        w = data.draw(_mutations(w_bytes)) if which == "weights" else w_bytes
        (folder / "config.json").write_bytes(cfg)
        (folder / "diffusion_pytorch_model.safetensors").write_bytes(w)
        _reads_or_refuses(lambda p: load_network(SDFNet, p.parent), folder / (
            "config.json" if which == "config" else "diffusion_pytorch_model.safetensors"))

    check()


def test_run_config_reader_on_random_and_mutated_files(tmp_path, fake_runs):
    from latent4d.config import load_run_config

    valid = (fake_runs["smoke"] / "config.yaml").read_bytes()

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(data=_mutations(valid))
    def check(data):
        run = tmp_path / "run"
        run.mkdir(exist_ok=True)
        (run / "config.yaml").write_bytes(data)
        _reads_or_refuses(lambda p: load_run_config(p.parent), run / "config.yaml")

    check()


def test_rgbd_readers_on_random_and_mutated_files(tmp_path):
    from latent4d.objects.io import read_depth_png, read_intrinsics, write_depth_png, write_intrinsics

    depth = np.full((48, 64), 0.8, np.float32)
    write_depth_png(tmp_path / "d.png", depth)
    write_intrinsics(tmp_path / "k.json", [[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]], 64, 48)
    valid_png = (tmp_path / "d.png").read_bytes()
    valid_json = (tmp_path / "k.json").read_bytes()
    assert json.loads(valid_json)

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(which=st.sampled_from(["depth", "intrinsics"]), data=st.data())
    def check(which, data):
        if which == "depth":
            p = tmp_path / "depth.png"
            p.write_bytes(data.draw(_mutations(valid_png)))
            _reads_or_refuses(read_depth_png, p)
        else:
            p = tmp_path / "intrinsics.json"
            p.write_bytes(data.draw(_mutations(valid_json)))
            _reads_or_refuses(read_intrinsics, p)

    check()


def test_report_case_count():
    """Not an assertion on quality: the counts the closing note reports (printed with -s)."""
    print(f"\n[bad-input properties] commands: {CASES['clear']}/{CASES['commands']} clear; "
          f"readers: {CASES['reader_clear']}/{CASES['readers']} loaded or refused clearly")
    assert CASES["clear"] == CASES["commands"]
    assert CASES["reader_clear"] == CASES["readers"]
