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
What rtclab emulates
    Rollback, explicit and implicit, by closing the aiortc peer connection,
    creating a new one and re-adding the senders' tracks (measured on aiortc
    1.16: connected 38 ms after). Limits: the new connection gathers new
    candidates (new ports, new ICE credentials, as Chromium does for an
    initial offer) and data channels created before the rollback are closed,
    not carried over. Switch: ``Peer(rollback=False)``.
"""

from __future__ import annotations

from aiortc import RTCSessionDescription

from .errors import InvalidStateError


class RollbackMixin:
    """Mixed into :class:`~rtclab.peer.Peer`: explicit and implicit rollback."""

    async def _do_rollback(self, *, explicit: bool) -> None:
        state = self._states["signalingState"]
        if state == "stable":
            if explicit and self.browser_errors:
                raise InvalidStateError("Failed to execute 'setLocalDescription': Called in wrong state: stable")
            return
        if not self.emulate_rollback:
            await self._pc.setLocalDescription(RTCSessionDescription(sdp="", type="rollback"))
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
