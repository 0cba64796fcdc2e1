"""The SQLite engine: the embedded default, one database file, many processes.

Why SQLite (measured here, see docs/storage.md): the standard library's ``sqlite3`` in
WAL mode reads a tree of 1,000 checkpoints among 1,000,000 in ~8 ms and takes durable
saves from 8 processes at once with no errors; nothing to install or start.

- WAL: readers never wait for writers; one writer at a time. A write transaction is a
  few statements (``BEGIN IMMEDIATE`` takes the lock at once, so two writers never both
  start and then deadlock), and a writer that finds the lock taken waits up to
  ``timeout`` seconds, then gets BackendUnavailableError naming the file. Writing
  processes queue for it on a lock file (``writer_queue``): the kernel hands the turn
  on, where SQLite's own waiting would poll.
- ``synchronous=FULL`` with fsync=True (a committed save survives power loss),
  ``NORMAL`` with fsync=False (it survives the process being killed).
- Group commit: threads of one process that write at once share one transaction and
  one fsync. Their writes run one after the other in it; when one is refused (rare: a
  guard, a stored id), the transaction is rolled back and the group runs again with
  each write in a savepoint of its own, so one refused write does not take the others
  with it (a savepoint around every write cost two statements each). The thread that
  commits for a group first waits up to 1 ms for the other threads that wrote in the
  last two groups (``_GATHER``): without it, four threads saving at once committed ~2
  writes a transaction, their Python turns under the GIL arriving one by one.
- One connection per thread (sqlite3 connections are not shared between threads);
  after a fork the child opens its own. An in-memory database (``:memory:``, the
  ``memory://`` store) is one connection that threads take turns on.
"""

from __future__ import annotations

import contextlib
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
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
from .writer_queue import WriterQueue

__all__ = ["SqliteEngine"]

_T = TypeVar("_T")

#: How often a writer waiting for the lock tries again: from 0.5 ms, doubling to 4 ms.
_FIRST_POLL, _LAST_POLL = 0.0005, 0.004
#: The gap left between two back-to-back transactions of one engine: longer than a
#: waiting writer's poll, so it takes the lock in between.
_GIVE_WAY = 1.5 * _LAST_POLL
#: Back-to-back transactions (each begun within two gaps of the last one's end) that go
#: without the gap: only a loop of them (a gc's batches) can keep a waiting writer out,
#: while a stage run's commit takes three in a row (four, right after another write of
#: the engine) and paid ~9 ms of gaps for them.
_FREE_IN_A_ROW = 4
#: How long a thread about to commit for a group waits for the other threads that wrote
#: in the last two groups to join it (group commit): four threads saving at once
#: committed ~2.1 writes a transaction without it, ~4 with it (measured: 0.5 ms gave
#: ~2.9, 1 ms all four). A wait that nobody joins doubles the number of groups that
#: skip it (up to _SKIP_MOST), so threads that write in turn, not at once, pay it rarely.
_GATHER = 0.001
_SKIP_MOST = 1024
_THREAD = operator.attrgetter("thread")


#: a forked child's references to its parent's connections: SQLite says a connection must
#: not be used across a fork, closing included, so the child keeps them unclosed until
#: it exits rather than letting its garbage collection close them
_INHERITED: list[Any] = []


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


#: what to do when the catalog file cannot be opened at all
_RESTORE = ("Restore the store directory from a copy, or pull its timelines from a store "
            "that holds them into a new directory (`localckpt --store NEW_DIR pull OTHER`)")

_CORRUPT = ("malformed", "not a database", "database corrupt", "file is encrypted",
            "Could not decode to UTF-8",
            # a column the schema's migrations made is gone: the schema's text is damaged
            "no such column")


class _Tx(Tx):
    def __init__(self, engine: SqliteEngine, conn: sqlite3.Connection) -> None:
        self._engine = engine
        self._conn = conn

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:  # not `with translated()`: this is the hot path of every save
            return self._conn.execute(statement, params).fetchall()
        except sqlite3.Error as exc:
            raise self._engine.translate(exc) from None
        except (UnicodeDecodeError, UnicodeEncodeError) as exc:
            raise self._engine.unicode_error(exc) from None

    def execute(self, statement: str, params: Sequence[Any] = (), many: bool = False) -> int:
        try:
            cur = (self._conn.executemany(statement, params) if many
                   else self._conn.execute(statement, params))
        except sqlite3.Error as exc:
            raise self._engine.translate(exc) from None
        except (UnicodeDecodeError, UnicodeEncodeError) as exc:
            raise self._engine.unicode_error(exc) from None
        return cur.rowcount

    def run(self, steps: Sequence[Step]) -> None:
        conn = self._conn
        try:
            for step in steps:
                if step.refuse is not None:
                    if conn.execute(step.statement, step.params).fetchone() is not None:
                        raise Refused(*step.refuse)
                elif step.many:
                    conn.executemany(step.statement, step.params)
                else:
                    conn.execute(step.statement, step.params)
        except sqlite3.Error as exc:
            raise self._engine.translate(exc) from None
        except (UnicodeDecodeError, UnicodeEncodeError) as exc:
            raise self._engine.unicode_error(exc) from None


class _Entry:
    """One thread's write waiting in the group commit's queue."""

    __slots__ = ("done", "error", "steps", "thread")

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = steps
        self.done = False
        self.error: BaseException | None = None
        self.thread = threading.get_ident()


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
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._queue: list[_Entry] = []
        self._flushing = False
        self._waiting = 0  # threads waiting in write() for a group to be flushed
        #: group commit's gathering (see _GATHER): threads of the last group, how many
        #: threads wrote in the last two, groups left to flush without gathering, and
        #: how many those are after the next wait that nobody joins
        self._last_threads: set[int] = set()
        self._writers_seen = 1
        self._skip = 0
        self._skip_next = 1
        #: gathering waits that nobody joined (a counter for tests)
        self.lone_gathers = 0
        self._pid = os.getpid()
        self._closed = False
        #: write transactions committed (a counter for tests of group commit)
        self.commits = 0
        #: statements that found the database locked and waited (a counter for tests of
        #: the writers' queue: writers that queue never meet SQLite's lock taken)
        self.busy_waits = 0
        self.memory = path == ":memory:"
        self._shared: sqlite3.Connection | None = None
        self._turn = threading.RLock() if self.memory else contextlib.nullcontext()
        #: writing processes take turns here before SQLite's lock (see writer_queue)
        self._writers = None if self.memory or read_only else WriterQueue(path, timeout)
        self._last_transaction = 0.0
        self._in_a_row = 0  # transactions begun back to back (see _FREE_IN_A_ROW)
        #: gaps left for waiting writers (see _GIVE_WAY; a counter for tests)
        self.gaps = 0
        #: True while the store opens (sqlite_catalog): damage met then stops every
        #: command, verify too, so the message must not send the user to verify
        self.opening = False

    # -- connections ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        with self.translated():
            if self.read_only:
                return self._connect_read_only()
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False, cached_statements=512)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                self._configure(conn)
                if not self.memory:  # waits are polled by _wait_for_lock, not by SQLite
                    conn.execute("PRAGMA busy_timeout = 0")
            except BaseException:
                conn.close()
                raise
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA cell_size_check=ON")  # damage found, not followed

    def _connect_read_only(self) -> sqlite3.Connection:
        """A directory this process may not write: read-only; where even SQLite's shared
        memory file cannot be made (a read-only mount), as an immutable file."""
        for query in ("mode=ro", "mode=ro&immutable=1"):
            conn = sqlite3.connect(f"file:{quote(self.path)}?{query}", timeout=self.timeout,
                                   isolation_level=None, check_same_thread=False,
                                   cached_statements=512, uri=True)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
                self._configure(conn)
                return conn
            except sqlite3.OperationalError:
                conn.close()
                if "immutable" in query:
                    raise
        raise AssertionError("unreachable")

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
            _INHERITED.append((self._local, self._all))  # never closed here (see below)
            self._local = threading.local()
            self._all = []
            self._mutex = threading.Lock()
            self._cond = threading.Condition(self._mutex)
            self._queue, self._flushing, self._waiting = [], False, 0
            self._last_threads, self._writers_seen, self._skip, self._skip_next = set(), 1, 0, 1
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        self._closed = True
        if self._writers is not None:
            self._writers.close()
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
        """Translate sqlite3 errors raised inside the block (see translate)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self.translate(exc) from None
        except (UnicodeDecodeError, UnicodeEncodeError) as exc:
            raise self.unicode_error(exc) from None

    def unicode_error(self, exc: UnicodeError) -> LocalckptError:
        """Text that is not UTF-8 in the file is damage; text we cannot encode is input."""
        if isinstance(exc, UnicodeDecodeError):
            return CorruptDataError(
                f"the catalog file {self.path} is damaged (text that is not UTF-8: {exc}); "
                "run `localckpt verify`, then restore the store or re-sync it from another")
        return InvalidInputError(
            "a value given to the SQLite catalog is not valid Unicode (a lone surrogate?) and "
            "cannot be stored or looked up; pass proper text")

    def translate(self, exc: sqlite3.Error) -> LocalckptError:
        """The one place sqlite3 errors become localckpt errors."""
        text = str(exc)
        if isinstance(exc, sqlite3.IntegrityError):
            if "UNIQUE" in text or "PRIMARY KEY" in text:
                return Duplicate(text)
            return CorruptDataError(f"{self.describe()}: {exc}")
        if "not a database" in text or "file is encrypted" in text:
            # no SQLite header: nothing opens it, verify neither, so verify is no advice
            return CorruptDataError(
                f"the catalog file {self.path} is not an SQLite database ({text}): it is "
                "not a localckpt catalog, or something overwrote it; no command can read "
                f"this store, `localckpt verify` neither. {_RESTORE}")
        if any(mark in text for mark in _CORRUPT) and self.opening:
            return CorruptDataError(
                f"the catalog file {self.path} is damaged ({text}) where opening the store "
                f"reads it: no command can open this store, `localckpt verify` neither. "
                f"{_RESTORE}")
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
        if "disk is full" in text:  # SQLITE_FULL: the write rolled back whole
            return BackendUnavailableError(
                f"the disk holding the catalog file {self.path} is full ({text}): nothing of "
                "this write was saved. Free space and try again (`localckpt gc` frees the "
                "space of what was deleted before)")
        return BackendUnavailableError(f"the catalog file {self.path} cannot be used: {text}")

    # -- reads and writes -------------------------------------------------------------------

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._turn:
            conn = self._conn()
            text = self.sql(statement)
            return self._wait_for_lock(lambda: conn.execute(text, params).fetchall())

    def snapshot(self, queries: Sequence[tuple[str, Sequence[Any]]]
                 ) -> list[list[tuple[Any, ...]]]:
        with self._turn:
            conn = self._conn()
            return self._wait_for_lock(lambda: self._read_all(conn, queries))

    def _read_all(self, conn: sqlite3.Connection,
                  queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        """The queries in one read transaction (one snapshot)."""
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
        """An interactive write transaction. One begun right after a few others of this
        engine (a gc's batches) first waits out a gap in which polling writers take the
        lock (see _FREE_IN_A_ROW)."""
        with self._turn:
            conn = self._conn()
            since = time.monotonic() - self._last_transaction
            self._in_a_row = self._in_a_row + 1 if since < 2 * _GIVE_WAY else 0
            if self._in_a_row >= _FREE_IN_A_ROW and since < _GIVE_WAY and not self.memory:
                self.gaps += 1
                time.sleep(_GIVE_WAY - since)
            self._take_turn()
            try:
                self._begin_immediate(conn)
                try:
                    yield _Tx(self, conn)
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                with self.translated():
                    conn.execute("COMMIT")
            finally:
                self._give_turn()
            self.commits += 1
            self._last_transaction = time.monotonic()

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock (see _wait_for_lock)."""
        self._wait_for_lock(lambda: conn.execute("BEGIN IMMEDIATE"))

    def _wait_for_lock(self, attempt: Callable[[], _T]) -> _T:
        """attempt(), tried again every few milliseconds while another connection holds
        the lock it needs, for up to ``timeout`` seconds. SQLite's own busy handler
        backs off to 100 ms between tries, so a save behind a gc's batches (each a short
        transaction, one soon after the other) would lose the race for seconds; polled
        this often, it gets the lock between two batches."""
        try:  # uncontended: no wait, and no context manager on the path of every read
            return attempt()
        except sqlite3.OperationalError as exc:
            if self.memory or not _is_busy(exc):
                raise self.translate(exc) from None
        except sqlite3.Error as exc:
            raise self.translate(exc) from None
        except (UnicodeDecodeError, UnicodeEncodeError) as exc:
            raise self.unicode_error(exc) from None
        self.busy_waits += 1
        with self.translated():
            deadline = time.monotonic() + self.timeout
            pause = _FIRST_POLL
            while True:
                time.sleep(pause)
                pause = min(pause * 2, _LAST_POLL)
                try:
                    return attempt()
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() >= deadline:
                        raise

    def write(self, steps: Sequence[Step]) -> None:
        """Join the group of writes that commit together (see the module docstring)."""
        if self.memory:
            with self.transaction() as tx:
                tx.run(steps)
            return
        conn = self._conn()
        entry = _Entry(steps)
        cond, mutex = self._cond, self._mutex
        gathered = False
        with mutex:  # the condition's lock: `with cond` is two Python calls more
            queue = self._queue
            queue.append(entry)
            if self._waiting and len(queue) >= self._writers_seen:
                cond.notify_all()  # a gathering thread: every writer expected is here
            while not entry.done:
                if self._flushing:
                    self._waiting += 1
                    try:
                        cond.wait()
                    finally:
                        self._waiting -= 1
                    continue
                if not gathered and len(self._queue) < self._writers_seen:
                    gathered = True
                    if self._skip:
                        self._skip -= 1
                    else:
                        self._gather(cond, entry)
                        continue
                group, self._queue = self._queue, []
                threads = set(map(_THREAD, group))
                self._writers_seen = len(threads | self._last_threads)
                self._last_threads = threads
                self._flushing = True
                mutex.release()
                try:
                    self._flush(conn, group)
                finally:
                    mutex.acquire()
                    self._flushing = False
                    if self._waiting:  # a lone writer has no one to wake
                        cond.notify_all()
        if entry.error is not None:
            raise entry.error

    def _gather(self, cond: threading.Condition, entry: _Entry) -> None:
        """Wait (holding cond's lock, given up while waiting) up to _GATHER for the
        other threads expected to write to join the queue; see _GATHER."""
        before = len(self._queue)
        self._waiting += 1
        try:
            cond.wait(_GATHER)
        finally:
            self._waiting -= 1
        if entry.done or self._flushing or len(self._queue) > before:
            self._skip_next = 1
        else:  # nobody came: skip the wait for a while, longer each time
            self.lone_gathers += 1
            self._skip = self._skip_next
            self._skip_next = min(2 * self._skip_next, _SKIP_MOST)

    def _take_turn(self) -> None:
        if self._writers is not None:
            self._writers.take()

    def _give_turn(self) -> None:
        if self._writers is not None:
            self._writers.give()

    def _flush(self, conn: sqlite3.Connection, group: list[_Entry]) -> None:
        writers = self._writers
        if writers is None:
            self._flush_in_turn(conn, group)
            return
        try:
            writers.take()
        except BaseException as exc:
            for e in group:
                e.error, e.done = exc, True
            return
        try:
            self._flush_in_turn(conn, group)
        finally:
            writers.give()

    def _flush_in_turn(self, conn: sqlite3.Connection, group: list[_Entry]) -> None:
        tx = _Tx(self, conn)
        try:
            try:  # uncontended (this process's turn is taken): no wait to set up
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                self._begin_immediate(conn)
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
            elif not self._run_all(tx, conn, group):
                # one write was refused: the group again, each write in a savepoint, so
                # that only the refused ones are left out
                self._begin_immediate(conn)
                for e in group:
                    conn.execute("SAVEPOINT w")
                    try:
                        tx.run(e.steps)
                    except (Duplicate, Refused, LocalckptError) as exc:
                        e.error = exc
                        conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
            try:  # not `with translated()`: this is the path of every save
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self.translate(exc) from None
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

    @staticmethod
    def _run_all(tx: _Tx, conn: sqlite3.Connection, group: list[_Entry]) -> bool:
        """Every write of a group in the open transaction, without savepoints (each costs
        two statements, and writes are almost never refused); False, the transaction
        rolled back, when one was refused."""
        try:
            for e in group:
                tx.run(e.steps)
        except (Duplicate, Refused, LocalckptError):
            conn.execute("ROLLBACK")
            return False
        return True

    def integrity_problems(self) -> list[str]:
        try:
            rows = self.query("PRAGMA integrity_check")
        except LocalckptError as exc:
            return [str(exc)]
        return [str(r[0]) for r in rows if r[0] != "ok"]
