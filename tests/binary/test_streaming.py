"""Streaming image data for binary latent diffusion: lazy image folders and webdataset tar shards
(bounded memory, random flips, DataLoader workers, untrusted input)."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from latent4d.binary import data as bd
from latent4d.binary.data import ImageDataModule, ImageFolderDataset, ShardImageStream, index_shards
from latent4d.errors import ConfigError, InputError


def _png_bytes(value: int, size=(4, 4), mode="L") -> bytes:
    """A ``size`` image of ``value`` (< 255) with a white left column (so a horizontal flip shows)."""
    from PIL import Image

    a = np.full((size[1], size[0]), value, np.uint8)
    a[:, 0] = 255
    buf = io.BytesIO()
    Image.fromarray(a, mode="L").convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_png_header(w=10000, h=6000) -> bytes:
    """A 60 Mpixel PNG header with a few bytes of pixel data (Pillow's own limit is 89 M): must be refused
    from its header, before decoding."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


def _folder(root, n_per_class=6):
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            (root / c / f"{i:03d}.png").write_bytes(_png_bytes(10 * i + (100 if c == "b" else 0)))
    (root / "a" / "broken.png").write_bytes(b"not an image")
    (root / "b" / "huge.png").write_bytes(_huge_png_header())
    return root


def _folder_dm(root, **kw):
    args = dict(source="folder", root=str(root), image_size=4, channels=1, val_fraction=0.2, test_fraction=0.2,
                batch_size=3, seed=0)
    return ImageDataModule(**{**args, **kw})


def test_folder_streams_the_same_images_as_the_in_memory_path(tmp_path):
    root = _folder(tmp_path / "imgs")
    dm = _folder_dm(root)
    with pytest.warns(UserWarning) as rec:
        dm.setup("fit")
    skipped = " ".join(str(w.message) for w in rec)
    assert "broken.png" in skipped and "huge.png" in skipped and "10000x6000" in skipped
    assert dm.streaming and isinstance(dm.dataset("train"), ImageFolderDataset)
    assert dm.num_classes == 2 and dm.class_names == ["a", "b"]
    old = _folder_dm(root, stream=False)
    with pytest.warns(UserWarning):
        old.setup("fit")
    for split in ("val", "test"):
        xs, ys = zip(*dm.loader(split, False), strict=True)
        x_old, y_old = old.arrays(split)
        assert torch.equal(torch.cat(xs), x_old) and torch.equal(torch.cat(ys), y_old)
    # the dataset holds paths and labels only: no pixel array anywhere in it
    ds = dm.dataset("train")
    assert not any(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in vars(ds).values())
    assert sum(len(dm.dataset(s)) for s in ("train", "val", "test")) == 12


def test_training_flips_half_the_time_evaluation_never(tmp_path):
    root = _folder(tmp_path / "imgs")
    with pytest.warns(UserWarning):
        dm = _folder_dm(root)
        dm.setup()
    torch.manual_seed(0)
    train = dm.dataset("train")
    x0 = dm.plain_dataset("train")[0][0]
    draws = [train[0][0] for _ in range(40)]
    flipped = sum(torch.equal(d, x0.flip(-1)) for d in draws)
    assert all(torch.equal(d, x0) or torch.equal(d, x0.flip(-1)) for d in draws)
    assert not torch.equal(x0, x0.flip(-1)) and 5 < flipped < 35
    val = dm.dataset("val")
    assert all(torch.equal(val[0][0], val[0][0]) for _ in range(5))
    assert not _folder_dm(root, flip=False).flip


def test_a_file_that_breaks_after_indexing_is_a_clear_error(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(4):
        (root / f"{i}.png").write_bytes(_png_bytes(40 * i))
    ds = ImageFolderDataset(sorted(root.glob("*.png")), np.full(4, -1), image_size=4, channels=1)
    assert ds[2][0].shape == (1, 4, 4)
    (root / "2.png").write_bytes(_png_bytes(7)[:30])  # truncated after the index was built
    with pytest.raises(InputError, match=r"2\.png.*could not be decoded.*remove or replace"):
        ds[2]
    (root / "3.png").write_bytes(_huge_png_header())
    with pytest.raises(InputError, match=r"3\.png.*10000x6000"):
        ds[3]


def test_folder_loader_works_with_workers(tmp_path):
    root = _folder(tmp_path / "imgs", n_per_class=8)
    with pytest.warns(UserWarning):
        dm = _folder_dm(root, num_workers=2, batch_size=2, flip=False)
        dm.setup()
    xs, ys = zip(*dm.loader("val", False), strict=True)
    ref = torch.stack([dm.plain_dataset("val")[i][0] for i in range(len(dm.dataset("val")))])
    assert torch.equal(torch.cat(xs), ref)


# ----------------------------------------------------------------------------- shards
def _shards(root, sizes=(7, 5, 9), labels=True):
    root.mkdir(parents=True, exist_ok=True)
    value = 0
    for s, n in enumerate(sizes):
        with tarfile.open(root / f"part-{s:04d}.tar", "w") as tf:
            for _ in range(n):
                members = {f"s{value:05d}.png": _png_bytes(value)}
                if labels:
                    members[f"s{value:05d}.cls"] = str(value % 3).encode()
                members[f"s{value:05d}.pyd"] = b"\x80\x04 never unpickled"
                for name, data in members.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
                value += 1
    return root


def _values(batches) -> list[int]:
    """Each sample's id: its pixel value (4 x 4 images read at 4 px: no resampling; the white column aside)."""
    return [round(float(x.min()) * 255) for b in batches for x in b[0]]


def _split_ids(n, seed=0, fr=(0.2, 0.2)):
    return {s: {i for i in range(n) if bd.shard_split(f"s{i:05d}", seed, *fr) == s} for s in ("train", "val", "test")}


def test_shards_index_split_and_stream_every_sample_once(tmp_path):
    root = _shards(tmp_path / "shards")
    ix = index_shards(str(root), 0, 0.2, 0.2)
    ids = _split_ids(21)
    assert len(ix["shards"]) == 3 and ix["num_classes"] == 3
    assert {s: ix["counts"][s] for s in ids} == {s: len(v) for s, v in ids.items()}
    assert ix["counts"]["val"] and ix["counts"]["test"]
    dm = ImageDataModule(source="shards", root=str(root / "part-{0000..0002}.tar"), image_size=4, channels=1,
                         val_fraction=0.2, test_fraction=0.2, batch_size=4, seed=0, shuffle_buffer=4)
    dm.setup()
    assert dm.num_classes == 3 and isinstance(dm.dataset("train"), ShardImageStream)
    for split in ("train", "val", "test"):
        batches = list(dm.loader(split, split == "train"))
        got = _values(batches)
        if split == "train":  # shuffled, flipped, drops the last partial batch
            assert len(got) == len(ids[split]) // 4 * 4 and set(got) <= ids[split]
        else:
            assert sorted(got) == sorted(ids[split])
            labels = torch.cat([b[1] for b in batches]).tolist()
            assert labels == [v % 3 for v in got]


@pytest.mark.parametrize("sizes", [(7, 5, 9), (21,)])
def test_shard_stream_deals_work_to_dataloader_workers(tmp_path, sizes):
    """Whole shards per worker when there are enough, else every worker keeps every n-th sample; each
    worker yields the same number of samples."""
    root = _shards(tmp_path / "shards", sizes)
    ix = index_shards(str(root), 0, 0.2, 0.2)
    ids = _split_ids(21)
    ds = ShardImageStream(ix["shards"], "val", ix["counts"]["val"], 4, 1, 0, (0.2, 0.2), workers=2)
    n = len(ds)
    assert n == 2 * (len(ids["val"]) // 2)
    loader = DataLoader(ds, batch_size=1, num_workers=2)
    got = _values(loader)
    assert len(got) == n and set(got) <= ids["val"]
    if len(sizes) == 1:  # one shard: disjoint samples per worker
        assert len(set(got)) == n


def test_shards_refuse_urls_commands_and_oversized_members(tmp_path, monkeypatch):
    for root in ("pipe:cat /etc/passwd", "https://example.com/x-{0..3}.tar"):
        with pytest.raises(ConfigError, match="local"):
            bd.expand_shards(root)
    with pytest.raises(InputError, match="not found"):
        bd.expand_shards(str(tmp_path / "missing-{0..1}.tar"))
    with pytest.raises(ConfigError, match="data.root"):
        ImageDataModule(source="shards")
    root = _shards(tmp_path / "shards", (3,))
    (root / "junk.tar").write_bytes(b"\x00" * 10 + b"definitely not a tar archive" * 40)
    with pytest.warns(UserWarning, match="junk.tar"):
        ix = index_shards(str(root), 0, 0.2, 0.2)
    assert len(ix["shards"]) == 1
    monkeypatch.setattr(bd, "MAX_MEMBER_BYTES", 16)
    with pytest.raises(InputError, match="s00000.png.*bytes"):
        index_shards(str(root / "part-0000.tar"), 0, 0.2, 0.2)


def test_gan_autoencoder_trains_from_shards_with_workers_and_accumulation(tmp_path):
    """The config path end to end: data=binary_shards with 2 DataLoader workers, the GAN autoencoder with
    model.accumulate_grad_batches=2 (tiny sizes)."""
    from latent4d.train import compose_config, run_training

    root = _shards(tmp_path / "shards", (12, 12, 12), labels=False)
    cfg = compose_config(["experiment=binary/ae_images", "data=binary_shards", f"data.root={root}",
                          "data.image_size=16", "data.channels=1", "data.batch_size=4", "data.num_workers=2",
                          "data.val_fraction=0.2", "data.test_fraction=0.2", "model.autoencoder.in_channels=1",
                          "model.autoencoder.channels=[8]", "model.autoencoder.sample_size=16",
                          "model.autoencoder.latent_channels=4", "model.gan_start=0",
                          "model.accumulate_grad_batches=2", "trainer.max_epochs=1", "callbacks=minimal",
                          "logger=csv"], tmp_path / "run")
    m = run_training(cfg)
    assert m["test/psnr"] > 0 and "train/d_loss" in m
    assert (tmp_path / "run" / "models" / "autoencoder" / "config.json").is_file()
