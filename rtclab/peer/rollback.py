"""Rollback (``rollback``): explicit ``{"type": "rollback"}`` and implicit (glare).

What the browser does
    ``setLocalDescription({type: "rollback"})`` returns to ``stable``; a
    remote offer applied in ``have-local-offer`` rolls the local offer back
    first (implicit rollback, what perfect negotiation relies on). Chromium
    156, rolling back an *initial* offer: new ICE ufrag, new host port,
    gathering restarts, new candidates (FACTS.md).
What aiortc 1.16 does
    It accepts ``{"type": "rollback"}`` but does nothing useful (the state
    stays ``have-local-offer``, the next answer fails) and raises
    ``InvalidStateError`` on a remote offer in ``have-local-offer``.
    A rollback during an established call would have to undo a new offer
    without touching ICE, DTLS or media; aiortc has no way to do so.
What rtclab emulates
    Rollback of an *initial* offer, explicit and implicit, by closing the
    aiortc peer connection, creating a new one and re-adding the senders'
    tracks (measured on aiortc 1.16: connected 38 ms after). Limits: the new
    connection gathers new candidates (new ports, new ICE credentials, as
    Chromium does for an initial offer) and data channels created before the
    rollback are closed, not carried over.

    Rollback of a *re*-negotiation (W3C: only the negotiation is undone, the
    connection goes on; so in Chromium 156, conformance
    ``RTCPeerConnection-setLocalDescription-rollback/during-established-call``), an offer made or
    received once a negotiation has completed (glare during a call, perfect negotiation's
    polite peer), keeps the aiortc connection: before such an offer is
    applied, the negotiation state aiortc keeps (signaling state, pending
    descriptions, seen mids, each transceiver's mid, m-line index, offered
    direction and codecs, the data channel's mid, the remote ICE/DTLS
    parameters) is saved, and the rollback puts it back. ICE, DTLS, the
    senders and receivers are never touched: ``connectionState`` stays
    ``connected`` and media goes on. A transceiver that a rolled-back remote
    offer created is removed again (its ``track`` event cannot be taken
    back); an ICE restart that the offer started is dropped
    (:mod:`rtclab.peer.restart`). The saved fields are aiortc 1.16 private
    attributes; :data:`SAVED` lists them and ``tests/test_peer.py`` fails if
    they change. Switch: ``Peer(rollback=False)``.

    Glare during a call, measured in Chromium 156 (conformance scenarios
    ``RTCPeerConnection-perfect-negotiation/glare-during-call-*``): the call
    stays connected, the polite side's rollback and answer work as above.
    Two details rtclab follows: the mids a rolled-back *local* re-offer used
    are never given out again (the next offer numbers its new m-lines after
    them), and a transceiver the app added before that offer loses the
    m-line index the offer gave it. A remote offer whose m-lines are not in
    the order already negotiated is refused with ``InvalidAccessError``
    (:mod:`rtclab.peer.descriptions`): this is how naive code that answered
    both crossing offers ends up with two sides that disagree.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from aiortc import RTCSessionDescription

from .errors import InvalidStateError


_PC = "_RTCPeerConnection__"
_T = "_RTCRtpTransceiver__"
#: aiortc 1.16 private attributes a re-negotiation rollback saves and restores
SAVED = {
    "RTCPeerConnection": tuple(_PC + n for n in (
        "signalingState", "pendingLocalDescription", "pendingRemoteDescription", "currentLocalDescription",
        "currentRemoteDescription", "seenMids", "transceivers", "sctp_mline_index", "remoteDtls", "remoteIce")),
    "RTCRtpTransceiver": (_T + "mid", _T + "mline_index", "_offerDirection", "_codecs", "_headerExtensions"),
}


class _Saved:
    """What aiortc 1.16 knows about a negotiation, before a re-offer is applied."""

    def __init__(self, pc: Any) -> None:
        self.pc = pc
        self.fields = {name: getattr(pc, name) for name in SAVED["RTCPeerConnection"]}
        self.fields[_PC + "seenMids"] = set(self.fields[_PC + "seenMids"])
        self.fields[_PC + "transceivers"] = list(self.fields[_PC + "transceivers"])
        self.fields[_PC + "remoteDtls"] = dict(self.fields[_PC + "remoteDtls"])
        self.fields[_PC + "remoteIce"] = dict(self.fields[_PC + "remoteIce"])
        self.sctp = pc.sctp
        self.sctp_mid = pc.sctp.mid if pc.sctp is not None else None
        self.transceivers = {
            id(t): {name: copy.copy(getattr(t, name)) for name in SAVED["RTCRtpTransceiver"]}
            for t in pc.getTransceivers()
        }
        for t in pc.getTransceivers():
            if t.mid is None:  # not negotiated yet: the m-line index createOffer gave it is the offer's, not its own
                self.transceivers[id(t)][_T + "mline_index"] = None

    def restore(self) -> list[Any]:
        """Put the saved state back; returns the transceivers a remote offer had created."""
        pc = self.pc
        added = [t for t in pc.getTransceivers() if id(t) not in self.transceivers]
        for name, value in self.fields.items():
            if isinstance(value, (dict, set, list)):
                target = getattr(pc, name)
                target.clear()
                (target.update if not isinstance(value, list) else target.extend)(value)
            else:
                setattr(pc, name, value)
        if pc.sctp is not None and pc.sctp is self.sctp:
            pc.sctp.mid = self.sctp_mid
        for t in pc.getTransceivers():
            saved = self.transceivers.get(id(t))
            if saved is not None:
                for name, value in saved.items():
                    setattr(t, name, value)
        by_remote = [t for t in added if t.mid is not None and self.fields[_PC + "signalingState"] == "stable"
                     and t.mid not in self.fields[_PC + "seenMids"] and t._offerDirection is not None]
        for t in added:
            if t in by_remote:
                continue  # created by the rolled-back remote offer: dropped
            getattr(pc, _PC + "transceivers").append(t)  # added by the app meanwhile: kept, not negotiated
            setattr(t, _T + "mid", None)
            setattr(t, _T + "mline_index", None)
        return by_remote


class RollbackMixin:
    """Mixed into :class:`~rtclab.peer.Peer`: explicit and implicit rollback."""

    _saved: _Saved | None = None

    def _save_for_rollback(self, kind: str) -> None:
        """Called before an offer is applied in ``stable``: keep what a rollback must restore."""
        if kind == "offer" and self.emulate_rollback and self._states["signalingState"] == "stable":
            self._saved = _Saved(self._pc) if self._current[0] is not None else None

    async def _do_rollback(self, *, explicit: bool) -> None:
        state = self._states["signalingState"]
        if state == "stable":
            if explicit and self.browser_errors:
                raise InvalidStateError("Failed to execute 'setLocalDescription': Called in wrong state: stable")
            return
        if not self.emulate_rollback:
            await self._pc.setLocalDescription(RTCSessionDescription(sdp="", type="rollback"))
            return
        saved, self._saved = self._saved, None
        if saved is not None and saved.pc is self._pc:
            await self._rollback_renegotiation(saved, explicit=explicit, state=state)
            return
        old = self._pc
        if self._gathering is not None and not self._gathering.done():
            self._gathering.cancel()
        self._gathering = None
        self._pending_local = None
        keep = [(t.kind, t.sender.track, t.direction) for t in old.getTransceivers() if t.sender.track is not None or t.direction != "recvonly"]
        keep_channels = [ch.label for ch in self._channels]
        self._pc = self._new_pc()
        await old.close()
        if self._emitter is not None:
            self._emitter.cancel()
        self._emitted.clear()
        self._announced.clear()
        self._end_emitted = False
        self._gathering_complete_held = False
        for kind, track, direction in keep:
            self._pc.addTransceiver(track if track is not None else kind, direction=direction)
        for label in keep_channels:
            self._channels.append(self._pc.createDataChannel(label))
        self._rec("call", "rollback", "ok", detail=("explicit" if explicit else "implicit") + f", {len(keep)} transceiver(s) re-added")
        self._set_state("signalingState", "stable")
        for name in ("iceGatheringState", "iceConnectionState", "connectionState"):
            self._set_state(name, "new")

    async def _rollback_renegotiation(self, saved: _Saved, *, explicit: bool, state: str) -> None:
        """Undo an offer made or received during a call; ICE, DTLS and media are left alone."""
        if self._gathering is not None and not self._gathering.done():
            await asyncio.wait([self._gathering])  # aiortc applies the offer first
        self._gathering = None
        self._pending_local = None
        seen = getattr(self._pc, _PC + "seenMids")
        offered = set(seen) if state == "have-local-offer" else set()
        from_remote = saved.restore()
        seen.update(offered)  # Chromium 156 never reuses a mid its rolled-back offer used (conformance: perfect-negotiation)
        for t in from_remote:  # a transceiver the remote offer created goes away with it
            self._spawn(t.stop())
        self._restart_rollback()
        what = "explicit" if explicit else "implicit"
        self._rec("call", "rollback", "ok", detail=f"{what}, re-negotiation ({state}): the call is kept"
                  + (f", {len(from_remote)} transceiver(s) of the remote offer removed" if from_remote else ""))
        self._set_state("signalingState", "stable")
        self._nn_fired = False  # W3C: back in stable, negotiation-needed is checked again (at the end of this operation)
