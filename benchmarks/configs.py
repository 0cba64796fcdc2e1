"""Store configurations: catalog x object store, and the servers they need.

- sqlite+local   the embedded store: a directory with catalog.sqlite (WAL) and objects/
- sqlite+s3      the embedded SQLite catalog in a tmp dir, objects on a local S3 server (moto)
- duckdb+local   the same relational catalog in a DuckDB file (duckdb:///.../catalog.duckdb),
                 objects in a tmp dir; one process at a time (``StoreConfig.multiprocess``)
- postgres+local PostgreSQL catalog (throwaway cluster, durable settings), objects in a tmp dir
- postgres+s3    PostgreSQL catalog, objects on the local S3 server

Servers come from the project's ``backends/`` tooling, are started once per run and torn
down at the end. Outside CI a server that cannot start (or a backend module that has not
landed) drops its configurations with a visible note; with CI=true it is an error.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import localckpt
from localckpt.testing.ci import in_ci

__all__ = ["ALL_CONFIGS", "RequestCounter", "Services", "StoreConfig", "available_configs"]

ALL_CONFIGS = ("sqlite+local", "sqlite+s3", "duckdb+local", "postgres+local", "postgres+s3")
#: The configuration of the embedded default (the "laptop" side of sync, the CLI rows).
EMBEDDED = "sqlite+local"
BUCKET = "bench"
_TAG = re.compile(r"[^a-z0-9_]")


class Services:
    """The servers of one run, started on first use and stopped by close()."""

    def __init__(self) -> None:
        self._pg: Any = None
        self._s3: Any = None
        self._private: list[Any] = []
        self.errors: dict[str, str] = {}

    def postgres_dsn(self) -> str:
        """The run's shared cluster (PostgreSQL's default max_connections=100)."""
        if self._pg is None:
            self._pg = self.private_postgres(100)
        return str(self._pg.dsn)

    def private_postgres(self, max_connections: int) -> Any:
        """A cluster of its own (started now, stopped by close()): for workloads that
        count connections, so that nothing else of the run holds any."""
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(f"psycopg cannot be imported ({exc}): pip install "
                               "'localckpt[postgres]'") from None
        from backends.postgres import ThrowawayPostgres

        # durable=True: fsync and synchronous_commit on, as in production.
        pg = ThrowawayPostgres(durable=True, max_connections=max_connections).start()
        self._private.append(pg)
        return pg

    def s3(self) -> Any:
        if self._s3 is None:
            from backends.s3 import LocalS3

            s3 = LocalS3().start()
            try:
                s3.make_bucket(BUCKET)
            except BaseException:
                s3.stop()
                raise
            self._s3 = s3
        return self._s3

    def close(self) -> None:
        for server in (*self._private, self._s3):
            if server is not None:
                try:
                    server.stop()
                except Exception:
                    pass
        self._pg = self._s3 = None
        self._private = []


@dataclass
class StoreConfig:
    """One catalog + object store combination; opens fresh, isolated stores by tag."""

    name: str
    root: Path
    services: Services
    tags: set[str] = field(default_factory=set)

    @property
    def catalog(self) -> str:
        """The catalog's engine: sqlite, duckdb or postgres."""
        return self.name.split("+")[0]

    @property
    def multiprocess(self) -> bool:
        """Whether several processes may open the catalog at once (DuckDB: one process
        holds the file; workloads that spawn writer or probe processes leave it out)."""
        return self.catalog != "duckdb"

    @property
    def objects_kind(self) -> str:
        return self.name.split("+")[1]

    def new_tag(self, hint: str) -> str:
        """A unique, identifier-safe name for a fresh store."""
        base = _TAG.sub("_", hint.lower())[:40]
        tag, n = base, 1
        while tag in self.tags:
            n += 1
            tag = f"{base}_{n}"
        self.tags.add(tag)
        return tag

    def schema(self, tag: str) -> str:
        """The PostgreSQL schema of store `tag` (distinct per configuration)."""
        return f"b_{self.objects_kind}_{tag}"

    def open_args(self, tag: str, **options: Any) -> dict[str, Any]:
        """JSON-serialisable arguments of localckpt.open (subprocesses reopen with them)."""
        args: dict[str, Any] = {"options": dict(options)}
        if self.objects_kind == "s3":
            s3 = self.services.s3()
            args["objects"] = f"s3://{BUCKET}/{self.name}/{tag}"
            args["storage_options"] = {**s3.storage_options, "skip_instance_cache": True}
        else:
            args["objects"] = str(self.root / self.name / tag / "objects")
        if self.catalog == "sqlite":
            args["url"] = str(self.store_dir(tag))
        elif self.catalog == "duckdb":
            folder = self.root / self.name / tag
            folder.mkdir(parents=True, exist_ok=True)  # DuckDB makes the file, not its folder
            args["url"] = f"duckdb://{folder / 'catalog.duckdb'}"
        else:
            args["url"] = self.services.postgres_dsn()
            args["options"].setdefault("schema", self.schema(tag))
        return args

    def store_dir(self, tag: str) -> Path:
        """The embedded store's directory (sqlite+*)."""
        return self.root / self.name / tag / "store"

    def open(self, tag: str, **options: Any) -> localckpt.Store:
        return open_from_args(self.open_args(tag, **options))

    def objects(self, tag: str) -> localckpt.objects.Objects:
        """An object store of the same kind, for the seed layout's one-object-per-frame peer."""
        from localckpt.objects import Objects

        args = self.open_args(tag)
        return Objects.from_url(args["objects"] + "-seed", args.get("storage_options"))

    def catalog_bytes(self, tag: str) -> int:
        """Bytes the catalog of store `tag` occupies: catalog.sqlite with its WAL, the
        DuckDB file with its WAL, or the relations of the PostgreSQL schema."""
        if self.catalog == "sqlite":
            return dir_bytes(self.store_dir(tag))
        if self.catalog == "duckdb":
            return sum(p.stat().st_size for p in (self.root / self.name / tag).glob(
                "catalog.duckdb*") if p.is_file())
        import psycopg

        with psycopg.connect(self.services.postgres_dsn(), autocommit=True) as con:
            row = con.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'm')",
                (self.schema(tag),),
            ).fetchone()
        return int(row[0]) if row else 0

    def drop(self, tag: str) -> None:
        """Free the disk space of store `tag` (local parts; server data stays until teardown)."""
        shutil.rmtree(self.root / self.name / tag, ignore_errors=True)


def open_from_args(args: dict[str, Any]) -> localckpt.Store:
    return localckpt.open(
        args["url"], objects=args.get("objects"),
        storage_options=args.get("storage_options") or {}, **args.get("options", {}),
     create=True)


def dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                pass
    return total


def available_configs(
    names: list[str], root: Path, services: Services, note: Callable[[str], None]
) -> list[StoreConfig]:
    """The named configurations whose servers start; the others are noted (errors in CI)."""
    found = []
    ci = in_ci()  # the one rule (localckpt.testing.ci)
    for name in names:
        if name not in ALL_CONFIGS:
            raise SystemExit(f"unknown configuration {name!r}; known: {', '.join(ALL_CONFIGS)}")
        config = StoreConfig(name, root, services)
        try:
            if config.catalog == "postgres":
                services.postgres_dsn()
            if config.objects_kind == "s3":
                services.s3()
        except Exception as exc:
            if ci:
                raise
            note(f"configuration {name} skipped: {type(exc).__name__}: {exc}")
            continue
        found.append(config)
    return found


class RequestCounter:
    """Counts HTTP requests a store's s3fs client sends (botocore before-send events)."""

    def __init__(self, store: localckpt.Store) -> None:
        self.count = 0
        fs = store.objects.fs
        if "s3" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            raise TypeError("not an S3 object store")
        fs.connect()
        fs.s3.meta.events.register("before-send.s3", self._seen)

    def _seen(self, **_: Any) -> None:
        self.count += 1
