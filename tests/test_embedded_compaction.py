"""Compaction of the embedded catalog: tiers, purge, format 1 stores, group commit.

These look at the catalog's files (``catalog/``: segments, runs, blob files, the
manifest) to check what the Store API cannot see: that merging is tiered (a little new
data never rewrites everything), that purging removes deleted records and their outputs
but nothing a live record or a concurrent save needs, that a store written by the
format-1 code opens and converts, and that threads share writes.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from embedded_helpers import bulk_store, catalog_files, frames, timeline_batch

import localckpt
from localckpt.backends import _manifest
from localckpt.backends._manifest import read_manifest
from localckpt.backends._segments import encode_batch, encode_output
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.catalog import Batch
from localckpt.errors import CorruptDataError, InvalidInputError, SchemaVersionError
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.schema import to_dict
from localckpt.types import Tag, Tombstone


def _runs(root: Path) -> dict[str, int]:
    return {r.name: r.entries for r in read_manifest(str(root / "catalog")).runs}


def test_merging_is_tiered_and_a_small_addition_rewrites_little(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    monkeypatch.setattr(_manifest, "BASE", 200)
    made = bulk_store(tmp_path, 40, 100, per_segment=2)  # 20 compactions of 200 checkpoints
    runs = _runs(tmp_path)
    levels = [_manifest.level_of(e) for e in runs.values()]
    assert len(runs) < 20 and len(set(levels)) > 1, runs
    assert max(levels.count(x) for x in set(levels)) < _manifest.FANOUT
    big = max(runs, key=runs.__getitem__)
    before = set(runs)
    with localckpt.open(tmp_path, create=True) as store:  # a little more
        store.save_stage_output(made[0][0], made[0][1], "more", {"n": 1})
    with localckpt.open(tmp_path) as store:
        assert store.catalog.compact() == 1  # the one new segment
        assert big in _runs(tmp_path), "the largest run was not rewritten"
        assert len(set(_runs(tmp_path)) - before) == 1
        for tid, tip in made:
            assert len(store.checkpoints(tid)) == 100 + (tid == made[0][0])
            assert store.lineage(tip)[-1].id == tip


def test_full_compaction_merges_into_one_run(tmp_path: Path) -> None:
    made = bulk_store(tmp_path, 6, 50, per_segment=1)
    with localckpt.open(tmp_path) as store:
        assert store.catalog.compact(full=True) >= 2
        assert len(_runs(tmp_path)) == 1
        assert [len(store.checkpoints(t)) for t, _ in made] == [50] * 6
        assert store.catalog.storage_problems() == []


def _store_with_deletions(root: Path) -> dict[str, object]:
    """Three timelines; one deleted, one pruned below a checkpoint, a tag untagged."""
    with localckpt.open(root, create=True) as store:
        t = [store.create_timeline(f"{i}.mp4", "p", frames()) for i in range(3)]
        chain = [t[1].root_checkpoint_id]
        for i in range(6):
            chain.append(store.save_stage_output(t[1].id, chain[-1], f"s{i}", {"c": i}))
        side = store.save_stage_output(t[1].id, chain[2], "side", {"side": 1})
        shared = store.save_stage_output(t[2].id, None, "s0", {"c": 0})  # same output as chain
        gone_tl = store.save_stage_output(t[0].id, None, "x", {"only": "in t0"})
        now = utcnow()
        marks = [
            Tombstone(new_id(), t[0].id, "timeline", t[0].id, now),
            Tombstone(new_id(), chain[3], "checkpoint", t[1].id, now),
        ]
        tag_kept = Tag(new_id(), "kept", chain[1], t[1].id, now)
        tag_gone = Tag(new_id(), "gone", chain[2], t[1].id, now)
        store.catalog.commit(Batch(tags=[tag_kept, tag_gone]))
        marks.append(Tombstone(new_id(), tag_gone.id, "tag", t[1].id, now))
        store.catalog.commit(Batch(tombstones=marks))
    return {"t": t, "chain": chain, "side": side, "shared": shared, "gone_tl": gone_tl,
            "marks": marks, "tags": (tag_kept, tag_gone)}


def test_purge_removes_deleted_records_and_their_outputs(tmp_path: Path) -> None:
    s = _store_with_deletions(tmp_path)
    t, chain = s["t"], s["chain"]
    with localckpt.open(tmp_path) as store:
        cat = store.catalog
        kept_hashes = {h for c in cat.checkpoints([*chain[:3], s["side"]])
                       for h in c.stage_hashes.values()}
        dead_only = cat.checkpoints([chain[5]])[0].stage_hashes["s4"]
        purged = cat.purge_deleted()
        # timeline t0 + its 2 checkpoints, chain[3:] (4), the tag: 8 records; outputs of
        # t0's stage and of chain[3:] minus the one t2 shares... at least the records
        assert purged >= 8
        assert cat.timelines([t[0].id]) == []
        assert cat.tree(t[0].id) == []
        assert [c.id for c in cat.tree(t[1].id)] == sorted([*chain[:3], s["side"]])
        assert cat.checkpoints(chain[3:]) == []
        assert {g.name for g in cat.tags(None)} == {"kept"}
        assert len(cat.tombstones(None)) == 3, "tombstones are never removed"
        # purged records are no longer there to be deleted: only the timeline's own
        # deletion still answers (Catalog.deleted's contract, issue 20)
        assert cat.deleted({t[0].id, chain[3], s["tags"][1].id}) == {t[0].id}
        assert cat.missing_outputs([dead_only]) == {dead_only}
        assert cat.missing_outputs(kept_hashes) == set()
        assert store.load_stage_output(s["shared"], "s0") == {"c": 0}
        assert store.load_stage_output(s["side"], "side") == {"side": 1}
        assert cat.storage_problems() == []
    with localckpt.open(tmp_path) as store:  # and a fresh process view agrees
        assert [c.id for c in store.catalog.tree(t[1].id)] == sorted([*chain[:3], s["side"]])
        assert store.catalog.purge_deleted() == 0, "a second purge finds nothing"


def test_purge_drops_what_is_deleted_inside_one_compacted_run(tmp_path: Path) -> None:
    with localckpt.open(tmp_path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", frames())
        a = store.save_stage_output(tl.id, None, "s", {"a": 1})
        b = store.save_stage_output(tl.id, a, "s", {"b": 2})
    with localckpt.open(tmp_path) as store:
        store.catalog.commit(Batch(tombstones=[
            Tombstone(new_id(), b, "checkpoint", tl.id, utcnow())]))
    with localckpt.open(tmp_path) as store:
        gone = store.catalog.checkpoints([b])[0].stage_hashes["s"]
        store.catalog.compact(full=True)  # merges drop b; its output stays until a purge
        assert len(_runs(tmp_path)) == 1
        assert [c.id for c in store.catalog.tree(tl.id)] == [tl.root_checkpoint_id, a]
        assert store.catalog.missing_outputs([gone]) == set()
        assert store.catalog.purge_deleted() == 1
        assert store.catalog.missing_outputs([gone]) == {gone}
        assert store.load_stage_output(a, "s") == {"a": 1}


def test_purge_keeps_outputs_a_live_segment_or_concurrent_save_refers_to(tmp_path: Path) -> None:
    s = _store_with_deletions(tmp_path)
    t, chain = s["t"], s["chain"]
    with localckpt.open(tmp_path) as store:
        dead_output = store.catalog.checkpoints([chain[4]])[0].stage_hashes["s3"]
    live = localckpt.open(tmp_path)
    try:
        # a live writer saves the very output that only deleted checkpoints refer to
        again = live.save_stage_output(t[1].id, chain[2], "s3", {"c": 3})
        assert live.catalog.checkpoints([again])[0].stage_hashes["s3"] == dead_output
        with localckpt.open(tmp_path) as gc:
            gc.catalog.purge_deleted()
            assert gc.catalog.missing_outputs([dead_output]) == set()
        assert live.load_stage_output(again, "s3") == {"c": 3}
    finally:
        live.close()
    with localckpt.open(tmp_path) as store:
        assert store.load_stage_output(again, "s3") == {"c": 3}


def test_purge_while_another_thread_saves_loses_nothing_live(tmp_path: Path) -> None:
    s = _store_with_deletions(tmp_path)
    t = s["t"]
    saved: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        with localckpt.open(tmp_path) as w:
            parent = None
            while not stop.is_set():
                parent = w.save_stage_output(t[2].id, parent, "s3", {"c": 3})  # a dead output
                saved.append(parent)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with localckpt.open(tmp_path) as gc:
            for _ in range(3):
                gc.catalog.purge_deleted()
    finally:
        stop.set()
        thread.join(60)
    with localckpt.open(tmp_path) as store:
        assert saved
        for cid in saved[:: max(1, len(saved) // 20)] + saved[-1:]:
            assert store.load_stage_output(cid, "s3") == {"c": 3}
        assert store.catalog.storage_problems() == []


def _format1_store(root: Path) -> tuple[str, list[str]]:
    """A store as the format-1 code left it: a pack, a sealed segment (no seal frame)."""
    cat = root / "catalog"
    cat.mkdir(parents=True)
    (root / "objects").mkdir()
    (root / "LOCALCKPT.json").write_text(json.dumps({"format": 1, "kind": "x"}))
    batch, tid, _ = timeline_batch(30)
    ids = [c.id for c in batch.checkpoints]
    rows = [to_dict(c) for c in batch.checkpoints]
    for r in rows:
        r.pop("merged_from")  # written before the field existed: it takes its default
    pack = b"".join(encode_output(h, d) for h, d in batch.outputs.items())
    pack += encode_batch({"t": [to_dict(t) for t in batch.timelines], "c": rows[:20]})
    (cat / f"pack-{new_id()}.pack").write_bytes(pack)
    data = canonical_bytes({"late": 1})
    h = content_hash(data)
    late = dict(rows[-1], id=new_id(), parent_id=ids[-1], stage_hashes={"late": h},
                stage="late")
    seg = encode_batch({"t": [], "c": rows[20:]}) + encode_output(h, data)
    seg += encode_batch({"t": [], "c": [late]})
    (cat / f"seg-{new_id()}.log").write_bytes(seg)
    return tid, [*ids, late["id"]]


def test_a_format1_store_opens_and_converts_on_first_compaction(tmp_path: Path) -> None:
    tid, ids = _format1_store(tmp_path)
    with localckpt.open(tmp_path) as store:  # packs exist: whoever opens converts them
        assert [c.id for c in store.checkpoints(tid)] == sorted(ids)
        assert store.load_stage_output(ids[-1], "late") == {"late": 1}
        store.catalog.join_compaction()
        assert store.catalog.last_compaction_error is None
        assert [c.id for c in store.lineage(ids[-1])] == ids
    marker = json.loads((tmp_path / "LOCALCKPT.json").read_text())
    assert marker == {"format": 2, "kind": "x"}, "converted; other keys kept"
    assert catalog_files(tmp_path, "*.pack") == [] and catalog_files(tmp_path, "*.log") == []
    assert len(catalog_files(tmp_path, "run-*.run")) == 1
    with localckpt.open(tmp_path) as store:
        assert store.catalog.stats["records_read"] == 0
        assert [c.id for c in store.lineage(ids[-1])] == ids
        assert store.get_checkpoint(ids[5]).merged_from is None
        assert store.load_stage_output(ids[-1], "late") == {"late": 1}


@pytest.mark.parametrize(("content", "error"), [
    ('{"format": 99}', SchemaVersionError),
    ('{"format": "two"}', CorruptDataError),
    ("{not json", CorruptDataError),
    ('{"format": -1}', CorruptDataError),
])
def test_a_marker_of_an_unknown_format_is_a_typed_error(tmp_path: Path, content: str,
                                                       error: type) -> None:
    localckpt.open(tmp_path, create=True).close()
    (tmp_path / "LOCALCKPT.json").write_text(content)
    with pytest.raises(error, match=r"LOCALCKPT\.json|format"):
        localckpt.open(tmp_path)


@pytest.mark.parametrize("options", [{"compact_after": "x"}, {"compact_after": 0},
                                     {"compact_after": True}, {"fsync": "yes"}])
def test_bad_options_are_typed_errors(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError, match=r"compact_after|fsync"):
        localckpt.open(tmp_path, create=True, **options)


def test_threads_share_writes_and_each_save_is_on_disk_when_it_returns(tmp_path: Path) -> None:
    with localckpt.open(tmp_path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", frames())
        group = store.catalog._appender.group
        before = (group.groups, group.entries)
        results: dict[int, list[str]] = {}
        barrier = threading.Barrier(4)

        def save(w: int) -> None:
            barrier.wait()
            parent = None
            ids = []
            for i in range(50):
                parent = store.save_stage_output(tl.id, parent, f"w{w}", {"w": w, "i": i})
                ids.append(parent)
                seg = store.catalog._appender.writer
                assert seg is not None and seg.size >= store.catalog.tail.out_loc[
                    store.catalog.checkpoints([parent])[0].stage_hashes[f"w{w}"]][1]
            results[w] = ids

        threads = [threading.Thread(target=save, args=(w,)) for w in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        groups, entries = group.groups - before[0], group.entries - before[1]
        assert entries == 200
        assert groups < entries, "some threads shared one write + fdatasync"
    with localckpt.open(tmp_path) as store:  # everything returned is on disk
        for w, ids in results.items():
            assert [c.id for c in store.lineage(ids[-1])][1:] == ids
            assert store.load_stage_output(ids[-1], f"w{w}") == {"w": w, "i": 49}


def test_killed_compaction_leaves_nothing_behind(tmp_path: Path) -> None:
    made = bulk_store(tmp_path, 3, 20, per_segment=1)
    cat = tmp_path / "catalog"
    leftovers = [cat / "pack-0192.tmp", cat / f"run-{new_id()}.run.tmp",
                 cat / "blobs" / f"blob-{new_id()}.blob.tmp", cat / f"run-{new_id()}.run",
                 cat / "MANIFEST.abc.tmp"]
    for p in leftovers:
        p.write_bytes(b"partial")
    old = cat / f"seg-{new_id()}.log.new"
    old.write_bytes(b"")
    os.utime(old, (1, 1))
    with localckpt.open(tmp_path, create=True) as store:
        store.save_stage_output(made[0][0], made[0][1], "x", {})
    with localckpt.open(tmp_path) as store:
        store.catalog.compact()
        assert not any(p.exists() for p in [*leftovers, old])
        assert store.catalog.storage_problems() == []
        assert [len(store.checkpoints(t)) for t, _ in made] == [21, 20, 20]
