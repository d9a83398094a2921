"""Renegotiation during a call (issue #18 item 2): negotiationneeded, restartIce, rollback.

Whole sequences on two :class:`rtclab.Peer` on the simulated network (virtual
time) and on real loopback UDP; then one test per emulation that fails if
aiortc 1.16 changes what the emulation covers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aioice
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from rtclab import media
from rtclab.network import SimNetwork, run_sim
from rtclab.peer import InvalidAccessError, InvalidStateError, Peer
from rtclab.peer import restart as restart_mod
from rtclab.peer.rollback import SAVED
from rtclab.trace import Trace

NETWORKS = ["sim", "real"]
COLS = ("t_ms", "actor", "kind", "name", "value", "prev", "ref", "detail")


def play(network: str, main: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    """Run ``main()`` on the simulated LAN (virtual time) or on the real network, bounded."""
    if network == "sim":
        return run_sim(lambda: asyncio.wait_for(main(), timeout), SimNetwork(topology="lan", stun=False, turn=False, seed=0))
    return asyncio.run(asyncio.wait_for(main(), timeout))


def rows(trace: Trace, **match: str) -> list[tuple]:
    return [r for r in trace.rows if all(r[COLS.index(k)] == v for k, v in match.items())]


def states(trace: Trace, actor: str, machine: str) -> list[str]:
    return [r[4] for r in rows(trace, actor=actor, kind="state", name=machine)]


def ufrag(pc: Peer) -> str:
    return next(line.split(":", 1)[1] for line in pc.localDescription["sdp"].splitlines() if line.startswith("a=ice-ufrag:"))


async def until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def packets_received(pc: Peer) -> int:
    """RTP packets the peer's receivers accepted, every SSRC (media and RTX) counted.

    (``getStats`` reports one inbound-rtp entry per receiver, overwritten by
    each SSRC in turn, so after a retransmission it shows the RTX stream's.)
    """
    await asyncio.sleep(0)
    return sum(
        stream.packets_received
        for t in pc._pc.getTransceivers()
        for stream in t.receiver._RTCRtpReceiver__remote_streams.values()
    )


class Call:
    """Two peers whose apps negotiate on ``negotiationneeded``, offers from either side."""

    def __init__(self, trace: Trace, caller: Peer, callee: Peer) -> None:
        self.trace, self.caller, self.callee = trace, caller, callee
        self.offers: list[str] = []
        self.auto = True
        for a, b in ((caller, callee), (callee, caller)):
            a.on("icecandidate", lambda c, b=b: b.addIceCandidate(c))
            a.on("negotiationneeded", lambda a=a, b=b: self.negotiate(a, b) if self.auto else None)

    async def negotiate(self, offerer: Peer, answerer: Peer) -> None:
        self.offers.append(offerer.actor)
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)

    def frames(self, actor: str) -> list[tuple]:
        return rows(self.trace, actor=actor, kind="media", name="first-frame")


@asynccontextmanager
async def article_call() -> AsyncIterator[Call]:
    """The caller sends its camera; the callee answered without media: the call is up."""
    trace = Trace()
    caller = Peer("caller", trace)
    callee = Peer("callee", trace)
    tracks: list[Any] = []
    try:
        call = Call(trace, caller, callee)
        tracks += media.getUserMedia(video=True)
        caller.addTrack(tracks[0])
        await until(lambda: caller.connectionState == callee.connectionState == "connected", "the call")
        await until(lambda: call.frames("callee"), "the caller's video at the callee")
        call.tracks = tracks  # type: ignore[attr-defined]
        yield call
    finally:
        await caller.close()
        await callee.close()
        for track in tracks:
            track.stop()


# --- the article's Answer step: callee addTrack -> negotiationneeded -> callee offers -----------------


@pytest.mark.parametrize("network", NETWORKS)
def test_callee_addtrack_renegotiates_without_new_candidates(network: str) -> None:
    """The callee's addTrack reuses its recvonly transceiver, fires negotiationneeded, offers; no new candidate."""

    async def main() -> None:
        async with article_call() as call:
            tr, caller, callee = call.trace, call.caller, call.callee
            assert call.offers == ["caller"]
            (t,) = callee.getTransceivers()
            assert (t.direction, t.currentDirection) == ("recvonly", "recvonly")
            gathered = len(rows(tr, kind="ice", name="candidate", value="gathered"))
            ufrags = (ufrag(caller), ufrag(callee))
            mark = len(tr.rows)
            camera = media.getUserMedia(video=True)[0]
            call.tracks.append(camera)
            sender = callee.addTrack(camera)
            assert sender is t.sender and len(callee.getTransceivers()) == 1  # reused, as Chromium does
            assert (t.direction, t.currentDirection) == ("sendrecv", "recvonly")
            await until(lambda: call.frames("caller"), "the callee's video at the caller")
            assert call.offers == ["caller", "callee"]
            assert (t.direction, t.currentDirection) == ("sendrecv", "sendrecv")
            assert caller.getTransceivers()[0].currentDirection == "sendrecv"
            later = tr.rows[mark:]
            names = [(r[1], r[3]) for r in later if r[2] == "call" and r[4] in ("ok", "event")]
            assert names[:3] == [("callee", "addTrack"), ("callee", "negotiationneeded"), ("callee", "createOffer")]
            assert [r[4] for r in later if r[1] == "callee" and r[3] == "signalingState"] == ["have-local-offer", "stable"]
            assert [r[4] for r in later if r[1] == "caller" and r[3] == "signalingState"] == ["have-remote-offer", "stable"]
            assert len(rows(tr, kind="ice", name="candidate", value="gathered")) == gathered  # BUNDLE: nothing new
            assert (ufrag(caller), ufrag(callee)) == ufrags
            assert not [r for r in later if r[3] in ("connectionState", "iceConnectionState")]  # never left connected
            assert not rows(tr, kind="error")

    play(network, main)


def test_offer_from_either_side_after_the_call_is_up() -> None:
    """Once connected, the caller and then the callee each change a direction and offer; the call stays up."""

    async def main() -> None:
        async with article_call() as call:
            caller, callee = call.caller, call.callee
            mark = len(call.trace.rows)
            # sendonly is what the answer already gave the caller (W3C: nothing to negotiate); recvonly is new
            caller.getTransceivers()[0].direction = "sendonly"
            caller.getTransceivers()[0].direction = "recvonly"
            await until(lambda: len(call.offers) == 2 and caller.signalingState == "stable", "the caller's offer")
            assert caller.getTransceivers()[0].currentDirection == "inactive"  # recvonly x callee's recvonly
            callee.getTransceivers()[0].direction = "sendrecv"
            await until(lambda: len(call.offers) == 3 and callee.signalingState == "stable", "the callee's offer")
            await until(lambda: caller.getTransceivers()[0].currentDirection == "recvonly", "the callee's answer")
            assert call.offers == ["caller", "caller", "callee"]
            assert callee.getTransceivers()[0].currentDirection == "sendonly"
            assert caller.connectionState == callee.connectionState == "connected"
            assert not [r for r in call.trace.rows[mark:] if r[3] == "connectionState"]

    play("sim", main)


# --- the W3C "check if negotiation is needed" rules --------------------------------------------------


def test_negotiationneeded_rules_during_a_call() -> None:
    """Direction change, removeTrack, stop(), restartIce and the first data channel each fire it, coalesced."""

    async def main() -> None:
        async with article_call() as call:
            tr, caller = call.trace, call.caller
            call.auto = False  # count the events, negotiate by hand

            def events() -> int:
                return len(rows(tr, actor="caller", name="negotiationneeded"))

            async def settle() -> None:
                for _ in range(20):
                    await asyncio.sleep(0)

            async def renegotiate() -> None:
                await call.negotiate(caller, call.callee)
                await until(lambda: caller.signalingState == "stable" and caller._gathering.done(), "stable")
                await settle()

            base = events()
            (t,) = caller.getTransceivers()
            t.direction = "sendrecv"  # unchanged: nothing to negotiate
            await settle()
            assert events() == base
            t.direction = "sendonly"
            t.direction = "recvonly"  # two changes in one go: one event
            await settle()
            assert events() == base + 1
            t.direction = "sendonly"  # flag still set: no second event until a negotiation
            await settle()
            assert events() == base + 1
            await renegotiate()
            assert events() == base + 1  # sendonly was negotiated: nothing left to do
            caller.removeTrack(t.sender)
            await settle()
            assert events() == base + 2 and t.direction == "inactive" and t.sender.track is None
            await renegotiate()
            caller.createDataChannel("chat")
            await settle()
            assert events() == base + 3
            await renegotiate()
            assert caller._pc.sctp.transport is t.receiver.transport  # joined the BUNDLE transport
            caller.restartIce()
            await settle()
            assert events() == base + 4
            await renegotiate()
            await until(lambda: len(rows(tr, name="restart", value="completed")) == 2, "the restart")
            t.stop()
            await settle()
            assert events() == base + 5 and t.direction == "stopped"
            await renegotiate()
            assert t.currentDirection == "stopped"
            await settle()
            assert events() == base + 5
            assert caller.connectionState == "connected"

    play("sim", main)


def test_negotiationneeded_waits_for_stable_during_a_call() -> None:
    """A change made while an offer is outstanding fires only once the state is stable again."""

    async def main() -> None:
        async with article_call() as call:
            tr, caller, callee = call.trace, call.caller, call.callee
            call.auto = False
            await caller.setLocalDescription(await caller.createOffer())
            caller.getTransceivers()[0].direction = "recvonly"
            for _ in range(20):
                await asyncio.sleep(0)
            before = len(rows(tr, actor="caller", name="negotiationneeded"))
            await callee.setRemoteDescription(caller.localDescription)
            await callee.setLocalDescription(await callee.createAnswer())
            await caller.setRemoteDescription(callee.localDescription)
            await until(lambda: len(rows(tr, actor="caller", name="negotiationneeded")) == before + 1, "the event")
            fired = rows(tr, actor="caller", name="negotiationneeded")[-1]
            stable = [r for r in rows(tr, actor="caller", name="signalingState") if r[4] == "stable"][-1]
            assert tr.rows.index(fired) > tr.rows.index(stable)

    play("sim", main)


def test_addtrack_does_not_reuse_a_transceiver_that_has_sent() -> None:
    """W3C addTrack: after removeTrack, a new track gets a new transceiver (aiortc alone would reuse the old one)."""

    async def main() -> None:
        async with article_call() as call:
            caller = call.caller
            (t,) = caller.getTransceivers()
            caller.removeTrack(t.sender)
            camera = media.getUserMedia(video=True)[0]
            call.tracks.append(camera)
            sender = caller.addTrack(camera)
            assert sender is not t.sender and len(caller.getTransceivers()) == 2
            assert caller.getTransceivers()[1].receiver.transport is t.receiver.transport  # bundled at once
            assert caller.connectionState == "connected"
            with pytest.raises(InvalidAccessError):
                caller.addTrack(camera)
            with pytest.raises(InvalidAccessError):
                caller.removeTrack(object())

    play("sim", main)


# --- restartIce ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("side", ["caller", "callee"])
def test_restart_ice_keeps_the_call(network: str, side: str) -> None:
    """restartIce(): new ufrags both ways, new candidates, a new pair; connected throughout, media flows on."""

    async def main() -> None:
        async with article_call() as call:
            tr = call.trace
            peer = call.caller if side == "caller" else call.callee
            old = (ufrag(call.caller), ufrag(call.callee))
            gathered = {r[7] for r in rows(tr, kind="ice", name="candidate", value="gathered")}
            mark = len(tr.rows)
            peer.restartIce()
            await until(lambda: len(rows(tr, kind="ice", name="restart", value="completed")) == 2, "the restart")
            await until(lambda: call.caller.signalingState == call.callee.signalingState == "stable", "stable")
            new = (ufrag(call.caller), ufrag(call.callee))
            assert new[0] != old[0] and new[1] != old[1]
            later = tr.rows[mark:]
            assert [r[1] for r in later if r[3] == "negotiationneeded"] == [side]
            fresh = {r[7] for r in later if r[3] == "candidate" and r[4] == "gathered"}
            assert fresh and not fresh & gathered  # new candidates (new ports), for both sides
            assert {r[1] for r in later if r[3] == "candidate" and r[4] == "gathered"} == {"caller", "callee"}
            for actor in ("caller", "callee"):
                assert [r[4] for r in later if r[1] == actor and r[3] == "restart"] == ["gathering", "checking", "completed"]
                pair = [r[7] for r in later if r[1] == actor and r[3] == "selected-pair"][-1]
                assert any(line.split()[5] in pair for line in fresh if line.startswith("candidate:"))  # a new port
            assert not [r for r in later if r[3] in ("connectionState", "iceConnectionState")]
            before = await packets_received(call.callee)
            await asyncio.sleep(1.0)
            assert await packets_received(call.callee) > before  # on the new pair: the old sockets are closed
            assert call.caller.connectionState == call.callee.connectionState == "connected"
            assert not rows(tr, kind="error")

    play(network, main)


def test_rolled_back_restart_offer_keeps_the_old_credentials_and_closes_the_new_sockets() -> None:
    """restartIce, offer, rollback: the fresh connection is closed, the call goes on with the old ufrag."""

    async def main() -> None:
        async with article_call() as call:
            tr, caller = call.trace, call.caller
            call.auto = False
            old = ufrag(caller)
            caller.restartIce()
            await caller.setLocalDescription(await caller.createOffer())  # (before the event's task runs)
            events = len(rows(tr, actor="caller", name="negotiationneeded"))
            session = caller._restart_session
            assert session is not None and ufrag(caller) != old  # the offer shows the new ufrag
            await until(lambda: session.gathered, "the new candidates")
            fresh = session.restarts[0].new
            await caller.setLocalDescription({"type": "rollback"})
            await until(lambda: fresh._closed, "the fresh connection closed")
            assert fresh._protocols == [] and caller._restart_session is None
            assert ufrag(caller) == old and caller.connectionState == "connected"
            assert [r[4] for r in rows(tr, actor="caller", name="restart")] == ["gathering", "rolled-back"]
            # W3C: the credentials in use are still to be replaced: negotiationneeded fires again
            await until(lambda: len(rows(tr, actor="caller", name="negotiationneeded")) == events + 1, "the event")
            before = await packets_received(call.callee)
            await asyncio.sleep(0.5)
            assert await packets_received(call.callee) > before

    play("sim", main)


def test_a_restart_never_answered_is_closed_with_the_peer() -> None:
    """An offer with new credentials that gets no answer: closing the peer closes the fresh sockets too."""

    async def main() -> None:
        async with article_call() as call:
            call.auto = False
            call.caller.restartIce()
            await call.caller.setLocalDescription(await call.caller.createOffer())
            session = call.caller._restart_session
            await until(lambda: session.gathered, "the new candidates")
            fresh = session.restarts[0].new
            assert fresh._protocols
        assert fresh._closed and fresh._protocols == []

    play("sim", main)


def test_restart_ice_before_any_negotiation_only_records() -> None:
    """Nothing negotiated yet: restartIce is recorded and fires nothing (the first offer has fresh credentials)."""

    async def main() -> None:
        tr = Trace()
        pc = Peer("caller", tr)
        try:
            pc.restartIce()
            await asyncio.sleep(0.01)
            assert rows(tr, name="restartIce", value="ok") and not rows(tr, name="negotiationneeded")
        finally:
            await pc.close()

    play("sim", main)


# --- rollback of a re-negotiation -------------------------------------------------------------------


@pytest.mark.parametrize("network", NETWORKS)
def test_rollback_during_a_call_keeps_it(network: str) -> None:
    """An offer made during a call and rolled back: connected throughout, media flows, the next offer works."""

    async def main() -> None:
        async with article_call() as call:
            tr, caller, callee = call.trace, call.caller, call.callee
            call.auto = False
            mark = len(tr.rows)
            callee.addTransceiver("audio")
            await callee.setLocalDescription(await callee.createOffer())
            assert callee.signalingState == "have-local-offer"
            await callee.setLocalDescription({"type": "rollback"})
            assert callee.signalingState == "stable"
            assert [t.mid for t in callee.getTransceivers()] == ["0", None]  # the new one stays, not negotiated
            (rb,) = rows(tr, actor="callee", name="rollback")
            assert "the call is kept" in rb[7]
            assert len(rows(tr, actor="callee", name="RTCPeerConnection")) == 1  # not re-created
            before = await packets_received(callee)
            await asyncio.sleep(0.5)
            assert await packets_received(callee) > before
            await call.negotiate(caller, callee)  # the caller offers next: it works
            await until(lambda: caller.signalingState == "stable", "the caller's answer")
            audio = callee.getTransceivers()[1]
            assert (audio.mid, audio.currentDirection) == (None, None)  # not in the caller's offer: still to negotiate
            await call.negotiate(callee, caller)  # then the callee offers its audio
            await until(lambda: audio.currentDirection is not None, "audio negotiated")
            # mid 1 went with the rolled-back offer: as in Chromium 156, it is not given out again
            assert [t.mid for t in callee.getTransceivers()] == ["0", "2"]
            later = tr.rows[mark:]
            assert not [r for r in later if r[3] in ("connectionState", "iceConnectionState")]
            assert states(tr, "callee", "signalingState")[-6:] == [
                "have-local-offer", "stable", "have-remote-offer", "stable", "have-local-offer", "stable"]
            assert caller.connectionState == callee.connectionState == "connected"

    play(network, main)


def test_rollback_of_a_remote_offer_during_a_call_keeps_it() -> None:
    """A re-offer applied, then rolled back by the answerer: the transceiver it created goes, the call stays."""

    async def main() -> None:
        async with article_call() as call:
            tr, caller, callee = call.trace, call.caller, call.callee
            call.auto = False
            caller.addTransceiver("audio")
            await caller.setLocalDescription(await caller.createOffer())
            await callee.setRemoteDescription(caller.localDescription)
            assert [t.kind for t in callee.getTransceivers()] == ["video", "audio"]
            await callee.setRemoteDescription({"type": "rollback"})
            assert callee.signalingState == "stable" and [t.kind for t in callee.getTransceivers()] == ["video"]
            (rb,) = rows(tr, actor="callee", name="rollback")
            assert "have-remote-offer" in rb[7] and "1 transceiver(s) of the remote offer removed" in rb[7]
            await caller.setLocalDescription({"type": "rollback"})
            assert caller.signalingState == "stable"
            await call.negotiate(caller, callee)  # offered again, now answered
            await until(lambda: caller.getTransceivers()[1].currentDirection is not None, "audio negotiated")
            assert [t.kind for t in callee.getTransceivers()] == ["video", "audio"]
            assert caller.connectionState == callee.connectionState == "connected"
            before = await packets_received(callee)
            await asyncio.sleep(0.5)
            assert await packets_received(callee) > before

    play("sim", main)


def test_glare_during_a_call_rolls_back_implicitly_and_keeps_it() -> None:
    """Both sides offer during a call; the polite callee applies the caller's offer (implicit rollback), call kept."""

    async def main() -> None:
        async with article_call() as call:
            tr, caller, callee = call.trace, call.caller, call.callee
            call.auto = False
            caller.getTransceivers()[0].direction = "recvonly"
            callee.createDataChannel("chat")
            await until(lambda: rows(tr, actor="callee", name="negotiationneeded"), "the callee's event")
            await callee.setLocalDescription(await callee.createOffer())
            await caller.setLocalDescription(await caller.createOffer())
            await callee.setRemoteDescription(caller.localDescription)  # glare: rolls back its own offer
            await callee.setLocalDescription(await callee.createAnswer())
            await caller.setRemoteDescription(callee.localDescription)
            (rb,) = rows(tr, actor="callee", name="rollback")
            assert rb[7].startswith("implicit") and "the call is kept" in rb[7]
            # the data channel was in the rolled-back offer only: still to negotiate, the event fires again
            await until(lambda: len(rows(tr, actor="callee", name="negotiationneeded")) == 2, "the callee's event, again")
            assert caller.connectionState == callee.connectionState == "connected"
            assert caller.getTransceivers()[0].currentDirection == "inactive"  # the caller's recvonly x the callee's recvonly

    play("sim", main)


def mids_of(desc: dict[str, str]) -> list[str]:
    return [line.split(":", 1)[1] for line in desc["sdp"].splitlines() if line.startswith("a=mid:")]


def test_polite_rollback_leaves_its_own_new_transceiver_for_the_next_offer() -> None:
    """Polite callee adds video, the caller audio, both offer: after the rollback and answer the video is offered
    on its own m-line (aiortc kept the rolled-back offer's m-line index and gave it the audio's mid)."""

    async def main() -> None:
        async with article_call() as call:
            tr, caller, callee = call.trace, call.caller, call.callee
            call.auto = False
            caller.addTransceiver("audio")
            callee.addTransceiver("video")
            await callee.setLocalDescription(await callee.createOffer())
            await caller.setLocalDescription(await caller.createOffer())
            await callee.setRemoteDescription(caller.localDescription)  # glare: the polite side rolls back
            await callee.setLocalDescription(await callee.createAnswer())
            await caller.setRemoteDescription(callee.localDescription)
            assert [(t.kind, t.mid) for t in callee.getTransceivers()] == [("video", "0"), ("video", None), ("audio", "1")]
            await callee.setLocalDescription(await callee.createOffer())  # its video still needs negotiating
            assert mids_of(callee.localDescription) == ["0", "1", "2"]
            await caller.setRemoteDescription(callee.localDescription)
            await caller.setLocalDescription(await caller.createAnswer())
            await callee.setRemoteDescription(caller.localDescription)
            assert [t.currentDirection for t in callee.getTransceivers()] == ["recvonly", "sendonly", "recvonly"]
            assert not [r for r in rows(tr, kind="error")]
            assert caller.connectionState == callee.connectionState == "connected"

    play("sim", main)


def test_naive_glare_during_a_call_leaves_the_sides_disagreeing() -> None:
    """Both sides answer the crossing offers (as Chromium 156 does): the late answers are InvalidStateError, the
    caller's next offer numbers its new m-line after the rolled-back one, and the callee refuses it."""

    async def main() -> None:
        async with article_call() as call:
            tr, caller, callee = call.trace, call.caller, call.callee
            call.auto = False
            call.tracks += media.getUserMedia(video=True)  # type: ignore[attr-defined]
            caller.addTrack(call.tracks[-1])  # a second video (a screen share) ...  # type: ignore[attr-defined]
            call.tracks += media.getUserMedia(video=True)  # type: ignore[attr-defined]
            callee.addTrack(call.tracks[-1])  # ... as the callee clicks Answer (reuses its recvonly transceiver)
            await caller.setLocalDescription(await caller.createOffer())
            await callee.setLocalDescription(await callee.createOffer())
            offer_a, offer_b = caller.localDescription, callee.localDescription
            assert mids_of(offer_a) == ["0", "1"]
            await callee.setRemoteDescription(offer_a)
            await callee.setLocalDescription(await callee.createAnswer())
            await caller.setRemoteDescription(offer_b)
            await caller.setLocalDescription(await caller.createAnswer())
            answer_b = callee.localDescription
            for pc, answer in ((caller, answer_b), (callee, caller.localDescription)):
                with pytest.raises(InvalidStateError):
                    await pc.setRemoteDescription(answer)
            await caller.setLocalDescription(await caller.createOffer())
            assert mids_of(caller.localDescription) == ["0", "2"]  # mid 1 went with the rolled-back offer
            with pytest.raises(InvalidAccessError, match="order of m-lines in subsequent offer"):
                await callee.setRemoteDescription(caller.localDescription)
            with pytest.raises(InvalidAccessError, match="order of m-lines in answer"):
                await caller.setRemoteDescription(answer_b)  # an answer to another offer
            assert [r[4] for r in rows(tr, kind="error", name="setRemoteDescription")] == [
                "InvalidStateError", "InvalidStateError", "InvalidAccessError", "InvalidAccessError"]
            assert caller.connectionState == callee.connectionState == "connected"

    play("sim", main)


# --- each emulation fails here if aiortc changes what it covers ------------------------------------------


def test_aiortc_has_no_renegotiation_api() -> None:
    """aiortc 1.16: no negotiationneeded event, no restartIce, no removeTrack; direction is a plain attribute."""
    assert not hasattr(RTCPeerConnection, "restartIce")
    assert not hasattr(RTCPeerConnection, "removeTrack")
    assert not hasattr(RTCPeerConnection, "onnegotiationneeded")

    async def main() -> None:
        from aiortc import RTCConfiguration

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        fired: list[str] = []
        pc.on("negotiationneeded", lambda: fired.append("nn"))
        try:
            pc.addTransceiver("video")
            pc.createDataChannel("x")
            await asyncio.sleep(0.01)
            assert fired == []
        finally:
            await pc.close()

    play("sim", main)


def test_aiortc_reuse_keeping_and_bundling_differ_from_the_browser() -> None:
    """What negotiation.py works around: aiortc reuses a sender that sent, keeps offers pending, does not bundle."""

    async def main() -> None:
        from aiortc import RTCConfiguration

        from rtclab.network import host_scope

        with host_scope("caller"):
            a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        with host_scope("callee"):
            b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        cams = media.getUserMedia(video=True) + media.getUserMedia(video=True)
        try:
            t = a.addTransceiver(cams[0])
            with host_scope("caller"):
                await a.setLocalDescription(await a.createOffer())
            with host_scope("callee"):
                await b.setRemoteDescription(a.localDescription)
                await b.setLocalDescription(await b.createAnswer())
            with host_scope("caller"):
                await a.setRemoteDescription(b.localDescription)
            # the offer stays "pending" after the answer: rtclab remembers the negotiated pair itself
            assert a._RTCPeerConnection__currentLocalDescription is None
            assert a._RTCPeerConnection__pendingLocalDescription is not None
            # a sender that sent is reused by aiortc's addTrack (the spec creates a new transceiver)
            t.sender.replaceTrack(None)
            assert a.addTrack(cams[1]) is t.sender
            # a transceiver added after BUNDLE gets its own transport in aiortc
            audio = a.addTransceiver("audio")
            assert audio.receiver.transport is not t.receiver.transport
            # a second createOffer keeps the ICE credentials: no ICE restart
            with host_scope("caller"):
                first = (await a.createOffer()).sdp
                second = (await a.createOffer()).sdp
            ufrags = {line for line in (first + second).splitlines() if line.startswith("a=ice-ufrag:")}
            assert len(ufrags) == 1
            # an offer with new credentials is applied, and ignored by the running ICE agent
            conn = b.getTransceivers()[0].receiver.transport.transport._connection
            remote = conn.remote_username
            (old,) = ufrags
            changed = first.replace(old, "a=ice-ufrag:zzzz")
            with host_scope("callee"):
                await b.setRemoteDescription(RTCSessionDescription(sdp=changed, type="offer"))
            assert b.signalingState == "have-remote-offer" and conn.remote_username == remote
        finally:
            await a.close()
            await b.close()
            for cam in cams:
                cam.stop()

    play("sim", main)


def test_aiortc_cannot_reject_an_m_section() -> None:
    """aiortc answers a port-0 (rejected) m-section with a live one: Transceiver.stop() offers it inactive instead."""

    async def main() -> None:
        from aiortc import RTCConfiguration

        from rtclab.network import host_scope

        with host_scope("caller"):
            a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        with host_scope("callee"):
            b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            a.addTransceiver("video")
            a.addTransceiver("audio")
            with host_scope("caller"):
                offer = (await a.createOffer()).sdp
            head, audio = offer.split("m=audio ")
            rejected = head + "m=audio 0 " + audio.split(" ", 1)[1]
            with host_scope("callee"):
                await b.setRemoteDescription(RTCSessionDescription(sdp=rejected, type="offer"))
                answer = (await b.createAnswer()).sdp
            audio_line = next(line for line in answer.splitlines() if line.startswith("m=audio"))
            assert audio_line.split()[1] != "0"
            assert not any(t.stopped for t in b.getTransceivers())
        finally:
            await a.close()
            await b.close()

    play("sim", main)


def test_the_private_attributes_the_emulations_use_exist() -> None:
    """restart.py splices aioice Connections; rollback.py saves aiortc fields: both need them as in 1.16/0.13."""
    assert restart_mod.supported() is None
    assert getattr(aioice, "__version__", restart_mod.TESTED_AIOICE[0]) in restart_mod.TESTED_AIOICE

    async def main() -> None:
        from aiortc import RTCConfiguration

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            t = pc.addTransceiver("video")
            for name in SAVED["RTCPeerConnection"]:
                assert hasattr(pc, name), name
            for name in SAVED["RTCRtpTransceiver"]:
                assert hasattr(t, name), name
            for name in ("localDescription", "remoteDescription", "dtlsTransports", "iceTransports", "configuration",
                         "updateIceGatheringState", "updateIceConnectionState", "updateConnectionState"):
                assert hasattr(pc, "_RTCPeerConnection__" + name), name
        finally:
            await pc.close()

    play("sim", main)
