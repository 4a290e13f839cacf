"""Progress bars with an ETA for every long-running command (fits, reconstructions, evaluations,
benchmarks, demo stages).

One look everywhere: a rich bar on stderr (stdout stays clean for results and JSON) with the
description, the bar, done / total, elapsed time and the estimated time left; the bar disappears
when the work ends. ``LATENT4D_PROGRESS=0`` turns every bar off (logs of batch jobs).

Ctrl-C (``KeyboardInterrupt``) is never caught here: it closes the bar and propagates, and the
command line (``latent4d.cli``) turns it into exit status 130. Callers write their outputs only after
the work finished (``latent4d.fileio.atomic_path``), so an interrupted command leaves nothing half
written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

ENV = "LATENT4D_PROGRESS"
"""Environment variable: ``0`` / ``false`` / ``off`` turns every progress bar off."""


def enabled() -> bool:
    """Whether progress bars are shown (``LATENT4D_PROGRESS`` is not ``0`` / ``false`` / ``off``)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "off", "no")


def _columns():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )


def _nothing(n: int = 1) -> None:
    """The ``advance`` of a bar that is not drawn."""


@contextmanager
def bar(total: int, label: str, show: bool = True) -> Iterator[Callable[[int], None]]:
    """A progress bar over ``total`` units of work; yields ``advance(n=1)``.

    Nothing is drawn when ``show`` is false, ``total <= 0`` or bars are off (:func:`enabled`); the
    yielded function then does nothing."""
    if not show or total <= 0 or not enabled():
        yield _nothing
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(*_columns(), console=Console(stderr=True), transient=True) as p:
        task = p.add_task(label, total=total)

        def advance(n: int = 1) -> None:
            p.advance(task, n)

        yield advance


def track(items: Iterable[T], label: str, total: int | None = None, min_total: int = 1) -> Iterator[T]:
    """``items`` one by one, with a progress bar when there are at least ``min_total`` of them.

    ``total`` defaults to ``len(items)``; an iterable without a length and no ``total`` is passed
    through without a bar."""
    if total is None:
        total = len(items) if hasattr(items, "__len__") else 0  # type: ignore[arg-type]
    with bar(total, label, show=total >= min_total) as advance:
        for item in items:
            yield item
            advance(1)
