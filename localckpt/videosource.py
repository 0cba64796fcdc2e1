"""One video stream opened with PyAV: what it is, and its frames with exact times.

Every failure becomes a typed error that names the file: a missing file is
NotFoundError; a file that is not a video, has no video stream (audio only), cannot be
read, or is damaged or truncated is InvalidInputError. PyAV is imported here, lazily, so
that the rest of localckpt works without the ``[video]`` extra.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Callable, Generator, Iterator, Mapping
from fractions import Fraction
from typing import Any

from .errors import InvalidInputError, NotFoundError
from .sampling import TOLERANCE

__all__ = ["VideoSource", "import_av", "source_name"]

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# FFmpeg renders text files (.txt, .nfo, ANSI art) as video through these decoders.
_TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})
# FFmpeg opens a still image as a one-frame video through these demuxers (and the
# *_pipe ones: png_pipe, jpeg_pipe, webp_pipe, ...); an animated GIF or APNG is a video.
_IMAGE_FORMATS = frozenset({"image2", "image2pipe"})
# Decoding that stops this long (plus two frames) before the stated end is truncation.
_TRUNCATION_SLACK = Fraction(1, 2)
_AV_TIME_BASE = Fraction(1, 1_000_000)  # unit of container.start_time / duration
# MPEG-TS packet layouts: (packet size, offset of the 0x47 sync byte in it). A file that
# ends on a packet boundary has a sync byte one and two packets before its end.
_TS_PACKETS = ((188, 0), (192, 4), (204, 0))  # plain, M2TS (.m2ts, .mts), with FEC
# Decoders whose skip_frame="NONREF" drops exactly the frames no other frame references,
# packet by packet, and whose frames carry their packet's PTS: checked by tests/test_video.py
# with B-frame streams (x264 and x265 with B-pyramids, MPEG-2). Others decode everything.
_SKIPS_NONREF = frozenset({"h264", "hevc", "mpeg2video"})


def import_av() -> Any:
    """The av module, or InvalidInputError saying which extra to install."""
    try:
        import av
    except ImportError:
        raise InvalidInputError(
            "ingest_video needs PyAV, which is not installed: pip install 'localckpt[video]'"
        ) from None
    return av


def source_name(src: object) -> str:
    """What a timeline's source_video says: the path or URL as given, or a file's name
    (bytes that are not UTF-8 shown as U+FFFD: records hold valid Unicode only)."""
    if isinstance(src, (str, bytes, os.PathLike)):
        name: object = os.fsdecode(os.fspath(src))
    else:
        name = getattr(src, "name", None)
        if not isinstance(name, str):
            return f"<{type(src).__name__}>"
    assert isinstance(name, str)
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _seconds(value: int | None, time_base: Fraction | None) -> Fraction | None:
    return None if value is None or time_base is None else value * time_base


_ATTACHED_PIC = 0x0400  # AV_DISPOSITION_ATTACHED_PIC


def _is_cover(stream: Any) -> bool:
    """True for a video stream that is an attached picture (cover art), not a video."""
    return bool(int(getattr(stream, "disposition", 0)) & _ATTACHED_PIC)


def _rate(stream: Any) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return None


class VideoSource:
    """The first video stream of a file, opened for decoding (a context manager).

    ``frames()`` yields (time, frame) in presentation order, time an exact Fraction of a
    second from the stream's first frame; ``info`` is what the source is (see ``info``).
    """

    def __init__(self, src: Any, name: str, storage_options: Mapping[str, Any] | None,
                 ) -> None:
        self.av = import_av()
        self.name = name
        self._opened: Any = None  # an fsspec file we opened (closed with the container)
        self._file: Any = None  # what the data is read from: a local path or a binary file
        self.container = self._open(src, storage_options)
        try:
            self.stream = self._video_stream()
            # Frame and slice threads, as the ffmpeg command line decodes. PyAV's default
            # is slice threads only, which leave a one-slice-per-frame stream (what most
            # encoders write) on one core: with frame threads the decoder uses both, and
            # the JPEG encoders still get their share (docs/video-ingest-speed.md).
            self.stream.thread_type = "AUTO"
            self.time_base = Fraction(self.stream.time_base)
            self.rate = _rate(self.stream)
            self._first_pts = self.stream.start_time
            if self._first_pts is None and self.container.start_time is not None:
                self._first_pts = int(self.container.start_time * _AV_TIME_BASE
                                      / self.time_base)
            self.eof = False
            self.stream_end: Fraction | None = None  # end of the last packet seen
            self.last_frame: Fraction | None = None  # time of the last frame decoded
            # PTS -> time of packets sent with skip_frame NONREF whose frame has not come
            # out (yet): at the end, the frames the decoder skipped.
            self._skipping: dict[int, Fraction] = {}
            # Times of the frames the decoder dropped before the first one it could decode
            # (the stream starts between key frames: cut from a longer recording).
            self.dropped: list[Fraction] = []
            # Video packets demuxed by the last decode, and how many were key frames: a
            # stream with none has nothing a decoder can start from (no_key_frame).
            self.packets = self.key_packets = 0
            self.rotation = 0  # degrees clockwise frames are turned (see pixels)
        except BaseException:
            self.close()
            raise

    # -- opening --------------------------------------------------------------------------

    def _open(self, src: Any, storage_options: Mapping[str, Any] | None) -> Any:
        av = self.av
        target = src
        if isinstance(src, (str, bytes, os.PathLike)):
            path = os.fsdecode(os.fspath(src))  # surrogate-escaped bytes open as they were
            if _URL.match(path) and not path.startswith("file://"):
                target = self._open_url(path, storage_options)
            else:
                path = path.removeprefix("file://")
                if os.path.isdir(path):
                    raise InvalidInputError(f"{self.name} is a directory, not a video file")
                if os.path.isfile(path) and os.path.getsize(path) == 0:
                    raise InvalidInputError(f"{self.name} is empty (0 bytes), not a video")
                # FFmpeg reads "name:rest" as protocol "name": a file called
                # cam-2024-05-01T10:00:00.mp4 was "Protocol not found", and one called
                # concat:a.mp4 read a.mp4. "file:" makes every path a local file.
                target = "file:" + path
                self._file = path
        elif isinstance(src, io.TextIOBase):
            raise InvalidInputError(
                f"{self.name} is open in text mode; open the video with open(path, 'rb')"
            )
        elif not callable(getattr(src, "read", None)):
            raise InvalidInputError(
                "ingest_video takes a path, an fsspec URL (s3://...) or a file open in binary "
                f"mode, not {type(src).__name__}"
            )
        if self._file is None:
            self._file = target  # an fsspec file, or the caller's open file
        try:
            return av.open(target, mode="r")
        except FileNotFoundError:
            self.close()
            raise NotFoundError(f"no video file {self.name}: it does not exist") from None
        except PermissionError:
            self.close()
            raise InvalidInputError(f"cannot read {self.name}: permission denied") from None
        except (av.FFmpegError, OSError, ValueError, TypeError) as exc:
            self.close()
            raise InvalidInputError(
                f"{self.name} is not a video file PyAV can read (or it is truncated or "
                f"damaged): {exc}"
            ) from None

    def _open_url(self, url: str, storage_options: Mapping[str, Any] | None) -> Any:
        import fsspec

        try:
            self._opened = fsspec.open(url, "rb", **dict(storage_options or {})).open()
        except FileNotFoundError:
            raise NotFoundError(f"no video file {url}: it does not exist") from None
        except ImportError as exc:
            raise InvalidInputError(
                f"reading {url} needs a package that is not installed: {exc} "
                "(for s3:// pip install 'localckpt[s3]')"
            ) from None
        except (OSError, ValueError, TypeError) as exc:  # TypeError: an unknown option
            raise InvalidInputError(f"cannot open {url}: {type(exc).__name__}: {exc}") from None
        except Exception as exc:  # the file system's own (botocore: no credentials, ...)
            from .errors import BackendUnavailableError

            raise BackendUnavailableError(
                f"cannot open {url}: {type(exc).__name__}: {exc}; check its storage options "
                "and credentials",
                cli=f"cannot open {url}: {type(exc).__name__}: {exc}; check its storage "
                "options, given with --source-storage-options JSON (key, secret, "
                "endpoint_url), and its credentials (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)") from None
        return self._opened

    def _video_stream(self) -> Any:
        streams = self.container.streams
        # A cover picture (an MP3's or M4A's album art) is a one-frame "video" stream:
        # an audio file with one is audio-only, and a video's cover is not its video.
        moving = [s for s in streams.video if not _is_cover(s)]
        if not moving:
            kinds = ", ".join(sorted({"cover picture" if _is_cover(s) else s.type
                                      for s in streams})) or "none"
            raise InvalidInputError(
                f"{self.name} has no video stream (its streams: {kinds}); "
                "ingest_video needs a video, not an audio-only or data file",
                cli=f"{self.name} has no video stream (its streams: {kinds}); "
                "`localckpt ingest` needs a video, not an audio-only or data file")
        stream = moving[0]
        if stream.codec_context is None:  # no codec FFmpeg knows: a damaged or cut header
            raise InvalidInputError(
                f"{self.name}: its video stream names no codec FFmpeg can decode (a damaged "
                "or truncated file, or a codec this FFmpeg lacks); nothing was ingested")
        form = self.container.format.name
        if form in _IMAGE_FORMATS or form.endswith("_pipe"):  # png_pipe, jpeg_pipe, ...
            said = f"{self.name} is a still image ({stream.codec_context.name}), not a video"
            raise InvalidInputError(
                f"{said}; create_timeline takes images",
                cli=f"{said}; `localckpt ingest` needs a video (an animated GIF is one): "
                "join the images into one (ffmpeg -framerate 2 -i %04d.png frames.mp4), or "
                "store them from Python with store.create_timeline")
        if stream.codec_context.name in _TEXT_CODECS:
            raise InvalidInputError(
                f"{self.name} is a text file (FFmpeg would draw it as "
                f"{stream.codec_context.name} art), not a video"
            )
        return stream

    def close(self) -> None:
        container = getattr(self, "container", None)
        if container is not None:
            container.close()
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the source is ---------------------------------------------------------------

    def duration(self) -> Fraction | None:
        """Seconds the video stream lasts, as the file states it (None when it does not)."""
        if self.stream.duration:
            return self.stream.duration * self.time_base
        stated = self.container.duration
        if not stated:
            return None
        seconds = stated * _AV_TIME_BASE
        if "matroska" in self.container.format.name and self.container.start_time:
            seconds -= self.container.start_time * _AV_TIME_BASE  # Matroska states the end
        return seconds

    def info(self) -> dict[str, Any]:
        """Timeline.source_info: fps, width, height, codec, duration (see localckpt.video)."""
        ctx = self.stream.codec_context
        duration = self.duration()
        start = _seconds(self._first_pts, self.time_base)
        width, height = ctx.width, ctx.height
        pixel = self._pixel_aspect()
        if self.rotation in (90, 270):
            width, height = height, width
            pixel = None if pixel is None else 1 / pixel
        return {
            "fps": None if self.rate is None else round(float(self.rate), 6),
            "width": width, "height": height, "rotation": self.rotation, "codec": ctx.name,
            "sample_aspect_ratio": None if pixel is None else
            f"{pixel.numerator}:{pixel.denominator}",
            "duration": None if duration is None else round(float(duration), 6),
            "container": self.container.format.name,
            "pixel_format": ctx.format.name if ctx.format is not None else None,
            "start_time": None if start is None else round(float(start), 6),
            "frames": self.stream.frames or None,
        }

    def _pixel_aspect(self) -> Fraction | None:
        """The stream's sample (pixel) aspect ratio, width over height of one pixel as
        the file states it (DV, DVD and broadcast SD have non-square pixels); None when
        it states none (0:1), or a ratio no display uses (beyond 1:10 or 10:1)."""
        stated = self.stream.sample_aspect_ratio or self.stream.codec_context.sample_aspect_ratio
        try:
            ratio = Fraction(stated) if stated else None
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        if ratio is None or not Fraction(1, 10) <= ratio <= 10:
            return None
        return ratio

    # -- decoding -------------------------------------------------------------------------

    def frames(self, seek_to: Fraction | None = None,
               needless: Callable[[Fraction], bool] | None = None,
               ) -> Iterator[tuple[Fraction, Any]]:
        """(seconds from the stream's first frame, av.VideoFrame) in presentation order.

        seek_to: jump to the key frame before that time first (frames before it are
        still yielded: the caller skips them). Sets ``eof`` when the file ended.
        needless: called with every packet's time in decode order; a packet it calls
        needless is decoded with skip_frame NONREF, so its frame is not decoded at all
        unless another frame references it (``skipped()`` lists what was left out).
        Only decoders known to honour that exactly (H.264, HEVC, MPEG-2) skip anything.
        """
        if needless is not None and self.stream.codec_context.name not in _SKIPS_NONREF:
            needless = None
        if seek_to is None or self._first_pts is None or not self._seekable():
            yield from self._decode(needless)
        else:
            yield from self._decode_from(seek_to, needless)
        self.eof = True

    def pixels(self, frame: Any) -> Any:
        """A frame's RGB pixels (HxWx3 uint8) upright, as players and the ffmpeg command
        show them: a display matrix's rotation (a phone held upright records landscape
        pixels and a 90 degree rotation) is applied, and ``rotation`` says by how much.

        The result is a view of an RGBX array, which Pillow encodes in place (where
        3-byte RGB would be copied into 4-byte pixels first)."""
        rgbx = frame.to_ndarray(format="rgba")
        quarter = round(frame.rotation / 90) % 4  # counterclockwise
        if quarter:
            import numpy as np

            rgbx = np.ascontiguousarray(np.rot90(rgbx, quarter))
            self.rotation = (360 - 90 * quarter) % 360
        return rgbx[:, :, :3]

    def skipped(self) -> list[Fraction]:
        """Times of the frames the decoder skipped as needless (never decoded): after
        a stop, also those still in the decoder (later than every frame yielded)."""
        return sorted(self._skipping.values())

    def _seek(self, pts: int) -> None:
        try:
            self.container.seek(pts, stream=self.stream, backward=True)  # flushes decoders
        except self.av.FFmpegError as exc:
            raise InvalidInputError(f"{self.name}: seeking failed: {exc}") from None

    def _decode_from(self, seek_to: Fraction, needless: Callable[[Fraction], bool] | None,
                     ) -> Iterator[tuple[Fraction, Any]]:
        """Decode from the key frame before seek_to; if the demuxer landed after it (an
        imprecise index), or at the end (MPEG-TS whose stream starts between key frames:
        no key frame before the time asked), start again from the beginning rather than
        miss frames."""
        assert self._first_pts is not None
        self._seek(self._first_pts + int(seek_to / self.time_base))
        frames = self._decode(needless)
        head = next(frames, None)
        if head is None or head[0] > seek_to:
            frames.close()
            self._seek(self._first_pts)
            self._skipping.clear()  # every packet comes again
            frames = self._decode(needless)
        else:
            yield head
        yield from frames

    def _seekable(self) -> bool:
        file = self._opened
        return file is None or bool(getattr(file, "seekable", lambda: False)())

    def _decode(self, needless: Callable[[Fraction], bool] | None = None,
                ) -> Generator[tuple[Fraction, Any], None, None]:
        av, stream, tb = self.av, self.stream, self.time_base
        ctx, skipping = stream.codec_context, self._skipping
        first = self._first_pts
        last: Fraction | None = None
        skip = False
        ctx.skip_frame = "DEFAULT"  # a decode stopped early may have left it NONREF
        # PTS of the packets sent before the first frame came out, for decoders whose
        # frames carry their packet's PTS: those older than that frame never will.
        waiting: set[int] | None = set() if ctx.name in _SKIPS_NONREF else None
        self.dropped = []
        self.packets = self.key_packets = 0
        try:
            for packet in self.container.demux():  # every stream: see check_complete
                if packet.pts is not None and packet.time_base is not None:
                    end = (packet.pts + (packet.duration or 0)) * Fraction(packet.time_base)
                    if self.stream_end is None or end > self.stream_end:
                        self.stream_end = end
                if packet.stream.index != stream.index:
                    continue
                if packet.size:
                    self.packets += 1
                    self.key_packets += packet.is_keyframe
                if needless is not None and packet.pts is not None and first is not None:
                    when = (packet.pts - first) * tb
                    if skip != needless(when):
                        skip = not skip
                        ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                    if skip:
                        skipping[packet.pts] = when
                elif skip:  # no time to judge by: decode it
                    skip = False
                    ctx.skip_frame = "DEFAULT"
                if waiting is not None and packet.pts is not None and packet.size:
                    waiting.add(packet.pts)
                for frame in packet.decode():
                    if waiting is not None:
                        self._drop_before(waiting, frame.pts, first)
                        waiting = None
                    if skipping and frame.pts is not None:
                        skipping.pop(frame.pts, None)  # decoded after all: a reference
                    pts = frame.pts if frame.pts is not None else frame.dts
                    if pts is None:  # no timestamp at all (a raw .h264 / .hevc stream):
                        if self.rate is None:  # the first at 0, the next one frame later
                            raise InvalidInputError(
                                f"{self.name}: its video frames carry no timestamps and "
                                "it states no frame rate"
                            )
                        t = Fraction(0) if last is None else last + 1 / self.rate
                    else:
                        if first is None:
                            first = self._first_pts = pts
                        t = (pts - first) * tb
                        if last is not None and t + TOLERANCE < last:
                            self._backwards(last, t)
                    last = self.last_frame = t
                    yield t, frame
            if waiting and first is not None:  # not one frame came out
                self._drop_before(waiting, max(waiting) + 1, first)
        except av.FFmpegError as exc:
            keyless = last is None and not self.key_packets and self._no_key_frame_after()
            if keyless and (said := self.no_key_frame()):
                raise InvalidInputError(said) from None
            where = "" if last is None else f" after {float(last):.3f} s"
            raise InvalidInputError(
                f"{self.name} is damaged or truncated: decoding failed{where}: {exc}"
            ) from None

    def _no_key_frame_after(self) -> bool:
        """After the decoder failed before any frame and any key frame: whether the
        rest of the stream has no key frame either (its packets read, not decoded)."""
        try:
            for packet in self.container.demux(self.stream):
                if packet.size:
                    self.packets += 1
                    if packet.is_keyframe:
                        return False
        except self.av.FFmpegError:
            return False  # damaged further on: cannot tell
        return True

    def no_key_frame(self) -> str | None:
        """What to say when the stream came to its end, no frame decoded, and not one of
        its packets is a key frame (the piece of a recording between two key frames, or
        a stream whose key frames are missing): a decoder starts only from a key frame.
        None when there was one (or no packet at all)."""
        if not self.packets or self.key_packets:
            return None
        return (f"{self.name} has no key frame to start decoding from: none of its "
                f"{self.packets} video packets is one, and the others are decoded from a "
                "key frame before them that is not in the file (a piece cut from between "
                "two key frames of a longer recording?); nothing to ingest")

    def _drop_before(self, waiting: set[int], pts: int | None, first: int | None) -> None:
        """The first frame came out, at pts: every packet sent before it with an earlier
        PTS is a frame the decoder dropped (no key frame before it to decode it from),
        NONREF-skipped ones included (those were never decoded either)."""
        if pts is not None and first is not None:
            gone = {p for p in waiting if p < pts}
            gone.update(p for p in self._skipping if p < pts)
            for p in gone:
                self._skipping.pop(p, None)
            self.dropped = sorted((p - first) * self.time_base for p in gone)
        return None

    def _backwards(self, last: Fraction, t: Fraction) -> None:
        """Frames come out of the decoder in presentation order: a time earlier than the
        last one's is a second clock (recordings joined end to end, as `cat a.ts b.ts`
        makes) or damage. Sampled by time, every frame after it was silently dropped."""
        said = (f"{self.name}: its frame times go back from {float(last):.3f} s to "
                f"{float(t):.3f} s (recordings joined end to end, or a damaged file), so "
                "the frames after that have no place in one timeline")
        stop = math.floor(last * 1000) / 1000
        raise InvalidInputError(
            f"{said}; end={stop:g} ingests what comes before, or split the file",
            cli=f"{said}; --end {stop:g} ingests what comes before, or split the file")

    def check_complete(self, until: Fraction | None = None) -> None:
        """After decoding to the end: InvalidInputError when the file stops well before
        the end its header states (a truncated download or copy), or before ``until``
        (seconds from the first frame: the end of the window asked for) when that is
        earlier. The message says where the data stops, as an end= that works."""
        if self.eof and self.container.format.name == "mpegts":
            self._check_ts_end()
        stated = self.container.duration
        if not self.eof or not stated or self.stream_end is None:
            return
        # container.duration is the end of the longest stream; Matroska counts it from 0,
        # MP4 from the first frame: compare with the smaller reading (never a false alarm).
        stated_end = stated * _AV_TIME_BASE
        first = _seconds(self._first_pts, self.time_base) or Fraction(0)
        if until is not None:
            stated_end = min(stated_end, first + until)
        frame = 1 / self.rate if self.rate else Fraction(0)
        if self.stream_end + _TRUNCATION_SLACK + 2 * frame < stated_end:
            lasts = self.duration()
            header = "" if lasts is None else f"its header says it lasts {float(lasts):.3f} s but "
            stop = math.floor(max(self.stream_end - first, Fraction(0)) * 1000) / 1000
            said = f"{self.name} is truncated or damaged: {header}its data stops at {stop:.3f} s"
            raise InvalidInputError(
                f"{said}; copy it again, or pass end={stop:g} to ingest only what is there",
                cli=f"{said}; copy it again, or pass --end {stop:g} to ingest only what is "
                    "there")

    def _check_ts_end(self) -> None:
        """MPEG-TS states no length (FFmpeg's duration comes from the timestamps where the
        file ends, cut or not), so a cut one is told by its end: a file written whole
        ends on a packet boundary, one cut short (a copy or download that stopped, a
        recording still being written) almost always in the middle of a packet, which
        FFmpeg drops silently; the frame that packet was part of comes out with its
        missing part made up."""
        tail = self._tail(2 * max(size for size, _ in _TS_PACKETS))
        if tail is None:
            return
        n = len(tail)
        if any(n >= 2 * size and tail[n - size + at] == tail[n - 2 * size + at] == 0x47
               for size, at in _TS_PACKETS):
            return
        last = self.last_frame
        said = (f"{self.name} is truncated or damaged: it ends in the middle of an MPEG-TS "
                "packet (a copy or download that stopped, or a recording still being "
                "written), so its last frame may be incomplete")
        if last is None or last <= 0:
            raise InvalidInputError(f"{said}; copy it again")
        stop = math.floor(last * 1000) / 1000
        raise InvalidInputError(
            f"{said}; copy it again, or pass end={stop:g} to ingest the frames before it",
            cli=f"{said}; copy it again, or pass --end {stop:g} to ingest the frames before "
                "it")

    def _tail(self, size: int) -> bytes | None:
        """The last size bytes of the file (None when it cannot be read again: a pipe)."""
        file = self._file
        try:
            if isinstance(file, str):
                with open(file, "rb") as fh:
                    fh.seek(max(os.fstat(fh.fileno()).st_size - size, 0))
                    return fh.read(size)
            if not getattr(file, "seekable", lambda: False)():
                return None
            where = file.tell()
            try:
                end = file.seek(0, io.SEEK_END)
                file.seek(max(end - size, 0))
                data = file.read(size)
            finally:
                file.seek(where)
            return data if isinstance(data, bytes) else None
        except (OSError, ValueError):
            return None
