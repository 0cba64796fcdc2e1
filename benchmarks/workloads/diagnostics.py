"""Diagnostics that explain other rows: the cost of a durable append on this filesystem."""

from __future__ import annotations

import os
import time
from typing import Any

from ..model import Context, Sample, Subject, Workload

__all__ = ["FSYNC_PATTERN", "PG_SAVE_PARTS", "fdatasync_reference"]

RECORD = 2300  # about one save_stage_output commit of a 2 KB output
APPEND = "append + fdatasync (a growing file)"
OVERWRITE = "overwrite zero-filled space + fdatasync (SQLite WAL reuse)"


def _writes(ctx: Context, n: int, preallocate: bool) -> Sample:
    path = ctx.root / f"fsync-{time.monotonic_ns()}"
    flags = os.O_RDWR | os.O_CREAT | (0 if preallocate else os.O_APPEND)
    fd = os.open(path, flags, 0o644)
    try:
        if preallocate:  # not timed: done once per file, as a reused WAL is
            os.write(fd, b"\0" * (n * RECORD))
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        record = b"r" * RECORD
        t0 = time.perf_counter()
        for _ in range(n):
            os.write(fd, record)
            os.fdatasync(fd)
        return Sample(time.perf_counter() - t0, ops=n, units=n)
    finally:
        os.close(fd)
        os.unlink(path)


def fdatasync_reference(ctx: Context, n: int) -> Subject:
    """n appends of one save-sized record, each followed by fdatasync: the floor of a
    durable save on this disk, measured in the same run as the saves."""
    return Subject("floor: one append and fdatasync per save", lambda: _writes(ctx, n, False),
                   role="reference")


def _build(ctx: Context, n: int) -> list[Subject]:
    return [
        Subject(APPEND, lambda: _writes(ctx, n, False), role="reference"),
        Subject(OVERWRITE, lambda: _writes(ctx, n, True), role="reference"),
    ]


FSYNC_PATTERN = Workload(
    name="fsync_pattern",
    title="Diagnostic: fdatasync after an append vs after an overwrite of preallocated space",
    unit="writes", size_name="2.3 KB records", cost_label="s per write",
    sizes=(100, 1000, 3000), quick_sizes=(10, 30), reps=3,
    build=_build, baseline=OVERWRITE,
    notes=("Same file system as the stores (the run's temp dir). An append changes the "
           "file size, so fdatasync must also commit file-system metadata (an ext4 journal "
           "commit); overwriting already-allocated blocks flushes data only. SQLite's WAL "
           "(the embedded catalog, and SqliteSaver) appends until a checkpoint, then "
           "overwrites the file it reuses.",),
)


# -- what one PostgreSQL save costs on the server ------------------------------------------

_PG_DDL = (
    "CREATE TABLE {s}.parent (id text PRIMARY KEY)",
    "CREATE TABLE {s}.plain (id text PRIMARY KEY, p text, j jsonb)",
    "CREATE TABLE {s}.fk (id text PRIMARY KEY, p text REFERENCES {s}.parent (id) "
    "DEFERRABLE INITIALLY DEFERRED, j jsonb)",
    "CREATE TABLE {s}.out_jsonb (hash text PRIMARY KEY, value jsonb)",
    "CREATE TABLE {s}.out_bytea (hash text PRIMARY KEY, data bytea)",
    "INSERT INTO {s}.parent VALUES ('root')",
)
_STAGE_HASHES = '{"' + '": "0123456789abcdef0123456789abcdef", "'.join(
    f"stage{i}" for i in range(10)) + '": "x"}'


def _pg_parts(ctx: Context, n: int) -> list[Subject]:
    pg = [c for c in ctx.configs if c.catalog == "postgres"]
    if not pg:
        ctx.note("pg_save_parts: no PostgreSQL configuration in this run")
        return []
    import json as _json

    import psycopg

    from ..data import make_output

    schema = f"diag_{time.monotonic_ns() % 10**9}"
    con = psycopg.connect(pg[0].services.postgres_dsn(), autocommit=True)
    con.execute(f"CREATE SCHEMA {schema}")
    for ddl in _PG_DDL:
        con.execute(ddl.format(s=schema))
    ctx.cache[f"closer:diag:{schema}"] = con
    output = _json.dumps(make_output("diag", 2048), separators=(",", ":"))
    data = output.encode()

    def ops(text: str, params: Any) -> Sample:
        stamp = time.monotonic_ns()
        t0 = time.perf_counter()
        for i in range(n):
            con.execute(text.format(s=schema), params(f"{stamp}-{i}"))
        return Sample(time.perf_counter() - t0, ops=n, units=n)

    return [
        Subject("round trip (SELECT 1)", lambda: ops("SELECT 1", lambda k: None),
                role="reference"),
        Subject("checkpoint-shaped row, 10-stage jsonb (commit = WAL flush)", lambda: ops(
            "INSERT INTO {s}.plain VALUES (%s, 'root', %s::jsonb)",
            lambda k: [k, _STAGE_HASHES]), role="reference"),
        Subject("same row with a deferred foreign key", lambda: ops(
            "INSERT INTO {s}.fk VALUES (%s, 'root', %s::jsonb)",
            lambda k: [k, _STAGE_HASHES]), role="reference"),
        Subject("2 KB output as jsonb", lambda: ops(
            "INSERT INTO {s}.out_jsonb VALUES (%s, %s::jsonb)", lambda k: [k, output]),
                role="reference"),
        Subject("2 KB output as bytea", lambda: ops(
            "INSERT INTO {s}.out_bytea VALUES (%s, %b::bytea)", lambda k: [k, data]),
                role="reference"),
        Subject("row + deferred FK + bytea output, one statement", lambda: ops(
            "WITH o AS (INSERT INTO {s}.out_bytea VALUES (%s, %b::bytea)) "
            "INSERT INTO {s}.fk VALUES (%s, 'root', %s::jsonb)",
            lambda k: [k, data, k, _STAGE_HASHES]), role="reference"),
    ]


PG_SAVE_PARTS = Workload(
    name="pg_save_parts",
    title="Diagnostic: what one PostgreSQL save costs, statement by statement",
    unit="statements", size_name="statements", cost_label="s per statement",
    sizes=(300,), quick_sizes=(20,), reps=3, build=_pg_parts,
    baseline="round trip (SELECT 1)",
    notes=("Autocommit statements on the run's durable cluster (each INSERT commits: one "
           "WAL flush); the save statement of localckpt is the last row's shape plus the "
           "checks of pg_sql. Compare with save_chain's postgres rows.",),
)
