"""In-process index of immutable records, shared by the memory and embedded catalogs.

Records are keyed by globally unique ids: seeing a record twice (after compaction, from
another store) is harmless when the content is equal, and a conflict when it is not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from ..catalog import Batch
from ..errors import ConflictError
from ..types import Checkpoint, LazyOutputs, Tag, Timeline, Tombstone

__all__ = ["RecordIndex", "detach"]

_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        if all(type(v) in _SCALARS for v in value.values()):
            return dict(value)
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


class RecordIndex:
    """Dicts of every record kind, with parent -> children and timeline -> ids maps."""

    def __init__(self, fetch: Callable[[list[str]], Any]) -> None:
        self._fetch = fetch
        self.timelines: dict[str, Timeline] = {}
        self.checkpoints: dict[str, Checkpoint] = {}
        self.tombstones: dict[str, Tombstone] = {}
        self.tags: dict[str, Tag] = {}
        self.deleted: set[str] = set()  # target ids of the tombstones
        # timeline -> ids of its tombstones / tags: every read and save asks for one
        # timeline's, which must not cost a pass over all of them
        self._marks_of: defaultdict[str, list[str]] = defaultdict(list)
        self._tags_of: defaultdict[str, list[str]] = defaultdict(list)
        self.children: defaultdict[str, list[str]] = defaultdict(list)
        self.by_timeline: defaultdict[str, list[str]] = defaultdict(list)

    def _groups(self, batch: Batch) -> list[tuple[str, Any, dict[str, Any]]]:
        return [
            ("timeline", batch.timelines, self.timelines),
            ("checkpoint", batch.checkpoints, self.checkpoints),
            ("tombstone", batch.tombstones, self.tombstones),
            ("tag", batch.tags, self.tags),
        ]

    def conflicts(self, batch: Batch) -> list[str]:
        """Ids in batch already present with other content."""
        bad = []
        for _, records, known in self._groups(batch):
            for r in records:
                old = known.get(r.id)
                if old is not None and old != r:
                    bad.append(r.id)
        return bad

    def new_records(self, batch: Batch) -> Batch:
        """The part of batch this index lacks (outputs are left to the caller)."""
        return Batch(
            timelines=[t for t in batch.timelines if t.id not in self.timelines],
            checkpoints=[c for c in batch.checkpoints if c.id not in self.checkpoints],
            tombstones=[t for t in batch.tombstones if t.id not in self.tombstones],
            tags=[t for t in batch.tags if t.id not in self.tags],
        )

    def add(self, batch: Batch) -> None:
        """Add every record of batch that is new (outputs are left to the caller)."""
        for t in batch.timelines:
            self.add_timeline(t)
        for c in batch.checkpoints:
            self.add_checkpoint(c)
        for x in batch.tombstones:
            self.add_tombstone(x)
        for g in batch.tags:
            self.add_tag(g)

    def add_tombstone(self, t: Tombstone) -> bool:
        if t.id in self.tombstones:
            return False
        self.tombstones[t.id] = t
        self.deleted.add(t.target_id)
        self._marks_of[t.timeline_id].append(t.id)
        return True

    def add_tag(self, t: Tag) -> bool:
        if t.id in self.tags:
            return False
        self.tags[t.id] = t
        self._tags_of[t.timeline_id].append(t.id)
        return True

    def tombstone_ids(self, timeline_id: str) -> list[str]:
        """Ids of one timeline's tombstones (no copy of the records)."""
        return self._marks_of.get(timeline_id, [])

    def get_tombstones(self, timeline_ids: Iterable[str] | None) -> list[Tombstone]:
        return _of_timelines(self.tombstones, self._marks_of, timeline_ids)

    def get_tags(self, timeline_ids: Iterable[str] | None) -> list[Tag]:
        return _of_timelines(self.tags, self._tags_of, timeline_ids)

    def check(self, batch: Batch, where: str) -> None:
        for kind, records, _ in self._groups(batch):
            seen: dict[str, Any] = {}
            for r in records:
                if seen.setdefault(r.id, r) != r:
                    raise ConflictError(
                        f"the batch holds two different {kind} records with id {r.id}; "
                        "nothing was written"
                    )
        bad = self.conflicts(batch)
        if bad:
            raise ConflictError(
                f"{len(bad)} record(s) already exist in {where} with other content "
                f"(first: {bad[0]}); ids are unique, so one of the two stores holds a modified "
                "copy. Nothing was written."
            )

    def add_timeline(self, t: Timeline) -> bool:
        if t.id in self.timelines:
            return False
        self.timelines[t.id] = t
        return True

    def detached(self, c: Checkpoint) -> Checkpoint:
        """A copy with its own dicts and output cache (see :func:`detach`)."""
        return detach(c, self._fetch)

    def ordered(self, ids: Iterable[str]) -> list[Checkpoint]:
        """Detached copies of known checkpoints, in the order of ids."""
        return [self.detached(self.checkpoints[i]) for i in ids]

    def add_checkpoint(self, c: Checkpoint, copy: bool = True) -> bool:
        """Add c if new. copy=False keeps c itself: for records nobody else holds (just
        decoded from disk, with this index's loader)."""
        if c.id in self.checkpoints:
            return False
        if copy:
            c = self.detached(c)
        self.checkpoints[c.id] = c
        if c.parent_id is not None:
            self.children[c.parent_id].append(c.id)
        self.by_timeline[c.timeline_id].append(c.id)
        return True

    def get_checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        found = {i: self.checkpoints[i] for i in ids if i in self.checkpoints}
        return [self.detached(found[i]) for i in sorted(found)]

    def find_ids(self, kind: str, prefix: str, limit: int) -> list[str]:
        records = self.timelines if kind == "timeline" else self.checkpoints
        return sorted(i for i in records if i.startswith(prefix))[:limit]

    def get_timelines(self, ids: Iterable[str] | None) -> list[Timeline]:
        if ids is None:
            return [self.timelines[i] for i in sorted(self.timelines)]
        found = {i: self.timelines[i] for i in ids if i in self.timelines}
        return [found[i] for i in sorted(found)]


def detach(c: Checkpoint, fetch: Callable[[list[str]], Any]) -> Checkpoint:
    """A copy with its own dicts and an output loader: what a caller gets, and may mutate,
    without changing the record a catalog keeps (and later checkpoints inherit)."""
    stage_hashes = dict(c.stage_hashes)
    return Checkpoint(  # not attrs.evolve: this runs twice per save, evolve is 3x slower
        id=c.id,
        timeline_id=c.timeline_id,
        parent_id=c.parent_id,
        stage_hashes=stage_hashes,
        config_overrides=_copy_json(dict(c.config_overrides)),
        stats=_copy_json(dict(c.stats)),
        is_scenario=c.is_scenario,
        scenario_label=c.scenario_label,
        created_at=c.created_at,
        merged_from=c.merged_from,
        stage=c.stage,
        stage_outputs=LazyOutputs(stage_hashes, fetch),
    )


def _of_timelines(records: dict[str, Any], by_timeline: dict[str, list[str]],
                  timeline_ids: Iterable[str] | None) -> list[Any]:
    if timeline_ids is None:
        return [records[i] for i in sorted(records)]
    ids = [i for t in set(timeline_ids) for i in by_timeline.get(t, ())]
    return [records[i] for i in sorted(ids)]
