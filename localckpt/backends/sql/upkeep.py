"""Catalog upkeep: checking every stored row, and removing what tombstones delete.

Why a purge never stops writers: it works in small batches, each its own short
transaction, and takes no table lock. Deleted rows are found from the tombstone list
(never by rewriting a table), and go deepest first, so that every checkpoint still
stored keeps its whole parent chain: a descendant of a pruned checkpoint is still seen
as pruned while the purge runs, whatever batch it is in.

Every checkpoint and tag a purge deletes leaves its id in ``purged`` (kind, timeline and
the tombstone that deleted it), written in the transaction that deletes its row: a
tombstone names only its target, and the ids of what went with it (the checkpoints
below a pruned one, those of a deleted timeline, their tags) would otherwise be
forgotten, and a transfer could bring them back live in another timeline
(``SqlCatalog.tombstones_targeting`` reads this table). One row per row deleted, by one
more statement per batch.

Outputs go when nothing refers to them: no ``output_refs`` row (see ``schema``). On
PostgreSQL a save that refers to an output at the moment a purge deletes it cannot
both succeed: the foreign key from ``output_refs`` makes one of them fail (the purge's
batch is then skipped; the save's retry inserts the output again). On SQLite writers
take turns, so the check and the delete see the same state. An output that no
checkpoint ever used (a sync stages outputs before the rows that use them) goes only
when two purges in a row found it unused (``unreferenced``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ...canonical import content_hash, load_json
from ...catalog import Garbage
from ...errors import InvalidInputError, LocalckptError
from ...schema import validate
from ...types import Tombstone
from .engine import Dangling
from .schema import PURGED_IDS, SUMS_OF, TAG_NAMES

if TYPE_CHECKING:
    from .catalog import SqlCatalog

__all__ = ["garbage", "purge", "storage_problems"]

BATCH = 256  # rows per purge transaction: short enough never to hold up a save


def _xor(values: Iterable[int]) -> int:
    acc = 0
    for v in values:
        acc ^= v
    return acc


def _chunks(items: list[Any], size: int = BATCH) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# -- what is garbage -------------------------------------------------------------------------


@attrs.frozen
class _Dead:
    """What tombstones delete: checkpoints (id, timeline) deepest first, timelines, tags;
    causes: the id of each (and of each deleted timeline) -> the tombstone that deletes
    it (its own, an ancestor's, its checkpoint's or its timeline's)."""

    checkpoints: tuple[tuple[str, str], ...] = ()
    timelines: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    causes: Mapping[str, str] = attrs.field(factory=dict)


def _dead(catalog: SqlCatalog, timeline_ids: Iterable[str] | None,
          extra: Sequence[Tombstone] = ()) -> _Dead:
    """Apply the rules of ``Catalog.garbage`` to the tombstones of these timelines (every
    timeline when None) and extra. A tombstone only touches records of its own timeline
    and of its kind: one aimed at another timeline's record deletes nothing."""
    e = catalog.engine
    in_ = catalog.dialect.list_param
    scope = None if timeline_ids is None else set(timeline_ids)
    marks = [*catalog.tombstones(None if scope is None else sorted(scope)),
             *(t for t in extra if scope is None or t.timeline_id in scope)]
    by_timeline: defaultdict[str, list[Tombstone]] = defaultdict(list)
    for t in marks:
        by_timeline[t.timeline_id].append(t)
    dead: list[tuple[int, str, str]] = []
    timelines: set[str] = set()
    causes: dict[str, str] = {}
    for tid, mine in sorted(by_timeline.items()):
        mine.sort(key=lambda t: t.id)  # the first deletion of a target is its cause
        whole = next((t.id for t in mine if t.kind == "timeline" and t.target_id == tid),
                     None)
        targets: dict[str, str] = {}
        for t in mine:
            if t.kind == "checkpoint":
                targets.setdefault(t.target_id, t.id)
        if not whole and not targets:
            continue
        rows = e.query("SELECT id, parent_id FROM {s}checkpoints WHERE timeline_id = ?", (tid,))
        known = {cid for cid, _ in rows}
        kids: defaultdict[str | None, list[str]] = defaultdict(list)
        for cid, pid in rows:
            kids[pid].append(cid)
        roots = [cid for cid, pid in rows if pid is None or pid not in known]
        # depth in the timeline's tree, not below a target: with one target under
        # another, depth below the target reached first put a child after its parent
        # (two batches: the parent's delete met the child's foreign key, every purge)
        depth: dict[str, int] = {}
        level, d = roots, 0
        while level:
            nxt: list[str] = []
            for cid in level:
                if cid not in depth:
                    depth[cid] = d
                    nxt.extend(kids.get(cid, ()))
            level, d = nxt, d + 1
        if whole:
            timelines.add(tid)
            causes[tid] = whole
            stack = [(cid, whole) for cid in roots]
        else:
            stack = [(cid, targets[cid]) for cid in sorted(targets.keys() & known)]
        seen: set[str] = set()
        while stack:
            cid, cause = stack.pop()
            if cid in seen:
                continue
            seen.add(cid)
            causes[cid] = whole or targets.get(cid, cause)
            dead.append((depth.get(cid, 0), cid, tid))
            stack.extend((kid, causes[cid]) for kid in kids.get(cid, ()))
    dead.sort(key=lambda d: -d[0])
    if timelines:  # only those still stored (a purge took the others already)
        timelines = {r[0] for chunk in _chunks(sorted(timelines), 500) for r in e.query(
            "SELECT id FROM {s}timelines WHERE id{in}", (in_(chunk),))}
    gone = {cid for _, cid, _ in dead}
    tag_marks: dict[tuple[str, str], str] = {}
    for t in sorted(marks, key=lambda t: t.id):
        if t.kind == "tag":
            tag_marks.setdefault((t.target_id, t.timeline_id), t.id)
    tags: set[str] = set()
    tids = sorted(by_timeline)
    for chunk in _chunks(tids, 500):
        for gid, cid, tid in e.query("SELECT id, checkpoint_id, timeline_id FROM {s}tags "
                                     "WHERE timeline_id{in}", (in_(chunk),)):
            why = tag_marks.get((gid, tid)) or (causes.get(cid) if cid in gone else None) \
                or (causes.get(tid) if tid in timelines else None)
            if why is not None:
                tags.add(gid)
                causes[gid] = why
    return _Dead(tuple((cid, tid) for _, cid, tid in dead), frozenset(timelines),
                 frozenset(tags), causes)


def _freed_outputs(catalog: SqlCatalog, dead: _Dead) -> dict[str, int]:
    """Outputs only dead checkpoints refer to: hash -> bytes. Owners outside dead
    (another timeline's checkpoints, a run) are asked whether tombstones of their own
    timeline delete them, a few at a time: one live owner keeps an output, so an output
    every timeline shares (an empty result) costs a look at one of them, not at every
    timeline of the store."""
    e = catalog.engine
    in_ = catalog.dialect.list_param
    gone = {cid for cid, _ in dead.checkpoints}
    candidates: set[str] = set()
    for chunk in _chunks(sorted(gone), 500):  # what they refer to: added, or carried
        for (hashes,) in e.query("SELECT stage_hashes FROM {s}checkpoints WHERE id{in}",
                                 (in_(chunk),)):
            candidates.update(_json(hashes).values())
    owners: defaultdict[str, set[str]] = defaultdict(set)
    for chunk in _chunks(sorted(candidates), 500):
        for h, owner in e.query("SELECT hash, owner FROM {s}output_refs WHERE hash{in}",
                                (in_(chunk),)):
            owners[h].add(owner)
    live: set[str] = set()
    undecided = sorted(h for h in candidates if owners[h] - gone)
    ask = 1  # owners asked about per output this round (doubling: a few rounds at most)
    while undecided:
        asked = sorted({o for h in undecided for o in sorted(owners[h] - gone)[:ask]})
        found = _dead_among(catalog, asked)
        gone |= found
        live.update(o for o in asked if o not in found)
        undecided = [h for h in undecided if not owners[h] & live and owners[h] - gone]
        ask *= 2
    freed = sorted(h for h in candidates if owners[h] <= gone)
    sizes: dict[str, int] = {}
    for chunk in _chunks(freed, 500):
        sizes.update(e.query(f"SELECT hash, {catalog.dialect.blob_length}(data) FROM "
                             "{s}outputs WHERE hash{in}", (in_(chunk),)))
    return {h: int(sizes[h]) for h in freed if h in sizes}


def _dead_among(catalog: SqlCatalog, ids: list[str]) -> set[str]:
    """The checkpoints among ids that tombstones of their own timelines delete (with
    their ancestors, or their whole timeline); an id of no checkpoint (a run's) is not."""
    e = catalog.engine
    tids = {r[0] for chunk in _chunks(ids, 500) for r in e.query(
        "SELECT DISTINCT timeline_id FROM {s}checkpoints WHERE id{in}",
        (catalog.dialect.list_param(chunk),))}
    return {cid for cid, _ in _dead(catalog, tids).checkpoints} & set(ids) if tids else set()


def garbage(catalog: SqlCatalog, timeline_ids: Iterable[str] | None = None,
            extra: Sequence[Tombstone] = ()) -> Garbage:
    """``Catalog.garbage``: reads the tombstoned timelines' trees (ids and parents only)
    and the output references of what they delete, not the whole store."""
    dead = _dead(catalog, timeline_ids, extra)
    return Garbage(dead.timelines, frozenset(cid for cid, _ in dead.checkpoints), dead.tags,
                   _freed_outputs(catalog, dead))


# -- purge ----------------------------------------------------------------------------------


def purge(catalog: SqlCatalog) -> int:
    """Remove what tombstones delete and outputs nothing refers to; how many rows went."""
    e = catalog.engine
    in_ = catalog.dialect.list_param
    dead = _dead(catalog, None)
    removed = 0
    freed: set[str] = set()
    for batch in _chunks([cid for cid, _ in dead.checkpoints]):
        try:
            removed += _purge_checkpoints(catalog, batch, freed, dead.causes)
        except Dangling:  # a child saved under one of them meanwhile (see Dangling):
            continue  # it is dead too, and the next purge takes both
    for batch in _chunks(sorted(dead.tags)):
        with e.transaction() as tx:
            n, tags, went = _delete_tags(tx, catalog, "id{in}", (in_(batch),))
            removed += n
            _subtract(tx, catalog, tags)
            _remember(tx, catalog, [("tag", gid, tid, dead.causes[gid])
                                    for gid, tid, _ in went])
    for tid in sorted(dead.timelines):
        with e.transaction() as tx:
            left = tx.query(e.sql("SELECT count(*) FROM {s}checkpoints WHERE timeline_id = ?"),
                            (tid,))
            if left[0][0]:
                continue  # a checkpoint arrived meanwhile: the next purge takes it
            rows = tx.query(e.sql("DELETE FROM {s}timelines WHERE id = ? RETURNING digest"),
                            (tid,))
            if not rows:
                continue  # gone already (another purge)
            n, tags, went = _delete_tags(tx, catalog, "timeline_id = ?", (tid,))
            removed += n
            tx.execute(e.sql("DELETE FROM {s}tree_sums WHERE timeline_id = ?"), (tid,))
            _subtract(tx, catalog, [("", rows[0][0]), *tags])
            _remember(tx, catalog, [("tag", gid, tid, dead.causes[tid]) for gid, _, _ in went])
            removed += 1
    return removed + _purge_outputs(catalog, freed)


def _purge_checkpoints(catalog: SqlCatalog, batch: list[str], freed: set[str],
                       causes: Mapping[str, str]) -> int:
    """Delete one batch of dead checkpoints with their output references and tags, in one
    transaction, remembering their ids; how many rows went (freed: the outputs they
    referred to, added)."""
    e = catalog.engine
    in_ = catalog.dialect.list_param
    with e.transaction() as tx:
        # the rows this purge deleted, not the rows it saw: a concurrent purge
        # (PostgreSQL, read committed) may delete them first, and each deleted row
        # must leave tree_sums once
        rows = tx.query(e.sql("DELETE FROM {s}checkpoints WHERE id{in} "
                              "RETURNING id, timeline_id, digest, stage_hashes"),
                        (in_(batch),))
        if not rows:
            return 0
        ids = [r[0] for r in rows]
        refs = sorted({(h, r[0]) for r in rows for h in _json(r[3]).values()})
        # by key (hash, owner): every output a checkpoint added is in its stage_hashes
        tx.execute(e.sql("DELETE FROM {s}output_refs WHERE hash = ? AND owner = ?"),
                   refs, True)
        n, tags, went = _delete_tags(tx, catalog, "checkpoint_id{in}", (in_(ids),))
        _subtract(tx, catalog, [(r[1], r[2]) for r in rows] + tags)
        # a tag saved on one of them after the purge looked is deleted with it: its
        # checkpoint's cause is its own
        _remember(tx, catalog, [("checkpoint", r[0], r[1], causes[r[0]]) for r in rows]
                  + [("tag", gid, tid, causes.get(gid) or causes[cid])
                     for gid, tid, cid in went])
    freed.update(h for h, _ in refs)  # only once the transaction is committed
    return len(ids) + n


def _delete_tags(tx: Any, catalog: SqlCatalog, where: str, params: Sequence[Any]
                 ) -> tuple[int, list[tuple[str, int]], list[tuple[str, str, str]]]:
    """Delete the tags matching where: how many went, (sums key, digest) to take out of
    the sums, their timeline's and their name's (the rows this purge deleted: see the
    checkpoints above), and (id, timeline, checkpoint) of each."""
    rows = tx.query(catalog.engine.sql(f"DELETE FROM {{s}}tags WHERE {where} "
                                       "RETURNING timeline_id, name, digest, id, "
                                       "checkpoint_id"), params)
    return len(rows), [(key, int(d)) for tid, name, d, _, _ in rows
                       for key in (SUMS_OF["tag"] + tid, TAG_NAMES + name)], \
        [(gid, tid, cid) for tid, _, _, gid, cid in rows]


def _remember(tx: Any, catalog: SqlCatalog, rows: list[tuple[str, str, str, str]]) -> None:
    """Keep the ids of purged records (kind, id, timeline, the tombstone that deleted
    it) in ``purged``, in the transaction that deletes them (see the module docstring).
    A catalog below PURGED_IDS is never purged (a writable one is migrated)."""
    if not rows or catalog._version < PURGED_IDS:
        return
    tx.execute(catalog.engine.sql("INSERT INTO {s}purged (id, kind, timeline_id, "
                                  "tombstone_id) VALUES (?, ?, ?, ?) "
                                  "ON CONFLICT (id) DO NOTHING"),
               [(i, kind, tid, x) for kind, i, tid, x in sorted(rows, key=lambda r: r[1])],
               True)


def _json(value: Any) -> Any:
    """A JSON column's value (PostgreSQL's driver decodes jsonb itself)."""
    return value if isinstance(value, dict) else load_json(value)


def _deleted(rowcount: int) -> int:
    return max(0, rowcount)


def _subtract(tx: Any, catalog: SqlCatalog, rows: list[tuple[str, int]]) -> None:
    """Take rows (their tree_sums key, digest) out of tree_sums (XOR undoes XOR; the
    check sums every shard, so the shard they were counted in does not matter)."""
    if not rows:
        return
    e = catalog.engine
    sums: defaultdict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for tid, d in rows:
        acc = sums[(tid, 0)]
        acc[0] -= 1
        acc[1] ^= d
    tx.execute(e.sql(catalog._q["add_sums"]),
               [(t, s, n, x) for (t, s), (n, x) in sorted(sums.items())], True)


def _purge_outputs(catalog: SqlCatalog, freed: set[str]) -> int:
    e = catalog.engine
    in_ = catalog.dialect.list_param
    unused = (
        "SELECT hash FROM {s}outputs o WHERE hash{in} AND NOT EXISTS "
        "(SELECT 1 FROM {s}output_refs r WHERE r.hash = o.hash)"
    )
    orphans = [r[0] for r in e.query(
        "SELECT hash FROM {s}outputs o WHERE NOT EXISTS "
        "(SELECT 1 FROM {s}output_refs r WHERE r.hash = o.hash)")]
    marked = {r[0] for r in e.query("SELECT hash FROM {s}unreferenced")}
    doomed = sorted(h for h in orphans if h in freed or h in marked)
    removed = 0
    for batch in _chunks(doomed):
        try:
            with e.transaction() as tx:
                gone = [r[0] for r in tx.query(e.sql(unused), (in_(batch),))]
                if gone:
                    tx.execute(e.sql("DELETE FROM {s}outputs WHERE hash{in}"), (in_(gone),))
        except InvalidInputError:  # a save referred to one meanwhile (foreign key)
            continue
        removed += len(gone)  # counted once committed: the commit is where that fails
    keep = sorted(set(orphans) - set(doomed))
    with e.transaction() as tx:
        tx.execute(e.sql("DELETE FROM {s}unreferenced"))
        if keep:
            tx.execute(e.sql("INSERT INTO {s}unreferenced (hash) VALUES (?)"),
                       [(h,) for h in keep], True)
    return removed


# -- storage problems -----------------------------------------------------------------------


def storage_problems(catalog: SqlCatalog) -> list[tuple[str, str]]:
    """(where, what) for every damaged row, output and sum, and what the engine's own
    check finds. Reads everything once; never raises for damage."""
    e = catalog.engine
    where = e.describe()
    problems = [(where, f"integrity check: {p}") for p in e.integrity_problems()]
    sums: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for kind, codec in catalog.codecs.items():
        extra = ", timeline_id" if kind != "timeline" else ""
        query = (f"SELECT {codec.read}{extra} FROM {{s}}{codec.table} WHERE id > ? "
                 "ORDER BY id LIMIT 2000")
        try:
            for row in _pages(e, query):
                _check_row(problems, catalog, kind, row, bool(extra), sums)
        except LocalckptError as exc:
            problems.append((f"{where} table {codec.table}", f"cannot be read: {exc}"))
    try:
        stored = e.query("SELECT timeline_id, n, x FROM {s}tree_sums")
    except LocalckptError as exc:
        problems.append((f"{where} table tree_sums", f"cannot be read: {exc}"))
        stored = []
    totals: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for tid, n, x in stored:
        totals[tid][0] += int(n)
        totals[tid][1] ^= int(x)
    for tid in sorted(set(sums) | set(totals)):
        have, want = sums.get(tid, [0, 0]), totals.get(tid, [0, 0])
        if have != want:
            what = "the timelines table" if tid == "" else f"the tree of timeline {tid}"
            for kind, prefix in SUMS_OF.items():
                if tid.startswith(prefix):
                    what = f"the {kind}s of timeline {tid[len(prefix):]}"
            if tid.startswith(TAG_NAMES):
                what = f"the tags named {tid[len(TAG_NAMES):]!r}"
            problems.append((f"{where} tree_sums {tid or 'timelines'}",
                             f"{what} holds {have[0]} rows where its sums say {want[0]} (or "
                             "their digests differ): a row is missing, extra or damaged"))
    if catalog._version >= PURGED_IDS:
        try:
            _check_purged(problems, catalog)
        except LocalckptError as exc:
            problems.append((f"{where} table purged", f"cannot be read: {exc}"))
    try:
        for h, data in _pages(e, "SELECT hash, data FROM {s}outputs WHERE hash > ? "
                                 "ORDER BY hash LIMIT 64"):
            _check_output(problems, where, h, data)
    except LocalckptError as exc:
        problems.append((f"{where} table outputs", f"cannot be read: {exc}"))
    return problems


#: purged ids stored again as a record of their kind, and purged ids whose tombstone
#: their timeline does not hold
_PURGED_BACK = (
    "SELECT p.id, p.kind FROM {s}purged p JOIN {s}checkpoints c ON c.id = p.id "
    "WHERE p.kind = 'checkpoint' UNION ALL "
    "SELECT p.id, p.kind FROM {s}purged p JOIN {s}tags g ON g.id = p.id WHERE p.kind = 'tag'")
_PURGED_UNEXPLAINED = (
    "SELECT p.id, p.kind, p.timeline_id, p.tombstone_id FROM {s}purged p WHERE NOT EXISTS "
    "(SELECT 1 FROM {s}tombstones x WHERE x.id = p.tombstone_id AND "
    "x.timeline_id = p.timeline_id)")


def _check_purged(problems: list[tuple[str, str]], catalog: SqlCatalog) -> None:
    """The ids gc purged (table ``purged``) are stored as no record of their kind (a
    deleted record never comes back), and each names a tombstone of its timeline."""
    e = catalog.engine
    where = e.describe()
    for rid, kind in sorted(e.query(_PURGED_BACK)):
        problems.append((f"{where} purged row {rid}", f"{kind} {rid} was purged by gc but "
                         f"is stored again: a deleted {kind} came back"))
    for rid, kind, tid, xid in sorted(e.query(_PURGED_UNEXPLAINED)):
        problems.append((f"{where} purged row {rid}", f"{kind} {rid}, purged from timeline "
                         f"{tid}, names tombstone {xid}, which that timeline does not hold"))


def _check_row(problems: list[tuple[str, str]], catalog: SqlCatalog, kind: str,
               row: tuple[Any, ...], extra: bool, sums: dict[str, list[int]]) -> None:
    codec = catalog.codecs[kind]
    where = catalog.engine.describe()
    data = row[:-1] if extra else row
    try:
        validate(codec.record(data, None, where))
    except LocalckptError as exc:
        problems.append((f"{where} {codec.table} row {row[0]}", str(exc)))
        return
    # the timeline_id is read after the row
    keys = ["" if kind == "timeline" else SUMS_OF.get(kind, "") + row[-1]]
    if kind == "tag" and catalog._name_sums:
        keys.append(TAG_NAMES + data[codec.column("name")])
    for key in keys:
        acc = sums[key]
        acc[0] += 1
        acc[1] ^= data[-1]


def _pages(e: Any, query: str) -> Iterable[tuple[Any, ...]]:
    """Every row of a keyset-paged query (first column the key), a page at a time."""
    last = ""
    while True:
        rows = e.query(query, (last,))
        yield from rows
        if not rows:
            return
        last = rows[-1][0]


def _check_output(problems: list[tuple[str, str]], where: str, h: str, data: Any) -> None:
    place = f"{where} outputs row {h}"
    data = bytes(data) if data is not None else b""
    if content_hash(data) != h:
        problems.append((place, "its bytes do not hash to its key (damaged)"))
        return
    try:
        load_json(data)
    except ValueError as exc:
        problems.append((place, f"is not valid JSON: {exc}"))
