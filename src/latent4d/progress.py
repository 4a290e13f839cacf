"""Progress bars with an ETA for every long-running command (fits, reconstructions, evaluations,
benchmarks, demo stages).

One look everywhere: a rich bar on stderr (stdout stays clean for results and JSON) with the
description, the bar, done / total, elapsed time and the estimated time left; the bar disappears
when the work ends. ``LATENT4D_PROGRESS=0`` turns every bar off (logs of batch jobs).

Ctrl-C (``KeyboardInterrupt``) is never swallowed here: it closes the bar and propagates, and the
command line (``latent4d.cli``) turns it into exit status 130. Callers write their outputs only after
the work finished (``latent4d.fileio.atomic_path``), so an interrupted command leaves nothing half
written.

Work made of stages (``latent4d bench``, ``latent4d demo``) runs under :func:`overall`: one bar for the
whole run with the current stage's name, the elapsed time and, where an estimate of the total exists
(the last recorded run), "~X left of ~Y". Bars opened inside it (:func:`bar`, :func:`track`) join
its display as extra lines (the shared bar), and :func:`stage` names the current stage from anywhere
(a no-op when no overall bar runs).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

ENV = "LATENT4D_PROGRESS"
"""Environment variable: ``0`` / ``false`` / ``off`` turns every progress bar off."""


def enabled() -> bool:
    """Whether progress bars are shown (``LATENT4D_PROGRESS`` is not ``0`` / ``false`` / ``off``)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "off", "no")


def duration_text(seconds: float) -> str:
    """``"45 s"``, ``"3 min"`` (from 90 s on), ``"1 h 20 min"`` (from 90 min on)."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min"


def estimate_text(elapsed: float, expected: float | None) -> str:
    """What is left of a run expected to take ``expected`` seconds after ``elapsed`` seconds:
    ``"~1 min left of ~9 min"``; ``""`` without an estimate (nothing invented), and
    ``"over the ~9 min estimate"`` once it runs longer."""
    if expected is None or expected <= 0:
        return ""
    if elapsed >= expected:
        return f"over the ~{duration_text(expected)} estimate"
    return f"~{duration_text(expected - elapsed)} left of ~{duration_text(expected)}"


class Overall:
    """A run made of stages (:func:`overall`): its label, the expected total (seconds, or None), the current
    stage's name and the elapsed time. ``stage(name)`` names the stage now running; ``expect(seconds)``
    revises the expected total (e.g. elapsed + what the remaining stages are expected to take)."""

    def __init__(self, label: str, expected: float | None, on_change: Callable[[], None] | None = None):
        self.label, self.expected, self.stage_name = label, expected, ""
        self.interrupted = False  # set by Ctrl-C (SIGINT) while the run is open
        self.t0 = time.perf_counter()
        self._on_change = on_change

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.t0

    def description(self) -> str:
        return f"{self.label}: {self.stage_name}" if self.stage_name else self.label

    def stage(self, name: str) -> None:
        self.stage_name = str(name)
        if self._on_change is not None:
            self._on_change()

    def expect(self, seconds: float | None) -> None:
        self.expected = seconds if seconds is None else max(0.0, float(seconds))
        if self._on_change is not None:
            self._on_change()

    def left_text(self) -> str:
        """:func:`estimate_text` of this run now."""
        return estimate_text(self.elapsed, self.expected)


_ACTIVE: list[Any] = []
"""The shared rich ``Progress`` of the outermost :func:`overall`, while one runs (bars join it)."""
_RUNS: list[Overall] = []
"""The :class:`Overall` runs now open, innermost last."""


def stage(name: str) -> None:
    """Name the stage now running in the innermost :func:`overall` run; nothing when none runs."""
    if _RUNS:
        _RUNS[-1].stage(name)


def current() -> Overall | None:
    """The innermost :func:`overall` run, or None."""
    return _RUNS[-1] if _RUNS else None


def _columns():
    """The columns of every bar: count bars show done / total and an ETA; the overall bar of a staged run
    (task field ``run``) fills with elapsed / expected time and shows "~X left of ~Y" (nothing without
    an estimate, its bar then pulses)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressBar,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Bar(BarColumn):
        def render(self, task):
            run = task.fields.get("run")
            if run is None:
                return super().render(task)
            total = run.expected if run.expected else None
            done = min(run.elapsed, 0.99 * total) if total else 0.0
            return ProgressBar(
                total=total,
                completed=done,
                width=self.bar_width,
                pulse=total is None,
                animation_time=task.get_time(),
                style=self.style,
                complete_style=self.complete_style,
                finished_style=self.finished_style,
                pulse_style=self.pulse_style,
            )

    class Count(MofNCompleteColumn):
        def render(self, task):
            return Text("") if "run" in task.fields else super().render(task)

    class Left(ProgressColumn):
        eta = TimeRemainingColumn()

        def render(self, task):
            run = task.fields.get("run")
            if run is not None:
                return Text(run.left_text(), style="progress.remaining")
            return Text("eta ") + self.eta.render(task)

    return (TextColumn("{task.description}"), Bar(), Count(), TimeElapsedColumn(), Left())


def _progress():
    """A rich ``Progress`` on stderr with :func:`_columns` that disappears when it ends; it takes over
    stdout only when stdout is the terminal too (results piped to a file stay in that file)."""
    from rich.console import Console
    from rich.progress import Progress

    return Progress(
        *_columns(), console=Console(stderr=True), transient=True, redirect_stdout=sys.stdout.isatty()
    )


@contextmanager
def _step_aside(p) -> Iterator[None]:
    """While another live display runs on rich's global console (Lightning's progress bar during a fit
    inside a bench or a demo stage), the shared display ``p`` stops (erasing itself) and comes back when
    that one ends: two live displays on one terminal would overwrite each other. Checked every 0.1 s."""
    import threading

    import rich

    if not p.console.is_terminal:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            busy = bool(getattr(rich.get_console(), "_live_stack", None))
            if busy and p.live.is_started:
                p.stop()
            elif not busy and not p.live.is_started and not done.is_set():
                p.start()

    thread = threading.Thread(target=watch, name="latent4d-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


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
    if _ACTIVE:  # inside an overall run: one more line of its display
        shared = _ACTIVE[-1]
        task = shared.add_task(label, total=total)

        def advance_shared(n: int = 1) -> None:
            shared.advance(task, n)

        try:
            yield advance_shared
        finally:
            shared.remove_task(task)
        return
    with _progress() as p:
        task = p.add_task(label, total=total)

        def advance(n: int = 1) -> None:
            p.advance(task, n)

        yield advance


@contextmanager
def overall(label: str, expected: float | None = None) -> Iterator[Overall]:
    """One bar for a run made of stages; yields its :class:`Overall` (``stage(name)``, ``expect(s)``).

    ``expected``: the run's expected total in seconds (e.g. from its last recorded run); None shows
    the elapsed time and stage names only. Bars opened inside join this display; a nested
    ``overall`` adds its line to the outer one. With bars off (:func:`enabled`) nothing is drawn, and the
    yielded run still keeps its stage name and elapsed time (for messages). Ctrl-C inside it is a
    ``KeyboardInterrupt`` (``run.interrupted`` set), also when Lightning caught it during a fit and
    exited instead (:func:`_ctrl_c`)."""
    run = Overall(label, expected)
    _RUNS.append(run)
    try:
        with _ctrl_c(run), _display(run):
            yield run
    finally:
        _RUNS.remove(run)


@contextmanager
def _display(run: Overall) -> Iterator[None]:
    """The overall bar of ``run``: a line of the shared display when one is up, else a new display that
    bars opened inside join."""
    if not enabled():
        yield
        return
    if _ACTIVE:
        shared = _ACTIVE[-1]
        task = shared.add_task(run.description(), total=None, run=run)
        run._on_change = lambda: shared.update(task, description=run.description())
        try:
            yield
        finally:
            shared.remove_task(task)
        return
    with _progress() as p, _step_aside(p):
        task = p.add_task(run.description(), total=None, run=run)
        run._on_change = lambda: p.update(task, description=run.description())
        _ACTIVE.append(p)
        try:
            yield
        finally:
            _ACTIVE.remove(p)


@contextmanager
def _ctrl_c(run: Overall) -> Iterator[None]:
    """Ctrl-C (SIGINT) marks ``run.interrupted`` and raises ``KeyboardInterrupt`` as usual. Lightning's
    ``Trainer.fit`` catches that one, ignores SIGINT and calls ``sys.exit(1)``: a ``SystemExit`` after a
    Ctrl-C becomes a ``KeyboardInterrupt`` again here (so the command exits with 130), and the previous
    SIGINT handler is restored. Outside the main thread (no signals there) this only passes through."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum, frame):
        run.interrupted = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except SystemExit:
        if run.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


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
