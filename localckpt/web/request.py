"""A request as the handlers see it: routed path parameters and validated query values.

Routing splits the raw path on ``/`` *before* percent-decoding each segment, so an encoded
slash or dot-dot (``%2F``, ``%2e%2e``) stays inside one segment, where it fails the id
check like any other bad id. Ids are checked with :func:`localckpt.schema.check_id`
(letters, digits, ``-`` and ``_`` only); no request value is ever used as a path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote

import attrs

from ..errors import InvalidInputError
from ..schema import check_id

__all__ = ["Request", "match", "split_path"]

_SEQ = re.compile(r"(0|[1-9][0-9]{0,17})\.jpg")
_MAX_QUERY = 4096


@attrs.frozen
class Request:
    """path: the route's parameters (already validated); query: last value of each key."""

    path: str
    params: Mapping[str, Any]
    query: Mapping[str, str]

    def text(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def id(self, name: str) -> str:
        value = self.query.get(name)
        if value is None:
            raise InvalidInputError(f"the query needs {name}=<checkpoint id>")
        return check_id(value, name)

    def int(self, name: str, default: int, lo: int = 0, hi: int = 10**12) -> int:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isascii() or not raw.isdigit() or len(raw) > 13:
            raise InvalidInputError(f"{name} must be a whole number, not {raw!r}")
        return max(lo, min(int(raw), hi))

    def float(self, name: str, default: float) -> float:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            return float(raw)
        except ValueError:
            raise InvalidInputError(f"{name} must be a number, not {raw!r}") from None


def split_path(raw: str) -> tuple[list[str], dict[str, str]]:
    """Decoded path segments and the query of a raw request target."""
    path, _, query = raw.partition("?")
    if len(query) > _MAX_QUERY:
        raise InvalidInputError("the query string is too long")
    segments = [unquote(s, errors="strict") for s in path.split("/")[1:]]
    values = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True,
                                            errors="strict").items()}
    return segments, values


def match(pattern: str, segments: list[str]) -> dict[str, Any] | None:
    """The parameters of segments under pattern ("/c/{checkpoint}"), or None.

    {timeline} and {checkpoint} must be ids, {seq} a frame number followed by ".jpg",
    {name} any non-empty text (a stage name: only ever a dictionary key).
    A parameter that does not validate raises InvalidInputError (a 400, not a 404).
    """
    parts = pattern.split("/")[1:]
    if len(parts) != len(segments):
        return None
    params: dict[str, Any] = {}
    for part, seg in zip(parts, segments, strict=True):
        if not (part.startswith("{") and part.endswith("}")):
            if part != seg:
                return None
            continue
        key = part[1:-1]
        if key in ("timeline", "checkpoint"):
            params[key] = check_id(seg, f"{key} id")
        elif key == "seq":
            found = _SEQ.fullmatch(seg)
            if found is None:
                raise InvalidInputError(f"{seg!r} is not a frame: frames are <number>.jpg")
            params[key] = int(found.group(1))
        elif seg:
            params[key] = seg
        else:
            return None
    return params
