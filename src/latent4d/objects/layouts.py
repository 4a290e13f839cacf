"""Real RGB-D frame layouts read directly: NOCS CAMERA / REAL275, YCB-Video, and latent4d's own.

A frame is named by a path *prefix* and a ``format`` (``auto`` picks it from the files present):

* ``nocs`` (CAMERA / REAL275, ``hughw19/NOCS_CVPR2019``): ``<prefix>_color.png`` (8-bit RGB),
  ``<prefix>_depth.png`` (millimetres: REAL275 a 16-bit single-channel PNG; CAMERA's composite
  depth a 3-channel 8-bit PNG holding ``256 * G + R`` mm with 32001 = no measurement, which the
  official loader decodes the same way; ``<prefix>_composed.png`` from ``camera_full_depths`` is
  used when there is no ``_depth.png``), ``<prefix>_mask.png`` (instance ids in the red channel,
  **255 = background**), ``<prefix>_meta.txt`` (a line per instance: ``instance_id class_id
  model_name`` on REAL275, ``instance_id class_id synset model_name`` on CAMERA; class 0 =
  background object, skipped). Intrinsics: ``intrinsics=`` if given, else the dataset's own
  (:data:`NOCS_INTRINSICS`: CAMERA when meta lines have 4 fields, REAL275 when 3). Class ids map to
  :data:`NOCS_CLASSES` (1 bottle, 2 bowl, 3 camera, 4 can, 5 laptop, 6 mug).
* ``ycb`` (YCB-Video): ``<prefix>-color.png``, ``<prefix>-depth.png`` (16-bit, ``factor_depth``
  units per metre), ``<prefix>-label.png`` (class id per pixel, 0 = background; each class appears
  once per frame, so the class id is the instance id), ``<prefix>-meta.mat`` (MATLAB 5 file:
  ``intrinsic_matrix`` 3x3, ``factor_depth`` 1x1, optionally ``cls_indexes``), read with
  ``scipy.io.loadmat`` (numeric arrays only; size-checked first). Class ids map to
  :data:`YCB_CLASSES` names and, by default, to database categories by :data:`YCB_CATEGORIES`.
* ``generic``: a folder written by :func:`latent4d.objects.io.save_scene` (``rgb.png``,
  ``depth.png``, ``mask.png``, ``intrinsics.json``, ``gt.json``); ``<prefix>`` is the folder.

``categories=`` maps a dataset's class ids to latent-database categories: inline ``1:bottle,2:bowl``,
a mapping, or a ``.json`` / ``.yaml`` file holding one (:func:`category_table`). Instances whose class
has no entry (or whose category the database lacks) are skipped, each with its reason.

Datasets that ship pickles (NOCS's ``gts/*.pkl`` ground truth and ``results_*.pkl``) are read with
:func:`safe_unpickle`, a restricted unpickler that builds numpy arrays, numbers, strings and plain
containers only: anything else in the stream (a class, a function, ``os.system``) is refused before it
is called, so a crafted file cannot run code.
"""

from __future__ import annotations

import io as _io
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latent4d.errors import InputError
from latent4d.objects.io import (
    FOV_RANGE_DEG,
    _load_intrinsics,
    _read_image,
    _read_mask,
    check_camera,
    check_depth,
    read_depth_png,
)
from latent4d.objects.types import Scene

FORMATS = ("auto", "generic", "nocs", "ycb")
NOCS_CLASSES = {1: "bottle", 2: "bowl", 3: "camera", 4: "can", 5: "laptop", 6: "mug"}
"""NOCS ``synset_names`` (index 0 is the background)."""
NOCS_INTRINSICS = {"real": (591.0125, 590.16775, 322.525, 244.11084), "camera": (577.5, 577.5, 319.5, 239.5)}
"""(fx, fy, cx, cy) pixels of the REAL275 camera and the CAMERA renderer (640x480), from ``detect_eval.py``."""
NOCS_DEPTH_INVALID = 32001
"""The CAMERA composite depth's "no measurement" value (mm), zeroed by the official loader."""
YCB_CLASSES = {1: "002_master_chef_can", 2: "003_cracker_box", 3: "004_sugar_box", 4: "005_tomato_soup_can",
               5: "006_mustard_bottle", 6: "007_tuna_fish_can", 7: "008_pudding_box", 8: "009_gelatin_box",
               9: "010_potted_meat_can", 10: "011_banana", 11: "019_pitcher_base", 12: "021_bleach_cleanser",
               13: "024_bowl", 14: "025_mug", 15: "035_power_drill", 16: "036_wood_block", 17: "037_scissors",
               18: "040_large_marker", 19: "051_large_clamp", 20: "052_extra_large_clamp", 21: "061_foam_brick"}
"""YCB-Video class ids (``classes.txt`` order, checked against the ``classes.txt`` shipped with the
YCB-Video tools, e.g. DenseFusion's ``datasets/ycb/dataset_config/classes.txt``) -> object names."""
YCB_CATEGORIES = {1: "can", 4: "can", 6: "can", 5: "bottle", 12: "bottle", 13: "bowl", 14: "mug"}
"""Default YCB-Video class -> database category (the YCB objects that are NOCS-like categories)."""
MAX_META_BYTES = 1 << 20
"""Largest NOCS ``_meta.txt`` / category table read (bytes)."""
MAX_MAT_BYTES = 64 << 20
"""Largest YCB ``-meta.mat`` read (bytes; real ones are ~4 MB with the vertex map)."""
MAX_PICKLE_BYTES = 256 << 20
"""Largest pickle :func:`safe_unpickle` reads (bytes)."""


# ----------------------------------------------------------------------------------------------
# restricted unpickling


_NUMPY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                  ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
                  ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"), ("builtins", "slice")}


class _Refused(pickle.UnpicklingError):
    """A global outside the allow-list."""


class _SafeUnpickler(pickle.Unpickler):
    """Builds numpy arrays / scalars / dtypes, numbers, strings, bytes, lists, tuples, dicts, sets;
    refuses every other global (so no constructor or function of the file's choosing is called)."""

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise _Refused(f"global '{module}.{name}' is not allowed (only numpy arrays and plain data)")


def safe_unpickle(path: str | Path, what: str = "pickle"):
    """Load a pickle holding only numpy arrays and plain containers (InputError naming the file and
    the refused global otherwise; the file is never executed). Size-checked first."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} '{path}' does not exist")
    if path.stat().st_size > MAX_PICKLE_BYTES:
        raise InputError(f"{what} '{path}' has {path.stat().st_size:,} bytes (at most {MAX_PICKLE_BYTES:,} read)")
    try:
        return _SafeUnpickler(_io.BytesIO(path.read_bytes())).load()
    except _Refused as e:
        raise InputError(f"{what} '{path}' refused: {e}; latent4d never runs code from a data file") from None
    except Exception as e:  # noqa: BLE001 - damaged streams raise many kinds
        raise InputError(f"{what} '{path}' is not a readable pickle of arrays ({type(e).__name__}: "
                         f"{str(e)[:200]})") from None


# ----------------------------------------------------------------------------------------------
# category tables


def _table_text(value) -> object:
    """The mapping held by a ``.json`` / ``.yaml`` file (size-checked), else ``value`` itself."""
    if isinstance(value, str | Path) and Path(str(value)).suffix.lower() in (".json", ".yaml", ".yml"):
        p = Path(str(value))
        if not p.is_file():
            raise InputError(f"categories file '{p}' does not exist")
        if p.stat().st_size > MAX_META_BYTES:
            raise InputError(f"categories file '{p}' has {p.stat().st_size:,} bytes; a table of ids has a few hundred")
        text = p.read_bytes().decode("utf-8", errors="replace")
        try:
            if p.suffix.lower() == ".json":
                return json.loads(text)
            import yaml

            return yaml.safe_load(text)
        except Exception as e:  # noqa: BLE001 - json / yaml syntax errors
            raise InputError(f"categories file '{p}' is not valid {p.suffix[1:].upper()} ({str(e)[:200]})") from None
    return value


def category_table(value) -> dict[int, str] | None:
    """``categories=`` as ``{class id: database category}``: None, inline ``'1:bottle,2:bowl'``, a
    mapping, or a ``.json`` / ``.yaml`` file holding a mapping. InputError for anything else."""
    value = _table_text(value)
    if value in (None, ""):
        return None
    if isinstance(value, str):
        pairs = [p.partition(":") for p in value.split(",") if p.strip()]
        value = {k: v for k, _, v in pairs}
        if any(not sep for _, sep, _ in pairs):
            raise InputError(f"categories: expected 'id:name,id:name', got '{','.join(k for k in value)}'")
    if not isinstance(value, dict):
        raise InputError(f"categories: expected a table of class id -> category, got a {type(value).__name__}")
    out = {}
    for k, v in value.items():
        if not str(k).strip().lstrip("-").isdigit() or not isinstance(v, str) or not v.strip():
            raise InputError(f"categories: entry {k!r}: {v!r} is not 'class id: category name'")
        out[int(str(k).strip())] = v.strip()
    return out


# ----------------------------------------------------------------------------------------------
# frames


@dataclass
class LayoutFrame:
    """A frame read from a dataset layout: ``scene`` (rgb, depth metres, instance mask 0 = background,
    K, ground truth when the layout has it), ``classes`` {instance id: dataset class id},
    ``names`` {instance id: object / model name}, ``categories`` {instance id: database category, or
    None = try every category} for the instances to reconstruct, ``skipped`` {instance id: reason}, the ``format`` and its files."""

    scene: Scene
    format: str
    files: dict[str, Path]
    classes: dict[int, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    categories: dict[int, str] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)


def layout_files(prefix: str | Path, fmt: str) -> dict[str, Path]:
    """The files of a frame in ``fmt`` (nocs / ycb / generic) for a path prefix (not checked)."""
    p = str(prefix)
    if fmt == "nocs":
        depth = Path(p + "_depth.png")
        if not depth.is_file() and Path(p + "_composed.png").is_file():
            depth = Path(p + "_composed.png")
        return {"rgb": Path(p + "_color.png"), "depth": depth, "mask": Path(p + "_mask.png"),
                "meta": Path(p + "_meta.txt")}
    if fmt == "ycb":
        return {"rgb": Path(p + "-color.png"), "depth": Path(p + "-depth.png"), "mask": Path(p + "-label.png"),
                "meta": Path(p + "-meta.mat")}
    if fmt == "generic":
        f = Path(p)
        return {"rgb": f / "rgb.png", "depth": f / "depth.png", "mask": f / "mask.png",
                "intrinsics": f / "intrinsics.json", "gt": f / "gt.json"}
    raise InputError(f"format={fmt}: expected one of {', '.join(FORMATS)}")


def detect_format(prefix: str | Path) -> str:
    """The layout whose colour image exists for ``prefix`` (InputError listing what was looked for)."""
    for fmt in ("nocs", "ycb", "generic"):
        if layout_files(prefix, fmt)["rgb"].is_file():
            return fmt
    raise InputError(f"frame '{prefix}': no frame there (looked for {prefix}_color.png (NOCS), {prefix}-color.png "
                     f"(YCB-Video) and {Path(prefix) / 'rgb.png'} (latent4d folder)); pass the path prefix of the "
                     "frame's files, e.g. frame=real_test/scene_1/0000")


def read_nocs_meta(path: Path) -> list[tuple[int, int, str]]:
    """``(instance id, class id, model name)`` per line of a NOCS ``_meta.txt`` (3 fields on REAL275,
    4 on CAMERA: the model name is the last)."""
    if not path.is_file():
        raise InputError(f"NOCS meta '{path}' does not exist (every NOCS frame has a _meta.txt beside _color.png)")
    if path.stat().st_size > MAX_META_BYTES:
        raise InputError(f"NOCS meta '{path}' has {path.stat().st_size:,} bytes; a meta file has a line per object")
    rows = []
    for n, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (3, 4) or not (parts[0].isdigit() and parts[1].isdigit()):
            raise InputError(f"NOCS meta '{path}' line {n}: expected 'instance_id class_id model_name' (REAL275) or "
                             f"'instance_id class_id synset model_name' (CAMERA), got {line.strip()[:80]!r}")
        rows.append((int(parts[0]), int(parts[1]), parts[-1]))
    return rows


def read_nocs_depth(path: Path) -> np.ndarray:
    """NOCS depth -> (H, W) float32 metres: a 16-bit PNG in mm, or CAMERA's 3-channel encoding
    ``256 * G + R`` mm with :data:`NOCS_DEPTH_INVALID` = no measurement."""
    img = _read_image(path, "depth")
    if img.mode in ("RGB", "RGBA"):
        arr = np.asarray(img.convert("RGB")).astype(np.int64)
        mm = arr[..., 1] * 256 + arr[..., 0]
        mm[mm == NOCS_DEPTH_INVALID] = 0
        return (mm / 1000.0).astype(np.float32)
    return read_depth_png(path, 1000.0)


def read_nocs_mask(path: Path) -> np.ndarray:
    """NOCS instance mask -> (H, W) int64 ids with 0 = background (255 in the file; colour PNGs:
    the red channel, as the official loader reads channel 2 of OpenCV's BGR)."""
    img = _read_image(path, "mask")
    if img.mode in ("RGB", "RGBA"):
        m = np.asarray(img.convert("RGB"))[..., 0].astype(np.int64)
    elif img.mode in ("L", "P"):
        m = np.asarray(img).astype(np.int64)
    else:
        raise InputError(f"NOCS mask '{path}': expected an 8-bit PNG with 255 as background, got mode '{img.mode}'")
    if not (m == 255).any():
        raise InputError(f"NOCS mask '{path}' has no background pixel (255); NOCS masks mark the background with 255 "
                         "(for 0-background masks use format=generic)")
    return np.where(m == 255, 0, m)


def read_ycb_meta(path: Path) -> dict:
    """``{"K": (3, 3), "factor_depth": float, "cls_indexes": list}`` from a YCB ``-meta.mat``."""
    if not path.is_file():
        raise InputError(f"YCB meta '{path}' does not exist (every YCB-Video frame has a -meta.mat)")
    if path.stat().st_size > MAX_MAT_BYTES:
        raise InputError(f"YCB meta '{path}' has {path.stat().st_size:,} bytes (at most {MAX_MAT_BYTES:,} read)")
    from scipy.io import loadmat

    try:
        meta = loadmat(str(path), variable_names=["intrinsic_matrix", "factor_depth", "cls_indexes"])
    except Exception as e:  # noqa: BLE001 - scipy raises many kinds for foreign / damaged files
        raise InputError(f"YCB meta '{path}' is not a readable MATLAB file ({type(e).__name__}: {str(e)[:200]})") from None
    missing = [k for k in ("intrinsic_matrix", "factor_depth") if k not in meta]
    if missing:
        raise InputError(f"YCB meta '{path}' lacks {', '.join(missing)} (a YCB-Video -meta.mat holds "
                         "intrinsic_matrix 3x3 and factor_depth)")
    K = np.asarray(meta["intrinsic_matrix"], np.float64)
    f = np.asarray(meta["factor_depth"], np.float64).ravel()
    if K.shape != (3, 3) or f.size != 1 or not np.isfinite(K).all() or not (np.isfinite(f[0]) and f[0] > 0):
        raise InputError(f"YCB meta '{path}': intrinsic_matrix must be a finite 3x3 (got {K.shape}) and factor_depth "
                         f"one positive number (got {f.tolist()[:4]})")
    cls = np.asarray(meta.get("cls_indexes", np.zeros(0)), np.float64).ravel()
    return {"K": K, "factor_depth": float(f[0]), "cls_indexes": [int(c) for c in cls if np.isfinite(c)]}


def _frame_images(files: dict[str, Path], fmt: str, depth_scale: float):
    """rgb (H, W, 3) uint8, depth (H, W) m, mask (H, W) ids of a layout (sizes checked)."""
    rgb_img = _read_image(files["rgb"], "rgb")
    rgb = np.asarray(rgb_img.convert("RGB"))
    if fmt == "nocs":
        depth, mask = read_nocs_depth(files["depth"]), read_nocs_mask(files["mask"])
    else:
        depth, mask = read_depth_png(files["depth"], depth_scale), _read_mask(files["mask"])
    for name, a in (("depth", depth), ("mask", mask)):
        if a.shape != rgb.shape[:2]:
            raise InputError(f"{name} '{files[name]}' is {a.shape[1]}x{a.shape[0]} but rgb '{files['rgb']}' is "
                             f"{rgb.shape[1]}x{rgb.shape[0]}")
    return rgb, depth, mask


def _intrinsics(fmt: str, intrinsics, meta_rows, ycb_meta) -> tuple[np.ndarray, tuple | None, str]:
    if intrinsics is not None:
        return _load_intrinsics(intrinsics)
    if fmt == "ycb":
        return ycb_meta["K"], None, "YCB meta intrinsic_matrix"
    cam = "camera" if meta_rows and all(len(r) == 4 for r in meta_rows) else "real"
    fx, fy, cx, cy = NOCS_INTRINSICS[cam]
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), None, f"NOCS {cam.upper()} intrinsics"


def read_layout_frame(prefix: str | Path, format: str = "auto", categories=None, intrinsics=None,
                      depth_scale: float | None = None, min_fov_deg: float = FOV_RANGE_DEG[0],
                      known: list[str] | None = None) -> LayoutFrame:
    """Read one frame of a dataset layout (module docstring) and map its class ids to database
    categories (``categories``: a table, default NOCS's / YCB's; ``known``: the database categories,
    when given instances of other categories are skipped). Checks sizes, intrinsics against the images
    and depth plausibility (:mod:`latent4d.objects.io`). The generic layout's ``categories=`` keeps its
    meaning of instance id -> category."""
    fmt = detect_format(prefix) if format in (None, "", "auto") else format
    files = layout_files(prefix, fmt)
    for k, p in files.items():
        if k != "gt" and not (k == "intrinsics" and intrinsics is not None) and not p.is_file():
            raise InputError(f"{fmt} frame '{prefix}': {k} file '{p}' does not exist")
    if fmt == "generic":
        return _read_generic(prefix, files, categories, intrinsics, depth_scale, min_fov_deg, known)
    rows = read_nocs_meta(files["meta"]) if fmt == "nocs" else []
    raw_rows = ([ln.split() for ln in files["meta"].read_text(errors="replace").splitlines() if ln.split()]
                if fmt == "nocs" else [])
    ymeta = read_ycb_meta(files["meta"]) if fmt == "ycb" else None
    scale = ymeta["factor_depth"] if fmt == "ycb" else 1000.0
    if depth_scale is not None and fmt == "ycb":
        scale = float(depth_scale)
    rgb, depth, mask = _frame_images(files, fmt, scale)
    K, declared, where = _intrinsics(fmt, intrinsics, raw_rows, ymeta)
    H, W = depth.shape
    check_camera(K, W, H, where, declared, image=f"rgb '{files['rgb']}'", min_fov_deg=min_fov_deg)
    check_depth(depth, str(files["depth"]), scale, raw_png=True, mask=mask)
    present = sorted(int(i) for i in np.unique(mask) if i > 0)
    if fmt == "nocs":
        classes = {i: c for i, c, _ in rows}
        names = {i: n for i, _, n in rows}
        default = NOCS_CLASSES
    else:
        classes = {i: i for i in present}
        names = {i: YCB_CLASSES.get(i, f"class {i}") for i in present}
        default = YCB_CATEGORIES
    table = category_table(categories) or default
    frame = LayoutFrame(Scene(rgb=rgb, depth=depth, mask=mask.astype(np.int32), K=K), fmt, files, classes, names)
    _assign(frame, present, table, known)
    return frame


def _assign(frame: LayoutFrame, present: list[int], table: dict[int, str], known) -> None:
    """Fill ``frame.categories`` / ``frame.skipped`` for the instances in the mask."""
    for iid in present:
        cls = frame.classes.get(iid)
        if cls is None:
            frame.skipped[iid] = "not listed in the meta file"
        elif cls == 0:
            frame.skipped[iid] = "class 0 (a background object in the NOCS meta)"
        elif cls not in table:
            frame.skipped[iid] = (f"class {cls} ({frame.names.get(iid, '?')}) has no database category; map it with "
                                  f"categories={cls}:<category>")
        elif known is not None and table[cls] not in known:
            frame.skipped[iid] = (f"class {cls} -> '{table[cls]}', which the latent database does not hold "
                                  f"({', '.join(sorted(known))})")
        else:
            frame.categories[iid] = table[cls]


def _read_generic(prefix, files, categories, intrinsics, depth_scale, min_fov_deg, known) -> LayoutFrame:
    """latent4d's own folder (:func:`latent4d.objects.io.save_scene`); ``categories``: instance -> name."""
    from latent4d.objects.io import read_rgbd

    scene = read_rgbd(files["rgb"], files["depth"], files["mask"], intrinsics or files["intrinsics"],
                      1000.0 if depth_scale is None else depth_scale, gt=files["gt"], min_fov_deg=min_fov_deg)
    present = scene.instance_ids
    frame = LayoutFrame(scene, "generic", files, {i: i for i in present},
                        {o.instance_id: o.name for o in scene.objects})
    if isinstance(categories, str) and ":" not in categories and not categories.endswith((".json", ".yaml", ".yml")):
        table = {i: categories.strip() for i in present}
    else:
        table = category_table(categories) or {o.instance_id: o.category for o in scene.objects}
    if not table:  # no table and no ground truth: every instance is tried against every category (None)
        frame.categories = dict.fromkeys(present)
        return frame
    _assign(frame, present, table, known)
    return frame


__all__ = ["FORMATS", "NOCS_CLASSES", "NOCS_INTRINSICS", "YCB_CATEGORIES", "YCB_CLASSES", "LayoutFrame",
           "category_table", "detect_format", "layout_files", "read_layout_frame", "read_nocs_depth",
           "read_nocs_mask", "read_nocs_meta", "read_ycb_meta", "safe_unpickle"]
