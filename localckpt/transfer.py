"""The transfer under sync and bundle import: copy what dst lacks, trusting nothing.

A source (another store, a bundle file) is untrusted input. Before anything is written:

- every record passes :func:`localckpt.schema.validate` (ids are tokens that cannot be
  read as paths) and the rules of :mod:`localckpt.admit`: a source only touches the
  timelines it carries; tombstones delete their own kind in their own timeline; tags
  name checkpoints of their own timeline; trees are trees (one root, parents and
  merges in the same timeline, no cycles); no record it writes is dated more than a
  day ahead of the local clock;
- object keys are derived from the timeline id and the frame index, never taken raw
  (``shards.check_frame_key`` for keys a bundle names);

and while copying, the frame index must match the hash its timeline records and every
shard's frames must match their content hashes and open as images of the codec and
size their index rows give (``frames.check_header``); outputs must match theirs, and
the outputs dst holds that new checkpoints name must be in the source
(``_prove_held``). A source
that fails any check raises CorruptDataError and the objects this transfer had written
are removed again: nothing of it stays (outputs too many for one commit are all checked,
and the new records' ids against all of dst's, before the first is committed). (An I/O
failure midway leaves what was copied, as a crash would: the next transfer completes
it.)

What travels: tombstones and tags of the transferred timelines that dst lacks, and only
the live records (live under the union of both stores' tombstones): a pruned checkpoint
never comes back and a deleted timeline's frames are not copied.

Tombstones that arrive orphan dst's open stage runs on what they delete: right after
the commit those runs are closed (``localckpt.runs.closing.close_transferred``; a
separate transaction, so a crash between the two leaves them to ``gc``). A run is not a
checkpoint: it never makes a transfer hide work (``hidden``) nor be refused.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import attrs

from .canonical import check_stored, content_hash
from .catalog import Batch, Catalog
from .errors import (
    ConflictError,
    CorruptDataError,
    HiddenWorkError,
    InvalidInputError,
    LocalckptError,
    NotFoundError,
)
from .progress import Reporter
from .types import Checkpoint, Tag, Timeline, Tombstone
from .visibility import Marks, dead_in_tree

if TYPE_CHECKING:
    from .lease import IngestLease
    from .store import Store
    from .sync import SyncReport, TagMove, TagShadow

__all__ = ["Source", "transfer"]

#: Outputs copied per catalog commit: bounds memory, keeps round trips few.
OUTPUT_CHUNK_BYTES = 64 << 20
_COPY_THREADS = 4


class Source(Protocol):
    """What a transfer reads from. Reads of unknown ids return nothing, as catalogs do."""

    @property
    def round_trips(self) -> int: ...

    def describe(self) -> str: ...

    def timelines(self, ids: Sequence[str] | None) -> list[Timeline]: ...

    def checkpoints(self, timeline: Timeline) -> list[Checkpoint]: ...

    def tombstones(self, timeline_ids: Sequence[str] | None) -> list[Tombstone]:
        """Tombstones of these timelines (every one the source holds when None)."""

    def tags(self, timeline_ids: Sequence[str]) -> list[Tag]: ...

    def outputs(self, hashes: Sequence[str]) -> dict[str, bytes]: ...

    def frame_keys(self, timeline_id: str) -> list[str] | None:
        """The keys the source claims (a bundle's manifest), or None: derive them."""

    def read_object(self, key: str) -> bytes: ...


@attrs.frozen
class _Frames:
    """One new timeline's objects to copy: the verified index and the keys dst lacks."""

    timeline_id: str
    index: bytes
    metas: dict[int, list[Any]]  # the index's rows by shard
    todo: list[str]  # shards first, the index last


@attrs.frozen
class _Plan:
    rows: Batch
    outputs: list[str]
    frames: list[_Frames]
    #: the source's live checkpoints that dst's deletions cover (never copied), and dst's
    #: live checkpoints the copied deletions cover that the source does not hold: work
    #: one side did below what the other deleted, said rather than dropped silently
    withheld: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()


def _bad(source: Source, what: str) -> CorruptDataError:
    return CorruptDataError(f"{source.describe()}: {what}; refusing it, nothing was copied")


def _checked(source: Source, records: Sequence[Any]) -> None:
    from .schema import validate

    for r in records:
        try:
            validate(r)
        except InvalidInputError as exc:
            raise _bad(source, f"invalid record ({exc})") from None


def transfer(source: Source, dst: Store, timeline_ids: Sequence[str] | None = None,
             progress: Any = None, desc: str = "sync", hide_unseen: bool = True
             ) -> SyncReport:
    """Copy into dst what it lacks of source's timelines (all when None); see the module
    docstring for what is checked. Shared by sync and bundle import. hide_unseen=False:
    HiddenWorkError, before anything is copied, when the deletions copied would take
    checkpoints of dst that the source never held. The open runs of dst that the
    deletions copied orphan are closed after the commit (``closed_runs``)."""
    from .refs import could_spell_short_id
    from .runs.closing import close_transferred  # here: it costs every command's start
    from .sync import CountingCatalog, SyncReport

    if not isinstance(hide_unseen, bool):
        raise InvalidInputError(f"hide_unseen must be True or False, not "
                                f"{type(hide_unseen).__name__}")
    reporter = Reporter(progress, desc)
    dcat = CountingCatalog(dst.catalog)
    try:
        plan = _plan(source, dcat, dst, timeline_ids)
        if plan is not None and plan.hidden and not hide_unseen:
            raise _hiding(source, dst, plan.hidden)
        if plan is None:
            return SyncReport(round_trips=source.round_trips + dcat.round_trips)
        if not plan.rows:  # nothing to copy, only work the other side's deletions cover
            return SyncReport(round_trips=source.round_trips + dcat.round_trips,
                              withheld=plan.withheld)
        n_objects = sum(len(f.todo) for f in plan.frames)
        reporter.start(n_objects + len(plan.outputs) + 1)
        held: list[IngestLease] = []
        written: list[str] = []
        named = _tag_targets(dcat, {g.name for g in plan.rows.tags})  # before the copy
        try:
            try:
                copied, object_bytes = _copy_objects(source, dst, plan.frames, reporter,
                                                     n_objects, held, written)
                output_bytes, last = _copy_outputs(
                    source, dcat, plan.outputs, reporter,
                    lambda: _held_elsewhere(source, dst, dcat, plan.rows))
                for lease in held:
                    lease.confirm()  # gc must not have taken the objects meanwhile
                r = plan.rows  # its records were validated when the plan made it
                dcat.commit(Batch(timelines=r.timelines, checkpoints=r.checkpoints,
                                  tombstones=r.tombstones, tags=r.tags, outputs=last,
                                  validated=True))
            except (CorruptDataError, InvalidInputError, ConflictError):
                # a refused source leaves nothing, also when the commit refuses it (an id
                # that a record of a timeline it does not carry holds already): the last
                # outputs travel with the rows (an I/O failure leaves what was copied, as
                # a crash would: the next transfer completes it)
                _remove(dst, written)
                raise
            _repair_after_slow_commit(source, dst, plan.frames, held)
        finally:
            # the last first: each lease removes its directory, and the one that made
            # frames/ (the first, in a store that held no frames) removes that once it
            # is empty (IngestLease.remove_dirs), so a refused copy leaves no directory
            for lease in reversed(held):
                lease.release()
        rows = plan.rows
        # after the commit, never before: what it deletes is what orphans them
        closed = close_transferred(dst, rows.tombstones) if rows.tombstones else ()
        # what the names in use before, and the copied ones that can spell a short id
        # (see _shadowing), name now: one read, none when there are neither
        after = _winning_tags(dcat, named.keys() | {g.name for g in rows.tags
                                                    if could_spell_short_id(g.name)})
        moved = _moved_tags(named, after)
        shadowed = _shadowing(dst, after.values())
        reporter.step("rows", 1, 1)
        return SyncReport(
            timelines=len(rows.timelines), checkpoints=len(rows.checkpoints),
            outputs=len(plan.outputs), objects=copied, bytes=object_bytes + output_bytes,
            round_trips=source.round_trips + dcat.round_trips,
            tombstones=len(rows.tombstones), tags=len(rows.tags),
            withheld=plan.withheld, hidden=plan.hidden, closed_runs=closed,
            moved_tags=moved, shadowed=shadowed,
        )
    finally:
        reporter.close()


def _winning_tags(dcat: Catalog, names: Iterable[str]) -> dict[str, Tag]:
    """The live tag record each of these names resolves to in dst now (names naming
    nothing left out), as ``Visibility.tag_target`` says: one catalog read for the names
    (per 1,000 of them), and when some are in use, one for the deletions and
    checkpoints of all their records."""
    from .visibility import Visibility, live_tags

    wanted = set(names)
    if not wanted:
        return {}
    records = [g for found in dcat.tags_named_in(wanted).values() for g in found]
    if not records:
        return {}
    seen = Visibility(dcat)  # its own: what dst's reads remember must not answer
    live = seen.live_tag_records(records)
    return {g.name: g for g in live_tags(live, (), {g.checkpoint_id for g in live})}


def _tag_targets(dcat: Catalog, names: Iterable[str]) -> dict[str, str]:
    """The checkpoint each of these tag names names in dst now (see _winning_tags)."""
    return {n: g.checkpoint_id for n, g in _winning_tags(dcat, names).items()}


def _shadowing(dst: Store, winners: Iterable[Tag]) -> tuple[TagShadow, ...]:
    """Of the tags names resolve to now, those whose names hide a short id of another
    live record of dst: Store.tag refuses such a name, a copied one is said
    (refs.hidden_by_tags)."""
    from .refs import hidden_by_tags
    from .sync import TagShadow

    return tuple(TagShadow(*found) for found in hidden_by_tags(dst, winners))


def _moved_tags(before: dict[str, str], after: dict[str, Tag]) -> tuple[TagMove, ...]:
    """The tag names that named a checkpoint of dst before the copy and name another
    now: the newest tag of a name wins it (by design), and the report says so."""
    from .sync import TagMove

    now = {n: g.checkpoint_id for n, g in after.items()}
    return tuple(TagMove(n, was, now.get(n)) for n, was in sorted(before.items())
                 if now.get(n) != was)


def _hiding(source: Source, dst: Store, hidden: Sequence[str]) -> HiddenWorkError:
    from .render import plural

    where = dst.url or dst.catalog.describe()
    said = (f"the deletions of {source.describe()} would delete "
            f"{plural(len(hidden), 'checkpoint')} of {where} that it never held, saved "
            f"below what it deleted (first: {hidden[0]}); nothing was copied. To keep "
            "that work, save its outputs again under a live checkpoint; to let it go, ")
    return HiddenWorkError(said + "pass hide_unseen=True", hidden,
                           cli=said + "run the command again with --force")


def _repair_after_slow_commit(source: Source, dst: Store, frames: list[_Frames],
                              held: list[IngestLease]) -> None:
    """A commit slow enough for gc to revoke a lease meanwhile may have lost objects:
    copy again whatever of them is missing now (the source still has them)."""
    from .shards import index_key

    for f, lease in zip(frames, held, strict=True):
        if lease.committed_safely():
            continue
        present = set(dst.objects.list(f"frames/{f.timeline_id}"))
        for key in f.todo:
            if key not in present:
                data = f.index if key == index_key(f.timeline_id) else _shard(source, f, key)
                dst.objects.put(key, data)


def _plan(source: Source, dcat: Catalog, dst: Store, timeline_ids: Sequence[str] | None
          ) -> _Plan | None:
    """What dst lacks, after checking the source (localckpt.admit) and that nothing
    conflicts. Reads only.

    The timelines transferred are those the source has records of and those it deleted
    (a store that purged a deleted timeline still passes its deletion on).
    """
    from . import admit

    def bad(what: str) -> CorruptDataError:
        return _bad(source, what)

    wanted = None if timeline_ids is None else list(dict.fromkeys(timeline_ids))
    timelines = source.timelines(wanted)
    src_marks = source.tombstones(wanted)
    _checked(source, timelines)
    _checked(source, src_marks)
    if len({t.id for t in timelines}) != len(timelines):
        raise bad("it holds two timeline records with the same id")
    tids = sorted(admit.carried_timelines(bad, timelines, src_marks))
    if wanted is not None:
        lacking = set(wanted) - set(tids)
        if lacking:
            raise NotFoundError(
                f"no timeline {sorted(lacking)[0]!r} in {source.describe()}; nothing was copied"
            )
    if not tids:
        return None
    own = {t: Marks.of(t, src_marks) for t in tids}
    trees = {t.id: source.checkpoints(t) for t in timelines if not own[t.id].timeline_dead}
    src_tags = source.tags(tids)
    groups: list[Sequence[Any]] = [*trees.values(), src_tags]
    for group in groups:
        _checked(source, group)
    offer = admit.Offer({t.id: t for t in timelines}, trees, src_marks, src_tags)
    admit.check_offer(bad, offer, set(tids))
    dst_marks = dcat.tombstones(tids)
    dst_tags = dcat.tags(tids)
    seen_x = {x.id for x in dst_marks}
    seen_g = {g.id for g in dst_tags}
    new_x = [x for x in src_marks if x.id not in seen_x]
    # tags of a timeline deleted on either side never travel: nothing to look up for them
    gone = {t for t in tids if own[t].timeline_dead} | {
        x.target_id for x in dst_marks if x.kind == "timeline" and x.target_id == x.timeline_id}
    cand_g = [g for g in src_tags if g.id not in seen_g and g.timeline_id not in gone]
    all_c = [c for tree in trees.values() for c in tree]
    # one read per kind of everything the new records name, also across kinds (a
    # tombstone aimed at a timeline, a tag at a tag, ...)
    aimed = {x.target_id for x in new_x if x.kind != "timeline"}
    probe_t = {t.id for t in timelines} | aimed | {g.checkpoint_id for g in cand_g}
    found_t = {t.id: t for t in dcat.timelines(sorted(probe_t))} if probe_t else {}
    probe_c = ({c.id for c in all_c} | aimed | {g.checkpoint_id for g in cand_g}
               | {x for c in all_c for x in (c.parent_id, c.merged_from) if x is not None})
    found_c = {c.id: c for c in dcat.checkpoints(sorted(probe_c))} if probe_c else {}
    # a tag of dst that a new tombstone names may be of any timeline, where it must not
    # count as purged (admitted): the tombstone would stay, filed under a carried timeline
    # and naming another's tag, and every later transfer of both would be refused
    unknown = aimed - seen_g - set(offer.tag_timeline) - set(found_t) - set(found_c) - set(
        offer.checkpoint_timeline)
    far_g = [g for g in dcat.with_ids("tag", sorted(unknown)) if g.timeline_id not in tids
             ] if unknown else []
    have_t = {t.id: found_t[t.id] for t in timelines if t.id in found_t}
    _check_case(source, dcat, dst, [t.id for t in timelines], set(have_t) | gone)
    have_c = {c.id: found_c[c.id] for c in all_c if c.id in found_c}
    _conflicts(source, dst, [(timelines, have_t), (all_c, have_c),
                             (src_marks, {x.id: x for x in dst_marks}),
                             (src_tags, {g.id: g for g in dst_tags})])
    union = {t: Marks.of(t, [*src_marks, *dst_marks]) for t in tids}
    new_t: list[Timeline] = []
    new_c: list[Checkpoint] = []
    fresh_by: dict[str, list[Checkpoint]] = {}
    live: dict[str, set[str]] = {}  # by timeline: live under both stores' deletions
    withheld: list[str] = []
    for t in timelines:
        marks = union[t.id]
        if t.id in trees and not marks.timeline_dead:
            withheld += _unseen_below(trees[t.id], dst_marks, t.id, set(found_c),
                                      own[t.id].checkpoints, set(have_c))
        if marks.timeline_dead:
            continue
        tree = trees[t.id]
        if t.id not in have_t and t.root_checkpoint_id not in {c.id for c in tree}:
            raise bad(f"timeline {t.id} comes without its root checkpoint "
                      f"{t.root_checkpoint_id}")
        dead = dead_in_tree(tree, marks.checkpoints)
        live[t.id] = {c.id for c in tree if c.id not in dead}
        fresh = [c for c in tree if c.id not in dead and c.id not in have_c]
        if t.id not in have_t:
            new_t.append(t)
        new_c.extend(fresh)
        fresh_by[t.id] = fresh
    admit.check_links(bad, offer, new_x, cand_g, fresh_by, set(found_t), found_c,
                      [*dst_tags, *far_g], {t: bool(union[t].checkpoints) for t in tids})
    new_g = [g for g in cand_g if g.checkpoint_id in live.get(g.timeline_id, ())
             and g.id not in union[g.timeline_id].tags]
    admit.check_times(bad, [*new_t, *new_c, *new_x, *new_g])
    if new_c or new_g:  # one read: dst's deletions of these ids, in any timeline
        written: list[Checkpoint | Tag] = [*new_c, *new_g]
        admit.check_undeleted(bad, written, [
            *dcat.tombstones_targeting(sorted({r.id for r in written})), *src_marks])
    if not (new_t or new_c or new_x or new_g):
        return _Plan(Batch(), [], [], tuple(withheld)) if withheld else None
    hidden = _hidden(dcat, trees, have_t, dst_marks, new_x)
    needed = sorted({h for c in new_c for h in c.stage_hashes.values()})
    missing = sorted(dcat.missing_outputs(needed)) if needed else []
    _prove_held(source, dst, new_c, set(missing), found_c.values(), set(tids))
    frames = [_frames_of(source, dst, t) for t in new_t]
    return _Plan(Batch(timelines=new_t, checkpoints=new_c, tombstones=new_x, tags=new_g),
                 missing, [f for f in frames if f.todo], tuple(withheld), hidden)


def _prove_held(source: Source, dst: Store, new_c: Sequence[Checkpoint], missing: set[str],
                known: Iterable[Checkpoint], carried: set[str]) -> None:
    """CorruptDataError unless the source holds, with their bytes, the outputs its new
    checkpoints name that dst holds already (so they are not copied): outputs are
    stored once by hash, and a checkpoint naming one by its hash alone (seen in a log)
    would be handed that output by whoever exports or pushes its timeline back. Read
    from the source and hashed, never written. A bundle proves every one (it holds
    them all: export writes them). A sync peer is spared the outputs dst's own
    checkpoints already use in the timelines the transfer carries, among those the
    transfer names (known: dst's checkpoints among the ids the new records name, read
    by the plan anyway: the checkpoints both hold and the parents they name), which
    are what an incremental sync names: the timeline is shared, so are its outputs.
    (An output only dst's other checkpoints of those timelines use is proved: reading
    their trees would cost about what the proof does.) Costs one source read per
    1,000 outputs proved, nothing for dst."""
    spared: set[str] | None = None  # a bundle: none spared
    if not getattr(source, "holds_its_outputs", False):
        spared = {h for c in known if c.timeline_id in carried
                  for h in c.stage_hashes.values()}
    named: dict[str, tuple[Checkpoint, str]] = {}
    for c in new_c:
        for stage, h in sorted(c.stage_hashes.items()):
            if h not in missing and (spared is None or h not in spared):
                named.setdefault(h, (c, stage))
    outside = "" if spared is None else (
        ", and none of its checkpoints that this transfer names uses it")
    held_by = dst.url or dst.catalog.describe()

    def why(h: str) -> str:
        c, stage = named[h]
        return (f"checkpoint {c.id} of timeline {c.timeline_id} names stage output {h} "
                f"(stage {stage!r}), which {held_by} holds{outside}. A source must hold the "
                "bytes of the outputs it names: one named by its hash alone would be handed "
                "out with that timeline when it is exported or pushed back. Refusing it, "
                "nothing was copied.")

    # not written (dst holds them), so not decoded: only their bytes are in question
    for _ in verified_outputs(source.outputs, sorted(named), source.describe(),
                              decodes=False, why=why):
        pass


def _unseen_below(tree: Sequence[Checkpoint], marks: Sequence[Tombstone], timeline_id: str,
                  held: set[str], already: Iterable[str], present: set[str]) -> list[str]:
    """The checkpoints of tree below a checkpoint that the other side pruned and still
    holds the row of, which the other side does not hold: work it never saw (a pruned
    row it purged, or a bundle, which carries live rows only, cannot tell seen from
    unseen, so those say nothing). already: what tree's own side deleted; a deleted
    timeline is a deletion of everything, not work lost below one."""
    targets = {x.target_id for x in marks if x.kind == "checkpoint"
               and x.timeline_id == timeline_id and x.target_id in held}
    if not targets:
        return []
    below = dead_in_tree(tree, targets) - targets - dead_in_tree(tree, already)
    return sorted(below - present)


def _hidden(dcat: Catalog, trees: dict[str, list[Checkpoint]], have_t: dict[str, Timeline],
            dst_marks: Sequence[Tombstone], new_x: Sequence[Tombstone]) -> tuple[str, ...]:
    """dst's live checkpoints that the new tombstones take and the source never held
    (see _unseen_below). Reads the trees of the timelines receiving a pruning only."""
    hit = sorted({x.timeline_id for x in new_x if x.kind == "checkpoint"} & set(have_t))
    found: list[str] = []
    for tid in hit:
        before = Marks.of(tid, dst_marks)
        if before.timeline_dead or tid not in trees:
            continue
        theirs = {c.id for c in trees[tid]}
        found += _unseen_below(dcat.tree(tid), new_x, tid, theirs, before.checkpoints,
                               theirs)
    return tuple(found)


def _check_case(source: Source, dcat: Catalog, dst: Store, tids: Sequence[str],
                skip: set[str]) -> None:
    """ConflictError when a timeline this transfer would add has the id of another
    (the destination's or one it carries too) but for letter case: its frames lie under
    frames/<id>/, one directory for both on a case-insensitive filesystem (macOS,
    Windows), where one timeline's shards would overwrite the other's. One read, only
    when the transfer adds timelines (skip: those held already or deleted on a side)."""
    new = [t for t in tids if t not in skip]
    if not new:
        return
    seen: dict[str, str] = {}
    for tid in tids:
        other = seen.setdefault(tid.lower(), tid)
        if other != tid:
            _case_clash(other, tid, source.describe(),
                        "copy one of the two alone, naming the timeline to copy")
    found = dcat.timelines_folding_to(new)
    if found:
        from .refs import listing_here

        mine = next(t for t in new if t.lower() == found[0].lower())
        where = dst.url or dst.catalog.describe()
        _case_clash(mine, found[0], where,
                    f"keep timeline {mine} in another store, or delete timeline {found[0]} "
                    f"from {where} first ({listing_here(dst, f'`localckpt rm {found[0]}`')})")


def _case_clash(one: str, other: str, where: str, remedy: str) -> NoReturn:
    raise ConflictError(
        f"timeline {one} and timeline {other} (in {where}) have the same id but for letter "
        "case; their frames would share one directory on a case-insensitive filesystem "
        f"(macOS, Windows) and overwrite each other. Nothing was copied: {remedy}.")


def _conflicts(source: Source, dst: Store, pairs: list[tuple[Sequence[Any], dict[str, Any]]],
               ) -> None:
    bad = [r.id for records, have in pairs for r in records if r.id in have and have[r.id] != r]
    if bad:
        from .render import plural

        raise ConflictError(
            f"{plural(len(bad), 'record')} {'exists' if len(bad) == 1 else 'exist'} in both "
            f"{source.describe()} and "
            f"{dst.url or dst.catalog.describe()} with different content (first: {bad[0]}). "
            "Ids are unique, so one store holds a modified copy; nothing was copied."
        )


def _frames_of(source: Source, dst: Store, t: Timeline) -> _Frames:
    """Read and check the index of a timeline dst lacks; what of it dst lacks."""
    from .shards import by_shard, index_key, keys_of, parse_index, verify_index

    ikey = index_key(t.id)
    try:
        data = source.read_object(ikey)
    except NotFoundError as exc:
        raise _bad(source, f"timeline {t.id} has no frame index ({exc})") from None
    where = f"{source.describe()}: {ikey}"
    verify_index(data, t.index_hash, where)
    _measure_index(source, t, data)
    metas = parse_index(data, where)
    for m in metas:  # what create_timeline refuses (readers matching times overflow)
        if not math.isfinite(m.timestamp):
            raise _bad(source, f"frame {m.sequence} of timeline {t.id} has timestamp "
                               f"{m.timestamp}; a frame's time is a finite number")
    if len(metas) != t.frame_count:
        raise _bad(source, f"timeline {t.id} records {t.frame_count} frames but its index "
                   f"holds {len(metas)}")
    keys = keys_of(t.id, metas)
    claimed = source.frame_keys(t.id)
    if claimed is not None and list(claimed) != keys:
        raise _bad(source, f"the objects listed for timeline {t.id} are not the ones its "
                   "frame index names")
    # A timeline row in dst means its frames are complete (rows travel last), so only
    # timelines dst lacks need their objects compared and copied.
    present = set(dst.objects.list(f"frames/{t.id}"))
    return _Frames(t.id, data, by_shard(metas), [k for k in keys if k not in present])


def _measure_index(source: Source, t: Timeline, data: bytes) -> None:
    """CorruptDataError unless the index decodes within the caps a bundle's tables have
    (``localckpt.bundle_limits``), told before it is decoded whole: the index comes
    with its timeline's hash, so a source may hand over any bytes, and a few hundred KB
    of Parquet can decode to gigabytes (then on every read of the timeline's frames)."""
    from . import bundle_limits as limits

    try:
        limits.read_table(data, "index", None)
    except limits.TooLarge as exc:
        raise _bad(source, f"the frame index of timeline {t.id}: {exc}") from None
    except Exception as exc:  # damaged Parquet raises many kinds (as parse_index says)
        raise _bad(source, f"the frame index of timeline {t.id} cannot be read "
                           f"({type(exc).__name__}: {exc})") from None


def _remove(dst: Store, keys: list[str]) -> None:
    """Remove objects a failed transfer wrote; an outage here leaves them for gc."""
    if keys:
        with contextlib.suppress(LocalckptError):
            dst.objects.delete(list(keys))


def _copy_objects(source: Source, dst: Store, frames: list[_Frames], reporter: Reporter,
                  total: int, held: list[IngestLease], written: list[str]) -> tuple[int, int]:
    """Copy frame objects under an ingest lease per timeline: shards (concurrently on
    remote stores), each checked against the index, then each index last, so dst never
    holds an index whose shards are missing. written collects the keys written, which
    the caller removes if the transfer fails before its commit."""
    from .lease import IngestLease
    from .shards import index_key

    done = 0
    nbytes = 0

    def copy(item: tuple[_Frames, str]) -> int:
        f, key = item
        data = f.index if key == index_key(f.timeline_id) else _shard(source, f, key)
        dst.objects.put(key, data)
        written.append(key)
        return len(data)

    remote = not dst.objects.is_local or not getattr(source, "local", True)
    from concurrent.futures import ThreadPoolExecutor  # here: it costs every command's start

    pool = ThreadPoolExecutor(_COPY_THREADS) if remote else None
    try:
        for f in frames:
            held.append(IngestLease(dst.objects, f.timeline_id).acquire())
            head = [(f, k) for k in f.todo if k != index_key(f.timeline_id)]
            last = [(f, k) for k in f.todo if k == index_key(f.timeline_id)]
            sizes = pool.map(copy, head) if pool is not None else map(copy, head)
            for batch in (sizes, map(copy, last)):  # the index only after every shard
                for size in batch:
                    done += 1
                    nbytes += size
                    reporter.step("objects", done, total)
    except BaseException:
        if pool is not None:  # no copy may still be writing when the caller cleans up
            pool.shutdown(wait=True, cancel_futures=True)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return done, nbytes


def _shard(source: Source, f: _Frames, key: str) -> bytes:
    """A shard's bytes, each of its frames checked against the index: its content hash,
    and its image's header (codec, width and height, a size decode accepts: see
    ``frames.check_header``) before anything uses the sizes the index gives."""
    from .frames import check_header
    from .shards import verify_shard

    shard = int(key.rsplit("-", 1)[1].split(".")[0])
    data = source.read_object(key)
    metas = f.metas.get(shard, [])
    verify_shard(f.timeline_id, shard, data, metas, source.describe())
    view = memoryview(data)
    for m in metas:
        try:
            check_header(view[m.offset:m.offset + m.length], m.codec, (m.width, m.height))
        except CorruptDataError as exc:
            raise _bad(source, f"frame {m.sequence} of timeline {f.timeline_id} (shard "
                               f"{shard}): {exc}") from None
    return data


def verified_outputs(fetch: Callable[[list[str]], dict[str, bytes]], hashes: Sequence[str],
                     where: str, *, decodes: bool = True,
                     why: Callable[[str], str] | None = None) -> Iterator[tuple[str, bytes]]:
    """(hash, bytes) of each output in order, fetched 1,000 at a time, each checked
    against its hash and (decodes) decoded as reads decode it (``canonical.check_stored``):
    CorruptDataError names where for one that is missing, damaged or unreadable, and
    why(hash) says what that means, when the caller knows better than "damaged"."""
    damaged = "it is damaged (restore it or sync from another copy). Nothing was copied."
    for i in range(0, len(hashes), 1000):
        chunk = list(hashes[i : i + 1000])
        found = fetch(chunk)
        for h in chunk:
            data = found.get(h)
            if data is None:
                raise CorruptDataError(
                    f"{where} lacks stage output {h} that its checkpoints refer to"
                    + (f": {why(h)}" if why else f"; {damaged}"))
            if content_hash(data) != h:
                raise CorruptDataError(f"stage output {h} in {where} does not match its hash"
                                       + (f": {why(h)}" if why else f"; {damaged}"))
            if decodes:
                try:
                    check_stored(data, h)  # what reads accept, no more (localckpt.canonical)
                except CorruptDataError as exc:
                    raise CorruptDataError(
                        f"{where}: {exc}; it is not an output localckpt can read, so it is "
                        "refused. Nothing was copied."
                    ) from None
            yield h, data


def _held_elsewhere(source: Source, dst: Store, dcat: Catalog, rows: Batch) -> None:
    """ConflictError, before anything is committed, if a new tombstone's or tag's id is
    held by a record of a timeline the transfer does not carry (the plan compared the
    carried ones only; the rows' commit would refuse it, after the outputs before it
    were committed). Reads the records of dst with those ids only: done only for
    transfers whose outputs need more than one commit."""
    pairs: list[tuple[Sequence[Any], dict[str, Any]]] = []
    for kind, records in (("tombstone", rows.tombstones), ("tag", rows.tags)):
        if records:
            stored = dcat.with_ids(kind, [r.id for r in records])
            pairs.append((records, {r.id: r for r in stored}))
    _conflicts(source, dst, pairs)


def _copy_outputs(source: Source, dcat: Catalog, hashes: list[str], reporter: Reporter,
                  first: Callable[[], None]) -> tuple[int, dict[str, bytes]]:
    """Copy outputs in commits of at most OUTPUT_CHUNK_BYTES, verifying each hash; the
    last chunk is returned, not committed: it goes with the rows (so a transfer whose
    outputs fit one chunk writes none of them unless its rows are written too). Before
    the first commit of a transfer whose outputs need more than one, every output not
    yet read is read and checked once (and again as it is copied), and first() is
    called (it raises to refuse the transfer): a source refused for an output far
    down the list, or for a record the rows' commit would refuse, has had none
    committed. Returns (bytes of every output, the last chunk)."""
    nbytes = 0
    batch: dict[str, bytes] = {}
    size = 0
    checked = False
    where = source.describe()
    for done, (h, data) in enumerate(verified_outputs(source.outputs, hashes, where),
                                     start=1):
        batch[h] = data
        size += len(data)
        nbytes += len(data)
        if size >= OUTPUT_CHUNK_BYTES:
            if not checked:  # memory stays bounded: each is let go once checked
                for _ in verified_outputs(source.outputs, hashes[done:], where):
                    pass
                first()
                checked = True
            dcat.commit(Batch(outputs=batch))
            batch, size = {}, 0
        reporter.step("outputs", done, len(hashes))
    return nbytes, batch
