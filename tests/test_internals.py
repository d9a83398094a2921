"""Tests of rtclab.internals: chrome://webrtc-internals dumps as rtclab frames.

The dump in ``data/webrtc-internals/`` is real: two peer connections of one
page called each other in headless Chromium 156 and the dump was downloaded
from chrome://webrtc-internals (``python -m rtclab.browser dump``).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from rtclab import plots  # noqa: E402
from rtclab.internals import load_webrtc_internals  # noqa: E402
from rtclab.trace import COLUMNS, empty_frame  # noqa: E402

DUMP = Path(__file__).resolve().parent.parent / "data" / "webrtc-internals" / "chromium-basic.json"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def frame():
    """The real dump, loaded once."""
    return load_webrtc_internals(DUMP)


def _seq(df, actor, name):
    rows = df[(df.actor == actor) & (df.kind == "state") & (df.name == name)]
    return rows.value.tolist()


def test_real_dump_is_small_and_from_chromium():
    """The kept dump is a genuine webrtc-internals download of Chromium, small enough for the repo."""
    dump = json.loads(DUMP.read_text())
    assert DUMP.stat().st_size < 100_000
    assert "Chrome/" in dump["UserAgent"]
    assert len(dump["PeerConnections"]) == 2
    assert all("updateLog" in pc for pc in dump["PeerConnections"].values())


def test_schema_and_dtypes(frame):
    """The frame has the rtclab columns, dtypes and conventions (sorted, no NaN text, starts at 0)."""
    assert tuple(frame.columns) == COLUMNS
    assert frame.dtypes.equals(empty_frame().dtypes)
    assert frame.t_ms.is_monotonic_increasing and frame.t_ms.iloc[0] == 0.0
    assert not frame[list(COLUMNS[1:])].isna().any().any()
    assert set(frame.actor) == {"caller", "callee"}
    assert set(frame.kind) <= {"state", "call", "ice", "media"}


def test_state_sequences(frame):
    """The four state machines of both peers follow a successful browser call."""
    assert _seq(frame, "caller", "signalingState") == ["have-local-offer", "stable"]
    assert _seq(frame, "callee", "signalingState") == ["have-remote-offer", "stable"]
    for side in ("caller", "callee"):
        assert _seq(frame, side, "iceGatheringState") == ["gathering", "complete"]
        assert _seq(frame, side, "iceConnectionState") == ["checking", "connected"]
        assert _seq(frame, side, "connectionState") == ["connecting", "connected"]
    first = frame[(frame.kind == "state")].groupby(["actor", "name"], observed=True).prev.first()
    assert first[("caller", "signalingState")] == "stable" and first[("caller", "connectionState")] == "new"


def test_calls_and_negotiationneeded(frame):
    """Settled calls become ok rows; negotiationneeded fires once, after the addTracks, before the offer."""
    calls = frame[frame.kind == "call"]
    assert (calls.value.isin(["ok", "event"])).all()
    caller = calls[calls.actor == "caller"].name.tolist()
    assert caller.count("negotiationneeded") == 1
    assert caller.index("addTrack") < caller.index("negotiationneeded") < caller.index("setLocalDescription")
    sld = calls[(calls.actor == "caller") & (calls.name == "setLocalDescription")].detail.iloc[0]
    assert sld == "offer m=[audio,video] candidates=0"
    assert calls[(calls.actor == "callee") & (calls.name == "setLocalDescription")].detail.iloc[0].startswith("answer")


def test_candidates_link_across_peers(frame):
    """Each gathered candidate keeps its ref when the other peer connection adds it."""
    ice = frame[frame.kind == "ice"]
    gathered = ice[ice.value == "gathered"]
    added = ice[ice.value == "added"]
    assert len(gathered) >= 2 and set(gathered.ref) == set(added.ref)
    for _, g in gathered.iterrows():
        a = added[added.ref == g.ref].iloc[0]
        assert a.actor != g.actor and a.t_ms >= g.t_ms and a.detail == g.detail


def test_actor_mapping_and_meta(frame):
    """An explicit mapping swaps the sides; meta keeps the user agent, mapping and time zero."""
    meta = frame.attrs["meta"]
    assert meta["source"] == "webrtc-internals" and "Chrome" in meta["user_agent"]
    (first, second) = list(meta["peers"])
    swapped = load_webrtc_internals(DUMP, {first: "callee", second: "caller"})
    assert _seq(swapped, "callee", "signalingState") == ["have-local-offer", "stable"]
    only = load_webrtc_internals(DUMP, [ "caller"])
    assert set(only.actor) == {"caller"} and only.attrs["meta"]["skipped_peers"] == [second]
    with pytest.raises(ValueError, match="no peer connection"):
        load_webrtc_internals(DUMP, {"nope": "caller"})
    with pytest.raises(ValueError, match="rtclab actors"):
        load_webrtc_internals(DUMP, {first: "alice"})


def test_plots_draw_the_dump(frame):
    """rtclab.plots.sequence and .states draw a browser dump without raising."""
    assert plots.sequence(frame) is not None
    assert plots.states(frame) is not None


def test_gzip_and_older_format(tmp_path):
    """Compressed dumps, older 'time' strings, camel-case types and failures are mapped."""
    dump = {
        "PeerConnections": {
            "1-1": {"updateLog": [
                {"time": "2020-01-01T10:00:00.000Z", "type": "createOffer", "value": ""},
                {"time": "2020-01-01T10:00:00.010Z", "type": "createOfferOnSuccess", "value": "type: offer, sdp: v=0\\r\\nm=audio 9 UDP 0\\r\\n"},
                {"time": "2020-01-01T10:00:00.020Z", "type": "signalingStateChange", "value": "have-local-offer"},
                {"time": "2020-01-01T10:00:00.030Z", "type": "onIceCandidate", "value": "sdpMid: 0, sdpMLineIndex: 0, candidate: candidate:1 1 udp 1 10.0.0.1 9 typ host"},
                {"time": "2020-01-01T10:00:00.040Z", "type": "setRemoteDescriptionOnFailure", "value": "OperationError: Failed to set remote answer sdp"},
                {"time": "2020-01-01T10:00:00.050Z", "type": "iceconnectionstatechange (legacy)", "value": "checking"},
                {"time": "2020-01-01T10:00:00.060Z", "type": "onRenegotiationNeeded", "value": ""},
            ]},
            "1-2": {"updateLog": [
                {"time": "2020-01-01T10:00:00.035Z", "type": "addIceCandidateFailed", "value": "sdpMid: 0, sdpMLineIndex: 0, candidate: candidate:1 1 udp 1 10.0.0.1 9 typ host"},
                {"time": "2020-01-01T10:00:00.045Z", "type": "someFutureEvent", "value": "x"},
            ]},
        },
    }
    path = tmp_path / "dump.txt"
    path.write_bytes(gzip.compress(json.dumps(dump).encode()))
    df = load_webrtc_internals(path)
    rows = list(zip(df.t_ms, df.actor, df.kind, df.name, df.value))
    assert rows[0] == (10.0, "caller", "call", "createOffer", "ok")
    assert df.detail.iloc[0] == "offer m=[audio] candidates=0"
    assert (20.0, "caller", "state", "signalingState", "have-local-offer") in rows
    assert (30.0, "caller", "ice", "candidate", "gathered") in rows
    rejected = df[(df.value == "rejected")]
    assert rejected.actor.tolist() == ["callee"] and rejected.ref.tolist() == ["caller:c1"]
    errors = df[df.kind == "error"]
    assert set(errors.value) == {"OperationError"}
    assert (60.0, "caller", "call", "negotiationneeded", "event") in rows
    assert (45.0, "callee", "call", "someFutureEvent", "ok") in rows
    assert not (df.name == "iceConnectionState").any()  # legacy duplicates are left out


def test_not_a_dump(tmp_path):
    """Files that are not webrtc-internals dumps are refused with a clear ValueError."""
    bad = tmp_path / "x.json"
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not a webrtc-internals dump"):
        load_webrtc_internals(bad)
    bad.write_text("{}")
    with pytest.raises(ValueError, match="PeerConnections"):
        load_webrtc_internals(bad)
