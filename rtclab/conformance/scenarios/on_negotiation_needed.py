"""``webrtc/RTCPeerConnection-onnegotiationneeded.html``: when ``negotiationneeded`` fires."""

from __future__ import annotations

from typing import Any

from ..core import calls, count, observed, scenario, states
from ._common import JS_BOTH_CONNECTED, both_connected

FILE = "RTCPeerConnection-onnegotiationneeded"


async def _two_tracks(h: Any) -> None:
    pc = h.pc("caller")
    for track in h.camera(video=True, audio=True):
        pc.addTrack(track)
    await h.wait_for(lambda: h.count("caller", "call", "negotiationneeded") > 0, 3)
    await h.sleep(0.3)  # an observation window: a second event would show


scenario(
    name=f"{FILE}/two-addTrack-one-event",
    title="two addTrack calls in one go fire negotiationneeded once",
    js="""async (h) => {
  const pc = h.pc("caller");
  for (const track of await h.camera({video: true, audio: true})) pc.addTrack(track);
  await h.waitFor(() => h.count("caller", "call", "negotiationneeded") > 0, 3);
  await h.sleep(0.3);
}""",
    peer=_two_tracks,
    essentials=lambda f: {"negotiationneeded": count(f, "caller", "call", "negotiationneeded"),
                          "addTrack": calls(f, "caller", "addTrack")},
)


async def _channels(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    a.createDataChannel("one")
    a.createDataChannel("two")
    await h.wait_for(lambda: h.count("caller", "call", "negotiationneeded") > 0, 3)
    await h.sleep(0.3)
    h.note("caller", "negotiationneeded before negotiating", h.count("caller", "call", "negotiationneeded"))
    h.wire(a, b)
    await h.negotiate(a, b)
    a.createDataChannel("three")
    await h.sleep(0.3)
    h.note("caller", "negotiationneeded after a third channel", h.count("caller", "call", "negotiationneeded"))


scenario(
    name=f"{FILE}/first-datachannel-only",
    title="only the first data channel needs negotiation: two channels fire one event, a third after negotiating none",
    js="""async (h) => {
  const a = h.pc("caller"), b = h.pc("callee");
  a.createDataChannel("one");
  a.createDataChannel("two");
  await h.waitFor(() => h.count("caller", "call", "negotiationneeded") > 0, 3);
  await h.sleep(0.3);
  h.note("caller", "negotiationneeded before negotiating", h.count("caller", "call", "negotiationneeded"));
  h.wire(a, b);
  await h.negotiate(a, b);
  a.createDataChannel("three");
  await h.sleep(0.3);
  h.note("caller", "negotiationneeded after a third channel", h.count("caller", "call", "negotiationneeded"));
}""",
    peer=_channels,
    essentials=lambda f: {k: observed(f, "caller", k) for k in ("negotiationneeded before negotiating", "negotiationneeded after a third channel")},
)


async def _answer_step(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    (caller_cam,) = h.camera(video=True)
    (callee_cam,) = h.camera(video=True)
    a.addTrack(caller_cam)
    h.wire(a, b)
    await h.negotiate(a, b)  # the callee answers at once, without media
    if not await h.wait_for(lambda: both_connected(a, b), 8):
        return
    await h.wait_for(lambda: h.count("callee", "media", "first-frame") > 0, 8)
    before = h.count("caller", "ice", "candidate", "gathered") + h.count("callee", "ice", "candidate", "gathered")

    async def renegotiate() -> None:
        await h.negotiate(b, a)
        h.note("callee", "renegotiated", True)

    b.on("negotiationneeded", renegotiate)
    b.addTrack(callee_cam)  # the user clicks Answer
    t = b.getTransceivers()
    h.note("callee", "transceivers", len(t))
    h.note("callee", "direction", t[0].direction)
    h.note("callee", "currentDirection", t[0].currentDirection)
    await h.wait_for(lambda: h.count("caller", "media", "first-frame") > 0, 5)
    after = h.count("caller", "ice", "candidate", "gathered") + h.count("callee", "ice", "candidate", "gathered")
    h.note("callee", "new candidates", after - before)


scenario(
    name=f"{FILE}/callee-addTrack-after-answer",
    title="the article's Answer step: a callee that answered without media calls addTrack; the recvonly transceiver is "
          "reused, negotiationneeded fires, one callee-initiated round, no new candidates, media both ways",
    js=f"""async (h) => {{
  const a = h.pc("caller"), b = h.pc("callee");
  const [callerCam] = await h.camera({{video: true}});
  const [calleeCam] = await h.camera({{video: true}});
  a.addTrack(callerCam);
  h.wire(a, b);
  await h.negotiate(a, b);
  if (!await h.waitFor(() => {JS_BOTH_CONNECTED}, 8)) return;
  await h.waitFor(() => h.count("callee", "media", "first-frame") > 0, 8);
  const gathered = () => h.count("caller", "ice", "candidate", "gathered") + h.count("callee", "ice", "candidate", "gathered");
  const before = gathered();
  b.addEventListener("negotiationneeded", async () => {{ await h.negotiate(b, a); h.note("callee", "renegotiated", true); }});
  b.addTrack(calleeCam);
  const t = b.getTransceivers();
  h.note("callee", "transceivers", t.length);
  h.note("callee", "direction", t[0].direction);
  h.note("callee", "currentDirection", t[0].currentDirection);
  await h.waitFor(() => h.count("caller", "media", "first-frame") > 0, 5);
  h.note("callee", "new candidates", gathered() - before);
}}""",
    peer=_answer_step,
    essentials=lambda f: {
        "callee negotiationneeded": count(f, "callee", "call", "negotiationneeded"),
        **{f"callee {k}": observed(f, "callee", k) for k in ("transceivers", "direction", "currentDirection", "renegotiated", "new candidates")},
        "caller first frame": count(f, "caller", "media", "first-frame") > 0,
    },
)


def _m_lines(sdp: str) -> int:
    return sum(1 for line in sdp.splitlines() if line.startswith("m="))


async def _empty_offer(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    h.wire(a, b)
    (caller_cam,) = h.camera(video=True)
    (callee_cam,) = h.camera(video=True)
    await a.setLocalDescription()  # the offer, made before any track
    h.note("caller", "offer m-lines", _m_lines(a.localDescription["sdp"]))
    a.addTrack(caller_cam)  # in have-local-offer
    await h.sleep(0.3)  # an observation window: an early event would show
    h.note("caller", "negotiationneeded in have-local-offer", h.count("caller", "call", "negotiationneeded"))
    await b.setRemoteDescription(a.localDescription)
    b.addTrack(callee_cam)  # in have-remote-offer
    await b.setLocalDescription()
    h.note("callee", "answer m-lines", _m_lines(b.localDescription["sdp"]))
    await h.wait_for(lambda: h.count("callee", "call", "negotiationneeded") > 0, 2)
    await a.setRemoteDescription(b.localDescription)
    await h.wait_for(lambda: h.count("caller", "call", "negotiationneeded") > 0, 2)
    await h.sleep(0.5)  # an observation window: gathering or ICE would show


def _empty_offer_essentials(f: Any) -> dict[str, Any]:
    return {
        "offer m-lines": observed(f, "caller", "offer m-lines"),
        "answer m-lines": observed(f, "callee", "answer m-lines"),
        "caller negotiationneeded in have-local-offer": observed(f, "caller", "negotiationneeded in have-local-offer"),
        "caller negotiationneeded": count(f, "caller", "call", "negotiationneeded"),
        "callee negotiationneeded": count(f, "callee", "call", "negotiationneeded"),
        **{f"{actor} {m}": states(f, actor, m) for actor in ("caller", "callee") for m in ("iceGatheringState", "connectionState")},
        "candidates gathered": count(f, None, "ice", "candidate", "gathered"),
    }


scenario(
    name=f"{FILE}/addTrack-after-empty-offer",
    title="an offer made before any track has no m-lines and the answer has none either; tracks added during the "
          "exchange fire negotiationneeded only once each side is stable again; nothing is gathered, ICE stays new",
    js="""async (h) => {
  const a = h.pc("caller"), b = h.pc("callee");
  h.wire(a, b);
  const [callerCam] = await h.camera({video: true});
  const [calleeCam] = await h.camera({video: true});
  const mLines = (d) => (d.sdp.match(/^m=/gm) || []).length;
  await a.setLocalDescription();
  h.note("caller", "offer m-lines", mLines(a.localDescription));
  a.addTrack(callerCam);
  await h.sleep(0.3);
  h.note("caller", "negotiationneeded in have-local-offer", h.count("caller", "call", "negotiationneeded"));
  await b.setRemoteDescription(a.localDescription);
  b.addTrack(calleeCam);
  await b.setLocalDescription();
  h.note("callee", "answer m-lines", mLines(b.localDescription));
  await h.waitFor(() => h.count("callee", "call", "negotiationneeded") > 0, 2);
  await a.setRemoteDescription(b.localDescription);
  await h.waitFor(() => h.count("caller", "call", "negotiationneeded") > 0, 2);
  await h.sleep(0.5);
}""",
    peer=_empty_offer,
    essentials=_empty_offer_essentials,
)
