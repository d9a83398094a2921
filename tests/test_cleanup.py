"""Tests that runs close everything they open: file descriptors, threads, tasks, peers."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from typing import Any

import rtclab

RUNS = 50


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def live_tasks() -> list[asyncio.Task[Any]]:
    """asyncio tasks still alive anywhere in the process (not done)."""
    gc.collect()
    return [t for t in gc.get_objects() if isinstance(t, asyncio.Task) and not t.done()]


def live_peer_connections() -> list[Any]:
    """aiortc peer connections not closed yet."""
    from aiortc import RTCPeerConnection

    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, RTCPeerConnection) and o.signalingState != "closed"]


def test_many_real_runs_leave_nothing_behind(foundation_silent_flow: str) -> None:
    """50 real calls plus timed-out ones leave fds, threads, tasks and connections at baseline."""
    # warm-up: aiortc keeps one executor thread for the process (FACTS), imports are cached
    assert rtclab.run("basic", network="real").outcome == "connected"
    fds, threads = open_fds(), threading.active_count()
    assert live_tasks() == []

    outcomes = [rtclab.run("basic", network="real", deadline_s=5).outcome for _ in range(RUNS)]
    outcomes += [rtclab.run(foundation_silent_flow, network="real", deadline_s=0.3).outcome for _ in range(3)]

    assert outcomes == ["connected"] * RUNS + ["timeout"] * 3
    assert open_fds() == fds
    assert threading.active_count() <= threads + 1
    assert live_tasks() == []
    assert live_peer_connections() == []


def test_run_inside_a_loop_leaves_no_thread(foundation_silent_flow: str) -> None:
    """Runs started from inside a running loop (worker thread) and via arun leave no thread or fd behind."""
    rtclab.run("basic", network="real")
    fds, threads = open_fds(), threading.active_count()

    async def cell() -> list[str]:
        out = [rtclab.run("basic", network="real").outcome for _ in range(3)]
        out.append((await rtclab.arun(foundation_silent_flow, network="real", deadline_s=0.3)).outcome)
        return out

    assert asyncio.run(cell()) == ["connected"] * 3 + ["timeout"]
    assert open_fds() == fds
    assert threading.active_count() <= threads + 1
    assert live_tasks() == []
