"""frame_diff: per-frame comparison of frame-keyed outputs, against a brute-force model.

The model below is written from the convention's text (localckpt.framediff's docstring),
not from the implementation: it parses every frame, matches by repeatedly taking the
best free pair (cubic, no sorting, no fast paths) and derives each list from scratch.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import localckpt
from localckpt.errors import InvalidInputError, NotFoundError
from localckpt.framediff import Box, diff_outputs, frames_of, iou

# -- the model --------------------------------------------------------------------------


def model_iou(p: list[float], q: list[float]) -> float:
    ix = max(0, min(p[2], q[2]) - max(p[0], q[0]))
    iy = max(0, min(p[3], q[3]) - max(p[1], q[1]))
    inter = ix * iy
    union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
    if union == 0:
        return 1.0 if list(p) == list(q) else 0.0
    return inter / union


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def model_boxes(value: Any) -> tuple[str, list[tuple[list, Any, Any]]] | None:
    if not isinstance(value, dict):
        return None
    key = "detections" if "detections" in value else "boxes"
    if not isinstance(value.get(key), list):
        return None
    out = []
    for item in value[key]:
        if isinstance(item, dict):
            box, label, score = item.get("box"), item.get("label"), item.get("score")
            if label is not None and not isinstance(label, str):
                return None
            if score is not None and not is_num(score):
                return None
        else:
            box, label, score = item, None, None
        if not (isinstance(box, list) and len(box) == 4 and all(is_num(v) for v in box)):
            return None
        if box[0] > box[2] or box[1] > box[3]:
            return None
        out.append((box, label, score))
    return key, out


def model_greedy(a, b, free_a, free_b, same_label, thr):
    pairs = []
    while True:
        best = None
        for i in sorted(free_a):
            for j in sorted(free_b):
                if (a[i][1] == b[j][1]) != same_label:
                    continue
                v = model_iou(a[i][0], b[j][0])
                if v >= thr and (best is None or v > best[0]):
                    best = (v, i, j)
        if best is None:
            return pairs
        free_a.discard(best[1])
        free_b.discard(best[2])
        pairs.append(best)


NONE = object()  # the model's "absent"


def model_frame(va: Any, vb: Any, thr: float) -> dict | None:
    none = NONE
    pa = None if va is none else model_boxes(va)
    pb = None if vb is none else model_boxes(vb)
    one_sided = va is none or vb is none
    if (va is none or pa is not None) and (vb is none or pb is not None):
        ka, a = pa if pa else ("", [])
        kb, b = pb if pb else ("", [])
        free_a, free_b = set(range(len(a))), set(range(len(b)))
        same = model_greedy(a, b, free_a, free_b, True, thr)
        cross = model_greedy(a, b, free_a, free_b, False, thr)
        matched = [(v, i, j) for v, i, j in same] + [(v, i, j) for v, i, j in cross]

        def rescored(i, j):
            sa, sb = a[i][2], b[j][2]
            if sa is None or sb is None:  # a side without scores (ground truth)
                return False
            return abs(sa - sb) > 0.05 + 1e-9  # float rounding is no rescore

        fields = []
        if not one_sided:
            rest_a = {k: v for k, v in va.items() if k not in (ka, "sequence")}
            rest_b = {k: v for k, v in vb.items() if k not in (kb, "sequence")}
            fields = sorted(k for k in set(rest_a) | set(rest_b)
                            if rest_a.get(k, none) != rest_b.get(k, none))
        got = {
            "kind": "detections",
            "added": sorted(free_b), "removed": sorted(free_a),
            "moved": sorted((i, j) for v, i, j in matched if v < 0.95),
            "relabelled": sorted((i, j) for _, i, j in cross),
            "rescored": sorted((i, j) for _, i, j in matched if rescored(i, j)),
            "fields": fields,
        }
        if not one_sided and not any(got[k] for k in got if k != "kind"):
            return None
        return got
    if not one_sided and va == vb:
        return None
    return {"kind": "value", "added": [], "removed": [], "moved": [], "relabelled": [],
            "rescored": [], "fields": []}


def model_diff(fa: dict[int, Any], fb: dict[int, Any], thr: float) -> dict[int, dict]:
    none = NONE
    out = {}
    for seq in set(fa) | set(fb):
        got = model_frame(fa.get(seq, none), fb.get(seq, none), thr)
        if got is not None:
            out[seq] = got
    return out


def observed(change) -> dict:
    return {
        "kind": change.kind,
        "added": sorted(x.position for x in change.added),
        "removed": sorted(x.position for x in change.removed),
        "moved": sorted((m.a.position, m.b.position) for m in change.moved),
        "relabelled": sorted((m.a.position, m.b.position) for m in change.relabelled),
        "rescored": sorted((m.a.position, m.b.position) for m in change.rescored),
        "fields": list(change.fields),
    }


# -- generated outputs ------------------------------------------------------------------

coords = st.integers(0, 12)
sizes = st.integers(0, 6)
labels = st.sampled_from(["car", "person", None])
scores = st.sampled_from([None, 0.1, 0.5, 0.53, 0.56, 0.9, 1])


@st.composite
def boxes(draw: st.DrawFn) -> Any:
    x, y = draw(coords), draw(coords)
    corners = [x, y, x + draw(sizes), y + draw(sizes)]
    if draw(st.integers(0, 5)) == 0:
        return corners  # bare list: no label, no score
    item: dict[str, Any] = {"box": corners}
    label, score = draw(labels), draw(scores)
    if label is not None or draw(st.booleans()):
        item["label"] = label
    if score is not None or draw(st.booleans()):
        item["score"] = score
    return item


opaque = st.one_of(st.integers(-3, 3), st.text(max_size=3), st.lists(st.integers(0, 2),
                                                                       max_size=2), st.none())
not_a_box = st.sampled_from([[1, 2, 3], [3, 0, 1, 1], {"box": [0, 0, 1, 1], "label": 5},
                             {"box": [0, 0, True, 1]}, "box"])


@st.composite
def detection_value(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(st.sampled_from(["detections", "boxes"]))
    items = draw(st.lists(boxes(), max_size=5))
    if draw(st.integers(0, 9)) == 0:
        items.insert(draw(st.integers(0, len(items))), draw(not_a_box))  # not the convention
    value: dict[str, Any] = {key: items}
    if draw(st.booleans()):
        value["note"] = draw(st.integers(0, 2))
    return value


def frame_values() -> st.SearchStrategy[Any]:
    return st.one_of(detection_value(), detection_value(), detection_value(), opaque)


@st.composite
def mutate_box(draw: st.DrawFn, item: Any) -> Any:
    if not isinstance(item, dict) or not isinstance(item.get("box"), list) \
            or len(item["box"]) != 4:
        return item if draw(st.booleans()) else draw(boxes())
    item = {**item, "box": list(item["box"])}
    what = draw(st.sampled_from(["move", "label", "score", "same", "replace"]))
    if what == "move":
        dx, dy = draw(st.integers(-2, 2)), draw(st.integers(-2, 2))
        b = item["box"]
        item["box"] = [b[0] + dx, b[1] + dy, b[2] + dx + draw(st.integers(0, 1)), b[3] + dy]
    elif what == "label":
        item["label"] = draw(labels)
    elif what == "score":
        item["score"] = draw(scores)
    elif what == "replace":
        return draw(boxes())
    return item


@st.composite
def mutate_value(draw: st.DrawFn, value: Any) -> Any:
    if not isinstance(value, dict) or draw(st.integers(0, 9)) == 0:
        return draw(frame_values()) if draw(st.booleans()) else value
    key = "detections" if "detections" in value else "boxes"
    items = value.get(key)
    if not isinstance(items, list):
        return value
    new = [draw(mutate_box(x)) for x in items if draw(st.integers(0, 5))]
    new.extend(draw(st.lists(boxes(), max_size=2)))
    if len(new) > 1 and draw(st.booleans()):
        new = draw(st.permutations(new))
    out = {**value, key: new}
    if draw(st.integers(0, 4)) == 0:
        out["note"] = draw(st.integers(0, 2))
    return out


def as_output(frames: dict[int, Any], as_list: bool) -> dict[str, Any]:
    if as_list:
        rows = []
        for seq, v in frames.items():
            rows.append({**v, "sequence": seq} if isinstance(v, dict) else
                        {"sequence": seq, "value": v})
        return {"frames": rows, "threshold": 0.5}
    return {"frames": {str(seq): v for seq, v in frames.items()}}


@st.composite
def output_pairs(draw: st.DrawFn) -> tuple[dict, dict]:
    fa = draw(st.dictionaries(st.integers(0, 30), frame_values(), max_size=8))
    fb = {}
    for seq, v in fa.items():
        fate = draw(st.integers(0, 9))
        if fate == 0:
            continue  # only in a
        fb[seq] = v if fate < 4 else draw(mutate_value(v))
    for seq in draw(st.lists(st.integers(0, 40), max_size=3)):
        fb.setdefault(seq, draw(frame_values()))  # only in b (when new)
    return as_output(fa, draw(st.booleans())), as_output(fb, draw(st.booleans()))


# -- properties -------------------------------------------------------------------------


@settings(max_examples=150)  # cheap (~10 ms each), and the one test of every rule together
@given(output_pairs(), st.sampled_from([0.5, 0.3, 0.75, 1.0]))
def test_frame_diff_agrees_with_brute_force_model(pair: tuple[dict, dict], thr: float) -> None:
    out_a, out_b = pair
    fa, fb = frames_of(out_a), frames_of(out_b)
    want = model_diff(fa, fb, thr)
    d = diff_outputs(out_a, out_b, match_iou=thr)
    assert d.changed == tuple(sorted(want))
    assert {seq: observed(c) for seq, c in d.frames.items()} == want
    assert d.only_a == tuple(sorted(set(fa) - set(fb)))
    assert d.only_b == tuple(sorted(set(fb) - set(fa)))
    s = d.summary
    assert (s.frames_a, s.frames_b, s.changed) == (len(fa), len(fb), len(want))
    for name in ("added", "removed", "moved", "relabelled", "rescored"):
        assert getattr(s, name) == sum(len(w[name]) for w in want.values()), name
    assert s.values_changed == sum(w["kind"] == "value" or bool(w["fields"])
                                   for w in want.values())
    for seq, change in d.frames.items():  # the two values, exactly as given
        assert change.a is fa.get(seq, change.a) and change.b is fb.get(seq, change.b)
        assert change.only_a == (seq not in fb) and change.only_b == (seq not in fa)
    assert bool(d) == bool(want)


@given(output_pairs())
def test_an_output_compared_with_itself_has_no_change(pair: tuple[dict, dict]) -> None:
    d = diff_outputs(pair[0], pair[0])
    assert not d and d.changed == () and d.frames == {}


@given(output_pairs())
def test_swapping_sides_swaps_one_sided_frames_and_added_removed(pair: tuple[dict, dict]
                                                                 ) -> None:
    ab, ba = diff_outputs(*pair), diff_outputs(pair[1], pair[0])
    assert ab.changed == ba.changed
    assert (ab.only_a, ab.only_b) == (ba.only_b, ba.only_a)
    assert ab.summary.added + ab.summary.removed == ba.summary.added + ba.summary.removed


# -- examples a person can read -----------------------------------------------------------


def det(box: list[float], label: str | None = "car", score: float | None = 0.9) -> dict:
    return {"box": box, "label": label, "score": score}


def test_each_kind_of_change_in_one_frame() -> None:
    a = {"frames": [{"sequence": 3, "detections": [
        det([0, 0, 10, 10]),                    # 0: moved a little
        det([100, 100, 110, 110]),              # 1: removed
        det([50, 50, 60, 60], "car"),           # 2: relabelled to truck
        det([200, 0, 220, 20], score=0.9),      # 3: rescored to 0.5
        det([300, 0, 310, 10]),                 # 4: unchanged
    ]}]}
    b = {"frames": [{"sequence": 3, "detections": [
        det([300, 0, 310, 10]),
        det([1, 0, 11, 10]),
        det([50, 50, 60, 60], "truck"),
        det([200, 0, 220, 20], score=0.5),
        det([400, 400, 420, 420]),              # added
        det([500, 500, 520, 520]),              # added
    ]}]}
    d = diff_outputs(a, b)
    c = d.frames[3]
    assert d.changed == (3,)
    assert [x.position for x in c.added] == [4, 5]
    assert [x.position for x in c.removed] == [1]
    assert [(m.a.position, m.b.position) for m in c.moved] == [(0, 1)]
    assert c.moved[0].iou == pytest.approx(90 / 110)
    assert [(m.a.label, m.b.label) for m in c.relabelled] == [("car", "truck")]
    assert [(m.a.score, m.b.score) for m in c.rescored] == [(0.9, 0.5)]
    assert c.describe() == "+2 -1 ~1 moved ~1 relabelled ~1 rescored"
    assert d.summary.added == 2 and d.summary.removed == 1
    assert "frame 3  +2 -1 ~1 moved" in d.render()


def test_thresholds_are_inclusive_where_the_issue_says() -> None:
    # IoU exactly 0.5 matches (>=); exactly 0.95 is not "moved" (< 0.95)
    half = ([0, 0, 10, 10], [0, 0, 10, 5])  # 50 / 100
    assert iou(*half) == 0.5
    d = diff_outputs({"frames": {"0": {"boxes": [half[0]]}}},
                     {"frames": {"0": {"boxes": [half[1]]}}})
    assert [m.iou for m in d.frames[0].moved] == [0.5] and not d.frames[0].added
    d = diff_outputs({"frames": {"0": {"boxes": [half[0]]}}},
                     {"frames": {"0": {"boxes": [half[1]]}}}, match_iou=0.51)
    assert len(d.frames[0].added) == 1 and len(d.frames[0].removed) == 1
    ninety_five = ([0, 0, 100, 100], [0, 0, 100, 95])
    assert iou(*ninety_five) == 0.95
    assert not diff_outputs({"frames": {"0": {"boxes": [ninety_five[0]]}}},
                            {"frames": {"0": {"boxes": [ninety_five[1]]}}})
    # score: a change of exactly 0.05 is not rescored, 0.06 is
    s = diff_outputs({"frames": {"0": {"boxes": [det([0, 0, 1, 1], score=0.5)]}}},
                     {"frames": {"0": {"boxes": [det([0, 0, 1, 1], score=0.55)]}}})
    assert not s  # 0.55 - 0.5 is 0.050000000000000044 in floats: rounding, not a rescore
    s = diff_outputs({"frames": {"0": {"boxes": [det([0, 0, 1, 1], score=0.5)]}}},
                     {"frames": {"0": {"boxes": [det([0, 0, 1, 1], score=0.56)]}}})
    assert len(s.frames[0].rescored) == 1
    # against ground truth, which has no scores, no box was rescored (each one was)
    truth = diff_outputs({"frames": {"0": {"boxes": [det([0, 0, 1, 1], score=0.5)]}}},
                         {"frames": {"0": {"boxes": [det([0, 0, 1, 1], score=None)]}}})
    assert not truth
    # moved_iou: a pair matched at IoU 0.95 is no move at 0.95, one at 0.9 moves, and at
    # moved_iou <= match_iou nothing matched moves (only misses and false boxes remain)
    off = ({"frames": {"0": {"boxes": [[0, 0, 100, 100]]}}},
           {"frames": {"0": {"boxes": [[0, 0, 100, 90]]}}})
    assert len(diff_outputs(*off).frames[0].moved) == 1
    calm = diff_outputs(*off, moved_iou=0.5)
    assert not calm and calm.moved_iou == 0.5 and calm.to_dict()["moved_iou"] == 0.5
    assert "moved below IoU 0.5" in calm.render()
    with pytest.raises(InvalidInputError, match="moved_iou must be a number in"):
        diff_outputs(*off, moved_iou=0)


def test_greedy_takes_the_best_pair_first() -> None:
    # b0 overlaps a0 at 0.73 and a1 at 0.9: greedy gives b0 to a1, and a0 is left removed
    a = {"frames": {"1": {"boxes": [[0, 0, 10, 10], [1, 0, 11, 10]]}}}
    b = {"frames": {"1": {"boxes": [[2, 0, 11, 10]]}}}
    assert round(iou([0, 0, 10, 10], [2, 0, 11, 10]), 2) == 0.73
    c = diff_outputs(a, b).frames[1]
    assert [x.position for x in c.removed] == [0]
    assert [(m.a.position, m.b.position) for m in c.moved] == [(1, 0)]


def test_tiny_jitter_and_reordering_are_no_change() -> None:
    a = {"frames": [{"sequence": 0,
                     "detections": [det([0, 0, 100, 100]), det([200, 0, 300, 100])]}]}
    b = {"frames": {"0": {"detections": [det([200, 0, 300, 100], score=0.92),
                                         det([1, 0, 101, 100], score=0.88)]}}}
    assert not diff_outputs(a, b)


def test_non_detection_values_are_held_as_the_two_values() -> None:
    a = {"frames": {"0": {"text": "GOAL"}, "1": 5, "2": {"boxes": [[0, 0, 1, 1]]}}}
    b = {"frames": {"0": {"text": "G0AL"}, "1": 5, "3": "x"}}
    d = diff_outputs(a, b)
    assert d.changed == (0, 2, 3) and d.only_a == (2,) and d.only_b == (3,)
    assert (d.frames[0].kind, d.frames[0].a, d.frames[0].b) == (
        "value", {"text": "GOAL"}, {"text": "G0AL"})
    assert d.frames[0].describe() == "value changed"
    assert d.frames[2].kind == "detections" and len(d.frames[2].removed) == 1
    assert d.frames[2].describe() == "only in A -1"
    assert d.frames[3].describe() == "only in B"
    assert d.summary.values_changed == 2  # frame 0 and the opaque one-sided frame 3


def test_other_fields_of_a_detection_frame_are_compared() -> None:
    a = {"frames": [{"sequence": 0, "boxes": [[0, 0, 1, 1]], "timestamp": 0.0}]}
    b = {"frames": [{"sequence": 0, "boxes": [[0, 0, 1, 1]], "timestamp": 0.5}]}
    c = diff_outputs(a, b).frames[0]
    assert c.kind == "detections" and c.fields == ("timestamp",)
    assert c.describe() == "changed timestamp"


def test_to_dict_is_json_ready() -> None:
    import json

    d = diff_outputs({"frames": {"0": {"boxes": [[0, 0, 1, 1]]}}}, {"frames": {}},
                     a="A1", b="B1", stage="detect")
    data = json.loads(json.dumps(d.to_dict()))
    assert data["changed"] == [0] and data["only_a"] == [0] and data["stage"] == "detect"
    assert data["frames"]["0"]["removed"] == [
        {"box": [0, 0, 1, 1], "label": None, "score": None, "position": 0}]
    assert data["frames"]["0"]["b"] is None and data["frames"]["0"]["only_a"] is True
    assert data["summary"]["removed"] == 1
    assert Box(0, 0, 1, 1).to_dict()["box"] == [0, 0, 1, 1]


@pytest.mark.parametrize("output, says", [
    ({"boxes": []}, "not frame-keyed (it has top-level keys ['boxes'])"),
    ([1, 2], "not frame-keyed (it has a list)"),
    ({"frames": "all"}, '"frames" is a str'),
    ({"frames": [{"seq": 1}]}, 'frames[0] has no non-negative integer "sequence"'),
    ({"frames": [{"sequence": True}]}, 'frames[0] has no non-negative integer "sequence"'),
    ({"frames": [{"sequence": -1}]}, 'frames[0] has no non-negative integer "sequence"'),
    ({"frames": [{"sequence": 1}, {"sequence": 1}]}, "sequence 1 appears twice"),
    ({"frames": {"one": {}}}, "frames key 'one' is not a decimal sequence number"),
    ({"frames": {"7": {}, "07": {}}}, "both mean sequence 7"),
])
def test_not_frame_keyed_says_what_shape_is_expected(output: Any, says: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        diff_outputs(output, {"frames": {}})
    assert says in str(exc.value)
    if "not frame-keyed" in says or "is a str" in says:
        assert '{"frames": [{"sequence": <int>, ...}, ...]}' in str(exc.value)


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, True, "0.5", None])
def test_match_iou_must_be_in_zero_one(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="match_iou"):
        diff_outputs({"frames": {}}, {"frames": {}}, match_iou=bad)


# -- through the store --------------------------------------------------------------------


@pytest.fixture(params=["memory", "embedded"])
def store(request: pytest.FixtureRequest, new_store: Any) -> localckpt.Store:
    return new_store(request.param)


def test_store_frame_diff_compares_two_tries(store: localckpt.Store) -> None:
    import numpy as np

    tl = store.create_timeline("v.mp4", "p", [np.zeros((8, 8, 3), np.uint8)] * 3)
    a = store.save_stage_output(tl.id, None, "detect", {"frames": [
        {"sequence": 0, "detections": [det([0, 0, 4, 4])]},
        {"sequence": 1, "detections": [det([0, 0, 4, 4])]}]})
    b = store.save_stage_output(tl.id, None, "detect", {"frames": {
        "0": {"detections": [det([0, 0, 4, 4])]},
        "1": {"detections": [det([0, 0, 4, 4], "person")]},
        "2": {"detections": [det([1, 1, 2, 2])]}}}, is_scenario=True, scenario_label="try 2")
    d = store.frame_diff(a, b, "detect")
    assert (d.a, d.b, d.stage) == (a, b, "detect")
    assert d.changed == (1, 2) and d.only_b == (2,)
    assert len(d.frames[1].relabelled) == 1
    assert store.frame_diff(a, b, "detect", match_iou=1.0).frames[1].relabelled


def test_store_frame_diff_errors(store: localckpt.Store) -> None:
    import numpy as np

    tl = store.create_timeline("v.mp4", "p", [np.zeros((8, 8, 3), np.uint8)])
    a = store.save_stage_output(tl.id, None, "detect", {"boxes": [[0, 0, 1, 1]]})
    b = store.save_stage_output(tl.id, None, "track", {"frames": {}})
    with pytest.raises(InvalidInputError, match=r"stage 'detect' at .* is not frame-keyed"):
        store.frame_diff(a, a, "detect")
    with pytest.raises(NotFoundError, match=r"has no stage 'detect' \(it has: track\)"):
        store.frame_diff(b, a, "detect")
    with pytest.raises(NotFoundError):
        store.frame_diff(a, "0" * 32, "detect")
    with pytest.raises(InvalidInputError, match="stage must be a str"):
        store.frame_diff(a, a, 3)  # type: ignore[arg-type]


# -- checkpoints of different timelines ---------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """4 s of 25 fps video (frames at exact multiples of 40 ms)."""
    pytest.importorskip("av")
    from localckpt.testing.videos import write_video

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, 100, size=(64, 48))
    return str(path)


def _by_time(store: localckpt.Store, tid: str, grid: float) -> dict[str, Any]:
    """A frame-keyed output whose value is the frame's time rounded to the grid (the
    same value for frames of two timelines that show the same instant, give or take)."""
    return {"frames": [{"sequence": m.sequence, "instant": round(m.timestamp / grid) * grid}
                       for m in store.frame_index(tid)]}


def _two_rates(store: localckpt.Store, clip: str) -> tuple[Any, Any, str, str]:
    slow = store.ingest_video(clip, fps=2)
    fast = store.ingest_video(clip, fps=5)
    a = store.save_stage_output(slow.id, None, "detect", _by_time(store, slow.id, 0.5))
    b = store.save_stage_output(fast.id, None, "detect", _by_time(store, fast.id, 0.5))
    return slow, fast, a, b


def test_frame_diff_refuses_checkpoints_of_different_timelines(
        store: localckpt.Store, clip: str) -> None:
    slow, fast, a, b = _two_rates(store, clip)
    with pytest.raises(InvalidInputError) as info:
        store.frame_diff(a, b, "detect")
    message = str(info.value)
    for tid in (slow.id, fast.id):
        assert store.short_id(tid, "timeline") in message
    assert "2 fps" in message and "5 fps" in message and 'align="time"' in message
    assert "--align time" in info.value.for_cli()


def test_frame_diff_aligned_by_time_pairs_frames_by_timestamp(
        store: localckpt.Store, clip: str) -> None:
    slow, fast, a, b = _two_rates(store, clip)
    from localckpt.framediff import frame_interval

    d = store.frame_diff(a, b, "detect", align="time")
    times_a = {m.sequence: m.timestamp for m in store.frame_index(slow.id)}
    times_b = {m.sequence: m.timestamp for m in store.frame_index(fast.id)}
    # half the coarser interval: about 1/4 s (25 fps frames sampled at 2 fps are 0.48
    # and 0.52 s apart)
    assert d.align == "time" and d.tolerance == max(
        frame_interval(times_a.values(), 0), frame_interval(times_b.values(), 0)) / 2
    assert 0.24 <= d.tolerance <= 0.26
    assert sorted(d.pairs) == sorted(times_a)  # every 2 fps frame found a partner
    assert len(set(d.pairs.values())) == len(d.pairs)  # one to one
    for sa, sb in d.pairs.items():
        assert abs(times_a[sa] - times_b[sb]) <= 0.1 + 1e-9  # the nearest 5 fps frame
    assert d.pairs[2] == 5 and d.pairs[4] == 10  # 1 s and 2 s: the same instants
    # paired frames show the same instant: nothing changed; the 5 fps frames between
    # them were not compared, and are counted as such
    assert not d and d.summary.changed == 0
    assert d.summary.unpaired_a == 0 and d.summary.unpaired_b == len(times_b) - len(times_a)
    assert set(d.unpaired_b) == set(times_b) - set(d.pairs.values())
    assert "aligned by time" in d.render()
    # the same numbers by sequence would be wrong: frame n at n/2 s against n/5 s
    wrong = localckpt.framediff.diff_outputs(store.load_stage_output(a, "detect"),
                                             store.load_stage_output(b, "detect"))
    assert wrong.summary.changed > 0


def test_align_by_time_is_one_to_one_within_the_tolerance() -> None:
    from localckpt.framediff import align_by_time, frame_interval

    a = {0: 0.0, 1: 0.5, 2: 1.0}
    b = {0: 0.0, 1: 0.3, 2: 0.45, 3: 0.55, 4: 2.0}
    assert frame_interval(a.values(), 9.0) == 0.5 and frame_interval([1.0], 9.0) == 9.0
    # 0.5 pairs with the nearer of 0.45 and 0.55; 1.0 has nothing within 0.25 s, nor 2.0
    assert align_by_time(a, b, 0.25) == {0: 0, 1: 2}
    assert align_by_time(b, a, 0.25) == {0: 0, 2: 1}  # one to one: 0.3 and 0.55 lose
    assert align_by_time(a, b, 0.0) == {0: 0}
    with pytest.raises(InvalidInputError):
        align_by_time(a, b, float("nan"))


def test_align_must_be_known(store: localckpt.Store) -> None:
    import numpy as np

    tl = store.create_timeline("v.mp4", "p", [np.zeros((8, 8, 3), np.uint8)])
    a = store.save_stage_output(tl.id, None, "detect", {"frames": {}})
    with pytest.raises(InvalidInputError, match="align"):
        store.frame_diff(a, a, "detect", align="nearest")
    assert store.frame_diff(a, a, "detect", align="time").align == "time"  # one timeline
