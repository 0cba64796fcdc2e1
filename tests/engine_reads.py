"""What a SQL catalog reads from its database, counted (never timed): every statement it
runs outside a write, and how many rows each returns.

``traced(store)`` lists every statement an embedded store's connection runs, writes
included. ``counting(engine)`` wraps one engine's ``query`` and ``snapshot`` (each statement of a
snapshot counted on its own); ``counting_class(cls)`` wraps them for every engine of a
class, for code that opens its own store (the CLI).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["Reads", "counting", "counting_class", "traced"]


class Reads:
    """The statements read so far: (statement, rows it returned)."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, int]] = []

    @property
    def rows(self) -> int:
        return sum(n for _, n in self.statements)

    def reset(self) -> None:
        self.statements.clear()

    def largest(self) -> str:
        """The statement that returned the most rows, for assertion messages."""
        if not self.statements:
            return "no statement"
        statement, n = max(self.statements, key=lambda s: s[1])
        return f"{n} rows: {' '.join(statement.split())[:200]}"

    def __repr__(self) -> str:
        return (f"<Reads {len(self.statements)} statements, {self.rows} rows; largest "
                f"{self.largest()}>")


def _wrap(reads: Reads, query: Any, snapshot: Any) -> tuple[Any, Any]:
    def counted_query(self: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        rows = query(self, statement, params)
        reads.statements.append((statement, len(rows)))
        return rows

    def counted_snapshot(self: Any, queries: Sequence[tuple[str, Sequence[Any]]]) -> Any:
        got = snapshot(self, queries)
        reads.statements += [(q, len(rows)) for (q, _), rows in zip(queries, got, strict=True)]
        return got

    return counted_query, counted_snapshot


@contextlib.contextmanager
def counting(engine: Any) -> Iterator[Reads]:
    """Count what the catalog of this engine reads while the block runs."""
    reads = Reads()
    query, snapshot = _wrap(reads, type(engine).query, type(engine).snapshot)
    engine.query = query.__get__(engine)
    engine.snapshot = snapshot.__get__(engine)
    try:
        yield reads
    finally:
        del engine.query, engine.snapshot


@contextlib.contextmanager
def counting_class(cls: type) -> Iterator[Reads]:
    """Count what every catalog whose engine is of this class reads meanwhile."""
    reads = Reads()
    query, snapshot = cls.query, cls.snapshot  # type: ignore[attr-defined]
    cls.query, cls.snapshot = _wrap(reads, query, snapshot)  # type: ignore[attr-defined]
    try:
        yield reads
    finally:
        cls.query, cls.snapshot = query, snapshot  # type: ignore[attr-defined]


@contextlib.contextmanager
def traced(store: Any) -> Iterator[list[str]]:
    """Every SQL statement this thread's connection to an embedded store's catalog runs
    while the block runs (writes too: SQLite's trace callback), in order."""
    conn = store.catalog.engine._conn()  # this thread's connection
    said: list[str] = []
    conn.set_trace_callback(said.append)
    try:
        yield said
    finally:
        conn.set_trace_callback(None)
