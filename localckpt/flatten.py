"""Frame-keyed detection outputs as columns: one parse for evaluate, SQL and label export.

The shapes are :mod:`localckpt.framediff`'s (and parsed by its functions): an output is
frame-keyed (``{"frames": [{"sequence": n, ...}]}`` or ``{"frames": {"<n>": ...}}``) and
a frame's value holds detections under ``"detections"`` (else ``"boxes"``), each
``{"box": [x1, y1, x2, y2], "label": str, "score": float}`` or a bare box. Here a
detection may also carry an integer ``"track_id"`` (MOT); one that is not an integer, or
is beyond 64 bits (no column, SQL or Parquet, holds it), counts as absent.

A frame whose value is an object without either key is a frame with no boxes. Any other
frame value (not an object, or a detections list that is not in the documented form) is
*opaque*: :func:`flatten` with ``strict=True`` refuses it, naming the frame and the item;
with ``strict=False`` it is counted in ``opaque`` and gives no rows (SQL over every output
of a store must not fail on one stage that is not detections).

Derived files are made from an output's text by :mod:`localckpt.arrow_flatten` when it
has the common shape; this module is the reference it is tested against, and the path
for every other output.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import Any

import attrs

from .errors import InvalidInputError
from .framediff import frames_of, parse_detections
from .gcpause import gc_paused

__all__ = ["Flat", "describe_bad_detection", "flatten"]


@attrs.frozen
class Flat:
    """The detections of one output, one entry per box in frame order, then list order.

    Attributes:
        frames: every frame sequence of the output (frames with no boxes included),
            ascending; opaque frames are left out.
        sequence, index (position in its frame's list), label (None when absent), score
            (None when absent), x1, y1, x2, y2, track_id (None when absent; empty when
            flattened with tracks=False): columns.
        opaque: how many frames were opaque (strict=False only).
    """

    frames: tuple[int, ...]
    sequence: Sequence[int]
    index: Sequence[int]
    label: Sequence[str | None]
    score: Sequence[float | None]
    x1: Sequence[float]
    y1: Sequence[float]
    x2: Sequence[float]
    y2: Sequence[float]
    track_id: Sequence[int | None]
    opaque: int = 0

    def __len__(self) -> int:
        return len(self.sequence)


def describe_bad_detection(items: Any) -> str:
    """Why a detections value is not in the documented form (for error messages)."""
    if not isinstance(items, list):
        return f"detections is a {type(items).__name__}, not a list"
    for i, item in enumerate(items):
        box = item.get("box") if isinstance(item, dict) else item
        if isinstance(item, dict):
            label, score = item.get("label"), item.get("score")
            if label is not None and not isinstance(label, str):
                return f"detection {i}: label {label!r:.40} is not a string"
            if score is not None and (type(score) not in (int, float)):
                return f"detection {i}: score {score!r:.40} is not a number"
        if box is None and isinstance(item, dict):  # {"bbox": ...}, {"xyxy": ...}
            return (f"detection {i} has no \"box\" (its keys: {_keys(item)}); a "
                    "detection's box is \"box\": [x1, y1, x2, y2] in pixels")
        if not isinstance(box, list) or len(box) != 4 or any(
                type(v) not in (int, float) for v in box):
            return f"detection {i}: box {box!r:.60} is not [x1, y1, x2, y2] of numbers"
        if box[0] > box[2] or box[1] > box[3]:
            return f"detection {i}: box {box!r:.60} has x1 > x2 or y1 > y2"
    return "not in the documented form"


def _keys(item: dict[Any, Any]) -> str:
    names = sorted(str(k)[:20] for k in item)
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def flatten(output: Any, where: str, *, strict: bool = True, tracks: bool = True) -> Flat:
    """The detections of a frame-keyed output as columns (see the module docstring).

    InvalidInputError (naming where) when the output is not frame-keyed, and, when
    strict, for an opaque frame. tracks False leaves track_id empty (a third faster:
    evaluation has no use for it)."""
    frames = frames_of(output, where)
    seqs = sorted(frames)
    with gc_paused():
        flat = _all_at_once(seqs, [frames[s] for s in seqs], tracks)
        if flat is None:  # an opaque frame, bare boxes or a bad item somewhere
            flat = _frame_by_frame(seqs, frames, where, strict, tracks)
    return flat


_NONE = type(None)
_INT64 = (-(2**63), 2**63 - 1)


def _track(value: Any) -> int | None:
    """A track id as a column holds it: an int of 64 bits, else None (absent)."""
    return value if type(value) is int and _INT64[0] <= value <= _INT64[1] else None


_NUMS = frozenset({int, float})  # not bool: True is no coordinate (as parse_detections)
_LABELS = frozenset({str, _NONE})
_SCORES = frozenset({int, float, _NONE})


def _all_at_once(seqs: list[int], values: list[Any], tracks: bool) -> Flat | None:
    """flatten() of an output whose every frame is well formed with detection objects,
    checked and split into columns a whole column at a time (set(map(type, ...)) and
    slices run in C: 5x faster than checking box after box); None for any other output.
    Same rules as parse_detections: a box is a list of four int or float (not bool)
    with x1 <= x2 and y1 <= y2, a label a str, a score a number, each may be absent."""
    lists = []
    for value in values:
        if type(value) is not dict:
            return None
        items = value["detections"] if "detections" in value else value.get("boxes", [])
        if type(items) is not list:
            return None
        lists.append(items)
    counts = list(map(len, lists))
    items = list(itertools.chain.from_iterable(lists))
    if items and set(map(type, items)) != {dict}:
        return None
    boxes = [item.get("box") for item in items]
    if items and (set(map(type, boxes)) != {list} or set(map(len, boxes)) != {4}):
        return None
    coords = list(itertools.chain.from_iterable(boxes))
    if not set(map(type, coords)) <= _NUMS:
        return None
    x1, y1, x2, y2 = coords[0::4], coords[1::4], coords[2::4], coords[3::4]
    if any(map(operator.gt, x1, x2)) or any(map(operator.gt, y1, y2)):
        return None
    label = [item.get("label") for item in items]
    score = [item.get("score") for item in items]
    if not set(map(type, label)) <= _LABELS or not set(map(type, score)) <= _SCORES:
        return None
    track_ids: list[int | None] = []
    if tracks:
        track_ids = [_track(t) for t in [item.get("track_id") for item in items]]
    sequence = list(itertools.chain.from_iterable(map(itertools.repeat, seqs, counts)))
    index = list(itertools.chain.from_iterable(map(range, counts)))
    return Flat(tuple(seqs), sequence, index, label, score, x1, y1, x2, y2, track_ids, 0)


def _frame_by_frame(seqs: list[int], frames: dict[int, Any], where: str, strict: bool,
                    tracks: bool) -> Flat:
    """flatten() of any output: each frame parsed on its own (parse_detections), so an
    opaque frame is found, named (strict) or counted, and bare boxes are read."""
    seqs_out: list[int] = []
    boxed: list[int] = []  # frames with boxes, and how many
    counts: list[int] = []
    dets: list[Any] = []
    track: list[Any] = []
    opaque = 0
    for seq in seqs:
        value = frames[seq]
        if type(value) is dict and "detections" not in value and "boxes" not in value:
            seqs_out.append(seq)
            continue
        parsed = parse_detections(value)
        if parsed is None:
            if strict:
                items = value.get("detections", value.get("boxes")) if isinstance(
                    value, dict) else value
                why = (describe_bad_detection(items) if isinstance(value, dict)
                       else f"its value is a {type(value).__name__}, not an object")
                raise InvalidInputError(f"{where}: frame {seq}: {why}")
            opaque += 1
            continue
        seqs_out.append(seq)
        found = parsed[1]
        if not found:
            continue
        boxed.append(seq)
        counts.append(len(found))
        dets.extend(found)  # every item, in list order (else parse_detections is None)
        if tracks:
            items = value[parsed[0]]
            try:
                track.extend([item.get("track_id") for item in items])
            except AttributeError:  # bare [x1, y1, x2, y2] boxes among them
                track.extend([item.get("track_id") if type(item) is dict else None
                              for item in items])
    x1, y1, x2, y2, label, score, index = zip(*dets, strict=True) if dets else ((),) * 7
    sequence = list(itertools.chain.from_iterable(
        itertools.repeat(s, n) for s, n in zip(boxed, counts, strict=True)))
    track_ids = [_track(t) for t in track] if tracks else []
    return Flat(tuple(seqs_out), sequence, index, label, score, x1, y1, x2, y2, track_ids,
                opaque)
