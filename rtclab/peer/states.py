"""The four state machines as the page sees them: signaling, ICE gathering, ICE connection, connection.

What the browser does (Chromium 156, measured 2026-11-30; FACTS.md, issue #18)
    ``iceConnectionState`` and ``connectionState`` stay ``new`` while no
    remote candidate exists (no ``checking`` when nothing was exchanged); a
    working call goes ``checking`` -> ``connected`` and ``connecting`` ->
    ``connected``. One unreachable remote candidate, with or without
    end-of-candidates: ``iceConnectionState`` ``checking`` ->
    ``disconnected`` and ``connectionState`` ``failed`` ~15 s after checking
    started. A path cut after connecting: ``disconnected`` ~6.6 s after the
    cut, ``connectionState`` ``failed`` ~16.6 s after it, while
    ``iceConnectionState`` stays ``disconnected`` (75 s+). A path back
    before ``failed``: both machines return to ``connected`` within ~50 ms; a
    path back after ``failed``: no change in the 8 s watched (``path-heals``,
    ``path-back-after-failed``). An offer without
    m-lines leaves ``iceGatheringState`` ``new``. ``close()`` fires no
    state-change event (W3C).
What aiortc 1.16 does
    ``iceConnectionState`` goes ``checking`` -> ``completed`` (never
    ``connected``) and is ``checking`` as soon as both descriptions are set,
    candidates or not (forever when none come); ``connectionState`` has no
    ``disconnected``; an unreachable candidate fails after aioice's STUN
    schedule (63.5 s) and, with end-of-candidates and no remote candidate,
    within 20 ms; after a cut, consent expiry closes the whole peer
    connection (``closed`` ~26-34 s after the cut). It gathers on every
    transport, also those of transceivers no m-line mentions, and fires its
    handlers on ``close()``.
What rtclab emulates (each switch a :class:`~rtclab.peer.Peer` keyword)
    ``ice_states``: ``iceConnectionState`` and ``connectionState`` are
    derived per W3C from each ICE transport of a negotiated m-section:
    ``new`` while it has no remote candidate (signalled or learned as
    peer-reflexive), ``checking`` while aioice checks, ``connected`` when
    aioice has nominated a pair (aiortc's ``completed``). A transport still
    checking :data:`CHECKING_FAILED_S` after it started has failed (it shows
    ``disconnected`` in ``iceConnectionState`` and ``failed`` in
    ``connectionState``, as Chromium); aioice's checks are then stopped. On a
    connected transport, :mod:`rtclab.peer.agent` replaces aioice's consent
    freshness with Chromium's timers (``disconnected``, then ``failed``,
    never closing the connection; an answered ping after ``disconnected``
    makes it ``connected`` again, and after an ICE restart that nominated a
    pair (:meth:`StatesMixin._ice_restarted`) consent starts afresh and a
    ``failed`` transport is ``connected`` again). ``connectionState`` follows the W3C
    table over those ICE states and aiortc's DTLS states. With
    ``end_of_candidates`` (:mod:`rtclab.peer.trickle`) aioice is never told
    end-of-candidates, so it never fails before these timers (RFC 8863).
    When aiortc closes the connection by itself (the other side's DTLS
    close), ``closed`` is still passed through: a documented difference.
    ``gathering_state``: ``iceGatheringState`` counts only the transports of
    m-sections in the local description, so it stays ``new`` without
    m-lines. ``silent_close``: ``close()`` records the final states but
    fires no handler. With a switch off, aiortc's own states are recorded.
    The selected pair is recorded when ICE connects.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection

from . import agent

STATE_MACHINES = ("signalingState", "iceGatheringState", "iceConnectionState", "connectionState")

#: Chromium 156: ``connectionState`` ``failed`` ~15 s after checking started
#: when no pair works (one unreachable candidate, with or without end-of-candidates).
CHECKING_FAILED_S = 15.0


@dataclass(eq=False)
class _IceInfo:
    """rtclab's view of one aioice connection (one ICE transport)."""

    conn: Any
    checking_timer: asyncio.TimerHandle | None = None
    checks_failed: bool = False
    consent: str = "ok"

    def cancel(self) -> None:
        if self.checking_timer is not None:
            self.checking_timer.cancel()
            self.checking_timer = None


class StatesMixin:
    """Mixed into :class:`~rtclab.peer.Peer`: the four state machines as the page sees them."""

    def _set_state(self, name: str, value: str) -> None:
        prev = self._states.get(name, "new")
        if prev == value:
            return
        self._states[name] = value
        self._rec("state", name, value, prev=prev)
        if self._closed and self.silent_close:
            return  # W3C: close() fires no state-change event (the row above still records it)
        self._emit(name.lower().replace("state", "statechange"))

    def _on_aiortc_state(self, pc: RTCPeerConnection, name: str) -> None:
        if pc is not self._pc:
            return  # a connection replaced by rollback
        try:
            value = getattr(pc, name)
            if name == "iceConnectionState" and value == "completed":
                self._record_selected_pair()
            if self.ice_states and name in ("iceConnectionState", "connectionState"):
                self._refresh_ice()
                return
            if name == "iceGatheringState":
                value = self._gathering_value()
                if self.trickle and value == "complete" and not self._end_emitted:
                    self._gathering_complete_held = True
                    return
            self._set_state(name, value)
        except Exception as exc:  # never break the aiortc call that emitted the event
            self._error(f"on{name}", exc)

    # -- the page's view of the ICE transports ----------------------------------------------------

    def _negotiated_transports(self) -> list[tuple[Any, Any]]:
        """(ICE transport, DTLS transport) of each m-section with a mid, once each (BUNDLE shares one)."""
        found: dict[int, tuple[Any, Any]] = {}
        owners: list[tuple[Any, Any]] = [(t.receiver.transport, t.mid) for t in self._pc.getTransceivers() if not t.stopped]
        if self._pc.sctp is not None:
            owners.append((self._pc.sctp.transport, self._pc.sctp.mid))
        for dtls, mid in owners:
            ice = getattr(dtls, "transport", None)
            if mid is not None and ice is not None:
                found.setdefault(id(ice), (ice, dtls))
        return list(found.values())

    def _gathering_value(self) -> str:
        """iceGatheringState: aiortc's, or (``gathering_state``) over the negotiated transports only."""
        if not self.gathering_state:
            return self._pc.iceGatheringState
        states = {ice.iceGatherer.state for ice, _dtls in self._negotiated_transports()}
        if not states:
            return "new"  # no m-line: nothing to gather for (W3C; Chromium 156 stays "new")
        if states == {"completed"}:
            return "complete"
        return "gathering" if "gathering" in states else "new"

    def _ice_info(self, conn: Any) -> _IceInfo:
        info = self._ice_infos.get(id(conn))
        if info is None or info.conn is not conn:
            info = self._ice_infos[id(conn)] = _IceInfo(conn)
        return info

    def _hook_agent(self) -> None:
        """Install the per-connection aioice hooks on this peer's connections (once each)."""
        for ice, _dtls in self._all_transports():
            conn = ice._connection
            if conn.__dict__.get("_rtclab_hooked"):
                continue
            info = self._ice_info(conn)
            agent.hook_connection(
                conn,
                on_protocol=self._on_local_protocol,
                on_remote=self._refresh_ice if self.ice_states else None,
                on_consent=(lambda state, i=info: self._on_consent(i, state)) if self.ice_states else None,
            )

    def _dtls_transports(self) -> list[Any]:
        """Every DTLS transport of the connection (one per transceiver, and the data channels'), repeats included."""
        dtls_list = [t.receiver.transport for t in self._pc.getTransceivers()]
        if self._pc.sctp is not None:
            dtls_list.append(self._pc.sctp.transport)
        return dtls_list

    def _all_transports(self) -> list[tuple[Any, Any]]:
        found: dict[int, tuple[Any, Any]] = {}
        for dtls in self._dtls_transports():
            ice = getattr(dtls, "transport", None)
            if ice is not None and getattr(ice, "_connection", None) is not None:
                found.setdefault(id(ice), (ice, dtls))
        return list(found.values())

    def _on_local_protocol(self) -> None:
        news = self._local_news
        if news is not None and not news.done():
            news.set_result(None)

    def _transport_states(self, ice: Any) -> tuple[str, str]:
        """(iceConnectionState-style, W3C RTCIceTransportState-style) state of one ICE transport."""
        raw = ice.state
        if raw == "closed":
            return "closed", "closed"
        conn = ice._connection
        if raw == "new" or not conn._remote_candidates:
            return "new", "new"  # Chromium: no remote candidate, no checking (RFC 8863: no failure either)
        info = self._ice_info(conn)
        if info.checks_failed:
            return "disconnected", "failed"
        if raw == "checking":
            if info.checking_timer is None:
                loop = asyncio.get_running_loop()
                info.checking_timer = loop.call_later(CHECKING_FAILED_S, self._checking_expired, info)
            return "checking", "checking"
        if raw == "completed":
            info.cancel()
            if info.consent == "failed":
                return "disconnected", "failed"
            if info.consent == "disconnected":
                return "disconnected", "disconnected"
            return "connected", "connected"
        return "disconnected", "failed"  # aioice gave up on a transport that had candidates

    def _refresh_ice(self) -> None:
        """Derive iceConnectionState and connectionState (W3C) and record any change."""
        if not self.ice_states or self._closed:
            return  # close() records the final states
        try:
            if self._pc.connectionState == "closed":
                # aiortc closed the connection by itself (the other side's DTLS close)
                self._set_state("iceConnectionState", "closed")
                self._set_state("connectionState", "closed")
                return
            legacy: list[str] = []
            w3c: list[str] = []
            dtls_states: list[str] = []
            for ice, dtls in self._negotiated_transports():
                old, new = self._transport_states(ice)
                legacy.append(old)
                w3c.append(new)
                dtls_states.append(dtls.state)
            self._set_state("iceConnectionState", _ice_connection_state(legacy))
            self._set_state("connectionState", _connection_state(w3c, dtls_states))
        except Exception as exc:  # never break the aioice/aiortc code that called us
            self._error("states", exc)

    def _checking_expired(self, info: _IceInfo) -> None:
        if self._closed or info.checks_failed:
            return
        if all(ice._connection is not info.conn for ice, _ in self._negotiated_transports()):
            return  # a connection replaced since
        if getattr(info.conn, "_nominated", None):
            return  # connected meanwhile
        info.checks_failed = True
        self._rec("ice", "log", "checks timed out",
                  detail=f"no candidate pair worked within {CHECKING_FAILED_S:g} s of checking (Chromium 156 reports failed then)")
        agent.fail_checks(info.conn)
        self._refresh_ice()

    def _on_consent(self, info: _IceInfo, state: str) -> None:
        if self._closed:
            return
        info.consent = state
        text = {
            "ok": "consent responses again",
            "disconnected": f"no consent response for {agent.DISCONNECTED_AFTER_S:g} s",
            "failed": f"no consent response for {agent.FAILED_AFTER_S:g} s: consent expired",
        }[state]
        self._rec("ice", "log", f"consent {state}", detail=text)
        self._refresh_ice()

    def _ice_restarted(self, conns: list[Any]) -> None:
        """An ICE restart nominated a new pair on ``conns``: consent starts afresh on it.

        A restart's successful check proves the new path, so a transport that
        was ``disconnected`` or ``failed`` (consent lost) is ``connected``
        again; the emulated consent freshness starts over on the new pair
        (after ``failed`` it had stopped, as RFC 7675 asks).
        """
        if not self.ice_states or self._closed:
            return
        for conn in conns:
            info = self._ice_info(conn)
            if info.consent == "ok" and not info.checks_failed:
                continue  # a restart of a working call: its consent task goes on
            info.checks_failed = False
            info.consent = "ok"
            task = conn._query_consent_task
            if task is not None and not task.done():
                task.cancel()
            conn._query_consent_task = asyncio.ensure_future(conn.query_consent())
            self._rec("ice", "log", "consent ok", detail="an ICE restart found a working pair: consent starts again on it")
        self._refresh_ice()

    def _cancel_ice_timers(self) -> None:
        for info in self._ice_infos.values():
            info.cancel()

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
        """The ICE connection state (W3C/Chromium with ``ice_states``, else aiortc's)."""
        return self._states["iceConnectionState"]

    @property
    def connectionState(self) -> str:
        """The connection state (W3C/Chromium with ``ice_states``, else aiortc's)."""
        return self._states["connectionState"]


def _ice_connection_state(states: list[str]) -> str:
    """W3C RTCIceConnectionState over the transports' states (never ``completed``, as Chromium)."""
    if "failed" in states:
        return "failed"
    if "disconnected" in states:
        return "disconnected"
    if all(s in ("new", "closed") for s in states):
        return "new"
    if any(s in ("new", "checking") for s in states):
        return "checking"
    return "connected"


def _connection_state(ice: list[str], dtls: list[str]) -> str:
    """W3C RTCPeerConnectionState over the ICE (RTCIceTransportState) and DTLS transports' states."""
    if "failed" in ice or "failed" in dtls:
        return "failed"
    if "disconnected" in ice:
        return "disconnected"
    if all(s in ("new", "closed") for s in ice) and all(s in ("new", "closed") for s in dtls):
        return "new"
    if any(s in ("new", "checking") for s in ice) or any(s in ("new", "connecting") for s in dtls):
        return "connecting"
    return "connected"
