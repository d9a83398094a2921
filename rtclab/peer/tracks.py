"""Tracks and data channels: ``addTrack``, ``addTransceiver``, ``replaceTrack``, ``track``, ``datachannel``.

What the browser does
    The first ``createDataChannel`` triggers ``negotiationneeded``
    (``addTrack``, ``addTransceiver``, ``removeTrack``: see
    :mod:`rtclab.peer.negotiation`). Chromium 156 fires ``track`` at
    ``setRemoteDescription`` with ``muted=true`` and ``unmute`` on the first
    RTP packet; ``replaceTrack`` with a track of the other kind is a
    ``TypeError`` (FACTS.md, issue #18).
What aiortc 1.16 does
    ``track`` fires with the bare track (no ``RTCTrackEvent``, no mute
    state); ``replaceTrack`` is synchronous and accepts a track of the other
    kind silently.
What rtclab does
    Every call is recorded; the remote track is consumed like a media
    element would and its first decoded frame is recorded as a ``media``
    ``first-frame`` row; a data channel's opening is a ``media``
    ``datachannel`` row. ``track_mute``: the received track gets
    ``muted = True`` when ``track`` fires (the ``media`` ``track`` row says
    ``muted``); its receiver's first RTP packet sets it ``False``, records a
    ``media`` ``unmute`` row and fires ``unmute`` on the track (as
    ``track.onunmute``) and on the peer (an instance wrapper on that
    receiver, removed after the first packet).
    With ``browser_errors``, ``replaceTrack`` with a track of the other kind
    is a ``TypeError``, recorded, as in Chromium 156.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError



class TracksMixin:
    """Mixed into :class:`~rtclab.peer.Peer`: local tracks, remote tracks and data channels."""

    async def replaceTrack(self, sender: Any, track: MediaStreamTrack | None) -> None:
        """``sender.replaceTrack(track)``, recorded (no renegotiation needed)."""

        async def op() -> None:
            kind = getattr(sender, "kind", None)
            if self.browser_errors and track is not None and kind is not None and track.kind != kind:
                # Chromium 156 rejects it; aiortc would send e.g. a camera on an audio transceiver
                raise TypeError(
                    f"Failed to execute 'replaceTrack' on 'RTCRtpSender': the new track's kind ({track.kind!r}) "
                    f"is not the sender's kind ({kind!r})"
                )
            result = sender.replaceTrack(track)  # synchronous in aiortc, a promise in browsers
            if asyncio.iscoroutine(result):
                await result

        await self._op("replaceTrack", op, ok_detail=lambda _r: "none" if track is None else track.kind)

    def createDataChannel(self, label: str, **options: Any) -> Any:
        """Create a data channel; the first one fires ``negotiationneeded``."""
        first = self._pc.sctp is None and not self._channels
        channel = self._pc.createDataChannel(label, **options)
        self._channels.append(channel)
        self._watch_channel(channel)
        self._rec("call", "createDataChannel", "ok", detail=label)
        if first:
            self._join_bundle_sctp()  # during a call: on the bundled transport (rtclab.peer.negotiation)
            self._update_negotiation_needed()
        return channel

    def _on_track(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        if pc is not self._pc:
            return
        receiver = next((t.receiver for t in pc.getTransceivers() if t.receiver.track is track), None)
        muted = self.track_mute and receiver is not None
        if muted:
            track.muted = True  # type: ignore[attr-defined]
            self._watch_first_packet(receiver, track)
        self._rec("media", "track", track.kind, ref=f"{self.actor}:{track.kind}", detail="muted" if muted else "")
        if id(track) not in self._probed:
            self._probed.add(id(track))
            self._spawn(self._probe(track))
        self._emit("track", track)

    def _watch_first_packet(self, receiver: Any, track: MediaStreamTrack) -> None:
        """Unmute ``track`` at its receiver's first RTP packet (an instance wrapper, removed after it)."""
        if "_handle_rtp_packet" in receiver.__dict__:
            return
        original = receiver._handle_rtp_packet

        async def first_packet(packet: Any, arrival_time_ms: int) -> None:
            receiver.__dict__.pop("_handle_rtp_packet", None)  # only the first packet
            if not self._closed:
                track.muted = False  # type: ignore[attr-defined]
                self._rec("media", "unmute", track.kind, ref=f"{self.actor}:{track.kind}")
                try:
                    track.emit("unmute")  # the browser's track.onunmute (aiortc tracks are event emitters)
                except Exception as exc:  # a raising listener must not break media
                    self._error("onunmute", exc)
                self._emit("unmute", track)
            await original(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = first_packet

    async def _probe(self, track: MediaStreamTrack) -> None:
        """Consume a remote track like a media element; record its first decoded frame."""
        try:
            while True:
                await track.recv()
                if track.kind not in self._first_frame:
                    self._first_frame.add(track.kind)
                    self._rec("media", "first-frame", track.kind, ref=f"{self.actor}:{track.kind}")
        except (MediaStreamError, asyncio.CancelledError):
            pass
        except Exception as exc:
            self._error("media", exc)

    def _on_datachannel(self, pc: RTCPeerConnection, channel: Any) -> None:
        if pc is not self._pc:
            return
        self._watch_channel(channel)
        self._emit("datachannel", channel)

    def _watch_channel(self, channel: Any) -> None:
        def opened() -> None:
            self._rec("media", "datachannel", "open", detail=channel.label)

        if channel.readyState == "open":
            opened()
        else:
            channel.on("open", opened)
