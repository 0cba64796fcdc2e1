"""Video file -> timeline: ``Store.ingest_video`` (needs the ``[video]`` extra, PyAV).

What a timeline made here holds:

- frames sampled by presentation time (``sampling.py`` states the rule): frame i is the
  first decoded frame at or after ``start + i / fps``, ``sequence`` is i, ``timestamp``
  is that frame's real time in seconds from the stream's first frame (variable frame
  rates and streams whose first PTS is not 0 included). ``fps=None`` keeps every frame.
- ``chunk_id``: the index of the ``chunk_seconds``-long window of source time a frame
  falls in (``floor(timestamp / chunk_seconds)``; 0 without chunk_seconds). Windows are
  counted from the stream's start, not from ``start``, so one instant has one chunk in
  every timeline of that video: a pipeline can split work (one worker per chunk), reset
  trackers at chunk edges, or load one window with ``get_timeline_frames``.
- ``skip_similar=d``: a sampled frame whose perceptual hash is within d bits of the last
  kept frame's is dropped (static scenes); its sequence number is not reused.
- frames upright: a display matrix's rotation (phones) is applied, as players do.
- ``Timeline.source_info``: ``fps`` (the stream's average frame rate), ``width``,
  ``height`` (upright, in coded pixels: the stored frames' size), ``rotation`` (degrees
  clockwise applied), ``sample_aspect_ratio`` (one pixel's width over its height as the
  file states it, e.g. "8:9", else None; frames stay at the coded size), ``codec``
  (FFmpeg's decoder name, e.g. h264), ``duration`` (seconds the
  stream lasts as the file states it, else as decoded), ``container``, ``pixel_format``,
  ``start_time`` (seconds of the first frame's PTS, which timestamps are measured from),
  ``frames`` (the count the file states, or None), and ``sampling``: the arguments
  (fps, start, end, max_frames, chunk_seconds, skip_similar), and ``stopped_at`` where
  max_frames ended the sampling (seconds: the next instant no kept frame answers).
  ``Timeline.fps`` is the sampling rate; with fps=None it is the source's rate.
- the root checkpoint's stats: ``frames_extracted`` (stored frames, as for every
  timeline), ``frames_decoded`` (decoded in the window), ``frames_kept`` (stored),
  ``frames_skipped`` (dropped by skip_similar) and ``frames_undecodable`` (in the window
  but before the stream's first key frame, which the decoder drops: a file cut from a
  longer recording; counted for H.264, HEVC and MPEG-2).

Memory is bounded whatever the length: frames stream from the decoder through
``shards.write_frames`` (a few frames per encoder thread). Bad input of any kind is a
typed error that names the file, and nothing is written (no timeline, no shards).
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Generator, Iterator, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .errors import InvalidInputError
from .frames import check_codec, lossless_quality, perceptual_hash
from .sampling import Needless, Sampler
from .types import Frame, Timeline
from .videosource import VideoSource, import_av, source_name

if TYPE_CHECKING:
    from .store import Store

__all__ = ["check_reach", "ingest_video", "window_sampler"]

_SEEK_MIN = 1.0  # seconds: a start later than this seeks instead of decoding the way there


def _fits_float(value: numbers.Real) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _seconds(value: object, what: str, name: str, *, positive: bool = False) -> Fraction:
    from .arguments import shown

    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not _fits_float(value)  # 10**5000: no float, no isfinite
            or not math.isfinite(value) or value < 0 or (positive and value == 0)):
        bound = "> 0" if positive else ">= 0"
        raise InvalidInputError(f"ingest_video({name}): {what} must be a finite number "
                                f"{bound}, got {shown(value)}")
    return Fraction(value) if isinstance(value, numbers.Rational) else Fraction(float(value))


def _count(value: object, what: str, name: str, low: int, high: int | None = None) -> int:
    number = int(value) if isinstance(value, numbers.Integral) else None
    if (isinstance(value, bool) or number is None or number < low
            or (high is not None and number > high)):
        from .arguments import shown

        span = f"in {low}..{high}" if high is not None else f">= {low}"
        raise InvalidInputError(f"ingest_video({name}): {what} must be an int {span}, "
                                f"got {shown(value)}")
    return number


def window_sampler(name: str, fps: object, start: object, end: object,
                   chunk_seconds: object) -> Sampler:
    """The Sampler of ingest_video's arguments, each checked (InvalidInputError)."""
    rate = None if fps is None else _seconds(fps, "fps", name, positive=True)
    t0 = Fraction(0) if start is None else _seconds(start, "start", name)
    t1 = None if end is None else _seconds(end, "end", name)
    if t1 is not None and t1 <= t0:
        raise InvalidInputError(f"ingest_video({name}): end ({end}) must be after start "
                                f"({float(t0):g})")
    chunk = None if chunk_seconds is None else _seconds(chunk_seconds, "chunk_seconds", name,
                                                        positive=True)
    return Sampler(rate, t0, t1, chunk)


_INDEX_INT = 2**63  # sequence and chunk_id are int64 in the frame index


def check_reach(name: str, sampler: Sampler, duration: Fraction | None) -> None:
    """InvalidInputError when a frame at ``duration`` would get a sequence or chunk_id
    past int64 (fps=1e300, chunk_seconds=1e-300): said before anything is decoded."""
    if duration is None:
        return
    last = duration if sampler.end is None else min(duration, sampler.end)
    _check_numbers(name, sampler, last, sampler.sequence_at(last), sampler.chunk_id(last))


def _big(number: int) -> str:
    return f"{float(number):.3g}" if number < 10**300 else f"about 1e{len(str(number)) - 1}"


def _check_numbers(name: str, sampler: Sampler, t: Fraction, seq: int, chunk: int) -> None:
    at = f"{float(t):.3f} s"
    if seq >= _INDEX_INT:
        fps = float(sampler.fps or 0)
        what = (f"the frame at {at} sequence number {_big(seq)}, past the 64-bit numbers a "
                "timeline holds")
        raise InvalidInputError(
            f"ingest_video({name}): fps={fps:g} gives {what}; sample at a lower fps",
            cli=f"--fps {fps:g} gives {what} ({name}); use a lower --fps (nothing was stored)")
    if chunk >= _INDEX_INT:
        length = float(sampler.chunk_seconds or 0)
        what = (f"the frame at {at} chunk id {_big(chunk)}, past the 64-bit numbers a "
                "timeline holds")
        raise InvalidInputError(
            f"ingest_video({name}): chunk_seconds={length:g} gives {what}; use longer chunks",
            cli=f"--chunk-seconds {length:g} gives {what} ({name}); use longer chunks "
                "(nothing was stored)")


class _Ingest:
    """One ingest: the decode loop feeding write_frames, and what it counted."""

    def __init__(self, source: VideoSource, sampler: Sampler, max_frames: int | None,
                 skip_similar: int | None, progress: Any) -> None:
        self.source = source
        self.sampler = sampler
        self.max_frames = max_frames
        self.skip = skip_similar
        self.progress = _Progress(progress, source, sampler)
        self.kept = self.skipped = 0
        self.seen = 0  # frames of the window that came out of the decoder
        self.last_time: Fraction | None = None
        self.stop: Fraction | None = None  # the time sampling stopped at, if it stopped
        self.sampling: dict[str, Any] = {}

    def frames(self) -> Iterator[Frame]:
        try:
            stopped = yield from self._sample()
        finally:
            self.progress.close()
        if not stopped:
            self.source.check_complete(self.sampler.end)
        if not self.kept:
            raise InvalidInputError(self._nothing())

    def _sample(self) -> Generator[Frame, None, bool]:
        """Yield the frames to keep; return True when stopped early (end, max_frames)."""
        s = self.sampler
        last_hash: int | None = None
        frames = self.source.frames(s.start if s.start >= _SEEK_MIN else None,
                                    needless=Needless(s))
        for t, vf in frames:
            if s.past_end(t):
                self.stop = t
                return True
            self.progress.update(t, self.kept)
            if s.before_start(t):  # the pre-roll from the key frame a seek landed on
                continue
            self.seen += 1
            self.last_time = t
            seq = s.sequence(t)
            if seq is None:
                continue
            _check_numbers(self.source.name, s, t, seq, s.chunk_id(t))
            # Only sampled frames pay for RGB (upright, a view of RGBX: see pixels).
            image = self.source.pixels(vf)
            phash = perceptual_hash(image)
            if self.skip is not None:
                value = int(phash, 16)
                if last_hash is not None and (value ^ last_hash).bit_count() <= self.skip:
                    self.skipped += 1
                    continue
                last_hash = value
            self.kept += 1
            yield Frame(seq, float(t), s.chunk_id(t), phash, image)
            if self.max_frames is not None and self.kept >= self.max_frames:
                self.stop = t
                at = s.next_instant()
                if at is not None:
                    self.sampling["stopped_at"] = round(float(at), 6)
                return True
        return False

    def _skipped_in_window(self) -> list[Fraction]:
        """Frames of the window the decoder skipped (needless: never kept) before the
        stop: frames_decoded counts them, as every frame was counted before skipping."""
        s = self.sampler
        return [t for t in self.source.skipped()
                if not (s.before_start(t) or s.past_end(t))
                and (self.stop is None or t < self.stop)]

    @property
    def undecodable(self) -> int:
        """Frames of the window the decoder dropped: the stream starts between key
        frames (cut from a longer recording), and those before the first key frame
        cannot be decoded. Counted where frames carry their packet's PTS (H.264, HEVC,
        MPEG-2)."""
        s = self.sampler
        return sum(1 for t in self.source.dropped
                   if not (s.before_start(t) or s.past_end(t))
                   and (self.stop is None or t < self.stop))

    @property
    def decoded(self) -> int:
        """Frames of the window up to the stop, decoded or skipped as needless."""
        return self.seen + len(self._skipped_in_window())

    def _nothing(self) -> str:
        s = self.sampler
        window = f"[{float(s.start):g} s, {'end' if s.end is None else f'{float(s.end):g} s'})"
        duration = self.source.duration()
        if not self.decoded and (said := self.source.no_key_frame()):
            return said
        if not self.decoded and s.start == 0 and s.end is None:  # not a window's fault
            lasts = "" if duration is None else f" (the file lasts {float(duration):.3f} s)"
            return (f"{self.source.name} has a video stream with no frames in it{lasts}: "
                    "nothing to ingest")
        lasts = "" if duration is None else f"; the video lasts {float(duration):.3f} s"
        return (f"no frames of {self.source.name} in {window} (decoded {self.decoded}{lasts}); "
                "choose a start and end inside the video")

    def described(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(Timeline.source_info, extra root stats), once every frame went through."""
        info = self.source.info()
        times = self._skipped_in_window()
        if self.last_time is not None:
            times.append(self.last_time)
        if info["duration"] is None and self.source.eof and times:
            frame = 1 / self.source.rate if self.source.rate else 0
            info["duration"] = round(float(max(times) + frame), 6)
        info["sampling"] = self.sampling
        return info, {"frames_decoded": self.decoded, "frames_kept": self.kept,
                      "frames_skipped": self.skipped, "frames_undecodable": self.undecodable}


class _Progress:
    """A tqdm bar (progress=True) or a callback(seconds_done, seconds_total) over source time."""

    def __init__(self, progress: Any, source: VideoSource, sampler: Sampler) -> None:
        self.callback = None
        self.bar: Any = None
        self.done = 0.0
        self.total: float | None = None
        if progress is None or progress is False:
            return
        duration = source.duration()
        end = sampler.end if duration is None or (sampler.end is not None
                                                  and sampler.end < duration) else duration
        self.total = None if end is None else max(float(end - sampler.start), 0.0)
        if progress is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=None if self.total is None else round(self.total, 1),
                            desc="ingest", unit="s", file=sys.stderr, leave=False)
        elif callable(progress):
            self.callback = progress
        else:
            raise InvalidInputError("progress must be None, True (a bar on stderr) or a "
                                    f"function(seconds_done, seconds_total), not "
                                    f"{type(progress).__name__}")

    def update(self, t: Fraction, kept: int) -> None:
        if self.bar is None and self.callback is None:
            return
        done = float(t)
        if self.callback is not None:
            self.callback(done, self.total)
        elif done > self.done + 0.1:
            self.bar.update(done - self.done)
            self.bar.set_postfix_str(f"{kept} frames", refresh=False)
            self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def ingest_video(
    store: Store, path: Any, profile_name: str = "", *, fps: float | None = 2.0,
    start: float | None = None, end: float | None = None, max_frames: int | None = None,
    chunk_seconds: float | None = None, skip_similar: int | None = None,
    codec: str = "jpeg", quality: int | None = None, workers: int | None = None,
    source_asset_id: UUID | str | None = None,
    storage_options: Mapping[str, Any] | None = None, progress: Any = None,
) -> Timeline:
    """Store.ingest_video: see the module docstring for what the timeline holds."""
    from .store import _require_str

    name = source_name(path)
    profile_name = _require_str(profile_name, "profile_name")
    sampler = window_sampler(name, fps, start, end, chunk_seconds)
    limit = None if max_frames is None else _count(max_frames, "max_frames", name, 1)
    skip = None if skip_similar is None else _count(skip_similar, "skip_similar", name, 0, 64)
    stored_quality = 90 if quality is None else quality
    check_codec(codec, stored_quality)
    lossless_quality(codec, quality)
    if source_asset_id is not None and not isinstance(source_asset_id, (str, UUID)):
        raise InvalidInputError(
            f"source_asset_id must be a str or UUID, not {type(source_asset_id).__name__}"
        )
    import_av()
    with VideoSource(path, name, storage_options) as source:
        check_reach(name, sampler, source.duration())
        run = _Ingest(source, sampler, limit, skip, progress)
        run.sampling = {
            "fps": None if fps is None else float(fps), "start": float(sampler.start),
            "end": None if end is None else float(end), "max_frames": limit,
            "chunk_seconds": None if chunk_seconds is None else float(chunk_seconds),
            "skip_similar": skip,
        }
        rate = float(fps) if fps is not None else source.info()["fps"]
        if rate is None:
            raise InvalidInputError(f"ingest_video({name}): the file states no frame rate; "
                                    "pass fps= to sample it")
        return store._store_timeline(
            name, profile_name, run.frames(), rate, source_asset_id, codec=codec,
            quality=stored_quality, workers=workers, describe=run.described,
        )
