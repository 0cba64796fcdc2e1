"""What gc frees in the catalog: the one measure that prune, retain, rm and gc share.

A deletion writes tombstones; gc later purges what they delete
(``Catalog.purge_deleted``). :func:`catalog_garbage` decides, from every record the
catalog holds, which records a purge removes, with the rules every catalog's purge
follows:

- a timeline a tombstone targets;
- every checkpoint of such a timeline, and every checkpoint a tombstone targets, with
  the checkpoints below it (its subtree by parent links);
- a tag a tombstone targets, or whose checkpoint goes;
- an output (stage output, by hash) that a going checkpoint refers to and no staying
  checkpoint does.

The measure counts those records and the bytes of those outputs' canonical JSON. That
is what the catalog stops holding, not how much a database file shrinks: SQLite and
PostgreSQL reuse freed pages rather than return them, and row overheads and indexes are
not counted. Outputs no checkpoint ever referred to (staged by a sync that never
committed) are purged too but not predicted here. Frame objects are measured by the
object store's own sizes, in ``localckpt.gc``.

A deletion reports its share with :func:`freed_by`: the records it adds to the purge
(the garbage with its tombstones, less the garbage without them), so ``prune`` then
``gc --dry-run`` agree when nothing else was waiting, and ``gc`` frees what they said.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from ..types import Checkpoint, Tag, Tombstone
from ..visibility import dead_in_tree

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["CatalogGarbage", "Records", "catalog_garbage", "freed_by", "read_records"]


@attrs.frozen
class Records:
    """Every record a catalog holds, read once (deleted ones included)."""

    checkpoints: tuple[Checkpoint, ...]
    timelines: frozenset[str]
    tags: tuple[Tag, ...]
    tombstones: tuple[Tombstone, ...]


def read_records(store: Store) -> Records:
    """Every timeline, checkpoint, tag and tombstone of the store's catalog (one call
    per timeline for its tree)."""
    catalog = store.catalog
    timelines = [t.id for t in catalog.timelines(None)]
    checkpoints = tuple(c for tid in timelines for c in catalog.tree(tid))
    return Records(checkpoints, frozenset(timelines), tuple(catalog.tags(None)),
                   tuple(catalog.tombstones(None)))


@attrs.frozen
class CatalogGarbage:
    """Records a purge removes. outputs: hash -> bytes of its canonical JSON."""

    timelines: frozenset[str] = frozenset()
    checkpoints: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    outputs: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def records(self) -> int:
        """How many records go: timelines, checkpoints, tags and outputs."""
        return len(self.timelines) + len(self.checkpoints) + len(self.tags) + len(self.outputs)

    @property
    def output_bytes(self) -> int:
        return sum(self.outputs.values())

    def minus(self, other: CatalogGarbage) -> CatalogGarbage:
        return CatalogGarbage(self.timelines - other.timelines,
                              self.checkpoints - other.checkpoints, self.tags - other.tags,
                              {h: n for h, n in self.outputs.items() if h not in other.outputs})


def _dead(records: Records, extra: Iterable[Tombstone]) -> tuple[
        frozenset[str], frozenset[str], frozenset[str], set[str]]:
    """(timelines, checkpoints, tags, candidate output hashes) a purge removes."""
    marks = [*records.tombstones, *extra]
    targets = {t.target_id for t in marks}
    dead_t = frozenset(t for t in records.timelines if t in targets)
    by_timeline: dict[str, list[Checkpoint]] = {}
    for c in records.checkpoints:
        by_timeline.setdefault(c.timeline_id, []).append(c)
    dead_c: set[str] = set()
    for tid, tree in by_timeline.items():
        if tid in targets:
            dead_c.update(c.id for c in tree)
        elif marked := [c.id for c in tree if c.id in targets]:
            dead_c |= dead_in_tree(tree, marked) & {c.id for c in tree}
    dead_g = frozenset(g.id for g in records.tags
                       if g.id in targets or g.checkpoint_id in dead_c
                       or g.timeline_id in targets)
    used = {h for c in records.checkpoints if c.id not in dead_c
            for h in c.stage_hashes.values()}
    freed = {h for c in records.checkpoints if c.id in dead_c
             for h in c.stage_hashes.values()} - used
    return dead_t, frozenset(dead_c), dead_g, freed


def _sized(store: Store, dead: tuple[frozenset[str], frozenset[str], frozenset[str], set[str]],
           skip: Iterable[str] = ()) -> CatalogGarbage:
    timelines, checkpoints, tags, hashes = dead
    wanted = hashes - set(skip)
    found = store.catalog.outputs(wanted) if wanted else {}
    return CatalogGarbage(timelines, checkpoints, tags,
                          {h: len(found[h]) for h in sorted(found)})


def catalog_garbage(store: Store, records: Records | None = None) -> CatalogGarbage:
    """What ``Catalog.purge_deleted`` removes now (see the module docstring)."""
    records = read_records(store) if records is None else records
    return _sized(store, _dead(records, ()))


def freed_by(store: Store, tombstones: Iterable[Tombstone],
             records: Records | None = None) -> CatalogGarbage:
    """What these new tombstones add to what gc purges: the garbage with them, less the
    garbage already waiting without them."""
    records = read_records(store) if records is None else records
    before = _dead(records, ())
    after = _dead(records, list(tombstones))
    return _sized(store, after, skip=before[3]).minus(
        CatalogGarbage(before[0], before[1], before[2]))
