"""Checking arguments at the public boundary, so that no value a caller passes becomes a
foreign exception inside.

The values that slip through hand-written checks are of a few kinds: integers too large
for ``float()`` or ``repr()`` (``10**5000``: OverflowError, ValueError), containers too
deep for ``repr()`` (RecursionError), text with lone surrogates or NUL characters, and
the wrong type altogether. These helpers refuse each with InvalidInputError, and
:func:`shown` describes any value for a message without failing on it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal, overload

from .errors import InvalidInputError

__all__ = ["boolean", "integer", "number", "shown", "text", "with_article"]

def shown(value: Any, limit: int = 60) -> str:
    """A short description of any value for an error message: its repr when that is
    short and printable, else its type (never raises)."""
    if isinstance(value, str | bytes | numbers.Number | type(None)):
        try:
            text = repr(value)
        except (ValueError, RecursionError):  # an int beyond Python's printing limit
            return "an integer too large to print"
        except Exception:  # a Number type of a repr that fails: said by its type
            return with_article(type(value).__name__)
        return text if len(text) <= limit else text[: limit - 3] + "..."
    return with_article(type(value).__name__)


def with_article(name: str) -> str:
    """name with its indefinite article: "a dict", "an int64", "a UUID" (by its first
    letter; a type name starting with u is mostly said "you": uint8, UUID)."""
    return f"{'an' if name[:1].lower() in 'aeio' else 'a'} {name}"


def boolean(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{what} must be True or False, not {shown(value)}")
    return value


def number(value: Any, what: str, *, low: float | None = None, high: float | None = None,
           none: bool = False, cli: str | None = None) -> float | None:
    """A finite real number within [low, high] as a float (None when none allows it)."""
    if value is None and none:
        return None
    as_float = _finite(value) if isinstance(value, numbers.Real) and \
        not isinstance(value, bool) else None
    ok = as_float is not None and not (
        (low is not None and as_float < low) or (high is not None and as_float > high))
    if not ok:
        span = ("" if low is None and high is None else
                f" >= {low:g}" if high is None else
                f" up to {high:g}" if low is None else f" from {low:g} to {high:g}")
        raise InvalidInputError(f"{what} must be a finite number{span}, not {shown(value)}",
                                cli=None if cli is None else
                                f"{cli} must be a finite number{span}, not {shown(value)}")
    return as_float


def _finite(value: numbers.Real) -> float | None:
    try:
        as_float = float(value)
    except (OverflowError, ValueError, TypeError):  # 10**5000 has no float
        return None
    return as_float if math.isfinite(as_float) else None


@overload
def integer(value: Any, what: str, *, low: int | None = None, high: int | None = None,
            none: Literal[False] = False) -> int: ...


@overload
def integer(value: Any, what: str, *, low: int | None = None, high: int | None = None,
            none: bool) -> int | None: ...


def integer(value: Any, what: str, *, low: int | None = None, high: int | None = None,
            none: bool = False) -> int | None:
    """An integer (not a bool) within [low, high] as an int (None when none allows it):
    numpy's integers too, as Python's own operators take them (a sequence from
    ``np.arange``, a count from an array's ``sum()``)."""
    if value is None and none:
        return None
    number = None if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
        else int(value)
    if number is None or (low is not None and number < low) or (high is not None
                                                                 and number > high):
        span = ("" if low is None and high is None else
                f" >= {low}" if high is None else
                f" <= {high}" if low is None else f" from {low} to {high}")
        raise InvalidInputError(f"{what} must be an int{span}, not {shown(value)}")
    return number


def text(value: Any, what: str, *, empty: bool = True) -> str:
    """A str of valid Unicode without NUL characters, as a plain str (a subclass, numpy's
    str_ say, as its text: records hold plain str)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, not {shown(value)}")
    if not empty and not value:
        raise InvalidInputError(f"{what} must not be empty")
    if "\x00" in value:
        raise InvalidInputError(f"{what} {shown(value)} holds a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(f"{what} {shown(value)} holds a lone surrogate, which is "
                                    "not valid Unicode") from None
    return value if type(value) is str else str.__str__(value)
