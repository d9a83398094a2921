"""``webrtc/RTCPeerConnection-iceConnectionState.https.html``: the ICE connection state machine.

Each case also records ``connectionState``: the two machines move together and
the course plots both.
"""

from __future__ import annotations

from typing import Any

from ..core import observed, scenario, seconds_between, states, t_first
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


async def _heals(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    relay = h.relay(a, b)
    await h.negotiate(a, b)
    if not await h.wait_for(lambda: both_connected(a, b), 8):
        return
    await h.sleep(0.5)
    h.cut(relay)
    if not await h.wait_for(lambda: all(pc.connectionState == "disconnected" for pc in (a, b)), 12):
        return
    await h.sleep(1)
    h.heal(relay)
    await h.wait_for(lambda: both_connected(a, b), 10)
    await h.sleep(0.5)


def _heal_essentials(f: Any) -> dict[str, Any]:
    t_cut = t_first(f, "network", "net", "cut", "path cut")
    t_heal = t_first(f, "network", "net", "cut", "path restored")
    out: dict[str, Any] = {"cut": t_cut is not None, "restored": t_heal is not None}
    if t_cut is None or t_heal is None:
        return out
    out.update({f"{k} after the cut": v for k, v in machine_states(f, after=t_cut).items()})
    back = [t_first(f, a, "state", "connectionState", "connected", after=t_heal) for a in ("caller", "callee")]
    out["both connected again"] = None not in back
    return out


scenario(
    name=f"{FILE}/path-heals",
    title="the path breaks and comes back before failure: disconnected, then connected again with no action of the page",
    js=f"""async (h) => {{
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  const relay = h.relay(a, b);
  await h.negotiate(a, b);
  if (!await h.waitFor(() => {JS_BOTH_CONNECTED}, 8)) return;
  await h.sleep(0.5);
  await h.cut(relay);
  if (!await h.waitFor(() => [a, b].every(pc => pc.connectionState === "disconnected"), 12)) return;
  await h.sleep(1);
  await h.heal(relay);
  await h.waitFor(() => {JS_BOTH_CONNECTED}, 10);
  await h.sleep(0.5);
}}""",
    peer=_heals,
    essentials=_heal_essentials,
    timeout_s=40.0,
)


async def _back_after_failed(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    relay = h.relay(a, b)
    await h.negotiate(a, b)
    if not await h.wait_for(lambda: both_connected(a, b), 8):
        return
    await h.sleep(0.5)
    h.cut(relay)
    if not await h.wait_for(lambda: all(pc.connectionState == "failed" for pc in (a, b)), 25):
        return
    h.heal(relay)
    await h.sleep(8)  # an observation window: does the call come back by itself?


def _after_failed_essentials(f: Any) -> dict[str, Any]:
    t_heal = t_first(f, "network", "net", "cut", "path restored")
    out: dict[str, Any] = {"restored": t_heal is not None}
    if t_heal is None:
        return out
    out.update({f"{k} after the path is back": v for k, v in machine_states(f, after=t_heal).items()})
    return out


scenario(
    name=f"{FILE}/path-back-after-failed",
    title="the path comes back after connectionState failed: does the call recover without an ICE restart?",
    js=f"""async (h) => {{
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  const relay = h.relay(a, b);
  await h.negotiate(a, b);
  if (!await h.waitFor(() => {JS_BOTH_CONNECTED}, 8)) return;
  await h.sleep(0.5);
  await h.cut(relay);
  if (!await h.waitFor(() => [a, b].every(pc => pc.connectionState === "failed"), 25)) return;
  await h.heal(relay);
  await h.sleep(8);
}}""",
    peer=_back_after_failed,
    essentials=_after_failed_essentials,
    timeout_s=55.0,
)


def _selected_pair_row(h: Any, actor: str) -> str | None:
    pairs = [r[4] for r in h.trace.rows if r[1] == actor and r[2] == "ice" and r[3] == "selected-pair"]
    return pairs[-1] if pairs else None


async def _one_way(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    h.wire(b, a, one_way=True)  # the callee's candidates reach the caller; the caller's are lost
    await h.negotiate(a, b)
    if not await h.wait_for(lambda: both_connected(a, b), 8):
        return
    for actor in ("caller", "callee"):
        await h.wait_for(lambda actor=actor: _selected_pair_row(h, actor) is not None, 3)
        h.note(actor, "selected pair", _selected_pair_row(h, actor) or "none")


scenario(
    name=f"{FILE}/one-way-candidates-prflx",
    title="only the callee's candidates reach the caller: the call still connects, and the callee's selected pair "
          "has a peer-reflexive remote candidate learnt from the caller's checks",
    js=f"""async (h) => {{
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  h.wire(b, a, {{oneWay: true}});
  await h.negotiate(a, b);
  if (!await h.waitFor(() => {JS_BOTH_CONNECTED}, 8)) return;
  const pairOf = async (pc) => {{
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {{ if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); }});
    if (!pair) return null;
    return `${{stats.get(pair.localCandidateId).candidateType}}/${{stats.get(pair.remoteCandidateId).candidateType}}`;
  }};
  for (const [actor, pc] of [["caller", a], ["callee", b]]) {{
    let pair = null;
    const end = performance.now() + 3000;
    while (pair === null && performance.now() < end) {{ pair = await pairOf(pc); if (pair === null) await h.sleep(0.05); }}
    h.note(actor, "selected pair", pair || "none");
  }}
}}""",
    peer=_one_way,
    essentials=lambda f: {
        **machine_states(f, machines=("connectionState",)),
        **{f"{actor} selected pair": observed(f, actor, "selected pair") for actor in ("caller", "callee")},
    },
)
