"""The objects family's file formats: RGB-D frames, saved scenes and reconstruction outputs.

Files (what :func:`save_scene` writes and :func:`read_rgbd` / :func:`load_scene` read):

* ``rgb.png`` 8-bit RGB; ``depth.png`` 16-bit, millimetres, 0 = no measurement (or an (H, W)
  float ``.npy`` in metres, NaN = no measurement);
* ``mask.png`` 8- or 16-bit instance ids (0 = background), or a colour-coded mask;
* ``intrinsics.json`` ``{"fx", "fy", "cx", "cy", "width", "height"}`` (or ``{"K": 3x3}``);
* ``gt.json`` per object: instance id, category, name, ``R`` (3x3, canonical -> camera),
  ``t`` (3, m), ``scale`` (m, half-diagonal), ``size`` (3, m, NOCS-style box extents) and, when the
  object is in a latent database, its ``shape_code`` / ``appearance_code``.

:func:`read_frame` reads one :class:`~latent4d.geometry.rgbd.RGBDFrame` (rgb and mask optional);
:func:`read_rgbd` reads an objects :class:`~latent4d.objects.types.Scene` (mask required).

Real frames come in other units and with broken calibration; the readers refuse, with the
measured values and the fix, rather than reconstructing garbage: images larger than
:data:`MAX_IMAGE_PIXELS` (checked from the header, before decoding), rgb / depth / mask of different
sizes, intrinsics whose declared width / height differ from the images or whose focal lengths /
principal point are implausible for the image size (:func:`check_camera`: :data:`FOV_RANGE_DEG`,
:data:`MAX_PIXEL_ASPECT`, :data:`PRINCIPAL_POINT_MARGIN`), depth implausible for tabletop RGB-D
(:func:`check_depth`: :data:`DEPTH_MEDIAN_RANGE_M`, :data:`OBJECT_DEPTH_RANGE_M`,
:data:`MAX_SATURATED_FRACTION`; fix: ``depth_scale=``), and empty masks. The only override is
``min_fov_deg`` (``reconstruct objects min_fov=``) for a zoom lens or a cropped frame.

Outputs: :func:`write_scene_reconstruction` (per object a coloured camera-frame mesh and a JSON,
``overlay.png``, ``summary.json``, written as a whole folder); :func:`overlay_image` and
:func:`preview_image` are the pictures the commands write.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from latent4d.errors import InputError
from latent4d.fileio import atomic_dir, atomic_path, write_json_atomic
from latent4d.geometry.rgbd import RGBDFrame, check_intrinsics
from latent4d.objects.types import ObjectReconstruction, Scene, SceneObject

# --------------------------------------------------------------------------------------------
# depth PNGs

def write_depth_png(path: str | Path, depth_m: np.ndarray, depth_scale: float = 1000.0) -> Path:
    """Depth in metres (H, W) -> 16-bit PNG in 1/``depth_scale`` m units (millimetres by default)."""
    from PIL import Image

    d = np.asarray(depth_m, np.float64)
    if d.ndim != 2:
        raise InputError(f"depth: expected an (H, W) array, got shape {d.shape}")
    q = np.rint(np.nan_to_num(d, nan=0.0) * depth_scale)
    if q.max(initial=0) > 65535:
        raise InputError(f"depth: {d.max():.2f} m does not fit a 16-bit PNG at scale {depth_scale}")
    with atomic_path(path) as tmp:
        Image.fromarray(q.astype(np.uint16)).save(tmp, format="PNG")
    return Path(path)



# --------------------------------------------------------------------------------------------
# plausibility limits of real RGB-D input (named, so that users and reviewers can find them)

MAX_IMAGE_PIXELS = 50_000_000
"""Largest rgb / depth / mask image (pixels) the readers decode. 8K frames have 33 M pixels; a PNG
or ``.npy`` header declaring more is refused before any pixel is decoded (no override)."""

MAX_INTRINSICS_BYTES = 1 << 20
"""Largest intrinsics JSON read (bytes); a real one has ~100 bytes."""

FOV_RANGE_DEG = (20.0, 150.0)
"""Plausible field of view (degrees, along the longer image side) of a pinhole RGB-D camera:
Kinect / RealSense / Azure Kinect / phone depth cameras have ~55-120, the NOCS REAL275 camera 57.
Focal lengths outside it belong to another image size or unit (``fx = fy = 1e-9`` or normalised
``fx = 0.9``: ~180 degrees). The lower bound can be lowered for a zoom lens or a cropped frame with
``latent4d reconstruct objects min_fov=<degrees>`` (``read_rgbd(min_fov_deg=...)``); the upper
bound cannot (a pinhole model beyond 150 degrees is not a real camera)."""

MAX_PIXEL_ASPECT = 1.5
"""Largest ``fx / fy`` (or ``fy / fx``): RGB-D sensors have square pixels (ratio ~1); a larger ratio
means fx and fy belong to different image sizes or one is mistyped (no override)."""

PRINCIPAL_POINT_MARGIN = 0.1
"""The principal point (cx, cy) must lie at least this fraction of the width / height inside the
image border (real calibrations put it within a few percent of the centre). Intrinsics written for
images twice as large put it on the border or beyond, so this also catches them when the JSON has
no width / height (no override)."""

DEPTH_MEDIAN_RANGE_M = (0.1, 10.0)
"""Plausible median of the valid depth (metres) of a tabletop RGB-D frame. Outside it the depth is
in another unit than ``depth_scale`` says (a 0.1 mm PNG read as mm: 10x too far; metres written to
a 16-bit PNG: 1000x too near). The fix is ``depth_scale=<raw units per metre>`` for a PNG, metres
for a ``.npy``; there is no override (the object priors are tabletop-sized)."""

OBJECT_DEPTH_RANGE_M = (0.1, 5.0)
"""Plausible median valid depth (metres) inside the instance masks: tabletop objects (5-40 cm) are
reconstructed from 0.1-5 m (farther they cover a few pixels). Catches what the frame median lets
through, e.g. a 0.1 mm depth PNG read as millimetres puts objects at 1 m at 10 m (no override; the
fix is ``depth_scale=``)."""

MAX_SATURATED_FRACTION = 0.01
"""Largest fraction of the valid pixels of a 16-bit depth PNG that may hold 65535 (the 16-bit
maximum). More means the sensor's "no measurement" value was written as 65535 instead of 0 (those
pixels would become points tens of metres away): refused with that diagnosis (no override)."""


def _power_of_ten(x: float) -> float:
    import math

    return float(10.0 ** round(math.log10(max(x, 1e-12))))


def check_depth(depth: np.ndarray, where: str, depth_scale: float = 1000.0, raw_png: bool = True,
                mask: np.ndarray | None = None) -> np.ndarray:
    """Refuse a depth map (H, W) float32 metres (0 = no measurement) that is implausible for tabletop
    RGB-D: no valid pixel, a saturated no-measurement value (:data:`MAX_SATURATED_FRACTION`), a
    median valid depth outside :data:`DEPTH_MEDIAN_RANGE_M`, or (with ``mask`` (H, W) instance ids)
    a median valid depth inside the instances outside :data:`OBJECT_DEPTH_RANGE_M`. Messages give
    the measured values and the ``depth_scale=`` (PNG: raw units per metre) that would fit.
    Returns ``depth`` unchanged."""
    valid = depth > 0
    if not valid.any():
        raise InputError(f"depth '{where}' has no valid pixel (all 0 / no measurement): nothing to reconstruct from")
    z = depth[valid]
    if raw_png:
        raw = np.rint(z.astype(np.float64) * depth_scale)
        sat = float((raw >= 65535).mean())
        if sat > MAX_SATURATED_FRACTION:
            raise InputError(
                f"depth '{where}': {100 * sat:.0f} % of the valid pixels hold 65535, the 16-bit maximum "
                f"({65535 / depth_scale:.1f} m at depth_scale={depth_scale:g}): the sensor's 'no measurement' "
                "value must be 0 in a latent4d depth PNG; set those pixels to 0 (depth[depth == 65535] = 0)")
    _check_median(z, DEPTH_MEDIAN_RANGE_M, "median valid depth", where, depth_scale, raw_png)
    if mask is not None:
        zo = depth[valid & (mask > 0)]
        if len(zo):
            _check_median(zo, OBJECT_DEPTH_RANGE_M, "median valid depth inside the instance mask", where,
                          depth_scale, raw_png)
    return depth


def _check_median(z: np.ndarray, limits: tuple[float, float], what: str, where: str, depth_scale: float,
                  raw_png: bool) -> None:
    med = float(np.median(z))
    lo, hi = limits
    if lo <= med <= hi:
        return
    stats = f"{what} is {med:.4g} m (range {float(z.min()):.4g}-{float(z.max()):.4g} m)"
    if raw_png:
        raw_med = med * depth_scale
        guess = _power_of_ten(raw_med)
        eg = (f" (e.g. depth_scale={guess:g} puts that median at {raw_med / guess:.2f} m)"
              if guess != depth_scale else "")
        fix = (f"the PNG holds raw values around {raw_med:.0f}; if they are not 1/{depth_scale:g} m, pass "
               f"depth_scale=<raw units per metre>{eg}")
    elif med > hi:
        fix = f"a .npy depth must be in metres: divide it by {_power_of_ten(med):g} if it is in another unit"
    else:
        fix = f"a .npy depth must be in metres: multiply it by {_power_of_ten(1 / med):g} if it is in another unit"
    raise InputError(f"depth '{where}': {stats}, implausible for tabletop RGB-D (expected {lo:g}-{hi:g} m); {fix}")


def _check_image_size(w: int, h: int, where: str) -> None:
    if w <= 0 or h <= 0 or w * h > MAX_IMAGE_PIXELS:
        raise InputError(f"{where} declares {w}x{h} pixels; latent4d reads images of 1 to {MAX_IMAGE_PIXELS:,} "
                         "pixels (the file is damaged or not an RGB-D frame)")


def _read_depth_npy(path: Path) -> np.ndarray:
    """An (H, W) float ``.npy`` in metres. The header (shape, dtype) is checked against the file size
    and :data:`MAX_IMAGE_PIXELS` before any data is read; object (pickled) arrays are refused
    unread; NaN = no measurement, inf / negative values refused."""
    fmt = np.lib.format
    try:
        with path.open("rb") as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version} is not supported (1.0 or 2.0)")
            offset = f.tell()
    except Exception as e:  # noqa: BLE001 - numpy raises ValueError / EOFError / OSError for damaged headers
        raise InputError(f"depth '{path}' is not a readable .npy array ({type(e).__name__}: "
                         f"{str(e).strip()[:200]}); expected an (H, W) float array in metres") from None
    if dtype.hasobject:
        raise InputError(f"depth '{path}' holds Python objects (a pickled array), which latent4d never loads; "
                         "save the depth as an (H, W) float array in metres")
    if len(shape) != 2 or not np.issubdtype(dtype, np.floating):
        raise InputError(f"depth '{path}': a .npy depth must be an (H, W) float array in metres, "
                         f"got {dtype} {shape}")
    _check_image_size(shape[1], shape[0], f"depth '{path}'")
    need = shape[0] * shape[1] * dtype.itemsize
    have = path.stat().st_size - offset
    if have < need:
        raise InputError(f"depth '{path}' is truncated: its header declares {shape[1]}x{shape[0]} {dtype} "
                         f"({need:,} bytes) but the file holds {max(have, 0):,} after the header")
    try:
        d = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"depth '{path}' is not a readable .npy array ({type(e).__name__}: {str(e)[:200]})") from None
    d = np.asarray(d, dtype=np.float32)
    if np.isinf(d).any():
        raise InputError(f"depth '{path}' holds infinite values; use 0 (or NaN) for pixels without a measurement")
    neg = d < 0
    if neg.any():
        raise InputError(f"depth '{path}' holds {int(neg.sum())} negative value(s) (min {float(d[neg].min()):.3g}); "
                         "depth is the distance along the optical axis in metres, 0 (or NaN) = no measurement")
    return np.where(np.isnan(d), 0, d).astype(np.float32)


def read_depth_png(path: str | Path, depth_scale: float = 1000.0) -> np.ndarray:
    """16-bit depth PNG (``depth_scale`` units per metre, millimetres by default) or an (H, W) float
    ``.npy`` in metres -> float32 metres (0 = invalid; NaN in a ``.npy`` counts as invalid).
    8-bit or colour PNGs are rejected; sizes are checked before decoding."""
    import math

    path = Path(path)
    if not path.is_file():
        raise InputError(f"depth file '{path}' does not exist")
    if not (isinstance(depth_scale, int | float) and math.isfinite(depth_scale) and depth_scale > 0):
        raise InputError(f"depth_scale={depth_scale!r}: expected a positive number (raw depth units per metre)")
    if path.suffix.lower() == ".npy":
        return _read_depth_npy(path)
    img = _read_image(path, "depth")
    arr = np.asarray(img)
    if img.mode not in ("I;16", "I;16B", "I;16L", "I") or arr.ndim != 2:
        raise InputError(f"depth '{path}': expected a single-channel 16-bit PNG in millimetres, got mode "
                         f"'{img.mode}' with shape {arr.shape} (dtype {arr.dtype})")
    if arr.dtype == np.int32 and (arr.min() < 0 or arr.max() > 65535):
        raise InputError(f"depth '{path}': values outside the 16-bit range")
    return (arr.astype(np.float64) / depth_scale).astype(np.float32)


def _number(d: dict, key: str, where: str) -> float:
    import math

    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputError(f"{where}: {key} must be a number (pixels), got {v!r}")
    if not math.isfinite(v):
        raise InputError(f"{where}: {key} is {v}, expected a finite number (pixels)")
    return float(v)


def _load_intrinsics(path_or_dict) -> tuple[np.ndarray, tuple[int, int] | None, str]:
    """(K (3, 3), declared (width, height) or None, a name for messages) from a JSON file or a dict."""
    if isinstance(path_or_dict, dict):
        d, where = path_or_dict, "intrinsics"
    else:
        p = Path(path_or_dict)
        where = f"intrinsics '{p}'"
        if not p.is_file():
            raise InputError(f"intrinsics file '{p}' does not exist")
        if p.stat().st_size > MAX_INTRINSICS_BYTES:
            raise InputError(f"{where} has {p.stat().st_size:,} bytes; an intrinsics JSON has ~100 "
                             "({\"fx\", \"fy\", \"cx\", \"cy\", \"width\", \"height\"}): wrong file?")
        try:
            text = p.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"{where} is not a UTF-8 text file, so not an intrinsics JSON") from None
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise InputError(f"{where} is not valid JSON ({str(e)[:200]})") from None
    if not isinstance(d, dict):
        raise InputError(f"{where}: expected a JSON object {{\"fx\", \"fy\", \"cx\", \"cy\", \"width\", \"height\"}} "
                         f"or {{\"K\": 3x3}}, got a {type(d).__name__}")
    if "K" in d:
        rows = d["K"]
        if not (isinstance(rows, list) and len(rows) == 3 and all(isinstance(r, list) and len(r) == 3 for r in rows)):
            raise InputError(f"{where}: K must be a 3x3 list of numbers (rows), got {str(rows)[:100]}")
        flat = {f"K[{i}][{j}]": rows[i][j] for i in range(3) for j in range(3)}
        K = np.array([_number(flat, k, where) for k in flat], np.float64).reshape(3, 3)
    else:
        missing = [k for k in ("fx", "fy", "cx", "cy") if k not in d]
        if missing:
            raise InputError(f"{where}: missing {', '.join(missing)} (expected fx, fy, cx, cy in pixels, "
                             "width and height, or K)")
        fx, fy, cx, cy = (_number(d, k, where) for k in ("fx", "fy", "cx", "cy"))
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64)
    size = None
    if "width" in d or "height" in d:
        if "width" not in d or "height" not in d:
            raise InputError(f"{where}: has {'width' if 'width' in d else 'height'} but not "
                             f"{'height' if 'width' in d else 'width'}; give both (pixels) or neither")
        w, h = _number(d, "width", where), _number(d, "height", where)
        if w != int(w) or h != int(h) or w <= 0 or h <= 0:
            raise InputError(f"{where}: width and height must be positive whole numbers of pixels, got {w:g} x {h:g}")
        size = (int(w), int(h))
    try:
        K = check_intrinsics(K)
    except InputError as e:
        raise InputError(f"{where}: {str(e).removeprefix('intrinsics: ')}") from None
    if K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
        raise InputError(f"{where}: K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()} "
                         "(a scaled or transposed matrix?)")
    if abs(K[0, 1]) > 1e-3 * K[0, 0]:
        raise InputError(f"{where}: skew K[0][1] = {K[0, 1]:g} is not supported (pinhole without skew); "
                         "is K transposed?")
    return K, size, where


def read_intrinsics(path_or_dict) -> np.ndarray:
    """Intrinsics JSON ({fx, fy, cx, cy[, width, height]} or {"K": 3x3}) -> checked 3x3 matrix (pixels).

    Checks the JSON (size, types, finiteness, layout); the image-dependent checks are
    :func:`check_camera` (done by :func:`read_rgbd`)."""
    return _load_intrinsics(path_or_dict)[0]


def check_camera(K: np.ndarray, width: int, height: int, where: str = "intrinsics",
                 declared: tuple[int, int] | None = None, image: str = "the images",
                 min_fov_deg: float = FOV_RANGE_DEG[0]) -> np.ndarray:
    """Refuse intrinsics K (3, 3, pixels) that do not fit ``width`` x ``height`` images: a declared
    size that differs, a field of view outside [``min_fov_deg``, :data:`FOV_RANGE_DEG` max], a pixel
    aspect beyond :data:`MAX_PIXEL_ASPECT`, a principal point within :data:`PRINCIPAL_POINT_MARGIN`
    of the border or outside. Messages give the measured values and the fix. Returns K."""
    import math

    W, H = int(width), int(height)
    if declared is not None and tuple(declared) != (W, H):
        dw, dh = declared
        raise InputError(f"{where} were written for {dw}x{dh} images but {image} are {W}x{H}: use the "
                         f"intrinsics of the images you pass (for resized images scale fx and cx by {W / dw:g}, "
                         f"fy and cy by {H / dh:g}, and set width={W}, height={H})")
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    aspect = max(fx / fy, fy / fx)
    if aspect > MAX_PIXEL_ASPECT:
        raise InputError(f"{where}: fx={fx:g} and fy={fy:g} differ by {aspect:.3g}x; RGB-D cameras have square "
                         f"pixels (fx ~ fy, at most {MAX_PIXEL_ASPECT:g}x apart): one of them is mistyped or "
                         "belongs to another image size")
    fov_x = math.degrees(2 * math.atan(W / (2 * fx)))
    fov_y = math.degrees(2 * math.atan(H / (2 * fy)))
    fov, side = (fov_x, "horizontal") if W >= H else (fov_y, "vertical")
    lo, hi = float(min_fov_deg), FOV_RANGE_DEG[1]
    if not lo <= fov <= hi:
        hint = (" For a zoom lens or a cropped frame pass min_fov=<degrees> (reconstruct objects)."
                if fov < lo else " Normalised intrinsics must be multiplied by the image size (fx, cx by the "
                "width; fy, cy by the height).")
        raise InputError(f"{where}: fx={fx:g}, fy={fy:g} give a {fov:.1f} degree {side} field of view for "
                         f"{W}x{H} images; RGB-D cameras have {lo:g}-{hi:g} (NOCS REAL275: 57). fx, fy must be "
                         f"in pixels of these images.{hint}")
    mx, my = PRINCIPAL_POINT_MARGIN * W, PRINCIPAL_POINT_MARGIN * H
    if not (mx <= cx <= W - mx and my <= cy <= H - my):
        raise InputError(f"{where}: principal point (cx, cy) = ({cx:g}, {cy:g}) is not inside the central "
                         f"{100 * (1 - 2 * PRINCIPAL_POINT_MARGIN):.0f} % of the {W}x{H} images (expected "
                         f"near ({W / 2:g}, {H / 2:g})): the intrinsics belong to another image size "
                         "(scale them by the size ratio) or cx / cy are swapped")
    return K


def write_intrinsics(path: str | Path, K, width: int, height: int) -> Path:
    K = check_intrinsics(K)
    return write_json_atomic(path, {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2],
                                    "width": int(width), "height": int(height)})


def _read_image(path: str | Path, what: str):
    """Open an image with PIL, checking its declared size against :data:`MAX_IMAGE_PIXELS` before decoding."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file '{path}' does not exist")
    try:
        img = Image.open(path)
    except Exception as e:  # noqa: BLE001 - PIL raises many kinds for damaged / foreign files
        raise InputError(f"{what} '{path}' could not be read as an image ({type(e).__name__}: {e})") from None
    _check_image_size(img.size[0], img.size[1], f"{what} '{path}'")
    try:
        img.load()
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{what} '{path}' could not be read as an image ({type(e).__name__}: {e})") from None
    return img


_MASK_MODES = ("1", "L", "P", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L")




def _read_mask(mask: str | Path) -> np.ndarray:
    """Instance ids (H, W) int64 from an 8/16/32-bit id image or a colour-coded one (every non-black
    colour is one instance, ids in colour order)."""
    m_img = _read_image(mask, "mask")
    if m_img.mode not in _MASK_MODES:
        raise InputError(f"mask '{mask}': expected 8- or 16-bit instance ids (0 = background) or a colour-coded "
                         f"RGB mask, got image mode '{m_img.mode}'")
    if m_img.mode not in ("RGB", "RGBA", "P"):
        return np.asarray(m_img).astype(np.int64)
    arr = np.asarray(m_img.convert("RGB")).astype(np.int64)
    code = (arr[..., 0] << 16) | (arr[..., 1] << 8) | arr[..., 2]
    colours = np.unique(code)
    if len(colours) >= 256:
        return np.searchsorted(colours, code) + (0 if colours[0] == 0 else 1)
    lut = {int(c): i for i, c in enumerate(c for c in colours if c != 0)}
    return np.vectorize(lambda c: 0 if c == 0 else lut[int(c)] + 1, otypes=[np.int64])(code)


def read_frame(depth: str | Path, intrinsics, rgb: str | Path | None = None, mask: str | Path | None = None,
               depth_scale: float = 1000.0, min_fov_deg: float = FOV_RANGE_DEG[0]) -> RGBDFrame:
    """Read and validate one RGB-D frame (rgb and mask optional; see the module docstring).

    Raises InputError naming the file for: a missing / unreadable / oversized file, a depth that
    is not 16-bit (or an (H, W) float ``.npy`` in metres), images of different sizes, intrinsics
    that do not fit the images (:func:`check_camera`), depth implausible for tabletop RGB-D
    (:func:`check_depth`; fix with ``depth_scale``) or negative instance ids. Returns an
    :class:`~latent4d.geometry.rgbd.RGBDFrame` (rgb (H, W, 3) uint8 or None, depth (H, W) float32 m,
    mask (H, W) int32 or None, K (3, 3) pixels).
    """
    K, declared, where = _load_intrinsics(intrinsics)
    rgb_arr = None
    if rgb is not None:
        img = _read_image(rgb, "rgb")
        try:
            rgb_arr = np.asarray(img.convert("RGB"))
        except Exception as e:  # noqa: BLE001 - PIL cannot convert some modes (e.g. 16-bit grey) to RGB
            raise InputError(f"rgb '{rgb}': image mode '{img.mode}' cannot be read as 8-bit RGB ({e})") from None
    d = read_depth_png(depth, depth_scale)
    m = None if mask is None else _read_mask(mask)
    H, W = d.shape
    if rgb_arr is not None and rgb_arr.shape[:2] != (H, W):
        raise InputError(f"depth '{depth}' is {W}x{H} but rgb '{rgb}' is {rgb_arr.shape[1]}x{rgb_arr.shape[0]}")
    if m is not None and m.shape != (H, W):
        ref = f"rgb '{rgb}'" if rgb is not None else f"depth '{depth}'"
        raise InputError(f"mask '{mask}' is {m.shape[1]}x{m.shape[0]} but {ref} is {W}x{H}")
    image = f"rgb '{rgb}' and depth '{depth}'" if rgb is not None else f"depth '{depth}'"
    check_camera(K, W, H, where, declared, image=image, min_fov_deg=min_fov_deg)
    if m is not None and (m < 0).any():
        raise InputError(f"mask '{mask}' holds negative instance ids; ids are 0 (background) or positive")
    check_depth(d, str(depth), depth_scale, raw_png=Path(depth).suffix.lower() != ".npy", mask=m)
    return RGBDFrame(rgb=rgb_arr, depth=d, mask=None if m is None else m.astype(np.int32), K=K)


def read_rgbd(rgb: str | Path, depth: str | Path, mask: str | Path, intrinsics, depth_scale: float = 1000.0,
              gt: str | Path | None = None, min_fov_deg: float = FOV_RANGE_DEG[0]) -> Scene:
    """Read and validate one frame of objects (:func:`read_frame` with rgb and a non-empty instance
    mask required) and, when ``gt`` is an existing ``gt.json`` written by :func:`save_scene`, its
    ground truth. Returns a :class:`~latent4d.objects.types.Scene`."""
    frame = read_frame(depth, intrinsics, rgb, mask, depth_scale, min_fov_deg)
    if not (frame.mask > 0).any():
        raise InputError(f"mask '{mask}' is empty (no pixel with an instance id > 0)")
    objects = []
    if gt is not None and Path(gt).is_file():
        try:
            objects = [SceneObject.from_json(o) for o in json.loads(Path(gt).read_bytes())["objects"]]
        except (ValueError, KeyError, TypeError, IndexError, RecursionError) as e:
            raise InputError(f"ground truth '{gt}' is not a gt.json written by save_scene "
                             f"({type(e).__name__}: {str(e)[:200]})") from None
    return Scene(rgb=frame.rgb, depth=frame.depth, mask=frame.mask, K=frame.K, objects=objects)


def save_scene(scene: Scene, folder: str | Path, depth_scale: float = 1000.0) -> dict[str, Path]:
    """Write rgb.png, depth.png (16-bit mm), mask.png, intrinsics.json and gt.json into ``folder``."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f for k, f in (("rgb", "rgb.png"), ("depth", "depth.png"), ("mask", "mask.png"),
                                        ("intrinsics", "intrinsics.json"), ("gt", "gt.json"))}
    with atomic_path(paths["rgb"]) as tmp:
        Image.fromarray(np.ascontiguousarray(scene.rgb)).save(tmp, format="PNG")
    write_depth_png(paths["depth"], scene.depth, depth_scale)
    mask = scene.mask.astype(np.uint8 if scene.mask.max(initial=0) < 256 else np.uint16)
    with atomic_path(paths["mask"]) as tmp:
        Image.fromarray(mask).save(tmp, format="PNG")
    H, W = scene.depth.shape
    write_intrinsics(paths["intrinsics"], scene.K, W, H)
    write_json_atomic(paths["gt"], {"depth_scale": depth_scale, "objects": [o.to_json() for o in scene.objects]})
    return paths


def load_scene(folder: str | Path, depth_scale: float = 1000.0) -> Scene:
    """Read a folder written by :func:`save_scene` (ground truth included when gt.json exists)."""
    folder = Path(folder)
    return read_rgbd(folder / "rgb.png", folder / "depth.png", folder / "mask.png", folder / "intrinsics.json",
                     depth_scale, gt=folder / "gt.json")


# --------------------------------------------------------------------------------------------
# pictures and reconstruction outputs


def preview_image(meshes: list, width: int = 960, height: int = 320, columns: int | None = None,
                  background=(255, 255, 255)) -> np.ndarray:
    """Side-by-side ray-cast preview (height, width, 3) uint8 of canonical meshes (one per column,
    in [-1, 1]^3)."""
    from latent4d.geometry.rgbd import look_at, render_rgbd

    n = max(len(meshes), 1)
    cols = columns or n
    rows = int(np.ceil(n / cols))
    placed = []
    for i, m in enumerate(meshes):
        c = m.copy()
        c.apply_translation([(i % cols - (cols - 1) / 2) * 2.3, -(i // cols - (rows - 1) / 2) * 2.3, 0.0])
        placed.append(c)
    dist = 12.0
    f = min(width * dist / (cols * 2.3 * 1.1), height * dist / (rows * 2.3 * 1.25))
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    T = look_at([0.0, 0.35 * dist, dist], [0, 0, 0])
    frame = render_rgbd(placed, K, T, width, height, ids=list(range(1, len(placed) + 1)), background=background,
                        shading=0.5)
    return frame.rgb


def overlay_image(frame: RGBDFrame, results: list[ObjectReconstruction], alpha: float = 0.65,
                  boxes: bool = True) -> np.ndarray:
    """The input RGB (H, W, 3) uint8 with the reconstructed meshes rendered in (shaded, alpha-blended
    where they are in front of the observed depth) and their oriented boxes drawn."""
    from PIL import Image, ImageDraw

    from latent4d.geometry.rgbd import render_rgbd
    from latent4d.objects.metrics import box_corners

    H, W = frame.depth.shape
    img = frame.rgb.astype(np.float32).copy()
    ok = [r for r in results if r.status == "ok" and r.mesh_camera is not None and len(r.mesh_camera.faces)]
    if ok:
        rend = render_rgbd([r.mesh_camera for r in ok], frame.K, np.eye(4), W, H,
                           ids=[r.instance_id for r in ok], shading=0.6)
        hit = rend.mask > 0
        front = hit & ((frame.depth <= 0) | (rend.depth <= frame.depth + 0.01))
        img[front] = alpha * rend.rgb[front].astype(np.float32) + (1 - alpha) * img[front]
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if boxes:
        draw = ImageDraw.Draw(out)
        edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
        palette = [(255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0), (200, 64, 255), (0, 220, 220)]
        for k, r in enumerate(ok):
            c = box_corners(r.R, r.t, r.size)
            z = np.maximum(c[:, 2], 1e-3)
            u = frame.K[0, 0] * c[:, 0] / z + frame.K[0, 2]
            v = frame.K[1, 1] * c[:, 1] / z + frame.K[1, 2]
            for a, b in edges:
                draw.line([(u[a], v[a]), (u[b], v[b])], fill=palette[k % len(palette)], width=2)
    return np.asarray(out)


def save_png(img: np.ndarray, path: Path) -> Path:
    """An (H, W, 3) uint8 image as a PNG, written atomically."""
    from latent4d.render import save_png as _save

    return _save(img, path)


def export_mesh(mesh, path: Path) -> Path:
    """A trimesh to ``path`` (format from the suffix), written atomically."""
    with atomic_path(path) as tmp:
        mesh.export(tmp)
    return path


def write_scene_reconstruction(frame: RGBDFrame, results: list[ObjectReconstruction], out: Path) -> dict:
    """Per object ``object_<id>.ply`` (camera frame, coloured) and ``object_<id>.json``; ``overlay.png``
    and ``summary.json``. Objects that were skipped or diverged are listed with their reason.

    The folder is written whole (:func:`latent4d.fileio.atomic_dir`): into a temporary sibling that
    replaces ``out`` only when everything is written, so a failure leaves an earlier output as it was;
    a non-empty ``out`` without ``summary.json`` (not an earlier output) is refused. The paths in the
    summary are the final ones under ``out``."""
    out = Path(out)
    summary = {"objects": [], "written": {}}
    with atomic_dir(out, marker="summary.json") as tmp:
        for r in results:
            summary["objects"].append(r.to_json())
            if r.status != "ok":
                continue
            export_mesh(r.mesh_camera, tmp / f"object_{r.instance_id}.ply")
            write_json_atomic(tmp / f"object_{r.instance_id}.json", r.to_json())
            summary["written"][str(r.instance_id)] = {"mesh": str(out / f"object_{r.instance_id}.ply"),
                                                      "json": str(out / f"object_{r.instance_id}.json")}
        save_png(overlay_image(frame, results), tmp / "overlay.png")
        summary["overlay"] = str(out / "overlay.png")
        write_json_atomic(tmp / "summary.json", summary)
    return summary
