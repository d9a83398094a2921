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
    ``datachannel`` row.
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
        self._rec("media", "track", track.kind, ref=f"{self.actor}:{track.kind}")
        if id(track) not in self._probed:
            self._probed.add(id(track))
            self._spawn(self._probe(track))
        self._emit("track", track)

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
