"""Canonical JSON: one byte string per JSON value, so equal values hash equal."""

from __future__ import annotations

import enum
import json
import math
import random
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from localckpt import CorruptDataError, InvalidInputError
from localckpt.canonical import canonical_bytes, content_hash, json_object, load_canonical
from localckpt.testing import strategies as lst


def _reordered(value: Any, rnd: random.Random) -> Any:
    """The same JSON value with every object's keys in another insertion order."""
    if isinstance(value, dict):
        items = [(k, _reordered(v, rnd)) for k, v in value.items()]
        rnd.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        return [_reordered(v, rnd) for v in value]
    return value


def _structure(value: Any) -> Any:
    """A form where == is JSON equality: 1, 1.0 and True differ; -0.0 is kept apart."""
    if isinstance(value, dict):
        return ("object", frozenset((k, _structure(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_structure(v) for v in value))
    if isinstance(value, float):
        return ("float", value.hex())
    return (type(value).__name__, value)


@given(lst.json_values(), st.randoms())
def test_key_order_does_not_change_bytes_or_hash(value: Any, rnd: random.Random) -> None:
    other = _reordered(value, rnd)
    assert canonical_bytes(other) == canonical_bytes(value)
    assert content_hash(canonical_bytes(other)) == content_hash(canonical_bytes(value))


@given(lst.json_values(), lst.json_values())
def test_equal_hash_iff_equal_json(a: Any, b: Any) -> None:
    same = _structure(a) == _structure(b)
    assert (canonical_bytes(a) == canonical_bytes(b)) == same
    assert (content_hash(canonical_bytes(a)) == content_hash(canonical_bytes(b))) == same


@given(lst.json_values())
def test_round_trip(value: Any) -> None:
    data = canonical_bytes(value)
    back = load_canonical(data, content_hash(data))
    assert _structure(back) == _structure(value)
    assert canonical_bytes(back) == data
    data.decode("utf-8")  # always valid UTF-8


@given(lst.json_values())
def test_bytes_are_compact_sorted_utf8(value: Any) -> None:
    data = canonical_bytes(value)
    assert data == json.dumps(value, sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False).encode("utf-8")


def test_known_bytes() -> None:
    value = {"b": [1, 1.0, True, None], "a": {"é": "😀"}, "": -0.0}
    assert canonical_bytes(value) == (
        '{"":-0.0,"a":{"é":"😀"},"b":[1,1.0,true,null]}'.encode())
    assert content_hash(b"{}") == (
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")


def test_tuples_are_arrays() -> None:
    assert canonical_bytes({"t": (1, 2)}) == canonical_bytes({"t": [1, 2]})


class _Text(str):
    pass


class _Level(enum.IntEnum):
    HIGH = 3


@given(lst.json_values())
def test_unusual_containers_and_scalars_encode_like_plain_ones(value: Any) -> None:
    """Plain dict/list trees take a fast path; Mappings, tuples and subclasses the thorough
    check. Both must give the same bytes for the same JSON value."""
    plain = {"v": value, "n": 3, "s": "x", "l": [1.5]}
    unusual = MappingProxyType({"v": value, "n": _Level.HIGH, "s": _Text("x"),
                                "l": (np.float64(1.5),)})
    assert canonical_bytes(unusual) == canonical_bytes(plain)
    assert json_object(OrderedDict(plain), "c") == json.loads(canonical_bytes(plain))


BAD: dict[str, Any] = {
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
    "nested NaN": {"x": [1, {"y": math.nan}]},
    "int key": {1: "int key"},
    "None key": {"ok": {None: 1}},
    "tuple key": {(1, 2): "tuple key"},
    "bool key": {True: 1},
    "set": {1, 2},
    "frozenset": {"s": frozenset()},
    "bytes": b"bytes",
    "bytearray": {"b": bytearray(b"x")},
    "object": {"o": object()},
    "complex": {"c": 1 + 2j},
    "lone surrogate": "\ud800",
    "lone surrogate key": {"\udfff": 1},
    "lone surrogate in list": ["ok", "x\udc80y"],
    "int key inside a tuple": {"t": ({1: "x"},)},
    "int key in a Mapping": {"m": MappingProxyType({2: "x"})},
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_non_json_is_rejected(case: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        canonical_bytes(BAD[case], "output")
    assert isinstance(info.value, ValueError)
    assert "output" in str(info.value), "the message must say where the bad value is"


@given(lst.bad_json_values())
def test_non_json_anywhere_is_rejected(bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        canonical_bytes(bad)
    with pytest.raises(InvalidInputError):
        json_object(bad, "config")


def test_too_deep_is_rejected() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidInputError, match="too deeply"):
        canonical_bytes(deep, "output")
    with pytest.raises(InvalidInputError, match="too deeply"):
        json_object({"x": deep}, "config")
    shallow: Any = []
    for _ in range(100):
        shallow = [shallow]
    assert load_canonical(canonical_bytes(shallow)) == shallow


def test_json_object() -> None:
    assert json_object(None, "stats") == {}
    src = {"a": [1, {"b": 2}]}
    copy = json_object(src, "stats")
    assert copy == src
    src["a"][1]["b"] = 3  # type: ignore[index]
    assert copy == {"a": [1, {"b": 2}]}, "json_object must return an independent copy"
    for bad in ([1], "text", 3, [("a", 1)]):
        with pytest.raises(InvalidInputError, match="stats"):
            json_object(bad, "stats")


def test_load_checks_hash_and_syntax() -> None:
    data = canonical_bytes({"a": 1})
    assert load_canonical(data, content_hash(data)) == {"a": 1}
    assert load_canonical(data) == {"a": 1}
    with pytest.raises(CorruptDataError):
        load_canonical(data, content_hash(b"other"))
    broken = b'{"a":'
    with pytest.raises(CorruptDataError):
        load_canonical(broken, content_hash(broken))


def test_numpy_scalars_are_stored_as_their_json_equivalents() -> None:
    import numpy as np

    from localckpt.canonical import canonical_bytes, json_object

    value = {"n": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True), "g": np.float64(2.5)}
    assert canonical_bytes(value) == canonical_bytes({"n": 3, "f": 0.5, "b": True, "g": 2.5})
    assert json_object(value, "stats") == {"n": 3, "f": 0.5, "b": True, "g": 2.5}
    assert type(json_object(value, "stats")["n"]) is int
    with pytest.raises(InvalidInputError, match="NaN"):
        canonical_bytes({"x": np.float32("nan")})
    with pytest.raises(InvalidInputError, match="ndarray"):
        canonical_bytes({"x": np.zeros(3)})
