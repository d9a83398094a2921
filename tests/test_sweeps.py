"""Sweeps: the worker pool kept between calls, and the same rows on a Dask cluster."""

from __future__ import annotations

import gc

import pandas as pd
import pytest

import rtclab
from rtclab import sweeps

KW = dict(trials=3, grid={"signaling_latency_ms": [10, 100]}, progress=False, seed=8)


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    cols = [c for c in a.columns if c != "wall_s"]  # wall time is the only column allowed to differ
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a[cols], b[cols])


@pytest.fixture
def fresh_pool():
    """No kept pool before the test, none left after it."""
    sweeps.shutdown()
    yield
    sweeps.shutdown()


def test_the_worker_pool_is_kept_between_sweeps_and_closed_on_demand(fresh_pool) -> None:
    """Two sweeps on 2 workers share one pool of the same processes; shutdown() ends them."""
    first = rtclab.sweep("counteroffer", workers=2, **KW)
    pool = sweeps._pool_state["pool"]
    assert pool is not None
    pids = sorted(p.pid for p in pool._processes.values())  # type: ignore[attr-defined]
    processes = list(pool._processes.values())  # type: ignore[attr-defined]
    second = rtclab.sweep("counteroffer", workers=2, **KW)
    assert sweeps._pool_state["pool"] is pool
    assert sorted(p.pid for p in pool._processes.values()) == pids  # type: ignore[attr-defined]
    _same_rows(first, second)
    _same_rows(first, rtclab.sweep("counteroffer", workers=1, **KW))
    sweeps.shutdown()
    assert sweeps._pool_state["pool"] is None
    assert all(not p.is_alive() for p in processes)
    sweeps.shutdown()  # a second call is a no-op


def test_pool_workers_freeze_their_imports_out_of_the_gc(fresh_pool) -> None:
    """Each kept worker has imported rtclab and frozen it (gc.freeze) before its first trial."""
    pool = sweeps._pool(2)
    counts = [pool.submit(gc.get_freeze_count).result(timeout=120) for _ in range(2)]
    assert all(c > 10_000 for c in counts), counts


def test_sweep_on_a_dask_cluster_gives_the_local_rows(fresh_pool) -> None:
    """executor=client.get_executor(pure=False) on a 2-process LocalCluster: identical rows."""
    distributed = pytest.importorskip("dask.distributed")
    local = rtclab.sweep(["counteroffer", "answer-on-click"], workers=1, **KW)
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        remote = rtclab.sweep(["counteroffer", "answer-on-click"], executor=client.get_executor(pure=False), **KW)
        frozen = client.run(gc.get_freeze_count)
    _same_rows(local, remote)
    assert list(remote["trial"]) == list(range(12))
    assert set(remote["outcome"]) == {"connected"}
    assert len(frozen) == 2 and all(c > 10_000 for c in frozen.values()), frozen


def test_a_kept_pool_does_not_keep_python_from_exiting() -> None:
    """A script that sweeps on 2 workers and ends exits cleanly: the pool is closed at exit."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "import rtclab, rtclab.sweeps as s\n"
        "if __name__ == '__main__':\n"
        "    df = rtclab.sweep('basic', trials=2, workers=2, progress=False)\n"
        "    pids = [p.pid for p in s._pool_state['pool']._processes.values()]\n"
        "    print(len(df), *pids)\n"
    ) % str(root)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    n, *pids = proc.stdout.split()
    assert n == "2" and len(pids) == 2
    for pid in pids:  # the workers are gone too
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_kept_pool_whose_worker_died_is_replaced(fresh_pool) -> None:
    """If a kept worker dies between sweeps, the next sweep starts a new pool and gives the same rows."""
    import os
    import signal
    import time

    first = rtclab.sweep("counteroffer", workers=2, **KW)
    pool = sweeps._pool_state["pool"]
    victim = next(iter(pool._processes.values()))  # type: ignore[attr-defined]
    os.kill(victim.pid, signal.SIGKILL)
    for _ in range(600):  # bounded poll: the executor notices the dead worker
        if getattr(pool, "_broken", False):
            break
        time.sleep(0.05)
    assert pool._broken  # type: ignore[attr-defined]
    again = rtclab.sweep("counteroffer", workers=2, **KW)
    assert sweeps._pool_state["pool"] is not pool
    _same_rows(first, again)
