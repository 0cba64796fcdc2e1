"""Canonical JSON: one byte string per JSON value, so equal values hash equal.

Stage outputs are content-addressed by the SHA-256 of their canonical form; this is
what lets a checkpoint refer to an output instead of copying it. The format is written
down in the README ("Canonical JSON format") for other implementations; in short:
UTF-8, no whitespace, object keys sorted by code point, strings escaped only where JSON
requires it, integers in decimal, floats as their shortest round-trip digits (decimal
notation for exponents -5 to 15, else ``<digits>e<sign><exponent>``).

Version 2 (:data:`FORMAT`) is orjson's output (with sorted keys); version 1 was Python
``json.dumps`` and differs only for floats of magnitude 1e-9 to 1e-4 (``1e-05`` there,
``0.00001`` here; ``1e-07`` there, ``1e-7`` here). A stored output is always verified
against the hash of its stored bytes and never re-encoded, so outputs of either version
read, sync and verify alike.

Why fast: orjson encodes in C; what orjson would silently change (NaN and Infinity
become ``null``; UUIDs, enums and a few other types are encoded natively) is ruled out
by a census of the value's types, taken in C by ``gc.get_referents`` over bounded
chunks, and by counting ``null`` tokens against ``None`` values. Anything unusual
(Mappings, tuples of numpy scalars, subclasses, integers beyond 64 bits, nesting deeper
than orjson's limit of 254, a value that contains itself) takes the thorough Python path,
which gives the same bytes or a typed error naming the bad value's path.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

import orjson

from .arguments import with_article
from .errors import CorruptDataError, InvalidInputError
from .gcpause import gc_paused

__all__ = [
    "FORMAT",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "canonical_bytes",
    "check_stored",
    "checked_bytes",
    "content_hash",
    "json_object",
    "load_canonical",
    "load_json",
    "reference_bytes",
]

#: Version of the canonical bytes this code writes (see the module docstring).
FORMAT = 2

#: Most containers nested in one another that a value may have, whatever the interpreter
#: (what one Python stores must load on the others). orjson itself stops at 254; values
#: of 255-256 levels take the Python path.
MAX_DEPTH = 256

#: Most decimal digits an integer may have (Python's default limit for converting
#: integers to and from text, ``sys.get_int_max_str_digits``): larger ones are refused
#: with InvalidInputError when saved, and read as damage (CorruptDataError) when found in
#: stored or imported JSON. Store them as strings.
MAX_INT_DIGITS = 4300
_INT_BOUND = 10**MAX_INT_DIGITS

_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS  # str/int/float/dict/list subclasses -> _default
    | orjson.OPT_PASSTHROUGH_DATETIME  # datetimes are not JSON: -> _default, which refuses
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_SCALARS = frozenset({str, int, float, bool, type(None)})
_PLAIN = _SCALARS | {dict, list, tuple}
_CHUNK = 4096  # objects per gc.get_referents call: bounds the census's own memory
# An integer orjson cannot decode exactly (beyond 64 bits) is a run of 19 or more digits
# that does not follow a '.' (a float's integer part has at most 16 digits). The scan
# maps digits to "0", "." to itself and every other byte to " ", then looks for " " and
# 19 zeros: C speed, where a regex backtracks over every digit of every float.
_SCAN = bytes(0x30 if 0x30 <= c <= 0x39 else c if c == 0x2E else 0x20 for c in range(256))
_LONG_RUN = b"0" * 19
_LONG_INT = b" " + _LONG_RUN
_SCAN_CHUNK = 1 << 18  # bytes translated at a time (bounds the scan's own memory)
_BIG = 1 << 16  # bytes from which decoding pauses the cyclic GC (see load_json)


class _Unusual(Exception):
    """The fast path cannot vouch for this value: take the thorough one."""


def numpy_scalar(value: Any) -> Any:
    """value as a Python scalar if it is a numpy scalar (numpy imported only if used)."""
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return float(value)
    return None


def _default(value: Any) -> Any:
    """What orjson hands back: subclasses, Mappings and numpy scalars, as json.dumps
    treats them (a str subclass as its text, an int subclass as its integer)."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    scalar = numpy_scalar(value)
    if scalar is not None:
        return scalar
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple):
        return list(value)
    raise TypeError(type(value).__name__)


def _census_is_plain(value: Any, data: bytes) -> bool:
    """True when every object reachable from value is a plain JSON type (so orjson wrote
    exactly the canonical form) and every ``null`` in data is a None (no NaN/Infinity)."""
    nulls = data.count(b"null") if b"null" in data else 0
    if type(value) is dict and _SCALARS.issuperset(map(type, value.values())):
        # the usual config, stats or stage map: keys are str (orjson checked), no nesting
        return (list(value.values()).count(None) if nulls else 0) == nulls
    nones = 0
    get = gc.get_referents
    todo: list[list[Any]] = [[value]]
    while todo:
        items = todo.pop()
        if not _PLAIN.issuperset(map(type, items)):
            return False
        if nulls:
            nones += items.count(None)
        for i in range(0, len(items), _CHUNK):
            refs = get(*items[i : i + _CHUNK])
            if refs:
                todo.append(refs)
    return nones == nulls


# -- the thorough path ------------------------------------------------------------------


def _check_text(text: str, path: str) -> None:
    """Reject lone surrogates: UTF-8 (and every JSON store) cannot hold them."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"{path} holds {text[exc.start:exc.end]!r}, a lone surrogate that is not valid "
                "Unicode; decode the text properly (e.g. with errors='replace')"
            ) from None


def _check(value: Any, path: str, open_ids: set[int]) -> None:
    """Reject anything that is not JSON, naming where; open_ids are the containers on
    the path from the root (a value that contains itself has no JSON form)."""
    if isinstance(value, str):
        _check_text(value, path)
        return
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -_INT_BOUND < value < _INT_BOUND:
            raise InvalidInputError(
                f"{path} is an integer of more than {MAX_INT_DIGITS} digits, more than "
                "localckpt stores (the limit of Python's int-to-text conversion); store it "
                "as a string"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{path} is {value!r}; JSON has no NaN or Infinity")
        return
    scalar = numpy_scalar(value)
    if scalar is not None:
        _check(scalar, path, open_ids)
        return
    if isinstance(value, Mapping | list | tuple):
        if id(value) in open_ids:
            raise InvalidInputError(
                f"{path} contains itself (a reference cycle), which has no JSON form; "
                "store a copy without the cycle"
            )
        open_ids.add(id(value))
        if len(open_ids) > MAX_DEPTH:  # the containers open on this path
            raise RecursionError(f"more than {MAX_DEPTH} levels")
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidInputError(
                        f"{path} has key {key!r} of type {type(key).__name__}; JSON object "
                        "keys must be strings"
                    )
                _check_text(key, f"{path} key")
                _check(item, f"{path}[{key!r}]", open_ids)
        else:
            for i, item in enumerate(value):
                _check(item, f"{path}[{i}]", open_ids)
        open_ids.discard(id(value))
        return
    hint = "; convert it with .tolist()" if _has_tolist(value) else ""  # numpy, pandas
    raise InvalidInputError(
        f"{path} is {with_article(type(value).__name__)}, which is not a JSON value (use "
        f"dict, list, str, int, float, bool or None; numpy scalars are converted){hint}"
    )


def _has_tolist(value: Any) -> bool:
    try:
        return callable(getattr(value, "tolist", None))
    except Exception:  # a __getattr__ of its own that fails
        return False


_escape = json.encoder.encode_basestring  # C, and the escapes orjson writes


def _float_text(value: float) -> str:
    """A float as orjson writes it: repr's digits, decimal from 1e-5 to below 1e16."""
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if not e:
        return text
    power = int(exponent)
    if power == -5:
        sign = "-" if mantissa.startswith("-") else ""
        return f"{sign}0.0000{mantissa.lstrip('-').replace('.', '')}"
    return f"{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"


def _write(value: Any, out: list[str]) -> None:
    """The canonical form in Python: for what orjson refuses (integers beyond 64 bits,
    nesting deeper than 254) and as the reference the fast path is tested against.
    The value has passed _check."""
    if isinstance(value, str):
        out.append(_escape(str.__str__(value)))
    elif value is None:
        out.append("null")
    elif value is True or value is False:
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float_text(float.__float__(value)))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(_escape(str.__str__(key)))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        _write(numpy_scalar(value), out)


def reference_bytes(value: Any, what: str = "value") -> bytes:
    """canonical_bytes through the thorough Python path only (slow; for tests and for
    other implementations to compare with)."""
    try:
        _check(value, what, set())
        out: list[str] = []
        _write(value, out)
    except RecursionError:
        raise _too_deep(what) from None
    return "".join(out).encode("utf-8")


# orjson before 3.12 wrote 1e16 where it now writes 1e+16: the bytes (and so the hashes)
# follow the reference writer above, and orjson is used only where it writes the same.
_PROBE: list[Any] = [1e16, 1e-7, 1e-5, 0.0001, 1e15, 1.5e300, -0.0, 5e-324, 123.0,
                     "".join(map(chr, range(0x80))) + "\u2028\u00e9\U0001f600"]
_FAST = orjson.dumps(_PROBE) == "".join(
    ["[", ",".join(_escape(v) if isinstance(v, str) else _float_text(v) for v in _PROBE),
     "]"]).encode("utf-8")


def canonical_bytes(value: Any, what: str = "value") -> bytes:
    """Encode a JSON value canonically (see the module docstring).

    Raises InvalidInputError for NaN/Infinity, non-string keys, lone surrogates, values
    that contain themselves and non-JSON types, naming where in ``what`` the value is.
    """
    if not _FAST:
        return reference_bytes(value, what)
    try:
        data = orjson.dumps(value, default=_default, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: not JSON, too deep, or a big integer
        return reference_bytes(value, what)
    if _census_is_plain(value, data):
        return data
    try:
        _check(value, what, set())
    except RecursionError:
        raise _too_deep(what) from None
    return data  # unusual but valid: _default gave orjson the JSON equivalents


def record_bytes(value: Any) -> tuple[bytes, bool]:
    """(canonical bytes of a checked record field, whether orjson reads them back exactly).

    orjson writes integers up to 64 bits and reads back exactly what it writes; a value
    it cannot write (an integer beyond 64 bits) takes the reference writer, and its bytes
    must then be read with :func:`load_json`."""
    if _FAST:
        try:
            return orjson.dumps(value, option=_OPTIONS), True
        except TypeError:
            pass
    return checked_bytes(value), False


def checked_bytes(value: Any) -> bytes:
    """canonical_bytes of a value that already passed canonical_bytes (a record's JSON
    field, validated when its Batch was made): the same bytes, without the census."""
    if not _FAST:
        return reference_bytes(value)
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except TypeError:
        return reference_bytes(value)


def _too_deep(what: str) -> InvalidInputError:
    return InvalidInputError(
        f"{what} is nested too deeply (more than {MAX_DEPTH} levels) to be stored as JSON; "
        "flatten it"
    )


def content_hash(data: bytes) -> str:
    """SHA-256 hex digest: the address of a stored output."""
    return hashlib.sha256(data).hexdigest()


def load_json(data: bytes | str) -> Any:
    """Decode JSON text exactly (integers beyond 64 bits stay integers).

    orjson decodes fast but reads such integers as floats, so text that may hold one
    takes the standard library's decoder. Text from 64 KB is decoded with the cyclic GC
    paused: each collection would otherwise rescan every object the process holds."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if _has_long_integer(data):
        return _load_exact(data)
    if len(data) < _BIG:
        return orjson.loads(data)
    with gc_paused():
        return orjson.loads(data)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _exact_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} does not fit a double")
    return value


def _load_exact(data: bytes) -> Any:
    """The standard library's decoder, held to what orjson accepts: no NaN or Infinity,
    no number beyond a double, integers within MAX_INT_DIGITS, nesting within MAX_DEPTH,
    valid Unicode (ValueError otherwise, as orjson raises)."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant, parse_int=_exact_int,
                           parse_float=_finite_float)
        _check(value, "JSON text", set())
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels") from None
    except InvalidInputError as exc:
        raise ValueError(str(exc)) from None
    return value


def _has_long_integer(data: bytes) -> bool:
    """Whether data may hold an integer of 19+ digits (see _SCAN)."""
    if data[:19].translate(_SCAN) == _LONG_RUN:
        return True
    for start in range(0, len(data), _SCAN_CHUNK):
        if _LONG_INT in data[start : start + _SCAN_CHUNK + 20].translate(_SCAN):
            return True
    return False


def json_object(value: Any, what: str) -> dict[str, Any]:
    """Validate that value is a JSON object (or None, read as {}) and return a plain copy."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a dict, not {type(value).__name__}")
    copy: dict[str, Any] = load_json(canonical_bytes(value, what))
    return copy


def load_canonical(data: bytes, expected_hash: str | None = None) -> Any:
    """Decode stored canonical JSON, verifying its hash when one is given."""
    if expected_hash is not None and content_hash(data) != expected_hash:
        raise CorruptDataError(
            f"stored output {expected_hash} does not match its hash; the store is damaged "
            "(restore it from a copy or re-sync it from another store)"
        )
    try:
        return load_json(data)
    except (ValueError, RecursionError) as exc:  # orjson's and json's errors are ValueErrors
        raise CorruptDataError(f"stored output {expected_hash} is not valid JSON: {exc}") from None


def check_stored(data: bytes, expected_hash: str | None = None) -> dict[str, Any]:
    """An output's bytes decoded as every read decodes them, and held to what a save
    accepts: a JSON object within MAX_DEPTH and MAX_INT_DIGITS, without NaN or Infinity,
    of valid Unicode (so whatever passes here also reads). CorruptDataError otherwise,
    naming the hash. Imports check every output with it, and so does verify."""
    value = load_canonical(data, expected_hash)
    if not isinstance(value, dict):
        raise CorruptDataError(f"stored output {expected_hash} is a {type(value).__name__}, "
                               "not a JSON object")
    try:
        canonical_bytes(value, f"stored output {expected_hash}")
    except InvalidInputError as exc:
        raise CorruptDataError(str(exc)) from None
    return value
