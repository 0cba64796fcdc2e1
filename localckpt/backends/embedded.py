"""Embedded catalog: a log tail on local disk plus compacted runs queried where they lie.

Why this shape (measured here, see README "Storage layout"): a DuckDB file admits one
writing process and nobody else may even open it meanwhile; importing DuckDB and
connecting costs ~150 ms before the first query, more than the whole budget of
``localckpt ls``. So the durable catalog is files of our own:

- each process appends its commits to a segment of its own (``_segments``) and every
  process reads the others' new commits before it answers (``_tail``): read-your-writes
  across processes, no lock ever waited on;
- compaction (``_compact``) turns sealed segments into immutable runs sorted by timeline
  with indexes and Bloom filters (``_runfile``), merged in tiers; opening a store
  replays only the segments not compacted yet;
- queries read what they return: a timeline's rows for tree / children / lineage (kept
  in a bounded LRU, ``_views``), one block for a checkpoint by id, one index entry for
  an output or a tombstone.

Records are immutable and keyed by id, so a record seen twice (in a segment and in a run,
before and after compaction) is the same record.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..catalog import Batch, Catalog, refuse_unseen
from ..errors import (
    BackendUnavailableError,
    CorruptDataError,
    InvalidInputError,
    StoreClosedError,
)
from ..schema import from_dict
from ..types import Checkpoint, Tag, Timeline, Tombstone
from ._files import Vanished
from ._index import detach
from ._rows import checkpoint_from_row, no_gc, timeline_from_row
from ._runset import ChainFinder, RunSet
from ._tail import LogTail
from ._views import PointCache, TimelineView, Views
from ._writes import Appender, new_records

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["EmbeddedCatalog"]

_TAIL_BYTES = 16 << 20  # sealed logs past this size start a compaction, however few
_DEDUP_RUNS_MIN = 64 << 10  # smaller outputs are not looked up in runs (compaction dedups)
_RETRIES = 4


class EmbeddedCatalog(Catalog):
    """Catalog in a local directory, safe for many processes writing at once."""

    supports_multiprocess = True

    def __init__(self, directory: str, *, fsync: bool = True, compact_after: int = 32,
                 marker: str | None = None) -> None:
        if not isinstance(fsync, bool):
            raise InvalidInputError(f"fsync must be True or False, not {fsync!r}")
        if isinstance(compact_after, bool) or not isinstance(compact_after, int) or (
                compact_after < 1):
            raise InvalidInputError(
                f"compact_after must be a positive int (sealed segments that start a "
                f"compaction), not {compact_after!r}")
        self.directory = os.path.abspath(directory)
        self.fsync = fsync
        self.compact_after = compact_after
        self.marker = marker
        os.makedirs(self.directory, exist_ok=True)
        self.writable = os.access(self.directory, os.W_OK)
        self._lock = threading.RLock()
        self._closed = False
        self.last_compaction_error: BaseException | None = None
        self._reset()
        self._maybe_compact()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self.stats: Counter[str] = Counter()
        self.tail = LogTail(self.directory, self.load_values, self.stats)
        self.runs = RunSet(self.directory, self.stats)
        self.views = Views()
        self.points = PointCache()
        self._timelines: dict[str, Timeline] | None = None  # of the runs, by id
        self.tail.listener = self.views.add
        self.tail.on_manifest = self._on_manifest
        self._appender = Appender(self.directory, self.fsync, self._lock, self.tail,
                                  self.views.add, self._maybe_compact)
        self._bg: threading.Thread | None = None
        self._stop = threading.Event()
        self._refresh()

    def describe(self) -> str:
        return f"embedded catalog at {self.directory}"

    # -- following the files --------------------------------------------------------------

    def _check_process(self) -> None:
        if self._closed:
            raise StoreClosedError("this store is closed; open it again with localckpt.open()")
        if os.getpid() != self._pid:
            # Forked: the parent's segment, locks and threads are not ours to use.
            self._reset()

    def _on_manifest(self, manifest: Any, complete: bool) -> None:
        self.runs.update(manifest)
        self._timelines = None
        if not complete:
            self.views.clear()
            self.points.clear()

    def _refresh(self) -> None:
        try:
            self.tail.refresh()
        except FileNotFoundError as exc:
            raise BackendUnavailableError(
                f"catalog directory {self.directory} disappeared; was the store deleted? "
                "Restore the directory, or open the store again to start a new one."
            ) from exc

    def _begin(self) -> None:
        """Before every read: follow the files; refuse to answer from damaged logs."""
        self._check_process()
        self._refresh()
        if self.tail.damage:
            raise CorruptDataError(next(iter(self.tail.damage.values())))

    def _retry(self, fn: Any) -> Any:
        """Run fn; if a run or blob file vanished (compacted away), follow the new
        manifest and run it again."""
        for _ in range(_RETRIES):
            try:
                return fn()
            except Vanished:
                self.tail._listed_mtime = -1  # list again: the manifest changed
                self._refresh()
        raise BackendUnavailableError(
            f"the catalog in {self.directory} kept changing under this read (compactions "
            "in a loop?); try again")

    # -- records from the tail, the caches and the runs ------------------------------------

    def _checkpoint(self, cid: str) -> Checkpoint | None:
        """The catalog's own record (never handed out without detach)."""
        c = self.tail.index.checkpoints.get(cid) or self.views.find(cid) or self.points.get(cid)
        if c is None:
            row = self.runs.find_checkpoint(cid)
            if row is not None:
                c = checkpoint_from_row(row)
                self.points.put(c)
        return c

    def _view(self, tid: str) -> TimelineView:
        view = self.views.get(tid)
        if view is None:
            view = TimelineView()
            rows = self.runs.checkpoints_of(tid)
            with no_gc():
                for row in rows:
                    view.add(checkpoint_from_row(row))
            idx = self.tail.index
            for cid in idx.by_timeline.get(tid, ()):
                view.add(idx.checkpoints[cid])
            self.views.put(tid, view)
        return view

    def _run_timelines(self) -> dict[str, Timeline]:
        if self._timelines is None:
            self._timelines = {tid: timeline_from_row(row)
                               for tid, row in self.runs.timeline_rows().items()}
        return self._timelines

    def _timeline(self, tid: str) -> Timeline | None:
        found = self.tail.index.timelines.get(tid)
        if found is None and self._timelines is not None:
            found = self._timelines.get(tid)
        if found is None:
            row = self.runs.find_timeline(tid)
            found = timeline_from_row(row) if row is not None else None
        return found

    def _detached(self, records: Iterable[Checkpoint]) -> list[Checkpoint]:
        with no_gc():
            return [detach(c, self.load_values) for c in records]

    # -- the Catalog interface: reads -----------------------------------------------------

    def _read(self, fn: Any) -> Any:
        with self._lock:
            self._begin()
            return self._retry(fn)

    def timelines(self, ids: Iterable[str] | None = None) -> list[Timeline]:
        wanted = None if ids is None else list(ids)

        def run() -> list[Timeline]:
            if wanted is None:
                found = dict(self._run_timelines())
                found.update(self.tail.index.timelines)
                return [found[t] for t in sorted(found)]
            got = {t: x for t in set(wanted) if (x := self._timeline(t)) is not None}
            return [got[t] for t in sorted(got)]

        return self._read(run)

    def checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        wanted = set(ids)

        def run() -> list[Checkpoint]:
            got = {i: c for i in wanted if (c := self._checkpoint(i)) is not None}
            return self._detached(got[i] for i in sorted(got))

        return self._read(run)

    def peek_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        with self._lock:
            self._check_process()
            found = self.tail.index.checkpoints.get(checkpoint_id)
            if found is None:
                self._begin()
                found = self._retry(lambda: self._checkpoint(checkpoint_id))
                if found is not None and found is not self.tail.index.checkpoints.get(
                        checkpoint_id):
                    found = detach(found, self.load_values)  # views keep no output loader
            return found

    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        def run() -> list[Checkpoint]:
            c = self._checkpoint(checkpoint_id)
            if c is None:
                return []
            view = self._view(c.timeline_id)
            return self._detached(view.by_id[i] for i in sorted(view.children.get(c.id, ())))

        return self._read(run)

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        def run() -> list[Checkpoint]:
            c = self._checkpoint(checkpoint_id)
            if c is None:
                return []
            view = self.views.get(c.timeline_id)
            if view is not None:
                return self._detached(view.lineage(checkpoint_id))
            return self._detached(self._chain(c))

        return self._read(run)

    def _chain(self, c: Checkpoint) -> list[Checkpoint]:
        """c and its ancestors, root first, reading only the blocks the chain is in."""
        finder = ChainFinder(self.runs, c.timeline_id)
        chain, seen = [c], {c.id}
        with no_gc():
            while (pid := chain[-1].parent_id) is not None and pid not in seen:
                p = self.tail.index.checkpoints.get(pid)
                if p is None:
                    row = finder.get(pid)
                    p = checkpoint_from_row(row) if row is not None else self._checkpoint(pid)
                if p is None:
                    break
                seen.add(pid)
                chain.append(p)
        chain.reverse()
        return chain

    def tree(self, timeline_id: str) -> list[Checkpoint]:
        def run() -> list[Checkpoint]:
            view = self._view(timeline_id)
            return self._detached(view.by_id[i] for i in view.ids())

        return self._read(run)

    def outputs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        wanted = list(hashes)

        def run() -> dict[str, bytes]:
            found = {}
            for h in wanted:
                loc = self.tail.out_loc.get(h)
                if loc is not None:
                    fd, offset, length = loc
                    found[h] = os.pread(fd, length, offset)
                else:
                    data = self.runs.output(h)
                    if data is not None:
                        found[h] = data
            return found

        with self._lock:
            self._check_process()
            if any(h not in self.tail.out_loc for h in wanted):
                self._begin()
            return self._retry(run)

    def missing_outputs(self, hashes: Iterable[str]) -> set[str]:
        wanted = set(hashes)
        return self._read(lambda: {h for h in wanted if h not in self.tail.out_loc
                                   and self.runs.output_location(h) is None})

    def tombstones(self, timeline_ids: Iterable[str] | None = None) -> list[Tombstone]:
        return self._read(lambda: self._others("tombstone", timeline_ids))

    def tags(self, timeline_ids: Iterable[str] | None = None) -> list[Tag]:
        return self._read(lambda: self._others("tag", timeline_ids))

    def _others(self, kind: str, timeline_ids: Iterable[str] | None) -> list[Any]:
        which = 1 if kind == "tombstone" else 2
        mine = self.tail.index.tombstones if which == 1 else self.tail.index.tags
        found: dict[str, Any] = {}
        if timeline_ids is None:
            rows = self.runs.all_of(which)
            found.update(mine)
        else:
            tids = set(timeline_ids)
            rows = [r for t in tids for r in self.runs.of_timeline(t, which)]
            found.update({k: v for k, v in mine.items() if v.timeline_id in tids})
        for r in rows:
            if r["id"] not in found:
                found[r["id"]] = from_dict(kind, r)
        return [found[i] for i in sorted(found)]

    def deleted(self, target_ids: Iterable[str], kind: str | None = None) -> set[str]:
        wanted = set(target_ids)
        mine = self.tail.index.deleted
        targeted = self._read(lambda: {i for i in wanted
                                       if i in mine or self.runs.has_target(i)})
        # of those any tombstone targets, the ones the contract says (kind, timeline)
        return Catalog.deleted(self, targeted, kind) if targeted else set()

    def find_ids(self, kind: str, prefix: str, limit: int = 10) -> list[str]:
        if kind not in ("timeline", "checkpoint"):
            raise InvalidInputError(
                f"find_ids kind must be 'timeline' or 'checkpoint', not {kind!r}")

        def run() -> list[str]:
            idx = self.tail.index
            mine = idx.timelines if kind == "timeline" else idx.checkpoints
            found = {i for i in mine if i.startswith(prefix)}
            found |= self.runs.prefix(kind, prefix, limit)
            return sorted(found)[:limit]

        return self._read(run)

    # -- writes ---------------------------------------------------------------------------

    def commit(self, batch: Batch) -> None:
        with self._lock:
            self._begin_write()
            self._write(batch)

    def commit_guarded(self, batch: Batch, timeline_id: str, seen: Iterable[str]) -> None:
        """The guard and the commit on one view of the files (the base class reads the
        tombstones first, a second refresh per save)."""
        with self._lock:
            self._begin_write()
            refuse_unseen(timeline_id,
                          self._retry(lambda: self._others("tombstone", [timeline_id])), seen)
            self._write(batch)

    def _begin_write(self) -> None:
        self._check_process()
        if not self.writable:
            raise BackendUnavailableError(
                f"the catalog in {self.directory} is read-only for this user; open it "
                "with write permission to save (reading works as it is)")
        self._begin()

    def _write(self, batch: Batch) -> None:
        """Append batch's new records (under self._lock, after _begin_write)."""
        new = self._retry(lambda: new_records(batch, self._existing, self.describe()))
        # An output already stored elsewhere than this process's live segment may be
        # skipped only under purge.lock (shared): a purge then cannot remove it
        # before this commit's records, which refer to it, are on disk.
        w = self._appender
        held = False
        if any(self._stored_elsewhere(h, len(d)) for h, d in batch.outputs.items()):
            held = w.share_purge_lock()
            if held:
                self._begin()  # the view the decision is made on, under the lock
        try:
            shared = w.shared_outputs()
            outputs = [(h, d) for h, d in batch.outputs.items()
                       if not (h in shared or w.stored_here(h)
                               or (held and self._stored_elsewhere(h, len(d))))]
            if outputs or any(new):
                w.write(new, outputs)
        finally:
            w.release_purge_lock(held)

    def _stored_elsewhere(self, h: str, size: int) -> bool:
        if h in self.tail.out_loc:
            return True
        return size >= _DEDUP_RUNS_MIN and self.runs.output_location(h) is not None

    def _existing(self, kind: str, rid: str) -> Any:
        if kind == "checkpoint":
            return self._checkpoint(rid)
        if kind == "timeline":
            return self._timeline(rid)
        mine = self.tail.index.tombstones if kind == "tombstone" else self.tail.index.tags
        if rid in mine:
            return mine[rid]
        row = self.runs.find_other(kind, rid)
        return from_dict(kind, row) if row is not None else None

    # -- compaction -----------------------------------------------------------------------

    def _maybe_compact(self) -> None:
        """Start a background compaction when there is work and nobody here is at it."""
        from ._manifest import pending_merges

        if not self.writable or self._closed or (self._bg is not None and self._bg.is_alive()):
            return
        logs = [log for n, log in self.tail.logs.items() if n != self.tail.own]
        if not (len(logs) > self.compact_after or sum(log.offset for log in logs) > _TAIL_BYTES
                or any(log.pack for log in logs) or pending_merges(self.tail.manifest)):
            return
        self._bg = threading.Thread(target=self._compact_in_background,
                                    name="localckpt-compact", daemon=True)
        self._bg.start()

    def _compact_in_background(self) -> None:
        from ._compact import compact_directory

        try:
            compact_directory(self.directory, fsync=self.fsync, marker=self.marker,
                              stop=self._stop)
        except Exception as exc:  # a full disk, a read-only file: the store still works
            self.last_compaction_error = exc

    def join_compaction(self, timeout: float | None = None) -> None:
        """Wait for a background compaction of this process to finish (for tests)."""
        bg = self._bg
        if bg is not None:
            bg.join(timeout)

    def compact(self, full: bool = False) -> int:
        """Compact now; return how many files (segments, packs, runs) were replaced.

        Sealed segments become a run and runs of one level merge (``full``: everything
        into one run). Segments of live writers (their flock is held) are left alone;
        readers never miss a record. Returns 0 when another process is compacting.
        """
        with self._lock:
            self._check_process()
        result = self._run_compaction(full=full)
        with self._lock:
            self._begin()
        return result.replaced

    def _run_compaction(self, **kw: Any) -> Any:
        from ._compact import compact_directory

        if not self.writable:
            raise BackendUnavailableError(
                f"the catalog in {self.directory} is read-only for this user; compaction "
                "needs write permission")
        self.join_compaction()
        try:
            return compact_directory(self.directory, fsync=self.fsync, marker=self.marker,
                                     **kw)
        except OSError as exc:
            raise BackendUnavailableError(
                f"compaction of the catalog in {self.directory} failed: {exc}. Check free "
                "disk space and permissions; the catalog is unchanged.") from exc

    def purge_deleted(self) -> int:
        """Rewrite the catalog without what tombstones delete and without outputs no live
        record refers to (everything into one run: this reads the whole catalog). Returns
        how many records and outputs went."""
        import time

        with self._lock:
            self._check_process()
        deadline = time.monotonic() + 30
        while True:
            result = self._run_compaction(purge=True)
            if not result.busy:
                break
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"could not purge the catalog in {self.directory}: another process kept "
                    "it busy (compacting, or saving without pause); try again")
            time.sleep(0.05)
        with self._lock:
            self._begin()
        return int(result.purged)

    # -- integrity, SQL, close -------------------------------------------------------------

    def storage_problems(self) -> list[tuple[str, str]]:
        """Every catalog file read completely: (file, what is wrong) for each damaged one."""
        from ._check import check_directory

        with self._lock:
            self._check_process()
        return check_directory(self.directory)

    def sql(self, query: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run a SQL query over the tables ``timelines`` and ``checkpoints`` (an Arrow table).

        The tables are built from every record (this reads the whole catalog, in a DuckDB
        connection made for this call): changing them changes nothing on disk.
        """
        from ._sql import run_sql

        with self._lock:
            self._begin()
            timelines = self._retry(lambda: self.timelines(None))
            checkpoints = [c for t in timelines for c in self.tree(t.id)]
            orphans = set(self.tail.index.by_timeline) - {t.id for t in timelines}
            for tid in sorted(orphans):
                checkpoints += self.tree(tid)
        return run_sql(query, params, timelines, checkpoints)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            mine = os.getpid() == self._pid
        if not mine:
            return
        self._stop.set()
        self.join_compaction(60)
        with self._lock:
            self._appender.close()
            self.tail.forget_all()
            self.runs.close()
