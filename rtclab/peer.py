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
lessons of this course live. Checked against **aiortc 1.16.0 / aioice 0.13.0**;
``tests/test_peer.py`` has one test per item that fails if aiortc changes the
behaviour it covers. Each emulation is on by default and can be switched off
with the keyword in brackets, so the difference can be shown.

trickle ICE (``trickle``)
    aiortc's ``setLocalDescription`` gathers first and embeds every candidate
    and ``a=end-of-candidates`` in ``localDescription``; it never fires
    ``icecandidate``. The description returned by :attr:`Peer.localDescription`
    (the one an app sends) carries neither: each candidate is then emitted as
    an ``icecandidate`` event, ``candidate_interval_ms`` apart, ending with
    ``None`` (end-of-candidates), and ``iceGatheringState`` reaches
    ``complete`` only then, as in a browser. Keeping ``a=end-of-candidates`` in
    a stripped SDP would make aioice ignore every later candidate silently.
    As in a browser, ``setLocalDescription`` resolves as soon as the
    description is applied: aiortc's call (which gathers) runs in the
    background, host candidates are announced at once and server-reflexive /
    relay ones when aiortc's gathering ends. Limits: those later candidates
    come together rather than one by one, and the next API call waits for
    aiortc to finish gathering.
operations chain (``chain``)
    Like a browser (W3C "chain an operation"), API calls run one after another
    in call order: an ``addIceCandidate`` issued while ``setRemoteDescription``
    is still pending runs after it and succeeds. aiortc runs each call at once.
``negotiationneeded`` (``negotiationneeded``)
    aiortc never fires it. Fired by the spec's rules: after ``addTrack``,
    ``addTransceiver`` and the first ``createDataChannel``, queued as a task
    (so several calls in one go coalesce into one event), only when the
    signaling state is ``stable`` and the operations chain is empty, and
    checked again when the state returns to ``stable``.
browser errors (``browser_errors``)
    ``addIceCandidate`` with no remote description raises
    :class:`InvalidStateError` (aiortc logs a warning nobody sees and, on the
    answering side, drops the candidate). Candidates are parsed strictly
    (RFC 8839 grammar): garbage raises :class:`OperationError` where aiortc's
    ``candidate_from_sdp`` accepts e.g. a leading ``a=`` as part of the
    foundation; a candidate with neither ``sdpMid`` nor ``sdpMLineIndex`` is a
    ``TypeError``; an unparsable SDP is an :class:`OperationError`, an unknown
    description type a ``TypeError``, a description in the wrong state an
    :class:`InvalidStateError`. mDNS (``.local``) candidates are rejected with
    an :class:`OperationError` saying so: aiortc would resolve them by
    multicast, which the offline lab does not allow.
rollback (``rollback``)
    aiortc accepts ``{"type": "rollback"}`` but does nothing useful (the state
    stays ``have-local-offer``, the next answer fails) and raises on a remote
    offer in ``have-local-offer``. rtclab implements rollback, explicit and
    implicit (a remote offer in ``have-local-offer`` rolls the local offer back
    first, as current browsers do), by closing the aiortc peer connection,
    creating a new one and re-adding the senders' tracks (measured on aiortc
    1.16: connected 38 ms after). Limits: the new connection gathers new
    candidates (new ports, new ICE credentials) and data channels created
    before the rollback are closed, not carried over.

Other aiortc differences are recorded, not hidden: ``iceConnectionState``
goes ``checking`` -> ``completed`` (never ``connected``); ``connectionState``
has no ``disconnected``. aioice's connectivity-check log lines become ``ice``
``pair`` rows.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

try:  # the simulated network owns the host context
    from .network import host_scope
except ImportError:  # pragma: no cover - during development only
    from contextlib import nullcontext as _nc

    def host_scope(actor):  # type: ignore[no-redef]
        return _nc()
from .trace import Trace

__all__ = [
    "DOMException",
    "InvalidAccessError",
    "InvalidStateError",
    "OperationError",
    "Peer",
    "parse_candidate",
    "strip_candidates",
]

logger = logging.getLogger(__name__)

STATE_MACHINES = ("signalingState", "iceGatheringState", "iceConnectionState", "connectionState")


class DOMException(Exception):
    """Base of the browser's named errors; ``name`` is the DOMException name."""

    name = "DOMException"


class InvalidStateError(DOMException):
    """The call is not allowed in the current state (browser ``InvalidStateError``)."""

    name = "InvalidStateError"


class OperationError(DOMException):
    """The operation failed, e.g. an unparsable candidate or SDP (browser ``OperationError``)."""

    name = "OperationError"


class InvalidAccessError(DOMException):
    """The call's arguments do not fit the connection (browser ``InvalidAccessError``)."""

    name = "InvalidAccessError"


def error_name(exc: BaseException) -> str:
    """The browser-style name of an exception (``InvalidStateError``, ``TypeError``...)."""
    if isinstance(exc, DOMException):
        return exc.name
    return type(exc).__name__


# --- candidates -----------------------------------------------------------------------

_CANDIDATE_RE = re.compile(
    r"^candidate:(?P<foundation>[A-Za-z0-9+/]{1,32}) (?P<component>\d{1,3}) "
    r"(?P<transport>udp|tcp|UDP|TCP) (?P<priority>\d{1,10}) (?P<address>\S{1,253}) "
    r"(?P<port>\d{1,5}) typ (?P<type>host|srflx|prflx|relay)(?P<ext>( \S{1,64} \S{1,256})*)$"
)
MAX_CANDIDATE_LENGTH = 1024


def parse_candidate(line: str) -> RTCIceCandidate:
    """Parse a candidate line strictly, as a browser does.

    Accepts ``candidate:...`` (and, like Chrome, the same with a leading
    ``a=``). Raises :class:`OperationError` with a clear message otherwise.

    Examples
    --------
    >>> c = parse_candidate("candidate:1 1 udp 2130706431 192.168.1.10 50000 typ host")
    >>> (c.type, c.ip, c.port)
    ('host', '192.168.1.10', 50000)
    """
    if not isinstance(line, str):
        raise TypeError(f"candidate must be a string, not {type(line).__name__}")
    if len(line) > MAX_CANDIDATE_LENGTH:
        raise OperationError(f"Error processing ICE candidate: too long ({len(line)} characters)")
    text = line.strip()
    if text.startswith("a="):
        text = text[2:]
    m = _CANDIDATE_RE.match(text)
    if m is None:
        raise OperationError(f"Error processing ICE candidate: cannot parse {_short(line)!r}")
    address = m["address"]
    if address.lower().endswith(".local"):
        raise OperationError(
            "Error processing ICE candidate: mDNS (.local) candidates are not supported in rtclab "
            "(aiortc would resolve them by multicast)"
        )
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise OperationError(
            f"Error processing ICE candidate: {address!r} is not an IP address"
        ) from None
    port, component = int(m["port"]), int(m["component"])
    if not 0 <= port <= 65535 or not 1 <= component <= 256:
        raise OperationError(f"Error processing ICE candidate: port or component out of range in {_short(line)!r}")
    ext = m["ext"].split()
    for key, value in zip(ext[::2], ext[1::2]):
        if key == "rport" and not value.isdigit():
            raise OperationError(f"Error processing ICE candidate: bad rport {value!r}")
    return candidate_from_sdp(text[len("candidate:"):])


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def strip_candidates(sdp: str) -> str:
    """Remove candidate lines and ``a=end-of-candidates`` from an SDP (trickle form).

    Also resets ``c=`` and the m-line ports to the placeholder values a browser
    puts in a description before any candidate is known (``0.0.0.0``, port 9).

    Examples
    --------
    >>> strip_candidates("v=0\\r\\nm=video 5000 UDP/TLS/RTP/SAVPF 96\\r\\nc=IN IP4 10.0.0.1\\r\\n"
    ...                  "a=candidate:1 1 udp 1 10.0.0.1 5000 typ host\\r\\na=end-of-candidates\\r\\n")
    'v=0\\r\\nm=video 9 UDP/TLS/RTP/SAVPF 96\\r\\nc=IN IP4 0.0.0.0\\r\\n'
    """
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") or line.startswith("a=end-of-candidates"):
            continue
        if line.startswith("m="):
            parts = line.split(" ")
            if len(parts) > 1 and parts[1] != "0":
                parts[1] = "9"
            line = " ".join(parts)
        elif line.startswith("c=IN IP4 "):
            line = "c=IN IP4 0.0.0.0"
        elif line.startswith("c=IN IP6 "):
            line = "c=IN IP6 ::"
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def _candidates_in(sdp: str) -> list[tuple[str, str | None, int]]:
    """(candidate line, mid, m-line index) of each distinct candidate in an SDP."""
    found: list[tuple[str, str | None, int]] = []
    seen: set[str] = set()
    index, mid = -1, None
    pending: list[str] = []

    def flush() -> None:
        for line in pending:
            key = line.split(" ", 1)[1] if " " in line else line
            if key not in seen:
                seen.add(key)
                found.append((line, mid, index))
        pending.clear()

    for line in sdp.splitlines():
        if line.startswith("m="):
            flush()
            index += 1
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:"):].strip()
        elif line.startswith("a=candidate:") and index >= 0:
            pending.append(line[2:])
    flush()
    return found


def _with_candidates(stripped: str, announced: dict[str, tuple[str | None, int]]) -> str:
    """Put back, into a stripped SDP, the candidate lines already announced."""
    if not announced:
        return stripped
    by_section: dict[int, list[str]] = {}
    for line, (_mid, idx) in announced.items():
        by_section.setdefault(idx, []).append("a=" + line)
    out: list[str] = []
    section = -1
    lines = stripped.splitlines()
    for i, line in enumerate(lines):
        out.append(line)
        if line.startswith("m="):
            section += 1
        nxt = lines[i + 1] if i + 1 < len(lines) else "m="
        if section >= 0 and nxt.startswith("m="):
            out.extend(by_section.get(section, []))
    return "\r\n".join(out) + "\r\n"


def _mids(sdp: str) -> list[str | None]:
    """The mid of each m-section, in order."""
    mids: list[str | None] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            mids.append(None)
        elif line.startswith("a=mid:") and mids:
            mids[-1] = line[len("a=mid:"):].strip()
    return mids


_SDP_TYPES = ("offer", "answer", "pranswer", "rollback")
MAX_SDP_LENGTH = 256 * 1024


def _as_description(desc: Any) -> dict[str, str]:
    """Validate a description dict the way the browser's WebIDL layer does."""
    if isinstance(desc, RTCSessionDescription):
        desc = {"type": desc.type, "sdp": desc.sdp}
    if not isinstance(desc, dict):
        raise TypeError(f"description must be a dict with 'type' and 'sdp', not {type(desc).__name__}")
    kind = desc.get("type")
    if kind not in _SDP_TYPES:
        raise TypeError(f"The provided value {kind!r} is not a valid enum value of type RTCSdpType.")
    sdp = desc.get("sdp", "")
    if sdp is None:
        sdp = ""
    if not isinstance(sdp, str):
        raise TypeError(f"sdp must be a string, not {type(sdp).__name__}")
    return {"type": kind, "sdp": sdp}


def _check_sdp(sdp: str) -> None:
    """Raise OperationError unless ``sdp`` looks like a session description."""
    if len(sdp) > MAX_SDP_LENGTH:
        raise OperationError(f"Failed to parse SessionDescription: too long ({len(sdp)} characters)")
    lines = [line for line in sdp.splitlines() if line]
    if not lines or lines[0] != "v=0":
        raise OperationError(f"Failed to parse SessionDescription. {_short(sdp, 40)!r} Expect line: v=")
    for line in lines:
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise OperationError(f"Failed to parse SessionDescription. Invalid SDP line: {_short(line, 60)!r}")
    for required in ("o=", "s=", "t="):
        if not any(line.startswith(required) for line in lines):
            raise OperationError(f"Failed to parse SessionDescription. Missing line: {required}")
    for line in lines:
        if line.startswith("m="):
            parts = line[2:].split(" ")
            if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                raise OperationError(f"Failed to parse SessionDescription. Invalid m= line: {_short(line, 60)!r}")


def _summary(desc: dict[str, str]) -> str:
    media = [line[2:].split(" ", 1)[0] for line in desc["sdp"].splitlines() if line.startswith("m=")]
    cands = sum(1 for line in desc["sdp"].splitlines() if line.startswith("a=candidate:"))
    return f"{desc['type']} m=[{','.join(media)}] candidates={cands}"


# --- aioice check log -> rows ------------------------------------------------------------

_CONNECTIONS: dict[int, Peer] = {}
_CHECK_RE = re.compile(r"^Connection\((\d+)\) Check CandidatePair\((.*?)\) State\.(\w+) -> State\.(\w+)$")


class _AioiceLog(logging.Handler):
    """Turns aioice's INFO log lines into ``ice`` rows of the peer that owns the connection."""

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - exercised via runs
        try:
            msg = record.getMessage()
        except Exception:
            return
        m = re.match(r"^Connection\((\d+)\) ", msg)
        if not m:
            return
        peer = _CONNECTIONS.get(int(m.group(1)))
        if peer is None or peer._closed:
            return
        check = _CHECK_RE.match(msg)
        if check:
            state = check.group(4).lower().replace("_", "-")
            peer._rec("ice", "pair", state, detail=check.group(2))
        elif "ICE failed" in msg or "Consent to send expired" in msg or "peer reflexive" in msg:
            # aioice names prflx candidates with a random foundation: drop it (determinism)
            text = re.sub(r"Candidate\(\S+ ", "Candidate(", msg.split(") ", 1)[1])
            peer._rec("ice", "log", text.split(" Candidate(")[0], detail=text)


_LOG_HANDLER = _AioiceLog(level=logging.INFO)


def _install_log_handler() -> None:
    log = logging.getLogger("aioice.ice")
    if _LOG_HANDLER not in log.handlers:
        log.addHandler(_LOG_HANDLER)
    if log.getEffectiveLevel() > logging.INFO or log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    # aioice logs each check at INFO; keep them out of the user's root handlers
    log.propagate = False


# --- Peer -----------------------------------------------------------------------------------

Handler = Callable[..., Any]


class Peer:
    """An instrumented, browser-faithful peer connection.

    Parameters
    ----------
    actor
        ``"caller"`` or ``"callee"``: the trace's actor and, in a simulated run,
        the host the peer lives on.
    trace
        Where events go.
    ice_servers
        ICE servers (default none: everything stays offline).
    trickle, chain, negotiationneeded, browser_errors, rollback
        Switch each browser emulation (see module docstring) on or off.
    candidate_interval_ms
        Pause before each emulated ``icecandidate`` event.
    host
        The simulated host to gather on (defaults to ``actor`` in a sim run).

    Examples
    --------
    >>> import asyncio, rtclab
    >>> async def main():
    ...     tr = rtclab.Trace()
    ...     pc = rtclab.Peer("caller", tr)
    ...     pc.createDataChannel("chat")
    ...     offer = await pc.createOffer()
    ...     await pc.close()
    ...     return offer["type"]
    >>> asyncio.run(main())
    'offer'
    """

    def __init__(
        self,
        actor: str,
        trace: Trace,
        *,
        ice_servers: list[RTCIceServer] | None = None,
        trickle: bool = True,
        chain: bool = True,
        negotiationneeded: bool = True,
        browser_errors: bool = True,
        rollback: bool = True,
        candidate_interval_ms: float = 5.0,
        host: str | None = None,
    ) -> None:
        self.actor = actor
        self.trace = trace
        self.ice_servers = list(ice_servers or [])
        self.trickle = trickle
        self.chain = chain
        self.emulate_negotiationneeded = negotiationneeded
        self.browser_errors = browser_errors
        self.emulate_rollback = rollback
        self.candidate_interval_ms = float(candidate_interval_ms)
        self.host = host if host is not None else actor
        self._handlers: dict[str, list[Handler]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._tail: asyncio.Future[None] | None = None
        self._pending_ops = 0
        self._states: dict[str, str] = {name: "new" for name in STATE_MACHINES}
        self._states["signalingState"] = "stable"
        self._gathering_complete_held = False
        self._emitted: set[str] = set()
        self._announced: dict[str, tuple[str | None, int]] = {}
        self._gathering: asyncio.Task[None] | None = None
        self._pending_local: dict[str, str] | None = None
        self._end_emitted = False
        self._emitter: asyncio.Task[None] | None = None
        self._nn_scheduled = False
        self._nn_fired = False
        self._channels: list[Any] = []
        self._probed: set[int] = set()
        self._first_frame: set[str] = set()
        self._remote_end = False
        self._local: dict[str, str] | None = None
        _install_log_handler()
        self._pc = self._new_pc()
        self._rec("call", "RTCPeerConnection", "ok", detail=f"iceServers={len(self.ice_servers)}")

    # -- events -------------------------------------------------------------------------

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register ``handler`` for ``event`` (also usable as a decorator).

        Events: ``negotiationneeded``, ``icecandidate`` (candidate dict or
        ``None``), ``track`` (the remote track), ``datachannel``,
        ``signalingstatechange``, ``icegatheringstatechange``,
        ``iceconnectionstatechange``, ``connectionstatechange``. Handlers may be
        plain functions or coroutine functions; exceptions they raise become
        ``error`` rows and never break the peer.
        """
        if handler is None:
            return lambda fn: self.on(event, fn)
        self._handlers.setdefault(event, []).append(handler)
        return handler

    def _emit(self, event: str, *args: Any) -> None:
        for handler in list(self._handlers.get(event, [])):
            try:
                result = handler(*args)
            except Exception as exc:
                self._error(f"on{event}", exc)
                continue
            if asyncio.iscoroutine(result):
                task = self._spawn(self._guard(f"on{event}", result))
                task.add_done_callback(lambda _t, c=result: c.close())  # never started (cancelled first): no "never awaited" warning

    async def _guard(self, where: str, coro: Awaitable[Any]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error(where, exc)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- recording ------------------------------------------------------------------------

    def _rec(self, kind: str, name: str, value: str = "", **kw: Any) -> None:
        self.trace.record(self.actor, kind, name, value, **kw)

    def _error(self, where: str, exc: BaseException, ref: str = "") -> None:
        self._rec("error", where, error_name(exc), ref=ref, detail=str(exc) or error_name(exc))

    def _set_state(self, name: str, value: str) -> None:
        prev = self._states.get(name, "new")
        if prev == value:
            return
        self._states[name] = value
        self._rec("state", name, value, prev=prev)
        self._emit(name.lower().replace("state", "statechange"))

    # -- the aiortc connection ----------------------------------------------------------------

    def _new_pc(self) -> RTCPeerConnection:
        with host_scope(self.host):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers))
        pc.on("signalingstatechange", lambda p=pc: self._on_aiortc_state(p, "signalingState"))
        pc.on("icegatheringstatechange", lambda p=pc: self._on_aiortc_state(p, "iceGatheringState"))
        pc.on("iceconnectionstatechange", lambda p=pc: self._on_aiortc_state(p, "iceConnectionState"))
        pc.on("connectionstatechange", lambda p=pc: self._on_aiortc_state(p, "connectionState"))
        pc.on("track", lambda track, p=pc: self._on_track(p, track))
        pc.on("datachannel", lambda ch, p=pc: self._on_datachannel(p, ch))
        return pc

    def _register_connections(self) -> None:
        for t in self._pc.getTransceivers():
            conn = getattr(getattr(t.receiver.transport, "transport", None), "_connection", None)
            if conn is not None:
                _CONNECTIONS[conn._id] = self
        sctp = self._pc.sctp
        if sctp is not None:
            conn = getattr(sctp.transport.transport, "_connection", None)
            if conn is not None:
                _CONNECTIONS[conn._id] = self

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

    def _on_track(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        if pc is not self._pc:
            return
        self._rec("media", "track", track.kind, ref=f"{self.actor}:{track.kind}")
        if id(track) not in self._probed:
            self._probed.add(id(track))
            self._spawn(self._probe(track))
        self._emit("track", track)

    async def _probe(self, track: MediaStreamTrack) -> None:
        """Consume a remote track like a media element; record its first decoded frame."""
        try:
            while True:
                await track.recv()
                if track.kind not in self._first_frame:
                    self._first_frame.add(track.kind)
                    self._rec("media", "first-frame", track.kind, ref=f"{self.actor}:{track.kind}")
        except (MediaStreamError, asyncio.CancelledError):
            pass
        except Exception as exc:
            self._error("media", exc)

    def _on_datachannel(self, pc: RTCPeerConnection, channel: Any) -> None:
        if pc is not self._pc:
            return
        self._watch_channel(channel)
        self._emit("datachannel", channel)

    def _watch_channel(self, channel: Any) -> None:
        def opened() -> None:
            self._rec("media", "datachannel", "open", detail=channel.label)

        if channel.readyState == "open":
            opened()
        else:
            channel.on("open", opened)

    # -- the operations chain -------------------------------------------------------------------

    async def _op(self, name: str, fn: Callable[[], Awaitable[Any]], *, ref: str = "", ok_detail: Callable[[Any], str] | None = None) -> Any:
        loop = asyncio.get_running_loop()
        prev = self._tail if self.chain else None
        done: asyncio.Future[None] = loop.create_future()
        if self.chain:
            self._tail = done
        self._pending_ops += 1
        try:
            if prev is not None and not prev.done():
                await asyncio.shield(prev)
            if self._closed:
                raise InvalidStateError(f"Failed to execute '{name}': The RTCPeerConnection's signalingState is 'closed'.")
            busy = self._gathering
            if busy is not None and not busy.done():
                await asyncio.wait([busy])  # aiortc cannot take the next call while it gathers
            with host_scope(self.host):
                result = await fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            exc = self._translate(name, exc)
            self._rec("call", name, "error", ref=ref, detail=f"{error_name(exc)}: {exc}")
            self._error(name, exc, ref=ref)
            raise exc from None
        else:
            self._rec("call", name, "ok", ref=ref, detail=ok_detail(result) if ok_detail else "")
            return result
        finally:
            self._pending_ops -= 1
            if not done.done():
                done.set_result(None)
            if self._pending_ops == 0:
                self._check_negotiation_needed()

    def _translate(self, name: str, exc: Exception) -> Exception:
        """Map aiortc's exceptions onto the browser's error names."""
        if isinstance(exc, (DOMException, TypeError)):
            return exc
        cls = type(exc).__name__
        if cls == "InvalidStateError":
            return InvalidStateError(str(exc))
        if cls == "InvalidAccessError":
            return InvalidAccessError(str(exc))
        if cls == "OperationError":
            return OperationError(str(exc))
        if name == "setRemoteDescription" or name == "setLocalDescription":
            return OperationError(f"Failed to set {'remote' if 'Remote' in name else 'local'} description: {cls}: {exc}")
        if name == "addIceCandidate":
            return OperationError(f"Error processing ICE candidate: {cls}: {exc}")
        return exc

    # -- browser API: descriptions ------------------------------------------------------------

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
        return out

    @property
    def remoteDescription(self) -> dict[str, str] | None:
        """The remote description, as a dict, or ``None``."""
        desc = self._pc.remoteDescription
        return None if desc is None else {"type": desc.type, "sdp": desc.sdp}

    async def createOffer(self) -> dict[str, str]:
        """Create an offer (no candidates in it, as in a browser)."""

        async def op() -> dict[str, str]:
            desc = await self._pc.createOffer()
            return {"type": desc.type, "sdp": desc.sdp}

        return await self._op("createOffer", op, ok_detail=_summary)

    async def createAnswer(self) -> dict[str, str]:
        """Create an answer to the remote offer."""

        async def op() -> dict[str, str]:
            if self.browser_errors and self._states["signalingState"] not in ("have-remote-offer", "have-local-pranswer"):
                raise InvalidStateError(
                    f"Failed to execute 'createAnswer': PeerConnection cannot create an answer in a state other than have-remote-offer or have-local-pranswer (state: {self._states['signalingState']})."
                )
            desc = await self._pc.createAnswer()
            return {"type": desc.type, "sdp": desc.sdp}

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
                desc = {"type": made.type, "sdp": made.sdp}
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
            if self.trickle:
                await self._apply_local_early(session)
            else:
                await self._pc.setLocalDescription(session)
                self._register_connections()
            if self._pc.signalingState == "stable":
                self._nn_fired = False

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
            if self.browser_errors and desc["type"] in ("answer", "pranswer") and self._states["signalingState"] != "have-local-offer":
                raise InvalidStateError(
                    f"Failed to execute 'setRemoteDescription': Failed to set remote answer sdp: Called in wrong state: {self._states['signalingState']}"
                )
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=desc["sdp"], type=desc["type"]))
            self._register_connections()
            if self._pc.signalingState == "stable":
                self._nn_fired = False

        await self._op("setRemoteDescription", op, ok_detail=lambda _r: _summary(desc))

    # -- rollback ------------------------------------------------------------------------------

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

    # -- trickle ICE -----------------------------------------------------------------------------

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
        while True:
            finished = gathering.done()
            if finished:
                if gathering.cancelled() or gathering.exception() is not None:
                    return
                desc = pc.localDescription
                fresh = [c for c in (_candidates_in(desc.sdp) if desc else []) if c[0] not in self._emitted]
            else:
                fresh = [c for c in self._live_candidates() if c[0] not in self._emitted]
            for line, mid, idx in fresh:
                self._emitted.add(line)
                await asyncio.sleep(interval)
                if self._closed or pc is not self._pc:
                    return
                self._announce(line, mid, idx)
            if finished:
                break
            await asyncio.wait([gathering], timeout=max(interval, 0.001))
        if not self._end_emitted:
            await asyncio.sleep(interval)
            if self._closed or pc is not self._pc:
                return
            self._end_emitted = True
            self._rec("ice", "candidate", "end", ref=f"{self.actor}:end")
            self._emit("icecandidate", None)
            if self._gathering_complete_held or self._pc.iceGatheringState == "complete":
                self._gathering_complete_held = False
                self._set_state("iceGatheringState", "complete")

    # -- candidates --------------------------------------------------------------------------------

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

        async def op() -> None:
            if self.browser_errors and self._pc.remoteDescription is None:
                raise InvalidStateError(
                    "Failed to execute 'addIceCandidate' on 'RTCPeerConnection': The remote description was null"
                )
            if not line:
                if self._remote_end:
                    return  # a repeated end-of-candidates is harmless
                self._remote_end = True
                await self._pc.addIceCandidate(None)
                return
            assert candidate is not None
            if self.browser_errors:
                parsed = parse_candidate(line)
                if self._remote_end:
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
            parsed.sdpMid = None if mid is None else str(mid)
            parsed.sdpMLineIndex = idx if isinstance(idx, int) else None
            await self._pc.addIceCandidate(parsed)

        try:
            await self._op("addIceCandidate", op, ref=ref, ok_detail=lambda _r: line or "end-of-candidates")
        except Exception as exc:
            self._rec("ice", "candidate", "rejected", ref=ref, detail=f"{error_name(exc)}: {exc}")
            raise
        self._rec("ice", "candidate", "added", ref=ref, detail=line or "end-of-candidates")

    def _remote_end_ref(self) -> str:
        other = "callee" if self.actor == "caller" else "caller"
        return f"{other}:end"

    # -- tracks and channels --------------------------------------------------------------------

    def addTrack(self, track: MediaStreamTrack, *streams: Any) -> Any:
        """Add a local track; fires ``negotiationneeded`` (emulated)."""
        try:
            if self._closed:
                raise InvalidStateError("Failed to execute 'addTrack': The RTCPeerConnection's signalingState is 'closed'.")
            sender = self._pc.addTrack(track)
        except Exception as exc:
            exc = self._translate("addTrack", exc)
            self._rec("call", "addTrack", "error", detail=f"{error_name(exc)}: {exc}")
            self._error("addTrack", exc)
            raise exc from None
        self._rec("call", "addTrack", "ok", detail=track.kind)
        self._update_negotiation_needed()
        return sender

    def addTransceiver(self, track_or_kind: MediaStreamTrack | str, *, direction: str = "sendrecv") -> Any:
        """Add a transceiver (``"audio"``/``"video"`` or a track); fires ``negotiationneeded``."""
        try:
            if self._closed:
                raise InvalidStateError("Failed to execute 'addTransceiver': The RTCPeerConnection's signalingState is 'closed'.")
            transceiver = self._pc.addTransceiver(track_or_kind, direction=direction)
        except Exception as exc:
            exc = self._translate("addTransceiver", exc)
            self._rec("call", "addTransceiver", "error", detail=f"{error_name(exc)}: {exc}")
            self._error("addTransceiver", exc)
            raise exc from None
        kind = track_or_kind if isinstance(track_or_kind, str) else track_or_kind.kind
        self._rec("call", "addTransceiver", "ok", detail=f"{kind} {direction}")
        self._update_negotiation_needed()
        return transceiver

    async def replaceTrack(self, sender: Any, track: MediaStreamTrack | None) -> None:
        """``sender.replaceTrack(track)``, recorded (no renegotiation needed)."""

        async def op() -> None:
            result = sender.replaceTrack(track)  # synchronous in aiortc, a promise in browsers
            if asyncio.iscoroutine(result):
                await result

        await self._op("replaceTrack", op, ok_detail=lambda _r: "none" if track is None else track.kind)

    def createDataChannel(self, label: str, **options: Any) -> Any:
        """Create a data channel; the first one fires ``negotiationneeded``."""
        first = self._pc.sctp is None and not self._channels
        channel = self._pc.createDataChannel(label, **options)
        self._channels.append(channel)
        self._watch_channel(channel)
        self._rec("call", "createDataChannel", "ok", detail=label)
        if first:
            self._update_negotiation_needed()
        return channel

    def getTransceivers(self) -> list[Any]:
        """The aiortc transceivers."""
        return self._pc.getTransceivers()

    def getSenders(self) -> list[Any]:
        """The aiortc senders."""
        return self._pc.getSenders()

    # -- negotiationneeded ------------------------------------------------------------------------

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

    # -- closing --------------------------------------------------------------------------------

    def _abort_sockets(self) -> None:
        """Close the UDP sockets of this peer's ICE connections directly (aiortc's close() was interrupted)."""
        owners = [t.receiver.transport for t in self._pc.getTransceivers()]
        if self._pc.sctp is not None:
            owners.append(self._pc.sctp.transport)
        for dtls in owners:
            conn = getattr(getattr(dtls, "transport", None), "_connection", None)
            for protocol in list(getattr(conn, "_protocols", [])):
                transport = getattr(protocol, "transport", None)
                if transport is not None:
                    transport.close()

    async def close(self) -> None:
        """Close the connection and stop every task of this peer (idempotent)."""
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        me = asyncio.current_task()
        cancels = me.cancelling() if me is not None else 0
        try:
            await self._pc.close()
        except asyncio.CancelledError:
            # aiortc's close() awaits its own tasks: when something else cancelled them
            # (asyncio.run's shutdown after a KeyboardInterrupt) it stops halfway, is not
            # re-entrant, and leaves the ICE sockets open. Close those directly.
            self._abort_sockets()
            if me is None or me.cancelling() > cancels:
                raise  # this task itself was cancelled meanwhile
        except Exception as exc:  # pragma: no cover - aiortc close is robust
            self._error("close", exc)
        for task in list(self._tasks):
            if task is not current:
                try:
                    await task
                except BaseException:
                    pass
        for key in [k for k, p in _CONNECTIONS.items() if p is self]:
            del _CONNECTIONS[key]
        self._rec("call", "close", "ok")
        self._set_state("signalingState", "closed")
        for name in ("iceConnectionState", "connectionState"):
            if self._states[name] != "closed":
                self._set_state(name, "closed")
