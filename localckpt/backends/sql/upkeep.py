"""Catalog upkeep: checking every stored row, and removing what tombstones delete.

Why a purge never stops writers: it works in small batches, each its own short
transaction, and takes no table lock. Deleted rows are found from the tombstone list
(never by rewriting a table), and go deepest first, so that every checkpoint still
stored keeps its whole parent chain: a descendant of a pruned checkpoint is still seen
as pruned while the purge runs, whatever batch it is in.

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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ...canonical import content_hash, load_json
from ...errors import InvalidInputError, LocalckptError
from ...schema import validate

if TYPE_CHECKING:
    from .catalog import SqlCatalog

__all__ = ["purge", "storage_problems"]

BATCH = 256  # rows per purge transaction: short enough never to hold up a save


def _xor(values: Iterable[int]) -> int:
    acc = 0
    for v in values:
        acc ^= v
    return acc


def _chunks(items: list[Any], size: int = BATCH) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# -- purge ----------------------------------------------------------------------------------


def _dead(catalog: SqlCatalog) -> tuple[list[tuple[str, str]], set[str], set[str]]:
    """What the tombstones delete: (checkpoint id, timeline id) deepest first, timeline
    ids, tag ids. A tombstone only touches records of its own timeline, of its kind."""
    e = catalog.engine
    tombstones = catalog.tombstones(None)
    by_timeline: defaultdict[str, list[Any]] = defaultdict(list)
    for t in tombstones:
        by_timeline[t.timeline_id].append(t)
    dead_checkpoints: list[tuple[int, str, str]] = []
    dead_timelines: set[str] = set()
    dead_tags = {t.target_id for t in tombstones if t.kind == "tag"}
    for tid, marks in by_timeline.items():
        rows = e.query("SELECT id, parent_id FROM {s}checkpoints WHERE timeline_id = ?", (tid,))
        if not rows and not any(t.kind == "timeline" for t in marks):
            continue
        kids: defaultdict[str | None, list[str]] = defaultdict(list)
        for cid, pid in rows:
            kids[pid].append(cid)
        if any(t.kind == "timeline" and t.target_id == tid for t in marks):
            tops = [cid for cid, pid in rows if pid is None]
            tops += [cid for cid, pid in rows if pid is not None and pid not in
                     {r[0] for r in rows}]
            dead_timelines.add(tid)
        else:
            tops = [t.target_id for t in marks if t.kind == "checkpoint"]
        known = {cid for cid, _ in rows}
        stack = [(c, 0) for c in tops if c in known]
        seen: set[str] = set()
        while stack:
            cid, depth = stack.pop()
            if cid in seen:
                continue
            seen.add(cid)
            dead_checkpoints.append((depth, cid, tid))
            stack.extend((k, depth + 1) for k in kids.get(cid, ()))
    dead_checkpoints.sort(key=lambda d: -d[0])
    return [(cid, tid) for _, cid, tid in dead_checkpoints], dead_timelines, dead_tags


def purge(catalog: SqlCatalog) -> int:
    """Remove what tombstones delete and outputs nothing refers to; how many rows went."""
    e = catalog.engine
    in_ = catalog.dialect.list_param
    checkpoints, timelines, tags = _dead(catalog)
    removed = 0
    freed: set[str] = set()
    dead_ids = [cid for cid, _ in checkpoints]
    for batch in _chunks(dead_ids):
        with e.transaction() as tx:
            # the rows this purge deleted, not the rows it saw: a concurrent purge
            # (PostgreSQL, read committed) may delete them first, and each deleted row
            # must leave tree_sums once
            rows = tx.query(e.sql("DELETE FROM {s}checkpoints WHERE id{in} "
                                  "RETURNING id, timeline_id, digest"), (in_(batch),))
            if not rows:
                continue
            ids = [r[0] for r in rows]
            freed.update(r[0] for r in tx.query(e.sql(
                "SELECT hash FROM {s}output_refs WHERE owner{in}"), (in_(ids),)))
            tx.execute(e.sql("DELETE FROM {s}output_refs WHERE owner{in}"), (in_(ids),))
            removed += max(0, tx.execute(e.sql("DELETE FROM {s}tags WHERE checkpoint_id{in}"),
                                         (in_(ids),)))
            removed += len(ids)
            _subtract(tx, catalog, [(r[1], r[2]) for r in rows])
    for batch in _chunks(sorted(tags)):
        with e.transaction() as tx:
            removed += max(0, tx.execute(e.sql("DELETE FROM {s}tags WHERE id{in}"),
                                         (in_(batch),)))
    for tid in sorted(timelines):
        with e.transaction() as tx:
            left = tx.query(e.sql("SELECT count(*) FROM {s}checkpoints WHERE timeline_id = ?"),
                            (tid,))
            if left[0][0]:
                continue  # a checkpoint arrived meanwhile: the next purge takes it
            rows = tx.query(e.sql("DELETE FROM {s}timelines WHERE id = ? RETURNING digest"),
                            (tid,))
            if not rows:
                continue  # gone already (another purge)
            removed += max(0, tx.execute(e.sql("DELETE FROM {s}tags WHERE timeline_id = ?"),
                                         (tid,)))
            tx.execute(e.sql("DELETE FROM {s}tree_sums WHERE timeline_id = ?"), (tid,))
            _subtract(tx, catalog, [("", rows[0][0])])
            removed += 1
    return removed + _purge_outputs(catalog, freed)


def _subtract(tx: Any, catalog: SqlCatalog, rows: list[tuple[str, int]]) -> None:
    """Take rows (timeline id or '', digest) out of tree_sums (XOR undoes XOR; the
    check sums every shard, so the shard they were counted in does not matter)."""
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
        extra = ", timeline_id" if kind == "checkpoint" else ""
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
            problems.append((f"{where} tree_sums {tid or 'timelines'}",
                             f"{what} holds {have[0]} rows where its sums say {want[0]} (or "
                             "their digests differ): a row is missing, extra or damaged"))
    try:
        for h, data in _pages(e, "SELECT hash, data FROM {s}outputs WHERE hash > ? "
                                 "ORDER BY hash LIMIT 64"):
            _check_output(problems, where, h, data)
    except LocalckptError as exc:
        problems.append((f"{where} table outputs", f"cannot be read: {exc}"))
    return problems


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
    if kind in ("timeline", "checkpoint"):
        acc = sums["" if kind == "timeline" else row[-1]]
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
