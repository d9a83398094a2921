"""Tests of rtclab.server: the MDN-protocol signaling server and its aiortc bot.

Plain Python WebSocket clients play the browser tabs; no browser is needed.
Every test runs under a hard ``asyncio.wait_for`` bound and stops the server
in ``finally``. The bot call runs on loopback only: aioice is told to gather
``127.0.0.1`` for that test (monkeypatched, restored afterwards).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

websockets = pytest.importorskip("websockets", reason="pip install websockets to test rtclab.server")
from websockets.asyncio.client import connect  # noqa: E402

from rtclab.server import DEFAULT_PORT, Bot, SignalingServer  # noqa: E402

TIMEOUT = 20.0


def run(coro_fn: Callable[[], Awaitable[Any]], timeout: float = TIMEOUT) -> Any:
    """Run a test coroutine on a fresh loop with a hard bound."""
    return asyncio.run(asyncio.wait_for(coro_fn(), timeout))


@asynccontextmanager
async def server_running(**kw: Any):
    server = SignalingServer(port=0, **kw)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Tab:
    """A browser tab of the MDN sample, reduced to its WebSocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.id: int | None = None
        self.name: str | None = None

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def recv(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next message of type ``kind`` (userlist updates and others in between are skipped)."""
        async def loop() -> dict[str, Any]:
            while True:
                msg = json.loads(await self.ws.recv())
                if msg.get("type") == kind:
                    return msg
        return await asyncio.wait_for(loop(), timeout)

    async def nothing(self, kind: str, wait: float = 0.2) -> bool:
        """True if no message of type ``kind`` arrives within ``wait`` seconds."""
        try:
            await self.recv(kind, timeout=wait)
        except asyncio.TimeoutError:
            return True
        return False


@asynccontextmanager
async def tab(server: SignalingServer, name: str | None):
    # max_queue=None: the client keeps reading (and answering keepalive pings) while a test looks elsewhere
    async with connect(server.url, subprotocols=["json"], open_timeout=5, close_timeout=2, max_queue=None) as ws:
        t = Tab(ws)
        t.id = (await t.recv("id"))["id"]
        if name is not None:
            await t.send({"type": "username", "name": name, "id": t.id, "date": 0})
            t.name = name
        yield t


def test_default_port_and_subprotocol():
    """The server defaults to the sample's port 6503 and agrees on the 'json' subprotocol."""
    assert SignalingServer().port == DEFAULT_PORT == 6503

    async def main() -> None:
        async with server_running() as server:
            async with connect(server.url, subprotocols=["json"], open_timeout=5) as ws:
                assert ws.subprotocol == "json"

    run(main)


def test_register_two_clients_userlist():
    """Two registered tabs each get their id and a userlist naming both."""

    async def main() -> None:
        async with server_running() as server:
            async with tab(server, "alice") as a, tab(server, "bob") as b:
                assert a.id != b.id
                while True:
                    users = (await a.recv("userlist"))["users"]
                    if users == ["alice", "bob"]:
                        break
                assert (await b.recv("userlist"))["users"] == ["alice", "bob"]

    run(main)


def test_routing_by_target_and_name_stamped():
    """A video-offer reaches only its target, stamped with the sender's name; chat reaches all."""

    async def main() -> None:
        async with server_running() as server:
            async with tab(server, "alice") as a, tab(server, "bob") as b, tab(server, "carol") as c:
                await a.send({"type": "video-offer", "target": "bob", "sdp": {"type": "offer", "sdp": "v=0"}})
                got = await b.recv("video-offer")
                assert got["name"] == "alice" and got["sdp"]["type"] == "offer"
                await a.send({"type": "new-ice-candidate", "target": "bob", "candidate": None})
                assert (await b.recv("new-ice-candidate"))["name"] == "alice"
                assert await c.nothing("video-offer")
                await c.send({"type": "message", "text": "hi", "name": "carol"})
                for t in (a, b, c):
                    assert (await t.recv("message"))["text"] == "hi"
                await a.send({"type": "hang-up", "target": "nobody"})
                assert (await a.recv("error"))["error"] == "no-such-user"

    run(main)


def test_identity_spoof_refused():
    """A message carrying another user's name (or id) is refused with an error and not forwarded."""

    async def main() -> None:
        async with server_running() as server:
            async with tab(server, "alice") as a, tab(server, "bob") as b, tab(server, "mallory") as m:
                await m.send({"type": "video-offer", "name": "alice", "target": "bob", "sdp": {"type": "offer", "sdp": "v=0"}})
                err = await m.recv("error")
                assert err["error"] == "identity" and err["refused"] == "video-offer"
                await m.send({"type": "message", "text": "I am alice", "id": a.id})
                assert (await m.recv("error"))["error"] == "identity"
                await m.send({"type": "username", "name": "alice2"})
                assert (await m.recv("error"))["error"] == "identity"  # registered once
                assert await b.nothing("video-offer")
                assert await b.nothing("message", wait=0.05)

    run(main)


def test_rejectusername_unique_names():
    """A taken name is replaced by a unique one and the tab is told (rejectusername)."""

    async def main() -> None:
        async with server_running() as server:
            async with tab(server, "alice") as a, tab(server, "alice") as a2:
                rej = await a2.recv("rejectusername")
                assert rej["name"] == "alice1" and rej["id"] == a2.id
                while (await a.recv("userlist"))["users"] != ["alice", "alice1"]:
                    pass
                await a2.send({"type": "video-offer", "name": "alice1", "target": "alice", "sdp": {}})
                assert (await a.recv("video-offer"))["name"] == "alice1"

    run(main)


def test_malformed_oversized_and_unregistered():
    """Malformed JSON, wrong shapes, unknown types and oversized messages get an error; the socket stays open."""

    async def main() -> None:
        async with server_running(max_message_bytes=1000) as server:
            async with tab(server, None) as anon:
                await anon.send({"type": "video-offer", "target": "x"})
                assert (await anon.recv("error"))["error"] == "not-registered"
            async with tab(server, "alice") as a, tab(server, "bob") as b:
                for bad, code in (("{not json", "malformed"), ("[1, 2]", "malformed"), ('{"type": 3}', "malformed"),
                                  ({"type": "telepathy"}, "unknown-type"), ({"type": "username", "name": ""}, "identity")):
                    await a.send(bad)
                    assert (await a.recv("error"))["error"] == code, bad
                await a.send({"type": "video-offer", "target": "bob", "sdp": "x" * 2000})
                err = await a.recv("error")
                assert err["error"] == "too-big" and "limit 1000" in err["text"]
                assert await b.nothing("video-offer")
                await a.send({"type": "video-offer", "target": "bob", "sdp": "small"})
                assert (await b.recv("video-offer"))["sdp"] == "small"
                assert len(server.log) >= 6

    run(main)


def test_disconnect_hangs_up_calls():
    """When a user in a call disconnects, the peer gets hang-up and a new userlist."""

    async def main() -> None:
        async with server_running() as server:
            async with tab(server, "bob") as b:
                async with tab(server, "alice") as a:
                    await a.send({"type": "video-offer", "target": "bob", "sdp": {}})
                    await b.recv("video-offer")
                    await b.send({"type": "video-answer", "target": "alice", "sdp": {}})
                    await a.recv("video-answer")
                    assert server.calls == {frozenset({"alice", "bob"})}
                hang = await b.recv("hang-up")
                assert hang["name"] == "alice" and hang["target"] == "bob"
                while (await b.recv("userlist"))["users"] != ["bob"]:
                    pass
                assert server.calls == set()

    run(main)


def test_python_peer_calls_the_bot(monkeypatch, tmp_path):
    """A Python tab using rtclab.Peer calls the aiortc bot over the server; both ends connect, the bot's frame shows it."""
    import aioice.ice

    from rtclab import media
    from rtclab.peer import Peer
    from rtclab.trace import Trace

    # loopback only: nothing leaves the machine, and it works where lo is the only interface
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"] if use_ipv4 else [])

    async def main() -> None:
        async with server_running() as server:
            bot = Bot(server, "bot", answer_delay_ms=50, save_dir=str(tmp_path))
            await bot.start()
            pc = None
            tracks = media.getUserMedia(video=True)
            try:
                async with tab(server, "alice") as a:
                    trace = Trace()
                    pc = Peer("caller", trace, ice_servers=[])
                    loop = asyncio.get_running_loop()
                    sends: list[asyncio.Task[Any]] = []
                    pc.on("icecandidate", lambda c: sends.append(loop.create_task(
                        a.send({"type": "new-ice-candidate", "target": "bot", "candidate": c}))))

                    async def offer() -> None:
                        await pc.setLocalDescription(await pc.createOffer())
                        await a.send({"type": "video-offer", "target": "bot", "name": "alice", "sdp": pc.localDescription})

                    pc.on("negotiationneeded", offer)
                    pc.addTrack(tracks[0])

                    async def listen() -> None:
                        while True:
                            msg = json.loads(await a.ws.recv())
                            if msg["type"] == "video-answer":
                                await pc.setRemoteDescription(msg["sdp"])
                            elif msg["type"] == "new-ice-candidate":
                                await pc.addIceCandidate(msg["candidate"])

                    listener = loop.create_task(listen())
                    try:
                        while not (pc.connectionState == "connected" and bot.calls
                                   and "first-frame" in set(bot.frame().name)):
                            await asyncio.sleep(0.02)
                    finally:
                        listener.cancel()
                        await asyncio.gather(listener, *sends, return_exceptions=True)
                frame = bot.frame()
                conn = frame[(frame.kind == "state") & (frame.name == "connectionState")].value.tolist()
                assert "connected" in conn
                assert bot.calls[0].peer == "alice"
                sent = frame[(frame.kind == "signal") & (frame.value == "sent")].name.tolist()
                assert sent[0] == "video-answer"
                assert set(frame.actor) <= {"callee", "user"}
                # alice left: the server hung up the bot's call, which closed its peer connection
                await asyncio.wait_for(bot.calls[0].done.wait(), 5)
                from rtclab.trace import load

                saved = load(tmp_path / "bot-call-1-alice.csv")
                assert saved.attrs["meta"]["peer"] == "alice" and "connected" in set(saved.value)
            finally:
                if pc is not None:
                    await pc.close()
                for t in tracks:
                    t.stop()
                await bot.stop()

    run(main, timeout=40)


def test_command_line_serves_with_bot(tmp_path):
    """`python -m rtclab.server --port 0` prints its URL, lists the bot, and stops on SIGINT."""
    import os
    import re
    import signal
    import subprocess
    import sys

    # Ctrl-C as in a terminal: a test run started in the background (CI, nohup) ignores SIGINT,
    # and a child would inherit that and never stop
    proc = subprocess.Popen([sys.executable, "-m", "rtclab.server", "--port", "0", "--save", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        async def main() -> None:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)
            m = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
            assert m, line
            server = SignalingServer(port=int(m.group(1)))  # only for its url
            async with tab(server, "alice") as a:
                while "bot" not in (await a.recv("userlist"))["users"]:
                    pass

        run(main)
        proc.send_signal(signal.SIGINT)
        try:
            # the server's own bound is about 2 x CLOSE_TIMEOUT_S; the rest is a loaded machine's margin
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # faulthandler: the stuck server prints its stacks
            time.sleep(1)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
            pytest.fail("server did not stop on SIGINT; its stacks:\n" + proc.stderr.read()[-6000:])
        assert code == 0, proc.stderr.read()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        proc.stdout.close()
        proc.stderr.close()


def test_http_get_serves_the_tab_page():
    """A plain GET / returns the tab page (which speaks the protocol); other paths are 404."""
    import urllib.error
    import urllib.request

    async def main() -> None:
        async with server_running() as server:
            def fetch(path: str) -> tuple[int, str]:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as resp:
                        return resp.status, resp.read().decode()
                except urllib.error.HTTPError as exc:
                    return exc.code, ""

            status, body = await asyncio.to_thread(fetch, "/?name=alice")
            assert status == 200 and 'new WebSocket(' in body and '"json"' in body
            assert (await asyncio.to_thread(fetch, "/nope"))[0] == 404

    run(main)


# --- a room under stress: hostile clients ---------------------------------------------------------

from rtclab.server import Limits  # noqa: E402


async def _stuck_socket(server: SignalingServer) -> Any:
    """A WebSocket that never reads: tiny receive buffer, and websockets stops reading after one message."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    return await connect(server.url, sock=sock, subprotocols=["json"], open_timeout=5, close_timeout=1, max_queue=1)


async def _register(server: SignalingServer, name: str, stack: Any) -> Tab:
    t = await stack.enter_async_context(tab(server, name))
    while name not in (await t.recv("userlist", timeout=10))["users"]:
        pass
    return t


def test_stuck_flooder_is_dropped_and_the_room_keeps_chatting():
    """A client that floods 60 KB chat and never reads is dropped (log line); 20 others keep registering and chatting."""
    from contextlib import AsyncExitStack

    async def main() -> None:
        async with server_running(limits=Limits(send_timeout_s=2.0, ping_interval_s=1.0, ping_timeout_s=3.0)) as server, AsyncExitStack() as stack:
            stuck = await _stuck_socket(server)
            stack.push_async_callback(stuck.close)
            await stuck.send(json.dumps({"type": "username", "name": "flood"}))
            blob = "x" * 60_000

            async def flood() -> int:
                sent = 0
                try:
                    for _ in range(120):
                        await asyncio.wait_for(stuck.send(json.dumps({"type": "message", "text": blob})), 5)
                        sent += 1
                except Exception:  # dropped by the server, or our own send blocked
                    pass
                return sent

            flooding = asyncio.ensure_future(flood())
            users = []
            for i in range(20):  # they register while the flood goes on
                users.append(await _register(server, f"user{i}", stack))
            for u in users:
                await u.send({"type": "message", "text": f"hello from {u.name}"})
            for u in users:  # everyone hears everyone (the flood's own messages are skipped)
                heard: set[str] = set()
                while len(heard) < 20:
                    msg = await u.recv("message", timeout=10)
                    if msg["name"] != "flood":
                        heard.add(msg["text"])
                assert heard == {f"hello from user{i}" for i in range(20)}
            for _ in range(500):  # the stuck client is dropped (bounded wait)
                if any(e["error"] == "dropped" and e["from"] == "flood" for e in server.log):
                    break
                await asyncio.sleep(0.02)
            drops = [e for e in server.log if e["error"] == "dropped"]
            assert [e["from"] for e in drops] == ["flood"], drops
            assert any(e["error"] == "rate-limited" and e["from"] == "flood" for e in server.log)  # the flood was throttled
            assert "flood" not in server.users() and len(server.users()) == 20
            await asyncio.wait_for(flooding, 10)
            # after the drop the room still works: a newcomer registers and chats
            late = await _register(server, "late", stack)
            await late.send({"type": "message", "text": "made it"})
            while (await users[0].recv("message", timeout=10))["text"] != "made it":
                pass

    run(main, timeout=60)


def test_slow_reader_dropped_by_send_timeout_or_queue_bound():
    """Keepalive off: a client whose socket takes nothing is dropped by the send timeout or the queue bound, not waited for."""

    async def main() -> None:
        limits = Limits(send_timeout_s=1.0, ping_interval_s=None, queue_messages=64, rate_bytes=50e6, burst_bytes=50e6)
        async with server_running(limits=limits) as server, tab(server, "sender") as s, tab(server, "witness") as w:
            stuck = await _stuck_socket(server)
            try:
                await stuck.send(json.dumps({"type": "username", "name": "stuck"}))
                while "stuck" not in (await s.recv("userlist"))["users"]:
                    pass
                blob = "y" * 50_000
                for i in range(200):  # private messages to the stuck client (within the sender's rate limits or not)
                    await s.send({"type": "message", "target": "stuck", "text": blob})
                    if any(e["error"] == "dropped" for e in server.log):
                        break
                    await s.send({"type": "message", "target": "witness", "text": f"ping {i}"})
                    assert (await w.recv("message"))["text"] == f"ping {i}"  # the witness is served meanwhile
                    await asyncio.sleep(0.02)
                (drop,) = [e for e in server.log if e["error"] == "dropped"]
                assert drop["from"] == "stuck" and ("took no data" in drop["text"] or "queue full" in drop["text"])
                for _ in range(250):
                    if "stuck" not in server.users():
                        break
                    await asyncio.sleep(0.02)
                assert server.users() == ["sender", "witness"]
            finally:
                await stuck.close()

    run(main, timeout=60)


# --- the MDN sample's client, as far as the server and the bot can tell -----------------------------


class MdnCaller:
    """A caller that behaves like the MDN sample's ``chatclient.js`` where the server and the bot can tell.

    ``getUserMedia({audio: true, video: true})`` then one ``addTransceiver`` per
    track in the stream's order (audio first, so the offer's first m-section is
    audio), the offer sent on ``negotiationneeded`` with ``name`` and ``target``,
    candidates trickled with ``target``, and ``hangUpCall()``: close the peer
    connection first, which clears the target, then send ``hang-up`` with
    ``target: null``.
    """

    def __init__(self, t: Tab) -> None:
        self.tab = t
        self.pc: Any = None
        self.target: str | None = None
        self.tracks: list[Any] = []
        self.trace: Any = None
        self.sends: list[asyncio.Task[Any]] = []

    async def invite(self, target: str) -> None:
        from rtclab import media
        from rtclab.peer import Peer
        from rtclab.trace import Trace

        self.target = target
        self.trace = Trace()
        pc = self.pc = Peer("caller", self.trace, ice_servers=[])
        loop = asyncio.get_running_loop()

        def on_candidate(c: Any) -> None:
            if c is not None and self.target is not None:  # the sample forwards only real candidates
                self.sends.append(loop.create_task(self.tab.send({"type": "new-ice-candidate", "target": self.target, "candidate": c})))

        async def on_negotiationneeded() -> None:
            await pc.setLocalDescription(await pc.createOffer())
            await self.tab.send({"type": "video-offer", "name": self.tab.name, "target": self.target, "sdp": pc.localDescription})

        pc.on("icecandidate", on_candidate)
        pc.on("negotiationneeded", on_negotiationneeded)
        self.tracks = list(reversed(media.getUserMedia(video=True, audio=True)))  # a browser's stream: audio, video
        for track in self.tracks:
            pc.addTransceiver(track)

    async def on_message(self, msg: dict[str, Any]) -> None:
        if self.pc is None:
            return
        if msg["type"] == "video-answer":
            await self.pc.setRemoteDescription(msg["sdp"])
        elif msg["type"] == "new-ice-candidate":
            await self.pc.addIceCandidate(msg["candidate"])
        elif msg["type"] == "hang-up":
            await self.close()

    def first_frames(self) -> set[str]:
        f = self.trace.frame()
        return set(f[(f.actor == "caller") & (f.name == "first-frame")].value)

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        for t in self.tracks:
            t.stop()
        await asyncio.gather(*self.sends, return_exceptions=True)
        self.pc, self.target = None, None

    async def hang_up(self) -> None:
        """The sample's hangUpCall(): closeVideoCall() (which clears the target), then send hang-up."""
        await self.close()
        await self.tab.send({"type": "hang-up", "name": self.tab.name, "target": self.target})


async def _until(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_mdn_caller_gets_video_and_audio_from_the_bot_hangs_up_and_calls_again(tmp_path):
    """An audio+video MDN-like caller gets both kinds from the bot; its hang-up (target null) ends the call, the frame is written; a second call works."""
    from rtclab.browser import allow_loopback_gathering  # noqa: F401 (the same patch, scoped to this test)
    import aioice.ice

    async def main() -> None:
        async with server_running() as server:
            bot = Bot(server, "bot", answer_delay_ms=50, save_dir=str(tmp_path))
            await bot.start()
            caller = None
            listener = None
            try:
                async with tab(server, "alice") as a:
                    caller = MdnCaller(a)

                    async def listen() -> None:
                        while True:
                            msg = json.loads(await a.ws.recv())
                            if msg["type"] == "error":
                                raise AssertionError(f"server refused: {msg}")
                            await caller.on_message(msg)

                    listener = asyncio.ensure_future(listen())
                    for n in (1, 2):  # the second call follows the hang-up at once, on the same socket
                        await caller.invite("bot")
                        await _until(lambda: caller.first_frames() == {"audio", "video"}, f"call {n}: audio and video from the bot")
                        assert server.calls == {frozenset({"alice", "bot"})}
                        call = bot.calls[-1]
                        kinds = {t.kind: t.sender.track.kind for t in call.app.peers[0].getTransceivers() if t.sender.track is not None}
                        assert kinds == {"audio": "audio", "video": "video"}  # each track on the transceiver of its kind
                        await caller.hang_up()
                        await asyncio.wait_for(call.done.wait(), 10)  # the bot ended its side
                        assert server.calls == set() and call.app.peers[0].connectionState == "closed"
                        assert call.saved is not None and (tmp_path / f"bot-call-{n}-alice.csv").exists()
                    assert listener.done() is False  # no error from the server at any point
                    assert len(bot.calls) == 2 and not bot._active
            finally:
                if listener is not None:
                    listener.cancel()
                    await asyncio.gather(listener, return_exceptions=True)
                if caller is not None:
                    await caller.close()
                await bot.stop()

    original = aioice.ice.get_host_addresses
    try:  # loopback only: nothing leaves the machine, and it works where lo is the only interface
        aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"] if use_ipv4 else []
        run(main, timeout=60)
    finally:
        aioice.ice.get_host_addresses = original


# --- routing, call control, input rules ---------------------------------------------------------------


def test_private_message_reaches_only_its_target():
    """A chat message with a target goes to that user only (not to the sender, not to a third user)."""

    async def main() -> None:
        async with server_running() as server:
            async with tab(server, "alice") as a, tab(server, "bob") as b, tab(server, "carol") as c:
                while (await a.recv("userlist"))["users"] != ["alice", "bob", "carol"]:
                    pass
                await a.send({"type": "message", "target": "bob", "text": "psst", "id": a.id})
                got = await b.recv("message")
                assert (got["text"], got["name"], got["target"]) == ("psst", "alice", "bob")
                assert await c.nothing("message") and await a.nothing("message", wait=0.05)
                await a.send({"type": "message", "target": "nobody", "text": "psst"})
                assert (await a.recv("error"))["error"] == "no-such-user"
                await a.send({"type": "message", "target": ["bob"], "text": "psst"})
                assert (await a.recv("error"))["error"] == "malformed"
                await a.send({"type": "message", "text": "all"})  # no target: everyone, as in the sample
                for t in (a, b, c):
                    assert (await t.recv("message"))["text"] == "all"

    run(main)


async def _call(a: Tab, b: Tab) -> None:
    await a.send({"type": "video-offer", "target": b.name, "sdp": {"type": "offer", "sdp": "v=0"}})
    await b.recv("video-offer")
    await b.send({"type": "video-answer", "target": a.name, "sdp": {"type": "answer", "sdp": "v=0"}})
    await a.recv("video-answer")


def test_third_party_cannot_control_a_call():
    """Hang-up, answer and candidates for a user one is not in a call with are refused and not forwarded."""

    async def main() -> None:
        async with server_running() as server:
            async with tab(server, "alice") as a, tab(server, "bob") as b, tab(server, "mallory") as m:
                await _call(a, b)
                for kind in ("hang-up", "video-answer", "new-ice-candidate"):
                    await m.send({"type": kind, "target": "bob", "sdp": {}, "candidate": None})
                    err = await m.recv("error")
                    assert (err["error"], err["refused"]) == ("not-in-call", kind)
                assert await b.nothing("hang-up") and await b.nothing("video-answer", wait=0.05)
                await b.send({"type": "video-answer", "target": "mallory", "sdp": {}})  # nobody offered
                assert (await b.recv("error"))["error"] == "not-in-call"
                assert server.calls == {frozenset({"alice", "bob"})}
                await b.send({"type": "new-ice-candidate", "target": "alice", "candidate": None})  # the parties may
                assert (await a.recv("new-ice-candidate"))["name"] == "bob"

    run(main)


def test_hang_up_without_target_ends_the_senders_call_on_both_sides():
    """The sample's hang-up ({"target": null}) ends the sender's current call: the other party is told, the record goes."""

    async def main() -> None:
        async with server_running() as server:
            async with tab(server, "alice") as a, tab(server, "bob") as b, tab(server, "carol") as c:
                await _call(a, b)
                await a.send({"type": "hang-up", "name": "alice", "target": None})
                hang = await b.recv("hang-up")
                assert (hang["name"], hang["target"]) == ("alice", "bob")
                assert server.calls == set() and await c.nothing("hang-up")
                await a.send({"type": "hang-up", "target": None})  # no call left
                assert (await a.recv("error"))["error"] == "no-call"
                # the stale-record bug: after a hang-up, a new call of bob's is not hung up when alice leaves
                await _call(b, c)
        async with server_running() as server:
            async with tab(server, "bob") as b, tab(server, "carol") as c:
                async with tab(server, "alice") as a:
                    await _call(a, b)
                    await _call(b, c)  # bob's page holds one call: its new offer retires the call with alice
                    assert server.calls == {frozenset({"bob", "carol"})}
                assert await b.nothing("hang-up", wait=0.3)  # alice leaving does not end bob's call with carol

    run(main)


@pytest.mark.parametrize("asked, given, error", [
    ("bot\u200b", "bot1", "bad-name"),          # zero-width space: dropped, then taken
    ("b\u043et", "guest", "bad-name"),          # Cyrillic o among Latin letters
    ("Bot", "Bot1", None),                      # differs only by case
    ("b0t", "b0t1", None),                      # a look-alike digit
    ("\uff42\uff4f\uff54", "bot1", "bad-name"),  # full-width letters: NFKC
    ("", "guest", "bad-name"),
    ("<img src=x onerror=alert(1)>eve", "eve", "bad-name"),
    ('eve"><script>alert(1)</script>', "evealert1", "bad-name"),
    ("\u202eevil", "evil", "bad-name"),          # right-to-left override
    ("Zoë", "Zoë", None),
    ("Дмитрий", "Дмитрий", None),
])
def test_names_are_normalised_and_unconfusable(asked, given, error):
    """Names are NFKC, printable, one script, free of markup; look-alikes of a taken name get a number; the page is told."""

    async def main() -> None:
        async with server_running() as server:
            async with tab(server, "bot") as _bot, tab(server, asked) as t:
                if given != asked:
                    assert (await t.recv("rejectusername"))["name"] == given
                if error:
                    assert (await t.recv("error"))["error"] == error
                while (await t.recv("userlist"))["users"] != ["bot", given]:
                    pass

    run(main)


@pytest.mark.parametrize("raw, code", [
    ('{"type": "message", "text": NaN}', "malformed"),
    ('{"type": "message", "text": "x", "n": Infinity}', "malformed"),
    ('{"type": "message", "text": "x", "n": -Infinity}', "malformed"),
    ('{"type": "message", "text": "x", "n": 1e999}', "malformed"),
    ('{"type": "message", "text": "x", "n": ' + "[" * 5000 + "]" * 5000 + "}", "too-deep"),
    ('{"type": "message", "text": "x", "n": ' + "[" * 20 + "]" * 20 + "}", "too-deep"),
    ('{"type": "message", "text": {"html": "<b>"}}', "malformed"),
    ('{"type": "message", "text": ["<img src=x onerror=alert(1)>"]}', "malformed"),
])
def test_unjsonable_and_deep_messages_get_an_error(raw, code):
    """NaN, Infinity, overflowing numbers, deep nesting and non-string chat get an error message; the socket stays open; nothing is relayed."""

    async def main() -> None:
        async with server_running() as server:
            async with tab(server, "alice") as a, tab(server, "bob") as b:
                await a.send(raw)
                assert (await a.recv("error"))["error"] == code
                assert await b.nothing("message")
                await a.send({"type": "message", "text": "still here"})
                assert (await b.recv("message"))["text"] == "still here"

    run(main)


def test_chat_text_is_html_safe():
    """Markup is stripped from chat as the sample's server does, and what is left is escaped."""

    async def main() -> None:
        async with server_running() as server:
            async with tab(server, "alice") as a, tab(server, "bob") as b:
                for text, seen in (("<img src=x onerror=alert(1)>hi", "hi"), ("a < b & c", "a &lt; b &amp; c"),
                                   ("<img src=x onerror=alert(1) ", "&lt;img src=x onerror=alert(1) "),
                                   ("<scr<script>ipt>alert(1)</script>", "ipt&gt;alert(1)")):
                    await a.send({"type": "message", "text": text})
                    assert (await b.recv("message"))["text"] == seen

    run(main)


# --- bounds: time, connections, memory ----------------------------------------------------------------


def test_registration_timeout_closes_silent_connections():
    """A connection that never sends a user name gets an error, then is closed (1008); registered users stay."""

    async def main() -> None:
        async with server_running(limits=Limits(register_timeout_s=0.5)) as server:
            async with tab(server, "alice") as a, tab(server, None) as silent:
                err = await silent.recv("error")
                assert err["error"] == "register-timeout"
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(silent.ws.recv(), 5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
                await asyncio.sleep(0.6)
                await a.send({"type": "message", "text": "still here"})
                assert (await a.recv("message"))["text"] == "still here"
                assert any(e["error"] == "register-timeout" for e in server.log)

    run(main)


def test_connection_cap_answers_503():
    """Past max_connections a WebSocket handshake gets HTTP 503; a slot frees when someone leaves."""
    from websockets.exceptions import InvalidStatus

    async def main() -> None:
        async with server_running(limits=Limits(max_connections=3)) as server:
            async with tab(server, "a"), tab(server, "b"), tab(server, "c"):
                with pytest.raises(InvalidStatus) as refused:
                    async with tab(server, "d"):
                        pass
                assert refused.value.response.status_code == 503
            for _ in range(250):
                if not server.clients:
                    break
                await asyncio.sleep(0.02)
            async with tab(server, "d") as d:
                await d.recv("userlist")
            assert any(e["error"] == "full" for e in server.log)

    run(main)


def test_other_http_methods_get_405():
    """POST, PUT, DELETE, HEAD, OPTIONS get 405 with Allow: GET; GET / still serves the page."""
    import http.client

    async def main() -> None:
        async with server_running() as server:
            def ask(method: str) -> tuple[int, str | None]:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
                try:
                    conn.request(method, "/")
                    resp = conn.getresponse()
                    resp.read()
                    return resp.status, resp.getheader("Allow")
                finally:
                    conn.close()

            for method in ("POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"):
                assert await asyncio.to_thread(ask, method) == (405, "GET"), method
            assert (await asyncio.to_thread(ask, "GET"))[0] == 200

    run(main)


def test_log_stays_bounded_over_5000_refused_messages():
    """5,000 refused messages (oversized, malformed, NaN, deep, unknown, spoofed) leave a bounded log of short entries."""

    async def main() -> None:
        limits = Limits(log_entries=200, rate_messages=1e6, burst_messages=1e6, rate_bytes=1e9, burst_bytes=1e9)
        async with server_running(limits=limits) as server:
            async with tab(server, "alice") as a, tab(server, "bob") as b:
                big = json.dumps({"type": "message", "text": "z" * 70_000})
                bad = [big, "{not json" + "q" * 5000, '{"type": "message", "text": NaN}', '{"type": "x", "n": ' + "[" * 40 + "]" * 40 + "}",
                       json.dumps({"type": "telepathy", "payload": "p" * 5000}),
                       json.dumps({"type": "message", "name": "bob", "text": "s" * 5000})]
                for i in range(5000):  # one at a time: a client that sends faster than it reads its errors is dropped
                    await a.send(bad[i % len(bad)] if i % 25 else big)
                    await a.recv("error")
                assert server.stats["too-big"] + server.stats["malformed"] + server.stats["too-deep"] \
                    + server.stats["unknown-type"] + server.stats["identity"] == 5000
                assert len(server.log) == 200  # the ring buffer: the last 200 entries only
                assert max(len(json.dumps(e)) for e in server.log) < 400  # short entries, never message contents
                assert "alice" in server.users()  # refused, not dropped: alice read her errors
                await a.send({"type": "message", "text": "ok"})
                assert (await b.recv("message", timeout=10))["text"] == "ok"

    run(main, timeout=120)


def test_userlist_broadcasts_are_coalesced():
    """Joins within one userlist interval cost one broadcast to the room; each newcomer still sees the room at once."""

    async def main() -> None:
        from contextlib import AsyncExitStack

        async with server_running(limits=Limits(userlist_interval_s=60.0)) as server, AsyncExitStack() as stack:
            tabs = []
            for i in range(10):
                t = await stack.enter_async_context(tab(server, f"u{i}"))
                users = (await t.recv("userlist"))["users"]
                assert users == [f"u{j}" for j in range(i + 1)]  # the newcomer's own list is complete
                tabs.append(t)
            assert server.stats["userlist-broadcasts"] == 1  # the first join's; the next waits for the interval
            server._broadcast_userlist()  # the interval is up
            for t in tabs:
                while (await t.recv("userlist"))["users"] != [f"u{j}" for j in range(10)]:
                    pass

    run(main)


def test_bot_state_is_bounded_and_busy_callers_are_hung_up():
    """The bot keeps the last keep_calls calls, holds at most max_calls at once, and a call ended by hang-up leaves nothing active."""

    async def main() -> None:
        async with server_running() as server:
            bot = Bot(server, "bot", answer_delay_ms=0, max_calls=1, keep_calls=2)
            await bot.start()
            try:
                async with tab(server, "alice") as a, tab(server, "bob") as b:
                    for _ in range(3):  # three short calls (the offers are not valid SDP: each call errors, then ends)
                        await a.send({"type": "video-offer", "target": "bot", "sdp": {"type": "offer", "sdp": "v=0"}})
                        await _until(lambda: bool(bot._active), "the bot's call")
                        await b.send({"type": "video-offer", "target": "bot", "sdp": {"type": "offer", "sdp": "v=0"}})
                        assert (await b.recv("hang-up"))["name"] == "bot"  # busy: one call at a time
                        await a.send({"type": "hang-up", "target": None})
                        await _until(lambda: not bot._active and bot.calls[-1].done.is_set(), "the call's end")
                    assert len(bot.calls) == 2 and [c.number for c in bot.calls] == [2, 3]
                    assert any(e["error"] == "bot-busy" for e in server.log)
            finally:
                await bot.stop()

    run(main)


def test_serve_falls_back_to_loopback_with_a_warning(monkeypatch, caplog):
    """Where aioice finds no address, serve() lets the bot gather 127.0.0.1 and says so in the log."""
    import logging

    import aioice.ice

    from rtclab import server as srv

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: [])
    assert srv.loopback_only()

    async def main() -> None:
        started: list[SignalingServer] = []
        task = asyncio.ensure_future(srv.serve(port=0, ready=started.append))
        try:
            await _until(lambda: bool(started), "the server")
            assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.WARNING, logger="rtclab.server"):
        run(main)
    assert any("gathers 127.0.0.1" in r.getMessage() for r in caplog.records)


def test_command_line_in_a_loopback_only_namespace_says_it_gathers_loopback():
    """`serve` started where lo is the only interface logs that the bot gathers 127.0.0.1, and serves."""
    import os
    import signal
    import subprocess
    import sys

    from rtclab import browser

    reason = browser._namespace_problem()
    if reason:
        pytest.skip(f"no loopback-only network namespace: {reason}")
    cmd = browser.isolated_command([sys.executable, "-m", "rtclab.server", "--port", "0"])
    import threading

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    watchdog = threading.Timer(60, lambda: os.killpg(proc.pid, signal.SIGKILL))  # bounds the blocking reads below
    watchdog.start()
    try:
        line = proc.stdout.readline()
        assert "listening on ws://127.0.0.1:" in line, (line, proc.stderr.read()[-2000:] if proc.poll() is not None else "")
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        err = proc.stderr.read()
        assert "gathers 127.0.0.1" in err, err[-2000:]
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        proc.stdout.close()
        proc.stderr.close()


# --- a real page: Chromium running a client that behaves like the sample's -----------------------


@pytest.fixture(scope="module")
def mdn_page(tmp_path_factory) -> dict[str, Any]:
    """tests/_mdn_client.py in headless Chromium, in a loopback-only namespace, run once (hard timeout)."""
    import subprocess
    import sys
    from pathlib import Path

    from rtclab import browser

    reason = browser.availability()
    if reason:
        pytest.skip(reason)
    root = Path(__file__).resolve().parent.parent
    out = tmp_path_factory.mktemp("mdn") / "mdn.json"
    cmd = browser.isolated_command([sys.executable, str(root / "tests" / "_mdn_client.py"), "--out", str(out)])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(root), start_new_session=True)
    try:
        _out, err = proc.communicate(timeout=200)
    except subprocess.TimeoutExpired:
        browser._kill_group(proc)
        _out, err = proc.communicate()
        pytest.fail(f"the MDN-like page run timed out\n{err[-3000:]}")
    finally:
        if proc.poll() is None:
            browser._kill_group(proc)
    assert proc.returncode == 0, err[-4000:]
    return json.loads(out.read_text())


def test_script_in_chat_or_names_never_runs_in_a_page(mdn_page):
    """Chat and names inserted as HTML by an MDN-like page run no script (the same markup handed to the page directly does)."""
    assert mdn_page["direct_pwned"] == "direct"  # the page does run markup it is given
    assert mdn_page["pwned"] is None and mdn_page["elements"] == 0
    assert mdn_page["chat_text"].endswith("mallory: hello & <3")
    assert mdn_page["users"] == ["bot", "alice", "mallory"]
    assert mdn_page["renamed"] == "zed" and mdn_page["renamed_pwned"] is None
    assert "<em>zed</em>" in mdn_page["renamed_notice"]


def test_mdn_page_calls_the_bot_twice_with_audio_and_video(mdn_page):
    """Chromium's audio+video offer (audio first) gets both kinds from the bot; hang-up with target null ends it, the frame is saved; again."""
    assert [c["offered"] for c in mdn_page["calls"]] == [["audio", "video"], ["audio", "video"]]
    for n, call in enumerate(mdn_page["calls"], 1):
        assert call["received"]["video"]["frames"] > 0 and call["received"]["audio"]["packets"] > 0
        assert sorted(call["track_kinds"]) == ["audio", "video"]
        assert call["bot_connection"] == "closed" and call["server_calls"] == []
        assert call["saved"] == f"bot-call-{n}-alice.csv"
    assert mdn_page["unknown"] == [] and mdn_page["page_errors"] == []  # no error message reached the page


def test_binary_frames_are_refused_with_an_error():
    """A binary WebSocket frame (the sample sends text only) gets an error; nothing is relayed."""

    async def main() -> None:
        async with server_running() as server:
            async with tab(server, "alice") as a, tab(server, "bob") as b:
                await a.ws.send(json.dumps({"type": "message", "text": "hi"}).encode())
                err = await a.recv("error")
                assert err["error"] == "malformed" and "binary" in err["text"]
                assert await b.nothing("message")

    run(main)
