"""Local-first sync: make one store hold the union of its trees and another's.

Every record is immutable and keyed by a globally unique id, so the union of two stores
is well defined and sync is "copy what is missing": frame objects of timelines the
destination lacks (missing keys only), then stage outputs it lacks, then every missing
timeline, checkpoint, tombstone and tag record in ONE catalog commit. Deletions are
records too (tombstones), so the union is that of a 2P-set: what either store deleted
is deleted in the result, and deleted records are not copied at all. Consequences
callers rely on:

- idempotent: a second sync finds nothing missing, copies nothing, and costs a constant
  number of catalog round trips (:attr:`SyncReport.round_trips`);
- order-independent: any sequence of syncs into a store ends in the same union;
- interruption-safe: rows travel last, so an interrupted sync leaves the destination
  consistent (at worst unreferenced objects / outputs) and the next sync completes it;
- conflict-safe: a record with the same id and other content raises ConflictError before
  anything is copied;
- distrustful: the source is checked before and while copying (``localckpt.transfer``).

Bundles (``localckpt.bundle``) go through the same code with a file as the source, so
importing an exported bundle is the same as syncing from the store it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .catalog import Batch, Catalog
from .errors import InvalidInputError
from .maintenance.reports import human_bytes
from .progress import Progress, Reporter
from .render import Summarised
from .transfer import OUTPUT_CHUNK_BYTES, Source, transfer
from .types import Checkpoint, Tag, Timeline, Tombstone

if TYPE_CHECKING:
    from .store import Store

__all__ = ["OUTPUT_CHUNK_BYTES", "CountingCatalog", "Progress", "Reporter", "Source",
           "StoreSource", "SyncReport", "TagMove", "TagShadow", "sync", "transfer"]


@attrs.frozen
class TagMove:
    """A tag name a transfer moved: it named checkpoint ``before`` in the destination
    and names ``after`` now (None: nothing), because a tag copied is the newest of its
    name (the newest tag of a name wins it everywhere, by id)."""

    name: str
    before: str
    after: str | None


@attrs.frozen
class TagShadow:
    """A tag name a transfer copied that is spelled like the start of the short id of a
    live record of the destination (``kind`` "checkpoint" or "timeline", ``id``) other
    than the tag's own: a tag wins over a short id spelled the same, so that spelling
    names the tag from now on (``Store.tag`` refuses such a name; a peer's is said)."""

    name: str
    kind: str
    id: str


@attrs.frozen
class SyncReport(Summarised):
    """What one sync (or bundle import / export) copied.

    Attributes:
        timelines, checkpoints: rows written.
        outputs: stage outputs written (each once, by hash).
        objects: frame objects (shards and indexes) written.
        bytes: bytes of those objects and outputs.
        round_trips: catalog calls made on both stores (each a query or a commit); for a
            sync with nothing to copy it is 7 + the number of timelines synced, whatever
            the number of checkpoints.
        tombstones, tags: deletion and tag records written.
        withheld: ids of the source's live checkpoints not copied because dst pruned what
            they derive from and never held them; hidden: ids of dst's checkpoints that a
            pruning copied takes and the source never held. Both are work one side did
            below what the other pruned, unseen by it: the summary names them. (Where
            the pruning side purged the pruned rows, or for a bundle, which carries live
            rows only, seen cannot be told from unseen, and nothing is named.)
        closed_runs: ids of dst's open stage runs that the deletions copied orphan
            (their parent checkpoint or timeline deleted), closed (aborted) right after
            the copy's commit, in transactions of their own (a crash between leaves
            them to gc). Their base is gone, so their values seldom stay in the memo.
            Not counted in round_trips: the runs' table is read once when deletions
            of checkpoints or timelines arrive, and not at all otherwise.
        shadowed: the tag names copied that now hide a short id of dst
            (:class:`TagShadow`), each said in a warning.
        moved_tags: the tag names that named a checkpoint of dst before and another one
            after (:class:`TagMove`): a tag copied took the name, being its newest (by
            design); named so that a script's ``best`` does not change unseen. Costs
            one read of dst for the names of the tags copied (their records, per
            1,000 names), and when some are in use a few more for all of them (their
            deletions and checkpoints, before and after), counted.
    A report that copied nothing is falsy (a run is closed only by a deletion copied).
    """

    timelines: int = 0
    checkpoints: int = 0
    outputs: int = 0
    objects: int = 0
    bytes: int = 0
    round_trips: int = 0
    tombstones: int = 0
    tags: int = 0
    withheld: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    closed_runs: tuple[str, ...] = ()
    moved_tags: tuple[TagMove, ...] = ()
    shadowed: tuple[TagShadow, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.timelines or self.checkpoints or self.outputs or self.objects
                    or self.tombstones or self.tags)

    def warnings(self) -> list[str]:
        """What this transfer did not do, or undid, of work on one side (see withheld),
        and the tag names it moved (see moved_tags)."""
        from .render import plural

        said = []
        if self.withheld:
            said.append(f"{plural(len(self.withheld), 'checkpoint')} not copied: the "
                        f"destination deleted what {_they(self.withheld)} from "
                        f"({_first(self.withheld)})")
        if self.hidden:
            said.append(f"the deletions copied also delete "
                        f"{plural(len(self.hidden), 'checkpoint')} the source does not "
                        f"hold, below what it deleted ({_first(self.hidden)})")
        for m in self.moved_tags:
            now = "nothing" if m.after is None else m.after
            said.append(f"tag {m.name!r} moved from checkpoint {m.before} to {now}: a tag "
                        "copied is the newest of that name, and the newest wins it")
        for h in self.shadowed:
            said.append(f"tag {h.name!r} copied is spelled like the short id of {h.kind} "
                        f"{h.id}: {h.name!r} names the tag from now on; name the {h.kind} "
                        "by its full id (`localckpt tags` prints it), or rename the tag")
        return said

    def summary(self, warnings: bool = True) -> str:
        """One line of what was copied, then a line per warning (unless warnings=False)."""
        from .render import plural

        if not self:
            head = f"up to date ({plural(self.round_trips, 'catalog round trip')})"
        else:
            marks = ""
            if self.tombstones or self.tags:
                marks = f"{plural(self.tombstones, 'deletion')}, {plural(self.tags, 'tag')}, "
            head = (
                f"copied {plural(self.timelines, 'timeline')}, "
                f"{plural(self.checkpoints, 'checkpoint')}, {marks}"
                f"{plural(self.outputs, 'output')}, {plural(self.objects, 'object')}, "
                f"{human_bytes(self.bytes)} ({plural(self.round_trips, 'catalog round trip')})"
            )
            if self.closed_runs:
                head += (f"; closed {plural(len(self.closed_runs), 'open stage run')} "
                         "that depended on what the deletions took")
        if warnings:
            head += "".join(f"\nwarning: {w}" for w in self.warnings())
        return head


def _they(ids: Sequence[str]) -> str:
    """The verb of a warning, agreeing with how many ids it names."""
    return "it derives" if len(ids) == 1 else "they derive"


def _first(ids: Sequence[str], n: int = 3) -> str:
    """The first n ids of a warning and how many more (a sync may name thousands)."""
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


class CountingCatalog(Catalog):
    """Delegates every call to another catalog and counts them (one call, one round trip).

    Composition rather than a flag in every backend: wrap any catalog to measure how many
    queries and commits an operation costs (sync uses it for its report).
    """

    def __init__(self, inner: Catalog) -> None:
        self.inner = inner
        self.supports_multiprocess = inner.supports_multiprocess
        self.calls: dict[str, int] = {}

    @property
    def round_trips(self) -> int:
        return sum(self.calls.values())

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def commit(self, batch: Batch) -> None:
        self._count("commit")
        self.inner.commit(batch)

    def timelines(self, ids: Iterable[str] | None = None) -> list[Timeline]:
        self._count("timelines")
        return self.inner.timelines(ids)

    def checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        self._count("checkpoints")
        return self.inner.checkpoints(ids)

    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        self._count("children")
        return self.inner.children(checkpoint_id)

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        self._count("lineage")
        return self.inner.lineage(checkpoint_id)

    def tree(self, timeline_id: str) -> list[Checkpoint]:
        self._count("tree")
        return self.inner.tree(timeline_id)

    def outputs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        self._count("outputs")
        return self.inner.outputs(hashes)

    def missing_outputs(self, hashes: Iterable[str]) -> set[str]:
        self._count("missing_outputs")
        return self.inner.missing_outputs(hashes)

    def tombstones(self, timeline_ids: Iterable[str] | None = None) -> list[Tombstone]:
        self._count("tombstones")
        return self.inner.tombstones(timeline_ids)

    def tombstones_targeting(self, target_ids: Iterable[str]) -> list[Tombstone]:
        self._count("tombstones_targeting")
        return self.inner.tombstones_targeting(target_ids)

    def tags(self, timeline_ids: Iterable[str] | None = None) -> list[Tag]:
        self._count("tags")
        return self.inner.tags(timeline_ids)

    def with_ids(self, kind: str, ids: Iterable[str]) -> list[Any]:
        self._count("with_ids")
        return self.inner.with_ids(kind, ids)

    def tags_named(self, name: str) -> list[Tag]:
        self._count("tags_named")
        return self.inner.tags_named(name)

    def tags_named_in(self, names: Iterable[str]) -> dict[str, list[Tag]]:
        self._count("tags_named_in")
        return self.inner.tags_named_in(names)

    def deleted(self, target_ids: Iterable[str], kind: str | None = None) -> set[str]:
        self._count("deleted")
        return self.inner.deleted(target_ids, kind)

    def timelines_folding_to(self, ids: Iterable[str]) -> list[str]:
        self._count("timelines_folding_to")
        return self.inner.timelines_folding_to(ids)

    def find_ids(self, kind: str, prefix: str, limit: int = 10) -> list[str]:
        self._count("find_ids")
        return self.inner.find_ids(kind, prefix, limit)

    def load_values(self, hashes: Iterable[str]) -> dict[str, Any]:
        self._count("load_values")
        return self.inner.load_values(hashes)

    def commit_guarded(self, batch: Batch, timeline_id: str, seen: Iterable[str]) -> None:
        self._count("commit_guarded")
        self.inner.commit_guarded(batch, timeline_id, seen)

    def storage_problems(self) -> list[tuple[str, str]]:
        self._count("storage_problems")
        return self.inner.storage_problems()

    def purge_deleted(self) -> int:
        self._count("purge_deleted")
        return self.inner.purge_deleted()

    def describe(self) -> str:
        return self.inner.describe()


# -- sources: a store, or a bundle file ---------------------------------------------------


class StoreSource:
    """A store as a transfer source (its whole tree per timeline)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.catalog = CountingCatalog(store.catalog)

    @property
    def round_trips(self) -> int:
        return self.catalog.round_trips

    @property
    def local(self) -> bool:
        return self.store.objects.is_local

    def describe(self) -> str:
        return self.store.url or self.store.catalog.describe()

    def timelines(self, ids: Sequence[str] | None) -> list[Timeline]:
        return self.catalog.timelines(ids)

    def checkpoints(self, timeline: Timeline) -> list[Checkpoint]:
        return self.catalog.tree(timeline.id)

    def outputs(self, hashes: Sequence[str]) -> dict[str, bytes]:
        return self.catalog.outputs(hashes)

    def tombstones(self, timeline_ids: Sequence[str] | None) -> list[Tombstone]:
        return self.catalog.tombstones(timeline_ids)

    def tags(self, timeline_ids: Sequence[str]) -> list[Tag]:
        return self.catalog.tags(timeline_ids)

    def frame_keys(self, timeline_id: str) -> list[str] | None:
        return None  # derived from the (verified) frame index

    def read_object(self, key: str) -> bytes:
        """An object of the source, of at most ``bundle_limits.MAX_OBJECT`` bytes (the
        cap bundles have). In a local directory (a peer's store anyone may have put
        there) it must be a regular file, its size told before it is read: a FIFO put in
        place of a shard or an index made the sync wait for ever, and a device or a
        sparse file of terabytes was read into memory whole. From an object store, reads
        stop past the cap (one ranged GET, as the whole object's was)."""
        from .bundle_limits import MAX_OBJECT

        return self.store.objects.get_capped(key, MAX_OBJECT)


def sync(
    src: Store, dst: Store, timeline_id: str | None = None, progress: Any = None, *,
    hide_unseen: bool = True,
) -> SyncReport:
    """Make dst hold the union of its trees and src's (one timeline, or all when None).

    Copies only what dst lacks; src is only read. Idempotent and order-independent;
    atomic for rows (one commit, last), so an interrupted sync is completed by the next.
    Raises ConflictError (nothing copied) when a record exists in both with other content,
    NotFoundError when src lacks timeline_id. progress: None, True (a tqdm bar on stderr;
    needs tqdm), a tqdm bar, or a function(phase, done, total).
    Catalog round trips: 7 + one per timeline when nothing is missing, plus at most
    2 + one per 64 MB of outputs beyond the first 64 MB (which go with the rows) when
    something is (those outputs are read twice: all are checked before the first is
    committed), + one when checkpoints or tags arrive (dst's deletions of their ids, in
    any timeline: a deleted id never comes back), + one when deletions arrive whose
    targets are neither records the sync reads anyway nor tags of its timelines (dst's
    tags with those ids, in any timeline: a deletion only names a record of its own
    timeline), + one per timeline in which a
    pruning arrives (its tree, to name work of dst's the pruning takes: ``hidden``),
    + one of src per 1,000 outputs the new checkpoints name that dst holds but that
    none of dst's checkpoints the sync names uses (src must prove it holds them: see
    localckpt.admit),
    + one for the names of the tags copied (per 1,000) and a few more when some are
    in use (whom they named before and after: the report's ``moved_tags`` says which
    names a newer tag took; the rule is unchanged).
    Tombstones travel (deletions win) and deleted records are not copied; dst's open
    stage runs that they orphan are closed right after the commit (``closed_runs``;
    a crash between the two leaves them for gc to close); a source
    whose records, keys or bytes do not check out raises CorruptDataError and leaves
    nothing in dst. hide_unseen=False refuses (HiddenWorkError, nothing copied) a sync
    whose deletions would take dst's checkpoints that src never held (``hidden``): what
    ``push`` and ``pull`` do without ``--force``.
    """
    from .store import Store

    for which, store in (("src", src), ("dst", dst)):
        if not isinstance(store, Store):
            raise InvalidInputError(f"{which} must be a Store (localckpt.open(...)), not a "
                                    f"{type(store).__name__}")
    if src is dst:
        raise InvalidInputError("src and dst are the same store; sync copies between two")
    if timeline_id is not None and not isinstance(timeline_id, str):
        raise InvalidInputError(
            f"timeline_id must be an id string or None, not {type(timeline_id).__name__}"
        )
    ids = None if timeline_id is None else [timeline_id]
    src._check_open()
    dst._check_open()
    return transfer(StoreSource(src), dst, ids, progress, desc="sync",
                    hide_unseen=hide_unseen)
