"""``webrtc/RTCPeerConnection-restartIce.https.html``: an ICE restart during a call."""

from __future__ import annotations

from typing import Any

from ..core import calls, count, observed, scenario, states, t_first
from ._call import data_call, js_with_call

FILE = "RTCPeerConnection-restartIce"


def _ufrag(sdp: str) -> str:
    return next((line.split(":", 1)[1].strip() for line in sdp.splitlines() if line.startswith("a=ice-ufrag:")), "")


async def _restart(h: Any) -> None:
    a, b, send, ok = await data_call(h)
    if not ok:
        return
    before = _ufrag(a.localDescription["sdp"])
    gathered = h.count("caller", "ice", "candidate", "gathered")
    h.note("caller", "restart starts", True)

    async def renegotiate() -> None:
        await h.negotiate(a, b)
        h.note("caller", "new ufrag", _ufrag(a.localDescription["sdp"]) not in ("", before))

    a.on("negotiationneeded", renegotiate)
    await h.attempt("caller", "restartIce", lambda: a.restartIce())
    await h.wait_for(lambda: h.count("caller", "call", "observe:new ufrag") > 0, 3)
    await h.wait_for(lambda: h.count("caller", "ice", "candidate", "gathered") > gathered, 3)
    h.note("caller", "gathered again", h.count("caller", "ice", "candidate", "gathered") > gathered)
    send("after restart")
    await h.wait_for(lambda: h.count("callee", "call", "observe:message") > 0, 3)


def _essentials(f: Any) -> dict[str, Any]:
    t0 = t_first(f, "caller", "call", "observe:restart starts")
    return {
        "restartIce": calls(f, "caller", "restartIce"),
        "caller negotiationneeded after restartIce": count(f[f.t_ms >= (t0 or 0)], "caller", "call", "negotiationneeded"),
        "new ufrag": observed(f, "caller", "new ufrag"),
        "gathered again": observed(f, "caller", "gathered again"),
        "caller connectionState changes": states(f, "caller", "connectionState", after=t0),
        "message after restart delivered": observed(f, "callee", "message"),
    }


scenario(
    name=f"{FILE}/call-survives",
    title="restartIce() during a call: negotiationneeded, a new ufrag and new candidates, and the call stays connected",
    js=js_with_call("""
  const ufrag = (sdp) => ((sdp.match(/a=ice-ufrag:(\\S+)/) || [])[1] || "");
  const before = ufrag(a.localDescription.sdp);
  const gathered = h.count("caller", "ice", "candidate", "gathered");
  h.note("caller", "restart starts", true);
  a.addEventListener("negotiationneeded", async () => {
    await h.negotiate(a, b);
    const now = ufrag(a.localDescription.sdp);
    h.note("caller", "new ufrag", now !== "" && now !== before);
  });
  await h.attempt("caller", "restartIce", () => a.restartIce());
  await h.waitFor(() => h.count("caller", "call", "observe:new ufrag") > 0, 3);
  await h.waitFor(() => h.count("caller", "ice", "candidate", "gathered") > gathered, 3);
  h.note("caller", "gathered again", h.count("caller", "ice", "candidate", "gathered") > gathered);
  send("after restart");
  await h.waitFor(() => h.count("callee", "call", "observe:message") > 0, 3);"""),
    peer=_restart,
    essentials=_essentials,
)
