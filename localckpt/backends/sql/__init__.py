"""The one relational catalog, on SQLite (embedded), PostgreSQL (production) and DuckDB.

``catalog.SqlCatalog`` implements the Catalog interface once; ``schema`` holds its
tables and migrations, ``rows`` its row codec and digests, ``dialects`` what differs
between engines in SQL text, and ``sqlite``, ``postgres``, ``duckdb`` the engines
(connections, transactions, error translation). Each engine module imports its driver,
so only the engine a store uses is imported.
"""

from __future__ import annotations

from typing import Any

from .catalog import SqlCatalog

__all__ = ["SqlCatalog", "duckdb_catalog", "memory_catalog", "postgres_catalog",
           "sqlite_catalog"]


def sqlite_catalog(path: str, *, create: bool = True, fsync: bool = True,
                   timeout: float = 10.0, read_only: bool = False) -> SqlCatalog:
    """The catalog in an SQLite file (created, with its tables, when create is True)."""
    from .schema import _check_not_newer, migrate, version_of
    from .sqlite import SqliteEngine

    engine = SqliteEngine(path, fsync=fsync, timeout=timeout, read_only=read_only)
    try:
        engine.opening = True  # damage met now: no command can open it (translate)
        if read_only:  # nothing to migrate, but the same first read and check: damage
            # met there stops every command, and a newer catalog is refused, as a
            # writer's open refuses them
            _check_not_newer(version_of(engine), engine.describe())
        else:
            migrate(engine, create=create)
        engine.opening = False
        return SqlCatalog(engine)
    except BaseException:
        engine.close()
        raise


def memory_catalog() -> SqlCatalog:
    """A fresh catalog in an in-memory SQLite database of this process."""
    return sqlite_catalog(":memory:", fsync=False)


def postgres_catalog(url: str, *, create: bool = True, **options: Any) -> SqlCatalog:
    """The catalog in a schema of a PostgreSQL database (see ``postgres.parse_url``)."""
    from .pg_legacy import EXTRAS, upgrade
    from .postgres import PostgresEngine, parse_url
    from .schema import migrate

    dsn, from_url = parse_url(url)
    engine = PostgresEngine(dsn, **{**from_url, **options})
    try:
        migrate(engine, create=create, extras=EXTRAS, legacy=lambda tx, v: upgrade(tx, engine, v))
        return SqlCatalog(engine)
    except BaseException:
        engine.close()
        raise


def duckdb_catalog(path: str, *, create: bool = True, read_only: bool = False) -> SqlCatalog:
    """The catalog in a DuckDB file, for one process at a time."""
    from .duckdb import DuckdbEngine
    from .schema import migrate

    engine = DuckdbEngine(path, read_only=read_only)
    try:
        if not read_only:
            migrate(engine, create=create)
        return SqlCatalog(engine)
    except BaseException:
        engine.close()
        raise
