"""Shared fixtures of the test suite.

Foundation fixtures (trace, peers, signaling, lab) are named ``foundation_*``
or generically (``trace``); the network and plot suites add ``network_*`` and
``plots_*`` fixtures of their own.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from rtclab.peer import Peer  # noqa: E402
from rtclab.trace import Trace  # noqa: E402

# --- generic ------------------------------------------------------------------------------


@pytest.fixture
def trace() -> Trace:
    """A fresh trace on a fake clock that advances 1 ms per reading."""
    ticks = iter(range(10**9))
    return Trace(clock=lambda: next(ticks) / 1000.0)


# --- foundation: asyncio helpers -------------------------------------------------------------


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer when nothing is ready.

    Timers (``call_at``, ``sleep``) then fire at exactly their scheduled
    virtual time, so a seeded :class:`rtclab.Channel` gives bit-identical
    delivery times on every run. Only for code that does no real I/O.
    """

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0

    def time(self) -> float:
        return self._virtual_now

    def _run_once(self) -> None:
        scheduled = self._scheduled  # type: ignore[attr-defined]
        if not self._ready and scheduled:  # type: ignore[attr-defined]
            self._virtual_now = max(self._virtual_now, scheduled[0]._when)
        super()._run_once()  # type: ignore[misc]


@pytest.fixture
def foundation_virtual_run() -> Callable[[Awaitable[Any]], Any]:
    """Run a coroutine to completion on a virtual-time event loop."""

    def run(coro: Awaitable[Any]) -> Any:
        with asyncio.Runner(loop_factory=_VirtualTimeLoop) as runner:
            return runner.run(coro)  # type: ignore[arg-type]

    return run


@pytest.fixture
def foundation_arun() -> Callable[..., Any]:
    """Run a coroutine in a fresh event loop with an overall bound (default 20 s)."""

    def run(coro: Awaitable[Any], timeout: float = 20.0) -> Any:
        return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]

    return run


async def poll(predicate: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` is true, checking every 2 ms; fail after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


async def settle(n: int = 10) -> None:
    """Let the loop run ``n`` iterations (callbacks queued with call_soon run)."""
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.fixture
def foundation_poll() -> Callable[..., Awaitable[None]]:
    """The bounded poll: ``await foundation_poll(lambda: cond, timeout=5)``."""
    return poll


@pytest.fixture
def foundation_settle() -> Callable[..., Awaitable[None]]:
    """Yield to the loop a few times (no wall-clock wait)."""
    return settle


# --- foundation: peers ---------------------------------------------------------------------------


@asynccontextmanager
async def peer_pair(
    *, caller_options: dict[str, Any] | None = None, callee_options: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[tuple[Trace, Peer, Peer]]:
    """A caller/callee pair of :class:`rtclab.Peer` on one trace, always closed.

    Keyword options go to both peers; ``caller_options`` / ``callee_options``
    to one side only.
    """
    caller_opts = {**options, **(caller_options or {})}
    callee_opts = {**options, **(callee_options or {})}
    trace = Trace()
    caller = callee = None
    try:
        caller = Peer("caller", trace, **caller_opts)
        callee = Peer("callee", trace, **callee_opts)
        yield trace, caller, callee
    finally:
        for pc in (caller, callee):
            if pc is not None:
                await pc.close()


@asynccontextmanager
async def raw_pc() -> AsyncIterator[Any]:
    """A bare aiortc RTCPeerConnection without ICE servers, always closed."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        yield pc
    finally:
        pc.remove_all_listeners()
        await pc.close()


@pytest.fixture
def foundation_pair() -> Callable[..., Any]:
    """Factory of closing peer pairs: ``async with foundation_pair() as (trace, a, b)``."""
    return peer_pair


@pytest.fixture
def foundation_raw_pc() -> Callable[[], Any]:
    """Factory of closing bare aiortc peer connections: ``async with foundation_raw_pc() as pc``."""
    return raw_pc


# --- foundation: runs ----------------------------------------------------------------------------


@pytest.fixture
def foundation_silent_flow() -> Iterator[str]:
    """Register, for one test, a flow whose callee never answers; FLOWS is restored afterwards."""
    from rtclab.flows import FLOWS, Flow, basic_caller

    async def silent_callee(app: Any) -> None:
        app.on_message(lambda msg: None)

    saved = dict(FLOWS)
    FLOWS["never-answers"] = Flow("never-answers", "callee ignores everything", basic_caller, silent_callee)
    try:
        yield "never-answers"
    finally:
        FLOWS.clear()
        FLOWS.update(saved)
