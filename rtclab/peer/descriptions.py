"""Offers, answers and the two descriptions: ``createOffer`` ... ``setRemoteDescription``.

What the browser does
    ``createOffer``/``createAnswer`` return descriptions without candidates;
    ``setLocalDescription()`` with no argument creates the offer or answer
    implicitly; ``createAnswer`` outside ``have-remote-offer`` and an answer
    outside ``have-local-offer`` are ``InvalidStateError``; an answer leaves
    a transceiver the offer did not mention for the next negotiation.
What aiortc 1.16 does
    Its ``setLocalDescription`` gathers before it returns; it fails an answer
    (``None is not in list``) when a transceiver was added that the offer
    did not mention; it raises on a remote offer in ``have-local-offer``.
What rtclab emulates
    The browser's checks and error names (``browser_errors``); the implicit
    rollback of :mod:`rtclab.peer.rollback`; the early resolution of
    :mod:`rtclab.peer.trickle`; transceivers unknown to the offer are marked
    inactive for the answer; a remote offer whose m-lines change the order
    already negotiated, or an answer whose m-lines are not the offer's, is
    ``InvalidAccessError`` (JSEP keeps m-line order; Chromium 156 refuses
    both, with the messages used here: conformance scenario
    ``RTCPeerConnection-perfect-negotiation/glare-during-call-naive-both-answer``).
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCSessionDescription
from aiortc import sdp as _sdp

from .errors import InvalidAccessError, InvalidStateError
from .sdp import _as_description, _check_sdp, _summary, _with_candidates, strip_candidates


def _check_mline_order(before: Any, sdp: str, kind: str) -> None:
    """``InvalidAccessError`` unless a remote offer keeps the negotiated m-lines' mids in their places,
    or a remote answer has the offer's mids in the offer's order (Chromium 156's checks and messages)."""
    if before is None or kind not in ("offer", "answer"):
        return
    old = [m.rtp.muxId for m in before.media]
    new = [m.rtp.muxId for m in _sdp.SessionDescription.parse(sdp).media]
    if kind == "offer" and any(n != o for n, o in zip(new, old)):
        raise InvalidAccessError(
            "Failed to execute 'setRemoteDescription': Failed to set remote offer sdp: "
            "The order of m-lines in subsequent offer doesn't match order from previous offer/answer."
        )
    if kind == "answer" and new != old:
        raise InvalidAccessError(
            "Failed to execute 'setRemoteDescription': Failed to set remote answer sdp: "
            "The order of m-lines in answer doesn't match order in offer. Rejecting answer."
        )


class DescriptionsMixin:
    """Mixed into :class:`~rtclab.peer.Peer`: offers, answers and the two descriptions."""

    @property
    def localDescription(self) -> dict[str, str] | None:
        """The local description as it leaves the peer (stripped of candidates with trickle)."""
        if self._pending_local is not None and self._gathering is not None and not self._gathering.done():
            out = dict(self._pending_local)  # applied; aiortc is still gathering
        else:
            desc = self._pc.localDescription
            if desc is None:
                return None
            out = {"type": desc.type, "sdp": desc.sdp}
        if self.trickle and not self._end_emitted:
            # as in a browser: only the candidates announced so far are in it
            out["sdp"] = _with_candidates(strip_candidates(out["sdp"]), self._announced)
        return self._restart_view(out)

    @property
    def remoteDescription(self) -> dict[str, str] | None:
        """The remote description, as a dict, or ``None``."""
        desc = self._pc.remoteDescription
        return None if desc is None else {"type": desc.type, "sdp": desc.sdp}

    async def createOffer(self) -> dict[str, str]:
        """Create an offer (no candidates in it, as in a browser)."""

        async def op() -> dict[str, str]:
            desc = await self._pc.createOffer()
            return {"type": desc.type, "sdp": self._restart_offer(desc.sdp)}

        return await self._op("createOffer", op, ok_detail=_summary)

    async def createAnswer(self) -> dict[str, str]:
        """Create an answer to the remote offer."""

        async def op() -> dict[str, str]:
            if self.browser_errors and self._states["signalingState"] not in ("have-remote-offer", "have-local-pranswer"):
                raise InvalidStateError(
                    f"Failed to execute 'createAnswer': PeerConnection cannot create an answer in a state other than have-remote-offer or have-local-pranswer (state: {self._states['signalingState']})."
                )
            desc = await self._pc.createAnswer()
            return {"type": desc.type, "sdp": self._restart_answer(desc.sdp)}

        return await self._op("createAnswer", op, ok_detail=_summary)

    async def setLocalDescription(self, description: dict[str, str] | None = None) -> None:
        """Apply a local description (``None``: create the offer or answer implicitly)."""
        try:
            desc = None if description is None else _as_description(description)
        except TypeError as exc:  # recorded like setRemoteDescription's
            self._rec("call", "setLocalDescription", "error", detail=f"TypeError: {exc}")
            self._error("setLocalDescription", exc)
            raise
        detail = "implicit" if desc is None else desc["type"]

        async def op() -> None:
            nonlocal desc
            if desc is not None and desc["type"] == "rollback":
                await self._do_rollback(explicit=True)
                return
            if desc is None:
                made = await (self._pc.createAnswer() if self._pc.signalingState == "have-remote-offer" else self._pc.createOffer())
                desc = {"type": made.type, "sdp": (self._restart_offer if made.type == "offer" else self._restart_answer)(made.sdp)}
            _check_sdp(desc["sdp"])
            if desc["type"] == "answer":
                # aiortc 1.16 fails an answer ("None is not in list") when a
                # transceiver was added that the offer did not mention; a browser
                # leaves it for the next negotiation. Mark such transceivers
                # inactive for this answer.
                for t in self._pc.getTransceivers():
                    if t.mid is None and t._offerDirection is None:
                        t._offerDirection = "inactive"
            session = RTCSessionDescription(sdp=desc["sdp"], type=desc["type"])
            self._save_for_rollback(desc["type"])
            if self.trickle:
                await self._apply_local_early(session)
            else:
                await self._pc.setLocalDescription(session)
                self._register_connections()
            self._restart_local(desc)
            if self._pc.signalingState == "stable":
                self._nn_fired = False
                self._note_negotiated(desc)

        await self._op("setLocalDescription", op, ok_detail=lambda _r: detail)

    async def setRemoteDescription(self, description: dict[str, str]) -> None:
        """Apply the remote description; an offer in ``have-local-offer`` rolls back first."""
        try:
            desc = _as_description(description)
        except TypeError as exc:
            self._rec("call", "setRemoteDescription", "error", detail=f"TypeError: {exc}")
            self._error("setRemoteDescription", exc)
            raise

        async def op() -> None:
            if desc["type"] == "rollback":
                await self._do_rollback(explicit=True)
                return
            _check_sdp(desc["sdp"])
            state = self._states["signalingState"]
            if desc["type"] == "offer" and state == "have-local-offer" and self.emulate_rollback:
                await self._do_rollback(explicit=False)
            if self.browser_errors and desc["type"] == "offer":
                _check_mline_order(self._current[1], desc["sdp"], "offer")
            elif self.browser_errors and desc["type"] == "answer" and self._states["signalingState"] == "have-local-offer":
                offer = self._pending_local  # the local offer as applied (trickle), else aiortc's
                before = _sdp.SessionDescription.parse(offer["sdp"]) if offer and offer["type"] == "offer" else \
                    getattr(self._pc, "_RTCPeerConnection__localDescription")()
                _check_mline_order(before, desc["sdp"], "answer")
            if self.browser_errors and desc["type"] in ("answer", "pranswer") and self._states["signalingState"] != "have-local-offer":
                raise InvalidStateError(
                    f"Failed to execute 'setRemoteDescription': Failed to set remote answer sdp: Called in wrong state: {self._states['signalingState']}"
                )
            previous = self._pc.remoteDescription
            self._save_for_rollback(desc["type"])
            sdp = self._remote_sdp_for_agent(desc["sdp"])  # (trickle.py: end-of-candidates kept back)
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=desc["type"]))
            self._register_connections()
            self._restart_remote(desc, previous)
            if self._pc.signalingState == "stable":
                self._nn_fired = False
                self._note_negotiated()

        await self._op("setRemoteDescription", op, ok_detail=lambda _r: _summary(desc))
