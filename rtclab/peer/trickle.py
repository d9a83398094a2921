"""Trickle ICE (``trickle``): candidates out as ``icecandidate`` events, candidates in by ``addIceCandidate``.

What the browser does
    ``setLocalDescription`` resolves as soon as the description is applied;
    gathering goes on and each candidate is an ``icecandidate`` event,
    ending with ``null`` (end-of-candidates); ``iceGatheringState`` reaches
    ``complete`` then (Chromium 156 fires ``icegatheringstatechange`` to
    ``complete`` just before the ``null`` event). Chromium 156 resolves every
    ``addIceCandidate`` after ``addIceCandidate(null)`` and uses the later
    candidates (FACTS.md); RFC 8838 §14 says a later candidate of that
    generation is ignored, never an error.
What aiortc 1.16 does
    ``setLocalDescription`` gathers first and embeds every candidate and
    ``a=end-of-candidates`` in ``localDescription``; it never fires
    ``icecandidate``. A stripped SDP that kept ``a=end-of-candidates`` would
    make aioice ignore every later candidate silently.
What rtclab emulates
    The description returned by :attr:`Peer.localDescription` (the one an
    app sends) carries no candidates: each candidate is emitted as an
    ``icecandidate`` event, ``candidate_interval_ms`` apart, ending with
    ``None``, and ``iceGatheringState`` reaches ``complete`` only then (with
    ``gathering_state``, just before the ``None``, as Chromium; without any
    m-line neither happens). aiortc's ``setLocalDescription`` (which
    gathers) runs in the background: host candidates are announced at once
    and server-reflexive / relay ones when aiortc's gathering ends. Limits:
    those later candidates come together rather than one by one, and the
    next API call waits for aiortc to finish gathering. Incoming candidates
    are checked by :mod:`rtclab.peer.errors` (with ``browser_errors``).
    Switch: ``Peer(trickle=False)``.

    ``end_of_candidates``: end-of-candidates (``None``, ``{"candidate": ""}``,
    or ``a=end-of-candidates`` in a remote SDP) applies to one m-section when
    ``sdpMid``/``sdpMLineIndex`` is given, else to all, and to the current
    ICE generation (``usernameFragment``, the candidate's ``ufrag`` or the
    remote description's ``a=ice-ufrag``). A later candidate of that
    generation resolves (never an error) and is recorded as an ``ice``
    ``candidate`` row ``late``; it is *used*, as Chromium 156 does, although
    RFC 8838 section 14 says to ignore it. Where they disagree rtclab follows
    Chromium, the course's oracle. aioice is not told end-of-candidates (it
    would refuse later candidates and fail at once with none, which RFC 8863
    forbids): failures come from the browser timers of
    :mod:`rtclab.peer.states`. Without ``ice_states`` it is told, and a late
    candidate is recorded ``ignored`` (the RFC's behaviour). Candidates of a
    new generation (new ufrag) are ordinary. Switch off: the old behaviour
    (one flag for all sections; a later candidate is an
    :class:`~rtclab.peer.OperationError` with ``browser_errors``).

    ``triggered_checks``: after a remote candidate is added, aioice's own
    check scheduler runs once at once (:func:`rtclab.peer.agent.check_now`),
    so the new pair is checked now instead of at aioice's next 20 ms tick.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiortc import RTCSessionDescription
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

from ..network import GridTick, in_sim
from .errors import InvalidStateError, OperationError, error_name, parse_candidate
from . import agent
from .sdp import _candidates_in, _mids, _ufrags

_UFRAG_RE = re.compile(r" ufrag (\S+)")


class TrickleMixin:
    """Mixed into :class:`~rtclab.peer.Peer`: candidates out (``icecandidate``) and in (``addIceCandidate``)."""

    async def _apply_local_early(self, session: RTCSessionDescription) -> None:
        """Apply a local description and resolve before gathering ends, as a browser does.

        aiortc's ``setLocalDescription`` changes the signaling state, then
        gathers every candidate before it returns. It runs here as a
        background task: this call returns as soon as the state has changed,
        host candidates are announced while STUN/TURN gathering goes on, and
        the next API call waits for the task (the operations chain).
        """
        before = self._pc.signalingState
        task = self._spawn(self._pc.setLocalDescription(session))
        for _ in range(10_000):
            if task.done() or (self._pc.signalingState != before and self._pc.iceGatheringState != "new"):
                break  # applied, and gathering has begun (as in a browser)
            await asyncio.sleep(0)
        if task.done():
            task.result()  # raises a validation error at once, like a browser
        self._gathering = task
        self._pending_local = {"type": session.type, "sdp": session.sdp}
        task.add_done_callback(self._gathering_done)
        self._register_connections()
        prev = self._emitter

        async def trickle() -> None:
            if prev is not None and not prev.done():
                await asyncio.wait([prev])
            await self._emit_live(task)

        self._emitter = self._spawn(trickle())

    def _gathering_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._closed:
            return
        exc = task.exception()
        if exc is not None:
            exc = self._translate("setLocalDescription", exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            self._error("setLocalDescription", exc)
        else:
            self._register_connections()

    def _live_candidates(self) -> list[tuple[str, str | None, int]]:
        """Candidates aioice has so far (host ones exist before STUN/TURN answers)."""
        from aiortc.rtcicetransport import candidate_from_aioice

        mids = _mids(self._pending_local["sdp"]) if self._pending_local else []
        found: list[tuple[str, str | None, int]] = []
        owners: list[tuple[Any, str | None]] = [(t.receiver.transport, t.mid) for t in self._pc.getTransceivers()]
        if self._pc.sctp is not None:
            owners.append((self._pc.sctp.transport, self._pc.sctp.mid))
        for dtls, mid in owners:
            conn = getattr(getattr(dtls, "transport", None), "_connection", None)
            if conn is None or mid not in mids:
                continue
            for protocol in list(getattr(conn, "_protocols", [])):
                cand = getattr(protocol, "local_candidate", None)
                if cand is not None:
                    found.append(("candidate:" + candidate_to_sdp(candidate_from_aioice(cand)), mid, mids.index(mid)))
        found.sort(key=lambda c: c[2])
        return found

    def _announce(self, line: str, mid: str | None, idx: int) -> None:
        ref = self.trace.candidate_ref(self.actor, line, create=True)
        self._announced[line] = (mid, idx)
        self._rec("ice", "candidate", "gathered", ref=ref, detail=line)
        self._emit("icecandidate", {"candidate": line, "sdpMid": mid, "sdpMLineIndex": idx})

    async def _emit_live(self, gathering: asyncio.Task[None]) -> None:
        """Emit ``icecandidate`` events while gathering runs, then end-of-candidates."""
        pc = self._pc
        interval = self.candidate_interval_ms / 1000.0
        loop = asyncio.get_running_loop()
        self._local_news = None
        while True:
            finished = gathering.done()
            if finished:
                if gathering.cancelled() or gathering.exception() is not None:
                    return
                desc = pc.localDescription
                fresh = [c for c in (_candidates_in(desc.sdp) if desc else []) if c[0] not in self._emitted]
            elif self._local_news is None or self._local_news.done() or not self._protocols_watched():
                # something new (the agent hook resolved the future) or unknown: look
                self._local_news = loop.create_future()
                fresh = [c for c in self._live_candidates() if c[0] not in self._emitted]
            else:
                fresh = []  # no local candidate appeared since the last look
            for line, mid, idx in fresh:
                self._emitted.add(line)
                await asyncio.sleep(interval)
                if self._closed or pc is not self._pc:
                    return
                self._announce(line, mid, idx)
            if finished:
                break
            await self._await_news(gathering, max(interval, 0.001))
        if not self._end_emitted:
            await asyncio.sleep(interval)
            if self._closed or pc is not self._pc:
                return
            mids = _mids(self._pending_local["sdp"]) if self._pending_local else []
            if self.gathering_state and not mids:
                return  # no m-line, no gathering: no end-of-candidates either (W3C)
            self._end_emitted = True
            complete = self._gathering_complete_held or self._gathering_value() == "complete"
            if complete and self.gathering_state:
                # Chromium 156: icegatheringstatechange to complete fires before the null candidate
                self._gathering_complete_held = False
                self._set_state("iceGatheringState", "complete")
            self._rec("ice", "candidate", "end", ref=f"{self.actor}:end")
            self._emit("icecandidate", None)
            if complete and self._gathering_complete_held:
                self._gathering_complete_held = False
                self._set_state("iceGatheringState", "complete")

    def _protocols_watched(self) -> bool:
        """Whether every aioice connection of this peer reports new local candidates (agent hook)."""
        # (what ``all(... for ice, _ in self._all_transports())`` says, without pairing and
        # de-duplicating the transports: run at every point of the emitter's polling grid)
        for dtls in self._dtls_transports():
            ice = getattr(dtls, "transport", None)
            conn = getattr(ice, "_connection", None) if ice is not None else None
            if conn is not None and not conn.__dict__.get("_rtclab_hooked"):
                return False
        return True

    async def _await_news(self, gathering: asyncio.Task[None], step: float) -> None:
        """Wait ``step`` or until gathering ends: the polling grid, kept so that no event moves.

        Each wake-up used to rebuild the SDP line of every live candidate, for
        aioice's whole gathering timeout (5 s with an unreachable STUN/TURN
        server); now a wake-up only looks when the agent hook
        (:mod:`rtclab.peer.agent`) said a local candidate appeared since the
        last look. Sleeping through the grid instead (waking on the hook)
        changed the order of events at equal virtual times in 11 of 112
        simulated runs, so the grid stays; but a grid point where nothing
        changed no longer wakes this task (:class:`rtclab.network.GridTick`).
        """
        def idle() -> bool:  # what the woken emitter would find: nothing new, gathering still on
            news = self._local_news
            return not (gathering.done() or news is None or news.done() or not self._protocols_watched())

        if in_sim() is None:
            await asyncio.wait([gathering], timeout=step)
        else:
            await GridTick(step, idle, watch=gathering)

    async def addIceCandidate(self, candidate: dict[str, Any] | None = None) -> None:
        """Add a remote candidate; ``None`` or ``{"candidate": ""}`` is end-of-candidates."""
        line: Any = ""
        if isinstance(candidate, dict):
            line = candidate.get("candidate")
            line = "" if line is None else line  # (0 or False is not end-of-candidates: a TypeError below)
        ref = self.trace.find_candidate_ref(line) if isinstance(line, str) and line else ("" if candidate is not None and line != "" else self._remote_end_ref())
        try:
            if candidate is not None and not isinstance(candidate, dict):
                raise TypeError(f"candidate must be a dict (RTCIceCandidateInit) or None, not {type(candidate).__name__}")
            if not isinstance(line, str):
                raise TypeError(f"candidate.candidate must be a string, not {type(line).__name__}")
            if line and candidate is not None and candidate.get("sdpMid") is None and candidate.get("sdpMLineIndex") is None:
                raise TypeError("Failed to execute 'addIceCandidate': Candidate missing values for both sdpMid and sdpMLineIndex")
        except TypeError as exc:
            self._rec("call", "addIceCandidate", "error", ref=ref, detail=f"TypeError: {exc}")
            self._rec("ice", "candidate", "rejected", ref=ref, detail=f"TypeError: {exc}")
            self._error("addIceCandidate", exc, ref=ref)
            raise

        async def op() -> str:
            if self.browser_errors and self._pc.remoteDescription is None:
                raise InvalidStateError(
                    "Failed to execute 'addIceCandidate' on 'RTCPeerConnection': The remote description was null"
                )
            if not line:
                if self.end_of_candidates:
                    return await self._remote_end_of_candidates(candidate)
                if self._remote_end:
                    return "added"  # a repeated end-of-candidates is harmless
                self._remote_end = True
                if not self._restart_candidate(None):  # (an ICE restart's end-of-candidates goes to it)
                    await self._pc.addIceCandidate(None)
                return "added"
            assert candidate is not None
            if self.browser_errors:
                parsed = parse_candidate(line)
                if self._remote_end and not self.end_of_candidates:
                    raise OperationError("Error processing ICE candidate: candidate after end-of-candidates")
            else:
                text = line[len("candidate:"):] if line.startswith("candidate:") else line
                parsed = candidate_from_sdp(text)
            mid, idx = candidate.get("sdpMid"), candidate.get("sdpMLineIndex")
            if self.browser_errors:
                mids = [l[6:].strip() for l in self._pc.remoteDescription.sdp.splitlines() if l.startswith("a=mid:")]
                if mid is not None and str(mid) not in mids:
                    raise OperationError(f"Error processing ICE candidate: no media section with mid {mid!r}")
                if mid is None and not (isinstance(idx, int) and 0 <= idx < len(mids)):
                    raise OperationError(f"Error processing ICE candidate: no media section with index {idx!r}")
            outcome = "added"
            if self.end_of_candidates and self._generation(candidate, line) in self._remote_ended:
                if not self.ice_states:
                    return "ignored"  # aioice was told end-of-candidates: it cannot take more (RFC 8838 section 14)
                outcome = "late"  # Chromium 156 uses it; aioice was never told end-of-candidates
            parsed.sdpMid = None if mid is None else str(mid)
            parsed.sdpMLineIndex = idx if isinstance(idx, int) else None
            if not self._restart_candidate(parsed):  # (a candidate of an ICE restart goes to it)
                await self._pc.addIceCandidate(parsed)
                if self.triggered_checks:
                    for ice, _dtls in self._all_transports():
                        agent.check_now(ice._connection)
            self._refresh_ice()
            return outcome

        try:
            outcome = await self._op("addIceCandidate", op, ref=ref, ok_detail=lambda _r: line or "end-of-candidates")
        except Exception as exc:
            self._rec("ice", "candidate", "rejected", ref=ref, detail=f"{error_name(exc)}: {exc}")
            raise
        detail = line or "end-of-candidates"
        if outcome == "late":
            detail = f"after end-of-candidates, used as Chromium 156 does (RFC 8838 section 14 says ignore): {detail}"
        elif outcome == "ignored":
            detail = f"after end-of-candidates: ignored (RFC 8838 section 14): {detail}"
        self._rec("ice", "candidate", outcome, ref=ref, detail=detail)

    # -- end-of-candidates per m-section and ICE generation ----------------------------------------

    def _generation(self, candidate: dict[str, Any] | None, line: str = "") -> tuple[int, str] | None:
        """(m-line index, ICE ufrag) a remote candidate or end-of-candidates belongs to; None: every section."""
        desc = self._pc.remoteDescription
        sdp = desc.sdp if desc is not None else ""
        mids = _mids(sdp)
        ufrags = _ufrags(sdp)
        mid = candidate.get("sdpMid") if candidate else None
        idx = candidate.get("sdpMLineIndex") if candidate else None
        if mid is not None and str(mid) in mids:
            index = mids.index(str(mid))
        elif isinstance(idx, int) and 0 <= idx < len(mids):
            index = idx
        else:
            return None
        ufrag = (candidate or {}).get("usernameFragment") or _UFRAG_RE.search(line or "")
        if isinstance(ufrag, re.Match):
            ufrag = ufrag.group(1)
        return index, str(ufrag or ufrags[index] or "")

    async def _remote_end_of_candidates(self, candidate: dict[str, Any] | None) -> str:
        """End-of-candidates for one m-section (sdpMid/sdpMLineIndex given) or all, current generation."""
        desc = self._pc.remoteDescription
        sdp = desc.sdp if desc is not None else ""
        key = self._generation(candidate)
        if key is not None:
            keys = {key}
        else:
            ufrag = (candidate or {}).get("usernameFragment")
            keys = {(i, str(ufrag or u or "")) for i, u in enumerate(_ufrags(sdp))}
        self._remote_ended |= keys
        if not self.ice_states and not self._remote_end and len(self._remote_ended) >= len(_mids(sdp)):
            # aioice's failure verdict needs end-of-candidates; without the browser timers, tell it
            self._remote_end = True
            if not self._restart_candidate(None):  # (an ICE restart's end-of-candidates goes to it)
                await self._pc.addIceCandidate(None)
        return "added"

    def _remote_sdp_for_agent(self, sdp: str) -> str:
        """The remote SDP aiortc gets: ``a=end-of-candidates`` kept back while the browser timers run."""
        if not (self.end_of_candidates and self.ice_states) or "a=end-of-candidates" not in sdp:
            return sdp
        index = -1
        ufrags = _ufrags(sdp)
        lines = []
        for text in sdp.splitlines():
            if text.startswith("m="):
                index += 1
            if text.startswith("a=end-of-candidates"):
                if index >= 0:
                    self._remote_ended.add((index, str(ufrags[index] or "")))
                else:
                    self._remote_ended |= {(i, str(u or "")) for i, u in enumerate(ufrags)}
                continue
            lines.append(text)
        return "\r\n".join(lines) + "\r\n"

    def _remote_end_ref(self) -> str:
        other = "callee" if self.actor == "caller" else "caller"
        return f"{other}:end"
