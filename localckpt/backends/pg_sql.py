"""Every SQL statement of the PostgreSQL catalog, rendered once per schema.

Values are always parameters. Column lists come from the row codec (``pg_rows``), which
derives them from ``schema.FIELDS``. A commit is one statement whose text depends only
on its shape (see :func:`shape`), so each shape is built once and prepared by psycopg.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg import sql

from .pg_rows import CODECS
from .pg_schema import CONFLICT_SQLSTATE

__all__ = ["MISSING_SQLSTATE", "Queries", "Shape", "commit_params", "shape"]

#: SQLSTATE of a commit whose checkpoints refer to outputs neither it nor the store holds.
MISSING_SQLSTATE = "LC410"

#: Rows per kind as 0, 1 or 2 (many): outputs, timelines, checkpoints; then 1 when the
#: batch refers to outputs it does not carry that must be checked (see Queries.commit).
Shape = tuple[int, int, int, int]

_T, _C = CODECS["timeline"], CODECS["checkpoint"]


def shape(outputs: list[Any], timelines: list[Any], checkpoints: list[Any],
          guard: list[str]) -> Shape:
    a, b, c = (min(len(rows), 2) for rows in (outputs, timelines, checkpoints))
    return a, b, c, int(bool(guard))


def commit_params(outputs: list[Any], timelines: list[Any], checkpoints: list[Any],
                  guard: list[str]) -> list[Any]:
    """Parameters in statement order (see _rows_sql for the rows of each kind)."""
    params = _row_params(outputs)
    if guard:
        params.append(guard)
    return params + _row_params(timelines) + _row_params(checkpoints)


def _row_params(rows: list[Any]) -> list[Any]:
    """One row: its values; many: one array per column (what unnest() reads)."""
    if len(rows) == 1:
        return list(rows[0])
    if rows:
        return [[row[i] for row in rows] for i in range(len(rows[0]))]
    return []


def _rows_sql(types: str, cols: str, n: int, where: str = "") -> str:
    """A SELECT of n rows (1: scalar parameters; 2: many, as one array per column)."""
    if n == 1:
        values = ", ".join(f"%b::{t}" for t in types.split())
        return f"SELECT * FROM (VALUES ({values})) AS x({cols}){where}"
    arrays = ", ".join(f"%b::{t}[]" for t in types.split())
    return f"SELECT * FROM unnest({arrays}) AS x({cols}){where}"


def _ctes(outputs: int, guard: int) -> list[str]:
    """Insert the outputs (content-addressed: an existing hash is simply skipped), and
    the guard: fail if an output the checkpoints refer to, but the batch lacks, is not
    stored (a gc may have removed it since the caller looked; see purge_deleted)."""
    ctes = []
    if outputs:
        ctes.append(
            "o AS (INSERT INTO {s}.outputs (hash, data) "
            f"{_rows_sql('text bytea', 'hash, data', outputs)}"
            " ON CONFLICT (hash) DO NOTHING)"
        )
    if guard:
        ctes.append(
            f"g AS (SELECT {{s}}.fail('{MISSING_SQLSTATE}', string_agg(h, ', ' ORDER BY h))"
            " FROM unnest(%b::text[]) AS h"
            " WHERE NOT EXISTS (SELECT 1 FROM {s}.outputs p WHERE p.hash = h)"
            " HAVING count(*) > 0)"
        )
    return ctes


def _guarded(guard: int) -> str:
    return " WHERE NOT EXISTS (SELECT 1 FROM g)" if guard else ""


def _insert_sql(outputs: int, timelines: int, checkpoints: int, guard: int) -> str:
    """_commit_sql for the usual case, every id new: plain INSERTs (parameters in the
    same order) that fail with unique_violation, writing nothing, if one is stored."""
    ctes = _ctes(outputs, guard)
    inserts = [
        f"INSERT INTO {{s}}.{codec.table} ({codec.columns}) "
        f"{_rows_sql(codec.types, codec.columns, n, _guarded(guard))}"
        for codec, n in ((_T, timelines), (_C, checkpoints))
        if n
    ]
    ctes += [f"t{i} AS ({text})" for i, text in enumerate(inserts[:-1])]
    return (f"WITH {', '.join(ctes)} " if ctes else "") + inserts[-1]


def _commit_sql(outputs: int, timelines: int, checkpoints: int, guard: int) -> str:
    """One statement that writes a batch, all or nothing, and returns what it inserted.

    Data-modifying CTEs insert everything; the final SELECT sees the tables as they were
    before the statement, so a row neither inserted nor visible was inserted by a
    concurrent transaction meanwhile: fail with 40001 and the retry will compare it. A
    visible row with other columns fails with CONFLICT_SQLSTATE and commit() decides with
    ==. Kinds the batch lacks are left out, so the usual save is a small statement.
    """
    ctes, bad, inserted = _ctes(outputs, guard), [], ["SELECT NULL, NULL FROM failed"]
    for kind, alias, codec, n in (("timeline", "t", _T, timelines),
                                  ("checkpoint", "c", _C, checkpoints)):
        if not n:
            continue
        cols = codec.columns
        ctes.append(f"{alias}i AS ({_rows_sql(codec.types, cols, n, _guarded(guard))})")
        ctes.append(
            f"{alias}n AS (INSERT INTO {{s}}.{codec.table} ({cols}) SELECT * FROM {alias}i"
            " ON CONFLICT (id) DO NOTHING RETURNING id)"
        )
        bad.append(
            f"SELECT '{kind}' AS kind, i.id, {alias}.id IS NULL AS raced"
            f" FROM {alias}i i LEFT JOIN {{s}}.{codec.table} {alias} ON {alias}.id = i.id"
            f" WHERE i.id NOT IN (SELECT id FROM {alias}n)"
            f" AND ({alias}.id IS NULL OR {_differs(cols, alias, 'i')})"
        )
        inserted.append(f"SELECT '{alias}', id FROM {alias}n")
    if not bad:  # outputs only: content-addressed, nothing can conflict
        return f"WITH {', '.join(ctes)} SELECT NULL, NULL WHERE false"
    ctes.append(f"bad AS ({' UNION ALL '.join(bad)})")
    ctes.append(
        "failed AS (SELECT CASE WHEN bool_and(raced)"
        " THEN {s}.fail('40001', 'rows inserted concurrently; retry')"
        f" ELSE {{s}}.fail('{CONFLICT_SQLSTATE}', string_agg(kind || ' ' || id, ', '"
        " ORDER BY kind, id) FILTER (WHERE NOT raced)"
        " || ' already stored with other content') END"
        " FROM bad HAVING count(*) > 0)"
    )
    # What was inserted, as (kind, id); the failed branch raises before any of it is used.
    return f"WITH {', '.join(ctes)} {' UNION ALL '.join(inserted)}"


def _prefixed(cols: str, alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in cols.split(","))


def _differs(cols: str, table: str, given: str) -> str:
    rest = ", ".join(c.strip() for c in cols.split(",")[1:])  # every column but id
    return f"({_prefixed(rest, table)}) IS DISTINCT FROM ({_prefixed(rest, given)})"


class Queries:
    """Every statement, rendered once per schema (values are always parameters)."""

    def __init__(self, s: sql.Identifier) -> None:
        def q(text: str) -> str:
            return sql.SQL(text).format(s=s).as_string(None)

        self._q = q
        self._commits: dict[Shape, str] = {}
        self._inserts: dict[Shape, str] = {}
        tl, ck = _T.read, _C.read
        self.all_timelines = q(f"SELECT {tl} FROM {{s}}.timelines ORDER BY id")
        self.timelines = q(
            f"SELECT {tl} FROM {{s}}.timelines WHERE id = ANY(%s::text[]) ORDER BY id")
        self.insert_marks, self.marks_by_id, self.all_marks, self.marks_of = {}, {}, {}, {}
        for kind in ("tombstone", "tag"):
            codec = CODECS[kind]
            table, cols = codec.table, codec.columns
            arrays = ", ".join(f"%s::{t}[]" for t in codec.types.split())
            self.insert_marks[kind] = q(
                f"INSERT INTO {{s}}.{table} ({cols}) SELECT * FROM unnest({arrays})"
                " ON CONFLICT (id) DO NOTHING RETURNING id"
            )
            self.marks_by_id[kind] = q(
                f"SELECT {cols} FROM {{s}}.{table} WHERE id = ANY(%s::text[])")
            self.all_marks[kind] = q(f"SELECT {cols} FROM {{s}}.{table} ORDER BY id")
            self.marks_of[kind] = q(
                f"SELECT {cols} FROM {{s}}.{table} WHERE timeline_id = ANY(%s::text[]) "
                "ORDER BY id"
            )
        self.deleted = q(
            "SELECT DISTINCT target_id FROM {s}.tombstones WHERE target_id = ANY(%s::text[])"
        )
        self.find_timelines = q(
            "SELECT id FROM {s}.timelines WHERE id LIKE %s ORDER BY id LIMIT %s")
        self.find_checkpoints = q(
            "SELECT id FROM {s}.checkpoints WHERE id LIKE %s ORDER BY id LIMIT %s")
        self.checkpoints = q(
            f"SELECT {ck} FROM {{s}}.checkpoints WHERE id = ANY(%s::text[]) ORDER BY id")
        self.children = q(f"SELECT {ck} FROM {{s}}.checkpoints WHERE parent_id = %s ORDER BY id")
        self.tree = q(f"SELECT {ck} FROM {{s}}.checkpoints WHERE timeline_id = %s ORDER BY id")
        # The depth bound only stops a damaged (cyclic) chain; lineage() reports it.
        cols = _C.columns
        self.lineage = q(
            f"WITH RECURSIVE chain AS ("
            f" SELECT {cols}, 0 AS depth FROM {{s}}.checkpoints WHERE id = %s"
            f" UNION ALL"
            f" SELECT {_prefixed(cols, 'p')}, chain.depth + 1 FROM {{s}}.checkpoints p"
            f" JOIN chain ON p.id = chain.parent_id WHERE chain.depth < 1000000"
            f") SELECT {ck} FROM chain ORDER BY depth DESC"
        )
        # Read with binary=True: bytea arrives as the stored bytes, with no hex step.
        self.outputs = q(
            "SELECT hash, data, value, canonical FROM {s}.outputs WHERE hash = ANY(%s::text[])"
        )
        self.all_outputs = q("SELECT hash, data, value, canonical FROM {s}.outputs")
        self.missing_outputs = q(
            "SELECT h FROM unnest(%s::text[]) AS h "
            "WHERE NOT EXISTS (SELECT 1 FROM {s}.outputs o WHERE o.hash = h)"
        )
        self.all_records = {
            kind: q(f"SELECT {c.read} FROM {{s}}.{c.table}") for kind, c in CODECS.items()}

    def render(self, text: str) -> str:
        return self._q(text)

    def commit(self, shape: Shape) -> str:
        """The commit statement for a batch of this shape (see shape())."""
        return self._built(self._commits, shape, _commit_sql)

    def insert(self, shape: Shape) -> str | None:
        """Plain INSERTs for a small batch of this shape; None: use commit() directly."""
        _, timelines, checkpoints, _ = shape
        if timelines > 1 or checkpoints > 1 or not (timelines or checkpoints):
            return None  # big batches (sync) often hold stored ids; outputs never conflict
        return self._built(self._inserts, shape, _insert_sql)

    def _built(self, cache: dict[Shape, str], shape: Shape,
               build: Callable[[int, int, int, int], str]) -> str:
        """Statement text for shape, built once (a dict write is atomic: threads may race)."""
        text = cache.get(shape)
        if text is None:
            text = cache.setdefault(shape, self._q(build(*shape)))
        return text
