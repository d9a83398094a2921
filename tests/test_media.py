"""The synthetic camera: the same test pattern as before #16, drawn by slicing into a reused buffer."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from rtclab import media


def _expected(n: int, width: int, height: int) -> np.ndarray:
    """Frame n of the pattern as first written: the gradient rolled right by 4n pixels, then the chroma rows."""
    x = np.arange(width, dtype=np.uint16)
    y = np.arange(height, dtype=np.uint16)[:, None]
    luma = ((x + y) % 256).astype(np.uint8)
    chroma = np.full((height // 2, width), 128, dtype=np.uint8)
    chroma[:, : width // 2] = 90
    return np.concatenate([np.roll(luma, (n * 4) % width, axis=1), chroma])


@pytest.mark.parametrize("size", [(320, 240), (160, 120), (2, 2)])
def test_camera_frames_are_the_rolled_pattern_and_independent(monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
    """Each frame holds the rolled gradient; a frame keeps its pixels after the camera draws the next ones."""
    import aiortc.mediastreams

    monkeypatch.setattr(aiortc.mediastreams, "VIDEO_PTIME", 0.0)  # no real-time pacing in this test

    async def frames() -> list:
        cam = media.Camera(*size)
        try:
            return [await cam.recv() for _ in range(90)]
        finally:
            cam.stop()

    got = asyncio.run(frames())
    for n, frame in enumerate(got, start=1):
        assert (frame.width, frame.height) == size
        assert np.array_equal(frame.to_ndarray(), _expected(n, *size)), n


def test_get_user_media_video_size() -> None:
    """getUserMedia's camera has the asked size; 320x240 unless asked."""
    default, small = media.getUserMedia()[0], media.getUserMedia(video_size=media.SIM_VIDEO)[0]
    try:
        assert (default.width, default.height) == (320, 240)
        assert (small.width, small.height) == (160, 120)
    finally:
        default.stop()
        small.stop()
