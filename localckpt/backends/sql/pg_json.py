"""Exact values in PostgreSQL columns that cannot hold every value exactly.

Records must read back equal to what was written, and stage outputs must read back as
the exact canonical bytes their hash was computed from. PostgreSQL changes a few values:

- JSONB keeps numbers as numeric: a float written with a positive exponent (Python
  writes 1e16 as ``1e+16``) reads back as an integer, and ``-0.0`` as ``0.0``;
- neither text nor JSONB can hold the character NUL (``\\x00``).

So every typed column holds a display value that SQL users can query (NUL shown as
U+FFFD), and, only for the rare values it would change, the exact value is kept beside
it as canonical JSON text (``canonical`` for outputs, ``exact`` for records). The usual
case costs one substring scan per value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...canonical import canonical_bytes

__all__ = ["exact_text", "format_1_bytes", "jsonb_column", "read_exact", "text_column"]

NUL, SHOWN_FOR_NUL = "\x00", "\ufffd"
# Canonical JSON text can only be changed by JSONB if it contains one of these:
# b"e+", b"-0.0" or b"\\u0000" (spelled out in jsonb_column, the hot path of every save).


def text_column(value: str | None) -> tuple[str | None, bool]:
    """(what a text column can hold, whether that differs from value)."""
    if value is None or NUL not in value:
        return value, False
    return value.replace(NUL, SHOWN_FOR_NUL), True


def jsonb_column(data: bytes) -> tuple[str, bool]:
    """Canonical JSON bytes -> (text for a jsonb column, whether reading that column back
    would give other canonical bytes)."""
    text = data.decode("utf-8")
    if not (b"e+" in data or b"-0.0" in data or b"\\u0000" in data):
        return text, False
    as_read = json.loads(text, parse_float=_as_jsonb_reads)
    if _has_nul(as_read):
        return canonical_bytes(_without_nul(as_read)).decode("utf-8"), True
    return text, canonical_bytes(as_read) != data


def exact_text(fields: Mapping[str, Any]) -> str | None:
    """The ``exact`` column: canonical JSON of the fields whose columns differ, or None."""
    return canonical_bytes(dict(fields)).decode("utf-8") if fields else None


def format_1_bytes(value: Any) -> bytes:
    """Canonical JSON format 1 (Python's json), in which outputs stored as JSONB before
    schema version 4 were hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def read_exact(exact: str | None) -> dict[str, Any]:
    """Field name -> exact value, from an ``exact`` column."""
    return json.loads(exact) if exact else {}


def _as_jsonb_reads(text: str) -> int | float:
    """What a JSON number (as Python wrote it) reads back as after a trip through JSONB.

    JSONB stores numbers as numeric with the input's scale: no fractional digits left
    after the exponent means an integer on output; numeric has no negative zero.
    """
    from decimal import Decimal  # PostgreSQL writes only: not on every store's open

    number = Decimal(text)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(number)
    return float(number) or 0.0


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(NUL in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(NUL, SHOWN_FOR_NUL)
    if isinstance(value, dict):
        return {k.replace(NUL, SHOWN_FOR_NUL): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value
