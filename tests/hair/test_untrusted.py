"""Untrusted input to the hair family (issue 16): hostile headers allocate nothing, malformed files and
options are one clear error, run folders are data (no ``_target_`` from them is called), damaged
networks are named, and a failing command leaves earlier outputs byte-identical.

Every command case runs ``latent4d.cli.main`` in-process: exit code 2, ``error:`` and the file or
option on stderr, no traceback. No training: the networks are built with tiny configs and saved.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latent4d.errors import ConfigError, InputError
from latent4d.hair import formats
from latent4d.hair.formats import read_hair, write_hair, write_points
from latent4d.hair.strands import Hairstyle

EXTS = (".data", ".hair", ".ply", ".npz")
_HDR = struct.Struct("<4sIIII f f 3f 88s")


def _hair_header(strands: int, points: int, arrays: int, d_seg: int = 0) -> bytes:
    return _HDR.pack(b"HAIR", strands, points, arrays, d_seg, 1.0, 0.0, 1.0, 1.0, 1.0, b"")


def _npy(shape, descr: str = "<f4", payload: bytes = b"\0" * 64) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


def _zip(**members: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for k, v in members.items():
            z.writestr(f"{k}.npy", v)
    return out.getvalue()


def _ply(body: bytes, *header: str, fmt: str = "binary_little_endian") -> bytes:
    return ("\n".join(["ply", f"format {fmt} 1.0", *header, "end_header"]) + "\n").encode() + body


_XYZ = ("property float x", "property float y", "property float z")

#: headers declaring far more than the file holds (each would allocate >= 1 GiB if trusted)
HOSTILE = {
    "strands32.hair": _hair_header(2**32 - 1, 0, 2),       # no segments array: nothing bounded it (32 GiB)
    "strands27.hair": _hair_header(2**27, 0, 2),           # 1 GiB
    "strands27p1.hair": _hair_header(2**27, 1, 2) + b"\0" * 12,  # consistent size, more strands than points
    "segs32.hair": _hair_header(2**32 - 1, 2**32 - 1, 3) + b"\0" * 64,
    "dseg.hair": _hair_header(2**26, 2**26, 2, d_seg=2**31) + b"\0" * 12,
    "strands.data": struct.pack("<i", 2**31 - 1) + b"\0" * 60,
    "points.data": struct.pack("<ii", 1, 2**30) + b"\0" * 12,
    "rows.ply": _ply(b"\0" * 24, "element vertex 99999999999", *_XYZ),
    "rows_ascii.ply": _ply(b"0 0 0\n", "element vertex 99999999999", *_XYZ, fmt="ascii"),
    "noprops.ply": _ply(b"\0" * 24, "element vertex 2", *_XYZ, "element junk 4000000000"),
    "edges.ply": _ply(b"\0" * 24, "element vertex 2", *_XYZ, "element edge 3000000000",
                      "property int vertex1", "property int vertex2"),
    "shape.npz": _zip(points=_npy((10**12, 3)), counts=_npy((10**12,), "<i8")),
    "overflow.npz": _zip(points=_npy((2**32, 2**32, 3)), counts=_npy((1,), "<i8", b"\1" + b"\0" * 7)),
    "negative.npz": _zip(points=_npy((-1, 3)), counts=_npy((1,), "<i8")),
    "strands.npz": _zip(strands=_npy((2**40, 100, 3))),
}


def test_hostile_headers_fail_before_allocating(tmp_path):
    """Each hostile header, read with the address space limited to ~640 MiB above the interpreter's
    (a 1 GiB allocation fails), and with numpy's allocations traced: a clear InputError naming the
    file, and under 32 MiB allocated at peak."""
    for name, blob in HOSTILE.items():
        (tmp_path / name).write_bytes(blob)
    script = textwrap.dedent(f"""
        import json, resource, sys, tracemalloc
        from pathlib import Path
        from latent4d.hair.formats import read_hair, read_points
        vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (640 << 20), vm + (640 << 20)))
        out = []
        for p in sorted(Path({str(tmp_path)!r}).iterdir()):
            for reader in (read_hair, read_points):
                tracemalloc.start()
                try:
                    reader(p)
                    kind, msg = "returned", ""
                except Exception as e:
                    kind, msg = type(e).__name__, str(e)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                out.append([p.name, reader.__name__, kind, msg[:300], peak])
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(rows) == 2 * len(HOSTILE)
    for name, reader, kind, msg, peak in rows:
        assert kind == "InputError", (name, reader, kind, msg)
        assert name in msg, (name, msg)
        assert peak < 32 << 20, (name, reader, peak)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_headers_through_the_cli(tmp_path, capsys, name):
    p = tmp_path / name
    p.write_bytes(HOSTILE[name])
    code, err = _main(capsys, "convert", str(p), str(tmp_path / "out.ply"))
    assert code == 2 and name in err and not (tmp_path / "out.ply").exists()


# ------------------------------------------------------------------ helpers
def _main(capsys, *args: str) -> tuple[int, str]:
    """``latent4d <args>`` in-process: (exit code, stderr); a traceback or a stray exception fails."""
    from latent4d.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code:
        assert "error:" in err, err
    return code, err


def _valid(ext: str) -> bytes:
    """A small valid file of each format (ragged strands, a bald root, per-point attributes)."""
    rng = np.random.default_rng(0)
    counts = [5, 1, 12, 3]
    h = Hairstyle.from_list([rng.normal(size=(n, 3)).astype(np.float32) * 0.05 + [0, 1.7, 0] for n in counts])
    if ext != ".data":
        n = h.num_points
        h = Hairstyle(h.points, h.counts, thickness=rng.random(n), transparency=rng.random(n), colors=rng.random((n, 3)))
    return {".data": formats.encode_data, ".hair": formats.encode_hair, ".ply": formats.encode_ply,
            ".npz": formats.encode_npz}[ext](h)


def _malformed_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, a phrase the error must contain): truncated, garbage, NaN/inf, negative, zero."""
    nan = Hairstyle(np.array([[0, 1.7, 0], [np.nan, 1.7, 0]], np.float32), [2])
    inf = Hairstyle(np.array([[0, 1.7, 0], [np.inf, 1.7, 0]], np.float32), [2])
    cases: dict[str, tuple[bytes, str]] = {}
    for ext in EXTS:
        good = _valid(ext)
        stem = ext[1:]
        cases[f"empty_{stem}{ext}"] = (b"", "empty")
        cases[f"garbage_{stem}{ext}"] = (b"\x13\x37garbage" * 9, "")
        cases[f"half_{stem}{ext}"] = (good[: len(good) // 2], "")
        cases[f"short_{stem}{ext}"] = (good[:-3], "")
        cases[f"tail_{stem}{ext}"] = (good + b"\0" * 5, "") if ext in (".data", ".hair") else (good[:7], "")
        cases[f"nan_{stem}{ext}"] = (_raw(ext, nan), "NaN")
        cases[f"inf_{stem}{ext}"] = (_raw(ext, inf), "infinite")
    cases["negative.data"] = (struct.pack("<i", -3) + b"\0" * 16, "-3 strands")
    cases["negative_points.data"] = (struct.pack("<ii", 1, -2) + b"\0" * 24, "-2 points")
    cases["zero.data"] = (struct.pack("<i", 0), "0 strands")
    cases["zero.hair"] = (_hair_header(0, 0, 2), "zero strands")
    cases["zero.ply"] = (_ply(b"", "element vertex 0", *_XYZ), "zero vertices")
    cases["zero.npz"] = (_zip(points=_npy((0, 3), payload=b""), counts=_npy((0,), "<i8", b"")), "zero strands")
    cases["negcount.npz"] = (_zip(points=_npy((2, 3), payload=b"\0" * 24),
                                  counts=_npy((1,), "<i8", struct.pack("<q", -2))), "count")
    cases["hugecount.npz"] = (_zip(points=_npy((2, 3), payload=b"\0" * 24),
                                   counts=_npy((2,), "<u8", struct.pack("<QQ", 2**64 - 1, 3))), "count")
    cases["strings.npz"] = (_zip(strands=_npy((2, 2, 3), "<U4", b"\0" * 192)), "strands")
    cases["pickle.npz"] = (_zip(points=_npy((2, 3), "|O")), "Python objects")
    cases["badmeta.npz"] = (_npz_with_meta('{"d_thickness": "abc"}'), "d_thickness")
    cases["deepmeta.npz"] = (_npz_with_meta("[" * 100000 + "]" * 100000), "meta_json")
    cases["signature.hair"] = (b"HAIX" + _valid(".hair")[4:], "signature")
    cases["badbits.hair"] = (_hair_header(1, 2, 0x22) + b"\0" * 24, "unknown bits")
    cases["loop.ply"] = (_ply(b"0 0 0\n1 0 0\n2 0 0\n0 1\n1 2\n2 0\n", "element vertex 3", *_XYZ,
                              "element edge 3", "property int vertex1", "property int vertex2", fmt="ascii"),
                         "closed loop")
    cases["edge_out.ply"] = (_ply(b"0 0 0\n1 0 0\n0 7\n", "element vertex 2", *_XYZ, "element edge 1",
                                  "property int vertex1", "property int vertex2", fmt="ascii"), "outside")
    cases["noprops.ply"] = (_ply(b"\0" * 24, "element vertex 2", *_XYZ, "element junk 1000"), "no properties")
    cases["text.ply"] = (_ply(b"0 0 zero\n", "element vertex 1", *_XYZ, fmt="ascii"), "non-numeric")
    return cases


def _raw(ext: str, h: Hairstyle) -> bytes:
    """Encode ``h`` without the writer's validation (NaN/inf files as another tool might write them)."""
    return {".data": formats.encode_data, ".hair": formats.encode_hair, ".ply": formats.encode_ply,
            ".npz": formats.encode_npz}[ext](h)


def _npz_with_meta(meta: str) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, points=np.zeros((2, 3), np.float32), counts=np.array([2]), meta_json=np.array(meta))
    return buf.getvalue()


MALFORMED = _malformed_files()


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_files_are_one_clear_error(tmp_path, capsys, name):
    """Directly (InputError naming the file) and through `latent4d convert` (exit 2, nothing written)."""
    data, phrase = MALFORMED[name]
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(InputError) as ei:
        read_hair(p)
    assert name in str(ei.value) and phrase in str(ei.value), str(ei.value)
    out = tmp_path / "out.hair"
    out.write_bytes(b"earlier output")
    code, err = _main(capsys, "convert", str(p), str(out))
    assert code == 2 and name in err
    assert out.read_bytes() == b"earlier output" and sorted(x.name for x in tmp_path.iterdir()) == sorted([name, "out.hair"])


# ------------------------------------------------------------------ convert
@pytest.fixture
def hair_file(tmp_path):
    from latent4d.hair.synthetic import generate_hairstyle

    return write_hair(tmp_path / "in.data", generate_hairstyle(3, 40))


@pytest.mark.parametrize("n", ["1000000000", "10001", "1", "0", "-5"])
def test_convert_resample_is_checked_before_reading(hair_file, capsys, monkeypatch, n):
    monkeypatch.setattr(formats, "_read_bytes", lambda *a: pytest.fail("read before the options were checked"))
    code, err = _main(capsys, "convert", str(hair_file), str(hair_file.with_name("o.ply")), "--resample", n)
    assert code == 2 and "--resample" in err and "10000" in err


def test_convert_total_output_size_is_bounded(tmp_path, capsys):
    """6000 strands resampled to 10000 points = 60M points > MAX_POINTS: refused before resampling."""
    h = Hairstyle.from_strands(np.zeros((6000, 2, 3), np.float32) + [0, 1.7, 0])
    src = write_hair(tmp_path / "many.npz", h)
    code, err = _main(capsys, "convert", str(src), str(tmp_path / "o.data"), "--resample", "10000")
    assert code == 2 and "many.npz" in err and "60000000 points" in err and not (tmp_path / "o.data").exists()


def test_convert_paths(tmp_path, hair_file, capsys, monkeypatch):
    """Every bad IN / OUT is one clear error before anything is read (cases counted in the report)."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "keep.txt").write_text("mine")
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "in.xyz").write_text("1 2 3")
    cases = [
        ((tmp_path / "missing.data", tmp_path / "o.ply"), "does not exist"),
        ((tmp_path / "folder", tmp_path / "o.ply"), "is a folder"),
        ((tmp_path / "in.xyz", tmp_path / "o.ply"), "unknown hair format"),
        ((hair_file, tmp_path / "folder"), "existing folder"),
        ((hair_file, tmp_path / "o.xyz"), "unknown hair format"),
        ((hair_file, tmp_path / "o"), "unknown hair format"),
        ((hair_file, tmp_path / "afile" / "o.ply"), "is a file"),
    ]
    monkeypatch.setattr(formats, "_read_bytes", lambda *a: pytest.fail("read before the paths were checked"))
    for (inp, out), phrase in cases:
        code, err = _main(capsys, "convert", str(inp), str(out))
        assert code == 2 and phrase in err, err
        assert Path(str(out)).name in err or Path(str(inp)).name in err
    assert (tmp_path / "folder" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "folder", "in.data", "in.xyz"]
    monkeypatch.undo()
    code, _ = _main(capsys, "convert", str(hair_file), str(tmp_path / "ok.hair"), "--resample", "7")
    assert code == 0 and set(read_hair(tmp_path / "ok.hair").counts.tolist()) <= {1, 7}


# ------------------------------------------------------------------ command options
@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    """A hair run folder with a config.yaml and no networks: option errors must come before loading."""
    run = tmp_path_factory.mktemp("fake_hair_run")
    (run / "config.yaml").write_text("family: hair\nseed: 0\ndata:\n  _target_: latent4d.hair.data.HairGuideDataModule\n")
    return run


SAMPLE_BAD = [("bogus=1", "unknown option 'bogus'"), ("n=0", "n=0"), ("n=abc", "n=abc"), ("n=1001", "n=1001"),
              ("strands=-1", "strands=-1"), ("strands=10000000", "strands="), ("format=xyz", "format=xyz"),
              ("temperature=abc", "temperature=abc"), ("temperature=-1", "temperature="),
              ("temperature=nan", "temperature="), ("mode=bogus", "mode=bogus"), ("seed=-1", "seed=-1"),
              ("seed=1e40", "seed=")]
EVAL_BAD = [("bogus=1", "unknown option 'bogus'"), ("data.bogus=1", "bogus"), ("n=0", "n=0"),
            ("strands=50", "strands=50"), ("strands_per_file=0", "strands_per_file=0"),
            ("strands_per_file=x", "strands_per_file=x")]
RECON_BAD = [("bogus=1", "unknown option 'bogus'"), ("steps=0", "steps=0"), ("strands=-1", "strands=-1"),
             ("format=xyz", "format=xyz"), ("inits=0", "inits=0"), ("retrieve=-1", "retrieve=-1"),
             ("refine_steps=2", "unknown option 'refine_steps'"), ("lr=0", "lr=0"), ("view=0,0,0", "view="), ("steps=${oc.env:HOME}", "steps="), ("render=maybe", "render"), ("seed=abc", "seed=abc"),
             ("steps=1.5", "steps=1.5")]


@pytest.mark.parametrize("opt,phrase", SAMPLE_BAD)
def test_sample_options(fake_run, capsys, opt, phrase):
    code, err = _main(capsys, "sample", f"run={fake_run}", opt)
    assert code == 2 and phrase in err and "sample" in err


@pytest.mark.parametrize("opt,phrase", EVAL_BAD)
def test_evaluate_options(fake_run, capsys, opt, phrase):
    code, err = _main(capsys, "evaluate", f"run={fake_run}", opt)
    assert code == 2 and phrase in err and "evaluate" in err


@pytest.mark.parametrize("opt,phrase", RECON_BAD)
def test_reconstruct_options(fake_run, tmp_path, capsys, opt, phrase):
    obs = write_points(tmp_path / "obs.ply", np.zeros((5, 3)) + [0, 1.7, 0])
    code, err = _main(capsys, "reconstruct", "hair", f"run={fake_run}", f"input={obs}", opt)
    assert code == 2 and phrase in err and "reconstruct" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obs.ply"]


def test_out_is_checked_before_compute(fake_run, tmp_path, capsys):
    """out= a file where a folder is written (and the reverse), or a folder latent4d did not write: the
    error names out= (the fake run has no networks, so a later check would report those instead)."""
    afile = tmp_path / "taken.json"
    afile.write_text("{}")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    obs = write_points(tmp_path / "obs.ply", np.zeros((5, 3)) + [0, 1.7, 0])
    cases = [
        (("sample", f"run={fake_run}", f"out={afile}"), "existing file"),
        (("sample", f"run={fake_run}", f"out={foreign}"), "not an earlier output"),
        (("evaluate", f"run={fake_run}", f"out={foreign}"), "is a folder"),
        (("evaluate", f"run={fake_run}", f"out={tmp_path / 'e.txt'}"), "unsupported output type"),
        (("evaluate", f"run={fake_run}", f"out={afile / 'x.json'}"), "is a file"),
        (("reconstruct", "hair", f"run={fake_run}", f"input={obs}", f"out={afile}"), "existing file"),
    ]
    for args, phrase in cases:
        code, err = _main(capsys, *args)
        assert code == 2 and "out=" in err and phrase in err, err
    assert afile.read_text() == "{}" and (foreign / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "obs.ply", "taken.json"]
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_evaluate_nested_data_root_still_parses(fake_run, tmp_path, capsys):
    """data.root=<folder> is accepted (nested option); a missing folder is named before any loading."""
    code, err = _main(capsys, "evaluate", f"run={fake_run}", f"data.root={tmp_path / 'nope'}")
    assert code == 2 and "data.root" in err and "nope" in err
    # roots on the top of the head (the files are checked before the networks are loaded; roots off the scalp,
    # as at y = 1.7 m inside the head, are an InputError with the fix: tests/hair/test_align.py)
    write_hair(tmp_path / "files" / "a.data", Hairstyle.from_strands(np.zeros((3, 4, 3), np.float32) + [0, 1.885, 0]))
    code, err = _main(capsys, "evaluate", f"run={fake_run}", f"data.root={tmp_path / 'files'}")
    assert code == 2 and "strand_vae" in err  # got past the options and the files: no networks in the fake run


RECON_INPUTS = ["missing.ply", "folder", "obs.xyz", "empty.ply", "nan.ply", "nan.npz", "strings.npz",
                "bald.data", "noxyz.ply"]


def _observation_cases(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "obs.xyz").write_text("1 2 3")
    (tmp_path / "empty.ply").write_bytes(b"")
    write_points(tmp_path / "nan.ply", np.full((4, 3), np.nan))
    write_points(tmp_path / "nan.npz", np.zeros((4, 3)), np.full((4, 3), np.inf))
    (tmp_path / "strings.npz").write_bytes(_zip(points=_npy((2, 3), "<U1", b"\0" * 24)))
    write_hair(tmp_path / "bald.data", Hairstyle(np.zeros((2, 3), np.float32) + [0, 1.7, 0], [1, 1]))
    (tmp_path / "noxyz.ply").write_bytes(_ply(b"\0" * 8, "element vertex 2", "property float q"))


@pytest.mark.parametrize("name", RECON_INPUTS)
def test_reconstruct_bad_observation(fake_run, tmp_path, capsys, name):
    _observation_cases(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = _main(capsys, "reconstruct", "hair", f"run={fake_run}", f"input={tmp_path / name}")
    assert code == 2 and name in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_reconstruct_missing_arguments(fake_run, tmp_path, capsys):
    obs = write_points(tmp_path / "obs.ply", np.zeros((5, 3)) + [0, 1.7, 0])
    obs.with_suffix(".stl").write_text("solid x\nendsolid x\n")
    cases = [
        (("reconstruct", "hair", f"input={obs}"), "run="),
        (("reconstruct", "hair", f"run={fake_run}"), "input="),
        (("reconstruct", "hair", f"run={tmp_path / 'norun'}", f"input={obs}"), "norun"),
        (("reconstruct", "hair", f"run={fake_run}", f"input={obs}", f"scalp={tmp_path / 'no.obj'}"), "scalp="),
        (("reconstruct", "hair", f"run={fake_run}", f"input={obs}", f"scalp={obs.with_suffix('.stl')}"), "scalp="),
        (("reconstruct", "hair", f"run={fake_run}", f"input={obs}", "view=0,0,0"), "view"),
        (("reconstruct", "hair", f"run={fake_run}", f"input={obs}", "view=sideways"), "view"),
    ]
    for args, phrase in cases:
        code, err = _main(capsys, *args)
        assert code == 2 and phrase in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obs.ply", "obs.stl"]


# ------------------------------------------------------------------ run folders are data
@pytest.mark.parametrize("target,args", [("builtins.open", ["{marker}", "w"]),
                                         ("os.system", ["touch {marker}"]),
                                         ("subprocess.call", [["touch", "{marker}"]]),
                                         ("latent4d.hair.formats.write_points", ["{marker}", [[0, 0, 0]]])])
def test_run_config_targets_are_never_called(tmp_path, capsys, target, args):
    """A downloaded run whose config names a callable to create a file: building its latent bank (and
    the nested form, a data module argument with its own _target_) refuses it; the file never appears."""
    from omegaconf import OmegaConf

    from latent4d.hair.retrieval import ensure_latent_bank

    marker = tmp_path / "pwned"
    node = {"_target_": target, "_args_": json.loads(json.dumps(args).replace("{marker}", str(marker)))}
    for i, data in enumerate((node, {"_target_": "latent4d.hair.data.HairGuideDataModule", "scalp": node})):
        run = tmp_path / f"run{i}"
        run.mkdir()
        OmegaConf.save(OmegaConf.create({"family": "hair", "seed": 0, "data": data}), run / "config.yaml")
        with pytest.raises(ConfigError, match="refusing _target_") as ei:
            ensure_latent_bank(run)
        assert target in str(ei.value) and "config.yaml" in str(ei.value)
        assert not marker.exists()


# ------------------------------------------------------------------ damaged networks
@pytest.fixture(scope="module")
def tiny_pipeline_dir(tmp_path_factory):
    """A run-shaped folder (config.yaml + models/{strand_vae,style_vae}) of untrained tiny networks."""
    from latent4d.hair.strand_vae import StrandVAE
    from latent4d.hair.style_vae import HairstyleVAE

    run = tmp_path_factory.mktemp("tiny_hair_run")
    (run / "config.yaml").write_text("family: hair\nseed: 0\n")
    StrandVAE(latent_dim=8, channels=(8, 8), hidden=16, layers=1).save_pretrained(run / "models" / "strand_vae")
    HairstyleVAE(latent_channels=8, grid=8, style_dim=4, channels=(8, 8, 8, 8)).save_pretrained(
        run / "models" / "style_vae")
    return run


def _damage(run: Path, tmp_path: Path, which: str, how: str) -> Path:
    import shutil

    import torch
    from safetensors.torch import save_file

    copy = tmp_path / f"run_{which}_{how}"
    shutil.copytree(run, copy)
    folder = copy / "models" / which
    weights = folder / "diffusion_pytorch_model.safetensors"
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    if how == "empty_weights":
        weights.write_bytes(b"")
    elif how == "truncated_weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "garbage_weights":
        weights.write_bytes(b"\xff" * 64)
    elif how == "pickled_weights":
        weights.rename(folder / "diffusion_pytorch_model.bin")
    elif how == "garbage_config":
        cfg_path.write_text("{not json")
    elif how == "list_config":
        cfg_path.write_text("[1, 2]")
    elif how == "huge_config":
        cfg[{"strand_vae": "hidden", "style_vae": "grid"}[which]] = 10**6
        cfg_path.write_text(json.dumps(cfg))
    elif how == "other_size_config":  # plausible values that do not fit the weights
        cfg[{"strand_vae": "hidden", "style_vae": "style_dim"}[which]] = 64
        cfg_path.write_text(json.dumps(cfg))
    elif how == "wrong_type_config":
        cfg["channels"] = "abc"
        cfg_path.write_text(json.dumps(cfg))
    elif how == "nan_config":
        cfg_path.write_text(json.dumps(cfg).replace('"channels"', '"x": NaN, "channels"'))
    elif how == "foreign_tensors":
        save_file({"w": torch.zeros(3)}, str(weights))
    return copy


DAMAGE = ["empty_weights", "truncated_weights", "garbage_weights", "pickled_weights", "garbage_config",
          "list_config", "huge_config", "other_size_config", "wrong_type_config", "nan_config", "foreign_tensors"]


def test_tiny_pipeline_loads(tiny_pipeline_dir):
    from latent4d.hair.pipeline import HairPipeline

    pipe = HairPipeline.from_pretrained(tiny_pipeline_dir)
    assert pipe.style_vae is not None and pipe.style_dim == 4 and pipe.bank is None


@pytest.mark.parametrize("which", ["strand_vae", "style_vae"])
@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_networks_are_named(tiny_pipeline_dir, tmp_path, capsys, which, how):
    from latent4d.hair.pipeline import HairPipeline

    run = _damage(tiny_pipeline_dir, tmp_path, which, how)
    with pytest.raises(InputError) as ei:
        HairPipeline.from_pretrained(run)
    assert str(run / "models" / which) in str(ei.value), str(ei.value)
    code, err = _main(capsys, "sample", f"run={run}", "n=1", "strands=0")
    assert code == 2 and which in err and not (run / "samples").exists()


def test_mismatched_networks_and_bank(tiny_pipeline_dir, tmp_path):
    """A strand-VAE from another run (other latent size) and a latent bank of another run are named."""
    import shutil

    import torch

    from latent4d.hair.pipeline import HairPipeline
    from latent4d.hair.retrieval import LatentBank
    from latent4d.hair.strand_vae import StrandVAE

    run = tmp_path / "mixed"
    shutil.copytree(tiny_pipeline_dir, run)
    shutil.rmtree(run / "models" / "strand_vae")
    StrandVAE(latent_dim=6, channels=(8, 8), hidden=16, layers=1).save_pretrained(run / "models" / "strand_vae")
    with pytest.raises(InputError, match="different runs"):
        HairPipeline.from_pretrained(run)
    run2 = tmp_path / "bank"
    shutil.copytree(tiny_pipeline_dir, run2)
    LatentBank(torch.zeros(3, 7), torch.zeros(3, 5, 3)).save(run2 / "models" / "style_vae")
    with pytest.raises(InputError, match="latent bank"):
        HairPipeline.from_pretrained(run2)


# ------------------------------------------------------------------ property tests
def _read_file(tmp_path: Path, ext: str, data: bytes, i: int) -> None:
    p = tmp_path / f"fuzz{i}{ext}"
    p.write_bytes(data)
    try:
        h = read_hair(p)
    except InputError as e:
        assert p.name in str(e)
        return
    assert isinstance(h, Hairstyle) and h.num_strands > 0 and int(h.counts.sum()) == h.num_points
    assert np.isfinite(h.points).all() and (h.counts >= 1).all()


_PREFIX = {".data": b"", ".hair": b"HAIR", ".ply": b"ply\n", ".npz": b"PK\3\4"}


@pytest.mark.parametrize("ext", EXTS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_read_hair_random_bytes(tmp_path, ext, data):
    _read_file(tmp_path, ext, data, 0)
    _read_file(tmp_path, ext, _PREFIX[ext] + data, 1)


@pytest.mark.parametrize("ext", EXTS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 4000), flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=6),
       insert=st.binary(max_size=8), word=st.sampled_from([0, 1, 2**15, 2**31 - 1, 2**32 - 1]))
def test_read_hair_mutated_files(tmp_path, ext, cut, flips, insert, word):
    raw = bytearray(_valid(ext))
    for pos, val in flips:
        raw[pos % len(raw)] = val
    pos = cut % (len(raw) - 3)
    _read_file(tmp_path, ext, bytes(raw[:pos]) + insert + bytes(raw[pos:]), 0)
    raw[pos:pos + 4] = struct.pack("<I", word)  # a count-sized word anywhere (headers included)
    _read_file(tmp_path, ext, bytes(raw), 1)


def test_npz_with_an_unreadable_zip_version_is_named(tmp_path):
    """A damaged central directory that declares a zip version Python cannot extract (zipfile raises
    NotImplementedError, found by the mutation test above) is an InputError naming the file."""
    raw = bytearray(_valid(".npz"))
    cd = raw.find(b"PK\x01\x02")
    assert cd > 0
    raw[cd + 6] = 64  # "version needed to extract" = 6.4
    p = tmp_path / "version.npz"
    p.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="version.npz"):
        read_hair(p)
