"""Garbage collection: free what nothing live refers to.

Writes put objects first and catalog rows last, and deletions only write tombstones, so
a store accumulates bytes nothing live refers to. ``collect_garbage`` removes them:

- the frame objects of deleted timelines;
- the frame objects of writes that never committed (killed or failed ingests, interrupted
  syncs), once they are provably abandoned: their ingest lease (``localckpt.lease``) went
  stale, or, for objects without a lease, all are older than ``older_than`` seconds;
  a write in progress keeps its lease fresh and is never touched, however long it pauses;
- objects in a live timeline's directory that its index does not name (temporary files of
  killed writes, a lease left behind), once older than ``older_than``;
- catalog records tombstones delete, and outputs no live checkpoint refers to
  (``Catalog.purge_deleted``; tombstones themselves stay, so sync keeps deleting);
- the parts of closed stage runs; open runs whose timeline or parent checkpoint is
  deleted are closed first (``localckpt.runs.closing``: a deletion closes those it
  orphans itself, gc those it did not: a crash between a sync's commit and its closing,
  a run begun while its base was being deleted), so their parts go in the same collection.

Safe while writers run: objects are listed before the catalog is read, so a timeline
that commits meanwhile is seen as committed or as leased, never as garbage.

A dry run reports what the real run then frees, measured the way ``prune``, ``retain``
and ``rm`` measure it: frame objects by the object store's sizes, catalog records and
output bytes by ``localckpt.maintenance.freed`` (which says what that measure covers).
"""

from __future__ import annotations

import time
from collections import defaultdict

import attrs

from .arguments import shown
from .errors import InvalidInputError, LocalckptError
from .lease import GRACE, LEASE_NAME, TTL
from .maintenance.freed import catalog_garbage
from .maintenance.reports import freed_text
from .render import Summarised
from .runs.closing import close_orphans, open_runs, orphans_among
from .schema import check_id
from .store import Store

__all__ = ["GcReport", "collect_garbage"]

_FRAMES = "frames"


@attrs.frozen
class GcReport(Summarised):
    """What a collection removed (or would remove, with dry_run).

    Attributes:
        orphan_timelines: ids of writes that never committed whose objects went.
        deleted_timelines: deleted timelines whose frames went.
        objects_removed, bytes_removed: frame objects removed and their bytes (temporary
            files and stray objects of live timelines included).
        temporary_files: how many of those were temporary files of interrupted writes.
        skipped_recent: objects without a lease younger than older_than, left alone.
        leased: ids of writes in progress (fresh lease), left alone.
        records_purged: catalog records (timelines, checkpoints, tags, outputs) purged;
            with dry_run, how many the purge would remove.
        system_temp_files: abandoned temporary shard files removed from the system's temp
            directory (where writes to remote objects encode).
        dry_run: nothing was removed.
        outputs_purged: stage outputs among records_purged (those only deleted
            checkpoints referred to).
        output_bytes: bytes of those outputs' canonical JSON.
        closed_runs: ids of the open stage runs closed (aborted) because their timeline
            or parent checkpoint is deleted; with dry_run, those it would close.
        open_runs: ids of the stage runs left open: their parts are kept (an abandoned
            run's too, until it is aborted or committed; the next gc then frees them).
    """

    orphan_timelines: tuple[str, ...]
    objects_removed: int
    bytes_removed: int
    skipped_recent: int
    dry_run: bool
    deleted_timelines: tuple[str, ...] = ()
    temporary_files: int = 0
    leased: tuple[str, ...] = ()
    records_purged: int = 0
    system_temp_files: int = 0
    outputs_purged: int = 0
    output_bytes: int = 0
    closed_runs: tuple[str, ...] = ()
    open_runs: tuple[str, ...] = ()

    def summary(self) -> str:
        from .render import plural

        verb = "would remove" if self.dry_run else "removed"
        freed = freed_text(self.objects_removed, self.bytes_removed, self.records_purged,
                           self.outputs_purged, self.output_bytes)
        parts = [f"{verb} {freed}: frames of {len(self.deleted_timelines)} deleted and "
                 f"{plural(len(self.orphan_timelines), 'unreferenced timeline')}"]
        if self.temporary_files or self.system_temp_files:
            parts.append(plural(self.temporary_files + self.system_temp_files,
                                "temporary file"))
        parts.append(f"{self.skipped_recent} too recent to touch")
        if self.leased:
            parts.append(f"{plural(len(self.leased), 'write')} in progress left alone")
        if self.closed_runs:
            parts.append(f"{'would close' if self.dry_run else 'closed'} "
                         f"{plural(len(self.closed_runs), 'orphaned stage run')}")
        if self.open_runs:
            parts.append(f"{plural(len(self.open_runs), 'open stage run')} kept with "
                         "the parts put so far")
        return "; ".join(parts)


def _seconds(value: object, what: str) -> float:
    from .arguments import number

    seconds = number(value, f"{what} (seconds)", low=0,
                     cli=f"--{what.replace('_', '-')} (seconds)")
    assert seconds is not None
    return seconds


@attrs.define
class _Plan:
    remove: list[str] = attrs.Factory(list)
    sizes: dict[str, int] = attrs.Factory(dict)
    orphans: list[str] = attrs.Factory(list)
    deleted: list[str] = attrs.Factory(list)
    revoke: dict[str, list[str]] = attrs.Factory(dict)  # stale lease: tid -> its keys
    leased: list[str] = attrs.Factory(list)
    recent: int = 0
    temporary: int = 0


def collect_garbage(store: Store, *, older_than: float = 3600.0, dry_run: bool = False,
                    lease_ttl: float = TTL, grace: float = GRACE) -> GcReport:
    """Remove what nothing live refers to (see the module docstring); idempotent.

    older_than: age in seconds objects without a lease must reach; lease_ttl: age of a
    lease that counts as abandoned; grace: seconds between revoking a stale lease and
    deleting what it protected (a commit already under way lands meanwhile).
    """
    older_than = _seconds(older_than, "older_than")
    lease_ttl = _seconds(lease_ttl, "lease_ttl")
    grace = _seconds(grace, "grace")
    if not isinstance(dry_run, bool):
        raise InvalidInputError(f"dry_run must be True or False, not {shown(dry_run)}")
    store._check_open()
    listing = store.objects.stat(_FRAMES)  # before reading the catalog: see the docstring
    groups: defaultdict[str, dict[str, tuple[int, float]]] = defaultdict(dict)
    for key, info in listing.items():
        parts = key.split("/")
        if len(parts) >= 3 and parts[0] == _FRAMES:
            groups[parts[1]][key] = info
    records = {t.id for t in store.catalog.timelines(None)}
    live = {t.id: t for t in store.visibility.live_timelines(None)}
    now = time.time()
    plan = _Plan()
    for tid, objs in sorted(groups.items()):
        try:
            check_id(tid, "timeline directory")
        except InvalidInputError:
            continue  # not a directory localckpt made: leave it alone
        if tid in live:
            _stray(store, live[tid].index_hash, tid, objs, now - older_than, plan)
        elif tid in records:  # deleted
            plan.deleted.append(tid)
            _take(plan, objs)
        else:
            _unreferenced(tid, objs, now, older_than, lease_ttl, plan)
    if plan.revoke and not dry_run:
        _revoke(store, plan, grace)
    else:
        for tid, keys in plan.revoke.items():
            plan.orphans.append(tid)
            _take(plan, {k: groups[tid][k] for k in keys})
    running = open_runs(store)  # one read: the orphans gc closes, and those it keeps
    orphans = orphans_among(store, running)
    closed = tuple(sorted(r.id for r in orphans))
    if orphans and not dry_run:  # before the purge, which then takes their parts
        closed = close_orphans(store, orphans)
    garbage = catalog_garbage(store)
    purged, outputs = garbage.records, dict(garbage.outputs)
    system_temp = _system_temp(now - max(older_than, TTL), dry_run)
    if not dry_run:
        _spare_committed(store, plan)
        store.objects.delete(_index_first(plan.remove))
        purged = store.catalog.purge_deleted()
        gone = store.catalog.missing_outputs(outputs)  # what the purge did take
        outputs = {h: n for h, n in outputs.items() if h in gone}
    still_open = tuple(r.id for r in running if r.id not in closed)
    return GcReport(
        orphan_timelines=tuple(sorted(plan.orphans)), objects_removed=len(plan.remove),
        bytes_removed=sum(plan.sizes.values()), skipped_recent=plan.recent, dry_run=dry_run,
        deleted_timelines=tuple(plan.deleted), temporary_files=plan.temporary,
        leased=tuple(plan.leased), records_purged=purged, system_temp_files=system_temp,
        outputs_purged=len(outputs), output_bytes=sum(outputs.values()), closed_runs=closed,
        open_runs=still_open,
    )


def _take(plan: _Plan, objs: dict[str, tuple[int, float]]) -> None:
    from .maintenance.verify import is_temporary

    for key, (size, _) in objs.items():
        plan.remove.append(key)
        plan.sizes[key] = size
        plan.temporary += is_temporary(key)


def _index_first(keys: list[str]) -> list[str]:
    """Indexes first (a reader then sees "no frames", never half of them), leases last
    (a directory stays recognisable as a write's until it is empty)."""
    return sorted(keys, key=lambda k: (not k.endswith("index.parquet"),
                                       k.endswith(LEASE_NAME), k))


def _stray(store: Store, index_hash: str | None, tid: str,
           objs: dict[str, tuple[int, float]], cutoff: float, plan: _Plan) -> None:
    """Objects of a live timeline that its index does not name, old enough."""
    from .shards import index_key, keys_of, parse_index, verify_index

    try:
        data = store.objects.get(index_key(tid))
        verify_index(data, index_hash, index_key(tid))
        wanted = set(keys_of(tid, parse_index(data, index_key(tid))))
    except LocalckptError:
        return  # a damaged or missing index: verify reports it; gc never guesses
    spare = {k: v for k, v in objs.items() if k not in wanted}
    old = {k: v for k, v in spare.items() if v[1] <= cutoff}
    plan.recent += len(spare) - len(old)
    _take(plan, old)


def _unreferenced(tid: str, objs: dict[str, tuple[int, float]], now: float,
                  older_than: float, lease_ttl: float, plan: _Plan) -> None:
    lease = next((v for k, v in objs.items() if k.endswith("/" + LEASE_NAME)), None)
    if lease is not None:
        if now - lease[1] <= lease_ttl:
            plan.leased.append(tid)  # a write in progress, however old its shards
        else:
            plan.revoke[tid] = sorted(objs)
        return
    if any(mtime > now - older_than for _, mtime in objs.values()):
        plan.recent += len(objs)
        return
    plan.orphans.append(tid)
    _take(plan, objs)


def _revoke(store: Store, plan: _Plan, grace: float) -> None:
    """Stale leases: revoke them, wait grace seconds, then take the objects of the
    writes that did not commit meanwhile (see localckpt.lease)."""
    from .lease import lease_key

    store.objects.delete([lease_key(tid) for tid in plan.revoke])
    if grace:
        time.sleep(grace)
    committed = {t.id for t in store.catalog.timelines(list(plan.revoke))}
    for tid, keys in sorted(plan.revoke.items()):
        if tid in committed:
            continue
        now = store.objects.stat(f"{_FRAMES}/{tid}")
        plan.orphans.append(tid)
        _take(plan, {k: now[k] for k in keys if k in now})


def _system_temp(cutoff: float, dry_run: bool) -> int:
    """Remove temporary shard files of killed writes to remote objects (they are encoded
    in the system's temp directory). A live write's heartbeat keeps its files fresh, so
    one untouched since before cutoff (at least the lease TTL ago) is abandoned."""
    import glob
    import os
    import tempfile

    removed = 0
    for path in glob.glob(os.path.join(tempfile.gettempdir(), ".tmp-shard-*")):
        try:
            if os.stat(path).st_mtime <= cutoff:
                if not dry_run:
                    os.remove(path)
                removed += 1
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    return removed


def _spare_committed(store: Store, plan: _Plan) -> None:
    """Drop from the plan the writes that committed since the catalog was read (a write
    without a lease, from an older localckpt, can only be told apart this way)."""
    if not plan.orphans:
        return
    committed = {t.id for t in store.catalog.timelines(plan.orphans)}
    if committed:
        plan.orphans = [t for t in plan.orphans if t not in committed]
        plan.remove = [k for k in plan.remove if k.split("/")[1] not in committed]
        plan.sizes = {k: v for k, v in plan.sizes.items() if k.split("/")[1] not in committed}
