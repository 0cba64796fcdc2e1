"""Production pairs under stress: many writers on PostgreSQL, and servers dying mid-write.

The fault tests start servers of their own (they kill them), so they never disturb the
session's shared servers. A server that cannot start fails the test in CI.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import localckpt
from localckpt.errors import BackendUnavailableError
from localckpt.testing.ci import in_ci

IN_CI = in_ci()  # the one rule (localckpt.testing.ci)


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing server is a failure)", pytrace=False)
    pytest.skip(message)


def _frames(n: int, size: int = 32) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(7)
    for _ in range(n):
        yield rng.integers(0, 255, (size, size, 3), dtype=np.uint8)


# -- 4 processes x 200 saves into one PostgreSQL store --------------------------------------


def _save_chain(dsn: str, schema: str, objects: str, tid: str, root: str, n: int) -> list[str]:
    with localckpt.open(dsn, objects=objects, schema=schema, create=True) as store:
        ids, parent = [], root
        for i in range(n):
            parent = store.save_stage_output(
                tid, parent, f"stage{i % 10}", {"writer": os.getpid(), "i": i},
                stats={"i": i},
            )
            ids.append(parent)
        return ids


@pytest.mark.slow
def test_four_processes_save_200_each_into_one_postgres_store(
    pg_dsn: str, tmp_path: Any
) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    objects = str(tmp_path / "objects")
    with localckpt.open(pg_dsn, objects=objects, schema=schema, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", list(_frames(2)))
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(4) as pool:
            chains = pool.starmap(
                _save_chain,
                [(pg_dsn, schema, objects, tl.id, tl.root_checkpoint_id, 200)] * 4,
            )
        tree = store.checkpoints(tl.id)
        assert len(tree) == 1 + 4 * 200
        assert {c.id for c in tree} == {tl.root_checkpoint_id, *(i for c in chains for i in c)}
        for chain in chains:
            lineage = [c.id for c in store.lineage(chain[-1])]
            assert lineage == [tl.root_checkpoint_id, *chain]
            last = store.load_stage_output(chain[-1], "stage9")
            assert last is not None and last["i"] == 199


# -- servers stopped mid-write ---------------------------------------------------------------


@pytest.fixture(scope="module")
def own_servers() -> Iterator[tuple[Any, Any]]:
    try:
        from backends.postgres import ThrowawayPostgres
        from backends.s3 import LocalS3

        pg = ThrowawayPostgres().start()
    except Exception as exc:
        _unavailable(f"cannot start a throwaway PostgreSQL: {exc}")
        raise
    try:
        s3 = LocalS3().start()
    except Exception as exc:
        pg.stop()
        _unavailable(f"cannot start a local S3 server: {exc}")
        raise
    try:
        yield pg, s3
    finally:
        s3.stop()
        pg.stop()


def _snapshot(store: localckpt.Store) -> dict[str, set[str]]:
    return {t.id: {c.id for c in store.checkpoints(t.id)} for t in store.list_timelines()}


def test_s3_stopped_mid_ingest_leaves_no_timeline(own_servers: tuple[Any, Any]) -> None:
    pg, s3 = own_servers
    s3.start() if not s3.running else None
    bucket = s3.make_bucket(f"b{uuid.uuid4().hex[:10]}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = localckpt.open(pg.dsn, objects=f"{bucket}/ckpt", storage_options=s3.storage_options,
                           schema=schema, create=True)
    try:
        kept = store.create_timeline("before.mp4", "p", list(_frames(3)))
        before = _snapshot(store)

        def frames_then_outage() -> Iterator[np.ndarray]:
            for i, frame in enumerate(_frames(700)):
                if i == 500:  # the first shards are uploaded by now; the rest never will be
                    s3.kill()
                yield frame

        with pytest.raises(BackendUnavailableError) as info:
            store.create_timeline("during.mp4", "p", frames_then_outage(), workers=2)
        assert "s3://" in str(info.value) and s3.secret not in str(info.value)
        assert _snapshot(store) == before  # the catalog never saw the timeline
    finally:
        if not s3.running:
            s3.start()
        store.close()
    with localckpt.open(pg.dsn, objects=f"{bucket}/ckpt", storage_options=s3.storage_options,
                        schema=schema, create=True) as fresh:
        assert _snapshot(fresh) == before
        assert [t.id for t in fresh.list_timelines()] == [kept.id]


def test_postgres_stopped_mid_save_gives_typed_error_and_no_partial_rows(
    own_servers: tuple[Any, Any], tmp_path: Any
) -> None:
    pg, _ = own_servers
    schema = f"t_{uuid.uuid4().hex[:12]}"
    objects = str(tmp_path / "objects")
    store = localckpt.open(pg.dsn, objects=objects, schema=schema, create=True)
    try:
        tl = store.create_timeline("v.mp4", "p", list(_frames(2)))
        returned: list[str] = []
        errors: list[BaseException] = []

        def saver() -> None:
            parent = tl.root_checkpoint_id
            try:
                for i in range(100_000):
                    parent = store.save_stage_output(tl.id, parent, "s", {"i": i, "x": "y" * 500})
                    returned.append(parent)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=saver)
        thread.start()
        while len(returned) < 50 and thread.is_alive():
            threading.Event().wait(0.01)
        pg.kill()
        thread.join(timeout=60)
        assert not thread.is_alive(), "a save hung after the server died"
        assert len(errors) == 1 and isinstance(errors[0], BackendUnavailableError)
        message = str(errors[0])
        assert f"127.0.0.1:{pg.port}" in message
    finally:
        if not pg.running:
            pg.start()
    try:
        tree = {c.id: c for c in store.checkpoints(tl.id)}
        # Every acknowledged save survived; whatever else is there is whole: its parent
        # exists and its output loads (the in-flight save either committed fully or not).
        assert set(returned) <= set(tree)
        assert len(tree) - 1 - len(returned) in (0, 1)
        for c in tree.values():
            assert c.parent_id is None or c.parent_id in tree
            if c.parent_id is not None:
                assert store.load_stage_output(c.id, "s") is not None
        # and the store works again after the restart
        again = store.save_stage_output(tl.id, None, "s", {"after": True})
        assert store.load_stage_output(again, "s") == {"after": True}
    finally:
        store.close()
