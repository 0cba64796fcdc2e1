"""Runs shared by workers: pickling without secrets, run.map here, on a process pool and
on a Dask cluster over PostgreSQL + S3, two workers writing the same chunk at once."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from conftest import KINDS

import localckpt
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.errors import ConflictError
from localckpt.runs.location import StoreLocation, _without_password


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(n)]


def brightness(frames: list[Any]) -> dict[int, Any]:
    """A per-frame stage: the mean of each channel (module level: picklable)."""
    return {f.sequence: {"mean": [round(float(c), 6) for c in f.image.mean(axis=(0, 1))]}
            for f in frames}


def expected_hash(store: localckpt.Store, tid: str) -> str:
    out = {"frames": {str(f.sequence): brightness([f])[f.sequence]
                      for f in store.get_timeline_frames(tid)}}
    return content_hash(canonical_bytes(out))


def test_a_pickled_run_holds_its_location_and_no_secret(new_store: Any, monkeypatch: Any,
                                                        s3_base: Any) -> None:
    store = new_store("embedded-s3")
    tl = store.create_timeline("v.mp4", "p", frames(6), codec="png")
    run = store.begin_run(tl.id, None, "bright")
    data = pickle.dumps(run)
    _, options = s3_base
    for secret in (options["key"], options["secret"]):
        assert secret.encode() not in data
    location = StoreLocation.of(store)
    assert location.url.startswith("/") and location.objects.startswith("s3://")
    assert "endpoint_url" in location.storage_options
    # the other side supplies the secrets from its own environment
    monkeypatch.setenv("LOCALCKPT_STORAGE_OPTIONS", json.dumps(
        {"key": options["key"], "secret": options["secret"]}))
    with pickle.loads(data) as there:
        assert there.todo() == list(range(6)) and there.stage == "bright"
        there.put({0: {"x": 1}})
    assert run.done == 1


#: what a laptop's shell may hold: another endpoint (a dead port) and the laptop's key
_LAPTOP_OPTIONS = json.dumps({"endpoint_url": "http://127.0.0.1:1", "key": "laptop-key",
                              "secret": "laptop-secret"})


def _spawned(workers: int = 2) -> ProcessPoolExecutor:
    """Fresh worker processes (spawn): their own environment and config, nothing inherited."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _team_remote(tmp_path: Any, monkeypatch: Any, s3_base: Any) -> str:
    """A remote "team" in a config of this test's own: the S3 server's endpoint as its
    storage options, its key and secret in $TEAM_S3 (storage_options_from); its objects
    URL."""
    from localckpt import config

    base, options = s3_base
    monkeypatch.setenv("LOCALCKPT_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("LOCALCKPT_CREDENTIALS", str(tmp_path / "credentials.toml"))
    public = {k: v for k, v in options.items() if k not in ("key", "secret")}
    monkeypatch.setenv("TEAM_S3", json.dumps({"key": options["key"],
                                              "secret": options["secret"]}))
    objects = f"{base}/{os.urandom(6).hex()}"
    config.add_remote("team", str(tmp_path / "team"), objects=objects,
                      storage_options=public, storage_options_from="TEAM_S3")
    return objects


def test_workers_of_a_remote_never_read_this_stores_environment(
        tmp_path: Any, monkeypatch: Any, s3_base: Any) -> None:
    """A remote opened with its own settings (config.remote(NAME).open()): its workers take
    the remote's options and secrets (storage_options_from), as the opening process did;
    a hostile $LOCALCKPT_STORAGE_OPTIONS redirects neither its objects nor its key."""
    from localckpt import config

    objects = _team_remote(tmp_path, monkeypatch, s3_base)
    options = s3_base[1]
    monkeypatch.setenv("LOCALCKPT_STORAGE_OPTIONS", _LAPTOP_OPTIONS)
    team = config.remote("team")
    assert team is not None
    with team.open(create=True) as store:
        tl = store.create_timeline("v.mp4", "p", frames(12), codec="png")
        run = store.begin_run(tl.id, None, "bright", memo=False)
        location = StoreLocation.of(store)
        assert location.environ is False
        assert location.secret_options()["key"] == options["key"]  # not the laptop's
        with _spawned() as pool:
            assert run.map(opened_stores, pool, chunk_size=3) == 12
        out = store.get_checkpoint(run.commit()).stage_outputs["bright"]["frames"]
        assert os.getpid() not in {v["pid"] for v in out.values()}  # workers wrote them
    # the frames are where the remote says (its objects, its endpoint)
    with localckpt.open(str(tmp_path / "team"), objects=objects, storage_options=options,
                        environ=False) as again:
        assert [f.sequence for f in again.get_timeline_frames(tl.id)] == list(range(12))


def _forget(names: list[str]) -> None:
    """A worker's initializer: its environment lacks these variables."""
    for name in names:
        os.environ.pop(name, None)


def test_a_worker_without_the_secrets_gets_a_typed_error_and_writes_nothing(
        tmp_path: Any, monkeypatch: Any, s3_base: Any) -> None:
    """A run sent to a worker whose environment lacks what the remote's
    storage_options_from names: NotFoundError naming the variable, at once (no hang, no
    botocore traceback), and nothing of the chunk is written."""
    from localckpt import config
    from localckpt.errors import NotFoundError

    _team_remote(tmp_path, monkeypatch, s3_base)
    team = config.remote("team")
    assert team is not None
    with team.open(create=True) as store:
        tl = store.create_timeline("v.mp4", "p", frames(6), codec="png")
        run = store.begin_run(tl.id, None, "bright", memo=False)
        started = time.monotonic()
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_forget, initargs=(["TEAM_S3"],)) as pool, \
                pytest.raises(NotFoundError, match="TEAM_S3"):
            run.map(brightness, pool, chunk_size=3)
        assert time.monotonic() - started < 60
        assert run.done == 0 and run.state == "open"


def test_a_workers_environment_never_redirects_a_stores_own_options(
        new_store: Any, monkeypatch: Any, s3_base: Any) -> None:
    """A store opened with explicit storage options: a worker takes its secrets from its
    own environment, but the store's endpoint travels with the run and wins."""
    store = new_store("embedded-s3")
    _, options = s3_base
    tl = store.create_timeline("v.mp4", "p", frames(8), codec="png")
    run = store.begin_run(tl.id, None, "bright", memo=False)
    monkeypatch.setenv("LOCALCKPT_STORAGE_OPTIONS", json.dumps(
        {"endpoint_url": "http://127.0.0.1:1", "key": options["key"],
         "secret": options["secret"]}))
    with _spawned() as pool:
        assert run.map(brightness, pool, chunk_size=2) == 8
    assert store.get_checkpoint(run.commit()).stage_hashes["bright"] == expected_hash(
        store, tl.id)


def test_a_postgresql_location_drops_the_password() -> None:
    assert _without_password("postgresql://u:pw@h:5/db?schema=x") == "postgresql://u@h:5/db?schema=x"
    assert _without_password("postgresql://u@h/db?password=pw&sslmode=require") == \
        "postgresql://u@h/db?sslmode=require"
    assert "pw" not in _without_password("host=h password=pw dbname=d")
    assert _without_password("host=h dbname=d") == "host=h dbname=d"


def test_map_here_resumes_after_a_failed_chunk(new_store: Any) -> None:
    store = new_store("embedded")
    tl = store.create_timeline("v.mp4", "p", frames(20), codec="png")
    run = store.begin_run(tl.id, None, "bright", memo=False)
    calls: list[int] = []

    def failing(fs: list[Any]) -> dict[int, Any]:
        calls.append(len(fs))
        if len(calls) == 3:
            raise RuntimeError("the model crashed")
        return brightness(fs)

    with pytest.raises(RuntimeError, match="crashed"):
        run.map(failing, chunk_size=4)
    assert run.done == 8 and run.todo() == list(range(8, 20))
    seen: list[tuple[str, int, int]] = []
    assert run.map(brightness, chunk_size=4, progress=lambda *a: seen.append(a)) == 12
    assert seen[-1] == ("frames", 12, 12) and len(seen) == 3
    assert store.get_checkpoint(run.commit()).stage_hashes["bright"] == expected_hash(
        store, tl.id)


def test_the_progress_bar_counts_frames(new_store: Any,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """progress=True draws a bar of frames on stderr ("frame/s"); it said "item/s" and
    ended each line with ", frames", repeating its own title."""
    store = new_store("embedded")
    tl = store.create_timeline("v.mp4", "p", frames(12), codec="png")
    run = store.begin_run(tl.id, None, "bright", memo=False)

    def slow(fs: list[Any]) -> dict[int, Any]:
        time.sleep(0.15)  # past tqdm's 0.1 s between redraws: each chunk is drawn
        return brightness(fs)

    assert run.map(slow, chunk_size=4, progress=True) == 12
    drawn = capsys.readouterr().err
    assert "bright frames:" in drawn and "8/12 [" in drawn, drawn
    assert "frame/s]" in drawn and "item/s" not in drawn and "frames]" not in drawn, drawn


def test_a_fn_a_process_pool_cannot_send_is_a_typed_error(new_store: Any) -> None:
    """A lambda or a nested function given to a process pool failed with pickle's own
    PicklingError (or AttributeError), naming neither fn nor what to do."""
    store = new_store("embedded")
    tl = store.create_timeline("v.mp4", "p", frames(6), codec="png")
    run = store.begin_run(tl.id, None, "bright", memo=False)

    def nested(fs: list[Any]) -> dict[int, Any]:
        return brightness(fs)

    with _spawned(1) as pool:
        for fn, name in ((lambda fs: brightness(fs), "<lambda>"), (nested, "nested")):
            with pytest.raises(localckpt.InvalidInputError, match=rf"fn \S*{name} could not be "
                               r"sent .*defined at a module's top level") as info:
                run.map(fn, executor=pool, chunk_size=2)
            assert "pickle" in str(info.value.__cause__)
        assert run.done == 0 and run.todo() == list(range(6))
        assert run.map(brightness, executor=pool, chunk_size=2) == 6  # the pool still works


@pytest.mark.parametrize("kind", ["embedded", "memory"])
def test_map_on_a_thread_pool(new_store: Any, kind: str, monkeypatch: Any) -> None:
    """Threads share the caller's store (a memory:// store too): no store is opened."""
    store = new_store(kind)
    tl = store.create_timeline("v.mp4", "p", frames(30), codec="png")
    run = store.begin_run(tl.id, None, "bright", memo=False)
    opened: list[StoreLocation] = []
    monkeypatch.setattr(StoreLocation, "open", lambda self: opened.append(self))
    with ThreadPoolExecutor(3) as ex:
        assert run.map(brightness, ex, chunk_size=4) == 30
    assert opened == []
    assert store.get_checkpoint(run.commit()).stage_hashes["bright"] == expected_hash(
        store, tl.id)


_OPENS = [0]  # StoreLocation.open calls in this process (the test counts them in a worker)


def opened_stores(frames: list[Any]) -> dict[int, Any]:
    """A stage that says how many stores its worker process has opened so far."""
    return {f.sequence: {"opened": _OPENS[0], "pid": os.getpid()} for f in frames}


@pytest.mark.parametrize("kind", [k for k in ("embedded", "postgres-s3") if k in KINDS])
def test_a_worker_process_opens_the_store_once_for_all_its_tasks(new_store: Any, kind: str,
                                                                  monkeypatch: Any,
                                                                  s3_base: Any) -> None:
    """Twelve tasks of two runs on one worker process: one store opened (one connection,
    one S3 client), not one per task; the second run on that worker reuses it."""
    store = new_store(kind)
    _, options = s3_base
    monkeypatch.setenv("LOCALCKPT_STORAGE_OPTIONS", json.dumps(
        {"key": options["key"], "secret": options["secret"]}))
    tl = store.create_timeline("v.mp4", "p", frames(12), codec="png")
    runs = [store.begin_run(tl.id, None, f"opened{i}", memo=False) for i in range(2)]
    real_open = StoreLocation.open

    def counted_open(self: StoreLocation) -> localckpt.Store:
        _OPENS[0] += 1
        return real_open(self)

    monkeypatch.setattr(StoreLocation, "open", counted_open)  # the forked worker has it too
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        for run in runs:
            assert run.map(opened_stores, pool, chunk_size=2) == 12
    seen = [v for run in runs
            for v in store.get_checkpoint(run.commit()).stage_outputs[run.stage]["frames"]
            .values()]
    assert len({v["pid"] for v in seen}) == 1  # one worker process did every task
    assert {v["opened"] for v in seen} == {1}


WAYS_KIND = "postgres-s3" if "postgres-s3" in KINDS else None


@pytest.mark.skipif(WAYS_KIND is None, reason="postgres-s3 is not among LOCALCKPT_TEST_KINDS")
def test_one_process_a_process_pool_and_dask_commit_equal_outputs(
        new_store: Any, monkeypatch: Any, s3_base: Any) -> None:
    """The same stage three ways over PostgreSQL + S3 (one Dask cluster start: slow)."""
    import cloudpickle  # the test extra installs dask[distributed]: a missing one fails here
    from distributed import Client, LocalCluster

    store = new_store(WAYS_KIND)
    _, options = s3_base
    # what a worker's environment holds: the secrets (the run pickles without them)
    monkeypatch.setenv("LOCALCKPT_STORAGE_OPTIONS", json.dumps(
        {"key": options["key"], "secret": options["secret"]}))
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Dask ships brightness
    images = frames(24)
    hashes = {}

    def one_way(name: str, executor: Any) -> None:
        tl = store.create_timeline(f"{name}.mp4", "p", images, codec="png")
        run = store.begin_run(tl.id, None, "bright", memo=False)
        assert run.map(brightness, executor, chunk_size=5) == 24
        hashes[name] = store.get_checkpoint(run.commit()).stage_hashes["bright"]
        hashes["expected"] = expected_hash(store, tl.id)

    try:
        one_way("here", None)
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
            one_way("process-pool", pool)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            one_way("dask", client.get_executor())
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert len(set(hashes.values())) == 1, hashes


def _put_at_once(store: localckpt.Store, run_id: str, values: dict[int, Any],
                 barrier: threading.Barrier, outcome: list[Any], w: int) -> None:
    mine = store.get_run(run_id)
    barrier.wait()
    try:
        mine.put(values)
    except ConflictError as exc:
        outcome[w] = exc


SAME_CHUNK_KINDS = [k for k in ("embedded", "postgres-local") if k in KINDS]


@pytest.mark.parametrize("kind", SAME_CHUNK_KINDS)
def test_two_workers_writing_the_same_chunk_at_once(new_store: Any, kind: str) -> None:
    store = new_store(kind)
    tl = store.create_timeline("v.mp4", "p", frames(16), codec="png")
    chunk = range(8)
    for trial in range(6):
        run = store.begin_run(tl.id, None, f"s{trial}")
        # each worker has its own store object: its own connections, as another process
        workers = [localckpt.open(store.url, objects=store.objects.describe(),
                                  **({"schema": store.catalog.engine.schema}
                                     if kind.startswith("postgres") else {}))
                   for _ in range(2)]
        differ = trial % 2 == 1
        values = [{s: {"w": w if differ else 0, "s": s} for s in chunk} for w in range(2)]
        barrier = threading.Barrier(2)
        outcome: list[Any] = [None, None]
        threads = [threading.Thread(target=_put_at_once, args=(
            workers[w], run.id, values[w], barrier, outcome, w)) for w in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for w in workers:
            w.close()
        parts = store._run_tables().parts(run.id)
        assert sorted(parts) == list(chunk)
        if not differ:
            assert outcome == [None, None]
            assert set(parts.values()) == {content_hash(canonical_bytes(values[0][s]))
                                           for s in chunk}
        else:
            losers = [w for w in range(2) if outcome[w] is not None]
            assert len(losers) == 1, outcome
            winner = 1 - losers[0]
            assert parts == {s: content_hash(canonical_bytes(values[winner][s]))
                             for s in chunk}
        run.abort()


@pytest.mark.skipif("postgres-local" not in KINDS,
                    reason="LOCALCKPT_TEST_KINDS leaves out postgres-local, which this needs")
def test_a_put_queued_behind_an_abort_writes_nothing(new_store: Any) -> None:
    """PostgreSQL: a put that waits on the run's row while an abort holds it must see the
    abort once it commits (the put's statement locks the row before it checks the state
    and writes its parts), never slip its parts into the closed run."""
    import psycopg

    store = new_store("postgres-local")
    tl = store.create_timeline("v.mp4", "p", frames(4), codec="png")
    run = store.begin_run(tl.id, None, "detect")
    engine = store.catalog.engine
    others = [localckpt.open(store.url, objects=store.objects.describe(),
                             schema=engine.schema) for _ in range(2)]
    outcome: dict[str, Any] = {}

    def act(name: str, fn: Any) -> None:
        try:
            fn()
            outcome[name] = "done"
        except Exception as exc:  # recorded, asserted below
            outcome[name] = exc

    holder = psycopg.connect(engine._dsn, autocommit=False)
    waiting = psycopg.connect(engine._dsn, autocommit=True)
    try:
        holder.execute(f"SELECT 1 FROM {engine.prefix}runs WHERE id = %s FOR UPDATE",
                       [run.id])
        aborter = threading.Thread(target=act, args=(
            "abort", lambda: others[0].get_run(run.id).abort()))
        aborter.start()
        holder_pid = holder.info.backend_pid

        def queued() -> int:
            """Backends waiting on the holder, directly or behind another waiter."""
            blocked: dict[int, list[int]] = dict(waiting.execute(
                "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock'").fetchall())
            behind, grew = {holder_pid}, True
            while grew:
                more = {pid for pid, by in blocked.items() if behind & set(by)} - behind
                behind |= more
                grew = bool(more)
            return len(behind) - 1

        deadline = time.monotonic() + 10
        while queued() < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        mine = others[1].get_run(run.id)
        putter = threading.Thread(target=act, args=(
            "put", lambda: mine.put({0: {"n": 1}, 1: {"n": 2}})))
        putter.start()
        while queued() < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert queued() == 2, "the abort and the put should both wait on the run's row"
    finally:
        waiting.close()
        holder.commit()
        holder.close()
    aborter.join(30)
    putter.join(30)
    for other in others:
        other.close()
    assert outcome["abort"] == "done", outcome
    assert isinstance(outcome["put"], localckpt.errors.InvalidInputError), outcome
    assert "aborted" in str(outcome["put"])
    assert store._run_tables().parts(run.id) == {}
    assert store.get_run(run.id).state == "aborted"


def test_a_workers_nested_credentials_survive_the_locations_options() -> None:
    """The location's client_kwargs (an endpoint, secrets stripped) go over the worker's
    key by key: its own credentials in client_kwargs stay."""
    from localckpt.runs.location import _merged

    mine = {"client_kwargs": {"aws_access_key_id": "k", "aws_secret_access_key": "s",
                              "endpoint_url": "http://laptop:1"}, "anon": False}
    theirs = {"client_kwargs": {"endpoint_url": "http://team:9000"}, "use_ssl": False}
    assert _merged(mine, theirs) == {
        "client_kwargs": {"aws_access_key_id": "k", "aws_secret_access_key": "s",
                          "endpoint_url": "http://team:9000"}, "anon": False, "use_ssl": False}


def test_a_remote_is_found_however_its_urls_are_spelt() -> None:
    """A worker finds the remote of its store by url and objects: s3a://, a trailing
    slash or sqlite:/// must not hide it (the worker would get no secrets)."""
    from localckpt.runs.location import _same

    assert _same("s3a://frames/ckpt/", "s3://frames/ckpt")
    assert _same("sqlite:///data/team", "/data/team")
    assert not _same("s3://frames/ckpt", "s3://frames/other")


@pytest.mark.parametrize("kind", ["embedded", "postgres-local"])
def test_a_worker_opens_the_store_with_the_options_it_was_opened_with(
        new_store: Any, kind: str) -> None:
    """The catalog options a store was opened with travel with its runs: a worker of a
    store opened with fsync=False and a short timeout (embedded), or through a
    transaction-mode pooler (prepare_threshold=None, PostgreSQL) opens it the same way,
    not with the defaults."""
    store = new_store(kind)
    _, url, kwargs = new_store._how[id(store)]
    chosen: dict[str, Any] = ({"fsync": False, "timeout": 3.0} if kind == "embedded" else
                              {"max_size": 2, "timeout": 4.0, "prepare_threshold": None})
    with localckpt.open(url, **kwargs, **chosen) as opened:
        tl = opened.create_timeline("v.mp4", "p", frames(2), codec="png")
        run = opened.begin_run(tl.id, None, "bright", memo=False)
        with pickle.loads(pickle.dumps(run)) as there:
            engine = there.store.catalog.engine
            for name, value in chosen.items():
                assert getattr(engine, name) == value, name
            there.put({0: {"x": 1}})
        assert run.done == 1
