"""``webrtc/RTCPeerConnection-setRemoteDescription-rollback.html``: rolling back a local offer."""

from __future__ import annotations

from typing import Any

from ..core import calls, observed, scenario, states

FILE = "RTCPeerConnection-setRemoteDescription-rollback"


def _ufrag(sdp: str) -> str:
    return next((line.split(":", 1)[1].strip() for line in sdp.splitlines() if line.startswith("a=ice-ufrag:")), "")


async def _implicit(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    b.createDataChannel("y")
    await a.setLocalDescription()
    offer_b = await b.createOffer()
    await h.attempt("caller", "setRemoteDescription", lambda: a.setRemoteDescription(offer_b))
    await h.attempt("caller", "setLocalDescription", lambda: a.setLocalDescription())


scenario(
    name=f"{FILE}/implicit-on-remote-offer",
    title="glare: a remote offer in have-local-offer rolls the local offer back implicitly, and the answer returns to stable",
    js="""async (h) => {
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  b.createDataChannel("y");
  await a.setLocalDescription();
  const offerB = await b.createOffer();
  await h.attempt("caller", "setRemoteDescription", () => a.setRemoteDescription(offerB));
  await h.attempt("caller", "setLocalDescription", () => a.setLocalDescription());
}""",
    peer=_implicit,
    essentials=lambda f: {
        "caller signalingState": states(f, "caller", "signalingState"),
        "caller setRemoteDescription": calls(f, "caller", "setRemoteDescription"),
        "caller setLocalDescription": calls(f, "caller", "setLocalDescription"),
    },
)


async def _fresh(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    b.createDataChannel("y")
    await a.setLocalDescription()
    await h.wait_for(lambda: a.iceGatheringState == "complete", 5)
    before_ufrag = _ufrag(a.localDescription["sdp"])
    before = h.count("caller", "ice", "candidate", "gathered")
    offer_b = await b.createOffer()
    await a.setRemoteDescription(offer_b)
    await a.setLocalDescription()
    await h.wait_for(lambda: h.count("caller", "ice", "candidate", "gathered") > before, 5)
    h.note("caller", "new ufrag", _ufrag(a.localDescription["sdp"]) not in ("", before_ufrag))
    h.note("caller", "gathered again", h.count("caller", "ice", "candidate", "gathered") > before)


scenario(
    name=f"{FILE}/initial-offer-fresh-ice",
    title="after the initial offer is rolled back (remote offer in have-local-offer), the answer has a new ICE ufrag and gathering starts again",
    js="""async (h) => {
  const ufrag = (sdp) => ((sdp.match(/a=ice-ufrag:(\\S+)/) || [])[1] || "");
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  b.createDataChannel("y");
  await a.setLocalDescription();
  await h.waitFor(() => a.iceGatheringState === "complete", 5);
  const beforeUfrag = ufrag(a.localDescription.sdp);
  const before = h.count("caller", "ice", "candidate", "gathered");
  const offerB = await b.createOffer();
  await a.setRemoteDescription(offerB);
  await a.setLocalDescription();
  await h.waitFor(() => h.count("caller", "ice", "candidate", "gathered") > before, 5);
  const now = ufrag(a.localDescription.sdp);
  h.note("caller", "new ufrag", now !== "" && now !== beforeUfrag);
  h.note("caller", "gathered again", h.count("caller", "ice", "candidate", "gathered") > before);
}""",
    peer=_fresh,
    essentials=lambda f: {k: observed(f, "caller", k) for k in ("new ufrag", "gathered again")},
)
