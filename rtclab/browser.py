"""A real browser in the lab: one side of a call runs in headless Chromium.

The page (:data:`PAGE`, written for rtclab) implements either side of the
``basic`` and ``mdn`` flows and the callee of ``counteroffer`` in plain JavaScript. A recorder in the
page wraps ``RTCPeerConnection`` (every method call with its result or error,
every event, ``performance.now()`` times) and writes rows in the vocabulary of
:mod:`rtclab.trace`; the rows travel over a local WebSocket *bridge* to Python
and join the run's frame on the run's clock. The clock offset between
``performance.now()`` and the trace is measured by ping-pong over the bridge
(the sample with the shortest round trip wins) and recorded: a ``call`` row
``clock-sync`` of the browser's actor at time zero (``detail``: offset and round trip) and
``frame.attrs["meta"]["browser_clock"]``.

Signaling goes through the run's :class:`rtclab.Channel`: the page's
``send()`` becomes ``Endpoint.send`` and the channel delivers to the page, so
latency, jitter, loss and reordering apply to the browser like to ``Peer``.

Chromium is found with :func:`find_chromium` (``RTCLAB_CHROMIUM`` or the
distribution's ``chromium``) and driven by Playwright (``pip install
playwright``; never ``playwright install``: the system browser is used).
Browser calls are meant to run in a loopback-only network namespace
(``unshare -n`` + ``ip link set lo up``, root only) so that no packet, not even
Chrome's mDNS multicast, leaves the machine: :func:`isolated_command` builds
that command line and the module's command line (``python -m rtclab.browser
run|crosscheck|dump``) runs inside it. In such a namespace aioice finds no
address (it skips loopback): :func:`allow_loopback_gathering` gives it
``127.0.0.1`` for the current process only (``--loopback``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from .trace import Trace

__all__ = [
    "CHROMIUM_ARGS",
    "BrowserSide",
    "allow_loopback_gathering",
    "arun_browser",
    "availability",
    "crosscheck",
    "find_chromium",
    "isolated_command",
    "launch",
    "make_internals_dump",
    "jupyterlab_call",
    "tabs_on_server",
]

#: Command-line switches of every browser rtclab starts (Playwright adds an empty profile).
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
)

ENABLE_HINT = (
    "install Chromium (apt-get install chromium, or set RTCLAB_CHROMIUM=/path/to/chrome) "
    "and Playwright (pip install -e '.[browser]'; no 'playwright install' needed), and run as root "
    "with util-linux 'unshare' and iproute2 'ip' for a loopback-only network namespace"
)


# --------------------------------------------------------------------------------------
# Finding and starting the browser
# --------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    """Path of the Chromium binary: ``$RTCLAB_CHROMIUM``, else the distribution's, else ``None``."""
    env = os.environ.get("RTCLAB_CHROMIUM")
    if env:
        return env if os.path.exists(env) else None
    for candidate in ("/usr/lib/chromium/chromium", "/usr/lib/chromium-browser/chromium-browser"):
        if os.access(candidate, os.X_OK):
            return candidate
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def availability(*, isolated: bool = True) -> str | None:
    """``None`` when browser runs can work here, else why not (with how to enable them)."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return f"Playwright is not installed; to enable: {ENABLE_HINT}"
    if find_chromium() is None:
        return f"Chromium not found; to enable: {ENABLE_HINT}"
    if isolated:
        reason = _namespace_problem()
        if reason:
            return f"no loopback-only network namespace ({reason}); to enable: {ENABLE_HINT}"
    return None


_NS_CHECKED: list[str | None] = []


def _namespace_problem() -> str | None:
    if _NS_CHECKED:
        return _NS_CHECKED[0]
    reason: str | None = None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        reason = "needs root"
    elif shutil.which("unshare") is None or shutil.which("ip") is None:
        reason = "'unshare' or 'ip' missing"
    else:
        try:
            out = subprocess.run(
                ["unshare", "-n", "sh", "-c", "ip link set lo up && ip -o addr show"],
                capture_output=True, text=True, timeout=10,
            )
            if out.returncode != 0:
                reason = f"unshare -n failed: {out.stderr.strip()[:200]}"
            elif "127.0.0.1" not in out.stdout:
                reason = "loopback did not come up in the namespace"
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = f"unshare -n failed: {exc}"
    _NS_CHECKED.append(reason)
    return reason


def isolated_command(args: list[str]) -> list[str]:
    """``args`` run in a new, loopback-only network namespace (root only)."""
    quoted = " ".join(_sh_quote(a) for a in args)
    return ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {quoted}"]


def _sh_quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def run_isolated(args: list[str], *, timeout: float, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m rtclab.browser args`` in the namespace; the process group is killed on timeout."""
    cmd = isolated_command([sys.executable, "-m", "rtclab.browser", *args])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise TimeoutError(f"browser run timed out after {timeout} s: {' '.join(args)}\n{err[-3000:]}") from None
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=5)


def allow_loopback_gathering() -> None:
    """Let aioice gather ``127.0.0.1`` (it skips loopback) — this process only.

    Needed in a loopback-only network namespace, where aioice would find no
    address at all and a peer would stay in ``new``. Patches
    ``aioice.ice.get_host_addresses``.
    """
    import aioice.ice

    if getattr(aioice.ice.get_host_addresses, "_rtclab_loopback", False):
        return
    original = aioice.ice.get_host_addresses

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        found = original(use_ipv4, use_ipv6)
        if use_ipv4 and "127.0.0.1" not in found:
            found = ["127.0.0.1", *found]
        return found

    get_host_addresses._rtclab_loopback = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = get_host_addresses


@contextlib.asynccontextmanager
async def launch(*, timeout_s: float = 20.0) -> AsyncIterator[Any]:
    """A headless Chromium (Playwright ``Browser``) with :data:`CHROMIUM_ARGS`, always closed."""
    from playwright.async_api import async_playwright

    path = find_chromium()
    if path is None:
        raise RuntimeError(f"Chromium not found; {ENABLE_HINT}")
    pw = await async_playwright().start()
    browser = None
    try:
        browser = await pw.chromium.launch(
            executable_path=path, args=list(CHROMIUM_ARGS), headless=True, timeout=timeout_s * 1000
        )
        yield browser
    finally:
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pw.stop(), 10)


# --------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------

PAGE = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>rtclab browser peer</title></head>
<body>
<h1>rtclab browser peer</h1>
<p id="status">starting</p>
<video id="local" autoplay muted playsinline width="160"></video>
<video id="remote" autoplay muted playsinline width="160"></video>
<script>
"use strict";
// ---- the bridge to Python -------------------------------------------------------------
const params = new URLSearchParams(location.search);
const ACTOR = params.get("actor") || "caller";
const OTHER = ACTOR === "caller" ? "callee" : "caller";
const socket = new WebSocket(`ws://${location.host}/bridge?actor=${ACTOR}`);
const outbox = [];
let messageHandler = null;
function bridge(obj) {
  const text = JSON.stringify(obj);
  if (socket.readyState === WebSocket.OPEN) socket.send(text); else outbox.push(text);
}
socket.onopen = () => { while (outbox.length) socket.send(outbox.shift()); };
socket.onmessage = async (event) => {
  const msg = JSON.parse(event.data);
  if (msg.op === "ping") bridge({op: "pong", id: msg.id, t: performance.now()});
  else if (msg.op === "deliver") {
    if (!messageHandler) { row("error", "onmessage", "NoHandler", "", `${ACTOR} page not listening`); return; }
    try { await messageHandler(msg.message); }
    catch (err) { row("error", "onmessage", err.name || "Error", "", String(err.message || err)); }
  } else if (msg.op === "start") {
    try { await FLOWS[msg.flow](); document.getElementById("status").textContent = "running " + msg.flow; }
    catch (err) { row("error", "app", err.name || "Error", "", String(err.message || err)); }
    bridge({op: "started", flow: msg.flow});   // the page listens: the other side may start
  }
};
// a row: [performance.now(), kind, name, value, prev, detail, hint] (hint: a candidate line, for refs)
function rowArray(kind, name, value = "", prev = "", detail = "", hint = "") {
  return [performance.now(), kind, name, String(value), String(prev), String(detail).slice(0, 2000), hint];
}
function row(...args) { bridge({op: "rows", rows: [rowArray(...args)]}); }
// the app's signaling: what the MDN sample does over its WebSocket
function send(message) { bridge({op: "send", message: JSON.parse(JSON.stringify(message))}); }
function onMessage(handler) { messageHandler = handler; }

// ---- the recorder: RTCPeerConnection, every call and every event ---------------------------
function sdpSummary(desc) {
  if (!desc || !desc.sdp) return "";
  const lines = desc.sdp.split(/\r?\n/);
  const media = lines.filter(l => l.startsWith("m=")).map(l => l.slice(2).split(" ")[0]);
  const cands = lines.filter(l => l.startsWith("a=candidate:")).length;
  return `${desc.type} m=[${media.join(",")}] candidates=${cands}`;
}
function candidateLine(c) { return c && c.candidate ? c.candidate : ""; }
const NativePC = window.RTCPeerConnection;
const MACHINES = [["signalingstatechange", "signalingState"], ["icegatheringstatechange", "iceGatheringState"],
                  ["iceconnectionstatechange", "iceConnectionState"], ["connectionstatechange", "connectionState"]];
class RecordedPC extends NativePC {
  // sink: where this connection's rows go (default: the bridge); rtclab.conformance gives each
  // scenario's connection its own, so several calls can run side by side in one page
  constructor(config, sink = null) {
    super(config);
    this._sink = sink;
    this._rtclab = {signalingState: "stable", iceGatheringState: "new", iceConnectionState: "new", connectionState: "new"};
    this._row("call", "RTCPeerConnection", "ok", "", JSON.stringify(config || {}));
    for (const [event, machine] of MACHINES) {
      this.addEventListener(event, () => {
        const value = this[machine], prev = this._rtclab[machine];
        if (value !== prev) { this._rtclab[machine] = value; this._row("state", machine, value, prev); }
      });
    }
    this.addEventListener("icecandidate", (e) => {
      if (e.candidate === null) this._row("ice", "candidate", "end");
      else if (!e.candidate.candidate) this._row("ice", "candidate", "end-of-generation");
      else this._row("ice", "candidate", "gathered", "", e.candidate.candidate, e.candidate.candidate);
    });
    this.addEventListener("icecandidateerror", (e) => this._row("error", "icecandidate", "IceCandidateError", "", `${e.errorCode} ${e.errorText} ${e.url || ""}`));
    this.addEventListener("negotiationneeded", () => this._row("call", "negotiationneeded", "event"));
    this.addEventListener("track", (e) => {
      this._row("media", "track", e.track.kind);
      if (e.track.kind === "video" && !this._sink) {
        const video = document.getElementById("remote");
        video.srcObject = e.streams[0] || new MediaStream([e.track]);
        video.requestVideoFrameCallback(() => this._row("media", "first-frame", "video"));
        video.play().catch(() => {});
      }
    });
    this.addEventListener("datachannel", (e) => this._row("media", "datachannel", "received", "", e.channel.label));
  }
}
for (const method of ["createOffer", "createAnswer", "setLocalDescription", "setRemoteDescription", "addIceCandidate"]) {
  RecordedPC.prototype[method] = async function (...args) {
    const hint = method === "addIceCandidate" ? (candidateLine(args[0]) || "@end") : "";
    try {
      const result = await NativePC.prototype[method].apply(this, args);
      let detail = "";
      if (method.startsWith("create")) detail = sdpSummary(result);
      else if (method === "setLocalDescription") detail = sdpSummary(this.localDescription);
      else if (method === "setRemoteDescription") detail = sdpSummary(this.remoteDescription);
      else detail = candidateLine(args[0]) || "end-of-candidates";
      this._row("call", method, "ok", "", detail, hint);
      if (method === "addIceCandidate") this._row("ice", "candidate", "added", "", detail, hint);
      return result;
    } catch (err) {
      const text = `${err.name}: ${err.message}`;
      this._row("call", method, "error", "", text, hint);
      if (method === "addIceCandidate") this._row("ice", "candidate", "rejected", "", text, hint);
      this._row("error", method, err.name, "", err.message, hint);
      throw err;
    }
  };
}
for (const method of ["addTrack", "removeTrack", "addTransceiver", "createDataChannel", "close", "restartIce"]) {
  RecordedPC.prototype[method] = function (...args) {
    try {
      const result = NativePC.prototype[method].apply(this, args);
      const what = args[0] && args[0].kind ? args[0].kind : (typeof args[0] === "string" ? args[0] : "");
      this._row("call", method, "ok", "", what);
      if (method === "close") {
        for (const machine of ["signalingState", "iceConnectionState", "connectionState"]) {
          if (this._rtclab[machine] !== "closed") { this._row("state", machine, "closed", this._rtclab[machine]); this._rtclab[machine] = "closed"; }
        }
      }
      return result;
    } catch (err) {
      this._row("call", method, "error", "", `${err.name}: ${err.message}`);
      this._row("error", method, err.name, "", err.message);
      throw err;
    }
  };
}
RecordedPC.prototype._row = function (...args) {
  if (this._sink) this._sink(rowArray(...args)); else row(...args);
};
window.RTCPeerConnection = RecordedPC;

async function camera() {
  const stream = await navigator.mediaDevices.getUserMedia({video: true, audio: false});
  row("call", "getUserMedia", "ok", "", stream.getTracks().map(t => t.kind).join(","));
  document.getElementById("local").srcObject = stream;
  return stream;
}
const config = {iceServers: []};   // offline: host candidates only
function reportError(err) { row("error", "app", err.name || "Error", "", String(err.message || err)); }

// ---- the apps (one side of each flow) -------------------------------------------------
function sendCandidates(pc) {
  pc.onicecandidate = (e) => send({type: "new-ice-candidate", target: OTHER, candidate: e.candidate});
}
const FLOWS = {
  // basic: offer on negotiationneeded, answer on offer, candidates trickled both ways
  async "basic-caller"() {
    const cam = camera();
    const pc = window.pc = new RTCPeerConnection(config);
    sendCandidates(pc);
    pc.onnegotiationneeded = async () => {
      await pc.setLocalDescription(await pc.createOffer());
      send({type: "video-offer", target: OTHER, sdp: pc.localDescription});
    };
    onMessage(async (msg) => {
      if (msg.type === "video-answer") await pc.setRemoteDescription(msg.sdp);
      else if (msg.type === "new-ice-candidate") await pc.addIceCandidate(msg.candidate);
    });
    const stream = await cam;
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
  },
  async "basic-callee"() {
    const cam = camera();   // asked for at once, awaited only when needed: the handler is set first
    let pc = null;
    onMessage(async (msg) => {
      if (msg.type === "video-offer") {
        pc = window.pc = new RTCPeerConnection(config);
        sendCandidates(pc);
        await pc.setRemoteDescription(msg.sdp);
        const stream = await cam;
        for (const track of stream.getTracks()) pc.addTrack(track, stream);
        await pc.setLocalDescription(await pc.createAnswer());
        send({type: "video-answer", target: OTHER, sdp: pc.localDescription});
      } else if (msg.type === "new-ice-candidate") {
        await pc.addIceCandidate(msg.candidate);   // pc is null if this overtook the offer
      }
    });
  },
  // mdn: the MDN "Signaling and video calling" sample (chatclient.js) as written, one app for
  // both sides: addTransceiver on both, onnegotiationneeded on both (so the callee renegotiates),
  // its glare branch, no end-of-candidates, no candidate queue, errors only reported, and the
  // call closed on "disconnected"
  async mdn() {
    let pc = null, webcam = null;
    function createPeerConnection() {
      pc = window.pc = new RTCPeerConnection(config);
      pc.onicecandidate = (e) => { if (e.candidate) send({type: "new-ice-candidate", target: OTHER, candidate: e.candidate}); };
      pc.oniceconnectionstatechange = () => {
        if (["closed", "failed", "disconnected"].includes(pc.iceConnectionState)) closeVideoCall();
      };
      pc.onnegotiationneeded = async () => {
        try {
          const offer = await pc.createOffer();
          if (pc.signalingState != "stable") return;   // "postponing..."
          await pc.setLocalDescription(offer);
          send({type: "video-offer", target: OTHER, sdp: pc.localDescription});
        } catch (err) { reportError(err); }
      };
    }
    function closeVideoCall() {
      if (!pc) return;
      pc.getTransceivers().forEach((t) => t.stop());
      pc.close();
      pc = null;
    }
    onMessage(async (msg) => {
      if (msg.type === "video-offer") {
        if (!pc) createPeerConnection();
        const desc = new RTCSessionDescription(msg.sdp);
        if (pc.signalingState != "stable") {   // the sample's glare branch
          await Promise.all([pc.setLocalDescription({type: "rollback"}), pc.setRemoteDescription(desc)]);
          return;
        }
        await pc.setRemoteDescription(desc);
        if (!webcam) {
          webcam = await camera();
          webcam.getTracks().forEach((track) => pc.addTransceiver(track, {streams: [webcam]}));
        }
        await pc.setLocalDescription(await pc.createAnswer());
        send({type: "video-answer", target: OTHER, sdp: pc.localDescription});
      } else if (msg.type === "video-answer") {
        await pc.setRemoteDescription(new RTCSessionDescription(msg.sdp)).catch(reportError);
      } else if (msg.type === "new-ice-candidate") {
        try { await pc.addIceCandidate(new RTCIceCandidate(msg.candidate)); }   // TypeError if pc is still null
        catch (err) { reportError(err); }
      } else if (msg.type === "hang-up") {
        closeVideoCall();
      }
    });
    if (ACTOR === "caller") {   // invite()
      createPeerConnection();
      webcam = await camera();
      webcam.getTracks().forEach((track) => pc.addTransceiver(track, {streams: [webcam]}));
    }
  },
  async "mdn-caller"() { return FLOWS.mdn(); },
  async "mdn-callee"() { return FLOWS.mdn(); },
  // counteroffer (callee side): peer connection on offer, immediate answer, early candidates
  // queued; the user's Answer (after ?answer_delay_ms) only puts the camera on the call
  async "counteroffer-callee"() {
    const cam = camera();
    const delay = Number(params.get("answer_delay_ms") || 0);
    let pc = null; const waiting = [];
    async function addCandidate(candidate) {
      if (!pc || !pc.remoteDescription) waiting.push(candidate); else await pc.addIceCandidate(candidate);
    }
    onMessage(async (msg) => {
      if (msg.type === "video-offer") {
        pc = window.pc = new RTCPeerConnection(config);
        sendCandidates(pc);
        await pc.setRemoteDescription(msg.sdp);
        const video = pc.getTransceivers().find(t => t.receiver.track.kind === "video");
        if (video) video.direction = "sendrecv";
        await pc.setLocalDescription(await pc.createAnswer());
        send({type: "video-answer", target: OTHER, sdp: pc.localDescription});
        while (waiting.length) await pc.addIceCandidate(waiting.shift());
        row("user", "prompt", "answer");   // the phone rings while ICE and DTLS connect
        setTimeout(async () => {
          row("user", "click", "answer");
          if (!video) return;
          try {
            await video.sender.replaceTrack((await cam).getVideoTracks()[0]); row("call", "replaceTrack", "ok", "", "video");
            send({type: "call-accepted", target: OTHER});   // the caller opens its own gate
          }
          catch (err) { row("call", "replaceTrack", "error", "", `${err.name}: ${err.message}`); row("error", "replaceTrack", err.name, "", err.message); }
        }, delay);
      } else if (msg.type === "new-ice-candidate") {
        await addCandidate(msg.candidate);
      }
    });
  },
};
bridge({op: "hello", actor: ACTOR, t: performance.now()});
</script>
</body></html>
"""


# --------------------------------------------------------------------------------------
# The bridge: page <-> Python, rows onto the trace, signaling through the Channel
# --------------------------------------------------------------------------------------


class BrowserSide:
    """One side of a call played by a Chromium page; its rows go into ``trace``.

    Serves :data:`PAGE` and the bridge WebSocket on ``127.0.0.1`` (a free
    port), opens the page, measures the clock offset, then starts the page's
    flow on :meth:`start`. Use as ``async with BrowserSide(...) as side``.
    """

    def __init__(self, browser: Any, actor: str, trace: Trace | None = None, endpoint: Any = None, *, query: dict[str, Any] | None = None) -> None:
        self.browser = browser
        self.actor = actor
        self.other = "callee" if actor == "caller" else "caller"
        self.trace = trace if trace is not None else Trace()
        self.endpoint = endpoint
        self.query = query or {}
        self.offset_ms: float | None = None
        self.rtt_ms: float | None = None
        self.page: Any = None
        self._server: Any = None
        self._ws: Any = None
        self._connected = asyncio.Event()
        self._started = asyncio.Event()
        self._pongs: dict[int, asyncio.Future[float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.states: dict[str, str] = {}
        self.page_errors: list[str] = []

    async def __aenter__(self) -> BrowserSide:
        from websockets.asyncio.server import serve
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        def process_request(connection: Any, request: Any) -> Any:
            if request.path.startswith("/bridge"):
                return None
            if request.path.split("?")[0] in ("/", "/lab.html"):
                body = PAGE.encode()
                headers = Headers([("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
                return Response(200, "OK", headers, body)
            return connection.respond(404, "not found\n")

        self._server = await serve(self._handler, "127.0.0.1", 0, process_request=process_request, max_size=2**20)
        port = self._server.sockets[0].getsockname()[1]
        self.page = await self.browser.new_page()
        self.page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        q = "&".join(f"{k}={v}" for k, v in {"actor": self.actor, **self.query}.items())
        await self.page.goto(f"http://localhost:{port}/lab.html?{q}", timeout=15000)
        await asyncio.wait_for(self._connected.wait(), 10)
        await self.sync_clock()
        if self.endpoint is not None:
            self.endpoint.on_message(self._deliver)
        return self

    def bind(self, trace: Trace, endpoint: Any = None) -> None:
        """Record into ``trace`` from now on (the measured offset is carried over) and signal through ``endpoint``."""
        before, after = self.trace.now_ms(), trace.now_ms()  # one instant on both clocks
        if self.offset_ms is not None:
            self.offset_ms = round(self.offset_ms + (before - after), 3)
        self.trace = trace
        trace.record(self.actor, "call", "clock-sync", "ok", detail=f"performance.now() - t_ms = {self.offset_ms} ms (round trip {self.rtt_ms} ms)")
        if endpoint is not None:
            self.endpoint = endpoint
            endpoint.on_message(self._deliver)

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the page and the bridge server."""
        for task in list(self._tasks):
            task.cancel()
        if self.page is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.page.close(), 5)
            self.page = None
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _handler(self, ws: Any) -> None:
        self._ws = ws
        self._connected.set()
        try:
            async for text in ws:
                try:
                    msg = json.loads(text)
                except ValueError:
                    continue
                self._on_bridge(msg)
        except Exception:  # the page went away
            pass

    def _on_bridge(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "pong":
            fut = self._pongs.pop(int(msg.get("id", -1)), None)
            if fut is not None and not fut.done():
                fut.set_result(float(msg["t"]))
        elif op == "rows":
            for r in msg.get("rows", []):
                self._ingest(r)
        elif op == "started":
            self._started.set()
        elif op == "send" and self.endpoint is not None:
            try:
                self.endpoint.send(msg.get("message"))
            except Exception as exc:  # refused by the channel: recorded there
                self.trace.record(self.actor, "error", "send", type(exc).__name__, detail=str(exc))

    def _ingest(self, r: list[Any]) -> None:
        t_page, kind, name, value, prev, detail, hint = (list(r) + [""] * 7)[:7]
        t_ms = float(t_page) - (self.offset_ms or 0.0)
        ref = ""
        if kind == "ice" and name == "candidate" and value == "gathered":
            ref = self.trace.candidate_ref(self.actor, str(hint), create=True)
        elif kind == "ice" and name == "candidate" and value == "end":
            ref = f"{self.actor}:end"
        elif hint == "@end":
            ref = f"{self.other}:end"
        elif hint:
            ref = self.trace.find_candidate_ref(str(hint))
        elif kind == "media" and name in ("track", "first-frame"):
            ref = f"{self.actor}:{value}"
        if kind == "state":
            self.states[str(name)] = str(value)
        if kind == "user":  # the person in front of the page, as rtclab.lab.User records it
            self.trace.record("user", "user", str(name), str(value), detail=self.actor, t_ms=max(t_ms, 0.0))
            return
        self.trace.record(self.actor, str(kind), str(name), str(value), prev=str(prev), ref=ref, detail=str(detail), t_ms=max(t_ms, 0.0))

    async def sync_clock(self, samples: int = 12) -> None:
        """Measure the offset ``performance.now() - trace ms`` (shortest round trip of ``samples``)."""
        best: tuple[float, float] | None = None
        for i in range(samples):
            fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self._pongs[i] = fut
            t1 = self.trace.now_ms()
            await self._ws.send(json.dumps({"op": "ping", "id": i}))
            t_page = await asyncio.wait_for(fut, 5)
            t2 = self.trace.now_ms()
            rtt = t2 - t1
            if best is None or rtt < best[1]:
                best = (t_page - (t1 + t2) / 2.0, rtt)
        assert best is not None
        self.offset_ms, self.rtt_ms = round(best[0], 3), round(best[1], 3)

    def _deliver(self, message: dict[str, Any]) -> Any:
        return self._ws.send(json.dumps({"op": "deliver", "message": message}))

    async def start(self, flow: str) -> None:
        """Start the page's side of ``flow`` (see :data:`BROWSER_FLOWS`); returns once the page listens."""
        self._started.clear()
        await self._ws.send(json.dumps({"op": "start", "flow": f"{flow}-{self.actor}"}))
        await asyncio.wait_for(self._started.wait(), 10)  # its message handler is set

    async def evaluate(self, expression: str, arg: Any = None, *, timeout: float = 15.0) -> Any:
        """Evaluate JavaScript in the page (bounded)."""
        return await asyncio.wait_for(self.page.evaluate(expression, arg), timeout)


# --------------------------------------------------------------------------------------
# A call: the browser on one side, rtclab's aiortc Peer on the other
# --------------------------------------------------------------------------------------

BROWSER_FLOWS = {"basic": ("caller", "callee"), "mdn": ("caller", "callee"), "counteroffer": ("callee",)}


async def arun_browser(
    flow: str = "basic",
    *,
    browser_side: str = "caller",
    signaling_latency_ms: float = 20.0,
    jitter_ms: float = 0.0,
    loss: float = 0.0,
    reorder: float = 0.0,
    seed: int = 0,
    answer_delay_ms: float = 200.0,
    deadline_s: float = 15.0,
    hold_s: float = 0.3,
) -> Any:
    """One call of ``flow`` with ``browser_side`` in Chromium and the other side on ``Peer``.

    Returns a :class:`rtclab.Run` (``params["browser"]`` says which side was
    the browser; ``events.attrs["meta"]["browser_clock"]`` the measured
    offset). The call ends when both sides are connected (plus ``hold_s``),
    or at the deadline.
    """
    from . import lab
    from .flows import get_flow
    from .signaling import Channel

    if browser_side not in BROWSER_FLOWS.get(flow, ()):
        raise ValueError(f"the page implements {sorted(f + ':' + s for f, v in BROWSER_FLOWS.items() for s in v)}, not {flow}:{browser_side}")
    spec = get_flow(flow)
    py_side = "callee" if browser_side == "caller" else "caller"
    p = {**lab.DEFAULTS, "network": "real", "signaling_latency_ms": signaling_latency_ms, "jitter_ms": jitter_ms,
         "loss": loss, "reorder": reorder, "seed": seed, "answer_delay_ms": answer_delay_ms, "deadline_s": deadline_s,
         "browser": browser_side}
    t0 = time.perf_counter()
    trace = Trace()  # replaced once the page is up: time zero is the call, not the browser launch
    channel: Any = None
    app: Any = None
    user: Any = None
    error: BaseException | None = None
    clock: dict[str, Any] = {}
    task: asyncio.Task[Any] | None = None
    try:
        async with launch() as browser:
            async with BrowserSide(browser, browser_side, query={"answer_delay_ms": answer_delay_ms}) as side:
                trace = Trace()  # time zero: the page is loaded and its clock measured
                channel = Channel(trace, latency_ms=signaling_latency_ms, jitter_ms=jitter_ms, loss=loss, reorder=reorder, seed=seed)
                side.bind(trace, channel.endpoint(browser_side))
                user = lab.User(py_side, trace, answer_delay_ms=answer_delay_ms)
                app = lab.App(py_side, trace, channel.endpoint(py_side), user, peer_options={"ice_servers": [], "candidate_interval_ms": 5.0})
                clock = {"offset_ms": side.offset_ms, "rtt_ms": side.rtt_ms}
                code = spec.caller if py_side == "caller" else spec.callee
                if py_side == "callee":
                    task = asyncio.ensure_future(code(app))
                    await asyncio.sleep(0)
                    lab.User("caller", trace, answer_delay_ms=None).call()  # the caller's click, whoever plays it
                    await side.start(flow)
                else:
                    await side.start(flow)
                    lab.User("caller", trace, answer_delay_ms=None).call()  # the caller's click, whoever plays it
                    task = asyncio.ensure_future(code(app))
                loop = asyncio.get_running_loop()
                end = loop.time() + deadline_s
                while loop.time() < end:
                    py_state = app.peers[-1].connectionState if app.peers else "new"
                    frames = {r[1] for r in trace.rows if r[2] == "media" and r[3] == "first-frame"}
                    if (py_state == "connected" and side.states.get("connectionState") == "connected"
                            and frames >= {"caller", "callee"}):
                        await asyncio.sleep(hold_s)
                        break
                    if py_state in ("failed", "closed") or side.states.get("connectionState") == "failed":
                        break
                    await asyncio.sleep(0.01)
                if side.page_errors:
                    trace.record(browser_side, "error", "page", "Error", detail="; ".join(side.page_errors)[:1000])
                with contextlib.suppress(Exception):
                    await side.evaluate("window.pc && window.pc.close()", timeout=5)
                await asyncio.sleep(0.05)
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:
        error = exc
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if channel is not None:
            await channel.close()
        if app is not None:
            await app.close()
    run = lab._finish(flow, p, trace, time.perf_counter() - t0, error)
    run.events.attrs["meta"] = {"flow": flow, "browser": browser_side, "browser_clock": clock}
    return run


# --------------------------------------------------------------------------------------
# Emulation cross-check: the same steps in Chromium and on Peer
# --------------------------------------------------------------------------------------

CROSSCHECK_JS = r"""async () => {
  const out = {};
  const wait = (ms) => new Promise(r => setTimeout(r, ms));
  const stream = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
  const [audio, video] = [stream.getAudioTracks()[0], stream.getVideoTracks()[0]];
  const CAND = {candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", sdpMid: "0", sdpMLineIndex: 0};
  { // negotiationneeded after two addTrack calls in one go
    const pc = new NativePC(config); let n = 0; const t0 = performance.now(); let first = null;
    pc.onnegotiationneeded = () => { n++; if (first === null) first = performance.now() - t0; };
    pc.addTrack(audio, stream); pc.addTrack(video, stream);
    await wait(200);
    out.negotiationneeded_count = n; out.negotiationneeded_after_ms = first; pc.close();
  }
  { // the icecandidate sequence after setLocalDescription(offer)
    const pc = new NativePC(config); const seq = []; const t0 = performance.now(); let firstAt = null;
    const done = new Promise(r => pc.onicecandidate = (e) => {
      if (firstAt === null) firstAt = performance.now() - t0;
      seq.push(e.candidate === null ? "null" : (e.candidate.candidate ? "candidate" : "empty"));
      if (e.candidate === null) r();
    });
    pc.addTrack(video, stream);
    await pc.setLocalDescription(await pc.createOffer());
    out.sld_candidates_in_sdp = (pc.localDescription.sdp.match(/a=candidate:/g) || []).length;
    await Promise.race([done, wait(5000)]);
    out.icecandidate_sequence = seq; out.icecandidate_first_ms = firstAt; pc.close();
  }
  { // addIceCandidate before any remote description
    const pc = new NativePC(config);
    try { await pc.addIceCandidate(CAND); out.early_add = {ok: true}; }
    catch (e) { out.early_add = {ok: false, name: e.name, message: e.message}; }
    pc.close();
  }
  { // a remote offer in have-local-offer: implicit rollback
    const a = new NativePC(config), b = new NativePC(config);
    a.addTrack(video, stream); b.addTrack(video, stream);
    await a.setLocalDescription(await a.createOffer());
    const offerB = await b.createOffer();
    const before = a.signalingState;
    try { await a.setRemoteDescription(offerB); out.implicit_rollback = {ok: true, before, after: a.signalingState}; }
    catch (e) { out.implicit_rollback = {ok: false, before, name: e.name, message: e.message}; }
    try { await a.setLocalDescription(await a.createAnswer()); out.implicit_rollback.answer_after = a.signalingState; }
    catch (e) { out.implicit_rollback.answer_error = e.name; }
    a.close(); b.close();
  }
  { // the operations chain: addIceCandidate issued while setRemoteDescription is pending
    const a = new NativePC(config), b = new NativePC(config);
    a.addTrack(video, stream);
    const cands = []; const gathered = new Promise(r => a.onicecandidate = (e) => e.candidate ? cands.push(e.candidate.toJSON()) : r());
    await a.setLocalDescription(await a.createOffer()); await Promise.race([gathered, wait(5000)]);
    const order = [];
    const p1 = b.setRemoteDescription(a.localDescription).then(() => order.push("setRemoteDescription:ok"), (e) => order.push("setRemoteDescription:" + e.name));
    const p2 = b.addIceCandidate(cands[0]).then(() => order.push("addIceCandidate:ok"), (e) => order.push("addIceCandidate:" + e.name));
    await Promise.all([p1, p2]);
    out.operations_chain = order; a.close(); b.close();
  }
  stream.getTracks().forEach(t => t.stop());
  return out;
}"""


async def _peer_crosscheck() -> dict[str, Any]:
    """The cross-check steps on :class:`rtclab.Peer` (real loopback network)."""
    from . import media
    from .peer import Peer, error_name

    out: dict[str, Any] = {}
    trace = Trace()
    cand = {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
    peers: list[Peer] = []
    tracks = media.getUserMedia(video=True, audio=True)
    audio = next(t for t in tracks if t.kind == "audio")
    video = next(t for t in tracks if t.kind == "video")

    def new(actor: str = "caller") -> Peer:
        pc = Peer(actor, trace, ice_servers=[])
        peers.append(pc)
        return pc

    try:
        pc = new()
        count: list[float] = []
        t0 = asyncio.get_running_loop().time()
        pc.on("negotiationneeded", lambda: count.append((asyncio.get_running_loop().time() - t0) * 1000))
        pc.addTrack(audio)
        pc.addTrack(video)
        await asyncio.sleep(0.2)
        out["negotiationneeded_count"] = len(count)
        out["negotiationneeded_after_ms"] = round(count[0], 3) if count else None

        pc = new()
        seq: list[str] = []
        done = asyncio.Event()
        t0 = asyncio.get_running_loop().time()
        first: list[float] = []

        def on_cand(c: Any) -> None:
            if not first:
                first.append((asyncio.get_running_loop().time() - t0) * 1000)
            seq.append("null" if c is None else ("candidate" if c.get("candidate") else "empty"))
            if c is None:
                done.set()

        pc.on("icecandidate", on_cand)
        pc.addTrack(video)
        await pc.setLocalDescription(await pc.createOffer())
        out["sld_candidates_in_sdp"] = (pc.localDescription or {}).get("sdp", "").count("a=candidate:")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), 5)
        out["icecandidate_sequence"] = seq
        out["icecandidate_first_ms"] = round(first[0], 3) if first else None

        pc = new()
        try:
            await pc.addIceCandidate(cand)
            out["early_add"] = {"ok": True}
        except Exception as exc:
            out["early_add"] = {"ok": False, "name": error_name(exc), "message": str(exc)}

        a, b = new("caller"), new("callee")
        a.addTrack(video)
        b.addTrack(video)
        await a.setLocalDescription(await a.createOffer())
        offer_b = await b.createOffer()
        before = a.signalingState
        try:
            await a.setRemoteDescription(offer_b)
            out["implicit_rollback"] = {"ok": True, "before": before, "after": a.signalingState}
        except Exception as exc:
            out["implicit_rollback"] = {"ok": False, "before": before, "name": error_name(exc), "message": str(exc)}
        try:
            await a.setLocalDescription(await a.createAnswer())
            out["implicit_rollback"]["answer_after"] = a.signalingState
        except Exception as exc:
            out["implicit_rollback"]["answer_error"] = error_name(exc)

        a, b = new("caller"), new("callee")
        a.addTrack(video)
        cands: list[dict[str, Any]] = []
        gathered = asyncio.Event()
        a.on("icecandidate", lambda c: cands.append(c) if c is not None else gathered.set())
        await a.setLocalDescription(await a.createOffer())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(gathered.wait(), 5)
        order: list[str] = []

        async def step(name: str, coro: Any) -> None:
            try:
                await coro
                order.append(f"{name}:ok")
            except Exception as exc:
                order.append(f"{name}:{error_name(exc)}")

        await asyncio.gather(step("setRemoteDescription", b.setRemoteDescription(a.localDescription)),
                             step("addIceCandidate", b.addIceCandidate(cands[0] if cands else cand)))
        out["operations_chain"] = order
    finally:
        for pc in peers:
            await pc.close()
        for t in tracks:
            t.stop()
    return out


async def crosscheck() -> dict[str, Any]:
    """The same steps on Chromium and on :class:`rtclab.Peer`: ``{"chromium": {...}, "peer": {...}}``."""
    result: dict[str, Any] = {}
    async with launch() as browser:
        trace = Trace()
        async with BrowserSide(browser, "caller", trace) as side:
            result["chromium"] = await side.evaluate(CROSSCHECK_JS, timeout=30)
            result["user_agent"] = await side.evaluate("navigator.userAgent")
    result["peer"] = await _peer_crosscheck()
    return result


# --------------------------------------------------------------------------------------
# A real chrome://webrtc-internals dump
# --------------------------------------------------------------------------------------

DUMP_JS = r"""async () => {
  // two peer connections of one page call each other: offer on negotiationneeded, trickle
  const stream = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
  const caller = new NativePC(config), callee = new NativePC(config);
  caller.onicecandidate = (e) => callee.addIceCandidate(e.candidate);
  callee.onicecandidate = (e) => caller.addIceCandidate(e.candidate);
  caller.onnegotiationneeded = async () => {
    await caller.setLocalDescription();
    await callee.setRemoteDescription(caller.localDescription);
    await callee.setLocalDescription();
    await caller.setRemoteDescription(callee.localDescription);
  };
  for (const track of stream.getTracks()) caller.addTrack(track, stream);
  const t0 = performance.now();
  while (!(caller.connectionState === "connected" && callee.connectionState === "connected")) {
    if (performance.now() - t0 > 10000) throw new Error("not connected after 10 s");
    await new Promise(r => setTimeout(r, 10));
  }
  await new Promise(r => setTimeout(r, 300));
  window.keep = [caller, callee, stream];
  return [caller.connectionState, callee.connectionState];
}"""


async def make_internals_dump(path: str | Path) -> Path:
    """Make a real ``chrome://webrtc-internals`` dump of a two-peer-connection call (UI-driven download)."""
    path = Path(path)
    async with launch() as browser:
        context = await browser.new_context(accept_downloads=True)
        try:
            internals = await context.new_page()
            await internals.goto("chrome://webrtc-internals", timeout=15000)
            await internals.wait_for_timeout(300)
            trace = Trace()

            class _Ctx:  # BrowserSide opens its page in this context
                new_page = context.new_page

            async with BrowserSide(_Ctx, "caller", trace) as side:
                states = await side.evaluate(DUMP_JS, timeout=20)
                if states != ["connected", "connected"]:
                    raise RuntimeError(f"the call did not connect: {states}")
                await internals.bring_to_front()
                await internals.click("details.peer-connection-dump-root summary")
                await internals.uncheck("#dump-checkbox")
                async with internals.expect_download(timeout=15000) as info:
                    await internals.click("#dump-click-target")
                download = await info.value
                path.parent.mkdir(parents=True, exist_ok=True)
                await download.save_as(str(path))
        finally:
            await context.close()
    return path


# --------------------------------------------------------------------------------------
# Browser tabs on `rtclab serve`: the workshop setting
# --------------------------------------------------------------------------------------



async def tabs_on_server(*, timeout_s: float = 20.0) -> dict[str, Any]:
    """Chromium tabs on a :class:`rtclab.server.SignalingServer` with its bot (the workshop setting).

    ``alice`` calls the bot; a second tab asking for ``alice`` becomes
    ``alice1``; ``bob`` calls ``alice1``; ``bob`` then tries to send as
    ``alice``; finally ``alice``'s tab closes. Returns what each saw.
    """
    from .server import Bot, SignalingServer

    out: dict[str, Any] = {}

    async def until(page: Any, expr: str, what: str) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not await page.evaluate(expr):
            if loop.time() > end:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async with SignalingServer(port=0) as server:
        bot = Bot(server, "bot", answer_delay_ms=100)
        await bot.start()
        try:
            async with launch() as browser:
                context = await browser.new_context()
                try:
                    pages: dict[str, Any] = {}
                    for name in ("alice", "bob", "alice"):
                        page = await context.new_page()
                        # the server's own page (http://localhost: a secure context, camera allowed)
                        await page.goto(f"http://localhost:{server.port}/?name={name}", timeout=15000)
                        await until(page, "state.name !== null && state.users.includes(state.name)", f"{name} registered")
                        pages[await page.evaluate("state.name")] = page
                    out["names"] = sorted(pages)
                    out["users"] = sorted(server.users())
                    alice, bob = pages["alice"], pages["bob"]
                    await alice.evaluate("call('bot')")
                    await until(alice, "connection() === 'connected'", "alice connected to the bot")
                    for _ in range(int(timeout_s * 50)):
                        if bot.calls and "first-frame" in set(bot.frame().name):
                            break
                        await asyncio.sleep(0.02)
                    frame = bot.frame()
                    out["bot_states"] = frame[(frame.kind == "state") & (frame.name == "connectionState")].value.tolist()
                    out["bot_first_frame"] = bool((frame.name == "first-frame").any())
                    await bob.evaluate("call('alice1')")
                    await until(bob, "connection() === 'connected'", "bob connected to alice1")
                    await until(pages["alice1"], "connection() === 'connected'", "alice1 connected to bob")
                    out["bob_alice1"] = [await bob.evaluate("connection()"), await pages["alice1"].evaluate("connection()")]
                    await bob.evaluate("sendToServer({type: 'video-offer', name: 'alice', target: 'bot', sdp: {type: 'offer', sdp: 'v=0'}})")
                    await until(bob, "state.errors.some(e => e.error === 'identity')", "bob's spoof refused")
                    out["bob_errors"] = await bob.evaluate("state.errors")
                    out["alice_errors"] = await alice.evaluate("state.errors")
                    out["bot_calls"] = len(bot.calls)
                    await alice.close()  # the tab goes away: the server hangs up the bot's call
                    await asyncio.wait_for(bot.calls[0].done.wait(), 10)
                    out["bot_hung_up"] = True
                    out["server_log"] = list(server.log)
                finally:
                    await context.close()
        finally:
            await bot.stop()
    return out


# --------------------------------------------------------------------------------------
# The course UI in a real browser: JupyterLab with a CallPanel
# --------------------------------------------------------------------------------------

PANEL_NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "id": "panel", "metadata": {}, "outputs": [],
               "source": ["from rtclab.widgets import CallPanel\n", "panel = CallPanel(\"counteroffer\")\n", "panel"]}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}


async def jupyterlab_call(out_dir: str | Path, *, timeout_s: float = 240.0, first_open: str | Path | None = None) -> dict[str, Any]:
    """Start JupyterLab on loopback and use a CallPanel in Chromium as a learner would.

    1. With ``first_open`` (a stored notebook, e.g. ``notebooks/09_playground.ipynb``):
       open it *without running it* and record what the panel's output shows
       (``first_open``: pictures, whether widget internals such as
       ``VBox(children=`` are visible); screenshot ``first-open.png``.
    2. Run a notebook holding a ``CallPanel``; screenshot the panel alone
       (``panel.png``, the source of ``rtclab/static/callpanel.png``).
    3. On ``sim``: click Call, Answer, Hang up; then switch the network to
       ``real`` and do the same on a live call (Answer once it rings, Hang up
       once media flows). The status line after each step is recorded
       (``sim``, ``real``); ``status`` is the one after the simulated Answer.

    Writes ``callpanel.png`` (the page at the end) into ``out_dir``.
    JupyterLab runs with a throwaway config, data and runtime directory, a
    token, and no update checks.
    """
    import shutil
    import socket
    import tempfile

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rtclab-jl-") as tmp:
        root = Path(tmp) / "work"
        root.mkdir()
        (root / "panel.ipynb").write_text(json.dumps(PANEL_NOTEBOOK))
        if first_open is not None:
            shutil.copy(first_open, root / "first-open.ipynb")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        token = "rtclab-ui-test"
        env = {**os.environ, "JUPYTER_CONFIG_DIR": f"{tmp}/config", "JUPYTER_DATA_DIR": f"{tmp}/data",
               "JUPYTER_RUNTIME_DIR": f"{tmp}/runtime", "IPYTHONDIR": f"{tmp}/ipython", "MPLBACKEND": "Agg"}
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
               "--ServerApp.port_retries=0"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        log = open(out / "jupyterlab.log", "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(root), start_new_session=True)
        try:
            import urllib.request

            loop = asyncio.get_running_loop()
            end = loop.time() + timeout_s
            while True:
                try:
                    await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/api/status?token={token}", None, 2)
                    break
                except Exception:
                    if proc.poll() is not None or loop.time() > end:
                        raise RuntimeError(f"JupyterLab did not start (see {out / 'jupyterlab.log'})") from None
                    await asyncio.sleep(0.25)
            result["started_s"] = round(timeout_s - (end - loop.time()), 2)
            ms = lambda: max(1000, int((end - loop.time()) * 1000))  # noqa: E731 - what is left of the budget
            async with launch() as browser:
                if first_open is not None:
                    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                    try:
                        await page.goto(f"http://127.0.0.1:{port}/lab/tree/first-open.ipynb?token={token}", timeout=ms())
                        cell = page.locator(".jp-CodeCell", has_text="panel = CallPanel(").first  # the cell that shows the panel
                        output = cell.locator(".jp-OutputArea-output").first
                        await output.wait_for(timeout=min(ms(), 60000))
                        await page.wait_for_timeout(1500)  # let every renderer settle (not a measurement)
                        await output.scroll_into_view_if_needed(timeout=ms())
                        text = await output.inner_text(timeout=ms())
                        images = await output.locator("img").count()
                        visible = images and await output.locator("img").first.is_visible()
                        result["first_open"] = {"images": images, "image_visible": bool(visible),
                                                "raw_repr": "VBox(children" in text, "text": text[:300]}
                    finally:
                        with contextlib.suppress(Exception):
                            await page.screenshot(path=str(out / "first-open.png"), timeout=10000)
                        await page.close()
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                try:
                    # a fresh workspace: the notebook opened first must not be restored beside this one
                    await page.goto(f"http://127.0.0.1:{port}/lab/workspaces/panel/tree/panel.ipynb?token={token}&reset", timeout=ms())
                    # the status bar says the kernel is idle only once it is connected
                    await page.get_by_text("| Idle").first.wait_for(timeout=ms())
                    result["kernel_idle_s"] = round(timeout_s - (end - loop.time()), 2)
                    button = lambda name: page.locator("button.jupyter-button", has_text=name)  # noqa: E731
                    call = button("Call")  # (the icon is part of its name)
                    for attempt in range(3):  # a run request sent while the kernel settles can be lost
                        await page.locator(".jp-NotebookPanel:visible .jp-Cell .jp-InputArea-editor").first.click(timeout=min(ms(), 60000))
                        await page.keyboard.press("Control+Enter")
                        try:
                            await call.wait_for(timeout=min(ms(), 40000))  # importing rtclab takes seconds
                            break
                        except Exception:
                            if attempt == 2:
                                raise
                    result["run_attempts"] = attempt + 1
                    with contextlib.suppress(Exception):
                        await page.locator(".widget-vbox").first.screenshot(path=str(out / "panel.png"), timeout=10000)

                    async def enabled(name: str) -> None:
                        await page.wait_for_function(
                            "n => [...document.querySelectorAll('button')].some(b => b.textContent.trim() === n && !b.disabled)",
                            arg=name, timeout=ms())

                    async def status(*words: str) -> str:
                        await page.wait_for_function(
                            "ws => [...document.querySelectorAll('.widget-html-content')].some(e => ws.every(w => e.textContent.includes(w)))",
                            arg=list(words), timeout=ms())
                        texts = await page.locator(".widget-html-content").all_inner_texts()
                        return next(t.strip() for t in texts if all(w in t for w in words))

                    steps: list[str] = []
                    result["step"] = "sim: Call"
                    await call.click(timeout=ms())
                    steps.append(await status("ringing"))
                    result["step"] = "sim: Answer"
                    await enabled("Answer")
                    await button("Answer").click(timeout=ms())
                    steps.append(await status("connected"))
                    result["status"] = steps[-1]
                    result["step"] = "sim: Hang up"
                    await enabled("Hang up")
                    await button("Hang up").click(timeout=ms())
                    steps.append(await status("hung up"))
                    result["sim"] = steps
                    with contextlib.suppress(Exception):  # let the plot render for the screenshot
                        await page.get_by_text("| Idle").first.wait_for(timeout=10000)
                    steps = []
                    result["step"] = "real: Call"
                    await page.locator(".widget-dropdown", has_text="network").locator("select").select_option("real", timeout=ms())
                    await call.click(timeout=ms())
                    steps.append(await status("ringing"))
                    result["step"] = "real: Answer"
                    await enabled("Answer")
                    await button("Answer").click(timeout=ms())
                    steps.append(await status("in call"))
                    result["step"] = "real: waiting for media"
                    await status("first-frame")  # media reached a side: the live table says so
                    result["step"] = "real: Hang up"
                    await enabled("Hang up")
                    await button("Hang up").click(timeout=ms())
                    steps.append(await status("hung up ("))
                    result["real"] = steps
                    result["step"] = "done"
                finally:
                    with contextlib.suppress(Exception):
                        await page.screenshot(path=str(out / "callpanel.png"), timeout=10000)
                        result["screenshot"] = str(out / "callpanel.png")
                    # what was reached, also when a step timed out (for the failing test's message)
                    (out / "progress.json").write_text(json.dumps(result, indent=1))
                    await page.close()
        finally:
            _kill_group(proc)  # type: ignore[arg-type]
            log.close()
    return result


# --------------------------------------------------------------------------------------
# Command line (used by the tests inside a loopback-only namespace)
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m rtclab.browser run|crosscheck|dump [--loopback] --out PATH``."""
    ap = argparse.ArgumentParser(prog="python -m rtclab.browser", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="one call: browser on one side, Peer on the other; writes the frame (CSV) and a JSON summary")
    r.add_argument("flow", choices=sorted(BROWSER_FLOWS))
    r.add_argument("--browser", default="caller", choices=["caller", "callee"])
    r.add_argument("--latency", type=float, default=20.0)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--deadline", type=float, default=15.0)
    r.add_argument("--plot", default=None, help="also draw rtclab.plots.sequence to this PNG")
    c = sub.add_parser("crosscheck", help="the emulation cross-check; writes JSON")
    d = sub.add_parser("dump", help="make a real chrome://webrtc-internals dump")
    t = sub.add_parser("tabs", help="two tabs on rtclab serve: call the bot and each other; writes JSON")
    j = sub.add_parser("jupyterlab", help="JupyterLab + CallPanel in Chromium: Call, Answer, Hang up on sim and real; --out is a folder")
    j.add_argument("--first-open", default=None, help="a stored notebook to open without running it first")
    for p in (r, c, d, t, j):
        p.add_argument("--out", required=True)
        p.add_argument("--loopback", action="store_true", help="let aioice gather 127.0.0.1 (loopback-only namespace)")
    ns = ap.parse_args(argv)
    if ns.loopback:
        allow_loopback_gathering()
    out = Path(ns.out)
    if ns.cmd == "run":
        run = asyncio.run(arun_browser(ns.flow, browser_side=ns.browser, signaling_latency_ms=ns.latency, seed=ns.seed, deadline_s=ns.deadline))
        from .trace import save

        save(run.events, out.with_suffix(".csv"), meta=run.events.attrs.get("meta"))
        summary = {"outcome": run.outcome, "reason": run.reason, "meta": run.events.attrs.get("meta"),
                   "t_connected_ms": _num(run.metrics.get("t_connected_ms")), "wall_s": run.wall_s}
        if ns.plot:
            import matplotlib

            matplotlib.use("Agg")
            from . import plots

            ax = plots.sequence(run.events)
            ax.figure.savefig(ns.plot)
            summary["plot"] = ns.plot
        out.with_suffix(".json").write_text(json.dumps(summary, indent=1, default=str))
        print(json.dumps(summary, default=str))
    elif ns.cmd == "jupyterlab":
        result = asyncio.run(jupyterlab_call(out, first_open=ns.first_open))
        (out / "result.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result))
    elif ns.cmd in ("crosscheck", "tabs"):
        result = asyncio.run(crosscheck() if ns.cmd == "crosscheck" else tabs_on_server())
        out.write_text(json.dumps(result, indent=1, default=str))
        print(json.dumps(result, default=str))
    else:
        asyncio.run(make_internals_dump(out))
        print(out)
    return 0


def _num(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
