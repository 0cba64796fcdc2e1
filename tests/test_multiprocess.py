"""Several processes writing one store at once (multiprocessing, fork): the embedded
store (SQLite catalog) and PostgreSQL.

Each worker grows its own branch from the timeline's root. After every save it sends
the new id to the next worker, which checks (before its own next save) that it can read
that checkpoint at once: read-your-writes across processes. When all are done, every
worker and a fresh open check the whole tree. Workers reopen their store every few
saves, so that opens and closes happen while the others write.
"""

from __future__ import annotations

import multiprocessing
import queue
import traceback
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _slow import require_slow

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


def _worker(url: str, kwargs: dict[str, Any], tid: str, root: str, w: int, inbox: Any,
            outbox: Any, barrier: Any, results: Any, reopen_every: int, saves: int) -> None:
    try:
        store = localckpt.open(url, **kwargs)
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
                store.close()
                store = localckpt.open(url, **kwargs)
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


def _location(kind: str, request: pytest.FixtureRequest, tmp: Path
              ) -> tuple[str, dict[str, Any]]:
    if kind == "embedded":
        return str(tmp / "store"), {}
    from conftest import _drop_schema

    dsn = request.getfixturevalue("pg_dsn")
    schema = f"mp_{uuid.uuid4().hex[:12]}"
    request.addfinalizer(lambda: _drop_schema(dsn, schema))
    return dsn, {"schema": schema, "objects": str(tmp / "objects")}


def _run(url: str, kwargs: dict[str, Any], saves: int, reopen_every: int
         ) -> dict[int, list[str]]:
    with localckpt.open(url, create=True, **kwargs) as store:
        tl = store.create_timeline("v.mp4", "p", [np.zeros((2, 2, 3), np.uint8)])
    ctx = multiprocessing.get_context("fork")  # cheap to start; no store is open here
    queues = [ctx.Queue() for _ in range(WORKERS)]
    results = ctx.Queue()
    barrier = ctx.Barrier(WORKERS)
    procs = [
        ctx.Process(target=_worker, args=(url, kwargs, tl.id, tl.root_checkpoint_id, w,
                                          queues[w], queues[(w + 1) % WORKERS], barrier,
                                          results, reopen_every, saves))
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    outcomes = []
    try:
        while len(outcomes) < WORKERS:
            try:
                outcomes.append(results.get(timeout=1))
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and results.empty():
                    break
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
    with localckpt.open(url, **kwargs) as fresh:  # and a fresh process view agrees
        assert _check_tree(fresh, tl.id, tl.root_checkpoint_id, saves) == branches
        assert fresh.verify().ok
    return branches


@pytest.mark.parametrize("kind", ["embedded", "postgres"])
@pytest.mark.parametrize("saves", [SHORT, pytest.param(SAVES, marks=pytest.mark.slow)])
def test_concurrent_writers_all_present(kind: str, saves: int, request: pytest.FixtureRequest,
                                        tmp_path: Path) -> None:
    if saves == SAVES:
        require_slow(request)
    url, kwargs = _location(kind, request, tmp_path)
    branches = _run(url, kwargs, saves, reopen_every=10)
    ids = [i for b in branches.values() for i in b]
    assert len(set(ids)) == WORKERS * saves
