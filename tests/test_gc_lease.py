"""gc and the ingest lease: a paused ingest keeps its shards; one whose lease gc revoked
never commits; deleted timelines' frames and temporary files go; dry runs change nothing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import StoreFactory

import localckpt
from localckpt import Store
from localckpt.errors import BackendUnavailableError, InvalidInputError
from localckpt.gc import collect_garbage
from localckpt.lease import LEASE_NAME, LeaseLost


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, (10, 10, 3), dtype=np.uint8) for _ in range(n)]


class PausingSource:
    """Frames that stop halfway until released (a stalled camera, a slow decoder)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.paused = threading.Event()
        self.resume = threading.Event()

    def __iter__(self) -> Iterator[np.ndarray]:
        for i, f in enumerate(_frames(self.n)):
            if i == self.n // 2:
                self.paused.set()
                assert self.resume.wait(30)
            yield f


def _ingest_in_thread(store: Store, source: PausingSource) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        try:
            result["timeline"] = store.create_timeline("cam", "p", source, codec="png",
                                                       workers=1)
        except BaseException as exc:
            result["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    assert source.paused.wait(30)
    return t, result


def _dirs(store: Store) -> set[str]:
    return {k.split("/")[1] for k in store.objects.list("frames")}


def test_a_paused_ingest_keeps_its_shards(store_kind: str, new_store: StoreFactory) -> None:
    """Defect 4: gc used to delete the shards of an ingest paused longer than
    --older-than, which then committed with frames missing."""
    store = new_store(store_kind)
    source = PausingSource(12)
    thread, result = _ingest_in_thread(store, source)
    time.sleep(0.05)
    report = collect_garbage(store, older_than=0, grace=0)
    assert report.objects_removed == 0 and len(report.leased) == 1
    source.resume.set()
    thread.join(60)
    assert "error" not in result, result
    tl = result["timeline"]
    assert len(store.get_timeline_frames(tl.id)) == 12
    assert not any(k.endswith(LEASE_NAME) for k in store.objects.list("frames"))
    assert store.verify().problems == ()


def test_an_ingest_whose_lease_gc_revoked_never_commits(store_kind: str,
                                                        new_store: StoreFactory) -> None:
    """A writer stalled past the lease TTL looks dead: gc revokes the lease and takes the
    objects, and the writer's commit is refused (nothing visible, nothing left)."""
    store = new_store(store_kind)
    before = {t.id for t in store.catalog.timelines(None)}
    source = PausingSource(12)
    thread, result = _ingest_in_thread(store, source)
    report = collect_garbage(store, older_than=0, lease_ttl=0, grace=0)  # every lease stale
    assert len(report.orphan_timelines) == 1  # its lease revoked, its objects taken
    assert not [k for k in store.objects.list("frames") if k.endswith(LEASE_NAME)]
    source.resume.set()
    thread.join(60)
    # at the commit, or (local objects) when the shard gc removed under the encoder is
    # published: the error says what happened
    assert isinstance(result.get("error"), LeaseLost), result
    assert {t.id for t in store.catalog.timelines(None)} == before
    assert store.list_timelines() == []
    assert store.objects.list("frames") == []  # the failed ingest removed its own shards


def test_gc_frees_deleted_timelines_and_purges(store_kind: str, new_store: StoreFactory
                                               ) -> None:
    store = new_store(store_kind)
    keep = store.create_timeline("k", "p", _frames(3), codec="png")
    gone = store.create_timeline("g", "p", _frames(3), codec="png")
    c = store.save_stage_output(gone.id, None, "detect", {"only": "here"})
    size = store.objects.stat(f"frames/{gone.id}")
    report = store.delete_timeline(gone.id)
    assert report.bytes >= sum(s for s, _ in size.values())
    dry = collect_garbage(store, older_than=0, dry_run=True)
    assert dry.deleted_timelines == (gone.id,) and dry.objects_removed == len(size)
    assert _dirs(store) == {keep.id, gone.id}  # dry run: nothing removed
    done = collect_garbage(store, older_than=0)
    assert done.deleted_timelines == (gone.id,)
    assert done.bytes_removed == sum(s for s, _ in size.values())
    assert _dirs(store) == {keep.id}
    assert len(store.get_timeline_frames(keep.id)) == 3
    if store_kind == "memory":  # the reference backend purges the records too
        assert done.records_purged >= 3  # timeline, root, c, its output
        assert store.catalog.checkpoints([c]) == []
    assert collect_garbage(store, older_than=0).objects_removed == 0  # idempotent
    assert store.verify().problems == ()


def test_temporary_files_of_killed_writes_go(new_store: StoreFactory) -> None:
    store = new_store("embedded")
    tl = store.create_timeline("v", "p", _frames(2), codec="png")
    d = store.objects.local_path(f"frames/{tl.id}")
    assert d is not None
    leftovers = [os.path.join(d, f".tmp-shard-{tl.id}-abc.bin"),
                 os.path.join(d, "index.parquet.tmp-0123")]
    for path in leftovers:
        with open(path, "wb") as fh:
            fh.write(b"half")
    report = store.verify()
    assert report.ok and {p.kind for p in report.problems} == {"temporary-file"}
    assert collect_garbage(store).temporary_files == 0  # too recent by default
    old = time.time() - 7200
    for path in leftovers:
        os.utime(path, (old, old))
    assert collect_garbage(store).temporary_files == 2
    assert not any(os.path.exists(p) for p in leftovers)
    assert len(store.get_timeline_frames(tl.id)) == 2 and store.verify().problems == ()


def test_lease_lost_is_what_a_revoked_commit_raises(new_store: StoreFactory) -> None:
    """The commit-time check itself: a lease that is gone refuses the commit."""
    from localckpt.lease import IngestLease

    store = new_store("memory")
    lease = IngestLease(store.objects, "t1").acquire()
    lease.confirm()  # still ours: fine
    store.objects.delete([lease.key])  # gc revoked it
    with pytest.raises(LeaseLost, match="nothing was committed"):
        lease.confirm()
    lease.release()


def test_abandoned_temp_shards_of_remote_writes_go(new_store: StoreFactory) -> None:
    """Writes to remote objects encode shards in the system's temp directory; a killed
    one leaves them there. The lease's heartbeat keeps a live write's files fresh."""
    import tempfile
    import uuid

    from localckpt.lease import TTL, IngestLease

    store = new_store("memory")
    tmp = tempfile.gettempdir()
    stale, fresh, live = (os.path.join(tmp, f".tmp-shard-test{uuid.uuid4().hex}-{n}.bin")
                          for n in ("stale", "fresh", "live"))
    for path in (stale, fresh, live):
        with open(path, "wb") as fh:
            fh.write(b"x")
    old = time.time() - TTL - 60
    os.utime(stale, (old, old))
    os.utime(live, (old, old))
    lease = IngestLease(store.objects, "t1").acquire()
    lease.track(live)
    assert lease.renew() and os.stat(live).st_mtime > old + 30  # the heartbeat touched it
    try:
        report = collect_garbage(store, older_than=0)
        assert report.system_temp_files >= 1
        assert not os.path.exists(stale) and os.path.exists(fresh) and os.path.exists(live)
    finally:
        lease.release()
        for path in (fresh, live):
            os.remove(path)


def test_bad_gc_arguments_are_typed_errors(new_store: StoreFactory) -> None:
    store = new_store("memory")
    for bad in ("x", -1, float("nan"), True, None):
        with pytest.raises(InvalidInputError, match="older_than"):
            collect_garbage(store, older_than=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        collect_garbage(store, dry_run="yes")  # type: ignore[arg-type]


def test_shards_follow_the_umask(new_store: StoreFactory) -> None:
    """Defect 11: shards were created 0600 (mkstemp) while the index was 0644."""
    old = os.umask(0o022)
    try:
        store = new_store("embedded")
        tl = store.create_timeline("v", "p", _frames(3), codec="png")
        for key in store.objects.list(f"frames/{tl.id}"):
            path = store.objects.local_path(key)
            assert path is not None
            assert os.stat(path).st_mode & 0o777 == 0o644, key
    finally:
        os.umask(old)


def test_a_writer_survives_frames_dir_going_while_it_makes_its_own(tmp_path: Path) -> None:
    """A refused transfer removes the frames/ directory its lease made once it is empty
    again (IngestLease.remove_dirs); a writer of another timeline whose makedirs found
    frames/ just before then failed to make frames/<timeline>/ in it (FileNotFoundError:
    some 150 of 3,000 makedirs with the directory removed and made again meanwhile, as here).
    Writers make the path again (objects.make_dirs)."""
    import sys

    from localckpt.objects import Objects

    objects = Objects.from_url(str(tmp_path / "objects"))
    frames = os.path.join(objects.root, "frames")
    stop = threading.Event()

    def remove_and_make() -> None:  # refused transfers into a store without frames
        while not stop.is_set():
            for step in (os.rmdir, os.mkdir):
                try:
                    step(frames)
                except OSError:
                    pass
            time.sleep(0)  # each does more than this between the two

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the two threads as two processes would
    other = threading.Thread(target=remove_and_make, daemon=True)
    other.start()
    try:
        for i in range(1500):
            key = f"frames/t{i}/{LEASE_NAME}"
            objects.put(key, b"{}")
            objects.delete([key])
            os.rmdir(os.path.dirname(objects.path(key)))
    finally:
        stop.set()
        other.join()
        sys.setswitchinterval(interval)


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if not p.name.startswith("catalog.sqlite"))


def test_a_failed_ingest_into_an_empty_store_leaves_no_directory(tmp_path: Path) -> None:
    """The ingest lease made objects/frames/ in a store that held no frames, and a
    failed ingest (here: no frames at all) left it there, empty."""
    path = tmp_path / "s"
    with localckpt.open(str(path), create=True) as store:
        before = _listing(path)
        with pytest.raises(InvalidInputError, match="no frames"):
            store.create_timeline("v.mp4", "p", [], codec="png", workers=1)
        assert _listing(path) == before and not (path / "objects" / "frames").exists()
        store.create_timeline("v.mp4", "p", _frames(2), codec="png", workers=1)
        assert store.verify().ok


def test_an_ingest_whose_commit_fails_leaves_no_directory(tmp_path: Path) -> None:
    """Its frames were written, then the catalog stayed locked by another writer: the
    frames went, and frames/ (made for them in a store that held none) with them."""
    path = tmp_path / "s"
    with localckpt.open(str(path), create=True, timeout=0.2) as store:
        before = _listing(path)
        with contextlib.closing(sqlite3.connect(path / "catalog.sqlite")) as other:
            other.execute("BEGIN IMMEDIATE")  # holds the write lock
            with pytest.raises(BackendUnavailableError, match="locked"):
                store.create_timeline("v.mp4", "p", _frames(2), codec="png", workers=1)
            other.execute("ROLLBACK")
        assert _listing(path) == before and not (path / "objects" / "frames").exists()
        assert store.verify().ok and not store.list_timelines()
