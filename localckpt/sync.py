"""Local-first sync: make one store hold the union of its trees and another's.

Every record is immutable and keyed by a globally unique id, so the union of two stores
is well defined and sync is "copy what is missing": frame objects of timelines the
destination lacks (missing keys only), then stage outputs it lacks, then every missing
timeline and checkpoint row in ONE catalog commit. Consequences callers rely on:

- idempotent: a second sync finds nothing missing, copies nothing, and costs a constant
  number of catalog round trips (:attr:`SyncReport.round_trips`);
- order-independent: any sequence of syncs into a store ends in the same union;
- interruption-safe: rows travel last, so an interrupted sync leaves the destination
  consistent (at worst unreferenced objects / outputs) and the next sync completes it;
- conflict-safe: a record with the same id and other content raises ConflictError before
  anything is copied.

Bundles (``localckpt.bundle``) go through the same code with a file as the source, so
importing an exported bundle is the same as syncing from the store it came from.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from .canonical import content_hash
from .catalog import Batch, Catalog
from .errors import ConflictError, CorruptDataError, InvalidInputError, NotFoundError
from .types import Checkpoint, Tag, Timeline, Tombstone

if TYPE_CHECKING:
    from .store import Store

__all__ = ["CountingCatalog", "Progress", "SyncReport", "sync"]

#: progress(phase, done, total): phase is "objects" (frame shards and indexes),
#: "outputs" or "rows"; done counts items of that phase so far.
Progress = Callable[[str, int, int], None]

#: Outputs copied per catalog commit: bounds memory, keeps round trips few.
OUTPUT_CHUNK_BYTES = 64 << 20
_COPY_THREADS = 4


@attrs.frozen
class SyncReport:
    """What one sync (or bundle import / export) copied.

    Attributes:
        timelines, checkpoints: rows written.
        outputs: stage outputs written (each once, by hash).
        objects: frame objects (shards and indexes) written.
        bytes: bytes of those objects and outputs.
        round_trips: catalog calls made on both stores (each a query or a commit); for a
            sync with nothing to copy it is 3 + the number of timelines synced, whatever
            the number of checkpoints.
    A report that copied nothing is falsy.
    """

    timelines: int = 0
    checkpoints: int = 0
    outputs: int = 0
    objects: int = 0
    bytes: int = 0
    round_trips: int = 0

    def __bool__(self) -> bool:
        return bool(self.timelines or self.checkpoints or self.outputs or self.objects)

    def summary(self) -> str:
        if not self:
            return f"up to date ({self.round_trips} catalog round trips)"
        return (
            f"copied {self.timelines} timeline(s), {self.checkpoints} checkpoint(s), "
            f"{self.outputs} output(s), {self.objects} object(s), {_human(self.bytes)} "
            f"({self.round_trips} catalog round trips)"
        )


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


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

    def tags(self, timeline_ids: Iterable[str] | None = None) -> list[Tag]:
        self._count("tags")
        return self.inner.tags(timeline_ids)

    def deleted(self, target_ids: Iterable[str]) -> set[str]:
        self._count("deleted")
        return self.inner.deleted(target_ids)

    def find_ids(self, kind: str, prefix: str, limit: int = 10) -> list[str]:
        self._count("find_ids")
        return self.inner.find_ids(kind, prefix, limit)

    def load_values(self, hashes: Iterable[str]) -> dict[str, Any]:
        self._count("load_values")
        return self.inner.load_values(hashes)

    def describe(self) -> str:
        return self.inner.describe()


# -- sources: a store, or a bundle file ---------------------------------------------------


class Source(Protocol):
    """What a transfer reads from. Reads of unknown ids return nothing, as catalogs do."""

    @property
    def round_trips(self) -> int: ...

    def describe(self) -> str: ...

    def timelines(self, ids: Sequence[str] | None) -> list[Timeline]: ...

    def checkpoints(self, timeline: Timeline) -> list[Checkpoint]: ...

    def outputs(self, hashes: Sequence[str]) -> dict[str, bytes]: ...

    def frame_keys(self, timeline_id: str) -> list[str]: ...

    def read_object(self, key: str) -> bytes: ...


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

    def frame_keys(self, timeline_id: str) -> list[str]:
        from .shards import frame_keys

        return frame_keys(self.store.objects, timeline_id)

    def read_object(self, key: str) -> bytes:
        return self.store.objects.get(key)


# -- progress -----------------------------------------------------------------------------


class _Reporter:
    """Adapts None, True (a tqdm bar), a tqdm-like object or a callable."""

    def __init__(self, progress: Any, desc: str) -> None:
        self.callback: Progress | None = None
        self.bar: Any = None
        self.own_bar = False
        if progress is None or progress is False:
            return
        if progress is True:
            try:
                from tqdm.auto import tqdm
            except ImportError as exc:
                raise InvalidInputError(
                    "progress=True needs tqdm: pip install 'localckpt[progress]'"
                ) from exc
            self.bar = tqdm(total=0, desc=desc, unit="item", file=sys.stderr, leave=False)
            self.own_bar = True
        elif hasattr(progress, "update") and hasattr(progress, "total"):
            self.bar = progress
        elif callable(progress):
            self.callback = progress
        else:
            raise InvalidInputError(
                "progress must be None, True, a tqdm bar or a function(phase, done, total), "
                f"not {type(progress).__name__}"
            )

    def start(self, total: int) -> None:
        if self.bar is not None:
            self.bar.total = total
            if hasattr(self.bar, "refresh"):
                self.bar.refresh()

    def step(self, phase: str, done: int, total: int, advance: int = 1) -> None:
        if self.callback is not None:
            self.callback(phase, done, total)
        if self.bar is not None and advance:
            self.bar.update(advance)
            if hasattr(self.bar, "set_postfix_str"):
                self.bar.set_postfix_str(phase, refresh=False)

    def close(self) -> None:
        if self.own_bar:
            self.bar.close()


# -- the transfer -------------------------------------------------------------------------


@attrs.frozen
class _Plan:
    timelines: list[Timeline]
    checkpoints: list[Checkpoint]
    outputs: list[str]
    objects: list[tuple[str, list[str]]]  # (timeline id, keys to copy in order)


def transfer(
    source: Source,
    dst: Store,
    timeline_ids: Sequence[str] | None = None,
    progress: Any = None,
    desc: str = "sync",
) -> SyncReport:
    """Copy into dst every record of source's timelines (all when None) that dst lacks.

    Shared by sync and bundle import; see the module docstring for the guarantees.
    """
    reporter = _Reporter(progress, desc)
    dcat = CountingCatalog(dst.catalog)
    try:
        plan = _plan(source, dcat, dst, timeline_ids)
        if plan is None:
            return SyncReport(round_trips=source.round_trips + dcat.round_trips)
        n_objects = sum(len(keys) for _, keys in plan.objects)
        reporter.start(n_objects + len(plan.outputs) + 1)
        copied_objects, object_bytes = _copy_objects(source, dst, plan, reporter, n_objects)
        output_bytes = _copy_outputs(source, dcat, plan.outputs, reporter)
        dcat.commit(Batch(timelines=plan.timelines, checkpoints=plan.checkpoints))
        reporter.step("rows", 1, 1)
        return SyncReport(
            timelines=len(plan.timelines),
            checkpoints=len(plan.checkpoints),
            outputs=len(plan.outputs),
            objects=copied_objects,
            bytes=object_bytes + output_bytes,
            round_trips=source.round_trips + dcat.round_trips,
        )
    finally:
        reporter.close()


def _plan(
    source: Source, dcat: Catalog, dst: Store, timeline_ids: Sequence[str] | None
) -> _Plan | None:
    """What dst lacks, after checking that nothing it holds conflicts. Reads only."""
    wanted = None if timeline_ids is None else list(dict.fromkeys(timeline_ids))
    timelines = source.timelines(wanted)
    if wanted is not None:
        lacking = set(wanted) - {t.id for t in timelines}
        if lacking:
            raise NotFoundError(
                f"no timeline {sorted(lacking)[0]!r} in {source.describe()}; nothing was copied"
            )
    checkpoints = [c for t in timelines for c in source.checkpoints(t)]
    have_t = {t.id: t for t in dcat.timelines([t.id for t in timelines])} if timelines else {}
    have_c = (
        {c.id: c for c in dcat.checkpoints([c.id for c in checkpoints])} if checkpoints else {}
    )
    bad = [t.id for t in timelines if t.id in have_t and have_t[t.id] != t]
    bad += [c.id for c in checkpoints if c.id in have_c and have_c[c.id] != c]
    if bad:
        raise ConflictError(
            f"{len(bad)} record(s) exist in both {source.describe()} and "
            f"{dst.url or dst.catalog.describe()} with different content (first: {bad[0]}). "
            "Ids are unique, so one store holds a modified copy; nothing was copied."
        )
    new_t = [t for t in timelines if t.id not in have_t]
    new_c = [c for c in checkpoints if c.id not in have_c]
    if not new_t and not new_c:
        return None
    needed = sorted({h for c in new_c for h in c.stage_hashes.values()})
    missing = sorted(dcat.missing_outputs(needed)) if needed else []
    objects = []
    for t in new_t:
        # A timeline row in dst means its frames are complete (rows travel last), so only
        # timelines dst lacks need their objects compared and copied.
        keys = source.frame_keys(t.id)
        present = set(dst.objects.list(f"frames/{t.id}"))
        todo = [k for k in keys if k not in present]
        if todo:
            objects.append((t.id, todo))
    return _Plan(new_t, new_c, missing, objects)


def _copy_objects(
    source: Source, dst: Store, plan: _Plan, reporter: _Reporter, total: int
) -> tuple[int, int]:
    """Copy frame objects: shards (concurrently on remote stores), then each index last,
    so dst never holds an index whose shards are missing."""
    done = 0
    nbytes = 0

    def copy(key: str) -> int:
        data = source.read_object(key)
        dst.objects.put(key, data)
        return len(data)

    remote = not dst.objects.is_local or not getattr(source, "local", True)
    pool = ThreadPoolExecutor(_COPY_THREADS) if remote else None
    try:
        for _, keys in plan.objects:
            head, last = keys[:-1], keys[-1:]
            if not last[0].endswith("index.parquet"):
                head, last = keys, []
            sizes = pool.map(copy, head) if pool is not None else map(copy, head)
            for batch in (sizes, map(copy, last)):  # the index only after every shard
                for size in batch:
                    done += 1
                    nbytes += size
                    reporter.step("objects", done, total)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return done, nbytes


def _copy_outputs(
    source: Source, dcat: Catalog, hashes: list[str], reporter: _Reporter
) -> int:
    """Copy outputs in commits of at most OUTPUT_CHUNK_BYTES, verifying each hash."""
    nbytes = 0
    done = 0
    i = 0
    while i < len(hashes):
        # Fetch in slices of up to 1,000 hashes; commit whenever the buffer is full.
        chunk = hashes[i : i + 1000]
        i += len(chunk)
        found = source.outputs(chunk)
        lacking = set(chunk) - set(found)
        if lacking:
            raise CorruptDataError(
                f"{source.describe()} lacks stage output {sorted(lacking)[0]} that its "
                "checkpoints refer to; the source store is damaged. Nothing was copied "
                "to the destination's catalog rows."
            )
        batch: dict[str, bytes] = {}
        size = 0
        for h in chunk:
            data = found[h]
            if content_hash(data) != h:
                raise CorruptDataError(
                    f"stage output {h} in {source.describe()} does not match its hash; the "
                    "source store is damaged (restore it or sync from another copy)"
                )
            batch[h] = data
            size += len(data)
            if size >= OUTPUT_CHUNK_BYTES:
                dcat.commit(Batch(outputs=batch))
                batch, size = {}, 0
            done += 1
            nbytes += len(data)
            reporter.step("outputs", done, len(hashes))
        if batch:
            dcat.commit(Batch(outputs=batch))
    return nbytes


def sync(
    src: Store, dst: Store, timeline_id: str | None = None, progress: Any = None
) -> SyncReport:
    """Make dst hold the union of its trees and src's (one timeline, or all when None).

    Copies only what dst lacks; src is only read. Idempotent and order-independent;
    atomic for rows (one commit, last), so an interrupted sync is completed by the next.
    Raises ConflictError (nothing copied) when a record exists in both with other content,
    NotFoundError when src lacks timeline_id. progress: None, True (a tqdm bar on stderr;
    needs tqdm), a tqdm bar, or a function(phase, done, total).
    Catalog round trips: 3 + one per timeline when nothing is missing, plus at most
    2 + one per 64 MB of outputs when something is.
    """
    if timeline_id is not None and not isinstance(timeline_id, str):
        raise InvalidInputError(
            f"timeline_id must be an id string or None, not {type(timeline_id).__name__}"
        )
    ids = None if timeline_id is None else [timeline_id]
    return transfer(StoreSource(src), dst, ids, progress, desc="sync")
