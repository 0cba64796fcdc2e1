"""A bounded, thread-safe cache of catalog rows by id, for one PostgresCatalog.

Why caching rows is safe: timelines and checkpoints are immutable once written, so the
row the server held for an id when this process read or inserted it is the row it holds
now, until a purge (``purge_deleted``) deletes it; a purge only deletes what tombstones
already hide from every reader, and clears the cache of the catalog that ran it. Only
rows known to exist are ever put in (rows this process read back, or rows its own
commit reported as inserted), so a miss always asks the server and an unknown id still
reads as absent.

Rows are tuples of immutable values (JSON columns kept as text), so every hit builds
fresh records whose dicts a caller may mutate without touching the cache. One cache per
catalog instance: it never holds rows of another schema or server. What it cannot see
is a row deleted or rewritten behind localckpt's back (manual SQL, restoring an older
backup); reopen the store after such surgery.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

__all__ = ["RowCache"]

Row = tuple[Any, ...]


class RowCache:
    """Least-recently-used map id -> row (row[0] is the id), holding at most ``size`` rows."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._rows: OrderedDict[str, Row] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ids: Iterable[str]) -> dict[str, Row]:
        """The cached rows among ids (marked as recently used)."""
        found: dict[str, Row] = {}
        with self._lock:
            for key in ids:
                row = self._rows.get(key)
                if row is not None:
                    self._rows.move_to_end(key)
                    found[key] = row
        return found

    def put(self, rows: Iterable[Row]) -> None:
        """Remember rows read from, or inserted into, the server."""
        with self._lock:
            for row in rows:
                self._rows[row[0]] = row
                self._rows.move_to_end(row[0])
            while len(self._rows) > self._size:
                self._rows.popitem(last=False)

    def clear(self) -> None:
        """Forget every row (after a purge deleted some)."""
        with self._lock:
            self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)
