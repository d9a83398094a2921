"""The two harnesses a scenario's steps run on: a Chromium page, and :class:`rtclab.Peer`.

Both offer the same small vocabulary, so a scenario's JavaScript and Python
read alike (wpt's ``RTCPeerConnection-helper.js`` plays this role there):

=====================================  ==========================================================
``h.pc(actor, config)``                a recorded peer connection (``caller``/``callee``; no ICE servers;
                                       ``config`` may set ``iceTransportPolicy``)
``h.camera(video, audio)``             tracks (Chromium's fake device / rtclab's synthetic ones)
``h.wire(a, b, end=True)``             trickle each side's candidates to the other (``end``: pass
                                       end-of-candidates on too)
``h.negotiate(offerer, answerer)``     one offer/answer round (implicit ``setLocalDescription``)
``h.relay(a, b)`` / ``h.cut(relay)``   trickle through a UDP relay that can stop forwarding (the
                                       simulation cuts the path between the two hosts instead);
``h.heal(relay)``                      ``heal`` makes it forward again
``h.unreachable()``                    a host candidate no one answers (a silent socket; an
                                       unroutable address in the simulation)
``h.attempt(actor, name, fn)``         run a call, keep its error (recorded as a ``call`` row
                                       even when the method does not exist)
``h.note(actor, what, value)``         record an observation (a ``call`` row ``observe:<what>``)
``h.wait_for(pred, s)`` / ``h.sleep``  bounded waits; a sleep only as an observation window
``h.count(actor, kind, name)``         how many rows so far match (e.g. first frames)
=====================================  ==========================================================

Chromium's rows come from ``RecordedPC`` (:data:`rtclab.browser.PAGE`), one
sink per connection, so all scenarios can run side by side in one page;
times are ``performance.now()`` relative to the scenario's start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from ..trace import Trace

__all__ = ["JS_RUNNER", "PeerHarness", "Relay", "UdpPlumbing", "rows_to_trace", "run_peer_steps"]

CAND_LINE = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"
SIM_UNREACHABLE = "192.168.1.99"  # on the sim's lan, owned by no host: every packet is dropped


# --------------------------------------------------------------------------------------
# UDP helpers for the real network (Chromium's page and Peer on loopback)
# --------------------------------------------------------------------------------------


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, on_packet: Callable[[bytes, Any], None] | None) -> None:
        self.on_packet = on_packet
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.on_packet is not None:
            self.on_packet(data, addr)


class Relay:
    """A two-socket UDP relay between one candidate of each side, that can be cut.

    Side ``a``'s candidate is advertised to ``b`` as ``s1`` and ``b``'s to ``a``
    as ``s2``. A packet arriving on ``s1`` (from ``b``) leaves ``s2`` for ``a``;
    one arriving on ``s2`` (from ``a``) leaves ``s1`` for ``b``: each side sees
    the other at the address it was given, so no peer-reflexive candidate is
    learnt and every packet of the call crosses the relay. :meth:`cut` drops
    everything from then on (both directions), like a broken path.
    """

    def __init__(self) -> None:
        self.real: dict[str, tuple[str, int]] = {}
        self.sock: dict[str, _Socket] = {}
        self.cut_ = False
        self.forwarded = 0
        self.dropped = 0

    async def port_for(self, side: str, ip: str, port: int) -> int | None:
        """Register ``side``'s (first) candidate; the port to advertise to the other side."""
        if side in self.real:
            return None  # one candidate per side crosses the relay
        self.real[side] = (ip, port)
        loop = asyncio.get_running_loop()
        for name in ("s1", "s2"):
            if name not in self.sock:
                proto = _Socket(lambda data, addr, n=name: self._on(n, data))
                await loop.create_datagram_endpoint(lambda p=proto: p, local_addr=(ip, 0))
                self.sock[name] = proto
        transport = self.sock["s1" if side == "a" else "s2"].transport
        assert transport is not None
        return int(transport.get_extra_info("sockname")[1])

    def _on(self, arrived_on: str, data: bytes) -> None:
        if self.cut_:
            self.dropped += 1
            return
        # arrived on s1: from b, for a (leaves s2); on s2: from a, for b (leaves s1)
        target = self.real.get("a" if arrived_on == "s1" else "b")
        out = self.sock.get("s2" if arrived_on == "s1" else "s1")
        if target is None or out is None or out.transport is None:
            self.dropped += 1
            return
        self.forwarded += 1
        out.transport.sendto(data, target)

    def cut(self) -> None:
        """Stop forwarding, both ways."""
        self.cut_ = True

    def heal(self) -> None:
        """Forward again, both ways (the path is back)."""
        self.cut_ = False

    def close(self) -> None:
        for proto in self.sock.values():
            if proto.transport is not None:
                proto.transport.close()
        self.sock.clear()


class UdpPlumbing:
    """Relays and silent sockets of one run, by id; :meth:`close` frees them all."""

    def __init__(self) -> None:
        self.relays: dict[str, Relay] = {}
        self.silent: list[_Socket] = []

    def relay(self, rid: str) -> Relay:
        return self.relays.setdefault(rid, Relay())

    async def blackhole(self, ip: str = "127.0.0.1") -> int:
        """A bound UDP socket that never answers (an unreachable host that sends no ICMP)."""
        proto = _Socket(None)
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: proto, local_addr=(ip, 0))
        self.silent.append(proto)
        assert proto.transport is not None
        return int(proto.transport.get_extra_info("sockname")[1])

    def close(self, prefix: str = "") -> None:
        for rid in [r for r in self.relays if r.startswith(prefix)]:
            self.relays.pop(rid).close()
        if not prefix:
            for proto in self.silent:
                if proto.transport is not None:
                    proto.transport.close()
            self.silent.clear()


def _split_candidate(line: str) -> tuple[str, str, int] | None:
    """(transport, ip, port) of a candidate line."""
    parts = line.split()
    if len(parts) < 8:
        return None
    try:
        return parts[2].lower(), parts[4], int(parts[5])
    except ValueError:
        return None


def _with_address(line: str, ip: str, port: int) -> str:
    parts = line.split()
    parts[4], parts[5] = ip, str(port)
    return " ".join(parts)


# --------------------------------------------------------------------------------------
# Peer (simulated or real network)
# --------------------------------------------------------------------------------------


class PeerHarness:
    """The scenario vocabulary on :class:`rtclab.Peer` (``network``: ``"sim"`` or ``"real"``)."""

    CAND = {"candidate": CAND_LINE, "sdpMid": "0", "sdpMLineIndex": 0}

    def __init__(self, network: str, *, net: Any = None, plumbing: UdpPlumbing | None = None) -> None:
        self.network = network
        self.net = net
        self.trace = Trace()
        self.plumbing = plumbing or UdpPlumbing()
        self.peers: list[Any] = []
        self.tracks: list[Any] = []
        self._relays = 0
        self._own_plumbing = plumbing is None

    def pc(self, actor: str, config: dict[str, Any] | None = None) -> Any:
        from ..peer import Peer

        policy = (config or {}).get("iceTransportPolicy", "all")
        pc = Peer(actor, self.trace, ice_servers=[], ice_transport_policy=policy)
        self.peers.append(pc)
        return pc

    def note(self, actor: str, what: str, value: Any, detail: str = "") -> None:
        self.trace.record(actor, "call", f"observe:{what}", str(value).lower() if isinstance(value, bool) else str(value), detail=detail)

    def camera(self, *, video: bool = True, audio: bool = False) -> list[Any]:
        from .. import media

        tracks = media.getUserMedia(video=video, audio=audio)
        self.tracks.extend(tracks)
        return tracks

    async def sleep(self, s: float) -> None:
        await asyncio.sleep(s)

    async def wait_for(self, pred: Callable[[], bool], timeout_s: float) -> bool:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not pred():
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.02)
        return True

    def now_ms(self) -> float:
        return self.trace.now_ms()

    def count(self, actor: str, kind: str, name: str, value: str | None = None) -> int:
        """How many rows so far match (e.g. ``h.count("callee", "media", "first-frame")``)."""
        return sum(1 for r in self.trace.rows if r[1] == actor and r[2] == kind and r[3] == name and (value is None or r[4] == value))

    async def attempt(self, actor: str, name: str, fn: Callable[[], Any]) -> str:
        """Run ``fn()`` (awaiting its result); its error's name, or ``"ok"``; always a ``call`` row."""
        from ..peer import error_name

        before = len(self.trace.rows)
        try:
            result = fn()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
        except Exception as exc:
            if not any(r[1] == actor and r[2] == "call" and r[3] == name and r[4] == "error" for r in self.trace.rows[before:]):
                self.trace.record(actor, "call", name, "error", detail=f"{error_name(exc)}: {exc}")
            return error_name(exc)
        if not any(r[1] == actor and r[2] == "call" and r[3] == name for r in self.trace.rows[before:]):
            self.trace.record(actor, "call", name, "ok")
        return "ok"

    def wire(self, a: Any, b: Any, *, end: bool = True, one_way: bool = False) -> None:
        """Trickle candidates: ``a``'s to ``b`` and (unless ``one_way``) ``b``'s to ``a``."""
        pairs = [(a, b)] if one_way else [(a, b), (b, a)]
        for src, dst in pairs:
            def on_candidate(c: Any, dst: Any = dst) -> Any:
                if c is None and not end:
                    return None
                return self._add(dst, c)

            src.on("icecandidate", on_candidate)

    async def _add(self, pc: Any, candidate: Any) -> None:
        with contextlib.suppress(Exception):  # recorded by Peer
            await pc.addIceCandidate(candidate)

    async def negotiate(self, offerer: Any, answerer: Any) -> None:
        await offerer.setLocalDescription()
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription()
        await offerer.setRemoteDescription(answerer.localDescription)

    def relay(self, a: Any, b: Any) -> str:
        """Wire ``a`` and ``b`` through a cuttable path; returns the relay's id."""
        self._relays += 1
        rid = f"r{self._relays}"
        if self.network == "sim":
            self.wire(a, b)
            return rid
        relay = self.plumbing.relay(rid)
        for src, dst, side in ((a, b, "a"), (b, a, "b")):
            async def on_candidate(c: Any, dst: Any = dst, side: str = side) -> None:
                if c is None:
                    await self._add(dst, None)
                    return
                parsed = _split_candidate(c["candidate"])
                if parsed is None or parsed[0] != "udp":
                    return
                port = await relay.port_for(side, parsed[1], parsed[2])
                if port is not None:
                    await self._add(dst, {**c, "candidate": _with_address(c["candidate"], parsed[1], port)})

            src.on("icecandidate", on_candidate)
        return rid

    def cut(self, rid: str) -> None:
        """Break the path of relay ``rid`` from now on."""
        self.trace.record("network", "net", "cut", "path cut", detail=rid)
        if self.network == "sim":
            self.net.cut(asyncio.get_running_loop().time(), peers_only=True)
        else:
            self.plumbing.relay(rid).cut()

    def heal(self, rid: str) -> None:
        """Let the path of relay ``rid`` carry packets again."""
        self.trace.record("network", "net", "cut", "path restored", detail=rid)
        if self.network == "sim":
            self.net.restore(asyncio.get_running_loop().time())
        else:
            self.plumbing.relay(rid).heal()

    async def unreachable(self) -> dict[str, Any]:
        """A host candidate (for m-section 0) that nobody answers."""
        if self.network == "sim":
            ip, port = SIM_UNREACHABLE, 9999
        else:
            ip = "127.0.0.1"
            port = await self.plumbing.blackhole(ip)
        return {"candidate": f"candidate:9 1 udp 2130706431 {ip} {port} typ host", "sdpMid": "0", "sdpMLineIndex": 0}

    async def close(self) -> None:
        for pc in self.peers:
            with contextlib.suppress(Exception):
                await pc.close()
        for track in self.tracks:
            track.stop()
        if self._own_plumbing:
            self.plumbing.close()


async def run_peer_steps(steps: Callable[[PeerHarness], Any], h: PeerHarness, timeout_s: float) -> Trace:
    """Run a scenario's Peer steps with a deadline; always close. Returns the trace."""
    from ..peer import error_name

    try:
        await asyncio.wait_for(steps(h), timeout_s)
    except asyncio.TimeoutError:
        h.trace.record("network", "error", "deadline", "timeout", detail=f"the scenario did not finish in {timeout_s} s")
    except Exception as exc:
        h.trace.record("network", "error", "script", error_name(exc), detail=str(exc))
    finally:
        h.trace.record("network", "call", "steps-done", "ok")
        await h.close()
    return h.trace


# --------------------------------------------------------------------------------------
# Chromium: the page side (evaluated in rtclab.browser.PAGE, which defines RecordedPC)
# --------------------------------------------------------------------------------------

#: ``page.evaluate(JS_RUNNER, [name, source, timeout_ms])``: runs one scenario, returns
#: ``{rows: [[actor, t_ms, kind, name, value, prev, detail, hint]...]}``.
JS_RUNNER = r"""async ([name, source, timeoutMs]) => {
  const rows = []; const t0 = performance.now(); const pcs = []; const streams = []; const videos = [];
  const now = () => performance.now() - t0;
  const sink = (actor) => (r) => rows.push([actor, r[0] - t0, ...r.slice(1)]);
  const add = async (pc, c) => { try { await pc.addIceCandidate(c); } catch (e) { /* recorded */ } };
  let relays = 0;
  const h = {
    CAND: {candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", sdpMid: "0", sdpMLineIndex: 0},
    pc(actor, config = {}) {
      const pc = new RecordedPC({iceServers: [], ...config}, sink(actor)); pcs.push(pc);
      pc.addEventListener("track", (e) => {   // a media element per received video: its first frame
        if (e.track.kind !== "video") return;
        const v = document.createElement("video"); v.muted = true; v.autoplay = true; v.width = 32;
        v.srcObject = new MediaStream([e.track]); document.body.appendChild(v); videos.push(v);
        v.requestVideoFrameCallback(() => rows.push([actor, now(), "media", "first-frame", "video", "", "", ""]));
        v.play().catch(() => {});
      });
      return pc;
    },
    note(actor, what, value, detail = "") { rows.push([actor, now(), "call", "observe:" + what, String(value), "", String(detail), ""]); },
    async camera({video = true, audio = false} = {}) {
      const s = await navigator.mediaDevices.getUserMedia({video, audio}); streams.push(s); return s.getTracks();
    },
    sleep(s) { return new Promise(r => setTimeout(r, s * 1000)); },
    async waitFor(pred, s) {
      const end = performance.now() + s * 1000;
      while (!pred()) { if (performance.now() >= end) return false; await new Promise(r => setTimeout(r, 20)); }
      return true;
    },
    nowMs: now,
    count(actor, kind, name, value = null) {
      return rows.filter(r => r[0] === actor && r[2] === kind && r[3] === name && (value === null || r[4] === value)).length;
    },
    async attempt(actor, name, fn) {
      const before = rows.length;
      const mine = (r) => r[0] === actor && r[2] === "call" && r[3] === name;
      try { await fn(); }
      catch (e) {
        if (!rows.slice(before).some(r => mine(r) && r[4] === "error")) rows.push([actor, now(), "call", name, "error", "", `${e.name}: ${e.message}`, ""]);
        return e.name;
      }
      if (!rows.slice(before).some(mine)) rows.push([actor, now(), "call", name, "ok", "", "", ""]);
      return "ok";
    },
    wire(a, b, {end = true, oneWay = false} = {}) {
      const pairs = oneWay ? [[a, b]] : [[a, b], [b, a]];
      for (const [src, dst] of pairs) src.addEventListener("icecandidate", (e) => { if (e.candidate || end) add(dst, e.candidate); });
    },
    async negotiate(offerer, answerer) {
      await offerer.setLocalDescription();
      await answerer.setRemoteDescription(offerer.localDescription);
      await answerer.setLocalDescription();
      await offerer.setRemoteDescription(answerer.localDescription);
    },
    relay(a, b) {
      const rid = `${name}#r${++relays}`;
      for (const [src, dst, side] of [[a, b, "a"], [b, a, "b"]]) {
        src.addEventListener("icecandidate", async (e) => {
          if (!e.candidate) { if (e.candidate === null) add(dst, null); return; }
          const parts = e.candidate.candidate.split(" ");
          if (parts.length < 8 || parts[2].toLowerCase() !== "udp") return;
          const port = await conformanceRelayPort(rid, side, parts[4], Number(parts[5]));
          if (port === null) return;
          parts[5] = String(port);
          add(dst, {candidate: parts.join(" "), sdpMid: e.candidate.sdpMid, sdpMLineIndex: e.candidate.sdpMLineIndex});
        });
      }
      return rid;
    },
    async cut(rid) { rows.push(["network", now(), "net", "cut", "path cut", "", rid, ""]); await conformanceRelayCut(rid); },
    async heal(rid) { rows.push(["network", now(), "net", "cut", "path restored", "", rid, ""]); await conformanceRelayHeal(rid); },
    async unreachable() {
      const port = await conformanceBlackhole();
      return {candidate: `candidate:9 1 udp 2130706431 127.0.0.1 ${port} typ host`, sdpMid: "0", sdpMLineIndex: 0};
    },
  };
  const steps = eval("(" + source + ")");
  let timer = null;
  try {
    await Promise.race([steps(h), new Promise((_, reject) => { timer = setTimeout(() => reject(new Error("timeout")), timeoutMs); })]);
  } catch (e) {
    if (e && e.message === "timeout") rows.push(["network", now(), "error", "deadline", "timeout", "", `the scenario did not finish in ${timeoutMs / 1000} s`, ""]);
    else rows.push(["network", now(), "error", "script", (e && e.name) || "Error", "", String((e && e.message) || e), ""]);
  } finally {
    clearTimeout(timer);
    rows.push(["network", now(), "call", "steps-done", "ok", "", "", ""]);
    for (const pc of pcs) { try { pc.close(); } catch (e) {} }
    for (const s of streams) s.getTracks().forEach(t => t.stop());
    for (const v of videos) { v.srcObject = null; v.remove(); }
  }
  return {rows, userAgent: navigator.userAgent};
}"""


def rows_to_trace(rows: list[list[Any]]) -> Trace:
    """A :class:`Trace` from the page's rows (candidate refs linked as rtclab.browser does)."""
    trace = Trace(clock=lambda: 0.0)
    for r in sorted(rows, key=lambda r: float(r[1])):
        actor, t_ms, kind, name, value, prev, detail, hint = (list(r) + [""] * 8)[:8]
        other = "callee" if actor == "caller" else "caller"
        ref = ""
        if kind == "ice" and name == "candidate" and value == "gathered":
            ref = trace.candidate_ref(actor, str(hint), create=True)
        elif kind == "ice" and name == "candidate" and value == "end":
            ref = f"{actor}:end"
        elif hint == "@end":
            ref = f"{other}:end"
        elif hint:
            ref = trace.find_candidate_ref(str(hint))
        elif kind == "media" and name in ("track", "first-frame"):
            ref = f"{actor}:{value}"
        trace.record(str(actor), str(kind), str(name), str(value), prev=str(prev), ref=ref, detail=str(detail), t_ms=max(float(t_ms), 0.0))
    return trace
