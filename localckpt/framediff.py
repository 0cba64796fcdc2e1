"""Per-frame diff of two frame-keyed stage outputs (pure: no store, no I/O).

A stage output is *frame-keyed* when its top level has ``"frames"`` in one of two forms:

- a list of objects, each with an integer ``"sequence"`` (the frame's value is the object);
- an object mapping the sequence, as a decimal string, to the frame's value.

A frame's value *holds detections* when it is an object whose ``"detections"`` (else
``"boxes"``) is a list in which every item is ``{"box": [x1, y1, x2, y2], "label": str,
"score": float}`` (label and score optional; other keys are not compared) or a bare
``[x1, y1, x2, y2]``, with ``x1 <= x2`` and ``y1 <= y2``. Any other value is compared as
opaque JSON (Python equality of the decoded values, so ``1 == 1.0``).

Detections are matched one to one, greedily by IoU (highest first; ties by position in
the lists): first boxes of the same label with IoU >= ``match_iou``, then, among the boxes
left, boxes of other labels with IoU >= ``match_iou`` (*relabelled*). A matched pair is
*moved* when its IoU is below :data:`MOVED_IOU` and *rescored* when its scores differ by
more than :data:`RESCORE` (beyond float rounding), or only one side has a score; one pair
can be both. Unmatched boxes of b are *added*, of a *removed*. A frame present on one
side only is changed: all its boxes are removed (a only) or added (b only).

The comparison is one pass over the union of the two frame sets; frames whose values are
equal are skipped without parsing their boxes.

Frames are paired by sequence number, which only means "the same instant" within one
timeline. Outputs of two timelines (one video sampled at 2 fps and at 5 fps) are
compared by time instead: :func:`align_by_time` pairs each frame with the frame of the
other timeline nearest in time, one to one, within half the coarser frame interval, and
``diff_outputs(..., pairs=...)`` compares the pairs; frames left without a partner are
listed (``unpaired_a``, ``unpaired_b``), not compared, and a list-form frame's own
``"sequence"`` is not part of what is compared. ``Store.frame_diff`` refuses
checkpoints of different timelines unless asked to align them (``align="time"``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import attrs

from .errors import InvalidInputError
from .gcpause import gc_paused
from .tree import MISSING

__all__ = [
    "ALIGNMENTS",
    "MOVED_IOU",
    "RESCORE",
    "Box",
    "BoxMatch",
    "FrameChange",
    "FrameDiff",
    "FrameDiffSummary",
    "align_by_time",
    "diff_outputs",
    "frame_interval",
    "frames_of",
    "iou",
    "parse_detections",
]

#: A matched pair whose IoU is below this has moved.
MOVED_IOU = 0.95
#: A matched pair whose scores differ by more than this was rescored.
RESCORE = 0.05
#: How frames of a and b are paired: by sequence number (one timeline), or by time.
ALIGNMENTS = ("sequence", "time")

EXPECTED = (
    'a frame-keyed output is {"frames": [{"sequence": <int>, ...}, ...]} or '
    '{"frames": {"<sequence>": <value>, ...}}'
)

# A parsed detection: (x1, y1, x2, y2, label, score, position), as Box's fields. Plain tuples
# in the hot loop: only reported boxes become Box values.
_Det = tuple[float, float, float, float, Any, Any, int]


class Box(NamedTuple):
    """One detection: pixel corners, optional label and score, position in its list.

    A named tuple rather than an attrs class: a diff of 10,000 frames builds ~100,000 of
    them, and a tuple is built several times faster.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    label: str | None = None
    score: float | None = None
    position: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"box": [self.x1, self.y1, self.x2, self.y2], "label": self.label,
                "score": self.score, "position": self.position}


class BoxMatch(NamedTuple):
    """A box of a matched with a box of b, and their IoU."""

    a: Box
    b: Box
    iou: float

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a.to_dict(), "b": self.b.to_dict(), "iou": self.iou}


@attrs.frozen
class FrameChange:
    """How one frame differs from a to b.

    Attributes:
        sequence: the frame.
        a, b: the frame's value on each side; :data:`localckpt.tree.MISSING` where absent.
        kind: "detections" when the present sides hold detections (the lists below say
            what changed), else "value" (compare ``a`` and ``b`` yourself).
        added, removed: boxes of b (a) that nothing on the other side matched.
        moved, relabelled, rescored: matched pairs (see the module docstring).
        fields: other top-level keys of the frame's value that differ (detections kind).
        b_sequence: the frame of b compared with it, when frames were aligned by time
            (None: the same sequence, or no frame of b was near enough).
    """

    sequence: int
    a: Any
    b: Any
    kind: str
    added: tuple[Box, ...] = ()
    removed: tuple[Box, ...] = ()
    moved: tuple[BoxMatch, ...] = ()
    relabelled: tuple[BoxMatch, ...] = ()
    rescored: tuple[BoxMatch, ...] = ()
    fields: tuple[str, ...] = ()
    b_sequence: int | None = None

    @property
    def only_a(self) -> bool:
        return self.b is MISSING

    @property
    def only_b(self) -> bool:
        return self.a is MISSING

    def describe(self) -> str:
        """One line such as ``+2 -1 ~1 moved``."""
        parts = []
        if self.only_a:
            parts.append("only in A")
        elif self.only_b:
            parts.append("only in B")
        if self.added:
            parts.append(f"+{len(self.added)}")
        if self.removed:
            parts.append(f"-{len(self.removed)}")
        for name in ("moved", "relabelled", "rescored"):
            if n := len(getattr(self, name)):
                parts.append(f"~{n} {name}")
        if self.fields:
            parts.append("changed " + ", ".join(self.fields))
        if self.kind == "value" and not (self.only_a or self.only_b):
            parts.append("value changed")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (absent sides are null, with only_a / only_b saying so)."""
        return {
            "sequence": self.sequence, "kind": self.kind,
            "only_a": self.only_a, "only_b": self.only_b,
            "a": None if self.a is MISSING else self.a,
            "b": None if self.b is MISSING else self.b,
            "added": [x.to_dict() for x in self.added],
            "removed": [x.to_dict() for x in self.removed],
            "moved": [x.to_dict() for x in self.moved],
            "relabelled": [x.to_dict() for x in self.relabelled],
            "rescored": [x.to_dict() for x in self.rescored],
            "fields": list(self.fields),
            "b_sequence": self.b_sequence,
            "describe": self.describe(),
        }


@attrs.frozen
class FrameDiffSummary:
    """Totals of a FrameDiff: frame counts, and box counts summed over changed frames.

    frames_a, frames_b count each output's frames; unpaired_a, unpaired_b those left out
    of a comparison aligned by time (no frame of the other timeline near enough)."""

    frames_a: int = 0
    frames_b: int = 0
    changed: int = 0
    only_a: int = 0
    only_b: int = 0
    values_changed: int = 0
    added: int = 0
    removed: int = 0
    moved: int = 0
    relabelled: int = 0
    rescored: int = 0
    unpaired_a: int = 0
    unpaired_b: int = 0

    def describe(self) -> str:
        from .render import plural

        compared = max(self.frames_a - self.unpaired_a, self.frames_b - self.unpaired_b)
        return (
            f"{self.changed} of {plural(compared, 'frame')} changed "
            f"({self.only_a} only in A, {self.only_b} only in B, {self.values_changed} "
            f"values changed): +{self.added} added, -{self.removed} removed, "
            f"~{self.moved} moved, ~{self.relabelled} relabelled, ~{self.rescored} rescored"
        )


@attrs.frozen
class FrameDiff:
    """Frame-by-frame differences of one stage from checkpoint a to checkpoint b.

    Attributes:
        a, b, stage: what was compared; match_iou: the matching threshold used.
        stage_b: b's stage where it is another than a's (a try's detections against
            an import's labels), else None.
        moved_iou: the IoU under which a matched pair has moved.
        changed: every sequence whose frame differs (one-sided frames included), ascending.
        only_a, only_b: sequences present on one side only, ascending.
        frames: sequence -> FrameChange, for exactly the changed sequences.
        summary: totals (FrameDiffSummary).
        align: "sequence" (frame n of a against frame n of b) or "time" (frames of two
            timelines paired by timestamp: sequences are a's, ``FrameChange.b_sequence``
            names b's frame).
        tolerance: with align "time", the largest time difference (seconds) of a pair.
        pairs: with align "time", every pair of frames compared, a's sequence -> b's.
        unpaired_a, unpaired_b: with align "time", frames of each output that had no
            frame of the other timeline near enough, so were not compared.
    A FrameDiff with no changed frame is falsy.
    """

    a: str
    b: str
    stage: str
    match_iou: float
    changed: tuple[int, ...]
    only_a: tuple[int, ...]
    only_b: tuple[int, ...]
    frames: Mapping[int, FrameChange]
    summary: FrameDiffSummary
    align: str = "sequence"
    tolerance: float | None = None
    pairs: Mapping[int, int] = attrs.field(factory=dict)
    unpaired_a: tuple[int, ...] = ()
    unpaired_b: tuple[int, ...] = ()
    stage_b: str | None = None
    moved_iou: float = MOVED_IOU

    def __bool__(self) -> bool:
        return bool(self.changed)

    def render(self, shorts: Mapping[str, str] | None = None) -> str:
        """One line per changed frame, then the totals; shorts: id -> what to show for
        it (short ids)."""
        name = (shorts or {}).get
        stages = f"{self.stage} -> {self.stage_b}" if self.stage_b else self.stage
        moved = ("" if self.moved_iou == MOVED_IOU
                 else f", moved below IoU {self.moved_iou:g}")
        lines = [f"frame diff {name(self.a, self.a)} -> {name(self.b, self.b)}, stage "
                 f"{stages} (matched at IoU >= {self.match_iou:g}{moved})"]
        if self.align == "time":
            lines.append(self.alignment())
        width = len(str(self.changed[-1])) if self.changed else 1
        for seq in self.changed:
            change = self.frames[seq]
            other = "" if change.b_sequence in (None, seq) else f" (B {change.b_sequence})"
            lines.append(f"  frame {seq:>{width}}{other}  {change.describe()}")
        lines.append(self.summary.describe())
        return "\n".join(lines)

    def alignment(self) -> str:
        """One line saying how frames were paired (for align "time")."""
        from .render import plural

        if self.align != "time":
            return "frames paired by sequence number"
        return (f"aligned by time: {plural(len(self.pairs), 'frame pair')} within "
                f"{self.tolerance or 0:.3g} s; {self.summary.unpaired_a} of A's and "
                f"{self.summary.unpaired_b} of B's output frames had no frame near enough "
                "and were not compared")

    def __str__(self) -> str:
        return self.render()

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "stage": self.stage, "stage_b": self.stage_b,
            "match_iou": self.match_iou, "moved_iou": self.moved_iou,
            "changed": list(self.changed), "only_a": list(self.only_a),
            "only_b": list(self.only_b), "summary": attrs.asdict(self.summary),
            "frames": {str(s): self.frames[s].to_dict() for s in self.changed},
            "align": self.align, "tolerance": self.tolerance,
            "pairs": {str(k): v for k, v in sorted(self.pairs.items())},
            "unpaired_a": list(self.unpaired_a), "unpaired_b": list(self.unpaired_b),
        }


# -- parsing ----------------------------------------------------------------------------

#: Frame sequences are 64-bit in frame indexes: a larger one names no frame.
_MAX_SEQUENCE = 2**63 - 1
_SEQUENCE_DIGITS = 19


def frames_of(output: Any, where: str = "the output") -> dict[int, Any]:
    """sequence -> frame value of a frame-keyed output; InvalidInputError otherwise."""
    frames = output.get("frames", MISSING) if isinstance(output, dict) else MISSING
    if isinstance(frames, list):
        out: dict[int, Any] = {}
        for i, item in enumerate(frames):
            seq = item.get("sequence") if isinstance(item, dict) else None
            if type(seq) is not int or not 0 <= seq <= _MAX_SEQUENCE:
                raise InvalidInputError(
                    f"{where}: frames[{i}] has no non-negative integer \"sequence\" "
                    f"({_brief(item)}); {EXPECTED}"
                )
            if seq in out:
                raise InvalidInputError(f"{where}: sequence {seq} appears twice in frames; "
                                        "give each frame once")
            out[seq] = item
        return out
    if isinstance(frames, dict):
        out = {}
        for key, value in frames.items():
            if not (key.isascii() and key.isdigit()) or len(key) > _SEQUENCE_DIGITS:
                raise InvalidInputError(f"{where}: frames key {_brief(key)} is not a decimal "
                                        f"sequence number; {EXPECTED}")
            seq = int(key)
            if seq in out:
                raise InvalidInputError(f"{where}: frames keys {key!r} and another both "
                                        f"mean sequence {seq}; give each frame once")
            out[seq] = value
        return out
    if frames is MISSING:
        got = (f"top-level keys {sorted(output)[:8]}" if isinstance(output, dict)
               else f"a {type(output).__name__}")
        raise InvalidInputError(f"{where} is not frame-keyed (it has {got}); {EXPECTED}")
    raise InvalidInputError(f"{where}: \"frames\" is a {type(frames).__name__}; {EXPECTED}")


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_NUMS = frozenset({int, float})  # not bool: True is no coordinate


def parse_detections(value: Any) -> tuple[str, list[_Det]] | None:
    """(key, detections) when the frame value holds detections, else None (opaque)."""
    if type(value) is not dict:
        return None
    key = "detections" if "detections" in value else "boxes"
    items = value.get(key)
    if type(items) is not list:
        return None
    nums = _NUMS
    dets: list[_Det] = []
    for i, item in enumerate(items):
        if type(item) is dict:
            box = item.get("box")
            label = item.get("label")
            score = item.get("score")
            if (label is not None and type(label) is not str) or (
                    score is not None and type(score) not in nums):
                return None
        else:
            box, label, score = item, None, None
        if type(box) is not list or len(box) != 4:
            return None
        x1, y1, x2, y2 = box
        if type(x1) not in nums or type(y1) not in nums or type(x2) not in nums \
                or type(y2) not in nums or x1 > x2 or y1 > y2:
            return None
        dets.append((x1, y1, x2, y2, label, score, i))
    return key, dets


# -- matching ---------------------------------------------------------------------------


def iou(p: tuple[float, ...] | Box, q: tuple[float, ...] | Box) -> float:
    """Intersection over union of two boxes; two identical empty boxes have IoU 1."""
    if isinstance(p, Box):
        p = (p.x1, p.y1, p.x2, p.y2)
    if isinstance(q, Box):
        q = (q.x1, q.y1, q.x2, q.y2)
    return _iou(p, q)


_box = Box._make


def _iou(p: Any, q: Any) -> float:
    # min/max written out: this runs ~25 times per frame pair
    w = (p[2] if p[2] < q[2] else q[2]) - (p[0] if p[0] > q[0] else q[0])
    h = (p[3] if p[3] < q[3] else q[3]) - (p[1] if p[1] > q[1] else q[1])
    inter = w * h if w > 0 and h > 0 else 0
    union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
    if union > 0:
        return inter / union
    return 1.0 if p[:4] == q[:4] else 0.0


def _greedy(da: list[_Det], db: list[_Det], free_a: list[bool], free_b: list[bool],
            same_label: bool, threshold: float) -> list[tuple[int, int, float]]:
    pairs = []
    for i, p in enumerate(da):
        if not free_a[i]:
            continue
        for j, q in enumerate(db):
            if free_b[j] and (p[4] == q[4]) is same_label:
                v = _iou(p, q)
                if v >= threshold:
                    pairs.append((-v, i, j))
    pairs.sort()
    taken = []
    for v, i, j in pairs:
        if free_a[i] and free_b[j]:
            free_a[i] = free_b[j] = False
            taken.append((i, j, -v))
    return taken


def _rescored(sa: Any, sb: Any) -> bool:
    """Both scored, and by more than RESCORE apart. A side without scores (ground truth)
    rescored nothing: against labels, every matched box was "rescored"."""
    if sa is None or sb is None:
        return False
    return bool(abs(sa - sb) > RESCORE + 1e-9)  # 0.55 vs 0.5 is 0.050000000000000044


def _compare_detections(seq: int, va: Any, vb: Any, key_a: str, da: list[_Det],
                        key_b: str, db: list[_Det], threshold: float,
                        moved_iou: float = MOVED_IOU) -> FrameChange | None:
    free_a, free_b = [True] * len(da), [True] * len(db)
    same = _greedy(da, db, free_a, free_b, True, threshold)
    cross = _greedy(da, db, free_a, free_b, False, threshold) if any(free_a) and any(
        free_b) else []
    moved, relabelled, rescored = [], [], []
    for pairs, is_cross in ((same, False), (cross, True)):
        for i, j, v in pairs:
            p, q = da[i], db[j]
            bad_iou, bad_score = v < moved_iou, _rescored(p[5], q[5])
            if not (is_cross or bad_iou or bad_score):
                continue
            m = BoxMatch(_box(p), _box(q), v)
            if is_cross:
                relabelled.append(m)
            if bad_iou:
                moved.append(m)
            if bad_score:
                rescored.append(m)
    removed = tuple(_box(d) for d, free in zip(da, free_a, strict=True) if free)
    added = tuple(_box(d) for d, free in zip(db, free_b, strict=True) if free)
    fields = _other_fields(va, key_a, vb, key_b) if va is not MISSING and vb is not MISSING \
        else ()
    if not (added or removed or moved or relabelled or rescored or fields) \
            and va is not MISSING and vb is not MISSING:
        return None
    return FrameChange(seq, va, vb, "detections", added, removed, tuple(moved),
                       tuple(relabelled), tuple(rescored), fields)


def _other_fields(va: dict[str, Any], key_a: str, vb: dict[str, Any], key_b: str,
                  ) -> tuple[str, ...]:
    rest_a = {k: v for k, v in va.items() if k != key_a and k != "sequence"}
    rest_b = {k: v for k, v in vb.items() if k != key_b and k != "sequence"}
    if rest_a == rest_b:
        return ()
    return tuple(sorted(k for k in rest_a.keys() | rest_b.keys()
                        if rest_a.get(k, MISSING) != rest_b.get(k, MISSING)))


def _unnumbered(value: Any) -> Any:
    """A list-form frame's value without its "sequence" (which names the frame, and
    differs between the paired frames of two timelines)."""
    if type(value) is dict and "sequence" in value:
        return {k: v for k, v in value.items() if k != "sequence"}
    return value


def _clamp(v: Any) -> Any:
    if type(v) is int and not -1e308 < v < 1e308:
        return 1e308 if v > 0 else -1e308
    return v


def _finite(dets: list[_Det]) -> list[_Det]:
    return [(*(_clamp(v) for v in d[:4]), d[4], _clamp(d[5]), d[6]) for d in dets]


def _compare(seq: int, va: Any, vb: Any, threshold: float, aligned: bool = False,
             moved_iou: float = MOVED_IOU) -> FrameChange | None:
    pa = None if va is MISSING else parse_detections(va)
    pb = None if vb is MISSING else parse_detections(vb)
    if (pa is not None or va is MISSING) and (pb is not None or vb is MISSING):
        ka, da = pa if pa is not None else ("", [])
        kb, db = pb if pb is not None else ("", [])
        try:
            return _compare_detections(seq, va, vb, ka, da, kb, db, threshold, moved_iou)
        except OverflowError:  # an integer past float range: compare at +-1e308 instead
            return _compare_detections(seq, va, vb, ka, _finite(da), kb, _finite(db),
                                       threshold, moved_iou)
    if va is not MISSING and vb is not MISSING and (
            va == vb or (aligned and _unnumbered(va) == _unnumbered(vb))):
        return None
    return FrameChange(seq, va, vb, "value")


def diff_outputs(out_a: Any, out_b: Any, *, match_iou: float = 0.5, a: str = "A",
                 b: str = "B", stage: str = "", pairs: Mapping[int, int] | None = None,
                 tolerance: float | None = None, stage_b: str | None = None,
                 moved_iou: float = MOVED_IOU) -> FrameDiff:
    """Compare two frame-keyed outputs frame by frame (see the module docstring).
    stage_b: b's stage, where it is another than a's. moved_iou: a matched pair whose IoU
    is below it has moved (match_iou or less: none has; against ground truth, only the
    boxes missed, false or relabelled are then changes).

    pairs: frames aligned by time (:func:`align_by_time`, a's sequence -> b's): frame
    ``s`` of a is compared with frame ``pairs[s]`` of b, and frames outside the pairs
    are listed as unpaired. None pairs equal sequence numbers.
    """
    if type(match_iou) not in _NUMS or not 0 < match_iou <= 1:
        raise InvalidInputError(f"match_iou must be a number in (0, 1], not {match_iou!r}")
    if type(moved_iou) not in _NUMS or not 0 < moved_iou <= 1:
        raise InvalidInputError(f"moved_iou must be a number in (0, 1], not {moved_iou!r}")
    fa = frames_of(out_a, f"stage {stage!r} at {a}" if stage else "output a")
    fb = frames_of(out_b, f"stage {stage_b or stage!r} at {b}" if stage else "output b")
    frames_a, frames_b = len(fa), len(fb)
    unpaired_a: tuple[int, ...] = ()
    unpaired_b: tuple[int, ...] = ()
    if pairs is not None:
        back = {sb: sa for sa, sb in pairs.items()}
        unpaired_a = tuple(sorted(s for s in fa if s not in pairs))
        unpaired_b = tuple(sorted(s for s in fb if s not in back))
        fa = {s: v for s, v in fa.items() if s in pairs}
        fb = {back[s]: v for s, v in fb.items() if s in back}
    aligned = pairs is not None
    changes: dict[int, FrameChange] = {}
    # The loop allocates ~10 small acyclic objects per box; each generation-2 collection
    # they trigger would walk both outputs (millions of objects), nearly doubling the cost.
    with gc_paused():
        for seq in sorted(fa.keys() | fb.keys()):
            va, vb = fa.get(seq, MISSING), fb.get(seq, MISSING)
            if va is not MISSING and vb is not MISSING and va == vb:
                continue  # equal values: no box can differ (identity matching, IoU 1)
            change = _compare(seq, va, vb, match_iou, aligned, moved_iou)
            if change is not None:
                changes[seq] = change
    if pairs is not None:
        changes = {s: attrs.evolve(c, b_sequence=pairs[s]) for s, c in changes.items()}
    summary = attrs.evolve(_summarise(frames_a, frames_b, changes.values()),
                           unpaired_a=len(unpaired_a), unpaired_b=len(unpaired_b))
    return FrameDiff(
        a=a, b=b, stage=stage, match_iou=float(match_iou), changed=tuple(changes),
        only_a=tuple(s for s in changes if changes[s].only_a),
        only_b=tuple(s for s in changes if changes[s].only_b),
        frames=changes, summary=summary,
        align="sequence" if pairs is None else "time", tolerance=tolerance,
        pairs=dict(pairs) if pairs is not None else {},
        unpaired_a=unpaired_a, unpaired_b=unpaired_b,
        stage_b=stage_b if stage_b and stage_b != stage else None,
        moved_iou=float(moved_iou),
    )


# -- alignment by time --------------------------------------------------------------------


def frame_interval(times: Iterable[float], fallback: float) -> float:
    """A timeline's frame interval in seconds: the median gap between consecutive frame
    times (robust to frames skip_similar dropped), else fallback (one frame)."""
    ordered = sorted(times)
    gaps = sorted(y - x for x, y in itertools.pairwise(ordered) if y > x)
    if not gaps:
        return fallback
    return gaps[len(gaps) // 2]


def align_by_time(times_a: Mapping[int, float], times_b: Mapping[int, float],
                  tolerance: float) -> dict[int, int]:
    """Pair frames of two timelines by timestamp, one to one: a's sequence -> b's.

    Pairs are taken nearest first (ties: lower sequences first) among frames whose
    times differ by at most tolerance (seconds; callers use half the coarser frame
    interval, so a frame pairs with at most the frame of the other timeline that covers
    the same instant). A frame with no free frame near enough stays unpaired.
    """
    import bisect

    if not (tolerance >= 0):
        raise InvalidInputError(f"tolerance must be a number >= 0, not {tolerance!r}")
    slack = tolerance + 1e-9  # timestamps are floats of exact fractions
    order_b = sorted((t, s) for s, t in times_b.items())
    keys_b = [t for t, _ in order_b]
    candidates: list[tuple[float, int, int]] = []
    for sa, ta in times_a.items():
        lo = bisect.bisect_left(keys_b, ta - slack)
        hi = bisect.bisect_right(keys_b, ta + slack)
        candidates.extend((abs(ta - tb), sa, sb) for tb, sb in order_b[lo:hi])
    candidates.sort()
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    for _, sa, sb in candidates:
        if sa not in pairs and sb not in taken:
            pairs[sa] = sb
            taken.add(sb)
    return dict(sorted(pairs.items()))


def _summarise(frames_a: int, frames_b: int, changes: Iterable[FrameChange],
               ) -> FrameDiffSummary:
    t = dict.fromkeys(("changed", "only_a", "only_b", "values_changed", "added", "removed",
                       "moved", "relabelled", "rescored"), 0)
    for c in changes:
        t["changed"] += 1
        t["only_a"] += c.only_a
        t["only_b"] += c.only_b
        t["values_changed"] += c.kind == "value" or bool(c.fields)
        for name in ("added", "removed", "moved", "relabelled", "rescored"):
            t[name] += len(getattr(c, name))
    return FrameDiffSummary(frames_a=frames_a, frames_b=frames_b, **t)
