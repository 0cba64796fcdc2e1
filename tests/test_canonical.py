"""Canonical JSON: one byte string per JSON value, so equal values hash equal."""

from __future__ import annotations

import datetime
import enum
import json
import math
import random
import struct
import tracemalloc
import uuid
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from localckpt import CorruptDataError, InvalidInputError
from localckpt.canonical import (
    canonical_bytes,
    content_hash,
    json_object,
    load_canonical,
    load_json,
    reference_bytes,
)
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


def _v1(value: Any) -> bytes:
    """Format 1: what localckpt wrote before orjson (Python's json)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _small_float(value: Any) -> bool:
    """Floats of magnitude 1e-9 to 1e-4: the only values formats 1 and 2 write apart."""
    if isinstance(value, dict):
        return any(_small_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_small_float(v) for v in value)
    return isinstance(value, float) and 1e-10 < abs(value) < 1e-4


@given(lst.json_values())
def test_bytes_are_compact_sorted_utf8_and_match_the_reference(value: Any) -> None:
    data = canonical_bytes(value)
    assert data == reference_bytes(value)
    if not _small_float(value):
        assert data == _v1(value)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [1e-5, -1.5e-5, 9.99e-5, 1e-6, 1e-9, 1e-10, 1e15, 9.9e15, 1e16, 5e-324, 0.0, -0.0])))
def test_float_formatting_of_both_paths_agree(floats: list[float]) -> None:
    assert reference_bytes(floats) == orjson.dumps(floats)
    assert load_canonical(canonical_bytes(floats)) == floats


def test_random_float_bit_patterns_format_like_orjson() -> None:
    rnd = random.Random(7)
    for _ in range(20000):
        x = struct.unpack("<d", struct.pack("<Q", rnd.getrandbits(64)))[0]
        if math.isfinite(x):
            assert reference_bytes(x) == orjson.dumps(x), x
    for power in range(-12, 20):
        for digits in ("1", "1.5", "9.999", "1.2345678901234567"):
            x = float(f"{digits}e{power}")
            assert reference_bytes(x) == orjson.dumps(x), x


def test_format_1_and_2_differ_only_for_small_floats() -> None:
    assert canonical_bytes({"x": 1e-05}) == b'{"x":0.00001}'
    assert _v1({"x": 1e-05}) == b'{"x":1e-05}'
    assert canonical_bytes([1e-07, 1.5e-9, 1e-10, 1e16, 0.0001]) == (
        b"[1e-7,1.5e-9,1e-10,1e+16,0.0001]")
    assert _v1([1e-10, 1e16, 0.0001, 123.0]) == canonical_bytes([1e-10, 1e16, 0.0001, 123.0])
    old = _v1({"small": 2.5e-06, "big": 2**70})
    assert load_canonical(old, content_hash(old)) == {"small": 2.5e-06, "big": 2**70}


def test_integers_beyond_64_bits_and_deep_nesting_take_the_exact_path() -> None:
    value = {"big": [2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30], "f": 1e-5}
    data = canonical_bytes(value)
    assert data == (b'{"big":[18446744073709551615,18446744073709551616,-9223372036854775808,'
                    b'-9223372036854775809,1000000000000000000000000000000],"f":0.00001}')
    assert load_canonical(data) == value
    assert type(load_canonical(data)["big"][4]) is int
    deep: Any = [1.5e-5]
    for _ in range(255):  # deeper than orjson's limit (254), within MAX_DEPTH (256)
        deep = [deep]
    assert canonical_bytes(deep) == reference_bytes(deep)
    assert load_canonical(canonical_bytes(deep)) == deep


def test_values_that_contain_themselves_are_rejected() -> None:
    d: dict[str, Any] = {}
    d["self"] = d
    lst_: list[Any] = [1]
    lst_.append(lst_)
    deeper: dict[str, Any] = {"a": [{"b": None}]}
    deeper["a"][0]["b"] = deeper["a"]
    via_tuple: list[Any] = []
    via_tuple.append((via_tuple,))
    for value in (d, lst_, deeper, via_tuple, {"ok": 1, "m": MappingProxyType(d)}):
        with pytest.raises(InvalidInputError, match="contains itself"):
            canonical_bytes(value, "output")
    with pytest.raises(InvalidInputError, match="contains itself"):
        json_object(d, "stats")
    shared = [1, 2]
    assert canonical_bytes({"a": shared, "b": shared}) == b'{"a":[1,2],"b":[1,2]}'


class _Colour(enum.Enum):
    RED = "red"


@pytest.mark.parametrize("value", [
    uuid.UUID(int=1), _Colour.RED, datetime.datetime(2026, 1, 1), datetime.date(2026, 1, 1),
    orjson.Fragment(b"[1, 2]"), np.zeros(2), np.datetime64("2026-01-01"),
])
def test_types_orjson_would_encode_natively_are_rejected(value: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"output\[0\]\['v'\]"):
        canonical_bytes([{"v": value}], "output")


@pytest.mark.parametrize("value", [
    [None, math.nan], [math.inf, None, "null"], {"null": None, "x": [None, -math.inf]},
    [np.float32("nan"), None], {"a": math.nan, "b": None}, {"a": math.inf},
])
def test_nan_among_nones_is_rejected(value: Any) -> None:
    with pytest.raises(InvalidInputError, match="NaN"):
        canonical_bytes(value, "output")


def test_none_and_null_text_encode() -> None:
    assert canonical_bytes([None, "null", {"null": None}]) == b'[null,"null",{"null":null}]'


def test_large_outputs_encode_with_one_copy_of_the_bytes() -> None:
    """The census holds references in bounded chunks, never a second copy."""
    rnd = random.Random(3)
    value = {"frames": [{"sequence": i, "detections": [
        {"box": [rnd.uniform(0, 1280) for _ in range(4)], "label": "player",
         "score": rnd.random()} for _ in range(5)]} for i in range(3000)]}
    size = len(canonical_bytes(value))
    tracemalloc.start()
    try:
        data = canonical_bytes(value)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data == reference_bytes(value)
    assert peak < 2.2 * size, (peak, size)
    tracemalloc.start()
    try:
        back = load_canonical(data, content_hash(data))
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert back == value
    assert current > size  # the decoded value itself; no copy of the bytes survives


def test_load_json_keeps_big_integers_exact() -> None:
    assert load_json(b'[18446744073709551616,-9223372036854775809,1]') == [
        2**64, -(2**63) - 1, 1]
    assert load_json('{"a":"1234567890123456789012"}') == {"a": "1234567890123456789012"}
    assert load_json(b"[0.000012345678901234567]") == [1.2345678901234567e-05]


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
    with pytest.raises(InvalidInputError, match=r"\['x'\] is a ndarray, .*convert it with "
                       r"\.tolist\(\)$"):  # an array is not converted: say how
        canonical_bytes({"x": np.zeros(3)})
    with pytest.raises(InvalidInputError, match=r"is a set, which .* are converted\)$"):
        canonical_bytes({"x": {1}})


def test_long_fraction_digits_keep_the_fast_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.000012345678901234567 holds 21 digits in a row, but after a '.': not an integer."""
    calls: list[bytes] = []
    real = json.loads
    monkeypatch.setattr(json, "loads", lambda d, *a, **k: calls.append(d) or real(d, *a, **k))
    assert load_json(b"[0.000012345678901234567,1]") == [1.2345678901234567e-05, 1]
    assert calls == []
    assert load_json(b"[1,12345678901234567890]") == [1, 12345678901234567890]
    assert len(calls) == 1


@given(lst.json_values())
def test_checked_bytes_equal_canonical_bytes(value: Any) -> None:
    from localckpt.canonical import checked_bytes

    assert checked_bytes(value) == canonical_bytes(value)


@pytest.mark.parametrize("text", [
    b"12345678901234567890", b"[1,-12345678901234567890]", b'{"a":12345678901234567890}',
    b"[" + b"1," * 200000 + b"12345678901234567890]",  # across a scan chunk boundary
])
def test_long_integers_are_found_anywhere(text: bytes) -> None:
    assert repr(load_json(text)) == repr(json.loads(text))  # ints stay ints


def test_an_orjson_that_formats_otherwise_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """orjson before 3.12 wrote 1e16, not 1e+16: the bytes must not follow orjson's version."""
    import localckpt.canonical as canonical

    assert canonical._FAST  # the installed orjson writes the format
    monkeypatch.setattr(canonical, "_FAST", False)
    value = {"x": [1e16, 1e-05, 2**70], "s": "é"}
    assert canonical_bytes(value) == b'{"s":"\xc3\xa9","x":[1e+16,0.00001,1180591620717411303424]}'
