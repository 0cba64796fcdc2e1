"""Helpers of the SQL catalog tests: records built by hand, catalogs opened on each
engine, raw SQL that bypasses the catalog (to read what it stored, or to damage it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from localckpt.backends.sql import SqlCatalog, duckdb_catalog, postgres_catalog, sqlite_catalog
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.ids import new_id
from localckpt.types import Checkpoint, Timeline

__all__ = ["ENGINES", "Opener", "child", "make_output", "make_timeline", "opener", "raw",
           "rows", "schema_url"]

ENGINES = ["sqlite", "postgres", "duckdb"]

#: opens a catalog on one database; called again, opens the same database again
Opener = Callable[..., SqlCatalog]


def schema_url(dsn: str, schema: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


def opener(engine: str, request: pytest.FixtureRequest, tmp: Path, name: str = "catalog"
           ) -> Opener:
    """A function that opens a catalog of engine on one fresh database (each call opens
    it again, e.g. as another process would); every catalog it opened is closed, and
    the PostgreSQL schema dropped, at teardown."""
    opened: list[SqlCatalog] = []
    if engine == "sqlite":
        path = str(tmp / f"{name}.sqlite")

        def open_(**kw: Any) -> SqlCatalog:
            return sqlite_catalog(path, **kw)
    elif engine == "duckdb":
        path = str(tmp / f"{name}.duckdb")

        def open_(**kw: Any) -> SqlCatalog:
            return duckdb_catalog(path, **kw)
    elif engine == "postgres":
        from conftest import _drop_schema

        dsn = request.getfixturevalue("pg_dsn")
        schema = f"t_{uuid.uuid4().hex[:16]}"
        request.addfinalizer(lambda: _drop_schema(dsn, schema))

        def open_(**kw: Any) -> SqlCatalog:
            return postgres_catalog(schema_url(dsn, schema), **kw)
    else:
        raise ValueError(engine)

    def tracked(**kw: Any) -> SqlCatalog:
        cat = open_(**kw)
        opened.append(cat)
        return cat

    def close_all() -> None:
        for cat in opened:
            cat.close()

    request.addfinalizer(close_all)
    return tracked


# -- raw SQL ----------------------------------------------------------------------------------


def rows(cat: SqlCatalog, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of a statement written like the catalog's ({s} before tables, ? placeholders)."""
    return cat.engine.query(statement, params)


def raw(cat: SqlCatalog, statement: str, params: Sequence[Any] = ()) -> None:
    """Run a statement (the catalog's notation) in a transaction of its own."""
    with cat.engine.transaction() as tx:
        tx.execute(cat.engine.sql(statement), params)


# -- records ----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def make_timeline(frames: int = 3) -> tuple[Timeline, Checkpoint]:
    tid, root_id, now = new_id(), new_id(), _now()
    timeline = Timeline(tid, "clip.mp4", "default", 2.0, None, root_id, frames, now)
    root = Checkpoint(root_id, tid, None, {}, {}, {"frames_extracted": frames}, False, "", now)
    return timeline, root


def make_output(value: Any) -> tuple[str, bytes]:
    data = canonical_bytes(value)
    return content_hash(data), data


def child(parent: Checkpoint, stage: str, output_hash: str, **changes: Any) -> Checkpoint:
    return attrs.evolve(
        parent,
        id=new_id(),
        parent_id=parent.id,
        stage=stage,
        stage_hashes={**parent.stage_hashes, stage: output_hash},
        created_at=_now(),
        **changes,
    )
