"""Single-shot RGB-D object detector (the ShAPO / CenterSnap idea, written small).

One network looks at an RGB-D frame and proposes every object: a per-pixel heatmap of object
centres, a per-pixel category (background + the database categories), a per-pixel 2D offset to the
centre of the object the pixel belongs to (instance masks by voting, as in Panoptic-DeepLab), and,
per pixel, the object's rotation (6D), centre depth, log metric size and its shape and appearance
codes of the trained latent database. Detections are the heatmap's local maxima; each object's
values are the means over the pixels that vote for its peak.

Facts carried over from ShAPO (``zubair-irshad/shapo``, ``simnet/lib/net``): an RGB-D stem; a heatmap
head and per-pixel heads for 64-d shape and 64-d appearance codes and the absolute pose (ShAPO: 3x3
rotation + translation + scale, 13 channels) at 1/8 of the input; masked L1 losses on the codes and
pose weighted by the heatmap, MSE on the heatmap; peaks with ``peak_local_max`` (threshold 0.15-0.3,
10 px apart); semantic segmentation with 6 + 1 classes. Differences (ours): rotation as 6D (first two
columns), translation from the voted 2D centre and a per-pixel centre depth relative to the observed
depth, a log half-diagonal size, BCE on a Gaussian heatmap and an instance offset head instead of
ShAPO's separate masks; output at 1/``out_stride`` of a fixed working resolution (CPU default
160 x 120, stride 4).

Conventions (as :mod:`latent4d.objects.types`): ``x_cam = scale * R @ x_canonical + t``, R (3, 3),
t (3,) metres in the OpenCV camera frame, ``scale`` the metric half-diagonal (m).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from latent4d.errors import InputError

IN_CHANNELS = 7
"""Input channels: RGB (3, in [-0.5, 0.5]), hole-filled depth minus :data:`DEPTH_OFFSET` (1, metres),
depth validity (1), normalised ray directions (u - cx) / fx, (v - cy) / fy (2)."""
LOG_SCALE_OFFSET = -2.3
"""The log half-diagonal channel predicts ``log(scale) - LOG_SCALE_OFFSET`` (scales are 5-25 cm)."""
DEPTH_OFFSET = 0.8
"""Metres subtracted from the depth channel of the input (scenes are 0.5-1.2 m away)."""
POSE_CHANNELS = 8
"""Per-pixel pose channels: 6D rotation (6), centre depth minus observed depth (1, decimetres),
log half-diagonal minus :data:`LOG_SCALE_OFFSET` (1)."""


def _block(cin: int, cout: int, stride: int = 1, groups: int = 8) -> nn.Sequential:
    """Two convolutions with GroupNorm + ReLU; the first strided (3 x 3, or a 4 x 4 patch embedding
    at stride 4, which sees every input pixel where a strided 3 x 3 would skip some)."""
    g = max(1, min(groups, cout // 4))
    first = nn.Conv2d(cin, cout, 4, 4, 0, bias=False) if stride == 4 else nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    return nn.Sequential(first, nn.GroupNorm(g, cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.GroupNorm(g, cout), nn.ReLU(inplace=True))


def _head(cin: int, cout: int, hidden: int, kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, hidden, kernel, 1, kernel // 2), nn.ReLU(inplace=True), nn.Conv2d(hidden, cout, 1))


class ObjectDetector(ModelMixin, ConfigMixin):
    """U-Net encoder / decoder over an RGB-D frame with per-pixel heads.

    Args:
        categories: category names of classes 1..C (0 is background); the latent database's.
        shape_dim / appearance_dim: code sizes of the latent database.
        widths: encoder channels per level (level k at stride ``stem_stride * 2**k``).
        stem_stride: stride of the first level (1, 2 or 4).
        out_stride: output stride (``stem_stride`` times a power of two, at most the deepest level's).
        width / height: working resolution every frame is resampled to (pixels).
        head_hidden: channels of each head's hidden layer (twice that for the code heads);
            head_kernel: its kernel size (1: per-cell MLP, cheap on CPUs; 3: ShAPO-like).

    ``forward(x (B, 7, H, W))`` returns ``heat`` (B, 1, h, w) logits, ``sem`` (B, C + 1, h, w) logits,
    ``offset`` (B, 2, h, w) (output pixels / 10), ``pose`` (B, 8, h, w), ``shape`` (B, shape_dim, h, w),
    ``appearance`` (B, appearance_dim, h, w) with h = H / out_stride, w = W / out_stride.
    """

    @register_to_config
    def __init__(self, categories: list[str] | tuple[str, ...] = ("bottle", "bowl", "camera", "can", "laptop", "mug"),
                 shape_dim: int = 64, appearance_dim: int = 64, widths: list[int] | tuple[int, ...] = (16, 32, 64, 96),
                 stem_stride: int = 2, out_stride: int = 4, width: int = 160, height: int = 120, head_hidden: int = 48,
                 head_kernel: int = 1):
        super().__init__()
        widths = [int(w) for w in widths]
        levels = int(round(np.log2(max(out_stride, 1) / max(stem_stride, 1))))
        if stem_stride not in (1, 2, 4) or stem_stride * 2 ** levels != out_stride or not 0 <= levels < len(widths):
            raise InputError(f"ObjectDetector: out_stride {out_stride} must be stem_stride {stem_stride} (1, 2 or 4) "
                             f"times a power of two below 2**{len(widths)} (widths {widths})")
        if width % out_stride or height % out_stride:
            raise InputError(f"ObjectDetector: working size {width} x {height} must be divisible by out_stride "
                             f"{out_stride}")
        self.down = nn.ModuleList([_block(IN_CHANNELS, widths[0], stem_stride)]
                                  + [_block(widths[i - 1], widths[i], 2) for i in range(1, len(widths))])
        self.up = nn.ModuleList([_block(widths[i + 1] + widths[i], widths[i])
                                 for i in range(len(widths) - 2, levels - 1, -1)])
        c, hk = widths[levels], head_kernel
        self.heads = nn.ModuleDict({
            "heat": _head(c, 1, head_hidden, hk), "sem": _head(c, len(categories) + 1, head_hidden, hk),
            "offset": _head(c, 2, head_hidden, hk), "pose": _head(c, POSE_CHANNELS, head_hidden, hk),
            "shape": _head(c, shape_dim, 2 * head_hidden, hk), "appearance": _head(c, appearance_dim, 2 * head_hidden, hk)})
        nn.init.constant_(self.heads["heat"][-1].bias, -2.2)  # start near the background rate (CenterNet)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = []
        h = x
        for blk in self.down:
            h = blk(h)
            feats.append(h)
        for i, blk in enumerate(self.up):
            skip = feats[len(feats) - 2 - i]
            h = blk(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        return {k: head(h) for k, head in self.heads.items()}


# ----------------------------------------------------------------------------------------------
# input: any RGB-D frame -> the working resolution


def resize_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics of an image resampled by (sx, sy) (pixel centres kept: c' = (c + 0.5) s - 0.5)."""
    K2 = np.array(K, np.float64, copy=True)
    K2[0, 0], K2[0, 2] = K[0, 0] * sx, (K[0, 2] + 0.5) * sx - 0.5
    K2[1, 1], K2[1, 2] = K[1, 1] * sy, (K[1, 2] + 0.5) * sy - 0.5
    return K2


def fill_depth(depth: torch.Tensor, rounds: int = 4) -> torch.Tensor:
    """Holes (0) of a (H, W) depth map filled by normalised 5x5 averaging, repeated; what remains gets
    the median valid depth (1 m when none is valid)."""
    d = depth[None, None]
    v = (d > 0).float()
    for _ in range(rounds):
        num = F.avg_pool2d(d * v, 5, 1, 2)
        den = F.avg_pool2d(v, 5, 1, 2)
        d = torch.where(v > 0, d, num / den.clamp_min(1e-6))
        v = torch.maximum(v, (den > 0).float())
    valid = depth[depth > 0]
    rest = valid.median() if valid.numel() else torch.tensor(1.0)
    return torch.where(v > 0, d, rest)[0, 0]


def detector_input(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, width: int, height: int
                   ) -> tuple[torch.Tensor, np.ndarray]:
    """Network input of one frame: rgb (H, W, 3) uint8, depth (H, W) metres (0 = hole), K (3, 3) ->
    ``(x (7, height, width) float32, K_work (3, 3))``.

    A frame of another size is point-sampled at the working pixels' centres (the nearest pixel): the
    training scenes are ray-cast at the working size, i.e. point-sampled too, and area averaging
    (smoother colours, depth mixed across silhouettes, fewer holes) was measured to lose most
    detections of 640 x 480 frames. The depth's holes are then filled."""
    H, W = depth.shape
    rows = np.minimum(((np.arange(height) + 0.5) * H / height).astype(int), H - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * W / width).astype(int), W - 1)
    img = torch.from_numpy(np.array(rgb[rows[:, None], cols[None, :]], dtype=np.float32)).permute(2, 0, 1) / 255.0
    d = torch.from_numpy(np.array(depth[rows[:, None], cols[None, :]], dtype=np.float32))
    Kw = resize_intrinsics(K, width / W, height / H)
    filled = fill_depth(d)
    u = (torch.arange(width, dtype=torch.float32) - float(Kw[0, 2])) / float(Kw[0, 0])
    w = (torch.arange(height, dtype=torch.float32) - float(Kw[1, 2])) / float(Kw[1, 1])
    rays = torch.stack([u[None].expand(height, width), w[:, None].expand(height, width)])
    x = torch.cat([img - 0.5, (filled - DEPTH_OFFSET)[None], (d > 0).float()[None], rays], 0)
    return x.contiguous(), Kw


def output_intrinsics(K_work: np.ndarray, stride: int) -> np.ndarray:
    """Intrinsics of the output grid (one cell per ``stride`` x ``stride`` working pixels)."""
    return resize_intrinsics(K_work, 1.0 / stride, 1.0 / stride)


def output_depth(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Hole-filled depth (metres) at the output grid from network inputs x (B, 7, H, W) -> (B, 1, h, w)."""
    return F.avg_pool2d(x[:, 3:4], stride) + DEPTH_OFFSET


# ----------------------------------------------------------------------------------------------
# training targets (numpy; one frame)


OBJ_FIELDS = 11
"""Per-object target row before the codes: centre u, v (output pixels), centre depth (m), log
half-diagonal, 6D rotation (6), symmetric flag; then shape code, appearance code."""


def centre_heatmap(shape: tuple[int, int], centres: list[tuple[float, float, float]]) -> np.ndarray:
    """(h, w) max of Gaussians ``exp(-d^2 / 2 sigma^2)`` at (u, v, sigma) in output pixels."""
    h, w = shape
    vv, uu = np.mgrid[0:h, 0:w].astype(np.float32)
    heat = np.zeros((h, w), np.float32)
    for u, v, s in centres:
        heat = np.maximum(heat, np.exp(-((uu - u) ** 2 + (vv - v) ** 2) / (2 * s * s)))
    return heat


def detector_targets(mask_out: np.ndarray, K_out: np.ndarray, objects: list[dict], max_objects: int,
                     code_dims: tuple[int, int]) -> dict[str, np.ndarray]:
    """Targets of one frame on the output grid.

    mask_out (h, w) instance ids at the output grid (0 = background); objects: dicts with
    ``instance_id``, ``label`` (1..C), ``R``, ``t``, ``scale``, ``symmetric``, ``shape_code``,
    ``appearance_code`` (None for an object without a code: its pixels get no code target). Returns ``heat``
    (1, h, w), ``sem`` (h, w) int64 labels, ``inst`` (h, w) int64 (k + 1 = row k of ``objs``, 0 =
    background), ``objs`` (max_objects, OBJ_FIELDS + Ds + Da), ``coded`` (h, w) float32 (1 on the pixels
    of objects with codes).
    """
    Ds, Da = code_dims
    objs = np.zeros((max_objects, OBJ_FIELDS + Ds + Da), np.float32)
    sem = np.zeros(mask_out.shape, np.int64)
    inst = np.zeros(mask_out.shape, np.int64)
    coded = np.zeros(mask_out.shape, np.float32)
    centres = []
    for k, o in enumerate(objects[:max_objects]):
        sel = mask_out == o["instance_id"]
        t = np.asarray(o["t"], np.float64)
        u = K_out[0, 0] * t[0] / t[2] + K_out[0, 2]
        v = K_out[1, 1] * t[1] / t[2] + K_out[1, 2]
        R = np.asarray(o["R"], np.float64)
        objs[k, :OBJ_FIELDS] = [u, v, t[2], np.log(o["scale"]), *R[:, 0], *R[:, 1], float(o["symmetric"])]
        has_code = o.get("shape_code") is not None
        if has_code:
            objs[k, OBJ_FIELDS:OBJ_FIELDS + Ds] = o["shape_code"]
            objs[k, OBJ_FIELDS + Ds:] = o["appearance_code"]
        if sel.any():
            sem[sel], inst[sel], coded[sel] = o["label"], k + 1, float(has_code)
            centres.append((u, v, max(1.0, 0.2 * float(np.sqrt(sel.sum())))))
    return {"heat": centre_heatmap(mask_out.shape, centres)[None], "sem": sem, "inst": inst, "objs": objs,
            "coded": coded}


# ----------------------------------------------------------------------------------------------
# decoding


@dataclass
class Detection:
    """One detected object: category (a database category name), score in [0, 1], R (3, 3), t (3,)
    metres, scale (metric half-diagonal, m), shape_code / appearance_code (D,), centre (u, v) at the
    output grid, ``mask`` (H, W) bool at the frame's resolution, ``pixels``: output cells that voted,
    ``category_probs``: the mean category probabilities of those cells, renormalised over the detector's
    categories (background left out)."""

    category: str
    score: float
    R: np.ndarray
    t: np.ndarray
    scale: float
    shape_code: np.ndarray
    appearance_code: np.ndarray
    centre: tuple[float, float] = (0.0, 0.0)
    mask: np.ndarray | None = field(default=None, repr=False)
    pixels: int = 0
    category_probs: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"category": self.category, "score": round(float(self.score), 4), "R": np.asarray(self.R).tolist(),
                "t": np.asarray(self.t).tolist(), "scale": float(self.scale), "pixels": int(self.pixels),
                "centre_px": [float(c) for c in self.centre],
                "category_probs": {c: round(float(q), 4) for c, q in self.category_probs.items()}}


def rotation_up_first(c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """Rotation from 6D columns with the up axis (column 2) kept and column 1 orthogonalised to it
    (the up axis is the reliable one: objects stand on a table; symmetric ones have no yaw)."""
    y = c2 / max(np.linalg.norm(c2), 1e-9)
    x = c1 - y * (c1 @ y)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross(y, [0.0, 0.0, 1.0]) if abs(y[2]) < 0.9 else np.cross(y, [1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    return np.stack([x, y, np.cross(x, y)], 1)


def find_peaks(heat: torch.Tensor, threshold: float, kernel: int = 5, max_peaks: int = 20) -> list[tuple[int, int, float]]:
    """Local maxima (row, col, value) of a (h, w) heatmap in [0, 1] above ``threshold`` (max-pool NMS)."""
    hm = heat[None, None]
    keep = (F.max_pool2d(hm, kernel, 1, kernel // 2) == hm) & (hm > threshold)
    rows, cols = torch.nonzero(keep[0, 0], as_tuple=True)
    vals = heat[rows, cols]
    order = torch.argsort(vals, descending=True)[:max_peaks]
    return [(int(rows[i]), int(cols[i]), float(vals[i])) for i in order]


def assign_pixels(peaks: list[tuple[int, int, float]], fg: torch.Tensor, offset: torch.Tensor,
                  radius: float) -> torch.Tensor:
    """(h, w) labels: k + 1 for foreground cells whose voted centre (cell + offset) lies nearest peak k
    within ``radius`` output pixels, else 0. offset (2, h, w) in output pixels (u, v)."""
    h, w = fg.shape
    labels = torch.zeros((h, w), dtype=torch.long)
    if not peaks:
        return labels
    vv, uu = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    cu, cv = uu + offset[0], vv + offset[1]
    P = torch.tensor([[c, r] for r, c, _ in peaks], dtype=torch.float32)
    d = (cu[..., None] - P[:, 0]) ** 2 + (cv[..., None] - P[:, 1]) ** 2
    best = d.argmin(-1)
    ok = fg & (d.gather(-1, best[..., None])[..., 0] < radius * radius)
    labels[ok] = best[ok] + 1
    return labels


def _full_res_labels(labels: torch.Tensor, H: int, W: int) -> np.ndarray:
    """(h, w) output-grid labels -> (H, W) at the frame's resolution (nearest cell)."""
    h, w = labels.shape
    rows = np.minimum(((np.arange(H) + 0.5) * h / H).astype(int), h - 1)
    cols = np.minimum(((np.arange(W) + 0.5) * w / W).astype(int), w - 1)
    return labels.numpy()[rows[:, None], cols[None, :]]


def decode_detections(out: dict[str, torch.Tensor], x: torch.Tensor, K_work: np.ndarray, config, depth: np.ndarray,
                      threshold: float = 0.15, radius: float = 3.0, min_cells: int = 2) -> list[Detection]:
    """Detections of one frame from the network outputs (batch of one) and its input x (7, H', W').

    Peaks of the heatmap above ``threshold`` (3x3 max-pool NMS); foreground cells (category argmax
    not background) join the peak nearest their voted centre within ``radius`` output cells; peaks
    with fewer than ``min_cells`` cells are dropped. Per detection: the mean over its cells of the
    category probabilities (argmax = its category; score = peak value x that probability), the voted
    centre and centre depth (-> t through the output grid's intrinsics), the 6D rotation (up axis
    first), the log size and the codes. ``mask`` (H, W) at the resolution of ``depth`` (the frame's):
    the cells' pixels with valid depth within 2.5 half-diagonals of the centre depth.
    """
    stride = int(config.out_stride)
    Ko = output_intrinsics(K_work, stride)
    heat = torch.sigmoid(out["heat"][0, 0])
    prob = torch.softmax(out["sem"][0], 0)
    off = out["offset"][0] * 10.0
    peaks = find_peaks(heat, threshold, kernel=3)
    labels = assign_pixels(peaks, prob.argmax(0) > 0, off, radius)
    d_out = output_depth(x[None], stride)[0, 0]
    pose = out["pose"][0]
    full = _full_res_labels(labels, *depth.shape)
    h, w = labels.shape
    vv, uu = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    dets = []
    for k, (_, _, val) in enumerate(peaks):
        sel = labels == k + 1
        if int(sel.sum()) < min_cells:
            continue
        p = prob[1:, sel].mean(1)
        ci = int(p.argmax())
        u, v = float((uu + off[0])[sel].mean()), float((vv + off[1])[sel].mean())
        z = float((d_out + pose[6] / 10.0)[sel].mean())
        t = np.array([(u - Ko[0, 2]) / Ko[0, 0] * z, (v - Ko[1, 2]) / Ko[1, 1] * z, z])
        rot = pose[:6, sel].mean(1).numpy().astype(np.float64)
        scale = float(np.exp(float(pose[7, sel].mean()) + LOG_SCALE_OFFSET))
        m = (full == k + 1) & (depth > 0) & (np.abs(depth - z) < 2.5 * scale)
        dets.append(Detection(str(config.categories[ci]), val * float(p[ci]), rotation_up_first(rot[:3], rot[3:]), t,
                              scale, out["shape"][0][:, sel].mean(1).numpy(), out["appearance"][0][:, sel].mean(1).numpy(),
                              (u, v), m, int(sel.sum()),
                              {str(c): float(q) for c, q in zip(config.categories, p / p.sum().clamp_min(1e-9))}))
    return dets


__all__ = ["DEPTH_OFFSET", "LOG_SCALE_OFFSET", "Detection", "IN_CHANNELS", "OBJ_FIELDS", "ObjectDetector", "assign_pixels", "centre_heatmap",
           "decode_detections", "detector_input", "detector_targets", "fill_depth", "find_peaks", "output_depth", "output_intrinsics",
           "resize_intrinsics", "rotation_up_first"]
