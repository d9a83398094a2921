"""``webrtc/RTCPeerConnection-iceConnectionState.https.html``: the ICE connection state machine.

Each case also records ``connectionState``: the two machines move together and
the course plots both.
"""

from __future__ import annotations

from typing import Any

from ..core import scenario, seconds_between, states, t_first
from ._common import JS_BOTH_CONNECTED, both_connected, machine_states

FILE = "RTCPeerConnection-iceConnectionState"


async def _connected(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    h.wire(a, b)
    await h.negotiate(a, b)
    await h.wait_for(lambda: both_connected(a, b), 8)
    await h.sleep(0.5)  # an observation window: a later completed would show


scenario(
    name=f"{FILE}/connected",
    title="a call with trickled candidates and end-of-candidates: iceConnectionState goes checking → connected",
    js=f"""async (h) => {{
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  h.wire(a, b);
  await h.negotiate(a, b);
  await h.waitFor(() => {JS_BOTH_CONNECTED}, 8);
  await h.sleep(0.5);
}}""",
    peer=_connected,
    essentials=lambda f: machine_states(f, machines=("iceConnectionState",)),
)


async def _no_candidates(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    await h.negotiate(a, b)  # and no icecandidate handler on either side
    await h.sleep(3)  # an observation window


scenario(
    name=f"{FILE}/no-candidates-exchanged",
    title="with no icecandidate handler on either side (no candidate ever exchanged) both state machines stay new",
    js="""async (h) => {
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  await h.negotiate(a, b);
  await h.sleep(3);
}""",
    peer=_no_candidates,
    essentials=lambda f: machine_states(f),
)


async def _cut(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    relay = h.relay(a, b)
    await h.negotiate(a, b)
    if not await h.wait_for(lambda: both_connected(a, b), 8):
        return
    await h.sleep(0.5)
    h.cut(relay)
    await h.wait_for(lambda: all(pc.connectionState in ("failed", "closed") for pc in (a, b)), 40)


def _cut_essentials(f: Any) -> dict[str, Any]:
    t_cut = t_first(f, "network", "net", "cut")
    out: dict[str, Any] = {"cut": t_cut is not None}
    if t_cut is None:
        return out
    out.update({f"{k} after the cut": v for k, v in machine_states(f, ("caller",), after=t_cut).items()})
    t_disc = min([t for t in (t_first(f, "caller", "state", m, "disconnected", after=t_cut) for m in ("iceConnectionState", "connectionState")) if t is not None], default=None)
    t_end = min([t for t in (t_first(f, "caller", "state", "connectionState", v, after=t_cut) for v in ("failed", "closed")) if t is not None], default=None)
    out["caller disconnected after_s"] = seconds_between(t_cut, t_disc)
    out["caller connectionState failed/closed after_s"] = seconds_between(t_cut, t_end)
    out["callee connectionState after the cut"] = states(f, "callee", "connectionState", after=t_cut)
    return out


scenario(
    name=f"{FILE}/path-cut",
    title="the path breaks after connecting: disconnected after a few seconds, connectionState failed later; iceConnectionState stays disconnected",
    js=f"""async (h) => {{
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  const relay = h.relay(a, b);
  await h.negotiate(a, b);
  if (!await h.waitFor(() => {JS_BOTH_CONNECTED}, 8)) return;
  await h.sleep(0.5);
  await h.cut(relay);
  await h.waitFor(() => [a, b].every(pc => ["failed", "closed"].includes(pc.connectionState)), 40);
}}""",
    peer=_cut,
    essentials=_cut_essentials,
    timeout_s=55.0,
)
