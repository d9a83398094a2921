"""Reference traces: each flow's sim run must match data/traces/ exactly (times included).

A dependency upgrade (aiortc, aioice) or a change in rtclab that alters behaviour
shows up here as a readable diff. If the change is intended, regenerate with
``python -m rtclab traces`` and review the diff in git.
"""

from __future__ import annotations

import pytest

from rtclab import data, load


@pytest.mark.parametrize("name", sorted(data.REFERENCE_RUNS))
def test_reference_trace_unchanged(name: str) -> None:
    """Re-running a reference flow reproduces its recorded event sequence exactly."""
    diff = data.compare_to_reference(name)
    assert diff == "", f"{name} changed (regenerate with `python -m rtclab traces` if intended):\n{diff}"


def test_reference_traces_load_with_their_parameters() -> None:
    """Every reference CSV loads with the schema and names its flow and parameters."""
    for name, (flow, params) in data.REFERENCE_RUNS.items():
        df = load(data.path("traces") / f"{name}.csv")
        assert df.attrs["meta"]["flow"] == flow
        assert df.attrs["meta"]["params"]["topology"] == params["topology"]
        assert len(df) > 0
