"""The backend interface: a catalog of immutable records.

A catalog holds the record kinds of :mod:`localckpt.schema` (timelines, checkpoints,
tombstones, tags), each keyed by a globally unique id, and stage outputs (canonical
JSON keyed by its SHA-256). A catalog stores and returns records as they are: hiding
what tombstones delete is done once, above it, by the Store.
Everything else (carry-forward, lineage semantics, merge, sync) is written once in
the layers above, so a new backend is this class plus one line in the conformance
suite (``localckpt.testing``).

Semantics every backend must keep:
- ``commit`` is all-or-nothing and idempotent: a record whose id is already present
  with equal content is skipped; one whose id is present with other content raises
  ConflictError and nothing of the batch is written.
- Reads of unknown ids return nothing (empty list / missing key), never raise;
  the Store turns absence into NotFoundError.
- Listings are ordered by id (ids are UUIDv7, so that is creation order).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import attrs

from .canonical import load_canonical
from .errors import InvalidInputError, LocalckptError
from .types import Checkpoint, Tag, Timeline, Tombstone

__all__ = ["Batch", "Catalog", "Garbage", "TombstonesChanged", "refuse_unseen"]

#: What a tombstone may delete (localckpt.schema.TOMBSTONE_TARGETS).
_TOMBSTONE_KINDS = ("timeline", "checkpoint", "tag")


class TombstonesChanged(LocalckptError):
    """:meth:`Catalog.commit_guarded` found tombstones the caller had not seen; nothing
    was written. ``tombstones`` holds the timeline's tombstones as the catalog saw them
    (every one, when the catalog read them; else empty: the caller reads them)."""

    def __init__(self, message: str, tombstones: Sequence[Tombstone] = ()) -> None:
        super().__init__(message)
        self.tombstones = list(tombstones)


def refuse_unseen(timeline_id: str, current: Sequence[Tombstone], seen: Iterable[str]) -> None:
    """The guard of :meth:`Catalog.commit_guarded`: TombstonesChanged when current (the
    timeline's tombstones as the catalog holds them) has one whose id is not in seen."""
    known = set(seen)
    if any(t.id not in known for t in current):
        raise TombstonesChanged(
            f"timeline {timeline_id} has new tombstones; nothing was written", current
        )


@attrs.frozen
class Garbage:
    """What a purge removes (:meth:`Catalog.garbage`): ids of timelines, checkpoints and
    tags, and outputs as hash -> size of their canonical JSON in bytes."""

    timelines: frozenset[str] = frozenset()
    checkpoints: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    outputs: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def records(self) -> int:
        """How many records go: timelines, checkpoints, tags and outputs."""
        return len(self.timelines) + len(self.checkpoints) + len(self.tags) + len(self.outputs)

    @property
    def output_bytes(self) -> int:
        return sum(self.outputs.values())

    def minus(self, other: Garbage) -> Garbage:
        return Garbage(self.timelines - other.timelines, self.checkpoints - other.checkpoints,
                       self.tags - other.tags,
                       {h: n for h, n in self.outputs.items() if h not in other.outputs})


@attrs.frozen
class Batch:
    """Records written together, all or nothing.

    outputs maps content hash -> canonical JSON bytes; the Store guarantees every hash
    a checkpoint references is either in this batch or already in the catalog.
    Every record is checked by :func:`localckpt.schema.validate` when the batch is
    made (the one check before any write): a bad one raises InvalidInputError.
    ``validated=True`` skips that check, for records the Store itself built from input
    it has checked already (a save's checkpoint): never for records from outside.
    """

    timelines: Sequence[Timeline] = ()
    checkpoints: Sequence[Checkpoint] = ()
    outputs: Mapping[str, bytes] = attrs.field(factory=dict)
    tombstones: Sequence[Tombstone] = ()
    tags: Sequence[Tag] = ()
    validated: bool = attrs.field(default=False, kw_only=True, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.validated:  # before the import: a save's batch, on the path of every save
            return
        from .schema import validate

        for group in (self.timelines, self.checkpoints, self.tombstones, self.tags):
            for record in group:
                validate(record)

    def __bool__(self) -> bool:
        return bool(
            self.timelines or self.checkpoints or self.outputs or self.tombstones or self.tags
        )


class Catalog(ABC):
    """Metadata rows of one store. Implemented once, by backends.sql.SqlCatalog, on
    SQLite (embedded and memory), PostgreSQL and DuckDB."""

    #: True when other processes can write to the same catalog at once.
    supports_multiprocess: bool = False

    @abstractmethod
    def commit(self, batch: Batch) -> None:
        """Write every record of batch atomically (see module docstring)."""

    @abstractmethod
    def timelines(self, ids: Iterable[str] | None = None) -> list[Timeline]:
        """The timelines with these ids that exist (all when ids is None), ordered by id."""

    @abstractmethod
    def checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        """The checkpoints with these ids that exist, ordered by id."""

    def peek_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        """One checkpoint or None, possibly the catalog's own record: the caller reads it
        and must not mutate it. Saves use it for the parent, skipping a defensive copy."""
        found = self.checkpoints([checkpoint_id])
        return found[0] if found else None

    @abstractmethod
    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        """Direct children of a checkpoint, ordered by id."""

    @abstractmethod
    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        """The chain root .. checkpoint_id (root first), in one query; [] if unknown."""

    @abstractmethod
    def tree(self, timeline_id: str) -> list[Checkpoint]:
        """Every checkpoint of a timeline, root included, ordered by id, in one query."""

    @abstractmethod
    def outputs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """Canonical JSON bytes of the outputs with these hashes that exist."""

    @abstractmethod
    def tombstones(self, timeline_ids: Iterable[str] | None = None) -> list[Tombstone]:
        """Tombstones of these timelines (every one when None), ordered by id."""

    @abstractmethod
    def tags(self, timeline_ids: Iterable[str] | None = None) -> list[Tag]:
        """Tag records of these timelines (every one when None, tombstoned ones too),
        ordered by id."""

    def tombstones_targeting(self, target_ids: Iterable[str]) -> list[Tombstone]:
        """The tombstones, of any timeline and kind, whose target is one of these ids
        (also when the target's record was purged), ordered by id. A transfer asks it
        for the ids of the records it would write: a deleted id never comes back, not
        even in another timeline (``localckpt.admit``).

        A catalog whose :meth:`purge_deleted` removes records must also answer for the
        ids it purged that no tombstone names (a checkpoint below a pruned one, one of a
        deleted timeline, a tag that went with either): with the tombstone that deleted
        it, aimed at that id (``target_id`` the id, ``kind`` its kind, the tombstone's
        own id, timeline and time), so it is refused like a direct target. The default
        filters every tombstone (one read): right for a catalog that purges nothing (the
        default); a backend with an index on target_id overrides it with one query."""
        wanted = set(target_ids)
        if not wanted:
            return []
        return [x for x in self.tombstones(None) if x.target_id in wanted]

    def with_ids(self, kind: str, ids: Iterable[str]) -> list[Any]:
        """The stored tombstones (kind "tombstone") or tags (kind "tag") whose ids are
        among ids, of any timeline, ordered by id: what a transfer compares the records
        it brings with. The default filters every record of the kind (one read); a
        backend with an index on the id overrides it with a read of those ids only."""
        if kind not in ("tombstone", "tag"):
            raise InvalidInputError(f"with_ids reads tombstones or tags, not {kind!r}")
        wanted = set(ids)
        every = self.tombstones(None) if kind == "tombstone" else self.tags(None)
        return [r for r in every if r.id in wanted] if wanted else []

    def tags_named(self, name: str) -> list[Tag]:
        """The tag records called name, of every timeline (tombstoned ones too), ordered
        by id: what a lookup by name reads. The default reads every tag; backends
        override with an index."""
        return [g for g in self.tags(None) if g.name == name]

    def tags_named_in(self, names: Iterable[str]) -> dict[str, list[Tag]]:
        """tags_named of each of these names: name -> its records ordered by id (a name
        no record has maps to []). One read for many names where the backend can (a
        transfer asks what each name of the tags it copies names); the default asks
        tags_named once per name."""
        return {name: self.tags_named(name) for name in sorted(set(names))}

    def deleted(self, target_ids: Iterable[str], kind: str | None = None) -> set[str]:
        """Which of these ids a tombstone deletes, as a record of the tombstone's own kind
        in the tombstone's own timeline. The contract (every backend answers the same):

        an id is in the answer when the catalog holds a tombstone x with
        ``x.target_id == id`` and, for the kind asked (None: any of the three),

        - ``"timeline"``: ``x.kind == "timeline"`` and ``x.timeline_id == id`` (a
          timeline's deletion is filed under the timeline itself; no record needed);
        - ``"checkpoint"``: ``x.kind == "checkpoint"`` and the catalog holds a checkpoint
          with this id whose ``timeline_id == x.timeline_id``;
        - ``"tag"``: ``x.kind == "tag"`` and the catalog holds a tag with this id whose
          ``timeline_id == x.timeline_id``.

        A tombstone aimed at an id of another kind, or at a record of another timeline,
        deletes nothing (it can only come from damaged or hostile input; imports refuse
        it). Only direct targets are answered: checkpoints under a deleted checkpoint or
        in a deleted timeline are not (the Store's ancestor rule, localckpt.visibility,
        adds them). In SQL, for checkpoints: ``SELECT c.id FROM checkpoints c JOIN
        tombstones x ON x.target_id = c.id AND x.kind = 'checkpoint' AND x.timeline_id =
        c.timeline_id WHERE c.id IN (...)``. The default reads the tombstones of the
        records' timelines; backends override with one query."""
        if kind is not None and kind not in _TOMBSTONE_KINDS:
            raise ValueError(f"deleted kind must be one of {_TOMBSTONE_KINDS} or None, "
                             f"not {kind!r}")
        return self._deleted_by_tombstones(set(target_ids),
                                           _TOMBSTONE_KINDS if kind is None else (kind,))

    def _deleted_by_tombstones(self, wanted: set[str], kinds: Sequence[str]) -> set[str]:
        """deleted() for these kinds, from the tombstones of the records' timelines (one
        tombstones read for every kind asked)."""
        if not wanted:
            return set()
        owner: dict[tuple[str, str], str] = {}  # (kind, id) -> the record's timeline
        if "timeline" in kinds:
            owner.update({("timeline", i): i for i in wanted})
        if "checkpoint" in kinds:
            owner.update({("checkpoint", c.id): c.timeline_id for c in self.checkpoints(wanted)})
        if "tag" in kinds:
            owner.update({("tag", g.id): g.timeline_id for g in self.tags(None) if g.id in wanted})
        timelines = set(owner.values())
        if not timelines:
            return set()
        return {x.target_id for x in self.tombstones(timelines)
                if owner.get((x.kind, x.target_id)) == x.timeline_id}

    def timelines_folding_to(self, ids: Iterable[str]) -> list[str]:
        """The ids of stored timelines (deleted ones too) equal to one of ids but for
        letter case, and not equal to it: a timeline's frames lie under its id, which
        one directory on a case-insensitive filesystem (macOS, Windows) would hold for
        both. The default reads every timeline; backends override with one query."""
        given = set(ids)
        folded = {i.lower() for i in given}
        return sorted(t.id for t in self.timelines(None)
                      if t.id.lower() in folded and t.id not in given)

    def find_ids(self, kind: str, prefix: str, limit: int = 10) -> list[str]:
        """Up to limit ids of timelines or checkpoints (kind) that start with prefix,
        sorted. The default reads every record; backends override with an index."""
        if kind == "timeline":
            ids = [t.id for t in self.timelines(None)]
        elif kind == "checkpoint":
            ids = [c.id for t in self.timelines(None) for c in self.tree(t.id)]
        else:
            raise ValueError(f"find_ids kind must be 'timeline' or 'checkpoint', not {kind!r}")
        return sorted(i for i in ids if i.startswith(prefix))[:limit]

    def short_neighbours(self, kind: str, ids: Sequence[str]
                         ) -> dict[str, tuple[str | None, str | None]] | None:
        """For each stored id of these (kind as for find_short): the tails of the other
        ids next to its tail in sort order, before and after it (None at either end).
        The id sharing the longest start of a tail is one of the two, so this gives many
        short ids at once. None: not supported (short ids then use find_short)."""
        return None

    def find_short(self, kind: str, short: str, limit: int = 10) -> list[str]:
        """Up to limit ids of timelines or checkpoints (kind) whose tail
        (:func:`localckpt.ids.id_tail`) starts with short, sorted. The default reads every
        record; backends override with an index."""
        from .ids import id_tail

        if kind == "timeline":
            ids = [t.id for t in self.timelines(None)]
        elif kind == "checkpoint":
            ids = [c.id for t in self.timelines(None) for c in self.tree(t.id)]
        else:
            raise ValueError(f"find_short kind must be 'timeline' or 'checkpoint', not {kind!r}")
        return sorted(i for i in ids if id_tail(i).startswith(short))[:limit]

    def timeline_page(self, offset: int, limit: int, newest_first: bool = False,
                      ) -> tuple[list[Timeline], dict[str, int], int]:
        """One page of the timelines no timeline tombstone deletes, in the order they were
        made: by created_at, then id (ids are tokens: one that is not a UUIDv7, an old
        store's or a peer's ``zzzz``, has no time and would sort after every UUID);
        newest_first reverses it, so the newest page reads O(page) rows: (the timelines,
        their stored checkpoint counts by id, how many such timelines there are in all).
        Counts include checkpoints that a prune hides but gc has not purged yet (the
        Store corrects them). The default reads every timeline and tree; backends
        override with one query of O(page) rows."""
        gone = {t.target_id for t in self.tombstones(None)
                if t.kind == "timeline" and t.target_id == t.timeline_id}
        live = sorted((t for t in self.timelines(None) if t.id not in gone),
                      key=lambda t: (t.created_at, t.id), reverse=newest_first)
        page = live[offset:offset + limit]
        return page, {t.id: len(self.tree(t.id)) for t in page}, len(live)

    def checkpoint_counts(self, timeline_ids: Iterable[str]) -> dict[str, int]:
        """Stored checkpoints per timeline (those a prune hides but gc has not purged yet
        included: the Store corrects them). The default reads each tree; backends
        override with one query that reads no checkpoint."""
        return {tid: len(self.tree(tid)) for tid in set(timeline_ids)}

    def holding_hidden(self, marked: Mapping[str, Collection[str]]) -> set[str]:
        """The timelines (marked's keys) that still store a checkpoint their tombstoned
        checkpoint ids (marked's values) hide: a marked one, or a child of one, where
        every hidden checkpoint's chain down from a mark begins. Only their stored counts
        need a tree read to be corrected; once gc has purged what a prune hid, none do.
        The default says every one does; backends override with one query."""
        return {tid for tid, ids in marked.items() if ids}

    def missing_outputs(self, hashes: Iterable[str]) -> set[str]:
        """Hashes the catalog lacks. Backends may override with a cheaper existence check."""
        wanted = set(hashes)
        return wanted - set(self.outputs(wanted))

    def load_values(self, hashes: Iterable[str]) -> dict[str, Any]:
        """Decoded outputs by hash, each verified against its hash (CorruptDataError)."""
        return {h: load_canonical(data, h) for h, data in self.outputs(hashes).items()}

    def commit_guarded(self, batch: Batch, timeline_id: str, seen: Iterable[str]) -> None:
        """Commit batch unless timeline_id now has a tombstone whose id is not in seen:
        then raise TombstonesChanged and write nothing.

        Saves and merges use it so that a parent deleted meanwhile is refused (the Store
        checks the parent against the tombstones it has seen, then commits with this
        guard) without asking for the tombstones before every save. The default asks
        first, which costs nothing on in-process catalogs; a backend where that is a
        round trip folds the check into its commit statement instead. Not atomic with
        other processes' deletions, and need not be: a checkpoint saved under a parent
        deleted at the same moment is hidden by the ancestor rule like the rest."""
        refuse_unseen(timeline_id, self.tombstones([timeline_id]), seen)
        self.commit(batch)

    def storage_problems(self) -> list[tuple[str, str]]:
        """Damage in the catalog's own storage (a file that does not read completely, a
        row that does not parse): (where, what) pairs, for ``Store.verify``. Reads every
        file or row once. The default knows of no storage of its own to check."""
        return []

    def garbage(self, timeline_ids: Iterable[str] | None = None,
                extra: Sequence[Tombstone] = ()) -> Garbage:
        """What :meth:`purge_deleted` removes now (of these timelines' records, when
        timeline_ids is given), and what it would remove if the extra tombstones were
        stored too: the one measure that gc, prune, retain and rm report. The rules:

        - a timeline a tombstone of kind timeline, of that timeline, targets;
        - every checkpoint of such a timeline, and every checkpoint a tombstone of kind
          checkpoint of its own timeline targets, with the checkpoints below it;
        - a tag a tombstone of kind tag of its own timeline targets, or whose checkpoint
          or timeline goes;
        - an output that only going checkpoints refer to.

        Outputs no checkpoint ever used (staged by a sync that never committed) are purged
        too, at the second purge that finds them, and are not counted here. The default
        knows of no garbage (the default purge removes nothing)."""
        return Garbage()

    def purge_deleted(self) -> int:
        """Physically remove what tombstones delete (timelines, checkpoints, tags; never
        the tombstones) and outputs no live checkpoint refers to; return how many records
        went. The id of every checkpoint and tag removed stays known to
        :meth:`tombstones_targeting`, written with its removal (all or nothing). Safe
        while other writers run: an output a concurrent save refers to stays. Readers
        never see a difference (tombstones already hide these records). The default
        removes nothing (the records stay, hidden)."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files. Further calls are undefined."""

    def describe(self) -> str:
        """Where the catalog lives, for messages (never includes credentials)."""
        return type(self).__name__
