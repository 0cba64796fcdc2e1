"""Bundles and sync sources are untrusted: hostile content is refused, nothing is written.

Each case starts from a valid bundle (or store) and breaks one thing: keys that climb out
of the store or name another bucket, ids that look like paths, shards whose bytes do not
match, manifests that disagree with the tables, tombstones reaching into another
timeline. Every one must raise a localckpt error, leave the destination store exactly as
it was (no rows, no objects) and create no file anywhere else.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import StoreFactory

import localckpt
from localckpt import Store
from localckpt.bundle import export_bundle, import_bundle
from localckpt.errors import CorruptDataError, LocalckptError

FRAMES = [np.full((6, 6, 3), i * 50, np.uint8) for i in range(4)]

Members = dict[str, bytes]


def _bundle(store: Store, tmp_path: Path) -> tuple[str, str, Members]:
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    a = store.save_stage_output(tl.id, None, "detect", {"n": 1})
    store.save_stage_output(tl.id, a, "track", {"t": 1})
    store.tag(a, "first")
    path = tmp_path / "good.zip"
    export_bundle(store, tl.id, path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    return tl.id, str(path), members


def _write(path: Path, members: Members) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _manifest(members: Members) -> dict[str, Any]:
    return dict(json.loads(members["localckpt-bundle.json"]))


def _set_manifest(members: Members, manifest: dict[str, Any]) -> None:
    members["localckpt-bundle.json"] = json.dumps(manifest).encode()


def _table(members: Members, name: str) -> list[dict[str, Any]]:
    return list(pq.read_table(io.BytesIO(members[name])).to_pylist())


def _set_table(members: Members, name: str, rows: list[dict[str, Any]]) -> None:
    schema = pq.read_table(io.BytesIO(members[name])).schema
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf)
    members[name] = buf.getvalue()


def _shard_name(tid: str) -> str:
    return f"objects/frames/{tid}/shard-000000.bin"


# -- the hostile edits ---------------------------------------------------------------------


def traversal_key(m: Members, tid: str) -> None:
    manifest = _manifest(m)
    evil = f"frames/{tid}/../../../../evil.bin"
    manifest["objects"][tid].insert(0, evil)
    manifest["hashes"][evil] = "0" * 64
    m["objects/" + evil] = b"evil"
    _set_manifest(m, manifest)


def absolute_key(m: Members, tid: str) -> None:
    manifest = _manifest(m)
    manifest["objects"][tid].insert(0, "/tmp/localckpt-evil.bin")
    _set_manifest(m, manifest)


def other_bucket_key(m: Members, tid: str) -> None:
    manifest = _manifest(m)
    manifest["objects"][tid][0] = "/other-bucket/k"
    _set_manifest(m, manifest)


def key_of_another_timeline(m: Members, tid: str) -> None:
    manifest = _manifest(m)
    manifest["objects"][tid][0] = manifest["objects"][tid][0].replace(tid, "0" * 8)
    _set_manifest(m, manifest)


def timeline_id_is_a_path(m: Members, tid: str) -> None:
    evil = "../../evil"
    rows = _table(m, "timelines.parquet")
    rows[0]["id"] = evil
    _set_table(m, "timelines.parquet", rows)
    for name in ("checkpoints.parquet", "tombstones.parquet", "tags.parquet"):
        _set_table(m, name, [{**r, "timeline_id": evil} for r in _table(m, name)])
    manifest = _manifest(m)
    manifest["timeline_id"] = evil
    manifest["objects"] = {evil: [k.replace(tid, evil) for k in manifest["objects"][tid]]}
    manifest["hashes"] = {k.replace(tid, evil): v for k, v in manifest["hashes"].items()}
    for name in [n for n in m if tid in n]:
        m[name.replace(tid, evil)] = m.pop(name)
    _set_manifest(m, manifest)


def checkpoint_id_is_a_path(m: Members, tid: str) -> None:
    rows = _table(m, "checkpoints.parquet")
    rows[-1]["id"] = "a/b"
    _set_table(m, "checkpoints.parquet", rows)


def shard_bytes_do_not_match(m: Members, tid: str) -> None:
    data = bytearray(m[_shard_name(tid)])
    data[len(data) // 2] ^= 0xFF
    m[_shard_name(tid)] = bytes(data)


def shard_and_manifest_hash_both_forged(m: Members, tid: str) -> None:
    """The manifest hash is made to match: the frame hashes in the index still catch it."""
    import hashlib

    shard_bytes_do_not_match(m, tid)
    manifest = _manifest(m)
    key = _shard_name(tid)[len("objects/"):]
    manifest["hashes"][key] = hashlib.sha256(m[_shard_name(tid)]).hexdigest()
    _set_manifest(m, manifest)


def index_does_not_match_its_hash(m: Members, tid: str) -> None:
    name = f"objects/frames/{tid}/index.parquet"
    rows = _table(m, name)
    rows[0]["timestamp"] = 99.0
    _set_table(m, name, rows)
    import hashlib

    manifest = _manifest(m)
    manifest["hashes"][name[len("objects/"):]] = hashlib.sha256(m[name]).hexdigest()
    _set_manifest(m, manifest)


def manifest_names_another_timeline(m: Members, tid: str) -> None:
    manifest = _manifest(m)
    manifest["timeline_id"] = "0" * 36
    _set_manifest(m, manifest)


def manifest_counts_disagree(m: Members, tid: str) -> None:
    manifest = _manifest(m)
    manifest["counts"]["checkpoints"] += 1
    _set_manifest(m, manifest)


def manifest_lists_an_extra_shard(m: Members, tid: str) -> None:
    manifest = _manifest(m)
    extra = f"frames/{tid}/shard-000009.bin"
    manifest["objects"][tid].insert(0, extra)
    manifest["hashes"][extra] = "0" * 64
    manifest["counts"]["objects"] += 1
    m["objects/" + extra] = b"x"
    _set_manifest(m, manifest)


def manifest_lacks_the_index(m: Members, tid: str) -> None:
    manifest = _manifest(m)
    key = f"frames/{tid}/index.parquet"
    manifest["objects"][tid].remove(key)
    del manifest["hashes"][key]
    manifest["counts"]["objects"] -= 1
    _set_manifest(m, manifest)


def tombstone_reaches_another_timeline(m: Members, tid: str) -> None:
    rows = _table(m, "tags.parquet")
    _set_table(m, "tombstones.parquet", [{
        "id": "0" * 8 + "-x", "target_id": "f" * 8, "kind": "timeline", "timeline_id": tid,
        "created_at": rows[0]["created_at"]}])
    manifest = _manifest(m)
    manifest["counts"]["tombstones"] = 1
    _set_manifest(m, manifest)


def unknown_format(m: Members, tid: str) -> None:
    manifest = _manifest(m)
    manifest["format"] = "localckpt-bundle/99"
    _set_manifest(m, manifest)


def zip_member_names_climb_out(m: Members, tid: str) -> None:
    """Members nothing refers to, with hostile names, next to a broken shard: import
    reads members only by names it builds, so they are never even opened."""
    m["../../escaped.txt"] = b"x"
    m["/abs-escaped.txt"] = b"x"
    shard_bytes_do_not_match(m, tid)


EDITS: list[Callable[[Members, str], None]] = [
    traversal_key, absolute_key, other_bucket_key, key_of_another_timeline,
    timeline_id_is_a_path, checkpoint_id_is_a_path, shard_bytes_do_not_match,
    shard_and_manifest_hash_both_forged, index_does_not_match_its_hash,
    manifest_names_another_timeline, manifest_counts_disagree, manifest_lists_an_extra_shard,
    manifest_lacks_the_index, tombstone_reaches_another_timeline, unknown_format,
    zip_member_names_climb_out,
]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _state(store: Store) -> tuple[Any, ...]:
    return ({t.id for t in store.catalog.timelines(None)},
            {x.id for x in store.catalog.tombstones(None)},
            {g.id for g in store.catalog.tags(None)},
            sorted(store.objects.list("frames")))


@pytest.mark.parametrize("edit", EDITS, ids=lambda f: f.__name__)
def test_hostile_bundles_are_refused_with_nothing_written(
        edit: Callable[[Members, str], None], new_store: StoreFactory, tmp_path: Path) -> None:
    src = new_store("memory")
    work = tmp_path / "work"
    work.mkdir()
    tid, _, members = _bundle(src, work)
    edit(members, tid)
    bad = _write(work / "bad.zip", members)
    dst = new_store("embedded")
    before, files = _state(dst), _files(tmp_path)
    outside = {p for p in ("/tmp/localckpt-evil.bin", "/abs-escaped.txt") if os.path.exists(p)}
    with pytest.raises(LocalckptError) as info:
        import_bundle(dst, bad)
    assert isinstance(info.value, CorruptDataError), info.value
    assert _state(dst) == before
    assert _files(tmp_path) == files  # nothing anywhere under the test's directory
    assert {p for p in ("/tmp/localckpt-evil.bin", "/abs-escaped.txt")
            if os.path.exists(p)} == outside
    assert not os.path.exists(tmp_path.parent / "evil.bin")


def test_the_unedited_bundle_imports(new_store: StoreFactory, tmp_path: Path) -> None:
    """The cases above fail because of their edit, not because of the rewriting."""
    src = new_store("memory")
    _, _, members = _bundle(src, tmp_path)
    dst = new_store("embedded")
    report = import_bundle(dst, _write(tmp_path / "same.zip", members))
    assert (report.timelines, report.checkpoints, report.tags) == (1, 3, 1)
    assert dst.tag_target("first") is not None and dst.verify().ok


def test_a_format_1_bundle_still_imports(new_store: StoreFactory, tmp_path: Path) -> None:
    src = new_store("memory")
    tid, _, members = _bundle(src, tmp_path)
    manifest = _manifest(members)
    manifest["format"] = "localckpt-bundle/1"
    for key in ("hashes",):
        del manifest[key]
    for key in ("tombstones", "tags"):
        del manifest["counts"][key]
    _set_manifest(members, manifest)
    del members["tombstones.parquet"], members["tags.parquet"]
    dst = new_store("memory")
    report = import_bundle(dst, _write(tmp_path / "v1.zip", members))
    assert (report.timelines, report.checkpoints, report.tags) == (1, 3, 0)
    assert len(dst.get_timeline_frames(tid)) == len(FRAMES)


def test_a_bundle_carries_deletions(new_store: StoreFactory, tmp_path: Path) -> None:
    """Importing into a store that still has what the bundle's store pruned hides it."""
    src, dst = new_store("memory"), new_store("embedded")
    tl = src.create_timeline("v", "p", FRAMES, codec="png")
    a = src.save_stage_output(tl.id, None, "detect", {"n": 1})
    b = src.save_stage_output(tl.id, a, "track", {"t": 1})
    localckpt.sync(src, dst)
    src.prune(b)
    export_bundle(src, tl.id, tmp_path / "b.zip")
    assert import_bundle(dst, tmp_path / "b.zip").tombstones == 1
    assert {c.id for c in dst.checkpoints(tl.id)} == {tl.root_checkpoint_id, a}


# -- sync sources -------------------------------------------------------------------------


def _source(new_store: StoreFactory) -> tuple[Store, str]:
    src = new_store("memory")
    tl = src.create_timeline("v", "p", FRAMES, codec="png", workers=1)
    src.save_stage_output(tl.id, None, "detect", {"n": 1})
    return src, tl.id


def _tamper_object(src: Store, key: str) -> None:
    data = bytearray(src.objects.get(key))
    data[len(data) // 3] ^= 0x55
    src.objects.put(key, bytes(data))


def test_a_source_with_a_damaged_shard_leaves_nothing(store_kind: str, new_store: StoreFactory
                                                      ) -> None:
    src, tid = _source(new_store)
    _tamper_object(src, f"frames/{tid}/shard-000000.bin")
    dst = new_store(store_kind)
    before = _state(dst)
    with pytest.raises(CorruptDataError, match="content hash"):
        localckpt.sync(src, dst)
    assert _state(dst) == before


@pytest.mark.parametrize("damaged", [0, 1])
def test_a_refused_sync_of_two_timelines_into_an_empty_store_leaves_no_directory(
        damaged: int, new_store: StoreFactory, tmp_path: Path) -> None:
    """Each timeline's ingest lease makes its directory, the first also frames/; once
    the refused copy is gone, all of them go, whichever timeline was refused."""
    src = new_store("memory")
    tids = [src.create_timeline(f"v{i}", "p", FRAMES, codec="png", workers=1).id
            for i in range(2)]
    _tamper_object(src, f"frames/{tids[damaged]}/shard-000000.bin")
    path = tmp_path / "empty"
    with localckpt.open(str(path), create=True) as dst:
        with pytest.raises(CorruptDataError, match="content hash"):
            localckpt.sync(src, dst)
        assert not (path / "objects" / "frames").exists()
        assert dst.list_timelines() == [] and dst.verify().ok


def test_bytes_after_a_shards_last_frame_are_refused_by_sync_and_bundles(
        store_kind: str, new_store: StoreFactory, tmp_path: Path) -> None:
    """Every frame of such a shard reads, so sync, export and import copied the bytes
    along, and the copy was a store that verify calls damaged (trailing-bytes)."""
    src, tid = _source(new_store)
    key = f"frames/{tid}/shard-000000.bin"
    src.objects.put(key, src.objects.get(key) + b"appended")
    dst = new_store(store_kind)
    before = _state(dst)
    with pytest.raises(CorruptDataError, match="8 bytes follow its last frame"):
        localckpt.sync(src, dst)
    assert _state(dst) == before
    with pytest.raises(CorruptDataError, match="follow its last frame"):
        export_bundle(src, tid, tmp_path / "b.zip")
    assert not (tmp_path / "b.zip").exists()


def test_a_source_with_a_damaged_index_leaves_nothing(new_store: StoreFactory) -> None:
    src, tid = _source(new_store)
    _tamper_object(src, f"frames/{tid}/index.parquet")
    dst = new_store("embedded")
    with pytest.raises(CorruptDataError, match="index"):
        localckpt.sync(src, dst)
    assert _state(dst) == (set(), set(), set(), [])


@pytest.mark.parametrize("bad", ["path id", "foreign checkpoint", "orphan parent",
                                 "cross-timeline tombstone"])
def test_a_source_whose_catalog_holds_hostile_records_is_refused(
        bad: str, new_store: StoreFactory) -> None:
    """Records written into the source's catalog behind its back (no validation)."""
    import attrs

    from localckpt.ids import new_id
    from localckpt.records import utcnow
    from localckpt.testing import raw
    from localckpt.types import Tombstone

    src, tid = _source(new_store)
    tl = src.get_timeline(tid)
    root = src.get_checkpoint(tl.root_checkpoint_id)
    if bad == "path id":
        raw.insert(src.catalog, attrs.evolve(tl, id="../../evil"))
    elif bad == "foreign checkpoint":  # a row of this tree that names another timeline
        src.catalog.engine.query("UPDATE {s}checkpoints SET timeline_id = ? WHERE id = ?",
                                 ("0" * 8, root.id))
    elif bad == "orphan parent":
        raw.insert(src.catalog, attrs.evolve(root, id=new_id(), parent_id="f" * 12))
    else:
        raw.insert(src.catalog, Tombstone(new_id(), "f" * 12, "timeline", tid, utcnow()))
    dst = new_store("embedded")
    with pytest.raises(CorruptDataError):
        localckpt.sync(src, dst)
    assert _state(dst) == (set(), set(), set(), [])
