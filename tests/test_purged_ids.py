"""Purged ids never come back (docs/trust.md, "A deleted id never comes back").

A tombstone names its target only. Before the catalog remembered what gc purged, the
checkpoints below a pruned one, those of a deleted timeline and the tags that went with
them left no trace of their ids once purged, and a bundle or a sync peer carrying one of
those ids in another timeline had it written live, with the source's content. Now the
purge keeps every id it deletes (table ``purged``, migration 13) and
``tombstones_targeting`` answers for it: the transfer is refused with CorruptDataError
and the store is left as it was, on every catalog engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from conftest import CONFORMANCE_KINDS, StoreFactory
from sql_records import raw

import localckpt
from localckpt import Store
from localckpt.bundle import export_bundle, import_bundle
from localckpt.catalog import Batch
from localckpt.gc import collect_garbage
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.types import Tag

FRAME = np.zeros((4, 4, 3), np.uint8)
#: one store of each catalog engine (SQLite file and memory, DuckDB, PostgreSQL)
DST_KINDS = [k for k in CONFORMANCE_KINDS if k in ("memory", "embedded", "duckdb",
                                                    "postgres-local")]


@attrs.define
class Kept:
    """The records of timeline ``kept`` read before the purge: the timeline, its root,
    and checkpoint ``below`` with the outputs they name."""

    timeline: Any
    root: Any
    below: Any
    outputs: dict[str, bytes]


@attrs.define
class Purged:
    """A destination whose gc purged: below pruned checkpoint ``pruned`` of timeline
    ``kept``, checkpoint ``below`` and its tag ``tag``; timeline ``deleted`` with its
    root and checkpoint ``in_deleted``."""

    store: Store
    kept: str
    pruned: str
    below: str
    tag: str
    deleted: str
    deleted_root: str
    in_deleted: str
    before: Kept


def purged_store(store: Store) -> Purged:
    kept = store.create_timeline("kept.mp4", "p", [FRAME], codec="png", workers=1)
    pruned = store.save_stage_output(kept.id, None, "detect", {"n": 1})
    below = store.save_stage_output(kept.id, pruned, "track", {"n": 2})
    tag = store.tag(below, "below-best")
    store.save_stage_output(kept.id, None, "detect", {"n": 3})  # a live sibling
    deleted = store.create_timeline("gone.mp4", "p", [FRAME], codec="png", workers=1)
    in_deleted = store.save_stage_output(deleted.id, None, "detect", {"n": 4})
    cat = store.catalog
    root, below_record = cat.checkpoints([kept.root_checkpoint_id, below])
    kept_records = Kept(cat.timelines([kept.id])[0], root, below_record,
                        cat.outputs({*root.stage_hashes.values(),
                                     *below_record.stage_hashes.values()}))
    store.prune(pruned)
    store.delete_timeline(deleted.id)
    report = collect_garbage(store, older_than=0, grace=0)
    assert report.records_purged >= 6  # 2 + 1 tag + timeline, root, 1 (and outputs)
    assert store.catalog.checkpoints([pruned, below, deleted.root_checkpoint_id,
                                      in_deleted]) == []
    assert store.catalog.tags(None) == []
    return Purged(store, kept.id, pruned, below, tag.id, deleted.id,
                  deleted.root_checkpoint_id, in_deleted, kept_records)


def source_with(new_store: StoreFactory, ids: dict[str, str]) -> tuple[Store, str]:
    """A peer holding timeline U whose records carry these ids: "checkpoint" (a child
    of U's root) and "tag" (on U's checkpoint)."""
    src = new_store("embedded")
    u = src.create_timeline("u.mp4", "p", [FRAME], codec="png", workers=1)
    u1 = src.save_stage_output(u.id, None, "detect", {"u": 1})
    record = src.catalog.checkpoints([u1])[0]
    batch: dict[str, Any] = {}
    if "checkpoint" in ids:
        batch["checkpoints"] = [attrs.evolve(record, id=ids["checkpoint"])]
    if "tag" in ids:
        batch["tags"] = [Tag(ids["tag"], "u-best", u1, u.id, utcnow())]
    src.catalog.commit(Batch(**batch))
    return src, u.id


def snapshot(store: Store) -> Any:
    """Every record of the catalog (the trees of deleted timelines too), its purged
    ids, and the frame objects with their sizes."""
    cat = store.catalog
    timelines = cat.timelines(None)
    return (timelines, {t.id: cat.tree(t.id) for t in timelines}, cat.tombstones(None),
            cat.tags(None), cat.engine.query("SELECT * FROM {s}purged ORDER BY id")
            if cat.engine.has_table("purged") else None,
            {k: v[0] for k, v in store.objects.stat("frames").items()})


def _bundle(src: Store, dst: Store, uid: str, tmp: Path) -> Callable[[], object]:
    path = tmp / "u.lckpt"
    export_bundle(src, uid, path)
    return lambda: import_bundle(dst, path)


def _sync(src: Store, dst: Store, uid: str, tmp: Path) -> Callable[[], object]:
    return lambda: localckpt.sync(src, dst)


CASES = {
    "checkpoint below a pruned one": lambda p: {"checkpoint": p.below},
    "checkpoint of a deleted timeline": lambda p: {"checkpoint": p.in_deleted},
    "root of a deleted timeline": lambda p: {"checkpoint": p.deleted_root},
    "tag of a checkpoint below a pruned one": lambda p: {"tag": p.tag},
}


@pytest.mark.parametrize("transfer", [_bundle, _sync], ids=["bundle", "sync"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", DST_KINDS)
def test_a_purged_id_is_refused_in_another_timeline(kind: str, case: str,
                                                    transfer: Callable[..., Any],
                                                    new_store: StoreFactory,
                                                    tmp_path: Path) -> None:
    p = purged_store(new_store(kind))
    src, uid = source_with(new_store, CASES[case](p))
    attack = transfer(src, p.store, uid, tmp_path)
    before = snapshot(p.store)
    with pytest.raises(localckpt.CorruptDataError, match="never comes back"):
        attack()
    assert snapshot(p.store) == before
    assert p.store.catalog.timelines([uid]) == []
    assert p.store.verify().ok


@pytest.mark.parametrize("kind", DST_KINDS)
def test_what_a_purge_remembers(kind: str, new_store: StoreFactory) -> None:
    """Each purged id, with its kind, its timeline and the tombstone that deleted it;
    tombstones_targeting answers with that tombstone aimed at the id, and a second gc
    changes nothing."""
    p = purged_store(new_store(kind))
    cat = p.store.catalog
    marks = {x.target_id: x for x in cat.tombstones(None)}
    prune, delete = marks[p.pruned], marks[p.deleted]
    assert sorted(cat.engine.query("SELECT id, kind, timeline_id, tombstone_id FROM "
                                   "{s}purged")) == sorted([
        (p.pruned, "checkpoint", p.kept, prune.id),
        (p.below, "checkpoint", p.kept, prune.id),
        (p.tag, "tag", p.kept, prune.id),
        (p.deleted_root, "checkpoint", p.deleted, delete.id),
        (p.in_deleted, "checkpoint", p.deleted, delete.id)])
    found = cat.tombstones_targeting([p.below, p.tag, p.in_deleted, p.pruned])
    assert sorted((x.target_id, x.kind, x.timeline_id, x.id) for x in found) == sorted([
        (p.pruned, "checkpoint", p.kept, prune.id),  # the tombstone itself, once
        (p.below, "checkpoint", p.kept, prune.id),
        (p.tag, "tag", p.kept, prune.id),
        (p.in_deleted, "checkpoint", p.deleted, delete.id)])
    before = snapshot(p.store)
    assert collect_garbage(p.store, older_than=0, grace=0).records_purged == 0
    assert snapshot(p.store) == before
    assert p.store.verify().ok


@pytest.mark.parametrize("transfer", [_bundle, _sync], ids=["bundle", "sync"])
@pytest.mark.parametrize("kind", DST_KINDS)
def test_a_purged_id_is_refused_in_its_own_timeline(kind: str, transfer: Callable[..., Any],
                                                    new_store: StoreFactory,
                                                    tmp_path: Path) -> None:
    """A forged source holding timeline ``kept`` with the purged checkpoint ``below``
    re-parented under the root: no tombstone names ``below`` any more, so the transfer's
    checks (which leave a record of the tombstone's own timeline to the tombstone that
    hides it) let it through, and it was written live. The catalog's commit refuses it."""
    p = purged_store(new_store(kind))
    src = new_store("embedded")
    for key in p.store.objects.list(f"frames/{p.kept}"):
        src.objects.put(key, p.store.objects.get(key))
    k = p.before
    src.catalog.commit(Batch(timelines=[k.timeline],
                             checkpoints=[k.root, attrs.evolve(k.below, parent_id=k.root.id)],
                             outputs=k.outputs))
    attack = transfer(src, p.store, p.kept, tmp_path)
    before = snapshot(p.store)
    with pytest.raises(localckpt.CorruptDataError,
                       match=r"never comes back, in any timeline"):
        attack()
    assert snapshot(p.store) == before
    assert p.below not in {c.id for c in p.store.checkpoints(p.kept)}
    assert p.store.verify().ok


@pytest.mark.parametrize("kind", DST_KINDS)
def test_a_catalog_commit_refuses_a_purged_id(kind: str, new_store: StoreFactory) -> None:
    """Any plain commit (a transfer's, a tag's, a caller's) meets the check; nothing of
    the batch is written, and the other records of it commit once it is left out."""
    p = purged_store(new_store(kind))
    k, cat = p.before, p.store.catalog
    back = attrs.evolve(k.below, parent_id=k.root.id)
    tag = Tag(p.tag, "back", k.root.id, p.kept, utcnow())
    fine = Tag(new_id(), "fine", k.root.id, p.kept, utcnow())
    before = snapshot(p.store)
    for batch in (Batch(checkpoints=[back], outputs=k.outputs, tags=[fine]),
                  Batch(tags=[fine, tag])):
        with pytest.raises(localckpt.CorruptDataError, match=f"{p.kept}.*never comes back"):
            cat.commit(batch)
        assert snapshot(p.store) == before
    cat.commit(Batch(tags=[fine]))
    assert p.store.tags(p.kept) == [fine]


def test_a_catalog_of_before_migration_13(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """A store written at version 12 (its purges remembered nothing) opens read-only
    without the table, answering from its tombstones; opened for writing it is migrated,
    starts remembering, and verifies."""
    from localckpt.backends.sql import schema, sqlite_catalog

    with monkeypatch.context() as m:  # the code of before: migrations up to 12
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:6])
        m.setattr(schema, "LATEST_VERSION", 12)
        with localckpt.open(tmp_path / "s", create=True) as old:
            p = purged_store(old)
            assert not old.catalog.engine.has_table("purged")
    ro = sqlite_catalog(str(tmp_path / "s" / "catalog.sqlite"), read_only=True)
    try:
        assert schema.version_of(ro.engine) == 12
        assert [x.target_id for x in ro.tombstones_targeting([p.pruned, p.below])] == [
            p.pruned]  # what version 12 knew
    finally:
        ro.close()
    with localckpt.open(tmp_path / "s") as store:
        assert schema.version_of(store.catalog.engine) == schema.LATEST_VERSION >= 13
        assert store.catalog.engine.query("SELECT count(*) FROM {s}purged") == [(0,)]
        assert store.verify().ok
        a = store.save_stage_output(p.kept, None, "detect", {"n": 5})
        b = store.save_stage_output(p.kept, a, "track", {"n": 6})
        store.prune(a)
        collect_garbage(store, older_than=0, grace=0)
        assert {x.target_id for x in store.catalog.tombstones_targeting([a, b])} == {a, b}
        assert store.verify().ok


def test_a_purge_remembers_each_id_with_one_insert_a_batch(tmp_path: Path) -> None:
    """The cost a purge adds: one row per checkpoint or tag it deletes, written by one
    executemany per batch it already runs (SQLite traces each row), never a read of the
    table; the batches (transactions) stay as many."""
    from localckpt.backends.sql.upkeep import BATCH

    store = localckpt.open(tmp_path / "s", create=True)
    try:
        tl = store.create_timeline("k.mp4", "p", [FRAME], codec="png", workers=1)
        top = parent = store.save_stage_output(tl.id, None, "s", {"n": 0})
        n = 2 * BATCH + 10
        for i in range(1, n):
            parent = store.save_stage_output(tl.id, parent, "s", {"n": i})
        store.tag(parent, "last")
        store.prune(top)
        conn = store.catalog.engine._conn()  # type: ignore[attr-defined]
        ran: list[str] = []
        conn.set_trace_callback(ran.append)
        try:
            collect_garbage(store, older_than=0, grace=0)
        finally:
            conn.set_trace_callback(None)
        touching = [r for r in ran if "purged" in r]
        assert len(touching) == n + 1  # n checkpoints, 1 tag
        assert all(r.startswith("INSERT INTO purged") for r in touching)
        assert sum(r.startswith("DELETE FROM checkpoints") for r in ran) == 3  # batches
        assert store.catalog.engine.query("SELECT kind, count(*) FROM {s}purged GROUP BY "
                                          "kind ORDER BY kind") == [("checkpoint", n),
                                                                    ("tag", 1)]
    finally:
        store.close()


@pytest.mark.parametrize("kind", DST_KINDS)
def test_verify_checks_the_purged_ids(kind: str, new_store: StoreFactory) -> None:
    """verify (Catalog.storage_problems) reports a purged id stored again as a record of
    its kind, and a purged id whose tombstone its timeline does not hold."""
    p = purged_store(new_store(kind))
    cat = p.store.catalog
    assert cat.storage_problems() == []
    live = p.store.checkpoints(p.kept)[-1].id
    stray = new_id()
    raw(cat, "INSERT INTO {s}purged (id, kind, timeline_id, tombstone_id) VALUES "
        "(?, 'checkpoint', ?, ?)", (live, p.kept, stray))
    found = [what for _, what in cat.storage_problems()]
    assert any(f"checkpoint {live} was purged by gc but is stored again" in what
               for what in found)
    assert any(f"names tombstone {stray}, which that timeline does not hold" in what
               for what in found)
    assert not p.store.verify().ok
