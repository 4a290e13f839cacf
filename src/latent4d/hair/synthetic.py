"""Procedural hairstyles: the built-in dataset (deterministic, seeded, any number of strands).

A style is a :class:`StyleParams` (drawn by :func:`sample_style` from a seed). Its strands are a
deterministic *field* over the scalp: :func:`generate_strands` grows a strand from any set of
roots, so guide strands on the UV grid and 10k-100k dense ground-truth strands come from the same
style. How a strand is grown (all lengths in metres):

1. **Combing direction** in the scalp's tangent plane: sideways away from a parting line
   (left / centre / right) in front of the crown and radially away from the crown behind it, or
   swept back (no parting); bangs comb forward over the forehead. Neighbouring strands on the two
   sides of a parting go opposite ways (a discontinuity, as in real hair).
2. **Growth**: the first segment leaves the scalp at ``lift`` radians from the tangent plane
   (volume); the strand is integrated in 99 steps, bending towards gravity with curvature
   ``droop`` (1/m, damped near the root) and sliding over the head when it touches it.
3. **Curls**: straight, wavy (planar sine) or curly (helix) offsets in a rotation-minimising frame,
   ``turns`` cycles over the strand, radius ``curl_radius``, ramping in over the first 3 cm.
4. **Clumping**: each strand is pulled towards the strand of its clump centre, more towards the tip.
5. **Per-strand noise**: length, direction and curl-phase jitter.
6. **Penetration**: points inside the head are pushed out iteratively with length restoration
   (GroomGen), then strands are resampled to 100 points by arc length and pushed out once more.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from latent4d.hair.scalp import Scalp
from latent4d.hair.strands import STRAND_POINTS, Hairstyle, curvature, resample_polylines

PARTINGS = ("none", "left", "centre", "right")
CURLS = ("straight", "wavy", "curly")
ATTRIBUTES = ("length", "curliness", "volume")


@dataclass
class StyleParams:
    """Parameters of one procedural hairstyle (metres / radians / 1/m)."""

    seed: int = 0
    length: float = 0.25          # base strand length
    length_gradient: float = 0.0  # relative length change from front (-) to back (+)
    curl: str = "straight"        # straight | wavy | curly
    curl_radius: float = 0.0      # curl / wave amplitude
    turns: float = 0.0            # curl cycles over a strand of base length
    parting: str = "centre"       # none | left | centre | right
    parting_u: float = 0.5        # parting line position in scalp UV
    crown_v: float = 0.58         # crown (whorl) position in scalp UV (v)
    bangs: bool = False
    bang_length: float = 0.08
    lift: float = 0.4             # angle of the first segment above the scalp (volume)
    droop: float = 12.0           # gravity bending curvature
    sweep: float = 0.0            # rotation of the combing direction about the normal
    clumps: int = 120
    clump_strength: float = 0.3
    noise: float = 0.05           # relative per-strand jitter

    def to_dict(self) -> dict:
        return asdict(self)


def sample_style(seed: int) -> StyleParams:
    """A random, diverse style from ``seed`` (deterministic)."""
    rng = np.random.default_rng([seed, 0x4A17])
    length = float(math.exp(rng.uniform(math.log(0.05), math.log(0.55))))
    curl = CURLS[int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
    if curl == "straight":
        radius, turns = 0.0, 0.0
    elif curl == "wavy":
        radius, turns = rng.uniform(0.004, 0.014), rng.uniform(1.0, 4.0)
    else:
        radius, turns = rng.uniform(0.004, 0.010), rng.uniform(2.0, 7.0)
    parting = PARTINGS[int(rng.integers(4))]
    pu = {"none": 0.5, "left": 0.38, "centre": 0.5, "right": 0.62}[parting] + rng.uniform(-0.03, 0.03)
    bangs = bool(rng.random() < 0.3)
    return StyleParams(
        seed=int(seed), length=length, length_gradient=float(rng.uniform(-0.5, 0.5)), curl=curl,
        curl_radius=float(radius), turns=float(turns), parting=parting, parting_u=float(pu),
        crown_v=float(rng.uniform(0.5, 0.66)), bangs=bangs,
        bang_length=float(min(length, rng.uniform(0.04, 0.12))), lift=float(rng.uniform(0.0, 0.35)),
        droop=float(rng.uniform(25.0, 70.0)), sweep=float(rng.uniform(-0.3, 0.3)),
        clumps=int(rng.integers(60, 250)), clump_strength=float(rng.uniform(0.0, 0.6)),
        noise=float(rng.uniform(0.0, 0.12)))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _tangent(v: np.ndarray, n: np.ndarray) -> np.ndarray:
    return v - (v * n).sum(-1, keepdims=True) * n


def comb_directions(p: StyleParams, roots: np.ndarray, uv: np.ndarray, frames: np.ndarray, scalp: Scalp
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit combing directions (S, 3) in the tangent planes, bang mask (S,), and the distance of each
    root to the parting line (S,) in metres (inf where there is no parting)."""
    t, b, n = frames[:, :, 0], frames[:, :, 1], frames[:, :, 2]
    u, v = uv[:, 0].astype(np.float64), uv[:, 1].astype(np.float64)
    crown, _ = scalp.from_uv(np.array([[p.parting_u, p.crown_v]]))
    radial = _unit(_tangent(roots - crown[0], n))
    back = _unit(_tangent(np.broadcast_to(np.array([0.0, -0.35, -1.0]), roots.shape), n))
    part_dist = np.full(len(roots), np.inf)
    if p.parting == "none":
        comb = back
    else:
        side = np.where(u >= p.parting_u, 1.0, -1.0)[:, None]
        sideways = _unit(side * t - 0.35 * b)
        w = _smoothstep((v - p.crown_v) / 0.12 + 0.5)[:, None]  # 0 in front of the crown, 1 behind
        comb = _unit((1 - w) * sideways + w * radial)
        # metres from the parting line (u = parting_u) in front of the crown; scale: texel width
        u0, u1, _, _ = scalp.uv_bounds
        metres_per_u = (u1 - u0) * math.pi * 0.1
        part_dist = np.where(v < p.crown_v, np.abs(u - p.parting_u) * metres_per_u, np.inf)
    bang = np.zeros(len(roots), bool)
    if p.bangs:
        bang = v < 0.16
        fwd = _unit(_tangent(np.broadcast_to(np.array([0.0, -0.6, 1.0]), roots.shape), n))
        comb = np.where(bang[:, None], fwd, comb)
    if p.sweep:
        c, s = math.cos(p.sweep), math.sin(p.sweep)
        comb = _unit(c * comb + s * np.cross(n, comb))
    return comb, bang, part_dist


def _rmf(x: np.ndarray, tangents: np.ndarray, e1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation-minimising frames along polylines ``x (S, P, 3)`` with unit ``tangents (S, P, 3)``
    (double reflection, Wang et al. 2008); ``e1 (S, 3)`` is the first normal."""
    S, P, _ = tangents.shape
    E1 = np.empty_like(tangents)
    r = _unit(e1 - (e1 * tangents[:, 0]).sum(-1, keepdims=True) * tangents[:, 0])
    E1[:, 0] = r
    for i in range(P - 1):
        t0, t1 = tangents[:, i], tangents[:, i + 1]
        v1 = x[:, i + 1] - x[:, i]  # reflect r and t0 about the bisector plane of the segment
        c1 = np.maximum((v1 * v1).sum(-1, keepdims=True), 1e-18)
        rL = r - (2 / c1) * (v1 * r).sum(-1, keepdims=True) * v1
        tL = t0 - (2 / c1) * (v1 * t0).sum(-1, keepdims=True) * v1
        v2 = t1 - tL
        c2 = np.maximum((v2 * v2).sum(-1, keepdims=True), 1e-18)
        r = _unit(rL - (2 / c2) * (v2 * rL).sum(-1, keepdims=True) * v2)
        E1[:, i + 1] = r
    E2 = np.cross(tangents, E1)
    return E1, E2


def _grow(roots: np.ndarray, normals: np.ndarray, comb: np.ndarray, lengths: np.ndarray, lift: np.ndarray,
          droop: np.ndarray, scalp: Scalp, n_pts: int) -> np.ndarray:
    """Centrelines (S, n_pts, 3): gravity-bent growth that slides over the head (per-strand parameters)."""
    head = scalp.head
    S = len(roots)
    d = _unit(np.cos(lift)[:, None] * comb + np.sin(lift)[:, None] * normals)
    h = (lengths / (n_pts - 1))[:, None]
    x = np.empty((S, n_pts, 3))
    x[:, 0] = roots
    for i in range(1, n_pts):
        k = droop * _smoothstep(i * h[:, 0] / 0.015)  # stiffer near the root: keeps volume
        d[:, 1] -= k * h[:, 0]
        d = _unit(d)
        q = x[:, i - 1] + h * d
        inside = np.flatnonzero(head.level(q) < 1.0)
        if len(inside):  # slide over the head: drop the inward part of the direction, step again
            nrm = head.normal(q[inside]).astype(np.float64)
            di = d[inside]
            di = _unit(di - np.minimum((di * nrm).sum(-1, keepdims=True), 0.0) * nrm)
            d[inside] = di
            q[inside] = head.push_out(x[inside, i - 1] + h[inside] * di, 0.0005)
        x[:, i] = q
    return x


def _curl_offsets(x: np.ndarray, normals: np.ndarray, code: np.ndarray, freq: np.ndarray, phase: np.ndarray,
                  radius: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Curl offsets (S, P, 3): code 0 straight, 1 wavy (planar), 2 curly (helix)."""
    off = np.zeros_like(x)
    sel = np.flatnonzero((code > 0) & (radius > 0))
    if not len(sel):
        return off
    xs = x[sel]
    tang = np.empty_like(xs)
    tang[:, 1:-1] = xs[:, 2:] - xs[:, :-2]
    tang[:, 0] = xs[:, 1] - xs[:, 0]
    tang[:, -1] = xs[:, -1] - xs[:, -2]
    tang = _unit(tang)
    e1, e2 = _rmf(xs, tang, np.cross(normals[sel], tang[:, 0]))
    P = x.shape[1]
    s = np.linspace(0.0, 1.0, P)[None, :] * lengths[sel, None]  # arc length of the centreline
    theta = 2 * math.pi * freq[sel, None] * s + phase[sel, None]
    amp = radius[sel, None] * _smoothstep(s / 0.03)
    helix = (code[sel] == 2)[:, None]
    c1 = np.where(helix, amp * np.cos(theta), amp * np.sin(theta))
    c2 = np.where(helix, amp * np.sin(theta), 0.0)
    off[sel] = c1[..., None] * e1 + c2[..., None] * e2
    return off


def _style_setup(p: StyleParams, roots: np.ndarray, uv: np.ndarray, frames: np.ndarray, scalp: Scalp,
                 rng: np.random.Generator | None, jit: float) -> dict[str, np.ndarray]:
    """Per-strand growth parameters of style ``p`` at ``roots`` (no noise when ``rng`` is None)."""
    S = len(roots)
    comb, bang, part_dist = comb_directions(p, roots, uv, frames, scalp)
    lengths = p.length * (1.0 + p.length_gradient * (uv[:, 1] - 0.5))
    lengths = np.where(bang, p.bang_length, lengths)
    lift = np.full(S, p.lift)
    radius = np.full(S, p.curl_radius)
    if rng is not None and jit:
        lengths = lengths * (1.0 + jit * rng.uniform(-1, 1, S))
        lift = lift + jit * rng.uniform(-1, 1, S)
        comb = _unit(_tangent(comb + jit * rng.normal(size=(S, 3)), frames[:, :, 2]))
        radius = radius * (1.0 + 0.5 * jit * rng.uniform(-1, 1, S))
    return {"roots": roots, "normals": frames[:, :, 2], "comb": comb, "lengths": np.clip(lengths, 0.01, None),
            "lift": lift, "droop": np.full(S, p.droop), "code": np.full(S, CURLS.index(p.curl)),
            "freq": np.full(S, p.turns / max(p.length, 1e-3)), "radius": radius, "bang": bang,
            "part_dist": part_dist, "uv": uv}


def _cat(ds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([d[k] for d in ds]) for k in ds[0]}


def generate_strands_batch(styles: list[StyleParams], roots, scalp: Scalp | None = None, uv=None,
                           num_points: int = STRAND_POINTS, strand_seed: int = 0, noise: bool = True
                           ) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Grow several styles at once (vectorised over all their strands).

    ``roots`` is one ``(S, 3)`` array shared by every style (e.g. the guide grid) or a list of
    per-style arrays; ``uv`` likewise (computed when None). Returns, per style, what
    :func:`generate_strands` returns.
    """
    scalp = scalp or Scalp()
    shared = not isinstance(roots, list | tuple)
    roots_l = [np.asarray(roots, np.float64).reshape(-1, 3)] * len(styles) if shared else \
        [np.asarray(r, np.float64).reshape(-1, 3) for r in roots]
    if uv is None:
        uv_l = [scalp.uv(roots_l[0]).astype(np.float64)] * len(styles) if shared else \
            [scalp.uv(r).astype(np.float64) for r in roots_l]
    else:
        uv_l = [np.asarray(uv, np.float64)] * len(styles) if shared else [np.asarray(u, np.float64) for u in uv]
    frames_shared = scalp.frames(roots_l[0]).astype(np.float64) if shared else None
    n_grow = max(num_points, 2)
    setups, centres, clump_links = [], [], []
    c_off = 0
    for i, p in enumerate(styles):
        r, u = roots_l[i], uv_l[i]
        S = len(r)
        fr = frames_shared if shared else scalp.frames(r).astype(np.float64)
        rng = np.random.default_rng([p.seed, strand_seed, S, 0x5EED])
        jit = p.noise if noise else 0.0
        st = _style_setup(p, r, u, fr, scalp, rng, jit)
        # clumps: centres on the scalp (a property of the style, independent of the query roots)
        cl_rng = np.random.default_rng([p.seed, 0xC1])
        n_cl = max(1, int(p.clumps))
        cr, _ = scalp.sample_roots(n_cl, seed=int(cl_rng.integers(1 << 30)))
        cr = cr.astype(np.float64)
        cl_phase = cl_rng.uniform(0, 2 * math.pi, n_cl)
        d2 = (r * r).sum(1)[:, None] - 2 * r @ cr.T + (cr * cr).sum(1)[None]
        cid = d2.argmin(1)
        st["phase"] = cl_phase[cid] + (0.6 * jit * rng.normal(size=S) if jit else 0.0)
        setups.append(st)
        if p.clump_strength > 0:
            used, inv = np.unique(cid, return_inverse=True)
            cu = scalp.uv(cr[used]).astype(np.float64)
            cst = _style_setup(p, cr[used], cu, scalp.frames(cr[used]).astype(np.float64), scalp, None, 0.0)
            cst["phase"] = cl_phase[used]
            centres.append(cst)
            same = st["bang"] == cst["bang"][inv]
            if p.parting != "none":
                same &= (u[:, 0] >= p.parting_u) == (cu[inv, 0] >= p.parting_u)
            clump_links.append((c_off + inv, p.clump_strength * same))
            c_off += len(used)
        else:
            clump_links.append((np.zeros(S, np.int64), np.zeros(S)))
    allp = _cat(setups)
    sizes = [len(s["roots"]) for s in setups]
    groups = [allp] + ([_cat(centres)] if centres else [])
    grown = []
    for g in groups:
        x = _grow(g["roots"], g["normals"], g["comb"], g["lengths"], g["lift"], g["droop"], scalp, n_grow)
        x = x + _curl_offsets(x, g["normals"], g["code"], g["freq"], g["phase"], g["radius"], g["lengths"])
        grown.append(x)
    x = grown[0]
    if centres:
        cx = grown[1]
        idx = np.concatenate([link[0] for link in clump_links])
        wgt = np.concatenate([link[1] for link in clump_links])
        tt = np.linspace(0.0, 1.0, n_grow)[None, :, None]
        q = cx[idx]
        target = q + (allp["roots"] - q[:, 0])[:, None, :] * (1 - tt) ** 2
        x = x + (wgt[:, None, None] * tt ** 1.5) * (target - x)
    x = scalp.head.resolve_strands(x.astype(np.float32), iterations=1, margin=0.001)
    x = resample_polylines(x, num_points)
    x[:, 1:] = scalp.head.push_out(x[:, 1:], 0.0005)
    x[:, 0] = allp["roots"].astype(np.float32)
    out = []
    o = 0
    for st, n in zip(setups, sizes):
        out.append((x[o:o + n], {"parting_distance": st["part_dist"].astype(np.float32), "bang": st["bang"]}))
        o += n
    return out


def generate_strands(p: StyleParams, roots: np.ndarray, scalp: Scalp | None = None, uv: np.ndarray | None = None,
                     num_points: int = STRAND_POINTS, strand_seed: int = 0, noise: bool = True
                     ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Grow the strands of style ``p`` from ``roots (S, 3)`` on ``scalp``.

    Returns ``(strands (S, num_points, 3) float32 metres, aux)`` with ``aux['parting_distance']`` (S,)
    metres from the parting line (inf when none) and ``aux['bang']`` (S,) bool.
    ``strand_seed`` seeds the per-strand noise; ``noise=False`` gives the noiseless field.
    """
    return generate_strands_batch([p], np.asarray(roots, np.float64), scalp, uv, num_points, strand_seed, noise)[0]


def generate_hairstyle(style: StyleParams | int, n_strands: int = 10000, scalp: Scalp | None = None,
                       root_seed: int = 0, num_points: int = STRAND_POINTS) -> Hairstyle:
    """A complete procedural hairstyle: ``n_strands`` uniform random roots, strands of ``num_points``."""
    scalp = scalp or Scalp()
    p = style if isinstance(style, StyleParams) else sample_style(int(style))
    roots, uv = scalp.sample_roots(n_strands, seed=root_seed)
    strands, _ = generate_strands(p, roots, scalp, uv, num_points, strand_seed=root_seed)
    return Hairstyle.from_strands(strands, root_uv=uv, meta={"procedural": p.to_dict()})


def style_labels(strands: np.ndarray, scalp: Scalp | None = None) -> dict[str, float]:
    """Measured global attributes of a hairstyle's strands ``(S, P, 3)``.

    ``length``: mean arc length (m); ``curliness``: ``log(1 + mean curvature)`` with the curvature (1/m)
    averaged beyond 3 cm from the root (log: straight ~2, wavy ~3.5, curly ~5, close to linear in
    style-latent space); ``volume``: mean distance of the first half of each strand from the head (m).
    """
    scalp = scalp or Scalp()
    x = np.asarray(strands, np.float64)
    seg = np.linalg.norm(np.diff(x, axis=1), axis=-1)
    arc = np.concatenate([np.zeros((len(x), 1)), np.cumsum(seg, 1)], 1)
    kappa = curvature(x)
    far = arc[:, 1:-1] > 0.03
    curl = float(np.log1p((kappa * far).sum() / max(far.sum(), 1)))
    half = x[:, : x.shape[1] // 2]
    vol = float(np.clip(scalp.head.radial_distance(half), 0, None).mean())
    return {"length": float(arc[:, -1].mean()), "curliness": curl, "volume": vol}
