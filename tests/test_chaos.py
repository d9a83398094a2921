"""Chaos: every flow under heavy signaling impairment and media-path loss ends by its deadline with an outcome.

Simulated network only (deterministic): a few seeds per cell keep the file
short. Success rates per impairment are measured with more seeds outside the
suite (``python -m benchmarks --only chaos``); here only the contract is
asserted: the run ends, by its deadline, with ``connected``, ``failed``,
``no-media`` or ``timeout`` — never ``error`` (the runner failing) — and
every impairment is really applied (messages dropped, duplicated, overtaken;
packets lost).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import rtclab
from _reliability import OUTCOMES, bounded_run

DEADLINE_S = 20.0
#: virtual seconds after the deadline that closing everything may take (channel drain, peer close)
CLEANUP_S = 1.0
SEEDS = (0, 1)
IMPAIRMENTS: dict[str, dict[str, Any]] = {
    "signaling-loss-0.3": {"loss": 0.3},
    "signaling-reorder-0.5-jitter-40": {"reorder": 0.5, "jitter_ms": 40},
    "signaling-duplicate-0.1": {"duplicate": 0.1},
    "signaling-all": {"loss": 0.3, "reorder": 0.5, "jitter_ms": 40, "duplicate": 0.1},
    "link-loss-0.1": {"link_loss": 0.1},
    "link-loss-0.3": {"link_loss": 0.3},
}


def _check(r: rtclab.Run) -> None:
    ev = r.events
    assert r.outcome in OUTCOMES, (r.outcome, r.reason)
    assert not ((ev["kind"] == "error") & (ev["name"] == "runner")).any()
    assert ev["t_ms"].max() <= (DEADLINE_S + CLEANUP_S) * 1000.0, "the run outlived its deadline"
    if r.outcome == "timeout":
        deadline = ev[(ev["kind"] == "error") & (ev["name"] == "deadline")]
        assert len(deadline) == 1 and deadline["t_ms"].iloc[0] <= DEADLINE_S * 1000.0 + 1.0


@pytest.mark.parametrize("impairment", sorted(IMPAIRMENTS))
def test_every_flow_ends_with_an_outcome_under_chaos(impairment: str) -> None:
    """Each flow, under one impairment, ends by its deadline with connected / failed / no-media / timeout."""
    params = IMPAIRMENTS[impairment]
    rows = []
    for flow in rtclab.FLOWS:
        for seed in SEEDS:
            r = bounded_run(flow, seed=seed, deadline_s=DEADLINE_S, answer_delay_ms=200, **params)
            _check(r)
            rows.append(r.events.assign(flow=flow, seed=seed))
    ev = pd.concat(rows)
    sig = ev[ev["kind"] == "signal"]
    if params.get("loss"):
        assert ((sig["value"] == "dropped") & (sig["detail"] == "lost")).any()
    if params.get("duplicate"):
        delivered = sig[sig["value"] == "delivered"].groupby(["flow", "seed", "ref"], observed=True).size()
        assert (delivered > 1).any()
    if params.get("reorder"):
        assert _overtaken(sig) > 0


def _overtaken(sig: pd.DataFrame) -> int:
    """Messages delivered before one that was sent earlier to the same side (per run)."""
    n = 0
    for _key, g in sig.groupby(["flow", "seed"], observed=True):
        sent = g[g["value"] == "sent"].drop_duplicates("ref")
        order = {ref: i for i, ref in enumerate(sent["ref"])}
        for _actor, d in g[g["value"] == "delivered"].groupby("actor", observed=True):
            seq = [order[r] for r in d["ref"].drop_duplicates() if r in order]
            n += sum(1 for a, b in zip(seq, seq[1:]) if b < a)
    return n


def test_media_path_loss_is_applied() -> None:
    """With link loss the simulated network really drops packets (the impairment is not a no-op)."""
    r = bounded_run("basic", seed=0, deadline_s=DEADLINE_S, link_loss=0.3, record_packets=True)
    net = r.events[r.events["kind"] == "net"]
    assert (net["value"] == "dropped").any()
    _check(r)


def test_total_loss_of_signaling_times_out_cleanly() -> None:
    """With every message lost, each flow still ends: timeout (or no-media / failed), not an error."""
    for flow in rtclab.FLOWS:
        r = bounded_run(flow, seed=0, deadline_s=5, loss=1.0)
        assert r.outcome in OUTCOMES - {"connected"}, (flow, r.outcome, r.reason)
