"""``webrtc/RTCPeerConnection-setLocalDescription-rollback.html``: rolling back during a call."""

from __future__ import annotations

from typing import Any

from ..core import calls, observed, scenario, states, t_first
from ._call import data_call, js_with_call

FILE = "RTCPeerConnection-setLocalDescription-rollback"


async def _during_call(h: Any) -> None:
    a, b, send, ok = await data_call(h)
    if not ok:
        return
    h.note("caller", "rollback starts", True)
    await a.setLocalDescription()  # a new offer ...
    await h.attempt("caller", "setLocalDescription", lambda: a.setLocalDescription({"type": "rollback", "sdp": ""}))  # ... taken back
    await h.sleep(0.5)
    h.note("caller", "connectionState after rollback", a.connectionState)
    send("after rollback")
    await h.wait_for(lambda: h.count("callee", "call", "observe:message") > 0, 3)


def _essentials(f: Any) -> dict[str, Any]:
    t0 = t_first(f, "caller", "call", "observe:rollback starts")
    return {
        "caller signalingState from the new offer": states(f, "caller", "signalingState", after=t0),
        "caller setLocalDescription": calls(f, "caller", "setLocalDescription"),
        "caller connectionState changes": states(f, "caller", "connectionState", after=t0),
        "caller connectionState after rollback": observed(f, "caller", "connectionState after rollback"),
        "message after rollback delivered": observed(f, "callee", "message"),
    }


scenario(
    name=f"{FILE}/during-established-call",
    title="a re-offer rolled back during an established call leaves the call alone: still connected, data still flows",
    js=js_with_call("""
  h.note("caller", "rollback starts", true);
  await a.setLocalDescription();
  await h.attempt("caller", "setLocalDescription", () => a.setLocalDescription({type: "rollback"}));
  await h.sleep(0.5);
  h.note("caller", "connectionState after rollback", a.connectionState);
  send("after rollback");
  await h.waitFor(() => h.count("callee", "call", "observe:message") > 0, 3);"""),
    peer=_during_call,
    essentials=_essentials,
)
