"""``webrtc/RTCPeerConnection-removeTrack.https.html``: removing a sent track needs negotiation."""

from __future__ import annotations

from typing import Any

from ..core import calls, count, observed, scenario, t_first
from ._common import JS_BOTH_CONNECTED, both_connected

FILE = "RTCPeerConnection-removeTrack"


async def _remove(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    (cam,) = h.camera(video=True)
    sender = a.addTrack(cam)
    h.wire(a, b)
    await h.negotiate(a, b)
    if not await h.wait_for(lambda: both_connected(a, b), 8):
        return
    h.note("caller", "remove starts", True)
    before = h.count("caller", "call", "negotiationneeded")
    await h.attempt("caller", "removeTrack", lambda: a.removeTrack(sender))
    await h.wait_for(lambda: h.count("caller", "call", "negotiationneeded") > before, 2)
    h.note("caller", "direction", a.getTransceivers()[0].direction)


def _essentials(f: Any) -> dict[str, Any]:
    t0 = t_first(f, "caller", "call", "observe:remove starts")
    return {
        "removeTrack": calls(f, "caller", "removeTrack"),
        "negotiationneeded after removeTrack": count(f[f.t_ms >= (t0 or 0)], "caller", "call", "negotiationneeded"),
        "transceiver direction": observed(f, "caller", "direction"),
    }


scenario(
    name=f"{FILE}/negotiationneeded",
    title="removeTrack during a call makes the transceiver recvonly and fires negotiationneeded",
    js=f"""async (h) => {{
  const a = h.pc("caller"), b = h.pc("callee");
  const [cam] = await h.camera({{video: true}});
  const sender = a.addTrack(cam);
  h.wire(a, b);
  await h.negotiate(a, b);
  if (!await h.waitFor(() => {JS_BOTH_CONNECTED}, 8)) return;
  h.note("caller", "remove starts", true);
  const before = h.count("caller", "call", "negotiationneeded");
  await h.attempt("caller", "removeTrack", () => a.removeTrack(sender));
  await h.waitFor(() => h.count("caller", "call", "negotiationneeded") > before, 2);
  h.note("caller", "direction", a.getTransceivers()[0].direction);
}}""",
    peer=_remove,
    essentials=_essentials,
)
