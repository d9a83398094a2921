"""``webrtc/RTCPeerConnection-setRemoteDescription-answer.html``: applying a remote answer."""

from __future__ import annotations

from typing import Any

from ..core import calls, scenario, states

FILE = "RTCPeerConnection-setRemoteDescription-answer"


async def _twice(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("x")
    await a.setLocalDescription()
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription()
    answer = b.localDescription
    await h.attempt("caller", "setRemoteDescription", lambda: a.setRemoteDescription(answer))
    await h.attempt("caller", "setRemoteDescription", lambda: a.setRemoteDescription(answer))  # again, in stable


scenario(
    name=f"{FILE}/again-in-stable",
    title="an answer applied a second time (the signaling state is stable again) rejects with InvalidStateError",
    js="""async (h) => {
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("x");
  await a.setLocalDescription();
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription();
  const answer = b.localDescription;
  await h.attempt("caller", "setRemoteDescription", () => a.setRemoteDescription(answer));
  await h.attempt("caller", "setRemoteDescription", () => a.setRemoteDescription(answer));
}""",
    peer=_twice,
    essentials=lambda f: {
        "caller setRemoteDescription": calls(f, "caller", "setRemoteDescription"),
        "caller signalingState": states(f, "caller", "signalingState"),
    },
)
