"""verify: read everything once and report every broken byte and link.

What is checked (every backend; deleted records are not checked, they are gone):

- the catalog's own storage reads completely (``Catalog.storage_problems``: segment
  and pack files of the embedded catalog, rows of PostgreSQL);
- every output a live checkpoint refers to exists and hashes to its address;
- every live checkpoint's parent exists in the same timeline (only a timeline's root has
  none), and so does its merged_from (unless that checkpoint was deleted);
- every live timeline's root checkpoint exists; its frame index exists, matches the
  hash the timeline records (``Timeline.index_hash``) and parses; every shard it names
  exists and every frame's bytes match their content hash; the index holds
  ``frame_count`` frames;
- leftovers: frame objects no live timeline refers to (deleted timelines, failed or
  killed ingests, extra shards) and temporary files. They are reported as collectable
  (``gc`` removes them), not as damage.

Damage never raises: each finding is a :class:`Problem` in the report.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from ..canonical import content_hash
from ..errors import CorruptDataError, LocalckptError, NotFoundError
from ..lease import LEASE_NAME
from ..shards import index_key, keys_of, parse_index, shard_key, verify_index, verify_shard
from ..types import Checkpoint, Timeline
from ..visibility import Marks, dead_in_tree
from .reports import Problem, VerifyReport

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["is_temporary", "verify"]

_OUTPUT_BATCH = 1000


def is_temporary(key: str) -> bool:
    """A temporary file of an interrupted write (a shard being encoded, an atomic put)."""
    name = key.rsplit("/", 1)[-1]
    return name.startswith(".tmp-") or ".tmp-" in name


class _Check:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.problems: list[Problem] = []
        self.counts: defaultdict[str, int] = defaultdict(int)

    def add(self, kind: str, record: str | None, obj: str | None, message: str) -> None:
        self.problems.append(Problem(kind, record, obj, message))

    # -- records ----------------------------------------------------------------------------

    def tree(self, t: Timeline, marks: Marks) -> set[str]:
        """Check the live part of t's tree; return the output hashes it refers to."""
        everything = {c.id: c for c in self.store.catalog.tree(t.id)}
        dead = dead_in_tree(everything.values(), marks.checkpoints)
        live = [c for c in everything.values() if c.id not in dead]
        self.counts["checkpoints"] += len(live)
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

    def outputs(self, hashes: set[str]) -> None:
        ordered = sorted(hashes)
        for i in range(0, len(ordered), _OUTPUT_BATCH):
            chunk = ordered[i:i + _OUTPUT_BATCH]
            try:
                found = self.store.catalog.outputs(chunk)
            except CorruptDataError as exc:
                self.add("output-hash", None, None, str(exc))
                continue
            for h in chunk:
                data = found.get(h)
                if data is None:
                    self.add("missing-output", None, h, f"stage output {h} is missing; "
                             "checkpoints refer to it")
                elif content_hash(data) != h:
                    self.add("output-hash", None, h, f"stage output {h} does not match its "
                             "hash (its bytes changed)")
                else:
                    self.counts["outputs"] += 1
                    self.counts["bytes"] += len(data)

    # -- frames -------------------------------------------------------------------------------

    def _get(self, t: Timeline, key: str, what: str) -> bytes | None:
        """An object's bytes, counted; None (and a problem) when it is missing."""
        try:
            data = self.store.objects.get(key)
        except NotFoundError:
            self.add("missing-object", t.id, key, f"timeline {t.id}: {what} {key} is missing")
            return None
        self.counts["objects"] += 1
        self.counts["bytes"] += len(data)
        return data

    def frames(self, t: Timeline) -> None:
        objects = self.store.objects
        ikey = index_key(t.id)
        where = f"{objects.describe()}/{ikey}"
        data = self._get(t, ikey, "frame index")
        if data is None:
            return
        try:
            verify_index(data, t.index_hash, where)
            metas = parse_index(data, where)
        except CorruptDataError as exc:
            kind = "index-hash" if "does not match the hash" in str(exc) else "index"
            self.add(kind, t.id, ikey, str(exc))
            return
        if len(metas) != t.frame_count:
            self.add("frame-count", t.id, ikey, f"timeline {t.id} records {t.frame_count} "
                     f"frames but its index holds {len(metas)}")
        for shard in sorted({m.shard for m in metas}):
            key = shard_key(t.id, shard)
            blob = self._get(t, key, "shard")
            if blob is None:
                continue
            mine = [m for m in metas if m.shard == shard]
            try:
                verify_shard(t.id, shard, blob, mine, objects.describe())
                self.counts["frames"] += len(mine)
            except CorruptDataError as exc:
                self.add("frame-hash", t.id, key, str(exc))

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


def verify(store: Store, timeline_id: str | None = None) -> VerifyReport:
    """Check the store (or one live timeline) and report what is damaged or left over."""
    check = _Check(store)
    vis = store.visibility
    for where, what in store.catalog.storage_problems():
        check.add("catalog-storage", None, where, what)
    try:
        if timeline_id is None:
            timelines = vis.live_timelines(None)
        else:
            timelines = [store.get_timeline(timeline_id)]
    except CorruptDataError as exc:  # damage is reported, never raised
        check.add("catalog-storage", timeline_id, None, f"the timelines cannot be read: {exc}")
        timelines = _readable_timelines(store) if timeline_id is None else []
    try:
        marks = vis.marks_of(t.id for t in timelines)
    except CorruptDataError as exc:
        check.add("catalog-storage", None, None, f"the tombstones cannot be read: {exc}")
        marks = {t.id: Marks(t.id) for t in timelines}
    hashes: set[str] = set()
    expected: dict[str, set[str] | None] = {}
    for t in timelines:
        try:
            hashes |= check.tree(t, marks[t.id])
        except LocalckptError as exc:  # a catalog that cannot even list the tree
            check.add("catalog-storage", t.id, None, f"timeline {t.id}: {exc}")
        check.frames(t)
        try:
            data = store.objects.get(index_key(t.id))
            expected[t.id] = set(keys_of(t.id, parse_index(data, index_key(t.id))))
        except LocalckptError:
            expected[t.id] = None
    check.outputs(hashes)
    if timeline_id is None:
        check.leftovers({t.id: t for t in timelines}, expected)
    c = check.counts
    return VerifyReport(tuple(check.problems), timelines=len(timelines),
                        checkpoints=c["checkpoints"], outputs=c["outputs"],
                        objects=c["objects"], frames=c["frames"], bytes=c["bytes"])


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
