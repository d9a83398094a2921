"""``python -m rtclab serve``: a signaling server speaking the MDN sample's protocol, with a bot.

The protocol is the one of MDN's *Signaling and video calling* sample: a
WebSocket (subprotocol ``json``, port 6503 by default) carrying JSON messages.

====================  =========================================================
message               meaning
====================  =========================================================
``id``                server → client on connect: ``{"type": "id", "id": 7}``
``username``          client → server: ``{"type": "username", "name", "id"}``
``rejectusername``    server → client: the name was taken; ``name`` is the one
                      given instead (the sample's rule: a number is appended)
``userlist``          server → all: ``{"type": "userlist", "users": [...]}``
``message``           chat text, broadcast to everyone
``video-offer``,      routed to the user named by ``target`` only
``video-answer``,
``new-ice-candidate``,
``hang-up``
``error``             server → client: why a message was refused
                      (``{"type": "error", "error": code, "text", "refused"}``)
====================  =========================================================

``GET /`` (no WebSocket upgrade) serves a minimal tab page
(:data:`TAB_PAGE`, ``?name=you``) that speaks this protocol, calls (click a
user) and answers at once; from another machine a camera needs HTTPS, so
open it on ``localhost`` or behind an HTTPS proxy.

Unlike the sample, the server is strict where a workshop needs it:

* identity is bound to the connection: the server stamps ``name`` (and ``id``)
  on what it forwards, and refuses a message whose ``name`` or ``id`` is not
  the sender's own (``error`` ``identity``) — nobody can send as another user;
* names are unique (``rejectusername``); a connection registers once;
* malformed JSON, non-object messages, unknown types, missing targets and
  messages larger than ``max_message_bytes`` (64 KiB) are refused with an
  ``error`` message and not forwarded (frames over 1 MiB close the socket,
  code 1009);
* a disconnect hangs up that user's calls: each peer the user exchanged an
  offer or answer with gets ``{"type": "hang-up", "name": <user>}``.

:class:`Bot` is a user that answers every call with the ``counteroffer``
flow (``rtclab.flows.counteroffer_callee`` on an aiortc :class:`rtclab.Peer`):
the peer connection is created as the offer arrives, the answer leaves at
once, early candidates are queued, and the camera goes on after the user's
think time (``answer_delay_ms``). Each call is recorded in its own frame
(:meth:`Bot.frame`), so a workshop can call the notebook from a browser tab and
plot the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .trace import Trace

__all__ = ["DEFAULT_PORT", "TAB_PAGE", "Bot", "BotCall", "SignalingServer", "serve"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 6503
ROUTED = ("video-offer", "video-answer", "new-ice-candidate", "hang-up")
#: how long a closing WebSocket waits for the other side's close frame (websockets'
#: default is 10 s; on Ctrl-C the server stops within about twice this)
CLOSE_TIMEOUT_S = 2.0
MAX_NAME = 64


class _Client:
    """A registered or connecting user: a WebSocket connection or an in-process bot."""

    def __init__(self, cid: int, ws: Any = None, deliver: Any = None) -> None:
        self.id = cid
        self.ws = ws
        self.deliver = deliver
        self.name: str | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.deliver is not None:
            self.deliver(message)
            return
        with contextlib.suppress(Exception):  # the socket may be closing
            await self.ws.send(json.dumps(message))


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
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, max_message_bytes: int = 64 * 1024, page: bool = True) -> None:
        self.host = host
        self.page = page
        self.port = port
        self.max_message_bytes = int(max_message_bytes)
        self.clients: dict[int, _Client] = {}
        self.calls: set[frozenset[str]] = set()
        self._ids = itertools.count(1)
        self._server: Any = None
        self.log: list[dict[str, Any]] = []  # refused messages, for the operator

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> SignalingServer:
        from websockets.asyncio.server import serve as ws_serve

        self._server = await ws_serve(
            self._connection, self.host, self.port, subprotocols=["json"], max_size=2**20,
            select_subprotocol=_select_json, process_request=self._http,
            close_timeout=CLOSE_TIMEOUT_S,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _http(self, connection: Any, request: Any) -> Any:
        """Plain HTTP GET (no WebSocket upgrade): the tab page at ``/``, else 404."""
        if "websocket" in request.headers.get("Upgrade", "").lower():
            return None
        if self.page and request.path.split("?")[0] in ("/", "/index.html"):
            from websockets.datastructures import Headers
            from websockets.http11 import Response

            body = TAB_PAGE.encode()
            return Response(200, "OK", Headers([("Content-Type", "text/html; charset=utf-8"),
                                                ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]), body)
        return connection.respond(404, "not found\n")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT_S + 1)
            self._server = None

    async def __aenter__(self) -> SignalingServer:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # -- users ------------------------------------------------------------------------------

    def users(self) -> list[str]:
        return [c.name for c in self.clients.values() if c.name]

    def _by_name(self, name: str) -> _Client | None:
        return next((c for c in self.clients.values() if c.name == name), None)

    def _unique(self, name: str) -> str:
        if self._by_name(name) is None:
            return name
        for n in itertools.count(1):
            candidate = f"{name}{n}"
            if self._by_name(candidate) is None:
                return candidate
        raise AssertionError("unreachable")

    async def _broadcast_userlist(self) -> None:
        message = {"type": "userlist", "users": self.users()}
        for c in list(self.clients.values()):
            if c.name:
                await c.send(message)

    def attach(self, deliver: Any) -> _Client:
        """An in-process user (the bot): ``deliver(message)`` receives what is sent to it."""
        client = _Client(next(self._ids), deliver=deliver)
        self.clients[client.id] = client
        return client

    async def detach(self, client: _Client) -> None:
        await self._gone(client)

    # -- the protocol -------------------------------------------------------------------------

    async def _connection(self, ws: Any) -> None:
        client = _Client(next(self._ids), ws=ws)
        self.clients[client.id] = client
        try:
            await client.send({"type": "id", "id": client.id})
            async for raw in ws:
                await self.handle(client, raw)
        except Exception:  # closed abruptly, too big (1009)...
            pass
        finally:
            await self._gone(client)

    async def _refuse(self, client: _Client, code: str, text: str, message: Any = None) -> None:
        refused = message.get("type") if isinstance(message, dict) else None
        entry = {"type": "error", "error": code, "text": text, "refused": refused}
        self.log.append({**entry, "from": client.name or client.id})
        await client.send(entry)

    async def handle(self, client: _Client, raw: str | bytes | dict[str, Any]) -> None:
        """Handle one message from ``client`` (text as received, or a dict from the bot)."""
        if isinstance(raw, dict):
            message: Any = raw
        else:
            size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
            if size > self.max_message_bytes:
                await self._refuse(client, "too-big", f"message of {size} bytes refused (limit {self.max_message_bytes})")
                return
            try:
                message = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                await self._refuse(client, "malformed", f"not JSON: {exc}")
                return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self._refuse(client, "malformed", "a message is a JSON object with a string 'type'", message)
            return
        kind = message["type"]
        if kind == "username":
            await self._register(client, message)
            return
        if client.name is None:
            await self._refuse(client, "not-registered", "send a 'username' message first", message)
            return
        name, mid = message.get("name"), message.get("id")
        if (name is not None and name != client.name) or (mid is not None and mid != client.id):
            await self._refuse(client, "identity", f"you are {client.name!r} (id {client.id}); you cannot send as {name!r}", message)
            return
        out = {**message, "name": client.name}
        if kind == "message":
            out["id"] = client.id
            for c in list(self.clients.values()):
                if c.name:
                    await c.send(out)
            return
        if kind not in ROUTED:
            await self._refuse(client, "unknown-type", f"unknown message type {kind[:40]!r}", message)
            return
        target = message.get("target")
        peer = self._by_name(target) if isinstance(target, str) else None
        if peer is None or peer is client:
            await self._refuse(client, "no-such-user", f"no user {target!r} to send {kind} to", message)
            return
        pair = frozenset((client.name, peer.name))
        if kind in ("video-offer", "video-answer"):
            self.calls.add(pair)
        elif kind == "hang-up":
            self.calls.discard(pair)
        await peer.send(out)

    async def _register(self, client: _Client, message: dict[str, Any]) -> None:
        name = message.get("name")
        if client.name is not None:
            await self._refuse(client, "identity", f"already registered as {client.name!r}", message)
            return
        if message.get("id") is not None and message.get("id") != client.id:
            await self._refuse(client, "identity", f"your id is {client.id}", message)
            return
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            await self._refuse(client, "malformed", f"a username is a non-empty string of at most {MAX_NAME} characters", message)
            return
        unique = self._unique(name.strip())
        client.name = unique
        if unique != name:
            await client.send({"type": "rejectusername", "id": client.id, "name": unique})
        await self._broadcast_userlist()

    async def _gone(self, client: _Client) -> None:
        if self.clients.pop(client.id, None) is None:
            return
        if client.name:
            for pair in [p for p in self.calls if client.name in p]:
                self.calls.discard(pair)
                (other,) = pair - {client.name}
                peer = self._by_name(other)
                if peer is not None:
                    await peer.send({"type": "hang-up", "name": client.name, "target": other})
            await self._broadcast_userlist()


def _select_json(connection: Any, subprotocols: list[str]) -> str | None:
    # the sample's page asks for "json"; clients that ask for nothing are served too
    return "json" if "json" in subprotocols else None


# --------------------------------------------------------------------------------------
# The bot
# --------------------------------------------------------------------------------------


@dataclass
class BotCall:
    """One call answered by the bot: the caller's name and the call's trace."""

    peer: str
    trace: Trace
    app: Any
    task: asyncio.Task[Any] | None = None
    handler: Any = None
    closed: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def frame(self) -> pd.DataFrame:
        return self.trace.frame()


class Bot:
    """A user of :class:`SignalingServer` that answers calls with the ``counteroffer`` flow.

    The bot plays the callee (its rows have actor ``callee``); the remote
    caller appears only through the signaling rows. ``answer_delay_ms`` is the
    think time before the camera goes on. ``peer_options`` go to
    :class:`rtclab.Peer` (default: no ICE servers, as the lab is offline).
    """

    def __init__(self, server: SignalingServer, name: str = "bot", *, answer_delay_ms: float = 500.0,
                 peer_options: dict[str, Any] | None = None, save_dir: str | None = None) -> None:
        self.server = server
        self.save_dir = save_dir
        self.wanted = name
        self.answer_delay_ms = answer_delay_ms
        self.peer_options = {"ice_servers": [], **(peer_options or {})}
        self.calls: list[BotCall] = []
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
        for call in self.calls:
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

    def _current(self, peer: str) -> BotCall | None:
        return next((c for c in reversed(self.calls) if c.peer == peer and not c.closed), None)

    def _receive(self, message: dict[str, Any]) -> None:
        kind, sender = message.get("type"), message.get("name")
        if kind not in ROUTED or not isinstance(sender, str):
            return  # userlist, chat, errors: nothing to do
        call = self._current(sender)
        if kind == "video-offer" and call is None:
            call = self._new_call(sender)
        if call is None:
            return
        call.trace.record("callee", "signal", kind, "delivered", detail=_short(message))
        if kind == "hang-up":
            self._spawn(self._end(call))
            return
        self._spawn(self._dispatch(call, message))

    async def _dispatch(self, call: BotCall, message: dict[str, Any]) -> None:
        from .peer import error_name

        try:
            if call.task is not None and not call.task.done():
                await asyncio.shield(call.task)  # the app is still setting up its handler
            if call.handler is None or call.closed:
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
        from .flows import counteroffer_callee

        trace = Trace()
        bot = self

        class _Endpoint:  # what App needs from a signaling endpoint, over the server
            def send(self, message: dict[str, Any]) -> str:
                out = {**message, "target": peer, "name": bot.name}
                trace.record("callee", "signal", str(message.get("type")), "sent", detail=_short(out))
                if bot.client is not None:
                    bot._spawn(bot.server.handle(bot.client, out))
                return ""

            def on_message(self, handler: Any) -> Any:
                call.handler = handler
                return handler

        user = lab.User("callee", trace, answer_delay_ms=self.answer_delay_ms)
        app = lab.App("callee", trace, _Endpoint(), user, peer_options=self.peer_options)  # type: ignore[arg-type]
        call = BotCall(peer=peer, trace=trace, app=app)
        self.calls.append(call)
        call.task = asyncio.ensure_future(counteroffer_callee(app))
        self._tasks.add(call.task)
        call.task.add_done_callback(self._tasks.discard)
        return call

    async def _end(self, call: BotCall) -> None:
        if call.closed:
            return
        call.closed = True
        await call.app.close()
        if self.save_dir:
            from pathlib import Path

            from .trace import save

            n = self.calls.index(call) + 1
            safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in call.peer)[:40]
            path = save(call.frame(), Path(self.save_dir) / f"bot-call-{n}-{safe}.csv", meta={"flow": "counteroffer", "peer": call.peer})
            logger.info("call with %s saved to %s", call.peer, path)
        call.done.set()

    async def hang_up(self, peer: str) -> None:
        """Hang up the call with ``peer`` (sends ``hang-up``)."""
        call = self._current(peer)
        if call is not None and self.client is not None:
            await self.server.handle(self.client, {"type": "hang-up", "target": peer})
            await self._end(call)


def _short(message: dict[str, Any]) -> str:
    from .signaling import _summary

    return _summary(message)


async def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, bot: str | None = "bot", answer_delay_ms: float = 500.0,
                save_dir: str | None = None, ready: Any = None) -> None:
    """Run the server (and the bot) until cancelled; ``ready(server)`` is called once listening."""
    async with SignalingServer(host, port) as server:
        b = Bot(server, bot, answer_delay_ms=answer_delay_ms, save_dir=save_dir) if bot else None
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


def run_from_args(ns: Any) -> int:
    """Run the server from parsed arguments until Ctrl-C; prints one line once listening."""
    def ready(server: SignalingServer) -> None:
        bot = f", bot user {ns.bot!r}" if ns.bot else ""
        print(f"rtclab serve: listening on {server.url} (subprotocol json){bot}; Ctrl-C stops", flush=True)

    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>`: print every thread's stack (for a stuck server)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        asyncio.run(serve(ns.host, ns.port, bot=ns.bot, answer_delay_ms=ns.answer_delay_ms, save_dir=ns.save_dir, ready=ready))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # port taken, address not available
        print(f"rtclab serve: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rtclab.server``: same as ``python -m rtclab serve``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rtclab serve", description="MDN-protocol signaling server with an aiortc bot")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
