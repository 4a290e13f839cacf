"""Hair datasets: strands for the strand-VAE and guide maps for the hairstyle-VAE.

Both DataModules read either the built-in procedural styles (default; deterministic, cached with
:func:`latent4d.cache.cached_npz`) or a folder of real hair files (``root=<folder>``: USC-HairSalon
``.data`` or any of ``.hair`` / ``.ply`` / ``.npz``, in the USC-HairSalon head frame: roots off the
scalp are refused with the fix, see :mod:`latent4d.hair.align`), split into
train / val / test by a seeded permutation of the file list.

Procedural splits use disjoint style seeds (train from 0, val from 1,000,000, test from 2,000,000),
so the test styles of every experiment and benchmark are held out. Loaders: the trunk
:class:`~latent4d.datamodule.SplitDataModule` rule (shuffled training batches drop the last incomplete
one only when the split holds more than one batch).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from latent4d.cache import cached_npz
from latent4d.datamodule import SplitDataModule
from latent4d.errors import InputError
from latent4d.hair.align import check_on_scalp
from latent4d.hair.formats import HAIR_EXTENSIONS, read_hair
from latent4d.hair.scalp import Scalp
from latent4d.hair.strands import STRAND_POINTS, Hairstyle, to_local
from latent4d.hair.synthetic import generate_strands_batch, sample_style, style_labels

log = logging.getLogger("latent4d.hair")

GENERATOR_VERSION = 4  # bump when the procedural generator changes (invalidates caches)
SPLIT_OFFSETS = {"train": 0, "val": 1_000_000, "test": 2_000_000}


def split_seeds(split: str, n: int, seed: int = 0) -> list[int]:
    """Style seeds of a procedural split (disjoint between splits)."""
    if split not in SPLIT_OFFSETS:
        raise InputError(f"unknown split '{split}' (train | val | test)")
    return [SPLIT_OFFSETS[split] + seed * 10_000 + i for i in range(int(n))]


def list_hair_files(root: str | Path) -> list[Path]:
    """Sorted hair files (``.data .hair .ply .npz``) directly in ``root``; InputError if none."""
    r = Path(root).expanduser()
    if not r.is_dir():
        raise InputError(f"data.root '{r}' is not a folder of hair files")
    files = sorted(p for p in r.iterdir() if p.suffix.lower() in HAIR_EXTENSIONS and p.is_file())
    if not files:
        raise InputError(f"data.root '{r}' contains no hair files ({', '.join(HAIR_EXTENSIONS)})")
    return files


def read_hair_on_scalp(path: str | Path, scalp: Scalp) -> Hairstyle:
    """A hair file whose roots sit on ``scalp``: InputError with the measured offset / scale and the fix
    (``latent4d align``) otherwise (:func:`latent4d.hair.align.check_on_scalp`)."""
    hs = read_hair(path)
    check_on_scalp(hs, scalp, str(path))
    return hs


def split_files(files: list[Path], val_fraction: float, test_fraction: float, seed: int = 0) -> dict[str, list[Path]]:
    """Seeded split of a file list; every split gets at least one file when there are >= 3 files."""
    n = len(files)
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1 if n >= 3 else 0, int(round(val_fraction * n)))
    n_test = max(1 if n >= 3 else 0, int(round(test_fraction * n)))
    test = [files[i] for i in sorted(perm[:n_test])]
    val = [files[i] for i in sorted(perm[n_test:n_test + n_val])]
    train = [files[i] for i in sorted(perm[n_test + n_val:])] or list(files)
    return {"train": train, "val": val or train[:1], "test": test or train[:1]}


def local_strands(hairstyle: Hairstyle, scalp: Scalp, n: int | None = None, seed: int = 0,
                  num_points: int = STRAND_POINTS) -> np.ndarray:
    """Up to ``n`` random non-bald strands of ``hairstyle`` in their root TBN frames: (n, P, 3) metres."""
    strands, _ = hairstyle.hair_strands(num_points)
    if n is not None and len(strands) > n:
        strands = strands[np.sort(np.random.default_rng(seed).choice(len(strands), n, replace=False))]
    roots = strands[:, 0]
    return to_local(strands, roots, scalp.frames(roots))


def procedural_strand_set(seeds: list[int], strands_per_style: int, scalp: Scalp, num_points: int = STRAND_POINTS,
                          chunk: int = 32) -> np.ndarray:
    """Local strands (len(seeds) * strands_per_style, P, 3) from random roots of procedural styles."""
    out = []
    for c in range(0, len(seeds), chunk):
        styles = [sample_style(s) for s in seeds[c:c + chunk]]
        roots = [scalp.sample_roots(strands_per_style, seed=s + 7)[0] for s in seeds[c:c + chunk]]
        for world, _ in generate_strands_batch(styles, roots, scalp, num_points=num_points, strand_seed=1):
            out.append(to_local(world, world[:, 0], scalp.frames(world[:, 0])))
    return np.concatenate(out).astype(np.float32)


class HairStrandDataModule(SplitDataModule):
    """Strands in their root TBN frames, ``(P, 3)`` metres per item, for the strand-VAE.

    Args:
        root: folder of real hair files (USC-HairSalon frame), or None for procedural styles.
        n_train / n_val / n_test: procedural styles per split.
        strands_per_style: strands drawn from each style / file.
        val_fraction / test_fraction: file split for ``root``.
        scalp: Scalp parameters (``Scalp.to_dict()``), default head when None.
    """

    def __init__(self, root: str | None = None, n_train: int = 400, n_val: int = 16, n_test: int = 32,
                 strands_per_style: int = 256, num_points: int = STRAND_POINTS, batch_size: int = 256,
                 num_workers: int = 0, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 cache: bool = True, scalp: dict | None = None):
        super().__init__(batch_size, num_workers)
        self.save_hyperparameters()
        self.scalp = Scalp.from_dict(scalp)

    def _split_data(self, split: str) -> np.ndarray:
        hp = self.hparams
        if hp.root:
            files = split_files(list_hair_files(hp.root), hp.val_fraction, hp.test_fraction, hp.seed)[split]
            parts = [local_strands(read_hair_on_scalp(f, self.scalp), self.scalp, hp.strands_per_style, seed=i,
                                   num_points=hp.num_points)
                     for i, f in enumerate(files)]
            return np.concatenate(parts).astype(np.float32)
        n = {"train": hp.n_train, "val": hp.n_val, "test": hp.n_test}[split]
        seeds = split_seeds(split, n, hp.seed)
        params = {"v": GENERATOR_VERSION, "split": split, "seeds": [seeds[0], len(seeds)] if seeds else [],
                  "per_style": hp.strands_per_style, "P": hp.num_points, "scalp": self.scalp.to_dict()}
        return cached_npz("hair_strands", params,
                          lambda: {"local": procedural_strand_set(seeds, hp.strands_per_style, self.scalp,
                                                                  hp.num_points)}, enabled=hp.cache)["local"]

    def setup(self, stage: str | None = None) -> None:
        if not self.sets:
            for split in ("train", "val", "test"):
                x = self._split_data(split)
                if not np.isfinite(x).all():
                    raise InputError(f"hair strands ({split}) contain NaN or infinite values")
                self.sets[split] = TensorDataset(torch.from_numpy(np.ascontiguousarray(x)))
                log.info("hair strands %s: %d", split, len(x))

    def dataset(self, split: str) -> TensorDataset:
        self.setup()
        return self.sets[split]



# --------------------------------------------------------------------------------------- guides
def model_fingerprint(model: torch.nn.Module) -> str:
    """Short hash of a network's weights (keys caches of data encoded with it)."""
    import hashlib

    h = hashlib.sha1()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def procedural_guides(seeds: list[int], scalp: Scalp, res: int, strand_vae, num_points: int = STRAND_POINTS,
                      chunk: int = 16, keep_local: bool = False, mirror: bool = False) -> dict[str, np.ndarray]:
    """Guide maps of procedural styles: ``maps (N, C+1, H, W)``, ``labels (N, 3)`` and, with
    ``keep_local``, the guide strands ``local (N, V, P, 3)`` in their root frames. With ``mirror``
    the left/right mirror image of every style is appended (2N maps; same labels)."""
    from latent4d.hair.guides import encode_guides, mirror_local, mirror_permutation

    grid = scalp.grid(res)
    roots = grid.roots[grid.mask]
    frames = grid.frames[grid.mask]
    maps, locs, labels, mirrored = [], [], [], []
    presence = np.ones(len(roots), bool)
    perm = mirror_permutation(grid) if mirror else None
    for c in range(0, len(seeds), chunk):
        styles = [sample_style(s) for s in seeds[c:c + chunk]]
        for world, _ in generate_strands_batch(styles, roots, scalp, uv=grid.uv[grid.mask], num_points=num_points):
            loc = to_local(world, roots, frames)
            maps.append(encode_guides(strand_vae, loc, presence, grid).numpy())
            if keep_local:
                locs.append(loc)
            lab = style_labels(world, scalp)
            labels.append([lab[k] for k in ("length", "curliness", "volume")])
            if mirror:
                mirrored.append(encode_guides(strand_vae, mirror_local(loc[perm]), presence, grid).numpy())
    if mirror:
        maps += mirrored
        labels += labels
    out = {"maps": np.stack(maps).astype(np.float32), "labels": np.asarray(labels, np.float32)}
    if keep_local:
        out["local"] = np.stack(locs).astype(np.float32)
    return out


class HairGuideDataModule(SplitDataModule):
    """Guide maps ``(C + 1, H, W)`` (strand-VAE latents + presence) for the hairstyle-VAE.

    Items are ``(guide_map (C+1, H, W), labels (3,), index)``; labels are the measured length (m),
    curliness (log(1 + mean curvature in 1/m)) and volume (m) of each style (zeros for real data). The guide strands are
    encoded with the strand-VAE at ``strand_vae_path`` (a run directory or a ``save_pretrained`` folder).
    ``latent_stats`` (per-channel mean / std of the training latents) is set in ``setup``;
    ``guide_local[split]`` keeps the val / test guide strands ``(N, V, P, 3)`` for metrics.
    ``mirror`` doubles the procedural training styles with their left/right mirror images.
    """

    def __init__(self, strand_vae_path: str | None = None, root: str | None = None, n_train: int = 800,
                 n_val: int = 32, n_test: int = 32, grid: int = 32, num_points: int = STRAND_POINTS,
                 batch_size: int = 32, num_workers: int = 0, seed: int = 0, val_fraction: float = 0.1,
                 test_fraction: float = 0.1, cache: bool = True, scalp: dict | None = None, mirror: bool = True):
        super().__init__(batch_size, num_workers)
        self.save_hyperparameters()
        self.scalp = Scalp.from_dict(scalp)
        self.grid = self.scalp.grid(grid)
        self.latent_stats: tuple[torch.Tensor, torch.Tensor] | None = None
        self.guide_local: dict[str, np.ndarray] = {}

    def _split_maps(self, split: str, vae) -> dict[str, np.ndarray]:
        hp = self.hparams
        keep = split != "train"
        if hp.root:
            from latent4d.hair.guides import encode_guides, guide_strands

            files = split_files(list_hair_files(hp.root), hp.val_fraction, hp.test_fraction, hp.seed)[split]
            maps, locs = [], []
            for f in files:
                lo, pr, _, _ = guide_strands(read_hair_on_scalp(f, self.scalp), self.scalp, self.grid, hp.num_points)
                maps.append(encode_guides(vae, lo, pr, self.grid).numpy())
                locs.append(lo)
            out = {"maps": np.stack(maps), "labels": np.zeros((len(files), 3), np.float32)}
            if keep:
                out["local"] = np.stack(locs)
            return out
        n = {"train": hp.n_train, "val": hp.n_val, "test": hp.n_test}[split]
        seeds = split_seeds(split, n, hp.seed)
        params = {"v": GENERATOR_VERSION, "split": split, "seeds": [seeds[0], len(seeds)] if seeds else [],
                  "grid": hp.grid, "P": hp.num_points, "scalp": self.scalp.to_dict(), "vae": model_fingerprint(vae),
                  "local": keep, "mirror": hp.mirror and not keep}
        return cached_npz("hair_guides", params,
                          lambda: procedural_guides(seeds, self.scalp, hp.grid, vae, hp.num_points, keep_local=keep,
                                                    mirror=hp.mirror and not keep), enabled=hp.cache)

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        from latent4d.hair.strand_vae import load_strand_vae

        hp = self.hparams
        if not hp.strand_vae_path:
            raise InputError("the hairstyle-VAE needs a trained strand-VAE: set model.strand_vae_path=<strand run>")
        vae = load_strand_vae(hp.strand_vae_path).eval()
        for split in ("train", "val", "test"):
            d = self._split_maps(split, vae)
            maps = torch.from_numpy(np.ascontiguousarray(d["maps"], np.float32))
            if not torch.isfinite(maps).all():
                raise InputError(f"hair guide maps ({split}) contain NaN or infinite values")
            self.sets[split] = TensorDataset(maps, torch.from_numpy(np.asarray(d["labels"], np.float32)),
                                              torch.arange(len(maps)))
            if "local" in d:
                self.guide_local[split] = d["local"]
            log.info("hair guide maps %s: %s", split, tuple(maps.shape))
        maps = self.sets["train"].tensors[0]
        mask = torch.as_tensor(self.grid.mask.reshape(hp.grid, hp.grid))
        sel = (maps[:, -1] > 0.5) & mask
        lat = maps[:, :-1].permute(0, 2, 3, 1)[sel]  # (K, C)
        self.latent_stats = (lat.mean(0), lat.std(0).clamp_min(1e-3))

    def dataset(self, split: str) -> TensorDataset:
        self.setup()
        return self.sets[split]

