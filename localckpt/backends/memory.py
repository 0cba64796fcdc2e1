"""In-memory catalog: the reference backend.

Plain dicts, no I/O. It is the oracle the conformance suite compares real backends with,
and a fixture users can use in their own pipeline tests (``localckpt.open("memory://")``).
Not shared between processes; gone when the process ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ..catalog import Batch, Catalog
from ..types import Checkpoint, Tag, Timeline, Tombstone
from ._index import RecordIndex

__all__ = ["MemoryCatalog"]


class MemoryCatalog(Catalog):
    """Every record in dicts; lineage by walking parent links."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._outputs: dict[str, bytes] = {}
        self._index = RecordIndex(self.load_values)

    def describe(self) -> str:
        return "memory catalog"

    def commit(self, batch: Batch) -> None:
        with self._lock:
            self._index.check(batch, self.describe())
            for h, data in batch.outputs.items():
                self._outputs.setdefault(h, bytes(data))
            self._index.add(batch)

    def timelines(self, ids: Iterable[str] | None = None) -> list[Timeline]:
        with self._lock:
            return self._index.get_timelines(ids)

    def checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        with self._lock:
            return self._index.get_checkpoints(ids)

    def peek_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        with self._lock:
            return self._index.checkpoints.get(checkpoint_id)

    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        with self._lock:
            return self._index.get_checkpoints(self._index.children.get(checkpoint_id, ()))

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        with self._lock:
            chain = []
            current = self._index.checkpoints.get(checkpoint_id)
            while current is not None:
                chain.append(current)
                pid = current.parent_id
                current = self._index.checkpoints.get(pid) if pid is not None else None
            chain.reverse()
            return [self._index.detached(c) for c in chain]

    def tree(self, timeline_id: str) -> list[Checkpoint]:
        with self._lock:
            return self._index.get_checkpoints(self._index.by_timeline.get(timeline_id, ()))

    def outputs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        with self._lock:
            return {h: self._outputs[h] for h in hashes if h in self._outputs}

    def tombstones(self, timeline_ids: Iterable[str] | None = None) -> list[Tombstone]:
        with self._lock:
            return self._index.get_tombstones(timeline_ids)

    def tags(self, timeline_ids: Iterable[str] | None = None) -> list[Tag]:
        with self._lock:
            return self._index.get_tags(timeline_ids)

    def deleted(self, target_ids: Iterable[str]) -> set[str]:
        with self._lock:
            return {i for i in target_ids if i in self._index.deleted}

    def find_ids(self, kind: str, prefix: str, limit: int = 10) -> list[str]:
        with self._lock:
            return self._index.find_ids(kind, prefix, limit)
