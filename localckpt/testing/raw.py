"""Writing into a catalog behind its back, for tests of what reads, sync and verify do
with damage and hostile records: no validation, no guards.

``insert`` keeps the per-timeline sums in step (a record that arrived "legitimately" but
is hostile), so reads do not refuse the tree for a missing row; pass ``sums=False`` to
leave them as they were (a row that appeared from nowhere).
"""

from __future__ import annotations

from typing import Any

from ..backends.sql import SqlCatalog
from ..catalog import Catalog

__all__ = ["delete_output", "insert", "set_output"]


def _sql(catalog: Catalog) -> SqlCatalog:
    if not isinstance(catalog, SqlCatalog):
        raise TypeError(f"raw writes need the SQL catalog, not {type(catalog).__name__}")
    return catalog


def insert(catalog: Catalog, record: Any, *, sums: bool = True) -> None:
    """Insert a record's row as it is (a digest that matches it)."""
    from ..schema import kind_of

    cat = _sql(catalog)
    kind = kind_of(record)
    codec = cat.codecs[kind]
    row = codec.row(record)
    e = cat.engine
    with e.transaction() as tx:
        tx.execute(e.sql(cat._inserts[kind]), row)
        if sums and kind in ("timeline", "checkpoint"):
            tid = "" if kind == "timeline" else record.timeline_id
            tx.execute(e.sql(cat._q["add_sums"]), (tid, 0, 1, row[-1]))


def set_output(catalog: Catalog, h: str, data: bytes) -> None:
    """Store data under hash h (bytes that may not match it: bit rot)."""
    cat = _sql(catalog)
    e = cat.engine
    with e.transaction() as tx:
        tx.execute(e.sql("DELETE FROM {s}outputs WHERE hash = ?"), (h,))
        tx.execute(e.sql("INSERT INTO {s}outputs (hash, data) VALUES (?, ?)"), (h, data))


def delete_output(catalog: Catalog, h: str) -> None:
    """Remove an output whatever refers to it (a lost row)."""
    cat = _sql(catalog)
    e = cat.engine
    with e.transaction() as tx:
        tx.execute(e.sql("DELETE FROM {s}output_refs WHERE hash = ?"), (h,))
        tx.execute(e.sql("DELETE FROM {s}outputs WHERE hash = ?"), (h,))
