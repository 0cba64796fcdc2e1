"""What tombstones hide, decided once for every read and write of the Store (a 2P-set).

A catalog stores records as they are; a record is *live* when:

- a timeline: no tombstone of kind ``timeline`` filed under it targets it;
- a checkpoint: its timeline is live, and no tombstone of kind ``checkpoint`` filed
  under that timeline targets it or any checkpoint on
  its parent chain up to the root (pruning a checkpoint removes its whole subtree,
  including children that another store added before the prune reached it). A
  ``merged_from`` link does not keep a checkpoint alive nor kill one: a merge whose
  merged-in side was pruned with ``force=True`` stays;
- a tag: no tombstone of kind ``tag`` filed under its timeline targets it, and the
  checkpoint it names is live and of the same timeline. Tag names are
  unique among live tags; when sync brings two live tags of one name together, the
  newest (largest id) is the one the name resolves to.

A tombstone deletes only a record of its own kind in its own timeline (see
``Catalog.deleted``): one aimed across timelines or kinds deletes nothing.
Tombstones carry the timeline they belong to, so "what is deleted in this timeline" is
one catalog call, and a timeline without checkpoint tombstones (the usual case) needs no
lineage walk at all. Writes go through :meth:`Visibility.commit` with the tombstones the
Store has seen, so a save costs no extra catalog round trip where the backend checks
the guard in its commit (see ``Catalog.commit_guarded``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import attrs

from .catalog import Batch, Catalog, TombstonesChanged
from .errors import NotFoundError
from .tree import descendants
from .types import Checkpoint, Tag, Timeline, Tombstone

__all__ = ["Marks", "Visibility", "dead_in_tree", "live_tags"]

_VERDICTS = 4096  # (checkpoint, tombstone set) -> live, remembered per store
_RETRIES = 5


@attrs.frozen
class Marks:
    """The tombstones of one timeline, digested."""

    timeline_id: str
    ids: frozenset[str] = frozenset()  # of the tombstones themselves
    timeline_dead: bool = False
    checkpoints: frozenset[str] = frozenset()  # tombstoned checkpoint ids
    tags: frozenset[str] = frozenset()  # tombstoned tag ids

    @classmethod
    def of(cls, timeline_id: str, tombstones: Iterable[Tombstone]) -> Marks:
        mine = [t for t in tombstones if t.timeline_id == timeline_id]
        return cls(
            timeline_id,
            frozenset(t.id for t in mine),
            any(t.kind == "timeline" and t.target_id == timeline_id for t in mine),
            frozenset(t.target_id for t in mine if t.kind == "checkpoint"),
            frozenset(t.target_id for t in mine if t.kind == "tag"),
        )

    @property
    def hides_checkpoints(self) -> bool:
        return self.timeline_dead or bool(self.checkpoints)


def dead_in_tree(checkpoints: Iterable[Checkpoint], marked: Iterable[str]) -> set[str]:
    """Ids of the checkpoints that are marked or descend (by parent links) from one;
    marked ids the tree lacks still count for their descendants."""
    kids: defaultdict[str, list[str]] = defaultdict(list)
    for c in checkpoints:
        if c.parent_id is not None:
            kids[c.parent_id].append(c.id)
    return descendants(kids, marked)


def live_tags(tags: Iterable[Tag], dead_tags: Iterable[str], live_checkpoint: set[str],
              ) -> list[Tag]:
    """The tag records that are live (not tombstoned, naming a live checkpoint), and for
    each name only the newest: what the names resolve to. Ordered by name."""
    gone = set(dead_tags)
    winners: dict[str, Tag] = {}
    for g in tags:
        if g.id in gone or g.checkpoint_id not in live_checkpoint:
            continue
        if g.name not in winners or g.id > winners[g.name].id:
            winners[g.name] = g
    return [winners[n] for n in sorted(winners)]


class Visibility:
    """Liveness questions for one store, with as few catalog calls as possible.

    Thread-safe. Remembers the last tombstones seen per timeline (they only ever grow)
    and which checkpoints were found live against which tombstones, so repeated reads
    and chains of saves in a timeline that has prunes do not walk lineage again.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._lock = threading.Lock()
        self._seen: dict[str, Marks] = {}
        self._verdicts: OrderedDict[tuple[str, frozenset[str]], bool] = OrderedDict()

    # -- tombstones -----------------------------------------------------------------------

    def _remember(self, marks: Marks) -> Marks:
        with self._lock:
            old = self._seen.get(marks.timeline_id)
            if old is None or not marks.ids <= old.ids:
                self._seen[marks.timeline_id] = marks
        return marks

    def marks(self, timeline_id: str) -> Marks:
        """The timeline's tombstones as the catalog has them now (one call)."""
        return self._remember(Marks.of(timeline_id, self.catalog.tombstones([timeline_id])))

    def marks_of(self, timeline_ids: Iterable[str]) -> dict[str, Marks]:
        """Tombstones of several timelines in one call."""
        tids = sorted(set(timeline_ids))
        if not tids:
            return {}
        found = self.catalog.tombstones(tids)
        return {t: self._remember(Marks.of(t, found)) for t in tids}

    def seen(self, timeline_id: str) -> Marks:
        """The tombstones last seen for a timeline (no catalog call; may be behind)."""
        with self._lock:
            return self._seen.get(timeline_id) or Marks(timeline_id)

    # -- timelines ------------------------------------------------------------------------

    def live_timelines(self, ids: Iterable[str] | None) -> list[Timeline]:
        """Timelines with these ids (all when None) that exist and are live, by id."""
        found = self.catalog.timelines(None if ids is None else list(ids))
        dead = self.catalog.deleted([t.id for t in found], "timeline") if found else set()
        return [t for t in found if t.id not in dead]

    def timeline(self, timeline_id: str) -> Timeline:
        found = self.live_timelines([timeline_id])
        if not found:
            raise NotFoundError(
                f"no timeline {timeline_id!r} in {self.catalog.describe()}"
                + (" (it was deleted)" if self.catalog.timelines([timeline_id]) else "")
            )
        return found[0]

    # -- checkpoints ----------------------------------------------------------------------

    def _verdict(self, cid: str, marks: Marks) -> bool | None:
        with self._lock:
            found = self._verdicts.get((cid, marks.ids))
            if found is not None:
                self._verdicts.move_to_end((cid, marks.ids))
            return found

    def _record(self, cid: str, marks: Marks, live: bool) -> None:
        with self._lock:
            self._verdicts[(cid, marks.ids)] = live
            if len(self._verdicts) > _VERDICTS:
                self._verdicts.popitem(last=False)

    def is_live(self, c: Checkpoint, marks: Marks) -> bool:
        """Whether checkpoint c is live under marks (its timeline's tombstones)."""
        if marks.timeline_dead or c.id in marks.checkpoints:
            return False
        if not marks.checkpoints:
            return True
        known = self._verdict(c.id, marks)
        if known is not None:
            return known
        chain = self.catalog.lineage(c.id)
        # no chain: c is no longer stored (purged, its ancestor's tombstone included)
        live = bool(chain) and not any(x.id in marks.checkpoints for x in chain)
        self._record(c.id, marks, live)
        return live

    def live_checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        """Checkpoints with these ids that exist and are live, by id."""
        found = self.catalog.checkpoints(list(ids))
        if not found:
            return []
        marks = self.marks_of(c.timeline_id for c in found)
        return [c for c in found if self.is_live(c, marks[c.timeline_id])]

    def checkpoint(self, checkpoint_id: str) -> Checkpoint:
        found = self.catalog.checkpoints([checkpoint_id])
        if found and self.is_live(found[0], self.marks(found[0].timeline_id)):
            return found[0]
        raise NotFoundError(
            f"no checkpoint {checkpoint_id!r} in {self.catalog.describe()}"
            + (" (it was deleted)" if found else "")
        )

    def live_tree(self, timeline_id: str, marks: Marks | None = None) -> list[Checkpoint]:
        """The live part of a timeline's tree (root first by id); [] for a deleted one."""
        marks = self.marks(timeline_id) if marks is None else marks
        if marks.timeline_dead:
            return []
        tree = self.catalog.tree(timeline_id)
        if not marks.checkpoints:
            return tree
        dead = dead_in_tree(tree, marks.checkpoints)
        return [c for c in tree if c.id not in dead]

    def live_counts(self, timeline_ids: Iterable[str],
                    stored: dict[str, int] | None = None) -> dict[str, int]:
        """Live checkpoints per timeline: the catalog's stored counts (stored, when read
        already), but the live tree's for a timeline that still stores a checkpoint a
        prune hides (its stored count holds it until gc purges it): only those trees
        are read, not those of every timeline that ever had a prune."""
        tids = sorted(set(timeline_ids))
        counts = dict(self.catalog.checkpoint_counts(tids) if stored is None else stored)
        marks_of = self.marks_of(tids)
        stale = self.catalog.holding_hidden(
            {tid: m.checkpoints for tid, m in marks_of.items()
             if m.checkpoints and not m.timeline_dead})
        for tid, marks in marks_of.items():
            if marks.timeline_dead:
                counts[tid] = 0
            elif tid in stale:
                counts[tid] = len(self.live_tree(tid, marks))
        return counts

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        chain = self.catalog.lineage(checkpoint_id)
        if chain:
            marks = self.marks(chain[-1].timeline_id)
            if not (marks.timeline_dead or any(c.id in marks.checkpoints for c in chain)):
                return chain
        raise NotFoundError(
            f"no checkpoint {checkpoint_id!r} in {self.catalog.describe()}"
            + (" (it was deleted)" if chain else "")
        )

    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        parent = self.checkpoint(checkpoint_id)
        marks = self.seen(parent.timeline_id)  # just read by checkpoint()
        return [c for c in self.catalog.children(checkpoint_id)
                if c.id not in marks.checkpoints]

    # -- tags -----------------------------------------------------------------------------

    def live_tag_records(self, records: Iterable[Tag]) -> list[Tag]:
        """The records that are live: not tombstoned, naming a live checkpoint (every
        one, also several of one name; see live_tags for what names resolve to)."""
        records = list(records)
        if not records:
            return []
        marks = self.marks_of(g.timeline_id for g in records)
        named = {c.id: c for c in self.catalog.checkpoints({g.checkpoint_id for g in records})}
        live = {cid for cid, c in named.items()
                if c.timeline_id in marks and self.is_live(c, marks[c.timeline_id])}
        return [g for g in records
                if g.id not in marks[g.timeline_id].tags and g.checkpoint_id in live
                and named[g.checkpoint_id].timeline_id == g.timeline_id]

    def tags(self, timeline_id: str | None) -> list[Tag]:
        """Live tags (of one timeline, or of every live one), the newest per name."""
        if timeline_id is None:
            timelines = [t.id for t in self.live_timelines(None)]
        else:
            timelines = [self.timeline(timeline_id).id]
        records = self.catalog.tags(timelines) if timelines else []
        return live_tags(self.live_tag_records(records), (), {g.checkpoint_id for g in records})

    def tag_target(self, name: str) -> str | None:
        """The checkpoint a live tag of this name names, or None. Reads the records of
        that name (Catalog.tags_named), then the tombstones of their timelines only."""
        live = self.live_tag_records(self.catalog.tags_named(name))
        winners = live_tags(live, (), {g.checkpoint_id for g in live})
        return winners[0].checkpoint_id if winners else None

    # -- writes ---------------------------------------------------------------------------

    def commit(self, batch: Batch, timeline_id: str, parents: Sequence[Checkpoint],
               new: Sequence[str] = (), first: Callable[[Any], object] | None = None
               ) -> None:
        """Commit a batch of checkpoints under parents (all of timeline_id), refusing with
        NotFoundError, nothing written, if a parent is (or becomes) deleted. new: ids of
        the batch's checkpoints, remembered as live for the next save under them.
        first: run first in the commit's transaction (an SQL catalog's commit_with)."""
        marks = self.seen(timeline_id)
        for _ in range(_RETRIES):
            self._require_live(parents, marks)
            try:
                if first is None:
                    self.catalog.commit_guarded(batch, timeline_id, marks.ids)
                else:
                    cast(Any, self.catalog).commit_with(batch, first,
                                                        (timeline_id, marks.ids))
            except TombstonesChanged as exc:
                marks = (self._remember(Marks.of(timeline_id, exc.tombstones))
                         if exc.tombstones else self.marks(timeline_id))
                continue
            if marks.checkpoints:
                for cid in new:
                    self._record(cid, marks, True)
            return
        raise NotFoundError(  # tombstones kept arriving: someone is deleting this tree now
            f"timeline {timeline_id} is being pruned while this write runs; nothing was "
            "written. Try again."
        )

    def _require_live(self, parents: Sequence[Checkpoint], marks: Marks) -> None:
        for p in parents:
            if not self.is_live(p, marks):
                what = (f"timeline {p.timeline_id} was deleted" if marks.timeline_dead else
                        f"checkpoint {p.id} was deleted (pruned)")
                raise NotFoundError(
                    f"no checkpoint {p.id!r} to save under: {what}; nothing was written"
                )
