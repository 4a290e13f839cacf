"""Data for binary latent diffusion: images, occupancy grids, and their binary latents.

* Images (``ImageDataModule``): scikit-learn's handwritten digits (1,797 real 8 x 8 digits shipped
  with scikit-learn; the default), crops of scikit-image's sample photographs (``source=photos``), or
  any folder of images (``source=folder root=...``; PNG/JPEG/... through Pillow, mixed sizes and modes
  converted, unreadable or oversized files skipped with a warning, class labels from sub-folder names;
  decoded on access by default, ``stream=false`` loads it into memory), or webdataset tar shards
  (``source=shards root=<folder or brace pattern>``: ``<key>.jpg|png|...`` + optional ``<key>.cls``,
  streamed by DataLoader workers and ranks). Training images of folders and shards are flipped
  horizontally at random (``flip``, the paper's default).
  Batches are ``(images (B, C, H, W) float32 in [0, 1], labels (B,) int64)``, label -1 = none.
* Occupancy grids (``VoxelDataModule``): ``R^3`` grids (default 32^3) of the procedural primitives in
  :mod:`latent4d.binary.synthetic`, of the objects family's procedural objects, or of any folder of
  meshes (trimesh). Batches are ``(occupancy (B, 1, R, R, R) float32 in {0, 1}, labels (B,))``.
* Latents (``LatentDataModule``): the above encoded once by a trained autoencoder (bits for a
  Bernoulli autoencoder, probabilities for the continuous baseline), ``(latents (B, C, *latent_shape),
  labels (B,))``.

Splits are seeded and stratified by label where labels exist.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from latent4d.datamodule import SPLITS, SplitDataModule
from latent4d.errors import ConfigError, InputError

log = logging.getLogger("latent4d.binary")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MESH_EXTENSIONS = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "colorwheel", "camera", "coins", "moon")
"""scikit-image's sample photographs used by ``source=photos`` (its texture samples are left out)."""


# ----------------------------------------------------------------------------- splits
def split_indices(n: int, labels: np.ndarray | None, val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, np.ndarray]:
    """Seeded train / val / test index arrays (stratified by ``labels`` when every class allows it)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    n_test = max(1, int(round(n * test_fraction))) if test_fraction > 0 else 0
    n_val = max(1, int(round(n * val_fraction))) if val_fraction > 0 else 0
    strat = None
    if labels is not None and (labels >= 0).all():
        counts = np.bincount(labels)
        counts = counts[counts > 0]
        if counts.min() >= 3 and min(n_test or n, n_val or n) >= len(counts):
            strat = labels
    if n - n_test - n_val < 1:
        raise InputError(f"only {n} samples: too few for val_fraction={val_fraction}, test_fraction={test_fraction}")
    rest, test = (train_test_split(idx, test_size=n_test, random_state=seed, stratify=strat)
                  if n_test else (idx, idx[:0]))
    strat_rest = strat[rest] if strat is not None else None
    train, val = (train_test_split(rest, test_size=n_val, random_state=seed + 1, stratify=strat_rest)
                  if n_val else (rest, rest[:0]))
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


# ----------------------------------------------------------------------------- images
def digits_arrays(image_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn digits as (1797, 1, S, S) float32 in [0, 1] (bilinear upsampling of 8 x 8) and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return x.clamp(0, 1).numpy(), d.target.astype(np.int64)


def _to_rgb_float(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    else:
        a = a.astype(np.float32)
        a = (a - a.min()) / max(float(a.max() - a.min()), 1e-8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.shape[-1] == 4:  # composite onto white
        a = a[..., :3] * a[..., 3:] + (1 - a[..., 3:])
    return a[..., :3]


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    """(H, W, 3) float -> resized by ``scale`` (anti-aliased)."""
    from PIL import Image

    h, w = img.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    chans = [np.asarray(Image.fromarray(img[..., c].astype(np.float32), mode="F").resize(size, Image.LANCZOS))
             for c in range(img.shape[-1])]
    return np.clip(np.stack(chans, -1), 0, 1)


def photo_crops(n: int, image_size: int, split: str, seed: int, photos: tuple[str, ...] = PHOTOS,
                photo_short_side: int = 128, channels: int = 3) -> np.ndarray:
    """``n`` random ``image_size`` crops of scikit-image's sample photos -> (n, C, S, S) float32 in [0, 1].

    Each photo is resized so its short side is ``photo_short_side`` px; train crops come from the left
    75 % of every photo, val / test crops from the right 25 % (disjoint pixels).
    """
    import skimage.data

    imgs = []
    for name in photos:
        fn = getattr(skimage.data, name, None)
        if fn is None:
            raise ConfigError(f"scikit-image has no sample image '{name}'")
        a = _to_rgb_float(fn())
        a = _resize(a, photo_short_side / min(a.shape[:2]))
        imgs.append(a)
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    out = np.empty((n, 3, image_size, image_size), np.float32)
    for i in range(n):
        a = imgs[int(rng.integers(len(imgs)))]
        h, w = a.shape[:2]
        cut = int(w * 0.75)
        lo, hi = (0, cut - image_size) if split == "train" else (cut, w - image_size)
        x0 = int(rng.integers(lo, max(lo, hi) + 1))
        y0 = int(rng.integers(0, h - image_size + 1))
        crop = a[y0:y0 + image_size, x0:x0 + image_size]
        if split == "train" and rng.uniform() < 0.5:
            crop = crop[:, ::-1]
        out[i] = crop.transpose(2, 0, 1)
    if channels == 1:
        out = out.mean(1, keepdims=True)
    return out


def _find_files(root: Path, extensions: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def _labels_from_folders(root: Path, files: list[Path]) -> tuple[np.ndarray, list[str]]:
    """Class labels from the first sub-folder under ``root`` when every file sits in one; else all -1."""
    parts = [f.relative_to(root).parts for f in files]
    if files and all(len(p) > 1 for p in parts):
        names = sorted({p[0] for p in parts})
        if len(names) > 1:
            return np.array([names.index(p[0]) for p in parts], np.int64), names
    return np.full(len(files), -1, np.int64), []


def index_folder(root: str | Path, extensions: tuple[str, ...], kind: tuple[str, str],
                 check: Callable[[Path], object],
                 errors: tuple[type[BaseException], ...] = (Exception,)) -> tuple[list[Path], list]:
    """Every file with one of ``extensions`` under ``root`` (recursive, sorted) that passes ``check``
    -> (kept files, what ``check`` returned for each).

    ``kind``: (singular, plural) for messages. A file whose ``check`` raises one of ``errors`` is
    skipped with a warning naming it; a folder without any file that passes raises :class:`InputError`.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"{kind[0]} folder '{root}' does not exist or is not a directory")
    files = _find_files(root, extensions)
    out, kept = [], []
    for f in files:
        try:
            out.append(check(f))
        except errors as e:
            warnings.warn(f"skipping unreadable {kind[0]} '{f}': {type(e).__name__}: {e}", stacklevel=3)
            continue
        kept.append(f)
    if not out:
        raise InputError(f"no readable {kind[1]} in '{root}' (looked for {', '.join(extensions)}; "
                         f"found {len(files)} candidate file(s))")
    return kept, out


def read_folder(root: str | Path, extensions: tuple[str, ...], kind: tuple[str, str],
                read: Callable[[Path], np.ndarray],
                errors: tuple[type[BaseException], ...] = (Exception,)) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every file with one of ``extensions`` under ``root`` (recursive, sorted) through ``read`` ->
    (stacked arrays, labels (N,) from the sub-folders or -1, class names).

    ``kind``: (singular, plural) for messages. A file whose ``read`` raises one of ``errors`` is
    skipped with a warning naming it; a folder without any readable file raises :class:`InputError`.
    """
    kept, out = index_folder(root, extensions, kind, read, errors)
    labels, names = _labels_from_folders(Path(root).expanduser(), kept)
    return np.stack(out), labels, names


MAX_IMAGE_PIXELS = 50_000_000
"""Largest image (pixels) the image readers decode; a header declaring more is refused before any pixel
is decoded (8K frames have 33 M pixels)."""

MAX_MEMBER_BYTES = 64 << 20
"""Largest image member of a tar shard (bytes); a shard holding a larger one is refused at index time
(webdataset reads a whole member into memory)."""


def _image_errors() -> tuple[type[BaseException], ...]:
    """What Pillow (and the checks here) raise for a file that is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    return (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError,
            InputError)


def open_image(src, name: str | Path):
    """Open an image lazily (header only) from a path or a binary file object, its declared size checked
    against :data:`MAX_IMAGE_PIXELS` before any pixel is decoded. ``name``: the file, for messages."""
    from PIL import Image

    im = Image.open(src)
    w, h = im.size
    if w <= 0 or h <= 0 or w * h > MAX_IMAGE_PIXELS:
        im.close()
        raise InputError(f"image '{name}' declares {w}x{h} pixels; latent4d reads images of 1 to "
                         f"{MAX_IMAGE_PIXELS:,} pixels")
    return im


def probe_image(path: Path) -> tuple[int, int]:
    """Index-time check of one image file: Pillow recognises it and its size is within the limits
    (header only; nothing decoded) -> (width, height)."""
    with open_image(path, path) as im:
        return im.size


def read_image(path, image_size: int, channels: int = 3, name: str | Path | None = None) -> np.ndarray:
    """One image (a path, or a binary file object with ``name`` for messages) -> (C, S, S) float32 in
    [0, 1]: RGB (alpha composited onto white) or grayscale, the short side resized to ``image_size``
    (Lanczos), centre-cropped. The declared size is checked first (:func:`open_image`)."""
    from PIL import Image

    with open_image(path, name or path) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "P", "PA") or "transparency" in im.info:
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        im = im.convert("RGB" if channels == 3 else "L")
        w, h = im.size
        s = image_size / min(w, h)
        im = im.resize((max(image_size, round(w * s)), max(image_size, round(h * s))), Image.LANCZOS)
        w, h = im.size
        left, top = (w - image_size) // 2, (h - image_size) // 2
        im = im.crop((left, top, left + image_size, top + image_size))
        a = np.asarray(im, dtype=np.float32) / 255.0
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def decode_image(src, image_size: int, channels: int, name: str | Path) -> torch.Tensor:
    """:func:`read_image` for the streaming datasets -> (C, S, S) float32 tensor; a file that passed the
    index check but fails now raises :class:`InputError` naming it."""
    try:
        return torch.from_numpy(read_image(src, image_size, channels, name))
    except _image_errors() as e:
        raise InputError(f"image '{name}' could not be decoded ({type(e).__name__}: {e}); it passed the "
                         "check when the dataset was indexed, so it is damaged or changed since: remove or "
                         "replace it") from None


def load_image_folder(root: str | Path, image_size: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every image under ``root`` (recursive) -> (N, C, S, S) float32 in [0, 1], labels (N,), class names.

    The whole folder in memory (``data.stream=false``); :func:`index_image_folder` +
    :class:`ImageFolderDataset` stream it instead. Images are read by :func:`read_image`. Unreadable
    files are skipped with a warning naming them; a folder without any readable image raises
    :class:`InputError`.
    """
    x, labels, names = read_folder(root, IMAGE_EXTENSIONS, ("image", "images"),
                                   lambda f: read_image(f, image_size, channels), _image_errors())
    return x.astype(np.float32), labels, names


def index_image_folder(root: str | Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """The images under ``root`` (recursive, sorted) whose header :func:`probe_image` accepts -> (files,
    labels (N,) from the sub-folders or -1, class names). Nothing is decoded; unreadable or oversized
    files are skipped with a warning naming them."""
    files, _ = index_folder(root, IMAGE_EXTENSIONS, ("image", "images"), probe_image, _image_errors())
    labels, names = _labels_from_folders(Path(root).expanduser(), files)
    return files, labels, names


def _maybe_flip(x: torch.Tensor, flip: bool) -> torch.Tensor:
    """Horizontal flip (last axis) with probability 1/2 when ``flip`` (torch's RNG: seeded per worker)."""
    return x.flip(-1) if flip and bool(torch.rand(()) < 0.5) else x


class ImageFolderDataset(Dataset):
    """Images decoded on access: holds only the file paths (one numpy string array, so DataLoader
    workers share it instead of copying Python objects page by page) and labels (N,) int64.

    Items ``(image (C, S, S) float32 in [0, 1], label)``; ``flip``: random horizontal flips (training).
    """

    def __init__(self, files: list[Path] | np.ndarray, labels: np.ndarray, image_size: int, channels: int = 3,
                 flip: bool = False):
        self.files = np.asarray([str(f) for f in files])
        self.labels = torch.as_tensor(np.asarray(labels, np.int64))
        if len(self.files) != len(self.labels):
            raise InputError(f"{len(self.files)} files but {len(self.labels)} labels")
        self.image_size, self.channels, self.flip = int(image_size), int(channels), bool(flip)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        f = str(self.files[i])
        return _maybe_flip(decode_image(f, self.image_size, self.channels, f), self.flip), self.labels[i]


class _FlippedTensors(Dataset):
    """``(x, label)`` pairs of in-memory tensors with random horizontal flips (``data.stream=false``)."""

    def __init__(self, x: torch.Tensor, labels: torch.Tensor):
        self.x, self.labels = x, labels

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _maybe_flip(self.x[i], True), self.labels[i]


# ----------------------------------------------------------------------------- tar shards (webdataset)
SHARD_IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "pgm", "tif", "tiff", "gif")
"""Member extensions read as the image of a sample (the first present, in this order); ``.cls`` holds an
optional integer label. Every other member is skipped unread (nothing is unpickled or executed)."""


def expand_shards(root: str) -> list[Path]:
    """``root``: a folder (every ``*.tar`` in it, sorted) or a brace pattern of local files
    (``/data/ffhq-{000000..000069}.tar``) -> existing shard paths. URLs and ``pipe:`` commands are
    refused: shards are local data, never a command to run."""
    import braceexpand

    if not root:
        raise ConfigError("data.source=shards needs data.root=<folder of .tar shards or a brace pattern>")
    if "://" in root or root.startswith("pipe:"):
        raise ConfigError(f"data.root='{root}': shards must be local .tar files (no URLs or pipe: commands); "
                          "download them first")
    folder = Path(root).expanduser()
    if folder.is_dir():
        paths = sorted(folder.glob("*.tar"))
        if not paths:
            raise InputError(f"shard folder '{folder}' holds no .tar files")
        return [p.resolve() for p in paths]
    paths = [Path(p).expanduser() for p in braceexpand.braceexpand(root)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"shard(s) not found: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} "
                         f"(from data.root='{root}')")
    return [p.resolve() for p in paths]


def shard_split(key: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """The split of a shard sample, from a seeded hash of its key (stable whatever the shard order)."""
    import zlib

    u = zlib.crc32(f"{seed}/{key}".encode()) / 2**32
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def _shard_member_key(name: str) -> tuple[str | None, str]:
    from webdataset.tariterators import base_plus_ext

    key, ext = base_plus_ext(name)
    return key, (ext or "").lower()


def _index_one_shard(path: Path) -> dict[str, int]:
    """``{key: label}`` of the samples of one shard with an image member (label -1 without ``.cls``);
    headers only, plus the small ``.cls`` members. An image member over :data:`MAX_MEMBER_BYTES` or a
    non-integer label is an :class:`InputError` naming the shard and member."""
    import tarfile

    images, labels = set(), {}
    with tarfile.open(path, "r:") as tf:
        for m in tf:
            key, ext = _shard_member_key(m.name)
            if not m.isreg() or key is None:
                continue
            if ext in SHARD_IMAGE_KEYS:
                if m.size > MAX_MEMBER_BYTES:
                    raise InputError(f"shard '{path}': member '{m.name}' is {m.size:,} bytes; images up to "
                                     f"{MAX_MEMBER_BYTES:,} bytes are read")
                images.add(key)
            elif ext == "cls":
                raw = tf.extractfile(m).read(32) if m.size <= 32 else b"?"
                try:
                    labels[key] = int(raw.decode().strip())
                except ValueError:
                    raise InputError(f"shard '{path}': label '{m.name}' is not a whole number") from None
    return {k: labels.get(k, -1) for k in sorted(images)}


def index_shards(root: str, seed: int, val_fraction: float, test_fraction: float) -> dict:
    """Index tar shards (headers only): ``{"shards": [paths], "counts": {split: total}, "num_classes"}``.

    Samples go to train / val / test by :func:`shard_split`; labels from ``.cls`` members (all -1 when
    none has one). An unreadable shard is skipped with a warning naming it; no sample at all is an
    :class:`InputError`.
    """
    import tarfile

    shards, counts, top = [], dict.fromkeys(SPLITS, 0), -1
    for path in expand_shards(root):
        try:
            samples = _index_one_shard(path)
        except (tarfile.TarError, OSError, EOFError) as e:
            warnings.warn(f"skipping unreadable shard '{path}': {type(e).__name__}: {e}", stacklevel=2)
            continue
        shards.append(path)
        for key, label in samples.items():
            counts[shard_split(key, seed, val_fraction, test_fraction)] += 1
            top = max(top, label)
    if not sum(counts.values()):
        raise InputError(f"no image samples in the shards of '{root}' (looked for members "
                         f"<key>.{{{','.join(SHARD_IMAGE_KEYS)}}})")
    return {"shards": shards, "counts": counts, "num_classes": top + 1}


def _rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardImageStream(IterableDataset):
    """Images of one split streamed from tar shards (read with webdataset, decoded here by
    :func:`decode_image`); memory: ``shuffle_buffer`` undecoded samples per worker.

    Work is dealt to ``slots = world size x DataLoader workers``: whole shards round-robin when there
    are at least as many shards as slots, otherwise every slot reads all shards and keeps every
    ``slots``-th sample. Each slot yields exactly ``count // slots`` samples per epoch (cycling its
    shards if it runs short), so every rank sees the same number of batches. Training (``shuffle``):
    the slot's shard order and a buffer of samples are shuffled with torch's RNG (seeded per worker);
    ``flip``: random horizontal flips.
    """

    def __init__(self, shards: list[Path], split: str, count: int, image_size: int, channels: int,
                 seed: int, fractions: tuple[float, float], workers: int = 0, shuffle: bool = False,
                 flip: bool = False, shuffle_buffer: int = 1000):
        super().__init__()
        self.shards = [str(s) for s in shards]
        self.split, self.count, self.workers = split, int(count), max(1, int(workers))
        self.image_size, self.channels, self.seed, self.fractions = int(image_size), int(channels), int(seed), fractions
        self.shuffle, self.flip, self.shuffle_buffer = bool(shuffle), bool(flip), max(1, int(shuffle_buffer))

    def __len__(self) -> int:
        """Samples one rank sees per epoch (over all its workers)."""
        world = _rank_world()[1]
        return self.workers * (self.count // (world * self.workers)) if world * self.workers > 1 else self.count

    def _slot(self) -> tuple[int, int]:
        rank, world = _rank_world()
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * nw + wid, world * nw

    def _samples(self, slot: int, slots: int):
        """One pass over this slot's share of the split: raw ``(key, image bytes, ext, label)``."""
        import webdataset as wds

        mine = self.shards[slot::slots] if len(self.shards) >= slots else list(self.shards)
        if self.shuffle:
            mine = [mine[i] for i in torch.randperm(len(mine)).tolist()]
        wanted = set(SHARD_IMAGE_KEYS) | {"cls"}
        pick = lambda name: _shard_member_key(name)[1] in wanted
        i = -1
        for s in wds.tarfile_to_samples(select_files=pick)({"url": u} for u in mine):
            ext = next((k for k in SHARD_IMAGE_KEYS if k in s), None)
            if ext is None or shard_split(s["__key__"], self.seed, *self.fractions) != self.split:
                continue
            i += 1
            if len(self.shards) < slots and i % slots != slot:
                continue
            label = int(s["cls"].decode().strip()) if "cls" in s else -1
            yield s["__key__"], s[ext], f"{s['__url__']}:{s['__key__']}.{ext}", label

    def _shuffled(self, items):
        if not self.shuffle:
            yield from items
            return
        buf: list = []
        for it in items:
            if len(buf) < self.shuffle_buffer:
                buf.append(it)
                continue
            j = int(torch.randint(len(buf), ()))
            buf[j], it = it, buf[j]
            yield it
        while buf:
            yield buf.pop(int(torch.randint(len(buf), ())))

    def __iter__(self):
        import io

        slot, slots = self._slot()
        limit = self.count // slots if slots > 1 else self.count
        n = 0
        while n < limit:
            before = n
            for _, data, name, label in self._shuffled(self._samples(slot, slots)):
                x = decode_image(io.BytesIO(data), self.image_size, self.channels, name)
                yield _maybe_flip(x, self.flip), torch.tensor(label, dtype=torch.long)
                n += 1
                if n >= limit:
                    return
            if n == before:
                return  # nothing readable for this slot: end the epoch instead of looping


class _ArrayDataModule(SplitDataModule):
    """Shared plumbing: :meth:`load_arrays` builds every split's ``(x, labels)`` tensors once; the
    datasets and loaders (one loader rule) come from :class:`latent4d.datamodule.SplitDataModule`."""

    def __init__(self, batch_size: int, num_workers: int):
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self._arrays: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.num_classes = 0
        self.class_names: list[str] = []

    def load_arrays(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{split: (x, labels)}`` for train / val / test (sets ``num_classes`` / ``class_names``)."""
        raise NotImplementedError

    def arrays(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, labels) tensors of ``split`` (train / val / test), built on first use."""
        if not self._arrays:
            self._arrays = self.load_arrays()
        return self._arrays[split]

    def split_dataset(self, split: str) -> Dataset:
        return TensorDataset(*self.arrays(split))

    def plain_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` without training augmentation (for encoding and evaluation)."""
        return TensorDataset(*self.arrays(split))

    def setup(self, stage: str | None = None) -> None:
        self.arrays("train")  # every split at once: they come from one seeded split of one source
        super().setup(stage)


def plain_batches(dm: _ArrayDataModule, split: str, batch_size: int):
    """``(x, labels)`` batches of ``split`` in order, without augmentation, through ``dm``'s workers."""
    ds = dm.plain_dataset(split)
    yield from DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=dm.num_workers)


class ImageDataModule(_ArrayDataModule):
    """Images for the binary autoencoder (see the module docstring).

    source: ``digits`` (default) | ``photos`` | ``folder`` (with ``root``: a folder of images) |
    ``shards`` (with ``root``: a folder of ``.tar`` shards or a brace pattern, webdataset layout
    ``<key>.jpg`` + optional ``<key>.cls``); image_size: output side (px); channels: 1 or 3 (digits
    are 1). ``n_train`` / ``n_eval``: number of crops for ``photos``.

    stream (folder): decode images on access (:class:`ImageFolderDataset`; memory bounded whatever the
    folder's size) instead of loading the folder once into memory; shards always stream
    (:class:`ShardImageStream`). flip: random horizontal flips of training images (folder and shards;
    the paper's training default; digits never flip, photo crops are flipped when generated).
    shuffle_buffer: samples per worker shuffled together when streaming shards.
    """

    def __init__(self, source: str = "digits", root: str | None = None, image_size: int = 16, channels: int = 1,
                 val_fraction: float = 0.1, test_fraction: float = 0.2, n_train: int = 4000, n_eval: int = 400,
                 photo_short_side: int = 128, batch_size: int = 64, num_workers: int = 0, seed: int = 0,
                 stream: bool = True, flip: bool = True, shuffle_buffer: int = 1000):
        super().__init__(batch_size, num_workers)
        if source not in ("digits", "photos", "folder", "shards"):
            raise ConfigError(f"unknown image source '{source}'; expected digits, photos, folder or shards")
        if source in ("folder", "shards") and not root:
            what = "folder of images" if source == "folder" else "folder of .tar shards or a brace pattern"
            raise ConfigError(f"source={source} needs data.root=<{what}>")
        if int(channels) not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {channels}")
        self.source, self.root = source, root
        self.image_size, self.channels = int(image_size), int(channels)
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.n_train, self.n_eval, self.photo_short_side = int(n_train), int(n_eval), int(photo_short_side)
        self.seed = int(seed)
        self.stream, self.flip, self.shuffle_buffer = bool(stream), bool(flip), int(shuffle_buffer)
        self._index: dict | None = None

    @property
    def streaming(self) -> bool:
        """Whether images are decoded on access (folder with ``stream``, shards) rather than held in memory."""
        return self.source == "shards" or (self.source == "folder" and self.stream)

    def load_arrays(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        if self.source == "photos":
            n = {s: self.n_train if s == "train" else self.n_eval for s in SPLITS}
            return {s: (torch.from_numpy(photo_crops(n[s], self.image_size, s, self.seed,
                                                     photo_short_side=self.photo_short_side,
                                                     channels=self.channels)),
                        torch.full((n[s],), -1, dtype=torch.long)) for s in SPLITS}
        if self.source == "digits":
            x, y = digits_arrays(self.image_size)
            if self.channels == 3:
                x = np.repeat(x, 3, axis=1)
            self.num_classes, self.class_names = 10, [str(i) for i in range(10)]
        else:
            x, y, names = load_image_folder(self.root, self.image_size, self.channels)
            self.num_classes, self.class_names = len(names), names
        idx = split_indices(len(x), y, self.val_fraction, self.test_fraction, self.seed)
        return {s: (torch.from_numpy(x[i]), torch.from_numpy(y[i])) for s, i in idx.items()}

    # -- streaming ---------------------------------------------------------------------------------
    def index(self) -> dict:
        """Index the streamed source once (file list or shard headers; nothing decoded)."""
        if self._index is None:
            if self.source == "folder":
                files, y, names = index_image_folder(self.root)
                idx = split_indices(len(files), y, self.val_fraction, self.test_fraction, self.seed)
                paths = np.asarray([str(f) for f in files])
                self._index = {s: (paths[i], y[i]) for s, i in idx.items()}
                self.num_classes, self.class_names = len(names), names
            else:
                self._index = index_shards(self.root, self.seed, self.val_fraction, self.test_fraction)
                self.num_classes = self._index["num_classes"]
                self.class_names = [str(i) for i in range(self.num_classes)]
        return self._index

    def _stream_dataset(self, split: str, augment: bool) -> Dataset:
        ix, train = self.index(), augment and split == "train"
        if self.source == "folder":
            files, y = ix[split]
            return ImageFolderDataset(files, y, self.image_size, self.channels, flip=self.flip and train)
        return ShardImageStream(ix["shards"], split, ix["counts"][split], self.image_size, self.channels,
                                self.seed, (self.val_fraction, self.test_fraction), workers=self.num_workers,
                                shuffle=train, flip=self.flip and train, shuffle_buffer=self.shuffle_buffer)

    def split_dataset(self, split: str) -> Dataset:
        if self.streaming:
            return self._stream_dataset(split, augment=True)
        x, y = self.arrays(split)
        return _FlippedTensors(x, y) if self.flip and split == "train" and self.source == "folder" \
            else TensorDataset(x, y)

    def plain_dataset(self, split: str) -> Dataset:
        return self._stream_dataset(split, augment=False) if self.streaming else super().plain_dataset(split)

    def arrays(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, labels) tensors of ``split``. A streamed source is decoded into memory here (one split;
        training never calls this for it)."""
        if not self.streaming:
            return super().arrays(split)
        if split not in self._arrays:
            log.info("decoding the whole %s split of '%s' into memory", split, self.root)
            xs, ys = zip(*plain_batches(self, split, self.batch_size), strict=True)
            self._arrays[split] = (torch.cat(xs), torch.cat(ys))
        return self._arrays[split]

    def setup(self, stage: str | None = None) -> None:
        if self.streaming:
            self.index()
            SplitDataModule.setup(self, stage)
        else:
            super().setup(stage)

    def loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.dataset(split)
        if not isinstance(ds, IterableDataset):
            return super().loader(split, shuffle)
        n = len(ds)  # type: ignore[arg-type]
        if n == 0:
            raise InputError(f"{type(self).__name__}: the {split} split is empty: use more data or another split")
        # the stream shuffles itself (shard order + sample buffer); a DataLoader may not shuffle it
        return DataLoader(ds, batch_size=self.batch_size, num_workers=self.num_workers,
                          drop_last=shuffle and n > self.batch_size, persistent_workers=self.num_workers > 0)


# ----------------------------------------------------------------------------- occupancy grids
def voxelize_mesh(mesh, resolution: int = 32, fill: float = 0.95) -> np.ndarray:
    """Occupancy (R, R, R) bool of a mesh centred and scaled so its half-diagonal is ``fill`` (fits [-1, 1]^3)."""
    from latent4d.geometry import MeshSDF
    from latent4d.geometry.meshing import grid_centers

    lo, hi = mesh.bounds
    half = 0.5 * float(np.linalg.norm(hi - lo))
    if not np.isfinite(half) or half <= 0:
        raise InputError("mesh has a degenerate bounding box")
    v = (np.asarray(mesh.vertices, np.float64) - 0.5 * (lo + hi)) / half * fill
    sdf = MeshSDF((v.astype(np.float32), np.asarray(mesh.faces)))
    occ = sdf.occupancy(grid_centers(resolution).numpy())
    return occ.reshape(resolution, resolution, resolution)


def read_mesh_occupancy(path: Path, resolution: int = 32) -> np.ndarray:
    """One mesh file (trimesh) voxelised by :func:`voxelize_mesh` -> (R, R, R) bool; InputError when it
    has no faces or no inside."""
    import trimesh

    mesh = trimesh.load(path, force="mesh")
    if len(mesh.faces) == 0:
        raise InputError("no faces")
    occ = voxelize_mesh(mesh, resolution)
    if not occ.any():
        raise InputError("empty occupancy (open or degenerate mesh)")
    return occ


def load_mesh_folder(root: str | Path, resolution: int = 32) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every mesh under ``root`` voxelised -> (N, R, R, R) bool, labels (from sub-folders or -1), names.

    Any failure to read one mesh skips it with a warning naming it; a folder without any readable
    mesh raises :class:`InputError`.
    """
    return read_folder(root, MESH_EXTENSIONS, ("mesh", "meshes"), lambda f: read_mesh_occupancy(f, resolution))


def objects_occupancy(per_category: int, resolution: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """The objects family's procedural objects (:mod:`latent4d.objects.synthetic`) voxelised."""
    try:
        from latent4d.objects.synthetic import CATEGORIES, make_object
    except ImportError as e:
        raise ConfigError("source=objects needs the objects family (latent4d.objects.synthetic); "
                          "use source=primitives instead") from e
    occ, labels = [], []
    for ci, cat in enumerate(CATEGORIES):
        for i in range(per_category):
            occ.append(voxelize_mesh(make_object(cat, seed * 100_003 + i, resolution=64).mesh, resolution))
            labels.append(ci)
    return {"occupancy": np.stack(occ), "labels": np.asarray(labels, np.int64),
            "names": np.asarray(CATEGORIES)}


class VoxelDataModule(_ArrayDataModule):
    """Occupancy grids (see the module docstring).

    source: ``primitives`` (default; analytic, fast) | ``objects`` (the objects family's procedural
    objects) | ``folder`` (with ``root``: any folder of meshes); resolution: R; n_per_category: shapes
    per category for the procedural sources (cached with :func:`latent4d.cache.cached_npz`).
    """

    def __init__(self, source: str = "primitives", root: str | None = None, resolution: int = 32,
                 n_per_category: int = 120, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 batch_size: int = 32, num_workers: int = 0, seed: int = 0, cache: bool = True):
        super().__init__(batch_size, num_workers)
        if source not in ("primitives", "objects", "folder"):
            raise ConfigError(f"unknown voxel source '{source}'; expected primitives, objects or folder")
        if source == "folder" and not root:
            raise ConfigError("source=folder needs data.root=<folder of meshes>")
        self.source, self.root, self.resolution = source, root, int(resolution)
        self.n_per_category = int(n_per_category)
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.seed, self.cache = int(seed), bool(cache)
        self.channels = 1

    def load_arrays(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        from latent4d.binary.synthetic import SHAPE_CATEGORIES, shape_dataset
        from latent4d.cache import cached_npz

        if self.source == "primitives":
            params = {"n": self.n_per_category, "R": self.resolution, "seed": self.seed, "v": 1}
            d = cached_npz("binary_primitives", params,
                           lambda: shape_dataset(self.n_per_category, self.resolution, self.seed), enabled=self.cache)
            occ, y, names = d["occupancy"], d["labels"], list(SHAPE_CATEGORIES)
        elif self.source == "objects":
            params = {"n": self.n_per_category, "R": self.resolution, "seed": self.seed, "v": 1}
            d = cached_npz("binary_objects", params,
                           lambda: objects_occupancy(self.n_per_category, self.resolution, self.seed),
                           enabled=self.cache)
            occ, y, names = d["occupancy"], d["labels"], [str(n) for n in d["names"]]
        else:
            occ, y, names = load_mesh_folder(self.root, self.resolution)
        self.num_classes, self.class_names = len(names), names
        x = occ.astype(np.float32)[:, None]
        idx = split_indices(len(x), y, self.val_fraction, self.test_fraction, self.seed)
        return {s: (torch.from_numpy(x[i]), torch.from_numpy(y[i])) for s, i in idx.items()}


# ----------------------------------------------------------------------------- latents
class LatentDataModule(_ArrayDataModule):
    """Latents of a trained autoencoder for diffusion training.

    autoencoder_path: an autoencoder run directory (``<run>/models/autoencoder`` + ``config.yaml``) or a
    ``save_pretrained`` folder. source: the image / voxel DataModule to encode; when None it is rebuilt
    from the autoencoder run's own ``config.yaml`` (same data, same split), which is the default.
    Every split is encoded once (deterministic: thresholded bits, or probabilities for a continuous AE).
    """

    def __init__(self, autoencoder_path: str | None = None, source: pl.LightningDataModule | None = None,
                 batch_size: int = 128, num_workers: int = 0, encode_batch_size: int = 256):
        super().__init__(batch_size, num_workers)
        if not autoencoder_path:
            raise ConfigError("diffusion training needs a trained autoencoder: pass autoencoder_path=<AE run dir> "
                              "(train one first, e.g. `latent4d train experiment=binary/ae_digits`)")
        self.autoencoder_path = str(autoencoder_path)
        self.source = source
        self.encode_batch_size = int(encode_batch_size)
        self.latent_shape: tuple[int, ...] = ()

    def load_arrays(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        from latent4d.binary.autoencoder import load_autoencoder

        ae, run_cfg = load_autoencoder(self.autoencoder_path)
        if self.source is None:
            if run_cfg is None:
                raise ConfigError(f"'{self.autoencoder_path}' has no run config.yaml next to it: pass the data "
                                  "to encode explicitly (data.source=...)")
            from latent4d.trust import instantiate_from_run

            if run_cfg.get("data") is None:
                raise ConfigError(f"autoencoder run '{self.autoencoder_path}': its config.yaml has no data section; "
                                  "pass the data to encode explicitly (data.source=...)")
            # a run folder is data: only binary-family data modules may be built from it (allow-list)
            self.source = instantiate_from_run(run_cfg.data, "binary",
                                               f"autoencoder run '{self.autoencoder_path}' config.yaml: data")
        self.source.setup()
        self.num_classes, self.class_names = self.source.num_classes, self.source.class_names
        out = {}
        for split in SPLITS:
            if getattr(self.source, "streaming", False):  # encode batch by batch, never the whole split
                zs, ys = [], []
                for x, y in plain_batches(self.source, split, self.encode_batch_size):
                    zs.append(ae.encode_latents_batched(x, self.encode_batch_size))
                    ys.append(y)
                out[split] = (torch.cat(zs), torch.cat(ys))
                continue
            x, y = self.source.arrays(split)
            out[split] = (ae.encode_latents_batched(x, self.encode_batch_size), y)
        self.latent_shape = tuple(out["train"][0].shape[1:])
        log.info("encoded %s latents %s with %s", {s: len(v[0]) for s, v in out.items()},
                 self.latent_shape, self.autoencoder_path)
        return out
