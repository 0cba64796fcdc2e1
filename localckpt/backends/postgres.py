"""PostgreSQL catalog: timelines, checkpoints and stage outputs in one schema.

Many processes and threads may write at once: every commit is one statement (one round
trip, one implicit transaction), rows are inserted in key order so concurrent batches
never deadlock, and retrying a batch after a lost connection or a race is harmless
because commit is idempotent.

Stage outputs are JSONB (queryable with SQL: see the ``stage_outputs`` view) and come
back as canonical bytes (see ``pg_json``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ..canonical import canonical_bytes, content_hash
from ..catalog import Batch, Catalog
from ..errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptDataError,
    InvalidInputError,
    LocalckptError,
)
from ..types import Checkpoint, LazyOutputs, Tag, Timeline, Tombstone
from . import pg_json
from .pg_cache import RowCache
from .pg_json import NUL
from .pg_schema import CONFLICT_SQLSTATE, SchemaVersionError, migrate, schema_identifier

__all__ = ["PostgresCatalog", "SchemaVersionError", "open_catalog"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRIES = 3  # deadlock / serialization failure / a pooled connection found dead
_QUICK_WAIT = 1.0  # seconds to wait for a pooled connection before asking the server
_TIMELINE_COLS = (
    "id, source_video, profile_name, fps, source_asset_id, root_checkpoint_id, frame_count, "
    "created_at, source_info, index_hash, exact"
)
_TIMELINE_READ = _TIMELINE_COLS.replace("source_info", "source_info::text")
_CHECKPOINT_COLS = (
    "id, timeline_id, parent_id, stage, stage_hashes, config_overrides, stats, is_scenario, "
    "scenario_label, created_at, merged_from, exact"
)
_TIMELINE_TYPES = "text text text float8 text text int8 timestamptz jsonb text text"
_MARK_COLS = {
    "tombstone": ("tombstones", "id, target_id, kind, timeline_id, created_at",
                  "text text text text timestamptz"),
    "tag": ("tags", "id, name, checkpoint_id, timeline_id, created_at",
            "text text text text timestamptz"),
}
_CHECKPOINT_TYPES = "text text text text jsonb jsonb jsonb bool text timestamptz text text"
# Reads take JSON columns as text (parsed per record, so rows stay immutable for the cache).
_CHECKPOINT_READ = (
    "id, timeline_id, parent_id, stage, stage_hashes::text, config_overrides::text, "
    "stats::text, is_scenario, scenario_label, created_at, merged_from, exact"
)
# User-given fields whose columns cannot hold every value (see pg_json).
_TIMELINE_TEXT = ("source_video", "profile_name", "source_asset_id")
_CHECKPOINT_TEXT = ("stage", "scenario_label")
_CHECKPOINT_JSON = ("stage_hashes", "config_overrides", "stats")
_OPTIONS = frozenset({"schema", "min_size", "max_size", "timeout", "create"})
_CACHED_TIMELINES = 256  # rows per catalog instance (see pg_cache)
_CACHED_CHECKPOINTS = 1024


def open_catalog(url: str, **options: Any) -> PostgresCatalog:
    """Open the catalog at a ``postgresql://`` URL (or libpq key=value string).

    Options: schema (default "localckpt"; also accepted as a ``?schema=`` URL parameter),
    min_size / max_size (connection pool), timeout (seconds to wait for a connection).
    """
    unknown = set(options) - _OPTIONS
    if unknown:
        raise InvalidInputError(
            f"unknown PostgreSQL catalog option(s) {sorted(unknown)}; known: {sorted(_OPTIONS)}"
        )
    url, schema = _pop_schema_param(url)
    if schema is not None:
        options.setdefault("schema", schema)
    return PostgresCatalog(url, **options)


class PostgresCatalog(Catalog):
    """Catalog rows in a PostgreSQL schema, through a small connection pool.

    The schema is created on first open and upgraded by ``pg_schema.MIGRATIONS``; a
    database written by a newer localckpt raises SchemaVersionError. Server failures
    raise BackendUnavailableError naming the server (never its password).
    """

    supports_multiprocess = True

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "localckpt",
        min_size: int = 1,
        max_size: int = 8,
        timeout: float = 5.0,
        create: bool = True,
    ) -> None:
        self.schema = schema
        ident = schema_identifier(schema)
        params = _parse_dsn(dsn)
        self._password = params.get("password") or None
        self._where = _where(params)
        self._dsn = dsn  # private: repr, describe() and errors use _where, never this
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            **{k: v for k, v in _CONNECT_DEFAULTS.items() if k not in params},
        }
        self._q = _Queries(ident)
        self._timeline_rows = RowCache(_CACHED_TIMELINES)
        self._checkpoint_rows = RowCache(_CACHED_CHECKPOINTS)
        self._pool = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs=self._connect_kwargs,
            timeout=timeout,
            open=False,
            name=f"localckpt {self._where}",
        )
        try:
            self._pool.open(wait=False)  # the first _call below reports a dead server quickly
            self._call(lambda conn: migrate(conn, schema, where=self._where, create=create))
        except BaseException:
            self._pool.close()
            raise

    # -- Catalog --------------------------------------------------------------------------

    def commit(self, batch: Batch) -> None:
        """One statement, so one round trip and one implicit transaction. Existing ids with
        equal content (==, as the value types define it) are skipped; other content raises
        ConflictError naming the ids, and nothing is written. The records the statement
        inserted are remembered (see pg_cache), so reading them back costs no round trip.

        A small batch (a save, a merge, a new timeline) first tries plain INSERTs, which
        skip comparing with stored rows; if an id is already stored, that statement fails
        as a whole and the comparing one runs instead, on the same connection."""
        while batch:
            outputs = _output_rows(batch.outputs)
            timelines = _unique(map(_timeline_row, batch.timelines), "timeline")
            checkpoints = _unique(map(_checkpoint_row, batch.checkpoints), "checkpoint")
            shape = _shape(outputs, timelines, checkpoints)
            params = _commit_params(outputs, timelines, checkpoints)
            write: Callable[[psycopg.Connection], set[tuple[str, str]] | None]
            if batch.tombstones or batch.tags:
                main = self._q.commit(shape) if any(shape) else None
                write = partial(self._write_marks, main, params, batch)
            else:
                write = partial(_write, self._q.insert(shape), self._q.commit(shape), params)
            try:
                inserted = self._call(write)
            except _MaybeConflict:
                batch = self._drop_equal(batch)
                continue
            # Only rows this statement inserted: a skipped equal record may differ in its
            # columns (-0.0 and 0.0) from the stored one, which reads must return.
            if inserted is None:  # every row was new
                self._timeline_rows.put(timelines)
                self._checkpoint_rows.put(checkpoints)
            else:
                self._timeline_rows.put(r for r in timelines if ("t", r[0]) in inserted)
                self._checkpoint_rows.put(r for r in checkpoints if ("c", r[0]) in inserted)
            return

    def _write_marks(
        self, main: str | None, params: list[Any], batch: Batch, conn: psycopg.Connection
    ) -> set[tuple[str, str]]:
        """A batch with tombstones or tags (prune, tag: rare): the usual statement and
        one insert per mark kind, in one transaction."""
        with conn.transaction():
            inserted = set(conn.execute(main, params).fetchall()) if main else set()
            for kind, records in (("tombstone", batch.tombstones), ("tag", batch.tags)):
                if not records:
                    continue
                rows = _unique((_mark_row(r) for r in records), kind)
                columns = [list(col) for col in zip(*rows, strict=True)]
                new = {r[0] for r in conn.execute(self._q.insert_marks[kind], columns)}
                old = [r for r in rows if r[0] not in new]
                if old:
                    stored = {
                        r[0]: r for r in conn.execute(
                            self._q.marks_by_id[kind], [[r[0] for r in old]]).fetchall()
                    }
                    differ = [r[0] for r in old if _mark_row_of(stored.get(r[0])) != r]
                    if differ:
                        raise ConflictError(
                            f"{kind} {differ[0]} already stored in {self.describe()} with "
                            "other content; nothing of this batch was written"
                        )
        return inserted

    def tombstones(self, timeline_ids: Iterable[str] | None = None) -> list[Tombstone]:
        rows = self._marks("tombstone", timeline_ids)
        return [Tombstone(r[0], r[1], r[2], r[3], r[4].astimezone(UTC)) for r in rows]

    def tags(self, timeline_ids: Iterable[str] | None = None) -> list[Tag]:
        rows = self._marks("tag", timeline_ids)
        return [Tag(r[0], r[1], r[2], r[3], r[4].astimezone(UTC)) for r in rows]

    def _marks(self, kind: str, timeline_ids: Iterable[str] | None) -> list[tuple[Any, ...]]:
        if timeline_ids is None:
            return self._fetch(self._q.all_marks[kind])
        wanted = _ids(timeline_ids)
        return self._fetch(self._q.marks_of[kind], [wanted]) if wanted else []

    def deleted(self, target_ids: Iterable[str]) -> set[str]:
        wanted = _ids(target_ids)
        if not wanted:
            return set()
        return {r[0] for r in self._fetch(self._q.deleted, [wanted])}

    def find_ids(self, kind: str, prefix: str, limit: int = 10) -> list[str]:
        if kind not in ("timeline", "checkpoint"):
            raise ValueError(f"find_ids kind must be 'timeline' or 'checkpoint', not {kind!r}")
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = self._q.find_timelines if kind == "timeline" else self._q.find_checkpoints
        return [r[0] for r in self._fetch(query, [pattern, int(limit)])]

    def _drop_equal(self, batch: Batch) -> Batch:
        """The statement refused the batch because stored columns differ; decide with ==.

        Columns can differ for Python-equal records (-0.0 and 0.0, 1e16 and 10**16), so
        records equal to the stored ones are dropped and the rest retried; any that
        differ raise ConflictError. Rare: only a copy of a copy meets itself.
        """
        stored_t = {t.id: t for t in self.timelines([t.id for t in batch.timelines])}
        stored_c = {c.id: c for c in self.checkpoints([c.id for c in batch.checkpoints])}
        differ = [f"timeline {t.id}" for t in batch.timelines if stored_t.get(t.id, t) != t]
        differ += [
            f"checkpoint {c.id}" for c in batch.checkpoints if stored_c.get(c.id, c) != c
        ]
        if differ or not (stored_t or stored_c):
            raise ConflictError(
                f"{', '.join(sorted(differ)) or 'a record'} already stored in "
                f"{self.describe()} with other content; nothing of this batch was written. "
                "Ids are unique per record: the same id with other content means two stores "
                "disagree."
            )
        return Batch(
            timelines=[t for t in batch.timelines if t.id not in stored_t],
            checkpoints=[c for c in batch.checkpoints if c.id not in stored_c],
            outputs=batch.outputs,
            tombstones=batch.tombstones,
            tags=batch.tags,
        )

    def timelines(self, ids: Iterable[str] | None = None) -> list[Timeline]:
        if ids is None:
            rows = self._fetch(self._q.all_timelines)
        else:
            rows = self._by_id(self._timeline_rows, self._q.timelines, ids)
        return [_timeline(row) for row in rows]

    def checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        rows = self._by_id(self._checkpoint_rows, self._q.checkpoints, ids)
        return [_checkpoint(row, self._load_values) for row in rows]

    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        return self._checkpoints(self._q.children, [checkpoint_id])

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        chain = self._checkpoints(self._q.lineage, [checkpoint_id])
        if len({c.id for c in chain}) != len(chain):
            raise CorruptDataError(
                f"the parent chain of checkpoint {checkpoint_id} in {self.describe()} loops; "
                "the catalog is damaged (restore it or re-sync it from another store)"
            )
        return chain

    def tree(self, timeline_id: str) -> list[Checkpoint]:
        return self._checkpoints(self._q.tree, [timeline_id])

    def outputs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        wanted = _ids(hashes)
        if not wanted:
            return {}
        rows = self._fetch(self._q.outputs, [wanted])
        return {
            h: canonical.encode("utf-8") if canonical is not None else canonical_bytes(value)
            for h, value, canonical in rows
        }

    def missing_outputs(self, hashes: Iterable[str]) -> set[str]:
        wanted = _ids(hashes)
        if not wanted:
            return set()
        return {row[0] for row in self._fetch(self._q.missing_outputs, [wanted])}

    def close(self) -> None:
        self._pool.close()

    def describe(self) -> str:
        return f"PostgreSQL {self._where} (schema {self.schema!r})"

    def __repr__(self) -> str:
        return f"<PostgresCatalog {self._where} schema={self.schema!r}>"

    # -- internals ------------------------------------------------------------------------

    def _load_values(self, hashes: list[str]) -> dict[str, Any]:
        """Loader for LazyOutputs: hash -> JSON value, without re-encoding."""
        rows = self._fetch(self._q.outputs, [list(hashes)]) if hashes else []
        found = {
            h: value if canonical is None else json.loads(canonical)
            for h, value, canonical in rows
        }
        if missing := set(hashes) - found.keys():
            raise CorruptDataError(
                f"{self.describe()} lacks stage output(s) {sorted(missing)} that checkpoints "
                "refer to; the catalog is damaged (re-sync it from another store)"
            )
        return found

    def _by_id(self, cache: RowCache, query: str, ids: Iterable[str]) -> list[tuple[Any, ...]]:
        """Rows for the ids that exist, ordered by id: cached ones without a round trip,
        the others in one query (and remembered)."""
        wanted = _ids(ids)
        if not wanted:
            return []
        found = cache.get(wanted)
        if len(found) < len(wanted):
            rows = self._fetch(query, [[i for i in wanted if i not in found]])
            cache.put(rows)
            found.update((row[0], row) for row in rows)
        return [found[i] for i in wanted if i in found]

    def _checkpoints(self, query: str, params: list[Any]) -> list[Checkpoint]:
        return [_checkpoint(row, self._load_values) for row in self._fetch(query, params)]

    def _fetch(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self._call(lambda conn: conn.execute(query, params).fetchall())

    def _call(self, fn: Callable[[psycopg.Connection], T]) -> T:
        """Run fn on a pooled connection, retrying what is safe to retry, and translate
        every psycopg / pool error here, in one place."""
        for attempt in range(_RETRIES + 1):
            conn: psycopg.Connection | None = None
            try:
                conn = self._getconn()
                try:
                    return fn(conn)
                finally:
                    self._pool.putconn(conn)  # a broken connection is discarded here
            except (psycopg.Error, PoolTimeout, PoolClosed) as exc:
                if attempt < _RETRIES and _retryable(exc, conn, attempt):
                    log.info("retrying on %s after %s", self._where, type(exc).__name__)
                    if conn is not None and conn.broken:
                        self._pool.check()  # drop the other stale connections too
                    continue
                raise self._translate(exc) from None
        raise AssertionError("unreachable")

    def _getconn(self) -> psycopg.Connection:
        """A pooled connection; when none comes at once, ask the server directly whether
        it is there, so a dead server fails in about a second, not after the pool timeout."""
        try:
            return self._pool.getconn(timeout=min(_QUICK_WAIT, self._pool.timeout))
        except PoolTimeout:
            if (cause := self._probe()) is not None:
                raise psycopg.OperationalError(cause) from None
            return self._pool.getconn()  # the server is up; the pool is only busy

    def _translate(self, exc: BaseException) -> LocalckptError:
        """The one map from driver errors to localckpt errors (messages never hold secrets)."""
        where = self.describe()
        if isinstance(exc, psycopg.Error) and exc.sqlstate == CONFLICT_SQLSTATE:
            return _MaybeConflict(f"{_diag_message(exc)} in {where}")
        if isinstance(exc, psycopg.errors.ForeignKeyViolation):
            detail = exc.diag.message_detail or _diag_message(exc)
            return InvalidInputError(
                f"a record refers to a parent checkpoint or timeline that neither the batch nor "
                f"{where} holds ({self._redact(detail)}); nothing of this batch was written"
            )
        if isinstance(exc, PoolClosed):
            return LocalckptError(f"{where} was closed; open the store again")
        if isinstance(exc, PoolTimeout):
            return BackendUnavailableError(
                f"all {self._pool.max_size} connections to {where} stayed busy for "
                f"{self._pool.timeout:g} s; raise max_size or timeout"
            )
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return BackendUnavailableError(
                f"cannot use the PostgreSQL server {self._where}: "
                f"{self._redact(str(exc).strip())}. Check that the server is running and "
                "reachable from here, and that the user, password and database in the URL "
                "are right."
            )
        if isinstance(exc, psycopg.Error):
            return LocalckptError(
                f"{where} failed: {type(exc).__name__}: {self._redact(_diag_message(exc))}"
            )
        return LocalckptError(f"{where} failed: {type(exc).__name__}")

    def _probe(self) -> str | None:
        """Why a new connection fails right now (None if it succeeds): the pool's timeout
        hides the server's own answer, which is what the user needs to see."""
        try:
            with psycopg.connect(self._dsn, **{**self._connect_kwargs, "connect_timeout": 2}):
                pass
        except psycopg.Error as exc:
            return str(exc).strip()
        return None

    def _redact(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text


def _write(
    insert: str | None, commit: str, params: list[Any], conn: psycopg.Connection
) -> set[tuple[str, str]] | None:
    """Run a commit on conn: None when the plain INSERTs stored every row, else the
    (kind, id) pairs the comparing statement inserted."""
    if insert is not None:
        try:
            conn.execute(insert, params)
            return None
        except psycopg.errors.UniqueViolation:
            pass  # an id is stored already (autocommit: nothing of it was kept)
    return set(conn.execute(commit, params).fetchall())


class _MaybeConflict(ConflictError):
    """Stored columns differ from the batch's; commit() decides with == (never escapes)."""


# -- SQL ----------------------------------------------------------------------------------


class _Queries:
    """Every statement, rendered once per schema (values are always parameters)."""

    def __init__(self, s: sql.Identifier) -> None:
        def q(text: str) -> str:
            return sql.SQL(text).format(s=s).as_string(None)

        self._q = q
        self._commits: dict[tuple[int, int, int], str] = {}
        self._inserts: dict[tuple[int, int, int], str] = {}
        ck = _CHECKPOINT_COLS
        self.all_timelines = q(f"SELECT {_TIMELINE_READ} FROM {{s}}.timelines ORDER BY id")
        self.timelines = q(
            f"SELECT {_TIMELINE_READ} FROM {{s}}.timelines WHERE id = ANY(%s::text[]) ORDER BY id"
        )
        self.insert_marks, self.marks_by_id, self.all_marks, self.marks_of = {}, {}, {}, {}
        for kind, (table, cols, types) in _MARK_COLS.items():
            arrays = ", ".join(f"%s::{t}[]" for t in types.split())
            self.insert_marks[kind] = q(
                f"INSERT INTO {{s}}.{table} ({cols}) SELECT * FROM unnest({arrays})"
                " ON CONFLICT (id) DO NOTHING RETURNING id"
            )
            self.marks_by_id[kind] = q(
                f"SELECT {cols} FROM {{s}}.{table} WHERE id = ANY(%s::text[])"
            )
            self.all_marks[kind] = q(f"SELECT {cols} FROM {{s}}.{table} ORDER BY id")
            self.marks_of[kind] = q(
                f"SELECT {cols} FROM {{s}}.{table} WHERE timeline_id = ANY(%s::text[]) "
                "ORDER BY id"
            )
        self.deleted = q(
            "SELECT DISTINCT target_id FROM {s}.tombstones WHERE target_id = ANY(%s::text[])"
        )
        self.find_timelines = q(
            "SELECT id FROM {s}.timelines WHERE id LIKE %s ORDER BY id LIMIT %s"
        )
        self.find_checkpoints = q(
            "SELECT id FROM {s}.checkpoints WHERE id LIKE %s ORDER BY id LIMIT %s"
        )
        rd = _CHECKPOINT_READ
        self.checkpoints = q(
            f"SELECT {rd} FROM {{s}}.checkpoints WHERE id = ANY(%s::text[]) ORDER BY id"
        )
        self.children = q(f"SELECT {rd} FROM {{s}}.checkpoints WHERE parent_id = %s ORDER BY id")
        self.tree = q(f"SELECT {rd} FROM {{s}}.checkpoints WHERE timeline_id = %s ORDER BY id")
        # The depth bound only stops a damaged (cyclic) chain; lineage() reports it.
        self.lineage = q(
            f"WITH RECURSIVE chain AS ("
            f" SELECT {ck}, 0 AS depth FROM {{s}}.checkpoints WHERE id = %s"
            f" UNION ALL"
            f" SELECT {_prefixed(ck, 'p')}, chain.depth + 1 FROM {{s}}.checkpoints p"
            f" JOIN chain ON p.id = chain.parent_id WHERE chain.depth < 1000000"
            f") SELECT {rd} FROM chain ORDER BY depth DESC"
        )
        self.outputs = q(
            "SELECT hash, value, canonical FROM {s}.outputs WHERE hash = ANY(%s::text[])"
        )
        self.missing_outputs = q(
            "SELECT h FROM unnest(%s::text[]) AS h "
            "WHERE NOT EXISTS (SELECT 1 FROM {s}.outputs o WHERE o.hash = h)"
        )

    def commit(self, shape: tuple[int, int, int]) -> str:
        """The commit statement for a batch of this shape (see _shape)."""
        return self._built(self._commits, shape, _commit_sql)

    def insert(self, shape: tuple[int, int, int]) -> str | None:
        """Plain INSERTs for a small batch of this shape; None: use commit() directly."""
        _, timelines, checkpoints = shape
        if timelines > 1 or checkpoints > 1 or not (timelines or checkpoints):
            return None  # big batches (sync) often hold stored ids; outputs never conflict
        return self._built(self._inserts, shape, _insert_sql)

    def _built(self, cache: dict[tuple[int, int, int], str], shape: tuple[int, int, int],
               build: Callable[[int, int, int], str]) -> str:
        """Statement text for shape, built once (a dict write is atomic: threads may race)."""
        text = cache.get(shape)
        if text is None:
            text = cache.setdefault(shape, self._q(build(*shape)))
        return text


def _shape(*groups: list[tuple[Any, ...]]) -> tuple[int, int, int]:
    """Rows per kind as 0, 1 or 2 (many): the commit statement differs only by these."""
    a, b, c = (min(len(rows), 2) for rows in groups)
    return a, b, c


def _commit_params(*groups: list[tuple[Any, ...]]) -> list[Any]:
    """One row: its values; many: one array per column (what unnest() reads)."""
    params: list[Any] = []
    for rows in groups:
        if len(rows) == 1:
            params.extend(rows[0])
        elif rows:
            params.extend([row[i] for row in rows] for i in range(len(rows[0])))
    return params


def _rows_sql(types: str, cols: str, n: int) -> str:
    """A SELECT of n rows (1: scalar parameters; 2: many, as one array per column)."""
    if n == 1:
        values = ", ".join(f"%b::{t}" for t in types.split())
        return f"SELECT * FROM (VALUES ({values})) AS x({cols})"
    arrays = ", ".join(f"%b::{t}[]" for t in types.split())
    return f"SELECT * FROM unnest({arrays}) AS x({cols})"


def _outputs_cte(n: int) -> str:
    """Insert n outputs; content-addressed, so an existing hash is simply skipped."""
    return (
        "o AS (INSERT INTO {s}.outputs (hash, value, canonical) "
        f"{_rows_sql('text jsonb text', 'hash, value, canonical', n)}"
        " ON CONFLICT (hash) DO NOTHING)"
    )


def _insert_sql(outputs: int, timelines: int, checkpoints: int) -> str:
    """_commit_sql for the usual case, every id new: plain INSERTs (parameters in the
    same order) that fail with unique_violation, writing nothing, if one is stored."""
    ctes = []
    if outputs:
        ctes.append(_outputs_cte(outputs))
    inserts = [
        f"INSERT INTO {{s}}.{table} ({cols}) {_rows_sql(types, cols, n)}"
        for table, cols, types, n in (
            ("timelines", _TIMELINE_COLS, _TIMELINE_TYPES, timelines),
            ("checkpoints", _CHECKPOINT_COLS, _CHECKPOINT_TYPES, checkpoints),
        )
        if n
    ]
    ctes += [f"t{i} AS ({text})" for i, text in enumerate(inserts[:-1])]
    return (f"WITH {', '.join(ctes)} " if ctes else "") + inserts[-1]


def _commit_sql(outputs: int, timelines: int, checkpoints: int) -> str:
    """One statement that writes a batch, all or nothing, and returns what it inserted.

    Data-modifying CTEs insert everything; the final SELECT sees the tables as they were
    before the statement, so a row neither inserted nor visible was inserted by a
    concurrent transaction meanwhile: fail with 40001 and the retry will compare it. A
    visible row with other columns fails with CONFLICT_SQLSTATE and commit() decides with
    ==. Kinds the batch lacks are left out, so the usual save is a small statement.
    """
    ctes, bad, inserted = [], [], ["SELECT NULL, NULL FROM failed"]
    if outputs:
        ctes.append(_outputs_cte(outputs))
    for kind, table, alias, cols, types, n in (
        ("timeline", "timelines", "t", _TIMELINE_COLS, _TIMELINE_TYPES, timelines),
        ("checkpoint", "checkpoints", "c", _CHECKPOINT_COLS, _CHECKPOINT_TYPES, checkpoints),
    ):
        if not n:
            continue
        ctes.append(f"{alias}i AS ({_rows_sql(types, cols, n)})")
        ctes.append(
            f"{alias}n AS (INSERT INTO {{s}}.{table} ({cols}) SELECT * FROM {alias}i"
            " ON CONFLICT (id) DO NOTHING RETURNING id)"
        )
        bad.append(
            f"SELECT '{kind}' AS kind, i.id, {alias}.id IS NULL AS raced"
            f" FROM {alias}i i LEFT JOIN {{s}}.{table} {alias} ON {alias}.id = i.id"
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


# -- parameters and rows ------------------------------------------------------------------


def _retryable(exc: BaseException, conn: psycopg.Connection | None, attempt: int) -> bool:
    """Deadlocks and serialization failures (40xxx) always; a pooled connection the
    server dropped (restart, idle kill) once. Safe for commit too: it is idempotent."""
    if isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure):
        return True
    return (
        isinstance(exc, psycopg.OperationalError)
        and conn is not None
        and conn.broken
        and attempt == 0
    )


def _ids(ids: Iterable[str]) -> list[str]:
    return sorted(set(ids))


def _utc(when: datetime) -> datetime:
    """Naive datetimes are UTC by convention; aware ones keep their instant."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _unique(rows: Iterable[tuple[Any, ...]], kind: str) -> list[tuple[Any, ...]]:
    """One row per id, sorted by id so that concurrent batches lock rows in the same
    order (no deadlock)."""
    by_id: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        if NUL in row[0]:
            raise InvalidInputError(f"{kind} id {row[0]!r} contains NUL; ids cannot")
        if by_id.setdefault(row[0], row) != row:
            raise ConflictError(
                f"the batch holds two different {kind} records with id {row[0]}; "
                "nothing was written"
            )
    return [by_id[key] for key in sorted(by_id)]



def _storable(
    record: Any, texts: tuple[str, ...], jsons: tuple[str, ...] = ()
) -> tuple[dict[str, Any], str | None]:
    """Column values for a record's user-given fields, and its ``exact`` column."""
    columns: dict[str, Any] = {}
    exact: dict[str, Any] = {}
    for name in texts:
        value = getattr(record, name)
        columns[name], changed = pg_json.text_column(value)
        if changed:
            exact[name] = value
    for name in jsons:
        value = dict(getattr(record, name))
        data = canonical_bytes(value, f"{type(record).__name__.lower()} {record.id} {name}")
        columns[name], changed = pg_json.jsonb_column(data)
        if changed:
            exact[name] = value
    return columns, pg_json.exact_text(exact)


def _output_rows(outputs: Mapping[str, bytes]) -> list[tuple[Any, ...]]:
    rows = []
    for h, data in outputs.items():
        data = bytes(data)
        if content_hash(data) != h:
            raise InvalidInputError(
                f"output {h} does not hash to its key; nothing of this batch was written"
            )
        value, changed = pg_json.jsonb_column(data)
        rows.append((h, value, data.decode("utf-8") if changed else None))
    return _unique(rows, "output")


# A record's row holds what its columns hold (JSON as text), in the order reads return
# them: the same tuple is a commit's parameters and, once inserted, a cached row.


def _timeline_row(t: Timeline) -> tuple[Any, ...]:
    col, exact = _storable(t, _TIMELINE_TEXT, ("source_info",))
    return (
        t.id, col["source_video"], col["profile_name"], float(t.fps),
        col["source_asset_id"], t.root_checkpoint_id, int(t.frame_count),
        _utc(t.created_at), col["source_info"], t.index_hash, exact,
    )


def _mark_row(r: Tombstone | Tag) -> tuple[Any, ...]:
    if isinstance(r, Tombstone):
        return (r.id, r.target_id, r.kind, r.timeline_id, _utc(r.created_at))
    name, _ = pg_json.text_column(r.name)
    return (r.id, name, r.checkpoint_id, r.timeline_id, _utc(r.created_at))


def _mark_row_of(row: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    return None if row is None else (*row[:4], _utc(row[4]))


def _checkpoint_row(c: Checkpoint) -> tuple[Any, ...]:
    col, exact = _storable(c, _CHECKPOINT_TEXT, _CHECKPOINT_JSON)
    return (
        c.id, c.timeline_id, c.parent_id, col["stage"], col["stage_hashes"],
        col["config_overrides"], col["stats"], bool(c.is_scenario),
        col["scenario_label"], _utc(c.created_at), c.merged_from, exact,
    )


def _timeline(row: tuple[Any, ...]) -> Timeline:
    tid, video, profile, fps, asset, root, count, created, info, index_hash, exact = row
    fix = pg_json.read_exact(exact)
    return Timeline(
        tid, fix.get("source_video", video), fix.get("profile_name", profile), fps,
        fix.get("source_asset_id", asset), root, count, created.astimezone(UTC),
        fix.get("source_info", json.loads(info)), index_hash,
    )


def _checkpoint(row: tuple[Any, ...], fetch: Callable[[list[str]], dict[str, Any]]) -> Checkpoint:
    cid, tid, parent, stage, hashes, config, stats, scenario, label, created, merged, exact = row
    hashes, config, stats = json.loads(hashes), json.loads(config), json.loads(stats)
    if exact:
        fix = pg_json.read_exact(exact)
        stage, label = fix.get("stage", stage), fix.get("scenario_label", label)
        hashes, config = fix.get("stage_hashes", hashes), fix.get("config_overrides", config)
        stats = fix.get("stats", stats)
    return Checkpoint(
        id=cid, timeline_id=tid, parent_id=parent, stage_hashes=hashes,
        config_overrides=config, stats=stats, is_scenario=scenario, scenario_label=label,
        created_at=created.astimezone(UTC), merged_from=merged, stage=stage,
        stage_outputs=LazyOutputs(hashes, fetch),
    )


# -- connection strings -------------------------------------------------------------------

# Fail in seconds, not minutes, when the server or the network is gone.
_CONNECT_DEFAULTS = {
    "connect_timeout": 3,
    "application_name": "localckpt",
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def _parse_dsn(dsn: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise InvalidInputError(
            "the PostgreSQL URL could not be parsed; expected "
            "postgresql://user[:password]@host[:port]/dbname or libpq key=value pairs"
        ) from None


def _where(params: dict[str, Any]) -> str:
    """user@host:port/dbname, never the password."""
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = params.get("port") or 5432
    user = params.get("user")
    dbname = params.get("dbname") or user or "postgres"
    return f"{user + '@' if user else ''}{host}:{port}/{dbname}"


def _pop_schema_param(url: str) -> tuple[str, str | None]:
    """Take ``schema=`` out of a URL's query (libpq would reject it)."""
    if not re.match(r"postgres(ql)?://", url):
        return url, None
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is None:
        return url, None
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def _diag_message(exc: psycopg.Error) -> str:
    return exc.diag.message_primary or str(exc).strip()
