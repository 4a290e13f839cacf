"""USD hair exchange: exact round trips against the other formats, the written stage (checked with pxr, not our
reader), units / up axis / transforms of foreign files, and untrusted input (not USD, damaged, composition)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pxr")
from pxr import Sdf, Usd, UsdGeom, Vt  # noqa: E402

from latent4d.errors import InputError  # noqa: E402
from latent4d.hair import usd as hair_usd  # noqa: E402
from latent4d.hair.formats import read_hair, read_points, write_hair  # noqa: E402
from latent4d.hair.strands import Hairstyle  # noqa: E402
from latent4d.hair.usd import read_usd_head, write_usd  # noqa: E402

USD = (".usda", ".usdc", ".usd")


def _ragged(seed=0, attrs=False) -> Hairstyle:
    """Strands of 5, 1, 12, 3, 1 and 40 points (two bald roots), optionally with every attribute."""
    rng = np.random.default_rng(seed)
    h = Hairstyle.from_list([rng.normal(size=(n, 3)).astype(np.float32) * 0.1 + [0, 1.7, 0]
                             for n in (5, 1, 12, 3, 1, 40)])
    if attrs:
        n = h.num_points
        h = Hairstyle(h.points, h.counts, thickness=rng.random(n) * 1e-4, transparency=rng.random(n),
                      colors=rng.random((n, 3)), root_uv=rng.random((h.num_strands, 2)),
                      meta={"d_segments": 3, "info": "kept"})
    return h


@pytest.fixture
def in_process(monkeypatch):
    """Read USD in this process (fast) where the test is about the data, not about damaged files."""
    monkeypatch.setattr(hair_usd, "ISOLATE", False)


def _same(a: Hairstyle, b: Hairstyle) -> None:
    assert np.array_equal(a.points, b.points) and np.array_equal(a.counts, b.counts)
    for k in ("thickness", "transparency", "colors", "root_uv"):
        va, vb = getattr(a, k), getattr(b, k)
        assert (va is None) == (vb is None), k
        assert va is None or np.array_equal(va, vb), k


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("ext", USD)
@pytest.mark.parametrize("attrs", [False, True])
def test_round_trip_exact_with_bald_roots_and_attributes(tmp_path, ext, attrs, in_process):
    h = _ragged(attrs=attrs)
    g = read_hair(write_hair(tmp_path / f"a{ext}", h))
    _same(h, g)
    assert g.bald.sum() == 2
    if attrs:
        assert g.meta["d_segments"] == 3 and g.meta["info"] == "kept"


@pytest.mark.parametrize("other", [".data", ".hair", ".ply"])
def test_round_trip_against_the_other_formats_is_byte_exact(tmp_path, other, in_process):
    h = _ragged(attrs=other != ".data")
    first = write_hair(tmp_path / f"a{other}", h)
    src = read_hair(first)
    back = tmp_path / f"b{other}"
    for ext in USD:  # other -> usd -> other: the same bytes
        write_hair(tmp_path / f"mid{ext}", src)
        write_hair(back, read_hair(tmp_path / f"mid{ext}"))
        assert back.read_bytes() == first.read_bytes(), ext


def test_reading_in_a_child_process_gives_the_same_hairstyle(tmp_path):
    h = _ragged(attrs=True)
    _same(h, read_hair(write_hair(tmp_path / "a.usdc", h)))


# ------------------------------------------------------------------ the written stage (pxr, not our reader)
def test_written_stage_is_linear_basis_curves_in_metres_y_up_with_a_head(tmp_path, in_process):
    import trimesh

    h = _ragged(attrs=True)
    head = trimesh.creation.icosphere(2, 0.09)
    head.vertices += [0, 1.7, 0]
    write_hair(tmp_path / "a.usda", h, head=head)
    stage = Usd.Stage.Open(str(tmp_path / "a.usda"))
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0 and UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    assert stage.GetDefaultPrim().GetPath() == Sdf.Path("/Groom")
    curves = UsdGeom.BasisCurves(stage.GetPrimAtPath("/Groom/Hair"))
    assert curves and curves.GetTypeAttr().Get() == UsdGeom.Tokens.linear
    assert list(curves.GetCurveVertexCountsAttr().Get()) == [5, 12, 3, 40]  # bald roots are not curves
    hair = h.subset(~h.bald)
    assert np.array_equal(np.asarray(curves.GetPointsAttr().Get()), hair.points)
    assert np.array_equal(np.asarray(curves.GetWidthsAttr().Get()), hair.thickness)
    assert curves.GetWidthsInterpolation() == UsdGeom.Tokens.vertex
    color = UsdGeom.PrimvarsAPI(curves).GetPrimvar("displayColor")
    assert color.GetInterpolation() == UsdGeom.Tokens.vertex
    assert np.array_equal(np.asarray(color.Get()), hair.colors)
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/Groom/Head"))
    assert mesh and len(mesh.GetPointsAttr().Get()) == len(head.vertices)
    v, f = read_usd_head(tmp_path / "a.usda")
    assert np.array_equal(v, head.vertices.astype(np.float32)) and np.array_equal(f, head.faces)
    assert read_usd_head(write_hair(tmp_path / "b.usdc", h)) is None


def test_hairstyle_without_attributes_gets_a_constant_width_and_colour(tmp_path, in_process):
    write_hair(tmp_path / "a.usda", _ragged())
    stage = Usd.Stage.Open(str(tmp_path / "a.usda"))
    curves = UsdGeom.BasisCurves(stage.GetPrimAtPath("/Groom/Hair"))
    assert curves.GetWidthsInterpolation() == UsdGeom.Tokens.constant
    assert np.allclose(np.asarray(curves.GetWidthsAttr().Get()), [hair_usd.DEFAULT_WIDTH])
    g = read_hair(tmp_path / "a.usda")
    assert g.thickness is None and g.colors is None and g.meta["usd_width"] == pytest.approx(hair_usd.DEFAULT_WIDTH)


# ------------------------------------------------------------------ foreign files: units, up axis, transforms
def _foreign(path, body: str, mpu: float | None = None, up: str = "Y") -> str:
    head = f"    metersPerUnit = {mpu}\n" if mpu is not None else ""
    path.write_text(f'#usda 1.0\n(\n{head}    upAxis = "{up}"\n)\n\n{body}\n')
    return str(path)


CURVES = '''def BasisCurves "H"
{
    uniform token type = "linear"
    int[] curveVertexCounts = [2, 3]
    point3f[] points = [(0, 0, 0), (10, 20, 30), (1, 2, 3), (4, 5, 6), (7, 8, 9)]
    float[] widths = [0.01, 0.02] (interpolation = "uniform")
}'''


def test_centimetre_file_is_read_as_metres(tmp_path, in_process):
    g = read_hair(_foreign(tmp_path / "cm.usda", CURVES, mpu=0.01))
    assert g.counts.tolist() == [2, 3]
    assert np.allclose(g.points[1], [0.1, 0.2, 0.3]) and np.allclose(g.points[4], [0.07, 0.08, 0.09])
    assert np.allclose(g.thickness, [1e-4, 1e-4, 2e-4, 2e-4, 2e-4])  # uniform widths per point, in metres
    # unauthored metersPerUnit: USD's fallback is centimetres
    assert np.allclose(read_hair(_foreign(tmp_path / "none.usda", CURVES)).points, g.points)


def test_z_up_file_and_transforms_are_converted_to_y_up_metres(tmp_path, in_process):
    body = ('def Xform "X"\n{\n    double3 xformOp:translate = (0, 0, 2)\n'
            '    uniform token[] xformOpOrder = ["xformOp:translate"]\n' + CURVES.replace("\n", "\n    ") + "\n}")
    g = read_hair(_foreign(tmp_path / "z.usda", body, mpu=1, up="Z"))
    assert np.allclose(g.points[0], [0, 2, 0])  # (x, y, z) -> (x, z, -y), after the translation
    assert np.allclose(g.points[1], [10, 32, -20])
    # our own writer's Z-up centimetre option reads back to the same metres (float32 rounding only)
    h = _ragged(attrs=True)
    back = read_hair(write_usd(tmp_path / "ue.usda", h, up_axis="Z", meters_per_unit=0.01))
    assert np.allclose(back.points, h.points, atol=1e-6) and np.allclose(back.thickness, h.thickness, rtol=1e-6)
    assert UsdGeom.GetStageUpAxis(Usd.Stage.Open(str(tmp_path / "ue.usda"))) == UsdGeom.Tokens.z


def test_several_prims_prim_selection_indexed_colours_and_bezier(tmp_path, in_process):
    body = CURVES + '''
def Scope "G"
{
    def BasisCurves "B"
    {
        uniform token type = "cubic"
        uniform token basis = "bezier"
        int[] curveVertexCounts = [7]
        point3f[] points = [(0,0,0), (1,0,0), (2,0,0), (3,0,0), (4,0,0), (5,0,0), (6,0,0)]
        color3f[] primvars:displayColor = [(1, 0, 0), (0, 1, 0)] (interpolation = "vertex")
        int[] primvars:displayColor:indices = [0, 1, 0, 1, 0, 1, 0]
    }
}'''
    f = _foreign(tmp_path / "many.usda", body, mpu=1)
    g = read_hair(f)
    assert g.counts.tolist() == [2, 3, 3] and g.meta["usd_prims"] == 2
    b = read_hair(f, prim="/G")
    assert b.counts.tolist() == [3] and np.allclose(b.points[:, 0], [0, 3, 6])  # bezier: on-curve vertices
    assert np.allclose(b.colors, [[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    with pytest.raises(InputError, match="no prim /Nope"):
        read_hair(f, prim="/Nope")
    with pytest.raises(InputError, match="not an absolute USD prim path"):
        read_hair(f, prim="G")


# ------------------------------------------------------------------ untrusted input
def test_not_usd_damaged_and_truncated_files_raise_input_errors(tmp_path):
    (tmp_path / "text.usda").write_text("hello, not USD\n")
    (tmp_path / "bin.usdc").write_bytes(b"\0" * 64)
    (tmp_path / "syntax.usda").write_text('#usda 1.0\ndef BasisCurves "H" {\n int[] curveVertexCounts = [3\n}\n')
    good = write_hair(tmp_path / "good.usdc", _ragged(attrs=True)).read_bytes()
    (tmp_path / "cut.usdc").write_bytes(good[: len(good) // 2])
    (tmp_path / "empty.usd").write_bytes(b"")
    for name, words in [("text.usda", "not a .usda file"), ("bin.usdc", "not a .usdc file"),
                        ("syntax.usda", "not a valid USD file"), ("cut.usdc", "cut.usdc"), ("empty.usd", "empty")]:
        with pytest.raises(InputError, match=words):
            read_hair(tmp_path / name)


def test_mutated_crate_files_never_crash_the_caller(tmp_path):
    good = write_hair(tmp_path / "good.usdc", _ragged(attrs=True)).read_bytes()
    rng = np.random.default_rng(7)
    for i in range(6):
        raw = bytearray(good)
        for _ in range(int(rng.integers(1, 6))):
            raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0, 256))
        p = tmp_path / f"m{i}.usdc"
        p.write_bytes(bytes(raw[: int(rng.integers(len(raw) // 2, len(raw) + 1))]))
        try:
            h = read_hair(p)
        except InputError as e:
            assert p.name in str(e)
            continue
        assert h.num_strands > 0 and np.isfinite(h.points).all()


def test_a_crash_of_the_usd_parser_is_an_input_error(tmp_path, monkeypatch):
    import sys

    write_hair(tmp_path / "a.usdc", _ragged())
    crash = tmp_path / "crash.sh"
    crash.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crash.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(crash))  # the child process dies the way a damaged file makes it
    with pytest.raises(InputError, match="signal 11"):
        read_hair(tmp_path / "a.usdc")


def test_bad_contents_raise_input_errors(tmp_path):
    no_curves = _foreign(tmp_path / "none.usda", 'def Xform "X"\n{\n}', mpu=1)
    mismatch = _foreign(tmp_path / "mis.usda", CURVES.replace("[2, 3]", "[2, 4]"), mpu=1)
    zero = _foreign(tmp_path / "zero.usda", CURVES.replace("[2, 3]", "[0, 5]"), mpu=1)
    widths = _foreign(tmp_path / "w.usda", CURVES.replace("[0.01, 0.02]", "[0.01, 0.02, 0.03]"), mpu=1)
    bezier = _foreign(tmp_path / "bz.usda", CURVES.replace('uniform token type = "linear"', ""), mpu=1)
    for f, words in [(no_curves, "no BasisCurves"), (mismatch, "add up to 6 points but points has 5"),
                     (zero, "a count of 0"), (widths, "widths has 3 values"), (bezier, "bezier curve has 2 vertices")]:
        with pytest.raises(InputError, match=words):
            read_hair(f)
    nan = tmp_path / "nan.usdc"  # NaN cannot be typed in .usda: author it with pxr
    stage = Usd.Stage.CreateNew(str(nan))
    c = UsdGeom.BasisCurves.Define(stage, "/H")
    c.CreateTypeAttr(UsdGeom.Tokens.linear)
    c.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.array([[0, 0, 0], [np.nan, 1, 1]], np.float32)))
    c.CreateCurveVertexCountsAttr([2])
    stage.GetRootLayer().Save()
    with pytest.raises(InputError, match="NaN"):
        read_hair(nan)
    wrong_head = _foreign(tmp_path / "wh.usda", 'def Xform "Groom"\n{\n    def BasisCurves "Head"\n    {\n    }\n}')
    with pytest.raises(InputError, match="expected a Mesh"):
        read_usd_head(wrong_head)


def test_limits_are_checked_before_the_points_are_read(tmp_path, monkeypatch):
    import latent4d.hair.formats as formats

    write_hair(tmp_path / "a.usdc", _ragged())
    monkeypatch.setattr(formats, "MAX_POINTS", 10)
    with pytest.raises(InputError, match="more than the 10"):
        read_hair(tmp_path / "a.usdc")


@pytest.mark.parametrize("arc", ["subLayers = [@./other.usda@]", "references = @./other.usda@",
                                 "payload = @./other.usda@", "clips"])
def test_external_composition_is_refused_and_never_read(tmp_path, arc):
    other = _foreign(tmp_path / "other.usda", CURVES, mpu=1)
    assert read_hair(other).num_strands == 2  # a valid file: refusing it below is not about its contents
    if arc.startswith("subLayers"):
        text = f"#usda 1.0\n(\n    {arc}\n)\n"
    elif arc == "clips":
        text = ('#usda 1.0\ndef Xform "X" (\n    clips = {\n        dictionary default = {\n'
                '            asset[] assetPaths = [@./other.usda@]\n        }\n    }\n)\n{\n}\n')
    else:
        text = f'#usda 1.0\ndef Xform "X" (\n    {arc}\n)\n{{\n}}\n'
    (tmp_path / "main.usda").write_text(text)
    with pytest.raises(InputError, match="other files|value clips"):
        read_hair(tmp_path / "main.usda")
    # internal references (to a prim of the same file) are fine
    internal = CURVES + '\ndef BasisCurves "Copy" (\n    references = </H>\n)\n{\n}'
    assert read_hair(_foreign(tmp_path / "internal.usda", internal, mpu=1)).num_strands == 4


def test_usd_hair_is_an_observation_too(tmp_path, in_process):
    pts, dirs = read_points(write_hair(tmp_path / "a.usdc", _ragged()))
    assert pts.shape == (60, 3) and dirs.shape == (60, 3)


# ------------------------------------------------------------------ the CLI
def test_convert_cli_to_and_from_usda(tmp_path, capsys):
    from latent4d.cli import main

    write_hair(tmp_path / "a.data", _ragged())
    assert main(["convert", str(tmp_path / "a.data"), str(tmp_path / "b.usda")]) == 0
    assert main(["convert", str(tmp_path / "b.usda"), str(tmp_path / "c.usdc")]) == 0
    assert main(["convert", str(tmp_path / "c.usdc"), str(tmp_path / "d.data")]) == 0
    assert (tmp_path / "d.data").read_bytes() == (tmp_path / "a.data").read_bytes()
    assert (tmp_path / "b.usda").read_text().startswith("#usda 1.0")
    (tmp_path / "bad.usda").write_text("#usda 1.0\n(\n    subLayers = [@./x.usda@]\n)\n")
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "bad.usda"), str(tmp_path / "e.data")]) == 2
    assert "other files" in capsys.readouterr().err and not (tmp_path / "e.data").exists()


def test_sample_and_reconstruct_write_usd(style_run, tmp_path):
    from latent4d.cli import main
    from latent4d.hair.formats import write_points
    from latent4d.hair.reconstruct import synthetic_observation
    from latent4d.hair.synthetic import generate_hairstyle

    run = style_run[0]
    assert main(["sample", f"run={run}", "n=1", "strands=200", "format=usda", f"out={tmp_path / 's'}"]) == 0
    dense = read_hair(tmp_path / "s" / "sample_00.usda")
    assert dense.num_strands == 200 and read_usd_head(tmp_path / "s" / "sample_00.usda") is not None
    h = generate_hairstyle(2_000_003, 1500)
    obs, _ = synthetic_observation(h.strands, n_points=300)
    write_points(tmp_path / "obs.ply", obs.points)
    assert main(["reconstruct", "hair", f"run={run}", f"input={tmp_path / 'obs.ply'}", f"out={tmp_path / 'r'}",
                 "strands=200", "inits=1", "steps=2", "format=usd", "render=false"]) == 0
    assert read_hair(tmp_path / "r" / "obs_hair.usd").num_strands == 200
    assert (tmp_path / "r" / "obs_hair.usd").read_bytes().startswith(b"PXR-USDC")
