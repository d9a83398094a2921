"""Tests of rtclab.peer: one test per browser emulation, checking aiortc's own behaviour too.

Each emulation test first asserts what bare aiortc 1.16 does (so the test
fails, and tells us the emulation is obsolete, if aiortc starts behaving like
a browser) and then what :class:`rtclab.Peer` does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc import RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from aiortc.sdp import candidate_from_sdp

import rtclab
from rtclab.peer import InvalidStateError, OperationError, Peer, parse_candidate, strip_candidates
from rtclab.trace import Trace

HOST = "192.0.2.2"
GOOD = f"candidate:1 1 udp 2130706431 {HOST} 50000 typ host"


# --- helpers -------------------------------------------------------------------------------------


def rows(trace: Trace, actor: str | None = None, kind: str | None = None, name: str | None = None) -> list[tuple]:
    """The trace's rows (in recording order) matching the filters."""
    return [
        r for r in trace.rows
        if (actor is None or r[1] == actor) and (kind is None or r[2] == kind) and (name is None or r[3] == name)
    ]


def states(trace: Trace, actor: str, machine: str) -> list[tuple[str, str]]:
    """(prev, value) pairs of one state machine of one actor."""
    return [(r[5], r[4]) for r in rows(trace, actor, "state", machine)]


def index_of(trace: Trace, predicate) -> int:
    """Position of the first row matching ``predicate`` in recording order."""
    for i, r in enumerate(trace.rows):
        if predicate(r):
            return i
    raise AssertionError("no such row")


def assert_error_recorded(trace: Trace, actor: str, where: str, error: str, text: str) -> None:
    """An ``error`` row and a ``call ... error`` row name the error type and a clear message."""
    errs = [r for r in rows(trace, actor, "error", where) if r[4] == error]
    assert errs, f"no {error} error row for {where}: {rows(trace, actor, 'error')}"
    assert text.lower() in errs[-1][7].lower()
    calls = [r for r in rows(trace, actor, "call", where) if r[4] == "error"]
    assert calls and calls[-1][7].startswith(f"{error}: ")


async def offer_of(pc: Peer, kind: str = "audio") -> dict[str, str]:
    """Make ``pc`` add a transceiver and create (not apply) an offer."""
    pc.addTransceiver(kind)
    return await pc.createOffer()


async def callee_with_remote_offer(caller: Peer, callee: Peer) -> None:
    """Put ``callee`` in have-remote-offer with an audio offer from ``caller``."""
    await callee.setRemoteDescription(await offer_of(caller))


# --- trickle ICE -----------------------------------------------------------------------------------


def test_trickle_emulation(foundation_arun, foundation_pair, foundation_raw_pc, foundation_poll) -> None:
    """aiortc embeds every candidate in localDescription; Peer trickles them one by one, then None."""

    async def main() -> None:
        async with foundation_raw_pc() as raw:
            raw.addTransceiver("audio")
            await raw.setLocalDescription(await raw.createOffer())
            assert "a=candidate:" in raw.localDescription.sdp
            assert "a=end-of-candidates" in raw.localDescription.sdp
            assert raw.iceGatheringState == "complete"

        async with foundation_pair() as (trace, pc, _):
            events: list[Any] = []
            announced: list[int] = []

            def on_candidate(candidate):
                events.append(candidate)
                sdp = pc.localDescription["sdp"]
                announced.append(sdp.count("a=candidate:"))

            pc.on("icecandidate", on_candidate)
            pc.addTransceiver("audio")
            await pc.setLocalDescription(await pc.createOffer())
            sdp = pc.localDescription["sdp"]
            assert "a=candidate:" not in sdp and "a=end-of-candidates" not in sdp
            assert " 9 UDP/TLS/RTP/SAVPF" in sdp and "c=IN IP4 0.0.0.0" in sdp
            assert pc.iceGatheringState == "gathering"
            assert events == []  # paced: nothing emitted synchronously

            await foundation_poll(lambda: events and events[-1] is None, what="end-of-candidates")
            cands = events[:-1]
            assert len(cands) >= 1 and events[-1] is None
            for c in cands:
                assert c["candidate"].startswith("candidate:") and c["candidate"].endswith("typ host")
                assert c["sdpMid"] == "0" and c["sdpMLineIndex"] == 0
            assert any(f" {HOST} " in c["candidate"] for c in cands)
            # like a browser, localDescription holds the candidates announced so far
            assert announced[:-1] == list(range(1, len(cands) + 1))
            assert "a=end-of-candidates" in pc.localDescription["sdp"]

            gathered = [i for i, r in enumerate(trace.rows) if r[1] == "caller" and r[2] == "ice" and r[4] == "gathered"]
            end = index_of(trace, lambda r: r[1] == "caller" and r[2] == "ice" and r[4] == "end")
            complete = index_of(trace, lambda r: r[1] == "caller" and r[3] == "iceGatheringState" and r[4] == "complete")
            assert len(gathered) == len(cands)
            assert max(gathered) < complete < end  # Chromium 156: complete just before the null candidate
            assert states(trace, "caller", "iceGatheringState") == [("new", "gathering"), ("gathering", "complete")]

    foundation_arun(main())


def test_trickle_can_be_switched_off(foundation_arun, foundation_pair) -> None:
    """With trickle=False, Peer behaves like aiortc: candidates in the SDP, no icecandidate events."""

    async def main() -> None:
        async with foundation_pair(trickle=False) as (_trace, pc, _):
            events: list[Any] = []
            pc.on("icecandidate", events.append)
            pc.addTransceiver("audio")
            await pc.setLocalDescription(await pc.createOffer())
            assert "a=candidate:" in pc.localDescription["sdp"]
            assert pc.iceGatheringState == "complete"
            assert events == []

    foundation_arun(main())


def test_strip_candidates_gives_the_trickle_form() -> None:
    """strip_candidates drops candidate and end-of-candidates lines and resets ports and addresses."""
    sdp = (
        "v=0\r\nm=audio 5000 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 192.0.2.2\r\n"
        f"a=candidate:1 1 udp 1 {HOST} 5000 typ host\r\na=end-of-candidates\r\n"
        "m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP6 ::1\r\n"
    )
    assert strip_candidates(sdp) == (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP6 ::\r\n"
    )


# --- operations chain --------------------------------------------------------------------------------


async def _candidate_and_offer(pc: Peer, foundation_poll) -> tuple[dict[str, str], dict[str, Any]]:
    events: list[Any] = []
    pc.on("icecandidate", events.append)
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription
    await foundation_poll(lambda: events and events[0] is not None, what="a candidate")
    return offer, events[0]


@pytest.mark.parametrize("chain", [True, False])
def test_operations_chain(chain: bool, foundation_arun, foundation_pair, foundation_raw_pc, foundation_poll) -> None:
    """A candidate added while setRemoteDescription is pending waits for it with chain=True, fails without."""

    async def main() -> None:
        async with foundation_raw_pc() as raw:  # aiortc: no chain, and no error either
            early = candidate_from_sdp(GOOD[len("candidate:"):])
            early.sdpMid = "0"
            await raw.addIceCandidate(early)
            assert raw.remoteDescription is None

        async with foundation_pair(callee_options={"chain": chain}) as (trace, caller, callee):
            offer, candidate = await _candidate_and_offer(caller, foundation_poll)
            srd = asyncio.ensure_future(callee.setRemoteDescription(offer))  # not awaited
            aic = asyncio.ensure_future(callee.addIceCandidate(candidate))  # issued right after
            results = await asyncio.gather(srd, aic, return_exceptions=True)
            assert results[0] is None
            calls = [(r[3], r[4]) for r in rows(trace, "callee", "call") if r[3] in ("setRemoteDescription", "addIceCandidate")]
            if chain:
                assert results[1] is None
                assert calls == [("setRemoteDescription", "ok"), ("addIceCandidate", "ok")]
                assert [r[4] for r in rows(trace, "callee", "ice", "candidate")] == ["added"]
            else:
                assert isinstance(results[1], InvalidStateError)
                assert ("addIceCandidate", "error") in calls
                assert [r[4] for r in rows(trace, "callee", "ice", "candidate")] == ["rejected"]

    foundation_arun(main())


def test_chain_runs_calls_in_call_order(foundation_arun, foundation_pair) -> None:
    """Calls issued together complete in the order they were issued, even when the first is slower."""

    async def main() -> None:
        async with foundation_pair() as (trace, pc, _):
            pc.addTransceiver("audio")
            offer_task = asyncio.ensure_future(pc.createOffer())
            sld_task = asyncio.ensure_future(pc.setLocalDescription())  # implicit offer
            create_task = asyncio.ensure_future(pc.createOffer())
            await asyncio.gather(offer_task, sld_task, create_task)
            names = [r[3] for r in rows(trace, "caller", "call") if r[4] == "ok" and r[3] in ("createOffer", "setLocalDescription")]
            assert names == ["createOffer", "setLocalDescription", "createOffer"]

    foundation_arun(main())


# --- negotiationneeded ----------------------------------------------------------------------------------


def test_negotiationneeded_coalesced_after_two_addtrack(foundation_arun, foundation_pair, foundation_raw_pc,
                                                        foundation_poll, foundation_settle) -> None:
    """aiortc never fires negotiationneeded; Peer fires it once, as a task, after two addTrack calls."""

    async def main() -> None:
        tracks = [AudioStreamTrack(), VideoStreamTrack(), AudioStreamTrack(), VideoStreamTrack()]
        try:
            async with foundation_raw_pc() as raw, foundation_pair(
                callee_options={"negotiationneeded": False}
            ) as (trace, pc, off):
                raw_events: list[int] = []
                raw.on("negotiationneeded", lambda: raw_events.append(1))
                fired: list[str] = []
                fired_off: list[str] = []
                pc.on("negotiationneeded", lambda: fired.append(pc.signalingState))
                off.on("negotiationneeded", lambda: fired_off.append(off.signalingState))
                raw.addTrack(tracks[0])
                raw.addTrack(tracks[1])
                off.addTrack(tracks[2])
                off.addTrack(tracks[3])
                pc.addTrack(AudioStreamTrack())
                pc.addTrack(VideoStreamTrack())
                assert fired == []  # queued, not synchronous
                await foundation_poll(lambda: fired, what="negotiationneeded")
                await foundation_settle()
                assert fired == ["stable"]
                assert raw_events == [] and fired_off == []
                assert [r[4] for r in rows(trace, "caller", "call", "negotiationneeded")] == ["event"]
        finally:
            for t in tracks:
                t.stop()

    foundation_arun(main())


def test_negotiationneeded_waits_for_stable(foundation_arun, foundation_pair, foundation_poll, foundation_settle) -> None:
    """Not fired in have-local-offer; fired again once stable when a transceiver was added meanwhile."""

    async def main() -> None:
        async with foundation_pair() as (trace, caller, callee):
            fired: list[str] = []
            caller.on("negotiationneeded", lambda: fired.append(caller.signalingState))
            caller.addTransceiver("audio")
            await foundation_poll(lambda: fired, what="first negotiationneeded")
            await caller.setLocalDescription(await caller.createOffer())
            caller.addTransceiver("video")  # while in have-local-offer
            await foundation_settle()
            assert fired == ["stable"]
            await callee.setRemoteDescription(caller.localDescription)
            await callee.setLocalDescription(await callee.createAnswer())
            await caller.setRemoteDescription(callee.localDescription)
            await foundation_poll(lambda: len(fired) == 2, what="second negotiationneeded")
            await foundation_settle()
            assert fired == ["stable", "stable"]
            back_to_stable = index_of(
                trace, lambda r: r[1] == "caller" and r[3] == "signalingState" and r[5] == "have-local-offer" and r[4] == "stable"
            )
            nn = [i for i, r in enumerate(trace.rows) if r[1] == "caller" and r[3] == "negotiationneeded"]
            assert nn[0] < back_to_stable < nn[1]

    foundation_arun(main())


def test_negotiationneeded_only_for_the_first_data_channel(foundation_arun, foundation_pair, foundation_raw_pc,
                                                           foundation_poll, foundation_settle) -> None:
    """The first createDataChannel fires negotiationneeded (aiortc: never); a second one does not."""

    async def main() -> None:
        async with foundation_raw_pc() as raw, foundation_pair() as (_trace, pc, _):
            raw_events: list[int] = []
            raw.on("negotiationneeded", lambda: raw_events.append(1))
            raw.createDataChannel("chat")
            fired: list[int] = []
            pc.on("negotiationneeded", lambda: fired.append(1))
            pc.createDataChannel("chat")
            await foundation_poll(lambda: fired, what="negotiationneeded")
            pc.createDataChannel("more")
            await foundation_settle()
            assert fired == [1] and raw_events == []

    foundation_arun(main())


# --- browser errors --------------------------------------------------------------------------------------


def test_addicecandidate_without_remote_description(foundation_arun, foundation_pair, foundation_raw_pc) -> None:
    """aiortc accepts a candidate before the remote description; Peer raises InvalidStateError and records it."""

    async def main() -> None:
        async with foundation_raw_pc() as raw:
            cand = candidate_from_sdp(GOOD[len("candidate:"):])
            cand.sdpMid = "0"
            await raw.addIceCandidate(cand)  # no exception: only a log line

        async with foundation_pair() as (trace, _caller, callee):
            with pytest.raises(InvalidStateError, match="remote description was null"):
                await callee.addIceCandidate({"candidate": GOOD, "sdpMid": "0", "sdpMLineIndex": 0})
            assert_error_recorded(trace, "callee", "addIceCandidate", "InvalidStateError", "remote description was null")
            assert [r[4] for r in rows(trace, "callee", "ice", "candidate")] == ["rejected"]

    foundation_arun(main())


MALFORMED = {
    "garbage": ("garbage", "cannot parse"),
    "a=candidate: garbage": ("a=candidate:this is not a candidate", "cannot parse"),
    "bad port": (f"candidate:1 1 udp 2130706431 {HOST} 70000 typ host", "out of range"),
    "missing typ": (f"candidate:1 1 udp 2130706431 {HOST} 50000", "cannot parse"),
    "unknown typ": (f"candidate:1 1 udp 2130706431 {HOST} 50000 typ carrier-pigeon", "cannot parse"),
    "not an address": ("candidate:1 1 udp 2130706431 not_an_ip 50000 typ host", "not an IP address"),
    "mDNS": ("candidate:1 1 udp 2130706431 4c3a9e6b-1f2d.local 50000 typ host", "mDNS"),
    "too long": (GOOD + " generation 0" * 100, "too long"),
}


@pytest.mark.parametrize("line, message", MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_candidate_is_an_operation_error(line: str, message: str, foundation_arun, foundation_pair) -> None:
    """A malformed candidate raises OperationError with a clear message and leaves an error row."""

    async def main() -> None:
        async with foundation_pair() as (trace, caller, callee):
            await callee_with_remote_offer(caller, callee)
            with pytest.raises(OperationError, match=message):
                await callee.addIceCandidate({"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0})
            assert_error_recorded(trace, "callee", "addIceCandidate", "OperationError", message)
            assert rows(trace, "callee", "ice", "candidate")[-1][4] == "rejected"
            # the peer is still usable: a good candidate is added afterwards
            await callee.addIceCandidate({"candidate": GOOD, "sdpMid": "0", "sdpMLineIndex": 0})
            assert rows(trace, "callee", "ice", "candidate")[-1][4] == "added"

    foundation_arun(main())


def test_aiortc_candidate_parser_is_lenient() -> None:
    """aiortc's candidate_from_sdp takes a leading a= into the foundation and any port; Peer's parser does not."""
    raw = candidate_from_sdp("a=" + GOOD)
    assert raw.foundation == "a=candidate:1"
    assert candidate_from_sdp(f"1 1 udp 1 {HOST} 70000 typ host").port == 70000
    strict = parse_candidate("a=" + GOOD)  # Chrome accepts the a= form and parses it properly
    assert (strict.foundation, strict.ip, strict.port, strict.type) == ("1", HOST, 50000, "host")
    with pytest.raises(OperationError):
        parse_candidate(f"candidate:1 1 udp 1 {HOST} 70000 typ host")


def test_candidate_without_mid_and_index_is_a_type_error(foundation_arun, foundation_pair, foundation_raw_pc) -> None:
    """Neither sdpMid nor sdpMLineIndex: aiortc raises ValueError, Peer the browser's TypeError."""

    async def main() -> None:
        async with foundation_raw_pc() as raw:
            raw.addTransceiver("audio")
            offer = await raw.createOffer()
            await raw.setRemoteDescription(offer)
            with pytest.raises(ValueError):
                await raw.addIceCandidate(candidate_from_sdp(GOOD[len("candidate:"):]))

        async with foundation_pair() as (trace, caller, callee):
            await callee_with_remote_offer(caller, callee)
            with pytest.raises(TypeError, match="sdpMid and sdpMLineIndex"):
                await callee.addIceCandidate({"candidate": GOOD})
            assert_error_recorded(trace, "callee", "addIceCandidate", "TypeError", "sdpMid and sdpMLineIndex")

    foundation_arun(main())


def test_malformed_sdp_is_an_operation_error(foundation_arun, foundation_pair, foundation_raw_pc) -> None:
    """aiortc accepts 'garbage' as an offer; Peer raises OperationError and stays stable."""

    async def main() -> None:
        async with foundation_raw_pc() as raw:
            await raw.setRemoteDescription(RTCSessionDescription(sdp="garbage", type="offer"))
            assert raw.signalingState == "have-remote-offer"

        async with foundation_pair() as (trace, _caller, callee):
            with pytest.raises(OperationError, match="Failed to parse SessionDescription"):
                await callee.setRemoteDescription({"type": "offer", "sdp": "garbage"})
            assert callee.signalingState == "stable"
            assert_error_recorded(trace, "callee", "setRemoteDescription", "OperationError", "Failed to parse SessionDescription")

    foundation_arun(main())


def test_unknown_description_type_is_a_type_error(foundation_arun, foundation_pair) -> None:
    """A description type outside offer/answer/pranswer/rollback raises TypeError, recorded."""

    async def main() -> None:
        async with foundation_pair() as (trace, caller, callee):
            offer = await offer_of(caller)
            with pytest.raises(TypeError, match="not a valid enum value of type RTCSdpType"):
                await callee.setRemoteDescription({"type": "bogus", "sdp": offer["sdp"]})
            assert_error_recorded(trace, "callee", "setRemoteDescription", "TypeError", "RTCSdpType")
            with pytest.raises(TypeError):
                await callee.setRemoteDescription("v=0")  # type: ignore[arg-type]

    foundation_arun(main())


def test_answer_in_stable_is_an_invalid_state_error(foundation_arun, foundation_pair, foundation_raw_pc) -> None:
    """An answer applied in stable raises InvalidStateError (in aiortc too), recorded with the state."""

    async def main() -> None:
        async with foundation_pair() as (trace, caller, callee):
            offer = await offer_of(caller)
            async with foundation_raw_pc() as raw:
                with pytest.raises(Exception) as info:
                    await raw.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="answer"))
                assert type(info.value).__name__ == "InvalidStateError"
            with pytest.raises(InvalidStateError, match="wrong state: stable"):
                await callee.setRemoteDescription({"type": "answer", "sdp": offer["sdp"]})
            assert_error_recorded(trace, "callee", "setRemoteDescription", "InvalidStateError", "wrong state: stable")

    foundation_arun(main())


def test_create_answer_without_offer_is_an_invalid_state_error(foundation_arun, foundation_pair) -> None:
    """createAnswer in stable raises InvalidStateError as in a browser."""

    async def main() -> None:
        async with foundation_pair() as (trace, caller, _):
            with pytest.raises(InvalidStateError, match="cannot create an answer"):
                await caller.createAnswer()
            assert_error_recorded(trace, "caller", "createAnswer", "InvalidStateError", "cannot create an answer")

    foundation_arun(main())


def test_calls_after_close_are_invalid_state_errors(foundation_arun, foundation_pair) -> None:
    """After close(), API calls raise InvalidStateError and the states end closed."""

    async def main() -> None:
        async with foundation_pair() as (trace, caller, _):
            await caller.close()
            await caller.close()  # idempotent
            assert caller.signalingState == "closed"
            with pytest.raises(InvalidStateError):
                await caller.createOffer()
            with pytest.raises(InvalidStateError):
                caller.addTransceiver("audio")
            assert [r[3] for r in rows(trace, "caller", "call", "close")] == ["close"]
            assert states(trace, "caller", "signalingState")[-1] == ("stable", "closed")
            assert states(trace, "caller", "connectionState") == [("new", "closed")]

    foundation_arun(main())


# --- rollback ----------------------------------------------------------------------------------------------


def test_raw_aiortc_has_no_rollback(foundation_arun, foundation_raw_pc) -> None:
    """aiortc raises on a remote offer in have-local-offer and its explicit rollback leaves the state unchanged."""

    async def main() -> None:
        async with foundation_raw_pc() as a, foundation_raw_pc() as b:
            a.addTransceiver("audio")
            b.addTransceiver("audio")
            await a.setLocalDescription(await a.createOffer())
            offer_b = await b.createOffer()
            with pytest.raises(Exception, match="have-local-offer") as info:
                await a.setRemoteDescription(offer_b)
            assert type(info.value).__name__ == "InvalidStateError"
            await a.setLocalDescription(RTCSessionDescription(sdp="", type="rollback"))
            assert a.signalingState == "have-local-offer"

    foundation_arun(main())


def test_implicit_rollback_on_remote_offer(foundation_arun, foundation_pair, foundation_poll) -> None:
    """Peer rolls its local offer back when a remote offer arrives: have-local-offer -> stable -> have-remote-offer."""

    async def main() -> None:
        async with foundation_pair() as (trace, polite, other):
            polite.addTransceiver("audio")
            await polite.setLocalDescription(await polite.createOffer())
            other.addTransceiver("audio")
            await other.setLocalDescription(await other.createOffer())
            await polite.setRemoteDescription(other.localDescription)
            assert polite.signalingState == "have-remote-offer"
            assert states(trace, "caller", "signalingState") == [
                ("stable", "have-local-offer"),
                ("have-local-offer", "stable"),
                ("stable", "have-remote-offer"),
            ]
            rollback = rows(trace, "caller", "call", "rollback")
            assert len(rollback) == 1 and rollback[0][4] == "ok" and rollback[0][7].startswith("implicit")
            # the rolled-back peer can answer, and its transceiver survived
            await polite.setLocalDescription(await polite.createAnswer())
            await other.setRemoteDescription(polite.localDescription)
            assert polite.signalingState == other.signalingState == "stable"
            assert len(polite.getTransceivers()) == 1

    foundation_arun(main())


def test_explicit_rollback(foundation_arun, foundation_pair) -> None:
    """{'type': 'rollback'} in have-local-offer returns to stable; in stable it is an InvalidStateError."""

    async def main() -> None:
        async with foundation_pair() as (trace, pc, _):
            with pytest.raises(InvalidStateError, match="wrong state: stable"):
                await pc.setLocalDescription({"type": "rollback"})
            assert_error_recorded(trace, "caller", "setLocalDescription", "InvalidStateError", "wrong state: stable")
            pc.addTransceiver("audio")
            await pc.setLocalDescription(await pc.createOffer())
            await pc.setLocalDescription({"type": "rollback"})
            assert pc.signalingState == "stable"
            assert states(trace, "caller", "signalingState") == [
                ("stable", "have-local-offer"),
                ("have-local-offer", "stable"),
            ]
            assert rows(trace, "caller", "call", "rollback")[0][7].startswith("explicit")

    foundation_arun(main())


def test_rollback_can_be_switched_off(foundation_arun, foundation_pair) -> None:
    """With rollback=False a remote offer in have-local-offer fails as in bare aiortc."""

    async def main() -> None:
        async with foundation_pair(rollback=False) as (trace, a, b):
            a.addTransceiver("audio")
            await a.setLocalDescription(await a.createOffer())
            offer_b = await offer_of(b)
            with pytest.raises(InvalidStateError, match="have-local-offer"):
                await a.setRemoteDescription(offer_b)
            assert_error_recorded(trace, "caller", "setRemoteDescription", "InvalidStateError", "have-local-offer")

    foundation_arun(main())


# --- handlers ----------------------------------------------------------------------------------------------------


def test_raising_handlers_do_not_break_the_peer(foundation_arun, foundation_pair, foundation_raw_pc, foundation_poll) -> None:
    """A raising sync handler breaks aiortc's call; in Peer it becomes an error row 'on<event>' and the call succeeds."""

    async def main() -> None:
        async with foundation_raw_pc() as raw:
            def boom() -> None:
                raise RuntimeError("handler bug")

            raw.on("signalingstatechange", boom)
            raw.addTransceiver("audio")
            with pytest.raises(RuntimeError, match="handler bug"):
                await raw.setLocalDescription(await raw.createOffer())

        async with foundation_pair() as (trace, pc, _):
            async def async_boom(candidate) -> None:
                raise ValueError("async handler bug")

            pc.on("signalingstatechange", boom)
            pc.on("icecandidate", async_boom)
            seen: list[Any] = []
            pc.on("icecandidate", seen.append)  # later handlers still run
            pc.addTransceiver("audio")
            await pc.setLocalDescription(await pc.createOffer())
            assert pc.signalingState == "have-local-offer"
            await foundation_poll(lambda: seen and seen[-1] is None, what="end-of-candidates")
            await foundation_poll(lambda: len(rows(trace, "caller", "error", "onicecandidate")) == len(seen),
                                  what="async handler errors")
            sig = rows(trace, "caller", "error", "onsignalingstatechange")
            # each detail ends with the handler's line (app code, see rtclab.tracebacks)
            here = __file__
            line = boom.__code__.co_firstlineno + 1
            assert [(r[4], r[7]) for r in sig] == [("RuntimeError", f"handler bug (at {here}:{line}, in boom)")]
            line = async_boom.__code__.co_firstlineno + 1
            assert {(r[4], r[7]) for r in rows(trace, "caller", "error", "onicecandidate")} == {
                ("ValueError", f"async handler bug (at {here}:{line}, in async_boom)")
            }

    foundation_arun(main())


def test_peer_is_exported_and_records_construction(foundation_arun) -> None:
    """rtclab.Peer records its construction as the first call row of its actor."""

    async def main() -> None:
        tr = rtclab.Trace()
        pc = rtclab.Peer("callee", tr)
        try:
            assert tr.rows[0][1:5] == ("callee", "call", "RTCPeerConnection", "ok")
            assert pc.signalingState == "stable" and pc.connectionState == "new"
        finally:
            await pc.close()

    foundation_arun(main())


# --------------------------------------------------------------------------------------
# iceTransportPolicy and setConfiguration
# --------------------------------------------------------------------------------------


def test_ice_transport_policy_reaches_aiortc_and_bad_values_are_type_errors() -> None:
    """Peer(ice_transport_policy=...) configures aiortc; a bad value raises the browser's TypeError."""

    async def main() -> tuple[str, str, str]:
        tr = Trace()
        pc = Peer("callee", tr, ice_transport_policy="relay")
        aiortc_policy = pc._pc._RTCPeerConnection__configuration.iceTransportPolicy.value
        pc.setConfiguration({"iceTransportPolicy": "all"})
        after = pc.ice_transport_policy
        with pytest.raises(TypeError, match="RTCIceTransportPolicy"):
            pc.setConfiguration({"iceTransportPolicy": "none"})
        with pytest.raises(TypeError, match="iceTransportPolicy"):
            pc.setConfiguration({"iceServers": []})
        await pc.close()
        with pytest.raises(InvalidStateError):
            pc.setConfiguration({"iceTransportPolicy": "relay"})
        detail = tr.frame().query("name == 'setConfiguration' and value == 'ok'")["detail"].tolist()
        return aiortc_policy, after, ",".join(detail)

    assert asyncio.run(main()) == ("relay", "all", "iceTransportPolicy=all")
    with pytest.raises(TypeError, match="not a valid enum value"):
        Peer("caller", Trace(), ice_transport_policy="private")


def test_app_takes_the_browser_configuration_dict() -> None:
    """app.RTCPeerConnection({"iceTransportPolicy": "relay"}); an unknown key is a recorded TypeError."""

    async def callee(app: Any) -> None:
        app.RTCPeerConnection({"iceTransportPolicy": "relay"})
        app.RTCPeerConnection({"iceTransportPolicy": "bogus"})

    r = rtclab.run(caller=rtclab.flows.basic_caller, callee=callee, deadline_s=2)
    made = r.events.query("actor == 'callee' and name == 'RTCPeerConnection'")
    assert made["value"].tolist() == ["ok", "error"]
    assert made["detail"].iloc[0].endswith("iceTransportPolicy=relay")
    assert "TypeError" in made["detail"].iloc[1]
    assert "RTCIceTransportPolicy" in r.events.query("kind == 'error' and actor == 'callee'")["detail"].iloc[0]
