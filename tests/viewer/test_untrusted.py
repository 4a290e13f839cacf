"""Bad input to ``latent4d view`` / ``latent4d render`` (issue 16): one clear line, no window, no traceback.

Every case goes through ``latent4d.cli.main`` exactly as the console script does. For bad input
the viewer must print exactly one line ``latent4d <cmd>: error: <file or option>: <reason>``, exit
non-zero, write nothing, and never start Open3D: ``ViewerApp`` (the window / offscreen renderer) is
replaced by a stub that fails the test when it is built, and ``capfd`` sees Filament's own
start-up message if a renderer starts anyway. No case needs a display or Xvfb.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from latent4d.cli import main

#: exception class names that must never be the whole explanation of a bad input
RAW_EXCEPTIONS = re.compile(
    r"\b(KeyError|IndexError|TypeError|AttributeError|MemoryError|RecursionError|"
    r"ZeroDivisionError|UnboundLocalError|OverflowError|struct\.error|NameError)\b"
)


class WindowOpened(Exception):
    """Raised by the ViewerApp stub: the command got past validation and reading."""


@pytest.fixture
def no_window(monkeypatch):
    """Fail (``WindowOpened``) if a ViewerApp (window or offscreen renderer) is created; no display."""
    from latent4d.viewer import controller

    def refuse(*args, **kwargs):
        raise WindowOpened("a ViewerApp (window / renderer) was created")

    monkeypatch.setattr(controller, "ViewerApp", refuse)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def run_cli(capfd, argv: list[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capfd.readouterr()
    return rc, out, err


def assert_clear_error(rc: int, out: str, err: str, cmd: str, names: str, reason: str | None = None) -> str:
    """Exit non-zero, exactly one ``latent4d <cmd>: error:`` line that names ``names`` (and matches
    the regex ``reason``), no traceback, no raw exception name, no renderer start-up. The line."""
    assert rc != 0, f"exit status 0 for bad input:\n{out}\n{err}"
    assert "Traceback" not in out + err, err
    assert "FEngine" not in out + err, "Open3D's renderer started for bad input"
    lines = [ln for ln in err.splitlines() if ln.startswith(f"latent4d {cmd}: error: ")]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    line = lines[0]
    assert names in line, f"the error does not name {names!r}: {line}"
    assert not RAW_EXCEPTIONS.search(line), f"a raw exception instead of a reason: {line}"
    if reason is not None:
        assert re.search(reason, line, re.IGNORECASE), f"reason /{reason}/ not in: {line}"
    return line


# ------------------------------------------------------------------------------------------ inputs
def _data_bytes(strands: list[np.ndarray]) -> bytes:
    """USC-HairSalon ``.data``: int32 strand count, then per strand int32 n and n x 3 float32."""
    out = [struct.pack("<i", len(strands))]
    for s in strands:
        out.append(struct.pack("<i", len(s)) + np.asarray(s, "<f4").tobytes())
    return b"".join(out)


def _hair_header(strands: int, points: int, arrays: int, d_seg: int = 10) -> bytes:
    """Cem Yuksel ``.hair`` header (128 bytes)."""
    return struct.pack("<4sIIII f f 3f 88s", b"HAIR", strands, points, arrays, d_seg, 1.0, 0.0, 0, 0, 0, b"")


def _npy(shape_text: str, dtype: str = "<f4", payload: bytes = b"") -> bytes:
    """A .npy member whose header declares ``shape_text`` (whatever the payload holds)."""
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape_text}, }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload


def _npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return path


def _strand(n: int = 12, x: float = 0.0) -> np.ndarray:
    t = np.linspace(0, 1, n)
    return np.stack([np.full(n, x), 1.7 - 0.3 * t, 0.05 * t], 1)


def _depth_frame(folder: Path, depth: np.ndarray, intrinsics) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(depth).save(folder / "depth.png")
    text = intrinsics if isinstance(intrinsics, str) else json.dumps(intrinsics)
    (folder / "intrinsics.json").write_text(text)
    return folder


def _tiny_strand_vae(folder: Path) -> Path:
    """A small, valid strand-VAE save_pretrained folder."""
    from latent4d.hair.strand_vae import StrandVAE

    StrandVAE(num_points=16, latent_dim=4, channels=(4, 4, 4, 4), hidden=8, layers=1).save_pretrained(folder)
    return folder


class Payload:
    """A pickle whose loading creates ``marker`` (code execution from a downloaded file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _paths_cases(d: Path, add, rng: np.random.Generator) -> None:
    """Paths: missing, folders, empty files, unknown types."""
    add("missing", d / "missing.data", "no such file")
    (d / "empty_dir").mkdir()
    add("empty_dir", d / "empty_dir", "cannot open this folder")
    for ext in (".data", ".hair", ".ply", ".npz", ".obj", ".glb"):
        (d / f"empty{ext}").write_bytes(b"")
        add(f"empty{ext}", d / f"empty{ext}", "empty")
    (d / "notes.xyzzy").write_text("hello")
    add("unknown_ext", d / "notes.xyzzy", r"cannot open this '\.xyzzy' file")
    (d / "README").write_text("hello")
    add("no_ext", d / "README", r"cannot open this '\(no extension\)' file")


def _truncated_cases(d: Path, add, rng: np.random.Generator) -> None:
    """Truncated files."""
    good = _data_bytes([_strand(), _strand(x=0.01)])
    (d / "truncated.data").write_bytes(good[: len(good) // 2])
    add("truncated.data", d / "truncated.data", "truncat|declares|bytes|expected")
    (d / "truncated.hair").write_bytes(_hair_header(2, 24, 0x2, 11) + b"\0" * 40)
    add("truncated.hair", d / "truncated.hair", "truncat|declares|bytes")
    ply = (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 24\nproperty float x\nproperty float y\n"
        b"property float z\nelement edge 22\nproperty int vertex1\nproperty int vertex2\nend_header\n"
    )
    (d / "truncated.ply").write_bytes(ply + b"\0" * 50)
    add("truncated.ply", d / "truncated.ply", "truncat|declares|bytes|short|expected")
    buf = d / "full.npz"
    np.savez(buf, points=np.zeros((24, 3), np.float32), counts=np.array([12, 12]))
    (d / "truncated.npz").write_bytes(buf.read_bytes()[:150])
    buf.unlink()
    add("truncated.npz", d / "truncated.npz", "npz|zip|truncat")
    (d / "truncated.glb").write_bytes(b"glTF\x02\x00\x00\x00\xff\xff\x00\x00" + b"\0" * 8)
    add("truncated.glb", d / "truncated.glb", "cannot read|no mesh|empty")


def _garbage_cases(d: Path, add, rng: np.random.Generator) -> None:
    """Garbage bytes."""
    for ext in (".data", ".hair", ".ply", ".npz", ".obj", ".stl", ".off", ".glb"):
        (d / f"garbage{ext}").write_bytes(rng.integers(0, 256, 700, dtype=np.uint8).tobytes())
        add(f"garbage{ext}", d / f"garbage{ext}", r"\w")


def _nan_cases(d: Path, add, rng: np.random.Generator) -> None:
    """NaN coordinates."""
    (d / "nan.data").write_bytes(_data_bytes([_strand(), np.full((12, 3), np.nan)]))
    add("nan.data", d / "nan.data", "nan|finite")
    (d / "nan.obj").write_text("v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    add("nan.obj", d / "nan.obj", "nan|finite")
    (d / "nan_cloud.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
        "property float z\nend_header\n0 0 0\nnan 1 0\n0 0 1\n"
    )
    add("nan_cloud.ply", d / "nan_cloud.ply", "nan|finite")
    np.savez(d / "nan_seq.npz", vertices=np.full((2, 3, 3), np.nan, np.float32), faces=np.array([[0, 1, 2]]))
    add("nan_seq.npz", d / "nan_seq.npz", "nan|finite")
    np.savez(d / "nan_hair.npz", points=np.full((24, 3), np.nan, np.float32), counts=np.array([12, 12]))
    add("nan_hair.npz", d / "nan_hair.npz", "nan|finite")


def _hostile_cases(d: Path, add, rng: np.random.Generator) -> None:
    """Hostile headers (a few bytes that declare gigabytes)."""
    (d / "hostile.hair").write_bytes(_hair_header(2**32 - 1, 0, 0x2))
    add("hostile.hair", d / "hostile.hair", "declares|zero|strands|points")
    (d / "hostile_segments.hair").write_bytes(_hair_header(2**27, 2**30, 0x3) + b"\0" * 64)
    add("hostile_segments.hair", d / "hostile_segments.hair", "declares|bytes")
    (d / "hostile.data").write_bytes(struct.pack("<i", 2**31 - 1) + struct.pack("<i", 2**31 - 1) + b"\0" * 12)
    add("hostile.data", d / "hostile.data", "declares|bytes|strands|points")
    (d / "hostile.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 4294967295\nproperty float x\nproperty float y\n"
        b"property float z\nelement edge 4294967295\nproperty int vertex1\nproperty int vertex2\nend_header\n"
        + b"\0"
        * 64
    )
    add("hostile.ply", d / "hostile.ply", "declares|bytes|vertex|vertices")
    _npz(
        d / "hostile.npz",
        {"points.npy": _npy("(1099511627776, 3)"), "counts.npy": _npy("(2,)", "<i8", b"\0" * 16)},
    )
    add("hostile.npz", d / "hostile.npz", "declares|bytes")
    _npz(
        d / "hostile_seq.npz",
        {"vertices.npy": _npy("(4096, 1048576, 3)"), "faces.npy": _npy("(1, 3)", "<i8")},
    )
    add("hostile_seq.npz", d / "hostile_seq.npz", "declares|bytes")
    _npz(d / "pickled_seq.npz", {"vertices.npy": _npy("(2,)", "|O", b"\0" * 16)})
    add("pickled_seq.npz", d / "pickled_seq.npz", "object|pickle")


def _sequences_cases(d: Path, add, rng: np.random.Generator) -> None:
    """Sequences."""
    seq = d / "seq_bad_frame"
    seq.mkdir()
    (seq / "frame_0.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (seq / "frame_1.obj").write_text("v 0 0 0\nv inf 0 0\nv 0 1 0\nf 1 2 3\n")
    add("seq_inf_frame", seq, "frame_1.obj")
    seq = d / "seq_bad_faces"
    seq.mkdir()
    for t in range(2):
        (seq / f"frame_{t}.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
    add("seq_bad_faces", seq, r"frame_0\.obj|cannot read|range|index")


def _rgbd_cases(d: Path, add, rng: np.random.Generator) -> None:
    """RGB-D frames."""
    depth = np.zeros((12, 16), np.uint16)
    depth[3:9, 4:12] = 900
    add(
        "depth_8bit",
        _depth_frame(
            d / "depth_8bit", np.full((12, 16), 7, np.uint8), {"fx": 20, "fy": 20, "cx": 8, "cy": 6}
        ),
        "16-bit",
    )
    add(
        "depth_all_zero",
        _depth_frame(d / "depth_zero", np.zeros((12, 16), np.uint16), {"fx": 20, "fy": 20, "cx": 8, "cy": 6}),
        "no valid depth|0",
    )
    (d / "depth_garbage").mkdir()
    (d / "depth_garbage" / "depth.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (d / "depth_garbage" / "intrinsics.json").write_text(json.dumps({"fx": 20, "fy": 20, "cx": 8, "cy": 6}))
    add("depth_garbage_png", d / "depth_garbage", "cannot read image|depth")
    add("intrinsics_not_json", _depth_frame(d / "k_garbage", depth, "{fx: 1,,"), "not valid JSON")
    add(
        "intrinsics_fx_abc",
        _depth_frame(d / "k_abc", depth, {"fx": "abc", "fy": 20, "cx": 8, "cy": 6}),
        "fx must be a number",
    )
    add(
        "intrinsics_K_ragged",
        _depth_frame(d / "k_ragged", depth, {"K": [[20, 0], [0, 20, 6]]}),
        "must be numbers|3x3|shape",
    )
    add(
        "intrinsics_nan",
        _depth_frame(d / "k_nan", depth, '{"fx": NaN, "fy": 20, "cx": 8, "cy": 6}'),
        "nan|inf",
    )
    add(
        "intrinsics_negative",
        _depth_frame(d / "k_neg", depth, {"fx": -20, "fy": 20, "cx": 8, "cy": 6}),
        "focal",
    )
    add(
        "intrinsics_other_size",
        _depth_frame(
            d / "k_size", depth, {"fx": 20, "fy": 20, "cx": 8, "cy": 6, "width": 1280, "height": 960}
        ),
        "1280x960.*16x12",
    )
    (d / "no_intrinsics").mkdir()
    from PIL import Image

    Image.fromarray(depth).save(d / "no_intrinsics" / "depth.png")
    add("frame_no_intrinsics", d / "no_intrinsics", "no intrinsics")


def _runs_cases(d: Path, add, rng: np.random.Generator) -> None:
    """Run folders."""
    bomb = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    bomb += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    configs = (  # case id (= folder name), config.yaml's bytes, reason
        ("run_garbage_yaml", b"family: [hair\n  - : {{\n", r"config\.yaml.*YAML"),
        ("run_binary_yaml", rng.integers(0, 256, 300, dtype=np.uint8).tobytes(), r"config\.yaml"),
        ("run_yaml_bomb", ("\n".join([*bomb, "family: hair"]) + "\n").encode(), "alias"),
        ("run_bad_family", b"family: os.system\nname: x\n", "not a latent4d family"),
        ("run_motion_training", b"family: motion\nname: shape_ae\n", "motion training run"),
        ("run_binary_family", b"family: binary\nname: x\n", "'binary' run"),
    )
    for name, config, reason in configs:
        (d / name).mkdir()
        (d / name / "config.yaml").write_bytes(config)
        add(name, d / name, reason)
    # damaged networks in a hair run / an objects run
    run = d / "hair_run_garbage_json"
    (run / "models" / "strand_vae").mkdir(parents=True)
    (run / "config.yaml").write_text("family: hair\n")
    (run / "models" / "strand_vae" / "config.json").write_text("{not json")
    add("hair_net_garbage_json", run, r"config\.json|json")
    run = _tiny_strand_vae(d / "hair_run_truncated" / "models" / "strand_vae").parent.parent
    w = next((run / "models" / "strand_vae").glob("*.safetensors"))
    w.write_bytes(w.read_bytes()[:40])
    add("hair_net_truncated_safetensors", run, "safetensors|truncat|weights")
    run = _tiny_strand_vae(d / "hair_run_empty_weights" / "models" / "strand_vae").parent.parent
    next((run / "models" / "strand_vae").glob("*.safetensors")).write_bytes(b"")
    add("hair_net_empty_safetensors", run, "safetensors|empty|weights")
    run = d / "objects_run_garbage"
    for n in ("shape_decoder", "appearance", "database"):
        (run / "models" / n).mkdir(parents=True)
        (run / "models" / n / "config.json").write_text("[1, 2")
    (run / "config.yaml").write_text("family: objects\nname: latent_db\n")
    add("objects_net_garbage_json", run, r"config\.json.*json")
    # the same networks without a run config: latent4d.runs.run_family cannot tell the family from a
    # config.json it cannot parse, so the folder is no run the viewer recognises
    nets = d / "networks_garbage_no_run_config"
    (nets / "models" / "shape_decoder").mkdir(parents=True)
    (nets / "models" / "shape_decoder" / "config.json").write_text("[1, 2")
    add("networks_garbage_json", nets, r"config\.json.*json|cannot open this folder")


def _build_inputs(d: Path) -> dict[str, tuple[Path, str]]:
    """Bad inputs: case id -> (path, regex the reason must match)."""
    cases: dict[str, tuple[Path, str]] = {}

    def add(name: str, path: Path, reason: str) -> None:
        cases[name] = (path, reason)

    rng = np.random.default_rng(16)
    _paths_cases(d, add, rng)
    _truncated_cases(d, add, rng)
    _garbage_cases(d, add, rng)
    _nan_cases(d, add, rng)
    _hostile_cases(d, add, rng)
    _sequences_cases(d, add, rng)
    _rgbd_cases(d, add, rng)
    _runs_cases(d, add, rng)
    return cases


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    return _build_inputs(tmp_path_factory.mktemp("bad_inputs"))


@pytest.fixture(scope="module")
def good_inputs(tmp_path_factory) -> dict[str, Path]:
    import viewer_data as vd

    d = tmp_path_factory.mktemp("good_inputs")
    return {
        "hair": vd.make_hair(d / "hair.data", n=200),
        "mesh": vd.make_mesh(d / "mesh.obj"),
        "seq": vd.make_sequence(d / "seq", frames=3),
        "frame": vd.make_rgbd(d / "frame", 32, 24),
    }


INPUT_CASES = [
    "missing",
    "empty_dir",
    "empty.data",
    "empty.hair",
    "empty.ply",
    "empty.npz",
    "empty.obj",
    "empty.glb",
    "unknown_ext",
    "no_ext",
    "truncated.data",
    "truncated.hair",
    "truncated.ply",
    "truncated.npz",
    "truncated.glb",
    "garbage.data",
    "garbage.hair",
    "garbage.ply",
    "garbage.npz",
    "garbage.obj",
    "garbage.stl",
    "garbage.off",
    "garbage.glb",
    "nan.data",
    "nan.obj",
    "nan_cloud.ply",
    "nan_seq.npz",
    "nan_hair.npz",
    "hostile.hair",
    "hostile_segments.hair",
    "hostile.data",
    "hostile.ply",
    "hostile.npz",
    "hostile_seq.npz",
    "pickled_seq.npz",
    "seq_inf_frame",
    "seq_bad_faces",
    "depth_8bit",
    "depth_all_zero",
    "depth_garbage_png",
    "intrinsics_not_json",
    "intrinsics_fx_abc",
    "intrinsics_K_ragged",
    "intrinsics_nan",
    "intrinsics_negative",
    "intrinsics_other_size",
    "frame_no_intrinsics",
    "run_garbage_yaml",
    "run_binary_yaml",
    "run_yaml_bomb",
    "run_bad_family",
    "run_motion_training",
    "run_binary_family",
    "hair_net_garbage_json",
    "hair_net_truncated_safetensors",
    "hair_net_empty_safetensors",
    "objects_net_garbage_json",
    "networks_garbage_json",
]


def test_every_built_case_is_driven(bad_inputs):
    assert sorted(INPUT_CASES) == sorted(bad_inputs)


# ------------------------------------------------------------------------------------------ view / render
@pytest.mark.parametrize("case", INPUT_CASES)
def test_view_screenshot_bad_input(case, bad_inputs, no_window, capfd, tmp_path):
    path, reason = bad_inputs[case]
    shot = tmp_path / "shot.png"
    rc, out, err = run_cli(capfd, ["view", str(path), "--screenshot", str(shot)])
    assert_clear_error(rc, out, err, "view", path.name, reason)
    assert not shot.exists() and not list(tmp_path.iterdir()), "nothing is written for bad input"


@pytest.mark.parametrize("case", INPUT_CASES)
def test_render_bad_input(case, bad_inputs, no_window, capfd, tmp_path):
    path, reason = bad_inputs[case]
    out_dir = tmp_path / "render"
    rc, out, err = run_cli(
        capfd, ["render", str(path), "--out", str(out_dir), "--views", "2", "--size", "64"]
    )
    assert_clear_error(rc, out, err, "render", path.name, reason)
    assert not out_dir.exists() or not any(out_dir.iterdir()), "nothing is rendered for bad input"


def test_view_window_mode_fails_before_the_window(bad_inputs, no_window, capfd, monkeypatch):
    """With a display (interactive mode), bad input is still refused before the window opens."""
    monkeypatch.setenv("DISPLAY", ":1234")
    for case in ("truncated.data", "run_garbage_yaml", "missing"):
        path, reason = bad_inputs[case]
        rc, out, err = run_cli(capfd, ["view", str(path)])
        assert_clear_error(rc, out, err, "view", path.name, reason)


def test_render_names_every_bad_input(bad_inputs, no_window, capfd, tmp_path):
    """Several inputs that cannot be read: one line each, the renderer never starts."""
    paths = [bad_inputs[c][0] for c in ("truncated.data", "nan.obj", "hostile.npz")]
    rc = main(["render", *map(str, paths), "--out", str(tmp_path / "r")])
    _, err = capfd.readouterr()
    assert rc == 1 and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("latent4d render: error: ")]
    assert [p.name in ln for p, ln in zip(paths, lines)] == [True] * 3 and len(lines) == 3
    assert "3 of 3 inputs failed" in err


def test_view_reads_every_input_before_the_window(bad_inputs, good_inputs, no_window, capfd, tmp_path):
    """A good file then a bad one: the bad one is named and no window opens (nothing half-shown)."""
    bad, reason = bad_inputs["nan.data"]
    rc, out, err = run_cli(
        capfd, ["view", str(good_inputs["hair"]), str(bad), "--screenshot", str(tmp_path / "s.png")]
    )
    assert_clear_error(rc, out, err, "view", bad.name, reason)


# ------------------------------------------------------------------------------------------ options
def _view_option_cases(tmp: Path, hair: Path) -> list[tuple[list[str], str, str]]:
    (tmp / "a_dir").mkdir(exist_ok=True)
    (tmp / "a_file.txt").write_text("x")
    h = str(hair)
    return [
        ([h, "--bogus"], "unrecognized arguments: --bogus", "--bogus"),
        ([h, "--width", "0"], "from 64 to", "--width"),
        ([h, "--width", "abc"], "invalid int value", "--width"),
        ([h, "--height", "100000"], "from 64 to", "--height"),
        ([h, "--elevation", "nan"], "finite", "--elevation"),
        ([h, "--elevation", "120"], "-90 to 90", "--elevation"),
        ([h, "--azimuth", "inf"], "finite", "--azimuth"),
        ([h, "--hair-color", "purple"], "expected one of", "--hair-color"),
        ([h, "--preview-strands", "0"], "from 1 to", "--preview-strands"),
        ([h, "--frame", "-1"], "from 0 to", "--frame"),
        ([h, "--frame", "2"], "needs a motion sequence", "--frame"),
        ([h, "--screenshot", str(tmp / "a_dir")], "is a folder", "a_dir"),
        ([h, "--screenshot", str(tmp / "a_file.txt" / "s.png")], "is a file", "a_file.txt"),
        ([h, "--screenshot", str(tmp / "shot.jpg")], "unsupported output type", "shot.jpg"),
    ]


def test_view_bad_options(good_inputs, no_window, capfd, tmp_path):
    cases = _view_option_cases(tmp_path, good_inputs["hair"])
    for argv, reason, names in cases:
        if "--screenshot" not in argv:
            argv = [*argv, "--screenshot", str(tmp_path / "never.png")]
        rc, out, err = run_cli(capfd, ["view", *argv])
        assert_clear_error(rc, out, err, "view", names, re.escape(reason))
        assert not (tmp_path / "never.png").exists()
    seq = str(good_inputs["seq"])
    rc, out, err = run_cli(capfd, ["view", seq, "--frame", "3", "--screenshot", str(tmp_path / "never.png")])
    assert_clear_error(rc, out, err, "view", "--frame", "has 3 frames")


def test_render_bad_options(good_inputs, no_window, capfd, tmp_path):
    (tmp_path / "a_file.txt").write_text("x")
    h = str(good_inputs["hair"])
    out = ["--out", str(tmp_path / "r")]
    cases = [
        ([h, *out, "--size", "0"], "from 16 to", "--size"),
        ([h, *out, "--size", "99999"], "from 16 to", "--size"),
        ([h, *out, "--views", "0"], "from 1 to", "--views"),
        ([h, *out, "--views", "100000"], "from 1 to", "--views"),
        ([h, *out, "--max-strands", "-5"], "from 1 to", "--max-strands"),
        ([h, *out, "--elevation", "nan"], "finite", "--elevation"),
        ([h, *out, "--frobnicate"], "unrecognized arguments", "--frobnicate"),
        ([*out], "the following arguments are required: paths", "paths"),
        ([h, "--out", str(tmp_path / "a_file.txt")], "is an existing file", "a_file.txt"),
        ([h, "--out", str(tmp_path / "a_file.txt" / "sub")], "is a file", "a_file.txt"),
    ]
    for argv, reason, names in cases:
        rc, o, err = run_cli(capfd, ["render", *argv])
        assert_clear_error(rc, o, err, "render", names, re.escape(reason))
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------ trust
def test_run_folder_payloads_never_run(tmp_path, no_window, capfd):
    """A hair run whose config names ``os.system`` targets and whose weights are a pickle that would
    create a file: opening it never creates the file, and the refusal is one clear line."""
    import torch

    marker = tmp_path / "PWNED"
    run = tmp_path / "hostile_run"
    net = run / "models" / "strand_vae"
    _tiny_strand_vae(net)
    for w in net.glob("*.safetensors"):
        w.unlink()
    torch.save({"w": Payload(marker)}, net / "diffusion_pytorch_model.bin")
    (run / "config.yaml").write_text(
        "family: hair\nname: style_vae\nmodel:\n  _target_: pathlib.Path.touch\n  self: " + str(marker) + "\n"
        "data:\n  _target_: os.system\n  command: touch " + str(marker) + "\n"
    )
    rc, out, err = run_cli(capfd, ["view", str(run), "--screenshot", str(tmp_path / "s.png")])
    assert_clear_error(rc, out, err, "view", "hostile_run", r"safetensors|pickle|\.bin")
    rc, out, err = run_cli(capfd, ["render", str(run), "--out", str(tmp_path / "r")])
    assert_clear_error(rc, out, err, "render", "hostile_run", r"safetensors|pickle|\.bin")
    assert not marker.exists(), "a payload from the run folder was executed"


def test_run_config_targets_are_only_read(tmp_path):
    """A run without networks opens (model controls off, with the reason); its config's ``_target_``
    entries are never imported or called."""
    from latent4d.viewer.registry import read_input

    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(
        "family: hair\nmodel:\n  _target_: os.system\n  command: touch " + str(marker) + "\n"
    )
    name, data = read_input(run)
    assert name == "hair" and data.pipeline is None and "strand_vae" in data.reason
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ valid input
def test_valid_inputs_still_read(good_inputs):
    """The checks refuse nothing valid: each kind of input is read (no window needed)."""
    from latent4d.viewer.registry import read_input

    kinds = {key: read_input(p)[0] for key, p in good_inputs.items()}
    assert kinds == {"hair": "hair", "mesh": "objects", "seq": "motion", "frame": "objects"}
    frame = read_input(good_inputs["frame"])[1].frame
    assert frame.depth.shape == (24, 32) and (frame.depth > 0).any() and frame.instance_ids == [1, 2]
    k = good_inputs["frame"] / "intrinsics.json"
    k.write_text(json.dumps({"fx": 28.0, "fy": 28.0, "cx": 16, "cy": 12, "width": 32, "height": 24}))
    assert read_input(good_inputs["frame"])[0] == "objects", "a matching width/height is accepted"


# ------------------------------------------------------------------------------------------ generated garbage
MAGICS = [
    b"",
    b"HAIR",
    b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n",
    b"PK\x03\x04",
    b"glTF",
    b"solid x\n",
    b"OFF\n",
    b"\x93NUMPY",
]
EXTS = [".data", ".hair", ".ply", ".npz", ".obj", ".stl", ".off", ".glb"]


def test_generated_garbage_is_a_clear_error(tmp_path, no_window, capfd):
    """Hypothesis: a known magic + random bytes under every readable extension. Either the file
    happens to be valid (the viewer would open it) or it is one clear error line; never a traceback."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seen = {"errors": 0, "valid": 0}

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ext=st.sampled_from(EXTS), magic=st.sampled_from(MAGICS), body=st.binary(min_size=0, max_size=600))
    def check(ext, magic, body):
        f = tmp_path / f"gen{ext}"
        f.write_bytes(magic + body)
        capfd.readouterr()
        try:
            rc = main(["view", str(f), "--screenshot", str(tmp_path / "never.png")])
        except WindowOpened:
            seen["valid"] += 1
            return
        out, err = capfd.readouterr()
        assert_clear_error(rc, out, err, "view", f.name)
        seen["errors"] += 1

    check()
    assert seen["errors"] > 0 and not (tmp_path / "never.png").exists()


# ------------------------------------------------------------------------------------------ render library
def test_render_library_refuses_bad_sizes_and_nan(tmp_path):
    """``latent4d.render``: sizes and view counts are checked before any buffer is allocated, and
    NaN coordinates are refused instead of being framed and drawn silently wrong."""
    from latent4d.errors import InputError
    from latent4d.render import render_image, render_png, render_turntable

    pts = np.zeros((3, 3))
    for w, h in ((0, 48), (10**6, 10), (2.5, 3), ("a", 3), (True, 3), (float("nan"), 3)):
        with pytest.raises(InputError, match="render size"):
            render_image([pts], width=w, height=h)
    with pytest.raises(InputError, match="NaN or infinite"):
        render_png([np.array([[np.nan, 0, 0], [0, 0, 1.0]])], tmp_path / "nan.png", width=32, height=24)
    with pytest.raises(InputError, match="views=0"):
        render_turntable([pts], tmp_path / "tt.png", views=0)
    assert not list(tmp_path.iterdir()), "nothing is written"
    assert render_image([pts], width=32.0, height=24).shape == (24, 32, 3), "whole-number floats still work"
