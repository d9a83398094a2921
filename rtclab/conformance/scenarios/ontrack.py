"""``webrtc/RTCPeerConnection-ontrack.https.html``: when ``track`` fires, and the track's ``muted`` flag."""

from __future__ import annotations

from typing import Any

from ..core import count, observed, scenario

FILE = "RTCPeerConnection-ontrack"


async def _muted(h: Any) -> None:
    a, b = h.pc("caller"), h.pc("callee")
    (cam,) = h.camera(video=True)
    a.addTrack(cam)
    h.wire(a, b)
    applying = {"srd": True}

    def on_track(track: Any) -> None:
        h.note("callee", "track during setRemoteDescription", applying["srd"])
        h.note("callee", "muted at track", getattr(track, "muted", "no such attribute"))
        if hasattr(track, "on"):
            track.on("unmute", lambda *_: h.note("callee", "unmute", True))

    b.on("track", on_track)
    await a.setLocalDescription()
    await b.setRemoteDescription(a.localDescription)
    applying["srd"] = False
    await b.setLocalDescription()
    await a.setRemoteDescription(b.localDescription)
    await h.wait_for(lambda: h.count("callee", "media", "first-frame") > 0, 8)
    await h.wait_for(lambda: h.count("callee", "call", "observe:unmute") > 0, 2)


scenario(
    name=f"{FILE}/muted-until-first-packet",
    title="the callee's track event fires while setRemoteDescription(offer) runs, with a muted track that unmutes when media arrives",
    js="""async (h) => {
  const a = h.pc("caller"), b = h.pc("callee");
  const [cam] = await h.camera({video: true});
  a.addTrack(cam);
  h.wire(a, b);
  let applying = true;
  b.addEventListener("track", (e) => {
    h.note("callee", "track during setRemoteDescription", applying);
    h.note("callee", "muted at track", e.track.muted);
    e.track.addEventListener("unmute", () => h.note("callee", "unmute", true));
  });
  await a.setLocalDescription();
  await b.setRemoteDescription(a.localDescription);
  applying = false;
  await b.setLocalDescription();
  await a.setRemoteDescription(b.localDescription);
  await h.waitFor(() => h.count("callee", "media", "first-frame") > 0, 8);
  await h.waitFor(() => h.count("callee", "call", "observe:unmute") > 0, 2);
}""",
    peer=_muted,
    essentials=lambda f: {
        **{k: observed(f, "callee", k) for k in ("track during setRemoteDescription", "muted at track", "unmute")},
        "callee first frame": count(f, "callee", "media", "first-frame") > 0,
    },
)
