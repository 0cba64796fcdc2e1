"""PostgresCatalog specifics against a real PostgreSQL (the shared conformance suite
covers the Store API): idempotent all-or-nothing commits, one-query lineage, migrations,
canonical bytes through JSONB, secrets kept out of messages, a dead server, many writers.

Uses $LOCALCKPT_TEST_PG_DSN when set, else a ThrowawayPostgres per module. A server that
cannot be started fails the run in CI (CI=1/true/yes) and skips it otherwise.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from localckpt.backends.postgres import PostgresCatalog, SchemaVersionError, open_catalog
from psycopg import sql

import localckpt
from localckpt.backends import pg_schema
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.catalog import Batch
from localckpt.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidInputError,
    LocalckptError,
)
from localckpt.ids import new_id
from localckpt.testing.ci import unavailable
from localckpt.types import Checkpoint, Timeline

try:
    import backends
except ImportError:  # backends/ is repo tooling, not installed: import it from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import backends

PG_DSN_ENV = backends.PG_DSN_ENV
PostgresNotInstalledError = backends.PostgresNotInstalledError
ThrowawayPostgres = backends.ThrowawayPostgres
# -- fixtures -----------------------------------------------------------------------------


_unavailable = unavailable  # fail in CI (CI=1/true/yes), skip elsewhere: one rule


def _throwaway() -> ThrowawayPostgres:
    try:
        return ThrowawayPostgres().start()
    except (PostgresNotInstalledError, RuntimeError, OSError) as exc:
        _unavailable(f"cannot start a throwaway PostgreSQL: {exc}")
        raise


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    if env := os.environ.get(PG_DSN_ENV):
        yield env
        return
    pg = _throwaway()
    try:
        yield pg.dsn
    finally:
        pg.stop()


@pytest.fixture
def schema(dsn: str) -> Iterator[str]:
    """A fresh schema name per test (a schema costs ~6 ms; a database ~25 ms)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def catalog(dsn: str, schema: str) -> Iterator[PostgresCatalog]:
    cat = PostgresCatalog(dsn, schema=schema)
    yield cat
    cat.close()


# -- records ------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def make_timeline(frames: int = 3) -> tuple[Timeline, Checkpoint]:
    tid, root_id, now = new_id(), new_id(), _now()
    timeline = Timeline(tid, "clip.mp4", "default", 2.0, None, root_id, frames, now)
    root = Checkpoint(root_id, tid, None, {}, {}, {"frames_extracted": frames}, False, "", now)
    return timeline, root


def make_output(value: Any) -> tuple[str, bytes]:
    data = canonical_bytes(value)
    return content_hash(data), data


def child(parent: Checkpoint, stage: str, output_hash: str, **changes: Any) -> Checkpoint:
    return attrs.evolve(
        parent,
        id=new_id(),
        parent_id=parent.id,
        stage=stage,
        stage_hashes={**parent.stage_hashes, stage: output_hash},
        created_at=_now(),
        **changes,
    )


def count_rows(dsn: str, schema: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        row = conn.execute(query).fetchone()
        assert row is not None
        return int(row[0])


# -- commit -------------------------------------------------------------------------------


def test_commit_round_trips_records_exactly_and_is_idempotent(
    catalog: PostgresCatalog, dsn: str, schema: str
) -> None:
    timeline, root = make_timeline()
    h, data = make_output({"boxes": [[1, 2, 3, 4]], "score": 0.93})
    ckpt = child(root, "detect", h, config_overrides={"thr": 0.5}, stats={"n": 1})
    ckpt = attrs.evolve(ckpt, created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    batch = Batch([timeline], [root, ckpt], {h: data})

    catalog.commit(batch)
    catalog.commit(batch)  # same content again: skipped, no error

    assert catalog.timelines() == [timeline]
    assert catalog.timelines([timeline.id, "unknown"]) == [timeline]
    got = catalog.checkpoints([ckpt.id])
    assert got == [ckpt]
    assert got[0].created_at == ckpt.created_at
    assert got[0].created_at.utcoffset() == timedelta(0)
    assert got[0].created_at.microsecond == 678901
    assert catalog.outputs([h]) == {h: data}
    assert dict(got[0].stage_outputs) == {"detect": json.loads(data)}
    assert [count_rows(dsn, schema, t) for t in ("timelines", "checkpoints", "outputs")] == [
        1, 2, 1
    ]


def test_conflicting_record_raises_and_writes_nothing(
    catalog: PostgresCatalog, dsn: str, schema: str
) -> None:
    timeline, root = make_timeline()
    catalog.commit(Batch([timeline], [root]))
    other_timeline, other_root = make_timeline()
    h, data = make_output({"new": True})
    new = child(root, "detect", h)
    changed_root = attrs.evolve(root, stats={"frames_extracted": 99})

    batch = Batch([other_timeline], [other_root, new, changed_root], {h: data})
    with pytest.raises(ConflictError, match=root.id):
        catalog.commit(batch)

    assert catalog.timelines() == [timeline]
    assert catalog.checkpoints([new.id, other_root.id]) == []
    assert catalog.missing_outputs([h]) == {h}
    assert catalog.checkpoints([root.id]) == [root]
    with pytest.raises(ConflictError, match=timeline.id):
        catalog.commit(Batch([attrs.evolve(timeline, frame_count=7)]))
    assert count_rows(dsn, schema, "checkpoints") == 1


def test_two_versions_of_one_id_in_a_batch_conflict(catalog: PostgresCatalog) -> None:
    timeline, root = make_timeline()
    with pytest.raises(ConflictError, match=root.id):
        catalog.commit(Batch([timeline], [root, attrs.evolve(root, scenario_label="x")]))
    assert catalog.timelines() == []


def test_missing_parent_is_rejected_and_nothing_written(catalog: PostgresCatalog) -> None:
    timeline, root = make_timeline()
    orphan = attrs.evolve(root, id=new_id(), parent_id=new_id())
    with pytest.raises(InvalidInputError, match=orphan.parent_id):
        catalog.commit(Batch([timeline], [root, orphan]))
    assert catalog.timelines() == []


def test_children_may_precede_parents_in_a_batch(catalog: PostgresCatalog) -> None:
    timeline, root = make_timeline()
    h, data = make_output([1])
    a = child(root, "a", h)
    b = child(a, "b", h)
    catalog.commit(Batch([timeline], [b, a, root], {h: data}))
    assert [c.id for c in catalog.lineage(b.id)] == [root.id, a.id, b.id]


def test_unknown_ids_read_as_nothing(catalog: PostgresCatalog) -> None:
    assert catalog.timelines(["nope"]) == []
    assert catalog.timelines([]) == []
    assert catalog.checkpoints(["nope"]) == []
    assert catalog.children("nope") == []
    assert catalog.lineage("nope") == []
    assert catalog.tree("nope") == []
    assert catalog.outputs(["nope"]) == {}
    assert catalog.missing_outputs(["nope"]) == {"nope"}
    catalog.commit(Batch())


# -- reads --------------------------------------------------------------------------------


def test_lineage_of_a_1000_deep_chain_is_one_query(
    catalog: PostgresCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeline, root = make_timeline()
    h, data = make_output({"step": 1})
    chain = [root]
    for i in range(1000):
        chain.append(child(chain[-1], f"s{i % 7}", h))
    catalog.commit(Batch([timeline], chain, {h: data}))

    calls: list[str] = []
    real_execute = psycopg.Cursor.execute

    def counting_execute(self: psycopg.Cursor[Any], query: Any, *args: Any, **kw: Any) -> Any:
        calls.append(str(query)[:60])
        return real_execute(self, query, *args, **kw)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting_execute)
    lineage = catalog.lineage(chain[-1].id)
    monkeypatch.undo()

    assert len(calls) == 1, calls  # its time is measured in benchmarks (lineage)
    assert lineage == chain  # root first
    assert catalog.tree(timeline.id) == sorted(chain, key=lambda c: c.id)
    assert catalog.children(chain[10].id) == [chain[11]]
    # stage outputs load lazily, through the catalog, on first access
    assert lineage[-1].stage_outputs["s0"] == {"step": 1}


# -- canonical bytes through JSONB --------------------------------------------------------

TRICKY_VALUES: list[Any] = [
    {"floats": [0.1, 1.5, -2.25, 1e-07, 1.2345e-05, 123.0, 5e-324, 2.5e-300]},
    {"exponent floats": [1e16, 1.5e16, 1e300, 1.7976931348623157e308, -1e22]},
    {"zero": [0.0, -0.0, 0]},
    {"big ints": [2**63, -(2**63) - 1, 10**30, -(10**40), 2**200]},
    {"unicode": "日本語 🎞 Ünïcödé \u2028\u2029 \u00a0", "ключ": "значение", "🙂": ["é"]},
    {"controls": "tab\there\nnewline \x01 \x1f quote\" backslash\\"},
    {"nul": "before\x00after"},
    {"nul\x00key": 1},
    {"literal backslash-u": "\\u0000 is not a NUL"},
    {"nested": {"a": {"b": {"c": [1, [2, [3, {"d": None}]]]}}}, "e": [], "f": {}},
    {"mixed": [True, False, None, "", " ", 0, -1]},
    [1, "two", 3.0, None],
    "just a string",
    42,
    -0.0,
    1e100,
    None,
]


def test_outputs_return_canonical_bytes_that_match_their_hash(
    catalog: PostgresCatalog, dsn: str, schema: str
) -> None:
    outputs = dict(make_output(v) for v in TRICKY_VALUES)
    catalog.commit(Batch(outputs=outputs))
    got = catalog.outputs(outputs)
    assert got == outputs
    for h, data in got.items():
        assert content_hash(data) == h
    # the stored bytes are the canonical bytes; SQL users read them as JSONB
    h_unicode = make_output(TRICKY_VALUES[4])[0]
    h_nul = make_output(TRICKY_VALUES[6])[0]
    with psycopg.connect(dsn) as conn:
        s = sql.Identifier(schema)
        query = sql.SQL("SELECT {}.output_value(data)->>%s FROM {}.outputs WHERE hash = %s")
        assert conn.execute(query.format(s, s), ["ключ", h_unicode]).fetchone() == ("значение",)
        assert conn.execute(query.format(s, s), ["nul", h_nul]).fetchone() == (
            "before\ufffdafter",)
        raw = sql.SQL("SELECT data FROM {}.outputs").format(s)
        assert {bytes(r[0]) for r in conn.execute(raw)} == set(outputs.values())


def test_records_keep_values_postgres_columns_would_change(catalog: PostgresCatalog) -> None:
    """NUL in text, and numbers JSONB normalises, read back exactly (via the exact column)."""
    timeline, root = make_timeline()
    timeline = attrs.evolve(timeline, source_video="a\x00b.mp4", source_asset_id="\x00")
    h, data = make_output({"ok": 1})
    odd = attrs.evolve(
        child(root, "st\x00age", h),
        scenario_label="try \x00 1",
        config_overrides={"thr": -0.0, "big": 1e16, "k\x00": ["\x00", 1e300]},
        stats={"frames_extracted": 3, "ratio": 0.5},
    )
    plain = child(root, "detect", h, stats={"x": 1.0})
    catalog.commit(Batch([timeline], [root, odd, plain], {h: data}))
    catalog.commit(Batch([timeline], [root, odd, plain], {h: data}))  # still idempotent

    assert catalog.timelines() == [timeline]
    got = {c.id: c for c in catalog.tree(timeline.id)}
    assert got[odd.id] == odd and got[plain.id] == plain
    for field in ("stage_hashes", "config_overrides", "stats"):
        assert canonical_bytes(getattr(got[odd.id], field)) == canonical_bytes(getattr(odd, field))
    assert got[odd.id].stage_outputs["st\x00age"] == {"ok": 1}

    # equal as the value types define it (-0.0 == 0.0, 1e16 == 10**16): skipped, like
    # every backend does; the stored record keeps its own values
    equal = attrs.evolve(odd, config_overrides={**odd.config_overrides, "thr": 0.0,
                                                "big": 10**16})
    assert equal == odd
    catalog.commit(Batch([], [equal, child(plain, "more", h)], {h: data}))
    (kept,) = catalog.checkpoints([odd.id])
    assert canonical_bytes(kept.config_overrides) == canonical_bytes(odd.config_overrides)
    assert len(catalog.children(plain.id)) == 1
    # really other content: ConflictError, and nothing of the batch written
    other = attrs.evolve(odd, config_overrides={**odd.config_overrides, "k\x00": []})
    extra = child(plain, "extra", h)
    with pytest.raises(ConflictError, match=odd.id):
        catalog.commit(Batch([], [other, extra]))
    assert catalog.checkpoints([extra.id]) == []
    # and the same through the row cache (rows this catalog inserted), not only the server
    assert catalog.timelines([timeline.id]) == [timeline]
    assert catalog.checkpoints([odd.id, plain.id]) == sorted([odd, plain], key=lambda c: c.id)
    assert catalog.timelines([timeline.id])[0].source_video == "a\x00b.mp4"


def test_lazy_outputs_equal_parsed_canonical_bytes(catalog: PostgresCatalog) -> None:
    timeline, root = make_timeline()
    outputs = dict(make_output(v) for v in TRICKY_VALUES)
    ckpt = attrs.evolve(
        root, id=new_id(), parent_id=root.id,
        stage_hashes={f"s{i}": h for i, h in enumerate(outputs)},
    )
    catalog.commit(Batch([timeline], [root, ckpt], outputs))
    (got,) = catalog.checkpoints([ckpt.id])
    for stage, h in got.stage_hashes.items():
        value = got.stage_outputs[stage]
        assert canonical_bytes(value) == outputs[h], stage


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=5), inner,
                      max_size=4),
    max_leaves=20,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(JSON, min_size=1, max_size=5))
def test_any_json_value_round_trips_through_jsonb(
    catalog: PostgresCatalog, values: list[Any]
) -> None:
    outputs = dict(make_output(v) for v in values)
    catalog.commit(Batch(outputs=outputs))
    assert catalog.outputs(outputs) == outputs


# -- migrations ---------------------------------------------------------------------------


def test_version_1_database_is_upgraded_on_open(dsn: str, schema: str) -> None:
    timeline, root = make_timeline()
    h, data = make_output({"v": 1})
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert pg_schema.migrate(conn, schema, target=1) == 1
        # rows written by version-1 code
        s = sql.Identifier(schema)
        conn.execute(
            sql.SQL("INSERT INTO {}.timelines VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(s),
            attrs.astuple(timeline, recurse=False)[:8],  # the version-1 columns
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.checkpoints VALUES (%s, %s, NULL, 'detect', %s, '{{}}', '{{}}', "
                "false, '', %s, NULL)"
            ).format(s),
            [root.id, timeline.id, json.dumps({"detect": h}), root.created_at],
        )
        conn.execute(
            sql.SQL("INSERT INTO {}.outputs (hash, value) VALUES (%s, %s)").format(s),
            [h, data.decode()],
        )
        assert pg_schema.schema_version(conn, schema) == 1

    cat = PostgresCatalog(dsn, schema=schema)
    try:
        assert cat.timelines() == [timeline]
        (got,) = cat.checkpoints([root.id])
        assert got.stage_outputs["detect"] == {"v": 1}
    finally:
        cat.close()
    with psycopg.connect(dsn) as conn:
        assert pg_schema.schema_version(conn, schema) == pg_schema.LATEST_VERSION
        view = sql.SQL("SELECT checkpoint_id, stage, value FROM {}.stage_outputs").format(
            sql.Identifier(schema)
        )
        assert conn.execute(view).fetchall() == [(root.id, "detect", {"v": 1})]


def test_newer_schema_version_is_refused(catalog: PostgresCatalog, dsn: str, schema: str) -> None:
    catalog.close()
    newer = pg_schema.LATEST_VERSION + 1
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("INSERT INTO {}.schema_migrations (version, description) VALUES (%s, 'x')")
            .format(sql.Identifier(schema)),
            [newer],
        )
    with pytest.raises(SchemaVersionError, match=f"version {newer}") as info:
        PostgresCatalog(dsn, schema=schema)
    assert isinstance(info.value, LocalckptError)
    assert "upgrade localckpt" in str(info.value)


def test_concurrent_first_opens_do_not_race(dsn: str, schema: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def opener() -> None:
        try:
            barrier.wait()
            PostgresCatalog(dsn, schema=schema, max_size=1).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count_rows(dsn, schema, "schema_migrations") == pg_schema.LATEST_VERSION


# -- security -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Upper", "a-b", "x; DROP TABLE y", "", "1abc", "a" * 64])
def test_schema_name_must_be_a_plain_identifier(name: str) -> None:
    with pytest.raises(InvalidInputError, match="schema name"):
        PostgresCatalog("postgresql://u@127.0.0.1:1/db", schema=name)


def test_open_catalog_takes_schema_from_url_and_refuses_unknown_options(
    dsn: str, schema: str
) -> None:
    sep = "&" if "?" in dsn else "?"
    cat = open_catalog(f"{dsn}{sep}schema={schema}")
    try:
        assert cat.schema == schema
    finally:
        cat.close()
    with pytest.raises(InvalidInputError, match="unknown"):
        open_catalog(dsn, shema=schema)


def test_credentials_stay_out_of_repr_describe_errors_and_logs(
    dsn: str, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-Pa55"
    caplog.set_level(logging.DEBUG)
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    with_password = psycopg.conninfo.make_conninfo(dsn, password=secret)
    texts: list[str] = []

    # trust authentication ignores the password, so a throwaway server accepts it
    cat = PostgresCatalog(with_password, schema=schema)
    try:
        timeline, root = make_timeline()
        cat.commit(Batch([timeline], [root]))
        texts += [repr(cat), cat.describe(), str(cat.__dict__.get("_where"))]
        for bad in (
            Batch([attrs.evolve(timeline, frame_count=1)]),
            Batch([], [attrs.evolve(root, id=new_id(), parent_id="ghost")]),
        ):
            with pytest.raises(LocalckptError) as info:
                cat.commit(bad)
            texts.append(str(info.value))
        assert str(params.get("port", "")) in cat.describe()
    finally:
        cat.close()

    closed = psycopg.conninfo.make_conninfo(with_password, host="127.0.0.1", port=_closed_port())
    with pytest.raises(BackendUnavailableError) as info:
        PostgresCatalog(closed, schema=schema)
    texts.append(str(info.value))
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.args) for r in caplog.records]
    assert all(secret not in text for text in texts), [t for t in texts if secret in t]


# -- failures -----------------------------------------------------------------------------


def _closed_port() -> int:
    from backends._util import free_port  # nothing listens there once the probe closes

    return free_port()


def test_unreachable_server_fails_and_names_it() -> None:
    """How fast it fails is measured in benchmarks (pg_unavailable), not here."""
    port = _closed_port()
    with pytest.raises(BackendUnavailableError) as info:
        PostgresCatalog(f"postgresql://someone@127.0.0.1:{port}/somedb")
    message = str(info.value)
    assert f"127.0.0.1:{port}/somedb" in message
    assert "Check that the server is running" in message


def test_server_stopped_then_restarted() -> None:
    pg = _throwaway()
    try:
        cat = PostgresCatalog(pg.dsn, min_size=3, timeout=5)
        timeline, root = make_timeline()
        cat.commit(Batch([timeline], [root]))
        pg.restart()  # every pooled connection is now stale: replaced without an error
        assert cat.timelines() == [timeline]

        pg.kill()
        other, other_root = make_timeline()
        for op in (cat.timelines, lambda: cat.commit(Batch([other], [other_root]))):
            with pytest.raises(BackendUnavailableError, match=f"127.0.0.1:{pg.port}"):
                op()  # how fast: benchmarks (pg_unavailable)

        pg.start()
        assert cat.timelines() == [timeline]  # committed data survived; the pool reconnected
        cat.close()
    finally:
        pg.stop()


# -- many writers -------------------------------------------------------------------------

WRITERS_OUTPUTS = [make_output({"shared": i}) for i in range(20)]


def _write_chain(dsn: str, schema: str, root: Checkpoint, n: int, seed: int) -> list[str]:
    """Save n checkpoints on a chain below root, sharing outputs with other writers."""
    rng = random.Random(seed)
    cat = PostgresCatalog(dsn, schema=schema, max_size=2)
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


def test_many_threads_and_processes_write_at_once(
    catalog: PostgresCatalog, dsn: str, schema: str
) -> None:
    timeline, root = make_timeline()
    catalog.commit(Batch([timeline], [root]))
    per_writer = 40
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as procs:
        async_results = [
            procs.apply_async(_write_chain, (dsn, schema, root, per_writer, seed))
            for seed in range(3)
        ]
        thread_ids: list[list[str]] = []
        threads = [
            threading.Thread(
                target=lambda s=seed: thread_ids.append(
                    _write_chain(dsn, schema, root, per_writer, s)
                )
            )
            for seed in range(10, 16)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        proc_ids = [r.get(timeout=120) for r in async_results]

    written = {i for ids in [*thread_ids, *proc_ids] for i in ids}
    assert len(written) == 9 * per_writer
    tree = catalog.tree(timeline.id)
    assert {c.id for c in tree} == written | {root.id}
    assert catalog.missing_outputs(h for h, _ in WRITERS_OUTPUTS) == set()


def _race(cats: list[PostgresCatalog], versions: list[Checkpoint],
          batch: Any) -> list[str]:
    """Commit batch(version) from one thread per catalog, all released at once; return
    each thread's outcome: the version's scenario_label, or "conflict"."""
    outcomes: list[str] = []
    barrier = threading.Barrier(len(versions))

    def write(cat: PostgresCatalog, version: Checkpoint) -> None:
        barrier.wait()
        try:
            cat.commit(batch(version))
            outcomes.append(version.scenario_label)
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=a) for a in zip(cats, versions, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_racing_commits_of_one_id_agree_or_conflict(dsn: str, schema: str) -> None:
    """Writers racing on the same ids (two syncs at once): equal content all succeed,
    other content raises ConflictError for all but the one that landed first."""
    timeline, root = make_timeline()
    h, data = make_output({"race": 1})
    chain = [root]
    for _ in range(150):  # long enough statements for the writers to overlap in the server
        chain.append(child(chain[-1], "track", h))
    same = child(chain[-1], "detect", h)
    versions = [attrs.evolve(same, scenario_label=f"v{i % 3}") for i in range(12)]
    cats = [PostgresCatalog(dsn, schema=schema, max_size=1) for _ in versions]
    try:
        outcomes = _race(cats, versions, lambda v: Batch([timeline], [*chain, v], {h: data}))
        (stored,) = cats[0].checkpoints([same.id])
    finally:
        for cat in cats:
            cat.close()
    assert len(outcomes) == len(versions)
    winners = [o for o in outcomes if o != "conflict"]
    assert set(winners) == {stored.scenario_label}
    assert len(winners) == sum(v.scenario_label == stored.scenario_label for v in versions)


# -- the row cache (pg_cache) -------------------------------------------------------------


def _count_queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real_execute = psycopg.Cursor.execute

    def counting_execute(self: psycopg.Cursor[Any], query: Any, *args: Any, **kw: Any) -> Any:
        calls.append(str(query)[:60])
        return real_execute(self, query, *args, **kw)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting_execute)
    return calls


def test_a_save_reads_its_parent_without_a_round_trip(
    dsn: str, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with localckpt.open(f"{dsn}?schema={schema}", objects=str(tmp_path), create=True) as store:
        timeline = store.create_timeline("clip.mp4", "default", [np.zeros((4, 4, 3), np.uint8)])
        calls = _count_queries(monkeypatch)
        first = store.save_stage_output(timeline.id, None, "detect", {"n": 1})
        second = store.save_stage_output(timeline.id, first, "track", {"n": 2})
        assert len(calls) == 2, calls  # one commit each; timeline and parents from the cache
        monkeypatch.undo()
        assert [c.id for c in store.lineage(second)] == [
            timeline.root_checkpoint_id, first, second
        ]
        assert store.load_stage_output(second, "detect") == {"n": 1}


def test_cache_never_answers_for_another_schema(dsn: str, schema: str) -> None:
    other_schema = f"{schema}_b"
    a = PostgresCatalog(dsn, schema=schema)
    b = PostgresCatalog(dsn, schema=other_schema)
    try:
        timeline, root = make_timeline()
        a.commit(Batch([timeline], [root]))
        assert a.checkpoints([root.id]) == [root]
        assert b.checkpoints([root.id]) == []
        assert b.timelines([timeline.id]) == []
        assert b.children(root.id) == [] and b.lineage(root.id) == []
        # same ids in the other schema with other content: each catalog answers its own
        changed_t = attrs.evolve(timeline, frame_count=99)
        changed_root = attrs.evolve(root, stats={"frames_extracted": 99})
        b.commit(Batch([changed_t], [changed_root]))
        assert b.checkpoints([root.id]) == [changed_root]
        assert a.checkpoints([root.id]) == [root]
        assert a.timelines([timeline.id]) == [timeline]
        assert b.timelines([timeline.id]) == [changed_t]
    finally:
        a.close()
        b.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(other_schema))
            )


def test_cache_hides_no_unknown_id_and_hands_out_fresh_records(
    catalog: PostgresCatalog, dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeline, root = make_timeline()
    h, data = make_output({"v": 1})
    ckpt = child(root, "detect", h, config_overrides={"nested": {"list": [1, 2]}})
    catalog.commit(Batch([timeline], [root, ckpt], {h: data}))
    unknown = new_id()

    calls = _count_queries(monkeypatch)
    assert catalog.checkpoints([ckpt.id, root.id]) == sorted([root, ckpt], key=lambda c: c.id)
    assert calls == []  # both were inserted by this catalog
    assert catalog.checkpoints([unknown, ckpt.id]) == [ckpt]
    assert catalog.timelines([unknown]) == []
    assert len(calls) == 2  # unknown ids always ask the server
    monkeypatch.undo()

    # mutating a returned record does not change what the next read returns
    got = catalog.checkpoints([ckpt.id])[0]
    got.config_overrides["nested"]["list"].append(3)
    got.stats["x"] = 1  # type: ignore[index]
    assert catalog.checkpoints([ckpt.id]) == [ckpt]
    assert dict(catalog.checkpoints([ckpt.id])[0].stage_outputs) == {"detect": {"v": 1}}

    # a record written by another catalog (process) is read once, then cached
    other = PostgresCatalog(dsn, schema=schema)
    try:
        late = child(ckpt, "track", h)
        other.commit(Batch([], [late]))
        calls = _count_queries(monkeypatch)
        assert catalog.checkpoints([late.id]) == [late]
        assert catalog.checkpoints([late.id]) == [late]
        assert len(calls) == 1
    finally:
        other.close()


def test_a_refused_commit_leaves_nothing_in_the_cache(catalog: PostgresCatalog) -> None:
    timeline, root = make_timeline()
    catalog.commit(Batch([timeline], [root]))
    h, data = make_output({"v": 2})
    new = child(root, "detect", h)
    with pytest.raises(ConflictError):
        catalog.commit(Batch([], [new, attrs.evolve(root, scenario_label="other")], {h: data}))
    assert catalog.checkpoints([new.id]) == []
    assert catalog.checkpoints([root.id]) == [root]
    orphan = attrs.evolve(new, parent_id=new_id())
    with pytest.raises(InvalidInputError):
        catalog.commit(Batch([], [orphan], {h: data}))
    assert catalog.checkpoints([orphan.id]) == []


def test_small_batches_compare_with_stored_rows_when_an_id_exists(
    catalog: PostgresCatalog, dsn: str, schema: str
) -> None:
    """A save-sized batch tries plain INSERTs first; a stored id sends it to the comparing
    statement with the same outcome as a big batch: equal skipped, other content refused."""
    timeline, root = make_timeline()
    catalog.commit(Batch([timeline], [root]))
    h, data = make_output({"v": 3})
    ckpt = child(root, "detect", h)
    catalog.commit(Batch([], [ckpt], {h: data}))
    catalog.commit(Batch([], [ckpt], {h: data}))  # stored and equal: skipped
    fresh = PostgresCatalog(dsn, schema=schema)  # an empty cache: every read asks the server
    try:
        fresh.commit(Batch([timeline], [root]))
        fresh.commit(Batch([attrs.evolve(timeline)]))
        h2, data2 = make_output({"v": 4})
        with pytest.raises(ConflictError, match=ckpt.id):
            fresh.commit(Batch([], [attrs.evolve(ckpt, stats={"x": 1})], {h2: data2}))
        with pytest.raises(ConflictError, match=timeline.id):
            fresh.commit(Batch([attrs.evolve(timeline, frame_count=9)], [], {h2: data2}))
        assert fresh.missing_outputs([h2]) == {h2}
        assert fresh.checkpoints([ckpt.id]) == [ckpt]
        assert fresh.timelines([timeline.id]) == [timeline]
    finally:
        fresh.close()
    assert count_rows(dsn, schema, "checkpoints") == 2


def test_racing_single_saves_of_one_id_agree_or_conflict(dsn: str, schema: str) -> None:
    timeline, root = make_timeline()
    setup = PostgresCatalog(dsn, schema=schema)
    setup.commit(Batch([timeline], [root]))
    setup.close()
    h, data = make_output({"race": 2})
    same = child(root, "detect", h)
    versions = [attrs.evolve(same, scenario_label=f"v{i % 2}") for i in range(8)]
    cats = [PostgresCatalog(dsn, schema=schema, max_size=1) for _ in versions]
    try:
        outcomes = _race(cats, versions, lambda v: Batch([], [v], {h: data}))
        stored = [c.checkpoints([same.id])[0].scenario_label for c in cats]
    finally:
        for cat in cats:
            cat.close()
    winners = [o for o in outcomes if o != "conflict"]
    assert len(outcomes) == len(versions)
    assert set(winners) == set(stored) == {stored[0]}  # caches agree with the server
    assert len(winners) == sum(v.scenario_label == stored[0] for v in versions)
