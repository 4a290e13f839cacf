"""Atomic file writing: nothing half-written is ever left at the destination."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary file keeps ``path``'s extension (writers such as Open3D and trimesh pick the
    format from it). If the body raises, the temporary file is removed and ``path`` keeps its
    previous content (or stays absent).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    _usual_mode(tmp_path, path, 0o666)
    try:
        yield tmp_path
        if not tmp_path.exists() or tmp_path.stat().st_size == 0:
            raise OSError(f"{path}: writer produced no data")
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(tmp: Path, final: Path, base: int) -> None:
    """Give a temporary file / folder the mode a plain ``open`` / ``mkdir`` would (``base & ~umask``),
    or the mode of the file it replaces (``mkstemp`` / ``mkdtemp`` create them private)."""
    try:
        mode = final.stat().st_mode & 0o777 if final.exists() else base & ~_umask()
        os.chmod(tmp, mode)
    except OSError:
        pass


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (NaN written as null-safe strings are not allowed)."""
    text = json.dumps(obj, indent=indent, default=_json_default)
    return write_bytes_atomic(path, (text + "\n").encode())


def _json_default(o: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(o, torch.Tensor):
        return o.detach().cpu().tolist()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, marker: str | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; on success it replaces ``path`` whole.

    The body writes every output file into the yielded folder. If the body raises, the temporary
    folder is removed and ``path`` keeps exactly what it had. On success an existing ``path`` is
    moved aside, the new folder renamed onto it, and the old one deleted. With ``marker``, an
    existing non-empty ``path`` that lacks that file (so is not an earlier output of the same
    command) is refused before anything is written (:func:`latent4d.options.check_output_dir`).
    """
    import shutil

    from latent4d.options import check_output_dir

    path = Path(path)
    check_output_dir(path, marker=marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    _usual_mode(tmp, path, 0o777)
    old: Path | None = None
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            old.rmdir()
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        if old is not None and old.exists() and not path.exists():
            os.replace(old, path)  # put the earlier output back
            old = None
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
