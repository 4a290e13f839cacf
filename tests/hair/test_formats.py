"""Hair file formats: exact round trips, the reference byte layouts (checked with struct), bad input."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latent4d.errors import InputError
from latent4d.hair.formats import (
    encode_data,
    encode_hair,
    encode_npz,
    encode_ply,
    parse_data,
    parse_hair,
    parse_npz,
    parse_ply_hair,
    read_hair,
    read_points,
    write_hair,
    write_points,
)
from latent4d.hair.strands import Hairstyle

PARSERS = {".data": parse_data, ".hair": parse_hair, ".ply": parse_ply_hair, ".npz": parse_npz}
ENCODERS = {".data": encode_data, ".hair": encode_hair, ".ply": encode_ply, ".npz": encode_npz}


def _ragged(seed=0, bald=True) -> Hairstyle:
    rng = np.random.default_rng(seed)
    counts = [5, 1, 12, 3, 1, 100] if bald else [5, 12, 3, 100]
    return Hairstyle.from_list([rng.normal(size=(n, 3)).astype(np.float32) + [0, 1.8, 0] for n in counts])


def _with_attrs(seed=0) -> Hairstyle:
    h = _ragged(seed)
    rng = np.random.default_rng(seed + 1)
    n = h.num_points
    return Hairstyle(h.points, h.counts, thickness=rng.random(n), transparency=rng.random(n), colors=rng.random((n, 3)))


def _same(a: Hairstyle, b: Hairstyle, attrs=("thickness", "transparency", "colors")) -> None:
    assert np.array_equal(a.points, b.points)
    assert np.array_equal(a.counts, b.counts)
    for k in attrs:
        va, vb = getattr(a, k), getattr(b, k)
        assert (va is None) == (vb is None), k
        if va is not None:
            assert np.array_equal(va, vb), k


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("ext", [".data", ".hair", ".ply", ".npz"])
def test_round_trip_exact_with_bald_roots(tmp_path, ext):
    h = _ragged()
    p = write_hair(tmp_path / f"a{ext}", h)
    g = read_hair(p)
    _same(h, g, attrs=())
    assert g.bald.sum() == 2  # bald roots stay 1-point strands
    # writing what was read gives the same bytes (not for npz: zip timestamps)
    if ext != ".npz":
        write_hair(tmp_path / f"b{ext}", g)
        assert (tmp_path / f"a{ext}").read_bytes() == (tmp_path / f"b{ext}").read_bytes()


@pytest.mark.parametrize("ext", [".hair", ".ply", ".npz"])
def test_round_trip_per_point_attributes(tmp_path, ext):
    h = _with_attrs()
    g = read_hair(write_hair(tmp_path / f"a{ext}", h))
    _same(h, g)


def test_npz_keeps_root_uv_and_meta(tmp_path):
    h = _ragged()
    h.root_uv = np.random.default_rng(0).random((h.num_strands, 2)).astype(np.float32)
    h.meta["note"] = "kept"
    g = read_hair(write_hair(tmp_path / "a.npz", h))
    assert np.array_equal(g.root_uv, h.root_uv) and g.meta["note"] == "kept"


# ------------------------------------------------------------------ reference layouts (struct, not our reader)
def _data_bytes_struct(strands: list[np.ndarray]) -> bytes:
    out = struct.pack("<i", len(strands))
    for s in strands:
        out += struct.pack("<i", len(s)) + struct.pack(f"<{3 * len(s)}f", *s.ravel().tolist())
    return out


def test_data_layout_matches_usc_reference(tmp_path):
    h = _ragged()
    strands = [h.strand(i) for i in range(h.num_strands)]
    assert encode_data(h) == _data_bytes_struct(strands)
    # a file written independently with struct opens in the package
    (tmp_path / "ref.data").write_bytes(_data_bytes_struct(strands))
    _same(read_hair(tmp_path / "ref.data"), h, attrs=())
    # and our file decodes with struct
    raw = (write_hair(tmp_path / "ours.data", h)).read_bytes()
    (n,) = struct.unpack_from("<i", raw, 0)
    off, got = 4, []
    for _ in range(n):
        (k,) = struct.unpack_from("<i", raw, off)
        got.append(np.array(struct.unpack_from(f"<{3 * k}f", raw, off + 4)).reshape(k, 3))
        off += 4 + 12 * k
    assert off == len(raw) and all(np.array_equal(a, b) for a, b in zip(got, strands))


def _hair_bytes_struct(counts, pts, arrays, d_seg=0, d_th=1.0, d_tr=0.0, d_col=(1.0, 1.0, 1.0), info=b"",
                       thick=None, transp=None, cols=None) -> bytes:
    head = struct.pack("<4sIIIIff3f88s", b"HAIR", len(counts), len(pts), arrays, d_seg, d_th, d_tr, *d_col, info)
    body = b""
    if arrays & 1:
        body += struct.pack(f"<{len(counts)}H", *[c - 1 for c in counts])
    body += struct.pack(f"<{3 * len(pts)}f", *np.asarray(pts).ravel().tolist())
    for arr, bit in ((thick, 4), (transp, 8), (cols, 16)):
        if arrays & bit:
            body += struct.pack(f"<{np.asarray(arr).size}f", *np.asarray(arr).ravel().tolist())
    return head + body


def test_hair_layout_matches_yuksel_reference(tmp_path):
    h = _with_attrs()
    ref = _hair_bytes_struct(h.counts.tolist(), h.points, 1 | 2 | 4 | 8 | 16, thick=h.thickness,
                             transp=h.transparency, cols=h.colors)
    assert encode_hair(h) == ref
    sig, hc, pc, arrays = struct.unpack_from("<4sIII", encode_hair(h), 0)
    assert (sig, hc, pc, arrays) == (b"HAIR", h.num_strands, h.num_points, 31)


def test_hair_defaults_without_segments_and_optional_arrays(tmp_path):
    # 3 strands of d_segments + 1 = 4 points each, only points stored; defaults in the header
    pts = np.arange(36, dtype=np.float32).reshape(12, 3) / 10
    raw = _hair_bytes_struct([4, 4, 4], pts, 2, d_seg=3, d_th=0.25, d_tr=0.5, d_col=(0.1, 0.2, 0.3),
                             info=b"made by struct")
    (tmp_path / "d.hair").write_bytes(raw)
    h = read_hair(tmp_path / "d.hair")
    assert h.counts.tolist() == [4, 4, 4] and np.array_equal(h.points, pts)
    assert h.thickness is None and h.colors is None
    assert h.meta["d_thickness"] == 0.25 and h.meta["d_color"] == pytest.approx([0.1, 0.2, 0.3])
    assert h.meta["info"] == "made by struct"
    # writing it back reproduces the same bytes (defaults and the absent segments array kept)
    assert write_hair(tmp_path / "e.hair", h).read_bytes() == raw


def test_ply_layout_is_standard_polyline(tmp_path):
    h = _ragged()
    raw = write_hair(tmp_path / "a.ply", h).read_bytes()
    head, body = raw.split(b"end_header\n", 1)
    text = head.decode()
    assert "format binary_little_endian 1.0" in text
    assert f"element vertex {h.num_points}" in text
    n_edges = int(h.num_points - h.num_strands)
    assert f"element edge {n_edges}" in text
    verts = np.array(struct.unpack_from(f"<{3 * h.num_points}f", body, 0)).reshape(-1, 3)
    assert np.array_equal(verts, h.points)
    edges = np.array(struct.unpack_from(f"<{2 * n_edges}i", body, 12 * h.num_points)).reshape(-1, 2)
    assert (edges[:, 1] == edges[:, 0] + 1).all() and len(body) == 12 * h.num_points + 8 * n_edges


def test_ply_ascii_and_shuffled_edges_are_read(tmp_path):
    pts = np.array([[0, 0, 0], [0, 1, 0], [0, 2, 0], [5, 0, 0], [5, 1, 0], [9, 9, 9]], np.float32)
    lines = ["ply", "format ascii 1.0", "element vertex 6", "property float x", "property float y",
             "property float z", "element edge 3", "property int vertex1", "property int vertex2", "end_header"]
    lines += [" ".join(str(v) for v in p) for p in pts]
    lines += ["4 3", "1 2", "0 1"]  # out of order, one reversed
    (tmp_path / "a.ply").write_text("\n".join(lines) + "\n")
    h = read_hair(tmp_path / "a.ply")
    assert sorted(h.counts.tolist()) == [1, 2, 3]
    three = h.strand(int(np.argmax(h.counts == 3)))
    assert np.array_equal(three[:, 1], [0, 1, 2])


def test_ply_without_edges_uses_fixed_strand_length(tmp_path):
    pts = np.random.default_rng(0).random((200, 3)).astype(np.float32)
    head = "ply\nformat binary_little_endian 1.0\nelement vertex 200\nproperty float x\nproperty float y\n" \
           "property float z\nend_header\n"
    (tmp_path / "haar.ply").write_bytes(head.encode() + pts.tobytes())
    h = read_hair(tmp_path / "haar.ply")
    assert h.counts.tolist() == [100, 100]
    with pytest.raises(InputError, match="multiple of 30"):
        read_hair(tmp_path / "haar.ply", points_per_strand=30)


def test_points_readers(tmp_path):
    pts = np.random.default_rng(0).random((50, 3)).astype(np.float32)
    d = np.tile([[0, -1, 0]], (50, 1)).astype(np.float32)
    for ext in (".ply", ".npz"):
        p, dd = read_points(write_points(tmp_path / f"o{ext}", pts, d))
        assert np.array_equal(p, pts) and np.allclose(dd, d)
    p, dd = read_points(write_hair(tmp_path / "h.data", _ragged(bald=False)))
    assert len(p) == _ragged(bald=False).num_points and np.allclose(np.linalg.norm(dd, axis=1), 1)
    write_points(tmp_path / "nan.npz", np.full((3, 3), np.nan))
    with pytest.raises(InputError, match="NaN"):
        read_points(tmp_path / "nan.npz")
    np.savez(tmp_path / "empty.npz", points=np.zeros((0, 3), np.float32))
    with pytest.raises(InputError, match="empty"):
        read_points(tmp_path / "empty.npz")


# ------------------------------------------------------------------ bad files
def test_bad_files_raise_clear_errors(tmp_path):
    good = _data_bytes_struct([np.zeros((2, 3), np.float32)])
    cases = {
        "huge.data": (struct.pack("<i", 2**31 - 1) + good[4:], "can hold at most"),
        "neg.data": (struct.pack("<i", -5), "declares -5 strands"),
        "zero.data": (struct.pack("<i", 0), "declares 0 strands"),
        "trunc.data": (good[:-5], "truncated"),
        "bigstrand.data": (struct.pack("<ii", 1, 2**30) + b"\0" * 12, "declares 1073741824 points"),
        "nan.data": (_data_bytes_struct([np.array([[0, 0, 0], [np.nan, 0, 0]], np.float32)]), "NaN"),
        "inf.data": (_data_bytes_struct([np.array([[0, np.inf, 0]], np.float32)]), "infinite"),
        "sig.hair": (b"HAIX" + b"\0" * 124, "signature"),
        "short.hair": (b"HAIR" + b"\0" * 20, "header alone is 128 bytes"),
        "counts.hair": (_hair_bytes_struct([2], np.zeros((2, 3)), 3)[:128].replace(
            struct.pack("<II", 1, 2), struct.pack("<II", 1, 2**31), 1) + b"\0" * 64, "file has only"),
        "zero.hair": (struct.pack("<4sIIIIff3f88s", b"HAIR", 0, 0, 2, 0, 1, 0, 1, 1, 1, b""), "zero strands"),
        "nopoints.hair": (struct.pack("<4sIIIIff3f88s", b"HAIR", 1, 2, 1, 0, 1, 0, 1, 1, 1, b"") + b"\1\0",
                          "no points array"),
        "segsum.hair": (_hair_bytes_struct([3], np.zeros((2, 3)), 3), "add up to 3 points"),
        "magic.ply": (b"plx\n", "missing 'ply'"),
        "count.ply": (b"ply\nformat binary_little_endian 1.0\nelement vertex 99999999999\nproperty float x\n"
                      b"property float y\nproperty float z\nend_header\n" + b"\0" * 24, "declares 99999999999 rows"),
        "empty.ply": (b"ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\n"
                      b"property float z\nend_header\n", "zero vertices"),
        "loop.ply": (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                     b"property float z\nelement edge 3\nproperty int vertex1\nproperty int vertex2\nend_header\n"
                     b"0 0 0\n1 0 0\n2 0 0\n0 1\n1 2\n2 0\n", "closed loop"),
        "notzip.npz": (b"PK\3\4garbage", "not a valid .npz"),
    }
    for name, (data, msg) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(InputError, match=msg) as ei:
            read_hair(p)
        assert name in str(ei.value), name
    with pytest.raises(InputError, match="unknown hair format"):
        read_hair(tmp_path / "x.obj")
    with pytest.raises(InputError, match="no such file"):
        read_hair(tmp_path / "missing.data")


def test_npz_with_lying_header_is_rejected_without_allocating(tmp_path):
    import io
    import zipfile

    hdr = {"descr": "<f4", "fortran_order": False, "shape": (10**12, 3)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, hdr)
    blob = buf.getvalue() + b"\0" * 64
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("points.npy", blob)
        z.writestr("counts.npy", blob)
    (tmp_path / "lie.npz").write_bytes(out.getvalue())
    with pytest.raises(InputError, match="declares shape"):
        read_hair(tmp_path / "lie.npz")


def test_writer_is_atomic_and_validates(tmp_path):
    bad = Hairstyle(np.array([[0, 0, np.nan]], np.float32), [1])
    target = tmp_path / "out.data"
    target.write_bytes(b"old")
    with pytest.raises(InputError, match="NaN"):
        write_hair(target, bad)
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


# ------------------------------------------------------------------ property tests
def _check_parse(ext: str, data: bytes) -> None:
    try:
        h = PARSERS[ext](data, f"fuzz{ext}")
    except InputError as e:
        assert f"fuzz{ext}" in str(e)
        return
    # whatever parses is a valid hairstyle
    assert h.num_strands > 0 and np.isfinite(h.points).all() and int(h.counts.sum()) == h.num_points


@pytest.mark.parametrize("ext", [".data", ".hair", ".ply", ".npz"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_random_bytes_never_crash(ext, data):
    prefix = {".data": b"", ".hair": b"HAIR", ".ply": b"ply\n", ".npz": b"PK\3\4"}[ext]
    _check_parse(ext, data)
    _check_parse(ext, prefix + data)


@pytest.mark.parametrize("ext", [".data", ".hair", ".ply", ".npz"])
@settings(max_examples=80, deadline=None)
@given(cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                    max_size=6), insert=st.binary(max_size=8))
def test_mutated_files_never_crash(ext, cut, flips, insert):
    raw = bytearray(ENCODERS[ext](_with_attrs() if ext != ".data" else _ragged()))
    for pos, val in flips:
        raw[pos % len(raw)] = val
    data = bytes(raw)
    pos = cut % (len(data) + 1)
    _check_parse(ext, data[:pos])
    _check_parse(ext, data[:pos] + insert + data[pos:])


@pytest.mark.parametrize("ext", [".ply", ".npz"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), cut=st.integers(0, 5000))
def test_point_reader_never_crashes(tmp_path, ext, data, cut):
    good = tmp_path / f"good{ext}"
    if not good.exists():
        write_points(good, np.random.default_rng(0).random((20, 3)), np.ones((20, 3)))
    raw = good.read_bytes()
    for i, blob in enumerate((data, raw[: cut % (len(raw) + 1)] + data)):
        p = tmp_path / f"fuzz{i}{ext}"
        p.write_bytes(blob)
        try:
            pts, dirs = read_points(p)
        except InputError as e:
            assert p.name in str(e)
            continue
        assert len(pts) > 0 and np.isfinite(pts).all()
        assert dirs is None or dirs.shape == pts.shape
