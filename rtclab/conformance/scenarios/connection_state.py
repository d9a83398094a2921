"""``webrtc/RTCPeerConnection-connectionState.https.html``: the peer connection's state machine."""

from __future__ import annotations

from typing import Any

from ..core import count, scenario, seconds_between, states, t_first
from ._common import JS_BOTH_CONNECTED, both_connected, machine_states

FILE = "RTCPeerConnection-connectionState"


async def _media(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    (video,) = h.camera(video=True)
    a.addTrack(video)
    h.wire(a, b)
    await h.negotiate(a, b)
    await h.wait_for(lambda: both_connected(a, b), 8)
    await h.wait_for(lambda: h.count("callee", "media", "first-frame") > 0, 8)


scenario(
    name=f"{FILE}/connected-with-media",
    title="a video call: connectionState goes connecting → connected on both sides and the callee gets the first frame",
    js=f"""async (h) => {{
  const a = h.pc("caller"), b = h.pc("callee");
  const [video] = await h.camera({{video: true}});
  a.addTrack(video);
  h.wire(a, b);
  await h.negotiate(a, b);
  await h.waitFor(() => {JS_BOTH_CONNECTED}, 8);
  await h.waitFor(() => h.count("callee", "media", "first-frame") > 0, 8);
}}""",
    peer=_media,
    essentials=lambda f: {
        **machine_states(f, machines=("connectionState",)),
        "callee tracks": sorted(set(f[(f.actor == "callee") & (f.name == "track")].value)),
        "callee first frame": count(f, "callee", "media", "first-frame") > 0,
    },
)


async def _unreachable(h: Any, *, end: bool) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    await h.negotiate(a, b)
    await a.addIceCandidate(await h.unreachable())
    if end:
        await a.addIceCandidate(None)
    await h.wait_for(lambda: a.connectionState in ("failed", "closed"), 45)


def _unreachable_essentials(f: Any) -> dict[str, Any]:
    t_checking = t_first(f, "caller", "state", "iceConnectionState", "checking")
    t_end = min([t for t in (t_first(f, "caller", "state", "connectionState", v) for v in ("failed", "closed")) if t is not None], default=None)
    return {
        **machine_states(f, ("caller",)),
        "caller failed after checking_s": seconds_between(t_checking, t_end),
        "callee iceConnectionState": states(f, "callee", "iceConnectionState"),
    }


_JS_UNREACHABLE = """async (h) => {
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  await h.negotiate(a, b);
  await a.addIceCandidate(await h.unreachable());
  END
  await h.waitFor(() => ["failed", "closed"].includes(a.connectionState), 45);
}"""

scenario(
    name=f"{FILE}/unreachable-candidate",
    title="the only remote candidate never answers (no end-of-candidates): checking, then disconnected and failed after ~15 s",
    js=_JS_UNREACHABLE.replace("END", ""),
    peer=lambda h: _unreachable(h, end=False),
    essentials=_unreachable_essentials,
    timeout_s=55.0,
)

scenario(
    name=f"{FILE}/unreachable-candidate-end-of-candidates",
    title="the only remote candidate never answers, end-of-candidates given: the same ~15 s to failed (no early failure)",
    js=_JS_UNREACHABLE.replace("END", "await a.addIceCandidate(null);"),
    peer=lambda h: _unreachable(h, end=True),
    essentials=_unreachable_essentials,
    timeout_s=55.0,
)
