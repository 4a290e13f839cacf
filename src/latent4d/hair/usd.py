"""USD hair exchange (``.usd`` / ``.usda`` / ``.usdc``, through ``usd-core``): for Blender, Houdini, Unreal.

Written layout (metres, Y up, ``metersPerUnit = 1``, ``upAxis = "Y"``, default prim ``/Groom``)::

    def Xform "Groom"
        def BasisCurves "Hair"   type = linear, wrap = nonperiodic
            points (N, 3), curveVertexCounts (S,), widths (N,) vertex or one constant width,
            primvars:displayColor (N, 3) vertex or one constant colour,
            primvars:displayOpacity + primvars:latent4d:transparency (vertex, when the hairstyle has them),
            primvars:latent4d:rootUV (uniform, per strand), customData latent4d:meta (JSON),
            latent4d:bald:* custom attributes: the bald roots (1-point strands), see below
        def Mesh "Head"          (when a head mesh is given) points, faceVertexCounts, faceVertexIndices

Linear BasisCurves need at least 2 vertices per curve, so bald roots (1-point strands, a latent4d
notion) are not curves: they are kept in custom attributes of the curves prim (``latent4d:bald:strands``
their strand indices, ``latent4d:bald:points`` / ``widths`` / ``colors`` / ``transparency`` / ``rootUV``),
which DCC tools ignore and :func:`read_usd` puts back in place: round trips are exact (float32).

Reading (:func:`read_usd`): every ``BasisCurves`` prim of the stage (or those at / under ``prim``), in
traversal order, concatenated; cubic curves are read as polylines through their control vertices (every
third one for bezier). Points are taken at the earliest time sample, moved to world space by the prims'
transforms, scaled by the stage's ``metersPerUnit`` (USD's fallback when unauthored is 0.01, i.e.
centimetres) and turned from Z-up to Y-up when the stage says ``upAxis = "Z"``: ``(x, y, z) -> (x, z, -y)``.
Widths become ``thickness`` (metres), display colours ``colors``, display opacity ``1 - transparency``;
constant (single-valued) widths / colours / opacity go to ``Hairstyle.meta`` (``usd_width``,
``usd_display_color``, ``usd_display_opacity``) and are written back as such.

Untrusted files: the caller (:func:`latent4d.hair.formats.read_hair`) refuses missing, empty and oversized
files first; this module checks the file signature (``#usda`` text or ``PXR-USDC`` crate) before USD parses
it, opens the root layer alone and **refuses** layers with external composition arcs (sublayers,
references or payloads naming another file, value clips): nothing else is read, nothing is composed in
silently. Internal references (to a prim of the same file) are allowed. Counts are checked against each
other and against the caller's limits before the points are read; NaN/inf points, mismatched widths or
colours, missing prims and prims of the wrong type are :class:`~latent4d.errors.InputError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from latent4d.errors import InputError
from latent4d.hair.strands import Hairstyle, _ranges

USD_EXTENSIONS = (".usd", ".usda", ".usdc")
#: prim paths of what :func:`write_usd` writes
GROOM_PRIM, HAIR_PRIM, HEAD_PRIM = "/Groom", "/Groom/Hair", "/Groom/Head"
#: strand width written when a hairstyle has no per-point thickness (metres; human hair is 50-120 um)
DEFAULT_WIDTH = 8e-5
#: display colour written when a hairstyle has no per-point colours (linear RGB, a dark brown)
DEFAULT_COLOR = (0.09, 0.055, 0.035)
_HEAD_COLOR = (0.75, 0.62, 0.55)
_BALD = "latent4d:bald:"
_META_KEY = "latent4d:meta"
_MAGIC = {".usda": (b"#usda",), ".usdc": (b"PXR-USDC",), ".usd": (b"#usda", b"PXR-USDC")}

#: ``check(strands, points)`` raises when a declared count is over the caller's limits
CountCheck = Callable[[int, int], None]


def _pxr():
    """The ``pxr`` modules (usd-core); ConfigError-free: a clear ImportError names the package."""
    try:
        from pxr import Gf, Sdf, Tf, Usd, UsdGeom, Vt
    except ImportError as e:  # pragma: no cover - usd-core is a dependency
        raise ImportError("USD hair files need the 'usd-core' package: pip install usd-core") from e
    return Gf, Sdf, Tf, Usd, UsdGeom, Vt


# ============================================================================ writing
def write_usd(path: str | Path, hs: Hairstyle, head=None, up_axis: str = "Y", meters_per_unit: float = 1.0) -> Path:
    """Write ``hs`` (metres, Y up) and optionally a head mesh to ``path`` (``.usd``: crate, ``.usda``: text,
    ``.usdc``: crate), atomically.

    Args:
        head: None, a mesh with ``vertices (V, 3)`` and ``faces (F, 3)`` (trimesh), or a ``(vertices, faces)``
            pair, in metres, Y up: written as the Mesh prim ``/Groom/Head``.
        up_axis: ``"Y"`` (default, latent4d's frame) or ``"Z"`` (points turned ``(x, y, z) -> (x, -z, y)``).
        meters_per_unit: the stage unit (1: metres; 0.01: centimetres, points and widths divided by it).
    """
    from latent4d.fileio import atomic_path

    _, Sdf, _, Usd, UsdGeom, _ = _pxr()
    up = str(up_axis).upper()
    if up not in ("Y", "Z"):
        raise InputError(f"{path}: up_axis={up_axis!r}; USD stages are Y or Z up")
    if not (np.isfinite(meters_per_unit) and meters_per_unit > 0):
        raise InputError(f"{path}: meters_per_unit={meters_per_unit!r} must be a positive number")
    ext = Path(path).suffix.lower()
    if ext not in USD_EXTENSIONS:
        raise InputError(f"{path}: not a USD file name ({', '.join(USD_EXTENSIONS)})")
    hs.validate(f"hairstyle to write to {path}")
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageMetersPerUnit(stage, float(meters_per_unit))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y if up == "Y" else UsdGeom.Tokens.z)
    root = UsdGeom.Xform.Define(stage, GROOM_PRIM)
    stage.SetDefaultPrim(root.GetPrim())
    frame = _Frame(up, float(meters_per_unit))
    _write_curves(stage, hs, frame)
    if head is not None:
        _write_head(stage, head, frame, path)
    args = {"format": "usda" if ext == ".usda" else "usdc"}
    with atomic_path(path) as tmp:
        if not stage.GetRootLayer().Export(str(tmp), "latent4d hair", args):
            raise InputError(f"{path}: USD could not write the file")
    return Path(path)


class _Frame:
    """latent4d (metres, Y up) <-> stage (``meters_per_unit``, ``up``) for points and lengths."""

    def __init__(self, up: str, meters_per_unit: float, matrix: np.ndarray | None = None):
        self.up, self.mpu, self.matrix = up, meters_per_unit, matrix

    def to_stage(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, np.float32)
        if self.up == "Z":
            p = np.stack([p[:, 0], -p[:, 2], p[:, 1]], 1)
        return p if self.mpu == 1.0 else (p.astype(np.float64) / self.mpu).astype(np.float32)

    def length_to_stage(self, w: np.ndarray) -> np.ndarray:
        return w if self.mpu == 1.0 else (np.asarray(w, np.float64) / self.mpu).astype(np.float32)

    def to_metres(self, p: np.ndarray) -> np.ndarray:
        """Stage-local points ``(N, 3)`` -> world metres, Y up, float32 (exact when nothing changes)."""
        p = np.asarray(p, np.float32)
        if self.matrix is not None or self.mpu != 1.0:
            q = p.astype(np.float64)
            if self.matrix is not None:  # USD matrices act on row vectors: p' = p M
                q = q @ self.matrix[:3, :3] + self.matrix[3, :3]
            p = (q * self.mpu).astype(np.float32)
        if self.up == "Z":
            p = np.stack([p[:, 0], p[:, 2], -p[:, 1] + 0.0], 1)  # + 0.0: no negative zeros
        return np.ascontiguousarray(p, np.float32)

    def length_to_metres(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w, np.float32)
        scale = self.mpu
        if self.matrix is not None:
            scale *= abs(float(np.linalg.det(self.matrix[:3, :3]))) ** (1.0 / 3.0)
        return w if scale == 1.0 else (w.astype(np.float64) * scale).astype(np.float32)


def _write_curves(stage, hs: Hairstyle, frame: _Frame) -> None:
    """The BasisCurves prim ``/Groom/Hair`` (strands with >= 2 points) + the bald roots' custom attributes."""
    _, Sdf, _, _, UsdGeom, Vt = _pxr()
    hair_idx, bald_idx = np.flatnonzero(~hs.bald), np.flatnonzero(hs.bald)
    hair, bald = hs.subset(hair_idx), hs.subset(bald_idx)
    curves = UsdGeom.BasisCurves.Define(stage, HAIR_PRIM)
    curves.CreateTypeAttr(UsdGeom.Tokens.linear)
    curves.CreateWrapAttr(UsdGeom.Tokens.nonperiodic)
    pts = frame.to_stage(hair.points)
    curves.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(pts))
    curves.CreateCurveVertexCountsAttr(Vt.IntArray.FromNumpy(hair.counts.astype(np.int32)))
    pv = UsdGeom.PrimvarsAPI(curves)
    vertex, const, uniform = UsdGeom.Tokens.vertex, UsdGeom.Tokens.constant, UsdGeom.Tokens.uniform
    if hs.thickness is not None:
        widths, w_interp = frame.length_to_stage(hair.thickness), vertex
    else:
        widths = frame.length_to_stage(np.array([hs.meta.get("usd_width", DEFAULT_WIDTH)], np.float32))
        w_interp = const
    curves.CreateWidthsAttr(Vt.FloatArray.FromNumpy(np.asarray(widths, np.float32)))
    curves.SetWidthsInterpolation(w_interp)
    if hs.colors is not None:
        color, c_interp = hair.colors, vertex
    else:
        color, c_interp = np.array([hs.meta.get("usd_display_color", DEFAULT_COLOR)], np.float32), const
    pv.CreatePrimvar("displayColor", Sdf.ValueTypeNames.Color3fArray, c_interp).Set(
        Vt.Vec3fArray.FromNumpy(np.asarray(color, np.float32).reshape(-1, 3)))
    if hs.transparency is not None:
        pv.CreatePrimvar("displayOpacity", Sdf.ValueTypeNames.FloatArray, vertex).Set(
            Vt.FloatArray.FromNumpy((1.0 - hair.transparency).astype(np.float32)))
        pv.CreatePrimvar("latent4d:transparency", Sdf.ValueTypeNames.FloatArray, vertex).Set(
            Vt.FloatArray.FromNumpy(hair.transparency))
    elif "usd_display_opacity" in hs.meta:
        pv.CreatePrimvar("displayOpacity", Sdf.ValueTypeNames.FloatArray, const).Set(
            Vt.FloatArray([float(hs.meta["usd_display_opacity"])]))
    if hs.root_uv is not None:
        pv.CreatePrimvar("latent4d:rootUV", Sdf.ValueTypeNames.Float2Array, uniform).Set(
            Vt.Vec2fArray.FromNumpy(hair.root_uv))
    meta = {k: v for k, v in hs.meta.items() if k != "source" and not k.startswith("usd_")}  # usd_*: in the prims
    if meta:
        curves.GetPrim().SetCustomDataByKey(_META_KEY, json.dumps(meta, sort_keys=True, default=str))
    if len(bald_idx):
        _write_bald(curves.GetPrim(), bald, bald_idx, frame)
    bounds = pts if len(pts) else frame.to_stage(bald.points)
    lo, hi = bounds.min(0) - float(np.max(widths)) / 2, bounds.max(0) + float(np.max(widths)) / 2
    curves.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(np.stack([lo, hi]).astype(np.float32)))


def _write_bald(prim, bald: Hairstyle, idx: np.ndarray, frame: _Frame) -> None:
    """Bald roots as custom attributes ``latent4d:bald:*`` of the curves prim (ignored by DCC tools)."""
    _, Sdf, _, _, _, Vt = _pxr()
    T = Sdf.ValueTypeNames
    prim.CreateAttribute(_BALD + "strands", T.IntArray, custom=True).Set(Vt.IntArray.FromNumpy(idx.astype(np.int32)))
    prim.CreateAttribute(_BALD + "points", T.Point3fArray, custom=True).Set(
        Vt.Vec3fArray.FromNumpy(frame.to_stage(bald.points)))
    if bald.thickness is not None:
        prim.CreateAttribute(_BALD + "widths", T.FloatArray, custom=True).Set(
            Vt.FloatArray.FromNumpy(frame.length_to_stage(bald.thickness)))
    if bald.transparency is not None:
        prim.CreateAttribute(_BALD + "transparency", T.FloatArray, custom=True).Set(
            Vt.FloatArray.FromNumpy(bald.transparency))
    if bald.colors is not None:
        prim.CreateAttribute(_BALD + "colors", T.Color3fArray, custom=True).Set(Vt.Vec3fArray.FromNumpy(bald.colors))
    if bald.root_uv is not None:
        prim.CreateAttribute(_BALD + "rootUV", T.Float2Array, custom=True).Set(Vt.Vec2fArray.FromNumpy(bald.root_uv))


def _mesh_arrays(head, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (V, 3) float32, faces (F, 3) int64)`` of a trimesh-like object or a pair; checked."""
    v, f = (head.vertices, head.faces) if hasattr(head, "vertices") else head
    v, f = np.asarray(v, np.float32).reshape(-1, 3), np.asarray(f).reshape(-1, 3)
    if len(v) == 0 or len(f) == 0 or not np.isfinite(v).all():
        raise InputError(f"{name}: the head mesh is empty or has NaN/inf vertices")
    if f.dtype.kind not in "iu" or f.min() < 0 or f.max() >= len(v):
        raise InputError(f"{name}: the head mesh has face indices outside its {len(v)} vertices")
    return v, f.astype(np.int64)


def _write_head(stage, head, frame: _Frame, name) -> None:
    _, Sdf, _, _, UsdGeom, Vt = _pxr()
    v, f = _mesh_arrays(head, str(name))
    mesh = UsdGeom.Mesh.Define(stage, HEAD_PRIM)
    pts = frame.to_stage(v)
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(pts))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(f), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(f.reshape(-1).astype(np.int32)))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    mesh.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(np.stack([pts.min(0), pts.max(0)])))
    UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("displayColor", Sdf.ValueTypeNames.Color3fArray,
                                            UsdGeom.Tokens.constant).Set(Vt.Vec3fArray.FromNumpy(
                                                np.array([_HEAD_COLOR], np.float32)))


# ============================================================================ reading
def open_stage(path: str | Path):
    """Open the USD file ``path`` as a stage of its root layer alone, refusing external composition.

    InputError when the file is not USD (signature), does not parse, or names other files (sublayers,
    references, payloads, value clips). File size limits are the caller's (``formats.read_hair``).
    """
    _, Sdf, Tf, Usd, _, _ = _pxr()
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in _MAGIC:
        raise InputError(f"{p}: not a USD file name ({', '.join(USD_EXTENSIONS)}; .usdz packages are not read)")
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise InputError(f"{p}: cannot read the file ({e.strerror or e})") from None
    if not head.startswith(_MAGIC[ext]):
        kinds = " or ".join(m.decode() for m in _MAGIC[ext])
        raise InputError(f"{p}: not a {ext} file (it does not start with {kinds}; starts with {head!r})")
    try:
        layer = Sdf.Layer.OpenAsAnonymous(str(p))
    except Tf.ErrorException as e:
        raise InputError(f"{p}: not a valid USD file ({_first_line(e)})") from None
    if layer is None:
        raise InputError(f"{p}: not a valid USD file (USD could not open it)")
    _refuse_external(layer, p)
    try:
        return Usd.Stage.Open(layer, Usd.Stage.LoadNone)
    except Tf.ErrorException as e:
        raise InputError(f"{p}: USD could not compose the file ({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    """USD's own words from a ``Tf.ErrorException`` (``Error in '<function>' at line ... : '<message>'``)."""
    try:
        text = " ".join(str(a) for a in e.args).strip()
    except Exception:  # noqa: BLE001 - USD messages quoting damaged bytes may not decode
        text = ""
    m = re.search(r" : '(.*)'\s*$", text, re.S)
    return " ".join((m.group(1) if m else text or type(e).__name__).split())[:300]


def _refuse_external(layer, p: Path) -> None:
    """InputError when the layer composes other files: sublayers, references, payloads or value clips."""
    deps = sorted(d for d in layer.GetCompositionAssetDependencies() if d)
    if deps:
        raise InputError(f"{p}: the USD file composes other files ({', '.join(deps[:5])}); latent4d reads a "
                         "single self-contained layer (flatten it first: `usdcat --flatten IN -o OUT.usdc`, or `Usd.Stage.Open(IN).Export(OUT)` in Python)")
    clips: list[str] = []

    def visit(path) -> None:
        if path.IsPrimPath() and not clips:
            spec = layer.GetPrimAtPath(path)
            if spec is not None and (spec.HasInfo("clips") or spec.HasInfo("clipSets")):
                clips.append(str(path))

    layer.Traverse(layer.pseudoRoot.path, visit)
    if clips:
        raise InputError(f"{p}: prim {clips[0]} uses value clips (other files); latent4d reads a single "
                         "self-contained layer (flatten it first: `usdcat --flatten IN -o OUT.usdc`, or `Usd.Stage.Open(IN).Export(OUT)` in Python)")


def _curve_prims(stage, prim: str | None, name: str) -> list:
    """The BasisCurves prims at / under ``prim`` (default: the whole stage), in traversal order."""
    _, Sdf, _, Usd, UsdGeom, _ = _pxr()
    if prim is None:
        start = stage.GetPseudoRoot()
    else:
        if not Sdf.Path.IsValidPathString(str(prim)) or not Sdf.Path(str(prim)).IsAbsolutePath():
            raise InputError(f"{name}: prim={prim!r} is not an absolute USD prim path (e.g. {HAIR_PRIM})")
        start = stage.GetPrimAtPath(str(prim))
        if not start.IsValid():
            raise InputError(f"{name}: has no prim {prim}; its BasisCurves prims: {_curve_names(stage)}")
    found = [p for p in Usd.PrimRange(start) if p.IsA(UsdGeom.BasisCurves)]
    if not found:
        where = "the file" if prim is None else f"{prim} (a {start.GetTypeName() or 'typeless'} prim)"
        others = [f"{p.GetPath()} ({p.GetTypeName()})" for p in stage.Traverse() if p.IsA(UsdGeom.Curves)][:5]
        hint = f"; its curve prims: {', '.join(others)} (only BasisCurves are read)" if others else ""
        raise InputError(f"{name}: no BasisCurves (hair strands) in {where}{hint}")
    return found


def _curve_names(stage) -> str:
    _, _, _, _, UsdGeom, _ = _pxr()
    names = [str(p.GetPath()) for p in stage.Traverse() if p.IsA(UsdGeom.BasisCurves)][:5]
    return ", ".join(names) or "none"


def _frame_of(stage, prim) -> _Frame:
    _, _, _, Usd, UsdGeom, _ = _pxr()
    up = str(UsdGeom.GetStageUpAxis(stage)).upper()
    mpu = float(UsdGeom.GetStageMetersPerUnit(stage))
    m = np.array(UsdGeom.XformCache(Usd.TimeCode.EarliestTime()).GetLocalToWorldTransform(prim), np.float64)
    return _Frame(up, mpu, None if np.array_equal(m, np.eye(4)) else m)


def _get(attr, name: str, what: str, dtype, width: int = 1, required: bool = False) -> np.ndarray | None:
    """An attribute's value at its earliest time as a numpy array ``(n,)`` / ``(n, width)``, checked."""
    _, _, Tf, Usd, _, _ = _pxr()
    try:
        val = attr.Get(Usd.TimeCode.EarliestTime()) if attr and attr.HasValue() else None
    except Tf.ErrorException as e:
        raise InputError(f"{name}: {what} cannot be read ({_first_line(e)})") from None
    if val is None:
        if required:
            raise InputError(f"{name}: {what} is missing (no value authored)")
        return None
    try:
        a = np.asarray(val)
    except (TypeError, ValueError):
        a = np.asarray(list(val))
    if a.dtype.kind not in "fiu" or (a.size and (a.ndim != (1 if width == 1 else 2)
                                                 or (width > 1 and a.shape[1] != width))):
        raise InputError(f"{name}: {what} has type {attr.GetTypeName()}, expected {width} number(s) per entry")
    return a.astype(dtype).reshape(-1, width) if width > 1 else a.astype(dtype).reshape(-1)


def _primvar(curves, key: str, name: str, width: int = 1):
    """``(values, interpolation)`` of primvar ``key`` (flattened when indexed), or ``(None, None)``."""
    _, _, Tf, Usd, UsdGeom, _ = _pxr()
    pv = UsdGeom.PrimvarsAPI(curves).GetPrimvar(key)
    if not pv or not pv.HasValue():
        return None, None
    if pv.IsIndexed():
        try:
            flat = pv.ComputeFlattened(Usd.TimeCode.EarliestTime())
        except Tf.ErrorException as e:
            raise InputError(f"{name}: primvar {key} has bad indices ({_first_line(e)})") from None
        if flat is None:
            raise InputError(f"{name}: primvar {key} has indices outside its values")
        a = np.asarray(flat, np.float32)
        return (a.reshape(-1, width) if width > 1 else a.reshape(-1)), str(pv.GetInterpolation())
    return _get(pv.GetAttr(), name, f"primvar {key}", np.float32, width), str(pv.GetInterpolation())


def _per_point(values, interp, counts: np.ndarray, name: str, what: str):
    """Per-point values ``(N, ...)`` from a curve primvar; ``(None, constant value)`` when constant."""
    if values is None:
        return None, None
    n_pts, n_curves = int(counts.sum()), len(counts)
    if interp == "constant" or (interp is None and len(values) == 1):
        if len(values) < 1:
            raise InputError(f"{name}: {what} is constant but has no value")
        return None, values[0]
    if interp in ("vertex", "varying") and len(values) == n_pts:
        return values, None
    if interp == "uniform" and len(values) == n_curves:
        return np.repeat(values, counts, axis=0), None
    raise InputError(f"{name}: {what} has {len(values)} values with interpolation '{interp}' for "
                     f"{n_curves} curves of {n_pts} points")


#: read USD files in a child process: USD's parsers are C++ and a damaged file can crash them (usd-core 26.x
#: aborts or segfaults on some corrupted crate files); in a child that costs the child, and becomes an InputError
ISOLATE = True
#: seconds a child may spend on one file before it is stopped (InputError)
READ_TIMEOUT_S = 900


def read_usd(path: str | Path, prim: str | None = None, limits: tuple[int, int] | None = None) -> Hairstyle:
    """Read the hair of a USD file: every BasisCurves prim (or those at / under ``prim``) as one
    :class:`Hairstyle` in metres, Y up (see the module docstring for the conversions).

    ``limits = (max strands, max points)`` (from :func:`latent4d.hair.formats.read_hair`) refuses larger
    counts before the points are read. The file is parsed in a child process (:data:`ISOLATE`).
    InputError naming the file for anything malformed.
    """
    name = str(path)
    arrays = _isolated("hair", path, prim, limits) if ISOLATE else _hair_arrays(path, prim, limits)
    meta = json.loads(str(arrays.pop("meta_json")))
    opt = {k: arrays.get(k) for k in ("thickness", "transparency", "colors", "root_uv")}
    return Hairstyle(arrays["points"], arrays["counts"], meta=meta, **opt).validate(name)


def read_usd_head(path: str | Path, prim: str = HEAD_PRIM) -> tuple[np.ndarray, np.ndarray] | None:
    """The head mesh of a USD file written by :func:`write_usd`: ``(vertices (V, 3) float32 metres Y up,
    faces (F, 3) int64)``, or None when the file has no Mesh at ``prim``. Polygons are fan-triangulated."""
    arrays = _isolated("head", path, prim, None) if ISOLATE else _head_arrays(path, prim)
    return (arrays["vertices"], arrays["faces"]) if "vertices" in arrays else None


def _isolated(kind: str, path: str | Path, prim: str | None, limits: tuple[int, int] | None) -> dict:
    """Run :func:`_child` on ``path`` in a fresh Python process; its arrays, or its InputError re-raised."""
    import subprocess
    import sys
    import tempfile

    name = str(path)
    with tempfile.TemporaryDirectory(prefix="latent4d-usd-") as d:
        out = Path(d) / "result.npz"
        lim = [str(v) for v in (limits or (0, 0))]
        cmd = [sys.executable, "-c", "import sys; from latent4d.hair.usd import _child; _child(sys.argv[1:])",
               kind, str(path), prim or "", *lim, str(out)]
        try:
            r = subprocess.run(cmd, capture_output=True, timeout=READ_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise InputError(f"{name}: USD did not finish reading the file in {READ_TIMEOUT_S} s "
                             "(latent4d.hair.usd.READ_TIMEOUT_S); a damaged or huge file?") from None
        err = out.with_suffix(".err")
        if err.exists():
            raise InputError(err.read_text(encoding="utf-8", errors="replace"))
        if r.returncode != 0 or not out.exists():
            how = f"signal {-r.returncode}" if r.returncode < 0 else f"exit status {r.returncode}"
            tail = r.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise InputError(f"{name}: USD failed while reading the file ({how}{': ' + tail[0][:200] if tail[0] else ''});"
                             " a damaged or unsupported USD file")
        with np.load(out, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def _child(argv: list[str]) -> None:
    """Child-process entry of :func:`_isolated`: ``kind path prim max_strands max_points out.npz``."""
    kind, path, prim, max_s, max_p, out = argv
    limits = (int(max_s), int(max_p)) if int(max_s) > 0 else None
    try:
        arrays = _hair_arrays(path, prim or None, limits) if kind == "hair" else _head_arrays(path, prim)
    except InputError as e:
        Path(out).with_suffix(".err").write_text(str(e), encoding="utf-8")
        return
    with open(out, "wb") as f:
        np.savez(f, **arrays)


@contextlib.contextmanager
def _usd_errors(name: str) -> Iterator[None]:
    """USD's own errors on damaged data (``Tf.ErrorException``; undecodable names) as InputError."""
    _, _, Tf, _, _, _ = _pxr()
    try:
        yield
    except Tf.ErrorException as e:
        raise InputError(f"{name}: USD could not read the file ({_first_line(e)})") from None
    except UnicodeDecodeError:
        raise InputError(f"{name}: the USD file has names or strings that are not valid UTF-8 (damaged)") from None


def _hair_arrays(path: str | Path, prim: str | None, limits: tuple[int, int] | None) -> dict:
    """The arrays of :func:`read_usd`'s Hairstyle, read in this process (``meta_json``: its meta)."""
    name = str(path)
    check = None if limits is None else (lambda s, n: _check_limits(name, s, n, limits))
    with _usd_errors(name):
        stage = open_stage(path)
        parts = [_read_curves(c, name, check) for c in _curve_prims(stage, prim, name)]
    if len(parts) > 1 and check is not None:
        check(sum(h.num_strands for h in parts), sum(h.num_points for h in parts))
    hs = (parts[0] if len(parts) == 1 else _concat(parts, name)).validate(name)
    arrays = {"points": hs.points, "counts": hs.counts, "meta_json": np.array(json.dumps(hs.meta, default=str))}
    arrays.update({k: getattr(hs, k) for k in ("thickness", "transparency", "colors", "root_uv")
                   if getattr(hs, k) is not None})
    return arrays


def _check_limits(name: str, strands: int, points: int, limits: tuple[int, int]) -> None:
    for what, n, most in (("strands", strands, limits[0]), ("points", points, limits[1])):
        if n > most:
            raise InputError(f"{name}: declares {n} {what}, more than the {most} latent4d reads (a corrupt file, "
                             "or raise the limit latent4d.hair.formats.MAX_STRANDS / MAX_POINTS)")


def _read_counts(curves, name: str) -> tuple[np.ndarray, str]:
    """(``curveVertexCounts`` as int64, the curve type/basis) of a BasisCurves prim; checked."""
    counts = _get(curves.GetCurveVertexCountsAttr(), name, "curveVertexCounts", np.int64, required=True)
    if (counts < 1).any():
        raise InputError(f"{name}: curveVertexCounts has a count of {int(counts.min())} (at least 1 expected)")
    kind = str(curves.GetTypeAttr().Get() or "cubic")
    basis = str(curves.GetBasisAttr().Get() or "bezier") if kind == "cubic" else ""
    return counts, kind + (f"/{basis}" if basis else "")


def _read_curves(prim, name: str, check_counts: CountCheck | None) -> Hairstyle:
    """One BasisCurves prim as a Hairstyle (world metres, Y up), bald roots put back in place."""
    _, _, _, _, UsdGeom, _ = _pxr()
    curves = UsdGeom.BasisCurves(prim)
    where = f"{name}: {prim.GetPath()}"
    counts, kind = _read_counts(curves, where)
    bald_idx = _get(prim.GetAttribute(_BALD + "strands"), where, _BALD + "strands", np.int64)
    n_bald = 0 if bald_idx is None else len(bald_idx)
    if check_counts is not None:
        check_counts(len(counts) + n_bald, int(counts.sum()) + n_bald)
    pts = _get(curves.GetPointsAttr(), where, "points", np.float32, 3, required=True)
    if int(counts.sum()) != len(pts):
        raise InputError(f"{where}: curveVertexCounts add up to {int(counts.sum())} points but points has {len(pts)}")
    if not np.isfinite(pts).all():
        raise InputError(f"{where}: NaN or infinite coordinate at point {int(np.argmax(~np.isfinite(pts).all(1)))}")
    frame = _frame_of(prim.GetStage(), prim)
    attrs, meta = _curve_attributes(curves, counts, where, frame)
    meta.update(_read_meta(prim, where))
    if kind != "linear":
        meta["usd_curve_type"] = kind
    hs = Hairstyle(frame.to_metres(pts), counts, meta=meta, **attrs)
    if kind == "cubic/bezier":
        hs = _bezier_knots(hs, where)
    if bald_idx is not None:
        hs = _merge_bald(hs, _read_bald(prim, bald_idx, hs, where, frame), bald_idx, where)
    return hs


def _curve_attributes(curves, counts: np.ndarray, where: str, frame: _Frame) -> tuple[dict[str, Any], dict]:
    """Per-point thickness / transparency / colours and per-strand root UVs; constant values as meta."""
    meta: dict[str, Any] = {}
    widths, interp = _primvar(curves, "widths", where)
    if widths is None:
        widths = _get(curves.GetWidthsAttr(), where, "widths", np.float32)
        interp = str(curves.GetWidthsInterpolation()) if widths is not None else None
    thick, const = _per_point(widths, interp, counts, where, "widths")
    if const is not None:
        meta["usd_width"] = float(frame.length_to_metres(np.array([const]))[0])
    thickness = None if thick is None else frame.length_to_metres(thick)
    colors, const = _per_point(*_primvar(curves, "displayColor", where, 3), counts, where, "displayColor")
    if const is not None:
        meta["usd_display_color"] = [float(c) for c in const]
    transp, _ = _per_point(*_primvar(curves, "latent4d:transparency", where), counts, where, "latent4d:transparency")
    if transp is None:
        opacity, const = _per_point(*_primvar(curves, "displayOpacity", where), counts, where, "displayOpacity")
        transp = None if opacity is None else (1.0 - opacity).astype(np.float32)
        if const is not None:
            meta["usd_display_opacity"] = float(const)
    uv, interp = _primvar(curves, "latent4d:rootUV", where, 2)
    if uv is not None and (interp != "uniform" or len(uv) != len(counts)):
        raise InputError(f"{where}: primvar latent4d:rootUV has {len(uv)} values ({interp}) for {len(counts)} curves")
    return {"thickness": thickness, "transparency": transp, "colors": colors, "root_uv": uv}, meta


def _read_meta(prim, where: str) -> dict:
    raw = prim.GetCustomDataByKey(_META_KEY)
    if raw is None:
        return {}
    try:
        meta = json.loads(str(raw))
        if not isinstance(meta, dict):
            raise ValueError("not an object")
    except (ValueError, RecursionError) as e:
        raise InputError(f"{where}: customData {_META_KEY} is not a JSON object ({str(e)[:200]})") from None
    return meta


def _bezier_knots(hs: Hairstyle, where: str) -> Hairstyle:
    """Cubic bezier curves: keep the on-curve vertices (every third) of each curve."""
    if ((hs.counts - 1) % 3 != 0).any():
        n = int(hs.counts[np.argmax((hs.counts - 1) % 3 != 0)])
        raise InputError(f"{where}: a cubic bezier curve has {n} vertices; bezier curves have 3k + 1 (is the curve "
                         "type missing? USD's default type is cubic bezier; hair is usually type = \"linear\")")
    o = hs.offsets
    keep = np.concatenate([np.arange(o[i], o[i + 1], 3) for i in range(hs.num_strands)]) if hs.num_strands else []
    sel = np.asarray(keep, np.int64)
    counts = (hs.counts + 2) // 3
    return Hairstyle(hs.points[sel], counts, *(None if a is None else a[sel] for a in
                                                (hs.thickness, hs.transparency, hs.colors)),
                     root_uv=hs.root_uv, meta=hs.meta)


def _read_bald(prim, idx: np.ndarray, hair: Hairstyle, where: str, frame: _Frame) -> Hairstyle:
    """The bald roots stored in ``latent4d:bald:*`` (one point each), checked against ``idx`` and ``hair``."""
    n = len(idx)
    pts = _get(prim.GetAttribute(_BALD + "points"), where, _BALD + "points", np.float32, 3, required=True)
    kw: dict[str, Any] = {}
    for key, attr, width in (("thickness", "widths", 1), ("transparency", "transparency", 1),
                             ("colors", "colors", 3), ("root_uv", "rootUV", 2)):
        a = _get(prim.GetAttribute(_BALD + attr), where, _BALD + attr, np.float32, width)
        if (a is None) != (getattr(hair, key) is None):
            state = ("missing", "have") if a is None else ("present", "have no")
            raise InputError(f"{where}: {_BALD}{attr} is {state[0]} but the curves {state[1]} {key}")
        kw[key] = a
    for key, a in (("points", pts), *kw.items()):
        if a is not None and len(a) != n:
            raise InputError(f"{where}: {_BALD}{key} has {len(a)} entries for {n} bald strands")
    if kw["thickness"] is not None:
        kw["thickness"] = frame.length_to_metres(kw["thickness"])
    return Hairstyle(frame.to_metres(pts), np.ones(n, np.int64), **kw)


def _merge_bald(hair: Hairstyle, bald: Hairstyle, idx: np.ndarray, where: str) -> Hairstyle:
    """``hair`` and ``bald`` interleaved: bald strand ``k`` goes to strand index ``idx[k]`` of the result."""
    S = hair.num_strands + bald.num_strands
    if len(idx) and (idx.min() < 0 or idx.max() >= S or (np.diff(idx) <= 0).any()):
        raise InputError(f"{where}: {_BALD}strands must be increasing strand indices in [0, {S})")
    is_bald = np.zeros(S, bool)
    is_bald[idx] = True
    counts = np.ones(S, np.int64)
    counts[~is_bald] = hair.counts
    off = np.concatenate([[0], np.cumsum(counts)])
    hair_rows = _ranges(off[:-1][~is_bald], hair.counts)
    bald_rows = off[:-1][is_bald]

    def place(a, b, width):
        if a is None and b is None:
            return None
        out = np.zeros((int(off[-1]), width) if width > 1 else int(off[-1]), np.float32)
        out[hair_rows], out[bald_rows] = (a if a is not None else 0), (b if b is not None else 0)
        return out

    uv = None
    if hair.root_uv is not None or bald.root_uv is not None:
        uv = np.zeros((S, 2), np.float32)
        uv[~is_bald], uv[is_bald] = (hair.root_uv if hair.root_uv is not None else 0), bald.root_uv
    return Hairstyle(place(hair.points, bald.points, 3), counts, place(hair.thickness, bald.thickness, 1),
                     place(hair.transparency, bald.transparency, 1), place(hair.colors, bald.colors, 3),
                     uv, meta=hair.meta)


def _concat(parts: list[Hairstyle], name: str) -> Hairstyle:
    """Several curve prims as one hairstyle (attributes kept only when every prim has them)."""
    kw: dict[str, Any] = {}
    for key in ("thickness", "transparency", "colors", "root_uv"):
        vals = [getattr(h, key) for h in parts]
        kw[key] = np.concatenate(vals) if all(v is not None for v in vals) else None
    meta = dict(parts[0].meta)
    meta["usd_prims"] = len(parts)
    return Hairstyle(np.concatenate([h.points for h in parts]), np.concatenate([h.counts for h in parts]),
                     meta=meta, **kw)


def _head_arrays(path: str | Path, prim: str) -> dict:
    """``{"vertices", "faces"}`` of the Mesh at ``prim`` (empty when there is none), read in this process."""
    with _usd_errors(str(path)):
        return _read_head(path, prim)


def _read_head(path: str | Path, prim: str) -> dict:
    _, _, _, _, UsdGeom, _ = _pxr()
    name = str(path)
    stage = open_stage(path)
    p = stage.GetPrimAtPath(prim)
    if not p.IsValid():
        return {}
    if not p.IsA(UsdGeom.Mesh):
        raise InputError(f"{name}: {prim} is a {p.GetTypeName() or 'typeless'} prim, expected a Mesh")
    mesh = UsdGeom.Mesh(p)
    v = _get(mesh.GetPointsAttr(), name, f"{prim} points", np.float32, 3, required=True)
    fc = _get(mesh.GetFaceVertexCountsAttr(), name, f"{prim} faceVertexCounts", np.int64, required=True)
    fi = _get(mesh.GetFaceVertexIndicesAttr(), name, f"{prim} faceVertexIndices", np.int64, required=True)
    if (fc < 3).any() or int(fc.sum()) != len(fi) or (len(fi) and (fi.min() < 0 or fi.max() >= len(v))):
        raise InputError(f"{name}: {prim} has inconsistent faces (counts vs indices vs {len(v)} points)")
    starts = np.concatenate([[0], np.cumsum(fc)[:-1]]).astype(np.int64)
    tris = []
    for k in range(2, int(fc.max(initial=3))):  # fan: (0, k-1, k) of every face with more than k corners
        s = starts[fc > k]
        tris.append(np.stack([fi[s], fi[s + k - 1], fi[s + k]], 1))
    faces = np.concatenate(tris) if tris else np.zeros((0, 3), np.int64)
    return {"vertices": _frame_of(stage, p).to_metres(v), "faces": faces.astype(np.int64)}
