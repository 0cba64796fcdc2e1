"""Typed errors raised by localckpt.

Every error says what was wrong and what to do. Backend exceptions (duckdb, psycopg,
botocore, OSError from fsspec) are translated at the boundary, so callers only ever
catch these::

    LocalckptError
     +-- NotFoundError (also LookupError)       unknown timeline / checkpoint / frame
     |    '-- TimelineNotFoundError (also ValueError; compat, as the seed raised)
     +-- InvalidInputError (also ValueError)    bad frames, non-JSON outputs, unknown URL scheme
     +-- ConflictError                          same id, other content (sync, import)
     |    +-- MergeConflict                     .conflicts lists every stage / key in conflict
     |    '-- HiddenWorkError                   a transfer's deletions would take unseen work
     +-- CorruptDataError                       bytes that do not match their hash
     +-- SchemaVersionError                     a store written by a newer localckpt
     +-- StoreClosedError                       a call on a store after close()
     '-- BackendUnavailableError                a server that cannot be reached

An error raised where the Python API and the command line would say different things
(``strategy="ours"`` against ``--strategy ours``) carries both: ``str(exc)`` speaks the
API, ``exc.for_cli()`` the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BackendUnavailableError",
    "ConflictError",
    "CorruptDataError",
    "HiddenWorkError",
    "InvalidInputError",
    "LocalckptError",
    "MergeConflict",
    "NotFoundError",
    "ReadOnlyQueryError",
    "SchemaVersionError",
    "StoreClosedError",
    "TimelineNotFoundError",
]


class LocalckptError(Exception):
    """Root of every error localckpt raises on purpose.

    cli: the same message for command-line users, where it differs (flags instead of
    keyword arguments); :meth:`for_cli` returns it, else the message itself.
    """

    def __init__(self, *args: object, cli: str | None = None) -> None:
        super().__init__(*args)
        self.cli = cli

    def for_cli(self) -> str:
        return self.cli if self.cli is not None else str(self)


class NotFoundError(LocalckptError, LookupError):
    """An id (timeline, checkpoint, frame sequence) that the store does not hold."""


class TimelineNotFoundError(NotFoundError, ValueError):
    """Unknown timeline in ``localckpt.compat``, where the seed raised ValueError."""


class InvalidInputError(LocalckptError, ValueError):
    """Input rejected before anything was written; the store is unchanged."""


class ReadOnlyQueryError(InvalidInputError):
    """A statement store.sql refuses: not one SELECT (writes, DDL, SET, ATTACH, COPY...)."""


class ConflictError(LocalckptError):
    """A record with the same id but different content already exists."""


class MergeConflict(ConflictError):
    """Both sides of a merge changed the same stage or key differently.

    ``conflicts`` lists every conflict, each a ``(kind, key, ours, theirs)`` tuple where
    kind is ``"stage"``, ``"config"`` or ``"stats"``. Nothing was written.
    """

    def __init__(
        self, message: str, conflicts: Sequence[tuple[str, str, Any, Any]], *,
        cli: str | None = None,
    ) -> None:
        super().__init__(message, cli=cli)
        self.conflicts: list[tuple[str, str, Any, Any]] = list(conflicts)


class HiddenWorkError(ConflictError):
    """The deletions a transfer would copy take checkpoints of the destination that the
    source never held (work saved below what the source deleted), and the caller asked
    to refuse that (``hide_unseen=False``; ``push`` and ``pull`` without ``--force``).

    ``checkpoints`` lists their ids. Nothing was copied.
    """

    def __init__(self, message: str, checkpoints: Sequence[str], *,
                 cli: str | None = None) -> None:
        super().__init__(message, cli=cli)
        self.checkpoints: list[str] = list(checkpoints)


class CorruptDataError(LocalckptError):
    """Stored bytes that do not match their recorded hash or cannot be parsed."""


class SchemaVersionError(LocalckptError):
    """A store written by a newer localckpt (catalog schema or store format): upgrade."""


class StoreClosedError(LocalckptError):
    """The store (or its catalog) was closed; open it again with localckpt.open()."""


class BackendUnavailableError(LocalckptError):
    """A server (PostgreSQL, S3) could not be reached; the message names it and what to check.

    object_only: the server answered, refusing or failing one object (a 403 on a key, a
    500 for it): others may well read, so a command that reads many (verify) goes on.
    False (the default) when the server or the whole store is out of reach: it is down,
    stalled, refuses the credentials, or the bucket is missing.
    """

    def __init__(self, *args: object, cli: str | None = None, object_only: bool = False,
                 ) -> None:
        super().__init__(*args, cli=cli)
        self.object_only = object_only
