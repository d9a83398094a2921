"""A small soak in the suite: many runs in a row, and after each one everything is back to baseline.

The full soak (200 runs per network, RSS over time) is ``python -m benchmarks.soak``.
"""

from __future__ import annotations

import threading
from typing import Any

import rtclab
from _reliability import OUTCOMES, bounded_run, live_tasks, open_fds, rtclab_threads
from rtclab.network import patches_installed

SIM_RUNS = 40
#: sim impairments cycled through the soak, so cleanup is exercised on every kind of ending
SIM_VARIANTS: list[dict[str, Any]] = [
    {},
    {"topology": "nat", "signaling_latency_ms": 50, "jitter_ms": 40, "reorder": 0.5},
    {"loss": 0.3, "duplicate": 0.1, "deadline_s": 20},
    {"topology": "nat", "nat": "symmetric", "deadline_s": 20},
    {"link_loss": 0.3, "deadline_s": 20},
]
#: real-network runs: flows that end quickly on the loopback machine, and two that time out
REAL_RUNS: list[tuple[str, dict[str, Any]]] = [
    ("basic", {}), ("counteroffer", {"answer_delay_ms": 100}), ("perfect", {}), ("vanilla", {}), ("mdn", {}),
    ("offer-before-tracks", {}), ("answer-on-click", {"answer_delay_ms": 100}), ("glare", {"deadline_s": 1}),
    ("forgot-candidates", {"deadline_s": 1}), ("basic", {"signaling_latency_ms": 50, "jitter_ms": 40, "reorder": 0.5}),
]


def _snapshot() -> dict[str, Any]:
    return {"fds": open_fds(), "threads": threading.active_count(), "tasks": len(live_tasks()),
            "rtclab_threads": rtclab_threads(), "patched": patches_installed()}


def _soak(jobs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Run ``jobs`` one after another; after each, compare with the baseline taken after a warm-up."""
    assert bounded_run("basic", network="real").outcome == "connected"  # warm-up: aiortc's executor thread
    assert bounded_run("basic").outcome == "connected"
    base = _snapshot()
    outcomes, leaks = [], []
    for i, (flow, params) in enumerate(jobs):
        r = bounded_run(flow, **params)  # a hang raises Hang, a crash re-raises
        assert r.outcome in OUTCOMES, (i, flow, params, r.outcome, r.reason)
        outcomes.append(r.outcome)
        now = _snapshot()
        if (now["fds"] > base["fds"] or now["threads"] > base["threads"] + 1 or now["tasks"] > base["tasks"]
                or now["rtclab_threads"] or now["patched"]):
            leaks.append((i, flow, params, now))
    assert leaks == [], f"baseline {base}; leaks after runs: {leaks}"
    return outcomes


def test_sim_soak_returns_to_baseline_after_each_run() -> None:
    """40 sim runs across every flow and impairment: fds, threads, tasks and patches back to baseline after each."""
    flows = list(rtclab.FLOWS)
    jobs = [(flows[i % len(flows)], {"seed": i, **SIM_VARIANTS[i % len(SIM_VARIANTS)]}) for i in range(SIM_RUNS)]
    outcomes = _soak(jobs)
    assert len(outcomes) == SIM_RUNS
    assert "connected" in outcomes


def test_real_soak_returns_to_baseline_after_each_run() -> None:
    """10 real-network runs of various flows: fds, threads (+1 for aiortc's executor) and tasks back to baseline after each."""
    outcomes = _soak([(flow, {"network": "real", **params}) for flow, params in REAL_RUNS])
    assert outcomes[0] == "connected"
    assert outcomes[-2] == "timeout"  # forgot-candidates never connects
