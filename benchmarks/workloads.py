"""Workloads run in worker processes (importable, so spawned workers can find them)."""

from __future__ import annotations

import time


def short_trial(seed: int) -> float:
    """Wall seconds of one short sim call (basic, lan)."""
    import rtclab

    t = time.perf_counter()
    rtclab.run("basic", seed=seed)
    return time.perf_counter() - t
