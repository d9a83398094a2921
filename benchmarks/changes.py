"""Each #16 change against the code before it: ``python -m benchmarks.changes [--quick]``.

One process, interleaved: for every change, the code as it was before (put back
for the duration of a measurement by a context manager below) and the code as
it is run alternately on the same workload, so both see the same machine load.
Writes ``benchmarks/results/changes.json`` with medians (wall time and the
process's CPU time), ratios and the load average before and after.

========================  =====================================================
change                    "before" puts back
========================  =====================================================
``result_building``       the pandas frame normaliser and pandas metrics
                          (``tests/_metrics_reference.py``) in ``lab._finish``
``rate_counter``          aiortc's ``RateCounter`` (1000 buckets per reset)
``version_check``         ``importlib.metadata`` read on every run
``watcher``               the watcher reading both descriptions on every row
``gc_freeze``             no ``gc.freeze()`` after imports (sweep workers)
``media``                 a 320x240 camera built with ``np.roll`` and
                          ``np.concatenate``, VP8 denoiser on
``emitter_grid``          the trickle emitter woken by ``asyncio.wait`` at
                          every point of its 5 ms polling grid
``check_tick``            aioice's check loop woken by ``asyncio.sleep`` every
                          20 ms while it waits for remote candidates
``stall_guard``           a stall-guard thread started and joined by every
                          simulated run
``frame_pool``            the camera building a new frame (``from_ndarray``)
                          for every picture
``virtual_loop``          asyncio's own ``_run_once`` on a heap of timer
                          handles compared in Python, a real ``epoll`` poll
                          every iteration
``all``                   every one of the above
``wake_ups``              the second round together: ``virtual_loop``,
                          ``emitter_grid``, ``check_tick``, ``stall_guard``,
                          ``frame_pool``
========================  =====================================================

Not a test: no figure here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import heapq
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from av import VideoFrame  # noqa: E402

import rtclab  # noqa: E402
from rtclab import lab, media, network  # noqa: E402
from rtclab.peer.trickle import TrickleMixin  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "changes.json"


# -- the code before each change -----------------------------------------------------------------


@contextlib.contextmanager
def _swap(owner: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def _old_finish(flow: str, p: dict[str, Any], trace: Any, wall_s: float, error: BaseException | None) -> Any:
    import _metrics_reference as reference

    from rtclab.trace import Trace, _to_frame

    if trace is None:
        trace = Trace(clock=lambda: 0.0)
    if error is not None:
        from rtclab.peer import error_name

        trace.record("network", "error", "runner", error_name(error), detail=str(error) or repr(error))
    lab.finalize_candidates(trace)
    events = _to_frame(trace.rows)
    metrics = reference.compute_metrics(events, media=lab._flow_media(flow))
    return lab.Run(flow=flow, params=p, events=events, metrics=metrics, wall_s=wall_s)


def _old_nothing_negotiated(self: Any) -> bool:
    pcs = [pc for app in self.apps.values() for pc in app.peers[-1:]]
    if len(pcs) != 2 or self.channel.in_flight:
        return False
    for pc in pcs:
        if pc.signalingState != "stable" or pc.remoteDescription is None or pc.localDescription is None:
            return False
        if "\nm=" in pc.remoteDescription["sdp"] or pc.remoteDescription["sdp"].startswith("m="):
            return False
    return True


def _old_encoder_setattr(self: Any, name: str, value: Any) -> None:
    if name == "options" and isinstance(value, dict) and "cpu-used" in value:
        value = {**value, "cpu-used": str(-abs(int(value["cpu-used"])) or -6)}
    elif name == "thread_count":
        value = 1
    setattr(self._ctx, name, value)


class _OldCamera(media.Camera):
    """The camera's frame synthesis before #16 (roll and concatenate per frame)."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__(width, height)
        self._luma = self._wide[:, :width].copy()
        self._chroma = self._plane[height:].copy()

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self._n += 1
        shift = (self._n * 4) % self.width
        plane = np.concatenate([np.roll(self._luma, shift, axis=1), self._chroma])
        frame = VideoFrame.from_ndarray(plane, format="yuv420p")
        frame.pts = pts
        frame.time_base = time_base
        return frame


_read_versions = network._installed_versions.__wrapped__  # type: ignore[attr-defined]


def _uncached_versions() -> tuple[str, str]:
    return _read_versions()


@contextlib.contextmanager
def _gc_unfrozen() -> Iterator[None]:
    frozen = gc.get_freeze_count() > 0
    gc.unfreeze()
    try:
        yield
    finally:
        if frozen:
            gc.freeze()


_params_now = lab._params


def _params_320(flow: Any, params: dict[str, Any]) -> dict[str, Any]:
    # (RunParams' sim_video default was fixed when rtclab.params was imported: swapping
    # media.SIM_VIDEO or lab.DEFAULTS alone left the "before" runs at 160x120)
    return _params_now(flow, {"sim_video": (320, 240), **params})


@contextlib.contextmanager
def _media_before() -> Iterator[None]:
    with _swap(media, "Camera", _OldCamera), _swap(network._PinnedEncoder, "__setattr__", _old_encoder_setattr), \
            _swap(media, "SIM_VIDEO", (320, 240)), _swap(lab, "DEFAULTS", {**lab.DEFAULTS, "sim_video": (320, 240)}), \
            _swap(lab, "_params", _params_320):
        yield


class _OldFifoTimerHandle(asyncio.TimerHandle):
    """The timer handle before the tuple heap: ties broken by ``__lt__`` in Python."""

    __slots__ = ("_seq",)

    def __init__(self, when: float, callback: Any, args: Any, loop: Any, context: Any, seq: int) -> None:
        super().__init__(when, callback, args, loop, context=context)
        self._seq = seq

    def __lt__(self, other: Any) -> bool:
        when, other_when = self._when, other._when
        return when < other_when or (when == other_when and self._seq < other._seq)


class _OldVirtualSelector(network._VirtualSelector):
    def select(self, timeout: float | None = None) -> Any:
        events = self._sel.select(0)
        if events or timeout == 0:
            return events
        loop = self.loop
        assert loop is not None
        if timeout is None:
            if loop.stall_error:
                raise network.SimStalled(loop._stall_message())
            return self._sel.select(None)
        loop._vtime = max(loop._vtime, loop._scheduled[0]._when)
        return []


class _OldVirtualLoop(network.VirtualLoop):
    """The virtual loop before #16's own ``_run_once``: asyncio's loop on handle objects."""

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        self._check_closed()
        timer = _OldFifoTimerHandle(when, callback, args, self, context, next(self._timer_seq))
        if timer._source_traceback:
            del timer._source_traceback[-1]
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    def _rearm(self, timer: Any, when: float) -> Any:
        return self.call_at(when, timer._callback, *timer._args, context=timer._context)

    _run_once = asyncio.BaseEventLoop._run_once  # type: ignore[attr-defined]


class _OldStallGuard(lab._StallGuard):
    """The stall guard before #16's shared watcher: a thread of its own per run."""

    def __init__(self, loop: Any, watcher: Any) -> None:
        super().__init__(loop, watcher)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="rtclab-stall-guard", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        last, since = self.loop.time(), time.monotonic()
        while not self._stop.wait(min(0.5, lab.STALL_WALL_S / 4)):
            now = self.loop.time()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= lab.STALL_WALL_S:
                self.loop.call_soon_threadsafe(self._stalled)
                return


class _UnpooledCamera(media.Camera):
    """The camera before the frame pool: one slice copy and one new VideoFrame per picture."""

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self._n += 1
        start = -(self._n * 4) % self.width
        self._plane[: self.height] = self._wide[:, start : start + self.width]
        frame = VideoFrame.from_ndarray(self._plane, format="yuv420p")
        frame.pts = pts
        frame.time_base = time_base
        return frame


async def _old_await_news(self: Any, gathering: Any, step: float) -> None:
    await asyncio.wait([gathering], timeout=step)


@contextlib.contextmanager
def _virtual_loop_before() -> Iterator[None]:
    with _swap(network, "VirtualLoop", _OldVirtualLoop), _swap(network, "_VirtualSelector", _OldVirtualSelector):
        yield


BEFORE: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "result_building": lambda: _swap(lab, "_finish", _old_finish),
    "rate_counter": lambda: _swap(network, "_PATCHES", [t for t in network._PATCHES if t[1] != "RateCounter"]),
    "version_check": lambda: _swap(network, "_installed_versions", _uncached_versions),
    "watcher": lambda: _swap(lab._Watcher, "_nothing_negotiated", _old_nothing_negotiated),
    "gc_freeze": _gc_unfrozen,
    "media": _media_before,
    "virtual_loop": _virtual_loop_before,
    "frame_pool": lambda: _swap(media, "Camera", _UnpooledCamera),
    "stall_guard": lambda: _swap(lab, "_StallGuard", _OldStallGuard),
    "check_tick": lambda: _swap(network, "_PATCHES", [t for t in network._PATCHES if t[1] != "asyncio"]),
    "emitter_grid": lambda: _swap(TrickleMixin, "_await_news", _old_await_news),
    "vp8_speed": lambda: _swap(network, "SIM_VP8_SPEED", 6),  # aiortc's own speed, pinned, before libvpx's fastest
}


@contextlib.contextmanager
def _all_before() -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for make in BEFORE.values():
            stack.enter_context(make())
        yield


#: the second round of #16 changes, measured together against the code before them as ``wake_ups``
SECOND_ROUND = ("virtual_loop", "emitter_grid", "check_tick", "stall_guard", "frame_pool", "vp8_speed")


@contextlib.contextmanager
def _second_round_before() -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for name in SECOND_ROUND:
            stack.enter_context(BEFORE[name]())
        yield


# -- workloads ---------------------------------------------------------------------------------------


def _expect(run: rtclab.Run, outcome: str) -> None:
    if run.outcome != outcome:  # a "before" that broke the run would measure nothing
        raise RuntimeError(f"benchmark run ended {run.outcome!r} ({run.reason}), expected {outcome!r}")


def _short() -> None:
    _expect(rtclab.run("basic"), "connected")


def _ice_failure() -> None:
    _expect(rtclab.run("basic", link_loss=1.0, deadline_s=120), "failed")


def _call_60s() -> None:
    _expect(rtclab.run("basic", hold_s=60.0, deadline_s=120), "connected")


def _interleaved(before: Callable[[], contextlib.AbstractContextManager[None]], work: Callable[[], None], n: int) -> dict[str, Any]:
    """Medians of wall time and of this process's CPU time, before and after, alternating who goes first.

    On a shared machine the wall medians move with the other processes' load;
    the CPU-time medians (``time.process_time``) much less, so both are given.
    A change that saves waiting rather than computing (the stall guard's thread
    start) shows in wall time only.
    """
    old: list[tuple[float, float]] = []
    new: list[tuple[float, float]] = []
    for i in range(n):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):  # alternate who goes first
            if which == 0:
                with before():
                    t, c = time.perf_counter(), time.process_time()
                    work()
                    old.append((time.perf_counter() - t, time.process_time() - c))
            else:
                t, c = time.perf_counter(), time.process_time()
                work()
                new.append((time.perf_counter() - t, time.process_time() - c))
    b, a = statistics.median(x[0] for x in old) * 1000, statistics.median(x[0] for x in new) * 1000
    bc, ac = statistics.median(x[1] for x in old) * 1000, statistics.median(x[1] for x in new) * 1000
    return {"runs_each": n, "before_ms": round(b, 2), "after_ms": round(a, 2), "saved_ms": round(b - a, 2),
            "speedup": round(b / a, 2) if a else None,
            "cpu_before_ms": round(bc, 2), "cpu_after_ms": round(ac, 2), "cpu_speedup": round(bc / ac, 2) if ac else None}


# -- direct measures of each change (less noisy than a whole trial on a loaded machine) ------------------


def _pair_ms(before: Callable[[], float], after: Callable[[], float], n: int) -> dict[str, Any]:
    """Interleaved medians of two callables that each return milliseconds."""
    b: list[float] = []
    a: list[float] = []
    for i in range(n):
        if i % 2:
            a.append(after())
            b.append(before())
        else:
            b.append(before())
            a.append(after())
    mb, ma = statistics.median(b), statistics.median(a)
    return {"before": round(mb, 4), "after": round(ma, 4), "speedup": round(mb / ma, 1) if ma else None}


def _captured_traces(n: int) -> list[list[tuple[Any, ...]]]:
    rows: list[list[tuple[Any, ...]]] = []
    finish = lab._finish

    def spy(flow: str, p: dict[str, Any], trace: Any, wall_s: float, error: BaseException | None) -> Any:
        result = finish(flow, p, trace, wall_s, error)
        rows.append(list(trace.rows))
        return result

    with _swap(lab, "_finish", spy):
        for seed in range(n):
            rtclab.run("basic", seed=seed)
        rtclab.run("basic", link_loss=1.0, deadline_s=120)
    return rows


def _direct_result_building(n: int) -> dict[str, Any]:
    import _metrics_reference as reference

    from rtclab.metrics import metrics_from_rows
    from rtclab.trace import _rows_to_frame, _to_frame

    traces = _captured_traces(5)

    def old() -> float:
        t = time.perf_counter()
        for rows in traces:
            reference.compute_metrics(_to_frame(rows))
        return (time.perf_counter() - t) * 1000 / len(traces)

    def new() -> float:
        t = time.perf_counter()
        for rows in traces:
            _rows_to_frame(rows)
            metrics_from_rows(rows)
        return (time.perf_counter() - t) * 1000 / len(traces)

    return {"frame_and_metrics_ms_per_run": _pair_ms(old, new, n), "rows_per_run": [len(r) for r in traces]}


def _direct_rate_counter(n: int) -> dict[str, Any]:
    import tracemalloc

    import aiortc.rate

    original = network._ORIGINALS[(id(aiortc.rate), "RateCounter")]

    def timed(cls: type) -> Callable[[], float]:
        def go() -> float:
            counter = cls(1000, 8000)
            t = time.perf_counter()
            for _ in range(20):
                counter.reset()
            return (time.perf_counter() - t) * 1000 / 20
        return go

    def blocks(cls: type) -> int:
        counter = cls(1000, 8000)
        tracemalloc.start()
        snap = tracemalloc.take_snapshot()
        counter.reset()
        grown = sum(s.count_diff for s in tracemalloc.take_snapshot().compare_to(snap, "filename") if s.count_diff > 0)
        tracemalloc.stop()
        return grown

    return {"reset_ms": _pair_ms(timed(original), timed(network._LazyRateCounter), n),
            "allocations_per_reset": {"before": blocks(original), "after": blocks(network._LazyRateCounter)}}


def _direct_version_check(n: int) -> dict[str, Any]:
    def go() -> float:
        t = time.perf_counter()
        network.check_versions()
        return (time.perf_counter() - t) * 1000

    def before() -> float:
        with BEFORE["version_check"]():
            return go()

    return {"check_versions_ms": _pair_ms(before, go, n)}


def _direct_watcher() -> dict[str, Any]:
    """How often a short trial serialises a local SDP (aiortc's localDescription)."""
    from aiortc import RTCPeerConnection

    prop = RTCPeerConnection.__dict__["localDescription"]
    reads = [0]

    def counting(self: Any) -> Any:
        reads[0] += 1
        return prop.fget(self)

    out: dict[str, Any] = {}
    with _swap(RTCPeerConnection, "localDescription", property(counting)):
        for label, ctx in (("before", BEFORE["watcher"]), ("after", contextlib.nullcontext)):
            with ctx():
                reads[0] = 0
                _short()
                out[label] = reads[0]
    return {"sdp_serialisations_per_short_trial": out}


def _direct_gc_freeze(n: int) -> dict[str, Any]:
    """Time spent in full (generation 2) collections per short trial, imports frozen or not."""
    spent = [0.0]
    started = [0.0]
    counts = {"before": 0, "after": 0}
    label = ["after"]
    trials = 100  # a full collection comes about once in 150 short trials

    def callback(phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") == 2:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                spent[0] += time.perf_counter() - started[0]
                counts[label[0]] += 1

    def per_trial() -> float:
        spent[0] = 0.0
        for _ in range(trials):
            _short()
        return spent[0] * 1000 / trials

    def before() -> float:
        label[0] = "before"
        try:
            with _gc_unfrozen():
                return per_trial()
        finally:
            label[0] = "after"

    gc.callbacks.append(callback)
    try:
        pairs = [(before(), per_trial()) if i % 2 == 0 else tuple(reversed((per_trial(), before()))) for i in range(n)]
        out = {"gen2_gc_ms_per_trial": {"before": round(statistics.mean(p[0] for p in pairs), 3),
                                        "after": round(statistics.mean(p[1] for p in pairs), 3)}}
    finally:
        gc.callbacks.remove(callback)
    out["gen2_collections"] = {k: v for k, v in counts.items()}
    out["trials_each"] = n * trials
    return out


def _sweep_pool(trials: int, rounds: int) -> dict[str, Any]:
    """A 2-process sweep with the pool kept (after a first sweep) vs a new pool per sweep."""
    from rtclab import sweeps

    kept: list[float] = []
    fresh: list[float] = []
    rtclab.sweep("basic", trials=4, workers=2, progress=False)  # start and warm the kept pool
    for i in range(rounds):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            if which == 0:  # before: every sweep starts (and imports in) its own workers
                sweeps.shutdown()
                t = time.perf_counter()
                rtclab.sweep("basic", trials=trials, workers=2, progress=False, seed=i)
                fresh.append(trials / (time.perf_counter() - t))
                rtclab.sweep("basic", trials=4, workers=2, progress=False)  # re-warm for the kept case
            else:
                t = time.perf_counter()
                rtclab.sweep("basic", trials=trials, workers=2, progress=False, seed=i)
                kept.append(trials / (time.perf_counter() - t))
    sweeps.shutdown()
    return {"trials": trials, "rounds": rounds, "new_pool_trials_per_s": round(statistics.median(fresh), 1),
            "kept_pool_trials_per_s": round(statistics.median(kept), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.changes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--out", default=str(OUT))
    ns = parser.parse_args(argv)
    n_short, n_fail, n_call = (6, 3, 1) if ns.quick else (30, 10, 3)
    load_before = os.getloadavg()
    gc.collect()
    gc.freeze()  # as in a sweep worker; the gc_freeze row undoes it for "before"
    for _ in range(3):
        _short()  # warm caches and imports
    results: dict[str, Any] = {}
    for name, before in BEFORE.items():
        print(f"[changes] {name} …", flush=True)
        results[name] = {"short_trial": _interleaved(before, _short, n_short)}
        if name in ("result_building", "watcher", "emitter_grid", "check_tick", "virtual_loop"):
            results[name]["ice_failure"] = _interleaved(before, _ice_failure, n_fail)
        if name in ("media", "frame_pool", "virtual_loop", "vp8_speed"):
            results[name]["call_60s"] = _interleaved(before, _call_60s, n_call)
        direct = {
            "result_building": lambda: _direct_result_building(n_short),
            "rate_counter": lambda: _direct_rate_counter(n_short),
            "version_check": lambda: _direct_version_check(n_short),
            "watcher": _direct_watcher,
            "gc_freeze": lambda: _direct_gc_freeze(1 if n_short < 10 else 2),
        }.get(name)
        if direct is not None:
            results[name]["direct"] = direct()
        print(f"[changes] {name}: {json.dumps(results[name])}", flush=True)
    print("[changes] all …", flush=True)
    results["all"] = {
        "short_trial": _interleaved(_all_before, _short, n_short),
        "ice_failure": _interleaved(_all_before, _ice_failure, n_fail),
        "call_60s": _interleaved(_all_before, _call_60s, n_call),
    }
    print(f"[changes] all: {json.dumps(results['all'])}", flush=True)
    print("[changes] wake_ups …", flush=True)  # the second round of #16 (fewer wake-ups, cheaper loop) together
    results["wake_ups"] = {
        "changes": list(SECOND_ROUND),
        "short_trial": _interleaved(_second_round_before, _short, n_short),
        "ice_failure": _interleaved(_second_round_before, _ice_failure, n_fail),
        "call_60s": _interleaved(_second_round_before, _call_60s, n_call),
    }
    print(f"[changes] wake_ups: {json.dumps(results['wake_ups'])}", flush=True)
    print("[changes] sweep_pool …", flush=True)
    results["sweep_pool"] = _sweep_pool(40 if ns.quick else 100, 2 if ns.quick else 3)
    print(f"[changes] sweep_pool: {json.dumps(results['sweep_pool'])}", flush=True)
    out = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python -m benchmarks.changes" + (" --quick" if ns.quick else ""),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "changes": results,
    }
    Path(ns.out).parent.mkdir(parents=True, exist_ok=True)
    Path(ns.out).write_text(json.dumps(out, indent=2))
    print(f"written {ns.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
