"""Deletion is visible everywhere at once: every read hides what tombstones delete.

One timeline with a small tree; after prune / delete_timeline / untag each read path of
the Store is asked, on every backend (and through a second, freshly opened view where
the backend can reopen, so nothing depends on one process's caches).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from conftest import StoreFactory

import localckpt
from localckpt import Store
from localckpt.errors import ConflictError, InvalidInputError, NotFoundError
from localckpt.gc import collect_garbage
from localckpt.refs import resolve_checkpoint, resolve_timeline

FRAMES = [np.full((8, 8, 3), i * 40, np.uint8) for i in range(3)]


def _tree(store: Store) -> tuple[str, dict[str, str]]:
    """root - a - b - c, a - d (scenario), and m = merge of d into b."""
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png")
    a = store.save_stage_output(tl.id, None, "detect", {"n": 1})
    b = store.save_stage_output(tl.id, a, "track", {"t": 1})
    c = store.save_stage_output(tl.id, b, "ocr", {"o": 1})
    d = store.save_stage_output(tl.id, a, "track", {"t": 2}, {"thr": 0.3}, is_scenario=True,
                                scenario_label="thr=0.3")
    m = store.merge(c, d, "theirs")
    return tl.id, {"root": tl.root_checkpoint_id, "a": a, "b": b, "c": c, "d": d, "m": m}


def _views(new_store: StoreFactory, store: Store, kind: str) -> Iterator[Store]:
    """The store, then a fresh view of the same data where the backend can reopen
    (which closes the first)."""
    yield store
    if new_store.can_reopen(kind):
        yield new_store.reopen(store)


def _gone(store: Store, cid: str, held: bool = True) -> None:
    """cid is gone for every read (held: the store still holds the record, hidden)."""
    with pytest.raises(NotFoundError, match="deleted" if held else "no checkpoint"):
        store.get_checkpoint(cid)
    for read in (store.lineage, store.children):
        with pytest.raises(NotFoundError):
            read(cid)
    with pytest.raises(NotFoundError):
        store.load_stage_output(cid, "detect")
    with pytest.raises(NotFoundError):
        store.diff(cid, cid)
    assert store.live_checkpoints([cid]) == []
    with pytest.raises(NotFoundError):
        resolve_checkpoint(store, cid)


def test_prune_hides_the_subtree_from_every_read(store_kind: str, new_store: StoreFactory
                                                 ) -> None:
    store = new_store(store_kind)
    tid, ids = _tree(store)
    other = store.create_timeline("w.mp4", "p", FRAMES[:1], codec="png").id
    # stored counts, from the sums kept with each write: 6 and a root
    assert store.catalog.checkpoint_counts([tid, other, "nope"]) == {tid: 6, other: 1,
                                                                      "nope": 0}
    store.tag(ids["c"], "best")
    assert resolve_checkpoint(store, "best") == ids["c"]
    report = store.prune(ids["b"])  # b, c and m (a child of c) go; d stays
    assert set(report.checkpoints) == {ids["b"], ids["c"], ids["m"]}
    assert report.tags == ("best",)
    for view in _views(new_store, store, store_kind):
        assert {c.id for c in view.checkpoints(tid)} == {ids["root"], ids["a"], ids["d"]}
        for cid in (ids["b"], ids["c"], ids["m"]):
            _gone(view, cid)
        assert [c.id for c in view.children(ids["a"])] == [ids["d"]]
        assert [c.id for c in view.lineage(ids["d"])] == [ids["root"], ids["a"], ids["d"]]
        assert view.tags(tid) == [] and view.tag_target("best") is None
        with pytest.raises(NotFoundError):
            resolve_checkpoint(view, "best")
        with pytest.raises(NotFoundError, match="deleted"):  # nothing is saved under it
            view.save_stage_output(tid, ids["c"], "x", {})
        with pytest.raises(NotFoundError):
            view.merge(ids["d"], ids["c"])
        assert len(view.checkpoints(tid)) == 3  # the refused writes wrote nothing
        # the rest works as before
        assert view.load_stage_output(ids["d"], "track") == {"t": 2}
        assert view.diff(ids["a"], ids["d"]).stages_added == ("track",)
        # the counts `ls` and the web index show: live checkpoints only
        assert view.visibility.live_counts([tid]) == {tid: 3}


def test_counts_read_no_tree_once_gc_purged_what_a_prune_hid(
        store_kind: str, new_store: StoreFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ls` and the web index count a pruned timeline's tree only while it still stores
    what the prune hides; after gc, from the sums kept with each write, as any other."""
    store = new_store(store_kind)
    tid, ids = _tree(store)
    other = store.create_timeline("w.mp4", "p", FRAMES[:1], codec="png").id
    store.prune(ids["b"])  # b, c and m hidden, still stored
    trees: list[str] = []
    read_tree = store.catalog.tree
    monkeypatch.setattr(store.catalog, "tree", lambda t: trees.append(t) or read_tree(t))
    assert store.catalog.holding_hidden({tid: {ids["b"]}, other: set()}) == {tid}
    assert store.visibility.live_counts([tid, other]) == {tid: 3, other: 1}
    assert trees == [tid]  # the one still holding hidden rows, read to correct its count
    collect_garbage(store, older_than=0, grace=0)
    trees.clear()
    assert store.visibility.live_counts([tid, other]) == {tid: 3, other: 1}
    assert store.catalog.holding_hidden({tid: {ids["b"]}}) == set()
    assert trees == []
    # a mark's child still stored (where a purge stopped, say) is read again, and a
    # mark that names another timeline's checkpoint does not count for this one
    cid = store.save_stage_output(tid, ids["d"], "x", {})
    assert store.catalog.holding_hidden({tid: {ids["d"]}}) == {tid}
    assert store.catalog.holding_hidden({other: {cid}}) == set()


def test_a_child_saved_elsewhere_under_a_pruned_checkpoint_is_gone_too(
        store_kind: str, new_store: StoreFactory) -> None:
    """The ancestor rule: another store adds a child before the prune reaches it."""
    store, laptop = new_store(store_kind), new_store("memory")
    tid, ids = _tree(store)
    localckpt.sync(store, laptop)
    late = laptop.save_stage_output(tid, ids["c"], "late", {"x": 1})
    store.prune(ids["b"])
    localckpt.sync(laptop, store)  # the late child would arrive after the prune...
    localckpt.sync(store, laptop)  # ...and the prune reaches the laptop
    _gone(store, late, held=False)  # deleted records do not even travel
    _gone(laptop, late)  # the laptop holds it, hidden
    for s in (store, laptop):
        assert late not in {c.id for c in s.checkpoints(tid)}
        assert {c.id for c in s.checkpoints(tid)} == {ids["root"], ids["a"], ids["d"]}


def test_delete_timeline_hides_it_and_everything_in_it(store_kind: str, new_store: StoreFactory
                                                       ) -> None:
    store = new_store(store_kind)
    tid, ids = _tree(store)
    other = store.create_timeline("w.mp4", "p", FRAMES[:1], codec="png")
    store.tag(ids["a"], "first")
    report = store.delete_timeline(tid)
    assert report.timelines == (tid,) and len(report.checkpoints) == 6
    assert report.objects >= 2 and report.bytes > 0 and report.tombstones == 1
    for view in _views(new_store, store, store_kind):
        assert [t.id for t in view.list_timelines()] == [other.id]
        for read in (view.get_timeline, view.checkpoints, view.frame_index,
                     view.get_timeline_frames, view.get_timeline_frames_b64):
            with pytest.raises(NotFoundError):
                read(tid)
        with pytest.raises(NotFoundError):
            view.get_frame(tid, 0)
        with pytest.raises(NotFoundError):
            list(view.iter_frames(tid))
        with pytest.raises(NotFoundError):
            resolve_timeline(view, tid)
        for cid in ids.values():
            _gone(view, cid)
        with pytest.raises(NotFoundError):
            view.save_stage_output(tid, None, "x", {})
        with pytest.raises(NotFoundError):
            view.delete_timeline(tid)
        assert view.tags() == [] and view.tag_target("first") is None
        assert len(view.get_timeline_frames(other.id)) == 1


def test_frames_read_before_a_delete_are_not_served_after_it(new_store: StoreFactory) -> None:
    store = new_store("memory")
    tl = store.create_timeline("v", "p", FRAMES, codec="png")
    assert len(store.get_timeline_frames(tl.id)) == 3  # a cached reader
    store.delete_timeline(tl.id)
    with pytest.raises(NotFoundError):
        store.get_frame(tl.id, 0)


def test_prune_rules(store_kind: str, new_store: StoreFactory) -> None:
    store = new_store(store_kind)
    tid, ids = _tree(store)
    with pytest.raises(InvalidInputError, match="root"):
        store.prune(ids["root"])
    # d is merged into m (kept): pruning d is refused without force, nothing written
    with pytest.raises(InvalidInputError, match="merged_from") as info:
        store.prune(ids["d"])
    assert ids["m"] in str(info.value) and "--force" in info.value.for_cli()
    assert len(store.checkpoints(tid)) == 6
    dry = store.prune(ids["d"], dry_run=True, force=True)
    assert dry.checkpoints == (ids["d"],) and dry.dry_run and dry.tombstones == 0
    assert len(store.checkpoints(tid)) == 6
    forced = store.prune(ids["d"], force=True)
    # d's outputs stay: m (which took theirs) still refers to track {"t": 2}
    assert forced.checkpoints == (ids["d"],) and forced.outputs == 0
    assert store.get_checkpoint(ids["m"]).merged_from == ids["d"]  # the merge stays
    assert store.load_stage_output(ids["m"], "track") == {"t": 2}
    with pytest.raises(NotFoundError):
        store.prune(ids["d"])  # already gone
    for bad in (dict(dry_run="yes"), dict(force=1)):
        with pytest.raises(InvalidInputError):
            store.prune(ids["c"], **bad)  # type: ignore[arg-type]


def test_tags(store_kind: str, new_store: StoreFactory) -> None:
    store = new_store(store_kind)
    tid, ids = _tree(store)
    g = store.tag(ids["c"], "best")
    assert store.tag(ids["c"], "best") == g  # idempotent
    with pytest.raises(ConflictError, match="untag"):
        store.tag(ids["d"], "best")
    for bad in ("", "a:b", "has space", "../x", "-x", 7):
        with pytest.raises(InvalidInputError):
            store.tag(ids["d"], bad)  # type: ignore[arg-type]
    store.tag(ids["d"], "try.2")
    assert [(t.name, t.checkpoint_id) for t in store.tags(tid)] == [
        ("best", ids["c"]), ("try.2", ids["d"])]
    assert resolve_checkpoint(store, "try.2") == ids["d"]
    assert store.untag("best").checkpoint_id == ids["c"]
    with pytest.raises(NotFoundError):
        store.untag("best")
    assert store.tag(ids["a"], "best").checkpoint_id == ids["a"]  # the name is free again
    assert resolve_checkpoint(store, "best") == ids["a"]


def test_two_live_tags_of_one_name_after_sync_resolve_to_the_newest(new_store: StoreFactory
                                                                    ) -> None:
    a, b = new_store("memory"), new_store("embedded")
    tid, ids = _tree(a)
    localckpt.sync(a, b)
    a.tag(ids["c"], "best")
    newer = b.tag(ids["d"], "best")
    localckpt.sync(a, b)
    localckpt.sync(b, a)
    for s in (a, b):
        assert s.tag_target("best") == ids["d"] == newer.checkpoint_id
        assert [g.id for g in s.tags(tid)] == [newer.id]
    a.untag("best")  # removes both records
    localckpt.sync(a, b)
    assert b.tag_target("best") is None


def test_a_closed_store_says_so(store_kind: str, new_store: StoreFactory) -> None:
    from localckpt.errors import StoreClosedError

    store = new_store(store_kind)
    tid, ids = _tree(store)
    new_store.close(store)
    calls = [lambda: store.get_timeline(tid), store.list_timelines,
             lambda: store.get_checkpoint(ids["a"]), lambda: store.checkpoints(tid),
             lambda: store.save_stage_output(tid, None, "s", {}),
             lambda: store.get_frame(tid, 0), lambda: store.prune(ids["b"]),
             lambda: store.create_timeline("v", "p", FRAMES), store.verify]
    for call in calls:
        with pytest.raises(StoreClosedError):
            call()
    with pytest.raises(StoreClosedError):
        store.catalog.timelines(None)  # the backend itself, too


def test_a_save_under_a_parent_deleted_behind_the_stores_back_is_refused(
        store_kind: str, new_store: StoreFactory) -> None:
    """The commit guard: the Store saves against the tombstones it has seen; one written
    by another process (here: straight into the catalog) makes the commit refuse."""
    from localckpt.catalog import Batch
    from localckpt.ids import new_id
    from localckpt.records import utcnow
    from localckpt.types import Tombstone

    store = new_store(store_kind)
    tid, ids = _tree(store)
    tip = store.save_stage_output(tid, ids["c"], "more", {"k": 1})
    before = {c.id for c in store.catalog.tree(tid)}
    store.catalog.commit(Batch(tombstones=[Tombstone(new_id(), ids["b"], "checkpoint", tid,
                                                     utcnow())]))
    with pytest.raises(NotFoundError, match="deleted"):
        store.save_stage_output(tid, tip, "after", {"k": 2})  # tip's grandparent is gone
    with pytest.raises(NotFoundError):
        store.merge(tip, ids["d"])
    assert {c.id for c in store.catalog.tree(tid)} == before  # nothing was written
    assert store.save_stage_output(tid, ids["d"], "fine", {"k": 3})  # elsewhere: works
    store.catalog.commit(Batch(tombstones=[Tombstone(new_id(), tid, "timeline", tid,
                                                     utcnow())]))
    with pytest.raises(NotFoundError, match="timeline"):
        store.save_stage_output(tid, None, "x", {})
