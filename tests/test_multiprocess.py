"""Several processes writing one embedded store at once (multiprocessing, spawn).

Each worker grows its own branch from the timeline's root. After every save it sends
the new id to the next worker, which checks (before its own next save) that it can read
that checkpoint at once: read-your-writes across processes. When all are done, every
worker and a fresh open check the whole tree. A second run has the workers reopen their
store every few saves (sealing segments) while the main process compacts.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import localckpt

WORKERS = 4
SAVES = 200  # per worker, under -m slow; the default run's case saves SHORT
SHORT = 25


def _check_seen(store: localckpt.Store, msg: tuple[str, int, int], root: str) -> None:
    cid, w, i = msg
    cp = store.get_checkpoint(cid)  # NotFoundError here = a write another process missed
    assert cp.stage == f"w{w}" and cp.stats["i"] == i, (cp, w, i)
    assert store.load_stage_output(cid, f"w{w}") == {"w": w, "i": i}
    lineage = store.lineage(cid)
    assert len(lineage) == i + 2 and lineage[0].id == root, (cid, len(lineage), i)


def _check_tree(store: localckpt.Store, tid: str, root: str, saves: int,
                ) -> dict[int, list[str]]:
    """Every worker's branch is complete and linked; returns worker -> ids in order."""
    tree = store.checkpoints(tid)
    assert len(tree) == 1 + WORKERS * saves, len(tree)
    branches: dict[int, list[str]] = {}
    for w in range(WORKERS):
        mine = [c for c in tree if c.stage == f"w{w}"]
        assert [c.stats["i"] for c in mine] == list(range(saves))
        last = mine[-1]
        lineage = store.lineage(last.id)
        assert [c.id for c in lineage] == [root, *(c.id for c in mine)]
        assert store.load_stage_output(last.id, f"w{w}") == {"w": w, "i": saves - 1}
        branches[w] = [c.id for c in mine]
    return branches


def _worker(root_dir: str, tid: str, root: str, w: int, inbox: Any, outbox: Any,
            barrier: Any, results: Any, reopen_every: int, saves: int) -> None:
    try:
        store = localckpt.open(root_dir, create=True)
        parent = None
        seen = 0
        for i in range(saves):
            while True:  # check everything the previous worker saved so far
                try:
                    msg = inbox.get_nowait()
                except queue.Empty:
                    break
                _check_seen(store, msg, root)
                seen += 1
            parent = store.save_stage_output(tid, parent, f"w{w}", {"w": w, "i": i},
                                             stats={"i": i})
            outbox.put((parent, w, i))
            if reopen_every and (i + 1) % reopen_every == 0:
                store.close()  # seals this segment: compaction may now take it
                store = localckpt.open(root_dir, create=True)
        barrier.wait(timeout=120)
        while seen < saves:  # the rest, now that everyone is done
            _check_seen(store, inbox.get(timeout=60), root)
            seen += 1
        branches = _check_tree(store, tid, root, saves)
        store.close()
        results.put(("ok", w, branches[w]))
    except BaseException:
        barrier.abort()  # the others stop waiting for this worker
        results.put(("error", w, traceback.format_exc()))


def _run(tmp_path: Path, reopen_every: int, saves: int = SAVES,
         ) -> tuple[dict[int, list[str]], int]:
    root_dir = str(tmp_path / "store")
    with localckpt.open(root_dir, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [np.zeros((2, 2, 3), np.uint8)])
    ctx = multiprocessing.get_context("spawn")
    queues = [ctx.Queue() for _ in range(WORKERS)]
    results = ctx.Queue()
    barrier = ctx.Barrier(WORKERS)
    procs = [
        ctx.Process(target=_worker, args=(root_dir, tl.id, tl.root_checkpoint_id, w,
                                          queues[w], queues[(w + 1) % WORKERS], barrier,
                                          results, reopen_every, saves))
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    replaced = 0
    outcomes = []
    try:
        with localckpt.open(root_dir, create=True) as compactor:
            while len(outcomes) < WORKERS:
                if reopen_every:
                    replaced += compactor.catalog.compact()
                try:
                    outcomes.append(results.get(timeout=0.05 if reopen_every else 120))
                except queue.Empty:
                    if not any(p.is_alive() for p in procs) and results.empty():
                        break
                    time.sleep(0.01)
        for p in procs:
            p.join(60)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    errors = [o for o in outcomes if o[0] != "ok"]
    assert not errors, "\n".join(str(e[2]) for e in errors)
    assert len(outcomes) == WORKERS, f"workers exited without a result: {outcomes}"
    assert [p.exitcode for p in procs] == [0] * WORKERS
    branches = {w: ids for _, w, ids in outcomes}
    with localckpt.open(root_dir, create=True) as fresh:  # and a fresh process view agrees
        assert _check_tree(fresh, tl.id, tl.root_checkpoint_id, saves) == branches
    return branches, replaced


@pytest.mark.parametrize("saves", [SHORT, pytest.param(SAVES, marks=pytest.mark.slow)])
def test_concurrent_writers_all_present(tmp_path: Path, saves: int) -> None:
    branches, _ = _run(tmp_path, reopen_every=0, saves=saves)
    ids = [i for b in branches.values() for i in b]
    assert len(set(ids)) == WORKERS * saves


@pytest.mark.slow
def test_compaction_while_writers_are_alive(tmp_path: Path) -> None:
    branches, replaced = _run(tmp_path, reopen_every=25)
    assert replaced > 0, "compaction never ran while the writers were alive"
    assert sum(len(b) for b in branches.values()) == WORKERS * SAVES
    # compact what is left, lose nothing
    with localckpt.open(tmp_path / "store", create=True) as store:
        store.catalog.compact()
    with localckpt.open(tmp_path / "store", create=True) as store:
        (tl,) = store.list_timelines()
        assert len(store.checkpoints(tl.id)) == 1 + WORKERS * SAVES
        files = list((tmp_path / "store" / "catalog").glob("*.*"))
        assert len([f for f in files if f.suffix in (".log", ".pack")]) <= 2


def _short_lived_writer(root_dir: str, tid: str, w: int, n: int, results: Any) -> None:
    try:
        ids = []
        for i in range(n):  # every open creates a segment; every close seals it
            with localckpt.open(root_dir, compact_after=10**6, create=True) as store:
                ids.append(store.save_stage_output(tid, None, f"w{w}", {"i": i}))
        results.put(("ok", w, ids))
    except BaseException:
        results.put(("error", w, traceback.format_exc()))


def _compact_forever(root_dir: str, stop: Any, results: Any) -> None:
    replaced = 0
    with localckpt.open(root_dir, create=True) as store:
        while not stop.is_set():
            replaced += store.catalog.compact()
    results.put(("compactor", -1, replaced))


@pytest.mark.slow
def test_segments_created_while_compacting_are_kept(tmp_path: Path) -> None:
    """New segments appear while another process compacts in a tight loop."""
    root_dir = str(tmp_path / "store")
    with localckpt.open(root_dir, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [np.zeros((2, 2, 3), np.uint8)])
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    stop = ctx.Event()
    compactor = ctx.Process(target=_compact_forever, args=(root_dir, stop, results))
    writers = [ctx.Process(target=_short_lived_writer, args=(root_dir, tl.id, w, 100, results))
               for w in range(3)]
    procs = [compactor, *writers]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=300) for _ in writers]
        stop.set()
        outcomes.append(results.get(timeout=60))
        for p in procs:
            p.join(60)
    finally:
        stop.set()
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    errors = [o for o in outcomes if o[0] == "error"]
    assert not errors, "\n".join(str(e[2]) for e in errors)
    (replaced,) = [o[2] for o in outcomes if o[0] == "compactor"]
    assert replaced > 0
    saved = {i for o in outcomes if o[0] == "ok" for i in o[2]}
    assert len(saved) == 300
    with localckpt.open(root_dir, create=True) as fresh:
        present = {c.id for c in fresh.checkpoints(tl.id)}
    assert saved - present == set(), "saves that returned an id were lost"
