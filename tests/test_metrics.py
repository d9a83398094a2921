"""Outcome and metrics computed from tuples equal the pandas implementation they replaced.

``tests/_metrics_reference.py`` is the pandas code as it was before #16; every
Series here must be identical to its Series, value for value and type for type,
on every reference trace, on runs of every flow and on hand-made edge cases.
"""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest

import rtclab
from rtclab import data, lab, load
from rtclab.flows import FLOWS
from rtclab.metrics import compute_metrics, metrics_from_rows, outcome
from rtclab.trace import Trace, _rows_to_frame, _to_frame

import _metrics_reference as reference


def _assert_same(new: pd.Series, old: pd.Series) -> None:
    assert list(new.index) == list(old.index)
    for key in old.index:
        a, b = new[key], old[key]
        assert type(a) is type(b), (key, a, b)
        assert (isinstance(a, float) and math.isnan(a) and math.isnan(b)) or a == b, (key, a, b)
    assert new.equals(old)


def _rows(frame: pd.DataFrame) -> list[tuple]:
    return list(frame.itertuples(index=False, name=None))


@pytest.mark.parametrize("name", sorted(data.REFERENCE_RUNS))
@pytest.mark.parametrize("media", [True, False])
def test_metrics_of_every_reference_trace_equal_the_pandas_version(name: str, media: bool) -> None:
    """compute_metrics and metrics_from_rows give the old Series on every stored trace."""
    frame = load(data.path("traces") / f"{name}.csv")
    old = reference.compute_metrics(frame, media=media)
    _assert_same(compute_metrics(frame, media=media), old)
    _assert_same(metrics_from_rows(_rows(frame), media=media), old)
    assert outcome(frame, media=media) == reference.outcome(frame, media=media)


@pytest.fixture(scope="module")
def flow_runs() -> list[tuple[rtclab.Run, list[tuple]]]:
    """One run per flow and topology, with the trace rows as recorded (before sorting)."""
    captured: list[list[tuple]] = []
    finish = lab._finish

    def spy(flow, p, trace, wall_s, error):  # type: ignore[no-untyped-def]
        result = finish(flow, p, trace, wall_s, error)
        captured.append(list(trace.rows) if trace is not None else [])
        return result

    lab._finish = spy
    try:
        runs = [rtclab.run(flow, topology=topo, seed=3) for flow in sorted(FLOWS) for topo in ("lan", "nat")]
        runs.append(rtclab.run("answer-on-click", topology="nat", deadline_s=2.0))  # a timeout
        runs.append(rtclab.run("basic", link_loss=1.0, deadline_s=40.0))  # ICE failure
    finally:
        lab._finish = finish
    return list(zip(runs, captured))


def test_metrics_of_runs_of_every_flow_equal_the_pandas_version(flow_runs) -> None:
    """A run's metrics (from tuples) and compute_metrics(frame) equal the old Series."""
    outcomes = set()
    for run, _rows_recorded in flow_runs:
        media = FLOWS[run.flow].media
        old = reference.compute_metrics(run.events, media=media)
        _assert_same(run.metrics, old)
        _assert_same(compute_metrics(run.events, media=media), old)
        outcomes.add(run.outcome)
    assert {"connected", "failed", "no-media", "timeout"} <= outcomes


def test_frame_from_trace_rows_equals_the_general_builder(flow_runs) -> None:
    """The one-go frame of recorded tuples equals the pandas-normalised frame (dtypes included)."""
    # some runs record rows late (lost candidates at their delivery time): sorting matters
    assert any(rec != sorted(rec, key=lambda r: r[0]) for _run, rec in flow_runs)
    for run, recorded in flow_runs:
        fast, general = _rows_to_frame(recorded), _to_frame(recorded)
        assert list(fast.dtypes) == list(general.dtypes)
        assert fast.index.equals(general.index)
        pd.testing.assert_frame_equal(fast, general)
        assert fast.equals(run.events)


@pytest.mark.filterwarnings("ignore:Constructing a Categorical:Warning")
def test_metrics_on_shuffled_and_edge_case_frames() -> None:
    """Unsorted frames, NaN-free ties, unknown actors and empty text behave as before."""
    rng = random.Random(7)
    base = _rows(load(data.path("traces") / "counteroffer-nat.csv"))
    for _ in range(5):
        rows = base[:]
        rng.shuffle(rows)
        frame = _to_frame(rows).sample(frac=1.0, random_state=rng.randrange(1000)).reset_index(drop=True)
        _assert_same(compute_metrics(frame), reference.compute_metrics(frame))
        _assert_same(metrics_from_rows(rows), reference.compute_metrics(_to_frame(rows)))
    tr = Trace(clock=iter([0.0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006]).__next__)
    tr.record("caller", "state", "iceConnectionState", "checking", prev="new")
    tr.record("callee", "state", "iceConnectionState", "checking", prev="new")
    tr.record("stranger", "state", "connectionState", "failed")  # not an actor of the schema
    tr.record("network", "error", "deadline", "timeout")
    tr.record("caller", "state", "iceConnectionState", "closed")
    tr.record("callee", "ice", "candidate", "lost", ref="caller:end")
    frame = tr.frame()
    _assert_same(compute_metrics(frame), reference.compute_metrics(frame))
    _assert_same(metrics_from_rows(tr.rows), reference.compute_metrics(frame))
    plain = frame.astype({"actor": object})  # a frame without categoricals
    _assert_same(compute_metrics(plain), reference.compute_metrics(plain))
