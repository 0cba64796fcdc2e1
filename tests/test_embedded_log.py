"""The embedded catalog's segment logs: torn tails, reopen, compaction, dedup, fork.

These read and write the log files directly (``catalog/seg-*.log``, ``*.pack``) to
check what the Store API cannot see: that a half-written commit is never applied, that
compaction and reopening lose nothing, and that an output is stored once.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import localckpt
from localckpt import BackendUnavailableError, LocalckptError, Store
from localckpt.backends import _segments
from localckpt.backends._segments import HEADER, encode_batch, encode_output
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.ids import new_id
from localckpt.records import checkpoint_to_dict, utcnow
from localckpt.types import Checkpoint, Timeline


def _frames() -> list[np.ndarray]:
    return [np.full((2, 2, 3), 7, np.uint8)]


def _logs(root: Path) -> list[Path]:
    return sorted((root / "catalog").glob("*.log"))


def _log_files(root: Path) -> list[Path]:
    cat = root / "catalog"
    return sorted([*cat.glob("*.log"), *cat.glob("*.pack")])


def _setup(root: Path) -> tuple[Timeline, list[str]]:
    """A closed store with a timeline and a chain of three checkpoints (one sealed segment)."""
    with localckpt.open(root, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", _frames(), codec="png")
        ids = [tl.root_checkpoint_id]
        for i, stage in enumerate(("detect", "track", "ocr")):
            ids.append(store.save_stage_output(tl.id, ids[-1], stage, {"i": i}))
    return tl, ids


def _unseal(seg: Path) -> None:
    """Make a closed segment look like one whose writer was killed (no seal at its end)."""
    data = seg.read_bytes()
    assert data[-_segments.SEAL + 2 : -_segments.SEAL + 3] == b"S", "the segment was sealed"
    seg.write_bytes(data[: -_segments.SEAL])


def _assert_intact(store: Store, tl: Timeline, ids: list[str]) -> None:
    assert store.list_timelines() == [tl]
    assert [c.id for c in store.checkpoints(tl.id)] == ids
    assert [c.id for c in store.lineage(ids[-1])] == ids
    assert store.load_stage_output(ids[-1], "detect") == {"i": 0}
    assert store.load_stage_output(ids[-1], "ocr") == {"i": 2}


def _commit_bytes(tl: Timeline, parent: str, output: dict[str, int]) -> tuple[str, bytes]:
    """One complete commit in the log format: an output frame, then its batch frame."""
    data = canonical_bytes(output)
    h = content_hash(data)
    cp = Checkpoint(new_id(), tl.id, parent, {"raw": h}, {}, {"frames_extracted": 1}, False, "",
                    utcnow(), stage="raw")
    payload = encode_output(h, data) + encode_batch({"t": [], "c": [checkpoint_to_dict(cp)]})
    return cp.id, payload


TAILS: dict[str, Callable[[Timeline, str], bytes]] = {
    "garbage": lambda tl, parent: os.urandom(37),
    "zeros": lambda tl, parent: bytes(4096),
    "half a commit": lambda tl, parent: (lambda p: p[: len(p) // 2])(
        _commit_bytes(tl, parent, {"torn": 1})[1]),
    "commit without its last byte": lambda tl, parent: _commit_bytes(
        tl, parent, {"torn": 2})[1][:-1],
    "bad checksum": lambda tl, parent: (lambda p: p[:-1] + bytes([p[-1] ^ 0xFF]))(
        _commit_bytes(tl, parent, {"torn": 3})[1]),
    "header claiming 4 GB": lambda tl, parent: HEADER.pack(b"\xa7L", b"B", 2**32 - 1, 0),
    "header only": lambda tl, parent: HEADER.pack(b"\xa7L", b"B", 10, 0),
}


@pytest.mark.parametrize("tail", sorted(TAILS))
def test_torn_tail_is_ignored(tmp_path: Path, tail: str) -> None:
    tl, ids = _setup(tmp_path)
    (seg,) = _logs(tmp_path)
    _unseal(seg)  # a writer killed mid-commit leaves no seal, and maybe a torn commit
    size = seg.stat().st_size
    with seg.open("ab") as fh:
        fh.write(TAILS[tail](tl, ids[-1]))
    assert seg.stat().st_size > size
    with localckpt.open(tmp_path, create=True) as store:
        _assert_intact(store, tl, ids)
        new = store.save_stage_output(tl.id, ids[-1], "score", {"s": 1})
    with localckpt.open(tmp_path, create=True) as store:
        assert [c.id for c in store.lineage(new)] == [*ids, new]
        assert store.load_stage_output(new, "score") == {"s": 1}
        assert [c.id for c in store.checkpoints(tl.id)] == [*ids, new]
        assert store.catalog.compact() >= 2  # the torn segment and the new one
    with localckpt.open(tmp_path, create=True) as store:
        assert [c.id for c in store.checkpoints(tl.id)] == [*ids, new]
        assert store.load_stage_output(new, "ocr") == {"i": 2}


def test_complete_commit_appended_by_hand_is_read(tmp_path: Path) -> None:
    """Positive control for the torn-tail tests: the same bytes, whole, are a commit."""
    tl, ids = _setup(tmp_path)
    cid, payload = _commit_bytes(tl, ids[-1], {"whole": 1})
    (seg,) = _logs(tmp_path)
    _unseal(seg)
    with localckpt.open(tmp_path, create=True) as live:  # an open store sees it on its next read
        assert [c.id for c in live.checkpoints(tl.id)] == ids
        with seg.open("ab") as fh:
            fh.write(payload)
        assert [c.id for c in live.checkpoints(tl.id)] == [*ids, cid]
        assert live.load_stage_output(cid, "raw") == {"whole": 1}


def test_torn_write_is_cut_and_nothing_is_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tl, ids = _setup(tmp_path)
    store = localckpt.open(tmp_path, create=True)
    store.save_stage_output(tl.id, ids[-1], "warm", {})  # open this process's segment
    real_write = os.pwrite

    def half_write(fd: int, data: bytes, offset: int) -> int:
        real_write(fd, data[: len(data) // 2], offset)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_segments.os, "pwrite", half_write)
    with pytest.raises(BackendUnavailableError) as info:
        store.save_stage_output(tl.id, ids[-1], "lost", {"x": 1})
    assert "nothing was written" in str(info.value)
    monkeypatch.setattr(_segments.os, "pwrite", real_write)
    assert all("lost" not in c.stage_hashes for c in store.checkpoints(tl.id))
    kept = store.save_stage_output(tl.id, ids[-1], "kept", {"x": 2})
    store.close()
    with localckpt.open(tmp_path, create=True) as again:
        tree = again.checkpoints(tl.id)
        assert all("lost" not in c.stage_hashes for c in tree)
        assert again.load_stage_output(kept, "kept") == {"x": 2}
        assert len(tree) == len(ids) + 2


def test_closed_store_refuses_and_reopens(tmp_path: Path) -> None:
    tl, ids = _setup(tmp_path)
    store = localckpt.open(tmp_path, create=True)
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(LocalckptError, match="closed"):
        store.get_checkpoint(ids[0])
    with pytest.raises(LocalckptError, match="closed"):
        store.save_stage_output(tl.id, None, "detect", {})
    for _ in range(3):
        with localckpt.open(tmp_path, create=True) as again:
            _assert_intact(again, tl, ids)


def test_two_stores_in_one_process_see_each_other(tmp_path: Path) -> None:
    a = localckpt.open(tmp_path, create=True)
    b = localckpt.open(tmp_path, create=True)
    try:
        tl = a.create_timeline("v.mp4", "p", _frames())
        x = b.save_stage_output(tl.id, None, "detect", {"by": "b"})
        y = a.save_stage_output(tl.id, x, "track", {"by": "a"})
        assert [c.id for c in b.lineage(y)] == [tl.root_checkpoint_id, x, y]
        assert a.load_stage_output(y, "detect") == {"by": "b"}
        assert len(_logs(tmp_path)) == 2, "each writer appends to a segment of its own"
    finally:
        a.close()
        b.close()


def test_sealed_segments_are_compacted_on_open(tmp_path: Path) -> None:
    tl, ids = _setup(tmp_path)
    for i in range(7):  # every open-write-close leaves one sealed segment
        with localckpt.open(tmp_path, compact_after=100, create=True) as store:
            ids.append(store.save_stage_output(tl.id, ids[-1], f"s{i}", {"i": i}))
    assert len(_logs(tmp_path)) == 8
    with localckpt.open(tmp_path, compact_after=5, create=True) as store:
        store.catalog.join_compaction()  # compaction runs in the background of the opener
        assert _log_files(tmp_path) == []
        assert len(list((tmp_path / "catalog").glob("run-*.run"))) == 1
        assert [c.id for c in store.checkpoints(tl.id)] == ids
        assert [c.id for c in store.lineage(ids[-1])] == ids
        assert store.load_stage_output(ids[-1], "s6") == {"i": 6}
        assert store.load_stage_output(ids[-1], "detect") == {"i": 0}
        ids.append(store.save_stage_output(tl.id, ids[-1], "after", {}))
    with localckpt.open(tmp_path, create=True) as store:
        assert [c.id for c in store.checkpoints(tl.id)] == ids
        assert store.list_timelines() == [tl]


def test_compaction_leaves_live_segments_alone(tmp_path: Path) -> None:
    tl, ids = _setup(tmp_path)
    sealed = set(_logs(tmp_path))
    live = localckpt.open(tmp_path, create=True)
    try:
        a = live.save_stage_output(tl.id, ids[-1], "live", {"n": 1})
        (live_seg,) = set(_logs(tmp_path)) - sealed
        with localckpt.open(tmp_path, create=True) as other:
            b = other.save_stage_output(tl.id, ids[-1], "other", {"n": 2})
        with localckpt.open(tmp_path, create=True) as compactor:
            assert compactor.catalog.compact() == 2  # the first and the other's segment
        names = {p.name for p in _log_files(tmp_path)}
        assert names == {live_seg.name}, "a live writer's segment must survive compaction"
        assert len(list((tmp_path / "catalog").glob("run-*.run"))) == 1
        c = live.save_stage_output(tl.id, a, "live2", {"n": 3})
        assert {x.id for x in live.children(ids[-1])} == {a, b}
    finally:
        live.close()
    with localckpt.open(tmp_path, create=True) as store:
        assert [x.id for x in store.lineage(c)] == [*ids, a, c]
        assert len(store.checkpoints(tl.id)) == len(ids) + 3


def test_an_output_is_stored_once(tmp_path: Path) -> None:
    big = {"blob": "x" * 200_000}

    def sealed_size() -> int:  # live durable segments end in zero-filled space
        return sum(p.stat().st_size for p in _log_files(tmp_path))

    with localckpt.open(tmp_path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", _frames())
        first = store.save_stage_output(tl.id, None, "detect", big)
    size = sealed_size()
    assert size > 200_000
    with localckpt.open(tmp_path, create=True) as store:
        parent = first
        for i in range(10):  # carried forward, and saved again as a new checkpoint's own
            parent = store.save_stage_output(tl.id, parent, "track", {"i": i})
            store.save_stage_output(tl.id, parent, "detect", big)
        assert store.load_stage_output(parent, "detect") == big
    grown = sealed_size() - size
    assert grown < 50_000, f"the catalog grew by {grown} bytes: the output was copied"


def test_sql_view_matches_records(tmp_path: Path) -> None:
    a = localckpt.open(tmp_path, create=True)
    b = localckpt.open(tmp_path, create=True)
    try:
        t1 = a.create_timeline("1.mp4", "p", _frames())
        t2 = b.create_timeline("2.mp4", "p", _frames())
        t3 = a.create_timeline("3.mp4", "p", _frames())
    finally:
        a.close()
        b.close()
    # a fresh view reads a's segment (t1, t3) before b's (t2)
    with localckpt.open(tmp_path, create=True) as fresh:
        rows = fresh.catalog.sql(
            "SELECT id, source_video, created_at FROM timelines ORDER BY id").to_pylist()
        assert [(r["id"], r["source_video"], r["created_at"]) for r in rows] == [
            (t.id, t.source_video, t.created_at) for t in (t1, t2, t3)]
        counts = fresh.catalog.sql(
            "SELECT timeline_id, count(*) AS n FROM checkpoints GROUP BY 1 ORDER BY 1"
        ).to_pylist()
        assert counts == [{"timeline_id": t.id, "n": 1} for t in (t1, t2, t3)]


def _forked_child(tid: str, parent: str, out: multiprocessing.Queue) -> None:
    store = _FORK_STORE[0]
    try:
        assert store.get_checkpoint(parent).timeline_id == tid
        cid = store.save_stage_output(tid, parent, "child", {"pid": os.getpid()})
        out.put(("ok", cid))
    except BaseException as exc:  # pragma: no cover - reported to the parent
        out.put(("error", repr(exc)))


_FORK_STORE: list[Store] = []


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method is Linux-only here")
def test_store_survives_fork(tmp_path: Path) -> None:
    tl, ids = _setup(tmp_path)
    store = localckpt.open(tmp_path, create=True)
    _FORK_STORE[:] = [store]
    try:
        mine = store.save_stage_output(tl.id, ids[-1], "parent", {"before": "fork"})
        ctx = multiprocessing.get_context("fork")
        out: multiprocessing.Queue = ctx.Queue()
        proc = ctx.Process(target=_forked_child, args=(tl.id, mine, out))
        proc.start()
        try:
            status, value = out.get(timeout=60)
            proc.join(60)
        finally:
            if proc.is_alive():  # a hung child must not outlive the test
                proc.kill()
                proc.join()
        assert (status, proc.exitcode) == ("ok", 0), value
        child_id = value
        # the parent sees the child's checkpoint and keeps writing to its own segment
        assert store.get_checkpoint(child_id).parent_id == mine
        assert store.load_stage_output(child_id, "parent") == {"before": "fork"}
        later = store.save_stage_output(tl.id, mine, "after", {"n": 1})
        assert len(_logs(tmp_path)) == 3, "the child must write to a segment of its own"
    finally:
        _FORK_STORE.clear()
        store.close()
    with localckpt.open(tmp_path, create=True) as fresh:
        assert {c.id for c in fresh.children(mine)} == {child_id, later}
        assert fresh.load_stage_output(child_id, "child") != {"pid": os.getpid()}


def test_durable_segment_overwrites_zeros_and_seals_without_them(tmp_path: Path) -> None:
    """A durable writer's segment ends in zero-filled space while live (so fdatasync need
    not journal a new size); readers stop at the zeros, and sealing cuts them off."""
    big = {"blob": "y" * (3 * _segments.PREALLOC_MIN)}  # larger than the first zero region
    writer = localckpt.open(tmp_path, create=True)
    reader = localckpt.open(tmp_path, create=True)
    try:
        tl = writer.create_timeline("v.mp4", "p", _frames())
        small = writer.save_stage_output(tl.id, None, "detect", {"n": 1})
        (seg,) = _logs(tmp_path)
        raw = seg.read_bytes()
        assert raw.endswith(bytes(1024)), "a live durable segment keeps zeros ahead"
        assert reader.load_stage_output(small, "detect") == {"n": 1}
        large = writer.save_stage_output(tl.id, small, "track", big)
        assert reader.load_stage_output(large, "track") == big
        assert [c.id for c in reader.lineage(large)] == [tl.root_checkpoint_id, small, large]
        assert seg.stat().st_size > len(raw)
    finally:
        writer.close()
        reader.close()
    data = seg.read_bytes()
    assert not data.endswith(bytes(HEADER.size)), "sealing cuts the zero-filled tail"
    last = list(_segments.iter_frames(data, 0))[-1]
    assert last[3] == len(data) - _segments.SEAL, "the seal follows the last commit at once"
    fd = os.open(seg, os.O_RDONLY)
    try:
        assert _segments.sealed_length(fd, len(data)) == last[3]
    finally:
        os.close(fd)
    with localckpt.open(tmp_path, create=True) as again:
        assert again.load_stage_output(large, "track") == big


def test_reader_sees_growth_of_known_segments_without_listing(tmp_path: Path) -> None:
    """The refresh fast path: with the directory unchanged (its mtime set in the past),
    new commits in an already known segment are still seen, and a new segment (which
    changes the directory) is seen too."""
    a = localckpt.open(tmp_path, create=True)
    b = localckpt.open(tmp_path, create=True)
    try:
        tl = b.create_timeline("v.mp4", "p", _frames())
        x = b.save_stage_output(tl.id, None, "detect", {"n": 1})
        past = os.stat(tmp_path / "catalog").st_mtime - 10
        os.utime(tmp_path / "catalog", (past, past))
        assert a.load_stage_output(x, "detect") == {"n": 1}  # lists, remembers the mtime
        y = b.save_stage_output(tl.id, x, "track", {"n": 2})  # same segment, same directory
        assert os.stat(tmp_path / "catalog").st_mtime == past
        assert [c.id for c in a.lineage(y)] == [tl.root_checkpoint_id, x, y]
        with localckpt.open(tmp_path, create=True) as c:  # a new segment: the directory changes
            z = c.save_stage_output(tl.id, y, "ocr", {"n": 3})
        assert a.load_stage_output(z, "ocr") == {"n": 3}
    finally:
        a.close()
        b.close()


def test_a_frame_being_written_is_not_damage_once_it_is_complete(tmp_path: Path) -> None:
    """A reader racing another process's append may see the end of the append before its
    start (a torn read: the frame at the stop fails its CRC, a valid one follows). By the
    time the reader looks past the stop the write has finished: that is no damage. A
    frame that stays bad with a valid one after it is damage, at the valid one's offset."""
    from localckpt.backends._segments import damage_after, encode_batch

    frames = [encode_batch({"c": [], "n": i}) for i in range(3)]
    path = tmp_path / "seg.log"
    path.write_bytes(b"".join(frames))
    stop, later = len(frames[0]), len(frames[0]) + len(frames[1])
    fd = os.open(path, os.O_RDONLY)
    try:
        assert damage_after(fd, stop, later + len(frames[2])) is None
    finally:
        os.close(fd)
    damaged = bytearray(path.read_bytes())
    damaged[stop + len(frames[1]) - 1] ^= 0xFF  # the second frame's last payload byte
    path.write_bytes(bytes(damaged))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert damage_after(fd, stop, len(damaged)) == later
    finally:
        os.close(fd)
