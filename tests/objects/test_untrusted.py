"""Untrusted input through the objects commands (issue 16): malformed RGB-D frames, intrinsics and
options of ``reconstruct objects``; ``sample`` / ``evaluate`` options; damaged or hostile run
folders and checkpoints. Every case must end in a one-line error naming the file or option (exit
code 2 through the CLI, no traceback), execute nothing from a file, and leave earlier outputs
byte-identical."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import Payload, call, digest
from omegaconf import OmegaConf
from PIL import Image

from latent4d.errors import ConfigError, InputError
from latent4d.objects.io import FOV_RANGE_DEG, read_rgbd, save_scene
from latent4d.objects.pipeline import ObjectsPipeline
from latent4d.objects.scenes import make_scene
from latent4d.objects.synthetic import make_object

W, H = 640, 480
FX = 591.0125


def _clear_error(rc: int, err: str, *names: str) -> None:
    assert rc == 2, err
    assert "error:" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err  # one line
    for n in names:
        assert n.lower() in err.lower(), (n, err)


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    """A 640x480 scene of two database objects (mug, camera) saved as rgb/depth/mask/intrinsics."""
    objs = [make_object("mug", 0, 48), make_object("camera", 0, 48)]
    frame = make_scene(objs, seed=5, n_objects=2)
    folder = tmp_path_factory.mktemp("scene")
    paths = save_scene(frame, folder)
    return frame, {k: paths[k] for k in ("rgb", "depth", "mask", "intrinsics")}


def _args(files: dict, **over) -> list[str]:
    d = {**{k: str(v) for k, v in files.items()}, **over}
    return [f"{k}={v}" for k, v in d.items() if v is not None]


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height 16-bit grey pixels and holds no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(data + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))
    return path


def _intr(tmp: Path, name: str, content) -> Path:
    p = tmp / name
    p.write_text(content if isinstance(content, str) else json.dumps(content))
    return p


# ------------------------------------------------------------------------------------------------
# reconstruct objects: every malformed input is refused before compute, naming the file / option

# (case id, function (tmp_path, frame, files) -> option overrides, words the error must contain)
_K = {"fx": FX, "fy": FX, "cx": 322.5, "cy": 244.1}
#: option -> values of it that reconstruct refuses, naming the option
BAD_VALUES = {"bogus": ["1"], "iterations": ["0", "-5", "abc"], "init_iterations": ["-1"], "level": ["0", "99"],
              "rotation": ["bogus"], "depth_scale": ["0", "-1000", "nan"], "min_fov": ["0"]}
RECONSTRUCT_CASES = [
    # options
    *((f"{k}={v}", lambda t, f, p, k=k, v=v: {k: v}, [k]) for k, vs in BAD_VALUES.items() for v in vs),
    ("missing-rgb", lambda t, f, p: {"rgb": None}, ["rgb=<file>"]),
    ("rgb-missing-file", lambda t, f, p: {"rgb": str(t / "nope.png")}, ["rgb=", "nope.png"]),
    ("categories-syntax", lambda t, f, p: {"categories": "1:mug,oops"}, ["categories", "id:name"]),
    ("categories-id-absent", lambda t, f, p: {"categories": "1:mug,7:camera"}, ["categories", "7", "not in mask"]),
    ("categories-unknown-name", lambda t, f, p: {"categories": "banana"}, ["banana", "latent database"]),
    # intrinsics
    ("intrinsics-for-1280x960", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {
        "fx": 2 * FX, "fy": 2 * FX, "cx": 645.0, "cy": 488.2, "width": 1280, "height": 960})},
     ["k.json", "1280x960", "640x480"]),
    ("intrinsics-1280x960-no-size", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {
        "fx": 2 * FX, "fy": 2 * FX, "cx": 645.0, "cy": 488.2})}, ["k.json", "principal point"]),
    ("fx-1e-9", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {**_K, "fx": 1e-9, "fy": 1e-9})},
     ["k.json", "field of view"]),
    ("fx-normalised", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {
        "fx": 0.92, "fy": 1.23, "cx": 0.5, "cy": 0.5})}, ["k.json", "field of view", "normalised"]),
    ("fx-telephoto", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {**_K, "fx": 8000.0, "fy": 8000.0})},
     ["k.json", "field of view", "min_fov"]),
    ("fx-0", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {**_K, "fx": 0.0})}, ["k.json", "positive"]),
    ("fx-negative", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {**_K, "fx": -FX, "fy": -FX})},
     ["k.json", "positive"]),
    ("fx-string", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {**_K, "fx": "abc"})}, ["k.json", "fx", "abc"]),
    ("fx-nan", lambda t, f, p: {"intrinsics": _intr(t, "k.json", '{"fx": NaN, "fy": 591, "cx": 322, "cy": 244}')},
     ["k.json", "fx", "finite"]),
    ("fx-bool", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {**_K, "fx": True})}, ["k.json", "fx"]),
    ("fy-fx-aspect", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {**_K, "fy": FX / 10})},
     ["k.json", "square pixels"]),
    ("missing-cy", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {"fx": FX, "fy": FX, "cx": 320})},
     ["k.json", "missing cy"]),
    ("principal-point-outside", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {**_K, "cx": -10.0})},
     ["k.json", "principal point"]),
    ("width-without-height", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {**_K, "width": 640})},
     ["k.json", "height"]),
    ("width-fractional", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {**_K, "width": 640.5, "height": 480})},
     ["k.json", "whole numbers"]),
    ("K-2x2", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {"K": [[FX, 0], [0, FX]]})}, ["k.json", "3x3"]),
    ("K-scaled", lambda t, f, p: {"intrinsics": _intr(t, "k.json", {"K": [[FX, 0, 322], [0, FX, 244], [0, 0, 2]]})},
     ["k.json", "[0, 0, 1]"]),
    ("intrinsics-list", lambda t, f, p: {"intrinsics": _intr(t, "k.json", [FX, FX, 322, 244])},
     ["k.json", "JSON object"]),
    ("intrinsics-binary", lambda t, f, p: {"intrinsics": _bytes(t / "k.json", b"\x00\xff garbage {")},
     ["k.json", "not a UTF-8"]),
    ("intrinsics-garbage", lambda t, f, p: {"intrinsics": _intr(t, "k.json", "fx: 500, fy: {")},
     ["k.json", "not valid JSON"]),
    ("intrinsics-nested-deep", lambda t, f, p: {"intrinsics": _intr(t, "k.json", "[" * 100000)},
     ["k.json"]),
    ("intrinsics-huge", lambda t, f, p: {"intrinsics": _intr(t, "k.json", " " * (2 << 20) + "{}")},
     ["k.json", "bytes"]),
    # depth
    ("depth-65m-everywhere", lambda t, f, p: {"depth": _png16(t / "d.png", np.full((H, W), 65535))},
     ["d.png", "65535", "0"]),
    ("depth-0.1mm-units", lambda t, f, p: {"depth": _png16(t / "d.png", np.clip(f.depth * 10000, 0, 65534))},
     ["d.png", "median", "depth_scale=10000"]),
    ("depth-objects-too-far", lambda t, f, p: {"depth": _png16(t / "d.png", np.clip(f.depth * 6000, 0, 65534))},
     ["d.png", "inside the instance mask", "depth_scale=10000"]),
    ("depth-scale-wrong", lambda t, f, p: {"depth_scale": "10"}, ["depth.png", "median", "depth_scale=1000"]),
    ("depth-metres-in-png", lambda t, f, p: {"depth": _png16(t / "d.png", np.ceil(f.depth))},
     ["d.png", "median", "depth_scale=1"]),
    ("depth-all-zero", lambda t, f, p: {"depth": _png16(t / "d.png", np.zeros((H, W)))}, ["d.png", "no valid pixel"]),
    ("depth-8bit", lambda t, f, p: {"depth": _png8(t / "d.png", np.zeros((H, W)) + 90)}, ["d.png", "16-bit"]),
    ("depth-size-mismatch", lambda t, f, p: {"depth": _png16(t / "d.png", f.depth[::2, ::2] * 1000)},
     ["d.png", "320x240", "640x480"]),
    ("depth-garbage", lambda t, f, p: {"depth": _bytes(t / "d.png", b"not a png at all")}, ["d.png", "image"]),
    ("depth-png-header-8000x8000", lambda t, f, p: {"depth": _png_header_only(t / "d.png", 8000, 8000)},
     ["d.png", "8000x8000"]),
    ("depth-npy-all-nan", lambda t, f, p: {"depth": _npy(t / "d.npy", np.full((H, W), np.nan, np.float32))},
     ["d.npy", "no valid pixel"]),
    ("depth-npy-inf", lambda t, f, p: {"depth": _npy(t / "d.npy", np.where(f.depth > 0, np.inf, 0).astype(np.float32))},
     ["d.npy", "infinite"]),
    ("depth-npy-negative", lambda t, f, p: {"depth": _npy(t / "d.npy", -f.depth)}, ["d.npy", "negative"]),
    ("depth-npy-millimetres", lambda t, f, p: {"depth": _npy(t / "d.npy", f.depth * 1000)},
     ["d.npy", "metres", "1000"]),
    ("depth-npy-3d", lambda t, f, p: {"depth": _npy(t / "d.npy", np.zeros((H, W, 3), np.float32))},
     ["d.npy", "(H, W)"]),
    ("depth-npy-int", lambda t, f, p: {"depth": _npy(t / "d.npy", np.zeros((H, W), np.int32))}, ["d.npy", "float"]),
    ("depth-npy-pickled", lambda t, f, p: {"depth": _npy_pickled(t / "d.npy", t / "pwned")},
     ["d.npy", "never loads"]),
    ("depth-npy-truncated", lambda t, f, p: {"depth": _truncate(_npy(t / "d.npy", f.depth), 1000)},
     ["d.npy", "truncated", "640x480"]),
    ("depth-npy-huge-header", lambda t, f, p: {"depth": _npy_header_only(t / "d.npy", (100000, 100000))},
     ["d.npy", "100000x100000"]),
    ("depth-npy-header-only", lambda t, f, p: {"depth": _npy_header_only(t / "d.npy", (H, W))},
     ["d.npy", "truncated"]),
    ("depth-npy-garbage", lambda t, f, p: {"depth": _bytes(t / "d.npy", b"\x93NUMPY garbage")}, ["d.npy", "readable"]),
    # mask / rgb
    ("mask-empty", lambda t, f, p: {"mask": _png8(t / "m.png", np.zeros((H, W)))}, ["m.png", "empty"]),
    ("mask-size-mismatch", lambda t, f, p: {"mask": _png8(t / "m.png", f.mask[::2, ::2])}, ["m.png", "320x240"]),
    ("mask-float", lambda t, f, p: {"mask": _tiff_f(t / "m.tiff", f.mask.astype(np.float32))}, ["m.tiff", "mode"]),
    ("mask-negative-ids", lambda t, f, p: {"mask": _tiff_i32(t / "m.tiff", -f.mask.astype(np.int32))},
     ["m.tiff", "negative"]),
    ("rgb-garbage", lambda t, f, p: {"rgb": _bytes(t / "rgb.png", b"\x89PNG garbage")}, ["rgb.png", "image"]),
    ("rgb-size-mismatch", lambda t, f, p: {"rgb": _rgb(t / "rgb.png", f.rgb[::2, ::2])}, ["rgb", "320x240"]),
    # outputs
    ("out-is-a-file", lambda t, f, p: {"out": _bytes(t / "result.txt", b"mine")}, ["out=", "result.txt"]),
    ("out-foreign-folder", lambda t, f, p: {"out": _foreign(t / "mine")}, ["out=", "mine", "summary.json"]),
]


def _png16(path: Path, values) -> Path:
    Image.fromarray(np.asarray(values).astype(np.uint16)).save(path)
    return path


def _png8(path: Path, values) -> Path:
    Image.fromarray(np.asarray(values).astype(np.uint8)).save(path)
    return path


def _tiff_i32(path: Path, values) -> Path:
    Image.fromarray(np.asarray(values, np.int32), mode="I").save(path)
    return path


def _tiff_f(path: Path, values) -> Path:
    Image.fromarray(np.asarray(values, np.float32), mode="F").save(path)
    return path


def _rgb(path: Path, values) -> Path:
    Image.fromarray(np.ascontiguousarray(values)).save(path)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _npy(path: Path, arr) -> Path:
    np.save(path, np.asarray(arr))
    return path


def _npy_pickled(path: Path, marker: Path) -> Path:
    np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return path


def _npy_header_only(path: Path, shape) -> Path:
    """A .npy whose header declares ``shape`` float32 and which holds no data."""
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
    assert path.read_bytes().startswith(b"\x93NUMPY")
    return path


def _truncate(path: Path, n: int) -> Path:
    path.write_bytes(path.read_bytes()[:n])
    return path


def _foreign(folder: Path) -> Path:
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    return folder


@pytest.mark.parametrize("case, make, words", RECONSTRUCT_CASES, ids=[c[0] for c in RECONSTRUCT_CASES])
def test_reconstruct_refuses_malformed_input(case, make, words, scene_files, tiny_run, tmp_path, capsys):
    frame, files = scene_files
    over = {"run": str(tiny_run[0]), "out": str(tmp_path / "out"), "iterations": "2", "init_iterations": "1",
            "level": "3", **{k: (None if v is None else str(v)) for k, v in make(tmp_path, frame, files).items()}}
    before = digest(tmp_path)
    rc, err = call(capsys, "reconstruct", "objects", *_args(files, **over))
    _clear_error(rc, err, *words)
    assert "reconstruct" in err
    assert not (tmp_path / "out").exists() or case == "out-is-a-file"  # nothing written
    assert not (tmp_path / "pwned").exists()  # nothing executed from a file
    assert digest(tmp_path) == before  # inputs (and a foreign out= folder) untouched
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_plausibility_overrides(scene_files, tmp_path):
    """The documented overrides: depth_scale= fixes depth in other units, min_fov= accepts a narrow lens."""
    frame, files = scene_files
    d = _png16(tmp_path / "d.png", np.clip(frame.depth * 10000, 0, 65534))
    back = read_rgbd(files["rgb"], d, files["mask"], files["intrinsics"], depth_scale=10000)
    assert abs(np.median(back.depth[back.depth > 0]) - np.median(frame.depth[frame.depth > 0])) < 1e-3
    k = _intr(tmp_path, "k.json", {**_K, "fx": 3000.0, "fy": 3000.0, "width": W, "height": H})
    with pytest.raises(InputError, match="field of view"):
        read_rgbd(files["rgb"], files["depth"], files["mask"], k)
    assert read_rgbd(files["rgb"], files["depth"], files["mask"], k, min_fov_deg=5).K[0, 0] == 3000.0
    assert FOV_RANGE_DEG[0] == 20.0
    # NaN in a float depth means "no measurement" (a common convention), like 0
    nan_depth = np.where(frame.depth > 0, frame.depth, np.nan).astype(np.float32)
    back = read_rgbd(files["rgb"], _npy(tmp_path / "d.npy", nan_depth), files["mask"], files["intrinsics"])
    assert np.array_equal(back.depth, frame.depth)


def test_option_defaults_unchanged():
    from latent4d.objects.commands import EvaluateOptions, SampleOptions
    from latent4d.objects.reconstruct import reconstruct_settings

    r = reconstruct_settings()
    assert (r.iterations, r.init_iterations, r.rotation, r.level, r.depth_scale, r.seed, r.min_fov, r.out) == (
        70, 12, "6d", 7, 1000.0, 0, 20.0, "outputs/objects/reconstruct")
    assert (SampleOptions().level, SampleOptions().means, SampleOptions().objects) == (7, True, None)
    e = EvaluateOptions()
    assert (e.scenes, e.iterations, e.seed, e.max_objects) == (6, None, 0, None)  # iterations: the YAML's 70


# ------------------------------------------------------------------------------------------------
# data loss: a failed reconstruct leaves the earlier output byte-identical


def test_failed_reconstruct_keeps_earlier_output(scene_files, tiny_run, tmp_path, capsys, monkeypatch):
    from latent4d.objects import io

    frame, files = scene_files
    out = tmp_path / "out"
    base = {"run": str(tiny_run[0]), "out": str(out), "iterations": "2", "init_iterations": "1", "level": "3",
            "categories": ",".join(f"{o.instance_id}:{o.category}" for o in frame.objects)}
    rc, err = call(capsys, "reconstruct", "objects", *_args(files, **base))
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["written"]) == {str(i) for i in frame.instance_ids}
    assert all(Path(v["mesh"]).parent == out for v in summary["written"].values())  # final paths, not temp ones
    earlier = digest(out)
    assert any(k.startswith("object_") for k in earlier)

    # 1. bad option; 2. implausible depth; 3. no object reconstructible (every instance too small)
    tiny_mask = np.zeros((H, W), np.uint8)
    tiny_mask[240:243, 320:323] = 1
    bad = [{"bogus": "1"}, {"depth_scale": "1"}, {"mask": str(_png8(tmp_path / "m.png", tiny_mask)), "categories": None}]
    for over in bad:
        rc, err = call(capsys, "reconstruct", "objects", *_args(files, **{**base, **over}))
        _clear_error(rc, err)
        assert digest(out) == earlier, over
    assert "valid depth pixel" in err and "nothing written" in err

    # 4. a failure while the new output is being written
    def boom(*a, **k):
        raise InputError("disk full (simulated)")

    monkeypatch.setattr(io, "save_png", boom)
    rc, err = call(capsys, "reconstruct", "objects", *_args(files, **base))
    _clear_error(rc, err, "disk full")
    assert digest(out) == earlier
    monkeypatch.undo()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]

    # a successful rerun replaces the folder whole: no object_* file of the earlier output survives
    one = np.where(frame.mask == frame.instance_ids[0], frame.mask, 0).astype(np.uint8)
    rc, err = call(capsys, "reconstruct", "objects",
                   *_args(files, **{**base, "mask": str(_png8(tmp_path / "one.png", one)), "categories": None}))
    assert rc == 0, err
    assert sorted(p.name for p in out.glob("object_*")) == [f"object_{frame.instance_ids[0]}.{s}" for s in ("json", "ply")]


# ------------------------------------------------------------------------------------------------
# sample / evaluate options and outputs


SAMPLE_CASES = [
    ("sample", {"level": "0"}, ["level"]),
    ("sample", {"level": "abc"}, ["level"]),
    ("sample", {"bogus": "1"}, ["bogus"]),
    ("sample", {"means": "maybe"}, ["means"]),
    ("sample", {"objects": "nosuch_00000"}, ["objects", "nosuch_00000"]),
    ("sample", {"objects": "99"}, ["objects", "99", "out of range"]),
    ("sample", {"out": "FILE"}, ["out=", "result.txt"]),
    ("sample", {"out": "FOREIGN"}, ["out=", "mine", "samples.png"]),
    ("evaluate", {"scenes": "0"}, ["scenes"]),
    ("evaluate", {"iterations": "0"}, ["iterations"]),
    ("evaluate", {"iterations": "-3"}, ["iterations"]),
    ("evaluate", {"max_objects": "0"}, ["max_objects"]),
    ("evaluate", {"bogus": "1"}, ["bogus"]),
    ("evaluate", {"out": "DIR"}, ["out=", "folder"]),
]


@pytest.mark.parametrize("command, over, words", SAMPLE_CASES,
                         ids=[f"{c}-{'-'.join(f'{k}={v}' for k, v in o.items())}" for c, o, _ in SAMPLE_CASES])
def test_sample_evaluate_refuse_bad_options(command, over, words, tiny_run, tmp_path, capsys, monkeypatch):
    from latent4d.objects import evaluation

    def no_compute(*a, **k):
        raise AssertionError("compute started before the options were checked")

    monkeypatch.setattr(evaluation, "compare_recipes", no_compute)
    out = {"FILE": _bytes(tmp_path / "result.txt", b"mine"), "FOREIGN": _foreign(tmp_path / "mine"),
           "DIR": tmp_path}.get(over.get("out"), tmp_path / "new_out")
    before = digest(tmp_path)
    rc, err = call(capsys, command, f"run={tiny_run[0]}", *[f"{k}={v}" for k, v in {**over, "out": out}.items()])
    _clear_error(rc, err, *words)
    assert digest(tmp_path) == before and not (tmp_path / "new_out").exists()


def test_sample_replaces_its_own_output_whole(tiny_run, tmp_path, capsys):
    out = tmp_path / "samples"
    rc, err = call(capsys, "sample", f"run={tiny_run[0]}", "objects=all", "means=false", "level=3", f"out={out}")
    assert rc == 0, err
    assert len(list(out.glob("*.ply"))) == 6
    rc, err = call(capsys, "sample", f"run={tiny_run[0]}", "objects=bogus", f"out={out}")
    _clear_error(rc, err, "bogus")
    assert len(list(out.glob("*.ply"))) == 6
    rc, err = call(capsys, "sample", f"run={tiny_run[0]}", "objects=0", "means=false", "level=3", f"out={out}")
    assert rc == 0, err
    assert [p.name for p in out.glob("*.ply")] == ["mug_00000.ply"]


# ------------------------------------------------------------------------------------------------
# hostile / damaged checkpoints and run folders (from_checkpoint, from_pretrained)


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(tiny_run[0], dst)
    return dst


def test_from_checkpoint_loads_a_real_run(tiny_run):
    a = ObjectsPipeline.from_checkpoint(tiny_run[0])
    b = ObjectsPipeline.from_pretrained(tiny_run[0])
    assert a.database.names == b.database.names
    assert torch.allclose(a.database.shape.weight, b.database.shape.weight)


def test_pickle_payload_in_checkpoint_never_runs(run_copy, tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.ckpt"
    state = torch.load(run_copy / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    state["payload"] = Payload(marker)
    torch.save(state, bad)
    with pytest.raises(InputError, match="evil.ckpt.*never unpickles"):
        ObjectsPipeline.from_checkpoint(run_copy, bad)
    torch.save(state, run_copy / "checkpoints" / "last.ckpt")  # the default checkpoint too
    with pytest.raises(InputError, match="last.ckpt.*never unpickles"):
        ObjectsPipeline.from_checkpoint(run_copy)
    assert not marker.exists()


@pytest.mark.parametrize("target", ["builtins.open", "os.system", "subprocess.run",
                                    "latent4d.objects.io.write_scene_reconstruction"])
def test_hostile_config_target_is_refused(run_copy, tmp_path, target):
    marker = tmp_path / "pwned"
    cfg = OmegaConf.load(run_copy / "config.yaml")
    args = {"_args_": [f"touch {marker}"]} if target in ("os.system", "subprocess.run") else {
        "_args_": [str(marker), "w"]}
    cfg.model = OmegaConf.create({"_target_": target, **args})
    OmegaConf.save(cfg, run_copy / "config.yaml")
    with pytest.raises(ConfigError, match="refusing _target_"):
        ObjectsPipeline.from_checkpoint(run_copy)
    assert not marker.exists()


def test_nested_hostile_target_is_refused(run_copy, tmp_path):
    marker = tmp_path / "pwned"
    cfg = OmegaConf.load(run_copy / "config.yaml")
    cfg.model.shape_decoder = OmegaConf.create({"_target_": "builtins.open", "_args_": [str(marker), "w"]})
    OmegaConf.save(cfg, run_copy / "config.yaml")
    with pytest.raises(ConfigError, match="builtins.open"):
        ObjectsPipeline.from_checkpoint(run_copy)
    assert not marker.exists()


def _other_size(run: Path) -> None:
    cfg = OmegaConf.load(run / "config.yaml")
    cfg.model.shape_decoder.hidden = 4_000_000  # 16 TB of weights if it were built for real
    OmegaConf.save(cfg, run / "config.yaml")


CHECKPOINT_CASES = [
    ("empty", lambda r, c: c.write_bytes(b""), InputError, "empty"),
    ("truncated", lambda r, c: c.write_bytes(c.read_bytes()[:5000]), InputError, "truncated"),
    ("garbage", lambda r, c: c.write_bytes(b"\x00garbage" * 100), InputError, "last.ckpt"),
    ("not-lightning", lambda r, c: torch.save({"weights": torch.zeros(3)}, c), InputError, "not a Lightning"),
    ("missing", lambda r, c: c.unlink(), InputError, "does not exist"),
    ("other-model-size", lambda r, c: _other_size(r), InputError, "does not fit"),
    ("database-names-damaged", lambda r, c: _damage_extra(c), InputError, "6000 database names"),
    ("garbage-config-yaml", lambda r, c: (r / "config.yaml").write_text("model: [unclosed\n  : :"), ConfigError,
     "config.yaml"),
    ("config-of-another-family", lambda r, c: _family(r, "motion"), ConfigError, "not objects"),
]


def _damage_extra(ckpt: Path) -> None:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    state["state_dict"]["_extra_state"]["names"] = state["state_dict"]["_extra_state"]["names"] * 1000
    state["state_dict"]["_extra_state"]["categories"] = state["state_dict"]["_extra_state"]["categories"] * 1000
    torch.save(state, ckpt)


def _family(run: Path, family: str) -> None:
    cfg = OmegaConf.load(run / "config.yaml")
    cfg.family = family
    OmegaConf.save(cfg, run / "config.yaml")


@pytest.mark.parametrize("case, damage, exc, words", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_damaged_checkpoints_are_clear_errors(run_copy, case, damage, exc, words):
    damage(run_copy, run_copy / "checkpoints" / "last.ckpt")
    with pytest.raises(exc, match=words):
        ObjectsPipeline.from_checkpoint(run_copy)


def _write_config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def _weights(folder: Path) -> Path:
    return next(folder.glob("*.safetensors"))


MODEL_CASES = [
    ("empty-safetensors", lambda m: _weights(m / "shape_decoder").write_bytes(b""), ["shape_decoder", "empty"]),
    ("truncated-safetensors", lambda m: _truncate(_weights(m / "appearance"), 300), ["appearance", "safetensors"]),
    ("garbage-config-json", lambda m: (m / "database" / "config.json").write_text("{not json"),
     ["database", "config.json", "not valid JSON"]),
    ("config-json-a-list", lambda m: (m / "database" / "config.json").write_text("[1, 2]"), ["config.json", "list"]),
    ("huge-hidden-in-config", lambda m: _write_config(m / "shape_decoder", hidden=4_000_000),
     ["shape_decoder", "does not fit"]),
    ("bad-value-in-config", lambda m: _write_config(m / "appearance", num_layers="many"),
     ["appearance", "config.json"]),
    ("database-names-vs-rows", lambda m: _write_config(m / "database", names=[f"x{i}" for i in range(100000)],
                                                        categories=["mug"] * 100000), ["database", "does not fit"]),
    ("wrong-class", lambda m: shutil.copy(m / "appearance" / "config.json", m / "database" / "config.json"),
     ["database", "AppearanceNet"]),
    ("pickled-bin-only", lambda m: _weights(m / "database").rename(m / "database" / "diffusion_pytorch_model.bin"),
     ["database", "pickled"]),
    ("missing-network", lambda m: shutil.rmtree(m / "appearance"), ["appearance", "missing"]),
]


@pytest.mark.parametrize("case, damage, words", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_damaged_model_folders_are_clear_errors(run_copy, case, damage, words, capsys):
    damage(run_copy / "models")
    with pytest.raises((InputError, ConfigError)) as e:
        ObjectsPipeline.from_pretrained(run_copy)
    for w in words:
        assert w.lower() in str(e.value).lower(), (w, str(e.value))
    rc, err = call(capsys, "sample", f"run={run_copy}", "level=3")
    _clear_error(rc, err, *words)
    assert not (run_copy / "samples").exists()
