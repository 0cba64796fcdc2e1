"""Conformance of the record kinds every catalog stores as they are: tombstones, tags,
the timeline fields added in format 2, id lookups by prefix, and the one validation of
records before a write. Mixed into :class:`StoreConformance`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs
import pytest

from .. import Batch, ConflictError, InvalidInputError
from ..ids import new_id
from ..records import utcnow
from ..store import Store
from ..types import Tag, Timeline, Tombstone

__all__ = ["RecordConformance"]

Reopen = Callable[[Store], Store]


def _marks(tl: Timeline, target: str) -> tuple[Tombstone, Tag]:
    now = utcnow()
    return (
        Tombstone(new_id(), target, "checkpoint", tl.id, now),
        Tag(new_id(), "best-é", target, tl.id, now),
    )


def _views(store: Store, reopen: Reopen | None) -> Iterator[Store]:
    """The store, then (where it can be) the same data opened again."""
    yield store
    if reopen is not None:
        yield reopen(store)


class RecordConformance:
    """Tests of the catalog's raw records (the Store hides what tombstones delete)."""

    def test_tombstones_and_tags_round_trip(
        self, store: Store, timeline: Timeline, reopen: Reopen | None
    ) -> None:
        cid = store.save_stage_output(timeline.id, None, "detect", {"n": 1})
        tomb, tag = _marks(timeline, cid)
        store.catalog.commit(Batch(tombstones=[tomb], tags=[tag]))
        store.catalog.commit(Batch(tombstones=[tomb], tags=[tag]))  # idempotent
        for s in _views(store, reopen):
            assert s.catalog.tombstones() == [tomb]
            assert s.catalog.tombstones([timeline.id]) == [tomb]
            assert s.catalog.tombstones([new_id()]) == []
            assert s.catalog.tags([timeline.id]) == [tag]
            assert s.catalog.tags() == [tag]
            assert s.catalog.deleted([cid, timeline.id, new_id()]) == {cid}

    def test_tombstones_targeting_finds_deletions_of_any_timeline_and_kind(
        self, store: Store, timeline: Timeline, reopen: Reopen | None
    ) -> None:
        """Catalog.tombstones_targeting: every tombstone whose target is one of the ids,
        whatever its timeline and kind, also where no record of the target is stored
        (gc purged it): transfers ask it so that a deleted id never comes back."""
        cid = store.save_stage_output(timeline.id, None, "detect", {"n": 1})
        purged, elsewhere = new_id(), new_id()
        now = utcnow()
        marks = [Tombstone(new_id(), cid, "checkpoint", timeline.id, now),
                 Tombstone(new_id(), purged, "tag", timeline.id, now),
                 Tombstone(new_id(), purged, "checkpoint", elsewhere, now)]
        store.catalog.commit(Batch(tombstones=marks))
        for s in _views(store, reopen):
            found = s.catalog.tombstones_targeting([purged, cid, new_id()])
            assert found == sorted(marks, key=lambda x: x.id)
            assert s.catalog.tombstones_targeting([purged]) == sorted(marks[1:],
                                                                      key=lambda x: x.id)
            assert s.catalog.tombstones_targeting([]) == []

    def test_deleted_is_kind_and_timeline_aware(
        self, store: Store, timeline: Timeline, reopen: Reopen | None
    ) -> None:
        """Catalog.deleted's contract: a tombstone deletes a record of its own kind in its
        own timeline; one aimed across kinds or timelines deletes nothing, and the
        Store reads the other timeline as before (issue 20)."""
        cid = store.save_stage_output(timeline.id, None, "detect", {"n": 1})
        victim = store.save_stage_output(timeline.id, cid, "track", {"t": 1})
        tag = store.tag(victim, "kept")
        now = utcnow()
        elsewhere = new_id()  # a timeline the hostile tombstones are filed under
        hostile = [
            Tombstone(new_id(), timeline.id, "checkpoint", timeline.id, now),
            Tombstone(new_id(), timeline.id, "tag", timeline.id, now),
            Tombstone(new_id(), victim, "checkpoint", elsewhere, now),
            Tombstone(new_id(), tag.id, "tag", elsewhere, now),
            Tombstone(new_id(), victim, "tag", timeline.id, now),
            Tombstone(new_id(), timeline.id, "timeline", elsewhere, now),
        ]
        store.catalog.commit(Batch(tombstones=hostile))
        ids = [timeline.id, cid, victim, tag.id]
        for s in _views(store, reopen):
            assert s.catalog.deleted(ids) == set()
            for kind in ("timeline", "checkpoint", "tag"):
                assert s.catalog.deleted(ids, kind) == set()
            assert s.get_timeline(timeline.id).id == timeline.id
            assert s.get_checkpoint(victim).id == victim and s.tag_target("kept") == victim
            store = s  # the last view is the open one
        real = [Tombstone(new_id(), victim, "checkpoint", timeline.id, now),
                Tombstone(new_id(), tag.id, "tag", timeline.id, now)]
        store.catalog.commit(Batch(tombstones=real))
        for s in _views(store, reopen):
            assert s.catalog.deleted(ids, "checkpoint") == {victim}
            assert s.catalog.deleted(ids, "tag") == {tag.id}
            assert s.catalog.deleted(ids, "timeline") == set()
            assert s.catalog.deleted(ids) == {victim, tag.id}

    def test_a_mark_with_other_content_conflicts_and_writes_nothing(
        self, store: Store, timeline: Timeline
    ) -> None:
        cid = store.save_stage_output(timeline.id, None, "detect", {"n": 1})
        tomb, tag = _marks(timeline, cid)
        store.catalog.commit(Batch(tombstones=[tomb], tags=[tag]))
        extra = store.save_stage_output(timeline.id, None, "detect", {"n": 2})
        newer = attrs.evolve(
            store.get_checkpoint(extra), id=new_id(), parent_id=timeline.root_checkpoint_id
        )
        for bad in (Batch(checkpoints=[newer], tags=[attrs.evolve(tag, name="other")]),
                    Batch(checkpoints=[newer], tombstones=[attrs.evolve(tomb, target_id=extra)])):
            with pytest.raises(ConflictError):
                store.catalog.commit(bad)
            assert store.catalog.checkpoints([newer.id]) == []
        assert store.catalog.tags() == [tag] and store.catalog.tombstones() == [tomb]

    def test_find_ids_by_prefix(self, store: Store, timeline: Timeline) -> None:
        cid = store.save_stage_output(timeline.id, None, "detect", {"n": 1})
        assert store.catalog.find_ids("checkpoint", cid[:24]) == [cid]  # uuid7: time first
        assert store.catalog.find_ids("timeline", timeline.id[:10]) == [timeline.id]
        assert store.catalog.find_ids("checkpoint", "ffffffff-ffff") == []
        everything = store.catalog.find_ids("checkpoint", "", limit=1000)
        assert set(everything) == {cid, timeline.root_checkpoint_id}
        assert len(store.catalog.find_ids("checkpoint", "", limit=1)) == 1

    def test_timeline_source_info_and_index_hash_round_trip(
        self, store: Store, timeline: Timeline, reopen: Reopen | None
    ) -> None:
        info = {"fps": 25.0, "width": 640, "height": 360, "codec": "h264", "duration": 7.6}
        tl = attrs.evolve(timeline, id=new_id(), root_checkpoint_id=new_id(),
                          source_info=info, index_hash="ab" * 32)
        root = attrs.evolve(store.get_checkpoint(timeline.root_checkpoint_id),
                            id=tl.root_checkpoint_id, timeline_id=tl.id)
        store.catalog.commit(Batch(timelines=[tl], checkpoints=[root]))
        for s in _views(store, reopen):
            assert s.catalog.timelines([tl.id]) == [tl]
            assert s.catalog.timelines([tl.id])[0].source_info == info

    @pytest.mark.parametrize("bad_id", ["../../etc", "/abs", "a/b", "a.b", "", "x" * 200,
                                        "\ud800", "white space"])
    def test_records_with_bad_ids_are_refused_before_any_write(
        self, store: Store, timeline: Timeline, bad_id: str
    ) -> None:
        root = store.get_checkpoint(timeline.root_checkpoint_id)
        before = store.catalog.tree(timeline.id)
        with pytest.raises(InvalidInputError):
            store.catalog.commit(Batch(checkpoints=[attrs.evolve(root, id=bad_id)]))
        with pytest.raises(InvalidInputError):
            Batch(tombstones=[Tombstone(new_id(), bad_id, "checkpoint", timeline.id, utcnow())])
        with pytest.raises(InvalidInputError):
            Batch(timelines=[attrs.evolve(timeline, source_asset_id="\udc80")])
        assert store.catalog.tree(timeline.id) == before
