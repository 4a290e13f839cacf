"""Deforming-shape datasets: per-frame surface samples, occupancy queries, shape / deformation pairs.

A split is held in memory as a dict of arrays (:func:`build_procedural_split`, or
:func:`latent4d.motion.oflow.load_oflow_split` for D-FAUST / DeformingThings4D in the O-Flow layout):

=================  ==================  =========================================================
key                shape / dtype       meaning
=================  ==================  =========================================================
``surface``        (S, T, Ns, 3) f32   surface samples; index i is the same material point in
                                       every frame (correspondence)
``uniform``        (S, T, Nu, 3) f16   uniform queries in [-bounds, bounds]^3
``uniform_occ``    (S, T, Nu) bool     inside / outside
``near``           (S, T, Nn, 3) f16   near-surface queries (surface + Gaussian offsets)
``near_occ``       (S, T, Nn) bool
``loc``/``scale``  (S, 3) / (S,)       normalisation: world = normalised * scale + loc
``identity_seed``  (S,) int64          procedural only: seeds that regenerate the meshes
``motion_seed``    (S,) int64
=================  ==================  =========================================================

Splits of the procedural data (identity and motion are independent seeds):
``train`` / ``val`` (training identities x training motions, disjoint pairs),
``test_motion`` (training identities x unseen motions), ``test_identity`` (unseen identities x
training motions). The test split of the data modules concatenates the two held-out splits.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from latent4d.datamodule import SplitDataModule
from latent4d.errors import ConfigError, InputError
from latent4d.geometry.sampling import interpolate_barycentric, sample_surface
from latent4d.geometry.sdf import MeshSDF
from latent4d.motion.synthetic import KINDS, MOTIONS, procedural_sequence

SPLITS = ("train", "val", "test_motion", "test_identity")
HELD_OUT = ("test_motion", "test_identity")
_ID_OFFSET = {"train": 0, "val": 0, "test_motion": 0, "test_identity": 1_000_000}
_MOTION_OFFSET = {"train": 0, "val": 0, "test_motion": 2_000_000, "test_identity": 0}


def split_pairs(
    split: str, n: int, n_identities: int = 32, n_motions: int = 32, seed: int = 0
) -> list[tuple[int, int]]:
    """``n`` (identity_seed, motion_seed) pairs of a procedural split (see module docstring)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
    rng = np.random.default_rng([seed, SPLITS.index(split), 7])
    ids = np.arange(n_identities) + _ID_OFFSET[split] + seed * 10_000
    mots = np.arange(n_motions) + _MOTION_OFFSET[split] + seed * 10_000
    pairs: list[tuple[int, int]] = []
    if split in ("train", "val"):
        # train takes pairs (i, m) with (i + m) even, val with (i + m) odd: disjoint combinations
        parity = 0 if split == "train" else 1
        all_pairs = [(int(i), int(m)) for i in ids for m in mots if (i + m) % 2 == parity]
        order = rng.permutation(len(all_pairs))
        # cycle identities so that every identity appears before any repeats
        by_id: dict[int, list[tuple[int, int]]] = {}
        for k in order:
            by_id.setdefault(all_pairs[k][0], []).append(all_pairs[k])
        while len(pairs) < n and any(by_id.values()):
            for i in sorted(by_id):
                if by_id[i] and len(pairs) < n:
                    pairs.append(by_id[i].pop())
    else:
        for k in range(n):
            pairs.append((int(ids[k % len(ids)]), int(rng.choice(mots))))
    return pairs


def frame_samples(
    vertices: np.ndarray,
    faces: np.ndarray,
    n_surface: int,
    n_uniform: int,
    n_near: int,
    near_sigmas=(0.004, 0.015),
    bounds: float = 0.55,
    rng=None,
) -> dict[str, np.ndarray]:
    """Samples of one mesh sequence ``vertices`` (T, V, 3) with shared ``faces``.

    Surface samples reuse one (face, barycentric) draw across frames, so they correspond.
    Occupancy from Open3D's RaycastingScene (majority vote over rays).
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    T = len(vertices)
    _, fidx, bary = sample_surface(vertices[0], faces, n_surface, rng)
    surface = interpolate_barycentric(vertices, faces, fidx, bary).astype(np.float32)
    uni = rng.uniform(-bounds, bounds, size=(T, n_uniform, 3)).astype(np.float32)
    near = np.empty((T, n_near, 3), np.float32)
    uocc = np.empty((T, n_uniform), bool)
    nocc = np.empty((T, n_near), bool)
    for t in range(T):
        _, fi, b = sample_surface(vertices[t], faces, n_near, rng)
        base = interpolate_barycentric(vertices[t], faces, fi, b)
        sig = np.asarray(near_sigmas)[rng.integers(0, len(near_sigmas), n_near)]
        near[t] = base + rng.normal(size=(n_near, 3)) * sig[:, None]
        sdf = MeshSDF((vertices[t], faces))
        uocc[t] = sdf.occupancy(uni[t])
        nocc[t] = sdf.occupancy(near[t])
    return {
        "surface": surface,
        "uniform": uni.astype(np.float16),
        "uniform_occ": uocc,
        "near": near.astype(np.float16),
        "near_occ": nocc,
    }


def build_procedural_split(
    split: str,
    n_sequences: int,
    num_frames: int = 17,
    n_surface: int = 2048,
    n_uniform: int = 2048,
    n_near: int = 2048,
    n_identities: int = 32,
    n_motions: int = 32,
    kinds=KINDS,
    motions=MOTIONS,
    bounds: float = 0.55,
    seed: int = 0,
    cache: bool = True,
) -> dict[str, np.ndarray]:
    """Arrays of one procedural split (cached with :func:`latent4d.cache.cached_npz`)."""
    from latent4d.cache import cached_npz

    if n_sequences < 1:
        raise ConfigError(f"split '{split}' needs at least one sequence, got n_sequences={n_sequences}")
    if num_frames < 2:
        raise ConfigError(f"num_frames must be >= 2, got {num_frames}")
    kinds, motions = tuple(kinds), tuple(motions)
    params = dict(
        split=split,
        n=n_sequences,
        T=num_frames,
        ns=n_surface,
        nu=n_uniform,
        nn=n_near,
        ni=n_identities,
        nm=n_motions,
        kinds=kinds,
        motions=motions,
        bounds=bounds,
        seed=seed,
        v=1,
    )

    def build() -> dict[str, np.ndarray]:
        pairs = split_pairs(split, n_sequences, n_identities, n_motions, seed)
        parts: dict[str, list] = {}
        for k, (ids, ms) in enumerate(pairs):
            seq = procedural_sequence(ids, ms, num_frames, kinds, motions)
            smp = frame_samples(
                seq.vertices,
                seq.faces,
                n_surface,
                n_uniform,
                n_near,
                bounds=bounds,
                rng=np.random.default_rng([seed, SPLITS.index(split), k]),
            )
            smp.update(
                loc=seq.loc,
                scale=np.float32(seq.scale),
                identity_seed=np.int64(ids),
                motion_seed=np.int64(ms),
                kind=np.int64(KINDS.index(seq.identity.kind)),
                motion_kind=np.int64(MOTIONS.index(seq.motion.kind)),
            )
            for key, val in smp.items():
                parts.setdefault(key, []).append(val)
        return {key: np.stack(v) for key, v in parts.items()}

    return cached_npz(f"motion-{split}", params, build, enabled=cache)


def procedural_split_of(hp, split: str, n: int) -> dict[str, np.ndarray]:
    """:func:`build_procedural_split` of ``n`` sequences with a data module's hyperparameters ``hp``."""
    return build_procedural_split(
        split,
        n,
        hp.num_frames,
        hp.n_surface,
        hp.n_uniform_store,
        hp.n_near_store,
        hp.n_identities,
        hp.n_motions,
        tuple(hp.kinds),
        tuple(hp.motions),
        hp.bounds,
        hp.data_seed,
    )


def sequences_of(
    arrays: dict[str, np.ndarray], k: int, num_frames: int | None = None, kinds=KINDS, motions=MOTIONS
):
    """Regenerate the procedural mesh sequence of entry ``k`` of a split (same ``kinds`` / ``motions``
    restrictions as when the split was built)."""
    if "identity_seed" not in arrays:
        raise InputError("this split was not generated procedurally: it has no identity/motion seeds")
    T = num_frames or arrays["surface"].shape[1]
    return procedural_sequence(
        int(arrays["identity_seed"][k]), int(arrays["motion_seed"][k]), T, tuple(kinds), tuple(motions)
    )


def check_arrays(arrays: dict[str, np.ndarray], name: str) -> None:
    """Sanity checks (shapes agree, at least 2 frames, finite)."""
    need = ("surface", "uniform", "uniform_occ", "near", "near_occ")
    missing = [k for k in need if k not in arrays]
    if missing:
        raise InputError(f"{name}: missing arrays {missing}")
    S, T = arrays["surface"].shape[:2]
    if S == 0:
        raise InputError(f"{name}: no sequences")
    if T < 2:
        raise InputError(f"{name}: sequences need at least 2 frames, got {T}")
    for k in need[1:]:
        if arrays[k].shape[:2] != (S, T):
            raise InputError(
                f"{name}: '{k}' has {arrays[k].shape[:2]} (sequences, frames), "
                f"'surface' has {(S, T)}: mismatched frame counts"
            )
    if not np.isfinite(arrays["surface"]).all():
        raise InputError(f"{name}: surface samples contain NaN or inf")


def surface_shape(arrays: dict[str, np.ndarray], n_points: int, name: str) -> tuple[int, int, int]:
    """(sequences, frames, surface samples per frame) of checked arrays (:func:`check_arrays`) that hold
    at least ``n_points`` samples per frame; InputError naming ``name`` otherwise."""
    check_arrays(arrays, name)
    S, T, Ns = arrays["surface"].shape[:3]
    if Ns < n_points:
        raise InputError(f"{name}: {n_points} input points requested, the data has {Ns} per frame")
    return S, T, Ns


# ----------------------------------------------------------------------------------------------
# datasets


class ShapeFrameDataset(Dataset):
    """One item per (sequence, frame): the shape autoencoder's training sample.

    Returns ``points`` (N, 3) input surface cloud, ``queries`` (Qu + Qn, 3), ``occ`` (Qu + Qn,)
    float {0, 1}, ``near`` (Qu + Qn,) bool (True for the near-surface queries). ``deterministic``
    fixes the random subsets per item (validation / test).

    ``augment_aspect`` (training only; 0 = off): with probability 1/2, the cloud and the queries are
    scaled per axis by factors drawn from [augment_aspect, 1] and divided by the largest, so one
    axis keeps its extent and the shape stays inside the normalised cube. Occupancy is unchanged by
    the common scaling; new aspect ratios stand in for identities (proportions) never seen.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        n_points: int = 1024,
        n_uniform: int = 1024,
        n_near: int = 1024,
        deterministic: bool = False,
        seed: int = 0,
        frames=None,
        augment_aspect: float = 0.0,
    ):
        S, T, Ns = surface_shape(arrays, n_points, "ShapeFrameDataset")
        self.a = arrays
        self.frames = list(range(T)) if frames is None else list(frames)
        self._setup(
            [(s, t) for s in range(S) for t in self.frames],
            n_points,
            n_uniform,
            n_near,
            deterministic,
            seed,
            augment_aspect,
        )

    def _setup(self, index, n_points, n_uniform, n_near, deterministic, seed, augment_aspect) -> None:
        self.index = index
        self.n_points, self.n_uniform, self.n_near = n_points, n_uniform, n_near
        self.deterministic, self.seed = deterministic, seed
        if not 0.0 <= augment_aspect < 1.0:
            raise ConfigError(f"augment_aspect must be in [0, 1) (0 turns it off), got {augment_aspect}")
        self.augment_aspect = 0.0 if deterministic else float(augment_aspect)

    def __len__(self) -> int:
        return len(self.index)

    def _choice(self, g, n: int, k: int) -> torch.Tensor:
        return torch.randperm(n, generator=g)[:k] if k <= n else torch.randint(n, (k,), generator=g)

    def _count(self, key: str, s: int, t: int) -> int:
        """Stored samples of ``key`` (surface / uniform / near) in frame ``t`` of sequence ``s``."""
        return self.a[key].shape[2]

    def _fetch(self, s: int, t: int, pi, ui, ni) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Surface samples ``pi`` (n, 3) f32, queries (uniform ``ui`` then near ``ni``) f32 and occupancies."""
        a = self.a
        q = np.concatenate([a["uniform"][s, t][ui], a["near"][s, t][ni]]).astype(np.float32)
        occ = np.concatenate([a["uniform_occ"][s, t][ui], a["near_occ"][s, t][ni]])
        return a["surface"][s, t][pi].astype(np.float32), q, occ

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, t = self.index[i]
        g = torch.Generator().manual_seed(self.seed * 100003 + i) if self.deterministic else None
        pi = self._choice(g, self._count("surface", s, t), self.n_points)
        ui = self._choice(g, self._count("uniform", s, t), self.n_uniform)
        ni = self._choice(g, self._count("near", s, t), self.n_near)
        pts, q, occ = self._fetch(s, t, pi.numpy(), ui.numpy(), ni.numpy())
        near = np.r_[np.zeros(self.n_uniform, bool), np.ones(self.n_near, bool)]
        if self.augment_aspect > 0 and bool(torch.rand(1) < 0.5):
            f = self.augment_aspect + (1 - self.augment_aspect) * torch.rand(3).numpy().astype(np.float32)
            f /= f.max()
            pts, q = pts * f, q * f
        return {
            "points": torch.from_numpy(pts),
            "queries": torch.from_numpy(q),
            "occ": torch.from_numpy(occ.astype(np.float32)),
            "near": torch.from_numpy(near),
        }


class DeformPairDataset(Dataset):
    """Source / target frame pairs of one sequence for the deformation autoencoder.

    Returns ``source`` and ``target`` (N, 3) input clouds with the same sample indices (so they
    correspond), ``query`` (Q, 3) source surface points and ``query_target`` (Q, 3) their positions
    in the target frame. Training draws random (source, target) frame pairs (``source_frame``
    fixes the source, e.g. 0); evaluation enumerates (0, t) for t = 1..T-1.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        n_points: int = 1024,
        n_queries: int = 1024,
        deterministic: bool = False,
        seed: int = 0,
        source_frame: int | None = None,
        pairs_per_sequence: int = 16,
    ):
        S, T, Ns = surface_shape(arrays, n_points, "DeformPairDataset")
        self.a = arrays
        self.Ns = Ns
        self._setup(S, T, n_points, n_queries, deterministic, seed, source_frame, pairs_per_sequence)

    def _setup(
        self, S, T, n_points, n_queries, deterministic, seed, source_frame, pairs_per_sequence
    ) -> None:
        self.S, self.T = S, T
        self.n_points, self.n_queries = n_points, n_queries
        self.deterministic, self.seed, self.source_frame = deterministic, seed, source_frame
        self.per_seq = (T - 1) if deterministic else pairs_per_sequence

    def __len__(self) -> int:
        return self.S * self.per_seq

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, j = divmod(i, self.per_seq)
        if self.deterministic:
            g = torch.Generator().manual_seed(self.seed * 100003 + i)
            src, tgt = (self.source_frame or 0), 1 + j
            if tgt == src:
                tgt = 0
        else:
            g = None
            src = self.source_frame if self.source_frame is not None else int(torch.randint(self.T, (1,)))
            tgt = int(torch.randint(self.T, (1,)))
        pi, qi = self._draw(g, self._count(s))
        src_pts, tgt_pts = self._pair(s, src, tgt, np.concatenate([pi, qi]))
        n = len(pi)
        return {
            "source": torch.from_numpy(src_pts[:n]),
            "target": torch.from_numpy(tgt_pts[:n]),
            "query": torch.from_numpy(src_pts[n:]),
            "query_target": torch.from_numpy(tgt_pts[n:]),
            "frames": torch.tensor([src, tgt]),
        }

    def _draw(self, g, Ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Input sample indices (n_points,) and query indices (n_queries,) among ``Ns`` surface samples."""
        perm = torch.randperm(Ns, generator=g).numpy()
        pi = perm[: self.n_points]
        qi = (
            perm[-self.n_queries :]
            if self.n_queries <= Ns
            else torch.randint(Ns, (self.n_queries,), generator=g).numpy()
        )
        return pi, qi

    def _count(self, s: int) -> int:
        """Corresponding surface samples per frame of sequence ``s``."""
        return self.Ns

    def _pair(self, s: int, src: int, tgt: int, idx) -> tuple[np.ndarray, np.ndarray]:
        """Surface samples ``idx`` of frames ``src`` and ``tgt`` of sequence ``s``: two (k, 3) float32."""
        surf = self.a["surface"][s]
        return surf[src][idx], surf[tgt][idx]


# ----------------------------------------------------------------------------------------------
# O-Flow datasets: streamed frame by frame from the files (nothing of a split is held in memory)

OFLOW_SPLITS = {"train": "train", "val": "val", "test": "test", "test_new_individual": "test_new_individual"}


def oflow_index(hp, split: str, num_frames: int | None = None, offset: int | None = None):
    """:class:`latent4d.motion.oflow.OFlowIndex` of ``split`` (train / val / test, the test list being
    ``hp.test_split``) with a data module's hyperparameters ``hp`` and the clip transforms (cached)."""
    from latent4d.motion.oflow import OFlowIndex, clip_transforms

    name = hp.test_split if split == "test" else split
    if name not in OFLOW_SPLITS:
        raise ConfigError(f"data.test_split must be 'test' or 'test_new_individual', got {name!r}")
    index = OFlowIndex(
        hp.root,
        name,
        num_frames=hp.num_frames if num_frames is None else num_frames,
        stride=hp.clip_stride,
        offset=hp.clip_offset if offset is None else offset,
        categories=hp.oflow_categories,
        max_clips=hp.oflow_max_sequences,
        partial_folder=hp.partial_folder,
    )
    return index, clip_transforms(index, hp.normalize, cache=hp.cache)


def _sparse_choice(g, n: int, k: int) -> np.ndarray:
    """``k`` distinct indices in [0, n) (with repeats only when k > n), drawn without permuting all ``n``
    (a 100,000-point frame: ~0.1 ms instead of ~7 ms for a full permutation); seeded from ``g``."""
    seed = int(torch.randint(2**62, (1,), generator=g))
    return np.random.default_rng(seed).choice(n, k, replace=k > n)


class OFlowShapeDataset(ShapeFrameDataset):
    """:class:`ShapeFrameDataset` items read from an O-Flow split: one item per frame (each frame of
    the split once, normalised with its clip's transform); the surface cloud, uniform and near-surface
    queries are random subsets drawn from the full frame files (only those rows are read)."""

    def __init__(self, index, transforms: np.ndarray, n_points=1024, n_uniform=1024, n_near=1024,
                 deterministic=False, seed=0, augment_aspect=0.0):  # fmt: skip
        self.oflow, self.tf = index, transforms
        self._setup(list(index.frames), n_points, n_uniform, n_near, deterministic, seed, augment_aspect)

    def _count(self, key: str, s: int, t: int) -> int:
        from latent4d.motion.oflow import point_count

        return point_count(self.oflow.files(s, key, t))

    _choice = staticmethod(lambda g, n, k: torch.from_numpy(_sparse_choice(g, n, k)))

    def _fetch(self, s: int, t: int, pi, ui, ni):
        from latent4d.motion.oflow import read_points, read_queries

        loc, scale = self.tf[s, :3].astype(np.float32), float(self.tf[s, 3])
        pts = read_points(self.oflow.files(s, "surface", t), pi, loc, scale)
        qu, ou = read_queries(self.oflow.files(s, "uniform", t), ui, loc, scale)
        qn, on = read_queries(self.oflow.files(s, "near", t), ni, loc, scale)
        return pts, np.concatenate([qu, qn]), np.concatenate([ou, on])


class OFlowDeformDataset(DeformPairDataset):
    """:class:`DeformPairDataset` items read from an O-Flow split: ``pairs_per_sequence`` random frame
    pairs per clip (training) or (0, t) for t = 1..T-1 (evaluation), corresponding surface samples
    drawn from the full ``pcl_seq`` files."""

    def __init__(
        self,
        index,
        transforms: np.ndarray,
        n_points=1024,
        n_queries=1024,
        deterministic=False,
        seed=0,
        source_frame=None,
        pairs_per_sequence=16,
    ):
        self.oflow, self.tf = index, transforms
        self._setup(
            len(index),
            index.num_frames,
            n_points,
            n_queries,
            deterministic,
            seed,
            source_frame,
            pairs_per_sequence,
        )

    def _count(self, s: int) -> int:
        from latent4d.motion.oflow import point_count

        return point_count(self.oflow.files(s, "surface", 0))

    def _draw(self, g, Ns: int) -> tuple[np.ndarray, np.ndarray]:
        idx = _sparse_choice(g, Ns, self.n_points + self.n_queries)
        return idx[: self.n_points], idx[self.n_points :]

    def _pair(self, s: int, src: int, tgt: int, idx):
        from latent4d.motion.oflow import read_clip_surface

        pts = read_clip_surface(self.oflow, s, idx, self.tf[s], frames=(src, tgt))
        return pts[0], pts[1]


# ----------------------------------------------------------------------------------------------
# data modules


class MotionDataModule(SplitDataModule):
    """Shape-AE (``mode="shape"``) or deformation-AE (``mode="deform"``) data.

    ``source="procedural"`` builds the splits from the generator (cached); ``source="oflow"`` reads
    an O-Flow / Motion2VecSets dataset under ``root`` (see :mod:`latent4d.motion.oflow`), whose
    ``test.lst`` is the test split.
    """

    def __init__(
        self,
        mode: str = "shape",
        source: str = "procedural",
        root: str | None = None,
        n_train: int = 96,
        n_val: int = 8,
        n_test: int = 8,
        num_frames: int = 17,
        n_identities: int = 32,
        n_motions: int = 32,
        n_surface: int = 2048,
        n_uniform_store: int = 2048,
        n_near_store: int = 2048,
        n_points: int = 1024,
        n_uniform: int = 1024,
        n_near: int = 1024,
        n_queries: int = 1024,
        pairs_per_sequence: int = 16,
        batch_size: int = 16,
        num_workers: int = 0,
        bounds: float = 0.55,
        seed: int = 0,
        data_seed: int = 0,
        kinds=KINDS,
        motions=MOTIONS,
        augment_aspect: float = 0.0,
        category=None,
        test_split: str = "test",
        **oflow,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        if mode not in ("shape", "deform"):
            raise ConfigError(f"MotionDataModule: mode must be 'shape' or 'deform', got {mode!r}")
        oflow.update(oflow_options(oflow, source, root, test_split, category))
        # plain lists (not OmegaConf containers) so that checkpoints load with weights_only=True
        kinds, motions = [str(k) for k in kinds], [str(m) for m in motions]
        self.save_hyperparameters()
        self.arrays: dict[str, dict[str, np.ndarray]] = {}

    def load_split(self, split: str) -> dict[str, np.ndarray]:
        """Arrays of a procedural split (O-Flow data is streamed: see :meth:`split_dataset`)."""
        hp = self.hparams
        if hp.source == "oflow":
            raise ConfigError("O-Flow splits are streamed from their files, never loaded whole")
        if split not in self.arrays:
            n = {"train": hp.n_train, "val": hp.n_val}.get(split, hp.n_test)
            self.arrays[split] = procedural_split_of(hp, split, n)
        return self.arrays[split]

    def _oflow_dataset(self, split: str) -> Dataset:
        hp = self.hparams
        index, tf = oflow_index(hp, split)
        seed, train = hp.seed + ("train", "val", "test").index(split), split == "train"
        if hp.mode == "shape":
            return OFlowShapeDataset(
                index,
                tf,
                hp.n_points,
                hp.n_uniform,
                hp.n_near,
                deterministic=not train,
                seed=seed,
                augment_aspect=hp.augment_aspect,
            )
        return OFlowDeformDataset(
            index,
            tf,
            hp.n_points,
            hp.n_queries,
            deterministic=not train,
            seed=seed,
            pairs_per_sequence=hp.pairs_per_sequence,
        )

    def _dataset(self, split: str, train: bool) -> Dataset:
        hp = self.hparams
        a = self.load_split(split)
        if hp.mode == "shape":
            return ShapeFrameDataset(
                a,
                hp.n_points,
                hp.n_uniform,
                hp.n_near,
                deterministic=not train,
                seed=hp.seed + SPLITS.index(split),
                augment_aspect=hp.augment_aspect,
            )
        return DeformPairDataset(
            a,
            hp.n_points,
            hp.n_queries,
            deterministic=not train,
            seed=hp.seed + SPLITS.index(split),
            pairs_per_sequence=hp.pairs_per_sequence,
        )

    def split_dataset(self, split: str) -> Dataset:
        """``train`` / ``val``; ``test``: both held-out splits (O-Flow data: the ``data.test_split`` list,
        ``test`` = unseen motions, ``test_new_individual`` = unseen individuals)."""
        if self.hparams.source == "oflow":
            return self._oflow_dataset(split)
        if split != "test":
            return self._dataset(split, split == "train")
        return ConcatDataset([self._dataset(s, False) for s in HELD_OUT])


# O-Flow settings of both motion data modules (keyword arguments; conf/data/motion_*.yaml documents them)
OFLOW_OPTIONS = dict(
    oflow_categories=None,  # category folders (``category`` is the one-name form)
    oflow_max_sequences=None,  # cap on the clips per split
    clip_stride=None,  # frames between window starts (default num_frames - 1; the official loaders: 1)
    clip_offset=0,  # frames skipped at the start of each sequence (official deformation diffusion: 15)
    normalize="clip",  # clip: each window fills [-0.5, 0.5]; dataset: the files' own loc / scale (official)
    partial_folder="depth_rotate45",  # depth clouds of the partial inputs (the official folder name)
    cache=True,  # cache clip transforms and encoded latents in $LATENT4D_CACHE
)


def oflow_options(given: dict, source, root, test_split, category) -> dict:
    """The O-Flow settings ``given`` to a data module, checked and completed with :data:`OFLOW_OPTIONS`."""
    unknown = sorted(set(given) - set(OFLOW_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown data option(s) {unknown} (known: {sorted(OFLOW_OPTIONS)})")
    opts = {**OFLOW_OPTIONS, **given}
    if source not in ("procedural", "oflow"):
        raise ConfigError(f"data.source must be 'procedural' or 'oflow', got {source!r}")
    if source == "oflow" and not root:
        raise ConfigError("data.source=oflow needs data.root=<dataset folder in the O-Flow layout>")
    if test_split not in ("test", "test_new_individual"):
        raise ConfigError(f"data.test_split must be 'test' or 'test_new_individual', got {test_split!r}")
    if opts["normalize"] not in ("clip", "dataset"):
        raise ConfigError(f"data.normalize must be 'clip' or 'dataset', got {opts['normalize']!r}")
    cats = category or opts["oflow_categories"]
    cats = [cats] if isinstance(cats, str) else cats
    # plain lists (not OmegaConf containers) so that checkpoints load with weights_only=True
    opts["oflow_categories"] = None if cats is None else [str(c) for c in cats]
    return opts


# ----------------------------------------------------------------------------------------------
# latent diffusion data


def partial_views(
    arrays: dict[str, np.ndarray],
    n_points: int = 512,
    views: int = 2,
    resolution: int = 64,
    seed: int = 0,
    cache: bool = True,
    params: dict | None = None,
    kinds=KINDS,
    motions=MOTIONS,
) -> np.ndarray:
    """(S, views, T, n_points, 3) float16 partial depth clouds of every sequence of a procedural split.

    View 0 uses a fixed camera, view 1 an orbiting one (then alternating). Meshes are regenerated
    from the split's seeds; cached alongside the split when ``params`` identify it.
    """
    from latent4d.cache import cached_npz
    from latent4d.motion.observe import partial_observation

    def build() -> dict[str, np.ndarray]:
        S, T = arrays["surface"].shape[:2]
        out = np.empty((S, views, T, n_points, 3), np.float16)
        for s in range(S):
            seq = sequences_of(arrays, s, T, kinds, motions)
            for k in range(views):
                out[s, k] = partial_observation(
                    seq.vertices,
                    seq.faces,
                    n_points,
                    "fixed" if k % 2 == 0 else "moving",
                    0.0,
                    np.random.default_rng([seed, s, k]),
                    resolution,
                )
        return {"partial": out}

    key = dict(
        params or {},
        n=n_points,
        views=views,
        res=resolution,
        seed=seed,
        kinds=list(kinds),
        motion_kinds=list(motions),
        ids=arrays["identity_seed"].tolist(),
        motions=arrays["motion_seed"].tolist(),
    )
    return cached_npz("motion-partial", key, build, enabled=cache and params is not None)["partial"]


@torch.no_grad()
def encode_latents(
    arrays: dict[str, np.ndarray],
    shape_ae=None,
    deform_ae=None,
    n_points: int = 1024,
    seed: int = 0,
    reverse: bool = True,
) -> dict[str, np.ndarray]:
    """Posterior-mean latents of every sequence, all computed from one subset of ``n_points`` surface
    samples per sequence (so latent index m of the shape and deformation sets refers to the same
    farthest-point sample of the source frame).

    Returns ``shape`` (S, T, M, C) per-frame shape latents, ``subset`` (S, n_points) and, with a
    deformation AE, ``deform`` (S, D, T-1, Md, Cd): D = 2 directions when ``reverse`` (frame 0 ->
    frames 1..T-1, and frame T-1 -> frames T-2..0), else 1.
    """
    S, T, Ns = arrays["surface"].shape[:3]
    rng = np.random.default_rng(seed)
    subset = np.stack([rng.choice(Ns, n_points, replace=False) for _ in range(S)])
    out: dict[str, list] = {"shape": [], "deform": []}
    for s in range(S):
        pts = torch.from_numpy(arrays["surface"][s][:, subset[s]])  # (T, n, 3)
        if shape_ae is not None:
            out["shape"].append(shape_ae.encode(pts, sample=False).z.numpy())
        if deform_ae is not None:
            dirs = [(0, list(range(1, T)))] + ([(T - 1, list(range(T - 2, -1, -1)))] if reverse else [])
            zs = []
            for src, tgts in dirs:
                zs.append(
                    deform_ae.encode(
                        pts[src][None].expand(len(tgts), -1, -1), pts[tgts], sample=False
                    ).z.numpy()
                )
            out["deform"].append(np.stack(zs))
    res = {"subset": subset}
    for k, v in out.items():
        if v:
            res[k] = np.stack(v).astype(np.float32)
    return res


class LatentDiffusionDataset(Dataset):
    """Training items for the diffusion models (``mode="shape"`` or ``"deform"``).

    shape: one item per (sequence, frame): ``x0`` (M, C) shape latents of that frame and ``obs``
    (N, 3) its observation. deform: one item per (sequence, direction) window: ``x0`` (T-1, M, C)
    deformation latents, ``shape`` (M, C) shape latents of the window's first frame and ``obs``
    (T, N, 3). ``corresponding`` says whether ``obs`` is sparse corresponding points (probability
    ``p_sparse``) or partial depth clouds. Observation noise: Gaussian, std ``noise``.
    ``train_frames`` (deform mode; None: the whole window): k of the window's T-1 deformed frames drawn at
    random (sorted) per item, ``x0`` (k, M, C) and ``obs`` (k + 1, N, 3) with frame 0 first (the official
    ``n_training_frames``); set on the training split only (:class:`MotionLatentDataModule`).
    """

    train_frames: int | None = None

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        latents: dict[str, np.ndarray],
        partial: np.ndarray | None,
        mode: str = "shape",
        n_obs: int = 300,
        noise: float = 0.002,
        p_sparse: float = 0.5,
        deterministic: bool = False,
        seed: int = 0,
    ):
        if mode not in ("shape", "deform"):
            raise ConfigError(f"LatentDiffusionDataset: mode must be 'shape' or 'deform', got {mode!r}")
        if mode == "deform" and "deform" not in latents:
            raise ConfigError("deformation diffusion data needs deformation latents (a deformation AE)")
        self.a, self.lat, self.partial = arrays, latents, partial
        self.mode, self.n_obs, self.noise, self.p_sparse = mode, n_obs, noise, p_sparse
        if partial is None:
            self.p_sparse = 1.0
        self.deterministic, self.seed = deterministic, seed
        S, T = arrays["surface"].shape[:2]
        self.S, self.T = S, T
        self.D = latents["deform"].shape[1] if mode == "deform" else 1
        self.index = (
            [(s, t) for s in range(S) for t in range(T)]
            if mode == "shape"
            else [(s, d) for s in range(S) for d in range(self.D)]
        )

    def __len__(self) -> int:
        return len(self.index)

    def _obs(self, rng: np.random.Generator, s: int, frames: list[int], sparse: bool) -> np.ndarray:
        if sparse:
            surf = self.a["surface"][s][frames]
            idx = rng.choice(surf.shape[1], self.n_obs, replace=False)
            o = surf[:, idx]
        else:
            k = int(rng.integers(self.partial.shape[1]))
            p = self.partial[s, k][frames].astype(np.float32)
            idx = rng.choice(p.shape[1], self.n_obs, replace=p.shape[1] < self.n_obs)
            o = p[:, idx]
        if self.noise > 0:
            o = o + rng.normal(scale=self.noise, size=o.shape)
        return o.astype(np.float32)

    def _latents(self, i: int, s: int, j: int, frames: list[int]) -> dict[str, np.ndarray]:
        """``x0`` (and in deform mode ``shape``, the latents of the window's first frame) of item ``i``."""
        if self.mode == "shape":
            return {"x0": self.lat["shape"][s, j]}
        return {"x0": self.lat["deform"][s, j], "shape": self.lat["shape"][s, frames[0]]}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, j = self.index[i]
        seed = (self.seed, i) if self.deterministic else (self.seed, i, int(torch.randint(2**31 - 1, (1,))))
        rng = np.random.default_rng(seed)
        sparse = bool(rng.random() < self.p_sparse)
        if self.mode == "shape":
            frames = [j]
        else:
            frames = list(range(self.T)) if j == 0 else list(range(self.T - 1, -1, -1))
        obs = self._obs(rng, s, frames, sparse)
        lat = self._latents(i, s, j, frames)
        if self.mode == "deform" and self.train_frames:  # k random deformed frames of the window
            keep = np.sort(rng.choice(self.T - 1, min(self.train_frames, self.T - 1), replace=False))
            lat["x0"], obs = np.asarray(lat["x0"])[keep], obs[np.concatenate([[0], keep + 1])]
        item = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in lat.items()}
        item["obs"] = torch.from_numpy(obs[0] if self.mode == "shape" else obs)
        item["corresponding"] = torch.tensor(sparse)
        return item


def _digest(net) -> str:
    """Short hash of a network's weights (so cached latents follow the autoencoder they came from)."""
    import hashlib

    h = hashlib.sha1()
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _progress(items, total: int, label: str):
    """``items`` with a progress bar (:mod:`latent4d.progress`) when there are 64 or more."""
    from latent4d.progress import track

    return track(items, label, total=total, min_total=64)


@torch.no_grad()
def _encode_oflow(out: dict, index, tf, sae, dae, n_points: int, seed: int, reverse: bool, device) -> None:
    """Fill ``out`` (memory-mapped arrays) with posterior-mean latents of every clip / frame of ``index``."""
    from latent4d.motion.oflow import point_count, read_clip_surface

    def subset(k: int, j: int) -> np.ndarray:
        n = point_count(index.files(k, "surface", j))
        return np.random.default_rng([seed, k, j]).choice(n, n_points, replace=n < n_points)

    if dae is None:  # shape mode: one latent set per frame, encoded in batches
        fr = index.frames
        for b in _progress(range(0, len(fr), 32), (len(fr) + 31) // 32, "encoding frames"):
            pts = [
                read_clip_surface(index, k, subset(k, j), tf[k], frames=(j,))[0] for k, j in fr[b : b + 32]
            ]
            z = sae.encode(torch.from_numpy(np.stack(pts)).to(device), sample=False).z
            out["shape"][b : b + len(pts)] = z.float().cpu().numpy()
        return
    T = index.num_frames
    for k in _progress(range(len(index)), len(index), "encoding clips"):
        pts = torch.from_numpy(read_clip_surface(index, k, subset(k, 0), tf[k])).to(device)  # (T, n, 3)
        dirs = [(0, list(range(1, T)))] + ([(T - 1, list(range(T - 2, -1, -1)))] if reverse else [])
        firsts = [d[0] for d in dirs]
        out["shape"][k] = sae.encode(pts[firsts], sample=False).z.float().cpu().numpy()
        for d, (src, tgts) in enumerate(dirs):
            z = dae.encode(pts[src][None].expand(len(tgts), -1, -1), pts[tgts], sample=False).z
            out["deform"][k, d] = z.float().cpu().numpy()


def oflow_latents(
    index,
    tf,
    sae,
    dae=None,
    n_points: int = 1024,
    seed: int = 0,
    reverse: bool = True,
    cache: bool = True,
    key: dict | None = None,
) -> dict[str, np.ndarray]:
    """Latents of an O-Flow split under frozen autoencoders, as memory-mapped ``.npy`` arrays cached in
    ``$LATENT4D_CACHE`` (:func:`latent4d.cache.cache_root`; built once, then only read).

    Shape mode (``dae`` None): ``shape`` (frames, M, C), one row per ``index.frames`` entry. Deform mode:
    ``shape`` (clips, D, M, C) latents of each direction's first frame, ``deform`` (clips, D, T-1, Md, Cd);
    D = 2 with ``reverse`` (frame 0 -> 1..T-1 and frame T-1 -> T-2..0), else 1. The shape and deformation
    sets of a clip come from one subset of ``n_points`` surface samples (as :func:`encode_latents`).
    """
    from latent4d.cache import cache_key, cache_root
    from latent4d.fileio import atomic_dir

    D = 2 if reverse else 1
    shapes = {"shape": (len(index.frames),) + _latent_shape(sae)}
    if dae is not None:
        shapes = {
            "shape": (len(index), D) + _latent_shape(sae),
            "deform": (len(index), D, index.num_frames - 1) + _latent_shape(dae),
        }
    params = dict(
        key or {},
        index=index.key(),
        tf=tf.tolist(),
        sae=_digest(sae),
        dae=None if dae is None else _digest(dae),
        n=n_points,
        seed=seed,
        reverse=reverse,
        v=1,
    )
    folder = cache_root() / f"motion-oflow-latents-{cache_key(params)}"
    if cache and all((folder / f"{k}.npy").is_file() for k in shapes):
        try:
            got = {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in shapes}
            if all(got[k].shape == shapes[k] for k in shapes):
                return got
        except Exception:  # noqa: BLE001 - corrupt cache: rebuild
            pass
    device = "cuda" if torch.cuda.is_available() else "cpu"
    nets = [n for n in (sae, dae) if n is not None]
    for n in nets:
        n.to(device)
    try:
        with atomic_dir(folder) as tmp:
            out = {
                k: np.lib.format.open_memmap(tmp / f"{k}.npy", "w+", np.float32, v) for k, v in shapes.items()
            }
            _encode_oflow(out, index, tf, sae, dae, n_points, seed, reverse, device)
            for v in out.values():
                v.flush()
            del out
    finally:
        for n in nets:
            n.to("cpu")
    return {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in shapes}


def _latent_shape(ae) -> tuple[int, int]:
    return (int(ae.config.num_latents), int(ae.config.latent_channels))


class OFlowLatentDataset(LatentDiffusionDataset):
    """:class:`LatentDiffusionDataset` items of an O-Flow split: latents from :func:`oflow_latents`
    (memory-mapped), observations read per item from the files: sparse = ``n_obs`` corresponding
    ``pcl_seq`` points (one index set for every frame of the window, as the official
    ``SubsamplePointcloudSeq(connected_samples=True)``), partial = ``n_obs`` points of the depth clouds
    in ``depth_rotate45/`` (``partial_folder``); then Gaussian noise of std ``noise``."""

    def __init__(
        self,
        index,
        tf,
        latents,
        mode="shape",
        n_obs=300,
        noise=0.001,
        p_sparse=0.5,
        deterministic=False,
        seed=0,
        partial=True,
    ):
        if mode not in ("shape", "deform"):
            raise ConfigError(f"LatentDiffusionDataset: mode must be 'shape' or 'deform', got {mode!r}")
        self.oflow, self.tf, self.lat = index, tf, latents
        self.mode, self.n_obs, self.noise, self.p_sparse = mode, n_obs, noise, p_sparse if partial else 1.0
        self.deterministic, self.seed = deterministic, seed
        self.S, self.T = len(index), index.num_frames
        self.D = latents["deform"].shape[1] if mode == "deform" else 1
        self.index = (
            list(index.frames) if mode == "shape" else [(k, d) for k in range(self.S) for d in range(self.D)]
        )

    def _latents(self, i: int, s: int, j: int, frames: list[int]) -> dict[str, np.ndarray]:
        if self.mode == "shape":
            return {"x0": np.array(self.lat["shape"][i])}  # copies out of the read-only memory map
        return {"x0": np.array(self.lat["deform"][s, j]), "shape": np.array(self.lat["shape"][s, j])}

    def _obs(self, rng: np.random.Generator, s: int, frames: list[int], sparse: bool) -> np.ndarray:
        from latent4d.motion.oflow import point_count, read_points

        files = [self.oflow.files(s, "surface" if sparse else "partial", j) for j in frames]
        n = min(point_count(f) for f in files)
        idx = rng.choice(n, self.n_obs, replace=n < self.n_obs)
        loc, scale = self.tf[s, :3].astype(np.float32), float(self.tf[s, 3])
        o = np.stack([read_points(f, idx, loc, scale) for f in files])
        if self.noise > 0:
            o = o + rng.normal(scale=self.noise, size=o.shape)
        return o.astype(np.float32)


class MotionLatentDataModule(SplitDataModule):
    """Latents of the procedural splits (or of an O-Flow dataset: ``source="oflow"``, ``root``,
    ``category``) under trained autoencoders, for the diffusion experiments.

    ``shape_ae_run`` / ``deform_ae_run``: run directories (or exported folders) of
    ``motion/shape_ae`` and ``motion/deform_ae``. Latents are encoded once in ``setup`` (O-Flow:
    cached on disk and memory-mapped, see :func:`oflow_latents`; observations streamed per item).
    The test split is the validation split for procedural data, the ``test_split`` list for O-Flow data.
    ``train_frames`` (deform mode): deformed frames per training item drawn from each window (None: all;
    :class:`LatentDiffusionDataset`).
    """

    def __init__(
        self,
        mode: str = "shape",
        shape_ae_run: str | None = None,
        deform_ae_run: str | None = None,
        n_train: int = 96,
        n_val: int = 8,
        num_frames: int = 17,
        n_identities: int = 32,
        n_motions: int = 32,
        n_surface: int = 2048,
        n_uniform_store: int = 2048,
        n_near_store: int = 2048,
        n_points: int = 1024,
        n_obs: int = 300,
        noise: float = 0.002,
        p_sparse: float = 0.5,
        partial_points: int = 512,
        partial_views_per_sequence: int = 2,
        partial_resolution: int = 64,
        reverse: bool = True,
        batch_size: int = 16,
        num_workers: int = 0,
        bounds: float = 0.55,
        seed: int = 0,
        data_seed: int = 0,
        kinds=KINDS,
        motions=MOTIONS,
        source: str = "procedural",
        root: str | None = None,
        category=None,
        test_split: str = "test",
        train_frames: int | None = None,
        **oflow,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        if train_frames is not None and int(train_frames) < 1:
            raise ConfigError(
                f"MotionLatentDataModule: train_frames must be >= 1 or null, got {train_frames}"
            )
        if mode not in ("shape", "deform"):
            raise ConfigError(f"MotionLatentDataModule: mode must be 'shape' or 'deform', got {mode!r}")
        oflow.update(oflow_options(oflow, source, root, test_split, category))
        if not shape_ae_run:
            raise ConfigError(
                "the diffusion experiments need a trained shape autoencoder: "
                "shape_ae_run=<run directory of motion/shape_ae>"
            )
        if mode == "deform" and not deform_ae_run:
            raise ConfigError(
                "deformation diffusion needs a trained deformation autoencoder: "
                "deform_ae_run=<run directory of motion/deform_ae>"
            )
        kinds, motions = [str(k) for k in kinds], [str(m) for m in motions]
        shape_ae_run = str(shape_ae_run)
        deform_ae_run = None if deform_ae_run is None else str(deform_ae_run)
        self.save_hyperparameters()
        self.latents: dict[str, dict[str, np.ndarray]] = {}

    def _split(self, split: str) -> dict[str, np.ndarray]:
        hp = self.hparams
        n = {"train": hp.n_train, "val": hp.n_val}[split]
        return procedural_split_of(hp, split, n)

    def split_dataset(self, split: str) -> Dataset:
        """The latents are encoded once for ``train`` and ``val``; ``test`` is the validation set
        (procedural) or the ``test_split`` list (O-Flow)."""
        if self.hparams.source == "oflow":
            ds = self._oflow_split(split)
        else:
            if "val" not in self.sets:
                self._encode_splits()
            ds = self.sets["val" if split == "test" else split]
        if split == "train":  # the official n_training_frames: a random subset of each training window
            ds.train_frames = self.hparams.get("train_frames")
        return ds

    def _oflow_split(self, split: str) -> Dataset:
        from latent4d.motion.deform import DeformVecSetAE
        from latent4d.motion.module import load_autoencoder
        from latent4d.motion.vecset import ShapeVecSetAE

        hp = self.hparams
        if split in self.sets:
            return self.sets[split]
        sae = load_autoencoder(ShapeVecSetAE, hp.shape_ae_run)
        dae = load_autoencoder(DeformVecSetAE, hp.deform_ae_run) if hp.mode == "deform" else None
        # shape mode: every frame of the windows once (OFlowIndex.frames); deform mode: the windows
        index, tf = oflow_index(hp, split)
        seed = hp.data_seed + ("train", "val", "test").index(split)
        lat = oflow_latents(
            index, tf, sae, dae, hp.n_points, seed, hp.reverse, hp.cache, key=dict(normalize=hp.normalize)
        )
        self.latents[split] = lat
        return OFlowLatentDataset(
            index,
            tf,
            lat,
            hp.mode,
            hp.n_obs,
            hp.noise,
            hp.p_sparse,
            deterministic=split != "train",
            seed=hp.seed + seed,
            partial=hp.p_sparse < 1,
        )

    def _encode_splits(self) -> None:
        from latent4d.motion.deform import DeformVecSetAE
        from latent4d.motion.module import load_autoencoder
        from latent4d.motion.vecset import ShapeVecSetAE

        hp = self.hparams
        sae = load_autoencoder(ShapeVecSetAE, hp.shape_ae_run)
        dae = load_autoencoder(DeformVecSetAE, hp.deform_ae_run) if hp.mode == "deform" else None
        for split in ("train", "val"):
            a = self._split(split)
            lat = encode_latents(
                a, sae, dae, hp.n_points, seed=hp.data_seed + SPLITS.index(split), reverse=hp.reverse
            )
            self.latents[split] = lat
            part = None
            if hp.p_sparse < 1.0:
                part = partial_views(
                    a,
                    hp.partial_points,
                    hp.partial_views_per_sequence,
                    hp.partial_resolution,
                    seed=hp.data_seed,
                    params=dict(
                        split=split,
                        data=dict(
                            n=len(a["surface"]),
                            T=hp.num_frames,
                            ni=hp.n_identities,
                            nm=hp.n_motions,
                            seed=hp.data_seed,
                        ),
                    ),
                    kinds=tuple(hp.kinds),
                    motions=tuple(hp.motions),
                )
            self.sets[split] = LatentDiffusionDataset(
                a,
                lat,
                part,
                hp.mode,
                hp.n_obs,
                hp.noise,
                hp.p_sparse,
                deterministic=split != "train",
                seed=hp.seed + SPLITS.index(split),
            )

    def train_latents(self) -> dict[str, np.ndarray]:
        """Training latents (for the denoiser's normalisation statistics; O-Flow data: at most 4096 rows
        drawn at random from the memory-mapped cache)."""
        self.setup("fit")
        lat = self.latents["train"]
        if self.hparams.source != "oflow":
            return lat
        n = len(lat["shape"])
        rows = np.sort(np.random.default_rng(self.hparams.data_seed).choice(n, min(n, 4096), replace=False))
        return {k: np.asarray(v[rows]) for k, v in lat.items()}
