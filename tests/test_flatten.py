"""flatten(): the column-at-a-time path gives what parsing frame by frame gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localckpt import derived
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.errors import InvalidInputError
from localckpt.flatten import _frame_by_frame, flatten
from localckpt.framediff import frames_of

coordinate = st.one_of(st.integers(-5, 50), st.floats(-5, 50, allow_nan=False))
good_box = st.tuples(coordinate, coordinate, coordinate, coordinate).map(
    lambda b: [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])])
odd_value = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.integers(),
                      st.lists(st.integers(), max_size=5))
good_item = st.fixed_dictionaries(
    {"box": good_box},
    optional={"label": st.sampled_from(["person", "car"]), "score": st.floats(0, 1),
              "track_id": st.one_of(st.integers(0, 9), st.booleans(), st.sampled_from(
                  [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30]))})
bad_item = st.one_of(
    good_box,  # a bare box: read frame by frame
    st.fixed_dictionaries({"box": odd_value}),
    st.fixed_dictionaries({"box": good_box, "label": odd_value}),
    st.fixed_dictionaries({"box": good_box, "score": odd_value}),
    good_box.map(lambda b: {"box": [b[2] + 1, b[1], b[0], b[3]]}),  # x1 > x2
    good_box.map(lambda b: {"box": [b[0], True, b[2], b[3]]}))


@st.composite
def outputs(draw: Any) -> dict[str, Any]:
    """Frame-keyed outputs, half of them in the common shape (one key, good boxes)."""
    common = draw(st.booleans())
    key = draw(st.sampled_from(["detections", "boxes"]))
    item = good_item if common else st.one_of(good_item, bad_item)
    detections = st.lists(item, min_size=draw(st.integers(0, 1)) if common else 0,
                          max_size=4)
    frame = st.fixed_dictionaries({key: detections}) if common else st.one_of(
        st.fixed_dictionaries({"detections": detections}),
        st.fixed_dictionaries({"boxes": detections}),
        st.fixed_dictionaries({"other": st.integers()}),
        odd_value, st.fixed_dictionaries({"detections": odd_value}))
    seqs = draw(st.lists(st.integers(0, 200), min_size=int(common), max_size=12, unique=True))
    if draw(st.booleans()):
        return {"frames": {str(s): draw(frame) for s in seqs}}
    values = [draw(frame) for _ in seqs]  # a list, in any order: {"sequence": n, ...}
    return {"frames": [{**(v if isinstance(v, dict) else {"value": v}), "sequence": s}
                       for s, v in zip(seqs, values, strict=True)], "model": "m"}


def _columns(flat: Any) -> list[list[Any]]:
    return [list(flat.frames), *(list(getattr(flat, name)) for name in (
        "sequence", "index", "label", "score", "x1", "y1", "x2", "y2", "track_id")),
        [flat.opaque]]


@settings(max_examples=300, deadline=None)
@given(outputs(), st.booleans(), st.booleans())
def test_flatten_equals_frame_by_frame(output: dict[str, Any], strict: bool,
                                       tracks: bool) -> None:
    frames = frames_of(output)
    try:
        expected = _frame_by_frame(sorted(frames), frames, "o", strict, tracks)
    except InvalidInputError as exc:
        with pytest.raises(InvalidInputError) as info:
            flatten(output, "o", strict=strict, tracks=tracks)
        assert str(info.value) == str(exc)
        return
    got = flatten(output, "o", strict=strict, tracks=tracks)
    assert _columns(got) == _columns(expected)
    assert [type(v) for v in got.x1] == [type(v) for v in expected.x1]  # ints stay ints


def test_a_well_formed_output_takes_the_column_path() -> None:
    from localckpt import flatten as module

    output = {"frames": {"0": {"detections": [{"box": [0, 0, 1, 1], "label": "a"}]},
                         "3": {}, "5": {"boxes": [{"box": [1.5, 2, 3, 4], "score": 0.5}]}}}
    flat = module._all_at_once([0, 3, 5], list(output["frames"].values()), True)
    assert flat is not None
    assert (list(flat.sequence), list(flat.label), list(flat.score)) == (
        [0, 5], ["a", None], [None, 0.5])
    assert module._all_at_once([0], [{"detections": [[0, 0, 1, 1]]}], True) is None


@settings(max_examples=300, deadline=None)
@given(outputs())
def test_a_derived_table_from_json_text_equals_the_one_from_python(output: dict[str, Any]
                                                                   ) -> None:
    """Arrow's reading of the text (the common shape) or, for any other, the fallback
    gives the rows, frames and counts that flattening the decoded output gives."""
    text = canonical_bytes(output, "o")
    h = content_hash(text)
    got, expected = derived.make_from_text(h, text), derived.make(h, output)
    assert got.table.equals(expected.table)
    assert (got.frame_keyed, got.frames, got.opaque) == (
        expected.frame_keyed, expected.frames, expected.opaque)


def test_the_common_shape_is_read_by_arrow() -> None:
    from localckpt.arrow_flatten import detections_table

    output = {"frames": [{"sequence": 7, "detections": [{"box": [1, 2, 3, 4], "label": "a"}]},
                         {"sequence": 2, "detections": [{"box": [0, 0, 1, 1], "score": 0.5,
                                                         "track_id": 3}, {"box": [0, 0, 2, 2]}]}],
              "config": {"k": 1}}
    found = detections_table("h", canonical_bytes(output, "o"), derived.detections_schema())
    assert found is not None
    table, frames = found
    assert frames == (2, 7)
    assert table.column("sequence").to_pylist() == [2, 2, 7]
    assert table.column("index").to_pylist() == [0, 1, 0]
    assert table.column("track_id").to_pylist() == [3, None, None]
    assert table.column("x2").to_pylist() == [1.0, 2.0, 3.0]
    for odd in ({"frames": {"2": {"detections": []}}},  # keyed by number: Python's
                {"frames": [{"sequence": 1, "detections": [[0, 0, 1, 1]]}]},  # a bare box
                {"frames": [{"sequence": 1, "detections": [{"box": [0, True, 1, 1]}]}]},
                {"frames": [{"sequence": 1, "detections": [{"box": [2, 0, 1, 1]}]}]},
                {"frames": [{"sequence": 1, "detections": [{"box": [0, 0, 1]}]}]},
                {"frames": [{"sequence": 1, "detections": [{"box": [0, 0, 1, 2**60]}]}]},
                {"frames": [{"sequence": 1, "detections": [{"box": [0, 0, 1, 1]}]},
                            {"sequence": 1, "detections": []}]}):
        assert detections_table("h", canonical_bytes(odd, "o"),
                                derived.detections_schema()) is None, odd
