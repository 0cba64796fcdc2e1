"""The engine interface the catalog is written against, and the steps of a write.

An engine owns the connections of one catalog database (a SQLite file, a PostgreSQL
schema, a DuckDB file) and runs rendered statements. A write is a list of
:class:`Step` run in one transaction: on SQLite several threads' writes share one
transaction and one fsync (group commit); on PostgreSQL the steps go to the server in
one round trip (one statement, or pipeline mode), a guard aborting the transaction
there. The catalog never sees a driver exception: engines translate them here, into
the errors of ``localckpt.errors`` and the two signals below.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from ...errors import InvalidInputError, LocalckptError
from .dialects import Dialect

__all__ = ["Duplicate", "Engine", "Refused", "Step", "Tx"]


class Duplicate(LocalckptError):
    """A plain INSERT met a key already stored: nothing of the write was kept. The
    catalog then compares the stored records with the batch (never escapes it)."""


class Dangling(InvalidInputError):
    """A write left a row referring to one that is not there (PostgreSQL's foreign
    keys): nothing of it was kept. A purge meets it when a save under a checkpoint it
    deletes committed first (read committed: the save's guard ran before the pruning
    that made it dead); the next purge takes both."""


class Refused(LocalckptError):
    """A guard step refused the write (its code says which); nothing was kept."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Step(NamedTuple):
    """One statement of a write.

    many: params is a list of rows (executemany). refuse: (code, message): the statement
    is a query, and any row it returns refuses the whole write with Refused(code).
    """

    statement: str
    params: Sequence[Any] = ()
    many: bool = False
    refuse: tuple[str, str] | None = None


class Tx(ABC):
    """An open write transaction (interactive: results are read as it goes)."""

    @abstractmethod
    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a rendered statement."""

    @abstractmethod
    def execute(self, statement: str, params: Sequence[Any] = (), many: bool = False) -> int:
        """Run a rendered statement; the rows it changed (-1 when unknown)."""

    def run(self, steps: Sequence[Step]) -> None:
        """Run steps in order (guards checked here)."""
        for step in steps:
            if step.refuse is not None:
                if self.query(step.statement, step.params):
                    raise Refused(*step.refuse)
            else:
                self.execute(step.statement, step.params, step.many)


class Engine(ABC):
    """Connections to one catalog database, and the translation of its errors."""

    dialect: Dialect
    #: what {s} renders to: '"schema".' on PostgreSQL, '' elsewhere
    prefix: str = ""
    #: other processes may write the same database at once
    supports_multiprocess: bool = True

    def __init__(self) -> None:
        self._rendered: dict[str, str] = {}

    def sql(self, statement: str) -> str:
        """The statement rendered for this engine (cached: statements are constants)."""
        text = self._rendered.get(statement)
        if text is None:
            text = self._rendered.setdefault(statement,
                                             self.dialect.render(statement, self.prefix))
        return text

    @abstractmethod
    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a statement (rendered here), read outside any write transaction."""

    @abstractmethod
    def snapshot(self, queries: Sequence[tuple[str, Sequence[Any]]]
                 ) -> list[list[tuple[Any, ...]]]:
        """The rows of several statements (rendered here) read in one snapshot, so that a
        write between them cannot make them disagree."""

    @abstractmethod
    def has_table(self, name: str) -> bool:
        """Whether the catalog's schema has this table."""

    def lock_schema(self, tx: Tx) -> None:  # noqa: B027 - optional hook
        """Inside a migration's transaction: keep other processes from migrating too."""

    @abstractmethod
    def write(self, steps: Sequence[Step]) -> None:
        """Run steps (statements rendered by the caller) in one transaction, all or
        nothing. Raises Duplicate or Refused, nothing written."""

    @abstractmethod
    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """An interactive write transaction (maintenance, the slow path of a commit)."""

    @abstractmethod
    def close(self) -> None:
        """Release every connection."""

    @abstractmethod
    def describe(self) -> str:
        """Where the database is, for messages (never a password)."""

    def integrity_problems(self) -> list[str]:
        """The engine's own check of its storage (SQLite's integrity_check)."""
        return []
