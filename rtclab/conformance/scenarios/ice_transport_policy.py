"""``webrtc/RTCConfiguration-iceTransportPolicy.html``: a relay-only connection, then every candidate type."""

from __future__ import annotations

from typing import Any

from ..core import calls, observed, scenario, states

FILE = "RTCConfiguration-iceTransportPolicy"


def _gathered(h: Any) -> int:
    return h.count("caller", "ice", "candidate", "gathered")


async def _relay_then_all(h: Any) -> None:
    a, b = h.pc("caller", {"iceTransportPolicy": "relay"}), h.pc("callee")
    a.createDataChannel("x")
    h.wire(a, b)
    await h.negotiate(a, b)
    await h.wait_for(lambda: h.count("caller", "ice", "candidate", "end") > 0, 5)
    h.note("caller", "candidates gathered with relay", _gathered(h))
    await h.attempt("caller", "setConfiguration", lambda: a.setConfiguration({"iceTransportPolicy": "all"}))
    await h.sleep(0.5)  # an observation window: does the new policy gather at once?
    h.note("caller", "candidates after setConfiguration", _gathered(h))
    a.on("negotiationneeded", lambda: h.negotiate(a, b))
    await h.attempt("caller", "restartIce", lambda: a.restartIce())
    await h.wait_for(lambda: _gathered(h) > 0, 5)
    h.note("caller", "candidates after restartIce", _gathered(h))
    await h.wait_for(lambda: a.connectionState == "connected", 5)
    h.note("caller", "connected after restartIce", a.connectionState == "connected")


scenario(
    name=f"{FILE}/relay-then-all-after-restartIce",
    title="iceTransportPolicy 'relay' without a TURN server gathers no candidate; setConfiguration('all') "
          "gathers nothing until restartIce(), which gathers host candidates and connects",
    js="""async (h) => {
  const a = h.pc("caller", {iceTransportPolicy: "relay"}), b = h.pc("callee");
  a.createDataChannel("x");
  h.wire(a, b);
  await h.negotiate(a, b);
  const gathered = () => h.count("caller", "ice", "candidate", "gathered");
  await h.waitFor(() => h.count("caller", "ice", "candidate", "end") > 0, 5);
  h.note("caller", "candidates gathered with relay", gathered());
  await h.attempt("caller", "setConfiguration", () => a.setConfiguration({iceServers: [], iceTransportPolicy: "all"}));
  await h.sleep(0.5);
  h.note("caller", "candidates after setConfiguration", gathered());
  a.addEventListener("negotiationneeded", () => h.negotiate(a, b));
  await h.attempt("caller", "restartIce", () => a.restartIce());
  await h.waitFor(() => gathered() > 0, 5);
  h.note("caller", "candidates after restartIce", gathered());
  await h.waitFor(() => a.connectionState === "connected", 5);
  h.note("caller", "connected after restartIce", a.connectionState === "connected");
}""",
    peer=_relay_then_all,
    difference="rtclab's restartIce() needs a connection that has connected once (it splices a fresh aioice "
               "connection into the connected one); this one never had a candidate, so rtclab records "
               "NotSupportedError and gathers nothing. A call that connected through TURN first (the "
               "relay-until-accepted flow) restarts with every candidate type, as here in Chromium.",
    essentials=lambda f: {
        "candidates gathered with relay": observed(f, "caller", "candidates gathered with relay"),
        "candidates after setConfiguration": observed(f, "caller", "candidates after setConfiguration"),
        "setConfiguration": calls(f, "caller", "setConfiguration"),
        "restartIce": calls(f, "caller", "restartIce"),
        "candidates after restartIce": observed(f, "caller", "candidates after restartIce"),
        "connected after restartIce": observed(f, "caller", "connected after restartIce"),
        "caller connectionState": states(f, "caller", "connectionState"),
    },
)
