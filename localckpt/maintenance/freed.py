"""What gc frees in the catalog: the one measure that prune, retain, rm and gc share.

A deletion writes tombstones; gc later purges what they delete
(``Catalog.purge_deleted``). :meth:`localckpt.catalog.Catalog.garbage` says which records
a purge removes, by the same rules the purge follows (one implementation, so a dry run
says what the real run then does); here it is read for the whole store
(:func:`catalog_garbage`, what ``gc --dry-run`` reports) or for what new tombstones add
(:func:`freed_by`, what ``prune``, ``retain`` and ``rm`` report).

The measure counts records and the bytes of outputs' canonical JSON: what the catalog
stops holding, not how much a database file shrinks (SQLite and PostgreSQL reuse freed
pages rather than return them; row overheads and indexes are not counted). Frame objects
are measured by the object store's own sizes, in ``localckpt.gc``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..catalog import Garbage
from ..types import Tombstone

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["CatalogGarbage", "catalog_garbage", "freed_by"]

#: The name this measure had before it moved into the catalog.
CatalogGarbage = Garbage


def catalog_garbage(store: Store) -> Garbage:
    """What ``Catalog.purge_deleted`` removes now."""
    return store.catalog.garbage()


def freed_by(store: Store, tombstones: Iterable[Tombstone]) -> Garbage:
    """What these new tombstones add to what gc purges: the garbage with them, less the
    garbage already waiting without them (read for their timelines only)."""
    marks = list(tombstones)
    scope = sorted({t.timeline_id for t in marks})
    return store.catalog.garbage(scope, marks).minus(store.catalog.garbage(scope))
