"""A connected call with a data channel, written once for both sides (used by renegotiation scenarios)."""

from __future__ import annotations

from typing import Any

from ._common import JS_BOTH_CONNECTED, both_connected

#: JavaScript: ``const {a, b, send, ok} = await dataCall(h)``; ``send(text)`` from caller to callee,
#: ``ok`` false if the call did not connect (the steps then stop).
JS_DATA_CALL = f"""
async function dataCall(h) {{
  const a = h.pc("caller"), b = h.pc("callee");
  const ch = a.createDataChannel("chat");
  b.addEventListener("datachannel", (e) => e.channel.addEventListener("message", (m) => h.note("callee", "message", m.data)));
  h.wire(a, b);
  await h.negotiate(a, b);
  const ok = await h.waitFor(() => {JS_BOTH_CONNECTED} && ch.readyState === "open", 8);
  return {{a, b, ok, send: (text) => ch.send(text)}};
}}"""


async def data_call(h: Any) -> tuple[Any, Any, Any, bool]:
    """``(a, b, send, ok)``: the same call on Peer."""
    a, b = h.pc("caller"), h.pc("callee")
    ch = a.createDataChannel("chat")

    def on_channel(channel: Any) -> None:
        channel.on("message", lambda m: h.note("callee", "message", m))

    b.on("datachannel", on_channel)
    h.wire(a, b)
    await h.negotiate(a, b)
    ok = await h.wait_for(lambda: both_connected(a, b) and ch.readyState == "open", 8)
    return a, b, ch.send, ok


def js_with_call(body: str) -> str:
    """``async (h) => {...}`` whose body starts with the data call in scope."""
    return "async (h) => {" + JS_DATA_CALL + "\n  const {a, b, send, ok} = await dataCall(h);\n  if (!ok) return;\n" + body + "\n}"
