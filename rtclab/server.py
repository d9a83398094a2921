"""``python -m rtclab serve``: a signaling server speaking the MDN sample's protocol, with a bot.

The protocol is the one of MDN's *Signaling and video calling* sample
(``webrtc-from-chat``): a WebSocket (subprotocol ``json``, port 6503 by
default) carrying JSON messages.

====================  =========================================================
message               meaning
====================  =========================================================
``id``                server → client on connect: ``{"type": "id", "id": 7}``
``username``          client → server: ``{"type": "username", "name", "id"}``
``rejectusername``    server → client: the name was taken or not allowed;
                      ``name`` is the one given instead (the sample's rule: a
                      number is appended)
``userlist``          server → all: ``{"type": "userlist", "users": [...]}``
``message``           chat text: to everyone, or to ``target`` only (private)
``video-offer``,      routed to the user named by ``target`` only, and only
``video-answer``,     between the two parties of a call (an offer starts one)
``new-ice-candidate``,
``hang-up``           with a ``target``: to that party; without one (the
                      sample's page clears its target before sending it): ends
                      the sender's current call, both parties are told
``error``             server → client: why a message was refused
                      (``{"type": "error", "error": code, "text", "refused"}``)
====================  =========================================================

``GET /`` (no WebSocket upgrade) serves a minimal tab page
(:data:`TAB_PAGE`, ``?name=you``) that speaks this protocol, calls (click a
user) and answers at once; from another machine a camera needs HTTPS, so
open it on ``localhost`` or behind an HTTPS proxy. Other methods get
``405``; other paths ``404``.

Unlike the sample, the server is strict where a workshop needs it (bounds in
:class:`Limits`):

* identity is bound to the connection: the server stamps ``name`` (and ``id``)
  on what it forwards, and refuses a message whose ``name`` or ``id`` is not
  the sender's own (``error`` ``identity``) — nobody can send as another user;
* input rules live in :mod:`rtclab.server_rules`: names are normalised and
  cleaned (a changed name is announced with ``rejectusername``, the reason with
  ``error`` ``bad-name``), unique up to case and look-alikes; chat text
  arrives HTML-safe; malformed JSON, ``NaN``/``Infinity``, deep nesting,
  unknown types and oversized messages are refused with an ``error`` message
  (frames over ``max_frame_bytes`` close the socket, code 1009);
* call control stays between the two parties: an answer, candidate or
  hang-up for a user one is not in a call with is refused (``not-in-call``);
  a page holds one call at a time (as the sample's page does), so its new
  offer or answer retires its older call records without telling anyone;
* nobody can stall the room: each connection has its own bounded outgoing
  queue written by its own task; a client whose queue overflows or whose
  socket accepts nothing for ``send_timeout_s`` is dropped (a log line), and
  each client's input is rate-limited (``rate-limited``); user lists are
  coalesced (at most one broadcast per interval, serialised once);
* unregistered connections are closed after ``register_timeout_s``, and
  connections beyond ``max_connections`` get HTTP 503;
* :attr:`SignalingServer.log` is a ring buffer of short entries (refusals and
  drops, never message contents);
* a disconnect hangs up that user's calls: the other party gets
  ``{"type": "hang-up", "name": <user>}``.

:class:`Bot` is a user that answers every call the way the ``counteroffer``
flow does (its peer connection is created as the offer arrives, the answer
leaves at once, early candidates are queued) and, after the user's think time
(``answer_delay_ms``), puts its camera on the offer's video transceiver and its
microphone on the audio one, whatever their order. Each call is recorded in
its own frame (:meth:`Bot.frame`), written to ``save_dir`` when the call ends,
so a workshop can call the notebook from a browser tab and plot the call.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .server_rules import Refused, clean_name, clean_text, parse, skeleton
from .trace import Trace

__all__ = ["Bot", "BotCall", "DEFAULT_PORT", "Limits", "SignalingServer", "TAB_PAGE", "bot_callee", "loopback_only", "serve"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 6503
ROUTED = ("video-offer", "video-answer", "new-ice-candidate", "hang-up")
#: how long a closing WebSocket waits for the other side's close frame (websockets'
#: default is 10 s; on Ctrl-C the server stops within about twice this)
CLOSE_TIMEOUT_S = 2.0
GUEST = "guest"


@dataclass(frozen=True)
class Limits:
    """The server's bounds: what one client may cost the room.

    Attributes
    ----------
    max_message_bytes
        Largest message handled; larger ones get ``error`` ``too-big``.
    max_frame_bytes
        Larger WebSocket frames close the socket (code 1009).
    max_depth
        Deepest nesting of arrays/objects in a message.
    queue_messages, queue_bytes
        Bound of one client's outgoing queue; past it the client is dropped.
    send_timeout_s
        A client whose socket takes no data for this long is dropped.
    ping_interval_s, ping_timeout_s
        WebSocket keepalive: a client that answers no ping within the timeout
        (it stopped reading, or vanished) is dropped, even while the kernel's
        buffers still take its data.
    register_timeout_s
        A connection that has not sent ``username`` by then is closed.
    max_connections
        Further WebSocket connections get HTTP 503.
    rate_messages, burst_messages, rate_bytes, burst_bytes
        Token buckets on each client's input (per second, and the burst).
    userlist_interval_s, userlist_per_user_s
        User lists are broadcast at most once per
        ``max(userlist_interval_s, userlist_per_user_s * users)``.
    log_entries
        Entries kept in :attr:`SignalingServer.log`.

    Examples
    --------
    >>> Limits(send_timeout_s=1.0).send_timeout_s
    1.0
    """

    max_message_bytes: int = 64 * 1024
    max_frame_bytes: int = 256 * 1024
    max_depth: int = 16
    queue_messages: int = 512
    queue_bytes: int = 2 * 1024 * 1024
    send_timeout_s: float = 5.0
    ping_interval_s: float | None = 10.0
    ping_timeout_s: float = 10.0
    register_timeout_s: float = 15.0
    max_connections: int = 500
    rate_messages: float = 50.0
    burst_messages: float = 200.0
    rate_bytes: float = 256 * 1024
    burst_bytes: float = 1024 * 1024
    userlist_interval_s: float = 0.2
    userlist_per_user_s: float = 0.005
    log_entries: int = 500


_USERLIST = object()  # a queue slot meaning "the user list as it is when this is written"
_LOG_TEXT = 160


class _Bucket:
    """A token bucket (rate per second, burst)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.level = burst
        self.t = time.monotonic()

    def take(self, amount: float) -> bool:
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.t) * self.rate)
        self.t = now
        if self.level < amount:
            return False
        self.level -= amount
        return True


class _Client:
    """A registered or connecting user: a WebSocket connection or an in-process bot."""

    def __init__(self, cid: int, limits: Limits, ws: Any = None, deliver: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.id = cid
        self.ws = ws
        self.deliver = deliver
        self.name: str | None = None
        self.single_call = deliver is None  # a page holds one call; the bot many
        self.queue: collections.deque[Any] = collections.deque()
        self.queued_bytes = 0
        self.userlist_queued = False
        self.wakeup = asyncio.Event()
        self.writer: asyncio.Task[None] | None = None
        self.dropped: str | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.messages = _Bucket(limits.rate_messages, limits.burst_messages)
        self.bytes = _Bucket(limits.rate_bytes, limits.burst_bytes)


TAB_PAGE = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>rtclab tab</title></head><body>
<h1>rtclab tab</h1>
<p>Open as <code>http://localhost:6503/?name=you</code> (a camera needs localhost or https). Users (click to call):</p>
<div id="users"></div><p id="status"></p>
<video id="remote" autoplay muted playsinline width="320"></video>
<script>
"use strict";
// A tab of the workshop: talks the MDN sample's protocol to `rtclab serve`, calls and answers.
const params = new URLSearchParams(location.search);
const socket = new WebSocket(params.get("server") || `ws://${location.host}/`, "json");
const config = {iceServers: []};
const state = window.state = {name: null, id: null, users: [], errors: [], received: [], pc: null, peer: null};
const waiting = [];
const sendToServer = window.sendToServer = (msg) => socket.send(JSON.stringify(msg));
async function camera() { return navigator.mediaDevices.getUserMedia({video: true, audio: false}); }
function newPC(peer) {
  const pc = state.pc = new RTCPeerConnection(config);
  state.peer = peer;
  pc.onicecandidate = (e) => sendToServer({type: "new-ice-candidate", target: peer, candidate: e.candidate});
  pc.ontrack = (e) => { document.getElementById("remote").srcObject = e.streams[0] || new MediaStream([e.track]); };
  return pc;
}
async function flush() { while (waiting.length) await state.pc.addIceCandidate(waiting.shift()); }
window.call = async (peer) => {
  const stream = await camera();
  const pc = newPC(peer);
  pc.onnegotiationneeded = async () => {
    await pc.setLocalDescription(await pc.createOffer());
    sendToServer({type: "video-offer", name: state.name, target: peer, sdp: pc.localDescription});
  };
  for (const t of stream.getTracks()) pc.addTrack(t, stream);
};
socket.onmessage = async (event) => {
  const msg = JSON.parse(event.data);
  state.received.push(msg.type);
  try {
    if (msg.type === "id") {
      state.id = msg.id;
      sendToServer({type: "username", name: (params.get("name") || "guest"), id: msg.id, date: Date.now()});
    } else if (msg.type === "rejectusername") state.name = msg.name;
    else if (msg.type === "userlist") {
      state.users = msg.users; if (state.name === null) state.name = (params.get("name") || "guest");
      const box = document.getElementById("users"); box.textContent = "";
      for (const user of msg.users) {
        const button = document.createElement("button"); button.textContent = user; button.disabled = user === state.name;
        button.onclick = () => window.call(user); box.appendChild(button);
      }
    }
    else if (msg.type === "error") state.errors.push(msg);
    else if (msg.type === "video-offer") {          // answer at once, queue early candidates
      const stream = await camera();
      const pc = newPC(msg.name);
      await pc.setRemoteDescription(msg.sdp);
      for (const t of stream.getTracks()) pc.addTrack(t, stream);
      await pc.setLocalDescription(await pc.createAnswer());
      sendToServer({type: "video-answer", name: state.name, target: msg.name, sdp: pc.localDescription});
      await flush();
    } else if (msg.type === "video-answer") { await state.pc.setRemoteDescription(msg.sdp); await flush(); }
    else if (msg.type === "new-ice-candidate") {
      if (!state.pc || !state.pc.remoteDescription) waiting.push(msg.candidate); else await state.pc.addIceCandidate(msg.candidate);
    } else if (msg.type === "hang-up") { if (state.pc) state.pc.close(); state.pc = null; }
  } catch (err) { state.errors.push({type: "page", error: err.name, text: err.message}); }
};
window.connection = () => state.pc ? state.pc.connectionState : "none";
setInterval(() => { document.getElementById("status").textContent = `${state.name || "?"}: ${window.connection()} ${state.peer || ""}`; }, 250);
</script></body></html>
"""


class SignalingServer:
    """The MDN-protocol signaling server (see the module docstring).

    Use ``async with SignalingServer(port=0) as server`` (``port=0``: a free
    port, then ``server.port``); ``server.url`` is the WebSocket URL.

    Parameters
    ----------
    host, port
        Where to listen (default ``127.0.0.1:6503``).
    max_message_bytes
        Shortcut for ``Limits(max_message_bytes=...)``.
    page
        Serve :data:`TAB_PAGE` on ``GET /``.
    pages
        More files to serve on ``GET``: path (``"/chat.html"``) → text; the
        content type follows the extension (``.html``, ``.js``, ``.css``) —
        e.g. a workshop's own copy of the sample's client.
    limits
        The bounds (:class:`Limits`).

    Examples
    --------
    >>> async def main():
    ...     async with SignalingServer(port=0) as server:
    ...         return server.url.startswith("ws://127.0.0.1:")
    >>> asyncio.run(main())
    True
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, max_message_bytes: int | None = None,
                 page: bool = True, pages: dict[str, str] | None = None, limits: Limits | None = None) -> None:
        limits = limits or Limits()
        if max_message_bytes is not None:
            limits = dataclasses.replace(limits, max_message_bytes=int(max_message_bytes))
        self.limits = limits
        self.host = host
        self.page = page
        self.pages = dict(pages or {})
        self.port = port
        self.clients: dict[int, _Client] = {}
        self._names: dict[str, _Client] = {}  # registration order
        self._skeletons: dict[str, _Client] = {}
        self._calls: dict[frozenset[str], int] = {}  # pair -> last offer/answer (a counter)
        self._call_clock = itertools.count(1)
        self._ids = itertools.count(1)
        self._server: Any = None
        self._userlist: bytes | None = None
        self._userlist_timer: asyncio.TimerHandle | None = None
        self._userlist_last = 0.0
        #: a ring buffer of short entries: refusals, drops, timeouts (never message contents)
        self.log: collections.deque[dict[str, Any]] = collections.deque(maxlen=limits.log_entries)
        #: counters for the operator and the benchmark
        self.stats: collections.Counter[str] = collections.Counter()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def max_message_bytes(self) -> int:
        return self.limits.max_message_bytes

    @property
    def calls(self) -> set[frozenset[str]]:
        """The calls the server knows of, as pairs of user names."""
        return set(self._calls)

    async def start(self) -> SignalingServer:
        from websockets.asyncio.server import serve as ws_serve

        self._server = await ws_serve(
            self._connection, self.host, self.port, subprotocols=["json"], max_size=self.limits.max_frame_bytes,
            max_queue=4, compression=None,  # per-connection zlib state and per-recipient CPU: not worth it for chat and SDP
            select_subprotocol=_select_json, process_request=self._http,
            close_timeout=CLOSE_TIMEOUT_S, ping_interval=self.limits.ping_interval_s, ping_timeout=self.limits.ping_timeout_s,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _http(self, connection: Any, request: Any) -> Any:
        """Plain HTTP: the tab page on ``GET /``, 405 for other methods, 503 when full, else 404."""
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        method = getattr(request, "method", "GET")
        if method != "GET":
            body = f"method {method[:16]} not allowed; this server answers GET (the tab page) and WebSocket upgrades\n".encode()
            self._note(None, "http-405", f"{method[:16]} {request.path[:60]}")
            return Response(405, "Method Not Allowed", Headers([("Allow", "GET"), ("Content-Type", "text/plain; charset=utf-8"),
                                                                ("Content-Length", str(len(body)))]), body)
        if "websocket" in request.headers.get("Upgrade", "").lower():
            if len(self.clients) >= self.limits.max_connections:
                self._note(None, "full", f"connection refused: {len(self.clients)} connections (limit {self.limits.max_connections})")
                return connection.respond(503, f"server full ({self.limits.max_connections} connections); try again later\n")
            return None
        path = request.path.split("?")[0]
        if (self.page and path in ("/", "/index.html")) or path in self.pages:
            body = (self.pages.get(path) or TAB_PAGE).encode()
            kind = {"js": "text/javascript", "css": "text/css"}.get(path.rsplit(".", 1)[-1], "text/html")
            return Response(200, "OK", Headers([("Content-Type", f"{kind}; charset=utf-8"),
                                                ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]), body)
        return connection.respond(404, "not found\n")

    async def stop(self) -> None:
        if self._userlist_timer is not None:
            self._userlist_timer.cancel()
            self._userlist_timer = None
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT_S + 1)
            self._server = None

    async def __aenter__(self) -> SignalingServer:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # -- the log ------------------------------------------------------------------------------

    def _note(self, client: _Client | None, code: str, text: str, refused: Any = None) -> None:
        who = None if client is None else (client.name or client.id)
        self.log.append({"t": round(time.time(), 3), "from": who, "error": code, "text": text[:_LOG_TEXT],
                         "refused": refused[:40] if isinstance(refused, str) else None})
        self.stats[code] += 1

    # -- sending: one bounded queue and one writer per client -------------------------------

    def _push(self, client: _Client, item: Any) -> None:
        """Queue ``item`` (encoded JSON, or ``_USERLIST``) for ``client``; drop the client on overflow."""
        if client.dropped is not None or client.close_code is not None:
            return
        if client.deliver is not None:  # in-process: delivered on the next loop turn, in order
            message = {"type": "userlist", "users": self.users()} if item is _USERLIST else json.loads(item)
            asyncio.get_running_loop().call_soon(client.deliver, message)
            return
        if item is _USERLIST:
            if client.userlist_queued:
                return  # the one queued will carry the newest list
            client.userlist_queued = True
        else:
            client.queued_bytes += len(item)
        client.queue.append(item)
        if len(client.queue) > self.limits.queue_messages or client.queued_bytes > self.limits.queue_bytes:
            self._drop(client, f"outgoing queue full ({len(client.queue)} messages, {client.queued_bytes} bytes): not reading")
            return
        client.wakeup.set()

    def _send(self, client: _Client, message: dict[str, Any]) -> None:
        self._push(client, json.dumps(message).encode())

    def _drop(self, client: _Client, why: str) -> None:
        """Disconnect a client that cannot keep up (it never delays anyone else)."""
        if client.dropped is not None:
            return
        client.dropped = why
        client.queue.clear()
        client.queued_bytes = 0
        self._note(client, "dropped", why)
        logger.warning("dropped %s (id %s): %s", client.name, client.id, why)
        if client.ws is not None:
            with contextlib.suppress(Exception):
                client.ws.transport.abort()
        client.wakeup.set()

    def _close(self, client: _Client, code: int, reason: str) -> None:
        """Close after what is queued has been written (bounded by the send timeout)."""
        if client.close_code is None:
            client.close_code, client.close_reason = code, reason
            client.wakeup.set()

    async def _writer(self, client: _Client) -> None:
        ws = client.ws
        timeout = self.limits.send_timeout_s
        try:
            while client.dropped is None:
                if not client.queue:
                    if client.close_code is not None:
                        try:
                            await asyncio.wait_for(ws.close(client.close_code, client.close_reason), timeout)
                        except (asyncio.TimeoutError, TimeoutError):
                            self._drop(client, f"did not close within {timeout} s")
                        return
                    client.wakeup.clear()
                    await client.wakeup.wait()
                    continue
                item = client.queue.popleft()
                if item is _USERLIST:
                    client.userlist_queued = False
                    data = self._userlist_bytes()
                else:
                    client.queued_bytes -= len(item)
                    data = item
                try:
                    await asyncio.wait_for(ws.send(data, text=True), timeout)
                except (asyncio.TimeoutError, TimeoutError):
                    self._drop(client, f"socket took no data for {timeout} s")
                    return
                self.stats["sent"] += 1
        except Exception:  # the connection closed under us: the reader cleans up
            pass

    # -- users ------------------------------------------------------------------------------

    def users(self) -> list[str]:
        """The registered users' names, in the order they registered."""
        return list(self._names)

    def _userlist_bytes(self) -> bytes:
        if self._userlist is None:
            self._userlist = json.dumps({"type": "userlist", "users": self.users()}).encode()
        return self._userlist

    def _users_changed(self) -> None:
        """Schedule one user-list broadcast (coalesced: bounded cost however many join)."""
        self._userlist = None
        if self._userlist_timer is not None:
            return
        loop = asyncio.get_running_loop()
        interval = max(self.limits.userlist_interval_s, self.limits.userlist_per_user_s * len(self._names))
        delay = max(0.0, self._userlist_last + interval - loop.time())
        self._userlist_timer = loop.call_later(delay, self._broadcast_userlist)

    def _broadcast_userlist(self) -> None:
        self._userlist_timer = None
        self._userlist_last = asyncio.get_running_loop().time()
        self.stats["userlist-broadcasts"] += 1
        for c in list(self._names.values()):
            self._push(c, _USERLIST)

    def _unique(self, name: str) -> str:
        if skeleton(name) not in self._skeletons:
            return name
        for n in itertools.count(1):
            candidate = f"{name[: 32 - len(str(n))]}{n}"
            if skeleton(candidate) not in self._skeletons:
                return candidate
        raise AssertionError("unreachable")

    def attach(self, deliver: Callable[[dict[str, Any]], Any]) -> _Client:
        """An in-process user (the bot): ``deliver(message)`` receives what is sent to it."""
        client = _Client(next(self._ids), self.limits, deliver=deliver)
        self.clients[client.id] = client
        return client

    async def detach(self, client: _Client) -> None:
        self._gone(client)

    # -- the protocol -------------------------------------------------------------------------

    async def _connection(self, ws: Any) -> None:
        client = _Client(next(self._ids), self.limits, ws=ws)
        self.clients[client.id] = client
        client.writer = asyncio.ensure_future(self._writer(client))
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.limits.register_timeout_s, self._registration_expired, client)
        try:
            if len(self.clients) > self.limits.max_connections:  # handshakes that raced past the check in _http
                self._note(client, "full", f"connection closed: over {self.limits.max_connections} connections")
                self._send(client, {"type": "error", "error": "full", "text": "server full; try again later", "refused": None})
                self._close(client, 1013, "server full")
            else:
                self._send(client, {"type": "id", "id": client.id})
            async for raw in ws:
                if client.dropped is not None or client.close_code is not None:
                    break
                self._receive(client, raw)
                await asyncio.sleep(0)  # one message at a time from each client: floods take turns
        except Exception as exc:  # closed abruptly, too big (1009), keepalive timeout...
            sent = getattr(exc, "sent", None)
            if client.dropped is None and sent is not None and sent.code == 1011 and "keepalive" in sent.reason:
                client.dropped = "no answer to keepalive pings"
                self._note(client, "dropped", f"no pong within {self.limits.ping_timeout_s:g} s: not reading")
                logger.warning("dropped %s (id %s): no answer to keepalive pings", client.name, client.id)
        finally:
            timer.cancel()
            self._gone(client)
            if client.close_code is not None and client.dropped is None and client.writer is not None:
                with contextlib.suppress(Exception):  # let the writer send what it owes, then close (bounded)
                    await asyncio.wait_for(asyncio.shield(client.writer), self.limits.send_timeout_s + CLOSE_TIMEOUT_S)
            if client.writer is not None and not client.writer.done():
                client.writer.cancel()
                with contextlib.suppress(BaseException):
                    await client.writer

    def _registration_expired(self, client: _Client) -> None:
        if client.name is None and client.id in self.clients:
            text = f"no 'username' within {self.limits.register_timeout_s:g} s"
            self._note(client, "register-timeout", text)
            self._send(client, {"type": "error", "error": "register-timeout", "text": text, "refused": None})
            self._close(client, 1008, "registration timeout")

    def _refuse(self, client: _Client, code: str, text: str, message: Any = None) -> None:
        refused = message.get("type") if isinstance(message, dict) else None
        refused = refused[:40] if isinstance(refused, str) else None
        self._note(client, code, text, refused)
        self._send(client, {"type": "error", "error": code, "text": text, "refused": refused})

    def _receive(self, client: _Client, raw: str | bytes) -> None:
        size = len(raw)
        if not (client.messages.take(1) and client.bytes.take(size)):
            self._refuse(client, "rate-limited", f"too many messages or bytes (limits: {self.limits.rate_messages:g}/s, "
                                                 f"{self.limits.rate_bytes / 1024:g} KiB/s); message dropped")
            return
        try:
            message = parse(raw, max_bytes=self.limits.max_message_bytes, max_depth=self.limits.max_depth)
        except Refused as exc:
            self._refuse(client, exc.code, exc.text)
            return
        self._handle(client, message)

    async def handle(self, client: _Client, raw: str | bytes | dict[str, Any]) -> None:
        """Handle one message from ``client`` (text as received, or a dict from the bot)."""
        if isinstance(raw, dict):
            self._handle(client, raw)
        else:
            try:
                message = parse(raw, max_bytes=self.limits.max_message_bytes, max_depth=self.limits.max_depth)
            except Refused as exc:
                self._refuse(client, exc.code, exc.text)
                return
            self._handle(client, message)

    def _handle(self, client: _Client, message: dict[str, Any]) -> None:
        if client.id not in self.clients:
            return  # gone meanwhile
        kind = message.get("type")
        if not isinstance(kind, str):
            self._refuse(client, "malformed", "a message is a JSON object with a string 'type'", message)
            return
        if kind == "username":
            self._register(client, message)
            return
        if client.name is None:
            self._refuse(client, "not-registered", "send a 'username' message first", message)
            return
        name, mid = message.get("name"), message.get("id")
        if (name is not None and name != client.name) or (mid is not None and mid != client.id):
            self._refuse(client, "identity", f"you are {client.name!r} (id {client.id}); you cannot send as {str(name)[:40]!r}", message)
            return
        if kind != "message" and kind not in ROUTED:
            self._refuse(client, "unknown-type", f"unknown message type {kind[:40]!r}", message)
            return
        target = message.get("target")
        if target is not None and not isinstance(target, str):
            self._refuse(client, "malformed", "'target' is a user name (a string) or null", message)
            return
        peer = self._names.get(target) if target else None
        if target and (peer is None or peer is client):
            self._refuse(client, "no-such-user", f"no user {target[:40]!r} to send {kind[:40]} to", message)
            return
        if kind == "message":
            self._chat(client, message, peer)
        elif kind == "hang-up" and peer is None:
            self._hang_up_current(client, message)
        elif peer is None:
            self._refuse(client, "no-target", f"{kind} needs a 'target' user", message)
        else:
            self._call_control(client, peer, kind, message)

    def _chat(self, client: _Client, message: dict[str, Any], peer: _Client | None) -> None:
        try:
            text = clean_text(message.get("text"))
        except Refused as exc:
            self._refuse(client, exc.code, exc.text, message)
            return
        date = message.get("date")
        out: dict[str, Any] = {"type": "message", "name": client.name, "id": client.id, "text": text,
                               "date": date if isinstance(date, (int, float)) and not isinstance(date, bool) else int(time.time() * 1000)}
        if peer is not None:  # private: to the target only, as the sample's server does
            out["target"] = peer.name
            self._send(peer, out)
            return
        data = json.dumps(out).encode()  # serialised once for everyone
        for c in list(self._names.values()):
            self._push(c, data)

    def _pair(self, a: str, b: str) -> frozenset[str]:
        return frozenset((a, b))

    def _retire_other_calls(self, client: _Client, keep: frozenset[str]) -> None:
        """A page holds one call: its new offer or answer retires its older call records (silently)."""
        if not client.single_call:
            return
        for pair in [p for p in self._calls if client.name in p and p != keep]:
            del self._calls[pair]
            self._note(client, "call-retired", f"{'/'.join(sorted(pair))}: superseded by a call with {'/'.join(sorted(keep - {client.name}))}")

    def _call_control(self, client: _Client, peer: _Client, kind: str, message: dict[str, Any]) -> None:
        assert client.name is not None and peer.name is not None
        pair = self._pair(client.name, peer.name)
        if kind == "video-offer":
            self._retire_other_calls(client, pair)
            self._calls[pair] = next(self._call_clock)
        elif pair not in self._calls:
            self._refuse(client, "not-in-call", f"you are not in a call with {peer.name!r}", message)
            return
        elif kind == "video-answer":
            self._retire_other_calls(client, pair)
            self._calls[pair] = next(self._call_clock)
        elif kind == "hang-up":
            del self._calls[pair]
        self._send(peer, {**message, "name": client.name, "target": peer.name})

    def _hang_up_current(self, client: _Client, message: dict[str, Any]) -> None:
        """``hang-up`` without a target (the sample's page): end the sender's current call."""
        mine = [(t, p) for p, t in self._calls.items() if client.name in p]
        if not mine:
            self._refuse(client, "no-call", "hang-up without a target, and you are in no call", message)
            return
        _t, pair = max(mine, key=lambda tp: tp[0])
        (other,) = pair - {client.name}
        del self._calls[pair]
        peer = self._names.get(other)
        if peer is not None:
            self._send(peer, {"type": "hang-up", "name": client.name, "target": other})

    def _register(self, client: _Client, message: dict[str, Any]) -> None:
        if client.name is not None:
            self._refuse(client, "identity", f"already registered as {client.name!r}", message)
            return
        if message.get("id") is not None and message.get("id") != client.id:
            self._refuse(client, "identity", f"your id is {client.id}", message)
            return
        asked = message.get("name")
        why = None
        try:
            name = clean_name(asked)
        except Refused as exc:
            name, why = GUEST, f"{exc.text}; you are called {GUEST!r} instead"
        else:
            if name != asked:
                why = "markup, invisible or disallowed characters were removed from your name"
        unique = self._unique(name)
        client.name = unique
        self._names[unique] = client
        self._skeletons[skeleton(unique)] = client
        if unique != asked:  # the sample's page shows this one (then the reason, as an error)
            self._send(client, {"type": "rejectusername", "id": client.id, "name": unique})
        if why is not None:
            self._refuse(client, "bad-name", why, message)
        self._users_changed()
        self._push(client, _USERLIST)  # the newcomer sees the room at once; the others soon

    def _gone(self, client: _Client) -> None:
        if self.clients.pop(client.id, None) is None:
            return
        if client.name:
            self._names.pop(client.name, None)
            self._skeletons.pop(skeleton(client.name), None)
            for pair in [p for p in self._calls if client.name in p]:
                del self._calls[pair]
                (other,) = pair - {client.name}
                peer = self._names.get(other)
                if peer is not None:
                    self._send(peer, {"type": "hang-up", "name": client.name, "target": other})
            self._users_changed()


def _select_json(connection: Any, subprotocols: list[str]) -> str | None:
    # the sample's page asks for "json"; clients that ask for nothing are served too
    return "json" if "json" in subprotocols else None


# --------------------------------------------------------------------------------------
# The bot
# --------------------------------------------------------------------------------------


async def bot_callee(app: Any) -> None:
    """The bot's page: the ``counteroffer`` callee, answering each offered media kind.

    The peer connection is created as the offer arrives and the answer leaves at
    once (each offered transceiver set to ``sendrecv``, nothing sent yet); early
    candidates are queued; when the user answers, the camera goes on the first
    *video* transceiver and the microphone on the first *audio* one — by kind,
    not by position: the MDN sample's page offers audio first. A later offer in
    the same call (renegotiation) is answered as it comes.

    Examples
    --------
    :class:`Bot` runs it for every call, as the callee's app code:

    >>> import inspect
    >>> inspect.iscoroutinefunction(bot_callee)
    True
    """
    from .flows import CandidateQueue, send_candidates

    pc = None
    queue = CandidateQueue()
    seen: set[str] = set()

    async def on_message(msg: dict[str, Any]) -> None:
        nonlocal pc
        if msg["type"] == "video-offer":
            sdp = msg.get("sdp")
            key = json.dumps(sdp, sort_keys=True)
            if key in seen:
                return  # a duplicated offer
            seen.add(key)
            if pc is not None:  # renegotiation from the caller
                await pc.setRemoteDescription(sdp)
                await pc.setLocalDescription(await pc.createAnswer())
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
                return
            pc = app.RTCPeerConnection()  # at once, before the user decides
            send_candidates(app, pc, end_of_candidates=False)
            await pc.setRemoteDescription(sdp)
            await queue.flush(pc)  # candidates that came early are not lost
            first: dict[str, Any] = {}
            for transceiver in pc.getTransceivers():
                if transceiver.kind in ("audio", "video") and transceiver.kind not in first:
                    first[transceiver.kind] = transceiver
                    transceiver.direction = "sendrecv"  # room for our media, nothing sent yet
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            await app.user.answer()  # ICE and DTLS connect while the phone rings
            tracks = app.getUserMedia(video="video" in first, audio="audio" in first)
            for track in tracks:  # answering = unmuting, each track on the transceiver of its kind
                await pc.replaceTrack(first[track.kind].sender, track)
        elif msg["type"] == "new-ice-candidate":
            await queue.add(msg["candidate"])
        else:
            app.reject(msg, "unknown message type")

    app.on_message(on_message)


@dataclass
class BotCall:
    """One call answered by the bot: the caller's name and the call's trace."""

    peer: str
    trace: Trace
    app: Any
    number: int = 0
    task: asyncio.Task[Any] | None = None
    handler: Any = None
    ending: bool = False
    closed: bool = False
    saved: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def frame(self) -> pd.DataFrame:
        return self.trace.frame()


class Bot:
    """A user of :class:`SignalingServer` that answers calls (see :func:`bot_callee`).

    The bot plays the callee (its rows have actor ``callee``); the remote
    caller appears only through the signaling rows. ``answer_delay_ms`` is the
    think time before its camera and microphone go on. ``peer_options`` go to
    :class:`rtclab.Peer` (default: no ICE servers, as the lab is offline).
    State is bounded: at most ``max_calls`` calls at once (a further caller is
    hung up on, with a log line), and the last ``keep_calls`` calls are kept in
    :attr:`calls`; each ended call's frame is written to ``save_dir``.

    Examples
    --------
    >>> async def main():
    ...     async with SignalingServer(port=0) as server, Bot(server, "bot") as bot:
    ...         return server.users(), len(bot.calls)
    >>> asyncio.run(main())
    (['bot'], 0)
    """

    def __init__(self, server: SignalingServer, name: str = "bot", *, answer_delay_ms: float = 500.0,
                 peer_options: dict[str, Any] | None = None, save_dir: str | None = None,
                 max_calls: int = 16, keep_calls: int = 50) -> None:
        self.server = server
        self.save_dir = save_dir
        self.wanted = name
        self.answer_delay_ms = answer_delay_ms
        self.peer_options = {"ice_servers": [], **(peer_options or {})}
        self.max_calls = max_calls
        self.calls: collections.deque[BotCall] = collections.deque(maxlen=keep_calls)
        self._active: dict[str, BotCall] = {}
        self._numbers = itertools.count(1)
        self.client: _Client | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def name(self) -> str:
        return self.client.name if self.client and self.client.name else self.wanted

    async def start(self) -> Bot:
        self.client = self.server.attach(self._receive)
        await self.server.handle(self.client, {"type": "username", "name": self.wanted})
        return self

    async def stop(self) -> None:
        for call in list(self._active.values()):
            await self._end(call)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self.client is not None:
            await self.server.detach(self.client)
            self.client = None

    async def __aenter__(self) -> Bot:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    def frame(self, index: int = -1) -> pd.DataFrame:
        """The frame of a call (default: the last one)."""
        return self.calls[index].frame()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send(self, message: dict[str, Any]) -> None:
        if self.client is not None:
            self.server._handle(self.client, {**message, "name": self.name})

    def _receive(self, message: dict[str, Any]) -> None:
        kind, sender = message.get("type"), message.get("name")
        if kind not in ROUTED or not isinstance(sender, str):
            return  # userlist, chat, errors: nothing to do
        call = self._active.get(sender)
        if kind == "video-offer" and call is None:
            if len(self._active) >= self.max_calls:
                self.server._note(self.client, "bot-busy", f"{self.max_calls} calls at once; hung up on {sender}")
                self._send({"type": "hang-up", "target": sender})
                return
            call = self._new_call(sender)
        if call is None:
            return  # e.g. a late candidate of an ended call
        call.trace.record("callee", "signal", kind, "delivered", detail=_short(message))
        if kind == "hang-up":
            self._finish(call)  # at once: an offer right behind it starts a new call
            return
        self._spawn(self._dispatch(call, message))

    def _finish(self, call: BotCall) -> None:
        call.ending = True
        if self._active.get(call.peer) is call:
            del self._active[call.peer]
        self._spawn(self._end(call))

    async def _dispatch(self, call: BotCall, message: dict[str, Any]) -> None:
        from .peer import error_name

        try:
            if call.task is not None and not call.task.done():
                await asyncio.shield(call.task)  # the app is still setting up its handler
            if call.handler is None or call.ending:
                return
            result = call.handler(message)
            if asyncio.iscoroutine(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            call.trace.record("callee", "error", "onmessage", error_name(exc), detail=str(exc))

    def _new_call(self, peer: str) -> BotCall:
        from . import lab

        trace = Trace()
        bot = self

        class _Endpoint:  # what App needs from a signaling endpoint, over the server
            def send(self, message: dict[str, Any]) -> str:
                out = {**message, "target": peer, "name": bot.name}
                trace.record("callee", "signal", str(message.get("type")), "sent", detail=_short(out))
                if not call.ending:
                    bot._send(out)
                return ""

            def on_message(self, handler: Any) -> Any:
                call.handler = handler
                return handler

        user = lab.User("callee", trace, answer_delay_ms=self.answer_delay_ms)
        app = lab.App("callee", trace, _Endpoint(), user, peer_options=self.peer_options)  # type: ignore[arg-type]
        call = BotCall(peer=peer, trace=trace, app=app, number=next(self._numbers))
        self.calls.append(call)
        self._active[peer] = call
        call.task = asyncio.ensure_future(bot_callee(app))
        self._tasks.add(call.task)
        call.task.add_done_callback(self._tasks.discard)
        return call

    async def _end(self, call: BotCall) -> None:
        call.ending = True
        if self._active.get(call.peer) is call:
            del self._active[call.peer]
        if call.closed:
            return
        call.closed = True
        try:
            await call.app.close()
            if self.save_dir:
                from pathlib import Path

                from .trace import save

                safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in call.peer)[:40]
                path = save(call.frame(), Path(self.save_dir) / f"bot-call-{call.number}-{safe}.csv",
                            meta={"flow": "counteroffer", "peer": call.peer})
                call.saved = str(path)
                logger.info("call with %s saved to %s", call.peer, path)
        finally:
            call.done.set()

    async def hang_up(self, peer: str) -> None:
        """Hang up the call with ``peer`` (sends ``hang-up``)."""
        call = self._active.get(peer)
        if call is not None:
            self._send({"type": "hang-up", "target": peer})
            call.ending = True
            await self._end(call)


def _short(message: dict[str, Any]) -> str:
    from .signaling import _summary

    return _summary(message)


def loopback_only() -> bool:
    """True when aioice finds no address but loopback (it skips loopback, so a peer would gather nothing).

    Examples
    --------
    >>> isinstance(loopback_only(), bool)
    True
    """
    import aioice.ice

    return not aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)


async def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, bot: str | None = "bot", answer_delay_ms: float = 500.0,
                save_dir: str | None = None, ready: Any = None, loopback: bool | None = None,
                limits: Limits | None = None, bot_calls: int = 16) -> None:
    """Run the server (and the bot) until cancelled; ``ready(server)`` is called once listening.

    ``loopback=True`` lets the bot gather ``127.0.0.1``
    (:func:`rtclab.browser.allow_loopback_gathering`); ``None`` (default) does
    so, with a warning in the log, when this machine or namespace has no other
    address — else the bot would gather nothing and never connect.
    """
    if bot and (loopback or (loopback is None and loopback_only())):
        from .browser import allow_loopback_gathering

        if not loopback:
            logger.warning("no network address but loopback here: the bot gathers 127.0.0.1 (as with --loopback); "
                           "only callers on this machine can reach it")
        allow_loopback_gathering()
    async with SignalingServer(host, port, limits=limits) as server:
        b = Bot(server, bot, answer_delay_ms=answer_delay_ms, save_dir=save_dir, max_calls=bot_calls) if bot else None
        if b is not None:
            await b.start()
        try:
            if ready is not None:
                ready(server)
            await asyncio.Event().wait()
        finally:
            if b is not None:
                await b.stop()


def add_arguments(parser: Any) -> None:
    """The options of ``python -m rtclab serve`` (also ``python -m rtclab.server``)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for a workshop LAN)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}, the MDN sample's; 0: any free port)")
    parser.add_argument("--bot", default="bot", help="the bot's user name (default 'bot')")
    parser.add_argument("--no-bot", dest="bot", action="store_const", const=None, help="no bot user")
    parser.add_argument("--answer-delay", type=float, default=500.0, dest="answer_delay_ms", help="bot's think time before its camera goes on, ms")
    parser.add_argument("--save", default=None, dest="save_dir", help="write each bot call's frame as CSV into this folder when it ends")
    parser.add_argument("--loopback", action="store_true", default=None,
                        help="let the bot gather 127.0.0.1 (automatic, with a warning, where loopback is the only interface)")
    parser.add_argument("--bot-calls", type=int, default=16, dest="bot_calls",
                        help="calls the bot holds at once (each encodes video); a further caller is hung up on (default 16)")
    parser.add_argument("--max-connections", type=int, default=Limits.max_connections, dest="max_connections",
                        help=f"further WebSocket connections get HTTP 503 (default {Limits.max_connections})")


def run_from_args(ns: Any) -> int:
    """Run the server from parsed arguments until Ctrl-C; prints one line once listening."""
    def ready(server: SignalingServer) -> None:
        bot = f", bot user {ns.bot!r}" if ns.bot else ""
        print(f"rtclab serve: listening on {server.url} (subprotocol json){bot}; Ctrl-C stops", flush=True)

    import faulthandler
    import signal

    handler = logging.StreamHandler(sys.stderr)  # drops, timeouts, saved calls: the operator's log
    handler.setFormatter(logging.Formatter("rtclab serve: %(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>`: print every thread's stack (for a stuck server)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    limits = Limits(max_connections=ns.max_connections)
    try:
        asyncio.run(serve(ns.host, ns.port, bot=ns.bot, answer_delay_ms=ns.answer_delay_ms, save_dir=ns.save_dir, ready=ready,
                          loopback=ns.loopback, limits=limits, bot_calls=ns.bot_calls))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # port taken, address not available
        print(f"rtclab serve: error: {exc}", file=sys.stderr)
        return 2
    finally:
        logger.removeHandler(handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rtclab.server``: same as ``python -m rtclab serve``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rtclab serve", description="MDN-protocol signaling server with an aiortc bot")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
