"""The four state machines as the page sees them: signaling, ICE gathering, ICE connection, connection.

What the browser does (Chromium 156, measured; FACTS.md)
    ``iceConnectionState`` and ``connectionState`` stay ``new`` while no
    remote candidate exists; a working call goes ``checking`` ->
    ``connected`` and ``connecting`` -> ``connected``; one unreachable remote
    candidate gives ``iceConnectionState`` ``disconnected`` and
    ``connectionState`` ``failed`` ~15 s after checking started; a path cut
    after connecting gives ``disconnected`` ~6.6 s after the cut and
    ``connectionState`` ``failed`` ~16.6 s after it. An offer without
    m-lines leaves ``iceGatheringState`` ``new``. ``close()`` fires no
    state-change event.
What aiortc 1.16 does
    ``iceConnectionState`` goes ``checking`` -> ``completed`` (never
    ``connected``); ``connectionState`` has no ``disconnected``; with no
    candidates it stays ``checking`` forever; after consent expiry a pc ends
    ``closed``, not ``failed``.
What rtclab does
    Each change aiortc reports is recorded as a ``state`` row (``prev`` ->
    ``value``) and fired as the ``...statechange`` event. With trickle on,
    ``iceGatheringState`` reaches ``complete`` only when end-of-candidates
    has been emitted (see :mod:`rtclab.peer.trickle`). The selected pair is
    recorded when ICE completes.
"""

from __future__ import annotations

from aiortc import RTCPeerConnection


STATE_MACHINES = ("signalingState", "iceGatheringState", "iceConnectionState", "connectionState")


class StatesMixin:
    """Mixed into :class:`~rtclab.peer.Peer`: the four state machines as the page sees them."""

    def _set_state(self, name: str, value: str) -> None:
        prev = self._states.get(name, "new")
        if prev == value:
            return
        self._states[name] = value
        self._rec("state", name, value, prev=prev)
        self._emit(name.lower().replace("state", "statechange"))

    def _on_aiortc_state(self, pc: RTCPeerConnection, name: str) -> None:
        if pc is not self._pc:
            return  # a connection replaced by rollback
        try:
            value = getattr(pc, name)
            if name == "iceGatheringState" and self.trickle and value == "complete" and not self._end_emitted:
                self._gathering_complete_held = True
                return
            self._set_state(name, value)
            if name == "iceConnectionState" and value == "completed":
                self._record_selected_pair()
        except Exception as exc:  # never break the aiortc call that emitted the event
            self._error(f"on{name}", exc)

    def _record_selected_pair(self) -> None:
        # the DTLS transports of the first transceiver and of SCTP share the (bundled) ICE transport
        dtls = [t.receiver.transport for t in self._pc.getTransceivers()[:1]]
        if self._pc.sctp is not None:
            dtls.append(self._pc.sctp.transport)
        for transport in dtls:
            conn = getattr(getattr(transport, "transport", None), "_connection", None)
            pair = (getattr(conn, "_nominated", {}) or {}).get(1) if conn else None
            if pair is not None:
                lt, rt = pair.local_candidate.type, pair.remote_candidate.type
                self._rec("ice", "selected-pair", f"{lt}/{rt}", detail=repr(pair))
                return

    @property
    def signalingState(self) -> str:
        """The (emulated) signaling state."""
        return "closed" if self._closed else self._states["signalingState"]

    @property
    def iceGatheringState(self) -> str:
        """The (emulated) ICE gathering state."""
        return self._states["iceGatheringState"]

    @property
    def iceConnectionState(self) -> str:
        """aiortc's ICE connection state (``checking`` -> ``completed``)."""
        return self._states["iceConnectionState"]

    @property
    def connectionState(self) -> str:
        """aiortc's connection state."""
        return self._states["connectionState"]
