"""What rtclab changes in aioice's ICE agent: per connection, never globally.

What the browser does (RFC 8445; Chromium 156 measured where it says so, FACTS.md)
    A candidate that arrives while the agent has nothing to check makes a new
    pair, checked in the agent's next pacing slot (RFC 8445 ordinary checks,
    Ta = 50 ms by default; not timed in Chromium here). A connected pair keeps
    being checked (consent freshness); when responses stop (Chromium 156),
    ``iceConnectionState`` turns ``disconnected`` ~6.6 s after the path was
    cut and ``connectionState`` ``failed`` ~16.6 s after it, and the
    connection is not closed. When the path comes back before ``failed``
    both states return to ``connected``; after ``failed`` they did not
    (8 s watched).
What aioice 0.13 does
    ``Connection.connect()`` starts one check per 20 ms tick
    (``_check_periodic``), so a trickled candidate waits for the next tick.
    Its consent freshness (``query_consent``: every 5 s +-20 %, six misses)
    *closes* the connection ~30 s after a cut, and aiortc then closes the
    whole peer connection. Its ``connect()`` fails at once when
    end-of-candidates arrives with no remote candidate (RFC 8863 says not
    before the 39.5 s PAC timer).
What rtclab does
    :func:`hook_connection` changes *instance* attributes of the aioice
    ``Connection`` objects a :class:`~rtclab.peer.Peer` owns, so other
    connections in the process (a bare aiortc pair, another notebook) are
    untouched, and :func:`unhook_connection` undoes it:

    * ``query_consent`` becomes :func:`browser_consent`: a binding request on
      the nominated pair every :data:`CONSENT_PING_S`; the peer is told when
      no response came for :data:`DISCONNECTED_AFTER_S` (``disconnected``) and
      :data:`FAILED_AFTER_S` (``failed``, then pings stop as RFC 7675 says
      consent has expired); the connection is never closed by it.
    * ``check_incoming`` is wrapped so the peer learns of a peer-reflexive
      remote candidate (it makes ``iceConnectionState`` leave ``new``).
    * ``_protocols`` becomes a list that tells the peer when a local
      candidate appears (the trickle emitter then sleeps instead of polling).

    :func:`check_now` runs aioice's own ``_check_periodic`` once, right after
    a remote candidate was added (the triggered check), and
    :func:`fail_checks` ends a check list the way aioice's ``close()`` does,
    when the browser's 15 s checking timer expires.

Guarded by :func:`agent_problem`: on an aioice other than 0.13.x, or one
without these internals, the peer records an ``error`` row and falls back to
aioice's own behaviour.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import inspect
from collections.abc import Callable
from typing import Any

import aioice.ice
import aioice.stun

SUPPORTED_AIOICE = "0.13."

#: Interval of the emulated consent pings on a connected pair, in seconds.
CONSENT_PING_S = 1.0
#: Without a consent response for this long, the transport is ``disconnected``.
#: The last response came on average half a ping interval before a cut, so
#: this is Chromium 156's measured 6.6 s after the cut + 0.5 s.
DISCONNECTED_AFTER_S = 7.1
#: Without a consent response for this long, the transport has ``failed``
#: (Chromium 156: 16.6 s after the cut, + 0.5 s as above).
FAILED_AFTER_S = 17.1

_EPS = 1e-6
_INTERNALS = ("_check_periodic", "check_incoming", "query_consent", "build_request", "add_remote_candidate")
_STATE = ("_check_list_done", "_check_list_state", "_early_checks_done", "_remote_candidates", "_nominated", "_protocols")


@functools.cache
def agent_problem() -> str | None:
    """Why the aioice hooks cannot be used here, or ``None`` when they can."""
    try:
        version = importlib.metadata.version("aioice")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        version = getattr(aioice, "__version__", "?")
    if not version.startswith(SUPPORTED_AIOICE):
        return f"aioice {version} (rtclab's browser profile was built for {SUPPORTED_AIOICE}x)"
    missing = [name for name in _INTERNALS if not callable(getattr(aioice.ice.Connection, name, None))]
    init = inspect.getsource(aioice.ice.Connection.__init__)
    missing += [name for name in _STATE if f"self.{name}" not in init]
    if not hasattr(aioice.ice, "ICE_FAILED"):
        missing.append("ICE_FAILED")
    if missing:
        return f"aioice.ice.Connection lacks {', '.join(missing)}"
    return None


class _WatchedList(list):  # type: ignore[type-arg]
    """A list that calls ``on_add`` after items are added (aioice's ``_protocols``)."""

    def __init__(self, items: Any, on_add: Callable[[], None]) -> None:
        super().__init__(items)
        self.on_add = on_add

    def append(self, item: Any) -> None:
        super().append(item)
        self.on_add()

    def __iadd__(self, other: Any) -> _WatchedList:
        super().__iadd__(other)
        self.on_add()
        return self


def hook_connection(
    conn: Any,
    *,
    on_protocol: Callable[[], None],
    on_remote: Callable[[], None] | None,
    on_consent: Callable[[str], None] | None,
) -> None:
    """Install rtclab's per-connection hooks on one aioice ``Connection`` (once).

    ``on_protocol`` is called when a local candidate appears; ``on_remote``
    after an incoming check (which may have taught a peer-reflexive
    candidate); ``on_consent`` with ``"ok"``, ``"disconnected"`` or
    ``"failed"`` by the emulated consent freshness (``None``: aioice's own).
    """
    if conn.__dict__.get("_rtclab_hooked"):
        return
    conn._rtclab_hooked = True
    if type(conn._protocols) is list:
        conn._protocols = _WatchedList(conn._protocols, on_protocol)
    if on_remote is not None:
        original = conn.check_incoming

        def check_incoming(*args: Any, **kwargs: Any) -> None:
            original(*args, **kwargs)
            on_remote()

        conn.check_incoming = check_incoming
    if on_consent is not None:
        conn.query_consent = lambda: browser_consent(conn, on_consent)


def unhook_connection(conn: Any) -> None:
    """Remove what :func:`hook_connection` installed (aioice's own behaviour again)."""
    for name in ("check_incoming", "query_consent", "_rtclab_hooked"):
        conn.__dict__.pop(name, None)
    if isinstance(conn._protocols, _WatchedList):
        conn._protocols = list(conn._protocols)


def check_now(conn: Any) -> None:
    """Start the next check at once instead of at aioice's next 20 ms tick."""
    if conn._early_checks_done and not conn._check_list_done and conn.remote_password is not None:
        conn._check_periodic()


def fail_checks(conn: Any) -> None:
    """End a running check list as failed (what aioice's ``close()`` does to it)."""
    if not conn._check_list_done:
        conn._check_list_done = True
        conn._check_list_state.put_nowait(aioice.ice.ICE_FAILED)


async def _ping(conn: Any) -> bool:
    """One consent request on each nominated pair, no retransmission; True if all answered."""
    pairs = list(conn._nominated.values())
    if not pairs or conn.remote_password is None:
        return False
    for pair in pairs:
        request = conn.build_request(pair, nominate=False)
        try:
            await pair.protocol.request(
                request, pair.remote_addr, integrity_key=conn.remote_password.encode("utf8"), retransmissions=0
            )
        except (aioice.stun.TransactionError, ConnectionError, OSError, AssertionError):
            return False
    return True


async def browser_consent(conn: Any, on_change: Callable[[str], None]) -> None:
    """Consent freshness with Chromium's timers: report, never close (replaces ``query_consent``)."""
    loop = asyncio.get_running_loop()
    last_ok = loop.time()
    state = "ok"
    next_ping = loop.time() + CONSENT_PING_S
    pings: set[asyncio.Task[None]] = set()

    async def ping() -> None:
        nonlocal last_ok, state
        if await _ping(conn):
            last_ok = loop.time()
            if state == "disconnected":
                state = "ok"
                on_change("ok")

    try:
        while True:
            now = loop.time()
            silent = now - last_ok
            if silent >= FAILED_AFTER_S - _EPS:
                on_change("failed")
                return  # consent expired: no more requests (RFC 7675)
            if silent >= DISCONNECTED_AFTER_S - _EPS and state == "ok":
                state = "disconnected"
                on_change("disconnected")
            if now >= next_ping - _EPS:
                next_ping = now + CONSENT_PING_S
                task = asyncio.ensure_future(ping())
                pings.add(task)
                task.add_done_callback(pings.discard)
            limit = last_ok + (DISCONNECTED_AFTER_S if state == "ok" else FAILED_AFTER_S)
            await asyncio.sleep(max(min(next_ping, limit) - now, 0.001))
    finally:
        for task in pings:
            task.cancel()
