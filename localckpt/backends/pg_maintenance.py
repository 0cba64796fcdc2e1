"""PostgreSQL catalog upkeep: checking every stored row, and removing what is deleted.

Why gc is safe while others save: ``purge_deleted`` decides and deletes in one
transaction holding ``SHARE ROW EXCLUSIVE`` locks on the tables that commits insert
into, which excludes every commit (each INSERT takes ``ROW EXCLUSIVE``) until it
commits, while reads go on. A commit that waited then runs on a snapshot taken after
the purge, so:

- an output it carries is inserted again if the purge removed it (``ON CONFLICT DO
  NOTHING`` sees no row);
- an output it refers to through its parent exists as long as the parent does (a
  purge keeps every output a remaining checkpoint refers to), and a purged parent fails
  the commit's foreign key check: nothing is written;
- any other output it refers to without carrying it (a sync that found it stored, a
  merge taking theirs) is checked by the commit's guard (``pg_sql``), which fails the
  commit, writing nothing, if the output is gone.

An output that only deleted checkpoints used goes at once; one that no checkpoint ever
used (a sync commits outputs before the rows that refer to them) goes only once two
purges in a row found it unreferenced (the ``unreferenced`` table), as on the memory
backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from ..canonical import content_hash, load_json
from ..errors import LocalckptError
from ..schema import validate
from .pg_rows import CODECS, stored_bytes

__all__ = ["PURGE", "purge", "storage_problems"]

_BATCH = 64  # rows per fetch of the server-side cursor (outputs may be MBs each)

#: The purge, in order, inside one transaction ({s}: the schema), each with whether the
#: rows it returns count as removed.
PURGE: tuple[tuple[str, bool], ...] = (
    ("LOCK TABLE {s}.outputs, {s}.timelines, {s}.checkpoints, {s}.tags, {s}.unreferenced"
     " IN SHARE ROW EXCLUSIVE MODE", False),
    # a checkpoint is gone when a tombstone targets it, its timeline or an ancestor
    ("""CREATE TEMPORARY TABLE localckpt_dead ON COMMIT DROP AS
    WITH RECURSIVE dead(id) AS (
        SELECT c.id FROM {s}.checkpoints c
        WHERE EXISTS (SELECT 1 FROM {s}.tombstones t
                      WHERE t.target_id = c.id OR t.target_id = c.timeline_id)
        UNION
        SELECT c.id FROM {s}.checkpoints c JOIN dead d ON c.parent_id = d.id
    ) SELECT id FROM dead""", False),
    # outputs the deleted checkpoints used: removed now if nothing else uses them
    ("""CREATE TEMPORARY TABLE localckpt_freed ON COMMIT DROP AS
    SELECT DISTINCT s.value COLLATE "C" AS hash FROM {s}.checkpoints c
    CROSS JOIN LATERAL jsonb_each_text(c.stage_hashes) s
    WHERE c.id IN (SELECT id FROM localckpt_dead)""", False),
    ("""DELETE FROM {s}.tags g WHERE
        EXISTS (SELECT 1 FROM {s}.tombstones t
                WHERE t.target_id = g.id OR t.target_id = g.timeline_id)
        OR g.checkpoint_id IN (SELECT id FROM localckpt_dead)
    RETURNING id""", True),
    ("DELETE FROM {s}.checkpoints WHERE id IN (SELECT id FROM localckpt_dead) RETURNING id",
     True),
    ("""DELETE FROM {s}.timelines l
    WHERE EXISTS (SELECT 1 FROM {s}.tombstones t WHERE t.target_id = l.id)
    RETURNING id""", True),
    ("""CREATE TEMPORARY TABLE localckpt_orphans ON COMMIT DROP AS
    SELECT o.hash FROM {s}.outputs o WHERE NOT EXISTS (
        SELECT 1 FROM {s}.checkpoints c CROSS JOIN LATERAL jsonb_each_text(c.stage_hashes) s
        WHERE s.value COLLATE "C" = o.hash)""", False),
    # an output no checkpoint ever used here (a sync stages outputs before its rows, a
    # crashed one leaves them) goes only when the previous purge found it unreferenced too
    ("""DELETE FROM {s}.outputs WHERE hash IN (SELECT hash FROM localckpt_orphans)
        AND (hash IN (SELECT hash FROM localckpt_freed)
             OR hash IN (SELECT hash FROM {s}.unreferenced))
    RETURNING hash""", True),
    ("DELETE FROM {s}.unreferenced", False),
    ("""INSERT INTO {s}.unreferenced SELECT o.hash FROM localckpt_orphans o
    WHERE EXISTS (SELECT 1 FROM {s}.outputs p WHERE p.hash = o.hash)""", False),
)


def purge(conn: psycopg.Connection, statements: list[tuple[str, bool]]) -> int:
    """Run the rendered PURGE statements in one transaction; how many rows went."""
    removed = 0
    with conn.transaction():
        for text, counts in statements:
            cur = conn.execute(text)
            if counts:
                removed += len(cur.fetchall())
    return removed


def _rows(conn: psycopg.Connection, query: str) -> Iterator[tuple[Any, ...]]:
    """Every row of query through a server-side cursor (bounded memory); binary, so
    bytea arrives as stored."""
    with conn.transaction(), conn.cursor(name="localckpt_check", binary=True) as cur:
        cur.itersize = _BATCH
        cur.execute(query)
        yield from cur


def storage_problems(
    conn: psycopg.Connection, all_records: dict[str, str], all_outputs: str,
    where: Callable[[str, str], str],
) -> list[tuple[str, str]]:
    """(where, what) for every record row that does not parse or validate and every
    output row whose bytes do not hash to its key or are not JSON."""
    problems: list[tuple[str, str]] = []
    for kind, query in all_records.items():
        codec = CODECS[kind]
        for row in _rows(conn, query):
            try:
                validate(codec.record(row, fetch=_no_outputs if kind == "checkpoint" else None))
            except (LocalckptError, TypeError, ValueError) as exc:
                problems.append((where(codec.table, str(row[0])), f"does not parse: {exc}"))
    for h, data, value, canonical in _rows(conn, all_outputs):
        place = where("outputs", h)
        try:
            stored = stored_bytes(h, data, value, canonical)
        except LocalckptError as exc:
            problems.append((place, str(exc)))
            continue
        if content_hash(stored) != h:
            problems.append((place, "its bytes do not hash to its key (damaged)"))
            continue
        try:
            load_json(stored)
        except ValueError as exc:
            problems.append((place, f"is not valid JSON: {exc}"))
    return problems


def _no_outputs(hashes: list[str]) -> dict[str, Any]:
    return {}
