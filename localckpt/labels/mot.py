"""MOTChallenge text files (``det.txt``, ``gt.txt`` and what trackers write).

Reading: one box per line, ``frame,id,x,y,w,h,conf[,...]`` with a 1-based frame number
(frame 1 is number 0), the track id in ``id`` (``-1``: no track) and ``conf`` kept as the
box's score (``-1``: none). Columns after ``conf`` (3-D position, or gt's class and
visibility) are not read, and every box gets the label ``person`` (MOT files hold no
class names). Every frame from the first to the last one the file names is labelled;
a frame without a line is labelled empty.

Writing: ``frame,id,x,y,w,h,conf,-1,-1,-1`` lines sorted by frame (the detection format),
``id`` from the box's ``track_id`` (-1 without), ``conf`` from its score (-1 without).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ._common import (
    MAX_BOXES,
    LabelFileError,
    OutFrame,
    Parsed,
    RawBox,
    RawFrame,
    atomic_write,
    check_track,
    number_text,
    parse_number,
    read_bounded,
    text_of,
    too_many_boxes,
    xywh_box,
)

__all__ = ["LABEL", "read", "write"]

#: The label every box of a MOT file gets.
LABEL = "person"
_MAX_FRAME = 10**9


def _float(path: Path, where: str, text: str) -> float:
    value = parse_number(text)
    if value is None:
        raise LabelFileError(path, where, f"{text.strip()!r:.40} is not a number")
    return value


def _integer(path: Path, where: str, text: str, what: str) -> int:
    value = _float(path, where, text)
    if not math.isfinite(value) or value != int(value):
        raise LabelFileError(path, where, f"{what} {text.strip()!r:.40} is not a whole number")
    return int(value)


def read(path: Path) -> Parsed:
    """The labelled frames of a MOT file (see the module docstring)."""
    text = text_of(path, read_bounded(path))
    by_frame: dict[int, list[RawBox]] = {}
    first_line: dict[int, int] = {}
    lines = text.splitlines()
    if len(lines) > MAX_BOXES:  # counted before any is parsed: a box a line
        boxes = sum(1 for line in lines if line.strip())
        if boxes > MAX_BOXES:
            raise too_many_boxes(path, boxes)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"line {n}"
        fields = line.split(",")
        if len(fields) < 7:
            raise LabelFileError(path, where, f"has {len(fields)} comma-separated fields; a MOT "
                                              "line is frame,id,x,y,w,h,conf[,...]")
        frame = _integer(path, where, fields[0], "frame")
        if not 1 <= frame <= _MAX_FRAME:
            raise LabelFileError(path, where, f"frame {frame} is not a frame number (MOT "
                                              "numbers frames from 1)")
        track = check_track(path, where, _integer(path, where, fields[1], "id"), fields[1])
        box = xywh_box(path, where, [_float(path, where, f) for f in fields[2:6]])
        conf = _float(path, where, fields[6])
        if conf != conf or conf in (float("inf"), float("-inf")):
            raise LabelFileError(path, where, "conf is not a finite number")
        by_frame.setdefault(frame - 1, []).append(
            RawBox(box, LABEL, None if conf == -1 else conf, None if track == -1 else track))
        first_line.setdefault(frame - 1, n)
    return Parsed(tuple(RawFrame(k, f"line {first_line[k]}", tuple(v))
                        for k, v in by_frame.items()),
                  span=(min(by_frame), max(by_frame)) if by_frame else None)


def write(path: Path, frames: Sequence[OutFrame], *, overwrite: bool = False) -> None:
    """A MOT file of these frames (see the module docstring), written atomically;
    an existing file is replaced only if overwrite."""
    lines = []
    for f in sorted(frames, key=lambda f: f.number):
        for d in f.dets:
            x1, y1, x2, y2 = d["box"]
            track = d.get("track_id")
            score = d.get("score")
            lines.append(",".join([
                str(f.number + 1), str(-1 if track is None else track),
                *(number_text(v) for v in (x1, y1, x2 - x1, y2 - y1)),
                "-1" if score is None else number_text(score), "-1", "-1", "-1"]))
    atomic_write(path, "".join(f"{x}\n" for x in lines).encode(), overwrite=overwrite)
