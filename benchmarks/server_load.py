"""A room on ``rtclab serve``: many users, a flood, a slow reader (``python -m benchmarks --only server``).

The server runs in its own process (``python -m rtclab.server --no-bot --port 0``,
on loopback), so its RSS is its own; the users are WebSocket clients in this
process. Phases, one after the other in the same run:

1. ``join``: ``users`` users register one after another; counts the user-list
   messages they receive (the sample's server sends n(n+1)/2 of them);
2. ``quiet``: probe pairs exchange private messages (each carries its send
   time) and one user broadcasts to everyone; delivery latency measured;
3. ``storm``: the same traffic while a client that never reads floods 120 chat
   messages of 60 KB and a slow reader reads one message a second;
4. ``after``: the same traffic again once the storm is over;
5. ``refusals``: one client sends 2,000 oversized messages, reading each error.

Server RSS is read from ``/proc`` at each phase's end. Every loop is bounded in
count and time; nothing is asserted (timings belong in the report).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 2)


class _User:
    def __init__(self, ws: Any, name: str) -> None:
        self.ws = ws
        self.name = name
        self.userlists = 0
        self.private_ms: list[float] = []
        self.broadcast_seen: dict[int, float] = {}
        self.reader: asyncio.Task[None] | None = None
        self.dropped = False

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                now = time.perf_counter()
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "userlist":
                    self.userlists += 1
                elif kind == "message" and msg.get("text", "").startswith("t="):
                    sent = float(msg["text"][2:].split(";")[0])
                    if "target" in msg:
                        self.private_ms.append((now - sent) * 1000)
                    else:
                        self.broadcast_seen[int(msg["text"].split(";")[1])] = (now - sent) * 1000
        except Exception:
            self.dropped = True


async def _join(url: str, name: str) -> _User:
    from websockets.asyncio.client import connect

    ws = await connect(url, subprotocols=["json"], open_timeout=20, close_timeout=2, max_queue=64)
    cid = json.loads(await asyncio.wait_for(ws.recv(), 20))["id"]
    await ws.send(json.dumps({"type": "username", "name": name, "id": cid}))
    user = _User(ws, name)
    user.reader = asyncio.ensure_future(user.read())
    return user


async def _traffic(users: list[_User], seconds: float, pairs: int, tag: int) -> dict[str, Any]:
    """Probe pairs send private messages every 50 ms; users[0] broadcasts every 0.5 s. Latencies in ms."""
    for u in users:
        u.private_ms.clear()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    base = tag * 1000
    n_broadcast = 0

    async def prober(i: int) -> int:
        sender, target = users[1 + 2 * i], users[2 + 2 * i]
        sent = 0
        while loop.time() < end and sent < int(seconds / 0.05) + 1:
            await sender.ws.send(json.dumps({"type": "message", "target": target.name, "text": f"t={time.perf_counter()!r};p"}))
            sent += 1
            await asyncio.sleep(0.05)
        return sent

    async def broadcaster() -> None:
        nonlocal n_broadcast
        while loop.time() < end and n_broadcast < int(seconds / 0.5) + 1:
            await users[0].ws.send(json.dumps({"type": "message", "text": f"t={time.perf_counter()!r};{base + n_broadcast}"}))
            n_broadcast += 1
            await asyncio.sleep(0.5)

    sent = await asyncio.gather(*(prober(i) for i in range(pairs)), broadcaster())
    await asyncio.sleep(1.0)  # let the last ones arrive
    private = [ms for u in users for ms in u.private_ms]
    last_receiver = []  # a broadcast's latency to its last receiver
    for k in range(base, base + n_broadcast):
        seen = [u.broadcast_seen.get(k) for u in users if not u.dropped]
        if all(s is not None for s in seen):
            last_receiver.append(max(seen))  # type: ignore[type-var]
    return {
        "private_sent": sum(sent[:-1]), "private_received": len(private),
        "private_p50_ms": _pct(private, 0.5), "private_p95_ms": _pct(private, 0.95), "private_max_ms": _pct(private, 1.0),
        "broadcasts": n_broadcast, "broadcasts_reaching_everyone": len(last_receiver),
        "broadcast_last_receiver_p50_ms": _pct(last_receiver, 0.5), "broadcast_last_receiver_max_ms": _pct(last_receiver, 1.0),
    }


async def _stuck_flooder(url: str, port: int) -> tuple[Any, asyncio.Task[int]]:
    from websockets.asyncio.client import connect

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    ws = await connect(url, sock=sock, subprotocols=["json"], open_timeout=20, close_timeout=1, max_queue=1)
    await ws.send(json.dumps({"type": "username", "name": "flood"}))
    rng = random.Random(1)
    blob = "".join(rng.choices(string.ascii_letters, k=60_000))

    async def flood() -> int:
        sent = 0
        try:
            for _ in range(120):
                await asyncio.wait_for(ws.send(json.dumps({"type": "message", "text": blob})), 5)
                sent += 1
        except Exception:
            pass
        return sent

    return ws, asyncio.ensure_future(flood())


async def _slow_reader(url: str) -> tuple[Any, asyncio.Task[int]]:
    from websockets.asyncio.client import connect

    ws = await connect(url, subprotocols=["json"], open_timeout=20, close_timeout=1, max_queue=4)
    await ws.send(json.dumps({"type": "username", "name": "slow"}))

    async def read() -> int:
        n = 0
        try:
            for _ in range(1000):
                await asyncio.wait_for(ws.recv(), 30)
                n += 1
                await asyncio.sleep(1.0)
        except Exception:
            pass
        return n

    return ws, asyncio.ensure_future(read())


async def room(n_users: int = 200, seconds: float = 5.0, pairs: int = 20) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "rtclab.server", "--no-bot", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT), start_new_session=True)
    out: dict[str, Any] = {"users": n_users}
    log: list[str] = []  # the server's stderr (its drop lines), read by a thread
    import threading

    threading.Thread(target=lambda: log.extend(iter(proc.stderr.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    users: list[_User] = []
    extra: list[Any] = []
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)  # type: ignore[union-attr]
        url = line.split("listening on ")[1].split(" ")[0]
        port = int(url.rsplit(":", 1)[1])
        out["rss_start_mib"] = _rss_mib(proc.pid)
        t = time.perf_counter()
        for i in range(n_users):
            users.append(await _join(url, f"user{i}"))
        loop = asyncio.get_running_loop()
        end = loop.time() + 60
        while loop.time() < end and any(u.userlists == 0 for u in users):
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # the last coalesced broadcast
        out["join_wall_s"] = round(time.perf_counter() - t, 2)
        out["join_userlist_messages"] = sum(u.userlists for u in users)
        out["join_userlist_messages_sample_server"] = n_users * (n_users + 1) // 2
        out["rss_after_join_mib"] = _rss_mib(proc.pid)
        out["quiet"] = await _traffic(users, seconds, pairs, 1)
        flood_ws, flooding = await _stuck_flooder(url, port)
        slow_ws, slow_reading = await _slow_reader(url)
        extra += [flood_ws, slow_ws]
        out["storm"] = await _traffic(users, seconds, pairs, 2)
        out["rss_storm_mib"] = _rss_mib(proc.pid)
        out["flood_messages_sent"] = await asyncio.wait_for(flooding, 60)
        end = loop.time() + 40  # keepalive: up to ping interval + ping timeout
        while loop.time() < end and not any("dropped flood" in ln for ln in log):
            await asyncio.sleep(0.1)
        out["flooder_dropped_after_s"] = round(40 - (end - loop.time()), 1) if any("dropped flood" in ln for ln in log) else None
        slow_reading.cancel()
        out["after"] = await _traffic(users, seconds, pairs, 3)
        out["normal_users_dropped"] = sum(u.dropped for u in users)
        out["rss_after_storm_mib"] = _rss_mib(proc.pid)
        refuser = users[-1]
        refuser.reader.cancel()  # type: ignore[union-attr]
        big = json.dumps({"type": "message", "text": "r" * 70_000})
        refused = 0
        t = time.perf_counter()
        for _ in range(2000):
            await refuser.ws.send(big)
            while json.loads(await asyncio.wait_for(refuser.ws.recv(), 30))["type"] != "error":
                pass
            refused += 1
        out["refused_messages"] = refused
        out["refusals_wall_s"] = round(time.perf_counter() - t, 2)
        out["rss_after_refusals_mib"] = _rss_mib(proc.pid)
    finally:
        for u in users:
            if u.reader is not None:
                u.reader.cancel()
        for ws in [u.ws for u in users] + extra:
            try:
                await asyncio.wait_for(ws.close(), 3)
            except Exception:
                pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        out["slow_reader_dropped"] = any("dropped slow" in ln for ln in log)
        out["server_drop_lines"] = [ln.split(" WARNING ", 1)[-1].strip()[:120] for ln in log if "dropped" in ln][:10]
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    return out


def bench_server(n_users: int, seconds: float) -> dict[str, Any]:
    """Entry point for ``python -m benchmarks --only server``."""
    return asyncio.run(asyncio.wait_for(room(n_users, seconds), 600))


if __name__ == "__main__":  # a quick look: python -m benchmarks.server_load
    print(json.dumps(bench_server(int(sys.argv[1]) if len(sys.argv) > 1 else 50, 3.0), indent=1))
