"""Canonical JSON: one byte string per JSON value, so equal values hash equal.

Stage outputs are content-addressed by the SHA-256 of their canonical form; this is
what lets a checkpoint refer to an output instead of copying it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import CorruptDataError, InvalidInputError

__all__ = ["canonical_bytes", "content_hash", "json_object", "load_canonical"]



def _plain(value: Any) -> Any:
    """JSON equivalents of what pipelines hand us besides builtins: numpy scalars, Mappings."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")  # _check rejected it already


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_plain
)


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


def _check(value: Any, path: str) -> None:
    """Reject anything that json.dumps would silently change or refuse."""
    if isinstance(value, str):
        _check_text(value, path)
        return
    if value is None or isinstance(value, (bool, int, np.bool_, np.integer)):
        return
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise InvalidInputError(f"{path} is {value!r}; JSON has no NaN or Infinity")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(
                    f"{path} has key {key!r} of type {type(key).__name__}; JSON object keys "
                    "must be strings"
                )
            _check_text(key, f"{path} key")
            _check(item, f"{path}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    raise InvalidInputError(
        f"{path} is a {type(value).__name__}, which is not a JSON value "
        "(use dict, list, str, int, float, bool or None; numpy scalars are converted)"
    )


_LEAVES = frozenset({str, int, float, bool, type(None)})


#: Most containers nested in one another that a value may have, whatever the interpreter:
#: Python 3.13's C encoder no longer stops at the recursion limit, and a value stored there
#: must still load on 3.11 (where Mapping values take two stack frames per level).
MAX_DEPTH = 256


def _plain_tree(value: Any) -> bool:
    """True when every container is exactly a dict, list or tuple, every key exactly a
    str and every leaf exactly a JSON scalar type: then the C encoder alone can be trusted
    (it refuses NaN and non-JSON leaves itself; only non-str keys would pass silently).
    Anything else (Mappings, numpy scalars, subclasses) takes the thorough _check.
    Walks level by level; deeper than MAX_DEPTH raises RecursionError."""
    level = [value]
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise RecursionError(f"more than {MAX_DEPTH} levels")
        below = []
        for node in level:
            kind = type(node)
            if kind is dict:
                for key in node:
                    if type(key) is not str:
                        return False
                items = node.values()
            elif kind is list or kind is tuple:
                items = node
            else:
                if kind not in _LEAVES:
                    return False
                continue
            for item in items:
                t = type(item)
                if t is dict or t is list or t is tuple:
                    below.append(item)
                elif t not in _LEAVES:
                    return False
        level = below
    return True


def _check_depth(value: Any) -> None:
    """RecursionError when containers nest deeper than MAX_DEPTH (the slow path's check)."""
    containers = Mapping | list | tuple
    level = [value] if isinstance(value, containers) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise RecursionError(f"more than {MAX_DEPTH} levels")
        level = [item for node in level
                 for item in (node.values() if isinstance(node, Mapping) else node)
                 if isinstance(item, containers)]


def _encode(value: Any, what: str) -> str:
    try:
        if _plain_tree(value):
            try:
                text = _ENCODER.encode(value)
                text.encode("utf-8")  # lone surrogates fail here
                return text
            except (ValueError, TypeError):
                pass  # NaN, Infinity or a lone surrogate: _check says where
        _check_depth(value)
        _check(value, what)
        return _ENCODER.encode(value)
    except RecursionError:
        raise _too_deep(what) from None


def canonical_bytes(value: Any, what: str = "value") -> bytes:
    """Encode a JSON value canonically (sorted keys, no spaces, UTF-8).

    Raises InvalidInputError for NaN/Infinity, non-string keys and non-JSON types.
    """
    return _encode(value, what).encode("utf-8")


def _too_deep(what: str) -> InvalidInputError:
    return InvalidInputError(
        f"{what} is nested too deeply (more than {MAX_DEPTH} levels) to be stored as JSON; "
        "flatten it"
    )


def content_hash(data: bytes) -> str:
    """SHA-256 hex digest: the address of a stored output."""
    return hashlib.sha256(data).hexdigest()


def json_object(value: Any, what: str) -> dict[str, Any]:
    """Validate that value is a JSON object (or None, read as {}) and return a plain copy."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a dict, not {type(value).__name__}")
    return json.loads(_encode(value, what))


def load_canonical(data: bytes, expected_hash: str | None = None) -> Any:
    """Decode stored canonical JSON, verifying its hash when one is given."""
    if expected_hash is not None and content_hash(data) != expected_hash:
        raise CorruptDataError(
            f"stored output {expected_hash} does not match its hash; the store is damaged "
            "(restore it from a copy or re-sync it from another store)"
        )
    try:
        return json.loads(data)
    except ValueError as exc:
        raise CorruptDataError(f"stored output {expected_hash} is not valid JSON: {exc}") from exc
