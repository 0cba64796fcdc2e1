"""Deleting: whole timelines, subtrees (prune) and what a retention rule does not keep.

A deletion is one commit of tombstones (:class:`localckpt.Tombstone`) and nothing else:
the deleted records disappear for every reader at once (``localckpt.visibility``), sync
carries the tombstones to other stores, and ``gc`` frees the space later. One tombstone
per pruned subtree suffices (descendants die with their ancestor), plus one for each
checkpoint a kept merge names as ``merged_from`` (with ``force``), so that a dangling
``merged_from`` always points at a checkpoint deleted by name.

A deletion also closes the stage runs it orphans (open runs whose timeline or parent
checkpoint it deletes), in the same transaction as its tombstones
(``localckpt.runs.closing``); the report names them (a dry run names those it would
close).

What each report says gc will free is measured as gc measures it
(``localckpt.maintenance.freed``): the catalog records the new tombstones add to the
purge, the bytes of the outputs among them, and (for a timeline) its frame objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..arguments import integer
from ..catalog import Batch
from ..errors import InvalidInputError
from ..ids import new_id
from ..lease import LeaseLost
from ..records import utcnow
from ..refs import listing_here
from ..render import plural
from ..runs.closing import delete_closing, dependents
from ..types import Checkpoint, Timeline, Tombstone
from ..visibility import dead_in_tree
from .freed import freed_by
from .reports import PruneReport

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["delete_timeline", "prune", "retain", "undo_lost_ingest"]

_LISTED = 5


def _tombstone(target: str, kind: str, timeline_id: str) -> Tombstone:
    return Tombstone(new_id(), target, kind, timeline_id, utcnow())


def _check_flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{what} must be True or False, not {value!r}")
    return value


def delete_timeline(store: Store, timeline_id: str, dry_run: bool = False) -> PruneReport:
    """Delete a live timeline with its whole tree, its tags and its frames."""
    _check_flag(dry_run, "dry_run")
    timeline = store.get_timeline(timeline_id)
    tree = store.visibility.live_tree(timeline.id)
    tags = tuple(g.name for g in store.visibility.tags(timeline.id))
    mark = _tombstone(timeline.id, "timeline", timeline.id)
    freed = freed_by(store, [mark])
    frames = store.objects.stat(f"frames/{timeline.id}")  # gc takes them all
    object_bytes = sum(size for size, _ in frames.values())
    runs = dependents(store, timeline.id, None)
    closed = tuple(r.id for r in runs)
    if not dry_run:
        closed = delete_closing(store, Batch(tombstones=[mark]), runs)
    return PruneReport(
        timelines=(timeline.id,), checkpoints=tuple(sorted(c.id for c in tree)), tags=tags,
        outputs=len(freed.outputs), objects=len(frames),
        bytes=freed.output_bytes + object_bytes, tombstones=0 if dry_run else 1,
        dry_run=dry_run, records=freed.records, output_bytes=freed.output_bytes,
        object_bytes=object_bytes, closed_runs=closed,
    )


def prune(store: Store, checkpoint_id: str, dry_run: bool = False, force: bool = False,
          ) -> PruneReport:
    """Delete a checkpoint and every checkpoint below it.

    Never a root (delete the timeline instead) and so never an ancestor of a checkpoint
    that stays. A checkpoint of the subtree that a kept merge names as merged_from makes
    it refuse (InvalidInputError listing the merges) unless force=True.
    """
    _check_flag(dry_run, "dry_run")
    _check_flag(force, "force")
    target = store.get_checkpoint(checkpoint_id)
    if target.parent_id is None:
        tshort = store.short_id(target.timeline_id, "timeline")
        raise InvalidInputError(
            f"checkpoint {target.id} is the root of timeline {target.timeline_id}; a root "
            "cannot be pruned. Delete the whole timeline with delete_timeline() instead.",
            cli=f"checkpoint {store.short_id(target.id)} is the root of timeline {tshort}; "
            "a root cannot be pruned. Delete the whole timeline with "
            f"{listing_here(store, f'`localckpt rm {tshort}`')} instead.",
        )
    tree = store.visibility.live_tree(target.timeline_id)
    gone = dead_in_tree(tree, [target.id]) & {c.id for c in tree}
    blockers = sorted((c for c in tree if c.id not in gone and c.merged_from in gone),
                      key=lambda c: c.id)
    if blockers and not force:
        listed = ", ".join(f"{c.id} (merged from {c.merged_from})" for c in blockers[:_LISTED])
        more = f" and {len(blockers) - _LISTED} more" if len(blockers) > _LISTED else ""
        verb = "names" if len(blockers) == 1 else "name"
        msg = (f"cannot prune {target.id}: {plural(len(blockers), 'kept merge')} {verb} a "
               f"checkpoint of its subtree as merged_from: {listed}{more}. Nothing was "
               "deleted.")
        raise InvalidInputError(
            msg + " Pass force=True to prune anyway (those merges stay).",
            cli=msg + " Run again with --force to prune anyway (those merges stay).",
        )
    named = sorted({c.merged_from for c in blockers if c.merged_from is not None})
    marks = [_tombstone(target.id, "checkpoint", target.timeline_id)]
    marks += [_tombstone(m, "checkpoint", target.timeline_id) for m in named if m != target.id]
    return _commit(store, target.timeline_id, tree, gone, marks, dry_run)


def retain(
    store: Store, timeline_id: str, *, keep_last: int | None = None,
    keep_labels: Iterable[str] = (), newer_than: datetime | timedelta | None = None,
    keep_tagged: bool = True, dry_run: bool = False,
) -> PruneReport:
    """Prune every checkpoint of a timeline that no rule keeps.

    Kept: the root; the keep_last most recently created checkpoints; checkpoints whose
    scenario_label is in keep_labels; checkpoints created after newer_than (an aware
    datetime, or a timedelta back from now); tagged checkpoints when keep_tagged; and
    everything a kept checkpoint derives from (its parent chain, and what kept merges
    merged in), so retention never needs force. At least one of keep_last, keep_labels
    and newer_than must be given.
    """
    _check_flag(dry_run, "dry_run")
    _check_flag(keep_tagged, "keep_tagged")
    keep_last = integer(keep_last, "keep_last", low=0, none=True)
    if isinstance(keep_labels, str) or not isinstance(keep_labels, Iterable):
        raise InvalidInputError(
            f"keep_labels must be a list of scenario labels, not {keep_labels!r}"
        )
    labels = set(keep_labels)
    if not all(isinstance(x, str) for x in labels):
        raise InvalidInputError(f"keep_labels must hold strings, not {sorted(labels, key=str)!r}")
    cutoff = _cutoff(newer_than)
    if keep_last is None and not labels and cutoff is None:
        raise InvalidInputError(
            "retain needs a rule: keep_last, keep_labels or newer_than (without one it "
            "would delete every checkpoint but the root and the tagged ones)",
            cli="retain needs a rule: --keep-last, --keep-label or --newer-than (without one "
            "it would delete every checkpoint but the root and the tagged ones)",
        )
    timeline = store.get_timeline(timeline_id)
    marks = store.visibility.marks(timeline.id)
    tree = store.visibility.live_tree(timeline.id, marks)
    by_id = {c.id: c for c in tree}
    keep = {timeline.root_checkpoint_id}
    others = sorted((c for c in tree if c.parent_id is not None),
                    key=lambda c: (c.created_at, c.id))
    if keep_last:
        keep |= {c.id for c in others[-keep_last:]}
    keep |= {c.id for c in tree if c.scenario_label in labels}
    if cutoff is not None:
        keep |= {c.id for c in tree if c.created_at > cutoff}
    if keep_tagged:
        keep |= {g.checkpoint_id for g in store.visibility.live_tag_records(
            store.catalog.tags([timeline.id]))}
    keep = _closure(by_id, keep)
    roots = sorted(c.id for c in tree if c.id not in keep and c.parent_id in keep)
    gone = dead_in_tree(tree, roots) & set(by_id)
    tombstones = [_tombstone(r, "checkpoint", timeline.id) for r in roots]
    return _commit(store, timeline.id, tree, gone, tombstones, dry_run)


def undo_lost_ingest(store: Store, timeline: Timeline) -> None:
    """A timeline committed while gc revoked its lease may have lost its frames: delete
    it (a tombstone) and raise LeaseLost."""
    store.catalog.commit(Batch(tombstones=[_tombstone(timeline.id, "timeline", timeline.id)]))
    raise LeaseLost(
        f"gc revoked the lease of timeline {timeline.id} while its commit was under way, so "
        "its frames may be gone; the timeline was deleted again. Run the ingest again."
    )


def _cutoff(newer_than: datetime | timedelta | None) -> datetime | None:
    if newer_than is None:
        return None
    if isinstance(newer_than, timedelta):
        if newer_than < timedelta(0):
            raise InvalidInputError(f"newer_than must not be negative, not {newer_than}")
        return utcnow() - newer_than
    if isinstance(newer_than, datetime):
        if newer_than.tzinfo is None:
            raise InvalidInputError(
                f"newer_than {newer_than.isoformat()} has no timezone; give an aware datetime "
                "(e.g. datetime(..., tzinfo=timezone.utc)) or a timedelta"
            )
        return newer_than
    raise InvalidInputError(
        f"newer_than must be a datetime, a timedelta or None, not {type(newer_than).__name__}"
    )


def _closure(by_id: dict[str, Checkpoint], keep: set[str]) -> set[str]:
    """keep and everything its members derive from (parent and merged_from links)."""
    out: set[str] = set()
    todo = [k for k in keep if k in by_id]
    while todo:
        cid = todo.pop()
        if cid in out:
            continue
        out.add(cid)
        c = by_id[cid]
        todo.extend(x for x in (c.parent_id, c.merged_from) if x is not None and x in by_id)
    return out


def _commit(store: Store, timeline_id: str, tree: list[Checkpoint], gone: set[str],
            tombstones: list[Tombstone], dry_run: bool) -> PruneReport:
    if not gone:
        return PruneReport(dry_run=dry_run)
    tags = tuple(g.name for g in store.visibility.tags(timeline_id) if g.checkpoint_id in gone)
    freed = freed_by(store, tombstones)
    runs = dependents(store, timeline_id, gone)
    closed = tuple(r.id for r in runs)
    if not dry_run:
        closed = delete_closing(store, Batch(tombstones=tombstones), runs)
    return PruneReport(checkpoints=tuple(sorted(gone)), tags=tags, outputs=len(freed.outputs),
                       bytes=freed.output_bytes, tombstones=0 if dry_run else len(tombstones),
                       dry_run=dry_run, records=freed.records,
                       output_bytes=freed.output_bytes, closed_runs=closed)
