"""``restartIce()``: new ICE credentials and candidates while the call goes on.

What the browser does (W3C webrtc-pc and RFC 8445 section 9; Chromium 156 where it says so)
    ``restartIce()`` marks the local ICE credentials for replacement
    and fires ``negotiationneeded``; the next offer carries a new
    ``a=ice-ufrag``/``a=ice-pwd`` (as if ``createOffer({iceRestart: true})``);
    ``setLocalDescription`` gathers new candidates (new ports), trickled as
    ``icecandidate`` events ending with ``null``; the answerer sees the
    ufrag change in the offer and restarts too (new ufrag in its answer, new
    candidates). Connectivity checks run on the new candidates while media
    keeps flowing on the old pair; when a new pair is nominated, media moves
    to it. DTLS and SRTP are untouched. Measured in Chromium 156 on a working
    call (conformance ``RTCPeerConnection-restartIce/call-survives``):
    ``negotiationneeded``, a new ufrag, new candidates, neither state machine
    moves, data still flows. A restart of a ``failed`` call is not measured.
What aiortc 1.16 does
    No ``restartIce``. ``createOffer`` always reuses the ICE credentials,
    ``RTCIceGatherer.gather`` and ``RTCIceTransport.start`` run once per
    transport (a second ``start`` returns at once), so a remote description
    with a new ufrag is stored and ignored: the call goes on with the old
    credentials, or fails once the other side has changed them. aioice's
    ``Connection`` has no restart either: its credentials, candidates and
    check list are set up once.
What rtclab emulates
    For each live ICE transport (one with BUNDLE), an :class:`IceRestart`
    runs a *fresh* aioice ``Connection`` next to the one carrying the call:
    new credentials (in the offer or answer this peer sends), new host (and
    STUN/TURN) candidates gathered at ``setLocalDescription`` and trickled
    as ``icecandidate`` events, the remote peer's new candidates routed to it
    by ``addIceCandidate``, and a full ICE check with the same role and tie
    breaker. When it nominates a pair, the fresh connection is spliced into
    the old one (credentials, sockets, candidates, check list, nominated
    pair, packets already queued), so aiortc's DTLS transport, which reads
    and writes through the old ``Connection`` object, goes on unaware; the
    old sockets are then closed. Media flows on the old pair until the
    switch. Measured on aiortc 1.16.0/aioice 0.13.0 (restart from either
    side): on the simulated LAN, behind port-restricted NATs (srflx) and
    symmetric NATs (relay: new TURN allocations), and on real loopback UDP, a
    new pair ~20 ms after both sides have their new credentials, RTP received
    throughout, consent freshness kept on the new pair (sim: 35 s checked).
    Recorded rows: ``call restartIce``, ``ice restart`` ``gathering`` ->
    ``checking`` -> ``completed`` (detail: the new pair) or ``failed``, and
    one ``ice candidate gathered`` row per new candidate.
    Limits: only a connected call restarts (a new remote ufrag before the
    first pair is nominated is ignored, as aiortc does); with several ICE
    transports (no BUNDLE) every new remote candidate is offered to each;
    ``iceConnectionState``/``connectionState`` do not change during a restart
    (aiortc's transports stay ``completed``; no ``checking`` is shown) but
    when it nominates a pair after the call was ``disconnected`` or
    ``failed`` (consent lost), consent freshness starts again on the new pair
    and both states return to ``connected`` (W3C; the return itself is not
    measured in Chromium here); a restart whose checks all fail
    leaves the old pair in use. The patch touches aioice
    private attributes: :func:`supported` checks them and
    ``tests/test_peer.py`` fails if they change.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aioice
from aioice import Connection

from ..network import host_scope

#: the aioice versions the splice was written and measured against
TESTED_AIOICE = ("0.13.0",)
#: private attributes of ``aioice.Connection`` the splice reads or replaces
CONNECTION_ATTRS = (
    "_local_username", "_local_password", "_protocols", "_local_candidates", "_remote_candidates",
    "_check_list", "_nominated", "_queue", "_query_consent_task", "_tie_breaker", "_use_ipv4",
    "_use_ipv6", "_transport_policy",
)


def supported() -> str | None:
    """``None`` when this aioice has what the splice needs, else why not."""
    probe = Connection(ice_controlling=False)
    missing = [a for a in CONNECTION_ATTRS if not hasattr(probe, a)]
    if missing:
        return f"aioice {getattr(aioice, '__version__', '?')} lacks Connection.{', '.join(missing)}"
    return None


def live_connections(pc: Any) -> list[Connection]:
    """The aioice connections of the ICE transports a call uses (one with BUNDLE)."""
    owners = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        owners.append(pc.sctp.transport)
    found: list[Connection] = []
    for dtls in owners:
        ice = getattr(dtls, "transport", None)
        conn = getattr(ice, "_connection", None)
        if conn is not None and ice.state != "closed" and conn._nominated and conn not in found:
            found.append(conn)
    return found


def ice_credentials(sdp: str) -> tuple[str, str] | None:
    """The first ``(ufrag, pwd)`` of an SDP, or ``None``."""
    ufrag = pwd = None
    for line in sdp.splitlines():
        if ufrag is None and line.startswith("a=ice-ufrag:"):
            ufrag = line[len("a=ice-ufrag:"):].strip()
        elif pwd is None and line.startswith("a=ice-pwd:"):
            pwd = line[len("a=ice-pwd:"):].strip()
    return (ufrag, pwd) if ufrag and pwd else None


def with_credentials(sdp: str, ufrag: str, pwd: str) -> str:
    """``sdp`` with every ``a=ice-ufrag``/``a=ice-pwd`` replaced."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=ice-ufrag:"):
            line = "a=ice-ufrag:" + ufrag
        elif line.startswith("a=ice-pwd:"):
            line = "a=ice-pwd:" + pwd
        out.append(line)
    return "\r\n".join(out) + "\r\n"


class IceRestart:
    """One ICE restart of one aioice ``Connection``: a fresh connection, then the splice."""

    def __init__(self, old: Connection, transport_policy: Any = None) -> None:
        self.old = old
        self.new = Connection(
            ice_controlling=old.ice_controlling,
            stun_server=old.stun_server,
            turn_server=old.turn_server,
            turn_username=old.turn_username,
            turn_password=old.turn_password,
            turn_ssl=old.turn_ssl,
            turn_transport=old.turn_transport,
            use_ipv4=old._use_ipv4,
            use_ipv6=old._use_ipv6,
            transport_policy=old._transport_policy if transport_policy is None else transport_policy,
        )
        self.new._tie_breaker = old._tie_breaker  # the same agent, for role conflicts
        self.remote: tuple[str, str] | None = None
        self.spliced = False

    @property
    def credentials(self) -> tuple[str, str]:
        return self.new.local_username, self.new.local_password

    async def gather(self) -> list[Any]:
        await self.new.gather_candidates()
        return self.new.local_candidates

    async def connect(self) -> Any:
        """Check the new candidates; on success splice and return the new pair."""
        assert self.remote is not None
        self.new.remote_username, self.new.remote_password = self.remote
        self.new.ice_controlling = self.old.ice_controlling
        await self.new.connect()
        return self._splice()

    def _splice(self) -> Any:
        new, old = self.new, self.old
        if new._query_consent_task is not None:  # the old connection's consent task goes on, on the new pair
            new._query_consent_task.cancel()
            new._query_consent_task = None
        stale = list(old._protocols)
        for protocol in new._protocols:
            protocol.receiver = old
        old._local_username, old._local_password = new._local_username, new._local_password
        old.remote_username, old.remote_password = new.remote_username, new.remote_password
        old._protocols = list(new._protocols)
        old._local_candidates = list(new._local_candidates)
        old._remote_candidates = list(new._remote_candidates)
        old._check_list = list(new._check_list)
        old._nominated = dict(new._nominated)  # from here on, media goes out on the new pair
        while not new._queue.empty():
            item = new._queue.get_nowait()
            if item is not None:
                old._queue.put_nowait(item)
        new._protocols = []
        new._local_candidates = []
        self.spliced = True
        for protocol in stale:  # no longer nominated: closing them cannot end a recv()
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.close()
        return old._nominated.get(1)

    async def close(self) -> None:
        if not self.spliced:
            await self.new.close()


class RestartMixin:
    """Mixed into :class:`~rtclab.peer.Peer`: ``restartIce()`` and the restart it negotiates."""

    _restart_wanted: bool = False
    _restart_session: Any = None  # the running _Session, if any

    def restartIce(self) -> None:  # noqa: N802 - browser name
        """Ask for new ICE credentials at the next offer; fires ``negotiationneeded``.

        Examples
        --------
        >>> import asyncio, rtclab
        >>> async def main():
        ...     pc = rtclab.Peer("caller", rtclab.Trace())
        ...     pc.restartIce()  # nothing negotiated yet: only recorded
        ...     await pc.close()
        >>> asyncio.run(main())
        """
        if self._closed:
            return
        self._rec("call", "restartIce", "ok")
        if self._pc.remoteDescription is None:
            return  # nothing to restart yet: the first offer has fresh credentials anyway
        self._restart_wanted = True
        self._update_negotiation_needed()

    # -- hooks called by descriptions.py and trickle.py ----------------------------------------------

    def _restart_offer(self, sdp: str) -> str:
        """createOffer: a restart is wanted (or under way): give the offer the new credentials."""
        session = self._restart_session
        if session is None and self._restart_wanted:
            session = self._start_restart()
            if session is not None:
                session.ours = True
            else:  # never connected: nothing to splice into. Say so once, instead of asking again forever
                self._restart_wanted = False
                self._rec("error", "restartIce", "NotSupportedError",
                          detail="rtclab restarts ICE only on a connection that has connected once; this offer keeps its credentials")
        if session is None:
            return sdp
        return with_credentials(sdp, *session.credentials)

    def _restart_answer(self, sdp: str) -> str:
        """createAnswer: answering a restart offer, with our new credentials."""
        session = self._restart_session
        if session is None:
            return sdp
        return with_credentials(sdp, *session.credentials)

    def _restart_remote(self, desc: dict[str, str], current: Any) -> None:
        """setRemoteDescription: a remote ufrag change (from ``current``) starts (or answers) a restart."""
        if current is None or not live_connections(self._pc):
            return
        old = ice_credentials(current.sdp)
        new = ice_credentials(desc["sdp"])
        if new is None or new == old:
            return
        session = self._restart_session or self._start_restart()
        if session is None:
            return
        session.set_remote(new)
        self._remote_end = False  # a new ICE generation: end-of-candidates starts over

    def _restart_local(self, desc: dict[str, str]) -> None:
        """setLocalDescription: our new credentials are applied: gather and trickle."""
        session = self._restart_session
        if session is None:
            return
        creds = ice_credentials(desc["sdp"])
        if creds != session.credentials:
            return
        self._restart_wanted = False
        session.apply_local()

    def _restart_view(self, out: dict[str, str]) -> dict[str, str]:
        """localDescription: the new credentials and candidates, as a browser shows them."""
        session = self._restart_session
        if session is None or not session.local_applied:
            return out
        return session.view(out)

    def _restart_candidate(self, candidate: Any) -> bool:
        """addIceCandidate: a candidate of the new generation goes to the restart (True if taken)."""
        session = self._restart_session
        if session is None or session.remote is None:
            return False
        session.add_remote(candidate)
        return True

    def _restart_rollback(self) -> None:
        """A rolled-back restart offer: drop the fresh connections."""
        session = self._restart_session
        if session is not None:
            self._restart_session = None
            session.cancel()
            self._rec("ice", "restart", "rolled-back")
            if session.ours:
                self._restart_wanted = True  # W3C: the credentials in use are still to be replaced

    def _start_restart(self) -> _Session | None:
        conns = live_connections(self._pc)
        if not conns:
            return None
        why = supported()
        if why is not None:
            self._rec("error", "restartIce", "NotSupportedError", detail=why)
            return None
        self._restart_session = _Session(self, conns)
        return self._restart_session


class _Session:
    """A restart of every live connection of one peer, from new credentials to the splice."""

    def __init__(self, peer: Any, conns: list[Connection]) -> None:
        self.peer = peer
        with host_scope(peer.host):
            from aioice import TransportPolicy

            policy = TransportPolicy.RELAY if getattr(peer, "ice_transport_policy", "all") == "relay" else TransportPolicy.ALL
            self.restarts = [IceRestart(c, policy) for c in conns]  # setConfiguration's policy applies from here
        self.remote: tuple[str, str] | None = None
        self.ours = False  # started by our restartIce(), not by a remote offer
        self.local_applied = False
        self.gathered: list[str] = []
        self.done = False
        self._remote_ready = asyncio.Event()
        self._local_ready = asyncio.Event()
        self._candidates: asyncio.Queue[Any] = asyncio.Queue()
        self._task = peer._spawn(self._run())

    @property
    def credentials(self) -> tuple[str, str]:
        return self.restarts[0].credentials

    def set_remote(self, creds: tuple[str, str]) -> None:
        self.remote = creds
        for r in self.restarts:
            r.remote = creds
        self._remote_ready.set()

    def apply_local(self) -> None:
        if not self.local_applied:
            self.local_applied = True
            self._local_ready.set()

    def add_remote(self, candidate: Any) -> None:
        from aiortc.rtcicetransport import candidate_to_aioice

        self._candidates.put_nowait(None if candidate is None else candidate_to_aioice(candidate))

    def view(self, out: dict[str, str]) -> dict[str, str]:
        from .sdp import _with_candidates, strip_candidates

        sdp = with_credentials(out["sdp"], *self.credentials)
        announced = {line: self.peer._announced[line] for line in self.gathered if line in self.peer._announced}
        return {"type": out["type"], "sdp": _with_candidates(strip_candidates(sdp), announced)}

    def cancel(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        peer = self.peer
        try:
            await self._local_ready.wait()
            await self._gather()
            feeder = peer._spawn(self._feed())
            await self._remote_ready.wait()
            peer._rec("ice", "restart", "checking", detail="new candidate pairs, with the remote's new ICE credentials")
            try:
                pairs = await asyncio.gather(*(r.connect() for r in self.restarts))
            except ConnectionError as exc:
                peer._rec("ice", "restart", "failed", detail=str(exc))
                return
            finally:
                feeder.cancel()
            self.done = True
            self._update_descriptions()
            pair = pairs[0]
            detail = repr(pair) if pair is not None else ""
            peer._rec("ice", "restart", "completed", detail=detail)
            if pair is not None:
                peer._rec("ice", "selected-pair", f"{pair.local_candidate.type}/{pair.remote_candidate.type}", detail=repr(pair))
            peer._ice_restarted([r.old for r in self.restarts if r.spliced])
        finally:
            if peer._restart_session is self:
                peer._restart_session = None
            for r in self.restarts:
                if not r.spliced:
                    await asyncio.shield(r.close())

    async def _gather(self) -> None:
        from aiortc.rtcicetransport import candidate_from_aioice
        from aiortc.sdp import candidate_to_sdp

        from .icelog import _CONNECTIONS

        peer = self.peer
        for r in self.restarts:
            _CONNECTIONS[r.new._id] = peer  # its checks become ``ice pair`` rows of this peer
        peer._rec("ice", "restart", "gathering", detail="new ICE credentials (ufrag/pwd), new candidates")
        peer._set_state("iceGatheringState", "gathering")
        with host_scope(peer.host):
            found = await asyncio.gather(*(r.gather() for r in self.restarts))
        mids = self._mids()
        interval = peer.candidate_interval_ms / 1000.0
        for r, candidates in zip(self.restarts, found):
            mid, idx = mids.get(id(r.old), (None, 0))
            for cand in candidates:
                line = "candidate:" + candidate_to_sdp(candidate_from_aioice(cand))
                await asyncio.sleep(interval)
                peer._emitted.add(line)
                self.gathered.append(line)
                peer._announce(line, mid, idx)
        await asyncio.sleep(interval)
        peer._set_state("iceGatheringState", "complete")
        peer._rec("ice", "candidate", "end", ref=f"{peer.actor}:end")
        peer._emit("icecandidate", None)

    def _update_descriptions(self) -> None:
        """Write the new credentials and candidates into aiortc's stored local descriptions."""
        from aiortc.rtcicetransport import RTCIceParameters, candidate_from_aioice

        pc = self.peer._pc
        ufrag, pwd = self.credentials
        candidates = [candidate_from_aioice(c) for r in self.restarts for c in r.old.local_candidates]
        for name in ("currentLocalDescription", "pendingLocalDescription"):
            desc = getattr(pc, "_RTCPeerConnection__" + name, None)
            for media in getattr(desc, "media", []):
                media.ice = RTCIceParameters(usernameFragment=ufrag, password=pwd)
                media.ice_candidates = list(candidates)
                if candidates:
                    media.host, media.port = candidates[0].ip, candidates[0].port

    def _mids(self) -> dict[int, tuple[str | None, int]]:
        """The first (mid, m-line index) that uses each old connection."""
        out: dict[int, tuple[str | None, int]] = {}
        pc = self.peer._pc
        owners = [(t.receiver.transport, t.mid, t._get_mline_index()) for t in pc.getTransceivers()]
        if pc.sctp is not None:
            owners.append((pc.sctp.transport, pc.sctp.mid, getattr(pc, "_RTCPeerConnection__sctp_mline_index", 0)))
        for dtls, mid, idx in owners:
            conn = getattr(getattr(dtls, "transport", None), "_connection", None)
            if conn is not None and mid is not None and id(conn) not in out:
                out[id(conn)] = (mid, idx if idx is not None else 0)
        return out

    async def _feed(self) -> None:
        """Hand the remote peer's new candidates to the fresh connections."""
        while True:
            candidate = await self._candidates.get()
            for r in self.restarts:
                if candidate is None:
                    if not r.new._remote_candidates_end:
                        await r.new.add_remote_candidate(None)
                else:
                    await r.new.add_remote_candidate(candidate)
