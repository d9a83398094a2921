"""The :class:`Peer` class: construction, events, recording, the aiortc connection, close.

What the browser's ``RTCPeerConnection`` and aiortc's differ in is spread over
the sibling modules, one per behaviour; this module holds what they share:
the event handlers (``on``), the recording into the :class:`rtclab.trace.Trace`,
the aiortc peer connection (created inside the simulated host's scope) and
``close()``, which stops every task of the peer and records the close and the
final states.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from ..network import host_scope
from ..trace import Trace
from .chain import ChainMixin
from .descriptions import DescriptionsMixin
from .errors import ErrorsMixin, error_name
from .icelog import _CONNECTIONS, _install_log_handler
from .negotiation import NegotiationMixin
from .restart import RestartMixin
from .rollback import RollbackMixin
from .agent import agent_problem
from .states import STATE_MACHINES, StatesMixin, _IceInfo
from .tracks import TracksMixin
from .trickle import TrickleMixin

logger = logging.getLogger("rtclab.peer")


Handler = Callable[..., Any]


_POLICIES = ("all", "relay")


def check_transport_policy(policy: Any) -> str:
    """``policy`` if it is an ``RTCIceTransportPolicy`` value; the browser's ``TypeError`` otherwise."""
    if policy not in _POLICIES:
        raise TypeError(
            f"The provided value {policy!r} is not a valid enum value of type RTCIceTransportPolicy"
            f" (use {' or '.join(map(repr, _POLICIES))})")
    return str(policy)


def configuration_policy(configuration: Any, where: str) -> str | None:
    """The ``iceTransportPolicy`` of an ``RTCConfiguration`` dict (``None`` if absent), checked."""
    if configuration is None:
        return None
    if not isinstance(configuration, dict):
        raise TypeError(f"{where}: the configuration must be a dict such as {{'iceTransportPolicy': 'relay'}},"
                        f" got {type(configuration).__name__}")
    unknown = sorted(set(configuration) - {"iceTransportPolicy"})
    if unknown:
        raise TypeError(f"{where}: rtclab's configuration supports only 'iceTransportPolicy' (the run's stun=/turn="
                        f" parameters set the ICE servers); got {unknown}")
    if "iceTransportPolicy" not in configuration:
        return None
    return check_transport_policy(configuration["iceTransportPolicy"])


class Peer(
    DescriptionsMixin,
    TrickleMixin,
    ChainMixin,
    NegotiationMixin,
    RestartMixin,
    RollbackMixin,
    StatesMixin,
    TracksMixin,
    ErrorsMixin,
):
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
    ice_transport_policy
        ``"all"`` (default) or ``"relay"``: the configuration's
        ``iceTransportPolicy``. With ``"relay"`` the peer gathers and uses
        only relay (TURN) candidates, so its host and server-reflexive
        addresses never leave it. A new policy set with
        :meth:`setConfiguration` applies from the next gathering, i.e. after
        ``restartIce()`` (W3C ``setConfiguration``).
    trickle, chain, negotiationneeded, browser_errors, rollback
        Switch each browser emulation (see the modules of :mod:`rtclab.peer`) on or off.
    ice_states
        ``iceConnectionState``/``connectionState`` per W3C with Chromium 156's
        timers (``new`` until a remote candidate exists, ``connected``,
        ``disconnected``/``failed`` after 15 s of failed checks or a cut
        path); off: aiortc's states (``completed``, ``checking`` forever,
        ``closed`` on consent loss). See :mod:`rtclab.peer.states`.
    end_of_candidates
        End-of-candidates per m-section and ICE generation; a later candidate
        of that generation resolves and is used (as Chromium 156) and recorded
        ``late`` (``ignored`` without ``ice_states``), never an error. See
        :mod:`rtclab.peer.trickle`.
    triggered_checks
        Check a trickled candidate at once, not at aioice's next 20 ms tick.
    silent_close
        ``close()`` fires no state-change handler (the rows are recorded).
    track_mute
        A received track is ``muted`` until its first RTP packet, then
        ``unmute`` fires. See :mod:`rtclab.peer.tracks`.
    gathering_state
        ``iceGatheringState`` over the m-sections in use (``new`` without
        m-lines).
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
        ice_transport_policy: str = "all",
        trickle: bool = True,
        chain: bool = True,
        negotiationneeded: bool = True,
        browser_errors: bool = True,
        rollback: bool = True,
        ice_states: bool = True,
        end_of_candidates: bool = True,
        triggered_checks: bool = True,
        silent_close: bool = True,
        track_mute: bool = True,
        gathering_state: bool = True,
        candidate_interval_ms: float = 5.0,
        host: str | None = None,
    ) -> None:
        self.actor = actor
        self.trace = trace
        self.ice_servers = list(ice_servers or [])
        self.ice_transport_policy = check_transport_policy(ice_transport_policy)
        self.trickle = trickle
        self.chain = chain
        self.emulate_negotiationneeded = negotiationneeded
        self.browser_errors = browser_errors
        self.emulate_rollback = rollback
        self.ice_states = ice_states
        self.end_of_candidates = end_of_candidates
        self.triggered_checks = triggered_checks
        self.silent_close = silent_close
        self.track_mute = track_mute
        self.gathering_state = gathering_state
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
        self._remote_ended: set[tuple[int, str]] = set()
        self._local: dict[str, str] | None = None
        self._ice_infos: dict[int, _IceInfo] = {}
        self._local_news: asyncio.Future[None] | None = None
        _install_log_handler()
        self._pc = self._new_pc()
        policy = "" if self.ice_transport_policy == "all" else f" iceTransportPolicy={self.ice_transport_policy}"
        self._rec("call", "RTCPeerConnection", "ok", detail=f"iceServers={len(self.ice_servers)}{policy}")
        problem = agent_problem() if (ice_states or triggered_checks) else None
        if problem is not None:
            # the browser profile needs aioice internals this version may lack: aioice's own behaviour then
            self.ice_states = self.triggered_checks = False
            self._rec("error", "agent", "Unsupported", detail=f"browser state machines and timers off: {problem}")

    def setConfiguration(self, configuration: dict[str, Any]) -> None:  # noqa: N802 - browser name
        """Change the configuration: ``pc.setConfiguration({"iceTransportPolicy": "all"})``.

        Only ``iceTransportPolicy`` can change (the run sets the ICE servers).
        As in the W3C specification, the new policy takes effect at the next
        gathering: call :meth:`restartIce` to gather again now. Recorded as a
        ``call setConfiguration`` row.

        Raises
        ------
        TypeError
            An unknown policy value, or a key other than ``iceTransportPolicy``.

        Examples
        --------
        >>> import asyncio, rtclab
        >>> async def main():
        ...     pc = rtclab.Peer("callee", rtclab.Trace(), ice_transport_policy="relay")
        ...     pc.setConfiguration({"iceTransportPolicy": "all"})
        ...     policy = pc.ice_transport_policy
        ...     await pc.close()
        ...     return policy
        >>> asyncio.run(main())
        'all'
        """
        policy = configuration_policy(configuration, "setConfiguration")
        if self._closed:
            from .errors import InvalidStateError

            exc = InvalidStateError("The RTCPeerConnection's signalingState is 'closed'.")
            self._rec("call", "setConfiguration", "error", detail=f"InvalidStateError: {exc}")
            raise exc
        self.ice_transport_policy = policy if policy is not None else "all"
        self._rec("call", "setConfiguration", "ok", detail=f"iceTransportPolicy={self.ice_transport_policy}")

    # -- events -------------------------------------------------------------------------

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register ``handler`` for ``event`` (also usable as a decorator).

        Events: ``negotiationneeded``, ``icecandidate`` (candidate dict or
        ``None``), ``track`` (the remote track, ``muted`` until its first
        packet), ``unmute`` (that track, at its first packet), ``datachannel``,
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
        from ..tracebacks import with_location  # an app's handler: point at its line

        self._rec("error", where, error_name(exc), ref=ref, detail=with_location(str(exc) or error_name(exc), exc))

    # -- the aiortc connection ----------------------------------------------------------------

    def _new_pc(self) -> RTCPeerConnection:
        with host_scope(self.host):
            pc = RTCPeerConnection(RTCConfiguration(
                iceServers=self.ice_servers, iceTransportPolicy=RTCIceTransportPolicy(self.ice_transport_policy)))
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
        self._hook_agent()

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
        self._cancel_ice_timers()
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
