"""The backend interface: a catalog of immutable records.

A catalog holds three kinds of record, each keyed by a globally unique id:
timelines, checkpoints and stage outputs (canonical JSON keyed by its SHA-256).
Everything else (carry-forward, lineage semantics, merge, sync) is written once in
the layers above, so a new backend is this class plus one line in the conformance
suite (``localckpt.testing``).

Semantics every backend must keep:
- ``commit`` is all-or-nothing and idempotent: a record whose id is already present
  with equal content is skipped; one whose id is present with other content raises
  ConflictError and nothing of the batch is written.
- Reads of unknown ids return nothing (empty list / missing key), never raise;
  the Store turns absence into NotFoundError.
- Listings are ordered by id (ids are UUIDv7, so that is creation order).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from .canonical import load_canonical
from .types import Checkpoint, Timeline

__all__ = ["Batch", "Catalog"]


@attrs.frozen
class Batch:
    """Records written together, all or nothing.

    outputs maps content hash -> canonical JSON bytes; the Store guarantees every hash
    a checkpoint references is either in this batch or already in the catalog.
    """

    timelines: Sequence[Timeline] = ()
    checkpoints: Sequence[Checkpoint] = ()
    outputs: Mapping[str, bytes] = attrs.field(factory=dict)

    def __bool__(self) -> bool:
        return bool(self.timelines or self.checkpoints or self.outputs)


class Catalog(ABC):
    """Metadata rows of one store. Backends: DuckDB log (embedded), PostgreSQL, memory."""

    #: True when other processes can write to the same catalog at once.
    supports_multiprocess: bool = False

    @abstractmethod
    def commit(self, batch: Batch) -> None:
        """Write every record of batch atomically (see module docstring)."""

    @abstractmethod
    def timelines(self, ids: Iterable[str] | None = None) -> list[Timeline]:
        """The timelines with these ids that exist (all when ids is None), ordered by id."""

    @abstractmethod
    def checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        """The checkpoints with these ids that exist, ordered by id."""

    def peek_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        """One checkpoint or None, possibly the catalog's own record: the caller reads it
        and must not mutate it. Saves use it for the parent, skipping a defensive copy."""
        found = self.checkpoints([checkpoint_id])
        return found[0] if found else None

    @abstractmethod
    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        """Direct children of a checkpoint, ordered by id."""

    @abstractmethod
    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        """The chain root .. checkpoint_id (root first), in one query; [] if unknown."""

    @abstractmethod
    def tree(self, timeline_id: str) -> list[Checkpoint]:
        """Every checkpoint of a timeline, root included, ordered by id, in one query."""

    @abstractmethod
    def outputs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """Canonical JSON bytes of the outputs with these hashes that exist."""

    def missing_outputs(self, hashes: Iterable[str]) -> set[str]:
        """Hashes the catalog lacks. Backends may override with a cheaper existence check."""
        wanted = set(hashes)
        return wanted - set(self.outputs(wanted))

    def load_values(self, hashes: Iterable[str]) -> dict[str, Any]:
        """Decoded outputs by hash, each verified against its hash (CorruptDataError)."""
        return {h: load_canonical(data, h) for h, data in self.outputs(hashes).items()}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files. Further calls are undefined."""

    def describe(self) -> str:
        """Where the catalog lives, for messages (never includes credentials)."""
        return type(self).__name__
