"""``webrtc/RTCPeerConnection-addIceCandidate.html``: when a remote candidate is accepted, and the errors."""

from __future__ import annotations

from typing import Any

from ..core import calls, scenario, states

FILE = "RTCPeerConnection-addIceCandidate"


async def _before_remote(h: Any) -> None:
    pc = h.pc("caller")
    await h.attempt("caller", "addIceCandidate", lambda: pc.addIceCandidate(h.CAND))


scenario(
    name=f"{FILE}/before-remote-description",
    title="addIceCandidate with no remote description rejects with InvalidStateError",
    js="""async (h) => {
  const pc = h.pc("caller");
  await h.attempt("caller", "addIceCandidate", () => pc.addIceCandidate(h.CAND));
}""",
    peer=_before_remote,
    essentials=lambda f: {"addIceCandidate": calls(f, "caller", "addIceCandidate")},
)


async def _malformed(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    await b.setRemoteDescription(await _offer(a))
    for cand in ({"candidate": "candidate:garbage", "sdpMid": "0"},
                 {"candidate": "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", "sdpMid": "0"},
                 {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"},
                 {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", "sdpMid": "no-such-mid"}):
        await h.attempt("callee", "addIceCandidate", lambda c=cand: b.addIceCandidate(c))


async def _offer(pc: Any) -> Any:
    await pc.setLocalDescription()
    return pc.localDescription


scenario(
    name=f"{FILE}/malformed",
    title="a garbage candidate, one with a leading a=, one with neither sdpMid nor sdpMLineIndex, one for an unknown mid: which are rejected, and how",
    js="""async (h) => {
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  await a.setLocalDescription();
  await b.setRemoteDescription(a.localDescription);
  for (const c of [{candidate: "candidate:garbage", sdpMid: "0"},
                   {candidate: "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", sdpMid: "0"},
                   {candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"},
                   {candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", sdpMid: "no-such-mid"}])
    await h.attempt("callee", "addIceCandidate", () => b.addIceCandidate(c));
}""",
    peer=_malformed,
    essentials=lambda f: {"addIceCandidate": calls(f, "callee", "addIceCandidate")},
)


async def _late(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    held: list[Any] = []
    a.on("icecandidate", lambda c: held.append(c) if c is not None else None)
    await h.negotiate(a, b)
    await b.addIceCandidate(None)  # end-of-candidates first
    await h.wait_for(lambda: a.iceGatheringState == "complete", 5)
    for c in held:  # then the candidates
        await h.attempt("callee", "addIceCandidate", lambda c=c: b.addIceCandidate(c))
    await h.wait_for(lambda: a.connectionState == "connected" and b.connectionState == "connected", 8)


scenario(
    name=f"{FILE}/after-end-of-candidates",
    title="candidates added after end-of-candidates are accepted and used: the call connects",
    js="""async (h) => {
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  const held = [];
  a.addEventListener("icecandidate", (e) => { if (e.candidate && e.candidate.candidate) held.push(e.candidate); });
  await h.negotiate(a, b);
  await b.addIceCandidate(null);
  await h.waitFor(() => a.iceGatheringState === "complete", 5);
  for (const c of held) await h.attempt("callee", "addIceCandidate", () => b.addIceCandidate(c));
  await h.waitFor(() => a.connectionState === "connected" && b.connectionState === "connected", 8);
}""",
    peer=_late,
    essentials=lambda f: {
        "late addIceCandidate": sorted(set(calls(f, "callee", "addIceCandidate")[1:])),
        "callee connectionState": states(f, "callee", "connectionState"),
    },
)


async def _chain(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    cands: list[Any] = []
    a.on("icecandidate", lambda c: cands.append(c) if c is not None else None)
    await a.setLocalDescription()
    await h.wait_for(lambda: a.iceGatheringState == "complete", 5)
    import asyncio

    await asyncio.gather(h.attempt("callee", "setRemoteDescription", lambda: b.setRemoteDescription(a.localDescription)),
                         h.attempt("callee", "addIceCandidate", lambda: b.addIceCandidate(cands[0])))


scenario(
    name=f"{FILE}/during-setRemoteDescription",
    title="addIceCandidate called while setRemoteDescription is pending waits for it (operations chain) and succeeds",
    js="""async (h) => {
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  const cands = [];
  a.addEventListener("icecandidate", (e) => { if (e.candidate && e.candidate.candidate) cands.push(e.candidate); });
  await a.setLocalDescription();
  await h.waitFor(() => a.iceGatheringState === "complete", 5);
  await Promise.all([h.attempt("callee", "setRemoteDescription", () => b.setRemoteDescription(a.localDescription)),
                     h.attempt("callee", "addIceCandidate", () => b.addIceCandidate(cands[0]))]);
}""",
    peer=_chain,
    essentials=lambda f: {
        "order": [n + ":" + v for n, v in f[(f.actor == "callee") & (f.kind == "call")
                                            & f.name.isin(["setRemoteDescription", "addIceCandidate"])][["name", "value"]].itertuples(index=False)],
    },
)
