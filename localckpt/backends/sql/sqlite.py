"""The SQLite engine: the embedded default, one database file, many processes.

Why SQLite (measured here, see docs/storage.md): the standard library's ``sqlite3`` in
WAL mode reads a tree of 1,000 checkpoints among 1,000,000 in ~8 ms and takes durable
saves from 8 processes at once with no errors; nothing to install or start.

- WAL: readers never wait for writers; one writer at a time. A write transaction is a
  few statements (``BEGIN IMMEDIATE`` takes the lock at once, so two writers never both
  start and then deadlock), and a writer that finds the lock taken waits up to
  ``timeout`` seconds, then gets BackendUnavailableError naming the file.
- ``synchronous=FULL`` with fsync=True (a committed save survives power loss),
  ``NORMAL`` with fsync=False (it survives the process being killed).
- Group commit: threads of one process that write at once share one transaction and
  one fsync; each thread's write runs in a savepoint of its own, so one refused write
  does not take the others with it.
- One connection per thread (sqlite3 connections are not shared between threads);
  after a fork the child opens its own. An in-memory database (``:memory:``, the
  ``memory://`` store) is one connection that threads take turns on.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

from ...errors import (
    BackendUnavailableError,
    CorruptDataError,
    InvalidInputError,
    LocalckptError,
    StoreClosedError,
)
from .dialects import SQLITE
from .engine import Duplicate, Engine, Refused, Step, Tx

__all__ = ["SqliteEngine"]

_CORRUPT = ("malformed", "not a database", "database corrupt", "file is encrypted",
            "Could not decode to UTF-8")


class _Tx(Tx):
    def __init__(self, engine: SqliteEngine, conn: sqlite3.Connection) -> None:
        self._engine = engine
        self._conn = conn

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._engine.translated():
            return self._conn.execute(statement, params).fetchall()

    def execute(self, statement: str, params: Sequence[Any] = (), many: bool = False) -> int:
        with self._engine.translated():
            cur = (self._conn.executemany(statement, params) if many
                   else self._conn.execute(statement, params))
            return cur.rowcount


class _Entry:
    __slots__ = ("done", "error", "steps")

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = steps
        self.done = False
        self.error: BaseException | None = None


class SqliteEngine(Engine):
    """Connections to one SQLite catalog file."""

    dialect = SQLITE

    def __init__(self, path: str, *, fsync: bool = True, timeout: float = 10.0,
                 read_only: bool = False) -> None:
        super().__init__()
        self.path = path
        self.fsync = fsync
        self.timeout = timeout
        self.read_only = read_only
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Entry] = []
        self._flushing = False
        self._pid = os.getpid()
        self._closed = False
        #: write transactions committed (a counter for tests of group commit)
        self.commits = 0
        self.memory = path == ":memory:"
        self._shared: sqlite3.Connection | None = None
        self._turn = threading.RLock() if self.memory else contextlib.nullcontext()

    # -- connections ------------------------------------------------------------------------

    def _connect(self, immutable: bool = False) -> sqlite3.Connection:
        if self.read_only:
            target, uri = f"file:{quote(self.path)}?mode=ro", True
            if immutable:
                target += "&immutable=1"
        else:
            target, uri = self.path, False
        with self.translated():
            conn = sqlite3.connect(target, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False, cached_statements=512, uri=uri)
            try:
                if not self.read_only:
                    conn.execute("PRAGMA journal_mode=WAL")
                elif not immutable:
                    try:
                        conn.execute("SELECT count(*) FROM sqlite_master")
                    except sqlite3.OperationalError:
                        # a WAL database whose -wal and -shm files are gone (closed
                        # cleanly) on a read-only medium: SQLite can only open it as
                        # immutable; nobody writes it while nobody can create the -wal
                        if os.path.exists(self.path + "-wal"):
                            raise
                        conn.close()
                        return self._connect(immutable=True)
                conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
                conn.execute("PRAGMA foreign_keys=OFF")
                conn.execute("PRAGMA cell_size_check=ON")  # damage found, not followed
            except BaseException:
                conn.close()
                raise
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosedError(f"the catalog {self.path} is closed; open the store again")
        if self.memory:
            if self._shared is None:
                self._shared = self._connect()
                self._all.append(self._shared)
            return self._shared
        if os.getpid() != self._pid:  # forked: the parent's connections are not ours
            self._pid = os.getpid()
            self._local = threading.local()
            self._all = []
            self._cond = threading.Condition(threading.Lock())
            self._queue, self._flushing = [], False
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._all = self._all, []
        if os.getpid() != self._pid:
            return
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def describe(self) -> str:
        return "memory catalog" if self.memory else f"SQLite catalog {self.path}"

    # -- errors -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        """The one place sqlite3 errors become localckpt errors."""
        try:
            yield
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                raise Duplicate(str(exc)) from None
            raise CorruptDataError(f"{self.describe()}: {exc}") from None
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        except UnicodeDecodeError as exc:  # text in the file that is not UTF-8: damage
            raise CorruptDataError(
                f"the catalog file {self.path} is damaged (text that is not UTF-8: {exc}); "
                "run `localckpt verify`, then restore the store or re-sync it from another"
            ) from None
        except UnicodeEncodeError:
            raise InvalidInputError(
                "a value given to the SQLite catalog is not valid Unicode (a lone "
                "surrogate?) and cannot be stored or looked up; pass proper text") from None

    def _translate(self, exc: sqlite3.Error) -> LocalckptError:
        text = str(exc)
        if any(mark in text for mark in _CORRUPT):
            return CorruptDataError(
                f"the catalog file {self.path} is damaged ({text}); run `localckpt verify`, "
                "then restore the store or re-sync it from another")
        if "locked" in text or "busy" in text:
            return BackendUnavailableError(
                f"the catalog file {self.path} stayed locked by another writer for more than "
                f"{self.timeout:g} s ({text}): another process is writing (a long gc or "
                "import?) or hangs holding the lock. Wait and retry, or find that process "
                "(fuser, lsof)")
        if "readonly" in text or "read-only" in text:
            return BackendUnavailableError(
                f"cannot write the catalog file {self.path}: it is read-only here ({text}); "
                "check the permissions of the store directory")
        return BackendUnavailableError(f"the catalog file {self.path} cannot be used: {text}")

    # -- reads and writes -------------------------------------------------------------------

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._turn:
            conn = self._conn()
            with self.translated():
                return conn.execute(self.sql(statement), params).fetchall()

    def snapshot(self, queries: Sequence[tuple[str, Sequence[Any]]]
                 ) -> list[list[tuple[Any, ...]]]:
        with self._turn:
            conn = self._conn()
            with self.translated():
                conn.execute("BEGIN")
                try:
                    return [conn.execute(self.sql(q), p).fetchall() for q, p in queries]
                finally:
                    conn.execute("COMMIT")

    def has_table(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                               "AND name = ?", (name,)))

    def lock_schema(self, tx: Tx) -> None:
        """BEGIN IMMEDIATE already holds the database's write lock."""

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._turn:
            conn = self._conn()
            with self.translated():
                conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Tx(self, conn)
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            with self.translated():
                conn.execute("COMMIT")
            self.commits += 1

    def write(self, steps: Sequence[Step]) -> None:
        """Join the group of writes that commit together (see the module docstring)."""
        if self.memory:
            with self.transaction() as tx:
                tx.run(steps)
            return
        conn = self._conn()
        entry = _Entry(steps)
        cond = self._cond
        with cond:
            self._queue.append(entry)
            while not entry.done:
                if self._flushing:
                    cond.wait()
                    continue
                group, self._queue = self._queue, []
                self._flushing = True
                cond.release()
                try:
                    self._flush(conn, group)
                finally:
                    cond.acquire()
                    self._flushing = False
                    cond.notify_all()
        if entry.error is not None:
            raise entry.error

    def _flush(self, conn: sqlite3.Connection, group: list[_Entry]) -> None:
        tx = _Tx(self, conn)
        try:
            with self.translated():
                conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            for e in group:
                e.error, e.done = exc, True
            return
        try:
            if len(group) == 1:
                try:
                    tx.run(group[0].steps)
                except (Duplicate, Refused, LocalckptError) as exc:
                    group[0].error = exc
                    conn.execute("ROLLBACK")
                    return
            else:
                for e in group:
                    conn.execute("SAVEPOINT w")
                    try:
                        tx.run(e.steps)
                    except (Duplicate, Refused, LocalckptError) as exc:
                        e.error = exc
                        conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
            with self.translated():
                conn.execute("COMMIT")
            self.commits += 1
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            for e in group:
                if e.error is None:
                    e.error = exc
        finally:
            for e in group:
                e.done = True

    def integrity_problems(self) -> list[str]:
        try:
            rows = self.query("PRAGMA integrity_check")
        except LocalckptError as exc:
            return [str(exc)]
        return [str(r[0]) for r in rows if r[0] != "ok"]
