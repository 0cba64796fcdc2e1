"""verify: read everything once and report every broken byte and link.

What is checked (every backend; deleted records are not checked, they are gone):

- the catalog's own storage reads completely (``Catalog.storage_problems``: files of
  an embedded catalog, rows of a database), for the whole store: ``verify()`` without a
  timeline, or with ``storage=True`` (``localckpt verify --all``);
- every output a live checkpoint refers to exists, hashes to its address and decodes as
  reads decode it (``canonical.check_stored``: the same check imports make);
- every live checkpoint's parent exists in the same timeline (only a timeline's root has
  none), and so does its merged_from (unless that checkpoint was deleted);
- every live timeline's root checkpoint exists; its frame index exists, matches the
  hash the timeline records (``Timeline.index_hash``) and parses; every shard it names
  exists and every frame's bytes match their content hash, and no bytes follow its last
  frame (kind ``trailing-bytes``: every frame still reads, but the shard is not as
  written); the index holds ``frame_count`` frames;
- every object is read whole once, through ``Objects.get_capped`` with the bundles'
  cap (``bundle_limits.MAX_OBJECT``): in a local directory, one that is not a regular
  file (a FIFO, which would block the read for ever, a device, a directory) or is
  larger than the cap is a problem of kind ``bad-object`` naming its key, and is not
  read;
- every tombstone verify reads (those of the checked timelines; every one when whole)
  deletes, where the store holds its target, a record of its kind in the timeline it
  is filed under, as transfers check (``admit``): kind ``tombstone`` otherwise, such as
  one filed under A naming a tag of V, which transfers admitted before they looked
  the target up in every timeline, and which makes a sync of the whole store refused;
- no record is dated more than ``localckpt.admit.MAX_CLOCK_SKEW`` (a day) after this
  machine's clock, by its ``created_at`` or by the time its UUIDv7 id records: live
  timelines, checkpoints and tags, the tombstones (of deleted timelines too: they
  travel) and stage runs. Transfers refuse such records (``admit.check_times``): a store
  holding one cannot push it, and it outranks every record made here until then (the
  newest tag of a name wins it, ``retain`` keeps the newest). Kind ``future``: made on
  a machine whose clock ran ahead, or written past the transfers' check;
- leftovers (whole-store runs only): frame objects no live timeline refers to (deleted
  timelines, failed or killed ingests, extra shards) and temporary files. They are
  reported as collectable (``gc`` removes them), not as damage.

``verify(timeline)`` reads that timeline's rows, outputs and objects only.

An object the server refuses or fails by itself (``BackendUnavailableError.object_only``:
a 403 on one key) is a problem and the next object is read; the first LISTED_FAILURES are
listed, the rest counted. The object store out of reach (down, stalled, the bucket or the
credentials refused), or FAILURES_IN_A_ROW failed reads in a row, stop the object reads:
a dead endpoint costs its timeout once, not once per object. ``unread_objects`` and
``stopped_reading`` in the report say what was not checked and why.

Damage never raises, whatever the catalog engine: each stage is guarded, and a stage
that fails (a catalog that cannot list its timelines, a tree that does not read) is a
:class:`Problem` of kind ``"unreadable"`` saying what could not be checked, so the
report never claims a check it did not make. Only an unknown (or deleted) timeline id
raises NotFoundError, as every other method does.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ..canonical import check_stored, content_hash
from ..errors import BackendUnavailableError, CorruptDataError, InvalidInputError, NotFoundError
from ..lease import LEASE_NAME
from ..shards import (
    by_shard,
    index_key,
    keys_of,
    parse_index,
    shard_key,
    verify_index,
    verify_shard,
)
from ..types import Checkpoint, Tag, Timeline, Tombstone
from ..visibility import Marks, dead_in_tree
from .reports import Problem, VerifyReport

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["is_temporary", "verify"]

_OUTPUT_BATCH = 1000
#: objects whose read failed listed one by one (problems); those past it are counted
LISTED_FAILURES = 20
#: failed object reads in a row after which the object store is taken to be down
FAILURES_IN_A_ROW = 10
_T = TypeVar("_T")


def is_temporary(key: str) -> bool:
    """A temporary file of an interrupted write (a shard being encoded, an atomic put)."""
    name = key.rsplit("/", 1)[-1]
    return name.startswith(".tmp-") or ".tmp-" in name


class _Check:
    def __init__(self, store: Store) -> None:
        self.store = store
        #: records dated after this are from the future (see the module docstring)
        self.limit = _future_limit()
        self.problems: list[Problem] = []
        self.counts: defaultdict[str, int] = defaultdict(int)
        #: the objects' store is out of reach: the error that said so, and how many
        #: object reads were skipped after it (a stalled endpoint costs its timeout once,
        #: not once per shard of every timeline)
        self.unreachable: BackendUnavailableError | None = None
        self.skipped = 0
        #: object reads the server refused or failed one by one (object_only), those not
        #: listed as problems (past LISTED_FAILURES), and the failures since the last read
        self.failed = 0
        self.unlisted = 0
        self.in_a_row = 0
        #: the timeline of every checkpoint of the trees read, deleted ones included
        self.where: dict[str, str] = {}

    def add(self, kind: str, record: str | None, obj: str | None, message: str) -> None:
        self.problems.append(Problem(kind, record, obj, message))

    def guarded(self, what: str, record: str | None, step: Callable[[], _T]) -> _T | None:
        """step(), or None and an "unreadable" problem saying what was not checked:
        verify reports on damaged stores, whatever a catalog engine raises on them."""
        try:
            return step()
        except Exception as exc:  # any engine's error is a finding here
            self.add("unreadable", record, None,
                     f"{what} could not be checked: {type(exc).__name__}: {exc}")
            return None

    # -- records ----------------------------------------------------------------------------

    def tree(self, t: Timeline, marks: Marks) -> set[str]:
        """Check the live part of t's tree; return the output hashes it refers to."""
        everything = {c.id: c for c in self.store.catalog.tree(t.id)}
        self.where.update((c.id, c.timeline_id) for c in everything.values())
        dead = dead_in_tree(everything.values(), marks.checkpoints)
        live = [c for c in everything.values() if c.id not in dead]
        self.counts["checkpoints"] += len(live)
        self.future("checkpoint", live)
        root = everything.get(t.root_checkpoint_id)
        if root is None or root.parent_id is not None:
            self.add("root", t.id, None,
                     f"timeline {t.id}: its root checkpoint {t.root_checkpoint_id} is "
                     + ("missing" if root is None else "not a root (it has a parent)"))
        hashes: set[str] = set()
        for c in live:
            self._links(t, c, everything, marks)
            hashes |= set(c.stage_hashes.values())
        return hashes

    def _links(self, t: Timeline, c: Checkpoint, everything: dict[str, Checkpoint],
               marks: Marks) -> None:
        if c.parent_id is None:
            if c.id != t.root_checkpoint_id:
                self.add("root", c.id, None, f"checkpoint {c.id} has no parent but is not "
                         f"the root of timeline {t.id}")
        elif c.parent_id not in everything:
            elsewhere = self.store.catalog.checkpoints([c.parent_id])
            self.add("parent", c.id, None, f"checkpoint {c.id}: parent {c.parent_id} "
                     + (f"belongs to timeline {elsewhere[0].timeline_id}, not {t.id}"
                        if elsewhere else "is missing"))
        m = c.merged_from
        if m is not None and m not in everything and m not in marks.checkpoints:
            elsewhere = self.store.catalog.checkpoints([m])
            if elsewhere:
                self.add("merged-from", c.id, None, f"merge {c.id}: merged_from {m} belongs "
                         f"to timeline {elsewhere[0].timeline_id}, not {t.id}")
            elif not marks.checkpoints:  # with prunes, it may be a deleted, purged one
                self.add("merged-from", c.id, None,
                         f"merge {c.id}: merged_from {m} is missing")

    def future(self, kind: str, records: Iterable[Any]) -> None:
        """A problem of kind "future" for each record dated after self.limit (by its
        created_at or its UUIDv7 id; for a run, also its closed_at)."""
        from ..admit import from_the_future

        for r in records:
            late = from_the_future(r, self.limit)
            if late is not None:
                self.add("future", r.id, None, _future_message(kind, r.id, *late, self.limit))

    def other_records(self, timelines: list[Timeline], marks: dict[str, Marks],
                      whole: bool) -> tuple[list[Tombstone], list[Tag]]:
        """The times of the records verify reads nowhere else: the live timelines, their
        live tags and stage runs, and the tombstones (every one of the store when whole:
        a deleted timeline's deletion travels too). Returns those tombstones and the
        timelines' tags (deleted ones too)."""
        self.future("timeline", timelines)
        cat = self.store.catalog
        ids = [t.id for t in timelines]
        tags = cat.tags(ids) if ids else []
        self.future("tag", [g for g in tags if isinstance(g, Tag)
                            and g.id not in marks.get(g.timeline_id, Marks(g.timeline_id)).tags])
        tombstones = cat.tombstones(None if whole else ids) if whole or ids else []
        self.future("tombstone", tombstones)
        tables = getattr(cat, "runs", None)
        if tables is not None and tables.available:
            runs = tables.listing(None) if whole else \
                [r for t in ids for r in tables.listing(t)]
            self.future("stage run", runs)
        return tombstones, tags

    def targets(self, timelines: list[Timeline], tombstones: list[Tombstone],
                tags: list[Tag]) -> None:
        """Each tombstone deletes, where the store holds its target, a record of its kind
        in the timeline it is filed under, as transfers check (``admit``): a store that
        took one aimed across timelines before they did (at another timeline's tag, from
        a peer, before transfers checked it) cannot pass its timelines on. Targets found neither in
        the trees and tags read nor in the live timelines are read by id (purged records
        are nowhere: a tombstone may outlive its target)."""
        kinds: dict[str, tuple[str, str]] = {t.id: ("timeline", t.id) for t in timelines}
        kinds.update((cid, ("checkpoint", tid)) for cid, tid in self.where.items())
        kinds.update((g.id, ("tag", g.timeline_id)) for g in tags)
        aimed = [x for x in tombstones if x.kind != "timeline"]
        unknown = sorted({x.target_id for x in aimed} - set(kinds))
        cat = self.store.catalog
        for i in range(0, len(unknown), _OUTPUT_BATCH):
            rest = unknown[i:i + _OUTPUT_BATCH]
            kinds.update((c.id, ("checkpoint", c.timeline_id)) for c in cat.checkpoints(rest))
            rest = [r for r in rest if r not in kinds]
            if rest:
                kinds.update((g.id, ("tag", g.timeline_id)) for g in cat.with_ids("tag", rest))
                rest = [r for r in rest if r not in kinds]
            if rest:
                kinds.update((t.id, ("timeline", t.id)) for t in cat.timelines(rest))
        for x in tombstones:
            tid = x.timeline_id
            found, owner = ("timeline", x.target_id) if x.kind == "timeline" else \
                kinds.get(x.target_id, (None, None))
            if found is None or (found, owner) == (x.kind, tid):
                continue  # a purged record, or as it should be
            refused = f"every transfer of timeline {tid} (sync, push, import) is refused"
            if found == "timeline":
                what = f"timeline {owner}"
            elif owner == tid:
                what = f"a {found} of that timeline"
            else:
                what = f"a {found} of timeline {owner}"
                refused = (f"a sync or push of the whole store is refused, as is a transfer "
                           f"of timeline {tid} into a store that holds timeline {owner}")
            why = ("a deletion deletes only in its own timeline" if found == x.kind
                   else f"a tombstone of kind {x.kind!r} deletes a {x.kind}")
            self.add("tombstone", tid, None,
                     f"tombstone {x.id} of timeline {tid} deletes {x.target_id}, {what} "
                     f"({why}). Transfers refuse it: {refused} (was it taken from a peer "
                     "before transfers checked this?). The records still read as they did")

    def outputs(self, hashes: set[str]) -> None:
        ordered = sorted(hashes)
        for i in range(0, len(ordered), _OUTPUT_BATCH):
            chunk = ordered[i:i + _OUTPUT_BATCH]
            try:
                found = self.store.catalog.outputs(chunk)
            except CorruptDataError:  # one of them: read them one by one to name it
                found = {}
                for h in chunk:
                    try:
                        found.update(self.store.catalog.outputs([h]))
                    except CorruptDataError as exc:
                        self.add("output-hash", None, h, str(exc))
                        found[h] = b""  # reported: not "missing" as well
                chunk = [h for h in chunk if found.get(h) != b""]
            except Exception as exc:  # see guarded
                self.add("unreadable", None, None, f"{len(chunk)} stage output(s) could not "
                         f"be checked: {type(exc).__name__}: {exc}")
                continue
            for h in chunk:
                data = found.get(h)
                if data is None:
                    self.add("missing-output", None, h, f"stage output {h} is missing; "
                             "checkpoints refer to it")
                    continue
                if content_hash(data) != h:
                    self.add("output-hash", None, h, f"stage output {h} does not match its "
                             "hash (its bytes changed)")
                    continue
                try:
                    check_stored(data)
                except CorruptDataError as exc:
                    self.add("output-json", None, h, f"stage output {h} matches its hash but "
                             f"does not read: {exc}")
                    continue
                self.counts["outputs"] += 1
                self.counts["bytes"] += len(data)

    # -- frames -------------------------------------------------------------------------------

    def _get(self, t: Timeline, key: str, what: str) -> bytes | None:
        """An object's bytes, counted; None (and a problem) when it is missing or cannot
        be read. A read the server refused or failed for this object alone is a problem
        and the next object is tried; the store out of reach (down, stalled, the bucket
        or the credentials refused), or FAILURES_IN_A_ROW such failures, stop the reads."""
        from ..bundle_limits import MAX_OBJECT  # here: tests make it small

        if self.unreachable is not None:
            self.skipped += 1
            return None
        try:
            data = self.store.objects.get_capped(key, MAX_OBJECT)
        except NotFoundError:
            self.in_a_row = 0  # the server answered
            self.add("missing-object", t.id, key, f"timeline {t.id}: {what} {key} is missing")
            return None
        except CorruptDataError as exc:  # a FIFO, a device, a file past the cap: unread
            self.in_a_row = 0
            self.add("bad-object", t.id, key, f"timeline {t.id}, {what}: {exc}")
            return None
        except BackendUnavailableError as exc:
            self._failed(t, key, what, exc)
            return None
        self.in_a_row = 0
        self.counts["objects"] += 1
        self.counts["bytes"] += len(data)
        return data

    def _failed(self, t: Timeline, key: str, what: str, exc: BackendUnavailableError) -> None:
        self.failed += 1
        self.in_a_row += 1
        if not exc.object_only or self.in_a_row >= FAILURES_IN_A_ROW:
            self.unreachable = exc
            why = ("the object store is out of reach" if not exc.object_only else
                   f"{self.in_a_row} reads failed in a row: the object store looks down")
            self.add("unreadable", t.id, key, f"timeline {t.id}: {what} {key} could not be "
                     f"read, and no other object is tried ({why}): {exc}")
        elif self.failed - self.unlisted <= LISTED_FAILURES:
            self.add("unreadable", t.id, key, f"timeline {t.id}: {what} {key} could not be "
                     f"read: {exc}")
        else:
            self.unlisted += 1

    def frames(self, t: Timeline) -> set[str] | None:
        """Check t's index and shards; return the keys its index names (None when the
        index cannot be read). Every frame of the index counts, damaged ones included."""
        objects = self.store.objects
        ikey = index_key(t.id)
        where = f"{objects.describe()}/{ikey}"
        data = self._get(t, ikey, "frame index")
        if data is None:
            return None
        try:
            verify_index(data, t.index_hash, where)
            metas = parse_index(data, where)
        except CorruptDataError as exc:
            kind = "index-hash" if "does not match the hash" in str(exc) else "index"
            self.add(kind, t.id, ikey, str(exc))
            return None
        self.counts["frames"] += len(metas)
        if len(metas) != t.frame_count:
            self.add("frame-count", t.id, ikey, f"timeline {t.id} records {t.frame_count} "
                     f"frames but its index holds {len(metas)}")
        rows = by_shard(metas)
        for shard in sorted(rows):
            key = shard_key(t.id, shard)
            blob = self.guarded(f"shard {key}", t.id,
                                functools.partial(self._get, t, key, "shard"))
            if blob is None:
                continue
            try:
                end = verify_shard(t.id, shard, blob, rows[shard], objects.describe(),
                                   trailing=False)  # said below, as a kind of its own
            except CorruptDataError as exc:
                self.add("frame-hash", t.id, key, str(exc))
                continue
            if len(blob) > end:  # every frame reads, but the shard is not as written
                self.add("trailing-bytes", t.id, key, f"timeline {t.id}: shard {key} "
                         f"holds {len(blob)} bytes, {len(blob) - end} after the end of its "
                         f"last frame (byte {end}), which no frame of the index covers: "
                         "bytes appended to it or a damaged copy (every frame still reads; "
                         "restore the shard from a copy of the store)")
        return set(keys_of(t.id, metas))

    def leftovers(self, live: dict[str, Timeline], expected: dict[str, set[str] | None],
                  ) -> None:
        """Objects under frames/ that no live timeline refers to: collectable. A live
        timeline whose index cannot be read (expected None) has no leftovers: its
        objects are damaged, not spare."""
        groups: defaultdict[str, list[str]] = defaultdict(list)
        for key in self.store.objects.list("frames"):
            parts = key.split("/")
            groups[parts[1] if len(parts) >= 3 else ""].append(key)
        for tid, keys in sorted(groups.items()):
            wanted = expected.get(tid, set())
            if tid in live and wanted is None:
                continue
            for key in keys:
                if tid in live and wanted is not None and key in wanted:
                    continue
                if is_temporary(key):
                    self.add("temporary-file", tid or None, key,
                             f"{key} is a temporary file of an interrupted write; gc removes it")
                elif tid in live:
                    why = ("an ingest lease left after its commit"
                           if key.endswith(LEASE_NAME) else "not in the timeline's index")
                    self.add("unreferenced-object", tid, key, f"{key} is {why}; gc removes it")
                else:
                    why = ("an ingest in progress or one that died"
                           if key.endswith(LEASE_NAME) else "of no live timeline (deleted, or "
                           "a write that never committed)")
                    self.add("unreferenced-object", tid or None, key,
                             f"{key} is {why}; gc removes it")


def _once(problems: list[Problem]) -> tuple[Problem, ...]:
    """The problems, a damaged output named once: the storage check reads every output
    row, the output check the ones live checkpoints use, and both find the same damage."""
    outputs = {p.object for p in problems if p.kind.startswith("output") and p.object}
    return tuple(p for p in problems if not (
        p.kind == "catalog-storage" and p.object is not None
        and any(p.object.endswith(f"outputs row {h}") for h in outputs)))


def verify(store: Store, timeline_id: str | None = None, *, storage: bool | None = None,
           ) -> VerifyReport:
    """Check the store (or one live timeline) and report what is damaged or left over.

    storage: also check the catalog's own storage (``Catalog.storage_problems``, which
    reads the whole catalog); by default only when the whole store is verified.
    NotFoundError for an unknown or deleted timeline_id; never raises for damage."""
    check = _Check(store)
    vis = store.visibility
    whole = timeline_id is None
    storage = whole if storage is None else bool(storage)
    if storage:
        found = check.guarded("the catalog's storage", None, store.catalog.storage_problems)
        for where, what in found or ():
            check.add("catalog-storage", None, where, what)
    listed: list[Timeline] | None = None
    if whole:
        listed = check.guarded("the list of timelines", None,
                               lambda: vis.live_timelines(None))
        # a damaged row keeps the whole list from being read: check the others one by one
        timelines = listed if listed is not None else check.guarded(
            "the timelines one by one", None, lambda: _readable_timelines(store)) or []
    else:
        one = _one_timeline(store, check, str(timeline_id))
        timelines = [] if one is None else [one]
    marks = check.guarded("the tombstones", None,
                          lambda: vis.marks_of(t.id for t in timelines)) or {}
    hashes: set[str] = set()
    expected: dict[str, set[str] | None] = {}
    for t in timelines:
        mine = marks.get(t.id)
        if mine is not None:
            found_hashes = check.guarded(f"the tree of timeline {t.id}", t.id,
                                         functools.partial(check.tree, t, mine))
            hashes |= found_hashes or set()
        expected[t.id] = check.guarded(f"the frames of timeline {t.id}", t.id,
                                       functools.partial(check.frames, t))
    read = check.guarded("the records' times", None,
                         lambda: check.other_records(timelines, marks, whole))
    if read is not None:
        check.guarded("the tombstones' targets", None,
                      functools.partial(check.targets, timelines, *read))
    check.outputs(hashes)
    if check.unlisted:
        check.add("unreadable", None, None, f"{check.unlisted} more frame object(s) could "
                  f"not be read (not listed: the first {LISTED_FAILURES} are, above)")
    if check.skipped:
        check.add("unreadable", None, None, f"{check.skipped} more frame object(s) not read: "
                  "the objects could not be reached (above)")
    if whole and listed is not None and check.unreachable is None:
        check.guarded("the frame objects", None,
                      lambda: check.leftovers({t.id: t for t in timelines}, expected))
    c = check.counts
    return VerifyReport(_once(check.problems), timelines=len(timelines),
                        checkpoints=c["checkpoints"], outputs=c["outputs"],
                        objects=c["objects"], frames=c["frames"], bytes=c["bytes"],
                        storage_checked=storage,
                        unread_objects=check.failed + check.skipped,
                        stopped_reading=None if check.unreachable is None
                        else str(check.unreachable))


def _future_limit() -> datetime:
    """The latest time a record may carry: this machine's clock plus the skew transfers
    allow (``localckpt.admit.MAX_CLOCK_SKEW``)."""
    from ..admit import MAX_CLOCK_SKEW

    return datetime.now(UTC) + MAX_CLOCK_SKEW


def _future_message(kind: str, record_id: str, what: str, when: datetime,
                    limit: datetime) -> str:
    from ..admit import MAX_CLOCK_SKEW

    now = limit - MAX_CLOCK_SKEW
    return (f"{kind} {record_id} {what} {when.astimezone(UTC).isoformat()}, more than a day "
            f"after this machine's clock ({now.isoformat()}): transfers refuse it (a push of "
            "this store is refused until then), and it outranks every record made here until "
            "then (the newest tag of a name wins it, retain keeps the newest). Was the clock "
            "of the machine that made it ahead? Delete it (prune, untag, rm: the deletion "
            "travels, the record does not), or wait until the clock passes its time")


def _one_timeline(store: Store, check: _Check, timeline_id: str) -> Timeline | None:
    """The live timeline to verify; NotFoundError when there is none (a wrong id is not
    damage), a problem when the catalog cannot say."""
    try:
        return store.get_timeline(timeline_id)
    except (NotFoundError, InvalidInputError):
        raise
    except Exception as exc:  # see _Check.guarded
        check.add("unreadable", timeline_id, None, f"timeline {timeline_id} could not be "
                  f"read: {type(exc).__name__}: {exc}")
        return None


def _readable_timelines(store: Store) -> list[Timeline]:
    """The live timelines that can be read one by one (when a damaged one keeps the
    whole list from being read), so that verify still checks them."""
    found: list[Timeline] = []
    for tid in store.catalog.find_ids("timeline", "", 1 << 62):
        try:
            found += store.visibility.live_timelines([tid])
        except CorruptDataError:
            continue  # storage_problems names it
    return found
