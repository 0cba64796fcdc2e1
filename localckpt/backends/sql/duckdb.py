"""The DuckDB engine: the same catalog in one DuckDB file, for one process at a time.

DuckDB allows one process to hold a database file: while it does, another process
cannot open it at all (FACTS.md). So this engine is for analytics and for comparing
backends, not the embedded default: a second process gets BackendUnavailableError at
once, naming the file. Inside the process, threads share one connection (a cursor each)
and writes take turns.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb

from ...errors import (
    BackendUnavailableError,
    CorruptDataError,
    InvalidInputError,
    LocalckptError,
    StoreClosedError,
)
from .dialects import DUCKDB
from .engine import Duplicate, Engine, Step, Tx

__all__ = ["DuckdbEngine"]


class _Tx(Tx):
    def __init__(self, engine: DuckdbEngine, cur: duckdb.DuckDBPyConnection) -> None:
        self._engine = engine
        self._cur = cur

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._engine.translated():
            return self._cur.execute(statement, list(params)).fetchall()

    def execute(self, statement: str, params: Sequence[Any] = (), many: bool = False) -> int:
        with self._engine.translated():
            if many:
                if params:
                    self._cur.executemany(statement, [list(p) for p in params])
                return -1
            found = self._cur.execute(statement, list(params)).fetchall()
            # DuckDB answers a DELETE, UPDATE or INSERT with one row: how many it changed
            return int(found[0][0]) if len(found) == 1 and len(found[0]) == 1 else -1


class DuckdbEngine(Engine):
    """One DuckDB file, held by this process."""

    dialect = DUCKDB
    supports_multiprocess = False

    def __init__(self, path: str, *, read_only: bool = False) -> None:
        super().__init__()
        self.path = path
        try:
            self._con = duckdb.connect(path, read_only=read_only)
        except duckdb.Error as exc:
            text = str(exc)
            if "lock" in text.lower():
                holder = re.search(r"\(PID (\d+)\)", text)  # DuckDB names the holder
                which = f" (pid {holder.group(1)})" if holder else ""
                raise BackendUnavailableError(
                    f"the DuckDB catalog {path} is open in another process{which}: DuckDB "
                    "lets one process hold a database file at a time (a `localckpt serve` "
                    "of it too). Close that process, or use the embedded SQLite store (a "
                    "directory) for several processes") from None
            raise BackendUnavailableError(f"cannot open the DuckDB catalog {path}: {text}"
                                          ) from None
        self._con.execute("SET TimeZone = 'UTC'")
        self._local = threading.local()
        self._write = threading.RLock()
        self._closed = False

    def _cur(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise StoreClosedError(f"the catalog {self.path} is closed; open the store again")
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._local.cur = self._con.cursor()
        return cur

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(duckdb.Error):
            self._con.close()

    def describe(self) -> str:
        return f"DuckDB catalog {self.path}"

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        try:
            yield
        except duckdb.ConstraintException as exc:
            if "Duplicate key" in str(exc) or "PRIMARY KEY" in str(exc):
                raise Duplicate(str(exc)) from None
            raise CorruptDataError(f"{self.describe()}: {exc}") from None
        except duckdb.Error as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: duckdb.Error) -> LocalckptError:
        text = str(exc)
        if "cannot encode str as UTF-8" in text:
            return InvalidInputError(
                "a value given to the DuckDB catalog is not valid Unicode (a lone "
                "surrogate?) and cannot be stored or looked up; pass proper text")
        if "Catalog Error" in text or "Binder Error" in text or "Parser Error" in text:
            return LocalckptError(f"{self.describe()} failed: {text}")
        if "corrupt" in text.lower() or "checksum" in text.lower():
            return CorruptDataError(f"the catalog file {self.path} is damaged: {text}")
        return BackendUnavailableError(f"the DuckDB catalog {self.path} cannot be used: {text}")

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._cur()
        with self.translated():
            return cur.execute(self.sql(statement), list(params)).fetchall()

    def snapshot(self, queries: Sequence[tuple[str, Sequence[Any]]]
                 ) -> list[list[tuple[Any, ...]]]:
        cur = self._cur()
        with self.translated():
            cur.execute("BEGIN TRANSACTION")
            try:
                return [cur.execute(self.sql(q), list(p)).fetchall() for q, p in queries]
            finally:
                cur.execute("COMMIT")

    def has_table(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM information_schema.tables WHERE table_name = ?",
                               (name,)))

    def lock_schema(self, tx: Tx) -> None:
        """One process holds the file: nothing to lock."""

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        cur = self._cur()
        with self._write:
            with self.translated():
                cur.execute("BEGIN TRANSACTION")
            try:
                yield _Tx(self, cur)
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
                raise
            with self.translated():
                cur.execute("COMMIT")

    def write(self, steps: Sequence[Step]) -> None:
        with self.transaction() as tx:
            tx.run(steps)
