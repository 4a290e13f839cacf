"""Independent pieces of inference work on several CPU cores: forked worker processes, one torch
thread each (what PyTorch's DataLoader workers do).

PyTorch's intra-op threads hardly help the small, sequential tensor work of a per-object
optimisation (two threads: 20.3 s against 24.1 s per frame of 5 objects), while two processes each
refining their own objects use both cores fully. :func:`map_processes` runs ``fn(item)`` for every
item on up to ``workers`` processes forked from this one, so ``fn`` may be a closure over large
in-memory inputs (networks, frames): only the items go to the workers (pickled) and the results come
back (pickled: they are this program's own objects, never a user's file). Results keep the order of the
items; an exception in a worker is raised here. Ctrl-C terminates the workers (they ignore SIGINT
themselves) and propagates as ``KeyboardInterrupt``.

Workers are forked on Linux only (macOS forbids forking once system frameworks are loaded; Windows has
no fork); elsewhere, and inside a worker, the items run one after another in this process, with the same
results (every random choice in latent4d's inference is seeded per item).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from latent4d import progress

T = TypeVar("T")
R = TypeVar("R")

WORKER_ENV = "LATENT4D_WORKER"
"""Set (to ``1``) inside a worker process: nested calls run in that process."""

_TASK: Callable[[Any], Any] | None = None  # the function of the current map (inherited by the forked workers)


def cpu_count() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether worker processes can be forked here (Linux, not inside a worker)."""
    return (sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()
            and os.environ.get(WORKER_ENV) != "1")


OVERSUBSCRIBE = 4
"""``workers=0`` starts up to this many processes per CPU core."""


def resolve_workers(workers: int, n_items: int) -> int:
    """Processes used for ``n_items`` items: ``workers`` (0: one per item, up to :data:`OVERSUBSCRIBE`
    per CPU core), at most one per item, 1 where workers cannot be forked.

    Why more processes than cores: the OS then shares the cores among all items, so uneven work ends
    together (5 objects on 2 cores: 13.9 s per frame with 5 processes, 17.1 s with 2, where one process
    refines 3 objects while the other idles after 2)."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0: one per item, up to {OVERSUBSCRIBE} per CPU core), got {workers}")
    n = OVERSUBSCRIBE * cpu_count() if workers == 0 else workers
    return max(1, min(n, n_items)) if can_fork() else 1


def _init_worker() -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates the pool
    # a progress display of the parent may have redirected the standard streams through its console, whose
    # lock a display thread (not copied by fork) could hold: write to the real streams instead
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    os.environ[WORKER_ENV] = "1"
    os.environ[progress.ENV] = "0"  # the parent shows the progress
    torch.set_num_threads(1)


def _call(indexed: tuple[int, Any]) -> tuple[int, Any]:
    i, item = indexed
    assert _TASK is not None
    return i, _TASK(item)


def map_processes(fn: Callable[[T], R], items: Sequence[T], workers: int = 0, label: str = "working",
                  min_bar: int = 2) -> list[R]:
    """``[fn(item) for item in items]`` on up to ``workers`` forked processes (0: see
    :func:`resolve_workers`; 1 or a single item: in this process), with a progress bar when there are
    ``min_bar`` items or more."""
    global _TASK
    items = list(items)
    n = resolve_workers(workers, len(items))
    if n <= 1 or _TASK is not None:  # _TASK: a map already running in this process (a thread): keep it
        return [fn(x) for x in progress.track(items, label, min_total=min_bar)]
    out: list[Any] = [None] * len(items)
    _TASK = fn
    try:
        pool = mp.get_context("fork").Pool(n, initializer=_init_worker)
        try:
            with progress.bar(len(items), f"{label} ({n} processes)", show=len(items) >= min_bar) as advance:
                for i, r in pool.imap_unordered(_call, list(enumerate(items))):
                    out[i] = r
                    advance(1)
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    finally:
        _TASK = None
    return out


__all__ = ["OVERSUBSCRIBE", "WORKER_ENV", "can_fork", "cpu_count", "map_processes", "resolve_workers"]
