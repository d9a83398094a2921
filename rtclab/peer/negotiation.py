"""``negotiationneeded`` and renegotiation (``negotiationneeded``): transceivers, directions, ``removeTrack``.

What the browser does (W3C webrtc-pc; measured in Chromium 156 where it says so)
    "Check if negotiation is needed": negotiation is needed when
    ``restartIce()`` was called, a data channel exists and no data m-section
    was negotiated, a transceiver is stopping, a transceiver has no m-section
    yet, or a transceiver's ``direction`` no longer matches what the last
    negotiation gave it (in the current local offer, or the current remote
    offer reversed; in an answer, the direction intersected with the offered
    one). "Update the negotiation-needed flag" then fires the event, queued as
    a task, only in ``stable`` with an empty operations chain, once until a
    negotiation ends, and checks again when the state returns to ``stable``.
    Offers may then come from either side; a new offer reuses ICE and DTLS
    (no new candidates with BUNDLE). ``addTrack`` reuses a transceiver of the
    track's kind whose sender has no track and has never sent (the
    ``recvonly`` transceiver of a callee that answered without media):
    ``direction`` becomes ``sendrecv`` at once, ``currentDirection`` stays
    ``recvonly`` until negotiated (Chromium 156, FACTS.md). ``removeTrack``
    clears the sender's track and turns ``sendrecv`` into ``recvonly``
    (``sendonly`` into ``inactive``). Setting ``direction`` and
    ``transceiver.stop()`` fire ``negotiationneeded`` too.
What aiortc 1.16 does
    It never fires ``negotiationneeded``. Renegotiation itself works both
    ways and reuses ICE/DTLS (measured here: the callee's ``addTrack`` after
    its answer, callee offers, caller answers: same ufrag, no new candidate,
    media both ways on sim and real). Its ``addTrack`` reuses any transceiver
    of that kind whose sender has no track, even one that sent before. It has
    no ``removeTrack``; ``transceiver.direction`` is a plain attribute. A
    transceiver added after BUNDLE was negotiated gets its own, new ICE
    transport (``bundlePolicy`` ``balanced``), which gathers new candidates
    and turns ``connectionState`` back to ``connecting`` until the next
    answer bundles it; a browser puts the new m-section in the BUNDLE group.
    ``transceiver.stop()`` stops sender and receiver at once but the next
    offer does not reject the m-section (no port 0); tried: an offer whose
    m-section has port 0 is answered with a live port and the answerer's
    transceiver is not stopped, so aiortc cannot reject an m-section.
What rtclab emulates
    The W3C rules above, read from aiortc's current descriptions
    (``negotiationneeded`` on any of them, coalesced, only in ``stable`` with
    an empty chain); ``addTrack`` with the spec's choice of transceiver;
    :class:`Transceiver`, a thin wrapper over aiortc's with the browser's
    ``direction`` (its setter fires ``negotiationneeded``),
    ``currentDirection`` (``None`` until negotiated, ``"stopped"`` after
    ``stop()``) and ``stop()``; ``Peer.removeTrack``; a transceiver or data
    channel created once BUNDLE is negotiated joins the bundled transport at
    once (no new candidates, ``connectionState`` stays ``connected``): once
    BUNDLE is negotiated, rtclab switches aiortc's ``bundlePolicy`` to
    ``max-bundle``, so transceivers created later, by this app or by a remote
    offer, share the bundled transport.
    Limits: a stopped transceiver's m-section is offered ``inactive``, not
    rejected with port 0 (aiortc cannot reject one); the msid part of the
    spec's check is not emulated (aiortc always writes ``a=msid``).
    Switch: ``Peer(negotiationneeded=False)``.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from aiortc import MediaStreamTrack, RTCBundlePolicy
from aiortc import sdp as _sdp

from .errors import InvalidAccessError, InvalidStateError, error_name

_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_SENDS = ("sendrecv", "sendonly")
_PC = "_RTCPeerConnection__"


def _reverse(direction: str) -> str:
    return {"sendonly": "recvonly", "recvonly": "sendonly"}.get(direction, direction)


def _intersect(a: str, b: str) -> str:
    send = a in _SENDS and b in _SENDS
    recv = a in ("sendrecv", "recvonly") and b in ("sendrecv", "recvonly")
    return {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly"}.get((send, recv), "inactive")


def _section(desc: Any, mid: str | None) -> Any:
    for media in getattr(desc, "media", None) or []:
        if media.rtp.muxId == mid:
            return media
    return None


class Transceiver:
    """A browser-like view of one aiortc transceiver (``pc.getTransceivers()[i]``).

    ``direction`` is the wanted direction (setting it records a ``call``
    ``direction`` row and fires ``negotiationneeded``), ``currentDirection``
    the negotiated one (``None`` before the first negotiation of its
    m-section). ``sender``, ``receiver``, ``mid`` and ``kind`` are aiortc's.

    Examples
    --------
    >>> import asyncio, rtclab
    >>> async def main():
    ...     pc = rtclab.Peer("callee", rtclab.Trace())
    ...     t = pc.addTransceiver("video", direction="recvonly")
    ...     t.direction = "sendrecv"
    ...     out = (t.direction, t.currentDirection)
    ...     await pc.close()
    ...     return out
    >>> asyncio.run(main())
    ('sendrecv', None)
    """

    def __init__(self, peer: Any, transceiver: Any) -> None:
        self._peer = peer
        self._t = transceiver
        self._stopping = False  # stop() was called
        self._stopped = False  # and a negotiation has completed since

    def __repr__(self) -> str:
        return f"Transceiver(kind={self.kind!r}, mid={self.mid!r}, direction={self.direction!r}, currentDirection={self.currentDirection!r})"

    @property
    def kind(self) -> str:
        return self._t.kind

    @property
    def mid(self) -> str | None:
        return self._t.mid

    @property
    def sender(self) -> Any:
        return self._t.sender

    @property
    def receiver(self) -> Any:
        return self._t.receiver

    @property
    def stopped(self) -> bool:
        return self._stopping or self._t.stopped

    @property
    def direction(self) -> str:
        """The direction the next negotiation asks for (``"stopped"`` after :meth:`stop`)."""
        return "stopped" if self.stopped else self._t.direction

    @direction.setter
    def direction(self, value: str) -> None:
        if value not in _DIRECTIONS:
            exc: Exception = TypeError(f"The provided value {value!r} is not a valid enum value of type RTCRtpTransceiverDirection.")
        elif self.stopped:
            exc = InvalidStateError("Failed to set the 'direction' property on 'RTCRtpTransceiver': The transceiver is stopped.")
        elif self._peer._closed:
            exc = InvalidStateError("Failed to set the 'direction' property on 'RTCRtpTransceiver': The peer connection is closed.")
        else:
            changed = value != self._t.direction
            self._t.direction = value
            self._peer._rec("call", "direction", "ok", detail=f"{self.kind} mid={self.mid} {value}")
            if changed:
                self._peer._update_negotiation_needed()
            return
        self._peer._rec("call", "direction", "error", detail=f"{error_name(exc)}: {exc}")
        self._peer._error("direction", exc)
        raise exc

    @property
    def currentDirection(self) -> str | None:  # noqa: N802 - browser name
        """The negotiated direction, ``None`` until the m-section was negotiated."""
        if self._stopped:
            return "stopped"
        if self._t.mid is None or self._t.mid not in self._peer._negotiated_mids():
            return None
        return self._t.currentDirection

    def stop(self) -> None:
        """Stop sending and receiving at once and ask for a negotiation (W3C ``stop()``)."""
        if self.stopped:
            return
        self._stopping = True
        self._t.direction = "inactive"  # offered inactive next time (aiortc cannot reject an m-section)
        self._peer._rec("call", "stop", "ok", detail=f"{self.kind} mid={self.mid}")
        self._peer._spawn(self._t.stop())
        self._peer._update_negotiation_needed()


class NegotiationMixin:
    """Mixed into :class:`~rtclab.peer.Peer`: ``negotiationneeded``, transceivers, ``removeTrack``."""

    _wrappers: dict[Any, Transceiver] | None = None  # aiortc transceiver -> its view
    _ever_sent: weakref.WeakSet[Any] | None = None
    #: the last negotiated (local, remote) descriptions, aiortc's parsed objects
    #: (aiortc keeps an offer "pending" for ever and overwrites it with the next one)
    _current: tuple[Any, Any] = (None, None)

    def _note_negotiated(self, applied: dict[str, str] | None = None) -> None:
        """An answer was applied (the state is ``stable``): remember what was negotiated.

        ``applied`` is the local answer just applied: aiortc records it only
        once it has gathered, the browser at once.
        """
        pc = self._pc
        if applied is not None:
            local = _sdp.SessionDescription.parse(applied["sdp"])
            local.type = applied["type"]
        else:
            local = getattr(pc, _PC + "localDescription")()
        remote = getattr(pc, _PC + "remoteDescription")()
        if local is not None and remote is not None:
            self._current = (local, remote)
            self._note_sent()
            if self.emulate_negotiationneeded and self._bundle_transport() is not None:
                # BUNDLE is negotiated: from now on aiortc puts new transceivers (ours, or those a
                # remote offer creates) on the bundled transport instead of a new one that gathers
                # and turns the connection state back to "new"/"connecting" for a moment
                getattr(pc, _PC + "configuration").bundlePolicy = RTCBundlePolicy.MAX_BUNDLE
            for w in (self._wrappers or {}).values():
                if w._stopping and w._t.mid is not None:
                    section = _section(local, w._t.mid)
                    w._stopped = section is None or section.direction == "inactive"

    # -- transceivers -----------------------------------------------------------------------------

    def _wrap(self, transceiver: Any) -> Transceiver:
        if self._wrappers is None:
            self._wrappers = {}
        w = self._wrappers.get(transceiver)
        if w is None:
            w = self._wrappers[transceiver] = Transceiver(self, transceiver)
        return w

    def getTransceivers(self) -> list[Transceiver]:  # noqa: N802 - browser name
        """The transceivers, as :class:`Transceiver` views (``direction``, ``currentDirection``)."""
        return [self._wrap(t) for t in self._pc.getTransceivers()]

    def getSenders(self) -> list[Any]:  # noqa: N802 - browser name
        """The aiortc senders."""
        return self._pc.getSenders()

    def _negotiated_mids(self) -> set[str]:
        mids: set[str] = set()
        for desc in self._current:
            for media in getattr(desc, "media", None) or []:
                mids.add(media.rtp.muxId)
        return mids

    def _note_sent(self) -> None:
        """Remember transceivers that were negotiated to send (addTrack will not reuse them)."""
        if self._ever_sent is None:
            self._ever_sent = weakref.WeakSet()
        negotiated = self._negotiated_mids()
        for t in self._pc.getTransceivers():
            if t.mid in negotiated and t.currentDirection in _SENDS:
                self._ever_sent.add(t)

    def _reusable(self, kind: str) -> Any:
        """W3C addTrack: a transceiver of this kind whose sender has no track and never sent."""
        self._note_sent()
        for t in self._pc.getTransceivers():
            w = self._wrap(t)
            if t.kind == kind and t.sender.track is None and not w.stopped and t not in (self._ever_sent or ()):
                return t
        return None

    def addTrack(self, track: MediaStreamTrack, *streams: Any) -> Any:  # noqa: N802 - browser name
        """Add a local track; reuses a free transceiver as a browser does; fires ``negotiationneeded``."""
        try:
            if self._closed:
                raise InvalidStateError("Failed to execute 'addTrack': The RTCPeerConnection's signalingState is 'closed'.")
            if any(s.track is track for s in self._pc.getSenders()):
                raise InvalidAccessError("Failed to execute 'addTrack': A sender already exists for the track.")
            reuse = self._reusable(track.kind) if self.emulate_negotiationneeded else None
            if reuse is not None:
                reuse.sender.replaceTrack(track)
                reuse.direction = {"recvonly": "sendrecv", "inactive": "sendonly"}.get(reuse.direction, reuse.direction)
                sender = reuse.sender
            elif self.emulate_negotiationneeded:
                t = self._pc.addTransceiver(track, direction="sendrecv")
                self._join_bundle(t)
                sender = t.sender
            else:
                sender = self._pc.addTrack(track)
        except Exception as exc:
            exc = self._translate("addTrack", exc)
            self._rec("call", "addTrack", "error", detail=f"{error_name(exc)}: {exc}")
            self._error("addTrack", exc)
            raise exc from None
        negotiated = reuse is not None and self._wrap(reuse).currentDirection is not None
        how = f" (reuses the {self._wrap(reuse).currentDirection} transceiver mid={reuse.mid})" if negotiated else ""
        self._rec("call", "addTrack", "ok", detail=track.kind + how)
        self._update_negotiation_needed()
        return sender

    def addTransceiver(self, track_or_kind: MediaStreamTrack | str, *, direction: str = "sendrecv") -> Transceiver:  # noqa: N802
        """Add a transceiver (``"audio"``/``"video"`` or a track); fires ``negotiationneeded``."""
        try:
            if self._closed:
                raise InvalidStateError("Failed to execute 'addTransceiver': The RTCPeerConnection's signalingState is 'closed'.")
            if direction not in _DIRECTIONS:
                raise TypeError(f"The provided value {direction!r} is not a valid enum value of type RTCRtpTransceiverDirection.")
            transceiver = self._pc.addTransceiver(track_or_kind, direction=direction)
            if self.emulate_negotiationneeded:
                self._join_bundle(transceiver)
        except Exception as exc:
            exc = self._translate("addTransceiver", exc)
            self._rec("call", "addTransceiver", "error", detail=f"{error_name(exc)}: {exc}")
            self._error("addTransceiver", exc)
            raise exc from None
        kind = track_or_kind if isinstance(track_or_kind, str) else track_or_kind.kind
        self._rec("call", "addTransceiver", "ok", detail=f"{kind} {direction}")
        self._update_negotiation_needed()
        return self._wrap(transceiver)

    def removeTrack(self, sender: Any) -> None:  # noqa: N802 - browser name
        """Stop sending ``sender``'s track; ``sendrecv`` -> ``recvonly``; fires ``negotiationneeded``."""
        try:
            if self._closed:
                raise InvalidStateError("Failed to execute 'removeTrack': The RTCPeerConnection's signalingState is 'closed'.")
            owner = next((t for t in self._pc.getTransceivers() if t.sender is sender), None)
            if owner is None:
                raise InvalidAccessError("Failed to execute 'removeTrack': The sender was not created by this peer connection.")
        except Exception as exc:
            self._rec("call", "removeTrack", "error", detail=f"{error_name(exc)}: {exc}")
            self._error("removeTrack", exc)
            raise
        if sender.track is None or self._wrap(owner).stopped:
            self._rec("call", "removeTrack", "ok", detail="no track: nothing to do")
            return
        sender.replaceTrack(None)
        owner.direction = {"sendrecv": "recvonly", "sendonly": "inactive"}.get(owner.direction, owner.direction)
        self._rec("call", "removeTrack", "ok", detail=f"{owner.kind} mid={owner.mid} -> {owner.direction}")
        self._update_negotiation_needed()

    def _join_bundle(self, transceiver: Any) -> None:
        """Put a transceiver created after BUNDLE was negotiated on the bundled transport (as browsers do)."""
        primary = self._bundle_transport()
        if primary is None or transceiver.receiver.transport is primary:
            return
        stale = transceiver.receiver.transport
        transceiver.receiver.setTransport(primary)
        transceiver.sender.setTransport(primary)
        transceiver._bundled = True
        self._drop_transport(stale)

    def _join_bundle_sctp(self) -> None:
        sctp = self._pc.sctp
        primary = self._bundle_transport()
        if sctp is None or primary is None or sctp.transport is primary or sctp.mid is not None:
            return
        stale = sctp.transport
        sctp.setTransport(primary)
        sctp._bundled = True
        self._drop_transport(stale)

    def _drop_transport(self, dtls: Any) -> None:
        """Forget a DTLS/ICE transport that never started (nothing gathered, no task, no socket)."""
        getattr(self._pc, _PC + "dtlsTransports").discard(dtls)
        getattr(self._pc, _PC + "iceTransports").discard(dtls.transport)
        for name in ("updateIceGatheringState", "updateIceConnectionState", "updateConnectionState"):
            getattr(self._pc, _PC + name)()

    def _bundle_transport(self) -> Any:
        """The DTLS transport of the negotiated BUNDLE group, or ``None``."""
        desc = self._current[1]
        bundle = next((g for g in getattr(desc, "group", []) if g.semantic == "BUNDLE" and g.items), None)
        if bundle is None:
            return None
        first = bundle.items[0]
        for t in self._pc.getTransceivers():
            if t.mid == first:
                return t.receiver.transport
        sctp = self._pc.sctp
        if sctp is not None and sctp.mid == first:
            return sctp.transport
        return None

    # -- negotiationneeded --------------------------------------------------------------------------

    def _negotiation_needed(self) -> bool:
        """W3C "check if negotiation is needed", on aiortc's current descriptions."""
        pc = self._pc
        if self._restart_wanted:
            return True
        local, remote = self._current
        if self._channels and pc.sctp is not None and (pc.sctp.mid is None or _section(local, pc.sctp.mid) is None):
            return True
        for t in pc.getTransceivers():
            w = self._wrap(t)
            if w._stopping:
                if not w._stopped:
                    return True  # stopping, not stopped yet
                continue
            if t.stopped:
                continue
            section = _section(local, t.mid) if t.mid is not None else None
            if section is None:
                return True  # not negotiated yet
            if local.type == "offer":
                theirs = _section(remote, t.mid)
                mine = section.direction
                if t.direction != mine and (theirs is None or t.direction != _reverse(theirs.direction)):
                    return True
            else:  # our current local description is an answer
                offered = _section(remote, t.mid)
                wanted = _intersect(t.direction, _reverse(offered.direction)) if offered is not None else t.direction
                if section.direction != wanted:
                    return True
        return False

    def _update_negotiation_needed(self) -> None:
        if not self.emulate_negotiationneeded or self._closed or self._nn_scheduled:
            return
        self._nn_scheduled = True
        asyncio.get_running_loop().call_soon(self._fire_negotiation_needed)

    def _check_negotiation_needed(self) -> None:
        if self.emulate_negotiationneeded and not self._closed and self._states["signalingState"] == "stable":
            self._update_negotiation_needed()

    def _fire_negotiation_needed(self) -> None:
        self._nn_scheduled = False
        if self._closed or self._pending_ops or self._states["signalingState"] != "stable":
            return
        if self._nn_fired or not self._negotiation_needed():
            return
        self._nn_fired = True
        self._rec("call", "negotiationneeded", "event")
        self._emit("negotiationneeded")
