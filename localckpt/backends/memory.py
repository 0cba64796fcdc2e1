"""In-memory catalog: the reference backend.

Plain dicts, no I/O. It is the oracle the conformance suite compares real backends with,
and a fixture users can use in their own pipeline tests (``localckpt.open("memory://")``).
Not shared between processes; gone when the process ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ..catalog import Batch, Catalog
from ..errors import StoreClosedError
from ..types import Checkpoint, Tag, Timeline, Tombstone
from ._index import RecordIndex

__all__ = ["MemoryCatalog"]


class MemoryCatalog(Catalog):
    """Every record in dicts; lineage by walking parent links."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._outputs: dict[str, bytes] = {}
        self._index = RecordIndex(self.load_values)
        self._unreferenced: set[str] = set()  # outputs the last purge found unreferenced
        self._closed = False

    def describe(self) -> str:
        return "memory catalog"

    def close(self) -> None:
        self._closed = True

    def _open(self) -> None:
        if self._closed:
            raise StoreClosedError("this memory store is closed (its records are gone); "
                                   "open a new one with localckpt.open('memory://')")

    def commit(self, batch: Batch) -> None:
        with self._lock:
            self._open()
            self._index.check(batch, self.describe())
            for h, data in batch.outputs.items():
                self._outputs.setdefault(h, bytes(data))
            self._index.add(batch)

    def commit_guarded(self, batch: Batch, timeline_id: str, seen: Iterable[str]) -> None:
        """The guard and the commit under one lock: atomic here, and no copies."""
        from ..catalog import TombstonesChanged

        with self._lock:
            known = seen if isinstance(seen, (set, frozenset)) else set(seen)
            if not known.issuperset(self._index.tombstone_ids(timeline_id)):
                raise TombstonesChanged(f"timeline {timeline_id} has new tombstones; "
                                        "nothing was written")
            self.commit(batch)

    def timelines(self, ids: Iterable[str] | None = None) -> list[Timeline]:
        with self._lock:
            self._open()
            return self._index.get_timelines(ids)

    def checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        with self._lock:
            self._open()
            return self._index.get_checkpoints(ids)

    def peek_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        with self._lock:
            self._open()
            return self._index.checkpoints.get(checkpoint_id)

    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        with self._lock:
            self._open()
            return self._index.get_checkpoints(self._index.children.get(checkpoint_id, ()))

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        with self._lock:
            self._open()
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
            self._open()
            return self._index.get_checkpoints(self._index.by_timeline.get(timeline_id, ()))

    def outputs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        with self._lock:
            self._open()
            return {h: self._outputs[h] for h in hashes if h in self._outputs}

    def tombstones(self, timeline_ids: Iterable[str] | None = None) -> list[Tombstone]:
        with self._lock:
            self._open()
            return self._index.get_tombstones(timeline_ids)

    def tags(self, timeline_ids: Iterable[str] | None = None) -> list[Tag]:
        with self._lock:
            self._open()
            return self._index.get_tags(timeline_ids)

    def deleted(self, target_ids: Iterable[str], kind: str | None = None) -> set[str]:
        with self._lock:
            self._open()
            targeted = {i for i in target_ids if i in self._index.deleted}
        # of those any tombstone targets, the ones the contract says (kind, timeline)
        return Catalog.deleted(self, targeted, kind) if targeted else set()

    def find_ids(self, kind: str, prefix: str, limit: int = 10) -> list[str]:
        with self._lock:
            self._open()
            return self._index.find_ids(kind, prefix, limit)

    def purge_deleted(self) -> int:
        """Drop what tombstones delete (timelines, checkpoints and their subtrees, tags,
        tags of deleted checkpoints) and outputs no live checkpoint refers to: at once
        those that only deleted checkpoints used, the others (staged by a sync that has
        not committed its rows yet, or left by one that died) once two purges in a row
        found them unreferenced. Tombstones stay."""
        from ..visibility import dead_in_tree

        with self._lock:
            self._open()
            idx = self._index
            # what tombstones delete, by kind and in their own timeline (Catalog.deleted)
            marks = {(x.kind, x.timeline_id, x.target_id) for x in idx.tombstones.values()}
            gone_t = {t for kind, t, target in marks if kind == "timeline" and t == target}
            dead_c: set[str] = set()
            for tid, ids in idx.by_timeline.items():
                if tid in gone_t:
                    dead_c.update(ids)
                elif marked := [i for i in ids if ("checkpoint", tid, i) in marks]:
                    dead_c |= dead_in_tree((idx.checkpoints[i] for i in ids), marked)
            dead_t = {t for t in idx.timelines if t in gone_t}
            dead_g = {g.id for g in idx.tags.values()
                      if ("tag", g.timeline_id, g.id) in marks or g.checkpoint_id in dead_c}
            used = {h for cid, c in idx.checkpoints.items() if cid not in dead_c
                    for h in c.stage_hashes.values()}
            by_dead = {h for cid in dead_c for h in idx.checkpoints[cid].stage_hashes.values()}
            unused = set(self._outputs) - used
            dead_o = (unused & by_dead) | (unused & self._unreferenced)
            self._unreferenced = unused - dead_o
            if not (dead_c or dead_t or dead_g or dead_o):
                return 0
            fresh = RecordIndex(self.load_values)
            fresh.add(Batch(
                timelines=[t for i, t in sorted(idx.timelines.items()) if i not in dead_t],
                checkpoints=[c for i, c in sorted(idx.checkpoints.items()) if i not in dead_c],
                tombstones=[t for _, t in sorted(idx.tombstones.items())],
                tags=[g for i, g in sorted(idx.tags.items()) if i not in dead_g],
            ))
            self._index = fresh
            for h in dead_o:
                del self._outputs[h]
            return len(dead_c) + len(dead_t) + len(dead_g) + len(dead_o)
