"""The embedded store (SQLite catalog) when the machine is not kind, and how its writers
share the database:

- a full disk gives typed errors and loses nothing committed;
- a read-only store (a read-only bind mount) opens and reads, and so does an
  unconverted format-2 store (``conversion.read_only_catalog``);
- descriptors stay few over many open/close cycles;
- reading a store imports neither duckdb nor pyarrow;
- threads saving at once share transactions (group commit);
- a writer that finds the database locked past its ``timeout`` gets
  BackendUnavailableError naming the file; readers are never blocked by a writer;
- a process that forks keeps working, and so does its child.

The disk-full and read-only cases mount a small tmpfs (or a read-only bind mount), which
needs root on Linux: CI runs as root, so there they run; elsewhere they skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import localckpt
from localckpt.errors import BackendUnavailableError, LocalckptError
from localckpt.schema import to_dict

FRAME = np.zeros((4, 4, 3), np.uint8)
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
FIXTURES = Path(__file__).parent / "fixtures" / "legacy"


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=60)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- a full disk --------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if not IS_ROOT or sys.platform != "linux":
        pytest.skip("mounting a 2 MB tmpfs needs root on Linux (CI runs as root)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=60)


def test_a_full_disk_gives_typed_errors_and_loses_nothing_committed(small_disk: Path) -> None:
    root = small_disk / "store"
    store = localckpt.open(root, create=True)
    tl = store.create_timeline("v.mp4", "p", [FRAME])
    saved: list[tuple[str, int]] = []
    failures: list[str] = []
    parent = None
    for i in range(200):
        try:
            parent = store.save_stage_output(tl.id, parent, "s", {"i": i, "pad": "x" * 40_000})
            saved.append((parent, i))
        except LocalckptError as exc:
            assert isinstance(exc, BackendUnavailableError), repr(exc)
            assert "full" in str(exc) and "catalog.sqlite" in str(exc), str(exc)
            # says it is the disk, that the write is not half there, and what frees space
            assert "is full (database or disk is full): nothing of this write was saved. " \
                "Free space" in str(exc) and "localckpt gc" in str(exc), str(exc)
            failures.append(str(exc))
            if len(failures) >= 20:
                break
    assert saved and len(failures) >= 20, (len(saved), len(failures))
    store.close()
    with localckpt.open(root) as again:  # everything a save returned is there
        assert [c.id for c in again.lineage(saved[-1][0])][1:] == [c for c, _ in saved]
        for cid, i in saved[:: max(1, len(saved) // 10)]:
            assert again.load_stage_output(cid, "s")["i"] == i
        assert again.catalog.storage_problems() == []
    _mount("-o", "remount,size=64m", str(small_disk))
    with localckpt.open(root) as again:  # space again: saves work
        more = again.save_stage_output(tl.id, saved[-1][0], "t", {"ok": 1})
    with localckpt.open(root) as again:
        assert again.load_stage_output(more, "t") == {"ok": 1}
        assert len(again.checkpoints(tl.id)) == len(saved) + 2
        assert again.verify().ok


# -- read-only stores -------------------------------------------------------------------------


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(writable store directory, the same directory mounted read-only)."""
    if not IS_ROOT or sys.platform != "linux":
        pytest.skip("a read-only bind mount needs root on Linux (CI runs as root)")
    src, ro = tmp_path / "store", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    try:
        _mount("--bind", str(src), str(ro))
        _mount("-o", "remount,bind,ro", str(ro))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make a read-only bind mount here: {exc}")
    try:
        yield src, ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False, timeout=60)


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_read_only_store_opens_and_reads(read_only: tuple[Path, Path]) -> None:
    src, ro = read_only
    with localckpt.open(src, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
    ids: list[str] = []
    for i in range(10):  # written by several processes' opens, closed cleanly
        with localckpt.open(src) as store:
            ids.append(store.save_stage_output(tl.id, ids[-1] if ids else None, "s", {"i": i}))
    before = _snapshot(src)
    with localckpt.open(ro) as store:
        assert [c.id for c in store.lineage(ids[-1])][1:] == ids
        assert store.load_stage_output(ids[-1], "s") == {"i": 9}
        assert len(store.get_timeline_frames(tl.id)) == 1
        assert store.catalog.storage_problems() == []
        assert store.verify().ok
        with pytest.raises(BackendUnavailableError, match="read-only"):
            store.save_stage_output(tl.id, ids[-1], "t", {})
        with pytest.raises(BackendUnavailableError, match="read-only"):
            store.catalog.purge_deleted()
    assert _snapshot(src) == before, "nothing was written"


def test_an_unconverted_format_2_store_reads_read_only(read_only: tuple[Path, Path]) -> None:
    src, ro = read_only
    shutil.copytree(FIXTURES / "format2" / "store", src, dirs_exist_ok=True)
    expected = json.loads((FIXTURES / "format2" / "expected.json").read_text("utf-8"))
    before = _snapshot(src)
    with localckpt.open(ro) as store:
        cat = store.catalog
        assert [to_dict(t) for t in cat.timelines()] == expected["timelines"]
        got = sorted((to_dict(c) for t in cat.timelines() for c in cat.tree(t.id)),
                     key=lambda d: d["id"])
        assert json.dumps(got, sort_keys=True) == json.dumps(
            sorted(expected["checkpoints"], key=lambda d: d["id"]), sort_keys=True)
        assert [to_dict(x) for x in cat.tombstones(None)] == expected["tombstones"]
        live = store.list_timelines()
        assert live and len(store.get_timeline_frames(live[0].id)) == live[0].frame_count
        with pytest.raises(BackendUnavailableError, match=r"old format.*convert"):
            store.save_stage_output(live[0].id, None, "s", {})
    assert _snapshot(src) == before, "nothing was converted or written"
    assert (src / "catalog").is_dir() and not (src / "catalog.sqlite").exists()


def _damage_all_but_the_first_page(catalog: Path) -> None:
    """Every page but the first (sqlite_master's root) overwritten at its start: what
    opening the store reads is gone."""
    data = bytearray(catalog.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    for start in range(size, len(data), size):
        data[start:start + 8] = b"\xff" * 8
    catalog.write_bytes(bytes(data))


def test_a_damaged_catalog_read_only_is_no_reason_to_run_verify(
        read_only: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A read-only store skipped the open-time read (the migration's), so its damage was
    met by the command's first query, which said "run `localckpt verify`"; verify, which
    cannot read it either, said so of itself nine times. A writer's open says that no
    command can open the store and how to restore it: so does a reader's now."""
    from localckpt.cli import main

    src, ro = read_only
    with localckpt.open(src, create=True) as store:
        store.create_timeline("v.mp4", "p", [FRAME])
    _damage_all_but_the_first_page(src / "catalog.sqlite")
    before = _snapshot(src)
    for command in ("ls", "verify"):
        assert main(["--store", str(ro), command]) == 1
        err = capsys.readouterr().err
        assert f"the catalog file {ro / 'catalog.sqlite'} is damaged" in err
        assert "where opening the store reads it: no command can open this store, " \
               "`localckpt verify` neither. Restore the store directory from a copy" in err
        assert "run `localckpt verify`" not in err
    assert _snapshot(src) == before, "nothing was written"


def test_a_damaged_catalog_opened_read_only_says_it_cannot_be_opened(tmp_path: Path) -> None:
    """The same as the read-only mount above, on any machine: the catalog opened
    read-only (as a directory this process may not write opens it)."""
    from localckpt.backends.sql import sqlite_catalog
    from localckpt.errors import CorruptDataError

    with localckpt.open(tmp_path, create=True) as store:
        store.create_timeline("v.mp4", "p", [FRAME])
    _damage_all_but_the_first_page(tmp_path / "catalog.sqlite")
    with pytest.raises(CorruptDataError, match="no command can open this store") as info:
        sqlite_catalog(str(tmp_path / "catalog.sqlite"), read_only=True).close()
    assert "run `localckpt verify`" not in str(info.value)


def test_a_catalog_of_a_newer_localckpt_is_refused_read_only_too(tmp_path: Path) -> None:
    """A writer's open refuses a catalog whose schema is newer than this code knows; one
    opened read-only (a directory this process may not write) skipped that check and
    read it as if it knew its tables."""
    import sqlite3

    from localckpt.backends.sql import sqlite_catalog
    from localckpt.errors import SchemaVersionError

    with localckpt.open(tmp_path, create=True) as store:
        store.create_timeline("v.mp4", "p", [FRAME])
    catalog = tmp_path / "catalog.sqlite"
    with sqlite3.connect(catalog) as conn:
        conn.execute("INSERT INTO schema_migrations (version, description, applied_at) "
                     "VALUES (999, 'from the future', '2030-01-01')")
    conn.close()
    for read_only in (False, True):
        with pytest.raises(SchemaVersionError, match=r"schema version 999.*upgrade"):
            sqlite_catalog(str(catalog), read_only=read_only).close()


# -- descriptors and imports --------------------------------------------------------------------


def test_a_reader_through_120_open_write_close_cycles_keeps_few_descriptors(
        tmp_path: Path) -> None:
    with localckpt.open(tmp_path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
    reader = localckpt.open(tmp_path)
    try:
        baseline = None
        parent = None
        for cycle in range(120):
            with localckpt.open(tmp_path, fsync=False) as writer:
                parent = writer.save_stage_output(tl.id, parent, "s", {"cycle": cycle})
            assert reader.load_stage_output(parent, "s") == {"cycle": cycle}
            assert len(reader.lineage(parent)) == cycle + 2
            if cycle == 10:
                baseline = _open_fds()
        assert baseline is not None
        assert _open_fds() <= baseline + 2, "descriptors grew with the cycles"
    finally:
        reader.close()
    assert _open_fds() <= baseline, "the reader's close left descriptors open"


def test_reads_import_neither_duckdb_nor_pyarrow(tmp_path: Path) -> None:
    with localckpt.open(tmp_path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        cid = store.save_stage_output(tl.id, None, "s", {"x": 1})
    code = (
        "import sys, localckpt\n"
        f"s = localckpt.open({str(tmp_path)!r})\n"
        f"s.list_timelines(); s.get_checkpoint({cid!r}); s.checkpoints({tl.id!r})\n"
        f"s.lineage({cid!r}); s.load_stage_output({cid!r}, 's')\n"
        f"s.save_stage_output({tl.id!r}, {cid!r}, 't', {{}})\n"
        "s.close()\n"
        "print(sorted(m for m in ('duckdb', 'pyarrow', 'psycopg') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# -- writers sharing the database ---------------------------------------------------------------


def test_threads_saving_at_once_share_transactions(tmp_path: Path) -> None:
    threads, per_thread = 8, 10
    with localckpt.open(tmp_path, create=True, fsync=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        engine = store.catalog.engine
        barrier = threading.Barrier(threads)
        saved: list[str] = []
        errors: list[BaseException] = []

        def saver(n: int) -> None:
            try:
                barrier.wait()
                parent = None
                for i in range(per_thread):
                    parent = store.save_stage_output(tl.id, parent, f"t{n}", {"i": i})
                    saved.append(parent)
            except BaseException as exc:
                errors.append(exc)

        before = engine.commits
        workers = [threading.Thread(target=saver, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        commits = engine.commits - before
        assert errors == []
        assert len(saved) == threads * per_thread
        assert commits < len(saved), f"{commits} transactions for {len(saved)} saves"
        assert {c.id for c in store.checkpoints(tl.id)} == {tl.root_checkpoint_id, *saved}


def test_threads_saving_in_turn_seldom_wait_for_each_other(tmp_path: Path) -> None:
    """A committing thread waits briefly for the threads that wrote in the last groups
    (group commit gathers them); threads that write in turn, never at once, find nobody
    joining, and each such wait doubles the groups that skip it: a few waits, not one a
    save."""
    saves = 64
    with localckpt.open(tmp_path, create=True, fsync=False) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        engine = store.catalog.engine  # type: ignore[attr-defined]
        turns = [threading.Event(), threading.Event()]
        errors: list[BaseException] = []

        def saver(n: int) -> None:
            try:
                for i in range(saves // 2):
                    turns[n].wait()
                    turns[n].clear()
                    store.save_stage_output(tl.id, None, f"t{n}", {"i": i})
                    turns[1 - n].set()
            except BaseException as exc:
                errors.append(exc)
                turns[1 - n].set()

        workers = [threading.Thread(target=saver, args=(n,)) for n in range(2)]
        for w in workers:
            w.start()
        turns[0].set()
        for w in workers:
            w.join()
        assert errors == []
        assert engine.commits >= saves  # in turn: a commit each
        assert 1 <= engine.lone_gathers <= 7, engine.lone_gathers
        assert len(store.checkpoints(tl.id)) == saves + 1


def test_a_refused_write_in_a_group_does_not_take_the_others_with_it(tmp_path: Path) -> None:
    """Writes of a group commit share a transaction: one that conflicts is refused alone."""
    import attrs

    from localckpt.catalog import Batch
    from localckpt.errors import ConflictError

    with localckpt.open(tmp_path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        root = store.get_checkpoint(tl.root_checkpoint_id)
        bad = attrs.evolve(root, scenario_label="other")
        barrier = threading.Barrier(6)
        outcomes: list[str] = []

        def write(n: int) -> None:
            barrier.wait()
            try:
                if n == 0:
                    store.catalog.commit(Batch(checkpoints=[bad]))
                else:
                    store.save_stage_output(tl.id, None, f"s{n}", {"n": n})
                outcomes.append("ok")
            except ConflictError:
                outcomes.append("conflict")

        workers = [threading.Thread(target=write, args=(n,)) for n in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert sorted(outcomes) == ["conflict"] + ["ok"] * 5
        assert len(store.checkpoints(tl.id)) == 6
        assert store.get_checkpoint(root.id) == root
        assert store.catalog.storage_problems() == []


def _save_batches(store: localckpt.Store, n: int) -> list[Any]:
    """n save-shaped batches under a new timeline's root (one checkpoint and its output
    each), not committed."""
    import attrs

    from localckpt.canonical import canonical_bytes, content_hash
    from localckpt.catalog import Batch
    from localckpt.ids import new_id

    tl = store.create_timeline("v.mp4", "p", [FRAME])
    root = store.get_checkpoint(tl.root_checkpoint_id)
    batches = []
    for i in range(n):
        data = canonical_bytes({"i": i})
        h = content_hash(data)
        child = attrs.evolve(root, id=new_id(), parent_id=root.id, stage="s",
                             stage_hashes={"s": h})
        batches.append(Batch(checkpoints=[child], outputs={h: data}))
    return batches


def _flush_group(store: localckpt.Store, batches: list[Any]) -> tuple[list[Any], list[str]]:
    """The batches written as one group of the engine's group commit (what threads
    saving at once make): (each write's error or None, the statements run)."""
    from localckpt.backends.sql.sqlite import _Entry

    catalog = store.catalog
    engine = catalog.engine  # type: ignore[attr-defined]
    group = [_Entry(catalog._steps(b, None, b.checkpoints, b.timelines))  # type: ignore[attr-defined]
             for b in batches]
    conn = engine._conn()
    said: list[str] = []
    conn.set_trace_callback(said.append)
    try:
        engine._flush(conn, group)
    finally:
        conn.set_trace_callback(None)
    assert all(e.done for e in group)
    return [e.error for e in group], said


def test_a_group_of_writes_runs_without_a_savepoint_each(tmp_path: Path) -> None:
    """The writes of a group commit run one after the other in its transaction: a
    savepoint around each cost two statements a write, for the rare refused one."""
    with localckpt.open(tmp_path, create=True) as store:
        batches = _save_batches(store, 3)
        errors, said = _flush_group(store, batches)
        assert errors == [None, None, None]
        assert not [s for s in said if "SAVEPOINT" in s or "RELEASE" in s], said
        assert said.count("BEGIN IMMEDIATE") == 1 and said.count("COMMIT") == 1, said
        for b in batches:
            assert store.get_checkpoint(b.checkpoints[0].id) == b.checkpoints[0]
        assert store.catalog.storage_problems() == []


def test_a_refused_write_of_a_group_leaves_the_others_committed(tmp_path: Path) -> None:
    """A write of the group refused (here a stored id with other content): the group runs
    again with each write in a savepoint, and only the refused one is left out."""
    import attrs

    from localckpt.backends.sql.engine import Duplicate

    with localckpt.open(tmp_path, create=True) as store:
        batches = _save_batches(store, 4)
        store.catalog.commit(batches[2])
        stored = batches[2].checkpoints[0]
        clash = attrs.evolve(batches[2], checkpoints=[attrs.evolve(stored, stage="t")])
        errors, said = _flush_group(store, [batches[0], batches[1], clash, batches[3]])
        assert [type(e) if e else None for e in errors] == [None, None, Duplicate, None]
        assert said.count("COMMIT") == 1 and "ROLLBACK" in said, said
        assert said.count("SAVEPOINT w") == 4, said
        for b in (batches[0], batches[1], batches[3]):
            assert store.get_checkpoint(b.checkpoints[0].id) == b.checkpoints[0]
        assert store.get_checkpoint(stored.id) == stored
        assert store.catalog.storage_problems() == []
        assert store.verify().ok


_HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO unreferenced (hash) VALUES ('uncommitted')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@pytest.fixture
def locked_store(tmp_path: Path) -> Iterator[tuple[Path, str, subprocess.Popen[str]]]:
    """(store, timeline id, a process holding the database's write lock until its stdin
    gets a line)."""
    root = tmp_path / "store"
    with localckpt.open(root, create=True) as store:
        tid = store.create_timeline("v.mp4", "p", [FRAME]).id
        store.save_stage_output(tid, None, "s", {"before": 1})
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(root / "catalog.sqlite")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        yield root, tid, holder
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()


def _release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    holder.wait(timeout=60)


def test_a_writer_past_its_timeout_gets_backend_unavailable_naming_the_file(
        locked_store: tuple[Path, str, subprocess.Popen[str]]) -> None:
    root, tid, holder = locked_store
    with localckpt.open(root, timeout=0.3) as store:
        for attempt in (lambda: store.save_stage_output(tid, None, "t", {"n": 1}),
                        lambda: store.create_timeline("w.mp4", "p", [FRAME]),
                        store.catalog.purge_deleted):
            with pytest.raises(BackendUnavailableError) as info:
                attempt()
            message = str(info.value)
            assert str(root / "catalog.sqlite") in message and "locked" in message, message
        _release(holder)
        saved = store.save_stage_output(tid, None, "t", {"n": 1})  # usable again
        assert store.load_stage_output(saved, "t") == {"n": 1}
        assert store.verify().ok


def test_readers_are_not_blocked_by_a_writer_holding_the_lock(
        locked_store: tuple[Path, str, subprocess.Popen[str]]) -> None:
    root, tid, holder = locked_store
    with localckpt.open(root, timeout=0.3) as store:  # a blocked read would fail at 0.3 s
        for _ in range(20):
            assert [t.id for t in store.list_timelines()] == [tid]
            (c,) = [c for c in store.checkpoints(tid) if c.parent_id is not None]
            assert store.load_stage_output(c.id, "s") == {"before": 1}
            assert store.catalog.missing_outputs(["uncommitted"]) == {"uncommitted"}
            assert store.catalog.storage_problems() == []  # never the writer's rows
        _release(holder)


def test_a_forking_process_and_its_child_both_keep_working(tmp_path: Path) -> None:
    with localckpt.open(tmp_path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        first = store.save_stage_output(tl.id, None, "s", {"who": "parent"})
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child uses the store it inherited: its own connections
            code = 1
            try:
                os.close(read)
                cid = store.save_stage_output(tl.id, first, "t", {"who": "child"})
                assert store.load_stage_output(cid, "s") == {"who": "parent"}
                os.write(write, cid.encode())
                store.close()
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        with os.fdopen(read) as fh:
            child_id = fh.read()
        assert os.waitstatus_to_exitcode(status) == 0
        # the parent's connections survived the child's close
        assert store.load_stage_output(child_id, "t") == {"who": "child"}
        mine = store.save_stage_output(tl.id, child_id, "u", {"who": "parent again"})
        assert [c.id for c in store.lineage(mine)][1:] == [first, child_id, mine]
        threads = [threading.Thread(target=store.save_stage_output,
                                    args=(tl.id, mine, f"x{n}", {"n": n})) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(store.children(mine)) == 4


def test_a_writer_waits_a_bounded_time_for_the_lock_then_says_who_holds_it(
        tmp_path: Path) -> None:
    """Another connection holding the write lock: a save polls for it up to the engine's
    timeout, then fails with BackendUnavailableError naming the file, and writes nothing;
    once the lock is free, the same store saves."""
    import sqlite3

    path = tmp_path / "s"
    with localckpt.open(path, create=True) as store:
        tl = store.create_timeline("v", "p", [np.zeros((4, 4, 3), np.uint8)], codec="png")
        store.catalog.engine.timeout = 0.3
        before = len(store.checkpoints(tl.id))
        holder = sqlite3.connect(path / "catalog.sqlite", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(BackendUnavailableError, match="stayed locked") as err:
                store.save_stage_output(tl.id, None, "s", {"a": 1})
            assert "catalog.sqlite" in str(err.value)
            assert len(store.checkpoints(tl.id)) == before  # reads go on meanwhile
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        store.save_stage_output(tl.id, None, "s", {"a": 1})
        assert len(store.checkpoints(tl.id)) == before + 1


def test_a_writer_gets_the_lock_between_back_to_back_transactions(tmp_path: Path) -> None:
    """A gc's purge is many short transactions, one after another: a save from another
    process waiting for the lock is let in between two of them (the engine leaves a gap
    longer than a waiting writer's poll), not after the last."""
    path = tmp_path / "s"
    with localckpt.open(path, create=True, fsync=False) as store:
        tl = store.create_timeline("v", "p", [np.zeros((4, 4, 3), np.uint8)], codec="png")
    order: list[str] = []
    code = ("import localckpt, sys; s = localckpt.open(sys.argv[1]); "
            "s.save_stage_output(sys.argv[2], None, 'w', {'a': 1}); print('saved')")
    with localckpt.open(path) as store:
        engine = store.catalog.engine
        with engine.transaction():  # hold the lock while the other process starts
            saver = subprocess.Popen([sys.executable, "-c", code, str(path), tl.id],
                                     stdout=subprocess.PIPE, text=True)
            deadline = 50
            while deadline and not _waiting_for_lock(saver):
                deadline -= 1
                threading.Event().wait(0.1)
            order.append("batch 0")
        for n in range(1, 200):  # back-to-back batches, as purge runs them
            with engine.transaction() as tx:
                tx.query("SELECT 1", ())
                order.append(f"batch {n}")
            if saver.poll() is not None:
                break
        assert saver.wait(timeout=30) == 0
        assert saver.stdout is not None and saver.stdout.read().strip() == "saved"
    assert len(order) < 199, "the saver got the lock only after every batch"

def test_only_a_loop_of_transactions_leaves_gaps_for_waiting_writers(tmp_path: Path) -> None:
    """The gap is for loops (a gc's batches): a stage run's commit, three transactions
    in a row, left it twice and slept ~9 ms for nobody. (The store is opened again so
    that the commit is not counted in a row with the store's creation: how soon it
    follows depends on the machine.)"""
    with localckpt.open(tmp_path / "s", create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME, FRAME])
    with localckpt.open(tmp_path / "s") as store:
        engine = store.catalog.engine
        run = store.begin_run(tl.id, None, "s")
        run.put({0: {"v": 0}, 1: {"v": 1}})
        before = engine.gaps
        run.commit()
        assert engine.gaps == before
        for _ in range(10):  # back to back, as purge runs its batches
            with engine.transaction() as tx:
                tx.query("SELECT 1", ())
        assert engine.gaps >= before + 3  # each one from the fifth in a row


def _waiting_for_lock(proc: subprocess.Popen[str]) -> bool:
    """Whether the process has been running long enough to be past its imports (a
    second); the test only needs the save to be queued behind the held lock."""
    return proc.poll() is None and _age(proc.pid) > 1.0


def _age(pid: int) -> float:
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


def test_a_stage_run_put_is_synced_when_it_returns(tmp_path: Path) -> None:
    """The issue's contract: a put is durable when it returns. Its transaction commits
    on a connection at synchronous=FULL (an fsync of the WAL), and nothing switches the
    mode for it (puts committed at NORMAL were tried and given up at stop 33)."""
    with localckpt.open(tmp_path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME, FRAME])
        run = store.begin_run(tl.id, None, "s")
        conn = store.catalog.engine._conn()  # this thread's connection, the writers'
        said: list[str] = []
        conn.set_trace_callback(said.append)
        try:
            run.put({0: {"v": 0}})
        finally:
            conn.set_trace_callback(None)
        assert "COMMIT" in said
        assert not [s for s in said if "synchronous" in s.lower()], said
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
