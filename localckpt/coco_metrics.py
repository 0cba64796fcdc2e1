"""COCO's box matching and average precision, in numpy (what ``cocoeval`` computes).

The arrays are a frame-keyed output's boxes (:func:`boxes` reads a derived detections
table). :func:`match` pairs a try's boxes with the reference's as ``cocoeval.evaluateImg``
does, for every frame and label at once, at several IoU thresholds; :func:`average_precision`
is ``cocoeval.accumulate`` for one label. The tests check both against pycocotools.

How a frame's matching is vectorised: a frame and label's boxes are taken in rounds (the
r-th box by score of every frame and label in round r), so that no two boxes of one round
compete for a reference box; within a round each box takes its preferred free candidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["AREA_MAX", "IOU_THRESHOLDS", "MAX_DETS", "RECALL_POINTS", "Boxes", "Matched",
           "average_precision", "boxes", "match"]

#: COCO's IoU thresholds for AP (np.linspace(.5, .95, 10), the very same floats).
IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
#: COCO's 101 recall points.
RECALL_POINTS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
#: Boxes per frame and label that AP considers (COCO's maxDets for AP).
MAX_DETS = 100
#: COCO's "all" area range ends here: larger boxes are ignored (neither TP nor FP nor FN).
AREA_MAX = 1e5 ** 2


@attrs.frozen
class Boxes:
    """Boxes as arrays, COCO-style: x, y, width, height, right and bottom edges as
    ``cocoeval`` derives them from [x, y, w, h]."""

    frame: np.ndarray
    label: np.ndarray
    score: np.ndarray
    pos: np.ndarray
    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    h: np.ndarray

    @property
    def area(self) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # a box at or near infinity
            return self.w * self.h

    def take(self, idx: np.ndarray) -> Boxes:
        return Boxes(*(getattr(self, f.name)[idx] for f in attrs.fields(Boxes)))

    def __len__(self) -> int:
        return len(self.frame)


def boxes(table: pa.Table, codes: dict[str, int]) -> Boxes:
    """Arrays of a derived detections table; labels as codes (None is label "")."""
    import pyarrow.compute as pc

    def col(name: str, dtype: type) -> np.ndarray:
        return np.asarray(table.column(name).to_numpy(), dtype=dtype)

    labels = pc.dictionary_encode(pc.fill_null(table.column("label"), "")).combine_chunks()
    lookup = np.array([codes[x] for x in labels.dictionary.to_pylist()] or [0], np.int64)
    x1, y1 = col("x1", np.float64), col("y1", np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # corners far apart, or infinite
        w, h = col("x2", np.float64) - x1, col("y2", np.float64) - y1
    return Boxes(col("sequence", np.int64),
                  lookup[np.asarray(labels.indices.to_numpy(zero_copy_only=False), np.int64)],
                  np.asarray(pc.fill_null(table.column("score"), 1.0).to_numpy(), np.float64),
                  col("index", np.int64), x1, y1, w, h)


def _in_list_order(b: Boxes) -> bool:
    """Whether the boxes come by frame, then by position in their frame's list (as a
    derived table has them)."""
    f, p = b.frame, b.pos
    return bool(np.all((f[1:] > f[:-1]) | ((f[1:] == f[:-1]) & (p[1:] > p[:-1]))))


def _ranks(keys: np.ndarray) -> np.ndarray:
    """Position of each element within its run of equal (sorted) keys."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, np.int64)
    starts = np.ones(n, bool)
    starts[1:] = keys[1:] != keys[:-1]
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    return np.arange(n) - first


@attrs.frozen
class Matched:
    """Matching of one try at T thresholds. dets: the judged boxes, sorted by label,
    frame, then score (COCO's concatenation order); tp / fp: [T, n] flags; regular:
    reference boxes that count (not ignored), per label code."""

    dets: Boxes
    tp: np.ndarray
    fp: np.ndarray
    regular: np.ndarray


#: Past this, label * span + frame could leave int64 (numpy wraps around silently).
_KEY_LIMIT = 1 << 62


def _frame_keys(d: np.ndarray, g: np.ndarray, n_labels: int,
                ) -> tuple[np.ndarray, np.ndarray, int]:
    """The frame numbers of both sides as match keys them (label * span + frame), and
    span: the numbers themselves, or, where a frame number is so large (an output may
    name any sequence up to 2**63 - 1) that the key would leave int64 (an OverflowError,
    or keys wrapped around into another label's), their ranks among both sides' frames
    (same order, same equalities)."""
    span = int(max(d.max(initial=0), g.max(initial=0))) + 1
    if span * max(n_labels, 1) < _KEY_LIMIT:
        return d, g, span
    frames, ranks = np.unique(np.concatenate([d, g]), return_inverse=True)
    ranks = ranks.astype(np.int64).reshape(-1)
    return ranks[:len(d)], ranks[len(d):], len(frames)


def match(dt: Boxes, gt: Boxes, thresholds: np.ndarray, max_dets: int | None,
           n_labels: int) -> Matched:
    d_frame, g_frame, span = _frame_keys(dt.frame, gt.frame, n_labels)
    ranked = d_frame is not dt.frame  # else the frames taken with the boxes are the keys'
    # lexsort is stable: boxes already in frame and list order need fewer keys
    if _in_list_order(dt):
        d_order = np.lexsort((-dt.score, dt.label * span + d_frame))
    else:
        d_order = np.lexsort((dt.pos, -dt.score, dt.frame, dt.label))
    dt = dt.take(d_order)
    d_key = dt.label * span + (d_frame[d_order] if ranked else dt.frame)
    d_rank = _ranks(d_key)
    if max_dets is not None:
        keep = d_rank < max_dets
        dt, d_key, d_rank = dt.take(keep), d_key[keep], d_rank[keep]
    g_ignored = gt.area > AREA_MAX
    if _in_list_order(gt):
        g_order = np.lexsort((g_ignored, gt.label * span + g_frame))
    else:
        g_order = np.lexsort((gt.pos, g_ignored, gt.frame, gt.label))
    gt, g_ignored = gt.take(g_order), g_ignored[g_order]
    g_key = gt.label * span + (g_frame[g_order] if ranked else gt.frame)

    # every (box, reference box) pair of one frame and label
    lo = np.searchsorted(g_key, d_key, "left")
    counts = np.searchsorted(g_key, d_key, "right") - lo
    pair_d = np.repeat(np.arange(len(dt)), counts)
    offsets = np.arange(len(pair_d)) - np.repeat(np.cumsum(counts) - counts, counts)
    pair_g = np.repeat(lo, counts) + offsets
    # IoU as cocoeval's bbIou: right = x + w; no overlap (or touching) is 0. A box at
    # infinity (an output's integer beyond a double) makes NaN here: no overlap, quietly
    with np.errstate(invalid="ignore", over="ignore"):
        iw = np.minimum(dt.x[pair_d] + dt.w[pair_d], gt.x[pair_g] + gt.w[pair_g]) - np.maximum(
            dt.x[pair_d], gt.x[pair_g])
        ih = np.minimum(dt.y[pair_d] + dt.h[pair_d], gt.y[pair_g] + gt.h[pair_g]) - np.maximum(
            dt.y[pair_d], gt.y[pair_g])
        overlap = (iw > 0) & (ih > 0)
        inter = np.where(overlap, iw * ih, 0.0)
        union = dt.area[pair_d] + gt.area[pair_g] - inter
        ious = np.divide(inter, union, out=np.zeros_like(inter), where=overlap)
    # a pair below the lowest threshold never matches: most pairs of a frame are such
    near = ious >= min(float(thresholds.min()), 1 - 1e-10)
    pair_d, pair_g, ious = pair_d[near], pair_g[near], ious[near]

    # rounds: the r-th box of every frame and label at once (one box per frame per round).
    # Pairs sorted once by round, box, then preference (a reference box that counts
    # first, then IoU, then the later box): among a box's candidates the last is chosen.
    # (Pairs come by box, then reference box in order: lexsort's stability keeps that.)
    regular_g = ~g_ignored
    if g_ignored.any():
        order = np.lexsort((ious, regular_g[pair_g], pair_d, d_rank[pair_d]))
    else:
        order = np.lexsort((ious, pair_d, d_rank[pair_d]))
    pair_d, pair_g, ious = pair_d[order], pair_g[order], ious[order]
    bounds = np.searchsorted(d_rank[pair_d], np.arange(int(d_rank.max(initial=-1)) + 2))
    n_t = len(thresholds)
    matched = np.full((n_t, len(dt)), -1, np.int64)
    for ti, t in enumerate(thresholds):
        floor = min(float(t), 1 - 1e-10)
        taken = np.zeros(len(gt), bool)
        for r in range(len(bounds) - 1):
            lo_r, hi_r = bounds[r], bounds[r + 1]
            if lo_r == hi_r:
                continue
            g = pair_g[lo_r:hi_r]
            keep = (ious[lo_r:hi_r] >= floor) & ~taken[g]
            d = pair_d[lo_r:hi_r][keep]
            if not len(d):
                continue
            g = g[keep]
            last = np.ones(len(d), bool)
            last[:-1] = d[1:] != d[:-1]
            taken[g[last]] = True
            matched[ti, d[last]] = g[last]
    is_matched = matched >= 0
    g_ignored_or_none = np.append(g_ignored, False)  # index -1: no match
    ignored = np.where(is_matched, g_ignored_or_none[matched],
                       (dt.area > AREA_MAX)[None, :])
    regular = np.bincount(gt.label[regular_g], minlength=n_labels)
    return Matched(dt, is_matched & ~ignored, ~is_matched & ~ignored, regular)


def average_precision(m: Matched, label: int) -> tuple[float, float]:
    """(AP at the first threshold, AP over all thresholds) of one label: cocoeval's
    accumulate() for one category, area "all", maxDets 100."""
    sel = m.dets.label == label
    scores = m.dets.score[sel]
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(m.tp[:, sel][:, order], axis=1).astype(float)
    fp = np.cumsum(m.fp[:, sel][:, order], axis=1).astype(float)
    n_regular = int(m.regular[label])
    q = np.zeros((tp.shape[0], len(RECALL_POINTS)))
    n = tp.shape[1]
    if n:
        rc = tp / n_regular
        pr = tp / (fp + tp + np.spacing(1))
        pr = np.flip(np.maximum.accumulate(np.flip(pr, axis=1), axis=1), axis=1)
        for t in range(tp.shape[0]):
            inds = np.searchsorted(rc[t], RECALL_POINTS, side="left")
            ok = inds < n
            q[t, ok] = pr[t, inds[ok]]
    return float(np.mean(q[0])), float(np.mean(q))
