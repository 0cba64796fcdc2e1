"""The PostgreSQL engine: production, many machines, many processes.

- **Connections**: one per process by default, opened on first use; more only while
  several threads of the process use the catalog at once, up to ``max_size``. A pool
  of our own, in the calling thread: a server that refuses (down, wrong password,
  ``too many clients``) fails the call at once with the server's own reason.
- **One round trip per write**: a save's steps (guards, then INSERTs) are one
  statement of common table expressions; other writes go in pipeline mode inside one
  transaction. A guard runs as ``SELECT fail(code, message) WHERE EXISTS (...)``,
  which aborts the transaction on the server.
- **Transaction-mode poolers** (pgbouncer): every statement runs inside a transaction
  and no session state is kept (no SET, no session advisory lock, no LISTEN); the one
  thing such a pooler breaks is psycopg's automatic prepared statements, so pass
  ``prepare_threshold=None`` (URL ``?prepare_threshold=none``) behind pgbouncer older
  than 1.21.
- Retries: deadlocks and serialization failures always, a connection the server
  dropped (restart) once; safe, since every commit is idempotent.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg import postgres, sql
from psycopg.adapt import Buffer, Dumper
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import Format

from ...errors import (
    BackendUnavailableError,
    InvalidInputError,
    LocalckptError,
    StoreClosedError,
)
from .dialects import POSTGRES
from .engine import Dangling, Duplicate, Engine, Refused, Step, Tx

__all__ = ["PostgresEngine", "parse_url"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRIES = 3
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_TOO_MANY = "53300"
_CONNECT_DEFAULTS = {
    "connect_timeout": 3,
    "application_name": "localckpt",
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


class _ExactBytes(Dumper):
    """bytea parameters sent as the caller's bytes object (psycopg's own dumper copies
    each into a bytearray first: an extra copy of every multi-MB output)."""

    format = Format.BINARY
    oid = postgres.types["bytea"].oid

    def dump(self, obj: Any) -> Buffer:
        return obj


class _Tx(Tx):
    def __init__(self, engine: PostgresEngine, conn: psycopg.Connection) -> None:
        self._engine = engine
        self._conn = conn

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(statement, list(params)).fetchall()

    def execute(self, statement: str, params: Sequence[Any] = (), many: bool = False) -> int:
        if many:
            with self._conn.cursor() as cur:
                cur.executemany(statement, params)
                return cur.rowcount
        return self._conn.execute(statement, list(params)).rowcount


class PostgresEngine(Engine):
    """Connections to one PostgreSQL catalog (a schema of a database)."""

    dialect = POSTGRES

    def __init__(self, dsn: str, *, schema: str = "localckpt", max_size: int = 8,
                 timeout: float = 10.0, prepare_threshold: int | None = 5) -> None:
        super().__init__()
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidInputError(
                f"schema name {schema!r} is not allowed: use 1-63 lowercase letters, digits "
                "and underscores, starting with a letter or underscore")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or not 1 <= max_size <= 64:
            raise InvalidInputError(f"max_size must be an int from 1 to 64, not {max_size!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (
                0 < timeout <= 3600):
            raise InvalidInputError(f"timeout must be seconds in (0, 3600], not {timeout!r}")
        self.schema = schema
        self.prefix = sql.Identifier(schema).as_string(None) + "."
        params = _parse_dsn(dsn)
        self._password = params.get("password") or None
        self.where = _where(params)
        self._dsn = dsn  # private: messages use where, never this
        self._kwargs: dict[str, Any] = {
            "autocommit": True, "prepare_threshold": prepare_threshold,
            **{k: v for k, v in _CONNECT_DEFAULTS.items() if k not in params},
        }
        self.max_size = max_size
        self.timeout = float(timeout)
        self.prepare_threshold = prepare_threshold
        self._idle: list[psycopg.Connection] = []
        self._open = 0
        self._cond = threading.Condition()
        self._closed = False

    # -- the pool ---------------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Connections this engine holds now (idle or in use)."""
        return self._open

    def _acquire(self) -> psycopg.Connection:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                if self._closed:
                    raise StoreClosedError(f"{self.describe()} was closed; open the store again")
                if self._idle:
                    return self._idle.pop()
                if self._open < self.max_size:
                    self._open += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BackendUnavailableError(
                        f"all {self.max_size} connections of this process to "
                        f"{self.describe()} stayed busy for {self.timeout:g} s; raise "
                        "max_size or timeout, or use fewer threads")
                self._cond.wait(left)
        try:
            conn = psycopg.connect(self._dsn, **self._kwargs)
            conn.adapters.register_dumper(bytes, _ExactBytes)
            return conn
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _release(self, conn: psycopg.Connection) -> None:
        usable = not conn.closed and not conn.broken and (
            conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE)
        with self._cond:
            if usable and not self._closed:
                self._idle.append(conn)
            else:
                self._open -= 1
                conn.close()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def describe(self) -> str:
        return f"PostgreSQL {self.where} (schema {self.schema!r})"

    # -- running ----------------------------------------------------------------------------

    def _call(self, fn: Callable[[psycopg.Connection], T]) -> T:
        """Run fn on a connection, retrying what is safe to retry, translating errors."""
        for attempt in range(_RETRIES + 1):
            conn: psycopg.Connection | None = None
            try:
                conn = self._acquire()
                try:
                    return fn(conn)
                finally:
                    self._release(conn)
            except psycopg.Error as exc:
                if attempt < _RETRIES and _retryable(exc, conn, attempt):
                    log.info("retrying on %s after %s", self.where, type(exc).__name__)
                    if conn is not None and conn.broken:
                        self._drop_idle()
                    continue
                raise self._translate(exc) from None
            except UnicodeError:
                raise InvalidInputError(
                    "a value given to the PostgreSQL catalog is not valid Unicode (a lone "
                    "surrogate?) and cannot be sent to the server; pass proper text") from None
        raise AssertionError("unreachable")

    def _drop_idle(self) -> None:
        """After a dropped connection (server restart) the idle ones are stale too."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for conn in idle:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        text = self.sql(statement)
        return self._call(lambda conn: conn.execute(text, list(params),
                                                    binary=True).fetchall())

    def snapshot(self, queries: Sequence[tuple[str, Sequence[Any]]]
                 ) -> list[list[tuple[Any, ...]]]:
        """One round trip: the statements in pipeline mode, in one REPEATABLE READ
        transaction."""
        texts = [(self.sql(q), p) for q, p in queries]

        def run(conn: psycopg.Connection) -> list[list[tuple[Any, ...]]]:
            with conn.pipeline():
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                curs = [conn.execute(q, list(p), binary=True) for q, p in texts]
                conn.execute("COMMIT")
            return [cur.fetchall() for cur in curs]

        return self._call(run)

    def has_table(self, name: str) -> bool:
        rows = self._call(lambda conn: conn.execute(
            "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
            [self.schema, name]).fetchall())
        return bool(rows and rows[0][0])

    def lock_schema(self, tx: Tx) -> None:
        """Processes opening a new database at once migrate one after the other."""
        digest = hashlib.sha256(f"localckpt-schema:{self.schema}".encode()).digest()
        tx.query("SELECT pg_advisory_xact_lock(%s)", (int.from_bytes(digest[:8], "big",
                                                                       signed=True),))
        tx.execute(f"CREATE SCHEMA IF NOT EXISTS {self.prefix[:-1]}")

    def write(self, steps: Sequence[Step]) -> None:
        """Every step in one transaction, sent in one round trip: as one statement when
        the steps are guards and INSERTs (a save), else in pipeline mode."""
        one = _one_statement(self.prefix, steps)
        if one is not None:
            text, params = one
            self._call(lambda conn: conn.execute(text, params))
            return

        def run(conn: psycopg.Connection) -> None:
            with conn.pipeline(), conn.transaction():
                for step in steps:
                    if step.refuse is not None:
                        conn.execute(f"SELECT {self.prefix}fail(%s, %s) WHERE EXISTS "
                                     f"({step.statement})", [*step.refuse, *step.params])
                    elif step.many:
                        conn.cursor().executemany(step.statement, step.params)
                    else:
                        conn.execute(step.statement, list(step.params))

        self._call(run)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        conn = self._acquire()
        try:
            try:
                with conn.transaction():
                    yield _Tx(self, conn)
            except psycopg.Error as exc:
                raise self._translate(exc) from None
        finally:
            self._release(conn)

    # -- errors -----------------------------------------------------------------------------

    def _translate(self, exc: BaseException) -> LocalckptError:
        """The one map from driver errors to localckpt errors (never a password)."""
        if isinstance(exc, psycopg.errors.UniqueViolation):
            return Duplicate(_message(exc))
        state = getattr(exc, "sqlstate", None) or ""
        if state.startswith("LC"):
            return Refused(state, _message(exc))
        if isinstance(exc, psycopg.errors.ForeignKeyViolation):
            detail = exc.diag.message_detail or _message(exc)
            return Dangling(
                f"a record refers to a parent, timeline or output that {self.describe()} "
                f"does not hold ({self._redact(detail)}); nothing was written (a gc may have "
                "removed it meanwhile: try again)")
        text = self._redact(str(exc).strip())
        if isinstance(exc, psycopg.DataError) and "NUL (0x00)" in text:
            return InvalidInputError(
                "a value given to the PostgreSQL catalog holds the character NUL, which "
                "PostgreSQL text cannot hold (no id or name can contain it); pass proper text")
        if state == _TOO_MANY or "too many clients" in text or "remaining connection slots" in text:
            return BackendUnavailableError(
                f"the PostgreSQL server {self.where} refused a new connection: its "
                "max_connections is reached. Each localckpt process holds one connection "
                f"(up to max_size={self.max_size} with concurrent threads). Raise "
                "max_connections on the server, put pgbouncer in transaction mode in front of "
                "it (docs: team setup), or run fewer processes")
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            said = " ".join(text.split())  # libpq's text spans lines and may end in "?"
            return BackendUnavailableError(
                f"cannot use the PostgreSQL server {self.where}: {said.rstrip('.')}"
                f"{'' if said.endswith('?') else '.'} Check that the server is running and "
                "reachable from here, and that the user, database and password (in the URL, "
                "$PGPASSWORD or ~/.pgpass) are right.")
        return LocalckptError(f"{self.describe()} failed: {type(exc).__name__}: "
                              f"{self._redact(_message(exc))}")

    def _redact(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text


#: most parameters a write sent as one statement binds: a save needs ~40; a large batch
#: (a sync) goes in pipeline mode, where the server runs the same prepared INSERT for
#: each row faster than it plans a VALUES list of hundreds (a stage run's put of 100
#: rows as one statement: 0.81 -> 1.0 s for 100 puts)
_MAX_COMBINED_PARAMS = 500


#: the shape of a write (prefix; each step's statement, rows, guard or not) -> its text as
#: one statement, "" when it cannot be one: saves repeat a handful of shapes
_COMBINED: dict[tuple[str, tuple[tuple[str, int, bool], ...]], str] = {}


def _multi_row(statement: str, rows: int) -> str | None:
    """``INSERT ... VALUES (%s, ...) [ON CONFLICT ...]`` for that many rows as one
    statement with a multi-row VALUES (within _MAX_COMBINED_PARAMS); None for any other
    statement."""
    head, values, tail = statement.partition(" VALUES (")
    group, _, rest = tail.partition(")")
    if (not head.startswith("INSERT INTO ") or not values or rows < 1
            or group.replace("%s", "").strip(", ")  # only placeholders repeat as rows
            or group.count("%s") * rows > _MAX_COMBINED_PARAMS):
        return None
    return f"{head} VALUES " + ", ".join([f"({group})"] * rows) + rest


def _one_statement(prefix: str, steps: Sequence[Step]) -> tuple[str, list[Any]] | None:
    """The steps as one statement, when they are guards followed by INSERTs: each a
    common table expression (an INSERT of several rows as one multi-row VALUES), and the
    guards read by the main query, so that they run (an unread SELECT in WITH does not)
    and any guard that finds a row aborts the whole statement. One statement in
    autocommit is one transaction with one snapshot: no step sees another's rows, so
    steps that read what an earlier step wrote (a stage run's put checks the parts it
    wrote after taking its run's row lock) are not combined. None: send them as they are.

    Why: each statement costs ~100 us of client CPU in psycopg, and a save sent as a
    pipeline of BEGIN, five statements and COMMIT took 1.22 ms (1.02 ms of CPU) on
    loopback; as one statement 0.72 ms (0.46 ms of CPU), same machine and run."""
    shape = tuple((st.statement, len(st.params) if st.many else 1, st.refuse is not None)
                  for st in steps)
    text = _COMBINED.get((prefix, shape))
    if text is None:
        text = _combined_text(prefix, shape)
        if len(_COMBINED) >= 1024:
            _COMBINED.clear()
        _COMBINED[(prefix, shape)] = text
    if not text:
        return None
    params: list[Any] = []
    for step in steps:
        if step.refuse is not None:
            params += [*step.refuse, *step.params]
        elif step.many:
            for row in step.params:
                params += row
        else:
            params += step.params
    return text, params


def _combined_text(prefix: str, shape: Sequence[tuple[str, int, bool]]) -> str:
    """The text of _one_statement for steps of this shape, "" when they cannot be one."""
    parts: list[str] = []
    guards: list[str] = []
    bound = 0
    for statement, rows, guard in shape:
        name = f"w{len(parts)}"
        if guard:
            if len(guards) < len(parts):  # a guard after an INSERT would not see its rows
                return ""
            parts.append(f"{name} AS (SELECT {prefix}fail(%s, %s) AS f WHERE EXISTS "
                         f"({statement}))")
            guards.append(name)
            continue
        one = _multi_row(statement, rows)
        bound += statement.count("%s") * rows
        if one is None or bound > _MAX_COMBINED_PARAMS:
            return ""
        parts.append(f"{name} AS ({one})")
    if not parts:
        return ""
    read = " UNION ALL ".join(f"SELECT f FROM {g}" for g in guards) or "SELECT NULL"
    return "WITH " + ", ".join(parts) + " " + read


def _retryable(exc: BaseException, conn: psycopg.Connection | None, attempt: int) -> bool:
    if isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure):
        return True
    return (isinstance(exc, psycopg.OperationalError) and conn is not None and conn.broken
            and attempt == 0)


def _message(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    return (diag.message_primary if diag is not None else None) or str(exc).strip()


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


#: URL query parameters that are catalog options, not libpq's.
URL_OPTIONS = ("schema", "max_size", "timeout", "prepare_threshold")


def parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """(the URL libpq takes, catalog options taken out of its query string)."""
    if not re.match(r"postgres(ql)?://", url):
        return url, {}
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, Any] = {}
    for key, value in query:
        if key in URL_OPTIONS:
            options[key] = _option_value(key, value)
    rest = urlencode([(k, v) for k, v in query if k not in URL_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), options


def _option_value(key: str, value: str) -> Any:
    if key == "schema":
        return value
    if key == "prepare_threshold" and value.lower() in ("none", "off", ""):
        return None
    try:
        return float(value) if key == "timeout" else int(value)
    except ValueError:
        raise InvalidInputError(f"URL parameter {key}={value!r} is not a number") from None
