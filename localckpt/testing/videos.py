"""Video files made on the spot with PyAV, whose every frame shows its own number.

For tests of ingest (localckpt's and a pipeline's own) and for benchmarks: nothing is
downloaded. Each frame carries its index as a row of black/white blocks along the top
(``read_number`` reads it back from a decoded or stored frame), over a moving smooth
background (so neighbouring frames have different perceptual hashes). Frame times may
be irregular (variable frame rate) and the first PTS may be offset from 0.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = [
    "BITS", "CODECS", "frame_image", "iter_decoded", "read_number", "write_audio", "write_video",
]

BITS = 12  # numbers 0..4095
_MARGIN = 2  # pixels of a code block left out when reading (codec smear at the edges)

#: codec -> (container extension, encoder options that keep tests fast)
CODECS: dict[str, tuple[str, dict[str, str]]] = {
    "libx264": ("mp4", {"preset": "ultrafast"}),
    "libvpx-vp9": ("webm", {"deadline": "realtime", "cpu-used": "8"}),
    "mpeg4": ("mkv", {"qscale": "3"}),
}


def _block(width: int) -> int:
    return max(8, width // (BITS + 2))


@functools.lru_cache(maxsize=8)
def _background(h: int, w: int) -> np.ndarray:
    """A smooth RGB pattern twice as wide as the frame: frames are windows into it."""
    yy, xx = np.mgrid[0:h, 0:2 * w].astype(np.float32)
    img = np.stack([
        128 + 90 * np.sin(xx / (w / 5)) * np.cos(yy / (h / 3)),
        128 + 90 * np.cos(xx / (w / 7) + yy / (h / 2)),
        128 + 90 * np.sin((xx - yy) / (w / 4)),
    ], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


def frame_image(number: int, width: int = 320, height: int = 240) -> np.ndarray:
    """Picture `number`: its code over a window of the background that moves far enough
    from one number to the next to change ~40 bits of the perceptual hash."""
    if not 0 <= number < 2**BITS:
        raise ValueError(f"frame number {number} does not fit in {BITS} bits")
    pos = number * 101 % width
    img = np.ascontiguousarray(_background(height, width)[:, pos:pos + width])
    b = _block(width)
    img[:b + 4, :] = 128
    for bit in range(BITS):
        x = (bit + 1) * b
        img[2:b + 2, x:x + b] = 255 if number >> (BITS - 1 - bit) & 1 else 0
    return img


def read_number(image: np.ndarray) -> int:
    """The number frame_image drew into image (decoded, scaled or JPEG'd: not resized)."""
    b = _block(image.shape[1])
    gray = image[2 + _MARGIN:b + 2 - _MARGIN].mean(axis=(0, 2))
    number = 0
    for bit in range(BITS):
        x = (bit + 1) * b
        number = number << 1 | int(gray[x + _MARGIN:x + b - _MARGIN].mean() > 128)
    return number


def _frame_times(frames: int | None, times: Sequence[float] | None, fps: float) -> list[float]:
    if times is not None:
        return [float(t) for t in times]
    if frames is None:
        raise ValueError("give frames (a count) or times")
    return [i / fps for i in range(frames)]


def write_video(path: str | os.PathLike[str], frames: int | None = None, *,
                times: Sequence[float] | None = None, fps: float = 25.0,
                size: tuple[int, int] = (320, 240), codec: str = "libx264",
                first_pts: float = 0.0, pictures: Sequence[int] | None = None,
                gop: int | None = None, options: dict[str, str] | None = None,
                audio: bool = False, rotation: int = 0,
                pixel_aspect: Fraction | None = None) -> list[float]:
    """Write a video whose frame i shows number i; return each frame's time in seconds
    from the first frame. times: irregular frame times (variable frame rate), else
    `frames` frames at fps. first_pts: the first frame's presentation time (0 for most
    files). pictures: the number each frame shows instead (repeat one for a static
    stretch). gop: frames between key frames (seeks land on those). audio: add a silent
    audio track (a file with more than one stream). rotation: degrees clockwise (90, 180,
    270) a player turns the frames, as a phone held upright records (MP4 only).
    pixel_aspect: the sample aspect ratio the stream states (8/9: NTSC DV's pixels)."""
    import av

    w, h = size
    tb = Fraction(1, 1000) if times is not None or first_pts else Fraction(1, round(fps))
    pts = [round((first_pts + t) / tb) for t in _frame_times(frames, times, fps)]
    if codec == "mpeg4" and tb.denominator > 65535:
        raise ValueError("mpeg4 needs a time base of at most 1/65535")
    with av.open(os.fspath(path), "w") as out:
        stream: Any = out.add_stream(codec, rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = tb
        if pixel_aspect is not None:
            stream.codec_context.sample_aspect_ratio = pixel_aspect
        stream.options = {**CODECS.get(codec, ("", {}))[1], **(options or {})}
        if gop is not None:
            stream.codec_context.gop_size = gop
        sound = _add_audio(out) if audio else None
        for i, p in enumerate(pts):
            picture = frame_image(i if pictures is None else pictures[i], w, h)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = p, tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None:
            _silence(out, sound, float((pts[-1] - pts[0]) * tb) + 1 / fps)
    if rotation:
        _rotate_mp4(path, rotation)
    return [float((p - pts[0]) * tb) for p in pts]


# The display matrix (a, b, c, d of [a b u; c d v; x y w], 16.16 fixed point) of an MP4
# track a player turns clockwise by so many degrees: 90 is an iPhone's portrait video.
_TURNS = {90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}


def _rotate_mp4(path: str | os.PathLike[str], degrees: int) -> None:
    """Set the video track's display matrix in the tkhd box, as phones write it."""
    import struct

    if degrees not in _TURNS:
        raise ValueError(f"rotation must be one of {sorted(_TURNS)}, not {degrees}")
    with open(path, "rb") as file:
        data = bytearray(file.read())
    at = data.find(b"tkhd")
    if at < 0 or data[at + 4] != 0:
        raise ValueError(f"{path} has no version-0 tkhd box (rotation needs an MP4)")
    # after the type: version+flags 4, times and track id 20, reserved 8, layer..volume 8
    matrix = at + 4 + 4 + 20 + 8 + 8
    a, b, c, d = _TURNS[degrees]
    data[matrix:matrix + 36] = struct.pack(">9i", a << 16, b << 16, 0, c << 16, d << 16, 0,
                                           0, 0, 1 << 30)
    with open(path, "wb") as out:
        out.write(data)


def _add_audio(out: Any) -> Any:
    if "webm" in out.format.name:
        return out.add_stream("libopus", rate=48000)
    return out.add_stream("aac", rate=8000)


def _silence(out: Any, stream: Any, seconds: float) -> None:
    """seconds of silence (PyAV resamples the frames to what the encoder takes)."""
    import av

    rate = stream.rate
    for _ in range(int(seconds * rate / 1000) + 1):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1000), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = rate
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def write_audio(path: str | os.PathLike[str], seconds: float = 1.0) -> None:
    """An audio-only file (e.g. AAC in .m4a): ingest_video must refuse it."""
    import av

    with av.open(os.fspath(path), "w") as out:
        _silence(out, _add_audio(out), seconds)


def iter_decoded(path: str | os.PathLike[str]) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds from the first frame, RGB pixels) of every frame, decoded by PyAV directly:
    the reference a test compares stored frames with."""
    import av

    with av.open(os.fspath(path)) as container:
        stream: Any = container.streams.video[0]
        first = stream.start_time
        for i, frame in enumerate(container.decode(stream)):
            pixels = frame.to_ndarray(format="rgb24")
            pts: Any = frame.pts
            if pts is None:  # a raw .h264 stream has no timestamps: frame i is at i / rate
                yield float(i / stream.guessed_rate), pixels
                continue
            if first is None:
                first = pts
            yield float((pts - first) * stream.time_base), pixels
