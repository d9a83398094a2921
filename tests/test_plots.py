"""Tests of rtclab.plots: they check the drawn objects (lines, patches, texts), not pixels."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

import rtclab  # noqa: E402
from rtclab import plots  # noqa: E402
from rtclab.trace import Trace, empty_frame  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- fabricated runs


class _Call:
    """Writes the rows of a fabricated run the way Peer/Channel/lab write them."""

    def __init__(self) -> None:
        self.tr = Trace(clock=lambda: 0.0)

    def rec(self, t, actor, kind, name, value="", **kw):
        self.tr.record(actor, kind, name, value, t_ms=t, **kw)

    def state(self, t, side, machine, new, old):
        self.rec(t, side, "state", machine, new, prev=old)

    def send(self, t_sent, t_delivered, sender, kind, ref, *, fate="delivered", dup_at=None):
        receiver = "callee" if sender == "caller" else "caller"
        self.rec(t_sent, sender, "signal", kind, "sent", ref=ref)
        if fate == "delivered":
            self.rec(t_delivered, receiver, "signal", kind, "delivered", ref=ref)
            if dup_at is not None:
                self.rec(dup_at, receiver, "signal", kind, "delivered", ref=ref)
        else:  # dropped / refused by the channel
            self.rec(t_delivered, "channel", "signal", kind, fate, ref=ref,
                     detail="too large" if fate == "refused" else "")

    def candidate(self, t, owner, n, typ="host"):
        ref = f"{owner}:c{n}"
        self.rec(t, owner, "ice", "candidate", "gathered", ref=ref,
                 detail=f"candidate:{n} 1 udp 2130706431 10.0.0.{n} 5000{n} typ {typ}")
        return ref

    def start(self, side, t):
        self.rec(t, side, "call", "RTCPeerConnection", "ok")
        self.rec(t + 0.5, side, "call", "addTrack", "ok", detail="video")
        self.rec(t + 0.6, side, "call", "addTrack", "ok", detail="audio")

    def frame(self) -> pd.DataFrame:
        return self.tr.frame()


def basic_call() -> pd.DataFrame:
    """A textbook trickle-ICE call that connects (one dropped, one refused, one duplicated message)."""
    c = _Call()
    c.rec(0, "user", "user", "click", "call", detail="caller")
    c.start("caller", 1)
    c.rec(2, "caller", "call", "negotiationneeded", "event")
    c.rec(3, "caller", "call", "createOffer", "ok", detail="offer")
    c.rec(4, "caller", "call", "setLocalDescription", "ok", detail="offer")
    c.state(4, "caller", "signalingState", "have-local-offer", "stable")
    c.state(4.1, "caller", "iceGatheringState", "gathering", "new")
    c.send(5, 25, "caller", "video-offer", "m1")
    r1 = c.candidate(8, "caller", 1)
    c.send(9, 29, "caller", "new-ice-candidate", r1)
    r2 = c.candidate(12, "caller", 2, "srflx")
    c.send(13, 33, "caller", "new-ice-candidate", r2)
    r3 = c.candidate(16, "caller", 3)
    c.send(17, 37, "caller", "new-ice-candidate", r3, fate="dropped")
    c.rec(18, "caller", "ice", "candidate", "end", ref="caller:end")
    c.state(18, "caller", "iceGatheringState", "complete", "gathering")
    c.send(19, 39, "caller", "new-ice-candidate", "caller:end")
    # callee: peer connection on offer
    c.start("callee", 25.2)
    c.rec(25.3, "user", "user", "prompt", "answer", detail="callee")
    c.rec(26, "callee", "call", "setRemoteDescription", "ok", detail="offer (2 m-lines)")
    c.state(26, "callee", "signalingState", "have-remote-offer", "stable")
    c.rec(27, "callee", "call", "createAnswer", "ok", detail="answer")
    c.rec(28, "callee", "call", "setLocalDescription", "ok", detail="answer")
    c.state(28, "callee", "signalingState", "stable", "have-remote-offer")
    c.state(28.1, "callee", "iceGatheringState", "gathering", "new")
    c.send(28.5, 48.5, "callee", "video-answer", "m2")
    c.rec(29.2, "callee", "call", "addIceCandidate", "ok", ref=r1)
    c.rec(29.2, "callee", "ice", "candidate", "added", ref=r1)
    c.state(29.3, "callee", "iceConnectionState", "checking", "new")
    c.state(29.3, "callee", "connectionState", "connecting", "new")
    c.rec(33.2, "callee", "ice", "candidate", "added", ref=r2)
    c.rec(39.2, "callee", "ice", "candidate", "added", ref="caller:end")
    q1 = c.candidate(31, "callee", 1)
    c.send(31.5, 51.5, "callee", "new-ice-candidate", q1, dup_at=53.0)
    c.send(32, 52, "callee", "hang-up", "m3", fate="refused")
    c.rec(35, "callee", "ice", "candidate", "end", ref="callee:end")
    c.state(35, "callee", "iceGatheringState", "complete", "gathering")
    c.send(35.5, 55.5, "callee", "new-ice-candidate", "callee:end")
    # caller gets the answer
    c.rec(49, "caller", "call", "setRemoteDescription", "ok", detail="answer")
    c.state(49, "caller", "signalingState", "stable", "have-local-offer")
    c.state(49.5, "caller", "iceConnectionState", "checking", "new")
    c.state(49.5, "caller", "connectionState", "connecting", "new")
    c.rec(50, "caller", "ice", "pair", "in-progress", detail="host/host")
    c.rec(52, "caller", "ice", "candidate", "added", ref=q1)
    c.rec(53.1, "caller", "ice", "candidate", "added", ref=q1)
    c.rec(56, "caller", "ice", "candidate", "added", ref="callee:end")
    c.rec(58, "caller", "ice", "pair", "succeeded", detail="host/host")
    c.rec(58.5, "caller", "ice", "selected-pair", "host/host")
    for side, t in (("caller", 60), ("callee", 61)):
        c.state(t, side, "iceConnectionState", "connected", "checking")
        c.state(t + 5, side, "connectionState", "connected", "connecting")
        c.rec(t + 6, side, "media", "track", "video")
        c.rec(t + 40, side, "media", "first-frame", "video")
    c.rec(140, "network", "net", "srtp", "delivered", detail="10.0.0.1:50001 -> 10.0.0.2:50001")
    return c.frame()


def answer_on_click(*, answer_at: float = 3000.0, fails: bool = False) -> pd.DataFrame:
    """The timing trap: the callee creates its peer connection only when Answer is clicked."""
    c = _Call()
    c.rec(0, "user", "user", "click", "call", detail="caller")
    c.start("caller", 1)
    c.rec(2, "caller", "call", "negotiationneeded", "event")
    c.rec(3, "caller", "call", "createOffer", "ok", detail="offer")
    c.rec(4, "caller", "call", "setLocalDescription", "ok", detail="offer")
    c.state(4, "caller", "signalingState", "have-local-offer", "stable")
    c.state(4.1, "caller", "iceGatheringState", "gathering", "new")
    c.send(5, 25, "caller", "video-offer", "m1")
    c.rec(25.5, "user", "user", "prompt", "answer", detail="callee")
    early = []
    for n in (1, 2):
        ref = c.candidate(6 + 4 * n, "caller", n)
        c.send(7 + 4 * n, 27 + 4 * n, "caller", "new-ice-candidate", ref)
        c.rec(27.1 + 4 * n, "callee", "ice", "candidate", "lost", ref=ref, detail="no peer connection")
        early.append(ref)
    c.rec(20, "caller", "ice", "candidate", "end", ref="caller:end")
    c.state(20, "caller", "iceGatheringState", "complete", "gathering")
    c.send(20.5, 40.5, "caller", "new-ice-candidate", "caller:end")
    c.rec(40.6, "callee", "ice", "candidate", "lost", ref="caller:end", detail="no peer connection")
    # a late candidate (e.g. relay) delivered between pc creation and setRemoteDescription
    late = c.candidate(answer_at - 21, "caller", 3, "relay")
    c.send(answer_at - 20, answer_at + 0.5, "caller", "new-ice-candidate", late)
    c.rec(answer_at, "user", "user", "click", "answer", detail="callee")
    c.start("callee", answer_at + 0.2)
    c.rec(answer_at + 0.6, "callee", "call", "addIceCandidate", "error", ref=late,
          detail="InvalidStateError: remote description is not set")
    c.rec(answer_at + 0.6, "callee", "ice", "candidate", "rejected", ref=late,
          detail="InvalidStateError: remote description is not set")
    c.rec(answer_at + 0.6, "callee", "error", "addIceCandidate", "InvalidStateError",
          detail="remote description is not set")
    c.rec(answer_at + 1, "callee", "call", "setRemoteDescription", "ok", detail="offer")
    c.state(answer_at + 1, "callee", "signalingState", "have-remote-offer", "stable")
    c.rec(answer_at + 2, "callee", "call", "setLocalDescription", "ok", detail="answer")
    c.state(answer_at + 2, "callee", "signalingState", "stable", "have-remote-offer")
    c.state(answer_at + 2.1, "callee", "iceGatheringState", "gathering", "new")
    c.send(answer_at + 3, answer_at + 23, "callee", "video-answer", "m2")
    q1 = c.candidate(answer_at + 5, "callee", 1)
    c.send(answer_at + 6, answer_at + 26, "callee", "new-ice-candidate", q1)
    c.rec(answer_at + 10, "callee", "ice", "candidate", "end", ref="callee:end")
    c.state(answer_at + 10, "callee", "iceGatheringState", "complete", "gathering")
    c.send(answer_at + 11, answer_at + 31, "callee", "new-ice-candidate", "callee:end")
    c.rec(answer_at + 23, "caller", "call", "setRemoteDescription", "ok", detail="answer")
    c.state(answer_at + 23, "caller", "signalingState", "stable", "have-local-offer")
    c.rec(answer_at + 26.5, "caller", "ice", "candidate", "added", ref=q1)
    c.rec(answer_at + 31.5, "caller", "ice", "candidate", "added", ref="callee:end")
    for side in ("caller", "callee"):
        c.state(answer_at + 24, side, "iceConnectionState", "checking", "new")
        c.state(answer_at + 24, side, "connectionState", "connecting", "new")
    if fails:
        for side in ("caller", "callee"):
            c.rec(answer_at + 100, side, "ice", "pair", "failed", detail="srflx/host")
            c.state(answer_at + 30_000, side, "iceConnectionState", "failed", "checking")
            c.state(answer_at + 30_000, side, "connectionState", "failed", "connecting")
        c.rec(answer_at + 30_100, "network", "error", "deadline", "timeout", detail="no media")
    else:
        for side in ("caller", "callee"):
            c.state(answer_at + 80, side, "iceConnectionState", "connected", "checking")
            c.state(answer_at + 85, side, "connectionState", "connected", "connecting")
            c.rec(answer_at + 140, side, "media", "first-frame", "video")
        c.rec(answer_at + 400, "user", "user", "click", "hangup", detail="caller")
        c.send(answer_at + 401, answer_at + 421, "caller", "hang-up", "m3")
        for side, t in (("caller", answer_at + 402), ("callee", answer_at + 422)):
            c.rec(t, side, "call", "close", "ok")
            c.state(t, side, "signalingState", "closed", "stable")
            c.state(t, side, "iceConnectionState", "closed", "connected")
            c.state(t, side, "connectionState", "closed", "connected")
    return c.frame()


def sweep_frame() -> pd.DataFrame:
    """A synthetic sweep: 3 flows × 2 latencies × 2 delays × 4 trials, some failed."""
    rng = np.random.default_rng(1)
    rows = []
    trial = 0
    for flow in ("basic", "answer-on-click", "counteroffer"):
        for lat in (10, 200):
            for delay in (0, 2000):
                for _ in range(4):
                    failed = flow == "answer-on-click" and delay > 0 and trial % 2 == 0
                    t = np.nan if failed else float(lat * 3 + rng.uniform(20, 60))
                    rows.append({
                        "flow": flow, "trial": trial, "seed": trial, "network": "sim",
                        "topology": "nat", "signaling_latency_ms": lat, "answer_delay_ms": delay,
                        "outcome": "failed" if failed else "connected",
                        "reason": "ice failed" if failed else "",
                        "t_connected_ms": t,
                    })
                    trial += 1
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- helpers


def _gids(ax, prefix):
    """gids of every drawn artist (patches, lines, texts) starting with ``prefix``."""
    artists = list(ax.patches) + list(ax.lines) + list(ax.texts) + list(ax.collections)
    return [a.get_gid() for a in artists if (a.get_gid() or "").startswith(prefix)]


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def _rows(df, **eq):
    mask = np.ones(len(df), bool)
    for col, val in eq.items():
        mask &= (df[col] == val).to_numpy()
    return df[mask]


ALL_RUN_PLOTS = (plots.sequence, plots.states, plots.candidates)


# --------------------------------------------------------------------------- sequence


def test_sequence_has_three_lanes_and_returns_axes():
    """The sequence diagram draws caller, channel and callee swimlanes on a time axis."""
    ax = plots.sequence(basic_call())
    assert isinstance(ax, plt.Axes)
    assert sorted(_gids(ax, "lane:")) == ["lane:callee", "lane:caller", "lane:channel"]
    assert ax.get_xlabel() == "time (ms)"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["caller", "channel", "callee"]


@pytest.mark.parametrize("make", [basic_call, answer_on_click])
def test_sequence_one_arrow_per_delivered_message(make):
    """Every delivered row gives exactly one arrow, a duplicate gives a second one."""
    df = make()
    ax = plots.sequence(df)
    delivered = _rows(df, kind="signal", value="delivered")
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)
              and (p.get_gid() or "").startswith("msg:")]
    assert len(arrows) == len(delivered)
    assert sorted(a.get_gid() for a in arrows) == sorted("msg:" + r for r in delivered["ref"])


def test_sequence_arrow_goes_from_send_to_delivery():
    """The offer arrow starts on the caller lane at send time and ends on the callee lane."""
    ax = plots.sequence(basic_call())
    (offer,) = [p for p in ax.patches if p.get_gid() == "msg:m1"]
    (x0, y0), (x1, y1) = offer._posA_posB
    assert (x0, x1) == (5.0, 25.0)
    assert y0 > y1  # caller lane above the callee lane


def test_sequence_duplicate_message_has_two_arrows():
    """A message the channel duplicated is drawn twice."""
    ax = plots.sequence(basic_call())
    assert _gids(ax, "msg:callee:c1") == ["msg:callee:c1", "msg:callee:c1"]


def test_sequence_marks_dropped_and_refused_messages_with_a_cross():
    """One cross on the channel lane per dropped (and per refused) message."""
    df = basic_call()
    ax = plots.sequence(df)
    crosses = [ln for ln in ax.lines if (ln.get_gid() or "").startswith("drop:")]
    assert [c.get_gid() for c in crosses] == ["drop:caller:c3"]
    assert crosses[0].get_marker() == "X"
    assert len(crosses) == len(_rows(df, kind="signal", value="dropped"))
    assert _gids(ax, "refuse:") == ["refuse:m3"]


def test_sequence_annotates_key_moments():
    """negotiationneeded, offer sent, Answer clicked, connected and first frame are written."""
    ax = plots.sequence(answer_on_click())
    texts = " | ".join(_texts(ax))
    for needle in ("negotiationneeded", "offer sent", "Answer clicked", "Call clicked",
                   "connected", "first frame", "RTCPeerConnection", "InvalidStateError"):
        assert needle in texts, needle
    (error,) = [t for t in ax.texts if "InvalidStateError" in t.get_text()]
    assert to_hex(error.get_color()) == to_hex(plots.OKABE_ITO["vermillion"])


def test_sequence_user_click_is_on_the_side_of_the_user_who_clicked():
    """Answer (callee's user) is written below the callee lane, Call above the caller lane."""
    ax = plots.sequence(answer_on_click())
    lanes = {ln.get_gid(): ln.get_ydata()[0] for ln in ax.lines
             if (ln.get_gid() or "").startswith("lane:")}
    (answer,) = [t for t in ax.texts if t.get_text() == "Answer clicked"]
    (call,) = [t for t in ax.texts if t.get_text() == "Call clicked"]
    assert answer.get_position()[1] < lanes["lane:callee"]
    assert call.get_position()[1] > lanes["lane:caller"]


def test_sequence_annotate_false_and_max_messages():
    """annotate=False writes no key moments; max_messages limits the arrows drawn."""
    ax = plots.sequence(basic_call(), annotate=False, max_messages=2)
    assert _gids(ax, "moment:") == []
    assert len(_gids(ax, "msg:")) == 2
    assert any("more messages" in t for t in _texts(ax))


def test_sequence_labels_few_candidate_arrows():
    """Many candidates: only the first few candidate arrows per side are labelled."""
    c = _Call()
    for n in range(1, 31):
        ref = c.candidate(n, "caller", n)
        c.send(n, n + 20, "caller", "new-ice-candidate", ref)
    ax = plots.sequence(c.frame(), label_candidates=2)
    assert len(_gids(ax, "msg:")) == 30
    assert _texts(ax).count("cand") == 2


# --------------------------------------------------------------------------- states


def test_states_has_eight_labelled_rows():
    """Four state machines per peer, labelled 'caller · signaling' and so on."""
    ax = plots.states(basic_call())
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 8
    assert labels[0] == "caller · signaling"
    assert labels[7] == "callee · connection"
    assert ax.get_xlabel() == "time (ms)"


def test_states_segments_follow_the_state_rows():
    """Segments follow each machine's transitions, from pc creation, coloured by meaning."""
    df = basic_call()
    ax = plots.states(df)
    segs = [p for p in ax.patches if (p.get_gid() or "").startswith("state:caller:connectionState:")]
    assert [p.get_gid().rsplit(":", 1)[1] for p in segs] == ["new", "connecting", "connected"]
    assert segs[0].get_x() == 1.0  # caller's RTCPeerConnection
    assert segs[1].get_x() == 49.5
    assert to_hex(segs[2].get_facecolor()) == to_hex(plots.OKABE_ITO["green"])
    assert to_hex(segs[1].get_facecolor()) == to_hex(plots.OKABE_ITO["orange"])
    sig = [p.get_gid().rsplit(":", 1)[1] for p in ax.patches
           if (p.get_gid() or "").startswith("state:callee:signalingState:")]
    assert sig == ["stable", "have-remote-offer", "stable"]


def test_states_late_peer_connection_starts_late_and_errors_are_red():
    """answer-on-click: callee bands start at the click; its error is a red cross."""
    ax = plots.states(answer_on_click(fails=True))
    callee = [p for p in ax.patches if isinstance(p, Rectangle)
              and (p.get_gid() or "").startswith("state:callee:")]
    assert callee and min(p.get_x() for p in callee) == pytest.approx(3000.2)
    errors = [ln for ln in ax.lines if ln.get_gid() == "error:callee"]
    assert len(errors) == 1
    assert to_hex(errors[0].get_color()) == to_hex(plots.OKABE_ITO["vermillion"])
    failed = [p for p in ax.patches if (p.get_gid() or "").endswith(":connectionState:failed")]
    assert len(failed) == 2
    assert to_hex(failed[0].get_facecolor()) == to_hex(plots.OKABE_ITO["vermillion"])


def test_states_without_peer_connection_says_so():
    """A peer that never created its peer connection is named, not left blank."""
    c = _Call()
    c.start("caller", 0)
    c.state(5, "caller", "signalingState", "have-local-offer", "stable")
    ax = plots.states(c.frame())
    assert any("callee: no RTCPeerConnection" in t for t in _texts(ax))


# --------------------------------------------------------------------------- candidates


def _fates(df):
    """Expected fate of each candidate ref, computed from the rows, independently of plots."""
    refs = set(_rows(df, kind="ice", name="candidate")["ref"]) | set(
        _rows(df, kind="signal", name="new-ice-candidate")["ref"])
    out = {}
    for ref in refs:
        values = set(df.loc[df["ref"] == ref, "value"])
        out[ref] = next((f for f in ("added", "rejected", "lost") if f in values),
                        "dropped" if "dropped" in values else "pending")
    return out


@pytest.mark.parametrize("make", [basic_call, answer_on_click])
def test_candidates_one_row_per_ref_coloured_by_fate(make):
    """One life line per candidate ref, coloured by its fate at the receiver."""
    df = make()
    ax = plots.candidates(df)
    fates = _fates(df)
    lines = {ln.get_gid()[len("cand:"):]: ln for ln in ax.lines
             if (ln.get_gid() or "").startswith("cand:")}
    assert set(lines) == set(fates)
    assert len(ax.get_yticks()) == len(fates)
    for ref, fate in fates.items():
        assert to_hex(lines[ref].get_color()) == to_hex(plots.FATE_COLORS[fate]), ref


def test_candidates_answer_on_click_shows_lost_and_rejected():
    """Early candidates are lost (red X), the one before setRemoteDescription is rejected."""
    ax = plots.candidates(answer_on_click())
    fate = {ln.get_gid(): ln for ln in ax.lines if (ln.get_gid() or "").startswith("fate:")}
    assert fate["fate:caller:c1"].get_marker() == "X"
    assert to_hex(fate["fate:caller:c1"].get_color()) == to_hex(plots.FATE_COLORS["lost"])
    assert to_hex(fate["fate:caller:c3"].get_color()) == to_hex(plots.FATE_COLORS["rejected"])
    assert to_hex(fate["fate:callee:c1"].get_color()) == to_hex(plots.FATE_COLORS["added"])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("lost") for t in legend)


def test_candidates_vertical_lines_at_pc_and_remote_description():
    """Vertical lines mark each side's peer connection creation and remote description."""
    ax = plots.candidates(answer_on_click(answer_at=3000))
    vlines = {ln.get_gid(): ln.get_xdata()[0] for ln in ax.lines
              if (ln.get_gid() or "").startswith("vline:")}
    assert vlines == {
        "vline:caller:pc": 1.0,
        "vline:caller:remote": 3023.0,
        "vline:callee:pc": 3000.2,
        "vline:callee:remote": 3001.0,
    }
    labels = {t.get_gid(): t.get_text().strip() for t in ax.texts
              if (t.get_gid() or "").startswith("vlabel:")}
    assert labels["vlabel:callee:pc"] == "callee: RTCPeerConnection"
    assert labels["vlabel:callee:remote"] == "callee: remote description set"
    assert len(labels) == 4


# --------------------------------------------------------------------------- sweeps


def test_compare_box_and_strip_skip_non_finite():
    """compare draws one box per group, one point per finite value, labels with n."""
    sw = sweep_frame()
    ax = plots.compare(sw, metric="t_connected_ms", by="flow")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["basic\nn=16/16", "answer-on-click\nn=12/16", "counteroffer\nn=16/16"]
    points = sum(len(c.get_offsets()) for c in ax.collections if (c.get_gid() or "").startswith("strip:"))
    assert points == int(np.isfinite(sw["t_connected_ms"]).sum())
    assert ax.get_ylabel() == "t connected (ms)"


def test_compare_jitter_is_seeded():
    """The strip jitter is the same on every call."""
    sw = sweep_frame()
    a = plots.compare(sw).collections[0].get_offsets()
    b = plots.compare(sw).collections[0].get_offsets()
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_compare_group_without_values_and_bad_column():
    """A group with no finite value is labelled n=0; an unknown column is a clear error."""
    sw = pd.DataFrame({"flow": ["a", "b"], "t_connected_ms": [1.0, np.inf]})
    ax = plots.compare(sw)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a\nn=1/1", "b\nn=0/1"]
    with pytest.raises(ValueError, match="no column"):
        plots.compare(sw, metric="nope")


def test_heatmap_success_rate_cells_and_colorbar():
    """Each cell is the success fraction at (x, y), written in the cell; a colorbar is drawn."""
    sw = sweep_frame()
    sw = sw[sw["flow"] == "answer-on-click"]
    ax = plots.heatmap(sw, x="signaling_latency_ms", y="answer_delay_ms")
    cells = {t.get_gid(): t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("cell:")}
    assert len(cells) == 4
    # rows: answer_delay 0 then 2000; columns: latency 10 then 200
    assert cells["cell:0:0"].startswith("100%")
    assert cells["cell:1:0"].startswith("50%")
    assert "n=4" in cells["cell:1:1"]
    assert len(ax.get_figure().axes) == 2  # the heatmap and its colorbar
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "200"]


def test_heatmap_mean_of_numeric_value():
    """success=None averages a numeric column instead of counting successes."""
    sw = pd.DataFrame({"x": [1, 1, 2], "y": [0, 0, 0], "t": [10.0, 20.0, 30.0]})
    ax = plots.heatmap(sw, x="x", y="y", value="t", success=None)
    assert sorted(t.get_text().split("\n")[0] for t in ax.texts if t.get_gid()) == ["15", "30"]


# --------------------------------------------------------------------------- contracts


@pytest.mark.parametrize("plot", ALL_RUN_PLOTS)
@pytest.mark.parametrize("make", [basic_call, answer_on_click])
def test_plots_never_mutate_the_input(plot, make):
    """The input frame is unchanged (values, dtypes, attrs) after plotting."""
    df = make()
    df.attrs["meta"] = {"flow": "x"}
    copy = df.copy(deep=True)
    plot(df)
    assert df.equals(copy)
    assert df.attrs == {"meta": {"flow": "x"}}
    plots.summary(df)
    assert df.equals(copy)


def test_sweep_plots_never_mutate_the_input():
    """compare and heatmap leave the sweep frame unchanged."""
    sw = sweep_frame()
    copy = sw.copy(deep=True)
    plots.compare(sw)
    plots.heatmap(sw, x="signaling_latency_ms", y="answer_delay_ms")
    assert sw.equals(copy)


@pytest.mark.parametrize("plot", ALL_RUN_PLOTS)
@pytest.mark.parametrize("empty", [empty_frame, pd.DataFrame])
def test_empty_frame_plots_no_events(plot, empty):
    """An empty frame plots without raising and says 'no events'."""
    ax = plot(empty())
    assert isinstance(ax, plt.Axes)
    assert "no events" in _texts(ax)


def test_empty_sweep_and_empty_summary():
    """Empty sweeps and empty runs draw a message instead of raising."""
    sw = sweep_frame().iloc[0:0]
    assert "no trials" in _texts(plots.compare(sw))
    assert "no trials" in _texts(plots.heatmap(sw, x="signaling_latency_ms", y="answer_delay_ms"))
    fig = plots.summary(empty_frame())
    assert len(fig.axes) == 2


@pytest.mark.parametrize("plot", ALL_RUN_PLOTS)
def test_accepts_a_run_and_draws_on_the_given_axes(plot):
    """A Run-like object (with .events) is accepted; a given ax is used and returned."""
    run = SimpleNamespace(events=basic_call(), outcome="connected")
    fig, ax = plt.subplots()
    assert plot(run, ax=ax) is ax
    assert len(fig.axes) == 1


def test_failed_long_run_plots_and_formats_time():
    """A 33-second failed run plots; ticks are readable (no scientific notation)."""
    df = answer_on_click(fails=True)
    for plot in ALL_RUN_PLOTS:
        ax = plot(df)
        ax.get_figure().canvas.draw()
        ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert ticks and not any("e" in t for t in ticks)
        if plot is not plots.candidates:  # candidates zooms on the candidates' lives
            assert ax.get_xlim()[1] > 33_000


def test_global_rcparams_untouched():
    """Plotting does not change matplotlib's global settings."""
    before = dict(plt.rcParams)
    plots.sequence(basic_call())
    plots.summary(basic_call())
    plots.compare(sweep_frame())
    assert dict(plt.rcParams) == before


def test_summary_shares_time_axis():
    """summary draws the sequence above the states on one shared time axis."""
    run = SimpleNamespace(events=basic_call(), flow="basic", outcome="connected")
    fig = plots.summary(run)
    top, bottom = fig.axes[:2]
    assert top.get_shared_x_axes().joined(top, bottom)
    assert _gids(top, "lane:") and len(bottom.get_yticks()) == 8
    assert fig._suptitle.get_text() == "basic — connected"


def test_gallery_writes_pngs_and_closes_figures(tmp_path: Path):
    """gallery writes four PNGs per run and leaves no figure open."""
    paths = plots.gallery(tmp_path / "g", {"basic": basic_call(), "answer on click": answer_on_click()})
    assert [p.name for p in paths[:4]] == [
        "basic-sequence.png", "basic-states.png", "basic-candidates.png", "basic-summary.png"]
    assert paths[4].name == "answer-on-click-sequence.png"
    assert all(p.exists() and p.stat().st_size > 10_000 for p in paths)
    assert plt.get_fignums() == []


def test_sequence_repeated_errors_are_counted_once():
    """The same error repeated on one side is one red note with a count, not a tower of notes."""
    c = _Call()
    c.start("callee", 0)
    for n in range(1, 6):
        c.rec(10 * n, "callee", "error", "addIceCandidate", "InvalidStateError", detail="no remote")
    ax = plots.sequence(c.frame())
    notes = [t.get_text() for t in ax.texts if t.get_gid() == "moment:error"]
    assert notes == ["InvalidStateError (addIceCandidate) ×5"]


def test_long_quiet_run_gets_a_symlog_time_axis() -> None:
    """A run that waits a minute for a timeout gets a linear-then-log axis; a short run stays linear."""
    from rtclab.trace import Trace

    tr = Trace(clock=lambda: 0.0)
    for i, t in enumerate((0, 10, 20, 300, 900)):
        tr.record("caller", "call", "createOffer", "ok", t_ms=t, ref=f"m{i}")
    tr.record("caller", "state", "connectionState", "failed", prev="connecting", t_ms=64_000)
    long_ax = plots.sequence(tr.frame())
    assert long_ax.get_xscale() == "symlog"
    assert any(l.get_gid() == "timescale:symlog" for l in long_ax.lines)
    short_ax = plots.sequence(tr.frame()[tr.frame()["t_ms"] < 1000])
    assert short_ax.get_xscale() == "linear"
    forced = plots.states(tr.frame(), time_scale="linear")
    assert forced.get_xscale() == "linear"
    with pytest.raises(ValueError, match="time_scale"):
        plots.candidates(tr.frame(), time_scale="bogus")


def test_beside_draws_two_runs_with_their_titles() -> None:
    """plots.beside puts two frames side by side with the same plot, each titled, and refuses an unknown plot."""
    from rtclab import data

    run = rtclab.run("article", seed=1)
    chromium = data.chromium_trace("RTCPeerConnection-onnegotiationneeded/callee-addTrack-after-answer")
    fig = plots.beside(run, chromium, plot="states", titles=("rtclab", "Chromium 156"))
    titles = [ax.get_title(loc="left") for ax in fig.axes[:2]]
    assert titles[0].startswith("rtclab\n") and titles[1].startswith("Chromium 156\n")
    assert all(len(ax.patches) > 0 for ax in fig.axes[:2])  # state bands on both sides
    with pytest.raises(ValueError, match="plot must be"):
        plots.beside(run, chromium, plot="pie")


# --------------------------------------------------------------------------- issue 17: what a learner sees


def _failed_at_one_instant() -> pd.DataFrame:
    """A call whose connection fails and closes in one step: failed lasts zero time."""
    c = _Call()
    c.start("caller", 0)
    c.state(0, "caller", "signalingState", "have-local-offer", "stable")
    c.state(40, "caller", "signalingState", "stable", "have-local-offer")
    c.state(40, "caller", "connectionState", "connecting", "new")
    c.state(30_000, "caller", "connectionState", "failed", "connecting")
    c.state(30_000, "caller", "connectionState", "closed", "failed")
    # a rollback: have-local-offer -> stable -> have-remote-offer in one instant
    c.start("callee", 0)
    c.state(0, "callee", "signalingState", "have-local-offer", "stable")
    c.state(20, "callee", "signalingState", "stable", "have-local-offer")
    c.state(20, "callee", "signalingState", "have-remote-offer", "stable")
    c.state(20, "callee", "signalingState", "stable", "have-remote-offer")
    return c.frame()


def test_zero_length_states_are_visible_markers_with_names() -> None:
    """failed->closed at one instant and a rollback's states get a diamond each and a label naming them."""
    ax = plots.states(_failed_at_one_instant())
    markers = {l.get_gid(): l for l in ax.lines if str(l.get_gid()).startswith("instant:")}
    assert set(markers) == {
        "instant:caller:connectionState:failed",
        "instant:callee:signalingState:stable",
        "instant:callee:signalingState:have-remote-offer",
    }
    failed = markers["instant:caller:connectionState:failed"]
    assert failed.get_visible() and failed.get_markersize() >= 10
    assert to_hex(failed.get_color()) == to_hex(plots.STATE_COLORS["failed"])
    labels = {t.get_gid(): t.get_text() for t in ax.texts if t.get_visible() and str(t.get_gid()).startswith("instantlabel:")}
    assert labels == {
        "instantlabel:caller:connectionState": "failed (0 ms)",
        "instantlabel:callee:signalingState": "stable → have-remote-offer (0 ms)",
    }
    assert "state of 0 ms" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_rollback_of_perfect_negotiation_is_marked() -> None:
    """In the perfect flow under glare, the rolled-back side's signaling row marks its zero-length states."""
    import rtclab

    ax = plots.states(rtclab.run("perfect"))
    assert any(str(l.get_gid()).startswith("instant:") and ":signalingState:" in str(l.get_gid()) for l in ax.lines)


def test_long_log_axis_tick_labels_do_not_touch() -> None:
    """On a narrow linear-then-log axis, no two tick labels overlap (no "5 00010 000")."""
    tr = Trace(clock=lambda: 0.0)
    for i, t in enumerate((0, 10, 20, 300, 900)):
        tr.record("caller", "call", "createOffer", "ok", t_ms=t, ref=f"m{i}")
    tr.record("caller", "state", "connectionState", "failed", prev="connecting", t_ms=64_000)
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    plots.states(tr.frame(), ax=ax)
    assert ax.get_xscale() == "symlog"
    fig.draw_without_rendering()
    labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
    assert "10\u2009000" in [t.get_text() for t in labels]
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:]))


@pytest.mark.parametrize("flow", list(rtclab.FLOWS))
def test_gallery_plots_have_no_overlapping_texts(flow: str) -> None:
    """Every figure the gallery draws for a flow (lan and nat) has no two intersecting text boxes."""
    import rtclab

    for topology in ("lan", "nat"):
        run = rtclab.run(flow, topology=topology, answer_delay_ms=1000)
        for kind, fig in plots._gallery_figures(run):
            assert plots.overlapping_texts(fig) == [], (flow, topology, kind)
            plt.close(fig)


def test_overlapping_texts_finds_a_collision() -> None:
    """The overlap check itself: two texts at one spot are reported."""
    fig, ax = plt.subplots()
    ax.text(0.5, 0.5, "offer")
    ax.text(0.5, 0.5, "answer")
    assert plots.overlapping_texts(fig) == [("offer", "answer")]


@pytest.mark.parametrize("trace", ["mdn-browser-caller",
                                   "RTCPeerConnection-perfect-negotiation/glare-during-call-answer-carries-polite-change"])
@pytest.mark.parametrize("plot", ["sequence", "states", "candidates"])
def test_beside_panels_have_no_overlapping_texts(trace: str, plot: str) -> None:
    """rtclab's run beside a Chromium trace: the labels of both panels are placed as in a single plot."""
    run = rtclab.run("basic", hold_s=30, cut_at_s=5, cut_for_s=10)
    fig = plots.beside(run, rtclab.data.chromium_trace(trace), plot=plot)
    assert plots.overlapping_texts(fig) == []


def test_a_finished_figure_is_not_drawn_again_by_the_post_execute_hook() -> None:
    """Our figures end laid out and not stale: pyplot's draw_all (IPython's post-execute hook) skips them until changed."""
    from matplotlib._pylab_helpers import Gcf

    run = rtclab.run("basic")
    chromium = rtclab.data.chromium_trace("basic-browser-caller")
    figures = [*plots._gallery_figures(run), ("beside", plots.beside(run, chromium, plot="states"))]
    for kind, fig in figures:
        draws: list[str] = []
        fig.canvas.mpl_connect("draw_event", lambda _e, kind=kind: draws.append(kind))
        assert fig.stale is False, kind
        Gcf.draw_all()
        assert draws == [], kind
        fig.axes[0].set_title("changed afterwards")
        assert fig.stale is True, kind
        Gcf.draw_all()
        assert draws == [kind], kind
        plt.close(fig)


def _long_call_short_exchange() -> pd.DataFrame:
    """The exchange is over in 60 ms; the run goes on to 1.1 s (as counteroffer's think time)."""
    c = _Call()
    c.start("caller", 0)
    c.send(0, 20, "caller", "video-offer", "m1")
    c.send(20, 40, "callee", "video-answer", "m2")
    c.send(5, 25, "caller", "new-ice-candidate", "m3")
    c.send(25, 45, "callee", "new-ice-candidate", "m4")
    c.state(600, "caller", "connectionState", "connected", "connecting")
    c.rec(1020, "user", "user", "click", "answer", detail="callee")
    c.rec(1068, "caller", "media", "first-frame", "video")
    return c.frame()


def test_long_run_gets_a_zoom_inset_on_the_first_exchange() -> None:
    """A long run on a linear axis gets an inset showing the offer/answer exchange; zoom=False has none."""
    ax = plots.sequence(_long_call_short_exchange())
    insets = [a for a in ax.child_axes if a.get_gid() == "zoom:inset"]
    assert len(insets) == 1
    lo, hi = insets[0].get_xlim()
    assert lo < 1 and 40 < hi < 100  # the exchange, 0 to 40 ms, fills the inset
    assert sorted(p.get_gid() for p in insets[0].patches if str(p.get_gid()).startswith("msg:")) == ["msg:m1", "msg:m2", "msg:m3", "msg:m4"]
    assert any(p.get_gid() == "zoom:span" for p in ax.patches)
    assert not plots.sequence(_long_call_short_exchange(), zoom=False).child_axes
    assert not plots.sequence(basic_call()).child_axes  # a short run needs no zoom


def test_summary_of_counteroffer_zooms_the_exchange() -> None:
    """The notebook 05 case: counteroffer behind NAT shows its first exchange in an inset."""
    import rtclab

    fig = rtclab.run("counteroffer", topology="nat").plot()
    top = fig.axes[0]
    assert [a.get_gid() for a in top.child_axes] == ["zoom:inset"]
    assert plots.overlapping_texts(fig) == []


def test_compare_hue_keeps_the_swept_parameter_apart() -> None:
    """compare(hue=...) draws one box per (flow, latency) with a legend, and explains n."""
    sw = pd.DataFrame({
        "flow": ["a"] * 4 + ["b"] * 4,
        "signaling_latency_ms": [10, 10, 200, 200] * 2,
        "answer_to_media_ms": [5.0, 6.0, 50.0, np.nan, 100.0, 110.0, 300.0, 310.0],
    })
    ax = plots.compare(sw, metric="answer_to_media_ms", hue="signaling_latency_ms")
    strips = {c.get_gid(): sorted(c.get_offsets()[:, 1]) for c in ax.collections if str(c.get_gid()).startswith("strip:")}
    assert strips == {"strip:a:10": [5.0, 6.0], "strip:a:200": [50.0], "strip:b:10": [100.0, 110.0], "strip:b:200": [300.0, 310.0]}
    xs = {gid: float(np.mean([c.get_offsets()[:, 0] for c in ax.collections if c.get_gid() == gid][0])) for gid in strips}
    assert xs["strip:a:10"] < xs["strip:a:200"] < xs["strip:b:10"] < xs["strip:b:200"]
    assert ax.get_legend().get_title().get_text() == "signaling latency (ms)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["10", "200"]
    counts = {t.get_gid(): t.get_text() for t in ax.texts if str(t.get_gid()).startswith("n:")}
    assert counts["n:strip:a:200"] == "1/2"
    assert "n = trials with a value / trials run" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a\nn=3/4", "b\nn=4/4"]
    with pytest.raises(ValueError, match="no column 'latency'"):
        plots.compare(sw, metric="answer_to_media_ms", hue="latency")
