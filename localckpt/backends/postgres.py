"""PostgreSQL catalog: timelines, checkpoints and stage outputs in one schema.

Many processes and threads may write at once: every commit is one statement (one round
trip, one implicit transaction), rows are inserted in key order so concurrent batches
never deadlock, and retrying a batch after a lost connection or a race is harmless
because commit is idempotent.

Stage outputs are stored as their exact canonical bytes (``bytea``): nothing is parsed
on write, and a read is the stored bytes, checked against their hash, on every path
(``outputs``, ``load_values`` and the lazy ``Checkpoint.stage_outputs``). SQL users
query them as JSONB through the ``stage_outputs`` view. The row layout comes from
``schema.FIELDS`` (``pg_rows``), the statements from ``pg_sql``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg import postgres
from psycopg.adapt import Buffer, Dumper
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import Format
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ..canonical import content_hash, load_json
from ..catalog import Batch, Catalog, TombstonesChanged
from ..errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptDataError,
    InvalidInputError,
    LocalckptError,
    StoreClosedError,
)
from ..types import Checkpoint, Tag, Timeline, Tombstone
from . import pg_maintenance
from .pg_cache import RowCache
from .pg_rows import CODECS, output_rows, stored_bytes, unique
from .pg_schema import CONFLICT_SQLSTATE, SchemaVersionError, migrate, schema_identifier
from .pg_sql import MISSING_SQLSTATE, Queries, commit_params, shape

__all__ = ["PostgresCatalog", "SchemaVersionError", "open_catalog"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRIES = 3  # deadlock / serialization failure / a pooled connection found dead
_DELETED_SQLSTATE = "LC411"  # commit_guarded: the timeline has tombstones the caller lacks
_QUICK_WAIT = 1.0  # seconds to wait for a pooled connection before asking the server
_OPTIONS = frozenset({"schema", "min_size", "max_size", "timeout", "create"})
_CACHED_TIMELINES = 256  # rows per catalog instance (see pg_cache)
_CACHED_CHECKPOINTS = 1024
_TL, _CK = CODECS["timeline"], CODECS["checkpoint"]
_HASHES = _CK.names.index("stage_hashes")


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
        self._q = Queries(ident)
        self._deleted_guards: dict[Any, str] = {}  # commit_guarded statements by shape
        self._timeline_rows = RowCache(_CACHED_TIMELINES)
        self._checkpoint_rows = RowCache(_CACHED_CHECKPOINTS)
        # (id, Checkpoint) of records this catalog committed or peeked: what saves read
        # their parent from, with no row to parse (peek_checkpoint's callers never mutate)
        self._peeked = RowCache(_CACHED_CHECKPOINTS)
        self._pool = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs=self._connect_kwargs,
            timeout=timeout,
            open=False,
            name=f"localckpt {self._where}",
            configure=_configure,
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
            outputs = output_rows(batch.outputs)
            timelines = unique(map(_TL.row, batch.timelines), "timeline")
            checkpoints = unique(map(_CK.row, batch.checkpoints), "checkpoint")
            guard = self._unsure_outputs(batch)
            form = shape(outputs, timelines, checkpoints, guard)
            params = commit_params(outputs, timelines, checkpoints, guard)
            write: Callable[[psycopg.Connection], set[tuple[str, str]] | None]
            if batch.tombstones or batch.tags:
                main = self._q.commit(form) if any(form[:3]) else None
                write = partial(self._write_marks, main, params, batch)
            else:
                write = partial(_write, self._q.insert(form), self._q.commit(form), params)
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
                self._peeked.put((c.id, c.with_loader(self._load_values))
                                 for c in batch.checkpoints)
            else:
                self._timeline_rows.put(r for r in timelines if ("t", r[0]) in inserted)
                self._checkpoint_rows.put(r for r in checkpoints if ("c", r[0]) in inserted)
            return

    def commit_guarded(self, batch: Batch, timeline_id: str, seen: Iterable[str]) -> None:
        """Catalog.commit_guarded in the commit's own statement for what saves and merges
        write (one checkpoint and its outputs): no extra round trip. Other batches take
        the default (ask, then commit)."""
        if batch.timelines or batch.tombstones or batch.tags or len(batch.checkpoints) != 1:
            super().commit_guarded(batch, timeline_id, seen)
            return
        outputs = output_rows(batch.outputs)
        checkpoints = [_CK.row(c) for c in batch.checkpoints]
        guard = self._unsure_outputs(batch)
        form = shape(outputs, [], checkpoints, guard)
        params = commit_params(outputs, [], checkpoints, guard)
        write = partial(_write_unless_deleted, self._unless_deleted(form), self._q.commit(form),
                        params, [timeline_id, sorted(set(seen))])
        try:
            inserted = self._call(write)
        except _MaybeConflict:
            self.commit(batch)  # an equal record is stored already: commit() decides
            return
        if inserted is None:
            self._checkpoint_rows.put(checkpoints)
            self._peeked.put((c.id, c.with_loader(self._load_values))
                             for c in batch.checkpoints)
        else:
            self._checkpoint_rows.put(r for r in checkpoints if ("c", r[0]) in inserted)

    def _unless_deleted(self, form: Any) -> str:
        """The plain INSERT of form, aborting with _DELETED_SQLSTATE (nothing written) when
        the timeline (first extra parameter) has a tombstone whose id the second (text[])
        lacks. The CASE keeps fail() from running for tombstones already seen."""
        text = self._deleted_guards.get(form)
        if text is None:
            insert = self._q.insert(form)
            assert insert is not None  # one checkpoint: always the plain-insert shape
            joint = " AND " if " WHERE " in insert.rsplit(" AS x(", 1)[-1] else " WHERE "
            text = self._deleted_guards.setdefault(form, insert + joint + self._q.render(
                "NOT EXISTS (SELECT 1 FROM {s}.tombstones d WHERE d.timeline_id = %s"
                " AND CASE WHEN d.id = ANY(%s::text[]) THEN false"
                f" ELSE {{s}}.fail('{_DELETED_SQLSTATE}', 'new tombstones') END)"))
        return text

    def peek_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        hit = self._peeked.get([checkpoint_id]).get(checkpoint_id)
        if hit is not None:
            record: Checkpoint = hit[1]
            return record
        found = self.checkpoints([checkpoint_id])
        if found:
            self._peeked.put([(checkpoint_id, found[0])])
        return found[0] if found else None

    def _unsure_outputs(self, batch: Batch) -> list[str]:
        """Hashes the batch's checkpoints refer to that the statement must find stored:
        not carried by the batch, nor by a stored parent (whose outputs a purge keeps
        while the parent stays; its foreign key is checked at commit). A save's only new
        reference is the output it carries, so it usually needs none."""
        ids = {c.id for c in batch.checkpoints}
        unsure: set[str] = set()
        for c in batch.checkpoints:
            refs = set(c.stage_hashes.values())
            if c.parent_id is not None and c.parent_id not in ids:
                peeked = self._peeked.get([c.parent_id]).get(c.parent_id)
                if peeked is not None:
                    refs.difference_update(peeked[1].stage_hashes.values())
                elif (row := self._checkpoint_rows.get([c.parent_id]).get(c.parent_id)):
                    refs.difference_update(load_json(row[_HASHES]).values())
            unsure.update(refs)
        unsure.difference_update(batch.outputs)
        return sorted(unsure)

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
                rows = unique((CODECS[kind].row(r) for r in records), kind)
                columns = [list(col) for col in zip(*rows, strict=True)]
                new = {r[0] for r in conn.execute(self._q.insert_marks[kind], columns)}
                old = [r for r in rows if r[0] not in new]
                if old:
                    stored = {
                        r[0]: r for r in conn.execute(
                            self._q.marks_by_id[kind], [[r[0] for r in old]]).fetchall()
                    }
                    differ = [r[0] for r in old if stored.get(r[0]) != r]
                    if differ:
                        raise ConflictError(
                            f"{kind} {differ[0]} already stored in {self.describe()} with "
                            "other content; nothing of this batch was written"
                        )
        return inserted

    def tombstones(self, timeline_ids: Iterable[str] | None = None) -> list[Tombstone]:
        return [CODECS["tombstone"].record(r) for r in self._marks("tombstone", timeline_ids)]

    def tags(self, timeline_ids: Iterable[str] | None = None) -> list[Tag]:
        return [CODECS["tag"].record(r) for r in self._marks("tag", timeline_ids)]

    def _marks(self, kind: str, timeline_ids: Iterable[str] | None) -> list[tuple[Any, ...]]:
        if timeline_ids is None:
            return self._fetch(self._q.all_marks[kind])
        wanted = _ids(timeline_ids)
        return self._fetch(self._q.marks_of[kind], [wanted]) if wanted else []

    def deleted(self, target_ids: Iterable[str], kind: str | None = None) -> set[str]:
        wanted = _ids(target_ids)
        if not wanted:
            return set()
        targeted = {r[0] for r in self._fetch(self._q.deleted, [wanted])}
        # of those any tombstone targets, the ones the contract says (kind, timeline)
        return Catalog.deleted(self, targeted, kind) if targeted else set()

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
        return [_TL.record(row) for row in rows]

    def checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        rows = self._by_id(self._checkpoint_rows, self._q.checkpoints, ids)
        return [_CK.record(row, self._load_values) for row in rows]

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
        """The stored bytes of these outputs, each checked against its hash: damage
        raises CorruptDataError here, so no reader (sync, export, verify) passes it on."""
        wanted = _ids(hashes)
        if not wanted:
            return {}
        found = {}
        for h, data, value, canonical in self._fetch(self._q.outputs, [wanted], binary=True):
            data = stored_bytes(h, data, value, canonical)
            if content_hash(data) != h:
                raise CorruptDataError(
                    f"stage output {h} in {self.describe()} does not match its hash; the "
                    "catalog is damaged (restore it or re-sync it from another store)"
                )
            found[h] = data
        return found

    def load_values(self, hashes: Iterable[str]) -> dict[str, Any]:
        """Decoded outputs: one read, one hash check and one decode each."""
        try:
            return {h: load_json(data) for h, data in self.outputs(hashes).items()}
        except ValueError as exc:
            raise CorruptDataError(
                f"a stage output in {self.describe()} is not valid JSON ({exc}); the catalog "
                "is damaged (restore it or re-sync it from another store)"
            ) from None

    def missing_outputs(self, hashes: Iterable[str]) -> set[str]:
        wanted = _ids(hashes)
        if not wanted:
            return set()
        return {row[0] for row in self._fetch(self._q.missing_outputs, [wanted])}

    def storage_problems(self) -> list[tuple[str, str]]:
        """Every record row that does not parse and every output whose bytes do not hash
        to its key, read once through a server-side cursor."""
        def where(table: str, key: str) -> str:
            return f"{self.describe()} {table} row {key}"

        return self._call(lambda conn: pg_maintenance.storage_problems(
            conn, self._q.all_records, self._q.all_outputs, where))

    def purge_deleted(self) -> int:
        """Delete what tombstones delete and outputs no remaining checkpoint refers to, in
        one transaction that excludes concurrent commits (see pg_maintenance)."""
        statements = [(self._q.render(text), counts) for text, counts in pg_maintenance.PURGE]
        removed = self._call(lambda conn: pg_maintenance.purge(conn, statements))
        for cache in (self._timeline_rows, self._checkpoint_rows, self._peeked):
            cache.clear()
        return removed

    def close(self) -> None:
        self._pool.close()

    def describe(self) -> str:
        return f"PostgreSQL {self._where} (schema {self.schema!r})"

    def __repr__(self) -> str:
        return f"<PostgresCatalog {self._where} schema={self.schema!r}>"

    # -- internals ------------------------------------------------------------------------

    def _load_values(self, hashes: list[str]) -> dict[str, Any]:
        """Loader for LazyOutputs: verified like every other read of an output."""
        found = self.load_values(hashes)
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
        return [_CK.record(row, self._load_values) for row in self._fetch(query, params)]

    def _fetch(self, query: str, params: list[Any] | None = None, *, binary: bool = False,
               ) -> list[tuple[Any, ...]]:
        return self._call(lambda conn: conn.execute(query, params, binary=binary).fetchall())

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
            except UnicodeError:
                raise InvalidInputError(
                    "a value given to the PostgreSQL catalog is not valid Unicode (a lone "
                    "surrogate?) and cannot be sent to the server; pass proper text"
                ) from None
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
        if isinstance(exc, psycopg.Error) and exc.sqlstate == _DELETED_SQLSTATE:
            return TombstonesChanged(f"new tombstones in {where}; nothing was written")
        if isinstance(exc, psycopg.Error) and exc.sqlstate == MISSING_SQLSTATE:
            return InvalidInputError(
                f"the batch refers to stage output(s) {_diag_message(exc)} that neither it nor "
                f"{where} holds (a gc may have removed them meanwhile); nothing of this batch "
                "was written: send the outputs with the batch (sync again)"
            )
        if isinstance(exc, psycopg.errors.ForeignKeyViolation):
            detail = exc.diag.message_detail or _diag_message(exc)
            return InvalidInputError(
                f"a record refers to a parent checkpoint or timeline that neither the batch nor "
                f"{where} holds ({self._redact(detail)}); nothing of this batch was written"
            )
        if isinstance(exc, PoolClosed):
            return StoreClosedError(f"{where} was closed; open the store again")
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


def _write_unless_deleted(
    guarded: str, commit: str, params: list[Any], guard: list[Any], conn: psycopg.Connection
) -> set[tuple[str, str]] | None:
    """_write with the tombstone guard on the plain INSERT (the comparing statement runs
    only when the id is stored already: a retry of a save that committed)."""
    try:
        conn.execute(guarded, [*params, *guard])
        return None
    except psycopg.errors.UniqueViolation:
        pass
    return set(conn.execute(commit, params).fetchall())


class _MaybeConflict(ConflictError):
    """Stored columns differ from the batch's; commit() decides with == (never escapes)."""


# -- helpers ------------------------------------------------------------------------------


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



# -- connections ----------------------------------------------------------------------------


class _ExactBytes(Dumper):
    """bytea parameters sent as the caller's bytes object: psycopg's own dumper copies
    every one into a bytearray first, an extra copy of each multi-MB output."""

    format = Format.BINARY
    oid = postgres.types["bytea"].oid

    def dump(self, obj: Any) -> Buffer:
        return obj


def _configure(conn: psycopg.Connection) -> None:
    conn.adapters.register_dumper(bytes, _ExactBytes)


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
