"""Closing the stage runs that a deletion orphans.

An open run depends on its timeline and on its parent checkpoint (whose stage outputs
are its inputs): once either is deleted the run can never be committed, and its parts
would stay until someone aborted it. So a deletion closes it as ``abort()`` does (state
aborted; its parts become memo entries where their keys can be made, and gc deletes the
parts):

- ``prune``, ``retain`` and ``rm`` close the runs they orphan in the transaction that
  writes their tombstones (:func:`delete_closing`): both happen or neither. The memo
  keys are made before, while the base is still live, so the values stay in the memo;
  the run's ``closed_at`` is the deletion's time.
- a transfer (``sync``, ``push``, ``pull``, bundle ``import``) whose commit brings
  tombstones closes the open runs they orphan right after that commit
  (:func:`close_transferred`), in transactions of their own: a crash between the two
  leaves those runs open (orphaned) until ``gc`` closes them.
- ``gc`` closes, before it purges, the open runs whose base is not live
  (:func:`close_orphans`): runs a transfer left open (a crash after its commit),
  runs orphaned before deletions closed them, a run begun while its base was being
  deleted.

Those two close runs whose base is already gone: their memo keys can seldom be made
any more, so their values mostly do not stay in the memo (``abort()``'s ``memo_kept``
is False for them).

A committing run whose checkpoint is saved is left alone (its next ``commit()``
finishes it, as ``abort()`` says). A commit saves that checkpoint holding the run's row
(``RunTables.hold_commit``), so a deletion closing the run either waits and finds it
saved, or closes the run first and the save is refused: never both. Catalogs without
runs (legacy, or read-only and older than runs) have none to close.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import InvalidInputError
from ..records import utcnow
from .records import RunRecord

if TYPE_CHECKING:
    from ..backends.sql.runs import RunTables
    from ..catalog import Batch
    from ..store import Store
    from ..types import Tombstone

__all__ = ["aborting", "close_orphans", "close_transferred", "closed_because",
           "delete_closing", "dependents", "open_runs", "orphaned_by", "orphans",
           "orphans_among"]


def _tables(store: Store) -> RunTables | None:
    tables: RunTables | None = getattr(store.catalog, "runs", None)
    return tables if tables is not None and tables.available else None


def aborting(tables: RunTables, when: datetime | None = None, strict: bool = True,
             ) -> Callable[[RunRecord, Any], RunRecord | None]:
    """The state change of an abort (for RunTables.change): aborted at when (now), its
    parts counted. strict (``abort()``): a committed run is InvalidInputError; else
    (a deletion) committed runs, and committing ones whose checkpoint is saved, are
    left as they are."""
    def decide(old: RunRecord, tx: Any) -> RunRecord | None:
        if old.state == "aborted":
            return None
        if old.state == "committed":
            if not strict:
                return None
            raise InvalidInputError(
                f"run {old.id} is committed (checkpoint {old.checkpoint_id}); prune that "
                "checkpoint instead of aborting the run")
        if not strict and old.state == "committing" and tables.saved(tx, old.checkpoint_id):
            return None
        return attrs.evolve(old, state="aborted", closed_at=when or utcnow(),
                            done=tables.count_parts(tx, old.id))

    return decide


def dependents(store: Store, timeline_id: str, gone: Collection[str] | None
               ) -> list[RunRecord]:
    """The runs of a timeline that deleting gone (checkpoint ids; None: the whole
    timeline) orphans: open ones, and committing ones whose checkpoint is not saved,
    whose parent checkpoint is among gone. One read of the timeline's open runs."""
    tables = _tables(store)
    if tables is None:
        return []
    found = [r for r in tables.open_runs(timeline_id) if gone is None or r.parent_id in gone]
    return _unsaved(store, found)


def _unsaved(store: Store, runs: list[RunRecord]) -> list[RunRecord]:
    saved = {c.id for c in store.catalog.checkpoints(
        [r.checkpoint_id for r in runs if r.state == "committing" and r.checkpoint_id])}
    return [r for r in runs if r.checkpoint_id not in saved]


def delete_closing(store: Store, batch: Batch, runs: Iterable[RunRecord]) -> tuple[str, ...]:
    """Commit batch (a deletion's tombstones) and close runs (dependents of what it
    deletes) in one transaction, all or nothing; the ids of the runs it closed (a run
    that closed meanwhile is not counted)."""
    from .run import StageRun

    tables = _tables(store)
    todo = sorted(runs, key=lambda r: r.id)  # rows locked in key order: no deadlocks
    if tables is None or not todo:
        store.catalog.commit(batch)
        return ()
    # keys are made now, while the base is live (they read its inputs and frames)
    memo_of = {r.id: StageRun(store, r.id, record=r)._memo_of(best_effort=True) for r in todo}
    when = min((t.created_at for t in batch.tombstones), default=utcnow())
    decide = aborting(tables, when, strict=False)

    def close(tx: Any) -> list[str]:
        closed = []
        for rec in todo:
            old, new = tables.change_in(tx, rec.id, decide, _is_aborted, memo_of[rec.id])
            if new is not old:
                closed.append(rec.id)
        return closed

    closed = tables.catalog.commit_with(batch, close)
    for run_id in closed:
        tables.forget(run_id)
    return tuple(closed)


def _is_aborted(rec: RunRecord) -> bool:
    return rec.state == "aborted"


def orphaned_by(store: Store, rec: RunRecord) -> str | None:
    """What a run lost that its commit needs (its timeline was deleted, its parent
    checkpoint pruned), or None."""
    if not store.live_timelines([rec.timeline_id]):
        return f"its timeline {rec.timeline_id} was deleted"
    if not store.live_checkpoints([rec.parent_id]):
        return f"its parent checkpoint {rec.parent_id} was pruned"
    return None


def open_runs(store: Store) -> list[RunRecord]:
    """The open and committing runs of the store, by the index of open runs; none where
    the catalog keeps no runs (a read-only catalog from before them)."""
    tables = _tables(store)
    return [] if tables is None else tables.open_runs()


def orphans(store: Store, timeline_ids: Collection[str] | None = None) -> list[RunRecord]:
    """The open runs of the store (committing ones whose checkpoint is not saved too)
    whose timeline or parent checkpoint is not live: what gc closes. timeline_ids: of
    those timelines only (none read for an empty collection). One read of the runs
    table, then (only when it finds open runs) the liveness of what they depend on."""
    if timeline_ids is not None and not timeline_ids:
        return []
    tables = _tables(store)
    if tables is None:
        return []
    if timeline_ids is None:
        runs = tables.open_runs()
    elif len(timeline_ids) == 1:
        runs = tables.open_runs(next(iter(timeline_ids)))
    else:  # one read through the timeline index (a read of every open run scans all runs)
        runs = tables.open_runs_in(timeline_ids)
    return orphans_among(store, runs)


def orphans_among(store: Store, runs: list[RunRecord]) -> list[RunRecord]:
    """Those of runs (open ones, as read) that orphans() would close: their timeline or
    parent checkpoint is not live (nothing read when runs is empty)."""
    if not runs:
        return []
    live_t = {t.id for t in store.live_timelines({r.timeline_id for r in runs})}
    live_c = {c.id for c in store.live_checkpoints({r.parent_id for r in runs})}
    return _unsaved(store, [r for r in runs
                            if r.timeline_id not in live_t or r.parent_id not in live_c])


def close_orphans(store: Store, runs: Iterable[RunRecord],
                  not_before: Mapping[str, datetime] | None = None) -> tuple[str, ...]:
    """Close runs (orphans()), each in a transaction of its own, as abort() does: their
    values stay in the memo where their keys can still be made. The ids closed.

    A run's ``closed_at`` is now, or the time of the earliest deletion of a timeline or
    checkpoint in its timeline if that is later (not_before: timeline id -> that time;
    None: read from the runs' timelines' tombstones). Tombstones a transfer brought were
    made on another clock, maybe ahead of this one: closed no earlier than them, the run
    refuses a put saying which deletion closed it (closed_because), not as if it had
    been aborted before."""
    from .run import StageRun

    tables = _tables(store)
    todo = sorted(runs, key=lambda r: r.id)
    if tables is None or not todo:
        return ()
    if not_before is None:
        not_before = _floors(store.catalog.tombstones(sorted({r.timeline_id for r in todo})))
    closed = []
    for rec in todo:
        memo_of = StageRun(store, rec.id, record=rec)._memo_of(best_effort=True)
        floor = not_before.get(rec.timeline_id)
        when = None if floor is None else max(utcnow(), floor)
        with tables.engine.transaction() as tx:
            old, new = tables.change_in(tx, rec.id, aborting(tables, when, strict=False),
                                        _is_aborted, memo_of)
        if new is not old:
            tables.forget(rec.id)
            closed.append(rec.id)
    return tuple(closed)


def _floors(tombstones: Iterable[Tombstone]) -> dict[str, datetime]:
    """timeline id -> the time of its earliest deletion of a timeline or checkpoint."""
    floor: dict[str, datetime] = {}
    for t in tombstones:
        if t.kind in ("timeline", "checkpoint"):
            floor[t.timeline_id] = min(floor.get(t.timeline_id, t.created_at), t.created_at)
    return floor


def close_transferred(store: Store, tombstones: Sequence[Tombstone]) -> tuple[str, ...]:
    """Close the open runs of store that tombstones, just committed by a transfer,
    orphan: one read of those timelines' open runs, none without deletions of timelines
    or checkpoints. The ids closed (their closed_at: see close_orphans)."""
    floor = _floors(tombstones)
    if not floor:
        return ()
    runs = orphans(store, floor.keys())
    return close_orphans(store, runs, floor) if runs else ()


def closed_because(store: Store, rec: RunRecord) -> str | None:
    """Why an aborted run was closed by a deletion ("its parent checkpoint ... was
    pruned"), or None: its base is live, or it was aborted before its base was deleted
    (another branch's deletion before its abort is not its base's). Read when a put or
    commit is refused (tombstones stay after gc, so this still answers then)."""
    if rec.state != "aborted" or rec.closed_at is None:
        return None
    why = orphaned_by(store, rec)
    if why is None:
        return None
    closed_at = rec.closed_at
    # the deletions that took its base: of its timeline, or of its parent checkpoint or
    # an ancestor (not of another branch); any checkpoint's once gc took the records
    chain = {c.id for c in store.catalog.lineage(rec.parent_id)} or None
    marks = [t for t in store.catalog.tombstones([rec.timeline_id])
             if t.created_at <= closed_at and (
                 t.kind == "timeline"
                 or (t.kind == "checkpoint" and (chain is None or t.target_id in chain)))]
    return why if marks else None
