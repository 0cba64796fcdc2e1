"""verify finds each kind of damage, names it, and stays quiet on a sound store."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from conftest import StoreFactory

import localckpt
from localckpt import Catalog, Checkpoint, Store, Tag, Timeline, Tombstone
from localckpt.cli import main
from localckpt.errors import CorruptDataError, LocalckptError
from localckpt.shards import index_key, shard_key
from localckpt.sync import CountingCatalog
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


def _append_to_shard(store: Store, tid: str, ids: list[str]) -> str:
    """Bytes after a shard's last frame: every frame reads as before, and verify called
    the shard sound."""
    key = shard_key(tid, 0)
    store.objects.put(key, store.objects.get(key) + b"appended")
    return "trailing-bytes"


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
    _drop_shard, _drop_index, _flip_shard, _replace_index, _append_to_shard]
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


# -- verify reports, never raises, and reads one timeline for verify(timeline) ------------


class RecordingCatalog(CountingCatalog):
    """Counts calls (as sync's CountingCatalog does) and keeps their arguments."""

    def __init__(self, inner: Catalog) -> None:
        super().__init__(inner)
        self.args: list[tuple[str, Any]] = []

    def _count(self, name: str) -> None:
        super()._count(name)
        self.args.append((name, None))

    def _note(self, value: Any) -> Any:
        name, _ = self.args[-1]
        self.args[-1] = (name, None if value is None else sorted(value))
        return value

    def timelines(self, ids: Iterable[str] | None = None) -> list[Timeline]:
        ids = None if ids is None else list(ids)
        found = super().timelines(ids)
        self._note(ids)
        return found

    def checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        ids = list(ids)
        found = super().checkpoints(ids)
        self._note(ids)
        return found

    def tree(self, timeline_id: str) -> list[Checkpoint]:
        found = super().tree(timeline_id)
        self._note([timeline_id])
        return found

    def outputs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        hashes = list(hashes)
        found = super().outputs(hashes)
        self._note(hashes)
        return found

    def tombstones(self, timeline_ids: Iterable[str] | None = None) -> list[Tombstone]:
        ids = None if timeline_ids is None else list(timeline_ids)
        found = super().tombstones(ids)
        self._note(ids)
        return found

    def tags(self, timeline_ids: Iterable[str] | None = None) -> list[Tag]:
        ids = None if timeline_ids is None else list(timeline_ids)
        found = super().tags(ids)
        self._note(ids)
        return found

    def deleted(self, target_ids: Iterable[str], kind: str | None = None) -> set[str]:
        ids = list(target_ids)
        found = super().deleted(ids, kind)
        self._note(ids)
        return found


def _many(store: Store, n: int) -> list[str]:
    tids = []
    for i in range(n):
        tl = store.create_timeline("v", "p", FRAMES[:1], codec="png", workers=1)
        a = store.save_stage_output(tl.id, None, "detect", {"n": i})
        store.prune(store.save_stage_output(tl.id, a, "track", {"t": i}))
        tids.append(tl.id)
    return tids


@pytest.mark.parametrize("n", [3, 12])
def test_verify_of_one_timeline_reads_that_timeline_only(n: int,
                                                         new_store: StoreFactory) -> None:
    base = new_store("memory")
    tids = _many(base, n)
    one = tids[1]
    mine = {c.id for c in base.catalog.tree(one)}
    hashes = {h for c in base.catalog.tree(one) for h in c.stage_hashes.values()}
    recording = RecordingCatalog(base.catalog)
    store = Store(recording, base.objects)
    report = store.verify(one)
    assert report.ok and report.timelines == 1 and not report.storage_checked
    allowed = {one} | mine | hashes
    for name, args in recording.args:
        assert name != "storage_problems"
        assert args is not None, f"{name}(None) reads every timeline"
        assert set(args) <= allowed, f"{name}({args}) reads another timeline's rows"
    assert recording.round_trips <= 8  # a constant, whatever n (see the other case)


def test_verify_of_the_whole_store_checks_the_catalog_storage(new_store: StoreFactory
                                                              ) -> None:
    store = new_store("memory")
    tid = _many(store, 2)[0]
    calls: list[int] = []
    store.catalog.storage_problems = lambda: calls.append(1) or []  # type: ignore[method-assign]
    assert store.verify().storage_checked and calls == [1]
    assert not store.verify(tid).storage_checked and calls == [1]
    assert store.verify(tid, storage=True).storage_checked and calls == [1, 1]
    assert "not the catalog's own storage" in store.verify(tid).summary()


def test_verify_all_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "s")
    with localckpt.open(path, create=True) as store:
        tl = store.create_timeline("v", "p", FRAMES, codec="png", workers=1)
    assert main(["--store", path, "verify", tl.id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["storage_checked"] is False
    assert main(["--store", path, "verify", tl.id, "--all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["storage_checked"] is True


class _Failing(CountingCatalog):
    """A catalog whose reads of one kind fail, as a damaged engine's do."""

    def __init__(self, inner: Catalog, broken: str, error: Exception) -> None:
        super().__init__(inner)
        self.broken, self.error = broken, error

    def _count(self, name: str) -> None:
        if name == self.broken:
            raise self.error


@pytest.mark.parametrize("broken", ["timelines", "tombstones", "tree", "outputs",
                                    "storage_problems", "deleted"])
@pytest.mark.parametrize("error", [CorruptDataError("segment 3 is damaged"),
                                   ValueError("a foreign error from an engine")],
                         ids=["typed", "foreign"])
def test_verify_reports_what_it_could_not_read(broken: str, error: Exception,
                                               new_store: StoreFactory) -> None:
    base = new_store("memory")
    _many(base, 2)
    store = Store(_Failing(base.catalog, broken, error), base.objects)
    report = store.verify()
    assert not report.ok
    assert any(p.kind in ("unreadable", "output-hash") for p in report.damage), report
    assert "no damage" not in report.summary()


def test_a_damaged_timeline_counts_every_frame_of_its_index(new_store: StoreFactory) -> None:
    """Issue 19: "19 frames" of 38 were reported, counting the healthy shards only."""
    store = new_store("memory")
    tl = store.create_timeline("v", "p", [FRAMES[i % 3] for i in range(6)], codec="png",
                               workers=1)
    keys = sorted(k for k in store.objects.list(f"frames/{tl.id}") if "shard" in k)
    store.objects.put(keys[0], store.objects.get(keys[0])[:-1] + b"\0")
    report = store.verify(tl.id)
    assert report.frames == 6 and not report.ok


def test_an_output_that_matches_its_hash_but_does_not_read(new_store: StoreFactory) -> None:
    from localckpt.canonical import content_hash

    store, _, ids = _store(new_store, "memory")
    bad = b'{"a":NaN}'
    h = content_hash(bad)
    c = attrs.evolve(store.get_checkpoint(ids[2]), id="e" * 36, parent_id=ids[2],
                     stage_hashes={"x": h})
    store.catalog.commit(localckpt.Batch(checkpoints=[c], outputs={h: bad}))  # behind our back
    with pytest.raises(CorruptDataError):
        store.load_stage_output(c.id, "x")
    report = store.verify()
    assert [p.kind for p in report.damage] == ["output-json"]


# -- byte flips on the catalog's own files: a report, never an exception -------------------


def _catalog_files(root: Path) -> list[Path]:
    """Whatever files the catalog keeps in the store directory (objects and the marker
    aside): generic, so any engine's files are flipped."""
    return sorted(p for p in root.rglob("*") if p.is_file() and "objects" not in p.parts
                  and p.name != "LOCALCKPT.json")


def _reads(store: Store) -> Any:
    out = []
    for t in store.list_timelines():
        for c in store.checkpoints(t.id):
            out.append((c.id, {s: store.load_stage_output(c.id, s) for s in c.stage_hashes}))
    return out


@pytest.mark.parametrize("where", [0.0, 0.1, 0.35, 0.5, 0.75, 0.99])
def test_byte_flips_in_catalog_files_give_a_report(where: float, tmp_path: Path) -> None:
    path = tmp_path / "s"
    with localckpt.open(str(path), create=True) as store:
        tl = store.create_timeline("v", "p", FRAMES, codec="png", workers=1)
        a = store.save_stage_output(tl.id, None, "detect", {"n": 1})
        store.tag(store.save_stage_output(tl.id, a, "track", {"t": [1, 2, 3]}), "best")
        good = _reads(store)
    files = _catalog_files(path)
    assert files
    for f in files:
        data = f.read_bytes()
        if not data:
            continue
        i = min(len(data) - 1, int(len(data) * where))
        f.write_bytes(data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:])
        try:
            try:
                store = localckpt.open(str(path))
            except LocalckptError:
                continue  # a store that does not open says so; verify needs one that does
            with store:
                report = store.verify()  # never raises
                assert isinstance(report, localckpt.VerifyReport)
                if report.ok:  # then the flip changed no read
                    try:
                        assert _reads(store) == good, f"{f.name}@{i}: verify ok, reads differ"
                    except LocalckptError as exc:
                        pytest.fail(f"{f.name}@{i}: verify ok but a read failed: {exc}")
        finally:
            f.write_bytes(data)


def test_verify_command_names_records_by_short_ids(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verify printed full 36-character ids where ls, tree and every other command print
    short ids: its lines name records by short id, object keys and ids of records the
    store does not hold stay whole, and --json keeps the full ids."""
    from localckpt.ids import new_id

    path = str(tmp_path / "s")
    with localckpt.open(path, create=True) as store:
        one = store.create_timeline("v", "p", FRAMES, codec="png", workers=1)
        two = store.create_timeline("w", "p", FRAMES, codec="png", workers=1)
        other = store.save_stage_output(two.id, None, "detect", {"n": 1})
        stray, missing = new_id(), new_id()
        root = store.get_checkpoint(one.root_checkpoint_id)
        raw.insert(store.catalog, attrs.evolve(root, id=stray, parent_id=other))
        raw.insert(store.catalog, attrs.evolve(root, id=new_id(), merged_from=missing))
        store.objects.delete([shard_key(one.id, 0)])
        short = {i: store.short_id(i) for i in (stray, other)}
        short |= {i: store.short_id(i, "timeline") for i in (one.id, two.id)}
    assert main(["--store", path, "verify"]) == 1
    out = capsys.readouterr().out
    assert (f"  PROBLEM  parent: checkpoint {short[stray]}: parent {short[other]} belongs to "
            f"timeline {short[two.id]}, not {short[one.id]}\n") in out
    assert f"merged_from {missing} is missing\n" in out  # no record to name by a short id
    assert (f"  PROBLEM  missing-object: timeline {short[one.id]}: shard "
            f"{shard_key(one.id, 0)} is missing\n") in out  # the key: a path, whole
    assert main(["--store", path, "verify", "--json"]) == 1
    messages = [p["message"] for p in json.loads(capsys.readouterr().out)["problems"]]
    assert (f"checkpoint {stray}: parent {other} belongs to timeline {two.id}, not "
            f"{one.id}") in messages


# -- what every frame reading misses, and what a transfer once let in -----------------------


def test_bytes_after_a_shards_last_frame_are_named(new_store: StoreFactory) -> None:
    store, tid, _ = _store(new_store, "memory")
    before = [f.image.tobytes() for f in store.get_timeline_frames(tid)]
    key = shard_key(tid, 0)
    size = len(store.objects.get(key))
    _append_to_shard(store, tid, [])
    assert [f.image.tobytes() for f in store.get_timeline_frames(tid)] == before  # reads unchanged
    report = store.verify(tid)
    assert [(p.kind, p.record, p.object) for p in report.damage] == [
        ("trailing-bytes", tid, key)]
    message = report.damage[0].message
    assert f"timeline {tid}: shard {key} holds {size + 8} bytes, 8 after the end of its " \
        f"last frame (byte {size})" in message
    assert report.objects == 2 and report.bytes >= size + 8  # each object read once


def _cross_timeline_tombstone(store: Store, aim: str) -> tuple[str, str, str]:
    """A tombstone filed under A whose target is not a record of its kind in A (what a
    transfer admitted before it looked the target up in every timeline); made with the
    catalog's own commit, as a peer's transfer wrote it. (A's id, V's id, the target)."""
    from localckpt.ids import new_id
    from localckpt.records import utcnow

    v = store.create_timeline("v", "p", FRAMES, codec="png", workers=1)
    vc = store.save_stage_output(v.id, None, "detect", {"v": 1})
    tag = store.tag(vc, "victim")
    a = store.create_timeline("a", "p", FRAMES, codec="png", workers=1)
    ac = store.save_stage_output(a.id, None, "detect", {"a": 1})
    kind, target = {"tag of V": ("tag", tag.id), "checkpoint of V": ("checkpoint", vc),
                    "tag that is a checkpoint": ("tag", ac),
                    "timeline V": ("timeline", v.id)}[aim]
    store.catalog.commit(localckpt.Batch(tombstones=[
        Tombstone(new_id(), target, kind, a.id, utcnow())]))
    return a.id, v.id, target


@pytest.mark.parametrize("aim", ["tag of V", "checkpoint of V", "tag that is a checkpoint",
                                 "timeline V"])
@pytest.mark.parametrize("kind", ["memory", "embedded"])
def test_a_tombstone_aimed_outside_its_timeline_or_kind_is_reported(
        aim: str, kind: str, new_store: StoreFactory) -> None:
    """A store that took a peer's tombstone naming another timeline's tag (before
    6aa4a59) verified clean, yet could not pass its timelines on: a whole sync is
    refused. verify names the tombstone, its timeline and what it names."""
    store = new_store(kind)
    a, v, target = _cross_timeline_tombstone(store, aim)
    with pytest.raises(CorruptDataError, match="tombstone"):  # what verify warns of
        localckpt.sync(store, new_store("memory"))
    report = store.verify()
    assert [(p.kind, p.record) for p in report.damage] == [("tombstone", a)], report.problems
    message = report.damage[0].message
    assert f"of timeline {a} deletes {target}" in message and "Transfers refuse it" in message
    if aim != "tag that is a checkpoint":
        assert f"timeline {v}" in message
    assert store.verify(a).damage == report.damage  # filed under A: verify(A) finds it
    if aim != "timeline V":  # a tombstone deleting V itself hides V
        assert store.verify(v).ok


def test_tombstones_of_purged_records_are_not_reported(new_store: StoreFactory) -> None:
    """A tombstone outlives its target (gc purges the record): nowhere, it is not
    damage."""
    from localckpt.gc import collect_garbage

    store = new_store("memory")
    tids = _many(store, 2)
    tl = store.get_timeline(tids[0])
    c = store.save_stage_output(tl.id, None, "detect", {"gone": 1})
    store.untag(store.tag(c, "gone").name)
    store.prune(c)
    collect_garbage(store, older_than=0, grace=0)
    assert not store.catalog.checkpoints([c])  # purged: the tombstone names nothing here
    assert store.verify().ok and store.verify(tl.id).ok


def _fifo_or_so(path: Path, what: str) -> None:
    import os

    path.unlink()
    if what == "fifo":
        os.mkfifo(path)
    elif what == "directory":
        path.mkdir()
    else:  # sparse: nothing to read on disk, past the cap (made small by the test)
        with open(path, "wb") as fh:
            fh.truncate((1 << 20) + 1)


@pytest.mark.parametrize("what", ["fifo", "directory", "too-large"])
@pytest.mark.parametrize("which", ["index.parquet", "shard-000000.bin"])
def test_an_object_that_is_no_file_localckpt_writes_is_reported_unread(
        which: str, what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """verify read a store's own objects with a plain open: a FIFO in place of a shard
    or an index made it wait for ever, a device or a sparse file of terabytes was read
    whole. Each is a problem naming the key, and nothing of it is read."""
    import os
    import threading

    from localckpt import bundle_limits

    monkeypatch.setattr(bundle_limits, "MAX_OBJECT", 1 << 20)
    store = localckpt.open(str(tmp_path / "s"), create=True)
    tl = store.create_timeline("v", "p", FRAMES, codec="png", workers=1)
    key = f"frames/{tl.id}/{which}"
    path = Path(store.objects.local_path(key) or "")
    _fifo_or_so(path, what)
    reports: list[Any] = []
    thread = threading.Thread(target=lambda: reports.append(store.verify()), daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():  # let the blocked open go, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(60)
        pytest.fail(f"verify waited on a FIFO put in place of {which}")
    report = reports[0]
    assert [(p.kind, p.record, p.object) for p in report.damage] == [
        ("bad-object", tl.id, key)], report.problems
    said = {"fifo": "is a FIFO, not a regular file", "directory": "is a directory, not a",
            "too-large": f"holds {(1 << 20) + 1} bytes, more than the 1048576"}[what]
    assert said in report.damage[0].message and str(path) in report.damage[0].message
    assert store.verify(tl.id).damage == report.damage
    store.close()
