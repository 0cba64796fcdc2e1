"""The writers' queue of the embedded store (localckpt.backends.sql.writer_queue):
processes take turns on a lock file before SQLite's lock, the wait is bounded, and a
killed holder blocks nobody. Counted (waits on SQLite's lock, files, records), not
timed: the rates are in benchmarks (save_procs)."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import localckpt
from localckpt.errors import BackendUnavailableError

_OUTPUT = {"frames": [{"sequence": i, "box": [1.5, 2.5, 30.25, 40.0]} for i in range(8)]}


def _store(path: Path, timelines: int = 1) -> list[str]:
    with localckpt.open(path, create=True) as st:
        return [st.create_timeline(f"v{i}.mp4", "p", [np.zeros((4, 4, 3), np.uint8)]).id
                for i in range(timelines)]


def _saver(path: str, timeline_id: str, saves: int, go: Any, out: Any) -> None:
    with localckpt.open(path) as st:
        parent = None
        go.wait()
        for i in range(saves):
            parent = st.save_stage_output(timeline_id, parent, f"s{i % 3}", _OUTPUT)
        out.put(st.catalog.engine.busy_waits)


def _save_at_once(path: Path, ids: list[str], saves: int) -> list[int]:
    """One process per timeline saving a chain of saves, released together; each one's
    count of waits on SQLite's lock."""
    ctx = multiprocessing.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_saver, args=(str(path), tid, saves, go, out)) for tid in ids]
    for p in procs:
        p.start()
    go.set()
    waits = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return waits


def test_writing_processes_take_turns_without_meeting_sqlites_lock(tmp_path: Path) -> None:
    """4 processes saving at once: every save is there, and none of them ever found
    SQLite's write lock taken (each waited in the queue instead of polling the lock)."""
    ids = _store(tmp_path / "s", 4)
    assert _save_at_once(tmp_path / "s", ids, 60) == [0, 0, 0, 0]
    with localckpt.open(tmp_path / "s") as st:
        assert [len(st.checkpoints(tid)) for tid in ids] == [61] * 4


def _holder(queue_file: Path) -> subprocess.Popen[str]:
    """Another process holding the queue's turn until killed."""
    code = ("import fcntl, os, sys, time\n"
            f"fd = os.open({str(queue_file)!r}, os.O_RDONLY | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _locked_by_anyone(queue_file: Path) -> bool:
    fd = os.open(queue_file, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_held_turn_is_waited_for_up_to_the_timeout_then_a_typed_error(
        tmp_path: Path) -> None:
    (tid,) = _store(tmp_path / "s")
    queue_file = tmp_path / "s" / "catalog.sqlite-writers"
    holder = _holder(queue_file)
    try:
        with localckpt.open(tmp_path / "s", timeout=0.3) as st:
            before = len(st.checkpoints(tid))
            with pytest.raises(BackendUnavailableError, match=r"catalog\.sqlite-writers"):
                st.save_stage_output(tid, None, "detect", _OUTPUT)
            assert len(st.checkpoints(tid)) == before  # nothing written
            holder.send_signal(signal.SIGKILL)  # a killed holder's turn goes with it
            holder.wait(timeout=30)
            st.save_stage_output(tid, None, "detect", _OUTPUT)
            assert len(st.checkpoints(tid)) == before + 1
        # the wait given up above left no lock behind (its file was closed when it got
        # the turn)
        assert not _locked_by_anyone(queue_file)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_threads_of_one_process_take_turns_and_forked_children_have_their_own(
        tmp_path: Path) -> None:
    """A save in a thread waits while another thread of the process holds the turn; a
    child forked while the parent holds it waits for the parent to let go, then saves
    (its own file, not the parent's: the parent's release reaches it)."""
    (tid,) = _store(tmp_path / "s")
    with localckpt.open(tmp_path / "s") as st:
        writers: Any = st.catalog.engine._writers
        writers.take()
        saved: list[str] = []
        thread = threading.Thread(
            target=lambda: saved.append(st.save_stage_output(tid, None, "t", _OUTPUT)))
        thread.start()
        thread.join(0.3)
        assert thread.is_alive() and saved == []  # waiting for its turn
        ctx = multiprocessing.get_context("fork")
        go, out = ctx.Event(), ctx.Queue()
        child = ctx.Process(target=_saver, args=(str(tmp_path / "s"), tid, 3, go, out))
        child.start()
        go.set()
        writers.give()
        thread.join(30)
        assert len(saved) == 1
        assert out.get(timeout=60) == 0
        child.join(timeout=60)
        assert child.exitcode == 0
        assert len(st.checkpoints(tid)) == 5


def test_without_a_usable_lock_file_writers_still_take_turns_on_sqlites_lock(
        tmp_path: Path) -> None:
    """Where the queue's file cannot be opened (here a directory is in its place), saves
    go on without the queue: SQLite's lock alone orders them."""
    ids = _store(tmp_path / "s", 2)
    (tmp_path / "s" / "catalog.sqlite-writers").unlink()
    (tmp_path / "s" / "catalog.sqlite-writers").mkdir()
    _save_at_once(tmp_path / "s", ids, 30)
    with localckpt.open(tmp_path / "s") as st:
        assert [len(st.checkpoints(tid)) for tid in ids] == [31, 31]
