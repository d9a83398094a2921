"""Synthetic media: a camera and a microphone that need no hardware.

The camera draws a moving gradient test pattern straight into YUV 4:2:0 (no
colour conversion): a frame is one slice copy of a precomputed, twice-as-wide
pattern; on the simulated network, as the pattern repeats every ``width / 4``
frames, each distinct frame is built once and handed out again (a pool). 320x240 is the default picture;
on the simulated network runs use :data:`SIM_VIDEO` (160x120) unless asked
otherwise (``rtclab.run(..., sim_video=(320, 240))``), which quarters the
encoder's and decoder's work. The microphone plays a quiet sine tone. Both
pace themselves with aiortc's own clock helpers, so in a simulated run they
follow the virtual clock.

:func:`getUserMedia` returns the tracks an app would get from the browser call
of the same name. The first decoded remote frame is recorded by
:class:`rtclab.Peer` itself (a ``media`` ``first-frame`` row at each end).
"""

from __future__ import annotations

import fractions

import numpy as np
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame

__all__ = ["Camera", "Microphone", "SIM_VIDEO", "getUserMedia"]

#: The camera's picture size on the simulated network, unless a run asks for
#: another (``sim_video``). The real network always uses 320x240.
SIM_VIDEO: tuple[int, int] = (160, 120)


class Camera(VideoStreamTrack):
    """A synthetic camera: a moving test pattern.

    Parameters
    ----------
    width, height
        Frame size (even numbers); 320x240 by default.

    Examples
    --------
    >>> cam = Camera()
    >>> (cam.kind, cam.width, cam.height)
    ('video', 320, 240)
    >>> cam.stop()
    """

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError("width and height must be positive even numbers")
        self.width, self.height = width, height
        x = np.arange(width, dtype=np.uint16)
        y = np.arange(height, dtype=np.uint16)[:, None]
        luma = ((x + y) % 256).astype(np.uint8)
        self._wide = np.concatenate([luma, luma], axis=1)  # any horizontal roll is a slice of it
        self._plane = np.empty((height * 3 // 2, width), dtype=np.uint8)  # Y rows, then U and V
        self._plane[height:] = 128
        self._plane[height:, : width // 2] = 90
        self._n = 0
        self._pool: dict[int, VideoFrame] = {}  # roll offset -> its frame, built on first use

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self._n += 1
        start = -(self._n * 4) % self.width  # the pattern rolled right by 4 pixels a frame
        frame = self._pool.get(start)
        if frame is None:
            self._plane[: self.height] = self._wide[:, start : start + self.width]
            frame = VideoFrame.from_ndarray(self._plane, format="yuv420p")
            if _in_sim() is not None:
                self._pool[start] = frame
        else:
            # A pooled frame (simulated network only) is handed out again width/4 frames later:
            # its sender has encoded it by then (encoding is inline in a sim, and a sender asks
            # for the next frame only after encoding this one). Reset what an encode changes:
            # the timestamps (below) and a forced keyframe's picture type.
            frame.pict_type = _PICT_TYPE_NONE
        frame.pts = pts
        frame.time_base = time_base
        return frame


_PICT_TYPE_NONE = VideoFrame(2, 2, "yuv420p").pict_type


def _in_sim() -> object | None:
    from .network import in_sim  # (not at import: rtclab.network is heavier than this module)

    return in_sim()


class Microphone(AudioStreamTrack):
    """A synthetic microphone: a quiet 440 Hz tone, 20 ms mono frames at 48 kHz.

    Examples
    --------
    >>> mic = Microphone()
    >>> mic.kind
    'audio'
    >>> mic.stop()
    """

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self.frequency = frequency
        self._rate = 48000
        self._samples = int(0.02 * self._rate)
        self._n = 0

    async def recv(self) -> AudioFrame:
        frame = await super().recv()  # paces like aiortc's silence track
        t = (np.arange(self._samples) + self._n * self._samples) / self._rate
        self._n += 1
        tone = (np.sin(2 * np.pi * self.frequency * t) * 3000).astype(np.int16)
        out = AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate = self._rate
        out.pts = frame.pts
        out.time_base = fractions.Fraction(1, self._rate)
        return out


def getUserMedia(
    *, video: bool = True, audio: bool = False, video_size: tuple[int, int] = (320, 240)
) -> list[MediaStreamTrack]:
    """The synthetic tracks an app gets instead of camera and microphone.

    ``video_size`` is the camera's (width, height).

    Examples
    --------
    >>> tracks = getUserMedia(video=True, audio=True)
    >>> [t.kind for t in tracks]
    ['video', 'audio']
    >>> for t in tracks: t.stop()
    """
    tracks: list[MediaStreamTrack] = []
    if video:
        tracks.append(Camera(*video_size))
    if audio:
        tracks.append(Microphone())
    return tracks
