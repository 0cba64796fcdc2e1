"""Metrics of tries against a reference (localckpt.evaluate).

Two oracles: a brute-force model written plainly below (COCO's matching and accumulation
as loops over frames, labels and boxes), and pycocotools itself on the same data. The
generated tries and references have empty frames, labels on one side only, equal scores,
boxes that touch and boxes of zero size; AP must agree with pycocotools to 1e-6 and every
count with the model exactly.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import localckpt
from localckpt.errors import InvalidInputError, NotFoundError
from localckpt.evaluate import IOU_THRESHOLDS, RECALL_POINTS, evaluate_outputs

LABELS = ("a", "b", "c")

# -- generated data -------------------------------------------------------------------------


@st.composite
def boxes(draw: Any, labels: tuple[str, ...]) -> dict[str, Any]:
    """A box on a small grid (touching, nested, equal and empty boxes are common)."""
    x, y = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    w, h = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    return {"box": [float(x), float(y), float(x + w), float(y + h)],
            "label": draw(st.sampled_from(labels)),
            "score": draw(st.sampled_from([0.1, 0.5, 0.5, 0.9]))}


@st.composite
def pairs(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(try, reference): the reference lists some frames (some empty), the try others too;
    a share of the try's boxes are jittered copies of reference boxes."""
    ref_labels = draw(st.sampled_from([("a",), ("a", "b"), LABELS]))
    try_labels = draw(st.sampled_from([("a",), ("b", "c"), LABELS]))
    ref_frames = sorted(draw(st.sets(st.integers(0, 7), min_size=1, max_size=6)))
    ref = {s: draw(st.lists(boxes(ref_labels), max_size=5)) for s in ref_frames}
    tried = sorted(draw(st.sets(st.integers(0, 9), max_size=7)))
    tr = {s: draw(st.lists(boxes(try_labels), max_size=5)) for s in tried}
    for s, gts in ref.items():
        for g in gts:
            if draw(st.booleans()):
                dx, dy = draw(st.integers(-1, 1)), draw(st.integers(-1, 1))
                b = g["box"]
                tr.setdefault(s, []).append({
                    "box": [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy], "label": g["label"],
                    "score": draw(st.sampled_from([0.5, 0.7, 0.9]))})
    as_output = lambda d: {"frames": [{"sequence": s, "detections": v}  # noqa: E731
                                      for s, v in sorted(d.items())]}
    return as_output(tr), as_output(ref)


# -- the brute-force model ------------------------------------------------------------------


def _iou(d: list[float], g: list[float]) -> float:
    dw, dh, gw, gh = d[2] - d[0], d[3] - d[1], g[2] - g[0], g[3] - g[1]
    w = min(d[0] + dw, g[0] + gw) - max(d[0], g[0])
    h = min(d[1] + dh, g[1] + gh) - max(d[1], g[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (dw * dh + gw * gh - inter)


def _match_frame(dts: list[dict[str, Any]], gts: list[dict[str, Any]], t: float,
                 max_dets: int | None) -> tuple[list[bool], int]:
    """One frame and label, as cocoeval.evaluateImg: (matched flag of each kept box in
    descending score order, count of reference boxes)."""
    order = sorted(range(len(dts)), key=lambda i: -(dts[i].get("score", 1.0)))
    if max_dets is not None:
        order = order[:max_dets]
    taken = [False] * len(gts)
    flags = []
    for i in order:
        best, m = min(t, 1 - 1e-10), -1
        for j, g in enumerate(gts):
            if taken[j]:
                continue
            v = _iou(dts[i]["box"], g["box"])
            if v < best:
                continue
            best, m = v, j
        if m >= 0:
            taken[m] = True
        flags.append(m >= 0)
    return flags, len(gts)


def model(tr: dict[str, Any], ref: dict[str, Any], iou: float) -> dict[str, dict[str, Any]]:
    """label -> {tp, fp, fn, ap50, ap} by plain loops."""
    ref_frames = {f["sequence"]: f["detections"] for f in ref["frames"]}
    try_frames = {f["sequence"]: f["detections"] for f in tr["frames"]}
    labels = sorted({d["label"] for v in ref_frames.values() for d in v} | {
        d["label"] for s, v in try_frames.items() if s in ref_frames for d in v})
    out = {}
    for label in labels:
        tp = fp = n_ref = 0
        scored: list[list[tuple[float, bool]]] = [[] for _ in IOU_THRESHOLDS]
        for s in sorted(ref_frames):
            gts = [g for g in ref_frames[s] if g["label"] == label]
            dts = [d for d in try_frames.get(s, []) if d["label"] == label]
            flags, n = _match_frame(dts, gts, iou, None)
            tp += sum(flags)
            fp += len(flags) - sum(flags)
            n_ref += n
            order = sorted(range(len(dts)), key=lambda i: -dts[i]["score"])[:100]
            for ti, t in enumerate(IOU_THRESHOLDS):
                f100, _ = _match_frame(dts, gts, t, 100)
                scored[ti] += [(dts[i]["score"], f) for i, f in zip(order, f100, strict=True)]
        aps = []
        for ti in range(len(IOU_THRESHOLDS)):
            ranked = sorted(scored[ti], key=lambda x: -x[0])  # stable: frame, then score order
            q = [0.0] * len(RECALL_POINTS)
            if n_ref and ranked:
                ctp = cfp = 0
                rc, pr = [], []
                for _, hit in ranked:
                    ctp += hit
                    cfp += not hit
                    rc.append(ctp / n_ref)
                    pr.append(ctp / (ctp + cfp + np.spacing(1)))
                for i in range(len(pr) - 1, 0, -1):
                    pr[i - 1] = max(pr[i - 1], pr[i])
                for k, r in enumerate(RECALL_POINTS):
                    j = next((j for j, x in enumerate(rc) if x >= r), None)
                    q[k] = pr[j] if j is not None else 0.0
            aps.append(sum(q) / len(q))
        out[label] = {"tp": tp, "fp": fp, "fn": n_ref - tp,
                      "ap50": aps[0] if n_ref else None,
                      "ap": sum(aps) / len(aps) if n_ref else None}
    return out


# -- pycocotools ----------------------------------------------------------------------------


def pycoco(tr: dict[str, Any], ref: dict[str, Any]) -> tuple[float, float] | None:
    """(AP50, AP) as pycocotools computes them, or None when it has nothing to rank."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cat = {n: i + 1 for i, n in enumerate(LABELS)}
    images, anns = [], []
    for f in ref["frames"]:
        images.append({"id": f["sequence"] + 1, "width": 64, "height": 64})
        for d in f["detections"]:
            x1, y1, x2, y2 = d["box"]
            anns.append({"id": len(anns) + 1, "image_id": f["sequence"] + 1,
                         "category_id": cat[d["label"]], "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    listed = {f["sequence"] for f in ref["frames"]}
    res = [{"image_id": f["sequence"] + 1, "category_id": cat[d["label"]], "score": d["score"],
            "bbox": [d["box"][0], d["box"][1], d["box"][2] - d["box"][0],
                     d["box"][3] - d["box"][1]]}
           for f in tr["frames"] if f["sequence"] in listed for d in f["detections"]]
    if not res or not anns:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": i, "name": n} for n, i in cat.items()]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(res), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1]), float(ev.stats[0])


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, abs_tol=1e-9)


# -- properties -----------------------------------------------------------------------------


@given(pairs(), st.sampled_from([0.5, 0.3, 0.75, 1.0]))
def test_counts_and_ap_equal_the_brute_force_model(data: Any, iou: float) -> None:
    tr, ref = data
    ev = evaluate_outputs({"t": tr}, ref, iou=iou)
    got = ev.tries[0]
    expected = model(tr, ref, iou)
    assert set(got.by_label) == set(expected)
    for label, exp in expected.items():
        s = got.by_label[label]
        assert (s.tp, s.fp, s.fn) == (exp["tp"], exp["fp"], exp["fn"]), label
        assert _close(s.ap50, exp["ap50"]) and _close(s.ap, exp["ap"]), label
    assert got.scores.tp == sum(e["tp"] for e in expected.values())
    assert got.scores.fp == sum(e["fp"] for e in expected.values())
    assert got.scores.fn == sum(e["fn"] for e in expected.values())
    with_ref = [e for e in expected.values() if e["ap50"] is not None]
    if with_ref:
        assert _close(got.scores.ap50, float(np.mean([e["ap50"] for e in with_ref])))
        assert _close(got.scores.ap, float(np.mean([e["ap"] for e in with_ref])))
    else:
        assert got.scores.ap50 is None and got.scores.ap is None


@given(pairs())
def test_ap_agrees_with_pycocotools(data: Any) -> None:
    tr, ref = data
    expected = pycoco(tr, ref)
    got = evaluate_outputs({"t": tr}, ref).tries[0].scores
    if expected is None:
        return
    ap50, ap = expected
    assert got.ap50 is not None and got.ap is not None
    assert abs(got.ap50 - ap50) <= 1e-6
    assert abs(got.ap - ap) <= 1e-6


def _random(rng: np.random.Generator, frames: int, per: int, labels: tuple[str, ...],
            ) -> dict[str, Any]:
    out = []
    for s in range(frames):
        dets = []
        for _ in range(int(rng.integers(0, per + 1))):
            x, y = rng.uniform(0, 600, 2)
            w, h = rng.uniform(2, 120, 2)
            dets.append({"box": [float(x), float(y), float(x + w), float(y + h)],
                         "label": str(rng.choice(labels)), "score": float(rng.random())})
        out.append({"sequence": s, "detections": dets})
    return {"frames": out}


def test_ap_agrees_with_pycocotools_on_a_larger_random_run() -> None:
    rng = np.random.default_rng(7)
    ref = _random(rng, 200, 6, LABELS)
    tr = {"frames": [{"sequence": f["sequence"], "detections": [
        {**d, "box": [v + float(rng.normal(0, 4)) for v in d["box"][:2]] + [
            max(d["box"][0] + 8, d["box"][2] + float(rng.normal(0, 4))),
            max(d["box"][1] + 8, d["box"][3] + float(rng.normal(0, 4)))],
         "score": float(rng.random())} for d in f["detections"]] + _random(
        rng, 1, 3, LABELS)["frames"][0]["detections"]} for f in ref["frames"]]}
    expected = pycoco(tr, ref)
    assert expected is not None
    got = evaluate_outputs({"t": tr}, ref).tries[0].scores
    assert abs(got.ap50 - expected[0]) <= 1e-6 and abs(got.ap - expected[1]) <= 1e-6
    assert 0.05 < got.ap < 0.95  # a run where AP means something


def test_more_than_100_boxes_per_frame_are_cut_for_ap_but_counted() -> None:
    ref = {"frames": [{"sequence": 0, "detections": [
        {"box": [i * 10.0, 0.0, i * 10.0 + 8, 8.0], "label": "a"} for i in range(120)]}]}
    tr = {"frames": [{"sequence": 0, "detections": [
        {"box": [i * 10.0, 0.0, i * 10.0 + 8, 8.0], "label": "a", "score": 1 - i / 1000}
        for i in range(120)]}]}
    s = evaluate_outputs({"t": tr}, ref).tries[0].scores
    assert (s.tp, s.fp, s.fn) == (120, 0, 0)
    expected = pycoco(tr, ref)
    assert expected is not None and abs(s.ap50 - expected[0]) <= 1e-6
    assert s.ap50 < 0.9  # only 100 of the 120 count for AP, as in COCO


# -- what the rows say ----------------------------------------------------------------------


REF = {"frames": [
    {"sequence": 0, "detections": [{"box": [0, 0, 10, 10], "label": "car"}]},
    {"sequence": 1, "detections": []},  # labelled empty: boxes here are false positives
    {"sequence": 2, "detections": [{"box": [20, 20, 30, 30], "label": "person"}]},
]}


def test_a_label_only_in_a_try_gets_a_row_with_its_false_positives() -> None:
    tr = {"frames": [
        {"sequence": 0, "detections": [{"box": [0, 0, 10, 10], "label": "car", "score": 0.9},
                                       {"box": [40, 40, 50, 50], "label": "dog", "score": .8}]},
        {"sequence": 1, "detections": [{"box": [1, 1, 5, 5], "label": "dog", "score": 0.7}]},
        {"sequence": 5, "detections": [{"box": [1, 1, 5, 5], "label": "car", "score": 0.7}]},
    ]}
    t = evaluate_outputs({"t": tr}, REF).tries[0]
    dog = t.by_label["dog"]
    assert (dog.tp, dog.fp, dog.fn, dog.precision, dog.recall, dog.f1) == (0, 2, 0, 0.0, None,
                                                                            0.0)
    assert dog.ap50 is None and dog.ap is None  # COCO leaves labels without truth out
    car, person = t.by_label["car"], t.by_label["person"]
    assert (car.tp, car.fp, car.fn, car.ap50) == (1, 0, 0, pytest.approx(1.0))
    assert (person.tp, person.fn, person.boxes, person.ap50) == (0, 1, 0, 0.0)
    assert t.ignored == 1  # frame 5 is not in the reference: not judged
    assert (t.scores.tp, t.scores.fp, t.scores.fn) == (1, 2, 1)
    assert t.scores.ap50 == pytest.approx(0.5)  # mean of car (1) and person (0)


def test_rows_and_arrow_rank_by_the_metric_asked_for() -> None:
    perfect = REF
    half = {"frames": [REF["frames"][0]]}
    noisy = {"frames": [REF["frames"][0], {"sequence": 1, "detections": [
        {"box": [1, 1, 4, 4], "label": "car", "score": 0.99}]}, REF["frames"][2]]}
    ev = evaluate_outputs({"half": half, "perfect": perfect, "noisy": noisy}, REF)
    assert [r["checkpoint_id"] for r in ev.rows()] == ["perfect", "noisy", "half"]
    assert [r["rank"] for r in ev.rows()] == [1, 2, 3]
    by_recall = [r["checkpoint_id"] for r in ev.rows("fn")]
    assert by_recall[-1] == "half"  # fewest misses first
    table = ev.to_arrow()
    assert table.to_pylist() == ev.rows()
    per = ev.rows(per_label=True)
    assert [(r["checkpoint_id"], r["label"]) for r in per[:3]] == [
        ("perfect", None), ("perfect", "car"), ("perfect", "person")]
    assert "perfect" in ev.render()
    assert str(ev) == ev.render() and repr(ev).startswith("Evaluation(reference=")
    with pytest.raises(InvalidInputError, match="metric"):
        ev.rows("best")


def test_a_tie_on_the_metric_is_broken_by_ap() -> None:
    """AP50 saturates at 1.0 when every box is found at IoU 0.5: the try whose boxes sit
    closer (higher AP) ranked second when it came second, so `compare`'s "best first"
    put the worse try on top; a difference in the 16th digit (COCO divides by tp + fp +
    2.2e-16) ranked them too. A full tie keeps the order the tries were given."""
    loose = {"frames": [
        {"sequence": 0, "detections": [{"box": [0, 0, 10, 13], "label": "car", "score": .9}]},
        {"sequence": 1, "detections": []},
        {"sequence": 2, "detections": [{"box": [20, 20, 30, 33], "label": "person",
                                        "score": 0.9}]}]}
    ev = evaluate_outputs({"loose": loose, "exact": REF, "twin": REF}, REF)
    by = {t.checkpoint_id: t.scores for t in ev.tries}
    assert by["loose"].ap50 == pytest.approx(1.0) and by["exact"].ap50 == pytest.approx(1.0)
    assert by["loose"].ap < by["exact"].ap
    assert [r["checkpoint_id"] for r in ev.rows()] == ["exact", "twin", "loose"]
    assert [r["checkpoint_id"] for r in ev.rows("recall")] == ["exact", "twin", "loose"]


def test_labels_restrict_both_sides() -> None:
    ev = evaluate_outputs({"t": REF}, REF, labels=["car", "bus"])
    t = ev.tries[0]
    assert set(t.by_label) == {"car", "bus"}
    assert (t.scores.tp, t.scores.fn) == (1, 0)
    assert t.by_label["bus"].reference_boxes == 0


def test_a_malformed_try_is_refused_naming_the_frame() -> None:
    bad = {"frames": [{"sequence": 3, "detections": [{"box": [5, 5, 1, 1], "label": "car"}]}]}
    with pytest.raises(InvalidInputError, match=r"frame 3: detection 0: .*x1 > x2"):
        evaluate_outputs({"t": bad}, REF)
    with pytest.raises(InvalidInputError, match="not frame-keyed"):
        evaluate_outputs({"t": {"boxes": []}}, REF)
    # COCO's key: said "box None is not [x1, y1, x2, y2]", naming no key it has
    coco = {"frames": [{"sequence": 3, "detections": [{"bbox": [1, 1, 4, 4], "score": 1}]}]}
    with pytest.raises(InvalidInputError, match=r'frame 3: detection 0 has no "box" \(its '
                                                r'keys: bbox, score\); a detection'):
        evaluate_outputs({"t": coco}, REF)
    with pytest.raises(InvalidInputError, match="iou"):
        evaluate_outputs({"t": REF}, REF, iou=0)


# -- through a store ------------------------------------------------------------------------


@pytest.fixture
def tries(tmp_path: Any) -> Any:
    store = localckpt.open(str(tmp_path / "s"), create=True)
    tl = store.create_timeline("v.mp4", "p", [np.zeros((8, 8, 3), np.uint8)] * 3, fps=2.0)
    labels = store.save_stage_output(tl.id, None, "labels", REF)
    good = store.save_stage_output(tl.id, None, "detect", {"frames": [
        {"sequence": f["sequence"], "detections": [{**d, "score": 0.9} for d in f["detections"]]}
        for f in REF["frames"]]}, is_scenario=True, scenario_label="thr=0.5")
    bad = store.save_stage_output(tl.id, None, "detect", {"frames": []}, is_scenario=True,
                                  scenario_label="thr=0.9")
    store.tag(good, "best")
    yield store, tl, labels, good, bad
    store.close()


def test_store_evaluate_ranks_tries_and_names_them(tries: Any) -> None:
    store, _, labels, good, bad = tries
    ev = store.evaluate([bad, "best"], labels)
    assert ev.reference_stage == "labels"  # the reference has no "detect"
    assert [(r["checkpoint_id"], r["name"]) for r in ev.rows()] == [(good, "best"),
                                                                     (bad, "thr=0.9")]
    assert ev.rows()[0]["ap50"] == pytest.approx(1.0) and ev.rows()[1]["recall"] == 0.0
    against_try = store.evaluate([bad], good)  # any try can be the reference
    assert against_try.reference_stage == "detect"
    assert against_try.rows()[0]["fn"] == 2


def test_store_evaluate_parses_each_output_once_then_reads_its_parquet(
        tries: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, labels, good, bad = tries
    loads: list[str] = []
    real = store.catalog.outputs
    monkeypatch.setattr(store.catalog, "outputs",
                        lambda hashes: loads.extend(hashes) or real(hashes))
    first = store.evaluate([good, bad, good], labels)
    assert sorted(loads) == sorted(store.get_checkpoint(c).stage_hashes[s] for c, s in (
        (good, "detect"), (bad, "detect"), (labels, "labels")))  # duplicates read once
    assert len(first.tries) == 2
    loads.clear()
    again = store.evaluate([good, bad], labels)
    assert loads == []  # every output came from its derived file
    assert again.rows() == first.rows()


def test_store_evaluate_errors(tries: Any) -> None:
    store, _, labels, good, _ = tries
    # the reference first, as compare --against reads: said as a list "reference", with
    # the order that works (it named no argument)
    with pytest.raises(InvalidInputError, match=r"reference must be one checkpoint "
                       r"reference \(a str\), not list: evaluate\(checkpoints, reference"):
        store.evaluate(labels, [good])
    with pytest.raises(NotFoundError, match="no stage 'track'"):
        store.evaluate([good], labels, stage="track")
    with pytest.raises(NotFoundError, match="reference_stage"):
        store.evaluate([good], labels, reference_stage="nope")
    other = store.create_timeline("w.mp4", "p", [np.zeros((8, 8, 3), np.uint8)], fps=1.0)
    elsewhere = store.save_stage_output(other.id, None, "detect", {"frames": []})
    with pytest.raises(InvalidInputError, match="different timelines"):
        store.evaluate([elsewhere], labels)
    with pytest.raises(InvalidInputError, match="at least one"):
        store.evaluate([], labels)


def test_a_try_without_boxes_to_judge_is_an_error_or_left_out(tries: Any) -> None:
    """One odd save of the stage (a summary, not frame-keyed) refused a ranking of every
    try; with skip_unreadable it is left out and named. Named alone, or the reference,
    it is still an error."""
    store, tl, labels, good, bad = tries
    odd = store.save_stage_output(tl.id, None, "detect", {"count": 3})
    with pytest.raises(InvalidInputError, match="not frame-keyed"):
        store.evaluate([good, odd, bad], labels)
    ev = store.evaluate([good, odd, bad], labels, skip_unreadable=True)
    assert [r["checkpoint_id"] for r in ev.rows()] == [good, bad]
    assert [cid for cid, _ in ev.skipped] == [odd]
    assert "not frame-keyed" in ev.skipped[0][1]
    assert ev.rows() == store.evaluate([good, bad], labels).rows()
    assert store.evaluate([good, bad], labels, skip_unreadable=True).skipped == ()
    with pytest.raises(InvalidInputError, match="not frame-keyed"):  # nothing left
        store.evaluate([odd], labels, skip_unreadable=True)
    with pytest.raises(InvalidInputError, match="not frame-keyed"):  # the reference
        store.evaluate([good], odd, skip_unreadable=True)


def test_a_reference_that_shares_an_unreadable_output_with_a_try_is_an_error(
        tries: Any) -> None:
    """`localckpt compare --against TRACK --stage track`, the reference's {"tracks": []}
    saved by a try too: the try was left out first, then the reference met its stored
    error and the command died on an AssertionError traceback."""
    store, tl, _, good, _ = tries
    ref = store.save_stage_output(tl.id, good, "track", {"tracks": []})
    same = store.save_stage_output(tl.id, None, "track", {"tracks": []})
    with pytest.raises(InvalidInputError, match=r"reference stage 'track'.*not frame-keyed"):
        store.evaluate([same], ref, "track", skip_unreadable=True)


def test_a_tie_in_iou_goes_to_the_later_reference_box_as_in_coco() -> None:
    # the first box overlaps both reference boxes equally (IoU 0.818); COCO gives it the
    # later one, which leaves the earlier one to the second box (IoU 0.9): two hits at
    # every threshold up to 0.8. Taking the earlier one would leave the second box only
    # IoU 0.538 with the later one: a miss from threshold 0.55 on.
    ref = {"frames": [{"sequence": 0, "detections": [
        {"box": [0, 0, 10, 10], "label": "a"}, {"box": [2, 0, 12, 10], "label": "a"}]}]}
    tr = {"frames": [{"sequence": 0, "detections": [
        {"box": [1, 0, 11, 10], "label": "a", "score": 0.9},
        {"box": [0, 0, 9, 10], "label": "a", "score": 0.8}]}]}
    got = evaluate_outputs({"t": tr}, ref, iou=0.7).tries[0].scores
    assert (got.tp, got.fp, got.fn) == (2, 0, 0)
    expected = pycoco(tr, ref)
    assert expected is not None
    assert abs(got.ap - expected[0 + 1]) <= 1e-6
    assert got.ap == pytest.approx(model(tr, ref, 0.5)["a"]["ap"])


def test_evaluate_works_where_its_cache_cannot_be_written(
        tries: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from localckpt.errors import BackendUnavailableError

    store, _, labels, good, bad = tries

    def refuse(key: str, data: bytes) -> None:
        raise BackendUnavailableError(f"read-only bucket: {key}")

    monkeypatch.setattr(store.objects, "put", refuse)
    assert [r["checkpoint_id"] for r in store.evaluate([bad, good], labels).rows()] == [
        good, bad]
    with pytest.raises(BackendUnavailableError, match="read-only bucket"):
        store.sql("SELECT count(*) FROM detections")  # SQL needs the files it reads


@given(pairs())
def test_boxes_in_any_row_order_give_the_same_metrics(data: Any) -> None:
    from localckpt.derived import make
    from localckpt.evaluate import evaluate_derived

    tr, ref = data
    d, r = make("", tr), make("", ref)
    shuffled = attrs_evolve(d, d.table.take(np.random.default_rng(0).permutation(
        d.table.num_rows)))
    assert evaluate_derived([shuffled], r)[0] == evaluate_derived([d], r)[0]


def attrs_evolve(d: Any, table: Any) -> Any:
    import attrs

    return attrs.evolve(d, table=table)
