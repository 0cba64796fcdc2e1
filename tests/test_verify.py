"""verify finds each kind of damage, names it, and stays quiet on a sound store."""

from __future__ import annotations

import json
from collections.abc import Callable

import attrs
import numpy as np
import pytest
from conftest import StoreFactory

import localckpt
from localckpt import Store
from localckpt.cli import main
from localckpt.shards import index_key, shard_key
from localckpt.testing import raw

FRAMES = [np.full((6, 6, 3), i * 60, np.uint8) for i in range(3)]


def _store(new_store: StoreFactory, kind: str) -> tuple[Store, str, list[str]]:
    store = new_store(kind)
    tl = store.create_timeline("v", "p", FRAMES, codec="png", workers=1)
    a = store.save_stage_output(tl.id, None, "detect", {"n": 1})
    b = store.save_stage_output(tl.id, a, "track", {"t": 1})
    return store, tl.id, [tl.root_checkpoint_id, a, b]


def test_a_sound_store_verifies_clean(store_kind: str, new_store: StoreFactory) -> None:
    store, _, ids = _store(new_store, store_kind)
    store.prune(ids[2])
    report = store.verify()
    assert report.ok and report.problems == ()
    assert (report.timelines, report.checkpoints, report.frames) == (1, 2, 3)
    assert report.outputs == 1 and report.objects == 2 and report.bytes > 0
    assert "no damage" in report.summary()


def _drop_shard(store: Store, tid: str, ids: list[str]) -> str:
    store.objects.delete([shard_key(tid, 0)])
    return "missing-object"


def _drop_index(store: Store, tid: str, ids: list[str]) -> str:
    store.objects.delete([index_key(tid)])
    return "missing-object"


def _flip_shard(store: Store, tid: str, ids: list[str]) -> str:
    data = bytearray(store.objects.get(shard_key(tid, 0)))
    data[-1] ^= 1
    store.objects.put(shard_key(tid, 0), bytes(data))
    return "frame-hash"


def _replace_index(store: Store, tid: str, ids: list[str]) -> str:
    from localckpt.shards import index_bytes, parse_index

    metas = parse_index(store.objects.get(index_key(tid)), "x")
    store.objects.put(index_key(tid), index_bytes(metas[:2]))
    return "index-hash"


def _orphan_checkpoint(store: Store, tid: str, ids: list[str]) -> str:
    """A checkpoint whose parent exists nowhere (a catalog damaged behind our back)."""
    c = store.get_checkpoint(ids[2])
    raw.insert(store.catalog, attrs.evolve(c, id="f" * 36, parent_id="e" * 36))
    return "parent"


def _lost_output(store: Store, tid: str, ids: list[str]) -> str:
    h = store.get_checkpoint(ids[2]).stage_hashes["track"]
    raw.delete_output(store.catalog, h)
    return "missing-output"


def _rotten_output(store: Store, tid: str, ids: list[str]) -> str:
    h = store.get_checkpoint(ids[2]).stage_hashes["track"]
    raw.set_output(store.catalog, h, b'{"t":2}')
    return "output-hash"


DAMAGE: list[Callable[[Store, str, list[str]], str]] = [
    _drop_shard, _drop_index, _flip_shard, _replace_index]
CATALOG_DAMAGE = [_orphan_checkpoint, _lost_output, _rotten_output]  # memory catalog only


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_object_damage_is_reported(damage: Callable[[Store, str, list[str]], str],
                                   store_kind: str, new_store: StoreFactory) -> None:
    store, tid, ids = _store(new_store, store_kind)
    kind = damage(store, tid, ids)
    report = store.verify()
    assert not report.ok
    assert kind in {p.kind for p in report.damage}, report.problems
    assert all(p.record == tid for p in report.damage)
    assert store.verify(tid).damage == report.damage  # one timeline: the same findings


@pytest.mark.parametrize("damage", CATALOG_DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_record_damage_is_reported(damage: Callable[[Store, str, list[str]], str],
                                   new_store: StoreFactory) -> None:
    store, tid, ids = _store(new_store, "memory")
    kind = damage(store, tid, ids)
    report = store.verify()
    assert [p.kind for p in report.damage] == [kind], report.problems


def test_catalog_storage_problems_are_reported(new_store: StoreFactory) -> None:
    store, _, _ = _store(new_store, "memory")
    store.catalog.storage_problems = lambda: [("seg-1.log", "CRC mismatch at 4096")]  # type: ignore[method-assign]
    report = store.verify()
    assert [(p.kind, p.object) for p in report.damage] == [("catalog-storage", "seg-1.log")]


def test_leftovers_are_reported_but_not_damage(new_store: StoreFactory) -> None:
    from localckpt.ids import new_id
    from localckpt.shards import write_frames

    store, tid, _ = _store(new_store, "memory")
    orphan = new_id()
    write_frames(store.objects, orphan, [localckpt.Frame(0, 0.0, 0, "0" * 16, FRAMES[0])])
    store.objects.put(f"frames/{tid}/shard-000007.bin", b"stray")
    report = store.verify()
    assert report.ok and {p.kind for p in report.problems} == {"unreferenced-object"}
    assert {p.object for p in report.collectable} == {
        f"frames/{tid}/shard-000007.bin", index_key(orphan), shard_key(orphan, 0)}


def test_verify_command(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "s")
    with localckpt.open(path, create=True) as store:
        tl = store.create_timeline("v", "p", FRAMES, codec="png", workers=1)
    assert main(["--store", path, "verify"]) == 0
    assert "no damage" in capsys.readouterr().out
    with localckpt.open(path) as store:
        _flip_shard(store, tl.id, [])
    assert main(["--store", path, "verify", tl.id[:10]]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM" in out and "frame-hash" in out
    assert main(["--store", path, "verify", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["problems"][0]["kind"] == "frame-hash"
    assert data["problems"][0]["collectable"] is False


def test_verify_of_a_deleted_timeline_is_not_found(new_store: StoreFactory) -> None:
    store, tid, _ = _store(new_store, "memory")
    store.delete_timeline(tid)
    with pytest.raises(localckpt.NotFoundError):
        store.verify(tid)
    assert store.verify().ok  # its frames are leftovers now
    assert {p.kind for p in store.verify().problems} == {"unreferenced-object"}
