"""The #16 simulation speed-ups change how often things wake up, never what happens or when.

Each test checks one of them against the code it replaced: the same events (or
the same order of callbacks at equal virtual times), with fewer wake-ups.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

import rtclab
from rtclab import lab, media, network
from rtclab.network import GridTick, SimNetwork, run_sim
from rtclab.peer.trickle import TrickleMixin


def _frames_equal(a: Any, b: Any) -> bool:
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    return a.shape == b.shape and a.astype(str).equals(b.astype(str))


# -- GridTick: the same schedule as the polling wait it replaces ---------------------------------


def _polling_scenario(use_grid: bool, steps: tuple[float, float] = (0.005, 0.005)) -> tuple[list[Any], int]:
    """Two pollers on equal grids, a ticker scheduling timers at the same instants, news, a cancel, an end.

    Returns the log of everything observable (what each poller saw and when,
    and the order in which equal-time timers fired) and how many times the
    pollers' loop bodies ran.
    """
    log: list[Any] = []
    wakes = [0]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        news = {"a": False, "b": False}

        async def poller(name: str, step: float) -> None:
            try:
                while True:
                    wakes[0] += 1
                    if done.done():
                        log.append((loop.time(), name, "done"))
                        return
                    if news[name]:
                        news[name] = False
                        log.append((loop.time(), name, "news"))
                        loop.call_later(0.01, log.append, (name, "timer"))  # ties with the ticker's timers

                    def idle() -> bool:
                        return not (done.done() or news[name])

                    if use_grid:
                        await GridTick(step, idle, watch=done)
                    else:
                        await asyncio.wait([done], timeout=step)
            except asyncio.CancelledError:
                log.append((loop.time(), name, "cancelled"))
                raise

        async def ticker() -> None:
            for i in range(60):
                await asyncio.sleep(0.005)
                log.append((loop.time(), "ticker", i))
                loop.call_later(0.01, log.append, ("ticker", "timer", i))
                if i % 7 == 3:
                    news["a"] = True
                if i % 11 == 5:
                    news["b"] = True

        a = asyncio.ensure_future(poller("a", steps[0]))
        b = asyncio.ensure_future(poller("b", steps[1]))
        for k in range(1, 40):  # news set by plain timers too, some at grid points of both pollers
            loop.call_at(k * 0.01, news.__setitem__, "ab"[k % 2], k % 3 == 0)
        t = asyncio.ensure_future(ticker())
        grid = 0.0
        for _ in range(17):  # the 17th point of b's grid, as the loop computes it
            grid = grid + steps[1]
        loop.call_at(grid, b.cancel)  # cancelled exactly at a grid point
        loop.call_later(0.2, done.set_result, None)
        await asyncio.gather(a, t)
        await asyncio.gather(b, return_exceptions=True)

    run_sim(main, SimNetwork())
    return log, wakes[0]


@pytest.mark.parametrize("steps", [(0.005, 0.005), (0.005, 0.01), (0.005, 0.007)])
def test_grid_tick_keeps_the_order_of_a_polling_wait_and_skips_idle_wake_ups(steps: tuple[float, float]) -> None:
    """GridTick gives the very same log as ``asyncio.wait(timeout=step)`` polling, with far fewer loop bodies run.

    Pollers on equal grids tick at the same instants (their re-arms are then
    folded into the timers' own iteration), a ticker's timers and news set by
    plain timers land on the same instants, and one poller is cancelled
    exactly at one of its grid points.
    """
    old_log, old_wakes = _polling_scenario(False, steps)
    new_log, new_wakes = _polling_scenario(True, steps)
    assert new_log == old_log
    assert any(entry[2] == "cancelled" for entry in old_log if len(entry) == 3)
    assert new_wakes * 3 < old_wakes


async def _old_await_news(self: Any, gathering: Any, step: float) -> None:
    await asyncio.wait([gathering], timeout=step)


def _count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls = [0]
    original = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def test_trickle_emitter_wakes_only_for_news_with_unchanged_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where STUN goes unanswered for 5 s, the emitter looks a few times, not every 5 ms; the events are the same."""
    cases = [("basic", {"link_loss": 1.0, "deadline_s": 120}), ("basic", {"seed": 3, "topology": "nat", "turn": True, "nat": "symmetric"}),
             ("perfect", {"seed": 1}), ("vanilla", {"topology": "nat"})]
    with monkeypatch.context() as m:
        m.setattr(TrickleMixin, "_await_news", _old_await_news)
        before = [rtclab.run(flow, **kw).events for flow, kw in cases]
    waits = _count_calls(monkeypatch, TrickleMixin, "_await_news")
    after = [rtclab.run(flow, **kw).events for flow, kw in cases]
    assert all(_frames_equal(a, b) for a, b in zip(before, after))
    waits[0] = 0
    rtclab.run("basic", link_loss=1.0, deadline_s=120)
    assert 0 < waits[0] < 50  # (the old emitter waited ~2000 times)


def test_aioice_check_loop_ticks_without_waking_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice's 20 ms check loop runs its body only when a check can start; same events as aioice's own sleep."""
    import aioice.ice

    cases = [("basic", {"link_loss": 1.0, "deadline_s": 120}), ("basic", {"link_loss": 0.3, "seed": 2}),
             ("ice-restart", {"hold_s": 10, "cut_at_s": 3, "cut_for_s": 40, "deadline_s": 120})]
    with monkeypatch.context() as m:
        m.setattr(network, "_PATCHES", [t for t in network._PATCHES if t[1] != "asyncio"])
        before = [rtclab.run(flow, **kw).events for flow, kw in cases]
    after = [rtclab.run(flow, **kw).events for flow, kw in cases]
    assert all(_frames_equal(a, b) for a, b in zip(before, after))
    assert aioice.ice.asyncio is asyncio  # the copy is in place only during a run
    periodic = _count_calls(monkeypatch, aioice.ice.Connection, "_check_periodic")
    monkeypatch.setattr(network, "_CHECK_PERIODIC", aioice.ice.Connection._check_periodic)  # (counted, still aioice's)
    rtclab.run("basic", link_loss=1.0, deadline_s=120)
    assert 0 < periodic[0] < 100  # (aioice's own loop: ~750 per connection, every 20 ms for 15 s)


def test_virtual_loop_keeps_timers_as_when_seq_tuples() -> None:
    """The heap holds (when, seq, timer): ties compare the sequence number in C, never the handles."""
    seen: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_at(1.0, lambda: None)
        loop.call_at(1.0, lambda: None)
        seen.extend(loop._scheduled)  # type: ignore[attr-defined]

    run_sim(main, SimNetwork())
    entries = sorted(e for e in seen if e[0] == 1.0)
    assert len(entries) == 2 and entries[0][1] < entries[1][1]
    assert all(isinstance(e[2], asyncio.TimerHandle) for e in entries)


class _AsyncioTimer(asyncio.TimerHandle):
    """A timer handle ordered (when, seq) by ``__lt__``, for asyncio's own heap."""

    __slots__ = ("_seq",)

    def __init__(self, when: float, callback: Any, args: Any, loop: Any, context: Any, seq: int) -> None:
        super().__init__(when, callback, args, loop, context=context)
        self._seq = seq

    def __lt__(self, other: Any) -> bool:
        return (self._when, self._seq) < (other._when, other._seq)


class _AsyncioSelector(network._VirtualSelector):
    def select(self, timeout: float | None = None) -> Any:
        events = self._sel.select(0)
        if events or timeout == 0:
            return events
        loop = self.loop
        assert loop is not None and timeout is not None
        loop._vtime = max(loop._vtime, loop._scheduled[0]._when)
        return []


class _AsyncioRunOnceLoop(network.VirtualLoop):
    """The virtual loop driven by this Python's own ``BaseEventLoop._run_once`` (on handles)."""

    made = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        type(self).made += 1

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        timer = _AsyncioTimer(when, callback, args, self, context, next(self._timer_seq))
        import heapq

        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    def _rearm(self, timer: Any, when: float) -> Any:
        return self.call_at(when, timer._callback, *timer._args, context=timer._context)

    _run_once = asyncio.BaseEventLoop._run_once  # type: ignore[attr-defined]


def test_virtual_loop_runs_callbacks_in_the_order_of_asyncios_own_run_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """VirtualLoop._run_once copies Python 3.11's; this Python's own loop must give the same frames.

    (A tripwire for a Python upgrade whose asyncio changes the steps of an iteration.)
    """
    cases = [("basic", {"seed": 1}), ("glare", {"topology": "nat", "seed": 2}),
             ("basic", {"link_loss": 1.0, "deadline_s": 120}), ("basic", {"loss": 0.05, "hold_s": 2, "record_packets": True})]
    after = [rtclab.run(flow, **kw).events for flow, kw in cases]
    monkeypatch.setattr(network, "VirtualLoop", _AsyncioRunOnceLoop)
    monkeypatch.setattr(network, "_VirtualSelector", _AsyncioSelector)
    before = [rtclab.run(flow, **kw).events for flow, kw in cases]
    assert _AsyncioRunOnceLoop.made == len(cases)
    assert all(_frames_equal(a, b) for a, b in zip(before, after))


# -- the stall guard: one watcher thread per process ------------------------------------------------


def test_stall_guard_uses_one_watcher_thread_for_every_run() -> None:
    """Runs share one stall-guard thread instead of starting and joining one each."""
    for seed in range(3):
        rtclab.run("basic", seed=seed)
    guards = [t for t in threading.enumerate() if t.name == "rtclab-stall-guard"]
    assert len(guards) == 1 and guards[0].daemon
    assert not lab._StallGuard._active  # every finished run unregistered itself


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_stall_guard_starts_afresh_in_a_forked_child() -> None:
    """A child forked while the parent's watcher holds its lock still runs (and guards) a simulation."""
    import os

    rtclab.run("basic")  # the parent's watcher thread exists
    with lab._StallGuard._lock:  # forked while the watcher's lock is held
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                run = rtclab.run("basic")
                alive = [t for t in threading.enumerate() if t.name == "rtclab-stall-guard"]
                code = 0 if run.outcome == "connected" and len(alive) == 1 else 2
            finally:
                os._exit(code)
    import signal
    import time

    for _ in range(600):  # a deadline, not a timing: a child stuck on the inherited lock never ends
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung (the stall guard's lock was inherited held)")
    assert os.waitstatus_to_exitcode(status) == 0


# -- the camera's frame pool (simulated network) ---------------------------------------------------


def test_camera_pool_in_a_sim_reuses_frames_with_fresh_timestamps_and_type() -> None:
    """In a sim the camera hands out width/4 distinct frames again, pixels intact, pts and picture type reset."""
    from av.video.frame import PictureType

    out: dict[str, Any] = {}

    async def main() -> None:
        cam = media.Camera(16, 8)
        try:
            frames = []
            for n in range(10):
                frame = await cam.recv()
                frames.append((frame, frame.pts, frame.to_ndarray().copy()))
                if n == 0:
                    frame.pict_type = PictureType.I  # what a forced keyframe does to it
            out["frames"] = frames
        finally:
            cam.stop()

    run_sim(main, SimNetwork())
    frames = out["frames"]
    assert frames[0][0] is frames[4][0]  # 16 / 4 = 4 distinct pictures
    assert len({id(f) for f, _, _ in frames}) == 4
    assert [pts for _, pts, _ in frames] == sorted({pts for _, pts, _ in frames})  # every pts fresh and rising
    for (_, _, a), (_, _, b) in zip(frames, frames[4:]):
        assert np.array_equal(a, b)
    assert frames[4][0].pict_type == PictureType.NONE
