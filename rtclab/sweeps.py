"""Many runs at once: one row per trial, seeded so results do not depend on workers."""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import os
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

__all__ = ["sweep", "trial_seed"]


def trial_seed(seed: int, index: int) -> int:
    """The seed of trial ``index`` of a sweep seeded with ``seed`` (pure function).

    Examples
    --------
    >>> trial_seed(0, 0) == trial_seed(0, 0), trial_seed(0, 0) != trial_seed(0, 1)
    (True, True)
    """
    return (int(seed) * 1_000_003 + int(index) * 7_919 + 12_345) % (2**31 - 1)


def _trial(job: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    from .lab import run

    flow, params = job
    r = run(flow, **params)
    row: dict[str, Any] = {"flow": flow, **params}
    row.update(r.metrics.to_dict())
    row["wall_s"] = round(r.wall_s, 4)
    return row


def sweep(
    flow: str | Iterable[str],
    *,
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
        A flow name or several.
    trials
        Trials per flow and grid point; trial ``i`` of the whole sweep gets
        seed :func:`trial_seed(seed, i) <trial_seed>`, whatever runs it.
    grid
        Parameter name -> values; every combination is run.
    seed
        The sweep's seed.
    workers
        Worker processes (default: 1 for small sweeps, else up to the number
        of cores). Ignored when ``executor`` is given.
    executor
        Any :class:`concurrent.futures.Executor` (a Dask or Ray executor works
        the same way); trials are submitted with ``executor.map``.
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
    from .lab import _params

    flows = [flow] if isinstance(flow, str) else list(flow)
    grid = dict(grid or {})
    names = list(grid)
    points = list(itertools.product(*(list(grid[n]) for n in names))) or [()]
    jobs: list[tuple[str, dict[str, Any]]] = []
    index = 0
    for f in flows:
        for point in points:
            for _ in range(int(trials)):
                p = dict(params)
                p.update(dict(zip(names, point)))
                p["seed"] = trial_seed(seed, index)
                _params(f, p)  # validate early, in the caller's process
                p["trial"] = index
                jobs.append((f, p))
                index += 1
    runnable = [(f, {k: v for k, v in p.items() if k != "trial"}) for f, p in jobs]
    bar = _bar(len(jobs), progress, desc=f"sweep {'/'.join(flows)}")
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
                ctx = multiprocessing.get_context("spawn")  # safe inside Jupyter's threads
                with concurrent.futures.ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
                    for row in pool.map(_trial, runnable, chunksize=max(1, len(runnable) // (n * 8))):
                        rows.append(row)
                        bar.update(1)
    finally:
        bar.close()
    for (_f, p), row in zip(jobs, rows):
        row["trial"] = p["trial"]
    df = pd.DataFrame(rows)
    front = ["flow", "trial", "seed", *names, "outcome", "reason"]
    cols = [c for c in front if c in df.columns] + [c for c in df.columns if c not in front]
    return df[cols] if len(df) else df


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
