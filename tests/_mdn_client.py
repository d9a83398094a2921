"""A page that behaves like the MDN sample's ``chatclient.js``, in headless Chromium, on ``rtclab serve``.

Run by ``tests/test_server.py`` in a child process inside a loopback-only
network namespace (``python tests/_mdn_client.py --out result.json``); it
writes what the page saw as JSON. The page is this project's own code, written
to behave like the sample's client where the server and the bot can tell:

* chat, and the "your name was changed" notice, are inserted with
  ``innerHTML`` (so markup in them would become elements and run);
* the user list is built from text nodes;
* a call is ``getUserMedia({audio: true, video: true})`` and one
  ``addTransceiver`` per track, audio first; the offer goes out on
  ``negotiationneeded`` (skipped unless ``stable``);
* *Hang up* closes the call first, which clears the target, then sends
  ``{"type": "hang-up", "target": null}``.

A hostile Python client (``mallory``) joins with markup in its name and sends
script-bearing chat; the page then calls the bot twice, hanging up in between.
As a check that the page really runs markup, one message is also handed to the
page's handler directly (not through the server): that one must run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtclab import browser  # noqa: E402
from rtclab.server import Bot, SignalingServer  # noqa: E402

PAGE = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>MDN-like chat client</title></head><body>
<div class="chatbox"></div><ul class="userlistbox"></ul>
<video id="local_video" autoplay muted playsinline></video><video id="received_video" autoplay muted playsinline></video>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const state = window.state = {id: 0, name: params.get("name"), target: null, pc: null, stream: null,
                              unknown: [], trackKinds: [], users: [], messages: 0, hangupsReceived: 0, errors: []};
let ws = null;
function sendToServer(msg) { ws.send(JSON.stringify(msg)); }
function chat(html) { const box = document.querySelector(".chatbox"); box.innerHTML += html; }
window.connect = function () {
  ws = new WebSocket(params.get("server"), "json");
  ws.onmessage = (event) => window.handle(JSON.parse(event.data));
  ws.onclose = (e) => state.errors.push("closed " + e.code + " " + e.reason);
};
window.handle = function (msg) {
  const when = new Date(msg.date).toLocaleTimeString();
  switch (msg.type) {
    case "id": state.id = msg.id; sendToServer({name: state.name, date: Date.now(), id: state.id, type: "username"}); break;
    case "rejectusername": state.name = msg.name; chat("<b>Your username has been set to <em>" + msg.name + "</em>.</b><br>"); break;
    case "message": state.messages += 1; chat("(" + when + ") <b>" + msg.name + "</b>: " + msg.text + "<br>"); break;
    case "userlist": {
      state.users = msg.users;
      const list = document.querySelector(".userlistbox");
      while (list.firstChild) list.removeChild(list.firstChild);
      for (const user of msg.users) { const li = document.createElement("li"); li.appendChild(document.createTextNode(user)); list.appendChild(li); }
      break;
    }
    case "video-answer": state.pc.setRemoteDescription(msg.sdp).catch(e => state.errors.push(e.name + ": " + e.message)); break;
    case "new-ice-candidate": if (state.pc) state.pc.addIceCandidate(msg.candidate).catch(e => state.errors.push(e.name + ": " + e.message)); break;
    case "hang-up": state.hangupsReceived += 1; closeVideoCall(); break;
    default: state.unknown.push(msg);   // the sample logs these to the console
  }
};
function closeVideoCall() {
  const pc = state.pc;
  if (pc) {
    pc.ontrack = null; pc.onicecandidate = null; pc.oniceconnectionstatechange = null; pc.onnegotiationneeded = null;
    pc.getTransceivers().forEach(t => t.stop());
    if (state.stream) state.stream.getTracks().forEach(t => t.stop());
    pc.close();
  }
  state.pc = null; state.stream = null; state.target = null;
}
window.hangUpCall = function () {
  closeVideoCall();
  sendToServer({name: state.name, target: state.target, type: "hang-up"});
};
window.invite = async function (target) {
  state.target = target;
  const pc = state.pc = new RTCPeerConnection({iceServers: []});
  pc.onicecandidate = (e) => { if (e.candidate) sendToServer({type: "new-ice-candidate", target: state.target, candidate: e.candidate}); };
  pc.oniceconnectionstatechange = () => { if (["closed", "failed", "disconnected"].includes(pc.iceConnectionState)) closeVideoCall(); };
  pc.ontrack = (e) => { state.trackKinds.push(e.track.kind); document.getElementById("received_video").srcObject = e.streams[0]; };
  pc.onnegotiationneeded = async () => {
    const offer = await pc.createOffer();
    if (pc.signalingState != "stable") return;
    await pc.setLocalDescription(offer);
    sendToServer({name: state.name, target: state.target, type: "video-offer", sdp: pc.localDescription});
  };
  const stream = state.stream = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
  document.getElementById("local_video").srcObject = stream;
  stream.getTracks().forEach(track => pc.addTransceiver(track, {streams: [stream]}));
  return pc.getTransceivers().map(t => t.sender.track.kind);
};
window.received = async function () {   // what arrived from the other side, by kind
  const out = {};
  if (!state.pc) return out;
  const stats = await state.pc.getStats();
  stats.forEach(s => { if (s.type === "inbound-rtp") out[s.kind] = {packets: s.packetsReceived || 0, frames: s.framesDecoded || 0}; });
  return out;
};
</script></body></html>
"""

HOSTILE_NAME = '<img src=x onerror="window.pwned=\'name\'">mallory'
HOSTILE_CHAT = [
    '<img src=x onerror="window.pwned=\'img\'">',
    "<svg onload=\"window.pwned='svg'\">",
    "<img src=x onerror=window.pwned='unclosed' ",
    "<script>window.pwned='script'</script>",
    "<<img src=x onerror=window.pwned='double'>>",
    "<iframe srcdoc=\"<script>parent.pwned='iframe'</script>\"></iframe>",
    "hello & <3",
]


async def scenario(out_dir: Path, timeout_s: float = 60.0) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    result: dict[str, Any] = {}
    loop = asyncio.get_running_loop()

    server: Any = None

    async def until(page: Any, expr: str, what: str) -> Any:
        end = loop.time() + timeout_s
        while True:
            value = await page.evaluate(expr)
            if value:
                return value
            if loop.time() > end:
                raise TimeoutError(f"timed out waiting for {what}: " + json.dumps(await page.evaluate("JSON.stringify({s: window.state, ws: typeof ws})"), default=str)[:1500] + str(list(server.log)))
            await asyncio.sleep(0.05)

    async with SignalingServer(port=0, pages={"/mdn.html": PAGE}) as server:
        bot = Bot(server, "bot", answer_delay_ms=100, save_dir=str(out_dir))
        await bot.start()
        try:
            async with browser.launch() as chromium:
                context = await chromium.new_context()
                base = f"http://localhost:{server.port}"
                try:
                    page = await context.new_page()
                    await page.goto(f"{base}/mdn.html?" + urllib.parse.urlencode({"name": "alice", "server": server.url}), timeout=15000)
                    await page.evaluate("connect()")
                    await until(page, "state.users.includes('alice') && state.users.includes('bot')", "alice registered")
                    async with connect(server.url, subprotocols=["json"], open_timeout=5, close_timeout=2) as m:
                        await m.recv()  # id
                        await m.send(json.dumps({"type": "username", "name": HOSTILE_NAME}))
                        for text in HOSTILE_CHAT:
                            await m.send(json.dumps({"type": "message", "text": text, "date": 0}))
                        await until(page, f"state.messages >= {len(HOSTILE_CHAT)}", "the chat")
                        await asyncio.sleep(0.5)  # let any image error handler fire
                        result["users"] = await page.evaluate("state.users")
                        result["pwned"] = await page.evaluate("window.pwned === undefined ? null : String(window.pwned)")
                        result["elements"] = await page.evaluate(
                            "document.querySelectorAll('.chatbox img, .chatbox svg, .chatbox script, .chatbox iframe').length")
                        result["chat_text"] = await page.evaluate("document.querySelector('.chatbox').textContent")
                    # the page really renders chat as HTML: the same markup handed to it directly does run
                    await page.evaluate("handle({type: 'message', name: 'direct', date: 0, text: `<img src=x onerror=\"window.pwned='direct'\">`})")
                    await until(page, "window.pwned !== undefined", "the direct markup to run")
                    result["direct_pwned"] = await page.evaluate("String(window.pwned)")
                    # a page that asks for a name with markup in it is told its cleaned name (rendered as HTML)
                    other = await context.new_page()
                    await other.goto(f"{base}/mdn.html?" + urllib.parse.urlencode({"name": HOSTILE_NAME.replace("mallory", "zed"), "server": server.url}), timeout=15000)
                    await other.evaluate("connect()")
                    await until(other, "state.users.includes(state.name)", "the second page registered")
                    await asyncio.sleep(0.5)
                    result["renamed"] = await other.evaluate("state.name")
                    result["renamed_pwned"] = await other.evaluate("window.pwned === undefined ? null : String(window.pwned)")
                    result["renamed_notice"] = await other.evaluate("document.querySelector('.chatbox').innerHTML")
                    await other.close()
                    result["calls"] = []
                    for n in (1, 2):
                        call: dict[str, Any] = {"offered": await page.evaluate("invite('bot')")}
                        got = await until(page, "received().then(r => r.video && r.video.frames > 0 && r.audio && r.audio.packets > 0 ? r : null)",
                                          f"call {n}: video and audio from the bot")
                        call["received"] = got
                        call["track_kinds"] = await page.evaluate("state.trackKinds.slice()")
                        await page.evaluate("state.trackKinds = []")
                        bot_call = bot.calls[-1]
                        await page.evaluate("hangUpCall()")
                        await asyncio.wait_for(bot_call.done.wait(), timeout_s)
                        call["bot_connection"] = bot_call.app.peers[0].connectionState
                        call["saved"] = Path(bot_call.saved).name if bot_call.saved else None
                        call["server_calls"] = sorted("/".join(sorted(p)) for p in server.calls)
                        result["calls"].append(call)
                    result["unknown"] = await page.evaluate("state.unknown")
                    result["page_errors"] = await page.evaluate("state.errors")
                    result["hangups_received"] = await page.evaluate("state.hangupsReceived")
                finally:
                    await context.close()
        finally:
            await bot.stop()
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ns = ap.parse_args()
    browser.allow_loopback_gathering()  # the bot, in a loopback-only namespace
    out = Path(ns.out)
    with tempfile.TemporaryDirectory(prefix="rtclab-mdn-") as tmp:
        result = asyncio.run(asyncio.wait_for(scenario(Path(tmp)), 150))
    out.write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
