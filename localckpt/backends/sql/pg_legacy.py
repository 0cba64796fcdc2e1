"""PostgreSQL catalogs written before the engines shared one catalog, and what the
shared catalog adds on PostgreSQL alone.

Versions 1-5 are the PostgreSQL schema of localckpt 0.1 (kept as released: a database
at any of them upgrades in order); :func:`upgrade` then brings it to the shared base
(``schema.BASE_VERSION``): digests and tails for every row (computed here, in Python,
once), outputs as exact bytes only, ``output_refs`` and ``tree_sums`` filled from the
rows. :data:`EXTRAS` are the PostgreSQL-only objects of a new catalog: ``fail()``,
which lets a guard abort a transaction on the server, and the ``stage_outputs`` view
for SQL users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from psycopg import sql

from .pg_json import format_1_bytes

if TYPE_CHECKING:
    from .engine import Tx
    from .postgres import PostgresEngine

__all__ = ["EXTRAS", "upgrade"]


@attrs.frozen
class _Legacy:
    version: int
    description: str
    statements: tuple[str, ...]


def _stage_outputs_view(create: str, value: str) -> str:
    """The stage_outputs view: one row per (checkpoint, stage) with its output value."""
    return (
        f"{create} VIEW {{s}}.stage_outputs AS\n"
        "            SELECT c.id AS checkpoint_id, c.timeline_id, s.key AS stage, "
        "s.value AS hash,\n"
        f"                   {value}\n"
        "            FROM {s}.checkpoints c\n"
        "            CROSS JOIN LATERAL jsonb_each_text(c.stage_hashes) AS s\n"
        "            JOIN {s}.outputs o ON o.hash = s.value"
    )


LEGACY: tuple[_Legacy, ...] = (
    _Legacy(
        1,
        "timelines, checkpoints, outputs",
        (
            """CREATE TABLE {s}.timelines (
                id text COLLATE "C" PRIMARY KEY,
                source_video text NOT NULL,
                profile_name text NOT NULL,
                fps double precision NOT NULL,
                source_asset_id text,
                root_checkpoint_id text COLLATE "C" NOT NULL,
                frame_count bigint NOT NULL,
                created_at timestamptz NOT NULL,
                exact text
            )""",
            # `exact` (records) and `canonical` (outputs) hold, as canonical JSON text, the
            # few values the typed columns would change: NUL, or numbers JSONB normalises
            # (1e16 -> 10000000000000000, -0.0 -> 0.0). NULL almost always. See pg_json.
            # FKs are deferred so a batch (or a sync) may list children before parents.
            """CREATE TABLE {s}.checkpoints (
                id text COLLATE "C" PRIMARY KEY,
                timeline_id text COLLATE "C" NOT NULL REFERENCES {s}.timelines (id)
                    DEFERRABLE INITIALLY DEFERRED,
                parent_id text COLLATE "C" REFERENCES {s}.checkpoints (id)
                    DEFERRABLE INITIALLY DEFERRED,
                stage text NOT NULL,
                stage_hashes jsonb NOT NULL,
                config_overrides jsonb NOT NULL,
                stats jsonb NOT NULL,
                is_scenario boolean NOT NULL,
                scenario_label text NOT NULL,
                created_at timestamptz NOT NULL,
                merged_from text COLLATE "C",
                exact text
            )""",
            "CREATE INDEX checkpoints_timeline_id ON {s}.checkpoints (timeline_id)",
            "CREATE INDEX checkpoints_parent_id ON {s}.checkpoints (parent_id)",
            """CREATE TABLE {s}.outputs (
                hash text COLLATE "C" PRIMARY KEY,
                value jsonb NOT NULL,
                canonical text
            )""",
            # Lets a single INSERT statement abort itself with a chosen SQLSTATE.
            """CREATE FUNCTION {s}.fail(code text, message text) RETURNS boolean
                LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message;
            END
            $$""",
        ),
    ),
    _Legacy(
        2,
        "stage_outputs view: one row per (checkpoint, stage) with its output value",
        (
            _stage_outputs_view("CREATE", "o.value"),
        ),
    ),
)

LEGACY += (
    _Legacy(
        3,
        "tombstones and tags; timelines.source_info and index_hash",
        (
            "ALTER TABLE {s}.timelines ADD COLUMN source_info jsonb NOT NULL DEFAULT '{{}}', "
            "ADD COLUMN index_hash text",
            """CREATE TABLE {s}.tombstones (
                id text COLLATE "C" PRIMARY KEY,
                target_id text COLLATE "C" NOT NULL,
                kind text NOT NULL,
                timeline_id text COLLATE "C" NOT NULL,
                created_at timestamptz NOT NULL
            )""",
            "CREATE INDEX tombstones_target_id ON {s}.tombstones (target_id)",
            "CREATE INDEX tombstones_timeline_id ON {s}.tombstones (timeline_id)",
            """CREATE TABLE {s}.tags (
                id text COLLATE "C" PRIMARY KEY,
                name text NOT NULL,
                checkpoint_id text COLLATE "C" NOT NULL,
                timeline_id text COLLATE "C" NOT NULL,
                created_at timestamptz NOT NULL
            )""",
            "CREATE INDEX tags_timeline_id ON {s}.tags (timeline_id)",
            "CREATE INDEX tags_name ON {s}.tags (name)",
        ),
    ),
)

LEGACY += (
    _Legacy(
        4,
        "outputs as exact bytes (bytea, canonical JSON format 2); stage_outputs view parses them",
        (
            # New outputs keep their canonical bytes as they are (no JSONB parse on write,
            # no re-encoding on read); rows written before keep value/canonical and read
            # as before (pg_rows.stored_bytes).
            "ALTER TABLE {s}.outputs ALTER COLUMN value DROP NOT NULL, ADD COLUMN data bytea, "
            "ADD CONSTRAINT outputs_stored CHECK (data IS NOT NULL OR value IS NOT NULL)",
            # lz4 writes a multi-MB output ~3x faster than the default pglz (measured
            # here); a server built without lz4 keeps the default.
            """DO $$ BEGIN
                ALTER TABLE {s}.outputs ALTER COLUMN data SET COMPRESSION lz4;
            EXCEPTION WHEN OTHERS THEN NULL;
            END $$""",
            # For SQL users: the JSONB value of stored bytes (NUL shown as U+FFFD, as in
            # every other column; numbers as JSONB normalises them).
            """CREATE FUNCTION {s}.output_value(data bytea) RETURNS jsonb
                LANGUAGE plpgsql IMMUTABLE AS $$
            BEGIN
                RETURN convert_from(data, 'UTF8')::jsonb;
            EXCEPTION WHEN untranslatable_character THEN
                RETURN replace(convert_from(data, 'UTF8'), '\\u0000', '\\ufffd')::jsonb;
            END
            $$""",
            _stage_outputs_view(
                "CREATE OR REPLACE", "coalesce(o.value, {s}.output_value(o.data)) AS value"),
        ),
    ),
)

LEGACY += (
    _Legacy(
        5,
        "unreferenced: outputs the last purge found unreferenced (the next one deletes them)",
        ("""CREATE TABLE {s}.unreferenced (hash text COLLATE "C" PRIMARY KEY)""",),
    ),
)


_FAIL = """CREATE FUNCTION {s}fail(code text, message text) RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message;
END
$$"""
_OUTPUT_VALUE = """CREATE FUNCTION {s}output_value(data bytea) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN convert_from(data, 'UTF8')::jsonb;
EXCEPTION WHEN untranslatable_character THEN
    RETURN replace(convert_from(data, 'UTF8'), '\\u0000', '\\ufffd')::jsonb;
END
$$"""
_VIEW = """CREATE VIEW {s}stage_outputs AS
    SELECT c.id AS checkpoint_id, c.timeline_id, s.key AS stage, s.value AS hash,
           {s}output_value(o.data) AS value
    FROM {s}checkpoints c
    CROSS JOIN LATERAL jsonb_each_text(c.stage_hashes) AS s
    JOIN {s}outputs o ON o.hash = s.value"""

#: PostgreSQL-only objects of a new catalog (rendered like the shared statements).
EXTRAS: tuple[str, ...] = (_FAIL, _OUTPUT_VALUE, _VIEW)

_TO_BASE: tuple[str, ...] = (
    "ALTER TABLE {s}timelines ADD COLUMN tail text COLLATE \"C\", ADD COLUMN digest bigint",
    "ALTER TABLE {s}checkpoints ADD COLUMN tail text COLLATE \"C\", ADD COLUMN digest bigint",
    "ALTER TABLE {s}tombstones ADD COLUMN digest bigint",
    "ALTER TABLE {s}tags ADD COLUMN digest bigint",
    "UPDATE {s}timelines SET tail = right(replace(id, '-', ''), 12)",
    "UPDATE {s}checkpoints SET tail = right(replace(id, '-', ''), 12)",
)
_AFTER_DIGESTS: tuple[str, ...] = (
    "ALTER TABLE {s}timelines ALTER COLUMN tail SET NOT NULL, ALTER COLUMN digest SET NOT NULL",
    "ALTER TABLE {s}checkpoints ALTER COLUMN tail SET NOT NULL, "
    "ALTER COLUMN digest SET NOT NULL",
    "ALTER TABLE {s}tombstones ALTER COLUMN digest SET NOT NULL",
    "ALTER TABLE {s}tags ALTER COLUMN digest SET NOT NULL",
    "CREATE INDEX timelines_tail ON {s}timelines (tail)",
    "CREATE INDEX checkpoints_tail ON {s}checkpoints (tail)",
    "DROP VIEW {s}stage_outputs",
    "ALTER TABLE {s}outputs DROP CONSTRAINT outputs_stored, DROP COLUMN value, "
    "DROP COLUMN canonical, ALTER COLUMN data SET NOT NULL",
    _VIEW,
    "CREATE TABLE {s}output_refs (hash text COLLATE \"C\" NOT NULL, owner text COLLATE \"C\" "
    "NOT NULL, PRIMARY KEY (hash, owner), FOREIGN KEY (hash) REFERENCES {s}outputs (hash) "
    "DEFERRABLE INITIALLY DEFERRED)",
    "CREATE INDEX output_refs_owner ON {s}output_refs (owner)",
    # what each checkpoint adds: the outputs its parent does not have
    "INSERT INTO {s}output_refs (hash, owner) SELECT DISTINCT s.value, c.id "
    "FROM {s}checkpoints c CROSS JOIN LATERAL jsonb_each_text(c.stage_hashes) s "
    "LEFT JOIN {s}checkpoints p ON p.id = c.parent_id "
    "WHERE (p.id IS NULL OR (p.stage_hashes ->> s.key) IS DISTINCT FROM s.value) "
    "AND EXISTS (SELECT 1 FROM {s}outputs o WHERE o.hash = s.value)",
    "CREATE TABLE {s}tree_sums (timeline_id text COLLATE \"C\" NOT NULL, shard bigint NOT NULL, "
    "n bigint NOT NULL, x bigint NOT NULL, PRIMARY KEY (timeline_id, shard))",
    "INSERT INTO {s}tree_sums SELECT timeline_id, 0, count(*), bit_xor(digest) "
    "FROM {s}checkpoints GROUP BY timeline_id",
    "INSERT INTO {s}tree_sums SELECT '', 0, count(*), bit_xor(digest) FROM {s}timelines "
    "HAVING count(*) > 0",
)
_BATCH = 1000


def upgrade(tx: Tx, engine: PostgresEngine, version: int) -> int:
    """Bring a catalog at a legacy version (1-5) to the shared base; return it."""
    from .schema import BASE_VERSION

    record = engine.sql("INSERT INTO {s}schema_migrations (version, description, applied_at) "
                        "VALUES (?, ?, now())")
    # the foreign keys are deferred: without this, the UPDATEs below leave trigger events
    # pending, and PostgreSQL refuses the ALTER TABLEs after them
    tx.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for legacy in LEGACY[version:]:
        for statement in legacy.statements:
            tx.execute(sql.SQL(statement).format(s=sql.Identifier(engine.schema))
                       .as_string(None))
        tx.execute(record, (legacy.version, legacy.description))
    for statement in _TO_BASE:
        tx.execute(engine.sql(statement))
    _digests(tx, engine)
    _output_bytes(tx, engine)
    for statement in _AFTER_DIGESTS:
        tx.execute(engine.sql(statement))
    tx.execute(record, (BASE_VERSION, "the relational catalog: digests, output_refs, tree_sums"))
    return BASE_VERSION


def _digests(tx: Tx, engine: PostgresEngine) -> None:
    """Every row's digest, computed from its record as the shared catalog reads it."""
    from .rows import codecs, digest

    for kind, codec in codecs(engine.dialect).items():
        select = engine.sql(f"SELECT {codec.read} FROM {{s}}{codec.table} WHERE id > ? "
                            "ORDER BY id LIMIT ?")
        update = engine.sql(f"UPDATE {{s}}{codec.table} SET digest = ? WHERE id = ?")
        last = ""
        while rows := tx.query(select, (last, _BATCH)):
            values = [(digest(kind, codec.record(row, None, engine.describe(), check=False)),
                       row[0]) for row in rows]
            tx.execute(update, values, many=True)
            last = rows[-1][0]


def _output_bytes(tx: Tx, engine: PostgresEngine) -> None:
    """Outputs stored as JSONB before version 4 get their exact canonical bytes."""
    select = engine.sql("SELECT hash, value::text, canonical FROM {s}outputs "
                        "WHERE data IS NULL AND hash > ? ORDER BY hash LIMIT ?")
    update = engine.sql("UPDATE {s}outputs SET data = ? WHERE hash = ?")
    last = ""
    while rows := tx.query(select, (last, _BATCH)):
        tx.execute(update, [(_exact(value, canonical), h) for h, value, canonical in rows],
                   many=True)
        last = rows[-1][0]


def _exact(value: Any, canonical: str | None) -> bytes:
    import json

    if canonical is not None:
        return canonical.encode("utf-8")
    return format_1_bytes(json.loads(value))
