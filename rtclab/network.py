"""Where packets travel: a deterministic simulated network for real aiortc/aioice.

The simulation is a discrete-event one. :func:`run_sim` runs a coroutine on a
:class:`VirtualLoop`, an ``asyncio`` selector loop whose clock is virtual: when
no callback is ready, the loop jumps straight to its next timer instead of
sleeping. UDP endpoints created on that loop are in-memory transports attached
to a :class:`SimNetwork`, which delivers datagrams with ``loop.call_at`` after a
per-link latency (plus jitter, loss and serialization delay drawn from a seeded
``random.Random``), through NATs of the four classic (RFC 3489) types, built from
RFC 4787's mapping and filtering behaviours, and to a STUN /
TURN server living on the "internet" side. The real aiortc and aioice code runs
unchanged on top; only a few wall-clock readers, thread users and hash orders
are redirected, and only while (and where) a virtual loop is running.

Addresses (documentation ranges; no packet ever touches a real socket):

=========  ==================  ====================================
topology   host                address
=========  ==================  ====================================
``lan``    caller              192.168.1.10
``lan``    callee              192.168.1.11
``nat``    caller              10.0.1.10 behind NAT 203.0.113.1
``nat``    callee              10.0.2.10 behind NAT 198.51.100.1
both       STUN/TURN server    192.0.2.1:3478 (relays on 192.0.2.1)
=========  ==================  ====================================

Patched while a simulation runs (each patch behaves exactly like the original
unless the running loop is a :class:`VirtualLoop`, so real-network aiortc in
other threads is unaffected; installation is reference counted):

* ``aioice.ice.get_host_addresses``: the address of the host in scope
  (:func:`host_scope` / :data:`current_host`).
* module ``time`` of ``aiortc.mediastreams``, ``aiortc.rtcsctptransport``,
  ``aiortc.rtcrtpsender``, ``aiortc.rtcrtpreceiver``, ``aioice.turn``: virtual
  wall clock; ``aiortc.clock.current_datetime`` likewise.
* module ``random`` of ``aioice.ice``, ``aiortc.rtcrtpsender``,
  ``aiortc.rtcrtpreceiver``, ``aiortc.codecs.vpx``: a seeded generator
  (consent and RTCP intervals, ICE tie-breaker, VP8 picture id, whose size
  changes how frames split into packets).
* module ``threading`` and ``queue`` of ``aiortc.rtcrtpreceiver``: the decoder
  thread becomes an inline decoder driven by the loop.
* ``RTCDtlsTransport._recv_next`` / ``_write_ssl``: DTLS handshake
  retransmission on a virtual timer (OpenSSL's own timer runs on real time, so
  when it has run out it is fired before OpenSSL reads and its flight dropped).
* module ``av`` of ``aiortc.codecs.vpx``: a VP8 encoder keeps a fixed speed
  (a negative ``cpu-used``, at libvpx's fastest, :data:`SIM_VP8_SPEED`; a
  positive one would let libvpx pick its speed by timing each encode on the
  wall clock) and one thread, so
  frame sizes do not depend on machine load or core count; its temporal
  denoiser is off (aiortc asks for ``noise-sensitivity`` 4: a filter for
  camera noise, which a synthetic test pattern does not have, at about a
  quarter of the encoder's time).
* ``aiortc.rate.RateCounter``: the same 1 ms-bucket bitrate counter, whose
  buckets are created when first used instead of 1000 at every reset (each
  video receiver resets its counter at start and when packets pause).
* ``__hash__`` of ``RTCIceTransport``, ``RTCDtlsTransport``, ``RTCRtpSender``,
  ``RTCRtpReceiver``: creation order, so set iteration is reproducible.
* The loop itself runs executor jobs inline, creates tasks whose hash is
  their creation order, and fires timers due at the same instant in the order
  they were scheduled.
"""

from __future__ import annotations

import asyncio
from asyncio import _get_running_loop  # (C; what asyncio.get_running_loop wraps)
import contextvars
import datetime
import functools
import hashlib
import heapq
import importlib.metadata
import inspect
import itertools
import math
import logging
import queue as _queue_mod
import random as _random_mod
import selectors
import socket
import sys
import types
import ipaddress
import threading
import time as _time_mod
from asyncio.base_events import (  # the constants of asyncio's _run_once (VirtualLoop._run_once)
    _MIN_CANCELLED_TIMER_HANDLES_FRACTION,
    _MIN_SCHEDULED_TIMER_HANDLES,
    MAXIMUM_SELECT_TIMEOUT as _MAXIMUM_SELECT_TIMEOUT,
)
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aioice.ice
import aioice.stun as stun
import aioice.turn
import aiortc
import aiortc.clock
import aiortc.codecs.vpx
import aiortc.rate
import av as _av
import aiortc.mediastreams
import aiortc.rtcdtlstransport
import aiortc.rtcicetransport
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import aiortc.rtcsctptransport
import pylibsrtp
from OpenSSL import SSL

__all__ = [
    "NAT_TYPES",
    "SERVER_IP",
    "SERVER_PORT",
    "SimNetwork",
    "SimStalled",
    "SimVersionError",
    "VirtualLoop",
    "check_versions",
    "current_host",
    "host_scope",
    "in_sim",
    "run_sim",
]

T = TypeVar("T")
logger = logging.getLogger(__name__)

NAT_TYPES = ("full-cone", "restricted", "port-restricted", "symmetric")
TOPOLOGIES = ("lan", "nat")
SERVER_IP = "192.0.2.1"
SERVER_PORT = 3478
TURN_USERNAME = "rtclab"
TURN_PASSWORD = "rtclab-secret"
TURN_REALM = "rtclab.sim"
#: Virtual wall clock at virtual time 0 (2023-11-14T22:13:20Z): fixed, so NTP
#: timestamps and jitter computations are the same on every run.
SIM_EPOCH = 1_700_000_000.0
#: DTLS retransmission timer (OpenSSL's defaults: 1 s doubling to 60 s, 12 tries).
DTLS_RTO_INITIAL = 1.0
DTLS_RTO_MAX = 60.0
DTLS_MAX_RETRANSMITS = 12

SUPPORTED_AIORTC = "1.16."
SUPPORTED_AIOICE = "0.13."

current_host: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rtclab_current_host", default=None
)


class SimStalled(RuntimeError):
    """The simulation can make no progress: no callback is ready and no timer is set."""


class SimVersionError(RuntimeError):
    """The installed aiortc/aioice are versions whose internals the sim was not built for."""


@functools.lru_cache(maxsize=1)
def _installed_versions() -> tuple[str, str]:
    """(aiortc, aioice) versions as installed; read once (importlib.metadata scans sys.path)."""
    try:
        aiortc_version = importlib.metadata.version("aiortc")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        aiortc_version = getattr(aiortc, "__version__", "?")
    try:
        aioice_version = importlib.metadata.version("aioice")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        aioice_version = getattr(aioice, "__version__", "?")
    return aiortc_version, aioice_version


def check_versions() -> None:
    """Refuse aiortc/aioice versions other than the ones the simulator patches (1.16.x / 0.13.x)."""
    aiortc_version, aioice_version = _installed_versions()
    problems = []
    if not aiortc_version.startswith(SUPPORTED_AIORTC):
        problems.append(f"aiortc {aiortc_version} (needs {SUPPORTED_AIORTC}x)")
    if not aioice_version.startswith(SUPPORTED_AIOICE):
        problems.append(f"aioice {aioice_version} (needs {SUPPORTED_AIOICE}x)")
    if problems:
        raise SimVersionError(
            "rtclab's simulated network patches aiortc/aioice internals and only "
            "supports aiortc 1.16.x with aioice 0.13.x; installed: "
            + ", ".join(problems)
            + ". Install the pinned versions or use the real network."
        )


@contextmanager
def host_scope(actor: str | None) -> Iterator[None]:
    """Make ``actor``'s simulated host the one whose address aiortc gathers (no-op for None)."""
    if actor is None:
        yield
        return
    token = current_host.set(actor)
    try:
        yield
    finally:
        current_host.reset(token)


# ---------------------------------------------------------------------------
# the virtual-time loop


def in_sim() -> VirtualLoop | None:
    """The running :class:`VirtualLoop`, or None when not inside a simulation."""
    loop = _get_running_loop()  # (None outside a loop: no exception to raise and catch, ~40k calls a long call)
    return loop if isinstance(loop, VirtualLoop) else None


class _SimTask(asyncio.Task):  # type: ignore[type-arg]
    """A task whose hash is its creation order on its virtual loop."""

    _rtclab_seq = 0

    def __hash__(self) -> int:
        return self._rtclab_seq


class _VirtualSelector(selectors.BaseSelector):
    """Wraps a real selector; when nothing is ready it advances virtual time."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self.loop: VirtualLoop | None = None
        self.registered = 0  # how many real file objects (1 in a sim: the loop's self-pipe)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = self._sel.register(fileobj, events, data)
        self.registered = len(self._sel.get_map())
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = self._sel.unregister(fileobj)
        self.registered = len(self._sel.get_map())
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._sel.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._sel.get_map()

    def close(self) -> None:
        self._sel.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self.loop
        assert loop is not None
        # Only the loop's own self-pipe registered (always, in a sim): no real
        # event can be ready, and nothing ever blocks on the pipe (a thread's
        # call_soon_threadsafe lands in the ready queue, seen every iteration),
        # so the poll is skipped, unless the loop is about to wait for real.
        if timeout is None or self.registered > 1:
            events = self._sel.select(0)
            if events or timeout == 0:
                return events
        elif timeout == 0:
            return []
        if timeout is None:
            if loop.stall_error:
                raise SimStalled(loop._stall_message())
            return self._sel.select(None)
        # Nothing is ready: jump to the next timer (asyncio only passes a
        # positive timeout when no callback is ready).
        scheduled = loop._scheduled
        if scheduled:
            loop._vtime = max(loop._vtime, scheduled[0][0])
        else:  # pragma: no cover - asyncio computes the timeout from _scheduled
            loop._vtime += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """A discrete-event asyncio loop: ``time()`` is virtual and idle waits take no wall time."""

    def __init__(self, net: SimNetwork | None = None, *, stall_error: bool = True) -> None:
        self._vtime = 0.0
        self.net = net
        self.stall_error = stall_error
        self._hash_seq = itertools.count(1)
        self._timer_seq = itertools.count()
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        # Not ``self._task_factory``: asyncio's BaseEventLoop.__init__ sets an
        # instance attribute of that name (None), which would shadow a method
        # and silently install no factory at all (tasks would then hash by
        # memory address, and runs with TURN would not repeat).
        self.set_task_factory(VirtualLoop._sim_task_factory)

    def time(self) -> float:
        return self._vtime

    def wall_time(self) -> float:
        """The virtual wall clock (``time.time()`` as seen by patched modules)."""
        return SIM_EPOCH + self._vtime

    def next_hash(self) -> int:
        return next(self._hash_seq)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> asyncio.TimerHandle:  # type: ignore[override]
        """``call_at`` whose timers due at the same instant fire first-in, first-out.

        ``asyncio.TimerHandle`` compares by due time only, so equal-time timers
        would leave the heap in an order that depends on the heap's whole
        history (any extra or cancelled timer elsewhere reshuffles them). On a
        virtual clock equal times are common: two datagrams sent together on
        one link arrive together, and a real link keeps them in order. So the
        heap (``_scheduled``) holds ``(when, seq, timer)`` tuples: ties are
        broken by a sequence number, and tuples compare in C (a long call
        makes tens of thousands of heap comparisons).
        """
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        if timer._source_traceback:
            del timer._source_traceback[-1]
        heapq.heappush(self._scheduled, (timer._when, next(self._timer_seq), timer))
        timer._scheduled = True
        return timer

    def _rearm(self, timer: asyncio.TimerHandle, when: float) -> asyncio.TimerHandle:
        """``call_at(when, ...)`` again for a timer that has fired (not cancelled), reusing its handle."""
        self._check_closed()
        timer._when = when
        heapq.heappush(self._scheduled, (when, next(self._timer_seq), timer))
        timer._scheduled = True
        return timer

    def _run_once(self) -> None:
        """One iteration of the loop: asyncio's ``_run_once`` on the ``(when, seq, timer)`` heap.

        The same steps in the same order as ``BaseEventLoop._run_once`` of
        Python 3.11 (drop cancelled timers, poll, move due timers to the ready
        queue, run what was ready), so callbacks run in the same order.
        """
        scheduled = self._scheduled
        sched_count = len(scheduled)
        if sched_count > _MIN_SCHEDULED_TIMER_HANDLES and self._timer_cancelled_count / sched_count > _MIN_CANCELLED_TIMER_HANDLES_FRACTION:
            kept = []
            for entry in scheduled:
                if entry[2]._cancelled:
                    entry[2]._scheduled = False
                else:
                    kept.append(entry)
            heapq.heapify(kept)
            self._scheduled = scheduled = kept
            self._timer_cancelled_count = 0
        else:
            while scheduled and scheduled[0][2]._cancelled:
                self._timer_cancelled_count -= 1
                heapq.heappop(scheduled)[2]._scheduled = False
        ready = self._ready
        if self._selector.registered <= 1 and (ready or self._stopping or scheduled):
            # _VirtualSelector.select inlined: nothing real to poll; jump to the next timer if idle
            if not (ready or self._stopping) and scheduled[0][0] > self._vtime:
                self._vtime = scheduled[0][0]
        else:
            if ready or self._stopping:
                timeout: float | None = 0
            elif scheduled:
                timeout = min(max(0.0, scheduled[0][0] - self._vtime), _MAXIMUM_SELECT_TIMEOUT)
            else:
                timeout = None
            event_list = self._selector.select(timeout)
            if event_list:
                self._process_events(event_list)
            event_list = None
        end_time = self._vtime + self._clock_resolution
        pop = heapq.heappop
        while scheduled and scheduled[0][0] < end_time:
            handle = pop(scheduled)[2]
            handle._scheduled = False
            ready.append(handle)
        if self._debug:  # pragma: no cover - asyncio's own loop, with its slow-callback warnings
            for _ in range(len(ready)):
                handle = ready.popleft()
                if handle._cancelled:
                    continue
                try:
                    self._current_handle = handle
                    t0 = self.time()
                    handle._run()
                    if self.time() - t0 >= self.slow_callback_duration:
                        logger.warning("Executing %s took %.3f seconds", handle, self.time() - t0)
                finally:
                    self._current_handle = None
            return
        popleft = ready.popleft
        for _ in range(len(ready)):
            handle = popleft()
            if not handle._cancelled:
                handle._run()

    @staticmethod
    def _sim_task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task:  # type: ignore[type-arg]
        task = _SimTask(coro, loop=loop, **kwargs)
        assert isinstance(loop, VirtualLoop)
        task._rtclab_seq = loop.next_hash()
        return task

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``func`` inline: threads must not run alongside virtual time."""
        self._check_closed()
        fut = self.create_future()
        if func is socket.gethostbyname and args and not _is_ip(str(args[0])):
            # No DNS inside the simulation (and no blocking real lookup either).
            if self.net is not None:
                self.net._error("dns", "gaierror", f"no DNS in the simulated network: {args[0]!r} (use IP addresses)")
            fut.set_exception(socket.gaierror(socket.EAI_NONAME, f"rtclab sim: no DNS for {args[0]!r}"))
            return fut
        try:
            fut.set_result(func(*args))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        return fut

    async def create_datagram_endpoint(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | None = None,
        remote_addr: tuple[str, int] | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        """An in-memory UDP endpoint on the simulated host in scope."""
        if self.net is None:
            raise OSError("rtclab sim: this virtual loop has no network")
        return self.net._create_endpoint(protocol_factory, local_addr, remote_addr)

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise OSError("rtclab sim: TCP is not simulated (use TURN over UDP)")

    async def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise OSError(f"rtclab sim: no DNS in the simulated network ({host!r})")

    def _stall_message(self) -> str:
        tasks = [t for t in asyncio.all_tasks(self) if not t.done()]
        names = []
        for task in sorted(tasks, key=lambda t: getattr(t, "_rtclab_seq", 0))[:6]:
            coro = task.get_coro()
            names.append(getattr(coro, "__qualname__", repr(coro)))
        return (
            f"simulation stalled at virtual t={self._vtime:.3f}s: nothing is ready and no "
            f"timer is scheduled, so nothing can ever happen again "
            f"({len(tasks)} pending task(s): {', '.join(names) or 'none'}); a future "
            f"nobody resolves, or an event that would come from outside the simulation?"
        )


# ---------------------------------------------------------------------------
# the network


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _classify(data: bytes) -> str:
    """Protocol of a datagram from its first byte (RFC 7983 demultiplexing)."""
    if not data:
        return "empty"
    b = data[0]
    if b < 4:
        return "stun"
    if 20 <= b < 64:
        return "dtls"
    if 64 <= b < 80:
        return "turn-channel"
    if 128 <= b < 192:
        if len(data) > 1 and 192 <= data[1] <= 223:
            return "rtcp"
        return "srtp"
    return "other"


def _ep(addr: tuple[str, int]) -> str:
    return f"{addr[0]}:{addr[1]}"


class _SimTransport(asyncio.DatagramTransport):
    """An in-memory UDP socket of a simulated host."""

    def __init__(self, net: SimNetwork, host: _Host, port: int, protocol: asyncio.DatagramProtocol, remote_addr: tuple[str, int] | None) -> None:
        super().__init__()
        self._net = net
        self._host = host
        self._addr = (host.ip, port)
        self._protocol = protocol
        self._remote = remote_addr
        self._closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self._addr
        if name == "peername":
            return self._remote if self._remote is not None else default
        if name == "socket":
            return None
        return default

    def sendto(self, data: bytes, addr: tuple[str, int] | None = None) -> None:  # type: ignore[override]
        if self._closing:
            return
        if addr is None:
            addr = self._remote
        if addr is None:
            raise ValueError("rtclab sim: no destination address")
        self._net._send(self._host.actor, self._addr, (str(addr[0]), int(addr[1])), bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._net._unbind(self._addr)
        self._net._loop_call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return 0


@dataclass
class _Host:
    actor: str
    ip: str
    nat: _Nat | None
    next_port: int = 50000


@dataclass
class _Mapping:
    private: tuple[str, int]
    public_port: int
    allowed_ips: set[str] = field(default_factory=set)
    allowed_eps: set[tuple[str, int]] = field(default_factory=set)


class _Nat:
    """An RFC 4787 NAT: mapping endpoint-independent (per destination if symmetric); filtering none, by address, or by address and port."""

    def __init__(self, actor: str, public_ip: str, kind: str) -> None:
        if kind not in NAT_TYPES:
            raise ValueError(f"unknown NAT type {kind!r}; expected one of {NAT_TYPES}")
        self.actor = actor
        self.public_ip = public_ip
        self.kind = kind
        self._next_port = 40000
        self._by_key: dict[Any, _Mapping] = {}
        self._by_port: dict[int, _Mapping] = {}

    def outbound(self, private: tuple[str, int], dst: tuple[str, int]) -> tuple[str, int]:
        key: Any = (private, dst) if self.kind == "symmetric" else private
        mapping = self._by_key.get(key)
        if mapping is None:
            mapping = _Mapping(private, self._next_port)
            self._next_port += 1
            self._by_key[key] = mapping
            self._by_port[mapping.public_port] = mapping
        mapping.allowed_ips.add(dst[0])
        mapping.allowed_eps.add(dst)
        return (self.public_ip, mapping.public_port)

    def inbound(self, src: tuple[str, int], public_port: int) -> tuple[str, int] | None:
        """The private endpoint for a packet from ``src``, or None when filtered."""
        mapping = self._by_port.get(public_port)
        if mapping is None:
            return None
        if self.kind == "full-cone":
            ok = True
        elif self.kind == "restricted":
            ok = src[0] in mapping.allowed_ips
        else:
            ok = src in mapping.allowed_eps
        return mapping.private if ok else None


@dataclass
class _Allocation:
    client: tuple[str, int]
    relay_port: int
    transaction_id: bytes
    lifetime: int
    permissions: set[str] = field(default_factory=set)
    channel_to_peer: dict[int, tuple[str, int]] = field(default_factory=dict)
    peer_to_channel: dict[tuple[str, int], int] = field(default_factory=dict)


class _StunTurnServer:
    """STUN (Binding) and TURN (RFC 5766 subset used by aioice) on SERVER_IP:SERVER_PORT."""

    def __init__(self, net: SimNetwork) -> None:
        self.net = net
        self.key = aioice.turn.make_integrity_key(TURN_USERNAME, TURN_REALM, TURN_PASSWORD)
        self.nonce = b"rtclab-nonce-0001"
        self.allocations: dict[tuple[str, int], _Allocation] = {}
        self.by_relay: dict[int, _Allocation] = {}
        self._next_relay = 49152

    def _reply(self, response: stun.Message, dst: tuple[str, int], sign: bool) -> None:
        if sign:
            response.add_message_integrity(self.key)
        else:
            response.add_fingerprint()
        self.net._send("server", (SERVER_IP, SERVER_PORT), dst, bytes(response))

    def _error(self, request: stun.Message, dst: tuple[str, int], code: int, reason: str, sign: bool = True) -> None:
        response = stun.Message(request.message_method, stun.Class.ERROR, transaction_id=request.transaction_id)
        response.attributes["ERROR-CODE"] = (code, reason)
        if code in (401, 438):
            response.attributes["REALM"] = TURN_REALM
            response.attributes["NONCE"] = self.nonce
            sign = False
        self._reply(response, dst, sign)

    def received(self, data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> None:
        if dst[1] != SERVER_PORT:
            self._from_peer(data, src, dst[1])
            return
        if len(data) >= 4 and aioice.turn.is_channel_data(data):
            alloc = self.allocations.get(src)
            if alloc is None:
                return
            channel, length = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")
            peer = alloc.channel_to_peer.get(channel)
            if peer is not None and peer[0] in alloc.permissions:
                self.net._send("server", (SERVER_IP, alloc.relay_port), peer, data[4 : 4 + length])
            return
        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        method, klass = message.message_method, message.message_class
        if method == stun.Method.BINDING and klass == stun.Class.REQUEST:
            response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=message.transaction_id)
            response.attributes["XOR-MAPPED-ADDRESS"] = src
            self._reply(response, src, sign=False)
            return
        if klass == stun.Class.INDICATION:
            if method == stun.Method.SEND:
                alloc = self.allocations.get(src)
                peer = message.attributes.get("XOR-PEER-ADDRESS")
                payload = message.attributes.get("DATA")
                if alloc is not None and peer is not None and payload is not None and peer[0] in alloc.permissions:
                    self.net._send("server", (SERVER_IP, alloc.relay_port), tuple(peer), payload)
            return
        if klass != stun.Class.REQUEST:
            return
        if method not in (stun.Method.ALLOCATE, stun.Method.REFRESH, stun.Method.CREATE_PERMISSION, stun.Method.CHANNEL_BIND):
            self._error(message, src, 400, "Bad Request", sign=False)
            return
        # Long-term credentials (RFC 8489 section 9.2; RFC 5389 section 10.2 before it).
        if "MESSAGE-INTEGRITY" not in message.attributes or "USERNAME" not in message.attributes:
            self._error(message, src, 401, "Unauthorized")
            return
        if message.attributes.get("NONCE") != self.nonce:
            self._error(message, src, 438, "Stale Nonce")
            return
        if message.attributes["USERNAME"] != TURN_USERNAME or not message.check_message_integrity(self.key):
            self._error(message, src, 401, "Unauthorized")
            return
        alloc = self.allocations.get(src)
        if method == stun.Method.ALLOCATE:
            if alloc is not None:
                if alloc.transaction_id != message.transaction_id:
                    self._error(message, src, 437, "Allocation Mismatch")
                    return
            else:
                alloc = _Allocation(src, self._next_relay, message.transaction_id, min(int(message.attributes.get("LIFETIME", 600)), 3600))
                self._next_relay += 1
                self.allocations[src] = alloc
                self.by_relay[alloc.relay_port] = alloc
            response = stun.Message(method, stun.Class.RESPONSE, transaction_id=message.transaction_id)
            response.attributes["XOR-RELAYED-ADDRESS"] = (SERVER_IP, alloc.relay_port)
            response.attributes["LIFETIME"] = alloc.lifetime
            response.attributes["XOR-MAPPED-ADDRESS"] = src
            self._reply(response, src, sign=True)
            return
        if alloc is None:
            self._error(message, src, 437, "Allocation Mismatch")
            return
        response = stun.Message(method, stun.Class.RESPONSE, transaction_id=message.transaction_id)
        if method == stun.Method.REFRESH:
            lifetime = int(message.attributes.get("LIFETIME", 600))
            if lifetime == 0:
                del self.allocations[src]
                del self.by_relay[alloc.relay_port]
            response.attributes["LIFETIME"] = min(lifetime, 3600)
        elif method == stun.Method.CREATE_PERMISSION:
            peer = message.attributes.get("XOR-PEER-ADDRESS")
            if peer is None:
                self._error(message, src, 400, "Bad Request")
                return
            alloc.permissions.add(peer[0])
        else:  # CHANNEL_BIND
            channel = message.attributes.get("CHANNEL-NUMBER")
            peer = message.attributes.get("XOR-PEER-ADDRESS")
            if channel is None or peer is None or not 0x4000 <= channel <= 0x7FFF:
                self._error(message, src, 400, "Bad Request")
                return
            peer = tuple(peer)
            if alloc.channel_to_peer.get(channel, peer) != peer or alloc.peer_to_channel.get(peer, channel) != channel:
                self._error(message, src, 400, "Bad Request")
                return
            alloc.channel_to_peer[channel] = peer
            alloc.peer_to_channel[peer] = channel
            alloc.permissions.add(peer[0])
        self._reply(response, src, sign=True)

    def _from_peer(self, data: bytes, src: tuple[str, int], relay_port: int) -> None:
        alloc = self.by_relay.get(relay_port)
        if alloc is None or src[0] not in alloc.permissions:
            self.net._note("filtered", data, src, (SERVER_IP, relay_port), "no TURN permission")
            return
        channel = alloc.peer_to_channel.get(src)
        if channel is not None:
            out = channel.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data
        else:
            indication = stun.Message(stun.Method.DATA, stun.Class.INDICATION)
            indication.attributes["XOR-PEER-ADDRESS"] = src
            indication.attributes["DATA"] = data
            out = bytes(indication)
        self.net._send("server", (SERVER_IP, SERVER_PORT), alloc.client, out)


class SimNetwork:
    """A simulated network: two hosts (``caller``, ``callee``), optional NATs, a STUN/TURN server.

    Parameters are fixed at construction except for :meth:`cut` and
    :meth:`drop_all`. Use it with :func:`run_sim`; one network per run.
    """

    def __init__(
        self,
        topology: str = "lan",
        nat: str | tuple[str, str] = "port-restricted",
        latency_ms: float = 1.0,
        jitter_ms: float = 0.0,
        loss: float = 0.0,
        bandwidth_kbps: float | None = None,
        seed: int = 0,
        stun: bool = True,
        turn: bool = True,
        record_packets: bool = False,
    ) -> None:
        if topology not in TOPOLOGIES:
            raise ValueError(f"unknown topology {topology!r}; expected one of {TOPOLOGIES}")
        if isinstance(nat, str):
            nat = (nat, nat)
        nat = (str(nat[0]), str(nat[1]))
        for kind in nat:
            if kind not in NAT_TYPES:
                raise ValueError(f"unknown NAT type {kind!r}; expected one of {NAT_TYPES}")
        if not 0.0 <= loss <= 1.0:
            raise ValueError("loss must be within [0, 1]")
        if latency_ms < 0 or jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must be >= 0")
        if bandwidth_kbps is not None and bandwidth_kbps <= 0:
            raise ValueError("bandwidth_kbps must be > 0 (or None for unlimited)")
        self.topology = topology
        self.nat = nat
        self.latency_ms = float(latency_ms)
        self.jitter_ms = float(jitter_ms)
        self.loss = float(loss)
        self.bandwidth_kbps = bandwidth_kbps
        self.seed = seed
        self.stun = stun
        self.turn = turn
        self.record_packets = record_packets
        self._net_rng = _random_mod.Random(seed)
        #: drives aioice/aiortc's own randomised intervals (consent, RTCP)
        self.app_random = _random_mod.Random(f"rtclab-app-{seed}")
        self._record: Callable[..., None] | None = None
        self._loop: VirtualLoop | None = None
        self._cuts: list[tuple[float, float, str | None, bool]] = []  # (from, until, who, peers_only)
        self._transports: dict[tuple[str, int], _SimTransport] = {}
        self._link_last: dict[tuple[str, str], float] = {}
        self._tx_free: dict[str, float] = {}
        self._packet_ids = itertools.count(1)
        #: (virtual t, protocol, value, detail) per packet event, when record_packets
        self.packet_log: list[tuple[float, str, str, str]] = []
        #: counters per value ("sent", "delivered", "dropped", "filtered")
        self.stats: dict[str, int] = {"sent": 0, "delivered": 0, "dropped": 0, "filtered": 0}
        if topology == "lan":
            self.hosts = {
                "caller": _Host("caller", "192.168.1.10", None),
                "callee": _Host("callee", "192.168.1.11", None),
            }
            self._subnet = {"caller": "lan", "callee": "lan"}
        else:
            self.hosts = {
                "caller": _Host("caller", "10.0.1.10", _Nat("caller", "203.0.113.1", nat[0])),
                "callee": _Host("callee", "10.0.2.10", _Nat("callee", "198.51.100.1", nat[1])),
            }
            self._subnet = {"caller": "caller", "callee": "callee"}
        self._host_by_ip = {h.ip: h for h in self.hosts.values()}
        self._nat_by_ip = {h.nat.public_ip: h.nat for h in self.hosts.values() if h.nat is not None}
        self.server = _StunTurnServer(self)

    # -- public API ---------------------------------------------------------

    def __repr__(self) -> str:
        nat = f" nat={self.nat[0]}/{self.nat[1]}" if self.topology == "nat" else ""
        return (
            f"SimNetwork({self.topology}{nat} latency={self.latency_ms}ms jitter={self.jitter_ms}ms "
            f"loss={self.loss} bw={self.bandwidth_kbps} seed={self.seed} stun={self.stun} turn={self.turn})"
        )

    def ice_servers(self) -> list[aiortc.RTCIceServer]:
        """The sim's STUN/TURN servers per the ``stun``/``turn`` flags, as aiortc ICE servers."""
        servers = []
        if self.stun:
            servers.append(aiortc.RTCIceServer(urls=f"stun:{SERVER_IP}:{SERVER_PORT}"))
        if self.turn:
            servers.append(
                aiortc.RTCIceServer(
                    urls=f"turn:{SERVER_IP}:{SERVER_PORT}?transport=udp",
                    username=TURN_USERNAME,
                    credential=TURN_PASSWORD,
                )
            )
        return servers

    def attach(self, record: Callable[..., None]) -> None:
        """Send packet rows (if ``record_packets``) and error rows to ``record`` (rtclab's Trace.record)."""
        self._record = record

    def cut(self, at_s: float, *, who: str | None = None, peers_only: bool = False,
            for_s: float | None = None) -> None:
        """From virtual time ``at_s`` drop every packet (of host ``who``, or all).

        With ``peers_only`` only packets between the two hosts are dropped and
        the STUN/TURN server stays reachable (otherwise aioice's close also
        waits ~40 s for its TURN allocation deletion to time out). With
        ``for_s`` the path comes back ``for_s`` seconds later (a short
        outage: a tunnel, a Wi-Fi hand-over); without it the cut lasts.
        """
        if who is not None and who not in self.hosts:
            raise ValueError(f"unknown host {who!r}; expected one of {sorted(self.hosts)}")
        if for_s is not None and not float(for_s) > 0:
            raise ValueError(f"a cut lasts for_s > 0 seconds, got {for_s!r}")
        until = float("inf") if for_s is None else float(at_s) + float(for_s)
        self._cuts.append((float(at_s), until, who, peers_only))

    def restore(self, at_s: float) -> None:
        """End, at virtual time ``at_s``, every cut that is still open then (the path heals)."""
        self._cuts = [(at, at_s if at <= at_s < until else until, who, peers_only)
                      for at, until, who, peers_only in self._cuts]

    def drop_all(self) -> None:
        """Drop every packet from now on (loss = 1)."""
        self.loss = 1.0

    def host_ip(self, actor: str) -> str:
        """The private address of ``actor``'s host."""
        return self.hosts[actor].ip

    def public_ip(self, actor: str) -> str:
        """The address ``actor`` appears from on the internet (its NAT's, or its own)."""
        host = self.hosts[actor]
        return host.nat.public_ip if host.nat is not None else host.ip

    # -- internals ----------------------------------------------------------

    def _bind_loop(self, loop: VirtualLoop) -> None:
        if self._loop is not None and self._loop is not loop and not self._loop.is_closed():
            raise RuntimeError("a SimNetwork can only be used by one run_sim at a time")
        if self._loop is not None:
            self._reset_runtime()
        self._loop = loop

    def _reset_runtime(self) -> None:
        """Forget a previous run's state (sockets, NAT mappings, allocations, random streams, logs)."""
        self._net_rng = _random_mod.Random(self.seed)
        self.app_random = _random_mod.Random(f"rtclab-app-{self.seed}")
        self._transports.clear()
        self._link_last.clear()
        self._tx_free.clear()
        self._packet_ids = itertools.count(1)
        self.packet_log = []
        self.stats = {"sent": 0, "delivered": 0, "dropped": 0, "filtered": 0}
        for host in self.hosts.values():
            host.next_port = 50000
            if host.nat is not None:
                host.nat = _Nat(host.actor, host.nat.public_ip, host.nat.kind)
        self._nat_by_ip = {h.nat.public_ip: h.nat for h in self.hosts.values() if h.nat is not None}
        self.server = _StunTurnServer(self)

    def _loop_call_soon(self, cb: Callable[..., Any], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon(cb, *args)

    def _error(self, name: str, value: str, detail: str) -> None:
        logger.warning("rtclab sim %s: %s", name, detail)
        if self._record is not None:
            try:
                self._record("network", "error", name, value, detail=detail)
            except Exception:  # pragma: no cover - never break the sim for a trace row
                logger.exception("trace record failed")

    def _gather_addresses(self) -> list[str]:
        actor = current_host.get()
        if actor is None:
            self._error(
                "host_scope", "NoHostInScope",
                "aiortc gathered candidates outside host_scope(actor): no simulated host address given",
            )
            return []
        if actor not in self.hosts:
            self._error("host_scope", "UnknownHost", f"no simulated host named {actor!r}")
            return []
        return [self.hosts[actor].ip]

    def _create_endpoint(
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | None,
        remote_addr: tuple[str, int] | None,
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        host: _Host | None = None
        if local_addr is not None and local_addr[0] in self._host_by_ip:
            host = self._host_by_ip[local_addr[0]]
        else:
            actor = current_host.get()
            if actor in self.hosts:
                host = self.hosts[actor]
        if host is None:
            detail = f"cannot create a UDP endpoint (local_addr={local_addr}, host in scope={current_host.get()!r})"
            self._error("create_datagram_endpoint", "OSError", detail)
            raise OSError(f"rtclab sim: {detail}")
        port = int(local_addr[1]) if local_addr is not None and local_addr[1] else 0
        if port == 0:
            port = host.next_port
            host.next_port += 1
        addr = (host.ip, port)
        if addr in self._transports:
            raise OSError(f"rtclab sim: address {_ep(addr)} already in use")
        protocol = protocol_factory()
        transport = _SimTransport(self, host, port, protocol, remote_addr)
        self._transports[addr] = transport
        protocol.connection_made(transport)
        return transport, protocol

    def _unbind(self, addr: tuple[str, int]) -> None:
        self._transports.pop(addr, None)

    def _note(self, value: str, data: bytes, src: tuple[str, int], dst: tuple[str, int], reason: str = "", ref: str = "") -> None:
        self.stats[value] = self.stats.get(value, 0) + 1
        if not self.record_packets:
            return
        proto = _classify(data)
        detail = f"{_ep(src)} -> {_ep(dst)}"
        if reason:
            detail += f" ({reason})"
        t = self._loop.time() if self._loop is not None else 0.0
        self.packet_log.append((t, proto, value, detail))
        if self._record is not None:
            self._record("network", "net", proto, value, ref=ref, detail=detail)

    def _owner(self, ip: str) -> str | None:
        host = self._host_by_ip.get(ip)
        if host is not None:
            return host.actor
        nat = self._nat_by_ip.get(ip)
        if nat is not None:
            return nat.actor
        return "server" if ip == SERVER_IP else None

    def _is_cut(self, now: float, src: str | None, dst: str | None) -> bool:
        for at, until, who, peers_only in self._cuts:
            if now < at or now >= until:
                continue
            if peers_only and (src not in self.hosts or dst not in self.hosts):
                continue
            if who is None or who in (src, dst):
                return True
        return False

    def _send(self, actor: str, src: tuple[str, int], dst: tuple[str, int], data: bytes) -> None:
        """A datagram leaves ``actor``'s socket ``src`` for ``dst``."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        ref = f"p{next(self._packet_ids)}" if self.record_packets else ""
        self._note("sent", data, src, dst, ref=ref)
        now = loop.time()
        # Routing: NAT translation of the source when leaving a private subnet.
        wire_src = src
        host = self.hosts.get(actor)
        dst_host = self._host_by_ip.get(dst[0])
        if host is not None and dst_host is not None:
            if self._subnet[host.actor] != self._subnet[dst_host.actor]:
                self._note("dropped", data, src, dst, "unroutable private address", ref=ref)
                return
        elif host is not None and host.nat is not None:
            if dst[0] == host.nat.public_ip:
                self._note("dropped", data, src, dst, "no hairpinning", ref=ref)
                return
            wire_src = host.nat.outbound(src, dst)
        elif host is None and dst_host is not None and dst_host.nat is not None:
            self._note("dropped", data, src, dst, "unroutable private address", ref=ref)
            return
        dst_owner = self._owner(dst[0])
        if dst_owner is None:
            self._note("dropped", data, src, dst, "unroutable", ref=ref)
            return
        # Random draws happen for every routed packet, in send order.
        lost = self._net_rng.random() < self.loss
        jitter = self._net_rng.uniform(0.0, self.jitter_ms) if self.jitter_ms > 0 else 0.0
        if self._is_cut(now, actor, dst_owner):
            self._note("dropped", data, src, dst, "cut", ref=ref)
            return
        if lost:
            self._note("dropped", data, src, dst, "loss", ref=ref)
            return
        depart = now
        if self.bandwidth_kbps is not None:
            free = max(now, self._tx_free.get(actor, 0.0))
            depart = free + len(data) * 8 / (self.bandwidth_kbps * 1000.0)
            self._tx_free[actor] = depart
        arrival = depart + (self.latency_ms + jitter) / 1000.0
        link = (actor, dst_owner)
        if self.jitter_ms == 0:
            arrival = max(arrival, self._link_last.get(link, 0.0))
        self._link_last[link] = max(arrival, self._link_last.get(link, 0.0))
        loop.call_at(arrival, self._arrive, data, src, wire_src, dst, actor, dst_owner, ref)

    def _arrive(self, data: bytes, orig_src: tuple[str, int], src: tuple[str, int], dst: tuple[str, int], src_owner: str, dst_owner: str, ref: str) -> None:
        loop = self._loop
        assert loop is not None
        if self._is_cut(loop.time(), src_owner, dst_owner):
            self._note("dropped", data, orig_src, dst, "cut", ref=ref)
            return
        if dst[0] == SERVER_IP:
            self._note("delivered", data, src, dst, ref=ref)
            self.server.received(data, src, dst)
            return
        final = dst
        nat = self._nat_by_ip.get(dst[0])
        if nat is not None:
            private = nat.inbound(src, dst[1])
            if private is None:
                self._note("filtered", data, src, dst, f"{nat.kind} NAT", ref=ref)
                return
            final = private
        transport = self._transports.get(final)
        if transport is None or transport.is_closing():
            self._note("dropped", data, src, final, "port closed", ref=ref)
            return
        self._note("delivered", data, src, final, ref=ref)
        transport._protocol.datagram_received(data, src)


# ---------------------------------------------------------------------------
# patches (active only inside run_sim, and only on a VirtualLoop)


class _TimeProxy:
    """Stands in for a module's ``time``: ``time.time()`` is virtual inside a sim."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_time_mod, name)

    @staticmethod
    def time() -> float:
        loop = in_sim()
        if loop is None:
            return _time_mod.time()
        return loop.wall_time()


class _RandomProxy:
    """Stands in for a module's ``random``: seeded per network inside a sim."""

    def __getattr__(self, name: str) -> Any:
        loop = in_sim()
        if loop is not None and loop.net is not None:
            return getattr(loop.net.app_random, name)
        return getattr(_random_mod, name)


#: The VP8 encoder's fixed speed in a sim run (libvpx real-time speeds go up to
#: 16, its fastest; aiortc asks for 6). Encoding is the largest cost of a
#: simulated call; at 16 a 160x120 test-pattern frame fits one RTP packet, and
#: on a lossless link every event row but packet rows is the same as at 6.
SIM_VP8_SPEED = 16


class _PinnedEncoder:
    """A libvpx encoder context whose speed does not depend on the wall clock.

    In VP8 real-time mode a *negative* ``cpu-used`` is a fixed speed (-6 means
    speed 6), while a positive one makes libvpx pick the speed per frame by
    timing its own encodes on the wall clock (``vp8_auto_select_speed``), so
    frame sizes, and with them packet counts, would follow machine load. aiortc
    asks for -6; in a sim run the speed is fixed at :data:`SIM_VP8_SPEED`
    (libvpx's fastest) whatever is asked, and encoding is single-threaded, so
    the same run gives the same packets. The temporal denoiser
    (``noise-sensitivity``) is turned off: it smooths camera noise, which the
    synthetic camera does not make, and costs encoder time.
    """

    def __init__(self, ctx: Any) -> None:
        object.__setattr__(self, "_ctx", ctx)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "options" and isinstance(value, dict) and "cpu-used" in value:
            value = {**value, "cpu-used": str(-SIM_VP8_SPEED)}
            if "noise-sensitivity" in value:
                value["noise-sensitivity"] = "0"  # no temporal denoiser: a synthetic camera has no noise
        elif name == "thread_count":
            value = 1
        setattr(self._ctx, name, value)


class _CodecContextProxy:
    """Stands in for ``av.CodecContext`` in aiortc.codecs.vpx: pins encoders in a sim."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_av.CodecContext, name)

    def create(self, *args: Any, **kwargs: Any) -> Any:
        ctx = _av.CodecContext.create(*args, **kwargs)
        mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
        if in_sim() is not None and mode == "w":
            return _PinnedEncoder(ctx)
        return ctx


class _AvProxy:
    """Stands in for the ``av`` module inside aiortc.codecs.vpx."""

    CodecContext = _CodecContextProxy()

    def __getattr__(self, name: str) -> Any:
        return getattr(_av, name)


class _InlineDecoderQueue(_queue_mod.Queue):  # type: ignore[type-arg]
    """The receiver's decoder input queue; in a sim, a put decodes inline."""

    _rtclab_worker: _InlineDecoder | None = None

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        worker = self._rtclab_worker
        if worker is not None:
            worker.drain()


class _InlineDecoder:
    """Replaces the receiver's decoder thread: decodes synchronously on the loop."""

    def __init__(self, target: Callable[..., Any], name: str | None, args: tuple[Any, ...]) -> None:
        self._loop, self._input, self._output, self._error = args
        self.name = name
        self._codec_name: str | None = None
        self._decoder: Any = None
        self._alive = False

    def start(self) -> None:
        self._alive = True
        if isinstance(self._input, _InlineDecoderQueue):
            self._input._rtclab_worker = self
        self.drain()

    def is_alive(self) -> bool:
        return self._alive

    def join(self, timeout: float | None = None) -> None:
        self.drain()

    def drain(self) -> None:
        import av

        while self._alive:
            try:
                task = self._input.get_nowait()
            except _queue_mod.Empty:
                return
            if task is None:
                self._output.put_nowait(None)
                self._alive = False
                self._decoder = None
                return
            codec, encoded_frame = task
            if codec.name != self._codec_name:
                self._decoder = aiortc.rtcrtpreceiver.get_decoder(codec)
                self._codec_name = codec.name
            try:
                frames = self._decoder.decode(encoded_frame)
            except av.FFmpegError as exc:
                logger.debug("inline decoder failed to decode %s frame: %s", codec.name, exc)
                self._error.set()
                continue
            for frame in frames:
                self._output.put_nowait(frame)


class _ThreadingProxy:
    def __getattr__(self, name: str) -> Any:
        return getattr(threading, name)

    @staticmethod
    def Thread(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 - mirrors threading.Thread
        if in_sim() is None:
            return threading.Thread(*args, **kwargs)
        return _InlineDecoder(kwargs["target"], kwargs.get("name"), tuple(kwargs["args"]))


class _QueueProxy:
    def __getattr__(self, name: str) -> Any:
        return getattr(_queue_mod, name)

    @staticmethod
    def Queue(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 - mirrors queue.Queue
        if in_sim() is None:
            return _queue_mod.Queue(*args, **kwargs)
        return _InlineDecoderQueue(*args, **kwargs)


_orig_get_host_addresses = aioice.ice.get_host_addresses
_orig_current_datetime = aiortc.clock.current_datetime
_Dtls = aiortc.rtcdtlstransport.RTCDtlsTransport
_orig_recv_next = _Dtls._recv_next
_orig_write_ssl = _Dtls._write_ssl


def _sim_get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    loop = in_sim()
    if loop is None or loop.net is None:
        return _orig_get_host_addresses(use_ipv4, use_ipv6)
    return loop.net._gather_addresses() if use_ipv4 else []


def _sim_current_datetime() -> datetime.datetime:
    loop = in_sim()
    if loop is None:
        return _orig_current_datetime()
    return datetime.datetime.fromtimestamp(loop.wall_time(), datetime.timezone.utc)


@dataclass
class _DtlsState:
    flight: list[bytes] = field(default_factory=list)
    new_flight: bool = True
    rto: float = DTLS_RTO_INITIAL
    deadline: float | None = None
    retransmits: int = 0
    seen: set[bytes] = field(default_factory=set)
    real_timeouts_defused: int = 0


def _dtls_state(self: Any) -> _DtlsState:
    state = self.__dict__.get("_rtclab_dtls")
    if state is None:
        state = self.__dict__["_rtclab_dtls"] = _DtlsState()
    return state


async def _sim_write_ssl(self: Any) -> None:
    """``_write_ssl`` that also remembers the current handshake flight."""
    if in_sim() is None:
        return await _orig_write_ssl(self)
    from OpenSSL import SSL

    try:
        data = self._ssl.bio_read(1500)
    except SSL.Error:
        data = b""
    if data:
        if not self._RTCDtlsTransport__handshake_done:
            state = _dtls_state(self)
            if state.new_flight:
                state.flight = []
                state.new_flight = False
                state.rto = DTLS_RTO_INITIAL
                state.deadline = asyncio.get_running_loop().time() + state.rto
                state.retransmits = 0
            state.flight.append(data)
        await _send_datagrams(self, [data])


async def _send_datagrams(self: Any, datagrams: list[bytes]) -> None:
    """Send DTLS datagrams on the ICE transport, counted as aiortc's ``_write_ssl`` counts them."""
    for data in datagrams:
        await self.transport._send(data)
        self._RTCDtlsTransport__tx_bytes += len(data)
        self._RTCDtlsTransport__tx_packets += 1


async def _resend_flight(self: Any, state: _DtlsState) -> None:
    await _send_datagrams(self, state.flight)


def _drain_bio(ssl: Any) -> list[bytes]:
    """Everything OpenSSL has written to its outgoing memory BIO."""
    from OpenSSL import SSL

    out = []
    while True:
        try:
            data = ssl.bio_read(1500)
        except SSL.Error:  # WantReadError: nothing left
            return out
        if not data:
            return out
        out.append(data)


async def _defuse_openssl_timer(self: Any, state: _DtlsState) -> None:
    """Keep OpenSSL's own real-time DTLS timer from retransmitting in a sim.

    OpenSSL checks its retransmission timer (on the real clock) whenever it
    reads, and resends the last flight by itself once the timer has run out.
    A sim handshake normally takes milliseconds of real time, but on a loaded
    machine it can take over a second, and the extra flight would change the
    run (more packets, other loss draws). The sim already retransmits on
    virtual time (:func:`_sim_recv_next`), so an expired real timer is fired
    here, before OpenSSL can, and the flight it writes is thrown away.
    """
    ssl = self._ssl
    left = ssl.DTLSv1_get_timeout()
    if left is None or left > 0:
        return
    pending = _drain_bio(ssl)  # normally empty: every operation is followed by _write_ssl
    ssl.DTLSv1_handle_timeout()
    _drain_bio(ssl)
    state.real_timeouts_defused += 1
    await _send_datagrams(self, pending)


async def _sim_recv_next(self: Any) -> None:
    """``_recv_next`` with the DTLS handshake retransmission timer on virtual time.

    OpenSSL's timer runs on real time, which hardly moves during a sim, so on
    a virtual timeout the last flight is resent as recorded; a datagram that
    repeats one already received during the handshake (the peer retransmitting)
    also triggers a resend, as RFC 6347 section 4.2.4 prescribes.
    """
    if in_sim() is None:
        return await _orig_recv_next(self)
    state = _dtls_state(self)
    loop = asyncio.get_running_loop()
    deadline = None
    if not self._RTCDtlsTransport__handshake_done:
        real_timeout = self._ssl.DTLSv1_get_timeout()
        if real_timeout is None and self.encrypted:
            self._RTCDtlsTransport__handshake_done = True
        elif real_timeout is not None and state.retransmits < DTLS_MAX_RETRANSMITS:
            # OpenSSL's timer is armed: retransmit at an absolute virtual deadline
            # (other datagrams arriving meanwhile must not postpone it).
            deadline = state.deadline

    if deadline is not None:
        remaining = deadline - loop.time()
        data = None
        if remaining > 0:
            try:
                data = await asyncio.wait_for(self.transport._recv(), timeout=remaining)
            except asyncio.TimeoutError:
                data = None
        if data is None:
            state.retransmits += 1
            state.rto = min(state.rto * 2, DTLS_RTO_MAX)
            state.deadline = loop.time() + state.rto
            await _resend_flight(self, state)
            return
    else:
        data = await self.transport._recv()

    self._RTCDtlsTransport__rx_bytes += len(data)
    self._RTCDtlsTransport__rx_packets += 1

    first_byte = data[0]
    if first_byte > 19 and first_byte < 64:
        digest = hashlib.sha1(data).digest()
        if digest in state.seen:
            # The peer retransmitted: it has not seen our last flight.
            await _resend_flight(self, state)
        elif not self._RTCDtlsTransport__handshake_done:
            state.seen.add(digest)
            state.new_flight = True
        await _defuse_openssl_timer(self, state)
        self._ssl.bio_write(data)
        try:
            data = self._ssl.recv(1500)
        except SSL.ZeroReturnError:
            data = None
        except SSL.Error:
            data = b""
        await self._write_ssl()
        if data is None:
            raise ConnectionError
        elif data and self._data_receiver:
            await self._data_receiver._handle_data(data)
    elif first_byte > 127 and first_byte < 192 and self._rx_srtp:
        arrival_time_ms = aiortc.clock.current_ms()
        try:
            if aiortc.rtcdtlstransport.is_rtcp(data):
                data = self._rx_srtp.unprotect_rtcp(data)
                await self._handle_rtcp_data(data)
            else:
                data = self._rx_srtp.unprotect(data)
                await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)
        except pylibsrtp.Error:
            pass


class _LazyRateCounter(aiortc.rate.RateCounter):
    """aiortc's ``RateCounter`` with its 1 ms buckets made on first use.

    aiortc allocates ``window_size`` (1000) bucket objects at every
    :meth:`reset`, a few milliseconds per short call with the garbage they
    leave. Here an absent bucket is an empty one: buckets live in a dict from
    index to bucket, and erasing old ones visits only the buckets that exist.
    Every count, total and rate is the one the original computes.
    """

    def reset(self) -> None:
        self._buckets: dict[int, aiortc.rate.RateBucket] = {}  # type: ignore[assignment]
        self._origin_index = 0
        self._origin_ms = None
        self._total = aiortc.rate.RateBucket()

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        index = (self._origin_index + now_ms - self._origin_ms) % self._window_size
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = aiortc.rate.RateBucket()
        bucket.count += 1
        bucket.value += value
        self._total.count += 1
        self._total.value += value

    def _erase_old(self, now_ms: int) -> None:
        # the original steps the origin 1 ms at a time while it is before now - window + 1
        steps = math.ceil(now_ms - self._window_size + 1 - self._origin_ms)
        if steps <= 0:
            return
        window = self._window_size
        for index in list(self._buckets):
            if steps >= window or (index - self._origin_index) % window < steps:
                bucket = self._buckets.pop(index)
                self._total.count -= bucket.count
                self._total.value -= bucket.value
        self._origin_index = (self._origin_index + steps) % window
        self._origin_ms += steps


def _sim_hash(self: Any) -> int:
    value = self.__dict__.get("_rtclab_hash")
    if value is not None:
        return value
    loop = in_sim()
    if loop is None:
        return object.__hash__(self)
    value = self.__dict__["_rtclab_hash"] = loop.next_hash()
    return value


_HASHED_CLASSES = (
    aiortc.rtcicetransport.RTCIceTransport,
    aiortc.rtcdtlstransport.RTCDtlsTransport,
    aiortc.rtcrtpsender.RTCRtpSender,
    aiortc.rtcrtpreceiver.RTCRtpReceiver,
)

_MISSING = object()


def step_waiter_now(fut: asyncio.Future[Any]) -> None:
    """Resolve ``fut`` and step the one task awaiting it right here, not one loop iteration later.

    For a callback that runs in the slot where the awaiting task would have
    been woken anyway (see :class:`GridTick`): the task's wake-up callback is
    taken off the future and called directly, in the task's context, as the
    loop would have called it.
    """
    callbacks = fut._callbacks  # type: ignore[attr-defined]
    if callbacks and len(callbacks) == 1:
        wakeup, context = callbacks[0]
        fut.remove_done_callback(wakeup)
        fut.set_result(None)
        context.run(wakeup, fut)
    else:  # pragma: no cover - a GridTick's future has exactly one waiter
        fut.set_result(None)


def step_cancelled_now(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]) -> None:
    """``fut`` was cancelled (its task was): run the wake-up the cancel queued here instead."""
    for handle in loop._ready:  # type: ignore[attr-defined]
        args = handle._args
        if args is not None and len(args) == 1 and args[0] is fut and not handle._cancelled:
            callback, context = handle._callback, handle._context
            handle.cancel()
            context.run(callback, *args)
            return


class GridTick:
    """A periodic wait (``asyncio.sleep``, or ``asyncio.wait`` on one future with a timeout) that skips idle wake-ups.

    In virtual time the cost of a polling loop is its wake-ups: a future, a
    timer, a task step, the loop body, every few virtual milliseconds, for
    seconds. A ``GridTick`` schedules exactly what the wait it replaces did,
    in the same order: the timer (and, with ``watch``, a done-callback on
    that future, as ``asyncio.wait`` adds), then, when the timer fires, one
    callback in the ready queue where the task's wake-up would have been.
    There it asks ``idle()`` whether the task, woken, would only find nothing
    to do and wait again; if so it re-arms itself (the same ``call_later``
    the task would have made, in the same slot, so every other timer due at
    the same instant keeps its order), and otherwise steps the task in that
    very slot (:func:`step_waiter_now`). ``watch`` completing wakes the task
    as ``asyncio.wait`` does. A task cancelled between the timer and the slot
    is stepped in the slot too, as it would have been. Use: ``await
    GridTick(delay, idle)``.
    """

    __slots__ = ("loop", "delay", "idle", "watch", "future", "timer", "released", "slot")

    def __init__(self, delay: float, idle: Callable[[], bool], watch: asyncio.Future[Any] | None = None) -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualLoop), "GridTick runs in a simulation only"
        self.loop = loop
        self.delay = delay
        self.idle = idle
        self.watch = watch
        # one context, one slot handle, one timer handle for every grid point (they read no
        # context variable, and a handle that ran can run again)
        context = contextvars.copy_context()
        self.slot = asyncio.Handle(self._slot, (), loop, context)
        self.timer = asyncio.TimerHandle(0.0, self._tick, (), loop, context)
        self.future: asyncio.Future[None] = loop.create_future()
        self._arm()

    def _arm(self) -> None:
        """``loop.call_later(delay, ...)`` (with the timer handle reused), then the done-callback."""
        self.released = False
        loop = self.loop
        self.timer = loop._rearm(self.timer, loop.time() + self.delay)
        if self.watch is not None:
            self.watch.add_done_callback(self._watched_done)

    def _watched_done(self, _fut: Any) -> None:
        """``asyncio.wait``'s ``_on_completion``: cancel the timer, wake the task unless already woken."""
        self.timer.cancel()
        if not self.released and not self.future.done():
            self.future.set_result(None)

    def _tick(self) -> None:
        if self.released or self.future.done():
            return
        loop = self.loop
        if not loop._stopping and self.idle() and all(  # type: ignore[attr-defined]
            h._cancelled or getattr(h._callback, "__func__", None) is _GRID_TICK for h in loop._ready  # type: ignore[attr-defined]
        ):
            # Between here and the slot only other grid ticks due now would run (timers due now
            # and anything they schedule come after the slot): nothing that changes what idle()
            # sees. Their slots would follow in the order the ticks run, so re-arming here,
            # tick by tick, gives every re-armed timer the sequence number it would have had,
            # and saves the loop an iteration (and a handle) per grid point.
            if self.watch is not None:
                self.watch.remove_done_callback(self._watched_done)
            self._arm()
            return
        self.released = True  # (the future the task awaited would be done from here on)
        loop._ready.append(self.slot)  # type: ignore[attr-defined]  # (= call_soon(self._slot))

    def _slot(self) -> None:
        fut = self.future
        if fut.done():
            if fut.cancelled():
                step_cancelled_now(self.loop, fut)
            return
        if self.idle():
            # what the woken task did on its way out of the wait (cancelling the timer that
            # fired changes nothing) and into the next one
            if self.watch is not None:
                self.watch.remove_done_callback(self._watched_done)
            self._arm()
            return
        step_waiter_now(fut)

    def _cleanup(self) -> None:
        self.timer.cancel()
        if self.watch is not None:
            self.watch.remove_done_callback(self._watched_done)

    def __await__(self) -> Any:
        try:
            return (yield from self.future.__await__())
        finally:
            self._cleanup()


_GRID_TICK = GridTick._tick
_CONNECT_CODE = aioice.ice.Connection.connect.__code__
_CHECK_PERIODIC = aioice.ice.Connection._check_periodic
_WAITING_OR_FROZEN = (aioice.ice.CandidatePair.State.WAITING, aioice.ice.CandidatePair.State.FROZEN)


def _check_loop_known() -> bool:
    """Whether aioice's check loop is the one :func:`_checks_idle` predicts (aioice 0.13's)."""
    try:
        periodic = inspect.getsource(_CHECK_PERIODIC)
        connect = inspect.getsource(aioice.ice.Connection.connect)
    except (OSError, TypeError):  # pragma: no cover - no source: do not guess
        return False
    return ("if self._check_list_done:" in periodic and "return self._remote_candidates_expected()" in periodic
            and "if not self._check_periodic():" in connect and "await asyncio.sleep(0.02)" in connect)


_CHECK_LOOP_KNOWN = _check_loop_known()


def _checks_idle(conn: Any) -> bool:
    """Whether aioice's ``_check_periodic`` would start nothing and ask for another 20 ms tick."""
    return (not conn._check_list_done
            and not any(pair.state in _WAITING_OR_FROZEN for pair in conn._check_list)
            and conn._remote_candidates_expected())


def _aioice_sleep(delay: float, result: Any = None) -> Any:
    """``asyncio.sleep`` as aioice.ice sees it in a sim: the check loop's 20 ms tick is a :class:`GridTick`.

    ``Connection.connect()`` sleeps 20 ms between calls of ``_check_periodic``
    for as long as remote candidates may come (seconds, when no path works);
    most of those calls start nothing. Any other sleep is asyncio's own, and so
    is this one on an aioice whose check loop reads differently (the idle
    prediction would not hold).
    """
    frame = sys._getframe(1)
    if _CHECK_LOOP_KNOWN and frame.f_code is _CONNECT_CODE and delay > 0 and result is None and in_sim() is not None:
        conn = frame.f_locals.get("self")
        if conn is not None and "_check_periodic" not in conn.__dict__ and type(conn)._check_periodic is _CHECK_PERIODIC:
            return GridTick(delay, lambda: _checks_idle(conn))
    return asyncio.sleep(delay, result)


def _sim_asyncio_for_aioice() -> types.ModuleType:
    """A copy of the asyncio module for aioice.ice, whose ``sleep`` is :func:`_aioice_sleep`."""
    module = types.ModuleType("asyncio")
    module.__dict__.update(asyncio.__dict__)
    module.sleep = _aioice_sleep  # type: ignore[attr-defined]
    return module


def _patch_table() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, replacement) of every patch."""
    table: list[tuple[Any, str, Any]] = [
        (aioice.ice, "get_host_addresses", _sim_get_host_addresses),
        (aiortc.clock, "current_datetime", _sim_current_datetime),
        (_Dtls, "_recv_next", _sim_recv_next),
        (_Dtls, "_write_ssl", _sim_write_ssl),
        (aiortc.rtcrtpreceiver, "threading", _ThreadingProxy()),
        (aiortc.rtcrtpreceiver, "queue", _QueueProxy()),
        (aiortc.rate, "RateCounter", _LazyRateCounter),
    ]
    for module in (aiortc.mediastreams, aiortc.rtcsctptransport, aiortc.rtcrtpsender, aiortc.rtcrtpreceiver, aioice.turn):
        table.append((module, "time", _TimeProxy()))
    for module in (aioice.ice, aiortc.rtcrtpsender, aiortc.rtcrtpreceiver, aiortc.codecs.vpx):
        table.append((module, "random", _RandomProxy()))
    for cls in _HASHED_CLASSES:
        table.append((cls, "__hash__", _sim_hash))
    table.append((aiortc.codecs.vpx, "av", _AvProxy()))
    table.append((aioice.ice, "asyncio", _sim_asyncio_for_aioice()))
    return table


#: the internals the patches rely on: (owner, attribute, expected original)
def patched_internals() -> list[tuple[Any, str, Any]]:
    """What the sim replaces, with the original objects (for tests and diagnostics)."""
    return [(owner, name, _ORIGINALS[(id(owner), name)]) for owner, name, _ in _PATCHES]


_PATCHES = _patch_table()
_ORIGINALS: dict[tuple[int, str], Any] = {
    (id(owner), name): owner.__dict__.get(name, _MISSING) for owner, name, _ in _PATCHES
}
_install_lock = threading.Lock()
_install_count = 0


_internals_checked = False


def _check_internals() -> None:
    """Fail clearly if aiortc/aioice internals the sim relies on have changed."""
    global _internals_checked
    if _internals_checked:
        return
    for owner, name, _ in _PATCHES:
        if name == "__hash__":
            if _ORIGINALS[(id(owner), name)] is not _MISSING or "__eq__" in owner.__dict__:
                raise SimVersionError(f"{owner.__qualname__} defines __hash__/__eq__; the sim cannot order it")
            continue
        if _ORIGINALS[(id(owner), name)] is _MISSING:
            raise SimVersionError(f"{getattr(owner, '__name__', owner)}.{name} is missing; unsupported aiortc/aioice")
    init_src = inspect.getsource(_Dtls.__init__)
    for attr in ("__handshake_done", "__rx_bytes", "__rx_packets", "__tx_bytes", "__tx_packets"):
        if f"self.{attr}" not in init_src:
            raise SimVersionError(f"RTCDtlsTransport lost {attr}; unsupported aiortc")
    counter = _ORIGINALS[(id(aiortc.rate), "RateCounter")]  # the original, even if another run patched it
    methods = {"__init__", "add", "rate", "reset", "_erase_old"}
    counter_src = inspect.getsource(counter) if isinstance(counter, type) else ""
    if not methods <= set(getattr(counter, "__dict__", {})) or any(
        f"self.{attr}" not in counter_src for attr in ("_buckets", "_origin_index", "_origin_ms", "_total", "_window_size")
    ):
        raise SimVersionError("aiortc.rate.RateCounter changed shape; unsupported aiortc")
    if not hasattr(aiortc.rtcdtlstransport, "is_rtcp") or not hasattr(aiortc.rtcrtpreceiver, "get_decoder"):
        raise SimVersionError("aiortc internals moved (is_rtcp / get_decoder); unsupported aiortc")
    _internals_checked = True


def _install() -> None:
    global _install_count
    with _install_lock:
        if _install_count == 0:
            for owner, name, replacement in _PATCHES:
                setattr(owner, name, replacement)
        _install_count += 1


def _uninstall() -> None:
    global _install_count
    with _install_lock:
        _install_count -= 1
        if _install_count == 0:
            for owner, name, _ in _PATCHES:
                original = _ORIGINALS[(id(owner), name)]
                if original is _MISSING:
                    if name in owner.__dict__:
                        delattr(owner, name)
                else:
                    setattr(owner, name, original)


def patches_installed() -> bool:
    """Whether a simulation's patches are currently installed (in any thread)."""
    return _install_count > 0


# ---------------------------------------------------------------------------
# running


def run_sim(main: Callable[[], Coroutine[Any, Any, T]], net: SimNetwork, *, stall_error: bool = True) -> T:
    """Run ``main()`` on a fresh virtual-time loop attached to ``net`` and return its result.

    Patches are installed for the run and always removed afterwards; leftover
    tasks are cancelled and async generators shut down. Safe to call from any
    thread, also while a real asyncio loop runs in another thread. Raises
    :class:`SimStalled` (when ``stall_error``) if nothing can ever happen again.
    """
    check_versions()
    _check_internals()
    if asyncio._get_running_loop() is not None:
        raise RuntimeError(
            "run_sim() cannot be called from a thread whose event loop is running "
            "(e.g. a notebook cell): call it from a worker thread instead"
        )
    loop = VirtualLoop(net, stall_error=stall_error)
    net._bind_loop(loop)
    _install()
    try:
        async def runner() -> T:
            return await main()

        return loop.run_until_complete(runner())
    finally:
        try:
            _shutdown(loop)
        finally:
            try:
                loop.close()
            finally:
                _uninstall()


def _shutdown(loop: VirtualLoop) -> None:
    try:
        for _ in range(3):
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            if not tasks:
                break
            for task in sorted(tasks, key=lambda t: getattr(t, "_rtclab_seq", 0)):
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    except SimStalled as exc:  # pragma: no cover - cleanup is best effort
        logger.warning("rtclab sim: cleanup stalled: %s", exc)
    except Exception:  # pragma: no cover
        logger.exception("rtclab sim: cleanup failed")
