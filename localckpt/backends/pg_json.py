"""Stage outputs in a JSONB column without losing their canonical bytes.

An output's address is the SHA-256 of its canonical JSON, so reading it back must give
those exact bytes. JSONB keeps the value, not the text: re-canonicalising what it returns
gives the same bytes except where PostgreSQL changes the value itself:

- a float written with a positive exponent (Python writes 1e16 as ``1e+16``) becomes an
  integer (``10000000000000000``), and ``-0.0`` becomes ``0.0``;
- ``\\u0000`` cannot be stored in JSONB at all.

For those rare outputs the exact text is kept beside the value (``canonical`` column;
``value`` is NULL when JSONB refuses it). Everything else is stored once, as JSONB.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ..canonical import canonical_bytes

__all__ = ["from_columns", "to_columns", "value_from_columns"]

# Canonical text can only be changed by JSONB if it contains one of these.
_HINTS = (b"e+", b"-0.0", b"\\u0000")


def _as_jsonb_reads(text: str) -> int | float:
    """What a JSON number (as Python wrote it) reads back as after a trip through JSONB.

    JSONB stores numbers as numeric with the input's scale: no fractional digits left
    after the exponent means an integer on output; numeric has no negative zero.
    """
    number = Decimal(text)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(number)
    return float(number) or 0.0


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def to_columns(data: bytes) -> tuple[str | None, str | None]:
    """Canonical JSON bytes -> (text for the jsonb ``value`` column, exact ``canonical`` text).

    ``canonical`` is None when JSONB round-trips the bytes (the usual case, decided by a
    substring scan); ``value`` is None when JSONB cannot hold the value.
    """
    text = data.decode("utf-8")
    if not any(hint in data for hint in _HINTS):
        return text, None
    as_read = json.loads(text, parse_float=_as_jsonb_reads)
    if _has_nul(as_read):
        return None, text
    if canonical_bytes(as_read) == data:
        return text, None
    return text, text


def from_columns(value: Any, canonical: str | None) -> bytes:
    """The canonical bytes of a stored output (value as psycopg loaded the jsonb)."""
    if canonical is not None:
        return canonical.encode("utf-8")
    return canonical_bytes(value)


def value_from_columns(value: Any, canonical: str | None) -> Any:
    """The JSON value of a stored output, equal to json.loads of its canonical bytes."""
    return value if canonical is None else json.loads(canonical)
