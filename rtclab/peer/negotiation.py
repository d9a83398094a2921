"""``negotiationneeded`` (``negotiationneeded``).

What the browser does
    W3C "update the negotiation-needed flag": the event fires, queued as a
    task, when a change needs an offer/answer round (a new transceiver, the
    first data channel, ...) while the signaling state is ``stable`` and the
    operations chain is empty; several changes in one go give one event.
    Chromium 156 fires it on the callee ~5 ms after ``addTrack`` on an
    answered call too (FACTS.md).
What aiortc 1.16 does
    It never fires ``negotiationneeded``.
What rtclab emulates
    Fired by the spec's rules after ``addTrack``, ``addTransceiver`` and the
    first ``createDataChannel``, queued with ``call_soon`` (so several calls
    coalesce), only when the signaling state is ``stable`` and the
    operations chain is empty, and checked again when the state returns to
    ``stable``. Switch: ``Peer(negotiationneeded=False)``.
"""

from __future__ import annotations

import asyncio


class NegotiationMixin:
    """Mixed into :class:`~rtclab.peer.Peer`: the emulated ``negotiationneeded`` event."""

    def _negotiation_needed(self) -> bool:
        if any(t.mid is None and not t.stopped for t in self._pc.getTransceivers()):
            return True
        if self._channels and self._pc.sctp is not None and self._pc.sctp.mid is None:
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
