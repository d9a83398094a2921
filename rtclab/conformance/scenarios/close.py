"""``webrtc/RTCPeerConnection-close.html``: what ``close()`` fires, and what works after it."""

from __future__ import annotations

from typing import Any

from ..core import calls, observed, scenario
from ._call import data_call, js_with_call

FILE = "RTCPeerConnection-close"

EVENTS = ("signalingstatechange", "iceconnectionstatechange", "connectionstatechange", "icegatheringstatechange")


async def _close(h: Any) -> None:
    a, b, send, ok = await data_call(h)
    if not ok:
        return
    fired: list[str] = []
    for event in EVENTS:
        a.on(event, lambda e=event, *_: fired.append(e))
    await a.close()
    await h.sleep(0.3)  # an observation window: events are queued as tasks
    h.note("caller", "events after close", len(fired), ",".join(fired))
    h.note("caller", "signalingState", a.signalingState)
    h.note("caller", "connectionState", a.connectionState)
    await h.attempt("caller", "createOffer", lambda: a.createOffer())


scenario(
    name=f"{FILE}/no-events",
    title="close() during a call fires no state-change event; the states read closed; a later createOffer is an InvalidStateError",
    js=js_with_call("""
  const fired = [];
  for (const ev of ["signalingstatechange", "iceconnectionstatechange", "connectionstatechange", "icegatheringstatechange"])
    a.addEventListener(ev, () => fired.push(ev));
  a.close();
  await h.sleep(0.3);
  h.note("caller", "events after close", fired.length, fired.join(","));
  h.note("caller", "signalingState", a.signalingState);
  h.note("caller", "connectionState", a.connectionState);
  await h.attempt("caller", "createOffer", () => a.createOffer());"""),
    peer=_close,
    essentials=lambda f: {
        **{k: observed(f, "caller", k) for k in ("events after close", "signalingState", "connectionState")},
        "createOffer after close": calls(f, "caller", "createOffer")[-1:],
    },
)
