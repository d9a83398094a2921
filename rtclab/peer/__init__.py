"""A browser-faithful, instrumented wrapper over :class:`aiortc.RTCPeerConnection`.

:class:`Peer` records every API call (``ok`` or ``error`` with the error's type
and message), every change of the four state machines (``prev`` -> ``value``),
every candidate, track, data channel and first decoded frame into a
:class:`rtclab.trace.Trace`. Its methods keep the browser's names and
semantics (``createOffer``, ``setRemoteDescription``...) and take and return
plain dicts shaped like the browser's JSON (``{"type": ..., "sdp": ...}``,
``{"candidate": ..., "sdpMid": ..., "sdpMLineIndex": ...}``) so that app code
reads like the MDN samples.

Browser emulation
-----------------
aiortc is a real WebRTC stack, but it differs from browsers exactly where the
lessons of this course live. Checked against **aiortc 1.16.0 / aioice 0.13.0**
and, where measured, **Chromium 156**; ``tests/test_peer.py`` has one test per
item that fails if aiortc changes the behaviour it covers. Each emulation is on
by default and can be switched off with the keyword in brackets, so the
difference can be shown. One module per behaviour, each docstring saying what
the browser does, what aiortc does and what rtclab emulates:

:mod:`~rtclab.peer.trickle` (``trickle``, ``end_of_candidates``)
    ``icecandidate`` events and a candidate-free ``localDescription``;
    ``addIceCandidate`` and end-of-candidates per m-section and generation.
:mod:`~rtclab.peer.chain` (``chain``)
    the operations chain: API calls run one after another in call order.
:mod:`~rtclab.peer.negotiation` (``negotiationneeded``)
    the ``negotiationneeded`` event by the spec's rules and renegotiation
    during a call: ``addTrack`` reusing a transceiver, :class:`Transceiver`
    (``direction``, ``currentDirection``, ``stop()``), ``removeTrack``.
:mod:`~rtclab.peer.restart`
    ``restartIce()``: new credentials and candidates, the call goes on.
:mod:`~rtclab.peer.errors` (``browser_errors``)
    the browser's error names, strict candidate parsing.
:mod:`~rtclab.peer.rollback` (``rollback``)
    explicit and implicit rollback; during a call, without touching it.
:mod:`~rtclab.peer.states` (``ice_states``, ``gathering_state``, ``silent_close``)
    the four state machines as the page sees them, with Chromium 156's
    timers: ``new`` until a remote candidate exists, ``connected``,
    ``disconnected``/``failed`` after 15 s of failed checks or a cut path.
:mod:`~rtclab.peer.agent` (``triggered_checks``, and the timers above)
    what rtclab changes in aioice, per connection: consent with Chromium's
    timers, a trickled candidate checked at once.
:mod:`~rtclab.peer.tracks` (``track_mute``)
    received tracks muted until their first packet, ``replaceTrack`` kind check.
:mod:`~rtclab.peer.descriptions`, :mod:`~rtclab.peer.sdp`
    offers and answers, SDP helpers.
:mod:`~rtclab.peer.icelog`
    aioice's check log as ``ice`` ``pair`` rows.
:mod:`~rtclab.peer.core`
    :class:`Peer` itself: construction, events, recording, ``close()``.

``rtclab.run(..., emulate=False)`` turns every switch off: aiortc's own
behaviour is then recorded as it is (``iceConnectionState`` ``checking`` ->
``completed``, no ``disconnected``, ``closed`` on consent loss...).
"""

from __future__ import annotations

from .core import Peer
from .errors import DOMException, InvalidAccessError, InvalidStateError, OperationError, error_name, parse_candidate
from .negotiation import Transceiver
from .sdp import strip_candidates
from .states import STATE_MACHINES

__all__ = [
    "DOMException",
    "InvalidAccessError",
    "InvalidStateError",
    "OperationError",
    "Peer",
    "Transceiver",
    "parse_candidate",
    "strip_candidates",
]
