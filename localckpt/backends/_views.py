"""Per-timeline views: one timeline's checkpoints in memory, loaded on demand, bounded.

tree, children and lineage read a timeline's rows (from every run, plus the log tail)
once, and answer from this view while it stays in the LRU. The LRU is bounded by the
number of checkpoints it holds, so a process that reads one timeline of a store of a
million holds that timeline, not the store. Records arriving from the log tail are
added to a cached view as they are read; a compaction that brought records this
process had not seen drops the views.
"""

from __future__ import annotations

from collections import OrderedDict

from ..types import Checkpoint

__all__ = ["PointCache", "TimelineView", "Views"]


class TimelineView:
    """The checkpoints of one timeline, by id, with parent -> children."""

    __slots__ = ("_sorted", "by_id", "children")

    def __init__(self) -> None:
        self.by_id: dict[str, Checkpoint] = {}
        self.children: dict[str, list[str]] = {}
        self._sorted: list[str] | None = []

    def add(self, c: Checkpoint) -> None:
        if c.id in self.by_id:
            return
        self.by_id[c.id] = c
        if c.parent_id is not None:
            self.children.setdefault(c.parent_id, []).append(c.id)
        if self._sorted is not None and self._sorted and c.id < self._sorted[-1]:
            self._sorted = None
        elif self._sorted is not None:
            self._sorted.append(c.id)

    def ids(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.by_id)
        return self._sorted

    def lineage(self, cid: str) -> list[Checkpoint]:
        chain: list[Checkpoint] = []
        seen: set[str] = set()
        current = self.by_id.get(cid)
        while current is not None and current.id not in seen:
            seen.add(current.id)
            chain.append(current)
            current = self.by_id.get(current.parent_id) if current.parent_id else None
        chain.reverse()
        return chain

    def __len__(self) -> int:
        return len(self.by_id)


class Views:
    """LRU of TimelineViews, holding at most max_records checkpoints (the most recent
    view stays whatever its size)."""

    def __init__(self, max_records: int = 200_000) -> None:
        self.max_records = max_records
        self._views: OrderedDict[str, TimelineView] = OrderedDict()
        self._records = 0

    def get(self, tid: str) -> TimelineView | None:
        view = self._views.get(tid)
        if view is not None:
            self._views.move_to_end(tid)
        return view

    def put(self, tid: str, view: TimelineView) -> None:
        old = self._views.pop(tid, None)
        if old is not None:
            self._records -= len(old)
        self._views[tid] = view
        self._records += len(view)
        while self._records > self.max_records and len(self._views) > 1:
            _, dropped = self._views.popitem(last=False)
            self._records -= len(dropped)

    def add(self, c: Checkpoint) -> None:
        """A checkpoint read from the log tail: into its timeline's view, if cached."""
        view = self._views.get(c.timeline_id)
        if view is not None and c.id not in view.by_id:
            view.add(c)
            self._records += 1

    def find(self, cid: str) -> Checkpoint | None:
        for view in self._views.values():
            c = view.by_id.get(cid)
            if c is not None:
                return c
        return None

    def clear(self) -> None:
        self._views.clear()
        self._records = 0


class PointCache:
    """Checkpoints found by id in the runs (a save's parent, a `show`), LRU-bounded."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[str, Checkpoint] = OrderedDict()

    def get(self, cid: str) -> Checkpoint | None:
        c = self._items.get(cid)
        if c is not None:
            self._items.move_to_end(cid)
        return c

    def put(self, c: Checkpoint) -> None:
        self._items[c.id] = c
        if len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()
