"""latent4d.parallel: forked workers give the sequential results in order, see closures over large
inputs, raise a worker's error here and never nest."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from latent4d import parallel
from latent4d.errors import InputError

needs_fork = pytest.mark.skipif(not parallel.can_fork(), reason="no fork start method here")


def test_resolve_workers():
    assert parallel.resolve_workers(1, 10) == 1
    assert parallel.resolve_workers(8, 1) == 1  # at most one process per item
    if parallel.can_fork():
        assert parallel.resolve_workers(3, 10) == 3
        assert parallel.resolve_workers(0, 5) == min(5, parallel.OVERSUBSCRIBE * parallel.cpu_count())
        assert parallel.resolve_workers(0, 1000) == parallel.OVERSUBSCRIBE * parallel.cpu_count()
    with pytest.raises(ValueError, match="workers must be >= 0"):
        parallel.resolve_workers(-1, 3)


@needs_fork
def test_results_in_order_and_equal_to_sequential():
    big = torch.randn(200_000)  # reached through the closure, never pickled

    def work(i: int) -> tuple[int, float, int, str]:
        g = torch.Generator().manual_seed(i)
        return i, float((big[:1000] * torch.randn(1000, generator=g)).sum()), os.getpid(), \
            os.environ.get(parallel.WORKER_ENV, "")

    seq = parallel.map_processes(work, range(7), workers=1)
    par = parallel.map_processes(work, range(7), workers=2)
    assert [r[:2] for r in par] == [r[:2] for r in seq]
    assert {r[2] for r in seq} == {os.getpid()} and os.getpid() not in {r[2] for r in par}
    assert {r[3] for r in par} == {"1"} and parallel._TASK is None


@needs_fork
def test_worker_error_is_raised_here_and_nothing_nests():
    def work(i: int):
        if i == 3:
            raise InputError(f"item {i} is bad")
        # inside a worker a nested map runs in that process
        return parallel.map_processes(lambda j: (j, os.getpid()), [0, 1], workers=2)

    with pytest.raises(InputError, match="item 3 is bad"):
        parallel.map_processes(work, range(5), workers=2)
    assert parallel._TASK is None
    out = parallel.map_processes(work, [0, 1], workers=2)
    for inner in out:
        assert len({pid for _, pid in inner}) == 1 and inner[0][1] != os.getpid()
    assert np.array_equal([j for j, _ in out[0]], [0, 1])


@needs_fork
def test_ctrl_c_terminates_the_workers(tmp_path):
    """SIGINT to the parent while workers run: KeyboardInterrupt here, every worker gone, promptly."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "run.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal\n"
        "from latent4d import parallel\n"
        "def work(i):\n"
        "    open(os.path.join(sys.argv[1], f'pid{os.getpid()}'), 'w').close()\n"
        "    time.sleep(60)\n"
        "try:\n"
        "    parallel.map_processes(work, range(4), workers=2)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(130)\n")
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while len(list(tmp_path.glob("pid*"))) < 2 and time.time() < deadline:
        time.sleep(0.1)
    pids = [int(p.name[3:]) for p in tmp_path.glob("pid*")]
    assert len(pids) == 2
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in out and time.time() - t0 < 30
    for pid in pids:  # the workers are gone (not left sleeping)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
