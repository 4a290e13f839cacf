"""Hair file formats: USC-HairSalon ``.data``, Cem Yuksel ``.hair``, polyline ``.ply``, ``.npz``, and USD
``.usd`` / ``.usda`` / ``.usdc`` (BasisCurves, in :mod:`latent4d.hair.usd`).

All formats are little-endian (PLY: also ASCII and big-endian on reading).

- ``.data`` (USC-HairSalon): ``int32 num_strands``, then per strand ``int32 n`` and ``n * 3 float32``.
  A 1-point strand is a bald root and is kept as such.
- ``.hair`` (Cem Yuksel): 128-byte header ``"HAIR"``, ``uint32 hair_count, point_count, arrays``,
  ``uint32 d_segments``, ``float32 d_thickness, d_transparency, d_color[3]``, ``char info[88]``;
  then, when the ``arrays`` bit is set and in this order: ``uint16 segments[hair_count]`` (bit 1),
  ``float32 points[point_count * 3]`` (bit 2), ``thickness[point_count]`` (4),
  ``transparency[point_count]`` (8), ``colors[point_count * 3]`` (16). Absent arrays use the defaults,
  which are kept in ``Hairstyle.meta`` so a round trip is exact.
- ``.ply``: vertices (``x y z`` + optional float ``thickness``, ``transparency``, ``red green blue``)
  and an ``edge`` element (``vertex1 vertex2``) linking consecutive points of each strand (opens in
  Blender / MeshLab). A PLY without edges is read as fixed-length strands (HAAR writes 100 points
  per strand).
- ``.npz``: ``points (N, 3) float32``, ``counts (S,) int64`` and optional ``thickness``,
  ``transparency``, ``colors``, ``root_uv``, ``meta_json``; an ``.npz`` holding only
  ``strands (S, P, 3)`` is read too.
- ``.usd`` / ``.usda`` / ``.usdc``: linear ``BasisCurves`` under ``/Groom/Hair`` (metres, ``metersPerUnit = 1``,
  Y up), optionally the head as the Mesh ``/Groom/Head``; any BasisCurves are read, in any units / up axis
  (see :mod:`latent4d.hair.usd`). Files that compose other files (sublayers, references, payloads, clips)
  are refused.

Every reader validates the bytes before allocating: files larger than :data:`MAX_FILE_BYTES` are
refused before they are read; every count in a header (strands, points, PLY rows, npz array shapes)
is checked against the bytes the file actually holds and against :data:`MAX_STRANDS` /
:data:`MAX_POINTS` before anything sized by it is allocated; NaN/inf coordinates, negative counts and
zero strands are rejected; each problem raises :class:`~latent4d.errors.InputError` naming the file.
:func:`convert_hair` limits resampling to :data:`MAX_RESAMPLE` points per strand and
:data:`MAX_POINTS` points in all, checked before the work. Writers go through
:func:`~latent4d.fileio.atomic_path` (nothing half-written is left behind).
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from pathlib import Path

import numpy as np

from latent4d.errors import ConfigError, InputError
from latent4d.fileio import atomic_path
from latent4d.hair.strands import Hairstyle
from latent4d.hair.usd import USD_EXTENSIONS, read_usd, write_usd

HAIR_EXTENSIONS = (".data", ".hair", ".ply", ".npz", *USD_EXTENSIONS)

# .hair header fields and array bits
_HAIR_HEADER = struct.Struct("<4sIIII f f 3f 88s")
assert _HAIR_HEADER.size == 128
HAIR_BIT_SEGMENTS, HAIR_BIT_POINTS, HAIR_BIT_THICKNESS, HAIR_BIT_TRANSPARENCY, HAIR_BIT_COLORS = 1, 2, 4, 8, 16
HAIR_DEFAULTS = {"d_segments": 0, "d_thickness": 1.0, "d_transparency": 0.0, "d_color": [1.0, 1.0, 1.0]}

_MAX_NPZ_RATIO = 1100  # deflate cannot compress better than ~1032:1; larger declared sizes are lies

#: largest hair / observation file read (2 GiB); larger files are refused before they are read.
#: A dense hairstyle (200k strands x 100 points, all per-point arrays) is about 0.65 GB.
MAX_FILE_BYTES = 2 << 30
#: most strands a hair file may declare (USC-HairSalon: ~10k; dense grooms: a few 100k).
MAX_STRANDS = 5_000_000
#: most points a hair file may hold, and most points :func:`convert_hair` may write after resampling
#: (50M points = 600 MB of float32 coordinates).
MAX_POINTS = 50_000_000
#: most points per strand for resampling (``latent4d convert --resample N``).
MAX_RESAMPLE = 10_000
_LIMITS = "latent4d.hair.formats.MAX_FILE_BYTES / MAX_STRANDS / MAX_POINTS"
#: most dense strands a command writes per hairstyle (500k strands x 100 points = 50M points, :data:`MAX_POINTS`)
MAX_DENSE_STRANDS = 500_000
#: the ``format=`` values of the commands (hair file formats, by extension without the dot)
FORMATS = tuple(e.lstrip(".") for e in HAIR_EXTENSIONS)
#: observation files ``reconstruct hair`` reads (point clouds, or hair files with partial strands)
OBSERVATION_EXTENSIONS = (".ply", ".npz", ".data", ".hair", *USD_EXTENSIONS)


def check_format(value, command: str) -> str:
    """``format=`` as one of :data:`FORMATS` (``.PLY`` -> ``ply``); ConfigError naming ``command`` otherwise."""
    f = str(value).lstrip(".").lower()
    if f not in FORMATS:
        raise ConfigError(f"{command}: format={value} is not a hair format; use one of {', '.join(FORMATS)}")
    return f


def _check_counts(name: str, strands: int | None = None, points: int | None = None) -> None:
    """InputError (naming ``name``) when a declared count exceeds :data:`MAX_STRANDS` / :data:`MAX_POINTS`."""
    if strands is not None and strands > MAX_STRANDS:
        raise InputError(f"{name}: declares {strands} strands, more than the {MAX_STRANDS} latent4d reads "
                         f"(a corrupt header, or raise the limit {_LIMITS})")
    if points is not None and points > MAX_POINTS:
        raise InputError(f"{name}: declares {points} points, more than the {MAX_POINTS} latent4d reads "
                         f"(a corrupt header, or raise the limit {_LIMITS})")


def _fmt(path: str | Path) -> str:
    ext = Path(path).suffix.lower()
    if ext not in HAIR_EXTENSIONS:
        raise InputError(f"{path}: unknown hair format '{ext or '(no extension)'}'; "
                         f"supported: {', '.join(HAIR_EXTENSIONS)}")
    return ext


def _check_file(path: str | Path) -> Path:
    """``path`` as a Path; InputError for a missing file, a folder, an empty or an oversized file."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a folder, expected a hair or point-cloud file")
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    size = p.stat().st_size
    if size == 0:
        raise InputError(f"{p}: the file is empty (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise InputError(f"{p}: the file has {size} bytes, more than the {MAX_FILE_BYTES} latent4d reads "
                         f"(raise {_LIMITS} if it is genuine)")
    return p


def _read_bytes(path: str | Path) -> bytes:
    """The bytes of ``path``; InputError for a missing file, a folder, an empty or an oversized file."""
    p = _check_file(path)
    try:
        return p.read_bytes()
    except OSError as e:
        raise InputError(f"{p}: cannot read the file ({e.strerror or e})") from None


def check_resample(resample: int | None, option: str = "--resample") -> int | None:
    """``resample`` as an int in [2, :data:`MAX_RESAMPLE`] (None: no resampling); ConfigError otherwise."""
    if resample is None:
        return None
    if isinstance(resample, bool) or not isinstance(resample, int | np.integer):
        raise ConfigError(f"{option} {resample!r} is not valid: expected an integer number of points per strand")
    n = int(resample)
    if not 2 <= n <= MAX_RESAMPLE:
        raise ConfigError(f"{option} {n} is not valid: points per strand must be between 2 and {MAX_RESAMPLE}")
    return n


# ============================================================================ public API
def read_hair(path: str | Path, points_per_strand: int | None = None, prim: str | None = None) -> Hairstyle:
    """Read a hair file by extension (``.data``, ``.hair``, ``.ply``, ``.npz``, ``.usd``, ``.usda``, ``.usdc``)
    into a :class:`Hairstyle`.

    ``points_per_strand`` is only used for PLY files without an edge element (default 100); ``prim`` only
    for USD files (the BasisCurves prim, or a prim above them, to read; default: every BasisCurves).
    Raises :class:`InputError` naming the file for anything malformed.
    """
    ext = _fmt(path)
    name = str(path)
    if ext in USD_EXTENSIONS:
        hs = read_usd(_check_file(path), prim, limits=(MAX_STRANDS, MAX_POINTS))
        _check_meta(hs.meta, name)
        hs.meta.setdefault("source", Path(path).name)
        return hs
    data = _read_bytes(path)
    if ext == ".data":
        hs = parse_data(data, name)
    elif ext == ".hair":
        hs = parse_hair(data, name)
    elif ext == ".ply":
        hs = parse_ply_hair(data, name, points_per_strand)
    else:
        hs = parse_npz(data, name)
    hs.meta.setdefault("source", Path(path).name)
    return hs


def write_hair(path: str | Path, hairstyle: Hairstyle, head=None) -> Path:
    """Write ``hairstyle`` to ``path`` in the format given by its extension, atomically.

    ``head``: an optional head mesh (trimesh, or ``(vertices, faces)``; metres, Y up) that USD files hold as
    the Mesh prim ``/Groom/Head``; the other formats have no place for it and ignore it.
    """
    ext = _fmt(path)
    if ext in USD_EXTENSIONS:
        return write_usd(path, hairstyle, head=head)
    hairstyle.validate(f"hairstyle to write to {path}")
    payload = {".data": encode_data, ".hair": encode_hair, ".ply": encode_ply, ".npz": encode_npz}[ext](hairstyle)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def convert_hair(inp: str | Path, out: str | Path, resample: int | None = None) -> Hairstyle:
    """Read ``inp``, optionally resample strands to ``resample`` points, write ``out``; returns the result.

    ``resample`` must lie in [2, :data:`MAX_RESAMPLE`] (ConfigError, checked before reading) and the
    resampled hairstyle may hold at most :data:`MAX_POINTS` points (InputError, checked before resampling).
    """
    n = check_resample(resample, "resample")
    _fmt(out)
    hs = read_hair(inp)
    if n is not None:
        total = int(np.where(hs.counts > 1, n, 1).sum())
        if total > MAX_POINTS:
            raise InputError(f"{inp}: resampling its {hs.num_strands} strands to {n} points would make {total} "
                             f"points, more than {MAX_POINTS} (latent4d.hair.formats.MAX_POINTS): use fewer points "
                             "per strand")
        hs = hs.resample(n)
    write_hair(out, hs)
    return hs


# ============================================================================ .data
def parse_data(data: bytes, name: str = "<bytes>") -> Hairstyle:
    """Parse USC-HairSalon ``.data`` bytes."""
    size = len(data)
    if size < 4:
        raise InputError(f"{name}: truncated .data file ({size} bytes; a 4-byte strand count is expected)")
    (num,) = struct.unpack_from("<i", data, 0)
    if num <= 0:
        raise InputError(f"{name}: .data header declares {num} strands (at least 1 expected)")
    # every strand needs at least 4 + 12 bytes: check before allocating anything sized by `num`
    if num > (size - 4) // 16:
        raise InputError(f"{name}: .data header declares {num} strands but the file ({size} bytes) can hold "
                         f"at most {(size - 4) // 16}")
    _check_counts(name, strands=num)
    counts = np.empty(num, np.int64)
    starts = np.empty(num, np.int64)
    off = 4
    unpack = struct.Struct("<i").unpack_from
    for i in range(num):
        if off + 4 > size:
            raise InputError(f"{name}: truncated .data file: strand {i} of {num} starts at byte {off} "
                             f"beyond the end ({size} bytes)")
        (n,) = unpack(data, off)
        if n < 1:
            raise InputError(f"{name}: strand {i} declares {n} points (at least 1 expected)")
        end = off + 4 + 12 * n
        if end > size:
            raise InputError(f"{name}: truncated .data file: strand {i} declares {n} points "
                             f"({12 * n} bytes) but only {size - off - 4} bytes remain")
        counts[i], starts[i] = n, (off + 4) // 4
        off = end
    if off != size:
        raise InputError(f"{name}: {size - off} unexpected trailing bytes after the last of {num} strands "
                         "(not a USC-HairSalon .data file?)")
    _check_counts(name, points=int(counts.sum()))
    words = np.frombuffer(data, dtype="<f4", count=size // 4)
    from latent4d.hair.strands import _ranges

    idx = _ranges(starts, counts * 3)
    pts = words[idx].astype(np.float32).reshape(-1, 3)
    return Hairstyle(pts, counts).validate(name)


def encode_data(hs: Hairstyle) -> bytes:
    """USC-HairSalon ``.data`` bytes for ``hs`` (per-point attributes are not part of the format)."""
    S = hs.num_strands
    o = hs.offsets
    pts = hs.points.astype("<f4")
    # interleave: per strand one int32 count followed by its floats
    out = np.empty(1 + S + hs.num_points * 3, dtype="<i4")
    out[0] = S
    pos = (np.arange(S) + 1 + o[:-1] * 3).astype(np.int64)  # index of each count word
    out[pos] = hs.counts.astype("<i4")
    mask = np.ones(out.shape[0], bool)
    mask[0] = False
    mask[pos] = False
    out[mask] = pts.reshape(-1).view("<i4")
    return out.tobytes()


# ============================================================================ .hair
def parse_hair(data: bytes, name: str = "<bytes>") -> Hairstyle:
    """Parse Cem Yuksel ``.hair`` bytes (all five optional arrays and the defaults)."""
    size = len(data)
    if size < 128:
        raise InputError(f"{name}: truncated .hair file ({size} bytes; the header alone is 128 bytes)")
    sig, hair_count, point_count, arrays, d_seg, d_th, d_tr, c0, c1, c2, info = _HAIR_HEADER.unpack_from(data, 0)
    if sig != b"HAIR":
        raise InputError(f"{name}: not a .hair file (signature {sig!r}, expected b'HAIR')")
    if hair_count == 0:
        raise InputError(f"{name}: .hair header declares zero strands")
    if point_count == 0:
        raise InputError(f"{name}: .hair header declares zero points")
    if arrays & ~0x1F:
        raise InputError(f"{name}: .hair arrays field {arrays:#x} has unknown bits set (only 0x1f defined)")
    if not arrays & HAIR_BIT_POINTS:
        raise InputError(f"{name}: .hair file has no points array (arrays field {arrays:#x})")
    need = 128 + (2 * hair_count if arrays & HAIR_BIT_SEGMENTS else 0)
    per_point = 12 + 4 * bool(arrays & HAIR_BIT_THICKNESS) + 4 * bool(arrays & HAIR_BIT_TRANSPARENCY) + \
        12 * bool(arrays & HAIR_BIT_COLORS)
    need += per_point * point_count
    if need > size:
        raise InputError(f"{name}: .hair header declares {hair_count} strands and {point_count} points "
                         f"({need} bytes with its arrays) but the file has only {size} bytes")
    if need < size:
        raise InputError(f"{name}: {size - need} unexpected trailing bytes after the .hair arrays")
    # every strand has at least one point: a strand count above the point count is a lie (and, without a
    # segments array, nothing else bounds it by the file size), so check it before allocating per strand
    if hair_count > point_count:
        raise InputError(f"{name}: .hair header declares {hair_count} strands but only {point_count} points "
                         "(every strand has at least one point)")
    _check_counts(name, strands=hair_count, points=point_count)
    off = 128
    if arrays & HAIR_BIT_SEGMENTS:
        counts = np.frombuffer(data, "<u2", hair_count, off).astype(np.int64) + 1
        off += 2 * hair_count
    else:
        if hair_count * (int(d_seg) + 1) != point_count:
            raise InputError(f"{name}: .hair header declares {hair_count} strands of {int(d_seg) + 1} points "
                             f"(default segments {int(d_seg)}) = {hair_count * (int(d_seg) + 1)} points, but "
                             f"{point_count} points")
        counts = np.full(hair_count, int(d_seg) + 1, np.int64)
    if int(counts.sum()) != point_count:
        raise InputError(f"{name}: strand segment counts add up to {int(counts.sum())} points but the header "
                         f"declares {point_count}")

    def take(width: int):
        nonlocal off
        arr = np.frombuffer(data, "<f4", point_count * width, off).astype(np.float32)
        off += 4 * point_count * width
        return arr.reshape(point_count, width) if width > 1 else arr

    pts = take(3)
    thick = take(1) if arrays & HAIR_BIT_THICKNESS else None
    transp = take(1) if arrays & HAIR_BIT_TRANSPARENCY else None
    cols = take(3) if arrays & HAIR_BIT_COLORS else None
    meta = {"hair_arrays": int(arrays), "d_segments": int(d_seg), "d_thickness": float(np.float32(d_th)),
            "d_transparency": float(np.float32(d_tr)), "d_color": [float(np.float32(c)) for c in (c0, c1, c2)],
            "info": info.split(b"\0", 1)[0].decode("latin-1")}
    for k in ("d_thickness", "d_transparency"):
        if not np.isfinite(meta[k]):
            raise InputError(f"{name}: .hair default {k[2:]} is NaN or infinite")
    return Hairstyle(pts, counts, thick, transp, cols, meta=meta).validate(name)


def encode_hair(hs: Hairstyle) -> bytes:
    """Cem Yuksel ``.hair`` bytes; writes the segments array unless the strands are uniform and the
    hairstyle came from a file that used the default segment count."""
    meta = {**HAIR_DEFAULTS, **hs.meta}
    if (hs.counts > 65536).any():
        raise InputError(f"hairstyle: a strand has {int(hs.counts.max())} points; .hair allows at most 65536")
    arrays = HAIR_BIT_POINTS
    d_seg = int(meta.get("d_segments", 0))
    use_default_seg = ("hair_arrays" in hs.meta and not hs.meta["hair_arrays"] & HAIR_BIT_SEGMENTS
                       and bool((hs.counts == d_seg + 1).all()))
    if not use_default_seg:
        arrays |= HAIR_BIT_SEGMENTS
        if "hair_arrays" not in hs.meta and hs.is_uniform:
            d_seg = int(hs.counts[0]) - 1
    if hs.thickness is not None:
        arrays |= HAIR_BIT_THICKNESS
    if hs.transparency is not None:
        arrays |= HAIR_BIT_TRANSPARENCY
    if hs.colors is not None:
        arrays |= HAIR_BIT_COLORS
    info = str(meta.get("info", "")).encode("latin-1", "replace")[:88]
    col = [float(c) for c in meta.get("d_color", [1.0, 1.0, 1.0])][:3]
    header = _HAIR_HEADER.pack(b"HAIR", hs.num_strands, hs.num_points, arrays, d_seg,
                               float(meta["d_thickness"]), float(meta["d_transparency"]), *col, info)
    parts = [header]
    if arrays & HAIR_BIT_SEGMENTS:
        parts.append((hs.counts - 1).astype("<u2").tobytes())
    parts.append(hs.points.astype("<f4").tobytes())
    for a in (hs.thickness, hs.transparency, hs.colors):
        if a is not None:
            parts.append(a.astype("<f4").tobytes())
    return b"".join(parts)


# ============================================================================ .ply
_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_MAX_PLY_HEADER = 1 << 16


_PlyElement = tuple[str, int, list[tuple[str, "str | None", str]]]  # name, rows, [(property, list count type, type)]


def _ply_property(tok: list[str], raw: str, name: str) -> tuple[str, str | None, str]:
    """``(property name, list-count dtype or None, dtype)`` of a ``property`` header line."""
    if len(tok) == 5 and tok[1] == "list":
        if tok[2] not in _PLY_TYPES or tok[3] not in _PLY_TYPES:
            raise InputError(f"{name}: unknown PLY type in '{raw.strip()}'")
        return tok[4], _PLY_TYPES[tok[2]], _PLY_TYPES[tok[3]]
    if len(tok) == 3 and tok[1] in _PLY_TYPES:
        return tok[2], None, _PLY_TYPES[tok[1]]
    raise InputError(f"{name}: bad PLY property line '{raw.strip()}'")


def _ply_header(data: bytes, name: str) -> tuple[str, list[_PlyElement], int]:
    """``(format, elements, offset of the body)`` of a PLY file; InputError for anything malformed."""
    if not data.startswith(b"ply"):
        raise InputError(f"{name}: not a PLY file (missing 'ply' magic)")
    end = data.find(b"end_header", 0, _MAX_PLY_HEADER)
    if end < 0:
        raise InputError(f"{name}: PLY header has no 'end_header' within the first {_MAX_PLY_HEADER} bytes")
    nl = data.find(b"\n", end)
    if nl < 0:
        raise InputError(f"{name}: truncated PLY: nothing after 'end_header'")
    try:
        header = data[:end].decode("ascii")
    except UnicodeDecodeError as e:
        raise InputError(f"{name}: PLY header is not ASCII ({e})") from e
    fmt = None
    elements: list[_PlyElement] = []
    for raw in header.splitlines()[1:]:
        tok = raw.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format":
            if len(tok) < 2 or tok[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise InputError(f"{name}: unsupported PLY format line '{raw.strip()}'")
            fmt = tok[1]
        elif tok[0] == "element":
            if len(tok) != 3 or not tok[2].isdigit():
                raise InputError(f"{name}: bad PLY element line '{raw.strip()}'")
            elements.append((tok[1], int(tok[2]), []))
        elif tok[0] == "property":
            if not elements:
                raise InputError(f"{name}: PLY property before any element: '{raw.strip()}'")
            elements[-1][2].append(_ply_property(tok, raw, name))
        else:
            raise InputError(f"{name}: unexpected PLY header line '{raw.strip()}'")
    if fmt is None:
        raise InputError(f"{name}: PLY header has no format line")
    for el_name, count, _props in elements:
        if count > MAX_POINTS:
            raise InputError(f"{name}: PLY element '{el_name}' declares {count} rows, more than the {MAX_POINTS} "
                             f"latent4d reads (a corrupt header, or raise {_LIMITS})")
    return fmt, elements, nl + 1


def _ply_ascii_rows(lines: list[bytes], line_i: int, element: _PlyElement, name: str) -> dict[str, np.ndarray]:
    """The scalar properties of ``element`` from ASCII ``lines[line_i:]``."""
    el_name, count, props = element
    if count > len(lines) - line_i:
        raise InputError(f"{name}: PLY element '{el_name}' declares {count} rows but only "
                         f"{len(lines) - line_i} lines remain")
    toks = b" ".join(lines[line_i:line_i + count]).split()
    if len(toks) != count * len(props):
        raise InputError(f"{name}: PLY element '{el_name}': expected {count * len(props)} values in "
                         f"{count} rows, found {len(toks)}")
    try:
        vals = np.array(toks, dtype=np.float64).reshape(count, len(props)) if props else np.zeros((count, 0))
    except ValueError as e:
        raise InputError(f"{name}: PLY element '{el_name}' has a non-numeric value ({e})") from e
    return {p[0]: vals[:, j].astype(p[2]) for j, p in enumerate(props)}


def _ply_binary_rows(data: bytes, off: int, element: _PlyElement, endian: str,
                     name: str) -> tuple[dict[str, np.ndarray], int]:
    """The scalar properties of ``element`` read from ``data[off:]``, and the offset after them."""
    el_name, count, props = element
    if not props:
        if count:
            raise InputError(f"{name}: PLY element '{el_name}' declares {count} rows but no properties")
        return {}, off
    dt = np.dtype([(f"p{j}", endian + p[2]) for j, p in enumerate(props)])
    need = count * dt.itemsize
    if need > len(data) - off:
        raise InputError(f"{name}: PLY element '{el_name}' declares {count} rows ({need} bytes) but only "
                         f"{len(data) - off} bytes remain")
    rec = np.frombuffer(data, dt, count, off)
    return {p[0]: rec[f"p{j}"].astype(p[2]) for j, p in enumerate(props)}, off + need


def parse_ply(data: bytes, name: str = "<bytes>", wanted: tuple[str, ...] = ("vertex", "edge")
              ) -> dict[str, dict[str, np.ndarray]]:
    """Parse a PLY file's scalar-property elements into ``{element: {property: array}}``.

    Elements listed in ``wanted`` must have scalar properties only; parsing stops at the first
    element with a list property once all wanted elements present before it have been read.
    Element counts are checked against the remaining file size before any allocation.
    """
    fmt, elements, off = _ply_header(data, name)
    out: dict[str, dict[str, np.ndarray]] = {}
    lines = data[off:].split(b"\n") if fmt == "ascii" else []
    line_i = 0
    endian = "<" if fmt == "binary_little_endian" else ">"
    names = [e[0] for e in elements]
    for k, element in enumerate(elements):
        el_name, count, props = element
        if any(p[1] is not None for p in props):
            if el_name in wanted:
                raise InputError(f"{name}: PLY element '{el_name}' has list properties; expected scalars")
            later = [w for w in wanted if w in names[k + 1:]]
            if later:
                raise InputError(f"{name}: PLY element '{later[0]}' comes after an element with list "
                                 f"properties ('{el_name}'), which is not supported")
            break
        if fmt == "ascii":
            out[el_name] = _ply_ascii_rows(lines, line_i, element, name)
            line_i += count
        else:
            out[el_name], off = _ply_binary_rows(data, off, element, endian, name)
    return out


def parse_ply_hair(data: bytes, name: str = "<bytes>", points_per_strand: int | None = None) -> Hairstyle:
    """Parse a polyline PLY (vertices + edges) into strands; without edges, fixed-length strands."""
    els = parse_ply(data, name)
    if "vertex" not in els:
        raise InputError(f"{name}: PLY has no vertex element")
    v = els["vertex"]
    for k in ("x", "y", "z"):
        if k not in v:
            raise InputError(f"{name}: PLY vertices have no '{k}' property")
    pts = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float32)
    N = len(pts)
    if N == 0:
        raise InputError(f"{name}: PLY has zero vertices (zero strands)")
    if "edge" in els and len(els["edge"].get("vertex1", [])) > 0:
        e = els["edge"]
        if "vertex1" not in e or "vertex2" not in e:
            raise InputError(f"{name}: PLY edges need 'vertex1' and 'vertex2' properties")
        order, counts = _chains(e["vertex1"].astype(np.int64), e["vertex2"].astype(np.int64), N, name)
    else:
        pps = int(points_per_strand or 100)
        if pps < 1 or N % pps:
            raise InputError(f"{name}: PLY has no edges and {N} vertices, not a multiple of {pps} points per "
                             "strand (pass points_per_strand, or write edges)")
        order, counts = np.arange(N), np.full(N // pps, pps, np.int64)
    attrs = {}
    for key in ("thickness", "transparency"):
        if key in v:
            attrs[key] = v[key].astype(np.float32)[order]
    if all(c in v for c in ("red", "green", "blue")):
        cols = np.stack([v["red"], v["green"], v["blue"]], 1)
        scale = 255.0 if cols.dtype.kind in "iu" else 1.0
        attrs["colors"] = (cols.astype(np.float32) / np.float32(scale))[order]
    return Hairstyle(pts[order], counts, **attrs).validate(name)


def _chains(v1: np.ndarray, v2: np.ndarray, n: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Order vertices into polylines from an edge list; returns (vertex order (n,), counts (S,))."""
    if (v1 < 0).any() or (v2 < 0).any() or (v1 >= n).any() or (v2 >= n).any():
        raise InputError(f"{name}: PLY edge refers to a vertex outside [0, {n})")
    # fast path: every edge is (i, i+1), which is what this package (and most tools) write
    if (v2 == v1 + 1).all():
        linked = np.zeros(n, bool)  # linked[i]: edge (i-1, i) exists
        linked[v2] = True
        starts = np.flatnonzero(~linked)
        if len(np.unique(v1)) == len(v1):
            counts = np.diff(np.concatenate([starts, [n]]))
            return np.arange(n), counts.astype(np.int64)
    if (v1 == v2).any():
        raise InputError(f"{name}: PLY edge connects a vertex to itself")
    deg = np.bincount(v1, minlength=n) + np.bincount(v2, minlength=n)
    if (deg > 2).any():
        raise InputError(f"{name}: PLY vertex {int(np.argmax(deg > 2))} has {int(deg.max())} edges; strands are "
                         "polylines (at most 2 edges per vertex)")
    nbr = np.full((n, 2), -1, np.int64)
    fill = np.zeros(n, np.int64)
    for a, b in zip(v1.tolist(), v2.tolist()):
        nbr[a, fill[a]] = b
        fill[a] += 1
        nbr[b, fill[b]] = a
        fill[b] += 1
    seen = np.zeros(n, bool)
    order: list[int] = []
    counts: list[int] = []
    for s in range(n):
        if seen[s] or deg[s] == 2:
            continue
        prev, cur, c = -1, s, 0
        while cur >= 0 and not seen[cur]:
            seen[cur] = True
            order.append(cur)
            c += 1
            nxt = nbr[cur, 0] if nbr[cur, 0] != prev else nbr[cur, 1]
            prev, cur = cur, int(nxt)
        counts.append(c)
    if not seen.all():
        raise InputError(f"{name}: PLY edges form a closed loop (vertex {int(np.argmin(seen))}); strands must be "
                         "open polylines")
    return np.array(order, np.int64), np.array(counts, np.int64)


def encode_ply(hs: Hairstyle) -> bytes:
    """Binary little-endian polyline PLY: vertices (+ attributes) and edges (i, i+1) within strands."""
    props = [("x", hs.points[:, 0]), ("y", hs.points[:, 1]), ("z", hs.points[:, 2])]
    if hs.thickness is not None:
        props.append(("thickness", hs.thickness))
    if hs.transparency is not None:
        props.append(("transparency", hs.transparency))
    if hs.colors is not None:
        props += [("red", hs.colors[:, 0]), ("green", hs.colors[:, 1]), ("blue", hs.colors[:, 2])]
    vdt = np.dtype([(k, "<f4") for k, _ in props])
    vert = np.empty(hs.num_points, vdt)
    for k, a in props:
        vert[k] = a
    o = hs.offsets
    starts = np.arange(hs.num_points - 1)
    keep = np.ones(max(hs.num_points - 1, 0), bool)
    ends = o[1:-1] - 1  # last point of every strand but the final one: no edge to the next strand
    keep[ends] = False
    starts = starts[keep]
    edt = np.dtype([("vertex1", "<i4"), ("vertex2", "<i4")])
    edges = np.empty(len(starts), edt)
    edges["vertex1"], edges["vertex2"] = starts, starts + 1
    head = ["ply", "format binary_little_endian 1.0",
            f"comment latent4d hair: {hs.num_strands} strands as polylines (vertices + edges), metres, Y up",
            f"element vertex {hs.num_points}"]
    head += [f"property float {k}" for k, _ in props]
    head += [f"element edge {len(edges)}", "property int vertex1", "property int vertex2", "end_header"]
    return ("\n".join(head) + "\n").encode("ascii") + vert.tobytes() + edges.tobytes()


# ============================================================================ .npz
def safe_npz(data: bytes, name: str = "<bytes>") -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` after checking each member's declared shape against its size.

    No pickles; a member whose header declares more data than the zip entry holds, or whose
    declared uncompressed size is implausible for its compressed size, raises InputError.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, struct.error) as e:
        # NotImplementedError: a damaged central directory declaring a zip version Python does not read
        raise InputError(f"{name}: not a valid .npz (zip) file ({type(e).__name__}: {e})") from e
    out: dict[str, np.ndarray] = {}
    total = 0
    with zf:
        for info in zf.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_type == zipfile.ZIP_STORED:
                limit = info.compress_size
            else:
                limit = max(info.compress_size, 1) * _MAX_NPZ_RATIO
            if info.file_size > limit:
                raise InputError(f"{name}: npz member '{key}' declares {info.file_size} bytes, implausible for its "
                                 f"{info.compress_size} stored bytes")
            try:
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version in ((2, 0), (3, 0)):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise ValueError(f"unsupported .npy version {version}")
                    if dtype.hasobject:
                        raise InputError(f"{name}: npz member '{key}' holds Python objects (refused)")
                    if any(int(d) < 0 for d in shape):
                        raise InputError(f"{name}: npz member '{key}' declares a negative shape {shape}")
                    nbytes = math.prod(int(d) for d in shape) * dtype.itemsize
                    if nbytes > info.file_size:
                        raise InputError(f"{name}: npz member '{key}' declares shape {shape} ({nbytes} bytes) but the "
                                         f"entry holds only {info.file_size} bytes")
                    total += nbytes
                    if total > MAX_FILE_BYTES:
                        raise InputError(f"{name}: npz arrays declare more than {MAX_FILE_BYTES} bytes in all "
                                         f"(member '{key}' has shape {shape}): a corrupt header, or raise {_LIMITS}")
                    raw = f.read(nbytes)
                    if len(raw) != nbytes:
                        raise InputError(f"{name}: npz member '{key}' is truncated")
                    arr = np.frombuffer(raw, dtype=dtype)
                    arr = arr.reshape(shape, order="F" if fortran else "C")
                    out[key] = arr
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001 - zlib/zip/header errors all mean a corrupt file
                raise InputError(f"{name}: npz member '{key}' is corrupted ({type(e).__name__}: {e})") from e
    return out


def parse_npz(data: bytes, name: str = "<bytes>") -> Hairstyle:
    """Parse a hair ``.npz`` (``points`` + ``counts``, or ``strands (S, P, 3)``)."""
    z = safe_npz(data, name)

    def get(key: str, ndim: int, width: int | None = None, kind: str = "f"):
        if key not in z:
            return None
        a = z[key]
        if a.dtype.kind not in (kind if kind != "f" else "fiu"):
            raise InputError(f"{name}: '{key}' has dtype {a.dtype}, expected {'float' if kind == 'f' else 'integer'}")
        if a.ndim != ndim or (width is not None and a.shape[-1] != width):
            want = f"(N, {width})" if width else "(N,)"
            raise InputError(f"{name}: '{key}' has shape {a.shape}, expected {want}")
        return a

    meta = {}
    if "meta_json" in z:
        try:
            meta = json.loads(str(z["meta_json"].reshape(-1)[0]))
            if not isinstance(meta, dict):
                raise ValueError("not an object")
        except (ValueError, IndexError, RecursionError) as e:
            raise InputError(f"{name}: 'meta_json' is not a JSON object ({str(e)[:200]})") from None
        _check_meta(meta, name)
    if "points" in z:
        pts = get("points", 2, 3)
        counts = get("counts", 1, kind="iu")
        if counts is None:
            raise InputError(f"{name}: has 'points' but no 'counts' (points per strand)")
        if len(counts) == 0:
            raise InputError(f"{name}: contains zero strands")
        if (counts < 1).any():
            raise InputError(f"{name}: a strand count is < 1")
        if (counts > len(pts)).any():
            raise InputError(f"{name}: a strand count exceeds the {len(pts)} stored points")
        _check_counts(name, strands=len(counts), points=len(pts))
        if int(counts.astype(np.int64).sum()) != len(pts):
            raise InputError(f"{name}: counts sum to {int(counts.sum())} points but 'points' has {len(pts)}")
        hs = Hairstyle(pts, counts, get("thickness", 1), get("transparency", 1), get("colors", 2, 3),
                       get("root_uv", 2, 2), meta=meta)
    elif "strands" in z:
        s = z["strands"]
        if s.ndim != 3 or s.shape[-1] != 3 or s.dtype.kind != "f":
            raise InputError(f"{name}: 'strands' has shape {s.shape} / dtype {s.dtype}, expected float (S, P, 3)")
        if s.shape[0] == 0 or s.shape[1] == 0:
            raise InputError(f"{name}: contains zero strands")
        _check_counts(name, strands=s.shape[0], points=s.shape[0] * s.shape[1])
        hs = Hairstyle.from_strands(s, root_uv=get("root_uv", 2, 2), meta=meta)
    else:
        raise InputError(f"{name}: npz has neither 'points'+'counts' nor 'strands' (keys: {sorted(z)[:20]})")
    if hs.root_uv is not None and not np.isfinite(hs.root_uv).all():
        raise InputError(f"{name}: 'root_uv' contains NaN or infinite values")
    return hs.validate(name)


def _check_meta(meta: dict, name: str) -> None:
    """The ``.hair`` defaults kept in an npz's ``meta_json`` must have the types the writers need."""
    def bad(key: str, want: str):
        return InputError(f"{name}: 'meta_json' entry '{key}' is {meta[key]!r:.80}, expected {want}")

    for key, hi in (("d_segments", 2**32 - 1), ("hair_arrays", 0x1F)):
        if key in meta and (isinstance(meta[key], bool) or not isinstance(meta[key], int) or not 0 <= meta[key] <= hi):
            raise bad(key, f"an integer in [0, {hi}]")
    for key in ("d_thickness", "d_transparency"):
        if key in meta and (isinstance(meta[key], bool) or not isinstance(meta[key], int | float)
                            or not math.isfinite(meta[key])):
            raise bad(key, "a finite number")
    if "d_color" in meta:
        c = meta["d_color"]
        if not isinstance(c, list) or len(c) != 3 or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in c):
            raise bad("d_color", "a list of 3 finite numbers")
    if "info" in meta and not isinstance(meta["info"], str):
        raise bad("info", "a string")


def encode_npz(hs: Hairstyle) -> bytes:
    """``.npz`` bytes (compressed) with every array of ``hs`` and its meta as JSON."""
    arrays = {"points": hs.points.astype(np.float32), "counts": hs.counts.astype(np.int64),
              "meta_json": np.array(hs.meta_json())}
    for k in ("thickness", "transparency", "colors", "root_uv"):
        v = getattr(hs, k)
        if v is not None:
            arrays[k] = v.astype(np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


# ============================================================================ point clouds
def read_points(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an observation point cloud: ``(points (N, 3) float32, directions (N, 3) or None)``.

    PLY vertices (``x y z`` + optional ``dx dy dz`` or ``nx ny nz`` as strand directions), NPZ
    (``points`` + optional ``directions``), or any hair file (its strand points, with segment tangents
    as directions). Raises InputError for empty clouds and NaN/inf.
    """
    p = Path(path)
    ext = p.suffix.lower()
    name = str(p)
    dirs = None
    if ext == ".ply":
        data = _read_bytes(p)
        els = parse_ply(data, name, wanted=("vertex", "edge"))
        v = els.get("vertex")
        if v is None or not all(k in v for k in "xyz"):
            raise InputError(f"{name}: PLY has no vertex x/y/z properties")
        if "edge" in els and len(els["edge"].get("vertex1", [])):
            return _hair_points(parse_ply_hair(data, name), name)
        pts = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float32)
        for keys in (("dx", "dy", "dz"), ("nx", "ny", "nz")):
            if all(k in v for k in keys):
                dirs = np.stack([v[k] for k in keys], 1).astype(np.float32)
                break
    elif ext == ".npz":
        data = _read_bytes(p)
        z = safe_npz(data, name)
        if "points" in z and "counts" not in z:
            pts = _numeric(z["points"], "points", name)
            if pts.ndim != 2 or pts.shape[1] != 3:
                raise InputError(f"{name}: 'points' has shape {pts.shape}, expected (N, 3)")
            if "directions" in z:
                dirs = _numeric(z["directions"], "directions", name)
                if dirs.shape != pts.shape:
                    raise InputError(f"{name}: 'directions' has shape {dirs.shape}, expected {pts.shape}")
        else:
            return _hair_points(parse_npz(data, name), name)
    elif ext in (".data", ".hair", *USD_EXTENSIONS):
        return _hair_points(read_hair(p), name)
    else:
        raise InputError(f"{name}: unknown observation format '{ext}'; use {', '.join(OBSERVATION_EXTENSIONS)}")
    if len(pts) == 0:
        raise InputError(f"{name}: the point cloud is empty")
    if not np.isfinite(pts).all():
        raise InputError(f"{name}: the point cloud contains NaN or infinite coordinates")
    if dirs is not None:
        if not np.isfinite(dirs).all():
            raise InputError(f"{name}: the directions contain NaN or infinite values")
        d64 = dirs.astype(np.float64)  # float64: no overflow for float32 values near their maximum
        nrm = np.linalg.norm(d64, axis=1, keepdims=True)
        dirs = np.where(nrm > 1e-12, d64 / np.maximum(nrm, 1e-12), 0.0).astype(np.float32)
    return pts, dirs


def _numeric(a: np.ndarray, key: str, name: str) -> np.ndarray:
    """An npz array of numbers as float32; InputError for strings, structured or complex arrays."""
    if a.dtype.kind not in "fiub":
        raise InputError(f"{name}: '{key}' has dtype {a.dtype}, expected numbers")
    return np.asarray(a, np.float32)


def _hair_points(hs: Hairstyle, name: str = "observation") -> tuple[np.ndarray, np.ndarray]:
    """Points of the non-bald strands and their unit tangents (forward differences, last = previous)."""
    keep = ~hs.bald
    if not keep.any():
        raise InputError(f"{name}: every strand is a bald root (no hair points)")
    sub = hs.subset(np.flatnonzero(keep))
    pts = sub.points
    d = np.zeros_like(pts)
    d[:-1] = pts[1:] - pts[:-1]
    ends = sub.offsets[1:] - 1
    d[ends] = d[ends - 1]
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return pts, d.astype(np.float32)


def write_points(path: str | Path, points: np.ndarray, directions: np.ndarray | None = None) -> Path:
    """Write an observation point cloud as ``.ply`` (``x y z [dx dy dz]``) or ``.npz``, atomically."""
    p = Path(path)
    pts = np.asarray(points, np.float32).reshape(-1, 3)
    if p.suffix.lower() == ".npz":
        arr = {"points": pts}
        if directions is not None:
            arr["directions"] = np.asarray(directions, np.float32).reshape(-1, 3)
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arr)
        return p
    if p.suffix.lower() != ".ply":
        raise InputError(f"{p}: point clouds are written as .ply or .npz")
    names = ["x", "y", "z"] + (["dx", "dy", "dz"] if directions is not None else [])
    rec = np.empty(len(pts), np.dtype([(k, "<f4") for k in names]))
    rec["x"], rec["y"], rec["z"] = pts.T
    if directions is not None:
        d = np.asarray(directions, np.float32).reshape(-1, 3)
        rec["dx"], rec["dy"], rec["dz"] = d.T
    head = "\n".join(["ply", "format binary_little_endian 1.0", f"element vertex {len(pts)}"]
                     + [f"property float {k}" for k in names] + ["end_header"]) + "\n"
    with atomic_path(p) as tmp:
        tmp.write_bytes(head.encode() + rec.tobytes())
    return p
