"""Tests of rtclab.lab, metrics and the CLI on the real network (UDP on this machine)."""

from __future__ import annotations

import asyncio
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import rtclab
from rtclab.__main__ import main as cli_main
from rtclab.flows import FLOWS
from rtclab.trace import COLUMNS, load

ROOT = Path(__file__).resolve().parent.parent
SIDES = ("caller", "callee")
STATE_MACHINES = ("signalingState", "iceGatheringState", "iceConnectionState", "connectionState")
METRICS = [
    "outcome", "reason", "t_connected_ms", "t_first_frame_ms", "answer_to_media_ms", "gathering_ms",
    "candidates_gathered", "candidates_sent", "candidates_delivered", "candidates_added",
    "candidates_lost", "candidates_rejected", "messages_sent", "messages_delivered",
    "messages_dropped", "errors",
]


def real(flow: str, **params: Any) -> rtclab.Run:
    """One run of ``flow`` on the real network."""
    return rtclab.run(flow, network="real", **params)


def sequence(events: pd.DataFrame, actor: str, machine: str) -> list[str]:
    """The states one actor's state machine went through, starting with the first prev."""
    rows = events[(events["actor"] == actor) & (events["kind"] == "state") & (events["name"] == machine)]
    assert len(rows), f"no {machine} rows for {actor}"
    assert rows["prev"].iloc[1:].tolist() == rows["value"].iloc[:-1].tolist()  # prev chains
    return [rows["prev"].iloc[0], *rows["value"].tolist()]


@pytest.fixture(scope="module")
def basic() -> rtclab.Run:
    """One basic call on the real network, shared by the tests that only read it."""
    return real("basic")


# --- basic on the real network --------------------------------------------------------------------------


def test_basic_connects_with_media_both_ways(basic: rtclab.Run) -> None:
    """The basic flow connects on the real network with a first frame at each end."""
    assert basic.outcome == "connected", basic.reason
    assert basic.reason == "media flows both ways"
    ev = basic.events
    frames = ev[(ev["kind"] == "media") & (ev["name"] == "first-frame")]
    assert sorted(frames["actor"].tolist()) == ["callee", "caller"]
    assert basic.metrics["selected_pair"] == "host/host"
    assert basic.params["network"] == "real" and basic.flow == "basic"


def test_basic_state_sequences(basic: rtclab.Run) -> None:
    """Each side's four state machines follow the expected sequences, ending closed."""
    ev = basic.events
    for side in SIDES:
        assert sequence(ev, side, "connectionState") == ["new", "connecting", "connected", "closed"]
        assert sequence(ev, side, "iceConnectionState") == ["new", "checking", "connected", "closed"]
        assert sequence(ev, side, "iceGatheringState") == ["new", "gathering", "complete"]
    assert sequence(ev, "caller", "signalingState") == ["stable", "have-local-offer", "stable", "closed"]
    assert sequence(ev, "callee", "signalingState") == ["stable", "have-remote-offer", "stable", "closed"]


def test_basic_candidates_trickle_both_ways(basic: rtclab.Run) -> None:
    """Each side gathers, sends and has added at the other side at least one candidate, linked by ref."""
    ev = basic.events
    cand = ev[(ev["kind"] == "ice") & (ev["name"] == "candidate")]
    sig = ev[(ev["kind"] == "signal") & (ev["name"] == "new-ice-candidate")]
    for side, other in (("caller", "callee"), ("callee", "caller")):
        gathered = set(cand.loc[(cand["actor"] == side) & (cand["value"] == "gathered"), "ref"])
        sent = set(sig.loc[(sig["actor"] == side) & (sig["value"] == "sent"), "ref"])
        added = set(cand.loc[(cand["actor"] == other) & (cand["value"] == "added"), "ref"])
        assert gathered and all(ref.startswith(f"{side}:c") for ref in gathered)
        assert gathered <= sent and gathered <= added
        assert f"{side}:end" in set(cand.loc[cand["actor"] == other, "ref"])  # end-of-candidates added
    m = basic.metrics
    assert m["candidates_added"] == m["candidates_gathered"] == m["candidates_sent"] == m["candidates_delivered"] >= 2
    assert m["candidates_lost"] == m["candidates_rejected"] == m["errors"] == m["messages_dropped"] == 0


def test_basic_event_order(basic: rtclab.Run) -> None:
    """The offer is sent before it is delivered, answered before the caller applies it, and media follows connection."""
    ev = basic.events

    def first(**match: str) -> int:
        mask = pd.Series(True, index=ev.index)
        for col, val in match.items():
            mask &= ev[col] == val
        hits = ev.index[mask]
        assert len(hits), match
        return int(hits[0])

    offer_sent = first(actor="caller", name="video-offer", value="sent")
    offer_delivered = first(actor="callee", name="video-offer", value="delivered")
    answer_sent = first(actor="callee", name="video-answer", value="sent")
    caller_srd = first(actor="caller", kind="call", name="setRemoteDescription", value="ok")
    for side in SIDES:
        connected = first(actor=side, name="connectionState", value="connected")
        frame = first(actor=side, name="first-frame")
        assert caller_srd < connected < frame
    assert first(actor="caller", name="negotiationneeded") < offer_sent < offer_delivered < answer_sent < caller_srd
    assert ev["t_ms"].is_monotonic_increasing


def test_basic_metrics(basic: rtclab.Run) -> None:
    """Run.metrics has the documented entries, consistent with the frame."""
    m = basic.metrics
    assert isinstance(m, pd.Series)
    assert set(METRICS) <= set(m.index)
    ev = basic.events
    connected = ev[(ev["name"] == "connectionState") & (ev["value"] == "connected")]
    assert m["t_connected_ms"] == connected["t_ms"].max()
    assert 0 < m["t_connected_ms"] < m["t_first_frame_ms"]
    assert m["gathering_ms"] > 0
    assert math.isnan(m["answer_to_media_ms"])  # nobody clicked Answer in the basic flow
    assert m["messages_sent"] == m["messages_delivered"] == int(((ev["kind"] == "signal") & (ev["value"] == "sent")).sum())
    assert rtclab.compute_metrics(ev).drop("duration_ms").equals(m.drop("duration_ms"))


def test_run_save_load_round_trip(basic: rtclab.Run, tmp_path: Path) -> None:
    """Run.save writes a file that rtclab.load reads back identical, with the run's parameters."""
    back = load(basic.save(tmp_path / "basic.csv"))
    assert back.equals(basic.events)
    assert back.dtypes.equals(basic.events.dtypes)
    assert list(back.columns) == list(COLUMNS)
    assert back.attrs["meta"]["flow"] == "basic"
    assert back.attrs["meta"]["params"]["network"] == "real"
    assert rtclab.compute_metrics(back).equals(rtclab.compute_metrics(basic.events))


def test_run_repr_and_table(basic: rtclab.Run) -> None:
    """repr names the flow and outcome; table() leaves out ICE pair checks."""
    assert "flow='basic'" in repr(basic) and "outcome='connected'" in repr(basic)
    table = basic.table()
    assert set(table["kind"].unique()) <= {"call", "signal", "state", "media", "user", "error"}
    assert len(basic.table(limit=5)) == 5


# --- the other flows on the real network -------------------------------------------------------------


def test_mdn_connects_or_fails_only_by_its_racy_glare_branch() -> None:
    """The MDN sample connects with in-order signaling, unless its glare branch meets the known race.

    On a real loop (busy with aiortc's own work) the callee's answer and its
    re-offer can arrive back to back; when the re-offer's handler runs while
    the caller's setRemoteDescription(answer) is still pending, the sample's
    glare branch sees have-local-offer, its rollback then runs in stable and
    fails with InvalidStateError, and the re-offer is never answered. A browser
    page running the sample has the same race. Any other failure fails the test.
    """
    r = real("mdn")
    if r.outcome == "connected":
        return
    ev = r.events
    rollback = ev[(ev["actor"] == "caller") & (ev["kind"] == "call") & (ev["name"] == "setLocalDescription")
                  & (ev["value"] == "error")]
    assert rollback["detail"].str.startswith("InvalidStateError").any(), r.reason
    answer_done = ev[(ev["actor"] == "caller") & (ev["name"] == "setRemoteDescription") & (ev["value"] == "ok")]["t_ms"].min()
    offer_in = ev[(ev["actor"] == "caller") & (ev["name"] == "video-offer") & (ev["value"] == "delivered")]["t_ms"].min()
    assert offer_in <= answer_done


def test_offer_before_tracks_negotiates_no_media() -> None:
    """An offer made before the tracks negotiates nothing: outcome no-media."""
    r = real("offer-before-tracks")
    assert r.outcome == "no-media", r.reason
    assert "before any track" in r.reason
    ev = r.events
    assert not ((ev["kind"] == "media") & (ev["name"] == "first-frame")).any()


def test_glare_fails_with_invalid_state_error() -> None:
    """Naive code under glare fails: the late answer meets stable (InvalidStateError)."""
    r = real("glare", deadline_s=2)
    assert r.outcome == "failed"
    assert "InvalidStateError" in r.reason
    ev = r.events
    errors = ev[(ev["kind"] == "error") & (ev["name"] == "setRemoteDescription")]
    assert "InvalidStateError" in set(errors["value"])


def test_perfect_negotiation_connects_after_implicit_rollback() -> None:
    """Perfect negotiation connects under glare; the polite callee rolled back implicitly."""
    r = real("perfect")
    assert r.outcome == "connected", r.reason
    ev = r.events
    rollback = ev[(ev["kind"] == "call") & (ev["name"] == "rollback")]
    assert rollback["actor"].tolist() == ["callee"]
    assert rollback["detail"].str.startswith("implicit").all()
    assert sequence(ev, "callee", "signalingState")[:4] == ["stable", "have-local-offer", "stable", "have-remote-offer"]


def test_counteroffer_connects_and_measures_answer_to_media() -> None:
    """The counter-offer flow connects and has an answer-to-media time after the click."""
    r = real("counteroffer", answer_delay_ms=200)
    assert r.outcome == "connected", r.reason
    m = r.metrics
    assert m["candidates_lost"] == 0
    assert m["answer_to_media_ms"] >= 0
    # the caller sees video only once the user has clicked Answer (the callee's camera goes on then);
    # whether the call is connected before the click depends on the real machine's speed (the sim tests that)
    assert m["t_answer_click_ms"] < m["t_first_frame_caller_ms"]


def test_answer_on_click_connects_despite_lost_candidates() -> None:
    """On a flat network answer-on-click loses early candidates yet connects (peer-reflexive rescue)."""
    r = real("answer-on-click", answer_delay_ms=300)
    assert r.outcome == "connected", r.reason
    m = r.metrics
    assert m["candidates_lost"] > 0
    ev = r.events
    lost = ev[(ev["kind"] == "ice") & (ev["value"] == "lost")]
    assert set(lost["actor"]) == {"callee"}
    assert set(lost["detail"]) == {"no peer connection yet"}
    pairs = set(ev.loc[(ev["kind"] == "ice") & (ev["name"] == "selected-pair"), "value"])
    assert any("prflx" in p for p in pairs)


def test_call_that_never_connects_times_out(foundation_silent_flow: str) -> None:
    """A call nobody answers ends with outcome timeout at its deadline, cleanly closed."""
    r = real(foundation_silent_flow, deadline_s=1)
    assert r.outcome == "timeout", r.reason
    ev = r.events
    deadline = ev[(ev["kind"] == "error") & (ev["name"] == "deadline")]
    assert deadline["value"].tolist() == ["timeout"]
    assert deadline["t_ms"].iloc[0] >= 1000.0
    assert sequence(ev, "caller", "signalingState") == ["stable", "have-local-offer", "closed"]


def test_without_emulation_the_textbook_call_never_starts() -> None:
    """With emulate=False (bare aiortc) no negotiationneeded fires, so the basic caller never offers."""
    r = real("basic", emulate=False, deadline_s=0.5)
    assert r.outcome == "timeout", r.reason
    ev = r.events
    assert not (ev["name"] == "negotiationneeded").any()
    assert not ((ev["kind"] == "signal") & (ev["name"] == "video-offer")).any()
    assert r.metrics["candidates_gathered"] == 0


DOCUMENTED_FLOWS = ["basic", "mdn", "answer-on-click", "offer-before-tracks", "counteroffer", "vanilla", "glare", "perfect"]


def test_flows_registry_restored() -> None:
    """The registry starts with the eight flows of DESIGN section 6 and holds no leftover test flow."""
    assert list(FLOWS)[:8] == DOCUMENTED_FLOWS
    assert "never-answers" not in FLOWS


# --- parameters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flow, params, error, text",
    [
        ("nope", {}, KeyError, "unknown flow 'nope'; known flows: basic"),
        ("basic", {"latency": 5}, TypeError, "unknown parameter(s) ['latency']"),
        ("basic", {"network": "internet"}, ValueError, "network must be 'sim' or 'real'"),
        ("basic", {"topology": "mesh"}, ValueError, "topology must be 'lan' or 'nat'"),
        ("basic", {"signaling_latency_ms": -1}, ValueError, "signaling_latency_ms must be a number"),
        ("basic", {"jitter_ms": "5"}, ValueError, "jitter_ms must be a number"),
        ("basic", {"answer_delay_ms": True}, ValueError, "answer_delay_ms must be a number"),
        ("basic", {"loss": 1.5}, ValueError, "loss must be a probability"),
        ("basic", {"reorder": -0.1}, ValueError, "reorder must be a probability"),
        ("basic", {"nat": "carrier-grade"}, ValueError, "nat must be one of"),
        ("basic", {"nat": ("symmetric",)}, ValueError, "nat as a pair"),
        ("basic", {"deadline_s": 0}, ValueError, "deadline_s must be a number of seconds in (0, 3600]"),
    ],
)
def test_bad_parameters(flow: str, params: dict[str, Any], error: type, text: str) -> None:
    """run() rejects bad flows and parameters up front with a clear message."""
    with pytest.raises(error) as info:
        rtclab.run(flow, **{"network": "real", **params})
    message = info.value.args[0] if isinstance(info.value, KeyError) else str(info.value)
    assert text in message


# --- event loops ------------------------------------------------------------------------------------------


def test_run_inside_a_running_event_loop() -> None:
    """rtclab.run works when called synchronously from inside a running loop (the Jupyter case)."""

    async def notebook_cell() -> rtclab.Run:
        asyncio.get_running_loop()  # a loop is running here, as in a kernel
        return real("basic")

    r = asyncio.run(notebook_cell())
    assert r.outcome == "connected", r.reason


def test_arun_is_awaitable() -> None:
    """await rtclab.arun(...) plays a call in the caller's loop."""

    async def main() -> rtclab.Run:
        return await rtclab.arun("basic", network="real")

    r = asyncio.run(main())
    assert r.outcome == "connected", r.reason
    assert sequence(r.events, "caller", "connectionState") == ["new", "connecting", "connected", "closed"]


# --- command line --------------------------------------------------------------------------------------


def test_cli_lists_the_flows() -> None:
    """python -m rtclab flows prints one line per registered flow, the eight documented ones first."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "rtclab", "flows"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert names == list(FLOWS)
    assert names[:8] == DOCUMENTED_FLOWS


@pytest.mark.parametrize(
    "argv, text",
    [
        (["run", "nope"], "unknown flow 'nope'"),
        (["run", "basic", "--latency", "-1"], "argument --latency: signaling_latency_ms must be a number of milliseconds in [0, 3600000]"),
        (["run", "basic", "--loss", "2"], "argument --loss: loss must be a probability in [0, 1]"),
        (["run", "basic", "--latency", "fast"], "signaling_latency_ms must be a number of milliseconds in [0, 3600000], got 'fast'"),
    ],
)
def test_cli_bad_arguments_exit_2(argv: list[str], text: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad flows and parameters exit with status 2 and a message on stderr."""
    with pytest.raises(SystemExit) as info:
        cli_main(argv)
    assert info.value.code == 2
    assert text in capsys.readouterr().err


def test_cli_run_real(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """python -m rtclab run basic --network real prints the outcome and saves a loadable CSV."""
    out = tmp_path / "run.csv"
    assert cli_main(["run", "basic", "--network", "real", "--save", str(out)]) == 0
    text = capsys.readouterr().out
    assert "outcome: connected" in text
    assert re.search(r"caller\s+connectionState\s+new -> connecting -> connected -> closed", text)
    assert load(out).attrs["meta"]["flow"] == "basic"


def test_exception_filter_passes_other_errors_on() -> None:
    """The loop filter hides only aiortc's closed-connection connect task; other errors reach the old handler."""
    from rtclab import lab

    seen: list[str] = []
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(lambda _l, ctx: seen.append(ctx["message"]))
        lab._quiet_closed_connects(loop)
        lab._quiet_closed_connects(loop)  # idempotent: not wrapped twice
        loop.call_exception_handler({"message": "other", "exception": RuntimeError("boom")})
        assert seen == ["other"]

        from aiortc.exceptions import InvalidStateError as AiortcInvalidState

        async def connect() -> None:  # stands for aiortc's never-awaited RTCPeerConnection.__connect()
            raise AiortcInvalidState("RTCIceTransport is closed")

        connect.__qualname__ = "RTCPeerConnection.__connect"
        task = loop.create_task(connect())
        loop.run_until_complete(asyncio.wait([task]))
        context = {"message": "Task exception was never retrieved", "exception": task.exception(), "future": task}
        loop.call_exception_handler(context)  # hidden
        loop.call_exception_handler({**context, "exception": AiortcInvalidState("other state")})  # not hidden
        assert seen == ["other", "Task exception was never retrieved"]
    finally:
        loop.close()


# --- the simulation's media profile -------------------------------------------------------------------


@pytest.mark.parametrize("size", [(320,), (321, 240), "320x240", (0, 240), (True, 2)])
def test_bad_sim_video(size: Any) -> None:
    """sim_video must be a (width, height) pair of even pixel counts."""
    with pytest.raises(ValueError, match="sim_video must be a"):
        rtclab.run("basic", sim_video=size)


def test_sim_camera_is_160x120_unless_asked_and_real_camera_320x240(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sim default picture is media.SIM_VIDEO; sim_video switches it; the real network keeps 320x240."""
    from rtclab import media

    sizes: list[tuple[int, int]] = []
    original = media.Camera.__init__

    def spy(self: media.Camera, width: int = 320, height: int = 240) -> None:
        sizes.append((width, height))
        original(self, width, height)

    monkeypatch.setattr(media.Camera, "__init__", spy)
    rtclab.run("basic")
    rtclab.run("basic", sim_video=(320, 240))
    real("basic")
    assert sizes == [(160, 120)] * 2 + [(320, 240)] * 4
    assert media.SIM_VIDEO == (160, 120)


def test_sim_video_changes_packets_not_the_lossless_event_rows() -> None:
    """On a lossless link 160x120 and 320x240 give the same non-packet rows; the key frame needs fewer packets."""
    small = rtclab.run("basic", record_packets=True)
    large = rtclab.run("basic", record_packets=True, sim_video=(320, 240))
    rows = lambda r: r.events[r.events["kind"] != "net"].astype(str).values.tolist()  # noqa: E731
    assert rows(small) == rows(large)
    srtp = lambda r: int(((r.events["name"] == "srtp") & (r.events["value"] == "sent")).sum())  # noqa: E731
    assert 0 < srtp(small) < srtp(large)
