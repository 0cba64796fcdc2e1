"""A team on one PostgreSQL: connections per process, a server at its limit, gc beside
writers, reads that cost what they return (issue 21).

Each test starts what it needs on loopback; in CI a server that cannot start fails.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

import localckpt
from localckpt.errors import BackendUnavailableError
from localckpt.gc import collect_garbage
from localckpt.testing.ci import unavailable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _server(max_connections: int) -> Any:
    from backends.postgres import ThrowawayPostgres

    try:
        return ThrowawayPostgres(max_connections=max_connections).start()
    except Exception as exc:
        unavailable(f"cannot start a throwaway PostgreSQL: {type(exc).__name__}: {exc}")
        raise


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    pg = _server(100)
    try:
        yield pg
    finally:
        pg.stop()


def _frames(n: int = 2) -> list[np.ndarray]:
    return [np.full((8, 8, 3), i, np.uint8) for i in range(n)]


def _open_and_hold(dsn: str, schema: str, objects: str, ready: Any, release: Any,
                   errors: Any) -> None:
    try:
        with localckpt.open(dsn, objects=objects, schema=schema) as store:
            tl = store.list_timelines()[0]
            store.save_stage_output(tl.id, None, "s", {"n": multiprocessing.current_process().name})
            ready.release()
            release.wait(60)
    except BaseException as exc:
        errors.put(f"{type(exc).__name__}: {exc}")
        ready.release()


def _chain(store: localckpt.Store, timeline_id: str, n: int) -> str:
    """n checkpoints in a chain under the root, committed at once; the top's id."""
    import attrs

    from localckpt.canonical import canonical_bytes, content_hash
    from localckpt.catalog import Batch
    from localckpt.ids import new_id

    root = store.get_checkpoint(store.get_timeline(timeline_id).root_checkpoint_id)
    data = canonical_bytes({"pad": "x" * 200, "chain": new_id()})
    h = content_hash(data)
    chain, parent = [], root
    for i in range(n):
        parent = attrs.evolve(parent, id=new_id(), parent_id=parent.id, stage=f"s{i % 3}",
                              stage_hashes={**parent.stage_hashes, f"s{i % 3}": h})
        chain.append(parent)
    store.catalog.commit(Batch(checkpoints=chain, outputs={h: data}))
    return chain[0].id


def _connections(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                           "'localckpt'").fetchone()
    return int(row[0]) if row else 0


def test_sixty_processes_open_a_store_under_max_connections_100(server: Any,
                                                                tmp_path: Path) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    objects = str(tmp_path / "objects")
    with localckpt.open(server.dsn, objects=objects, schema=schema, create=True) as store:
        store.create_timeline("v", "p", _frames())
    ctx = multiprocessing.get_context("fork")  # 60 interpreters would cost minutes to start
    ready, release, errors = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_open_and_hold,
                         args=(server.dsn, schema, objects, ready, release, errors))
             for _ in range(60)]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            assert ready.acquire(timeout=120)
        held = _connections(server.dsn)
    finally:
        release.set()
        for p in procs:
            p.join(60)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == []
    assert all(p.exitcode == 0 for p in procs)
    assert held <= 60  # one connection per single-threaded process, opened lazily
    with localckpt.open(server.dsn, objects=objects, schema=schema) as store:
        tl = store.list_timelines()[0]
        assert len(store.checkpoints(tl.id)) == 61


def test_a_server_at_its_limit_fails_the_open_at_once_and_says_why(tmp_path: Path) -> None:
    pg = _server(6)
    hogs: list[psycopg.Connection[Any]] = []
    try:
        for _ in range(10):  # take every slot the server has
            try:
                hogs.append(psycopg.connect(pg.dsn, autocommit=True))
            except psycopg.OperationalError:
                break
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as info:
            localckpt.open(pg.dsn, objects=str(tmp_path / "o"), schema="s", create=True)
        assert time.monotonic() - started < 5  # at once, not after a pool timeout
        message = str(info.value)
        assert "max_connections" in message and "pgbouncer" in message
    finally:
        for conn in hogs:
            conn.close()
        pg.stop()


def test_a_save_completes_while_gc_purges(server: Any, tmp_path: Path) -> None:
    """gc works in short transactions: a save beside it never waits for the whole purge."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = localckpt.open(server.dsn, objects=str(tmp_path / "o"), schema=schema, create=True)
    try:
        tl = store.create_timeline("v", "p", _frames())
        doomed = [_chain(store, tl.id, 500) for _ in range(6)]  # 3,000 rows for gc
        for cid in doomed:
            store.prune(cid)
        keep = store.save_stage_output(tl.id, None, "keep", {"k": 1})
        slowest = 0.0
        done = threading.Event()

        def purge() -> None:
            try:
                collect_garbage(store, older_than=0)
            finally:
                done.set()

        t = threading.Thread(target=purge)
        t.start()
        saves = 0
        parent = keep
        while not done.is_set() or saves < 5:
            began = time.monotonic()
            parent = store.save_stage_output(tl.id, parent, "w", {"n": saves})
            slowest = max(slowest, time.monotonic() - began)
            saves += 1
        t.join()
        assert slowest < 1.0, slowest
        assert len(store.checkpoints(tl.id)) == 2 + saves  # root, keep, and every save
        assert store.catalog.engine.query(
            "SELECT count(*) FROM {s}checkpoints")[0][0] == 2 + saves
        assert store.verify().ok
    finally:
        store.close()
