"""What the fuzz tests share: hostile values, a per-case time limit, store snapshots.

Hostile values are of every kind a caller can pass by mistake or on purpose: wrong
types, sizes beyond any use (10**6 workers, 5,000-digit integers, 300-character names),
NaN and infinities, lone surrogates, NUL characters, paths that name the root, a device
or nothing at all, and containers nested 100,000 deep.
"""

from __future__ import annotations

import contextlib
import math
import signal
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from localckpt import Store


def deep_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def deep_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


class Deep:
    """A value too large to print (nested 100,000 deep, an integer of 5,000 digits):
    drawn as this token (hypothesis prints draws), turned into the real value by
    realize() just before the call."""

    def __init__(self, kind: str, size: int) -> None:
        self.kind, self.size = kind, size

    def __repr__(self) -> str:
        if self.kind == "int":
            return f"<{'-' if self.size < 0 else ''}10**{abs(self.size)}>"
        return f"<{self.kind} nested {self.size} deep>"

    def value(self) -> Any:
        if self.kind == "int":
            return 10 ** self.size if self.size > 0 else -(10 ** -self.size)
        if self.kind == "frames":
            return {"frames": {"9" * self.size: {}}}
        if self.kind == "output":
            return {"a": 10 ** self.size}
        return deep_list(self.size) if self.kind == "list" else deep_dict(self.size)


def realize(value: Any) -> Any:
    return value.value() if isinstance(value, Deep) else value


FIXED: list[Any] = [
    None, True, False, 0, -1, 1, 3, 10**6, 10**9, 2**63, -(2**63) - 1, Deep("int", 5000),
    Deep("int", -5000),
    math.nan, math.inf, -math.inf, 1e308, 5e-324, -0.0, 0.5,
    "", " ", "x" * 300, "\ud800", "\udcff", "a\x00b", "\n", "/", "..", "../../etc/passwd",
    "/dev/zero", "-", "*", "%", "_", "memory://", "s3://bucket/x", "nosuch://x",
    b"bytes", b"", bytearray(b"x"), [], {}, (), set(), frozenset(), _Opaque(),
    [None], ["x"], [1, 2], {"a": math.nan}, Deep("output", 5000), {"a": "\ud800"}, {1: 2},
    {"a": _Opaque()}, Deep("list", 100_000), Deep("dict", 5_000), Deep("frames", 5000),
]

_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)


def hostile() -> st.SearchStrategy[Any]:
    """Any value of the kinds above, plus random scalars and small containers."""
    return st.one_of(
        st.sampled_from(FIXED),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        _TEXT,
        st.binary(max_size=8),
        st.lists(st.none() | st.integers() | _TEXT, max_size=3),
        st.dictionaries(_TEXT, st.none() | st.integers() | st.floats(), max_size=3),
    )


class Hang(Exception):
    """A case ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hang in the main thread when the block runs longer than seconds."""

    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def snapshot(store: Store) -> tuple[Any, ...]:
    """Every record and object key (with its size) of a store, read around the Store."""
    cat = store.catalog
    timelines = cat.timelines(None)
    trees = tuple(tuple(cat.tree(t.id)) for t in timelines)
    hashes = sorted({h for tree in trees for c in tree for h in c.stage_hashes.values()})
    objects = sorted((k, v[0]) for k, v in store.objects.stat("").items())
    return (tuple(timelines), trees, tuple(cat.tombstones(None)), tuple(cat.tags(None)),
            tuple(sorted(cat.outputs(hashes).items())), tuple(objects))


def short(value: Any) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"<unprintable {type(value).__name__}>"
    return text if len(text) <= 200 else text[:197] + "..."
