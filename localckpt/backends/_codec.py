"""JSON for the embedded catalog's own files: fast where it is safe, exact always.

orjson encodes ~10x faster than the stdlib, but refuses integers beyond 64 bits and, when
decoding, silently turns them into floats. So: encode with orjson and fall back to the
stdlib for such values; decode log frames (which carry no mark) with the stdlib; mark the
blocks of compacted runs with the encoder that wrote them, and decode the orjson ones
with orjson (they cannot hold such an integer).
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a core dependency
    orjson = None  # type: ignore[assignment]

__all__ = ["dumps", "dumps_marked", "loads", "loads_marked"]

_STD = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def _std(obj: Any) -> bytes:
    return _STD.encode(obj).encode("utf-8")


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes of obj (records: only JSON types, str keys)."""
    if orjson is not None:
        try:
            return orjson.dumps(obj)
        except TypeError:  # an integer beyond 64 bits
            pass
    return _std(obj)


def loads(data: bytes | memoryview) -> Any:
    """Decode unmarked JSON exactly (big integers stay integers)."""
    return json.loads(bytes(data))


def dumps_fast(obj: Any) -> tuple[bool, bytes]:
    """(written by orjson, bytes): orjson's output holds no integer it would misread,
    so it may be decoded with orjson (:func:`loads_fast`)."""
    if orjson is not None:
        try:
            return True, orjson.dumps(obj)
        except TypeError:
            pass
    return False, _std(obj)


def loads_fast(data: bytes | memoryview) -> Any:
    """Decode what orjson wrote (dumps_fast said so)."""
    if orjson is not None:
        return orjson.loads(data)
    return json.loads(bytes(data))


def dumps_marked(obj: Any) -> bytes:
    """JSON bytes prefixed by the encoder's mark (b"o" orjson, b"j" stdlib)."""
    if orjson is not None:
        try:
            return b"o" + orjson.dumps(obj)
        except TypeError:
            pass
    return b"j" + _std(obj)


def loads_marked(data: bytes) -> Any:
    """Decode what dumps_marked wrote; ValueError for anything else."""
    mark = data[:1]
    if mark == b"o":
        if orjson is not None:
            return orjson.loads(data[1:])
        return json.loads(data[1:])
    if mark == b"j":
        return json.loads(data[1:])
    raise ValueError(f"unknown block encoding {mark!r}")
