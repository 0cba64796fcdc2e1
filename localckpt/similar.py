"""Near-duplicate frames by perceptual hash, from the frame index alone (no pixels).

Hashes are hex strings (``frames.perceptual_hash`` writes 16 digits: a 64-bit dHash);
the distance between two is the number of differing bits (Hamming). Only hashes of the
query's length are compared: a frame given with a hash of another kind (say a 256-bit
hash a pipeline computed itself) is never "near" a 64-bit one.
"""

from __future__ import annotations

import numbers
import string
from collections.abc import Sequence

from .errors import InvalidInputError, NotFoundError
from .types import FrameMeta

__all__ = ["hamming", "parse_hash", "similar_frames"]

_HEX = frozenset(string.hexdigits)


def parse_hash(text: object) -> int | None:
    """The hash as an int, or None when text is not a non-empty string of hex digits."""
    if not isinstance(text, str) or not text or not _HEX.issuperset(text):
        return None
    return int(text, 16)


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes of one length (InvalidInputError otherwise)."""
    x, y = parse_hash(a), parse_hash(b)
    if x is None or y is None or len(a) != len(b):
        raise InvalidInputError(f"cannot compare perceptual hashes {a!r} and {b!r}: they must "
                                "be hex strings of the same length")
    return (x ^ y).bit_count()


def _check_count(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InvalidInputError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _query(index: Sequence[FrameMeta], query: int | str, timeline_id: str) -> str:
    if isinstance(query, str):
        if parse_hash(query) is None:
            raise InvalidInputError(
                f"{query!r} is not a perceptual hash (hex digits, e.g. 16 for localckpt's "
                "64-bit dHash); pass a frame's sequence number as an int"
            )
        return query.lower()
    sequence = _check_count(query, "sequence", -(2**63))
    for meta in index:
        if meta.sequence == sequence:
            if parse_hash(meta.perceptual_hash) is None:
                raise InvalidInputError(
                    f"frame {sequence} of timeline {timeline_id} has perceptual hash "
                    f"{meta.perceptual_hash!r}, which is not hex digits; nothing compares to it"
                )
            return meta.perceptual_hash.lower()
    sequences = [m.sequence for m in index]  # what there is, as `run show --frame` says it
    raise NotFoundError(f"timeline {timeline_id} has no frame with sequence {sequence} (it has "
                        f"{len(sequences):,}, sequences {min(sequences, default=0)} to "
                        f"{max(sequences, default=-1)})")


def similar_frames(
    index: Sequence[FrameMeta], query: int | str, max_distance: int = 8,
    limit: int | None = None, timeline_id: str = "",
) -> list[tuple[FrameMeta, int]]:
    """(frame, distance) for every frame within max_distance bits of query, nearest first
    (ties by sequence); at most limit of them. query: a sequence number or a hex hash."""
    max_distance = _check_count(max_distance, "max_distance", 0)
    if limit is not None:
        limit = _check_count(limit, "limit", 1)
    wanted = _query(index, query, timeline_id)
    q, width = int(wanted, 16), len(wanted)
    widths = {len(m.perceptual_hash) for m in index if parse_hash(m.perceptual_hash) is not None}
    if widths and width not in widths:  # it would match nothing: a digit dropped or added?
        raise InvalidInputError(
            f"perceptual hash {wanted!r} has {width} hex digits; the frames of timeline "
            f"{timeline_id} have hashes of {' or '.join(map(str, sorted(widths)))}")
    found = []
    for meta in index:
        h = meta.perceptual_hash
        if len(h) != width or (value := parse_hash(h)) is None:
            continue
        distance = (value ^ q).bit_count()
        if distance <= max_distance:
            found.append((distance, meta.sequence, meta))
    found.sort(key=lambda item: (item[0], item[1]))
    return [(meta, distance) for distance, _, meta in found[:limit]]
