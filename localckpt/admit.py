"""What a transfer admits from an untrusted source (a peer store, a bundle file).

Sync and bundle import (``localckpt.transfer``) call these checks before anything is
written; each refusal is a CorruptDataError naming the record and the rule, and nothing
of the transfer is written. The rules:

- **Timelines carried.** A transfer carries the timelines the source holds a record of,
  and those it deleted and purged (a ``timeline`` tombstone filed under the timeline
  itself is all that is left of one). A tombstone or tag filed under any other timeline
  is refused: a source can never touch another timeline's records.
- **Tombstones delete their own kind in their own timeline.** Kind ``timeline`` targets
  the timeline it is filed under; kind ``checkpoint`` a checkpoint and kind ``tag`` a
  tag of that timeline, but never a timeline's root checkpoint (a root goes only with
  its timeline: ``prune`` refuses it too). Wherever the target id is found (in the
  source or in the destination) it must be a record of that kind and that timeline. A
  target found
  nowhere (a purged record) is admitted: reads only ever let a tombstone delete a record
  of its own kind in its own timeline (``Catalog.deleted``), so it cannot reach others.
- **Tags** have a name of the tag-name rule and name a checkpoint of their own timeline.
- **Trees are trees.** The root has no parent and every other checkpoint has one, in
  the same timeline (in the source's tree or already in the destination); following
  parent and ``merged_from`` links never loops (no self-parent, no cycle); a
  ``merged_from`` names a checkpoint of the same timeline, or a missing one only where
  that timeline has prunes (as ``verify`` says).
- **Timelines** have a frame rate a timeline can be created with (1e-6 to 1e6).
- **Ids are unique**: no two records of one kind share an id.
- **A deleted id never comes back** (:func:`check_undeleted`): a checkpoint or tag the
  transfer would write whose id a tombstone of its kind targets in another timeline (in
  the destination, also where gc purged the deleted record, or in the source) is
  refused: filed under its new timeline it would be live again, with other content,
  for every reference and script that named it. (In its own timeline the tombstone
  hides it, and it is not copied.) The descendants of a pruned checkpoint and the
  checkpoints of a deleted timeline, which no tombstone names, are remembered when gc
  purges them (``tombstones_targeting`` answers for them with the tombstone that
  deleted them): those are refused in their own timeline too, before anything is
  copied.
- **No records from the future** (:func:`check_times`): a record the transfer would
  write whose ``created_at``, or whose id's UUIDv7 time, lies more than
  :data:`MAX_CLOCK_SKEW` (one day) ahead of this machine's clock is refused, naming
  the record and the time. The newest tag of a name wins it everywhere (by id, which
  for a UUIDv7 is its creation time), ``TIMELINE:stage`` names the newest checkpoint
  that added the stage, ``retain`` keeps the newest: a record dated in the year 9999
  would win all of them for good. A day covers clocks that are off by minutes or
  hours (a time zone taken for UTC is at most 14 hours); a peer whose clock runs
  further ahead is refused until it is set right (or until the local clock catches up:
  nothing else changes, so a later sync completes); a deleted record does not travel,
  so deleting it in the source (prune, untag, rm) lets the rest through. A tag's id
  must be a UUIDv7
  (what ``tag`` makes): any other id has no time, and would sort by its characters
  (``zzz`` after every UUID). Records the destination holds already are not written,
  so they are not checked.

Outputs are checked as they are copied (``localckpt.transfer.verified_outputs``): each
must match its hash and decode as stored JSON (``localckpt.canonical.check_stored``).
A source must hold the outputs its new checkpoints name that the destination has
already (read from the source and hashed, not written;
``localckpt.transfer._prove_held``): outputs are stored once by hash, so a checkpoint
naming one by its hash alone would read the destination's output, and take it out
again when its timeline is exported or pushed back. A bundle proves every one; a sync
peer is spared those that the destination's checkpoints the transfer names (those
both hold, the parents the new ones name) use in the timelines it carries (an
incremental sync's new checkpoints name their parents' outputs), so the proof reads
only the others, never every output dst has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from .errors import CorruptDataError, InvalidInputError
from .types import Checkpoint, Tag, Timeline, Tombstone

__all__ = ["MAX_CLOCK_SKEW", "Offer", "carried_timelines", "check_links", "check_offer",
           "check_times", "check_undeleted", "from_the_future"]

Bad = Callable[[str], CorruptDataError]

#: How far ahead of the local clock a transferred record's time may lie (see check_times).
MAX_CLOCK_SKEW = timedelta(days=1)


@attrs.frozen
class Offer:
    """What a source offers for the timelines of one transfer, indexed by id."""

    timelines: Mapping[str, Timeline]
    trees: Mapping[str, Sequence[Checkpoint]]  # timeline id -> its checkpoints (source)
    tombstones: Sequence[Tombstone]
    tags: Sequence[Tag]

    @property
    def checkpoint_timeline(self) -> dict[str, str]:
        return {c.id: tid for tid, tree in self.trees.items() for c in tree}

    @property
    def tag_timeline(self) -> dict[str, str]:
        return {g.id: g.timeline_id for g in self.tags}


def carried_timelines(bad: Bad, timelines: Iterable[Timeline],
                      tombstones: Iterable[Tombstone]) -> set[str]:
    """The timelines a transfer carries (see the module docstring); refuses a tombstone
    filed under a timeline the source neither holds nor deleted."""
    held = {t.id for t in timelines}
    marks = list(tombstones)
    purged = {x.timeline_id for x in marks
              if x.kind == "timeline" and x.target_id == x.timeline_id}
    carried = held | purged
    for x in marks:
        if x.timeline_id not in carried:
            raise bad(f"tombstone {x.id} is filed under timeline {x.timeline_id}, which the "
                      "source neither holds nor deleted (a source may only touch the "
                      "timelines it carries)")
    return carried


def check_offer(bad: Bad, offer: Offer, carried: set[str]) -> None:
    """The source's own records agree with one another (no destination reads)."""
    from .store import FPS_RANGE

    _check_unique(bad, offer)
    for t in offer.timelines.values():
        if not (isinstance(t.fps, int | float) and FPS_RANGE[0] <= t.fps <= FPS_RANGE[1]):
            raise bad(f"timeline {t.id} has frame rate {t.fps!r}; it must be from "
                      f"{FPS_RANGE[0]:g} to {FPS_RANGE[1]:g}")
    where = offer.checkpoint_timeline
    for tid, tree in offer.trees.items():
        for c in tree:
            if c.timeline_id != tid:
                raise bad(f"checkpoint {c.id} is listed under timeline {tid} but belongs "
                          f"to {c.timeline_id}")
        _check_shape(bad, offer.timelines[tid], tree)
        for c in tree:
            m = c.merged_from
            if m is not None and m in where and where[m] != tid:
                raise bad(f"merge {c.id} of timeline {tid} names {m} of timeline {where[m]} "
                          "as merged_from; a merge stays inside one timeline")
    _check_kinds(bad, offer, offer.tombstones, offer.tags, set(offer.timelines), where,
                 offer.tag_timeline)
    for g in offer.tags:
        if g.timeline_id not in carried:
            raise bad(f"tag {g.id} belongs to timeline {g.timeline_id}, which the transfer "
                      "does not carry")


def check_links(bad: Bad, offer: Offer, tombstones: Sequence[Tombstone], tags: Sequence[Tag],
                fresh: Mapping[str, Sequence[Checkpoint]], dst_timelines: set[str],
                dst_checkpoints: Mapping[str, Checkpoint], dst_tags: Iterable[Tag],
                pruned: Mapping[str, bool]) -> None:
    """New records against what the destination holds: tombstones and tags (those dst
    lacks) and fresh checkpoints (by timeline). dst_checkpoints: the destination's
    checkpoints among every id these records name; dst_tags: the destination's tags of
    the carried timelines; pruned: whether a timeline has checkpoint tombstones on
    either side."""
    where = {c.id: c.timeline_id for c in dst_checkpoints.values()}
    where.update(offer.checkpoint_timeline)  # the source's listing is checked above
    tag_where = {g.id: g.timeline_id for g in dst_tags}
    tag_where.update(offer.tag_timeline)
    _check_kinds(bad, offer, tombstones, tags, set(offer.timelines) | dst_timelines, where,
                 tag_where)
    for tid, checkpoints in fresh.items():
        tree = {c.id for c in offer.trees.get(tid, ())}
        for c in checkpoints:
            if (c.parent_id is not None and c.parent_id not in tree
                    and where.get(c.parent_id) != tid):
                raise bad(f"a checkpoint of timeline {tid} has parent {c.parent_id}, which "
                          "neither the source nor the destination holds in that timeline")
            m = c.merged_from
            if m is not None and m not in tree:
                if m in where and where[m] != tid:
                    raise bad(f"merge {c.id} of timeline {tid} names {m} of timeline "
                              f"{where[m]} as merged_from; a merge stays inside one timeline")
                if m not in where and not pruned.get(tid, False):
                    raise bad(f"merge {c.id} of timeline {tid} names {m} as merged_from, "
                              "which neither the source nor the destination holds")


def check_times(bad: Bad, records: Iterable[Timeline | Checkpoint | Tombstone | Tag],
                now: datetime | None = None) -> None:
    """No record dated more than MAX_CLOCK_SKEW after now (the local clock), by its
    created_at or by the time its UUIDv7 id records; a tag's id is a UUIDv7 (see the
    module docstring)."""
    from .ids import uuid7_time
    from .schema import kind_of

    now = datetime.now(UTC) if now is None else now
    limit = now + MAX_CLOCK_SKEW
    for r in records:
        kind = kind_of(r)
        stamp = uuid7_time(r.id)
        if stamp is None and isinstance(r, Tag):
            raise bad(f"tag {r.id} ({r.name!r}) has an id that is not a UUIDv7; a tag's id "
                      "is the time it was made, which decides the tag that wins its name")
        late = from_the_future(r, limit)
        if late is not None:
            what, when = late
            raise bad(f"{kind} {r.id} {what} {when.astimezone(UTC).isoformat()}, more "
                      f"than a day after this machine's clock ({now.isoformat()}); a "
                      "record from the future would outrank every one made here until "
                      "then (is the source's clock wrong? a record deleted there, "
                      "by prune, untag or rm, does not travel)")


def from_the_future(record: Any, limit: datetime) -> tuple[str, datetime] | None:
    """(what, when) of the first of a record's times after limit: its created_at, the
    time its UUIDv7 id records, and a stage run's closed_at; None when none is (what
    transfers refuse, and verify reports, with limit the clock plus MAX_CLOCK_SKEW)."""
    from .ids import uuid7_time

    stamps = [("was created at", record.created_at),
              ("has an id dated", uuid7_time(record.id)),
              ("was closed at", getattr(record, "closed_at", None))]
    for what, when in stamps:
        if when is not None and when > limit:
            return what, when
    return None


def check_undeleted(bad: Bad, records: Iterable[Checkpoint | Tag],
                    tombstones: Iterable[Tombstone]) -> None:
    """No checkpoint or tag whose id a tombstone of its kind targets (see the module
    docstring). records are what the transfer would write: one its own timeline's
    tombstone hides is left out before this, so a match in its own timeline is an id
    gc purged, put back under a live parent by a forged source."""
    deleted = {(x.kind, x.target_id): x for x in tombstones}
    for r in records:
        kind = "tag" if isinstance(r, Tag) else "checkpoint"
        x = deleted.get((kind, r.id))
        if x is not None:
            raise bad(f"{kind} {r.id} of timeline {r.timeline_id} has the id of a {kind} "
                      f"deleted in timeline {x.timeline_id} (tombstone {x.id}); a deleted "
                      "record never comes back, in any timeline")


def _check_unique(bad: Bad, offer: Offer) -> None:
    """No id twice among the records of one kind (a store cannot hold that; a bundle's
    table can, and a catalog refuses it only at the commit)."""
    kinds: list[tuple[str, Iterable[Timeline | Checkpoint | Tombstone | Tag]]] = [
        ("checkpoint", (c for tree in offer.trees.values() for c in tree)),
        ("tombstone", offer.tombstones), ("tag", offer.tags)]
    for kind, records in kinds:
        seen: set[str] = set()
        for r in records:
            if r.id in seen:
                raise bad(f"it holds two {kind} records with id {r.id}")
            seen.add(r.id)


def _check_kinds(bad: Bad, offer: Offer, tombstones: Iterable[Tombstone], tags: Iterable[Tag],
                 timeline_ids: set[str], checkpoint_where: Mapping[str, str],
                 tag_where: Mapping[str, str]) -> None:
    """Each tombstone's target, and each tag's checkpoint, is of the kind it says and in
    the timeline the record is filed under, wherever it is found."""
    from .maintenance.tags import check_name

    roots = {t.root_checkpoint_id: t.id for t in offer.timelines.values()}
    for x in tombstones:
        target, tid = x.target_id, x.timeline_id
        if x.kind == "timeline":
            if target != tid:
                raise bad(f"tombstone {x.id} deletes timeline {target} but is filed under "
                          f"timeline {tid}")
            continue
        if target in roots:
            raise bad(f"tombstone {x.id} deletes checkpoint {target}, the root of timeline "
                      f"{roots[target]}; a root goes only with its timeline")
        found = ("timeline" if target in timeline_ids else
                 "checkpoint" if target in checkpoint_where else
                 "tag" if target in tag_where else None)
        if found is None:
            continue  # a purged record: it can only ever delete its own kind, here
        if found != x.kind:
            raise bad(f"tombstone {x.id} of kind {x.kind!r} targets {target}, which is a "
                      f"{found}")
        owner = (checkpoint_where if found == "checkpoint" else tag_where)[target]
        if owner != tid:
            raise bad(f"tombstone {x.id} is filed under timeline {tid} but targets {target} "
                      f"of timeline {owner} (a tombstone can only delete in its own timeline)")
    for g in tags:
        try:
            check_name(g.name)
        except InvalidInputError as exc:
            raise bad(f"tag {g.id}: {exc}") from None
        cid = g.checkpoint_id
        if cid in timeline_ids or cid in tag_where:
            raise bad(f"tag {g.id} ({g.name!r}) names {cid}, which is not a checkpoint")
        named = checkpoint_where.get(cid)
        if named is not None and named != g.timeline_id:
            raise bad(f"tag {g.id} ({g.name!r}) is filed under timeline {g.timeline_id} but "
                      f"names checkpoint {cid} of timeline {named}")


def _check_shape(bad: Bad, t: Timeline, tree: Sequence[Checkpoint]) -> None:
    """One root without a parent, no other parentless checkpoint, no loop through parent
    or merged_from links."""
    by_id = {c.id: c for c in tree}
    root = by_id.get(t.root_checkpoint_id)
    if root is not None and root.parent_id is not None:
        raise bad(f"the root checkpoint {root.id} of timeline {t.id} has a parent "
                  f"({root.parent_id}); a root has none")
    for c in tree:
        if c.parent_id is None and c.id != t.root_checkpoint_id:
            raise bad(f"checkpoint {c.id} has no parent but is not the root of timeline "
                      f"{t.id}")
        if c.id in (c.parent_id, c.merged_from):
            raise bad(f"checkpoint {c.id} names itself as its parent or merged_from")
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in by_id:
        if state.get(start):
            continue
        stack = [(start, iter(_links(by_id[start])))]
        state[start] = 1
        while stack:
            cid, links = stack[-1]
            nxt = next((n for n in links if n in by_id and state.get(n) != 2), None)
            if nxt is None:
                state[cid] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                raise bad(f"the checkpoints of timeline {t.id} loop through parent or "
                          f"merged_from links (at {nxt}); a tree has no cycles")
            else:
                state[nxt] = 1
                stack.append((nxt, iter(_links(by_id[nxt]))))


def _links(c: Checkpoint) -> list[str]:
    return [x for x in (c.parent_id, c.merged_from) if x is not None]
