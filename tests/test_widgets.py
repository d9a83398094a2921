"""The call panel: its buttons drive real runs; tests click them programmatically."""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from rtclab.widgets import CallPanel, table_html  # noqa: E402


def _until(predicate, what: str, limit_s: float = 60.0) -> None:
    """A bounded poll (never a timed assert): wait for a condition a live call reaches by itself."""
    end = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _html_rows(panel: CallPanel) -> int:
    return panel.table.value.count("<tr>")  # body rows (the header row has a style)


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
    # the call is up: Answer is done, Hang up ends it
    assert panel.answer_button.disabled and not panel.hangup_button.disabled and panel.phase == "in call"
    # every row of the table is in the panel (scrollable), and the plot in its Output widget
    assert _html_rows(panel) == len(run.table()) > 10
    assert "overflow-y: auto" in panel.table.value
    assert len(panel.plot.outputs) == 1
    panel.hang_up()
    assert panel.status.value == "hung up" and panel.hangup_button.disabled and panel.phase == "ended"


def test_each_call_clears_the_last_one() -> None:
    """A new Call removes the previous call's table, plot and run before it rings."""
    panel = CallPanel("basic", auto_answer=True)
    assert panel.call() is not None and panel.table.value and panel.plot.outputs
    panel.auto.value = False
    assert panel.call() is None
    assert panel.table.value == "" and panel.plot.outputs == () and panel.last_run is None
    assert "ringing" in panel.status.value


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
    assert panel.hangup_button.disabled and panel.phase == "ended"  # a failed call is over


def test_answer_without_a_call_is_refused() -> None:
    """Clicking Answer when nobody is calling runs nothing and says so."""
    panel = CallPanel("basic")
    assert panel.answer() is None
    assert "click Call first" in panel.status.value
    assert panel.last_run is None


def test_live_call_waits_for_answer_and_hang_up() -> None:
    """On the real network: Call rings (the hint stays while rows arrive), Answer connects, the call stays up until Hang up."""
    panel = CallPanel("counteroffer", network="real")
    panel.call()
    try:
        _until(lambda: len(panel.rows) > 5, "the callee's page to receive the offer")
        assert "click <b>Answer</b>" in panel.status.value and panel.phase == "ringing"
        assert not panel.answer_button.disabled
        assert panel.answer() is None  # the live call goes on
        _until(lambda: "in call" in panel.status.value, "the live call to connect")
        assert not panel.hangup_button.disabled and panel.last_run is None
        _until(lambda: sum(r[3] == "first-frame" for r in list(panel.rows)) >= 2, "media both ways")
        assert "first-frame" in panel.table.value  # the live table follows the call
    finally:
        panel.hang_up()
    run = panel.last_run
    assert run is not None and run.outcome == "connected", run
    assert run.params["interface"] == "loopback"
    clicks = list(run.events.query("kind == 'user' and name == 'click'")["value"])
    assert clicks == ["call", "answer", "hangup"]
    click = run.metrics["t_answer_click_ms"]
    pc = run.events.query("actor == 'callee' and name == 'RTCPeerConnection'")["t_ms"].min()
    assert pc < click  # the callee's peer connection existed before the click
    assert panel.status.value == "hung up (connected)"
    assert _html_rows(panel) == len(run.table())


def test_answer_after_an_early_answer_call_connected_says_in_call() -> None:
    """A live counteroffer call connects while it rings; Answer clicked after that shows 'in call' at once."""
    panel = CallPanel("counteroffer", network="real")
    panel.call()
    try:
        _until(lambda: sum(r[3] == "connectionState" and r[4] == "connected" for r in list(panel.rows)) >= 2,
               "the call to connect while it rings")
        assert panel.phase == "ringing"
        panel.answer()
        assert "in call" in panel.status.value  # not "connecting…": no later row would update it
    finally:
        panel.hang_up()
    assert panel.last_run is not None and panel.phase == "ended"


def test_hang_up_ends_a_ringing_live_call() -> None:
    """Hang up ends a ringing live call by its own click, leaving a recorded run."""
    panel = CallPanel("answer-on-click", network="real")
    panel.call()
    panel.hang_up()
    run = panel.last_run
    assert run is not None
    assert run.events.query("kind == 'user' and value == 'hangup'").shape[0] == 1
    assert run.events.query("actor == 'callee' and name == 'RTCPeerConnection'").empty
    assert panel.status.value == "hung up (failed)"
    assert run.outcome == "failed" and "hung up" in run.reason


def test_a_new_call_hangs_up_a_live_one() -> None:
    """Call during a live call ends that call first; its late result never covers the new call."""
    panel = CallPanel("counteroffer", network="real")
    panel.call()
    panel.network.value = "sim"
    panel.call()
    assert panel.phase == "ringing" and panel.last_run is None and panel.table.value == ""
    assert panel.answer(think_ms=500).outcome == "connected"


def test_before_the_kernel_runs_the_panel_is_a_picture_and_a_sentence() -> None:
    """The display bundle carries a PNG of the panel and a plain sentence, besides the widget view."""
    bundle = CallPanel("counteroffer")._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("Call panel (counteroffer, network sim): run this cell to use it.")
    assert "VBox" not in bundle["text/plain"]
    import base64

    assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_html_keeps_every_row() -> None:
    """The panel's table has all rows of a long call (pandas would show the first and last five)."""
    import pandas as pd

    frame = pd.DataFrame({"t_ms": range(200), "actor": ["caller"] * 200, "kind": ["state"] * 200,
                          "name": ["x"] * 200, "value": [f"v{i}" for i in range(200)], "detail": [""] * 200})
    text = table_html(frame)
    assert text.count("<tr>") == 200 and "v199" in text and "v100" in text
    assert "200 rows; scroll for more" in text
