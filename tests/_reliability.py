"""Helpers shared by the reliability suites (hostile input, chaos, re-runs, soak).

Not a test module (the leading underscore keeps pytest from collecting it).
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from typing import Any

import rtclab

#: outcomes a run may end with when the runner itself did not fail
OUTCOMES = {"connected", "declined", "failed", "no-media", "timeout"}
#: wall seconds a whole run may take before the harness calls it a hang
HARNESS_S = 60.0


class Hang(AssertionError):
    """A run outlived the harness timeout."""


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def fd_table() -> dict[str, str]:
    """What each open file descriptor points to (for failure messages)."""
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return out


def live_tasks() -> list[asyncio.Task[Any]]:
    """asyncio tasks still alive anywhere in the process (not done)."""
    gc.collect()
    return [t for t in gc.get_objects() if isinstance(t, asyncio.Task) and not t.done()]


def rtclab_threads() -> list[str]:
    """Names of live threads started by rtclab (``rtclab-*``), past the one shared stall guard.

    ``rtclab-stall-guard`` is one daemon thread per process that watches every
    simulated run (``rtclab.lab._StallGuard``); it stays once started, so it is
    left out here, and a second one is reported.
    """
    names = [t.name for t in threading.enumerate() if t.name.startswith("rtclab")]
    if "rtclab-stall-guard" in names:
        names.remove("rtclab-stall-guard")
    return names


def bounded_run(flow: str, *, harness_s: float = HARNESS_S, **params: Any) -> rtclab.Run:
    """``rtclab.run`` in a daemon thread: raises :class:`Hang` past ``harness_s``; re-raises what run() raised."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(rtclab.run(flow, **params))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box.append(exc)

    worker = threading.Thread(target=target, name="harness-run", daemon=True)
    worker.start()
    worker.join(harness_s)
    if worker.is_alive():
        raise Hang(f"hang: run({flow!r}, {params}) still running after {harness_s} s")
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result
