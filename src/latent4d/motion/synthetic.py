"""Procedural deforming shapes with a fixed topology across frames.

Two independent parameter sets define a clip:

* an **identity** (:func:`sample_identity`): the kind (``humanoid``, ``quadruped`` - skinned
  characters made of tapered capsules -, ``tube`` or ``blob`` - non-articulated deformers) and its
  proportions;
* a **motion** (:func:`sample_motion`): one of ``walk``, ``bend``, ``twist``, ``wave`` with an
  amplitude, a number of cycles over the clip, a phase, a direction and a slow global turn.

Every motion applies to every identity (each kind maps the four motion types onto its own joints or
deformation fields), so splits with unseen motions and unseen identities are just different seed
ranges. :func:`make_sequence` returns the frames of one clip as vertices ``(T, V, 3)`` sharing
``faces (F, 3)``, normalised per sequence to [-0.5, 0.5]^3 (centre ``loc``, largest bounding-box
side over all frames ``scale``: ``normalised = (world - loc) / scale``).

Articulated characters: the rest surface is the marching-cubes zero level of a smooth union of
tapered capsules; vertices are deformed by linear blend skinning with weights from the distance to
each bone, so joints bend smoothly and the topology never changes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import trimesh

from latent4d.errors import InputError

KINDS = ("humanoid", "quadruped", "tube", "blob")
MOTIONS = ("walk", "bend", "twist", "wave")


# ----------------------------------------------------------------------------------------------
# parameters


@dataclass(frozen=True)
class Identity:
    """Shape parameters of one character / deformer (rest-pose units: about 1 tall)."""

    kind: str
    seed: int
    params: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Motion:
    """Motion parameters: ``kind`` in :data:`MOTIONS`; ``amp`` in [0, 1] (scaled per joint),
    ``cycles`` over the clip, ``phase`` (radians), ``direction`` in {-1, 1}, ``turn`` (radians of
    global rotation about the vertical axis over the clip) and ``seed``."""

    kind: str
    amp: float
    cycles: float
    phase: float
    direction: int
    turn: float
    seed: int


#: uniform ranges of the articulated and tube identities' parameters (rest-pose units; radians for
#: ``bulge_phase``), drawn in this order by :func:`sample_identity`
# fmt: off
_IDENTITY_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "humanoid": {
        "leg": (0.36, 0.46), "torso": (0.26, 0.34), "torso_r": (0.09, 0.125), "hip_w": (0.055, 0.08),
        "thigh_r": (0.06, 0.075), "arm": (0.30, 0.38), "arm_r": (0.05, 0.062), "head_r": (0.085, 0.11),
        "arm_spread": (0.35, 0.6), "belly": (0.0, 0.03),
    },
    "quadruped": {
        "body": (0.45, 0.65), "body_r": (0.10, 0.14), "leg": (0.22, 0.32), "leg_r": (0.05, 0.065),
        "neck": (0.14, 0.22), "head_r": (0.07, 0.095), "tail": (0.12, 0.25), "tail_r": (0.03, 0.045),
        "width": (0.06, 0.09),
    },
    "tube": {
        "length": (0.8, 1.0), "radius": (0.11, 0.16), "ellipticity": (1.0, 1.5), "bulge": (0.0, 0.25),
        "bulge_freq": (1.0, 3.0), "bulge_phase": (0.0, 2 * math.pi),
    },
}
# fmt: on


def _draw_kind(
    seed: int, stream: int, kinds: tuple[str, ...], allowed: tuple[str, ...], what: str
) -> tuple[np.random.Generator, str]:
    """(the generator seeded with ``[seed, stream]``, its first draw among ``kinds``); an
    :class:`InputError` naming ``what`` unless ``kinds`` is a non-empty subset of ``allowed``."""
    bad = [k for k in kinds if k not in allowed]
    if bad or not kinds:
        raise InputError(f"{what} kinds must be among {allowed}, got {kinds}")
    rng = np.random.default_rng([seed, stream])
    return rng, kinds[int(rng.integers(len(kinds)))]


def sample_identity(seed: int, kinds: tuple[str, ...] = KINDS) -> Identity:
    """A random identity (deterministic in ``seed``); ``kinds`` restricts the choice."""
    rng, kind = _draw_kind(seed, 1, kinds, KINDS, "identity")
    if kind == "blob":
        u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
        p = dict(
            radii=[u(0.28, 0.4), u(0.3, 0.45), u(0.26, 0.38)],
            bumps=[[*rng.normal(size=3).tolist(), u(0.04, 0.1), u(1.5, 3.0)] for _ in range(4)],
        )
    else:  # one uniform draw per parameter, in the table's order
        p = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in _IDENTITY_RANGES[kind].items()}
    return Identity(kind, int(seed), p)


def sample_motion(seed: int, kinds: tuple[str, ...] = MOTIONS) -> Motion:
    """A random motion (deterministic in ``seed``); ``kinds`` restricts the motion type."""
    rng, kind = _draw_kind(seed, 2, kinds, MOTIONS, "motion")
    return Motion(
        kind=kind,
        amp=float(rng.uniform(0.55, 1.0)),
        cycles=float(rng.uniform(0.5, 1.5)),
        phase=float(rng.uniform(0, 2 * math.pi)),
        direction=int(rng.choice([-1, 1])),
        turn=float(rng.uniform(-0.6, 0.6)),
        seed=int(seed),
    )


# ----------------------------------------------------------------------------------------------
# small numpy helpers


def _rot(axis, angle: float) -> np.ndarray:
    """Rotation matrix (3, 3) about a unit ``axis`` by ``angle`` radians (Rodrigues)."""
    a = np.asarray(axis, np.float64)
    a = a / np.linalg.norm(a)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def _about(R: np.ndarray, pivot) -> np.ndarray:
    """4x4 rigid transform rotating by ``R`` about ``pivot``."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(pivot) - R @ np.asarray(pivot)
    return T


def _seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of points (N, 3) to segment ab and the projection parameter t in [0, 1]."""
    ab = b - a
    den = float(ab @ ab)
    t = np.zeros(len(p)) if den < 1e-12 else np.clip((p - a) @ ab / den, 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1), t


# ----------------------------------------------------------------------------------------------
# articulated characters


@dataclass
class Bone:
    name: str
    parent: int
    head: np.ndarray
    tail: np.ndarray
    r_head: float
    r_tail: float


def _humanoid_bones(p: dict) -> list[Bone]:
    L, tl = p["leg"], p["torso"]
    hip_y = L + 0.03
    chest_y = hip_y + tl
    tr, hw, thr, ar = p["torso_r"], p["hip_w"], p["thigh_r"], p["arm_r"]
    bones = [Bone("root", -1, np.array([0, hip_y - 0.02, 0]), np.array([0, hip_y + 0.02, 0]), tr, tr)]
    bones.append(
        Bone("spine", 0, np.array([0, hip_y, 0]), np.array([0, chest_y, 0]), tr + p["belly"], tr * 0.95)
    )
    neck_top = np.array([0, chest_y + 0.07, 0.0])
    bones.append(Bone("neck", 1, np.array([0, chest_y, 0]), neck_top, tr * 0.5, tr * 0.45))
    bones.append(
        Bone(
            "head",
            2,
            neck_top + [0, p["head_r"] * 0.9, 0],
            neck_top + [0, p["head_r"] * 1.0, 0.01],
            p["head_r"],
            p["head_r"] * 0.95,
        )
    )
    spread = p["arm_spread"]
    for s, side in ((1, "l"), (-1, "r")):
        sh = np.array([s * (tr + ar * 0.4), chest_y - 0.03, 0])
        d = np.array([s * math.sin(spread), -math.cos(spread), 0.0])
        el = sh + d * p["arm"] * 0.5
        wr = el + d * p["arm"] * 0.5
        bones.append(Bone(f"upperarm_{side}", 1, sh, el, ar, ar * 0.9))
        bones.append(Bone(f"forearm_{side}", len(bones) - 1, el, wr, ar * 0.9, ar * 0.8))
        hip = np.array([s * hw, hip_y - 0.02, 0])
        kn = hip + np.array([s * 0.01, -L * 0.5, 0.01])
        an = kn + np.array([0, -L * 0.5 + 0.02, -0.01])
        bones.append(Bone(f"thigh_{side}", 0, hip, kn, thr, thr * 0.85))
        bones.append(Bone(f"shin_{side}", len(bones) - 1, kn, an, thr * 0.85, thr * 0.7))
        bones.append(
            Bone(f"foot_{side}", len(bones) - 1, an, an + np.array([0, -0.005, 0.08]), thr * 0.7, thr * 0.6)
        )
    return bones


def _quadruped_bones(p: dict) -> list[Bone]:
    bl, br, lg, lr = p["body"], p["body_r"], p["leg"], p["leg_r"]
    y = lg + br * 0.6
    rear = np.array([0, y, -bl / 2])
    mid = np.array([0, y + 0.01, 0.0])
    front = np.array([0, y + 0.02, bl / 2])
    bones = [Bone("root", -1, rear, mid, br, br * 1.02), Bone("chest", 0, mid, front, br * 1.02, br * 0.95)]
    neck_top = front + np.array([0, p["neck"] * 0.8, p["neck"] * 0.6])
    bones.append(Bone("neck", 1, front, neck_top, br * 0.6, br * 0.5))
    bones.append(
        Bone(
            "head",
            2,
            neck_top,
            neck_top + np.array([0, 0.0, p["head_r"] * 1.3]),
            p["head_r"],
            p["head_r"] * 0.7,
        )
    )
    tail_end = rear + np.array([0, p["tail"] * 0.5, -p["tail"]])
    bones.append(Bone("tail", 0, rear, tail_end, p["tail_r"] * 1.4, p["tail_r"]))
    for zname, base, parent in (("b", rear, 0), ("f", front, 1)):
        for s, side in ((1, "l"), (-1, "r")):
            top = base + np.array([s * p["width"], -br * 0.3, 0])
            knee = top + np.array([0, -lg * 0.5, 0.01 if zname == "f" else -0.01])
            foot = np.array([top[0], 0.03, top[2]])
            bones.append(Bone(f"upper_{zname}{side}", parent, top, knee, lr * 1.15, lr))
            bones.append(Bone(f"lower_{zname}{side}", len(bones) - 1, knee, foot, lr, lr * 0.8))
    return bones


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _capsule_union_sdf(points: np.ndarray, bones: list[Bone], k: float = 0.025) -> np.ndarray:
    out = None
    for b in bones:
        d, t = _seg_dist(points, b.head, b.tail)
        s = d - (b.r_head + t * (b.r_tail - b.r_head))
        out = s if out is None else _smin(out, s, k)
    return out


def _rest_mesh(bones: list[Bone], resolution: int = 72) -> trimesh.Trimesh:
    """Watertight rest surface: marching cubes of the smooth capsule union."""
    from latent4d.geometry.meshing import grid_centers, marching_cubes

    pts = np.concatenate([np.stack([b.head, b.tail]) for b in bones])
    rmax = max(max(b.r_head, b.r_tail) for b in bones)
    lo, hi = pts.min(0) - rmax - 0.05, pts.max(0) + rmax + 0.05
    centre = (lo + hi) / 2
    half = float((hi - lo).max()) / 2
    g = grid_centers(resolution, half).numpy().astype(np.float64) + centre
    vol = _capsule_union_sdf(g, bones).reshape(resolution, resolution, resolution)
    mesh = marching_cubes(vol, 0.0, half, inside="negative")
    mesh.apply_translation(centre)
    mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)  # merge duplicate vertices
    parts = mesh.split(only_watertight=False)
    if len(parts) > 1:  # keep the main body (tiny islands come from the smooth union's fringe)
        mesh = max(parts, key=lambda m: len(m.faces))
    return mesh


def _skin_weights(vertices: np.ndarray, bones: list[Bone], tau: float = 0.022, top: int = 3) -> np.ndarray:
    """(V, B) linear-blend-skinning weights from the distance to each bone's surface."""
    d = np.stack([_seg_dist(vertices, b.head, b.tail)[0] - 0.5 * (b.r_head + b.r_tail) for b in bones], 1)
    logits = -(d - d.min(1, keepdims=True)) / tau
    if top < len(bones):
        cut = np.sort(logits, axis=1)[:, -top][:, None]
        logits = np.where(logits >= cut, logits, -np.inf)
    w = np.exp(logits)
    return w / w.sum(1, keepdims=True)


def _articulated_rotations(kind: str, bones: list[Bone], motion: Motion, s: float) -> dict[str, np.ndarray]:
    """Local joint rotations at clip time ``s`` in [0, 1] (rest-frame axes, pivot = bone head)."""
    a, ph, dr = motion.amp, motion.phase, motion.direction
    w = 2 * math.pi * motion.cycles * s + ph
    R: dict[str, np.ndarray] = {}
    X, Y, Z = (1, 0, 0), (0, 1, 0), (0, 0, 1)
    if kind == "humanoid":
        if motion.kind == "walk":
            sw = 0.6 * a * math.sin(w)
            R["thigh_l"], R["thigh_r"] = _rot(X, -sw), _rot(X, sw)
            R["shin_l"] = _rot(X, 0.9 * a * max(0.0, math.sin(w + math.pi / 2)))
            R["shin_r"] = _rot(X, 0.9 * a * max(0.0, math.sin(w - math.pi / 2)))
            R["upperarm_l"], R["upperarm_r"] = _rot(X, 0.7 * sw), _rot(X, -0.7 * sw)
            R["forearm_l"] = R["forearm_r"] = _rot(X, -0.3 * a)
            R["spine"] = _rot(Y, 0.15 * a * math.sin(w))
        elif motion.kind == "bend":
            ang = 0.7 * a * (0.5 - 0.5 * math.cos(w - ph)) * (1 if dr > 0 else -0.6)
            axis = X if (motion.seed % 2 == 0) else Z
            R["spine"] = _rot(axis, ang)
            R["neck"] = _rot(axis, 0.3 * ang)
            R["thigh_l"] = R["thigh_r"] = _rot(X, -0.3 * abs(ang)) if axis == X else np.eye(3)
            R["shin_l"] = R["shin_r"] = _rot(X, 0.5 * abs(ang)) if axis == X else np.eye(3)
        elif motion.kind == "twist":
            ang = 0.8 * a * math.sin(w)
            R["spine"] = _rot(Y, ang)
            R["neck"] = _rot(Y, 0.4 * ang)
            R["upperarm_l"] = _rot(Z, 0.5 * a * (0.5 + 0.5 * math.sin(w)))
            R["upperarm_r"] = _rot(Z, -0.5 * a * (0.5 + 0.5 * math.sin(w)))
        else:  # wave
            side = "l" if dr > 0 else "r"
            sg = 1 if side == "l" else -1
            lift = (1.0 + 0.4 * a) * min(1.0, 1.5 * s + 0.2)
            R[f"upperarm_{side}"] = _rot(Z, sg * lift)
            R[f"forearm_{side}"] = _rot(Z, sg * 0.6 * a * math.sin(w))
            other = "r" if side == "l" else "l"
            R[f"upperarm_{other}"] = _rot(X, 0.2 * a * math.sin(w))
            R["neck"] = _rot(Z, 0.15 * a * math.sin(w))
    else:  # quadruped
        if motion.kind == "walk":
            sw = 0.55 * a * math.sin(w)
            R["upper_fl"] = R["upper_br"] = _rot(X, sw)
            R["upper_fr"] = R["upper_bl"] = _rot(X, -sw)
            R["lower_fl"] = R["lower_br"] = _rot(X, -0.6 * a * max(0.0, math.sin(w + math.pi / 2)))
            R["lower_fr"] = R["lower_bl"] = _rot(X, -0.6 * a * max(0.0, math.sin(w - math.pi / 2)))
            R["neck"] = _rot(X, 0.12 * a * math.sin(2 * w))
            R["tail"] = _rot(Y, 0.3 * a * math.sin(w))
        elif motion.kind == "bend":
            axis = Y if motion.seed % 2 == 0 else X
            ang = 0.45 * a * math.sin(w) * dr
            R["chest"] = _rot(axis, ang)
            R["neck"] = _rot(axis, 0.6 * ang)
            R["tail"] = _rot(axis, -ang)
        elif motion.kind == "twist":
            ang = 0.5 * a * math.sin(w)
            R["chest"] = _rot(Z, ang)
            R["head"] = _rot(Z, 0.6 * ang)
        else:  # wave: tail wag, head nod, one paw raised
            R["tail"] = _rot(Y, 0.8 * a * math.sin(w))
            R["neck"] = _rot(X, 0.4 * a * math.sin(w + 1.0))
            side = "l" if dr > 0 else "r"
            R[f"upper_f{side}"] = _rot(X, -0.8 * a * (0.5 - 0.5 * math.cos(w)))
            R[f"lower_f{side}"] = _rot(X, 1.0 * a * (0.5 - 0.5 * math.cos(w)))
    return R


@functools.lru_cache(maxsize=128)
def articulated_rig(identity: Identity) -> ArticulatedRig:
    """Cached :class:`ArticulatedRig` (identities hash by kind and seed)."""
    return ArticulatedRig(identity)


class ArticulatedRig:
    """Rest mesh + skeleton + skinning weights of a humanoid or quadruped identity."""

    def __init__(self, identity: Identity, resolution: int = 72):
        if identity.kind not in ("humanoid", "quadruped"):
            raise InputError(
                f"ArticulatedRig: identity kind must be humanoid or quadruped, got {identity.kind}"
            )
        self.identity = identity
        self.bones = (_humanoid_bones if identity.kind == "humanoid" else _quadruped_bones)(identity.params)
        self.mesh = _rest_mesh(self.bones, resolution)
        self.weights = _skin_weights(np.asarray(self.mesh.vertices), self.bones)
        self.index = {b.name: i for i, b in enumerate(self.bones)}

    def pose(self, motion: Motion, s: float) -> np.ndarray:
        """Skinned vertices (V, 3) at clip time ``s`` in [0, 1]."""
        local = _articulated_rotations(self.identity.kind, self.bones, motion, s)
        G = []
        for b in self.bones:
            L = _about(local.get(b.name, np.eye(3)), b.head)
            G.append(L if b.parent < 0 else G[b.parent] @ L)
        G = np.stack(G)  # (B, 4, 4)
        v = np.asarray(self.mesh.vertices)
        vh = np.concatenate([v, np.ones((len(v), 1))], 1)
        per_bone = np.einsum("bij,vj->vbi", G[:, :3, :], vh)  # (V, B, 3)
        return (self.weights[:, :, None] * per_bone).sum(1)


# ----------------------------------------------------------------------------------------------
# non-articulated deformers


def _tube_rest(p: dict) -> trimesh.Trimesh:
    m = trimesh.creation.capsule(height=p["length"] - 2 * p["radius"], radius=p["radius"], count=[40, 24])
    v = np.asarray(m.vertices).copy()  # capsule axis is z
    v = v[:, [0, 2, 1]] * np.array([1, 1, -1])  # axis -> y (keeps orientation: det = +1)
    prof = 1.0 + p["bulge"] * np.sin(p["bulge_freq"] * math.pi * v[:, 1] / p["length"] + p["bulge_phase"]) * (
        1 - (2 * v[:, 1] / p["length"]) ** 2
    ).clip(0, 1)
    v[:, 0] *= prof * p["ellipticity"]
    v[:, 2] *= prof
    return trimesh.Trimesh(v, np.asarray(m.faces), process=False)


def _tube_pose(rest: np.ndarray, p: dict, motion: Motion, s: float) -> np.ndarray:
    a, w = motion.amp, 2 * math.pi * motion.cycles * s + motion.phase
    x, y, z = rest[:, 0].copy(), rest[:, 1].copy(), rest[:, 2].copy()
    L = p["length"]
    twist = {"twist": 1.6 * a * math.sin(w), "walk": 0.2 * a * math.sin(w)}.get(motion.kind, 0.0)
    if twist:
        th = twist * (y / L + 0.5)
        x, z = x * np.cos(th) - z * np.sin(th), x * np.sin(th) + z * np.cos(th)
    if motion.kind == "wave":
        amp = 0.12 * a
        x = x + amp * np.sin(2 * math.pi * 1.2 * y / L - w) * (y / L + 0.5)
        z = z + 0.5 * amp * np.sin(2 * math.pi * 0.8 * y / L - w + 1.0) * (y / L + 0.5)
    kappa = {"bend": 2.6 * a * math.sin(w) * motion.direction / L, "walk": 1.6 * a * math.sin(w) / L}.get(
        motion.kind, 0.0
    )
    if abs(kappa) > 1e-5:  # bend the axis into a circular arc in the y-z (bend) or y-x (walk) plane
        yy = y + L / 2  # arc length from the fixed bottom end
        th = kappa * yy
        if motion.kind == "bend":
            r = 1.0 / kappa - z
            y, z = r * np.sin(th) - L / 2, 1.0 / kappa - r * np.cos(th)
        else:
            r = 1.0 / kappa - x
            y, x = r * np.sin(th) - L / 2, 1.0 / kappa - r * np.cos(th)
    return np.stack([x, y, z], 1)


def _blob_rest(p: dict) -> trimesh.Trimesh:
    m = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    return trimesh.Trimesh(
        np.asarray(m.vertices) * np.asarray(p["radii"]), np.asarray(m.faces), process=False
    )


def _blob_pose(rest: np.ndarray, p: dict, motion: Motion, s: float) -> np.ndarray:
    a, w = motion.amp, 2 * math.pi * motion.cycles * s + motion.phase
    radii = np.asarray(p["radii"])
    u = rest / radii
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    scale = np.ones(len(rest))
    for i, (dx, dy, dz, amp, freq) in enumerate(p["bumps"]):
        d = np.array([dx, dy, dz]) / (np.linalg.norm([dx, dy, dz]) + 1e-9)
        scale += amp * np.cos(freq * (u @ d) + 0.5 * i) * (0.6 + 0.4 * math.sin(w + i))
    v = rest * scale[:, None]
    if motion.kind == "walk":  # travelling bump around the vertical axis
        ang = np.arctan2(u[:, 2], u[:, 0])
        v = v * (1 + 0.18 * a * np.cos(ang - w) * (1 - u[:, 1] ** 2))[:, None]
    elif motion.kind == "bend":  # squash and stretch along a tilted axis
        axis = np.array([0.3 * motion.direction, 1.0, 0.2])
        axis /= np.linalg.norm(axis)
        st = 1 + 0.3 * a * math.sin(w)
        h = v @ axis
        v = v + (st - 1) * h[:, None] * axis - 0.5 * (st - 1) * (v - h[:, None] * axis)
    elif motion.kind == "twist":
        th = 1.2 * a * math.sin(w) * (v[:, 1] / radii[1])
        x, z = v[:, 0] * np.cos(th) - v[:, 2] * np.sin(th), v[:, 0] * np.sin(th) + v[:, 2] * np.cos(th)
        v = np.stack([x, v[:, 1], z], 1)
    else:  # wave: pulsating lobes
        v = v * (1 + 0.15 * a * np.sin(3 * u[:, 0] + 2 * u[:, 2] - w)[:, None])
    return v


# ----------------------------------------------------------------------------------------------
# sequences


@dataclass
class Sequence:
    """One clip: ``vertices`` (T, V, 3) float32 normalised to [-0.5, 0.5]^3, shared ``faces`` (F, 3)
    int64; ``loc`` (3,) and ``scale`` (float) map back to rest units (world = v * scale + loc)."""

    vertices: np.ndarray
    faces: np.ndarray
    loc: np.ndarray
    scale: float
    identity: Identity
    motion: Motion

    @property
    def num_frames(self) -> int:
        return int(self.vertices.shape[0])

    def mesh(self, t: int) -> trimesh.Trimesh:
        return trimesh.Trimesh(self.vertices[t], self.faces, process=False)


def rest_mesh(identity: Identity) -> trimesh.Trimesh:
    """The identity's rest surface (rest units)."""
    if identity.kind in ("humanoid", "quadruped"):
        return articulated_rig(identity).mesh
    return _tube_rest(identity.params) if identity.kind == "tube" else _blob_rest(identity.params)


def make_sequence(identity: Identity, motion: Motion, num_frames: int = 17) -> Sequence:
    """Animate ``identity`` with ``motion`` over ``num_frames`` frames (>= 2) and normalise it."""
    if num_frames < 2:
        raise InputError(f"a sequence needs at least 2 frames, got num_frames={num_frames}")
    if identity.kind in ("humanoid", "quadruped"):
        rig = articulated_rig(identity)
        faces = np.asarray(rig.mesh.faces)
        pose = lambda s: rig.pose(motion, s)  # noqa: E731
    elif identity.kind == "tube":
        rest = _tube_rest(identity.params)
        faces = np.asarray(rest.faces)
        pose = lambda s: _tube_pose(np.asarray(rest.vertices), identity.params, motion, s)  # noqa: E731
    elif identity.kind == "blob":
        rest = _blob_rest(identity.params)
        faces = np.asarray(rest.faces)
        pose = lambda s: _blob_pose(np.asarray(rest.vertices), identity.params, motion, s)  # noqa: E731
    else:
        raise InputError(f"unknown identity kind '{identity.kind}' (expected one of {KINDS})")
    frames = []
    for t in range(num_frames):
        s = t / (num_frames - 1)
        v = pose(s)
        c = v.mean(0)
        Rt = _rot((0, 1, 0), motion.turn * s)
        frames.append((v - c) @ Rt.T + c)
    verts = np.stack(frames)
    lo, hi = verts.reshape(-1, 3).min(0), verts.reshape(-1, 3).max(0)
    loc = (lo + hi) / 2
    scale = float((hi - lo).max())
    verts = ((verts - loc) / scale).astype(np.float32)
    return Sequence(verts, faces.astype(np.int64), loc.astype(np.float32), scale, identity, motion)


def procedural_sequence(
    identity_seed: int,
    motion_seed: int,
    num_frames: int = 17,
    kinds: tuple[str, ...] = KINDS,
    motions: tuple[str, ...] = MOTIONS,
) -> Sequence:
    """Shorthand: :func:`make_sequence` of ``sample_identity(identity_seed)`` and ``sample_motion(motion_seed)``."""
    return make_sequence(
        sample_identity(identity_seed, kinds), sample_motion(motion_seed, motions), num_frames
    )
