"""Many runs at once: one row per trial, seeded so results do not depend on workers.

Local sweeps run in a pool of worker processes that is kept between
:func:`sweep` calls (starting a worker and importing pandas and aiortc in it
costs more than a hundred short trials), closed at interpreter exit or by
:func:`shutdown`. Any :class:`concurrent.futures.Executor` can run the trials
instead, which is how a sweep goes past one machine: a Dask cluster's
``client.get_executor(pure=False)``.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import gc
import itertools
import multiprocessing
import os
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from .flows import AppCode, Flow

__all__ = ["shutdown", "sweep", "trial_seed"]


def trial_seed(seed: int, index: int) -> int:
    """The seed of trial ``index`` of a sweep seeded with ``seed`` (pure function).

    Examples
    --------
    >>> trial_seed(0, 0) == trial_seed(0, 0), trial_seed(0, 0) != trial_seed(0, 1)
    (True, True)
    """
    return (int(seed) * 1_000_003 + int(index) * 7_919 + 12_345) % (2**31 - 1)


_warm = False


def _warm_worker() -> None:
    """Import everything a trial needs, then move it out of the GC's sight.

    ``gc.freeze()`` after the imports keeps the tens of thousands of
    long-lived objects of pandas, aiortc and rtclab out of every later
    collection, so full (generation 2) collections during trials stay cheap.
    Runs once per process: as a pool's initializer, or at a worker's first
    trial under any other executor (Dask).
    """
    global _warm
    if _warm:
        return
    _warm = True
    from . import lab, metrics, network  # noqa: F401  (imported for their side effect: loaded modules)

    gc.collect()
    gc.freeze()


def _flow_payload(flow: Flow) -> str | bytes:
    """What a job carries to name its flow: the catalogue name, or the pickled Flow.

    A learner's own flow is made of functions defined in a notebook
    (``__main__``) or in code run from a string. The standard library's
    pickle sends functions by reference (module + name), which a worker
    process cannot import, so own flows travel *by value* with cloudpickle:
    the code, defaults and closure of each app go into the job.
    """
    from .flows import FLOWS

    if FLOWS.get(flow.name) is flow:
        return flow.name
    import cloudpickle

    return cloudpickle.dumps(flow)


@lru_cache(maxsize=8)
def _load_flow(payload: str | bytes) -> str | Flow:
    """The flow of a job (unpickled once per process, then reused)."""
    if isinstance(payload, str):
        return payload
    import cloudpickle

    flow: Flow = cloudpickle.loads(payload)
    return flow


def _trial(job: tuple[str | bytes, dict[str, Any]]) -> dict[str, Any]:
    from .flows import get_flow
    from .lab import run

    if not _warm and _in_worker():
        _warm_worker()
    payload, params = job
    flow = get_flow(_load_flow(payload))
    r = run(flow, **params)
    row: dict[str, Any] = {"flow": flow.name, **params}
    row.update(r.metrics.to_dict())
    row["wall_s"] = round(r.wall_s, 4)
    return row


def sweep(
    flow: str | Flow | Iterable[str | Flow] | None = None,
    *,
    caller: AppCode | None = None,
    callee: AppCode | None = None,
    trials: int = 10,
    grid: Mapping[str, Iterable[Any]] | None = None,
    seed: int = 0,
    workers: int | None = None,
    executor: concurrent.futures.Executor | None = None,
    progress: bool = True,
    **params: Any,
) -> pd.DataFrame:
    """Run ``trials`` calls per grid point (and per flow) and tabulate them.

    Parameters
    ----------
    flow
        A flow name or several; :class:`rtclab.Flow` objects (your own)
        mix with names.
    caller, callee
        Instead of ``flow``: your own two app functions, as in
        :func:`rtclab.run`. They reach worker processes too, also when
        defined in a notebook: own flows are sent to workers with
        ``cloudpickle`` (by value), since the standard library's pickle can
        only name a function and a worker cannot import a notebook's
        ``__main__``. Whatever an app's closure holds must be picklable by
        cloudpickle; each worker gets its own copy of it.
    trials
        Trials per flow and grid point (1 to ``rtclab.params.MAX_TRIALS``; a
        whole sweep runs at most ``MAX_RUNS`` calls); trial ``i`` of the whole sweep gets
        seed :func:`trial_seed(seed, i) <trial_seed>`, whatever runs it.
    grid
        Parameter name -> values; every combination is run.
    seed
        The sweep's seed.
    workers
        Worker processes, 1 to ``rtclab.params.MAX_WORKERS`` (default: 1 for small sweeps, else up to the number
        of cores, at most 4). The pool is kept for the next sweep with the
        same number of workers; :func:`shutdown` closes it. Ignored when
        ``executor`` is given.
    executor
        Any :class:`concurrent.futures.Executor`; trials are submitted with
        ``executor.map`` and rows come back in trial order. A Dask cluster
        runs a sweep across machines: ``executor=client.get_executor(pure=False)``
        (rows identical to a local sweep's, ``wall_s`` aside).
    progress
        Show a tqdm progress bar (terminal or notebook).
    **params
        Fixed parameters for every run (see :func:`rtclab.run`).

    Returns
    -------
    pandas.DataFrame
        One row per trial: ``flow``, ``trial``, the parameters, ``outcome``,
        ``reason`` and every metric, ordered by trial.

    Examples
    --------
    >>> import rtclab
    >>> df = rtclab.sweep("basic", trials=2, grid={"signaling_latency_ms": [10, 50]},
    ...                   progress=False)  # doctest: +SKIP
    >>> len(df)  # doctest: +SKIP
    4
    """
    from .flows import Flow, as_flow, get_flow
    from .lab import _params
    from .params import check_sweep

    if caller is not None or callee is not None or flow is None or isinstance(flow, (str, Flow)):
        flows = [as_flow(flow, caller=caller, callee=callee)]  # type: ignore[arg-type]
    else:
        flows = [get_flow(f) for f in flow]
    grid = dict(grid or {})
    names = list(grid)
    points = list(itertools.product(*(list(grid[n]) for n in names))) or [()]
    check_sweep(trials=trials, workers=None if executor is not None else workers, runs=None)
    check_sweep(trials=trials, workers=None, runs=len(flows) * len(points) * int(trials))
    payloads = [_flow_payload(f) for f in flows]
    jobs: list[tuple[str | bytes, dict[str, Any]]] = []
    index = 0
    for f, payload in zip(flows, payloads):
        for point in points:
            for _ in range(int(trials)):
                p = dict(params)
                p.update(dict(zip(names, point)))
                p["seed"] = trial_seed(seed, index)
                _params(f, p)  # validate early, in the caller's process
                p["trial"] = index
                jobs.append((payload, p))
                index += 1
    runnable = [(f, {k: v for k, v in p.items() if k != "trial"}) for f, p in jobs]
    bar = _bar(len(jobs), progress, desc=f"sweep {'/'.join(f.name for f in flows)}")
    rows: list[dict[str, Any]] = []
    try:
        if executor is not None:
            it = executor.map(_trial, runnable)
            for row in it:
                rows.append(row)
                bar.update(1)
        else:
            n = workers if workers is not None else (min(os.cpu_count() or 1, 4) if len(jobs) >= 16 else 1)
            if n <= 1:
                for job in runnable:
                    rows.append(_trial(job))
                    bar.update(1)
            else:
                pool = _pool(n)
                try:
                    chunk = max(1, len(runnable) // (n * 8))
                    for row in _children_ignore_sigint(lambda: pool.map(_trial, runnable, chunksize=chunk)):
                        rows.append(row)
                        bar.update(1)
                except BaseException:  # a worker died, or Ctrl-C: no queued trial outlives this sweep
                    _close(wait=False)  # the next sweep starts a fresh pool
                    raise
    finally:
        bar.close()
    for (_f, p), row in zip(jobs, rows):
        row["trial"] = p["trial"]
    df = pd.DataFrame(rows)
    front = ["flow", "trial", "seed", *names, "outcome", "reason"]
    cols = [c for c in front if c in df.columns] + [c for c in df.columns if c not in front]
    return df[cols] if len(df) else df


_pool_lock = threading.Lock()
_pool_state: dict[str, Any] = {"pool": None, "workers": 0}


def _pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """The kept worker pool, (re)started when missing or of another size."""
    with _pool_lock:
        pool = _pool_state["pool"]
        if pool is not None and _pool_state["workers"] == workers and not getattr(pool, "_broken", False):
            return pool
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        ctx = multiprocessing.get_context("spawn")  # safe inside Jupyter's threads
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_pool_init)
        _pool_state.update(pool=pool, workers=workers)
        return pool


def shutdown() -> None:
    """Close the worker pool that :func:`sweep` keeps between calls (no-op if none).

    Called automatically at interpreter exit; call it to free the worker
    processes earlier. The next sweep with several workers starts a new pool.

    Examples
    --------
    >>> import rtclab.sweeps
    >>> rtclab.sweeps.shutdown()
    """
    _close(wait=True)


def _close(wait: bool) -> None:
    with _pool_lock:
        pool = _pool_state["pool"]
        _pool_state.update(pool=None, workers=0)
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)


atexit.register(shutdown)


def _in_worker() -> bool:
    """Whether this process runs trials for someone else (a pool or cluster worker)."""
    return multiprocessing.parent_process() is not None


def _ignore_sigint() -> None:
    """Ctrl-C in a terminal reaches the whole process group; only the parent acts on it (one line, no worker tracebacks)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _children_ignore_sigint(start: Any) -> Any:
    """Call ``start`` (which may spawn worker processes) with SIGINT ignored, so workers start ignoring it.

    A spawned worker imports for a second or two before its initializer runs; a
    Ctrl-C in that window would print its traceback. An ignored signal stays
    ignored across ``exec``, so the workers never see it. (Main thread only:
    elsewhere the signal cannot be set, and ``start`` is just called.)
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        return start()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return start()
    finally:
        signal.signal(signal.SIGINT, previous)


def _pool_init() -> None:
    """Initializer of the kept pool's workers."""
    _ignore_sigint()
    _warm_worker()


def _bar(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass
