"""Tests of rtclab.diagnose: findings from rtclab runs and browser dumps, with their evidence.

Runs are simulated (deterministic, fast); browser dumps are the Chromium 156
files of ``tests/data/browser`` and the hand-written ones of ``tests/data/traces``
(see tests/test_traces.py).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import rtclab
from rtclab.diagnose import Diagnosis, Finding, diagnose
from rtclab.trace import COLUMNS, Trace
from rtclab.traces import load_trace

DATA = Path(__file__).resolve().parent / "data"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks" / "src"


def _is_evidence_of(finding: Finding, frame: pd.DataFrame) -> None:
    ev = finding.evidence
    assert len(ev) > 0
    assert set(ev.index) <= set(frame.index)
    assert list(ev.columns) == list(frame.columns)
    assert ev.equals(frame.loc[ev.index])


@pytest.fixture(scope="module")
def aoc_nat():
    return rtclab.run("answer-on-click", topology="nat")


def test_answer_on_click_behind_nat_names_the_lost_candidates(aoc_nat):
    """The first finding is the candidates lost before the callee had a peer connection, with its evidence."""
    d = diagnose(aoc_nat)
    assert d.outcome == "failed" and not d.ok
    top = d[0]
    assert top.code == "candidates-before-peer-connection" and top.severity == "error"
    assert top.notebook == "03_timing_trap" and (NOTEBOOKS / f"{top.notebook}.py").exists()
    assert "peer connection" in top.explanation and "Answer" in top.explanation
    _is_evidence_of(top, aoc_nat.events)
    ev = top.evidence
    lost = ev[(ev.kind == "ice") & (ev.value == "lost")]
    assert set(lost.ref) == {"caller:c1", "caller:c2", "caller:end"} and (lost.actor == "callee").all()
    assert ((ev.kind == "call") & (ev.name == "RTCPeerConnection") & (ev.actor == "callee")).any()
    assert ((ev.kind == "user") & (ev.value == "answer")).any()
    assert "needs-turn" not in d.codes and "ice-failed" not in d.codes  # the cause is named, not a symptom
    text = str(d)
    assert "Candidates arrived before the peer connection existed" in text and "03_timing_trap" in text


def test_basic_call_has_no_problem():
    """A connected textbook call gets no finding at all."""
    d = diagnose(rtclab.run("basic"))
    assert d.outcome == "connected" and d.ok and d.findings == [] and d.undecided == []
    assert "no problem found" in str(d)


def test_answer_on_click_on_a_lan_is_a_warning():
    """On a flat network the same bug connects (peer-reflexive rescue): a warning, not an error."""
    d = diagnose(rtclab.run("answer-on-click"))
    assert d.outcome == "connected" and not d.ok
    assert d.codes == ["candidates-before-peer-connection"] and d[0].severity == "warning"
    assert "peer-reflexive" in d[0].explanation


@pytest.mark.parametrize(
    ("flow", "params", "code", "notebook"),
    [
        ("offer-before-tracks", {}, "offer-before-tracks", "02_offer_after_tracks"),
        ("glare", {}, "glare", "07_glare"),
        ("forgot-candidates", {"topology": "nat"}, "no-candidates", "08_timeouts"),
        ("basic", {"topology": "nat", "nat": "symmetric"}, "needs-turn", "04_works_on_my_machine"),
    ],
)
def test_each_broken_flow_gets_its_finding_first(flow, params, code, notebook):
    """Each of the course's broken flows is explained by its own finding, first and as an error."""
    r = rtclab.run(flow, **params)
    d = diagnose(r)
    assert d.codes[0] == code and d[0].severity == "error" and d[0].notebook == notebook
    assert (NOTEBOOKS / f"{notebook}.py").exists()
    _is_evidence_of(d[0], r.events)


def test_perfect_negotiation_glare_is_only_info():
    """Glare resolved by perfect negotiation, and the ignored offer's rejected candidates, are not problems."""
    d = diagnose(rtclab.run("perfect"))
    assert d.outcome == "connected" and d.ok
    assert {f.severity for f in d} == {"info"} and "glare" in d.codes


def test_missing_end_of_candidates_is_noted_when_harmless():
    """The MDN sample never sends end-of-candidates: one info naming both sides, on a connected call."""
    d = diagnose(rtclab.run("mdn"))
    assert d.ok and d.codes == ["no-end-of-candidates"] and d[0].severity == "info"
    assert "caller (2 candidates) and the callee (2 candidates)" in d[0].explanation


def test_lost_signaling_is_reported():
    """Messages the channel dropped are a finding with the dropped rows as evidence."""
    for seed in range(20):
        r = rtclab.run("basic", loss=0.3, seed=seed)
        if (r.events.value == "dropped").any():
            break
    else:
        pytest.fail("no seed dropped a message")
    d = diagnose(r)
    f = d["signaling-lost"]
    assert set(f.evidence.value) <= {"dropped", "refused"} and len(f.evidence) == int((r.events.value == "dropped").sum())


def test_mdn_callee_null_peer_connection_is_explained():
    """The MDN callee's TypeError on a candidate that overtakes the offer counts as a lost candidate."""
    for seed in range(30):
        r = rtclab.run("mdn", reorder=0.5, jitter_ms=30, seed=seed)
        if r.events.detail.str.contains("properties of null").any():
            break
    else:
        pytest.skip("no seed made a candidate overtake the offer")
    d = diagnose(r)
    assert "candidates-before-peer-connection" in d.codes
    assert "swallowed-errors" not in d.codes  # the same errors, explained once


def _frame(rows):
    tr = Trace(clock=lambda: 0.0)
    for t, actor, kind, name, value, *rest in rows:
        tr.record(actor, kind, name, value, t_ms=t, **(rest[0] if rest else {}))
    return tr.frame()


def test_renegotiation_after_answer():
    """Answer-to-media spent mostly in an offer/answer round started by the click is a warning."""
    base = [
        (0, "caller", "state", "signalingState", "have-local-offer", {"prev": "stable"}),
        (0, "caller", "state", "signalingState", "stable", {"prev": "have-local-offer"}),
        (0, "caller", "state", "connectionState", "connected"), (0, "callee", "state", "connectionState", "connected"),
        (0, "caller", "media", "track", "video"), (0, "callee", "media", "track", "video"),
        (50, "callee", "media", "first-frame", "video"),
        (1000, "user", "user", "click", "answer"),
    ]
    reneg = [
        (1000, "callee", "call", "negotiationneeded", "event"),
        (1001, "callee", "state", "signalingState", "have-local-offer", {"prev": "stable"}),
        (1001, "callee", "call", "setLocalDescription", "ok", {"detail": "implicit"}),
        (1002, "callee", "signal", "video-offer", "sent"),
        (1100, "caller", "call", "setRemoteDescription", "ok", {"detail": "offer m=[video] candidates=0"}),
        (1101, "caller", "signal", "video-answer", "sent"),
        (1200, "callee", "state", "signalingState", "stable", {"prev": "have-local-offer"}),
        (1200, "callee", "call", "setRemoteDescription", "ok", {"detail": "answer m=[video] candidates=0"}),
        (1240, "caller", "media", "first-frame", "video"),
    ]
    d = diagnose(_frame(base + reneg))
    f = d["renegotiation-after-answer"]
    assert f.severity == "warning" and f.notebook == "11_answering_the_call"
    assert "200 ms" in f.explanation and "240 ms" in f.explanation
    unmute = base + [(1000, "callee", "call", "replaceTrack", "ok"), (1040, "caller", "media", "first-frame", "video")]
    assert "renegotiation-after-answer" not in diagnose(_frame(unmute)).codes
    first_round = [r for r in base if r[3] != "signalingState"] + reneg  # nothing negotiated before the click
    assert "renegotiation-after-answer" not in diagnose(_frame(first_round)).codes
    assert "renegotiation-after-answer" not in diagnose(rtclab.run("answer-on-click")).codes


def test_hangup_on_disconnected():
    """Closing 0.8 s after disconnected is flagged; closing after failed is not."""
    d = diagnose(load_trace(DATA / "traces" / "rtcstats-js-hangup.jsonl"))
    f = d["hangup-on-disconnected"]
    assert f.severity == "warning" and list(f.evidence.value) == ["disconnected", "ok"]
    assert f.notebook == "12_when_calls_break"
    patient = _frame([
        (0, "caller", "state", "connectionState", "connected"),
        (100, "caller", "state", "connectionState", "disconnected"),
        (10100, "caller", "state", "connectionState", "failed"),
        (10200, "caller", "call", "close", "ok"),
    ])
    assert "hangup-on-disconnected" not in diagnose(patient).codes


@pytest.mark.parametrize("name", ["basic.internals.json", "basic.rtcstats.jsonl", "basic.internals.json.gz"])
def test_connected_chromium_dumps_have_no_problem(name):
    """Real Chromium dumps of a good call: connected, no finding, and the checks they cannot decide listed."""
    d = diagnose(load_trace(DATA / "browser" / name))
    assert d.outcome == "connected" and d.findings == []
    undecided = dict(d.undecided)
    assert "end-of-candidates" in undecided["no-end-of-candidates"]
    assert "swallowed-errors" in undecided and d.lacks


@pytest.mark.parametrize("name", ["early-candidates.internals.json", "early-candidates.rtcstats.jsonl"])
def test_chromium_early_candidates(name):
    """Chromium's InvalidStateError on candidates added before the remote description is found in both formats."""
    frame = load_trace(DATA / "browser" / name)
    d = diagnose(frame)
    f = d["candidates-before-remote-description"]
    assert d.codes[0] == f.code and f.severity == "warning"  # the call still connected on loopback
    _is_evidence_of(f, frame)
    assert set(f.evidence.actor) == {"callee"} and set(f.evidence.pc) == {"8-2"}


@pytest.mark.parametrize("name", ["forgot-candidates.internals.json", "forgot-candidates.rtcstats.jsonl"])
def test_chromium_forgotten_candidates(name):
    """No icecandidate handler in Chromium: no candidates exchanged, ICE stuck in new."""
    d = diagnose(DATA / "browser" / name)  # a path works too
    assert d.outcome == "stalled" and d.codes[0] == "no-candidates" and d[0].severity == "error"
    assert "'new'" in d[0].explanation


def test_older_dump_with_three_peer_connections():
    """A failed call in an older Chrome's dump is diagnosed without error (ICE failed, nothing else to blame)."""
    d = diagnose(load_trace(DATA / "traces" / "legacy-chrome74.internals.json"))
    assert d.outcome == "failed" and d.codes == ["ice-failed"]


def test_result_api():
    """Diagnosis indexes by position and code, iterates, tabulates; bad input is a clear error."""
    r = rtclab.run("glare")
    d = diagnose(r)
    assert isinstance(d, Diagnosis) and [f.code for f in d] == d.codes
    assert d["glare"] is d[0]
    with pytest.raises(KeyError, match="no finding"):
        d["nope"]
    t = d.table()
    assert list(t.columns) == ["severity", "code", "title", "notebook", "evidence_rows", "t_ms"] and len(t) == len(d.codes)
    assert diagnose(r.events).codes == d.codes
    with pytest.raises(TypeError, match="Run"):
        diagnose(42)
    with pytest.raises(ValueError, match="missing columns"):
        diagnose(pd.DataFrame({"t_ms": [0.0]}))
    assert tuple(COLUMNS) == tuple(d[0].evidence.columns)


def test_candidates_after_end_of_candidates():
    """A candidate reordered behind end-of-candidates is named as such, not as a generic addIceCandidate failure."""
    for seed in range(40):
        r = rtclab.run("basic", reorder=0.5, jitter_ms=20, seed=seed)
        d = diagnose(r)
        if "candidates-after-end" in d.codes:
            break
    else:
        pytest.fail("no seed reordered a candidate behind end-of-candidates")
    f = d["candidates-after-end"]
    ev = f.evidence
    t_end = ev[(ev.kind == "ice") & ev.ref.str.endswith(":end")].t_ms.iloc[0]
    later = ev[(ev.kind == "ice") & ~ev.ref.str.endswith(":end")]
    assert len(later) and (later.t_ms > t_end).all()
    assert "addicecandidate-failed" not in d.codes


def test_every_stored_trace_is_diagnosed_without_error():
    """Every reference run, Chromium dump and hand-written trace gives a printable diagnosis."""
    repo = Path(__file__).resolve().parent.parent
    files = sorted((repo / "data" / "traces").glob("*.csv")) + sorted((DATA / "browser").glob("*.*s*")) + \
        sorted((DATA / "traces").glob("*")) + [repo / "data" / "webrtc-internals" / "chromium-basic.json"]
    files = [f for f in files if f.suffix != ".py"]
    assert len(files) >= 25
    for path in files:
        d = diagnose(path)
        assert d.outcome in ("connected", "failed", "stalled") and str(d).startswith("Diagnosis of ")
        for f in d:
            assert f.severity in ("error", "warning", "info") and (NOTEBOOKS / f"{f.notebook}.py").exists()


def test_missing_end_of_candidates_is_a_warning_when_ice_waits():
    """Candidates sent without end-of-candidates while the other side sits in checking: a warning."""
    frame = _frame([
        (0, "caller", "signal", "new-ice-candidate", "sent", {"ref": "caller:c1"}),
        (5, "callee", "state", "iceConnectionState", "checking"),
        (9000, "callee", "state", "iceConnectionState", "checking", {"prev": "new"}),
    ])
    f = diagnose(frame)["no-end-of-candidates"]
    assert f.severity == "warning" and "still in 'checking'" in f.explanation
    assert set(f.evidence.actor) == {"caller", "callee"}


@pytest.mark.parametrize("name", ["naive-glare.internals.json", "naive-glare.rtcstats.jsonl"])
def test_chromium_naive_glare(name):
    """Chromium's implicit rollback (have-local-offer, stable, have-remote-offer) is seen as glare, left unresolved."""
    frame = load_trace(DATA / "browser" / name)
    assert frame.attrs["meta"]["peers"] == {"8-1": "caller", "8-2": "callee"}  # both offered first: creation order
    d = diagnose(frame)
    assert d.codes == ["glare"] and d[0].severity == "error" and d[0].notebook == "07_glare"
    ev = d[0].evidence
    assert set(ev[ev.kind == "error"].value) == {"InvalidStateError"}  # what the page's JavaScript caught
    assert set(ev[(ev.kind == "state")].value) >= {"have-local-offer", "have-remote-offer"}
    _is_evidence_of(d[0], frame)


def test_one_side_of_a_call():
    """A dump of one peer connection: no remote candidate at all is named, and the doctor says it cannot tell who forgot."""
    frame = load_trace(DATA / "browser" / "forgot-candidates.rtcstats.jsonl", actors={"8-2": "callee"})
    assert set(frame.pc) == {"8-2"} and any("the other peer" in x for x in frame.attrs["meta"]["lacks"])
    d = diagnose(frame)
    assert d.codes == ["no-candidates"] and d[0].severity == "error"
    assert "cannot tell which" in d[0].explanation
    ok = diagnose(load_trace(DATA / "browser" / "basic.rtcstats.jsonl", actors={"8-2": "callee"}))
    assert ok.outcome == "connected" and ok.findings == []


def test_a_declined_call_is_not_diagnosed_as_missing_media() -> None:
    """decision="decline": an info finding 'declined' (notebook 13), not the no-media error."""
    d = rtclab.diagnose(rtclab.run("counteroffer", topology="nat", decision="decline", seed=1))
    codes = [f.code for f in d.findings]
    assert "declined" in codes and "no-media" not in codes
    declined = next(f for f in d.findings if f.code == "declined")
    assert declined.severity == "info" and declined.notebook == "13_call_control_privacy"
    assert declined.evidence["value"].tolist() == ["decline"]
