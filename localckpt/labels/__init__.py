"""Ground truth in and out: COCO, YOLO and MOT label files as frame-keyed stage outputs.

``import_labels`` reads a label file, matches its frames to a timeline's and saves the
boxes as a checkpoint (stage ``"labels"`` by default) in the documented detection form,
``{"frames": [{"sequence": n, "detections": [{"box": [x1, y1, x2, y2], "label": str,
"score": float, "track_id": int}]}]}`` (score and track_id only where the file has them).
``export_labels`` writes any checkpoint's detections back in one of the formats.

How frame numbers are matched (``frames=``):

- ``"sequence"`` (default): a number is a timeline sequence. A number past the
  timeline's last sequence is an error (the file belongs to another video); a number
  inside the range that the timeline lacks (frames dropped by ``skip_similar``) is
  unmatched.
- ``"source"``: a number is a frame of the source video, as labelling tools number a
  whole video (from 0; MOT's 1-based numbers are converted first). It matches the
  timeline frame nearest in time, within half a source frame interval, using the
  timeline's ``source_info["fps"]``; others are unmatched. A frame past the source's
  duration is an error.

Unmatched entries are counted and listed in the result (:class:`LabelImport`), never
dropped silently. Any problem with the file is a :class:`LabelFileError` naming the file
and the line or entry, and nothing is written. Files are read up to
:data:`~localckpt.labels._common.MAX_BYTES`, and hold at most
:data:`~localckpt.labels._common.MAX_BOXES` boxes.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..arguments import boolean, shown
from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..flatten import Flat, flatten
from ..label_formats import FORMATS, FRAME_MODES
from ..render import Summarised, plural
from . import coco, mot, yolo
from ._common import MAX_BYTES, Det, LabelFileError, OutFrame, Parsed, RawBox, check_target

if TYPE_CHECKING:
    from ..store import Store
    from ..types import FrameMeta, Timeline

__all__ = [
    "FORMATS",
    "FRAME_MODES",
    "MAX_BYTES",
    "LabelExport",
    "LabelFileError",
    "LabelImport",
    "Unmatched",
    "export_labels",
    "import_labels",
    "read_labels",
]

_READERS = {"coco": coco.read, "yolo": yolo.read, "mot": mot.read}
_WRITERS = {"coco": coco.write, "yolo": yolo.write, "mot": mot.write}
_LISTED = 20  # unmatched entries a summary names


@attrs.frozen
class Unmatched:
    """A labelled frame of the file that no timeline frame matched.

    Attributes:
        number: its frame number as the file gives it (0-based: MOT's minus one).
        where: the entry (``images[3] (id 4)``, ``000012.txt``, ``line 17``).
        boxes: how many boxes it held.
        reason: why it matched nothing.
    """

    number: int
    where: str
    boxes: int
    reason: str


@attrs.frozen
class LabelImport(Summarised):
    """What ``import_labels`` saved.

    Attributes:
        checkpoint_id: the new checkpoint (its stats repeat the counts below).
        timeline_id, stage, format, path: what was imported where.
        frames: timeline frames labelled (frames labelled empty included).
        boxes: boxes saved.
        unmatched: labelled frames of the file that matched no timeline frame.
        skipped: entries that are not boxes (COCO crowd regions), as (where, why).
    """

    checkpoint_id: str
    timeline_id: str
    stage: str
    format: str
    path: str
    frames: int
    boxes: int
    unmatched: tuple[Unmatched, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def unmatched_boxes(self) -> int:
        return sum(u.boxes for u in self.unmatched)

    def summary(self, checkpoint: str | None = None) -> str:
        """What was saved, in lines; checkpoint: how to name it (the command line gives its
        short id and tag), else its id."""
        lines = [f"imported {self.boxes:,} boxes on {self.frames:,} frames from {self.path} "
                 f"({self.format}) as stage {self.stage!r}: checkpoint "
                 f"{checkpoint or self.checkpoint_id}"]
        if self.unmatched:
            lines.append(f"{len(self.unmatched):,} labelled frames ({self.unmatched_boxes:,} "
                         "boxes) matched no timeline frame:")
            lines += [f"  {u.where}: frame {u.number}, {u.boxes} boxes: {u.reason}"
                      for u in self.unmatched[:_LISTED]]
            if len(self.unmatched) > _LISTED:
                lines.append(f"  ... and {len(self.unmatched) - _LISTED:,} more")
        if self.skipped:
            lines.append(f"{len(self.skipped):,} entries skipped:")
            lines += [f"  {where}: {why}" for where, why in self.skipped[:_LISTED]]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, value_serializer=lambda _i, _a, v: list(v)
                            if isinstance(v, tuple) else v)


@attrs.frozen
class LabelExport(Summarised):
    """What ``export_labels`` wrote: frames and boxes of checkpoint_id's stage at path;
    lost: what of the boxes the format cannot hold (MOT: class names, YOLO: track ids),
    "" when nothing."""

    checkpoint_id: str
    stage: str
    format: str
    path: str
    frames: int
    boxes: int
    lost: str = ""

    def summary(self, checkpoint: str | None = None) -> str:
        """One line; checkpoint: how to name it (default its id)."""
        return (f"exported {self.boxes:,} boxes on {self.frames:,} frames of stage "
                f"{self.stage!r} at {checkpoint or self.checkpoint_id} to {self.path} "
                f"({self.format})" + (f"; {self.lost}" if self.lost else ""))


def _format(value: Any) -> str:
    if value not in FORMATS:
        raise InvalidInputError(f"label format must be one of {', '.join(FORMATS)}, not "
                                f"{shown(value)}", cli=f"--format must be one of "
                                f"{', '.join(FORMATS)}, not {shown(value)}")
    return str(value)


def _mode(value: Any) -> str:
    if value not in FRAME_MODES:
        raise InvalidInputError(f"frames must be 'sequence' or 'source', not {shown(value)}",
                                cli=f"--frames must be sequence or source, not {shown(value)}")
    return str(value)


def _path(value: Any) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise InvalidInputError(f"path must be a file or directory path, not {value!r:.60}")
    return Path(os.fspath(value))


def read_labels(path: str | os.PathLike[str], format: str) -> Parsed:
    """A label file parsed, frames not yet matched to any timeline (LabelFileError)."""
    return _READERS[_format(format)](_path(path))


def _finite(value: Any) -> float | None:
    """A number of source_info as a finite float, else None: source_info is any JSON
    object (a bundle's or another store's too), an integer beyond a float included."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


class _Frames:
    """Matches a file's frame numbers to a timeline's frames (see the module docstring)."""

    def __init__(self, timeline: Timeline, metas: list[FrameMeta], mode: str,
                 store: Store) -> None:
        self.timeline = timeline
        self.store = store  # for the timeline's short id, which the command line shows
        self.mode = mode
        self.by_seq = {m.sequence: m for m in metas}
        self.last = max(self.by_seq, default=-1)
        self.fps = 0.0
        if mode == "source":
            info = timeline.source_info if isinstance(timeline.source_info, Mapping) else {}
            fps = _finite(info.get("fps"))
            if fps is None or fps <= 0:
                raise InvalidInputError(
                    f"timeline {timeline.id} records no source frame rate (source_info fps), "
                    "so source frame numbers cannot be matched by time; import with "
                    "frames='sequence', or ingest the video with ingest_video",
                    cli=f"timeline {self.short} records no source frame rate; use "
                    "--frames sequence")
            self.fps = fps
            self.by_time = sorted(metas, key=lambda m: (m.timestamp, m.sequence))
            self.times = [m.timestamp for m in self.by_time]
            self.duration = _finite(info.get("duration"))

    @property
    def short(self) -> str:
        """The timeline's short id, for a message (computed only when one is said)."""
        return self.store.short_id(self.timeline.id, "timeline")

    def number_of(self, m: FrameMeta) -> int:
        """The file's number for a timeline frame (InvalidInputError for a time no source
        frame number can be: a timeline from a bundle or another store may hold any
        finite time and source frame rate)."""
        if self.mode == "sequence":
            return m.sequence
        number = m.timestamp * self.fps
        if not math.isfinite(number):
            raise InvalidInputError(
                f"frame {m.sequence} of timeline {self.timeline.id} is at {m.timestamp:g} s, "
                f"past any source frame number at {self.fps:g} frames per second; export "
                "with frames='sequence'", cli=f"frame {m.sequence} of timeline "
                f"{self.short} is at {m.timestamp:g} s, past any source frame number "
                f"at {self.fps:g} frames per second; use --frames sequence")
        return round(number)

    def match(self, number: int, path: Path, where: str) -> tuple[FrameMeta | None, str]:
        """(the timeline frame, "") or (None, why unmatched); LabelFileError when the
        number cannot be a frame of this timeline's video at all."""
        if self.mode == "sequence":
            if number > self.last:
                problem = (f"frame {number} is not a frame of timeline {{}}, whose last "
                           f"sequence is {self.last} (another video's file? source video "
                           "frame numbers are matched by time with ")
                raise LabelFileError(
                    path, where, problem.format(self.timeline.id) + "frames='source')",
                    cli_problem=problem.format(self.short) + "--frames source)")
            found = self.by_seq.get(number)
            return (found, "") if found else (None, "the timeline has no frame of that "
                                                    "sequence")
        t = number / self.fps
        half = 0.5 / self.fps
        if self.duration is not None and t > self.duration + half:
            raise LabelFileError(path, where, f"source frame {number} is at {t:.3f} s, past "
                                              f"the end of the video ({self.duration:.3f} s)")
        i = bisect.bisect_left(self.times, t)
        best = min((j for j in (i - 1, i) if 0 <= j < len(self.times)),
                   key=lambda j: abs(self.times[j] - t), default=None)
        if best is not None and abs(self.times[best] - t) <= half + 1e-9:
            return self.by_time[best], ""
        return None, f"no timeline frame within half a source frame of {t:.3f} s"


def _unwritable(box: list[Any], score: Any) -> str:
    """Why a stored detection cannot be written in a label file, or "": every format
    writes its numbers as floats, and the width and height (MOT, COCO), the centre
    (YOLO) and the area (COCO) derived from its corners, so each must be a finite float
    (a stored output may hold any finite JSON number: an integer beyond a float, corners
    whose difference or sum is beyond the largest float)."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
        if score is not None:
            float(score)
    except OverflowError:
        return "numbers are beyond the largest floating-point number"
    derived = (x2 - x1, y2 - y1, x1 + x2, y1 + y2, (x2 - x1) * (y2 - y1))
    if not all(math.isfinite(v) for v in derived):
        return ("width, height, centre or area is beyond the largest floating-point "
                "number")
    return ""


def _det(box: RawBox, meta: FrameMeta) -> Det:
    x1, y1, x2, y2 = box.coords
    if box.normalised:
        # to 1e-6 pixel: what a normalised file can say, and exports read back equal
        x1, x2 = round(x1 * meta.width, 6), round(x2 * meta.width, 6)
        y1, y2 = round(y1 * meta.height, 6), round(y2 * meta.height, 6)
    det: Det = {"box": [x1, y1, x2, y2], "label": box.label}
    if box.score is not None:
        det["score"] = box.score
    if box.track_id is not None:
        det["track_id"] = box.track_id
    return det


def _matched(parsed: Parsed, frames: _Frames, path: Path,
             ) -> tuple[dict[int, list[Det]], list[Unmatched]]:
    out: dict[int, list[Det]] = {}
    distance: dict[int, tuple[float, str]] = {}
    unmatched = []
    for f in parsed.frames:
        meta, why = frames.match(f.number, path, f.where)
        if meta is None:
            unmatched.append(Unmatched(f.number, f.where, len(f.boxes), why))
            continue
        gap = abs(f.number / frames.fps - meta.timestamp) if frames.fps else 0.0
        if meta.sequence in out:  # source mode: two file frames nearest to one timeline frame
            if gap >= distance[meta.sequence][0]:
                unmatched.append(Unmatched(f.number, f.where, len(f.boxes),
                                           f"{distance[meta.sequence][1]} is nearer to "
                                           f"timeline frame {meta.sequence}"))
                continue
            prev = next(p for p in parsed.frames if p.where == distance[meta.sequence][1])
            unmatched.append(Unmatched(prev.number, prev.where, len(prev.boxes),
                                       f"{f.where} is nearer to timeline frame "
                                       f"{meta.sequence}"))
        out[meta.sequence] = [_det(b, meta) for b in f.boxes]
        distance[meta.sequence] = (gap, f.where)
    if parsed.span is not None:  # every frame in the span is labelled, empty or not
        lo, hi = parsed.span
        for m in frames.by_seq.values():
            if m.sequence not in out and lo <= frames.number_of(m) <= hi:
                out[m.sequence] = []
    return out, unmatched


def import_labels(store: Store, timeline_id: str, path: str | os.PathLike[str], format: str,
                  *, stage: str = "labels", parent: str | None = None, tag: str | None = None,
                  frames: str = "sequence", force_tag: bool = False) -> LabelImport:
    """Read a label file and save its boxes as a checkpoint of the timeline (a child of
    parent, by default the root); tag names it (force_tag moves a tag of that name that
    names another checkpoint, as Store.tag's force). See the module docstring. All checks
    run before anything is written; the tag is written right after the checkpoint."""
    from ..maintenance.tags import check_name
    from ..refs import resolve_checkpoint, resolve_timeline

    fmt, mode, where = _format(format), _mode(frames), _path(path)
    if not isinstance(stage, str) or not stage:
        raise InvalidInputError(f"stage must be a non-empty string, not {shown(stage)}",
                                cli=f"--stage must name a stage, not {shown(stage)}")
    timeline = store.get_timeline(resolve_timeline(store, timeline_id))
    parent_id = None if parent is None else resolve_checkpoint(store, parent)
    boolean(force_tag, "force_tag")
    if tag is not None:
        check_name(tag)
        named = store.tag_target(tag)
        if named is not None and not force_tag:
            raise ConflictError(
                f"tag {tag!r} already names checkpoint {named}; choose another name, or pass "
                "force_tag=True to move it to the import",
                cli=f"tag {tag!r} already names checkpoint {store.short_id(named)}; choose "
                    "another --tag, or pass --force-tag to move it to the import")
    matcher = _Frames(timeline, store.frame_index(timeline.id), mode, store)
    parsed = _READERS[fmt](where)
    labelled, unmatched = _matched(parsed, matcher, where)
    if not labelled:
        none = (f"none of its {len(parsed.frames):,} labelled frames is a frame of timeline "
                "{}" + (" (matching by source frame number)" if mode == "source" else ""))
        raise LabelFileError(where, "", none.format(timeline.id),
                             cli_problem=none.format(matcher.short))
    boxes = sum(len(v) for v in labelled.values())
    output = {"format": fmt, "frames": [{"sequence": s, "detections": labelled[s]}
                                        for s in sorted(labelled)]}
    stats = {"label_format": fmt, "label_frames": len(labelled), "label_boxes": boxes,
             "label_unmatched": len(unmatched), "label_skipped": len(parsed.skipped)}
    cid = store.save_stage_output(timeline.id, parent_id, stage, output, stats=stats)
    if tag is not None:
        store.tag(cid, tag, force=force_tag)
    return LabelImport(cid, timeline.id, stage, fmt, os.fspath(where), len(labelled), boxes,
                       tuple(unmatched), parsed.skipped)


def export_labels(store: Store, checkpoint: str, stage: str, path: str | os.PathLike[str],
                  format: str, *, frames: str = "sequence",
                  overwrite: bool = False) -> LabelExport:
    """Write the detections of a checkpoint's stage as a label file (a directory for
    YOLO), numbering frames by sequence or by source frame (``frames=``). Written
    atomically into an existing directory (a missing one is a LabelFileError, never
    created: it is most likely mistyped). An existing file is a LabelFileError unless
    overwrite (then it is replaced); an existing YOLO directory must be empty, whatever
    overwrite. Checked before anything is read; nothing is written on refusal (also of a
    box no label file can hold: see ``_unwritable``)."""
    from ..refs import resolve_checkpoint

    fmt, mode, where = _format(format), _mode(frames), _path(path)
    if not isinstance(overwrite, bool):
        raise InvalidInputError(f"overwrite must be True or False, not {shown(overwrite)}")
    if fmt == "yolo":
        yolo.check_target(where)
    else:
        check_target(where, overwrite)
    c = store.get_checkpoint(resolve_checkpoint(store, checkpoint))
    output = store.load_stage_output(c.id, stage)
    if output is None:
        def has(cid: str) -> str:  # the stage as given: format() would read its braces
            return (f"checkpoint {cid} has no stage {stage!r} (it has: "
                    f"{', '.join(sorted(c.stage_hashes)) or 'none'})")

        raise NotFoundError(has(c.id), cli=f"{has(store.short_id(c.id))}; name the stage to "
                            "write with --stage")
    try:
        flat = flatten(output, f"stage {stage!r} at {c.id}")
    except InvalidInputError as exc:  # the command line names the checkpoint by short id
        if exc.cli is None:
            exc.cli = str(exc).replace(c.id, store.short_id(c.id))
        raise
    timeline = store.get_timeline(c.timeline_id)
    matcher = _Frames(timeline, store.frame_index(timeline.id), mode, store)
    dets: dict[int, list[Det]] = {s: [] for s in flat.frames}
    for i, seq in enumerate(flat.sequence):
        box = [flat.x1[i], flat.y1[i], flat.x2[i], flat.y2[i]]
        problem = _unwritable(box, flat.score[i])
        if problem:
            said = f"frame {seq} has a detection whose {problem} (box {box!r:.120})"
            raise InvalidInputError(
                f"stage {stage!r} at {c.id} cannot be written as a label file: {said}",
                cli=f"stage {stage!r} at {store.short_id(c.id)} cannot be written as a "
                    f"label file: {said}")
        det: Det = {"box": box, "label": flat.label[i]}
        if flat.score[i] is not None:
            det["score"] = flat.score[i]
        if flat.track_id[i] is not None:
            det["track_id"] = flat.track_id[i]
        dets[seq].append(det)
    out = []
    for seq in flat.frames:
        meta = matcher.by_seq.get(seq)
        if meta is None:
            lacks = (f"has frame {seq}, which timeline {{}} does not have: its size is "
                     "unknown")  # the stage, as given, is kept out of format()
            raise InvalidInputError(
                f"stage {stage!r} at {c.id} " + lacks.format(timeline.id),
                cli=f"stage {stage!r} at {store.short_id(c.id)} " + lacks.format(matcher.short))
        out.append(OutFrame(matcher.number_of(meta), meta.width, meta.height,
                            tuple(dets[seq])))
    _WRITERS[fmt](where, out, overwrite=overwrite)
    return LabelExport(c.id, stage, fmt, os.fspath(where), len(out), len(flat),
                       _lost(fmt, flat))


def _lost(fmt: str, flat: Flat) -> str:
    """What of flat's boxes a file of fmt cannot hold, said for the person who will read
    it back ("" when nothing)."""
    if fmt == "mot":
        names = sorted({label for label in flat.label if label not in (None, mot.LABEL)})
        if names:
            shown_names = ", ".join(map(repr, names[:5])) + (", ..." if len(names) > 5 else "")
            return (f"MOT files hold no class names: the labels {shown_names} are not in it "
                    f"(it reads back as {mot.LABEL!r})")
    elif fmt == "yolo":
        tracked = sum(1 for t in flat.track_id if t is not None)
        if tracked:
            return (f"YOLO files hold no track ids: those of {plural(tracked, 'box', 'boxes')} "
                    "are not in them")
    return ""
