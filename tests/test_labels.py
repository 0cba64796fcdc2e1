"""Ground truth in and out (localckpt.labels): COCO, YOLO and MOT.

Round trips for each format (export then import gives the same boxes), the frame
matching rules the issue states (file names, 1-based MOT frames, source frame numbers
matched by time), and hostile files: each gives a LabelFileError naming the file and the
line or entry, and the store is left exactly as it was.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import localckpt
from localckpt.errors import ConflictError, InvalidInputError
from localckpt.labels import LabelFileError, import_labels
from localckpt.labels._common import MAX_BOXES, MAX_BYTES

W, H = 64, 48


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = localckpt.open(str(tmp_path / "store"), create=True)
    yield s
    s.close()


@pytest.fixture
def timeline(store: Any) -> Any:
    return store.create_timeline("v.mp4", "p", [np.zeros((H, W, 3), np.uint8)] * 10, fps=2.0)


def state(store: Any) -> tuple[Any, ...]:
    """Everything an import could have written."""
    return (tuple(c.id for t in store.list_timelines() for c in store.checkpoints(t.id)),
            tuple(g.id for g in store.tags()))


def boxes_of(store: Any, cid: str, stage: str) -> dict[int, list[dict[str, Any]]]:
    out = store.load_stage_output(cid, stage)
    return {f["sequence"]: f["detections"] for f in out["frames"]}


def same_boxes(a: dict[int, list[dict[str, Any]]], b: dict[int, list[dict[str, Any]]],
               keys: tuple[str, ...] = ("label", "score", "track_id")) -> None:
    assert sorted(a) == sorted(b)
    for seq in a:
        assert len(a[seq]) == len(b[seq]), seq
        for p, q in zip(a[seq], b[seq], strict=True):
            assert all(math.isclose(u, v, abs_tol=1e-6) for u, v in
                       zip(p["box"], q["box"], strict=True)), (seq, p, q)
            for k in keys:
                assert p.get(k) == q.get(k), (seq, k, p, q)


# -- round trips ---------------------------------------------------------------------------


@st.composite
def outputs(draw: Any, labels: tuple[str, ...] = ("car", "person", "bus"),
            tracks: bool = True) -> dict[str, Any]:
    frames = sorted(draw(st.sets(st.integers(0, 9), min_size=1)))
    coord = st.floats(0, W, allow_nan=False).map(lambda v: round(v, 3))
    out = []
    for s in frames:
        dets = []
        for _ in range(draw(st.integers(0, 4))):
            x1, x2 = sorted((draw(coord), draw(coord)))
            y1, y2 = sorted((draw(coord) * H / W, draw(coord) * H / W))
            d: dict[str, Any] = {"box": [x1, y1, x2, y2], "label": draw(st.sampled_from(labels))}
            if draw(st.booleans()):
                d["score"] = draw(st.floats(0, 1).map(lambda v: round(v, 4)))
            if tracks and draw(st.booleans()):
                d["track_id"] = draw(st.integers(0, 50))
            dets.append(d)
        out.append({"sequence": s, "detections": dets})
    return {"frames": out}


def _path(tmp: Path, fmt: str, n: int) -> Path:
    suffix = {"coco": ".json", "mot": ".txt", "yolo": ""}[fmt]
    return tmp / f"{fmt}{n}{suffix}"


_counter = iter(range(10**9))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=15)
@given(out=outputs())
@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_export_then_import_gives_the_same_boxes(store: Any, timeline: Any, tmp_path: Path,
                                                fmt: str, out: dict[str, Any]) -> None:
    cid = store.save_stage_output(timeline.id, None, "detect", out)
    path = _path(tmp_path, fmt, next(_counter))
    exported = store.export_labels(cid, "detect", path, fmt)
    back = store.import_labels(timeline.id, path, fmt, stage="gt")
    keys = ("label", "score", "track_id") if fmt == "coco" else ("label", "score")
    same_boxes(boxes_of(store, back, "gt"), boxes_of(store, cid, "detect"), keys)
    assert exported.boxes == sum(len(f["detections"]) for f in out["frames"])


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=15)
@given(out=outputs(labels=("person",)))
def test_mot_round_trip(store: Any, timeline: Any, tmp_path: Path, out: dict[str, Any]) -> None:
    cid = store.save_stage_output(timeline.id, None, "detect", out)
    path = _path(tmp_path, "mot", next(_counter))
    store.export_labels(cid, "detect", path, "mot")
    if not any(f["detections"] for f in out["frames"]):
        with pytest.raises(LabelFileError, match="none of its 0 labelled frames"):
            store.import_labels(timeline.id, path, "mot")
        return
    back = boxes_of(store, store.import_labels(timeline.id, path, "mot", stage="gt"), "gt")
    # MOT lists boxes, not frames: frames between the first and last box are labelled
    with_boxes = [f["sequence"] for f in out["frames"] if f["detections"]]
    expected = {s: [] for s in range(min(with_boxes), max(with_boxes) + 1)}
    expected.update({f["sequence"]: f["detections"] for f in out["frames"]
                     if min(with_boxes) <= f["sequence"] <= max(with_boxes)})
    same_boxes(back, expected)


def test_export_says_what_the_format_cannot_hold(store: Any, timeline: Any,
                                                tmp_path: Path) -> None:
    """MOT files hold no class names and YOLO files no track ids: exported, those were
    dropped without a word, and `compare` against the MOT file read back ranked a
    perfect try at 0 (every box came back as 'person'). The report says what is lost."""
    dets = [{"box": [1, 1, 5, 5], "label": "ball", "score": 0.9, "track_id": 3},
            {"box": [6, 6, 9, 9], "label": "player", "score": 0.8}]
    cid = store.save_stage_output(timeline.id, None, "detect", {"frames": [
        {"sequence": 0, "detections": dets}]})
    to_mot = store.export_labels(cid, "detect", str(tmp_path / "a.txt"), "mot")
    assert to_mot.lost == ("MOT files hold no class names: the labels 'ball', 'player' are "
                           "not in it (it reads back as 'person')")
    assert to_mot.summary().endswith(f"(mot); {to_mot.lost}")
    to_yolo = store.export_labels(cid, "detect", str(tmp_path / "y"), "yolo")
    assert to_yolo.lost == "YOLO files hold no track ids: those of 1 box are not in them"
    assert store.export_labels(cid, "detect", str(tmp_path / "c.json"), "coco").lost == ""
    people = store.save_stage_output(timeline.id, None, "detect", {"frames": [
        {"sequence": 0, "detections": [{"box": [1, 1, 5, 5], "label": "person"}]}]})
    assert store.export_labels(people, "detect", str(tmp_path / "p.txt"), "mot").lost == ""


# -- matching frames -----------------------------------------------------------------------


def coco_doc(frames: dict[int, list[list[float]]], name: str = "frame_{:06d}.jpg",
             **extra: Any) -> dict[str, Any]:
    images = [{"id": i + 1, "file_name": name.format(n), "width": W, "height": H}
              for i, n in enumerate(frames)]
    anns = [{"id": k + 1, "image_id": i + 1, "category_id": 1, "bbox": b, **extra}
            for i, boxes in enumerate(frames.values()) for k, b in enumerate(boxes)]
    for k, a in enumerate(anns):
        a["id"] = k + 1
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "player"}]}


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_coco_frame_numbers_boxes_labels_and_scores(store: Any, timeline: Any,
                                                    tmp_path: Path) -> None:
    doc = coco_doc({3: [[1, 2, 10, 20]], 7: []}, name="clip1/frame_{:06d}.PNG", score=0.25)
    cid = store.import_labels(timeline.id, write_json(tmp_path / "gt.json", doc), "coco",
                              tag="gt")
    assert boxes_of(store, cid, "labels") == {
        3: [{"box": [1.0, 2.0, 11.0, 22.0], "label": "player", "score": 0.25}],
        7: []}  # an image without annotations is a frame labelled empty
    assert store.tag_target("gt") == cid
    stats = store.get_checkpoint(cid).stats
    assert (stats["label_boxes"], stats["label_frames"], stats["label_unmatched"]) == (1, 2, 0)


def test_yolo_boxes_are_scaled_by_the_frame_size(store: Any, timeline: Any,
                                                 tmp_path: Path) -> None:
    d = tmp_path / "yolo"
    d.mkdir()
    (d / "data.yaml").write_text("path: x\nnames:\n  0: ball\n  1: 'goal post'\nnc: 2\n")
    (d / "frame_000004.txt").write_text("1 0.5 0.5 0.25 0.5 0.8\n\n0 0.125 0.25 0.25 0.5\n")
    (d / "000006.txt").write_text("")
    cid = store.import_labels(timeline.id, d, "yolo")
    assert boxes_of(store, cid, "labels") == {
        4: [{"box": [24.0, 12.0, 40.0, 36.0], "label": "goal post", "score": 0.8},
            {"box": [0.0, 0.0, 16.0, 24.0], "label": "ball"}],
        6: []}


def test_mot_frames_are_one_based_with_tracks(store: Any, timeline: Any,
                                              tmp_path: Path) -> None:
    path = tmp_path / "gt.txt"
    path.write_text("1,7,10,20,5,6,1,-1,-1,-1\n3,8,1,2,3,4,-1,1,0.5\n3,-1,0,0,1,1,0.3\n")
    cid = store.import_labels(timeline.id, path, "mot")
    assert boxes_of(store, cid, "labels") == {
        0: [{"box": [10.0, 20.0, 15.0, 26.0], "label": "person", "score": 1.0, "track_id": 7}],
        1: [],
        2: [{"box": [1.0, 2.0, 4.0, 6.0], "label": "person", "track_id": 8},
            {"box": [0.0, 0.0, 1.0, 1.0], "label": "person", "score": 0.3}]}


def test_source_frame_numbers_match_by_time(store: Any, tmp_path: Path) -> None:
    pytest.importorskip("av")
    from localckpt.testing.videos import write_video

    video = tmp_path / "v.mp4"
    write_video(video, 30, fps=10.0, size=(W, H))  # 3 s; sampled at 2 fps: frames 0, 5, ...
    tl = store.ingest_video(video, fps=2.0)
    assert tl.source_info["fps"] == pytest.approx(10.0)
    doc = coco_doc({n: [[1, 1, 5, 5]] for n in range(30)})
    result = import_labels(store, tl.id, write_json(tmp_path / "gt.json", doc), "coco",
                           frames="source")
    got = boxes_of(store, result.checkpoint_id, "labels")
    assert sorted(got) == [0, 1, 2, 3, 4, 5]
    assert len(result.unmatched) == 24 and result.unmatched_boxes == 24
    assert {u.number for u in result.unmatched} == set(range(30)) - {0, 5, 10, 15, 20, 25}
    assert "matched no timeline frame" in result.summary()
    # exporting by source frame numbers names the same frames again
    store.export_labels(result.checkpoint_id, "labels", tmp_path / "back.json", "coco",
                        frames="source")
    names = [i["file_name"] for i in json.loads((tmp_path / "back.json").read_text())["images"]]
    assert names == [f"frame_{n:06d}.jpg" for n in (0, 5, 10, 15, 20, 25)]
    before = state(store)
    late = coco_doc({29: [[1, 1, 2, 2]], 45: [[1, 1, 2, 2]]})
    with pytest.raises(LabelFileError, match=r"images\[1\] \(id 2\): source frame 45 .* past "
                                             "the end"):
        store.import_labels(tl.id, write_json(tmp_path / "late.json", late), "coco",
                            frames="source")
    assert state(store) == before


def test_source_matching_needs_a_source_frame_rate(store: Any, timeline: Any,
                                                   tmp_path: Path) -> None:
    path = write_json(tmp_path / "gt.json", coco_doc({1: []}))
    with pytest.raises(InvalidInputError, match="no source frame rate"):
        store.import_labels(timeline.id, path, "coco", frames="source")


def test_sequences_the_timeline_lacks_inside_its_range_are_unmatched(store: Any,
                                                                     tmp_path: Path) -> None:
    from localckpt.types import Frame

    frames = [Frame(s, s / 2, 0, "", np.zeros((H, W, 3), np.uint8)) for s in (0, 1, 4, 5)]
    tl = store.create_timeline("v.mp4", "p", frames, fps=2.0)
    doc = coco_doc({1: [[0, 0, 1, 1]], 2: [[0, 0, 1, 1]], 3: []})
    result = import_labels(store, tl.id, write_json(tmp_path / "gt.json", doc), "coco")
    assert [(u.number, u.boxes) for u in result.unmatched] == [(2, 1), (3, 0)]
    assert result.frames == 1 and result.boxes == 1


# -- hostile files --------------------------------------------------------------------------


def _coco(doc: Any) -> Any:
    return lambda p: write_json(p.with_suffix(".json"), doc)


def _text(text: str | bytes, suffix: str = ".txt") -> Any:
    def make(p: Path) -> Path:
        path = p.with_suffix(suffix)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path
    return make


def _yolo(files: dict[str, str]) -> Any:
    def make(p: Path) -> Path:
        p.mkdir()
        for name, text in files.items():
            (p / name).write_text(text)
        return p
    return make


def _huge(p: Path) -> Path:
    path = p.with_suffix(".txt")
    with open(path, "wb") as fh:
        fh.truncate(MAX_BYTES + 1)  # sparse: costs no disk
    return path


BASE = coco_doc({1: [[1, 1, 2, 2]]})
HOSTILE = {
    "unknown frame": ("coco", _coco(coco_doc({1: [], 25: [[1, 1, 2, 2]]})),
                      r"images\[1\] \(id 2\): frame 25 is not a frame of timeline"),
    "negative width": ("coco", _coco(coco_doc({1: [[1, 1, -2, 2]]})),
                       r"annotations\[0\] \(id 1\): box .* negative width"),
    "nan box": ("coco", _text('{"images": [{"id": 1, "file_name": "f1.jpg"}], "annotations": '
                              '[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [NaN, 1, 2, '
                              '2]}], "categories": [{"id": 1, "name": "a"}]}', ".json"),
                r"annotations\[0\] \(id 1\): box .* not a finite number"),
    "huge number in a box": (  # the message showed all 400 digits
        "coco", _coco(coco_doc({1: [[10 ** 400, 1, 2, 2]]})),
        r"box \[10+\.\.\., 1, 2, 2\] holds something that is not a"),
    "broken json": ("coco", _text('{"images": [\n{"id": 1,,}', ".json"),
                    r"line 2 column 10: is not valid JSON"),
    "not json object": ("coco", _coco([1, 2]), "is not a JSON object"),
    "unknown image": ("coco", _coco({**BASE, "annotations": [
        {"id": 1, "image_id": 9, "category_id": 1, "bbox": [1, 1, 1, 1]}]}),
        r"annotations\[0\] \(id 1\): image_id 9 is not an image"),
    "unknown category": ("coco", _coco({**BASE, "annotations": [
        {"id": 1, "image_id": 1, "category_id": 4, "bbox": [1, 1, 1, 1]}]}),
        "category_id 4 is not a category"),
    "no frame number": ("coco", _coco(coco_doc({1: []}, name="cover.jpg")),
                        r"images\[0\] \(id 1\): file_name 'cover.jpg' holds no frame number"),
    "two images one frame": ("coco", _coco({**BASE, "images": [
        {"id": 1, "file_name": "a_1.jpg"}, {"id": 2, "file_name": "b_001.jpg"}]}),
        r"images\[1\] \(id 2\): is frame 1, as images\[0\]"),
    "deep json": ("coco", _text("[" * 100_000 + "]" * 100_000, ".json"), "JSON"),
    "not utf-8": ("mot", _text(b"1,1,1,1,1,1,1\n\xff\xfe,1\n"), "line 2: is not UTF-8"),
    "huge file": ("mot", _huge, "bytes a label file may have"),
    "broken csv": ("mot", _text("1,1,1,1,1,1,1\n2,3,4\n"),
                   "line 2: has 3 comma-separated fields"),
    "mot nan": ("mot", _text("1,1,nan,1,1,1,1\n"), "line 1: box .* not a finite number"),
    "mot frame 0": ("mot", _text("0,1,1,1,1,1,1\n"), "line 1: frame 0 is not a frame number"),
    "mot negative": ("mot", _text("1,1,1,1,-1,1,1\n"), "line 1: box .* negative width"),
    "mot unknown frame": ("mot", _text("1,1,1,1,1,1,1\n99,1,1,1,1,1,1\n"),
                          "line 2: frame 98 is not a frame of timeline"),
    "yolo not normalised": ("yolo", _yolo({"classes.txt": "a\n", "1.txt": "0 12 30 4 5\n"}),
                            r"1\.txt, line 1: .* not normalised"),
    "yolo class": ("yolo", _yolo({"classes.txt": "a\n", "1.txt": "3 0.5 0.5 0.1 0.1\n"}),
                   "line 1: class '3' is not an index of the 1 class names"),
    "yolo nan": ("yolo", _yolo({"classes.txt": "a\n", "2.txt": "0 nan 0.5 0.1 0.1\n"}),
                 "line 1: 'nan' is not a finite number"),
    # str.isdigit takes '²', int() does not; int() refuses 4,300 digits: tracebacks
    "yolo superscript class": ("yolo", _yolo({"classes.txt": "a\n",
                                              "1.txt": "² 0.5 0.5 0.1 0.1\n"}),
                               "line 1: class '²' is not an index of the 1 class names"),
    "yolo endless class": ("yolo", _yolo({"classes.txt": "a\n",
                                          "1.txt": "9" * 5000 + " 0.5 0.5 0.1 0.1\n"}),
                           "line 1: class '9999.* is not an index of the 1 class names"),
    "yolo superscript name": ("yolo", _yolo({"data.yaml": "names:\n  ²: a\n",
                                             "1.txt": "0 0.5 0.5 0.1 0.1\n"}),
                              "line 1: names mapping keys must be class indexes"),
    "yolo endless name": ("yolo", _yolo({"data.yaml": "names: {" + "1" * 5000 + ": a}\n",
                                         "1.txt": "0 0.5 0.5 0.1 0.1\n"}),
                          "line 1: names mapping keys must be class indexes"),
    "yolo fields": ("yolo", _yolo({"classes.txt": "a\n", "2.txt": "0 0.5 0.5\n"}),
                    "line 1: has 3 fields"),
    "yolo no names": ("yolo", _yolo({"2.txt": "0 0.5 0.5 0.1 0.1\n"}),
                      "has no classes.txt"),
    "yolo no number": ("yolo", _yolo({"classes.txt": "a\n", "notes.txt": ""}),
                       r"notes\.txt: holds no frame number"),
    "yolo a file": ("yolo", _text("0 0.5 0.5 0.1 0.1\n"), "is not a directory"),
    "missing": ("coco", lambda p: p / "nope.json", "no such file"),
    # numbers Python cannot hold as the store does: each was an uncaught exception
    "mot infinite id": ("mot", _text("1,inf,1,1,1,1,1\n"), "line 1: id 'inf' is not a whole"),
    "mot infinite frame": ("mot", _text("1,1,1,1,1,1,1\n1e999,1,1,1,1,1,1\n"),
                           "line 2: frame '1e999' is not a whole number"),
    "mot huge track": ("mot", _text("1,1e30,1,1,1,1,1\n"),
                       "line 1: track id 1e30 is beyond the 64-bit integers"),
    "coco huge track": ("coco", _coco({**BASE, "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 1, 1], "track_id": 2**63}]}),
        r"annotations\[0\] \(id 1\): track id 9223372036854775808 is beyond"),
    "coco long integer": ("coco", _text('{"images": [], "categories": [], "x": ' + "7" * 5000
                                        + "}", ".json"), "is not JSON this reader can take"),
    # a corner x + w past the largest float: it was saved, and the save refused "inf"
    # naming output_json, not the file and line
    "coco box overflow": ("coco", _coco({**BASE, "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1e308, 1, 1e308, 1]}]}),
        r"annotations\[0\] \(id 1\): box .* reaches beyond the largest number"),
    "mot box overflow": ("mot", _text("1,1,1e308,1,1e308,1,1\n"),
                         "line 1: box .* reaches beyond the largest number"),
    "coco integer box overflow": ("coco", _coco({**BASE, "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10**400, 1, 1, 1], "score": 1}]}),
        r"annotations\[0\] \(id 1\): box .* not a finite number"),
    "coco integer score overflow": ("coco", _coco({**BASE, "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 1, 1], "score": 10**400}]}),
        "score 1000.* is not a finite number"),
    # float() reads these as numbers: '1_0' as frame 10, other scripts' digits as ours
    "mot underscore": ("mot", _text("1_0,1,1,1,1,1,1\n"), "line 1: '1_0' is not a number"),
    "mot arabic-indic digit": ("mot", _text("1,1,\u0661,1,1,1,1\n"),
                               "line 1: '\u0661' is not a number"),
    "yolo full-width digit": ("yolo", _yolo({"classes.txt": "a\n",
                                             "1.txt": "0 \uff10.5 0.5 0.1 0.1\n"}),
                              "line 1: '\uff10.5' is not a number"),
    # counts an import would hold as Python objects, told before parsing: a 28 MB MOT
    # file of 14-byte lines took 2 GB (a 256 MB one 17 GB), 7 GB a 256 MB COCO of "{},"
    "mot too many boxes": ("mot", lambda p: _text("1,1,1,1,1,1,1\n" * (MAX_BOXES + 1))(p),
                           "holds 2,000,001 boxes or more, more than the 2,000,000"),
    "yolo too many boxes": ("yolo", lambda p: _yolo({"classes.txt": "a\n", "1.txt": (
        "0 0.5 0.5 0.1 0.1\n" * (MAX_BOXES + 1))})(p), "more than the 2,000,000 one import"),
    "coco too many objects": ("coco", lambda p: _text(
        '{"images": [' + "{}," * 3 * MAX_BOXES + '{}], "categories": []}', ".json")(p),
        r"holds 6,000,004 JSON objects and arrays, more than the 6,000,000"),
    # a JSON escape of half a surrogate pair: the save refused it naming output_json
    "coco lone surrogate label": ("coco", _text(
        '{"images": [{"id": 1, "file_name": "f1.jpg"}], "annotations": [{"id": 1, '
        '"image_id": 1, "category_id": 1, "bbox": [1, 1, 1, 1]}], '
        '"categories": [{"id": 1, "name": "a\\ud800"}]}', ".json"),
        r"categories\[0\]: label .* holds a lone surrogate"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_files_are_refused_and_nothing_is_written(store: Any, timeline: Any,
                                                          tmp_path: Path, case: str) -> None:
    fmt, make, message = HOSTILE[case]
    path = make(tmp_path / "in")
    before = state(store)
    objects = sorted(store.objects.list(""))
    with pytest.raises(LabelFileError, match=message) as info:
        store.import_labels(timeline.id, path, fmt, tag="gt")
    assert str(path) in str(info.value) or os.fspath(path) in info.value.path
    assert state(store) == before
    assert sorted(store.objects.list("")) == objects


def test_a_taken_tag_is_refused_before_anything_is_written(store: Any, timeline: Any,
                                                           tmp_path: Path) -> None:
    path = write_json(tmp_path / "gt.json", coco_doc({1: [[1, 1, 2, 2]]}))
    store.tag(timeline.root_checkpoint_id, "gt")
    before = state(store)
    with pytest.raises(ConflictError, match="tag 'gt' already names"):
        store.import_labels(timeline.id, path, "coco", tag="gt")
    with pytest.raises(InvalidInputError, match="format must be one of"):
        store.import_labels(timeline.id, path, "voc")
    with pytest.raises(InvalidInputError, match="frames must be"):
        store.import_labels(timeline.id, path, "coco", frames="time")
    with pytest.raises(InvalidInputError, match="force_tag must be True or False"):
        store.import_labels(timeline.id, path, "coco", tag="gt", force_tag="yes")
    assert state(store) == before
    moved = store.import_labels(timeline.id, path, "coco", tag="gt", force_tag=True)
    assert store.tag_target("gt") == moved != timeline.root_checkpoint_id


def test_crowd_regions_are_reported_not_dropped(store: Any, timeline: Any,
                                                tmp_path: Path) -> None:
    doc = coco_doc({1: [[1, 1, 2, 2], [3, 3, 4, 4]]})
    doc["annotations"][1]["iscrowd"] = 1
    result = import_labels(store, timeline.id, write_json(tmp_path / "gt.json", doc), "coco")
    assert result.boxes == 1
    assert result.skipped == (("annotations[1] (id 2)", "a crowd region (iscrowd 1), not a box"),)


def test_export_refuses_a_non_empty_yolo_directory_and_writes_nothing(
        store: Any, timeline: Any, tmp_path: Path) -> None:
    cid = store.save_stage_output(timeline.id, None, "detect", {"frames": [
        {"sequence": 1, "detections": [{"box": [1, 1, 2, 2], "label": "a"}]}]})
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(LabelFileError, match="not an empty directory"):
        store.export_labels(cid, "detect", target, "yolo")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    with pytest.raises(InvalidInputError, match=r"frame 0: detection 0"):
        bad = store.save_stage_output(timeline.id, None, "detect", {"frames": [
            {"sequence": 0, "detections": [{"box": [5, 1, 2, 2]}]}]})
        store.export_labels(bad, "detect", tmp_path / "x.json", "coco")
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("odd", ["a\nb", " car", "car ", "x\u2028y", "a\rb"])
def test_a_label_classes_txt_cannot_give_back_is_refused_by_yolo_export(
        store: Any, timeline: Any, tmp_path: Path, odd: str) -> None:
    """classes.txt is one name a line, stripped: a label "a\nb" took two lines and moved
    every later class by one, so a "car" box read back as "b", silently."""
    cid = store.save_stage_output(timeline.id, None, "detect", {"frames": [
        {"sequence": 1, "detections": [{"box": [1, 1, 9, 9], "label": odd},
                                       {"box": [2, 2, 8, 8], "label": "car"},
                                       {"box": [3, 3, 7, 7], "label": "zebra"}]}]})
    with pytest.raises(LabelFileError, match="cannot be a YOLO class name"):
        store.export_labels(cid, "detect", tmp_path / "out", "yolo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # nothing written
    store.export_labels(cid, "detect", tmp_path / "out.json", "coco")  # COCO keeps it
    back = store.import_labels(timeline.id, tmp_path / "out.json", "coco", stage="back")
    assert [d["label"] for d in boxes_of(store, back, "back")[1]] == [odd, "car", "zebra"]


@pytest.mark.parametrize("fmt,name", [("coco", "out.json"), ("mot", "out.txt"), ("yolo", "out")])
def test_export_into_a_missing_directory_is_refused_and_creates_nothing(
        store: Any, timeline: Any, tmp_path: Path, fmt: str, name: str) -> None:
    """A mistyped directory is reported, never created (as bundle export does)."""
    cid = store.save_stage_output(timeline.id, None, "detect", {"frames": [
        {"sequence": 1, "detections": [{"box": [1, 1, 2, 2], "label": "a"}]}]})
    with pytest.raises(LabelFileError, match=r"typo-dir/sub is not a directory"):
        store.export_labels(cid, "detect", tmp_path / "typo-dir" / "sub" / name, fmt)
    assert not (tmp_path / "typo-dir").exists()


@pytest.mark.parametrize("fmt", ["coco", "mot", "yolo"])
def test_exported_files_get_the_mode_the_umask_gives(store: Any, timeline: Any, tmp_path: Path,
                                                    fmt: str) -> None:
    """A label file was 0600 whatever the umask (mkstemp), and a YOLO directory 0700
    (mkdtemp): unreadable to a team."""
    cid = store.save_stage_output(timeline.id, None, "detect", {"frames": [
        {"sequence": 1, "detections": [{"box": [1, 1, 2, 2], "label": "a"}]}]})
    old = os.umask(0o022)
    try:
        path = tmp_path / f"out.{fmt}"
        store.export_labels(cid, "detect", path, fmt)
        if fmt == "yolo":
            assert os.stat(path).st_mode & 0o777 == 0o755
            assert {os.stat(f).st_mode & 0o777 for f in path.iterdir()} == {0o644}
        else:
            assert os.stat(path).st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


@pytest.mark.parametrize("fmt", ["coco", "mot"])
def test_export_refuses_an_existing_file_unless_overwrite(store: Any, timeline: Any,
                                                         tmp_path: Path, fmt: str) -> None:
    """A user's file was silently replaced, while YOLO refused a non-empty directory."""
    cid = store.save_stage_output(timeline.id, None, "detect", {"frames": [
        {"sequence": 1, "detections": [{"box": [1, 1, 2, 2], "label": "a"}]}]})
    path = tmp_path / "gt.json"
    path.write_text("mine")
    with pytest.raises(LabelFileError, match=r"gt\.json: already exists; .*overwrite=True"):
        store.export_labels(cid, "detect", path, fmt)
    assert path.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.json", "store"]  # no temporary
    with pytest.raises(InvalidInputError, match="overwrite must be True or False"):
        store.export_labels(cid, "detect", path, fmt, overwrite="yes")
    assert path.read_text() == "mine"
    store.export_labels(cid, "detect", path, fmt, overwrite=True)
    assert path.read_text() != "mine"
    assert store.import_labels(timeline.id, path, fmt)


@pytest.mark.parametrize("fmt", ["coco", "mot", "yolo"])
@pytest.mark.parametrize("det", [
    {"box": [0, 0, 1e308, 1e308], "label": "a"},  # COCO's area
    {"box": [-1.7e308, 0, 1.7e308, 1], "label": "a"},  # the width
    {"box": [1.7e308, 0, 1.7e308, 1], "label": "a"},  # YOLO's centre
    {"box": [0, 0, 10**400, 1], "label": "a"},  # an integer beyond a float
    {"box": [0, 0, 1, 1], "label": "a", "score": 10**400},
], ids=["area", "width", "centre", "integer", "score"])
def test_a_box_no_label_file_can_hold_is_a_typed_error_and_writes_nothing(
        store: Any, timeline: Any, tmp_path: Path, fmt: str, det: dict[str, Any]) -> None:
    """A stored output holds any finite JSON number (a bundle's or a peer's too): a box
    whose width, centre or area overflows a float made json.dumps raise ValueError
    (COCO) and number_text OverflowError (MOT, YOLO) out of export_labels."""
    cid = store.save_stage_output(timeline.id, None, "detect", {"frames": [
        {"sequence": 1, "detections": [{"box": [1, 1, 2, 2], "label": "a"}, det]}]})
    out = tmp_path / "out"
    out.mkdir()
    path = out / {"coco": "gt.json", "mot": "gt.txt", "yolo": "gt"}[fmt]
    with pytest.raises(InvalidInputError, match=r"cannot be written as a label file: frame 1 "
                                                r"has a detection whose .* beyond the largest"):
        store.export_labels(cid, "detect", path, fmt)
    assert list(out.iterdir()) == []


def test_overwrite_never_puts_a_file_in_place_of_a_pipe_or_a_link(
        store: Any, timeline: Any, tmp_path: Path) -> None:
    """export_labels and export_bundle with overwrite=True write aside and rename: a pipe
    (a device, a socket) at the path is refused, nothing written; a symlink to a file is
    written through and stays a link (the CLI did so, the API renamed over both)."""
    import zipfile

    from localckpt.bundle import export_bundle

    cid = store.save_stage_output(timeline.id, None, "detect", {"frames": [
        {"sequence": 1, "detections": [{"box": [1, 1, 2, 2], "label": "a"}]}]})
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(InvalidInputError, match="is not a regular file"):
        store.export_labels(cid, "detect", pipe, "coco", overwrite=True)
    with pytest.raises(InvalidInputError, match="is not a regular file"):
        export_bundle(store, timeline.id, pipe, overwrite=True)
    assert pipe.is_fifo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "store"]  # no temporary
    for name, export, written in (
            ("gt.json", lambda p: store.export_labels(cid, "detect", p, "coco",
                                                      overwrite=True),
             lambda p: "annotations" in json.loads(p.read_text())),
            ("b.zip", lambda p: export_bundle(store, timeline.id, p,
                                                        overwrite=True),
             zipfile.is_zipfile)):
        target, link = tmp_path / name, tmp_path / f"link-{name}"
        target.write_text("mine")
        link.symlink_to(target.name)
        export(link)
        assert link.is_symlink() and os.readlink(link) == target.name
        assert written(target)


def test_export_to_a_directory_names_it(store: Any, timeline: Any, tmp_path: Path) -> None:
    cid = store.save_stage_output(timeline.id, None, "detect", {"frames": [
        {"sequence": 1, "detections": [{"box": [1, 1, 2, 2], "label": "a"}]}]})
    (tmp_path / "d").mkdir()
    for overwrite in (False, True):
        with pytest.raises(LabelFileError, match="is a directory; name a file in it"):
            store.export_labels(cid, "detect", tmp_path / "d", "coco", overwrite=overwrite)
    assert list((tmp_path / "d").iterdir()) == []


@pytest.mark.parametrize("fmt", ["coco", "mot", "yolo"])
@pytest.mark.parametrize("name", ["x" * 300, "a\x00b"])
def test_a_path_the_system_refuses_is_a_label_file_error(store: Any, timeline: Any,
                                                         tmp_path: Path, fmt: str,
                                                         name: str) -> None:
    """A name too long or holding a NUL: a typed error naming the path, nothing left."""
    cid = store.save_stage_output(timeline.id, None, "detect", {"frames": [
        {"sequence": 1, "detections": [{"box": [1, 1, 2, 2], "label": "a"}]}]})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(LabelFileError,
                       match=r"cannot write it: (File name too long|embedded null)"):
        store.export_labels(cid, "detect", out / name, fmt)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("info", [{"fps": 10**400}, {"fps": 25, "duration": 10**400},
                                  {"fps": 25, "duration": 1e308}],
                         ids=["fps", "duration", "duration-float"])
def test_source_details_beyond_a_float_are_a_typed_error_or_unknown(
        info: dict[str, Any], new_store: Any, tmp_path: Path) -> None:
    """A timeline's source_info is any JSON (a bundle's too): frames='source' took its
    fps and duration with math.isfinite and float(), which raise OverflowError for an
    integer beyond a float. (Imported into PostgreSQL: an embedded catalog cannot read
    such an integer back yet: test_hostile_crafted's xfail.)"""
    import io
    import zipfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from localckpt.bundle import export_bundle, import_bundle

    src = new_store("memory")
    tl = src.create_timeline("a.mp4", "p", [np.zeros((8, 8, 3), np.uint8)] * 3, fps=1.0)
    export_bundle(src, tl.id, tmp_path / "a.lckpt")
    with zipfile.ZipFile(tmp_path / "a.lckpt") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    table = pq.read_table(io.BytesIO(members["timelines.parquet"]))
    rows = [{**r, "source_info": json.dumps(info)} for r in table.to_pylist()]
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), buf)
    members["timelines.parquet"] = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "b.lckpt", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    dst = new_store("postgres-local")
    import_bundle(dst, tmp_path / "b.lckpt")
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [{"id": 1, "file_name": "frame_000025.jpg"}],
                              "annotations": [], "categories": []}))
    if "duration" in info:  # read as the video's length (or none): frame 25 matches
        assert import_labels(dst, tl.id, gt, "coco", frames="source").frames == 1
    else:
        with pytest.raises(InvalidInputError, match="no source frame rate"):
            import_labels(dst, tl.id, gt, "coco", frames="source")


def test_a_label_file_swapped_for_a_pipe_after_its_stat_is_refused_not_waited_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_bounded stats the path, then opens it: a FIFO put there in between (the
    stat is made to see a regular file here, as it would have a moment before) blocked
    the open until something wrote to the pipe. It opens without blocking and checks
    what it opened."""
    import threading

    from localckpt.labels import _common

    regular, pipe = tmp_path / "labels.json", tmp_path / "pipe.json"
    regular.write_text("{}")
    os.mkfifo(pipe)
    monkeypatch.setattr(_common, "_check_regular", lambda path, what: os.stat(regular))
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            _common.read_bounded(pipe)
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked in open(): let it go, then fail
        with open(pipe, "wb"):
            pass
        reader.join(10)
        pytest.fail("reading a label file that became a pipe blocked in open()")
    assert len(outcome) == 1 and isinstance(outcome[0], _common.LabelFileError)
    assert "not a regular file" in str(outcome[0])
