"""Re-runs: a run repeated, cancelled or interrupted leaves nothing behind, and the next run works.

"Nothing behind" means: no live asyncio task, no thread named ``rtclab-*``,
no file descriptor beyond the baseline, and the simulation's patches of
aiortc/aioice removed (``rtclab.network.patches_installed()`` is false).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

import rtclab
from _reliability import bounded_run, fd_table, live_tasks, open_fds, rtclab_threads
from rtclab.flows import FLOWS, Flow, basic_callee, basic_caller
from rtclab.network import patches_installed

BOUND_S = 20.0  # wall bound of any await in these tests
REPEATS = 8  # an interruption races with the run's own events: repeat it


@pytest.fixture
def baseline() -> Iterator[dict[str, Any]]:
    """A warmed-up process (one real and one sim run done) and its fd / thread counts."""
    assert rtclab.run("basic", network="real").outcome == "connected"  # aiortc's executor thread exists now
    assert rtclab.run("basic").outcome == "connected"
    yield {"fds": open_fds(), "threads": threading.active_count(), "tasks": len(live_tasks()), "fd_table": fd_table()}


def assert_clean(baseline: dict[str, Any]) -> None:
    """Nothing left behind by the runs since ``baseline``."""
    assert not patches_installed()
    assert rtclab_threads() == []
    assert len(live_tasks()) <= baseline["tasks"]  # (0 when run alone)
    assert open_fds() <= baseline["fds"], {k: v for k, v in fd_table().items() if baseline["fd_table"].get(k) != v}
    assert threading.active_count() <= baseline["threads"] + 1  # (aiortc's executor thread)


@pytest.fixture
def interrupting_flow() -> Iterator[Any]:
    """Register flows whose caller is interrupted mid-call: ``make(how, after_s)`` returns the flow's name."""
    saved = dict(FLOWS)

    def make(how: str, after_s: float) -> str:
        async def caller(app: Any) -> None:
            await basic_caller(app)
            await asyncio.sleep(after_s)  # the call is under way: offer sent, candidates trickling
            if how == "raise":
                raise KeyboardInterrupt
            signal.raise_signal(signal.SIGINT)  # a real Ctrl-C, delivered to the main thread
            await asyncio.sleep(1.0)

        name = f"interrupted-{how}-{after_s}"
        FLOWS[name] = Flow(name, "caller interrupted mid-call", caller, basic_callee)
        return name

    try:
        yield make
    finally:
        FLOWS.clear()
        FLOWS.update(saved)


@pytest.mark.parametrize(("flow", "params"), [
    ("basic", {}),
    ("perfect", {"topology": "nat", "reorder": 0.3, "jitter_ms": 30}),
    ("answer-on-click", {"topology": "nat", "loss": 0.2}),
    ("forgot-candidates", {"deadline_s": 5}),
])
def test_same_run_twice_gives_the_same_frame(flow: str, params: dict[str, Any]) -> None:
    """Running the same sim run twice in a row works and gives an identical frame and outcome."""
    first = rtclab.run(flow, seed=2, **params)
    second = rtclab.run(flow, seed=2, **params)
    assert first.outcome == second.outcome
    pd.testing.assert_frame_equal(first.events, second.events)
    assert not patches_installed()


def test_cancelled_real_arun_leaves_nothing_behind(baseline: dict[str, Any], foundation_silent_flow: str) -> None:
    """Cancelling a real-network arun mid-call cancels it, closes everything it opened, and the next run connects."""

    async def main() -> str:
        for i in range(3):
            task = asyncio.ensure_future(rtclab.arun(foundation_silent_flow, network="real", deadline_s=60))
            await asyncio.sleep(0.1 * (i + 1))  # mid-call: peers gathering/checking, nobody answers
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):  # (not a Run at the deadline: the cancel is not swallowed)
                await asyncio.wait_for(task, BOUND_S)
        return (await asyncio.wait_for(rtclab.arun("basic", network="real"), BOUND_S)).outcome

    assert asyncio.run(main()) == "connected"
    assert_clean(baseline)


def test_cancelled_sim_arun_leaves_nothing_behind(baseline: dict[str, Any]) -> None:
    """Cancelling an arun on the sim (it runs in a worker thread) leaves no patch, thread or task behind."""

    async def main() -> str:
        # ten virtual minutes of video: seconds of wall time, so the cancel lands mid-run
        # (a run that only waits, like forgot-candidates, now ends in a few ms of wall time)
        task = asyncio.ensure_future(rtclab.arun("basic", hold_s=600.0, deadline_s=900.0))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, BOUND_S)
        return (await asyncio.wait_for(rtclab.arun("basic"), BOUND_S)).outcome

    assert asyncio.run(main()) == "connected"  # (asyncio.run waits for the worker thread to end)
    assert_clean(baseline)
    assert rtclab.run("basic").outcome == "connected"


@pytest.mark.parametrize("network", ["sim", "real"])
def test_keyboard_interrupt_in_app_code_leaves_nothing_behind(network: str, baseline: dict[str, Any], interrupting_flow: Any) -> None:
    """A KeyboardInterrupt raised inside a running call propagates out of run() at once, cleans up, and the next run works."""
    flow = interrupting_flow("raise", 0.05)
    for _ in range(REPEATS):
        # regressions: Python 3.11's wait_for could swallow the clean-up's cancel, and the
        # interrupted call then ran on to its deadline (60 s here: the harness calls it a hang);
        # aiortc's close() interrupted by asyncio.run's shutdown left two ICE sockets open
        with pytest.raises(KeyboardInterrupt):
            bounded_run(flow, network=network, deadline_s=60, harness_s=BOUND_S)
        assert_clean(baseline)
    assert rtclab.run("basic", network=network).outcome == "connected"
    assert_clean(baseline)


@pytest.mark.parametrize("network", ["sim", "real"])
def test_ctrl_c_mid_call_leaves_nothing_behind(network: str, baseline: dict[str, Any], interrupting_flow: Any) -> None:
    """A real SIGINT (Ctrl-C) mid-call raises KeyboardInterrupt from run(), cleans up, and the next run works."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is handled by someone else in this process")
    flow = interrupting_flow("signal", 0.05)
    with pytest.raises(KeyboardInterrupt):
        rtclab.run(flow, network=network)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert_clean(baseline)
    assert rtclab.run("basic", network=network).outcome == "connected"
    assert_clean(baseline)


def test_keyboard_interrupt_inside_a_running_loop_leaves_no_worker_thread(baseline: dict[str, Any], interrupting_flow: Any) -> None:
    """run() from inside a running loop (worker thread rtclab-run) passes a KeyboardInterrupt on and leaves no thread."""
    flow = interrupting_flow("raise", 0.05)

    async def cell() -> str:
        with pytest.raises(KeyboardInterrupt):
            rtclab.run(flow)
        return rtclab.run("basic").outcome

    assert asyncio.run(cell()) == "connected"
    assert_clean(baseline)


def test_run_after_a_runner_error_works(baseline: dict[str, Any]) -> None:
    """After a run whose network setup fails (bad NAT pair), the next runs work and nothing is left behind."""
    with pytest.raises(ValueError):
        rtclab.run("basic", nat=("full-cone", "nope"))
    first = rtclab.run("counteroffer", seed=4)
    second = rtclab.run("counteroffer", seed=4)
    pd.testing.assert_frame_equal(first.events, second.events)
    assert_clean(baseline)


def test_cancelled_sim_arun_stops_its_worker_thread_early() -> None:
    """Cancelling arun on the simulated network ends the worker thread's run, not at its deadline."""
    import asyncio
    import threading

    import rtclab
    from rtclab import lab

    finished = threading.Event()
    original = lab._run_blocking

    def tracked(*args: object, **kwargs: object) -> object:
        try:
            return original(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            finished.set()

    async def main() -> bool:
        # ten virtual minutes of video take well over ten seconds of wall time
        task = asyncio.ensure_future(rtclab.arun("basic", hold_s=600.0, deadline_s=900.0))
        await asyncio.sleep(1.0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return await asyncio.to_thread(finished.wait, 30.0)  # checked while the loop still runs

    lab._run_blocking = tracked  # type: ignore[assignment]
    try:
        assert asyncio.run(main()), "the worker's run kept going after arun was cancelled"
    finally:
        lab._run_blocking = original  # type: ignore[assignment]
