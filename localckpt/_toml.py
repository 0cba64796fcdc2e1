"""Writing the small subset of TOML that localckpt's config file holds, atomically.

The standard library reads TOML (``tomllib``) but does not write it, and a dependency
for the few tables of the config file is not worth it. :func:`dumps` writes any mapping
that ``tomllib`` can produce from tables, strings, numbers, booleans, dates and arrays,
so ``tomllib.loads(dumps(d)) == d``; comments and layout of a file that is rewritten
are not kept. :func:`write_atomic` replaces a file so that a reader sees the old or the
new content, never a torn one (temp file in the same directory, fsync, rename).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import tempfile
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps", "write_atomic"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"TOML keys are strings, not {type(key).__name__} {key!r}")
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def _table(path: list[str], table: Mapping[str, Any], out: list[str]) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    if path and (scalars or not tables):
        out.append(("\n" if out else "") + "[" + ".".join(_key(p) for p in path) + "]")
    out.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars)
    for k, v in tables:
        _table([*path, k], v, out)


def dumps(data: Mapping[str, Any]) -> str:
    """TOML text for data: nested mappings become ``[a.b]`` tables, the rest values."""
    out: list[str] = []
    _table([], data, out)
    return "\n".join(out) + "\n" if out else ""


def write_atomic(path: str, text: str) -> None:
    """Replace path with text: a concurrent reader sees the old or the new file whole.

    Keeps the mode of an existing file; a new one is private to its owner (0600).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".toml", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
