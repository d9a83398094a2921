"""``webrtc/RTCRtpSender-replaceTrack.https.html``: replacing a sender's track."""

from __future__ import annotations

from typing import Any

from ..core import calls, scenario

FILE = "RTCRtpSender-replaceTrack"


async def _other_kind(h: Any) -> None:
    pc = h.pc("caller")
    video, audio = h.camera(video=True, audio=True)
    sender = pc.addTrack(video)
    await h.attempt("caller", "replaceTrack", lambda: pc.replaceTrack(sender, audio))


scenario(
    name=f"{FILE}/other-kind",
    title="replaceTrack with a track of the other kind (audio on a video sender) rejects with TypeError",
    js="""async (h) => {
  const pc = h.pc("caller");
  const tracks = await h.camera({video: true, audio: true});
  const video = tracks.find(t => t.kind === "video"), audio = tracks.find(t => t.kind === "audio");
  const sender = pc.addTrack(video);
  await h.attempt("caller", "replaceTrack", () => sender.replaceTrack(audio));
}""",
    peer=_other_kind,
    essentials=lambda f: {"replaceTrack": calls(f, "caller", "replaceTrack")},
)
