"""PostgreSQL schema of the catalog: an append-only list of versioned migrations.

Each migration runs once, in order, inside one transaction that holds an advisory lock
on the schema name, so processes opening a new database at the same moment do not race.
``{s}`` in a statement is the catalog's schema, quoted as an identifier. Never edit a
released migration: append a new one.
"""

from __future__ import annotations

import hashlib
import re

import attrs
import psycopg
from psycopg import sql

from ..errors import InvalidInputError, NotFoundError, SchemaVersionError

__all__ = [
    "CONFLICT_SQLSTATE",
    "LATEST_VERSION",
    "MIGRATIONS",
    "Migration",
    "SchemaVersionError",
    "migrate",
    "schema_identifier",
    "schema_version",
]

#: SQLSTATE of a commit that found an id stored with other content.
CONFLICT_SQLSTATE = "LC409"

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@attrs.frozen
class Migration:
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


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
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
    Migration(
        2,
        "stage_outputs view: one row per (checkpoint, stage) with its output value",
        (
            _stage_outputs_view("CREATE", "o.value"),
        ),
    ),
)

MIGRATIONS += (
    Migration(
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

MIGRATIONS += (
    Migration(
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

MIGRATIONS += (
    Migration(
        5,
        "unreferenced: outputs the last purge found unreferenced (the next one deletes them)",
        ("""CREATE TABLE {s}.unreferenced (hash text COLLATE "C" PRIMARY KEY)""",),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
assert [m.version for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))


def schema_identifier(name: str) -> sql.Identifier:
    """Validate a schema name (lowercase identifier, at most 63 characters) for SQL use."""
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        raise InvalidInputError(
            f"schema name {name!r} is not allowed: use 1-63 lowercase letters, digits and "
            "underscores, starting with a letter or underscore"
        )
    return sql.Identifier(name)


def _render(statement: str, schema: str) -> sql.Composed:
    return sql.SQL(statement).format(s=schema_identifier(schema))


def schema_version(conn: psycopg.Connection, schema: str) -> int:
    """The schema's applied version; 0 when the schema or its version table does not exist."""
    exists = conn.execute(
        "SELECT to_regclass(format('%%I.schema_migrations', %s::text)) IS NOT NULL", [schema]
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute(
        _render("SELECT coalesce(max(version), 0) FROM {s}.schema_migrations", schema)
    ).fetchone()
    return int(row[0]) if row else 0


def _check_not_newer(version: int, schema: str, where: str) -> None:
    if version > LATEST_VERSION:
        raise SchemaVersionError(
            f"the localckpt catalog in schema {schema!r} at {where} is at schema version "
            f"{version}, but this localckpt knows versions up to {LATEST_VERSION}; upgrade "
            "localckpt (pip install -U localckpt) to open it"
        )


def _check_encoding(conn: psycopg.Connection, where: str) -> None:
    """Outputs hold any Unicode text: a LATIN1 or SQL_ASCII database would fail later."""
    row = conn.execute("SELECT current_setting('server_encoding')").fetchone()
    if row and row[0] != "UTF8":
        raise InvalidInputError(
            f"the database at {where} uses encoding {row[0]}; localckpt needs a UTF8 database "
            "(CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)"
        )


def _lock_key(schema: str) -> int:
    digest = hashlib.sha256(f"localckpt-schema:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def migrate(
    conn: psycopg.Connection, schema: str, *, where: str = "", target: int | None = None,
    create: bool = True,
) -> int:
    """Bring schema up to target (default: latest) and return its version.

    A schema already at the target costs two small reads and needs no CREATE privilege.
    Raises SchemaVersionError when the database is newer than this code, and
    NotFoundError when there is no catalog yet and create is False.
    """
    target = LATEST_VERSION if target is None else target
    _check_encoding(conn, where)
    current = schema_version(conn, schema)
    _check_not_newer(current, schema, where)
    if current == 0 and not create:
        raise NotFoundError(
            f"no localckpt catalog in schema {schema!r} at {where}; create one with "
            "`localckpt --store URL init`, or open it with create=True"
        )
    if current >= target:
        return current
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(schema)])
        conn.execute(_render("CREATE SCHEMA IF NOT EXISTS {s}", schema))
        conn.execute(
            _render(
                """CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
                    version integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )""",
                schema,
            )
        )
        current = schema_version(conn, schema)  # another process may have migrated meanwhile
        _check_not_newer(current, schema, where)
        for migration in MIGRATIONS[current:target]:
            for statement in migration.statements:
                conn.execute(_render(statement, schema))
            conn.execute(
                _render(
                    "INSERT INTO {s}.schema_migrations (version, description) VALUES (%s, %s)",
                    schema,
                ),
                [migration.version, migration.description],
            )
        return max(current, target)
