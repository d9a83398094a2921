"""The call panel: its buttons drive real runs; tests click them programmatically."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from rtclab.widgets import CallPanel  # noqa: E402


def test_auto_answer_call_plays_the_chosen_flow_with_the_controls() -> None:
    """Call with auto-answer runs the selected flow with the sliders' think time and latency."""
    panel = CallPanel("counteroffer", auto_answer=True)
    panel.think.value = 1500
    panel.latency.value = 60
    run = panel.call()
    assert run is not None and run.outcome == "connected"
    assert run.params["answer_delay_ms"] == 1500 and run.params["signaling_latency_ms"] == 60
    clicks = run.events.query("kind == 'user' and name == 'click'")
    assert list(clicks["value"]) == ["call", "answer"]
    assert run.metrics["t_answer_click_ms"] - run.events.query("name == 'prompt'")["t_ms"].iloc[0] == pytest.approx(1500)
    assert "connected" in panel.status.value
    assert panel.answer_button.disabled and panel.hangup_button.disabled
    # the table and the plot land inside the panel's own Output widgets
    assert len(panel.table.outputs) == 1 and len(panel.plot.outputs) == 1


def test_sim_call_then_answer_uses_the_think_time() -> None:
    """In sim mode, Call rings and Answer plays the call with the user's think time."""
    panel = CallPanel("answer-on-click", topology="nat")
    assert panel.call() is None
    assert not panel.answer_button.disabled and "ringing" in panel.status.value
    run = panel.answer(think_ms=800)
    assert run is not None and run.outcome == "failed"
    assert run.params["topology"] == "nat"
    assert run.metrics["candidates_lost"] > 0
    prompt = run.events.query("name == 'prompt'")["t_ms"].iloc[0]
    assert run.metrics["t_answer_click_ms"] - prompt == pytest.approx(800)


def test_answer_without_a_call_is_refused() -> None:
    """Clicking Answer when nobody is calling runs nothing and says so."""
    panel = CallPanel("basic")
    assert panel.answer() is None
    assert "click Call first" in panel.status.value
    assert panel.last_run is None


def test_live_call_on_the_real_network_waits_for_the_click() -> None:
    """On the real network the callee's app waits for the real Answer click, then connects."""
    panel = CallPanel("counteroffer", network="real")
    panel.call()
    try:
        assert not panel.answer_button.disabled
    finally:
        run = panel.answer()
    assert run is not None and run.outcome == "connected"
    click = run.metrics["t_answer_click_ms"]
    pc = run.events.query("actor == 'callee' and name == 'RTCPeerConnection'")["t_ms"].min()
    assert pc < click  # the callee's peer connection existed before the click
    assert len(panel.rows) == len(run.events) - run.events.query("kind == 'ice' and value == 'lost'").shape[0]


def test_hang_up_ends_a_live_call() -> None:
    """Hang up ends a ringing live call by its own click, leaving a recorded run."""
    panel = CallPanel("answer-on-click", network="real")
    panel.call()
    panel.hang_up()
    run = panel.last_run
    assert run is not None
    assert run.events.query("kind == 'user' and value == 'hangup'").shape[0] == 1
    assert run.events.query("actor == 'callee' and name == 'RTCPeerConnection'").empty
    assert panel.status.value == "hung up"
    assert run.outcome == "failed" and "hung up" in run.reason
