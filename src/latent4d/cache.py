"""On-disk cache for procedural datasets (deterministic builders keyed by their parameters)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from latent4d.fileio import atomic_path


def cache_root() -> Path:
    """``$LATENT4D_CACHE`` or ``~/.cache/latent4d``."""
    return Path(os.environ.get("LATENT4D_CACHE", Path.home() / ".cache" / "latent4d"))


def cache_key(params: dict) -> str:
    """Stable short hash of JSON-serialisable parameters."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def cached_npz(name: str, params: dict, build: Callable[[], dict[str, np.ndarray]],
               cache_dir: str | Path | None = None, enabled: bool = True) -> dict[str, np.ndarray]:
    """Load ``<cache>/<name>-<hash(params)>.npz`` or build it with ``build()`` and store it atomically.

    A corrupt cache file is rebuilt, never trusted.
    """
    if not enabled:
        return build()
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    path = root / f"{name}-{cache_key(params)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception:  # noqa: BLE001 - corrupt cache: rebuild
            path.unlink(missing_ok=True)
    data = build()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **data)  # type: ignore[arg-type]  # numpy stubs: **arrays
    return data
