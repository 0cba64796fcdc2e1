"""Metrics of tries against a reference: TP/FP/FN, precision, recall, F1 and COCO's AP.

Everything is computed per try and per label, the way COCO's ``cocoeval`` computes it
for boxes (and checked against pycocotools to 1e-6 in the tests), in numpy:

- Frames: the frames the reference lists are the frames evaluated (a frame it lists
  with no boxes counts: boxes there are false positives). A try's boxes on other frames
  are not judged; they are counted as ``ignored``.
- Matching, per frame and label: a try's boxes in descending score order (ties: list
  order; a box without score counts as 1.0), each taking the unmatched reference box of
  highest IoU at or above the threshold (ties: the later box). IoU is COCO's: touching
  boxes have IoU 0. One to one, greedy, exactly as ``cocoeval.evaluateImg``, including its
  handling of boxes with an area over 1e10 (ignored).
- TP, FP and FN at ``iou`` count every box; precision = TP / (TP + FP), recall =
  TP / (TP + FN), F1 = 2TP / (2TP + FP + FN); None where the denominator is 0.
- AP50 and AP (mean over IoU 0.50:0.05:0.95): COCO's 101-point interpolated average
  precision, with its limit of :data:`MAX_DETS` boxes per frame and label. A label the
  reference never has gets no AP (None), as COCO leaves it out; a try's AP is the mean
  over the labels the reference has.

Labels: boxes without a label are label ``""``. A label found only in a try gets a row
with its false positives.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from .arguments import shown
from .coco_metrics import (
    IOU_THRESHOLDS,
    MAX_DETS,
    RECALL_POINTS,
    Boxes,
    average_precision,
    boxes,
    match,
)
from .derived import Derived, load, make, output_text
from .errors import InvalidInputError, NotFoundError
from .flatten import flatten
from .gcpause import gc_paused

if TYPE_CHECKING:
    import pyarrow as pa

    from .store import Store
    from .types import Checkpoint

__all__ = [
    "IOU_THRESHOLDS",
    "MAX_DETS",
    "METRICS",
    "RECALL_POINTS",
    "Evaluation",
    "Scores",
    "TryResult",
    "evaluate",
    "evaluate_derived",
    "evaluate_outputs",
]

#: Metrics a ranking may use, and whether higher is better.
METRICS = {"ap50": True, "ap": True, "f1": True, "precision": True, "recall": True,
           "tp": True, "fp": False, "fn": False}


@attrs.frozen
class Scores:
    """Metrics of one try for one label (or all labels).

    Attributes:
        tp, fp, fn: counts at the evaluation's IoU threshold.
        precision, recall, f1: from those counts; None where undefined.
        ap50, ap: COCO AP at IoU 0.5 and over 0.5:0.95; None for a label the reference
            lacks (and, for all labels, when the reference has no box at all).
        boxes: the try's boxes judged; reference_boxes: the reference's.
    """

    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None
    ap50: float | None
    ap: float | None
    boxes: int
    reference_boxes: int


@attrs.frozen
class TryResult:
    """One try's metrics: ``scores`` over all labels, ``by_label`` per label.

    name: the try's tags (comma-separated), else its scenario label, else its stage and
    short id. ignored: its boxes on frames the reference does not list.
    """

    checkpoint_id: str
    name: str
    stage: str
    scores: Scores
    by_label: Mapping[str, Scores]
    ignored: int = 0
    tags: tuple[str, ...] = ()
    scenario_label: str = ""

    def value(self, metric: str) -> float | int | None:
        value: float | int | None = getattr(self.scores, metric)
        return value


_COLUMNS = ("rank", "checkpoint_id", "name", "stage", "label", "tp", "fp", "fn",
            "precision", "recall", "f1", "ap50", "ap", "boxes", "reference_boxes", "ignored")


def _check_metric(metric: Any) -> str:
    if not isinstance(metric, str) or metric not in METRICS:
        raise InvalidInputError(f"metric must be one of {', '.join(METRICS)}, not {shown(metric)}",
                                cli=f"--metric must be one of {', '.join(METRICS)}, not "
                                f"{shown(metric)}")
    return str(metric)


#: Metrics that break a tie of the ranking metric, in turn: AP50 saturates at 1.0 on
#: easy footage, where the stricter AP still tells tries apart.
_TIE_BREAKS = ("ap", "ap50", "f1", "precision", "recall")
#: Decimals a metric is compared to: COCO's precision divides by tp + fp + 2.2e-16
#: (pycocotools' np.spacing(1)), so two perfect tries may differ in the 16th digit.
_RANK_DECIMALS = 9


def _ranked(tries: Iterable[TryResult], metric: str) -> list[TryResult]:
    order = (metric, *(m for m in _TIE_BREAKS if m != metric))

    def key(t: TryResult) -> tuple[tuple[bool, float], ...]:
        values = [(m, t.value(m)) for m in order]
        return tuple((v is None, 0.0 if v is None else
                      round(-v if METRICS[m] else v, _RANK_DECIMALS)) for m, v in values)

    return sorted(tries, key=key)  # stable: full ties keep the order the tries were given


@attrs.frozen
class Evaluation:
    """Tries against one reference (see the module docstring for every definition).

    Attributes:
        reference, reference_stage: the checkpoint and stage whose boxes are the truth.
        stage: the tries' stage. iou: the threshold of TP/FP/FN. metric: the default
        ranking. labels: every label evaluated, sorted. frames: frames evaluated.
        tries: the results, best first by metric.
        skipped: (checkpoint id, why) of the tries left out because their stage output
            holds no boxes to judge (only with ``skip_unreadable``).
    """

    reference: str
    reference_stage: str
    stage: str
    iou: float
    metric: str
    labels: tuple[str, ...]
    frames: int
    tries: tuple[TryResult, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    def ranked(self, metric: str | None = None) -> list[TryResult]:
        """The tries, best first by metric (default: the evaluation's); a tie is broken
        by AP, then AP50, F1, precision and recall, and a full tie keeps the order the
        tries were given; a try without a value for the metric goes last."""
        return _ranked(self.tries, _check_metric(metric or self.metric))

    def rows(self, metric: str | None = None, *, per_label: bool = False,
             ) -> list[dict[str, Any]]:
        """Plain dicts, one per try (label None: all labels), best first; per_label adds
        each try's per-label rows after its own."""
        out = []
        for rank, t in enumerate(self.ranked(metric), 1):
            groups: list[tuple[str | None, Scores]] = [(None, t.scores)]
            if per_label:
                groups += sorted(t.by_label.items())
            for label, s in groups:
                row = {"rank": rank, "checkpoint_id": t.checkpoint_id, "name": t.name,
                       "stage": t.stage, "label": label, **attrs.asdict(s),
                       "ignored": t.ignored if label is None else 0}
                out.append({k: row[k] for k in _COLUMNS})
        return out

    def to_arrow(self, metric: str | None = None, *, per_label: bool = False) -> pa.Table:
        """rows() as a pyarrow Table (same order)."""
        import pyarrow as pa

        ints, floats, texts = pa.int64(), pa.float64(), pa.string()
        types = {"rank": ints, "checkpoint_id": texts, "name": texts, "stage": texts,
                 "label": texts, "tp": ints, "fp": ints, "fn": ints, "precision": floats,
                 "recall": floats, "f1": floats, "ap50": floats, "ap": floats,
                 "boxes": ints, "reference_boxes": ints, "ignored": ints}
        schema = pa.schema([(c, types[c]) for c in _COLUMNS])
        return pa.Table.from_pylist(self.rows(metric, per_label=per_label), schema=schema)

    def render(self, metric: str | None = None) -> str:
        """A text table, best first."""
        head = ["#", "try", "name", "precision", "recall", "F1", "AP50", "AP", "boxes"]
        body = [[str(r["rank"]), r["checkpoint_id"], r["name"], *(
            "-" if r[k] is None else f"{r[k]:.3f}" for k in ("precision", "recall", "f1",
                                                              "ap50", "ap")),
                 f"{r['boxes']:,}"] for r in self.rows(metric)]
        widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
        lines = [f"stage {self.stage!r} against {self.reference} ({self.reference_stage}), "
                 f"{self.frames:,} frames, TP at IoU >= {self.iou:g}, ranked by "
                 f"{metric or self.metric}"]
        for row in [head, *body]:
            lines.append("  ".join(v.ljust(w) if i < 3 else v.rjust(w)
                                   for i, (v, w) in enumerate(zip(row, widths, strict=True))))
        return "\n".join(lines)

    def __str__(self) -> str:
        """The table (``print(store.evaluate(...))``), as a Diff prints; repr() keeps
        every field."""
        return self.render()


# -- the computation ----------------------------------------------------------------------


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _scores(tp: int, fp: int, fn: int, ap50: float | None, ap: float | None, boxes: int,
            reference_boxes: int) -> Scores:
    return Scores(tp, fp, fn, _ratio(tp, tp + fp), _ratio(tp, tp + fn),
                  _ratio(2 * tp, 2 * tp + fp + fn), ap50, ap, boxes, reference_boxes)


def _judge(table: pa.Table, ref: Boxes, ref_frames: np.ndarray, codes: dict[str, int],
           names: list[str], wanted: set[str] | None, iou: float,
           ) -> tuple[Scores, dict[str, Scores], int]:
    dt = boxes(_only(table, wanted), codes)
    on_ref = np.isin(dt.frame, ref_frames)
    ignored = int(np.count_nonzero(~on_ref))
    dt = dt.take(on_ref)
    n_labels = len(names)
    coco = match(dt, ref, IOU_THRESHOLDS, MAX_DETS, n_labels)
    if iou == IOU_THRESHOLDS[0] and len(coco.dets) == len(dt):  # no frame over MAX_DETS
        counts = coco
    else:
        counts = match(dt, ref, np.array([iou]), None, n_labels)
    tp = np.bincount(counts.dets.label[counts.tp[0]], minlength=n_labels)
    fp = np.bincount(counts.dets.label[counts.fp[0]], minlength=n_labels)
    judged = np.bincount(dt.label, minlength=n_labels)
    ref_boxes = np.bincount(ref.label, minlength=n_labels)
    per: dict[str, Scores] = {}
    aps = []
    present = set(np.unique(dt.label).tolist()) | set(np.unique(ref.label).tolist())
    for code, name in enumerate(names):
        if code not in present and (wanted is None or name not in wanted):
            continue
        ap50 = ap = None
        if counts.regular[code]:
            ap50, ap = average_precision(coco, code)
            aps.append((ap50, ap))
        per[name] = _scores(int(tp[code]), int(fp[code]), int(counts.regular[code] - tp[code]),
                            ap50, ap, int(judged[code]), int(ref_boxes[code]))
    total = _scores(int(tp.sum()), int(fp.sum()), int(counts.regular.sum() - tp.sum()),
                    float(np.mean([a for a, _ in aps])) if aps else None,
                    float(np.mean([b for _, b in aps])) if aps else None,
                    len(dt), len(ref))
    return total, per, ignored


def _only(table: pa.Table, wanted: set[str] | None) -> pa.Table:
    if wanted is None:
        return table
    import pyarrow as pa
    import pyarrow.compute as pc

    labels = pc.fill_null(table.column("label"), "")
    return table.filter(pc.is_in(labels, value_set=pa.array(sorted(wanted), pa.string())))


def _labels_of(table: pa.Table) -> set[str]:
    import pyarrow.compute as pc

    return {x or "" for x in pc.unique(table.column("label")).to_pylist()}


def _check_iou(iou: Any) -> float:
    if isinstance(iou, bool) or not isinstance(iou, (int, float)) or not 0 < iou <= 1:
        raise InvalidInputError(f"iou must be a number in (0, 1], not {shown(iou)}",
                                cli=f"--iou must be a number in (0, 1], not {shown(iou)}")
    return float(iou)


def _check_labels(labels: Iterable[str] | None) -> set[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        labels = [labels]
    found = set()
    for label in labels:
        if not isinstance(label, str):
            raise InvalidInputError(f"labels must be strings, not {shown(label)}")
        found.add(label)
    return found


def _strict(d: Derived, value: Any, where: str) -> Derived:
    """d, if strict parsing of value would accept it; else the error strict parsing
    gives (derived files are lenient: an opaque frame there is no row)."""
    if not d.frame_keyed or d.opaque:
        flatten(value() if callable(value) else value, where)  # raises, naming the frame
    return d


def evaluate_derived(tries: Sequence[Derived], reference: Derived, *, iou: float = 0.5,
                     labels: Iterable[str] | None = None,
                     ) -> tuple[list[tuple[Scores, dict[str, Scores], int]], tuple[str, ...]]:
    """The metrics of each try against reference (parsed outputs): per try (all-label
    scores, per-label scores, ignored boxes), and every label evaluated."""
    threshold = _check_iou(iou)
    wanted = _check_labels(labels)
    ref_table = _only(reference.table, wanted)
    seen = set().union(_labels_of(ref_table), *(_labels_of(_only(d.table, wanted))
                                               for d in tries))
    if wanted is not None:
        seen |= wanted
    names = sorted(seen)
    codes = {name: i for i, name in enumerate(names)}
    ref = boxes(ref_table, codes)
    ref_frames = np.asarray(reference.frames, dtype=np.int64)
    return [_judge(d.table, ref, ref_frames, codes, names, wanted, threshold)
            for d in tries], tuple(names)


def evaluate_outputs(tries: Mapping[str, Any], reference: Any, *, iou: float = 0.5,
                     labels: Iterable[str] | None = None, metric: str = "ap50",
                     stage: str = "", reference_stage: str = "") -> Evaluation:
    """Evaluate frame-keyed outputs held in memory (name -> output) against a reference
    output: the pure core of :func:`evaluate` (no store)."""
    metric = _check_metric(metric)
    with gc_paused():  # the outputs are millions of objects (see localckpt.gcpause)
        ref = _strict(make("", reference), reference, "the reference")
        parsed = [_strict(make("", v), v, f"try {k!r}") for k, v in tries.items()]
    results, names = evaluate_derived(parsed, ref, iou=iou, labels=labels)
    found = [TryResult(k, k, stage, s, per, ignored)
             for k, (s, per, ignored) in zip(tries, results, strict=True)]
    return Evaluation("reference", reference_stage, stage, float(iou), metric, names,
                      len(ref.frames), tuple(_ranked(found, metric)))


def _name(tags: list[str], scenario_label: str, stage: str, short: str) -> str:
    if tags:
        return ", ".join(sorted(tags))
    if scenario_label:
        return scenario_label
    return f"{stage} {short}"


def evaluate(store: Store, checkpoints: Iterable[str], reference: str, stage: str = "detect",
             *, iou: float = 0.5, labels: Iterable[str] | None = None,
             reference_stage: str | None = None, metric: str = "ap50",
             write: bool = True, skip_unreadable: bool = False) -> Evaluation:
    """Store.evaluate: the tries (checkpoint references) against reference's boxes.

    The reference's boxes come from reference_stage, by default stage when the
    reference has it, else ``"labels"`` (what import_labels writes). Every try must
    have stage and be of the reference's timeline. Each output is parsed once: from its
    derived Parquet file (:mod:`localckpt.derived`) when there, else from its JSON, and
    with write the file is stored for the next evaluation or query (a read-only caller
    passes write=False). A try whose output holds no boxes to judge (not frame-keyed,
    or a frame not in the detections form) is an InvalidInputError, or with
    skip_unreadable is left out and named in ``Evaluation.skipped`` (a ranking of every
    try of a stage is not refused for one odd save; still an error when every try is
    such).
    """
    from .refs import reference_list, resolve_checkpoint

    metric = _check_metric(metric)
    _check_iou(iou)
    ids = list(dict.fromkeys(resolve_checkpoint(store, c)
                             for c in reference_list(checkpoints, "checkpoints")))
    if not ids:
        raise InvalidInputError("evaluate needs at least one checkpoint to judge")
    if not isinstance(reference, str):  # evaluate(reference, tries): the order swapped
        raise InvalidInputError(
            f"reference must be one checkpoint reference (a str), not "
            f"{type(reference).__name__}: evaluate(checkpoints, reference, ...) takes "
            "the tries first, then the reference")
    ref = store.get_checkpoint(resolve_checkpoint(store, reference))
    ref_stage = reference_stage or (stage if stage in ref.stage_hashes else "labels")
    if ref_stage not in ref.stage_hashes:
        has = f"reference {ref.id} has no stage {ref_stage!r} (it has: " \
              f"{', '.join(sorted(ref.stage_hashes)) or 'none'})"
        raise NotFoundError(f"{has}; give reference_stage=",
                            cli=f"{has}; name its stage with --reference-stage")
    tries = [store.get_checkpoint(i) for i in ids]
    for c in tries:
        if stage not in c.stage_hashes:
            has = f"checkpoint {c.id} has no stage {stage!r} (it has: " \
                  f"{', '.join(sorted(c.stage_hashes)) or 'none'})"
            raise NotFoundError(f"{has}; give the tries' stage as stage=",
                                cli=f"{has}; name the tries' stage with --stage")
        if c.timeline_id != ref.timeline_id:
            cs = store.short_ids([c.id, ref.id])  # the command line's: as tree shows them
            ts = store.short_ids([c.timeline_id, ref.timeline_id], "timeline")
            raise InvalidInputError(f"checkpoint {c.id} is of timeline {c.timeline_id}, the "
                                    f"reference {ref.id} of {ref.timeline_id}: frames of "
                                    "different timelines cannot be compared",
                                    cli=f"try {cs[c.id]} is of timeline {ts[c.timeline_id]}, "
                                    f"the reference {cs[ref.id]} of {ts[ref.timeline_id]}: frames "
                                    "of different timelines cannot be compared")
    # the reference first: a try that shares its output must not leave it an error to skip
    wanted = [(ref, ref_stage, f"reference stage {ref_stage!r} at {ref.id}"),
              *((c, stage, f"stage {stage!r} at {c.id}") for c in tries)]
    hashes = list(dict.fromkeys(c.stage_hashes[s] for c, s, _ in wanted))

    def made(h: str) -> Derived:
        return load(store.objects, h, functools.partial(output_text, store, h), write=write,
                    must_write=False)

    with ThreadPoolExecutor(min(4, len(hashes))) as pool:  # Arrow parses without the GIL
        parsed = dict(zip(hashes, pool.map(made, hashes), strict=True))
    checked: dict[str, Derived | InvalidInputError] = {}
    for c, s, where in wanted:
        h = c.stage_hashes[s]
        if h not in checked:
            try:
                checked[h] = _strict(parsed[h], functools.partial(
                    store.load_stage_output, c.id, s), where)
            except InvalidInputError as exc:
                if not skip_unreadable or c is ref:
                    raise
                checked[h] = exc
    ref_found = checked[ref.stage_hashes[ref_stage]]
    assert isinstance(ref_found, Derived)
    skipped: list[tuple[str, str]] = []
    judged: list[tuple[Checkpoint, Derived]] = []
    for c in tries:
        got = checked[c.stage_hashes[stage]]
        if isinstance(got, Derived):
            judged.append((c, got))
        else:
            skipped.append((c.id, str(got)))
    if not judged:
        first = checked[tries[0].stage_hashes[stage]]
        assert isinstance(first, InvalidInputError)
        raise first
    tries = [c for c, _ in judged]
    found_tries = [d for _, d in judged]
    results, names = evaluate_derived(found_tries, ref_found, iou=iou, labels=labels)
    tags: dict[str, list[str]] = {}
    for g in store.tags(ref.timeline_id):
        tags.setdefault(g.checkpoint_id, []).append(g.name)
    shorts = store.short_ids(ids)
    found = [TryResult(c.id, _name(tags.get(c.id, []), c.scenario_label, stage, shorts[c.id]),
                       stage, s, per, ignored, tuple(sorted(tags.get(c.id, []))),
                       c.scenario_label)
             for c, (s, per, ignored) in zip(tries, results, strict=True)]
    return Evaluation(ref.id, ref_stage, stage, float(iou), metric, names,
                      len(ref_found.frames), tuple(_ranked(found, metric)), tuple(skipped))
