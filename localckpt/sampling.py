"""Which decoded frames a timeline keeps: sampling by presentation time (pure logic).

Times are exact fractions of a second measured from the stream's first frame (``pts *
time_base - start``), so variable frame rates and streams whose first PTS is not 0 are
sampled alike. The rule, with ``fps`` frames per second over ``[start, end)``:

- frame i of the timeline is the first decoded frame whose time is at least
  ``start + i / fps``; its sequence number is i;
- when the source has a gap longer than 1 / fps (variable frame rate), one source frame
  is the answer for several instants i, i+1, ...: it is stored once, as the first of
  them, and the sequence numbers skip the others (``sequence / fps`` stays the sampling
  instant, whatever the source did);
- with fps None every decoded frame in the window is kept, numbered 0, 1, 2, ...

Times within ``TOLERANCE`` (1 ms) count as equal: Matroska and WebM round timestamps
to the millisecond, so a 29.97 fps frame stored at 0.033 s answers the instant 0.0334 s.
"""

from __future__ import annotations

import math
from fractions import Fraction

import attrs

__all__ = ["TOLERANCE", "Needless", "Sampler"]

TOLERANCE = Fraction(1, 1000)


@attrs.define
class Sampler:
    """Feed it each decoded frame's time in presentation order; it says which to keep.

    Attributes:
        fps: sampling rate, None for every frame.
        start, end: the window in seconds from the stream's start (end None: to the end).
        chunk_seconds: window length of chunk_id (None: every frame is in chunk 0).
    """

    fps: Fraction | None
    start: Fraction = Fraction(0)
    end: Fraction | None = None
    chunk_seconds: Fraction | None = None
    _next: int = 0  # the next sampling instant's index (or, for fps None, sequence)

    def before_start(self, t: Fraction) -> bool:
        """True for times before the window (frames decoded on the way to start)."""
        return t + TOLERANCE < self.start

    def sequence(self, t: Fraction) -> int | None:
        """The sequence number of the frame at time t, or None when it is not kept.

        Call it for every frame in the window, in presentation order.
        """
        if self.before_start(t):
            return None
        seq = self._next
        if self.fps is None:
            self._next += 1
            return seq
        if t + TOLERANCE < self.start + seq / self.fps:
            return None
        # The next instant this frame does not already answer.
        covered = math.floor((t + TOLERANCE - self.start) * self.fps)
        self._next = max(seq, covered) + 1
        return seq

    def sequence_at(self, t: Fraction) -> int:
        """The largest sequence number a frame at time t can get (a pure reading: the
        sampler's state does not change)."""
        if self.fps is None:
            return 0
        return max(math.floor((t + TOLERANCE - self.start) * self.fps), 0)

    def next_instant(self) -> Fraction | None:
        """The first sampling instant no kept frame answers yet (None with fps None):
        where the frames kept so far stop covering the source."""
        return None if self.fps is None else self.start + self._next / self.fps

    def past_end(self, t: Fraction) -> bool:
        """True once t is at or after the window's end: nothing later can be kept."""
        return self.end is not None and t + TOLERANCE >= self.end

    def chunk_id(self, t: Fraction) -> int:
        """Index of the chunk_seconds-long window of source time that t falls in."""
        if self.chunk_seconds is None:
            return 0
        return math.floor((t + TOLERANCE) / self.chunk_seconds)


@attrs.define
class Needless:
    """Which frames a sampler can never keep, told from packet times before decoding.

    Of the frames in one sampling interval (``bucket``: ``floor((t + TOLERANCE - start)
    * fps)``), the sampler keeps at most the first in presentation order: once it has
    seen a frame of interval b, its next instant is past b's end (kept or not). So a
    frame whose interval already holds an earlier frame is never kept, and neither is a
    frame before start or at or after end. Packets reach the decoder in decode order,
    not presentation order, but that does not matter: an earlier frame of the same
    interval, seen in any order, settles it. The decoder may then skip such a frame
    when no other frame references it (FFmpeg's ``skip_frame = "NONREF"``), which saves
    the whole decode of most B-frames; it still decodes every reference frame.

    Feed it every packet's time, in the order the packets come; with fps None (every
    frame kept) only frames outside the window are needless.
    """

    sampler: Sampler
    _earliest: dict[int, Fraction] = attrs.Factory(dict)  # bucket -> earliest time seen

    _KEEP = 64  # buckets remembered; forgetting one only means decoding more

    def __call__(self, t: Fraction) -> bool:
        s = self.sampler
        if s.before_start(t) or s.past_end(t):
            return True
        if s.fps is None:
            return False
        bucket = math.floor((t + TOLERANCE - s.start) * s.fps)
        earliest = self._earliest.get(bucket)
        if earliest is not None and earliest < t:
            return True
        if earliest is None or t < earliest:
            self._earliest[bucket] = t
            if len(self._earliest) > 2 * self._KEEP:
                for old in sorted(self._earliest)[:self._KEEP]:
                    del self._earliest[old]
        return False
