"""A request as the handlers see it: routed path parameters and validated query values.

Routing splits the raw path on ``/`` *before* percent-decoding each segment, so an encoded
slash or dot-dot (``%2F``, ``%2e%2e``) stays inside one segment, where it fails the
reference check like any other bad name. Page URLs name checkpoints and timelines by any
reference a person uses (full id, short id, unique prefix, tag: see
:mod:`localckpt.web.names`); image URLs, which the pages write, take full ids only. No
request value is ever used as a path.
"""

from __future__ import annotations

import builtins
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import attrs

from ..errors import InvalidInputError
from ..schema import check_id
from .names import Names, check_ref, resolve

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["OutputCache", "Refused", "Request", "match", "split_path"]

_SEQ = re.compile(r"(0|[1-9][0-9]{0,17})\.jpg")
_MAX_QUERY = 4096


class Refused(InvalidInputError):
    """A request the view declines, with what to do instead: a page (or JSON) with
    status, message and links [(href, text)] to the alternatives."""

    def __init__(self, message: str, links: Sequence[tuple[str, str]] = (),
                 status: int = 400, title: str = "Not compared") -> None:
        super().__init__(message)
        self.links = list(links)
        self.status = status
        self.title = title


class OutputCache:
    """Decoded values by key (a stage output's content hash), the few most recently
    used: stepping through the frames of one checkpoint decodes its output once, not
    once per frame. Shared by the requests of one server; thread-safe."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._values: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = make()
        with self._lock:
            self._values[key] = value
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return value


@attrs.frozen
class Request:
    """path: the route's parameters (already checked); query: last value of each key;
    names: short ids and references for this request; outputs: the server's cache of
    decoded outputs."""

    path: str
    params: Mapping[str, Any]
    query: Mapping[str, str]
    names: Names
    outputs: OutputCache = attrs.field(factory=OutputCache)

    @property
    def store(self) -> Store:
        return self.names.store

    def checkpoint(self, name: str = "checkpoint") -> str:
        """The full id of the checkpoint a path parameter or query value names."""
        ref = self.params.get(name) or self._query_ref(name, "checkpoint")
        return resolve(self.store, ref, "checkpoint")

    def timeline(self, name: str = "timeline") -> str:
        ref = self.params.get(name) or self._query_ref(name, "timeline")
        return resolve(self.store, ref, "timeline")

    def _query_ref(self, name: str, kind: str) -> str:
        value = self.query.get(name)
        if value is None or value == "":
            raise InvalidInputError(f"the query needs {name}=<{kind} id, short id or tag>")
        return check_ref(value, name)

    def text(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def int(self, name: str, default: int, lo: int = 0, hi: int = 10**12) -> int:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isascii() or not raw.isdigit():
            raise InvalidInputError(f"{name} must be a whole number >= {lo}, not {raw!r}")
        return max(lo, min(int(raw), hi))  # a huge one (the query is <= 4 KiB) is hi

    def float(self, name: str, default: float) -> float:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            return float(raw)
        except ValueError:
            raise InvalidInputError(f"{name} must be a number, not {raw!r}") from None

    def ids(self, name: str, limit: builtins.int = 64) -> list[str]:
        """A comma-separated list of full ids (tree state in URLs), each checked."""
        raw = self.query.get(name) or ""
        items = [s for s in raw.split(",") if s][:limit]
        return [check_id(s, name) for s in items]


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

    {timeline} and {checkpoint} are references (ids, short ids, prefixes, tags), {tid} a
    full id, {seq} a frame number followed by ".jpg", {name} any non-empty text (a stage
    name: only ever a dictionary key). A parameter that does not validate raises
    InvalidInputError (a 400, not a 404).
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
            params[key] = check_ref(seg, f"{key} id")
        elif key == "tid":
            params[key] = check_id(seg, "timeline id")
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
