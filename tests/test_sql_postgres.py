"""The relational catalog on PostgreSQL alone (what every engine shares is in
``test_sql_catalog.py``):

- a database written by localckpt 0.1 (schema versions 1-5, ``pg_legacy``) upgrades on
  open: rows as that code wrote them read back equal, outputs it kept as JSONB (before
  version 4) as the exact bytes of their hash; processes opening it at once upgrade it
  once;
- schema names, and credentials kept out of repr, describe, errors and logs;
- a server that cannot be reached fails at once and is named; one that stops and
  restarts is used again without reopening;
- many threads and processes write at once; a save is one round trip and reads its
  parent from memory;
- the ``stage_outputs`` view and ``output_value()`` for SQL users;
- purge: the foreign key of ``output_refs`` keeps an output a concurrent save refers to
  (or refuses the save); two purges at once count each row once.

Uses the session's PostgreSQL (``pg_dsn``); the restart test starts a cluster of its own.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import psycopg
import pytest
from psycopg import sql
from sql_records import child, make_output, make_timeline, rows, schema_url

import localckpt
from localckpt import Store
from localckpt.backends.sql import SqlCatalog, postgres_catalog
from localckpt.backends.sql.dialects import POSTGRES
from localckpt.backends.sql.engine import Step
from localckpt.backends.sql.pg_json import format_1_bytes
from localckpt.backends.sql.pg_legacy import LEGACY
from localckpt.backends.sql.postgres import PostgresEngine
from localckpt.backends.sql.rows import codecs
from localckpt.backends.sql.schema import BASE_VERSION, LATEST_VERSION
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.catalog import Batch
from localckpt.cli import main as cli_main
from localckpt.errors import (
    BackendUnavailableError,
    CorruptDataError,
    InvalidInputError,
    LocalckptError,
    NotFoundError,
)
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.testing.ci import unavailable
from localckpt.types import Checkpoint, Tag, Timeline, Tombstone

FRAME = np.zeros((4, 4, 3), np.uint8)


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    from conftest import _drop_schema

    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    _drop_schema(pg_dsn, name)


@pytest.fixture
def url(pg_dsn: str, schema: str) -> str:
    return schema_url(pg_dsn, schema)


@pytest.fixture
def catalog(url: str) -> Iterator[SqlCatalog]:
    cat = postgres_catalog(url)
    yield cat
    cat.close()


@pytest.fixture
def store(url: str, tmp_path: Path) -> Iterator[Store]:
    with localckpt.open(url, objects=str(tmp_path / "objects"), create=True) as s:
        yield s


def _sql(dsn: str, schema: str, text: str, params: list[Any] | None = None) -> list[Any]:
    """Run text with {s} the schema (psycopg placeholders), outside the catalog."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql.SQL(text).format(s=sql.Identifier(schema)), params)
        return cur.fetchall() if cur.description else []


def _version(dsn: str, schema: str) -> int:
    return int(_sql(dsn, schema, "SELECT max(version) FROM {s}.schema_migrations")[0][0])


# -- databases of localckpt 0.1 (schema versions 1-5) -------------------------------------------


def _legacy_database(dsn: str, schema: str, version: int) -> None:
    """An empty catalog at a legacy version, made by that version's own statements."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        s = sql.Identifier(schema)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(s))
        conn.execute(sql.SQL(
            "CREATE TABLE {}.schema_migrations (version integer PRIMARY KEY, description "
            "text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())").format(s))
        for legacy in LEGACY[:version]:
            for statement in legacy.statements:
                conn.execute(sql.SQL(statement).format(s=s).as_string(None))
            conn.execute(sql.SQL("INSERT INTO {}.schema_migrations (version, description) "
                                 "VALUES (%s, %s)").format(s),
                         [legacy.version, legacy.description])


def _old_row(kind: str, record: Any, version: int) -> dict[str, Any]:
    """The columns localckpt 0.1 wrote for a record: the fields (JSON as text, exact
    values beside the columns that change them) and ``exact``; no tail, no digest."""
    codec = codecs(POSTGRES)[kind]
    values = codec.row(record)
    row = dict(zip([f.name for f in codec.fields], values, strict=False))
    for f in codec.fields:
        if f.type == "time":
            row[f.name] = getattr(record, f.name)
    if codec.has_exact:
        row["exact"] = values[len(codec.fields)]
    if kind == "timeline" and version < 3:  # source_info and index_hash came with 3
        del row["source_info"], row["index_hash"]
    return row


def _insert_old(dsn: str, schema: str, table: str, row: dict[str, Any]) -> None:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in row)
    marks = sql.SQL(", ").join(sql.Placeholder() for _ in row)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
            sql.Identifier(schema), sql.Identifier(table), columns, marks), list(row.values()))


OLD_VALUES = [  # outputs of the JSONB era; some JSONB changes (so the old code kept text)
    {"score": 1e-05, "tiny": 2.5e-07, "big": 2**70, "exp": 1e16},
    {"n": 1.0, "t": "x"},
    {"nul": "a\x00b", "neg": -0.0},
    {"boxes": [[1, 2, 3, 4]], "日本": "語"},
]


def _old_output(value: Any) -> tuple[str, dict[str, Any]]:
    """(hash, row) of an output as versions 1-3 stored it: JSONB, plus the exact format-1
    text where JSONB would change it; hashed in canonical JSON format 1."""
    from localckpt.backends.sql.pg_json import jsonb_column

    data = format_1_bytes(value)
    text, changed = jsonb_column(data)
    return content_hash(data), {"hash": content_hash(data), "value": text,
                                "canonical": data.decode() if changed else None}


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_a_legacy_database_is_upgraded_on_open(pg_dsn: str, schema: str, version: int,
                                               tmp_path: Path) -> None:
    _legacy_database(pg_dsn, schema, version)
    timeline, root = make_timeline()
    timeline = attrs.evolve(timeline, source_video="a\x00b.mp4")
    if version >= 3:
        timeline = attrs.evolve(timeline, source_info={"fps": 1e16, "codec": "h264"},
                                index_hash="ab" * 32)
    plain, plain_root = make_timeline()
    old = dict(_old_output(v) for v in OLD_VALUES)
    hashes = list(old)
    a = child(root, "detect", hashes[0], config_overrides={"thr": -0.0, "big": 1e16},
              stats={"n": 2**70}, scenario_label="try \x00")
    b = child(a, "track", hashes[1], is_scenario=True)
    c = attrs.evolve(child(a, "ocr", hashes[2]), merged_from=b.id)
    d = child(plain_root, "detect", hashes[3])
    outputs_new: dict[str, bytes] = {}
    if version >= 4:  # bytea outputs in canonical format 2 beside the JSONB ones
        h_new, data_new = make_output({"new": 1e-05, "exp": 1e16})
        outputs_new[h_new] = data_new
        d = attrs.evolve(d, stage_hashes={**d.stage_hashes, "new": h_new})
    for t in (timeline, plain):
        _insert_old(pg_dsn, schema, "timelines", _old_row("timeline", t, version))
    for ck in (root, a, b, c, plain_root, d):
        _insert_old(pg_dsn, schema, "checkpoints", _old_row("checkpoint", ck, version))
    for row in old.values():
        _insert_old(pg_dsn, schema, "outputs", row)
    for h, data in outputs_new.items():
        _insert_old(pg_dsn, schema, "outputs", {"hash": h, "data": data})
    marks: list[Tombstone] = []
    tags: list[Tag] = []
    if version >= 3:
        marks = [Tombstone(new_id(), b.id, "checkpoint", timeline.id, utcnow())]
        tags = [Tag(new_id(), "best", c.id, timeline.id, utcnow())]
        _insert_old(pg_dsn, schema, "tombstones", _old_row("tombstone", marks[0], version))
        _insert_old(pg_dsn, schema, "tags", _old_row("tag", tags[0], version))
    assert _version(pg_dsn, schema) == version

    cat = postgres_catalog(schema_url(pg_dsn, schema))
    try:
        assert _version(pg_dsn, schema) == LATEST_VERSION
        assert cat.timelines() == sorted([timeline, plain], key=lambda t: t.id)
        assert cat.tree(timeline.id) == sorted([root, a, b, c], key=lambda x: x.id)
        assert cat.lineage(c.id) == [root, a, c]
        (got_a,) = cat.checkpoints([a.id])
        assert canonical_bytes(got_a.config_overrides) == canonical_bytes(a.config_overrides)
        assert got_a.scenario_label == "try \x00"
        assert cat.tombstones(None) == marks and cat.tags(None) == tags
        want = {h: format_1_bytes(v) for h, v in zip(hashes, OLD_VALUES, strict=True)}
        assert cat.outputs(hashes) == want  # the exact bytes their hashes were made of
        assert cat.load_values(hashes) == dict(zip(hashes, OLD_VALUES, strict=True))
        assert dict(cat.checkpoints([d.id])[0].stage_outputs)["detect"] == OLD_VALUES[3]
        assert cat.outputs(outputs_new) == outputs_new
        assert cat.storage_problems() == []
        view = _sql(pg_dsn, schema, "SELECT stage, value FROM {s}.stage_outputs "
                    "WHERE checkpoint_id = %s ORDER BY stage", [c.id])
        assert view == [("detect", {"score": 1e-05, "tiny": 2.5e-07, "big": 2**70,
                                    "exp": 10**16}), ("ocr", {"nul": "a\ufffdb", "neg": 0})]
    finally:
        cat.close()
    # and the upgraded catalog works as a new one: saves and purges
    with localckpt.open(schema_url(pg_dsn, schema), objects=str(tmp_path / "o")) as store:
        new = store.save_stage_output(timeline.id, c.id, "more", {"v": 1})
        assert store.load_stage_output(new, "detect") == OLD_VALUES[0]
        assert store.catalog.outputs([hashes[0]]) == {hashes[0]: want[hashes[0]]}
        store.catalog.commit(Batch(tombstones=[Tombstone(new_id(), a.id, "checkpoint",
                                                         timeline.id, utcnow())]))
        store.catalog.purge_deleted()
        assert [x.id for x in store.catalog.tree(timeline.id)] == [root.id]
        assert store.load_stage_output(d.id, "detect") == OLD_VALUES[3]  # other timeline
        assert store.catalog.missing_outputs(hashes[:3]) == set(hashes[:3])
        assert store.catalog.storage_problems() == []
    _sql(pg_dsn, schema, "UPDATE {s}.outputs SET data = convert_to('{{}}', 'UTF8') "
         "WHERE hash = %s", [hashes[3]])  # tampering with a converted row is noticed too
    with (localckpt.open(schema_url(pg_dsn, schema), objects=str(tmp_path / "o")) as again,
          pytest.raises(CorruptDataError, match=hashes[3])):
        again.load_stage_output(d.id, "detect")


def test_processes_opening_a_legacy_database_at_once_upgrade_it_once(pg_dsn: str,
                                                                      schema: str) -> None:
    _legacy_database(pg_dsn, schema, 3)
    timeline, root = make_timeline()
    _insert_old(pg_dsn, schema, "timelines", _old_row("timeline", timeline, 3))
    _insert_old(pg_dsn, schema, "checkpoints", _old_row("checkpoint", root, 3))
    errors = _open_at_once(schema_url(pg_dsn, schema), 6)
    assert errors == []
    versions = [v for (v,) in _sql(pg_dsn, schema, "SELECT version FROM {s}.schema_migrations "
                                   "ORDER BY version")]
    assert versions == list(range(1, LATEST_VERSION + 1))  # each step once
    cat = postgres_catalog(schema_url(pg_dsn, schema))
    try:
        assert cat.tree(timeline.id) == [root] and cat.storage_problems() == []
    finally:
        cat.close()


def _open_at_once(url: str, n: int) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def opener() -> None:
        try:
            barrier.wait()
            postgres_catalog(url, max_size=1).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_first_opens_do_not_race(pg_dsn: str, schema: str) -> None:
    assert _open_at_once(schema_url(pg_dsn, schema), 6) == []
    versions = _sql(pg_dsn, schema, "SELECT version FROM {s}.schema_migrations")
    assert sorted(v for (v,) in versions) == list(range(BASE_VERSION, LATEST_VERSION + 1))


# -- names and secrets ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Upper", "a-b", "x; DROP TABLE y", "", "1abc", "a" * 64])
def test_schema_name_must_be_a_plain_identifier(name: str) -> None:
    with pytest.raises(InvalidInputError, match="schema name"):
        PostgresEngine("postgresql://u@127.0.0.1:1/db", schema=name)
    with pytest.raises(InvalidInputError, match="schema name"):
        postgres_catalog(f"postgresql://u@127.0.0.1:1/db?schema={name}")


def test_schema_comes_from_the_url_and_unknown_options_are_refused(
        pg_dsn: str, schema: str, tmp_path: Path) -> None:
    cat = postgres_catalog(schema_url(pg_dsn, schema))
    try:
        assert cat.engine.schema == schema and repr(schema) in cat.describe()
    finally:
        cat.close()
    with pytest.raises(InvalidInputError, match="unknown"):
        localckpt.open(pg_dsn, objects=str(tmp_path), shema=schema, create=True)
    with pytest.raises(InvalidInputError, match="max_size='banana' is not a number"):
        postgres_catalog(f"{schema_url(pg_dsn, schema)}&max_size=banana")


def _closed_port() -> int:
    from backends._util import free_port  # nothing listens there once the probe closes

    return free_port()


def test_credentials_stay_out_of_repr_describe_errors_and_logs(
        pg_dsn: str, schema: str, caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-Pa55"
    caplog.set_level(logging.DEBUG)
    with_password = psycopg.conninfo.make_conninfo(pg_dsn, password=secret)
    params = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    texts: list[str] = []
    # trust authentication ignores the password, so a throwaway server accepts it
    cat = postgres_catalog(with_password, schema=schema)
    try:
        timeline, root = make_timeline()
        cat.commit(Batch([timeline], [root]))
        texts += [repr(cat), cat.describe(), repr(cat.engine), str(vars(cat.engine).get("where"))]
        for bad in (Batch([attrs.evolve(timeline, frame_count=1)]),
                    Batch([], [attrs.evolve(root, id=new_id(), parent_id=new_id())])):
            with pytest.raises(LocalckptError) as info:
                cat.commit(bad)
            texts.append(str(info.value))
        assert str(params.get("port", "")) in cat.describe()
    finally:
        cat.close()
    closed = psycopg.conninfo.make_conninfo(with_password, host="127.0.0.1",
                                            port=_closed_port())
    with pytest.raises(BackendUnavailableError) as info:
        postgres_catalog(closed, schema=schema)
    texts.append(str(info.value))
    texts += [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    assert texts and all(secret not in text for text in texts), [
        t for t in texts if secret in t]


# -- the server going away ----------------------------------------------------------------------


def test_unreachable_server_fails_at_once_and_names_it(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """One connection attempt, no retry loop; how many seconds is for benchmarks."""
    attempts: list[str] = []
    real = psycopg.connect
    monkeypatch.setattr(psycopg, "connect", lambda *a, **k: attempts.append("x") or real(*a, **k))
    port = _closed_port()
    with pytest.raises(BackendUnavailableError) as info:
        postgres_catalog(f"postgresql://someone@127.0.0.1:{port}/somedb")
    message = str(info.value)
    assert f"127.0.0.1:{port}/somedb" in message
    assert "Check that the server is running" in message and "~/.pgpass" in message
    assert "?." not in message and "\n" not in message  # libpq's own lines, run together
    assert attempts == ["x"]


def _throwaway() -> Any:
    from backends.postgres import PostgresNotInstalledError, ThrowawayPostgres

    try:
        return ThrowawayPostgres().start()
    except (PostgresNotInstalledError, RuntimeError, OSError) as exc:
        unavailable(f"cannot start a throwaway PostgreSQL: {exc}")
        raise


def test_server_stopped_then_restarted() -> None:
    pg = _throwaway()
    try:
        cat = postgres_catalog(pg.dsn, timeout=5)
        timeline, root = make_timeline()
        cat.commit(Batch([timeline], [root]))
        pg.restart()  # the idle connection is now stale: replaced without an error
        assert cat.timelines() == [timeline]

        pg.kill()
        other, other_root = make_timeline()
        for op in (cat.timelines, lambda: cat.commit(Batch([other], [other_root]))):
            with pytest.raises(BackendUnavailableError, match=f"127.0.0.1:{pg.port}"):
                op()

        pg.start()
        assert cat.timelines() == [timeline]  # committed data survived; it reconnected
        cat.commit(Batch([other], [other_root]))
        assert cat.engine.connections <= 1
        cat.close()
    finally:
        pg.stop()


# -- many writers --------------------------------------------------------------------------------

WRITERS_OUTPUTS = [make_output({"shared": i}) for i in range(20)]


def _write_chain(url: str, root: Checkpoint, n: int, seed: int) -> list[str]:
    """Save n checkpoints on a chain below root, sharing outputs with other writers."""
    rng = random.Random(seed)
    cat = postgres_catalog(url, max_size=2)
    ids = []
    parent = root
    try:
        for i in range(n):
            picked = rng.sample(WRITERS_OUTPUTS, 3)
            ckpt = attrs.evolve(
                child(parent, f"s{i}", picked[0][0]),
                stage_hashes={f"s{i}": picked[0][0], "x": picked[1][0], "y": picked[2][0]},
            )
            cat.commit(Batch((), [ckpt], dict(picked)))
            ids.append(ckpt.id)
            parent = ckpt
    finally:
        cat.close()
    return ids


def test_many_threads_and_processes_write_at_once(catalog: SqlCatalog, url: str) -> None:
    timeline, root = make_timeline()
    catalog.commit(Batch([timeline], [root]))
    per_writer = 25
    ctx = multiprocessing.get_context("fork")  # no connection is open in this process
    catalog.engine._drop_idle()
    with ctx.Pool(3) as procs:
        pending = [procs.apply_async(_write_chain, (url, root, per_writer, seed))
                   for seed in range(3)]
        thread_ids: list[list[str]] = []
        threads = [threading.Thread(target=lambda s=seed: thread_ids.append(
            _write_chain(url, root, per_writer, s))) for seed in range(10, 16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        proc_ids = [r.get(timeout=300) for r in pending]
    written = {i for ids in [*thread_ids, *proc_ids] for i in ids}
    assert len(written) == 9 * per_writer
    assert {c.id for c in catalog.tree(timeline.id)} == written | {root.id}
    assert catalog.missing_outputs(h for h, _ in WRITERS_OUTPUTS) == set()
    assert catalog.storage_problems() == []  # the sharded sums agree with the rows


def test_a_save_is_one_round_trip_and_reads_its_parent_from_memory(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    timeline = store.create_timeline("clip.mp4", "default", [FRAME])
    first = store.save_stage_output(timeline.id, None, "detect", {"n": 1})
    engine = store.catalog.engine
    calls: list[str] = []
    real_call = engine._call
    monkeypatch.setattr(engine, "_call", lambda fn: calls.append("call") or real_call(fn))
    unpipelined: list[str] = []
    real_execute = psycopg.Connection.execute

    def execute(self: psycopg.Connection, query: Any, *args: Any, **kw: Any) -> Any:
        if self._pipeline is None:
            unpipelined.append(str(query)[:60])
        return real_execute(self, query, *args, **kw)

    monkeypatch.setattr(psycopg.Connection, "execute", execute)
    second = store.save_stage_output(timeline.id, first, "track", {"n": 2})
    third = store.save_stage_output(timeline.id, second, "ocr", {"n": 3})
    assert calls == ["call", "call"], calls  # one commit each; parents remembered
    # each commit is one statement (the guard and the INSERTs as common table expressions)
    assert len(unpipelined) == 2 and all(q.startswith("WITH ") for q in unpipelined), \
        unpipelined
    monkeypatch.undo()
    assert [c.id for c in store.lineage(third)] == [timeline.root_checkpoint_id, first,
                                                    second, third]


def test_a_refused_save_sent_as_one_statement_writes_nothing(catalog: SqlCatalog) -> None:
    """The guard of a one-statement save aborts the INSERTs beside it: no checkpoint, no
    output, no reference, and the timeline's sums unchanged."""
    timeline, root = make_timeline()
    catalog.commit(Batch([timeline], [root]))
    catalog.commit(Batch(tombstones=[Tombstone(new_id(), root.id, "tag", timeline.id,
                                               utcnow())]))
    h, data = make_output({"refused": 1})
    ckpt = child(root, "detect", h)
    sums = rows(catalog, "SELECT shard, n, x FROM {s}tree_sums ORDER BY shard")
    with pytest.raises(LocalckptError, match="new tombstones"):
        catalog.commit_guarded(Batch((), [ckpt], {h: data}), timeline.id, [])
    assert catalog.checkpoints([ckpt.id]) == []
    assert catalog.missing_outputs([h]) == {h}
    assert rows(catalog, "SELECT count(*) FROM {s}output_refs WHERE hash = ?", (h,)) == [(0,)]
    assert rows(catalog, "SELECT shard, n, x FROM {s}tree_sums ORDER BY shard") == sums
    catalog.commit_guarded(Batch((), [ckpt], {h: data}), timeline.id,
                           [t.id for t in catalog.tombstones([timeline.id])])
    assert [c.id for c in catalog.checkpoints([ckpt.id])] == [ckpt.id]
    assert catalog.storage_problems() == []


def test_only_guards_then_inserts_become_one_statement() -> None:
    from localckpt.backends.sql.postgres import _multi_row, _one_statement

    guard = Step("SELECT 1 FROM t WHERE a = %s", ("x",), refuse=("LC001", "no"))
    insert = Step("INSERT INTO t (a, b) VALUES (%s, %s) ON CONFLICT (a) DO NOTHING",
                  [(1, 2), (3, 4)], many=True)
    text, params = _one_statement("s.", [guard, insert]) or ("", [])
    assert text == ("WITH w0 AS (SELECT s.fail(%s, %s) AS f WHERE EXISTS (SELECT 1 FROM t "
                    "WHERE a = %s)), w1 AS (INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s) "
                    "ON CONFLICT (a) DO NOTHING) SELECT f FROM w0")
    assert params == ["LC001", "no", "x", 1, 2, 3, 4]
    update = Step("UPDATE t SET b = b + 1 WHERE a = %s", (1,))
    assert _one_statement("s.", [update, insert]) is None  # not an INSERT
    assert _one_statement("s.", [insert, guard]) is None  # a guard would not see the rows
    assert _multi_row("INSERT INTO t (a, b) VALUES (%s, now())", 1) is None
    assert _multi_row("INSERT INTO t (a) SELECT %s", 1) is None
    assert _one_statement("s.", [Step(insert.statement, [(i, i) for i in range(300)],
                                      many=True)]) is None  # too many parameters


def test_a_process_holds_one_connection_however_many_reads_and_saves(store: Store) -> None:
    timeline = store.create_timeline("clip.mp4", "default", [FRAME])
    parent = None
    for i in range(20):
        parent = store.save_stage_output(timeline.id, parent, "s", {"i": i})
        store.checkpoints(timeline.id)
        store.lineage(parent)
    assert store.catalog.engine.connections == 1


# -- for SQL users ----------------------------------------------------------------------------


def test_the_stage_outputs_view_and_output_value(catalog: SqlCatalog, pg_dsn: str,
                                                 schema: str) -> None:
    timeline, root = make_timeline()
    values = [{"ключ": "значение", "n": 1e16}, {"nul": "before\x00after"}, {"x": [1, -0.0]}]
    outs = [make_output(v) for v in values]
    a = child(root, "detect", outs[0][0])
    b = child(a, "ocr", outs[1][0])
    c = child(b, "track", outs[2][0])
    catalog.commit(Batch([timeline], [root, a, b, c], dict(outs)))
    view = _sql(pg_dsn, schema, "SELECT checkpoint_id, timeline_id, stage, hash, value "
                "FROM {s}.stage_outputs ORDER BY checkpoint_id, stage")
    assert view == [
        (a.id, timeline.id, "detect", outs[0][0], {"ключ": "значение", "n": 10**16}),
        (b.id, timeline.id, "detect", outs[0][0], {"ключ": "значение", "n": 10**16}),
        (b.id, timeline.id, "ocr", outs[1][0], {"nul": "before\ufffdafter"}),
        (c.id, timeline.id, "detect", outs[0][0], {"ключ": "значение", "n": 10**16}),
        (c.id, timeline.id, "ocr", outs[1][0], {"nul": "before\ufffdafter"}),
        (c.id, timeline.id, "track", outs[2][0], {"x": [1, 0]}),
    ]
    got = _sql(pg_dsn, schema, "SELECT {s}.output_value(data)->>'ключ' FROM {s}.outputs "
               "WHERE hash = %s", [outs[0][0]])
    assert got == [("значение",)]
    raw = _sql(pg_dsn, schema, "SELECT data FROM {s}.outputs")
    assert {bytes(r[0]) for r in raw} == {d for _, d in outs}


def test_tampered_rows_are_refused_by_the_store_and_the_cli(
        store: Store, url: str, pg_dsn: str, schema: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    tl = store.create_timeline("v.mp4", "p", [FRAME])
    a = store.save_stage_output(tl.id, None, "s0", {"i": 0, "small": 1.5e-05})
    b = store.save_stage_output(tl.id, a, "s1", {"i": 1})
    h = store.get_checkpoint(b).stage_hashes["s0"]
    _sql(pg_dsn, schema, "UPDATE {s}.outputs SET data = convert_to(%s, 'UTF8') WHERE hash = %s",
         ['{"i":666,"small":0.000015}', h])
    for read in (lambda: store.load_stage_output(b, "s0"),
                 lambda: store.get_checkpoint(b).stage_outputs["s0"],
                 lambda: dict(store.lineage(b)[-1].stage_outputs)):
        with pytest.raises(CorruptDataError, match=h):
            read()
    assert cli_main(["--store", url, "--objects", str(tmp_path / "objects"), "show", b]) == 1
    assert "does not match its hash" in capsys.readouterr().err
    assert store.load_stage_output(b, "s1") == {"i": 1}
    # a record's JSONB column and its exact column
    _sql(pg_dsn, schema, "UPDATE {s}.checkpoints SET stats = stats || '{{\"x\": 1}}' "
         "WHERE id = %s", [a])
    _sql(pg_dsn, schema, "UPDATE {s}.timelines SET exact = '{{\"source_video\": \"w\"}}' "
         "WHERE id = %s", [tl.id])
    store.catalog.forget()
    with pytest.raises(CorruptDataError, match=a):
        store.get_checkpoint(a)
    with pytest.raises(CorruptDataError, match=tl.id):
        store.get_timeline(tl.id)
    report = store.verify()
    assert not report.ok
    assert {p.object for p in report.damage if p.kind == "catalog-storage"} >= {
        f"{store.catalog.describe()} outputs row {h}",
        f"{store.catalog.describe()} checkpoints row {a}",
        f"{store.catalog.describe()} timelines row {tl.id}"}


def test_lone_surrogates_in_arguments_are_invalid_input(store: Store) -> None:
    tl = store.create_timeline("v.mp4", "p", [FRAME])
    a = store.save_stage_output(tl.id, None, "s", {})
    cat = store.catalog
    bad = "x\ud800"
    calls = [
        lambda: cat.timelines([bad]), lambda: cat.checkpoints([bad]),
        lambda: cat.children(bad), lambda: cat.lineage(bad), lambda: cat.tree(bad),
        lambda: cat.outputs([bad]), lambda: cat.missing_outputs([bad]),
        lambda: cat.deleted([bad]), lambda: cat.tags([bad]), lambda: cat.tombstones([bad]),
        lambda: cat.find_ids("checkpoint", bad),
        lambda: store.get_checkpoint(bad), lambda: store.children(bad),
        lambda: store.save_stage_output(tl.id, a, bad, {}),
        lambda: store.save_stage_output(tl.id, a, "s", {"k": bad}),
        lambda: store.create_timeline(bad, "p", [FRAME]),
        lambda: store.create_timeline("v", "p", [FRAME], source_asset_id=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError):
            call()
    assert len(store.checkpoints(tl.id)) == 2


# -- purge and the foreign key of output_refs -------------------------------------------------


def _doomed_output(store: Store) -> tuple[Timeline, Checkpoint, str, bytes]:
    """A timeline whose checkpoint holding output h is pruned (h used by nothing else):
    (timeline, the kept parent, h, its bytes)."""
    tl = store.create_timeline("v.mp4", "p", [FRAME])
    parent = store.save_stage_output(tl.id, None, "s0", {"keep": 1})
    doomed = store.save_stage_output(tl.id, parent, "s1", {"doomed": 1})
    h = store.get_checkpoint(doomed).stage_hashes["s1"]
    store.prune(doomed)
    return tl, store.get_checkpoint(parent), h, canonical_bytes({"doomed": 1})


def _save_in_flight(pg_dsn: str, store: Store, parent: Checkpoint, h: str, data: bytes
                    ) -> tuple[psycopg.Connection, Checkpoint]:
    """A save under parent reusing output h, as the catalog writes it, left uncommitted."""
    from localckpt.backends.sql.rows import digest

    while True:  # its row of tree_sums must not be the one a purge updates (shard 0)
        late = attrs.evolve(parent, id=new_id(), parent_id=parent.id, stage="s1",
                            stage_hashes={**parent.stage_hashes, "s1": h}, created_at=utcnow())
        if digest("checkpoint", late) % POSTGRES.sum_shards:
            break
    cat = store.catalog
    steps = cat._steps(Batch(checkpoints=[late], outputs={h: data}), None, [late], [])
    conn = psycopg.connect(pg_dsn)
    for step in steps:
        if step.many:
            conn.cursor().executemany(step.statement, step.params)
        else:
            conn.execute(step.statement, list(step.params))
    return conn, late


def test_a_purge_keeps_an_output_a_save_in_flight_refers_to(store: Store, pg_dsn: str) -> None:
    """The save has checked its reference (it holds the output's key): the purge waits
    for it, then its delete is refused by the foreign key, and the output stays."""
    _, parent, h, data = _doomed_output(store)
    conn, late = _save_in_flight(pg_dsn, store, parent, h, data)
    with conn:
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the reference is checked now
        purged: list[int] = []
        purge = threading.Thread(target=lambda: purged.append(store.catalog.purge_deleted()))
        purge.start()
        purge.join(timeout=1.0)
        assert purge.is_alive(), "the purge did not wait for the save in flight"
        conn.commit()
    purge.join(timeout=60)
    assert purged == [1]  # the pruned checkpoint; its output is referenced again
    assert store.load_stage_output(late.id, "s1") == {"doomed": 1}
    assert store.catalog.storage_problems() == []
    assert store.verify().ok


def test_a_save_whose_output_a_purge_removed_first_writes_nothing(store: Store,
                                                                  pg_dsn: str) -> None:
    """The purge commits first: the save's reference fails its foreign key at commit,
    and nothing of it is written (the caller saves again and writes the output)."""
    _, parent, h, data = _doomed_output(store)
    conn, late = _save_in_flight(pg_dsn, store, parent, h, data)
    with conn:
        purged: list[int] = []
        purge = threading.Thread(target=lambda: purged.append(store.catalog.purge_deleted()))
        purge.start()
        purge.join(timeout=120)
        if purge.is_alive():  # never hang the suite: release the purge, then fail
            conn.rollback()
            purge.join()
            pytest.fail("the purge waited for the save in flight")
        assert purged == [2]  # the checkpoint and its output
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.commit()
    assert store.catalog.checkpoints([late.id]) == []
    assert store.catalog.missing_outputs([h]) == {h}
    again = store.save_stage_output(parent.timeline_id, parent.id, "s1", {"doomed": 1})
    assert store.load_stage_output(again, "s1") == {"doomed": 1}
    assert store.catalog.storage_problems() == []


def test_a_batch_referring_to_a_purged_output_writes_nothing(store: Store) -> None:
    _, parent, h, data = _doomed_output(store)
    store.catalog.purge_deleted()
    assert store.catalog.missing_outputs([h]) == {h}
    late = attrs.evolve(parent, id=new_id(), parent_id=parent.id, stage="s1",
                        stage_hashes={**parent.stage_hashes, "s1": h}, created_at=utcnow())
    with pytest.raises(InvalidInputError, match=h):
        store.catalog.commit(Batch(checkpoints=[late]))
    assert store.catalog.checkpoints([late.id]) == []
    assert late.id not in store.catalog._peeked
    store.catalog.commit(Batch(checkpoints=[late], outputs={h: data}))
    assert store.load_stage_output(late.id, "s1") == {"doomed": 1}


def test_two_purges_at_once_take_each_row_out_of_the_sums_once(
        store: Store, pg_dsn: str, schema: str) -> None:
    """Another purge deletes the same rows first (its transaction still open): this
    purge waits for it, then finds nothing left to delete, and the tree's count and
    digest sums stay right."""
    tl = store.create_timeline("v.mp4", "p", [FRAME])
    a = store.save_stage_output(tl.id, None, "s0", {"a": 1})
    b = store.save_stage_output(tl.id, a, "s1", {"b": 1})
    gone = store.create_timeline("w.mp4", "p", [FRAME])
    store.prune(a)
    store.delete_timeline(gone.id)
    s = sql.Identifier(schema)
    other = psycopg.connect(pg_dsn)  # the other purge, as upkeep.purge writes it
    with other:
        dead = other.execute(sql.SQL("DELETE FROM {}.checkpoints WHERE id = ANY(%s) "
                                     "RETURNING timeline_id, digest").format(s),
                             [[a, b, gone.root_checkpoint_id]]).fetchall()
        other.execute(sql.SQL("DELETE FROM {}.output_refs WHERE owner = ANY(%s)").format(s),
                      [[a, b, gone.root_checkpoint_id]])
        for tid, digest in dead:
            other.execute(sql.SQL("UPDATE {}.tree_sums SET n = n - 1, x = x # %s WHERE "
                                  "timeline_id = %s AND shard = (SELECT min(shard) FROM "
                                  "{}.tree_sums WHERE timeline_id = %s)").format(s, s),
                          [digest, tid, tid])
        purged: list[int] = []
        purge = threading.Thread(target=lambda: purged.append(store.catalog.purge_deleted()))
        purge.start()
        purge.join(timeout=1.0)
        assert purge.is_alive(), "the purge did not meet the other one's rows"
        other.commit()
    purge.join(timeout=60)
    assert purged and store.catalog.storage_problems() == []
    assert store.catalog.tree(tl.id) == [store.get_checkpoint(tl.root_checkpoint_id)]
    assert [t.id for t in store.catalog.timelines()] == [tl.id]


def _saver(url: str, objects: str, tid: str, root: str, most: int, seed: int,
           stop: str) -> list[str]:
    """Save chains below root whose outputs repeat ones that purged checkpoints held,
    until the file stop exists (or most saves: a bound should the test fail)."""
    rnd = random.Random(seed)
    saved = []
    with localckpt.open(url, objects=objects) as store:
        parent = root
        for i in range(most):
            if i % 10 == 0 and os.path.exists(stop):
                break
            out = {"shared": rnd.randrange(6)}
            parent = store.save_stage_output(tid, root if i % 4 == 0 else parent,
                                             f"s{i % 3}", out)
            saved.append(parent)
    return saved


def test_purge_while_another_process_saves_loses_nothing_live(
        store: Store, url: str, tmp_path: Path) -> None:
    objects = str(tmp_path / "objects")
    tl = store.create_timeline("v.mp4", "p", [FRAME])
    store.catalog.engine._drop_idle()
    ctx = multiprocessing.get_context("fork")
    doomed: list[str] = []
    overlapped = r = 0
    stop = tmp_path / "stop"  # the writer saves until the purges have overlapped it
    deadline = time.monotonic() + 120
    with ctx.Pool(1) as pool:
        pending = pool.apply_async(_saver, (url, objects, tl.id, tl.root_checkpoint_id,
                                            20_000, 1, str(stop)))
        while not pending.ready() or r < 3:
            if (overlapped >= 3 and r >= 3) or time.monotonic() > deadline:
                stop.touch()
            # checkpoints holding the outputs the writer saves too, then deleted and purged
            for k in range(6):
                doomed.append(store.save_stage_output(tl.id, None, f"d{r}", {"shared": k}))
            for cid in doomed[-6:]:
                store.prune(cid)
            before = len(store.catalog.tree(tl.id))
            store.catalog.purge_deleted()
            overlapped += len(store.catalog.tree(tl.id)) > before - 6  # the writer saved
            r += 1
        saved = pending.get(timeout=300)
    assert overlapped >= 1, "the purges never ran while the writer saved"
    store.catalog.purge_deleted()
    assert store.catalog.checkpoints(doomed) == []
    live = store.catalog.checkpoints(saved)
    assert [c.id for c in live] == sorted(saved)
    for c in live:
        assert set(store.catalog.load_values(c.stage_hashes.values())) == set(
            c.stage_hashes.values())
    assert store.catalog.storage_problems() == []
    with pytest.raises(NotFoundError):
        store.get_checkpoint(doomed[0])


def test_outputs_are_json_objects_in_the_view_even_when_not_dicts(catalog: SqlCatalog,
                                                                  pg_dsn: str,
                                                                  schema: str) -> None:
    outputs = dict(make_output(v) for v in ([1, 2], "s", None))
    catalog.commit(Batch(outputs=outputs))
    got = _sql(pg_dsn, schema, "SELECT hash, {s}.output_value(data) FROM {s}.outputs")
    assert {h: v for h, v in got} == {h: json.loads(d) for h, d in outputs.items()}


def _outputs_out_of_line(pg_dsn: str, schema: str) -> tuple[int, list[str] | None]:
    """Bytes in the outputs table's TOAST relation, and the table's storage options."""
    (toast, options), = _sql(pg_dsn, schema, (
        "SELECT pg_relation_size(c.reltoastrelid), c.reloptions FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = 'outputs'"), [schema])
    return toast, options


def test_an_output_up_to_a_page_stays_inline(pg_dsn: str, schema: str, url: str,
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A 6 KB output went to the TOAST table (compressed, out of line: two more
    insertions a save); migration 17 keeps rows up to a page in the table, also in a
    catalog made before it."""
    from localckpt.backends.sql import schema as schemas

    rnd = random.Random(0)  # hex compresses to about half: still out of line at 6 KB
    big = {"items": [{"label": f"{rnd.getrandbits(128):032x}", "score": rnd.random()}
                     for i in range(100)]}  # ~6 KB of canonical JSON
    with monkeypatch.context() as m:  # the code of before
        m.setattr(schemas, "MIGRATIONS", schemas.MIGRATIONS[:-1])
        m.setattr(schemas, "LATEST_VERSION", 16)
        with localckpt.open(url, objects=str(tmp_path / "objects"), create=True) as old:
            tl = old.create_timeline("v.mp4", "p", [np.zeros((2, 2, 3), np.uint8)])
            old.save_stage_output(tl.id, None, "a", big)
    toast, options = _outputs_out_of_line(pg_dsn, schema)
    assert toast > 0 and not options  # the old layout: out of line
    with localckpt.open(url, objects=str(tmp_path / "objects")) as store:
        assert schemas.version_of(store.catalog.engine) == LATEST_VERSION
        cid = store.save_stage_output(tl.id, None, "b", {**big, "b": 1})
        assert store.load_stage_output(cid, "b") == {**big, "b": 1}
    assert _outputs_out_of_line(pg_dsn, schema) == (toast, ["toast_tuple_target=8160"])


def test_a_new_catalog_keeps_outputs_up_to_a_page_inline(pg_dsn: str, schema: str,
                                                         store: Store) -> None:
    assert _outputs_out_of_line(pg_dsn, schema)[1] == ["toast_tuple_target=8160"]
